"""Issue 12 case 16: after ``kill -9`` of the ``amongus.mix`` parent, its workers exit too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_mix_helpers import write_utterances

from amongus.manifest import write_jsonl

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_die_with_a_killed_parent(tmp_path):
    utterances = write_utterances(tmp_path / "u", 12, seconds=(1.0, 1.3))
    manifest = write_jsonl(tmp_path / "utts.jsonl", utterances)
    out = tmp_path / "out"
    parent = subprocess.Popen(
        [sys.executable, "-m", "amongus.mix", "--input", str(manifest), "--out", str(out),
         "--n-mixtures", "100000", "--seed", "0", "--workers", "2", "--no-progress"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        journal = out / ".mix_journal.jsonl"
        deadline = time.monotonic() + 120
        while not (journal.exists() and journal.stat().st_size > 0):  # the pool is working
            assert parent.poll() is None, "the run ended early"
            assert time.monotonic() < deadline, "no mixture made in time"
            time.sleep(0.05)
        workers = _children(parent.pid)
        assert len(workers) >= 2
        os.kill(parent.pid, signal.SIGKILL)  # the parent alone, as `kill -9 PID` does
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "orphaned workers still running"
    finally:
        for pid in workers:  # never leave them behind, even when the test fails
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()
