"""python -m amongus.evaluate and single-stream (no separator) evaluation."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mixture_fixtures import write_tone_mixtures  # noqa: E402
from test_pipeline import BONAFIDE_HZ, RATE, SPOOF_HZ, ToneClassifier, tone  # noqa: E402

from amongus.audio import save_audio  # noqa: E402
from amongus.evaluate import cross_dataset_table, evaluate_utterances, main  # noqa: E402
from amongus.manifest import Utterance, read_mixtures  # noqa: E402
from amongus.metrics import read_asvspoof_scores  # noqa: E402


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from amongus.testing.classifiers import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("classifier") / "tiny")


@pytest.fixture(scope="module")
def real_fake_folder(tmp_path_factory):
    """``real/*.wav`` and ``fake/<system>/*.wav`` with tones, plus one unreadable file."""
    root = tmp_path_factory.mktemp("folder_corpus")
    for index in range(4):
        save_audio(root / "real" / f"r{index}.wav", tone(BONAFIDE_HZ, 0.6, index), RATE)
    for index in range(3):
        system = "sysA" if index < 2 else "sysB"
        save_audio(root / "fake" / system / f"f{index}.wav", tone(SPOOF_HZ, 0.6, index), RATE)
    (root / "fake" / "sysB" / "broken.wav").write_bytes(b"not audio")
    return root


def test_evaluate_utterances_on_a_real_fake_folder(real_fake_folder, tmp_path):
    report = evaluate_utterances(ToneClassifier(), real_fake_folder, progress=False, batch_size=3)
    assert report.kind == "utterances"
    assert report.n_evaluated == 7 and report.n_skipped == 1
    assert "broken" in report.skipped[0]["path"]
    streams = report.metrics["streams"]
    assert (streams["n_bonafide"], streams["n_spoof"]) == (4, 3)
    assert streams["eer"] == 0.0 and streams["auc"] == 1.0 and streams["accuracy"] == 1.0
    assert set(report.metrics["eer_by_system"]) == {"sysA", "sysB"}
    assert report.metrics["eer_by_system"]["sysA"]["n_spoof"] == 2
    report.save(tmp_path)
    scores = read_asvspoof_scores(tmp_path / "scores_asvspoof.txt")
    assert len(scores) == 7 and scores.labels.count("spoof") == 3
    assert sorted(set(scores.systems)) == ["-", "sysA", "sysB"]
    assert (tmp_path / "roc_streams.png").exists() and (tmp_path / "det_streams.png").exists()
    assert not (tmp_path / "mixtures.csv").exists()
    assert "per utterance: n 7 (spoof 3)" in str(report)


def test_evaluate_utterances_counts_files_that_fail_to_load(tmp_path):
    good = save_audio(tmp_path / "good.wav", tone(SPOOF_HZ, 0.5, 1), RATE)
    utterances = [
        Utterance(utt_id="good", path=str(good), label="spoof"),
        Utterance(utt_id="gone", path=str(tmp_path / "gone.wav"), label="bonafide"),
    ]
    report = evaluate_utterances(ToneClassifier(), utterances, progress=False)
    assert report.n_evaluated == 1 and report.n_inputs == 2
    assert report.skipped == [
        {"id": "gone", "path": str(tmp_path / "gone.wav"), "reason": "missing: file not found"}
    ]
    assert report.metrics["streams"]["eer"] is None  # one class only: undefined, not invented


def test_single_cli_on_the_demo_corpus_and_cross_dataset(
    tiny_classifier, real_fake_folder, tmp_path, capsys
):
    try:
        from amongus.corpora.demo import demo_corpus_root, demo_utterances

        demo_root = demo_corpus_root()
        demo = demo_utterances("eval")
    except (FileNotFoundError, ImportError, ValueError) as error:
        pytest.skip(f"bundled demo corpus not available: {error}")
    out = tmp_path / "cross"
    code = main(
        [
            "--single",
            str(demo_root),
            str(real_fake_folder),
            "--split",
            "eval",
            "--classifier",
            str(tiny_classifier),
            "--limit",
            "8",
            "--out",
            str(out),
            "--quiet",
            "--no-plots",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "EER %" in printed and str(real_fake_folder) in printed
    first = json.loads((out / f"00_{demo_root.name}" / "report.json").read_text())
    assert first["counts"]["evaluated"] == 8 and first["kind"] == "utterances"
    expected_spoof = sum(u.label == "spoof" for u in demo[:8])
    assert first["metrics"]["streams"]["n_spoof"] == expected_spoof
    scores = read_asvspoof_scores(out / f"00_{demo_root.name}" / "scores_asvspoof.txt")
    assert scores.utt_ids == [u.utt_id for u in demo[:8]]
    # the folder corpus has no "eval" split folders, so --split eval keeps nothing from it
    second = json.loads((out / f"01_{real_fake_folder.name}" / "report.json").read_text())
    assert second["counts"]["evaluated"] == 0


def test_cross_dataset_table_lists_each_corpus(real_fake_folder):
    report = evaluate_utterances(ToneClassifier(), real_fake_folder, progress=False)
    table = cross_dataset_table({"train-corpus": report, "other": report})
    lines = table.splitlines()
    assert lines[0].split() == ["corpus", "n", "EER", "%", "minDCF", "actDCF", "AUC", "acc"]
    expected = ["train-corpus", "7", "0.00", "0.000", "0.000", "1.000", "1.000"]
    assert len(lines) == 3 and lines[1].split() == expected


@pytest.fixture(scope="module")
def mixtures_dir(tmp_path_factory):
    return write_tone_mixtures(
        tmp_path_factory.mktemp("cli_mix"),
        n_utterances=6,
        n_mixtures=4,
        seed=1,
        audio=lambda index, spoof: tone(SPOOF_HZ if spoof else BONAFIDE_HZ, 1.0, index),
        rate=RATE,
    )


@pytest.mark.parametrize("assignment", ["signal", "labels", "none"])
def test_mixture_cli_writes_the_report(tiny_classifier, mixtures_dir, tmp_path, capsys, assignment):
    out = tmp_path / "report"
    code = main(
        [
            str(mixtures_dir / "mixtures.jsonl"),
            "--separator",
            "oracle",
            "--classifier",
            str(tiny_classifier),
            "--assignment",
            assignment,
            "--batch-size",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    expected_line = {
        "signal": "assignment: signal",
        "labels": "assignment: labels (study's method, optimistic)",
        "none": "assignment: none (mixture-level outputs only)",
    }[assignment]
    assert expected_line in printed
    data = json.loads((out / "report.json").read_text())
    mixtures = read_mixtures(mixtures_dir / "mixtures.jsonl")
    assert data["counts"]["evaluated"] == len(mixtures) == 4
    assert data["assignment"] == (None if assignment == "none" else assignment)
    assert data["metrics"]["composition"]["n"] == 4
    assert (data["metrics"]["streams"] is None) == (assignment == "none")
    mixture_rows = (out / "mixtures.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in mixture_rows] == [m.mixture_id for m in mixtures]
    assert [row.split(",")[2] for row in mixture_rows] == [m.label for m in mixtures]
    score_lines = (out / "scores_asvspoof.txt").read_text().splitlines()
    assert len(score_lines) == (0 if assignment == "none" else 8)
    assert (out / "confusion_composition.png").exists()
    present = (out / "scores_spoof_present.txt").read_text().splitlines()
    assert [line.split()[2] for line in present] == [
        "spoof" if m.n_spoofed else "bonafide" for m in mixtures
    ]
    values = np.array([float(line.split()[3]) for line in present])
    assert np.all(np.isfinite(values))


def test_cli_reports_a_missing_manifest(tmp_path, capsys):
    code = main([str(tmp_path / "nothing"), "--separator", "oracle", "--classifier", "x"])
    assert code == 2
    assert "error:" in capsys.readouterr().err
