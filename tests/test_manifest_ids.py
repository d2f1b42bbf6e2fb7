"""Ids are keys: every reader and writer of records refuses a repeated id, naming both places,
and ids written to whitespace-separated files round-trip (issue 12, cases 6 and 8)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from test_pipeline import BONAFIDE_HZ, RATE, SPOOF_HZ, ToneClassifier, tone  # noqa: E402

from amongus.audio import save_audio  # noqa: E402
from amongus.corpora import load_utterances  # noqa: E402
from amongus.evaluate import evaluate_utterances, main  # noqa: E402
from amongus.manifest import (  # noqa: E402
    DuplicateIdError,
    Mixture,
    MixtureSource,
    Utterance,
    check_unique_ids,
    count_records,
    read_jsonl,
    read_mixtures,
    read_utterances,
    write_jsonl,
)
from amongus.metrics import read_asvspoof_scores  # noqa: E402
from amongus.mix.thesis import read_thesis_metadata, write_thesis_metadata  # noqa: E402
from amongus.pipeline import Pipeline  # noqa: E402


def _mixture(mixture_id: str, first: str = "u1", second: str = "u2") -> Mixture:
    return Mixture(
        mixture_id=mixture_id,
        path=f"audio/{mixture_id}.flac",
        sample_rate=RATE,
        sources=[
            MixtureSource(utt_id=first, path=f"{first}.flac", label="spoof"),
            MixtureSource(utt_id=second, path=f"{second}.flac", label="bonafide"),
        ],
    )


def _lines(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


# ------------------------------------------------------------------ readers
def test_jsonl_utterance_manifest_with_a_repeated_id_is_refused(tmp_path):
    # Repro F6: U1 twice, with conflicting labels, was accepted and scored twice.
    save_audio(tmp_path / "a.wav", tone(BONAFIDE_HZ, 0.5, 0), RATE)
    save_audio(tmp_path / "b.wav", tone(SPOOF_HZ, 0.5, 1), RATE)
    manifest = tmp_path / "utts.jsonl"
    _lines(
        manifest,
        [
            {"utt_id": "U1", "path": "a.wav", "label": "bonafide"},
            {"utt_id": "U2", "path": "b.wav", "label": "spoof"},
            {"utt_id": "U1", "path": "b.wav", "label": "spoof"},
        ],
    )
    where = r"'U1': .*utts\.jsonl:1 and .*utts\.jsonl:3"
    with pytest.raises(DuplicateIdError, match=where) as caught:
        read_utterances(manifest)
    assert (caught.value.id, caught.value.what) == ("U1", "utterance id")
    with pytest.raises(DuplicateIdError, match=where):
        load_utterances(manifest)
    with pytest.raises(DuplicateIdError, match=where):
        list(read_jsonl(manifest))


def test_mixture_manifest_with_a_repeated_id_is_refused(tmp_path):
    manifest = tmp_path / "mixtures.jsonl"
    records = [_mixture("m1").to_dict(), _mixture("m2").to_dict(), _mixture("m1", "u3").to_dict()]
    _lines(manifest, records)
    with pytest.raises(DuplicateIdError, match=r"mixture id 'm1': .*:1 and .*:3"):
        read_mixtures(manifest)
    with pytest.raises(DuplicateIdError):
        count_records(manifest)


def test_pipeline_evaluate_refuses_repeated_mixture_ids_before_scoring(tmp_path):
    manifest = tmp_path / "mixtures.jsonl"
    _lines(manifest, [_mixture("m1").to_dict(), _mixture("m1", "u3").to_dict()])
    classifier = ToneClassifier()
    pipeline = Pipeline(separator="passthrough", classifier=classifier)
    with pytest.raises(DuplicateIdError, match="'m1'"):
        pipeline.evaluate(manifest, progress=False)
    with pytest.raises(DuplicateIdError, match="'m1'"):
        pipeline.evaluate([_mixture("m1"), _mixture("m1", "u3")], progress=False)
    assert classifier.n_scored == 0  # refused before any audio was scored


def test_utterance_and_mixture_ids_are_separate_namespaces(tmp_path):
    records = [_mixture("x"), Utterance(utt_id="x", path="x.wav", label="spoof")]
    path = write_jsonl(tmp_path / "both.jsonl", records)
    assert [type(record) for record in read_jsonl(path)] == [Mixture, Utterance]
    check_unique_ids(records)


# ------------------------------------------------------------------ writers
def test_writers_refuse_repeated_ids_and_write_nothing(tmp_path):
    utterances = [
        Utterance(utt_id="U1", path="a.wav", label="bonafide"),
        Utterance(utt_id="U1", path="b.wav", label="spoof"),
    ]
    with pytest.raises(DuplicateIdError, match=r"'U1': .*record 1 and .*record 2"):
        write_jsonl(tmp_path / "utts.jsonl", utterances)
    with pytest.raises(DuplicateIdError, match="mixture id 'm'"):
        write_jsonl(tmp_path / "mixtures.jsonl", [_mixture("m"), _mixture("m", "u3")])
    assert not list(tmp_path.iterdir())


def test_thesis_metadata_ids_round_trip_and_repeats_are_refused(tmp_path):
    path = write_thesis_metadata(
        tmp_path / "metadata.txt", [_mixture("a b_c", "a b", "c"), _mixture("a_b_c", "a_b", "c")]
    )
    rows = read_thesis_metadata(path)
    assert [row["mixture"] for row in rows] == ["a b_c", "a_b_c"]
    assert [row["utterances"] for row in rows] == [["a b", "c"], ["a_b", "c"]]
    path.write_text("m1 u1 spoof u2 bonafide SB\nm1 u3 spoof u4 spoof SS\n", encoding="utf-8")
    with pytest.raises(DuplicateIdError, match=r"'m1': .*metadata\.txt:1 and .*metadata\.txt:2"):
        read_thesis_metadata(path)


# ------------------------------------------------------------------ evaluation
@pytest.fixture()
def spaced_folder(tmp_path):
    """Repro F1: ``real/a b.wav`` and ``real/a_b.wav`` (one id each), two spoofs."""
    root = tmp_path / "corpus"
    for index, name in enumerate(("real/a b.wav", "real/a_b.wav")):
        save_audio(root / name, tone(BONAFIDE_HZ, 0.5, index), RATE)
    for index, name in enumerate(("fake/sys/c.wav", "fake/sys/d.wav")):
        save_audio(root / name, tone(SPOOF_HZ, 0.5, index + 2), RATE)
    return root


def test_score_file_keeps_ids_that_differ_only_by_space_and_underscore(spaced_folder, tmp_path):
    report = evaluate_utterances(ToneClassifier(), spaced_folder, progress=False)
    report.save(tmp_path / "out", plots=False)
    lines = (tmp_path / "out" / "scores_asvspoof.txt").read_text(encoding="utf-8").splitlines()
    written = [line.split()[0] for line in lines]
    assert len(written) == len(set(written)) == 4  # was: 'real/a_b' twice
    scores = read_asvspoof_scores(tmp_path / "out" / "scores_asvspoof.txt")
    assert sorted(scores.utt_ids) == sorted(row["utt_id"] for row in report.stream_rows)
    assert "real/a b" in scores.utt_ids and "real/a_b" in scores.utt_ids
    by_id = dict(zip(scores.utt_ids, scores.cm_scores, strict=True))
    for row in report.stream_rows:  # each score still belongs to its own utterance
        assert by_id[row["utt_id"]] == row["cm_score"]


def test_evaluate_utterances_refuses_repeated_ids_before_scoring(tmp_path):
    audio = save_audio(tmp_path / "a.wav", tone(BONAFIDE_HZ, 0.5, 0), RATE)
    utterances = [
        Utterance(utt_id="U1", path=str(audio), label="bonafide"),
        Utterance(utt_id="U1", path=str(audio), label="spoof"),
    ]
    classifier = ToneClassifier()
    with pytest.raises(DuplicateIdError, match="'U1'"):
        evaluate_utterances(classifier, utterances, progress=False)
    assert classifier.n_scored == 0


def test_evaluate_cli_names_the_repeated_id(tmp_path, capsys, monkeypatch):
    import amongus.pipeline

    save_audio(tmp_path / "a.wav", tone(BONAFIDE_HZ, 0.5, 0), RATE)
    manifest = tmp_path / "utts.jsonl"
    _lines(
        manifest,
        [
            {"utt_id": "U1", "path": "a.wav", "label": "bonafide"},
            {"utt_id": "U1", "path": "a.wav", "label": "spoof"},
        ],
    )
    monkeypatch.setattr(amongus.pipeline, "load_classifier", lambda spec, **_: ToneClassifier())
    code = main(["--single", str(manifest), "--classifier", "x", "--out", str(tmp_path / "ev")])
    assert code == 2
    assert "duplicate utterance id 'U1'" in capsys.readouterr().err
    assert not (tmp_path / "ev" / "scores_asvspoof.txt").exists()


def test_report_writer_refuses_rows_with_repeated_ids(tmp_path):
    from amongus.results import EvaluationReport

    row = {
        "mixture_id": None,
        "utt_id": "U1",
        "true_label": "bonafide",
        "predicted_label": "bonafide",
        "spoof_probability": 0.1,
        "cm_score": 2.0,
        "system": "-",
    }
    rows = [row, dict(row, true_label="spoof", cm_score=-1.0)]
    report = EvaluationReport("utterances", [], rows, [], classifier="c")
    with pytest.raises(DuplicateIdError, match="'U1'"):
        report.write_scores(tmp_path)
    assert np.isfinite(report.metrics["streams"]["eer"])
