"""Separation batching chosen by device: one mixture per model call on the CPU (measured faster
there), whole batches elsewhere; the results are the same either way."""

from __future__ import annotations

import numpy as np
import pytest

from amongus.pipeline import Pipeline

RATE = 16000


def _mixtures(n: int, seconds: float, *, equal: bool = True) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    out = []
    for index in range(n):
        length = int((seconds if equal else seconds + 0.13 * index) * RATE)
        t = np.arange(length) / RATE
        wave = 0.2 * np.sin(2 * np.pi * (180 + 50 * index) * t) + 0.2 * np.sin(
            2 * np.pi * (900 + 70 * index) * t
        )
        out.append((wave + 0.01 * rng.standard_normal(length)).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet

    root = tmp_path_factory.mktemp("batching")
    separator = build_tiny_convtasnet(
        root / "separator.bin", n_filters=16, bn_chan=8, hid_chan=16, skip_chan=8,
        n_blocks=2, n_repeats=1,
    )  # fmt: skip
    return str(separator), str(build_tiny_classifier(root / "classifier"))


def _count_model_calls(pipeline: Pipeline) -> list[int]:
    """Record the batch size of every separator model call."""
    calls: list[int] = []
    original = pipeline.separator._separate

    def counting(mixture, *args, **kwargs):
        calls.append(int(mixture.shape[0]))
        return original(mixture, *args, **kwargs)

    pipeline.separator._separate = counting
    return calls


def test_cpu_default_separates_one_mixture_per_call(models):
    separator, classifier = models
    pipeline = Pipeline(separator=separator, classifier=classifier, batch_size=3,
                        assignment=None)  # fmt: skip
    assert pipeline.batched is False
    calls = _count_model_calls(pipeline)
    pipeline(np.stack(_mixtures(3, 1.0)), sample_rate=RATE)
    assert calls == [1, 1, 1]


def test_batched_is_one_separator_call_for_equal_lengths(models):
    separator, classifier = models
    pipeline = Pipeline(separator=separator, classifier=classifier, batch_size=3,
                        assignment=None, batched=True)  # fmt: skip
    calls = _count_model_calls(pipeline)
    pipeline(np.stack(_mixtures(3, 1.0)), sample_rate=RATE)
    assert calls == [3]


@pytest.mark.parametrize("equal", [True, False])
def test_per_item_and_batched_results_are_equal(models, equal):
    separator, classifier = models
    mixtures = _mixtures(3, 1.0, equal=equal)
    results = {}
    for batched in (True, False):
        pipeline = Pipeline(separator=separator, classifier=classifier, batch_size=3,
                            assignment=None, batched=batched)  # fmt: skip
        results[batched] = pipeline(list(mixtures), sample_rate=RATE)
    for batched, single in zip(results[True], results[False], strict=True):
        assert batched.streams.shape == single.streams.shape
        np.testing.assert_allclose(batched.streams, single.streams, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(
            batched.spoof_probability, single.spoof_probability, atol=1e-5, rtol=1e-4
        )
        assert list(batched.predicted_labels) == list(single.predicted_labels)


def test_an_accelerator_device_defaults_to_batches(models, monkeypatch):
    separator, classifier = models
    import amongus.pipeline as pipeline_module

    # the choice is made from the device name; the models are not moved in this test
    monkeypatch.setattr(pipeline_module, "load_pipeline_separator", lambda spec, device: spec)
    monkeypatch.setattr(pipeline_module, "load_classifier", lambda spec, device: _Stub())
    pipeline = Pipeline(separator=object(), classifier=None, device="cuda:0",
                        assignment=None)  # fmt: skip
    assert pipeline.batched is True


class _Stub:
    sample_rate = RATE
    identity = "stub"


def test_one_at_a_time_results_do_not_depend_on_batch_mates(models):
    # the CPU default: a mixture's streams and scores are the same bits whatever it is
    # batched with (what makes a sharded evaluation equal an unsharded one exactly)
    separator, classifier = models
    mixtures = _mixtures(3, 1.0, equal=False)
    alone = Pipeline(separator=separator, classifier=classifier, batch_size=1, assignment=None)
    together = Pipeline(separator=separator, classifier=classifier, batch_size=3,
                        assignment=None)  # fmt: skip
    for one, many in zip(alone(list(mixtures), sample_rate=RATE),
                         together(list(mixtures), sample_rate=RATE), strict=True):  # fmt: skip
        assert np.array_equal(one.streams, many.streams)
        assert np.array_equal(one.spoof_probability, many.spoof_probability)
        assert np.array_equal(one.cm_score, many.cm_score)
