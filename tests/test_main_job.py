"""The main job (`python -m amongus`, run by scripts/main.sh) on the bundled demo set."""

import json
import os
import subprocess
import sys

import pytest

from amongus.defaults import MODELS_DIR


@pytest.mark.skipif(not (MODELS_DIR / "wavlm-spoof-finetuned").exists(), reason="no shipped models")
def test_main_job_mixes_evaluates_and_writes_the_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "amongus", "--out", str(tmp_path), "--n-mixtures", "6"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "mixture composition (6 mixtures)" in run.stdout
    manifest = (tmp_path / "mixtures" / "mixtures.jsonl").read_text().splitlines()
    assert len(manifest) == 6
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["counts"]["inputs"] == 6
    assert report["counts"]["evaluated"] + report["counts"]["skipped"] == 6
    assert report["counts"]["streams"] == 2 * report["counts"]["evaluated"]
    assert report["assignment"] == "signal"
    for name in ("mixtures.csv", "streams.csv", "confusion_composition.png", "roc_streams.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0


def test_main_job_rejects_an_unknown_preset(tmp_path):
    command = [
        sys.executable,
        "-m",
        "amongus",
        "--out",
        str(tmp_path),
        "--n-mixtures",
        "2",
        "--preset",
        "no-such-preset",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert "unknown preset 'no-such-preset'" in run.stderr
