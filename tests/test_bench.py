"""The benchmark scripts run (small sizes) and report what docs/scaling.md quotes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_mix_reports_the_median_of_its_rounds(capsys):
    pytest.importorskip("librosa")
    bench = _load("bench_mix")
    assert bench.main(["--n-mixtures", "4", "--rounds", "3", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    ratio_line = next(line for line in out.splitlines() if line.startswith("ratio:"))
    assert "median of 3 round(s)" in ratio_line
    per_round = [float(value) for value in ratio_line.split(": ")[-1].rstrip(")").split(", ")]
    assert len(per_round) == 3
    assert float(ratio_line.split()[1].rstrip("x")) == pytest.approx(np.median(per_round), abs=0.01)


def test_bootstrap_eer_standard_error_shrinks_with_more_items():
    bench = _load("bench_quantize")
    rng = np.random.default_rng(0)

    def scores(n):
        labels = ["bonafide"] * n + ["spoof"] * n
        values = np.concatenate([rng.normal(1.0, 1.0, n), rng.normal(-1.0, 1.0, n)])
        return labels, values

    small = bench.bootstrap_eer_se(*scores(10), n=200)
    large = bench.bootstrap_eer_se(*scores(400), n=200)
    assert 0 < large < small
