"""Speaker-level thresholds for conversation verdicts (amongus.conversation.calibrate): the EER
point of a dev evaluation's speakers, refusals, the threshold file, and its use through
Pipeline(spoof_threshold=...) and --spoof-threshold. Synthetic reports; the end-to-end test uses
the tone call of conversation_fixtures (no heavy model)."""

from __future__ import annotations

import argparse
import json

import pytest
from conversation_fixtures import BandEmbedder, ToneClassifier, make_call

from amongus import Pipeline
from amongus.conversation.calibrate import (
    KIND,
    SpeakerThreshold,
    calibrate_speaker_threshold,
    load_spoof_threshold,
    main,
    read_speaker_threshold,
    spoof_threshold_arg,
)
from amongus.metrics import eer

#: The single-utterance threshold of the shipped AASIST, for contrast.
UTTERANCE_THRESHOLD = 0.083


def write_report(folder, speakers, *, speaker_score="mean", kind="conversations"):
    """A conversation evaluation report as python -m amongus.evaluate writes it:
    ``speakers`` is ``[(label, score or None), ...]``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "uri": "call-0",
            "speaker": f"spk{i}",
            "label": label,
            "seconds": 10.0,
            "hypothesis_speaker": None if score is None else f"SPEAKER_{i:02d}",
            "score": score,
            "verdict": None,
            "correct": False,
        }
        for i, (label, score) in enumerate(speakers)
    ]
    report = {
        "kind": kind,
        "metrics": {"speakers": rows, "threshold": UTTERANCE_THRESHOLD},
        "calls": [{"id": "call-0"}],
        "skipped": [],
        "settings": {
            "source": "dev/conversations.jsonl",
            "separator": "convtasnet",
            "classifier": "aasist",
            "speaker_score": speaker_score,
        },
    }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


# Separated streams score high for everyone; the spoofed speakers score higher.
SEPARABLE = [("bonafide", 0.70), ("bonafide", 0.78), ("bonafide", 0.81), ("spoof", 0.93),
             ("spoof", 0.97)]  # fmt: skip


def test_threshold_separates_the_dev_speakers_where_the_utterance_one_fails(tmp_path):
    dev = write_report(tmp_path / "dev", SEPARABLE)
    threshold = calibrate_speaker_threshold(dev)
    verdicts = [score >= threshold.spoof_threshold for _, score in SEPARABLE]
    assert verdicts == [label == "spoof" for label, _ in SEPARABLE]
    # the single-utterance threshold calls every speaker spoof: the failure being fixed
    assert all(score >= UTTERANCE_THRESHOLD for _, score in SEPARABLE)
    assert threshold.dev_eer == 0.0
    assert (threshold.n_bonafide, threshold.n_spoof, threshold.n_missed) == (3, 2, 0)
    # not on a dev score, so a rounded score does not flip
    assert all(threshold.spoof_threshold != score for _, score in SEPARABLE)
    assert (threshold.separator, threshold.classifier) == ("convtasnet", "aasist")
    assert "EER point" in threshold.source and str(dev / "report.json") in threshold.source


def test_threshold_is_the_eer_point_of_overlapping_scores(tmp_path):
    speakers = [("bonafide", 0.6), ("bonafide", 0.9), ("bonafide", 0.7), ("spoof", 0.8),
                ("spoof", 0.95), ("spoof", 0.85), ("bonafide", 0.65), ("spoof", 0.99)]  # fmt: skip
    threshold = calibrate_speaker_threshold(write_report(tmp_path / "dev", speakers))
    bona = [-s for label, s in speakers if label == "bonafide"]
    spoof = [-s for label, s in speakers if label == "spoof"]
    expected, _ = eer(bona, spoof, warn_inverted=False)
    assert threshold.dev_eer == pytest.approx(expected)
    assert threshold.dev_eer > 0
    # at the threshold, misses and false alarms balance as at the EER point
    false_alarm = sum(s >= threshold.spoof_threshold for s in (-b for b in bona)) / len(bona)
    miss = sum(s < threshold.spoof_threshold for s in (-x for x in spoof)) / len(spoof)
    assert false_alarm == pytest.approx(miss)


def test_missed_speakers_are_counted_and_left_out(tmp_path):
    dev = write_report(tmp_path / "dev", [*SEPARABLE, ("spoof", None), ("bonafide", None)])
    threshold = calibrate_speaker_threshold(dev)
    assert threshold.n_missed == 2 and threshold.n_bonafide + threshold.n_spoof == 5


@pytest.mark.parametrize(
    "speakers",
    [
        [("bonafide", 0.7), ("bonafide", 0.9)],
        [("spoof", 0.7), ("spoof", 0.9)],
        [("bonafide", 0.7), ("spoof", None)],  # the only spoofed speaker was missed
    ],
)
def test_one_class_of_speakers_is_refused(tmp_path, speakers):
    dev = write_report(tmp_path / "dev", speakers)
    with pytest.raises(ValueError, match="bonafide and spoofed speakers") as error:
        calibrate_speaker_threshold(dev)
    assert str(dev / "report.json") in str(error.value)


def test_bad_reports_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluation report"):
        calibrate_speaker_threshold(tmp_path / "nowhere")
    mixtures = write_report(tmp_path / "mix", SEPARABLE, kind="mixtures")
    with pytest.raises(ValueError, match="not a conversation evaluation report"):
        calibrate_speaker_threshold(mixtures)
    maxed = write_report(tmp_path / "max", SEPARABLE, speaker_score="max")
    with pytest.raises(ValueError, match="speaker_score='max'"):
        calibrate_speaker_threshold(maxed)
    nan = tmp_path / "nan"
    nan.mkdir()
    (nan / "report.json").write_text(
        json.dumps(
            json.loads((write_report(tmp_path / "x", SEPARABLE) / "report.json").read_text())
            | {"metrics": None}
        )  # fmt: skip
    )
    with pytest.raises(ValueError, match="no metrics"):
        calibrate_speaker_threshold(nan)


def test_command_line_writes_a_threshold_file_that_reads_back(tmp_path, capsys):
    dev = write_report(tmp_path / "dev", SEPARABLE)
    out = tmp_path / "threshold.json"
    assert main([str(dev), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == KIND and "calibrate" in data["command"]
    again = read_speaker_threshold(out)
    assert again == calibrate_speaker_threshold(dev, command=data["command"])
    assert "written to" in capsys.readouterr().out
    one_class = write_report(tmp_path / "one", [("bonafide", 0.5), ("bonafide", 0.6)])
    assert main([str(one_class), "--out", str(tmp_path / "t2.json")]) == 2
    assert str(one_class / "report.json") in capsys.readouterr().err
    assert not (tmp_path / "t2.json").exists()


def test_invalid_threshold_files_are_refused(tmp_path):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": KIND, "spoof_threshold": 1.5, "source": "x"}))
    with pytest.raises(ValueError, match="wrong.json"):
        read_speaker_threshold(wrong)
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"cm_score": -1.0, "source": "x"}))
    with pytest.raises(ValueError, match="not a conversation speaker threshold"):
        read_speaker_threshold(other)
    with pytest.raises(FileNotFoundError):
        load_spoof_threshold(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="wrong.json"):
        Pipeline(separator="oracle", classifier=ToneClassifier(), spoof_threshold=str(wrong))


def test_spoof_threshold_argument(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{}")
    assert spoof_threshold_arg("0.9") == 0.9
    assert spoof_threshold_arg(str(path)) == str(path)
    for bad in ("1.5", "nan", str(tmp_path / "missing.json")):
        with pytest.raises(argparse.ArgumentTypeError):
            spoof_threshold_arg(bad)
    from amongus.conversation.__main__ import build_parser
    from amongus.evaluate import build_parser as evaluate_parser

    assert build_parser().parse_args(["x.flac", "--spoof-threshold", str(path)]).threshold == str(
        path
    )
    assert build_parser().parse_args(["x.flac", "--threshold", "0.7"]).threshold == 0.7
    assert evaluate_parser().parse_args(["m.jsonl", "--spoof-threshold", "0.7"]).threshold == 0.7


def test_pipeline_uses_a_dev_calibrated_threshold_end_to_end(tmp_path):
    from amongus.conversation.evaluate import evaluate_conversations

    manifest, record = make_call(tmp_path / "dev-calls")
    dev_pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    evaluate_conversations(
        dev_pipeline, manifest, tmp_path / "dev-eval", embedder=BandEmbedder(), progress=False,
        plots=False,
    )  # fmt: skip
    out = tmp_path / "threshold.json"
    assert main([str(tmp_path / "dev-eval"), "--out", str(out)]) == 0
    stored = read_speaker_threshold(out)
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier(), spoof_threshold=str(out))
    assert pipeline.spoof_threshold == stored.spoof_threshold
    assert pipeline.threshold_source.startswith("calibrated on dev calls")
    same = Pipeline(separator="oracle", classifier=ToneClassifier(), spoof_threshold=stored)
    assert same.threshold_source == pipeline.threshold_source
    evaluation = evaluate_conversations(
        pipeline, manifest, tmp_path / "eval", embedder=BandEmbedder(), progress=False,
        plots=False,
    )  # fmt: skip
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["settings"]["threshold_source"] == pipeline.threshold_source
    assert report["metrics"]["threshold"] == stored.spoof_threshold
    assert evaluation.metrics.speaker_accuracy == 1.0
    saved = json.loads(next((tmp_path / "eval" / "calls").glob("*.json")).read_text())
    assert saved["threshold_source"] == pipeline.threshold_source


def test_a_speaker_threshold_must_be_a_probability():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SpeakerThreshold(spoof_threshold=-0.1, source="x")
    with pytest.raises(ValueError, match="source"):
        SpeakerThreshold(spoof_threshold=0.5, source="")
