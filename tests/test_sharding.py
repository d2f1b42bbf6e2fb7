"""Sharded evaluation: shard arithmetic, merging shard reports, and
``accelerate launch -m amongus.evaluate`` on 2 CPU processes giving the single-process output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mixture_fixtures import write_tone_mixtures

from amongus.sharding import merge_notes, merge_reports, parse_shard, shard_bounds

RATE = 16000


def _tone(frequency: float, seconds: float, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (frequency + 7 * seed) * t)
    return (wave + 0.003 * rng.normal(size=t.size)).astype(np.float32)


@pytest.mark.parametrize("total", [0, 1, 5, 7, 12])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_cover_every_item_once_in_order(total, count):
    bounds = [shard_bounds(total, index, count) for index in range(count)]
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(total))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_shard_bounds_match_accelerate_split_between_processes():
    from accelerate import PartialState

    items = list(range(11))
    state = PartialState()  # one process here: emulate the others' cut by hand
    with state.split_between_processes(items) as mine:
        assert mine == items
    # accelerate's rule, written out: divmod, the first `extra` processes take one more
    assert [shard_bounds(11, i, 3) for i in range(3)] == [(0, 4), (4, 8), (8, 11)]


@pytest.mark.parametrize("text", ["1", "2/2", "-1/2", "a/b", "1/0", ""])
def test_bad_shard_text_is_refused(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_parse_shard():
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3 / 4 ") == (3, 4)


def test_merge_notes_sums_counted_notes():
    merged = merge_notes([["2 mixture(s) had x", "plain"], ["3 mixture(s) had x", "plain"], []])
    assert merged == ["5 mixture(s) had x", "plain"]


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet

    root = tmp_path_factory.mktemp("sharded")
    mix = write_tone_mixtures(
        root,
        n_utterances=8,
        n_mixtures=7,
        seed=3,
        # different lengths: batches pad and cut per item
        audio=lambda index, spoof: _tone(3000 if spoof else 200, 0.8 + 0.1 * index, index),
        rate=RATE,
    )
    manifest = mix / "mixtures.jsonl"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    # a malformed line and a missing file: skipped rows must keep their place too
    lines.insert(2, '{"mixture_id": "broken"')
    missing = json.loads(lines[5])
    missing["mixture_id"] = "gone"
    missing["path"] = "audio/gone.flac"
    lines.insert(5, json.dumps(missing))
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "manifest": manifest,
        "classifier": build_tiny_classifier(root / "classifier"),
        "separator": build_tiny_convtasnet(
            root / "separator",
            n_filters=16,
            bn_chan=8,
            hid_chan=16,
            skip_chan=8,
            n_blocks=2,
            n_repeats=1,
        ),
    }


def _evaluate_args(setup, out: Path, batch_size: int) -> list[str]:
    return [
        str(setup["manifest"]),
        "--separator",
        str(setup["separator"]),
        "--classifier",
        str(setup["classifier"]),
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
        "--quiet",
        "--no-plots",
    ]


def _comparable(report_json: Path) -> dict:
    data = json.loads(report_json.read_text())
    for key in ("elapsed_seconds", "items_per_second"):
        data.pop(key)
    return data


@pytest.mark.parametrize("count", [3, 11])  # 11 > 9 entries: some shards are empty
def test_shard_reports_merge_to_the_single_run(tiny_setup, count):
    from amongus.pipeline import Pipeline

    pipeline = Pipeline(
        separator=str(tiny_setup["separator"]),
        classifier=str(tiny_setup["classifier"]),
        batch_size=2,
    )
    whole = pipeline.evaluate(tiny_setup["manifest"], progress=False)
    parts = [
        pipeline.evaluate(tiny_setup["manifest"], progress=False, shard=(index, count))
        for index in range(count)
    ]
    assert sum(part.n_inputs for part in parts) == whole.n_inputs == 9
    merged = merge_reports(parts, elapsed_seconds=whole.elapsed_seconds)
    assert merged.mixture_rows == whole.mixture_rows
    assert merged.stream_rows == whole.stream_rows
    assert merged.skipped == whole.skipped and len(whole.skipped) == 2
    assert merged.to_dict() == whole.to_dict()


def test_merge_refuses_reports_of_different_runs(tiny_setup):
    from amongus.results import EvaluationReport

    one = EvaluationReport(
        kind="mixtures", mixture_rows=[], stream_rows=[], skipped=[], classifier="a"
    )
    other = EvaluationReport(
        kind="mixtures", mixture_rows=[], stream_rows=[], skipped=[], classifier="b"
    )
    with pytest.raises(ValueError, match="classifier"):
        merge_reports([one, other])
    with pytest.raises(ValueError, match="no shard"):
        merge_reports([])


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_accelerate_launch_on_two_processes_equals_one_process(tiny_setup, tmp_path):
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("accelerate's launcher is not installed")
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    single = tmp_path / "single"
    subprocess.run(
        [sys.executable, "-m", "amongus.evaluate", *_evaluate_args(tiny_setup, single, 2)],
        check=True,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    sharded = tmp_path / "sharded"
    launch = [
        # accelerate's --cpu starts one process; --multi_gpu starts N through torchrun, and
        # without CUDA they run on the CPU over gloo
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        # a free port, not torchrun's default 29500: two suites on one machine (a developer's
        # and CI's) would otherwise join each other's process group and abort
        "--main_process_port",
        str(_free_port()),
        "-m",
        "amongus.evaluate",
    ]
    done = subprocess.run(
        [*launch, *_evaluate_args(tiny_setup, sharded, 2), "--verbose"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # each process took its own block of the 9 manifest entries
    assert "shard 0/2: entries 0 to 4 of 9" in done.stderr
    assert "shard 1/2: entries 5 to 8 of 9" in done.stderr
    assert _comparable(sharded / "report.json") == _comparable(single / "report.json")
    for name in (
        "mixtures.csv",
        "streams.csv",
        "skipped.csv",
        "scores_asvspoof.txt",
        "scores_spoof_present.txt",
    ):
        assert (sharded / name).read_bytes() == (single / name).read_bytes(), name
    data = json.loads((sharded / "report.json").read_text())
    assert data["counts"]["inputs"] == 9 and data["counts"]["skipped"] == 2
