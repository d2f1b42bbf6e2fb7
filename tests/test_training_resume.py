"""kill -9 a training run after its first checkpoint, rerun the same command: same final weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _command(options: dict, output: Path) -> list[str]:
    args = [sys.executable, "-m", "amongus.train", "--output-dir", str(output)]
    for key, value in options.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_sigkill_then_rerun_reaches_the_same_weights(tmp_path):
    from safetensors.numpy import load_file

    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.training.checkpoint import list_checkpoints
    from amongus.training.toy import make_toy_mixtures

    manifest = make_toy_mixtures(tmp_path / "data", n_mixtures=8, max_source_seconds=1.0)
    classifier = build_tiny_classifier(tmp_path / "clf", hidden_size=16)
    options = {
        "train_mixtures": manifest,
        "classifier": classifier,
        "separator": "oracle",
        "cache_dir": tmp_path / "cache",
        "epochs": 2,
        "batch_size": 1,
        "grad_accum_steps": 2,
        "max_seconds": 0.5,
        "val_fraction": 0.25,
        "learning_rate": 1e-3,
        "freeze": "none",
        "checkpoint_every_steps": 1,
        "log_with": "none",
    }
    reference = tmp_path / "reference"
    done = subprocess.run(
        _command(options, reference), env=_env(), cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    slow = {**options, "throttle_seconds": 0.5}  # so the kill lands mid-run
    process = subprocess.Popen(
        _command(slow, killed), env=_env(), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not list_checkpoints(killed / "checkpoints"):
            assert process.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    first = list_checkpoints(killed / "checkpoints")[-1]
    assert not (killed / "final").exists()

    rerun = subprocess.run(
        _command(options, killed), env=_env(), cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert list_checkpoints(killed / "checkpoints")[-1] != first
    expected = load_file(str(reference / "final" / "model.safetensors"))
    got = load_file(str(killed / "final" / "model.safetensors"))
    start = load_file(str(classifier / "model.safetensors"))
    assert max(float(np.max(np.abs(expected[k] - start[k]))) for k in expected) > 1e-4
    assert max(float(np.max(np.abs(expected[k] - got[k]))) for k in expected) <= 1e-6
    assert (killed / "history.csv").read_text().count("\n") == 3  # header + 2 epochs
