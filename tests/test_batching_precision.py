"""Mixed precision (``Pipeline(mixed_precision=)``, ``--mixed-precision``): bf16 autocast on the
CPU gives float32 outputs close to the float32 run; bad settings are refused up front."""

from __future__ import annotations

import numpy as np
import pytest
from test_batching import RATE, _mixtures, models  # noqa: F401  (the fixture)

from amongus.pipeline import Pipeline, check_mixed_precision


def test_bf16_autocast_on_cpu_stays_close_to_float32(models):  # noqa: F811
    separator, classifier = models
    mixtures = _mixtures(2, 1.0, equal=False)
    runs = {}
    for precision in (None, "bf16"):
        pipeline = Pipeline(separator=separator, classifier=classifier, batch_size=2,
                            assignment=None, mixed_precision=precision)  # fmt: skip
        runs[precision] = pipeline(list(mixtures), sample_rate=RATE)
    for full, half in zip(runs[None], runs["bf16"], strict=True):
        assert half.streams.dtype == np.float32 and half.spoof_probability.dtype.kind == "f"
        # bf16 keeps 8 bits of mantissa: streams within a few percent of their scale
        scale = float(np.abs(full.streams).max())
        assert float(np.abs(half.streams - full.streams).max()) <= 0.05 * scale
        np.testing.assert_allclose(half.spoof_probability, full.spoof_probability, atol=0.05)
        assert not np.allclose(half.streams, full.streams, atol=0, rtol=0)  # autocast was on


@pytest.mark.parametrize(
    ("value", "device", "quantize", "match"),
    [
        ("fp8", "cpu", False, "one of"),
        ("fp16", "cpu", False, "CUDA"),
        ("bf16", "cpu", True, "alternatives"),
    ],
)
def test_bad_mixed_precision_is_refused(value, device, quantize, match):
    with pytest.raises(ValueError, match=match):
        check_mixed_precision(value, device, quantize)


def test_no_means_float32():
    assert check_mixed_precision("no", "cpu") is None
    assert check_mixed_precision(None, "cuda") is None
    assert check_mixed_precision("fp16", "cuda:1") == "fp16"
