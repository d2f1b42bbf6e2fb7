"""Enrollment: identify / assign on synthetic embeddings, input checks, real voices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from amongus.speakers import FALLBACK_THRESHOLD, Enrollment, SpeakerEmbedder, enroll
from amongus.validation import InvalidAudioError

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "amongus" / "data" / "demo"
SHIPPED = REPO / "amongus" / "data" / "models" / "ecapa-tiny"
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


def _enrollment(threshold: float = 0.5) -> Enrollment:
    return Enrollment(["alice", "bob", "carol"], torch.eye(3, 4), threshold, "synthetic")


def test_identify_names_the_most_similar_participant_or_nobody():
    found = torch.tensor([[0.0, 2.0, 0.1, 0.0], [0.9, 0.0, 0.0, 0.1], [0.0, 0.0, 0.1, 1.0]])
    matches = _enrollment().identify(found)
    assert [name for name, _ in matches] == ["bob", "alice", None]
    assert matches[0][1] == pytest.approx(2.0 / np.hypot(2.0, 0.1))
    assert matches[2][1] == pytest.approx(0.1 / np.hypot(0.1, 1.0))  # best score, under 0.5
    # a lower threshold names the third one too
    assert _enrollment(threshold=0.05).identify(found)[2][0] == "carol"


def test_assign_is_one_to_one_where_identify_is_not():
    found = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.8, 0.6, 0.0, 0.0]])
    enrollment = _enrollment()
    assert [n for n, _ in enrollment.identify(found)] == ["alice", "alice"]
    assigned = enrollment.assign(found)
    assert [n for n, _ in assigned] == ["alice", "bob"]
    assert assigned[1][1] == pytest.approx(0.6)


def test_assign_with_more_found_speakers_than_participants():
    found = torch.tensor(
        [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0.7, 0.7, 0, 0]], dtype=torch.float32
    )
    assigned = _enrollment().assign(found)
    assert [n for n, _ in assigned] == ["alice", "bob", "carol", None]
    assert assigned[3][1] == pytest.approx(np.sqrt(0.5), abs=1e-6)
    # under the threshold nobody is named, unless asked
    weak = torch.tensor([[0.3, 1.0, 0, 0]])
    assert _enrollment(0.99).assign(weak)[0][0] is None
    assert _enrollment(0.99).assign(weak, use_threshold=False)[0][0] == "bob"


def test_embeddings_of_another_size_are_refused():
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        _enrollment().identify(torch.ones(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        _enrollment().identify(torch.full((1, 4), float("nan")))


class LevelEmbedder(SpeakerEmbedder):
    """A stand-in model: the embedding is (RMS, peak, 1), so louder clips differ."""

    sample_rate = 16000
    embedding_dim = 3

    @property
    def identity(self) -> str:
        return "level"

    def _embed_batch(self, batch):
        rms = batch.pow(2).mean(dim=1).sqrt()
        return torch.stack([rms, batch.abs().amax(dim=1), torch.full_like(rms, 0.1)], dim=1)


def _tone(amplitude: float, seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_enroll_averages_clips_and_renormalises(tmp_path):
    embedder = LevelEmbedder()
    path = tmp_path / "bob.wav"
    sf.write(path, _tone(0.5, rate=8000), 8000)  # another rate: resampled on reading
    enrollment = enroll(embedder, {"alice": [_tone(0.1), _tone(0.3)], "bob": str(path)})
    assert enrollment.names == ["alice", "bob"] and enrollment.clips == {"alice": 2, "bob": 1}
    expected = embedder.embed([_tone(0.1), _tone(0.3)]).mean(dim=0)
    torch.testing.assert_close(enrollment.embeddings[0], expected / expected.norm())
    torch.testing.assert_close(enrollment.embeddings.norm(dim=1), torch.ones(2))
    assert enrollment.threshold == FALLBACK_THRESHOLD  # the stand-in states none
    assert enrollment.embedder_identity == "level"
    # arrays at another rate are resampled too
    at_8k = enroll(embedder, {"bob": _tone(0.5, rate=8000)}, sample_rate=8000)
    torch.testing.assert_close(at_8k.embeddings[0], enrollment.embeddings[1], atol=2e-3, rtol=0)
    embedder.verification_threshold = 0.7
    assert enroll(embedder, {"a": _tone(0.2)}).threshold == 0.7
    assert enroll(embedder, {"a": _tone(0.2)}, threshold=0.1).threshold == 0.1


def test_enroll_refuses_bad_clips_naming_them(tmp_path):
    embedder = LevelEmbedder()
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(InvalidAudioError, match="silent") as caught:
        enroll(embedder, {"alice": [_tone(0.2), str(silent)]})
    assert str(silent) in str(caught.value)
    with pytest.raises(InvalidAudioError, match="missing"):
        enroll(embedder, {"alice": tmp_path / "nowhere.wav"})
    with pytest.raises(InvalidAudioError, match="bob clip 1: too_short"):
        enroll(embedder, {"bob": [_tone(0.2), _tone(0.2, seconds=0.01)]})
    with pytest.raises(InvalidAudioError, match="non_finite"):
        enroll(embedder, {"bob": np.full(16000, np.nan, dtype=np.float32)})
    with pytest.raises(ValueError, match="no participants"):
        enroll(embedder, {})
    with pytest.raises(ValueError, match="no clips"):
        enroll(embedder, {"bob": []})
    with pytest.raises(ValueError, match="cosine similarity"):
        enroll(embedder, {"bob": _tone(0.2)}, threshold=2.0)


# ---------------------------------------------------------------- real voices
def _demo_bonafide(split: str) -> dict[str, list[Path]]:
    by_speaker: dict[str, list[Path]] = {}
    for line in (DEMO / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["label"] == "bonafide" and row["split"] == split:
            by_speaker.setdefault(row["speaker"], []).append(DEMO / row["path"])
    return by_speaker


def _identification_accuracy(embedder, clips: dict[str, list[Path]], n_enroll: int):
    from amongus.validation import load_valid_audio

    enrollment = enroll(embedder, {s: [str(p) for p in c[:n_enroll]] for s, c in clips.items()})
    truth, audios = [], []
    for speaker, paths in clips.items():
        for path in paths[n_enroll:]:
            audios.append(load_valid_audio(path, sample_rate=embedder.sample_rate)[0])
            truth.append(speaker)
    found = embedder.embed(audios)
    named = [name for name, _ in enrollment.identify(found)]
    best = [enrollment.names[i] for i in enrollment.similarities(found).argmax(axis=1)]
    return float(np.mean([b == t for b, t in zip(best, truth, strict=True)])), named, truth


@pytest.mark.skipif(not (SHIPPED / "embedding_model.ckpt").is_file(), reason="no ecapa-tiny")
def test_shipped_embedder_names_demo_voices():
    """Four bonafide voices of the demo set (2-3 s clips): one clip enrolls, three are named."""
    from amongus.speakers import load_speaker_embedder

    embedder = load_speaker_embedder()
    clips = _demo_bonafide("dev")
    assert len(clips) == 4 and all(len(c) == 4 for c in clips.values())
    accuracy, _, _ = _identification_accuracy(embedder, clips, n_enroll=1)
    assert accuracy >= 0.9  # chance is 0.25; measured 1.0


@pytest.mark.skipif(not SHARED_REAL.is_dir(), reason="../shared/data/real absent")
@pytest.mark.skipif(not (SHIPPED / "verification.json").is_file(), reason="no ecapa-tiny")
def test_shipped_embedder_names_held_out_librispeech_speakers():
    """Speakers the model never saw: two clips enroll, the other eight are named."""
    from amongus.speakers import load_speaker_embedder

    held_out = json.loads((SHIPPED / "verification.json").read_text())["evaluation"][
        "held_out_speakers"
    ]
    clips = {
        speaker: sorted(
            (SHARED_REAL / "bonafide" / "librispeech").glob(
                f"{speaker.removeprefix('libri_')}-*.flac"
            )
        )[:10]
        for speaker in held_out[:4]
    }
    assert all(len(c) == 10 for c in clips.values())
    accuracy, named, truth = _identification_accuracy(load_speaker_embedder(), clips, n_enroll=2)
    assert accuracy >= 0.85  # chance is 0.25; measured 0.97
    wrong_names = sum(n is not None and n != t for n, t in zip(named, truth, strict=True))
    assert wrong_names <= len(truth) * 0.1  # measured 1 of 32
