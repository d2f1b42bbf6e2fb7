"""Long recordings end to end: a simulated 3-speaker call (one deepfake) through
Pipeline.analyze, its JSON/RTTM/plot outputs, evaluate on a conversation manifest, the
command lines and their errors, and the memory bound (the separator only sees windows)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conversation_fixtures import RATE, BandEmbedder, ToneClassifier, make_call

from amongus import Pipeline
from amongus.conversation import AnalysisSettings, ConversationResult
from amongus.metrics_conversation import evaluate_conversation
from amongus.mix.conversation_render import render_speaker
from amongus.rttm import read_rttm
from amongus.separation.base import SeparatorBase
from amongus.separation.oracle import OracleSeparator
from amongus.validation import InvalidAudioError

WINDOW = 6.0


class SpyOracle(OracleSeparator):
    """The oracle, recording the longest input it was given (samples) and its calls."""

    def __init__(self):
        super().__init__(n_src=None)
        self.longest = 0
        self.calls = 0

    def _separate(self, mixture, lengths, references):
        self.longest = max(self.longest, int(mixture.shape[-1]))
        self.calls += 1
        return super()._separate(mixture, lengths, references)


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    root = tmp_path_factory.mktemp("call")
    manifest, record = make_call(root)
    audio = manifest.parent / record.path
    references = np.stack([render_speaker(record, s.name) for s in record.speakers])
    return manifest, record, audio, references


@pytest.fixture(scope="module")
def analysed(call):
    manifest, record, audio, references = call
    spy = SpyOracle()
    pipeline = Pipeline(separator=spy, classifier=ToneClassifier())
    result = pipeline.analyze(audio, embedder=BandEmbedder(), references=references, progress=False)
    return pipeline, spy, result


def test_analysis_finds_the_speakers_and_the_deepfake(call, analysed):
    manifest, record, _, _ = call
    pipeline, _, result = analysed
    assert isinstance(result, ConversationResult)
    assert result.recording_id == record.conversation_id
    assert len(result.speakers) == len(record.speakers) == 3
    verdicts = sorted(s.verdict for s in result.speakers)
    assert verdicts == ["bonafide", "bonafide", "spoof"]
    reference = read_rttm(manifest.parent / record.rttm)
    report = evaluate_conversation(reference, result.to_segments(), threshold=0.5)
    assert report.diarization.der < 0.05
    assert report.spoof_time.error < 0.05
    assert report.speaker_accuracy == 1.0
    # the spoofed reference speaker is the one judged spoof
    spoofed = {r.hypothesis_speaker for r in report.speakers if r.label == "spoof"}
    assert spoofed == {s.speaker for s in result.spoofed_speakers}


def test_speaker_scores_are_the_duration_weighted_mean_of_their_segments(analysed):
    _, _, result = analysed
    for speaker in result.speakers:
        assert speaker.segments and all(s.speaker == speaker.speaker for s in speaker.segments)
        weights = np.array([s.duration for s in speaker.segments])
        scores = np.array([s.score for s in speaker.segments])
        assert speaker.score == pytest.approx(float((weights * scores).sum() / weights.sum()))
        assert speaker.speech_seconds == pytest.approx(weights.sum(), abs=1e-5)
        assert speaker.max_score == pytest.approx(scores.max())
    assert sum(len(s.segments) for s in result.speakers) == len(result.timeline)
    starts = [s.start for s in result.timeline]
    assert starts == sorted(starts)


def test_overlapped_speech_is_found_where_the_call_overlaps(call, analysed):
    _, record, _, _ = call
    _, _, result = analysed
    counts = np.zeros(record.num_samples, dtype=int)
    for turn in record.turns:
        counts[turn.offset : turn.offset + turn.length] += 1
    true_overlap = (counts >= 2).sum() / record.sample_rate
    found = sum(end - start for start, end in result.overlap)
    assert true_overlap > 1.0  # the fixture has overlaps to find
    assert found == pytest.approx(true_overlap, rel=0.5)
    assert sum(s.overlap for s in result.timeline) == pytest.approx(2 * found, rel=0.05)


def test_the_separator_only_ever_sees_one_window(call, analysed):
    _, record, _, _ = call
    _, spy, result = analysed
    assert 0 < spy.longest <= round(WINDOW * record.sample_rate)
    assert result.n_windows == math.ceil((record.num_samples / RATE - WINDOW) / 3.0) + 1
    assert spy.calls >= result.n_windows // 4  # batches of 4 windows, silent ones skipped


def test_known_number_of_speakers_is_respected(call):
    _, _, audio, references = call
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    result = pipeline.analyze(
        audio, n_speakers=2, embedder=BandEmbedder(), references=references, progress=False
    )
    assert len(result.speakers) == 2
    assert result.settings["n_speakers"] == 2


def test_enrollment_names_the_participants(call, analysed, tmp_path):
    from conversation_fixtures import VOICES, voice

    from amongus.speakers import enroll

    pipeline, _, _ = analysed
    _, record, audio, references = call
    rng = np.random.default_rng(5)
    clips = {}
    for name, (f0, _) in VOICES.items():
        clip = tmp_path / f"{name}.wav"
        sf.write(clip, voice(f0, 3.0, rng), RATE)
        clips[f"person-{name}"] = str(clip)
    embedder = BandEmbedder()
    enrollment = enroll(embedder, clips)
    result = pipeline.analyze(
        audio, embedder=embedder, enrollment=enrollment, references=references, progress=False
    )
    spoofed = [s.name for s in record.speakers if s.label == "spoof"]
    assert [s.participant for s in result.spoofed_speakers] == [f"person-{spoofed[0]}"]
    assert sorted(s.participant for s in result.speakers) == sorted(clips)
    assert all(s.participant_similarity > 0.8 for s in result.speakers)


def test_outputs_json_rttm_and_plot_agree(analysed, tmp_path):
    _, _, result = analysed
    written = result.save(tmp_path)
    data = json.loads(written["json"].read_text())
    assert [s["verdict"] for s in data["speakers"]] == [s.verdict for s in result.speakers]
    assert data["duration"] == pytest.approx(result.duration)
    segments = read_rttm(written["rttm"])
    assert len(segments) == len(result.timeline)
    for segment, expected in zip(segments, result.timeline, strict=True):
        assert segment.speaker == expected.speaker
        assert segment.score == pytest.approx(expected.score)
        assert segment.label == ("spoof" if expected.score >= result.threshold else "bonafide")
        assert segment.onset == pytest.approx(expected.start, abs=1e-6)
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_array_input_and_bad_inputs(call, analysed):
    _, _, audio, references = call
    pipeline, _, result = analysed
    samples, rate = sf.read(audio, dtype="float32")
    again = pipeline.analyze(
        samples, rate, embedder=BandEmbedder(), references=references, progress=False
    )
    assert again.recording_id == "recording" and again.path is None
    assert [s.verdict for s in again.speakers] == [s.verdict for s in result.speakers]
    with pytest.raises(ValueError, match="needs the reference sources"):
        pipeline.analyze(audio, embedder=BandEmbedder(), progress=False)
    with pytest.raises(ValueError, match="references must be"):
        pipeline.analyze(audio, embedder=BandEmbedder(), references=references[:, :100])
    with pytest.raises(InvalidAudioError, match="silent"):
        pipeline.analyze(np.zeros(RATE * 8, dtype=np.float32), RATE, embedder=BandEmbedder(),
                         references=np.zeros((2, RATE * 8)), progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="must not exceed"):
        pipeline.analyze(audio, embedder=BandEmbedder(), references=references,
                         settings=AnalysisSettings(window_seconds=2.0, hop_seconds=3.0))  # fmt: skip


# ---------------------------------------------------------------------------- evaluate
def test_evaluate_on_a_conversation_manifest(call, tmp_path, monkeypatch):
    from amongus.conversation.evaluate import evaluate_conversations, is_conversation_manifest

    manifest, record, _, _ = call
    assert is_conversation_manifest(manifest) and is_conversation_manifest(manifest.parent)
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    evaluation = evaluate_conversations(
        pipeline, manifest, tmp_path / "eval", embedder=BandEmbedder(), progress=False
    )
    metrics = evaluation.metrics
    assert metrics.n_recordings == 1 and metrics.n_reference_speakers == 3
    assert metrics.speaker_accuracy == 1.0 and metrics.speaker_eer == 0.0
    assert metrics.diarization.der < 0.05
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["metrics"]["speaker_accuracy"] == 1.0
    assert report["calls"][0]["id"] == record.conversation_id
    # the written hypothesis reproduces the metrics
    from amongus.metrics_conversation import evaluate_conversation_hypotheses

    again = evaluate_conversation_hypotheses(
        tmp_path / "eval" / "reference.rttm", tmp_path / "eval" / "hypothesis.rttm"
    )
    assert again.diarization.der == pytest.approx(metrics.diarization.der, abs=1e-4)
    assert (tmp_path / "eval" / "calls" / f"{record.conversation_id}.png").exists()


def test_evaluate_skips_a_missing_call_with_its_reason(call, tmp_path):
    from amongus.conversation.evaluate import evaluate_conversations

    manifest, record, _, _ = call
    lines = manifest.read_text().splitlines()
    broken = json.loads(lines[0])
    broken["conversation_id"] = "gone"
    broken["path"] = "audio/gone.flac"
    copy = manifest.parent / "with-missing.jsonl"
    copy.write_text("\n".join([lines[0], json.dumps(broken), "{not json"]) + "\n")
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    evaluation = evaluate_conversations(pipeline, copy, None, embedder=BandEmbedder(),
                                        progress=False)  # fmt: skip
    reasons = {row["id"]: row["reason"] for row in evaluation.skipped}
    assert reasons["gone"].startswith("missing")
    assert any("bad manifest line" in reason for reason in reasons.values())
    assert [c["id"] for c in evaluation.calls] == [record.conversation_id]


def test_evaluate_command_line_dispatches_conversation_manifests(call, tmp_path, monkeypatch,
                                                                 capsys):  # fmt: skip
    from amongus.conversation import analyze as analyze_module
    from amongus.evaluate import main
    from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

    monkeypatch.setattr(analyze_module, "_load_embedder", lambda embedder, device: BandEmbedder())
    manifest, record, _, _ = call
    classifier = write_tiny_aasist_checkpoint(tmp_path / "aasist")
    out = tmp_path / "eval"
    code = main([str(manifest), "--separator", "oracle", "--classifier", str(classifier),
                 "--out", str(out), "--quiet", "--no-plots"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "DER" in printed and "spoof time error" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "conversations"
    assert report["metrics"]["n_reference_speakers"] == len(record.speakers)


# ---------------------------------------------------------------------------- command line
def test_conversation_command_line_exit_codes_and_errors(call, tmp_path, monkeypatch, capsys):
    import amongus.speakers
    from amongus.conversation.__main__ import main
    from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

    monkeypatch.setattr(amongus.speakers, "load_speaker_embedder",
                        lambda spec=None, device="cpu", trust_checkpoint=False: BandEmbedder())  # fmt: skip
    _, record, audio, _ = call
    classifier = write_tiny_aasist_checkpoint(tmp_path / "aasist")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(RATE * 4, dtype=np.float32), RATE)
    out = tmp_path / "out"
    code = main([str(silent), str(audio), "--out", str(out), "--separator", "passthrough",
                 "--classifier", str(classifier), "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert "silent.wav" in captured.err and "silent" in captured.err
    assert "Traceback" not in captured.err
    stem = record.conversation_id
    assert {p.name for p in out.iterdir()} == {f"{stem}.json", f"{stem}.rttm", f"{stem}.png"}
    assert main([str(audio), "--out", str(out), "--separator", "passthrough", "--classifier",
                 str(classifier), "--quiet", "--no-plot", "--enroll", "bad"]) == 2  # fmt: skip
    assert "NAME=CLIP" in capsys.readouterr().err


def test_an_8khz_stereo_recording_is_analysed_at_the_classifiers_rate(call, tmp_path):
    from scipy.signal import resample_poly

    _, _, audio, references = call
    samples, _ = sf.read(audio, dtype="float32")
    narrow = resample_poly(samples, 1, 2).astype(np.float32)
    path = tmp_path / "call-8k.wav"
    sf.write(path, np.stack([narrow, narrow], axis=1), 8000, subtype="FLOAT")
    refs = resample_poly(references, 1, 2, axis=1)[:, : narrow.size]
    spy = SpyOracle()
    pipeline = Pipeline(separator=spy, classifier=ToneClassifier())
    result = pipeline.analyze(path, embedder=BandEmbedder(), references=refs, progress=False)
    assert result.sample_rate == 8000 and result.settings["classifier_rate"] == RATE
    assert spy.longest <= round(WINDOW * 8000)
    assert sorted(s.verdict for s in result.speakers) == ["bonafide", "bonafide", "spoof"]
    assert result.timeline[-1].end <= result.duration + 1e-6


class SplittingSeparator(SeparatorBase):
    """What a two-speaker separator does with one voice: spreads it over both streams (here
    with independent noise, so the streams are not copies of each other)."""

    sample_rate = None
    n_src = 2

    @property
    def identity(self):
        return "splitting"

    def _separate(self, mixture, lengths, references):
        generator = torch.Generator().manual_seed(int(mixture.shape[-1]))
        noise = 0.03 * torch.randn((mixture.shape[0], 2, mixture.shape[-1]), generator=generator)
        return torch.stack([0.8 * mixture, 0.6 * mixture], dim=1) + noise


def test_one_voice_split_by_the_separator_is_one_speaker(tmp_path):
    from conversation_fixtures import voice

    audio = voice(180.0, 20.0, np.random.default_rng(3))
    pipeline = Pipeline(separator=SplittingSeparator(), classifier=ToneClassifier())
    merged = pipeline.analyze(audio, RATE, embedder=BandEmbedder(), progress=False)
    assert len(merged.speakers) == 1 and merged.overlap == []
    assert merged.speakers[0].speech_seconds <= 20.0
    split = pipeline.analyze(
        audio, RATE, embedder=BandEmbedder(), progress=False,
        settings=AnalysisSettings(merge_same_speaker=False),
    )  # fmt: skip
    assert len(split.speakers) >= 2  # the two halves of the voice, never merged (cannot-link)
    assert sum(end - start for start, end in split.overlap) > 10.0
