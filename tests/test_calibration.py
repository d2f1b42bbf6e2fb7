"""Calibrated decision thresholds: stored with the classifier, used by default, overridable,
reported with their source (amongus.classifiers.threshold)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from amongus.checkpoints import CheckpointError
from amongus.classifier import StreamScores
from amongus.classifiers import load_classifier
from amongus.classifiers.threshold import (
    UNCALIBRATED_SOURCE,
    DecisionThreshold,
    cm_to_spoof_probability,
    eer_threshold,
    read_decision_threshold,
    resolve_spoof_threshold,
    weights_digest,
    write_decision_threshold,
)
from amongus.evaluate import evaluate_utterances
from amongus.manifest import Utterance
from amongus.pipeline import Pipeline
from amongus.testing.classifiers import build_tiny_classifier
from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

RATE = 16000


def _threshold(folder: Path, cm_score: float) -> DecisionThreshold:
    return DecisionThreshold(
        cm_score=cm_score,
        source="test calibration",
        data="a test",
        dev_eer=0.1,
        n_bonafide=2,
        n_spoof=2,
        weights_sha256=weights_digest(folder),
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    return {
        "aasist": write_tiny_aasist_checkpoint(root / "aasist", layout="amongus"),
        "hf": build_tiny_classifier(root / "hf"),
    }


@pytest.fixture()
def calibrated(folders, tmp_path):
    """Copies of the tiny folders with a stored threshold of cm_score <= 0.7."""
    copies = {}
    for family, folder in folders.items():
        copy = Path(shutil.copytree(folder, tmp_path / family))
        write_decision_threshold(copy, _threshold(copy, 0.7))
        copies[family] = copy
    return copies


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("utts")
    rng = np.random.default_rng(0)
    items = []
    for index in range(4):
        path = root / f"u{index}.wav"
        sf.write(path, 0.1 * rng.standard_normal(RATE // 2).astype(np.float32), RATE)
        label = "spoof" if index % 2 else "bonafide"
        items.append(Utterance(f"u{index}", str(path), label, speaker=f"s{index}"))
    return items


def test_the_cut_on_cm_score_and_on_spoof_probability_is_the_same():
    scores = StreamScores.from_logits(np.array([[0.0, 3.0], [2.0, 0.1], [1.0, 1.0]]), 1)
    for threshold in (-2.9, -1.0, 0.0, 1.9, 2.5):
        by_probability = scores.spoof_probability >= cm_to_spoof_probability(threshold)
        assert (by_probability == (scores.cm_score <= threshold)).all()


def test_eer_threshold_reproduces_the_eer_point_and_sits_between_scores():
    rng = np.random.default_rng(1)
    bonafide, spoof = rng.normal(1.0, 1.0, 40), rng.normal(-1.0, 1.0, 30)
    scores = np.concatenate((bonafide, spoof))
    labels = ["bonafide"] * 40 + ["spoof"] * 30
    threshold, value = eer_threshold(scores, labels)
    frr = np.mean(bonafide <= threshold)
    far = np.mean(spoof > threshold)
    assert value == pytest.approx((frr + far) / 2)
    assert not np.isclose(scores, threshold).any()
    with pytest.raises(ValueError, match="both classes"):
        eer_threshold([0.1, 0.2], ["spoof", "spoof"])


@pytest.mark.parametrize("family", ["aasist", "hf"])
def test_the_stored_threshold_is_read_from_the_folder_for_every_family(calibrated, family):
    classifier = load_classifier(str(calibrated[family]))
    assert classifier.decision_threshold.cm_score == 0.7
    value, source = resolve_spoof_threshold(classifier, None)
    assert value == pytest.approx(1 / (1 + math.exp(0.7)))
    assert source.startswith("calibrated: test calibration")
    entry = json.loads((calibrated[family] / "config.json").read_text())["amongus"]
    assert entry["decision_threshold"]["spoof_probability"] == pytest.approx(value)


def test_writing_keeps_every_other_config_entry(folders, tmp_path):
    copy = Path(shutil.copytree(folders["hf"], tmp_path / "hf"))
    before = json.loads((copy / "config.json").read_text())
    write_decision_threshold(copy, _threshold(copy, -1.0))
    after = json.loads((copy / "config.json").read_text())
    assert {k: v for k, v in after.items() if k != "amongus"} == before
    assert read_decision_threshold(copy).cm_score == -1.0


def test_a_folder_without_a_threshold_falls_back_to_the_uncalibrated_default(folders):
    classifier = load_classifier(str(folders["aasist"]))
    assert classifier.decision_threshold is None
    assert resolve_spoof_threshold(classifier, None) == (0.5, UNCALIBRATED_SOURCE)
    assert "uncalibrated default" in UNCALIBRATED_SOURCE


def test_a_threshold_for_other_weights_is_ignored(calibrated, caplog):
    folder = calibrated["aasist"]
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    name = next(key for key in state if key.endswith("weight"))
    state[name] = state[name] + 0.01  # a fine-tuned copy: parent's config.json, new weights
    save_file(state, str(folder / "model.safetensors"))
    with caplog.at_level("WARNING"):
        classifier = load_classifier(str(folder))
    assert classifier.decision_threshold is None
    assert "calibrated for other weights" in caplog.text


def test_a_malformed_entry_is_a_clear_error(folders, tmp_path):
    copy = Path(shutil.copytree(folders["aasist"], tmp_path / "bad"))
    config = json.loads((copy / "config.json").read_text())
    config["amongus"] = {"decision_threshold": {"cm_score": "high", "source": "x"}}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json: invalid amongus.decision_threshold"):
        load_classifier(str(copy))


def test_pipeline_uses_the_stored_threshold_and_an_override_wins(calibrated):
    pipeline = Pipeline(separator="passthrough", classifier=str(calibrated["aasist"]))
    assert pipeline.spoof_threshold == pytest.approx(cm_to_spoof_probability(0.7))
    assert pipeline.threshold_source.startswith("calibrated: test calibration")
    audio = 0.1 * np.random.default_rng(0).standard_normal(RATE).astype(np.float32)
    result = pipeline(audio, sample_rate=RATE)
    assert result.spoof_threshold == pipeline.spoof_threshold
    assert result.threshold_source == pipeline.threshold_source
    expected = ["spoof" if c <= 0.7 else "bonafide" for c in result.cm_score]
    assert result.predicted_labels == expected

    override = Pipeline(
        separator="passthrough", classifier=pipeline.classifier, spoof_threshold=0.25
    )
    assert override.spoof_threshold == 0.25
    assert override.threshold_source == "given by the caller (spoof_threshold=0.25)"
    with pytest.raises(ValueError, match=r"spoof_threshold must be in \[0, 1\]"):
        Pipeline(separator="passthrough", classifier=pipeline.classifier, spoof_threshold=2.0)


def test_single_evaluation_reports_the_threshold_and_its_source(calibrated, utterances, tmp_path):
    report = evaluate_utterances(str(calibrated["hf"]), utterances, progress=False)
    assert report.spoof_threshold == pytest.approx(cm_to_spoof_probability(0.7))
    assert report.decision["source"].startswith("calibrated: test calibration")
    for row in report.stream_rows:
        assert row["predicted_label"] == ("spoof" if row["cm_score"] <= 0.7 else "bonafide")
    report.save(tmp_path / "report", plots=False)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["decision"]["source"] == report.decision["source"]
    assert "calibrated: test calibration" in (tmp_path / "report" / "report.txt").read_text()

    override = evaluate_utterances(
        str(calibrated["hf"]), utterances, progress=False, spoof_threshold=0.0
    )
    assert override.decision["source"] == "given by the caller (spoof_threshold=0)"
    assert {row["predicted_label"] for row in override.stream_rows} == {"spoof"}


def test_evaluate_cli_uses_the_calibrated_threshold_unless_told(calibrated, utterances, tmp_path):
    from amongus.evaluate import main

    manifest = tmp_path / "utts.jsonl"
    manifest.write_text("".join(json.dumps(u.to_dict()) + "\n" for u in utterances))
    folder = str(calibrated["hf"])
    assert main([str(manifest), "--single", "--classifier", folder, "--out", str(tmp_path / "a"),
                 "--quiet", "--no-plots"]) == 0  # fmt: skip
    saved = json.loads((tmp_path / "a" / "report.json").read_text())
    assert saved["decision"]["source"].startswith("calibrated: test calibration")
    assert main([str(manifest), "--single", "--classifier", folder, "--out", str(tmp_path / "b"),
                 "--quiet", "--no-plots", "--threshold", "0.9"]) == 0  # fmt: skip
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved["spoof_threshold"] == 0.9
    assert saved["decision"]["source"] == "given by the caller (spoof_threshold=0.9)"


def test_an_instance_without_a_threshold_decides_at_one_half(utterances):
    class Constant:
        sample_rate = RATE
        identity = "constant"

        def score(self, waveforms, *, sample_rate=None, lengths=None, batch_size=8,
                  progress=False):  # fmt: skip
            return StreamScores.from_logits(np.tile([0.0, 0.1], (len(waveforms), 1)), 1)

    report = evaluate_utterances(Constant(), utterances, progress=False)
    assert report.spoof_threshold == 0.5
    assert report.decision["source"] == UNCALIBRATED_SOURCE


def test_shipped_classifiers_store_a_threshold_for_their_weights():
    from amongus.defaults import MODELS_DIR, SHIPPED_CLASSIFIERS

    for name, folder in SHIPPED_CLASSIFIERS.items():
        path = MODELS_DIR / folder
        if not path.is_dir():
            continue
        threshold = read_decision_threshold(path)
        assert threshold is not None, f"{name}: no calibrated decision threshold"
        assert threshold.weights_sha256 == weights_digest(path), name
        assert threshold.dev_eer is not None and threshold.n_bonafide and threshold.n_spoof
        assert "/work/" not in json.dumps(threshold.to_dict())
