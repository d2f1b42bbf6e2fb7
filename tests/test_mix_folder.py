"""Issue 12 case 2: one run owns its output folder, and a rerun verifies what it resumes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_mix_helpers import write_utterances

from amongus.locking import FolderBusyError, FolderLock
from amongus.manifest import read_mixtures, write_jsonl
from amongus.mix import Mixer, MixerConfig, MixFolderConflict
from amongus.mix.__main__ import main

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fcntl locks (POSIX)")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _command(manifest: Path, out: Path, n: int, seed: int) -> list[str]:
    return [
        sys.executable, "-m", "amongus.mix", "--input", str(manifest), "--out", str(out),
        "--n-mixtures", str(n), "--seed", str(seed), "--workers", "1", "--no-progress",
    ]  # fmt: skip


def _consistent(out: Path) -> None:
    """Every manifest record matches its audio file, byte for byte (its recorded SHA-1)."""
    mixtures = read_mixtures(out / "mixtures.jsonl")
    for mixture in mixtures:
        data = (out / mixture.path).read_bytes()
        assert hashlib.sha1(data).hexdigest() == mixture.extra["file_sha1"], mixture.path
        assert len(data) == mixture.extra["file_bytes"]
    files = sorted(p.name for p in (out / "audio").iterdir())
    assert files == sorted(Path(m.path).name for m in mixtures)


def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_stays_intact(tmp_path):
    # the input: two runs, seeds 0 and 1, same --out; before the fix both exited 0
    # with one run's manifest over the other's audio (or one died on a deleted temp file)
    utterances = write_utterances(tmp_path / "u", 12, seconds=(1.0, 1.3))
    manifest = write_jsonl(tmp_path / "utts.jsonl", utterances)
    out = tmp_path / "out"
    first = subprocess.Popen(
        _command(manifest, out, 3000, 0), cwd=REPO, env=_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        journal = out / ".mix_journal.jsonl"
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.read_text().count("\n") >= 5):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = subprocess.run(
            _command(manifest, out, 3000, 1), cwd=REPO, env=_env(), capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert first.poll() is None, "the first run must still be writing"
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9: its lock must not outlive it
        first.wait(timeout=60)
    assert second.returncode == 1
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert str(out) in message and f"pid {first.pid}" in message and "in use" in message

    # the killed run left no stale lock: the same command resumes and finishes
    done = subprocess.run(
        _command(manifest, out, 40, 0), cwd=REPO, env=_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _consistent(out)


def test_lock_refusal_names_folder_and_holder_and_ends_with_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from amongus.locking import FolderLock; "
         "lock = FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
         str(tmp_path / "out")],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError) as caught:
            FolderLock(tmp_path / "out").acquire()
        assert f"pid {holder.pid}" in str(caught.value)
        assert str(tmp_path / "out") in str(caught.value)
        assert caught.value.holder["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with FolderLock(tmp_path / "out") as lock:  # kill -9 released it
        assert lock.held


def test_lock_is_exclusive_within_one_process_and_released_on_exit(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderBusyError):
            FolderLock(tmp_path).acquire()
    FolderLock(tmp_path).acquire().release()


def test_forked_children_do_not_keep_the_lock(tmp_path):
    # a worker pool forked under the lock must not hold the folder after its parent is gone
    lock = FolderLock(tmp_path).acquire()
    ready, report = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - child process
        os.write(report, b"1")  # the at-fork handlers have run by now
        time.sleep(5)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"1"
        lock.release()
        FolderLock(tmp_path).acquire().release()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(ready)
        os.close(report)


def test_rerun_with_another_seed_is_refused_unless_overwrite(tmp_path):
    utterances = write_utterances(tmp_path / "u", 10)
    out = tmp_path / "out"
    mixer = Mixer(MixerConfig())
    mixer.run(utterances, out, n_mixtures=5, seed=0, workers=1, progress=False)
    before = {p.name: p.read_bytes() for p in (out / "audio").iterdir()}
    with pytest.raises(MixFolderConflict, match=r"seed 0 \(now 1\)"):
        mixer.run(utterances, out, n_mixtures=5, seed=1, workers=1, progress=False)
    assert {p.name: p.read_bytes() for p in (out / "audio").iterdir()} == before
    with pytest.raises(MixFolderConflict, match="other options"):
        Mixer(MixerConfig(level_db=(-1.0, 1.0))).run(
            utterances, out, n_mixtures=5, seed=0, workers=1, progress=False
        )
    with pytest.raises(MixFolderConflict, match="other inputs"):
        mixer.run(utterances[:8], out, n_mixtures=5, seed=0, workers=1, progress=False)

    summary = mixer.run(
        utterances, out, n_mixtures=3, seed=1, workers=1, progress=False, overwrite=True
    )
    assert summary.n_written == 3 and summary.n_resumed == 0
    assert {m.seed for m in read_mixtures(out / "mixtures.jsonl")} == {1}
    _consistent(out)  # the earlier run's five files are gone, not only overwritten


def test_cli_refuses_another_seed_in_one_line(tmp_path, capsys):
    utterances = write_utterances(tmp_path / "u", 10)
    manifest = write_jsonl(tmp_path / "utts.jsonl", utterances)
    out = tmp_path / "out"
    base = ["--input", str(manifest), "--out", str(out), "--n-mixtures", "4", "--workers", "1",
            "--no-progress"]  # fmt: skip
    assert main([*base, "--seed", "0"]) == 0
    capsys.readouterr()
    assert main([*base, "--seed", "1"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("amongus.mix: ") and len(error.splitlines()) == 1
    assert "seed" in error and "--overwrite" in error
    assert main([*base, "--seed", "1", "--overwrite"]) == 0


@pytest.mark.parametrize("damage", ["truncate", "swap", "delete"])
def test_damaged_finished_mixture_is_remade(tmp_path, damage):
    # before the fix a rerun trusted any existing file: "0 made, N resumed"
    utterances = write_utterances(tmp_path / "u", 10)
    out = tmp_path / "out"
    mixer = Mixer(MixerConfig())
    mixer.run(utterances, out, n_mixtures=4, seed=0, workers=1, progress=False)
    files = sorted((out / "audio").iterdir())
    original = files[1].read_bytes()
    if damage == "truncate":
        files[1].write_bytes(original[: len(original) // 2])
    elif damage == "swap":  # another mixture's audio under this name (a concurrent run's)
        files[1].write_bytes(files[2].read_bytes())
    else:
        files[1].unlink()
    summary = mixer.run(utterances, out, n_mixtures=4, seed=0, workers=1, progress=False)
    assert (summary.n_written, summary.n_resumed) == (1, 3)
    assert summary.n_remade == 1
    assert files[1].read_bytes() == original
    _consistent(out)
    record = json.loads((out / "summary.json").read_text())
    assert record["n_written"] == 1


def test_same_settings_resume_without_remaking(tmp_path):
    utterances = write_utterances(tmp_path / "u", 10)
    out = tmp_path / "out"
    mixer = Mixer(MixerConfig())
    mixer.run(utterances, out, n_mixtures=4, seed=0, workers=1, progress=False)
    summary = mixer.run(utterances, out, n_mixtures=6, seed=0, workers=1, progress=False)
    assert (summary.n_written, summary.n_resumed, summary.n_remade) == (2, 4, 0)
    _consistent(out)
