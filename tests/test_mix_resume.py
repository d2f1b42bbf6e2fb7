"""Kill -9 mid-run, rerun the same command: complete, no duplicates, no truncated files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf
from test_mix_helpers import write_utterances

from amongus.manifest import read_mixtures, write_jsonl

REPO = Path(__file__).resolve().parents[1]
N = 120


def _command(manifest: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "amongus.mix", "--input", str(manifest), "--out", str(out),
        "--n-mixtures", str(N), "--seed", "11", "--workers", "2", "--noise-prob", "0.5",
        "--no-progress",
    ]  # fmt: skip


def _journal_lines(out: Path) -> int:
    journal = out / ".mix_journal.jsonl"
    return journal.read_text().count("\n") if journal.exists() else 0


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "summary.json"
    }


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    utterances = write_utterances(tmp_path / "utts", 12, seconds=(1.0, 1.6))
    manifest = write_jsonl(tmp_path / "utts.jsonl", utterances)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _command(manifest, killed), cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _journal_lines(killed) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the run and its worker processes
    process.wait()
    done_before = _journal_lines(killed)
    assert process.returncode == -signal.SIGKILL
    assert 0 < done_before < N, "the kill must land mid-run"
    assert not (killed / "mixtures.jsonl").exists()

    rerun = subprocess.run(_command(manifest, killed), cwd=REPO, env=env, capture_output=True,
                           text=True)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stdout
    reference = tmp_path / "reference"
    subprocess.run(_command(manifest, reference), cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip

    mixtures = read_mixtures(killed / "mixtures.jsonl")
    assert len(mixtures) == N == len({m.mixture_id for m in mixtures})
    audio_files = sorted((killed / "audio").iterdir())
    assert len(audio_files) == N  # no duplicates, no leftover partial files
    assert not list(killed.rglob("*.part"))
    for path in audio_files:
        assert sf.info(path).frames > 0
    assert _journal_lines(killed) == N
    killed_files, reference_files = _files(killed), _files(reference)
    assert killed_files.keys() == reference_files.keys()
    assert all(killed_files[name] == reference_files[name] for name in killed_files)
