"""The speaker-embedding recipe (resumable, published layout, card) and the verification
measures it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amongus.speakers.verification import (
    clustering_accuracy,
    mapped_accuracy,
    trial_scores,
    verification_eer,
)


def _clustered(n_speakers: int, per_speaker: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_speakers, 16))
    speakers = [f"s{i}" for i in range(n_speakers) for _ in range(per_speaker)]
    rows = np.repeat(centres, per_speaker, axis=0)
    return rows + spread * rng.standard_normal(rows.shape), speakers


def test_trial_scores_split_target_and_nontarget_pairs():
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    target, nontarget = trial_scores(embeddings, ["a", "a", "b"])
    assert target.tolist() == [1.0]
    assert sorted(nontarget.tolist()) == [0.0, 0.0]
    with pytest.raises(ValueError, match="two utterances of one speaker"):
        trial_scores(embeddings, ["a", "b", "c"])


def test_eer_and_clustering_tell_separable_from_random_speakers():
    separable, speakers = _clustered(6, 5, spread=0.1)
    assert verification_eer(separable, speakers)["eer"] == 0.0
    report = clustering_accuracy(separable, speakers, draws=20, threshold=0.5)
    assert all(entry["accuracy_known_k"] == 1.0 for entry in report.values())
    assert set(report) == {"k=2", "k=3", "k=4"}
    noise = np.random.default_rng(1).standard_normal(separable.shape)
    assert verification_eer(noise, speakers)["eer"] > 0.3
    random_report = clustering_accuracy(noise, speakers, draws=20, threshold=0.5)
    assert random_report["k=4"]["accuracy_known_k"] < 0.8


def test_mapped_accuracy_uses_the_best_one_to_one_mapping():
    assert mapped_accuracy(["a", "a", "b", "b"], [1, 1, 0, 0]) == 1.0
    assert mapped_accuracy(["a", "a", "b", "b"], [0, 0, 0, 0]) == 0.5
    assert mapped_accuracy(["a", "a", "a", "b"], [0, 0, 1, 1]) == 0.75
    assert mapped_accuracy(["a", "a", "a", "b"], [0, 1, 1, 1]) == 0.5  # one cluster per speaker


def test_recipe_trains_resumes_and_writes_a_loadable_model(tmp_path, caplog):
    """A few steps of a tiny model on whatever real speech is installed."""
    from amongus.recipes import train_speaker_embedding as recipe
    from amongus.speakers import load_speaker_embedder

    out = tmp_path / "run"
    arguments = [
        "--out", str(out), "--max-per-speaker", "10", "--batch-size", "4",
        "--channels", "16,16,16,16,48", "--lin-neurons", "12", "--test-speakers", "3",
    ]  # fmt: skip
    try:
        recipe.main([*arguments, "--steps", "2"])
    except ValueError as error:
        if "no real speech found" in str(error):
            pytest.skip("neither the apt recordings nor ../shared/data/real are here")
        raise
    model = out / "model"
    first = json.loads((model / "verification.json").read_text())
    assert first["training"]["steps"] == 2
    embedder = load_speaker_embedder(model)
    assert embedder.embedding_dim == 12
    assert embedder.verification_threshold == first["threshold"]
    card = (model / "MODEL_CARD.md").read_text()
    assert "EER" in card and str(out) not in card
    for name in ("embedding_model.ckpt", "classifier.ckpt", "mean_var_norm_emb.ckpt"):
        assert (model / name).is_file()
    labels = (model / "label_encoder.txt").read_text()
    assert "@speed0.9" in labels and "@speed1.1" in labels
    caplog.clear()
    with caplog.at_level("INFO"):
        recipe.main([*arguments, "--steps", "4"])
    assert any("resumed at step 2" in message for message in caplog.messages)
    assert json.loads((model / "verification.json").read_text())["training"]["steps"] == 4
    with pytest.raises(ValueError, match="other settings"):
        recipe.main([*arguments, "--steps", "4", "--lr", "0.5"])
