"""SSL_W2V: the fairseq -> transformers mapping consumes every published tensor, strictly."""

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from amongus.checkpoints import CheckpointError  # noqa: E402
from amongus.classifiers import load_classifier  # noqa: E402
from amongus.classifiers.fairseq_wav2vec2 import PRETRAINING_ONLY  # noqa: E402
from amongus.classifiers.ssl_w2v import (  # noqa: E402
    FAIRSEQ_PREFIX,
    FRONT_END_PREFIX,
    SSLW2V,
    SslW2vClassifier,
    SslW2vConfig,
    published_to_module_state_dict,
)
from amongus.testing.countermeasures import (  # noqa: E402
    published_ssl_w2v_shapes,
    tiny_ssl_w2v_config,
    write_tiny_ssl_w2v_checkpoint,
)

SEGMENT = 64_600
DROPPED = sorted(FAIRSEQ_PREFIX + name for name in PRETRAINING_ONLY)


def noise(samples: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


@pytest.fixture(scope="module", params=["legacy", "parametrizations"])
def checkpoint(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"ssl-{request.param}")
    return write_tiny_ssl_w2v_checkpoint(folder / "LA_model.pth", weight_norm=request.param)


def test_every_published_tensor_is_consumed_or_dropped_by_name(checkpoint):
    published = torch.load(checkpoint, weights_only=True)
    model = SSLW2V(tiny_ssl_w2v_config())
    mapped, dropped = published_to_module_state_dict(published, model)
    assert dropped == DROPPED  # exactly the pre-training heads, by name
    # every published tensor went somewhere: mapped one to one, or dropped
    assert len(mapped) + len(dropped) == len(published)
    kept = {id(tensor) for tensor in mapped.values()}
    assert all(id(published[name]) in kept for name in published if name not in dropped)
    # nothing left over, nothing missing, every shape right: the strict load accepts it
    expected = model.state_dict()
    assert set(mapped) == set(expected)
    assert all(mapped[k].shape == expected[k].shape for k in expected)
    assert any(k.startswith(FRONT_END_PREFIX + "encoder.pos_conv_embed") for k in mapped)


def test_the_full_xlsr_300m_layout_maps_onto_transformers_without_allocating():
    """The published LA_model.pth layout at full size (24 layers, width 1024), on the meta device."""
    shapes = published_ssl_w2v_shapes()
    with torch.device("meta"):
        model = SSLW2V(SslW2vConfig())
        published = {name: torch.empty(shape) for name, shape in shapes.items()}
    mapped, dropped = published_to_module_state_dict(published, model)
    assert dropped == DROPPED
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert {name: tuple(t.shape) for name, t in mapped.items()} == expected
    assert shapes["LL.weight"] == (128, 1024) and shapes["pos_S"] == (1, 42, 64)
    assert shapes["attention.0.weight"] == (128, 64, 1, 1)
    assert shapes[FAIRSEQ_PREFIX + "encoder.pos_conv.0.weight_v"] == (1024, 64, 128)
    assert shapes[FAIRSEQ_PREFIX + "quantizer.vars"] == (1, 640, 384)
    n_parameters = sum(int(np.prod(s)) for n, s in expected.items() if "running" not in n)
    assert 310e6 < n_parameters < 320e6  # XLS-R 300M (~315 M) plus the back end


def test_the_mapped_model_is_deterministic_and_finite(checkpoint):
    classifier = load_classifier(checkpoint, config=tiny_ssl_w2v_config())
    assert isinstance(classifier, SslW2vClassifier)
    assert classifier.sample_rate == 16000 and classifier.segment_samples == SEGMENT
    assert classifier.spoof_index == 0  # the reference's output[:, 1] is bonafide
    streams = [noise(SEGMENT, 0), noise(20000, 1), noise(SEGMENT + 5000, 2)]
    first = classifier.score(streams)
    again = load_classifier(checkpoint, config=tiny_ssl_w2v_config()).score(streams)
    assert np.all(np.isfinite(first.logits))
    np.testing.assert_array_equal(first.logits, again.logits)
    alone = np.concatenate([classifier.score([s]).logits for s in streams])
    np.testing.assert_allclose(first.logits, alone, rtol=1e-5, atol=1e-4)  # float32 batching


def test_a_missing_tensor_is_named(tmp_path):
    path = write_tiny_ssl_w2v_checkpoint(tmp_path / "LA_model.pth")
    state = torch.load(path, weights_only=True)
    del state[FAIRSEQ_PREFIX + "encoder.layers.1.fc2.bias"]
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"missing key: front_end.encoder.layers.1.feed_forward.output_dense"
    ):
        load_classifier(path, config=tiny_ssl_w2v_config())


def test_an_unknown_fairseq_tensor_is_named_not_ignored(tmp_path):
    path = write_tiny_ssl_w2v_checkpoint(tmp_path / "LA_model.pth")
    state = torch.load(path, weights_only=True)
    state[FAIRSEQ_PREFIX + "encoder.layers.0.adapter.weight"] = torch.zeros(2)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="not known to the mapping: encoder.layers.0.adapter"):
        load_classifier(path, config=tiny_ssl_w2v_config())


def test_the_published_architecture_is_the_default_and_a_mismatch_is_refused(tmp_path):
    """Without a config the paper's XLS-R 300M is assumed: a tiny checkpoint does not fit it."""
    path = write_tiny_ssl_w2v_checkpoint(tmp_path / "LA_model.pth")
    with pytest.raises(CheckpointError, match="mis-shaped key"):
        load_classifier(path)


def test_config_beside_the_weights_and_save_round_trip(tmp_path):
    path = write_tiny_ssl_w2v_checkpoint(tmp_path / "tiny" / "LA_model.pth", write_config=True)
    classifier = load_classifier(path.parent)
    stream = noise(SEGMENT, 3)
    saved = classifier.save_pretrained(tmp_path / "saved")
    again = load_classifier(saved)
    assert isinstance(again, SslW2vClassifier)
    assert again.identity.split("|")[1] == classifier.identity.split("|")[1]
    np.testing.assert_array_equal(again.score([stream]).logits, classifier.score([stream]).logits)
