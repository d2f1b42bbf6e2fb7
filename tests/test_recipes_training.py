"""Training recipes (tiny configs, a few steps) and the shipped default models.

Runs without ../shared: the training data are synthetic audio files written here.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus.defaults import MODELS_DIR  # noqa: E402
from amongus.recipes import train_classifier as tc  # noqa: E402
from amongus.recipes import train_separator as ts  # noqa: E402
from amongus.recipes.training_data import LoadedUtterance, TimeBudget  # noqa: E402

SHIPPED_SEPARATORS = {"convtasnet-16k": 16000, "sepformer-8k": 8000}
SHIPPED_CLASSIFIERS = ("wavlm-spoof-clean", "wavlm-spoof-finetuned")
MAX_SHIPPED_MB = 25.0


def _voice(rng: np.random.Generator, f0: float, seconds: float, rate: int) -> np.ndarray:
    """A harmonic, amplitude-modulated tone: speech-like enough for a few training steps."""
    t = np.arange(int(seconds * rate)) / rate
    vibrato = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
    phase = 2 * np.pi * np.cumsum(vibrato) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 4) * t) ** 2
    return (0.2 * tone * envelope).astype(np.float32)


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    """Three 'speakers' (folders) of two utterances each, 16 kHz FLAC."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    for speaker, f0 in (("spk_a", 110.0), ("spk_b", 180.0), ("spk_c", 240.0)):
        (root / speaker).mkdir()
        for index in range(2):
            audio = _voice(rng, f0 * (1 + 0.05 * index), 1.5, 16000)
            sf.write(root / speaker / f"utt{index}.flac", audio, 16000)
    return root


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory):
    """A CSV manifest of bonafide (harmonic) and spoof (harmonic + buzz) files, imbalanced 2:1."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(1)
    rows = []
    for index in range(9):
        label = "spoof" if index % 3 == 0 else "bonafide"
        audio = _voice(rng, rng.uniform(100, 250), 1.0, 16000)
        if label == "spoof":
            audio = audio + 0.05 * np.sign(np.sin(np.arange(audio.size) * 0.9)).astype(np.float32)
        name = f"utt{index}.flac"
        sf.write(root / name, audio, 16000)
        rows.append({"path": name, "label": label, "speaker": f"s{index % 4}", "system": "-"})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


# ------------------------------------------------------------------------ mixtures on the fly
def test_draw_mixture_sums_sources_and_keeps_speakers_apart():
    from amongus.manifest import Utterance

    rng = np.random.default_rng(0)
    pool = [
        LoadedUtterance(
            Utterance(utt_id=f"u{i}", path="-", label="bonafide", speaker=f"s{i % 2}"),
            _voice(rng, 100 + 40 * i, 1.0, 8000),
        )
        for i in range(4)
    ]
    for _ in range(10):
        mixture, sources = ts.draw_mixture(
            pool,
            rng,
            n_src=2,
            n_samples=6000,
            partial_overlap_probability=0.5,
            gain_range_db=5.0,
        )
        assert mixture.shape == (6000,) and sources.shape == (2, 6000)
        np.testing.assert_allclose(sources.sum(0), mixture, atol=1e-6)
        assert 0.09 < np.abs(mixture).max() <= 0.951
        # every source is active on at least half the segment
        assert all(np.count_nonzero(source) >= 3000 for source in sources)


def test_time_budget_expires():
    assert not TimeBudget(None).expired()
    assert TimeBudget(1e-9).expired()
    with pytest.raises(ValueError, match="max_minutes"):
        TimeBudget(0)


# ------------------------------------------------------------------------ separator recipe
def _separator_config(arch, folder, out, **overrides):
    options = dict(
        arch=arch,
        out_dir=str(out),
        train_sources=[f"audio:{folder}"],
        sample_rate=16000 if arch == "convtasnet" else 8000,
        size="tiny",
        segment_seconds=0.5,
        batch_size=2,
        max_steps=2,
        val_every=1,
        n_val_mixtures=2,
        val_seconds=0.5,
        threads=1,
    )
    options.update(overrides)
    return ts.SeparatorTrainingConfig(**options)


def test_convtasnet_recipe_saves_asteroid_package(speech_folder, tmp_path):
    import torch

    from amongus import load_separator

    log = ts.train_separator(
        _separator_config("convtasnet", speech_folder, tmp_path), progress=False
    )
    assert log["steps"] == 2 and log["stop_reason"] == "max_steps"
    package = torch.load(tmp_path / "pytorch_model.bin", weights_only=False)
    assert package["model_name"] == "ConvTasNet"
    assert package["model_args"]["sample_rate"] == 16000
    assert {"state_dict", "infos"} <= set(package)
    separator = load_separator(str(tmp_path))
    assert separator.sample_rate == 16000 and separator.n_src == 2
    streams = separator.separate(torch.randn(1, 4000))
    assert streams.shape == (1, 2, 4000) and torch.isfinite(streams).all()
    # the saved weights are the trained model's
    state = package["state_dict"]
    assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


def test_sepformer_recipe_saves_speechbrain_layout(speech_folder, tmp_path):
    import torch
    import yaml

    from amongus import load_separator

    log = ts.train_separator(
        _separator_config("sepformer", speech_folder, tmp_path), progress=False
    )
    assert log["steps"] == 2
    for name in ("hyperparams.yaml", "encoder.ckpt", "masknet.ckpt", "decoder.ckpt"):
        assert (tmp_path / name).is_file(), name
    text = (tmp_path / "hyperparams.yaml").read_text()
    assert "speechbrain.lobes.models.dual_path.SBTransformerBlock" in text
    assert yaml.safe_load(text.split("# Specifying the network")[0])["sample_rate"] == 8000
    separator = load_separator(str(tmp_path))
    assert separator.sample_rate == 8000
    streams = separator.separate(torch.randn(2, 3000))
    assert streams.shape == (2, 2, 3000) and torch.isfinite(streams).all()


def test_separator_recipe_stops_on_time_budget_and_still_saves(speech_folder, tmp_path):
    from amongus import load_separator

    config = _separator_config("convtasnet", speech_folder, tmp_path, max_minutes=1e-7)
    log = ts.train_separator(config, progress=False)
    assert log["stop_reason"] == "max_minutes" and log["steps"] == 0
    assert load_separator(str(tmp_path)).n_src == 2


def test_separator_recipe_is_seeded(speech_folder, tmp_path):
    import torch

    runs = []
    for name in ("a", "b"):
        config = _separator_config("convtasnet", speech_folder, tmp_path / name, val_every=100)
        ts.train_separator(config, progress=False)
        runs.append(torch.load(tmp_path / name / "pytorch_model.bin", weights_only=False))
    first, second = (run["state_dict"] for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)
    initial = ts.build_separator_model(
        "convtasnet",
        sample_rate=16000,
        n_src=2,
        seed=0,
        model_args=ts.SIZES["convtasnet"]["tiny"],
    ).module.state_dict()
    assert any(not torch.equal(initial[key], first[key]) for key in first), "weights not trained"


def test_separator_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="arch"):
        ts.SeparatorTrainingConfig(
            arch="dprnn", out_dir=str(tmp_path), train_sources=["x"]
        ).validate()
    with pytest.raises(ValueError, match="no training sources"):
        ts.SeparatorTrainingConfig(
            arch="sepformer", out_dir=str(tmp_path), train_sources=[]
        ).validate()


# ------------------------------------------------------------------------ classifier recipe
def test_balanced_batches_even_out_imbalanced_classes():
    from amongus.manifest import Utterance

    items = [
        LoadedUtterance(
            Utterance(utt_id=f"u{i}", path="-", label="spoof" if i < 2 else "bonafide"),
            np.ones(20000, dtype=np.float32),
        )
        for i in range(10)
    ]
    waveforms, labels = tc.BalancedBatches(items, crop_samples=8000, seed=0).draw(8)
    assert labels.count(1) == labels.count(0) == 4
    assert all(w.shape == (8000,) for w in waveforms)
    with pytest.raises(ValueError, match="no 'spoof'"):
        tc.BalancedBatches(items[2:], crop_samples=8000, seed=0)


def test_classifier_recipe_saves_loadable_hf_model(labelled_csv, tmp_path):
    from amongus.classifier import SpoofClassifier

    config = tc.ClassifierTrainingConfig(
        out_dir=str(tmp_path),
        train_sources=[str(labelled_csv)],
        size="tiny",
        crop_seconds=0.5,
        val_seconds=0.5,
        batch_size=4,
        max_steps=2,
        val_every=1,
        threads=1,
    )
    log = tc.train_classifier(config, progress=False)
    assert log["steps"] == 2
    assert log["class_counts"]["bonafide"] > log["class_counts"]["spoof"] > 0
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        assert (tmp_path / name).is_file(), name
    classifier = SpoofClassifier.from_pretrained(tmp_path)
    assert classifier.labels[classifier.spoof_index] == "spoof"
    rng = np.random.default_rng(0)
    scores = classifier.score([_voice(rng, 150, 0.7, 16000), _voice(rng, 200, 1.2, 16000)])
    assert scores.spoof_probability.shape == (2,) and np.isfinite(scores.cm_score).all()


def test_equal_error_rate_monitor():
    assert tc.equal_error_rate(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert tc.equal_error_rate(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0


# ------------------------------------------------------------------------ shipped models
def _shipped(name):
    path = MODELS_DIR / name
    if not path.exists():
        pytest.fail(f"shipped model {path} is missing")
    return path


@pytest.mark.parametrize("name,rate", sorted(SHIPPED_SEPARATORS.items()))
def test_shipped_separator_loads_and_separates(name, rate):
    import torch

    from amongus import load_separator

    separator = load_separator(str(_shipped(name)))
    assert separator.sample_rate == rate and separator.n_src == 2
    mixture = torch.from_numpy(_voice(np.random.default_rng(0), 140, 0.5, rate))[None]
    streams = separator.separate(mixture)
    assert streams.shape == (1, 2, mixture.shape[-1]) and torch.isfinite(streams).all()


@pytest.mark.parametrize("name", SHIPPED_CLASSIFIERS)
def test_shipped_classifier_loads_and_scores(name):
    from amongus.classifier import SpoofClassifier

    classifier = SpoofClassifier.from_pretrained(_shipped(name))
    assert classifier.sample_rate == 16000
    assert classifier.labels[classifier.spoof_index] == "spoof"
    rng = np.random.default_rng(0)
    scores = classifier.score([_voice(rng, 150, 1.0, 16000), _voice(rng, 220, 0.6, 16000)])
    assert scores.logits.shape == (2, 2) and np.isfinite(scores.logits).all()
    assert ((scores.spoof_probability >= 0) & (scores.spoof_probability <= 1)).all()


def test_shipped_models_fit_the_size_budget_and_have_cards():
    total = 0
    for name in (*SHIPPED_SEPARATORS, *SHIPPED_CLASSIFIERS):
        folder = _shipped(name)
        card = (folder / "MODEL_CARD.md").read_text()
        for needed in (
            "python -m amongus",
            "Licen",
            "SI-SDR" if "16k" in name or "8k" in name else "EER",
        ):
            assert needed in card, f"{name}/MODEL_CARD.md lacks {needed!r}"
        total += sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert total / 1e6 <= MAX_SHIPPED_MB


def test_default_pipeline_runs_offline_on_shipped_models():
    from amongus import Pipeline
    from amongus.defaults import default_components

    components = default_components("default")
    assert components["separator"].endswith("convtasnet-16k")
    assert components["classifier"].endswith("aasist")
    rng = np.random.default_rng(0)
    mixture = _voice(rng, 120, 1.0, 16000) + _voice(rng, 230, 1.0, 16000)
    pipeline = Pipeline()
    # the shipped real weights decide at their calibrated threshold, not at 0.5
    assert pipeline.threshold_source.startswith("calibrated: dev-set EER point")
    assert pipeline.spoof_threshold == pipeline.classifier.decision_threshold.spoof_probability
    result = pipeline(mixture, sample_rate=16000)
    assert result.streams.shape == (2, 16000)
    assert np.isfinite(result.cm_score).all() and len(result.predicted_labels) == 2
    assert result.mixture_label in {"SS", "SB", "BB"}
