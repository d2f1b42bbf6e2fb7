"""Opt-in int8 dynamic quantization of the classifier (amongus.quantization, Pipeline(quantize=))."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amongus.pipeline import Pipeline, load_classifier
from amongus.quantization import QUANTIZED_TAG, quantize_classifier
from amongus.testing.classifiers import build_tiny_classifier


def _streams(n=4, seconds=1.0, rate=16000):
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * rate)) / rate
    return [
        (0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size))
        .astype(np.float32)
        for i in range(n)
    ]


def _quantized_linears(model) -> int:
    return sum(
        1 for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")
    )


@pytest.fixture(scope="module")
def wavlm_folder(tmp_path_factory):
    # wider than the default tiny model so the int8 kernels see realistic matrix sizes
    return build_tiny_classifier(tmp_path_factory.mktemp("wavlm"), hidden_size=64)


def test_quantized_scores_stay_close_to_float(wavlm_folder):
    streams = _streams()
    reference = load_classifier(str(wavlm_folder)).score(streams, sample_rate=16000)
    classifier = quantize_classifier(load_classifier(str(wavlm_folder)))
    assert classifier.quantized == QUANTIZED_TAG
    assert _quantized_linears(classifier.model) > 0
    scores = classifier.score(streams, sample_rate=16000)
    np.testing.assert_allclose(
        scores.spoof_probability, reference.spoof_probability, atol=0.02
    )
    assert np.all(np.isfinite(scores.cm_score))


def test_attention_read_by_weight_stays_float(wavlm_folder):
    # WavLM's attention hands q_proj.bias to multi_head_attention_forward: a quantized q_proj
    # would break the forward, so those layers must be left in float and the rest quantized
    classifier = quantize_classifier(load_classifier(str(wavlm_folder)))
    attention = classifier.model.wavlm.encoder.layers[0].attention
    assert isinstance(attention.q_proj, torch.nn.Linear)
    assert isinstance(attention.q_proj.bias, torch.Tensor)
    feed_forward = classifier.model.wavlm.encoder.layers[0].feed_forward.intermediate_dense
    assert type(feed_forward).__module__.startswith("torch.ao.nn.quantized")


def test_pipeline_option_is_off_by_default_and_marks_the_identity(wavlm_folder):
    plain = Pipeline(separator="passthrough", classifier=str(wavlm_folder))
    assert _quantized_linears(plain.classifier.model) == 0
    assert not plain.classifier_identity.endswith(QUANTIZED_TAG)
    fast = Pipeline(separator="passthrough", classifier=str(wavlm_folder), quantize=True)
    assert fast.classifier_identity == f"{plain.classifier_identity}|{QUANTIZED_TAG}"
    audio = _streams(1, seconds=2.0)[0]
    result = fast(audio, sample_rate=16000)
    reference = plain(audio, sample_rate=16000)
    np.testing.assert_allclose(
        result.spoof_probability, reference.spoof_probability, atol=0.02
    )


def test_a_model_off_the_cpu_is_refused(wavlm_folder):
    classifier = load_classifier(str(wavlm_folder))
    classifier.model.to("meta")
    with pytest.raises(ValueError, match="on the CPU"):
        quantize_classifier(classifier)
