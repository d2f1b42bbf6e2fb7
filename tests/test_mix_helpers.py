"""Synthetic labelled utterances for the mixer tests (written with soundfile into tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from amongus.manifest import Utterance


def speech_like(
    rng: np.random.Generator, seconds: float, sample_rate: int, *, active: float | None = None
) -> np.ndarray:
    """A voiced-like tone switched on and off at syllable rate; with ``active`` only the first
    ``active`` seconds are sound and the rest is silence."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    envelope = (np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 6)) > -0.5).astype(float)
    if active is not None:
        envelope[int(active * sample_rate) :] = 0.0
    tone = np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.3 * np.sin(
        2 * np.pi * rng.uniform(400, 900) * t
    )
    return (0.3 * tone * envelope).astype(np.float32)


def write_utterances(
    folder: Path,
    n: int,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    seconds: tuple[float, float] = (1.0, 2.0),
    active: float | None = None,
    n_speakers: int = 7,
) -> list[Utterance]:
    """``n`` FLAC utterances alternating bonafide/spoof, with speaker ids."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utterances = []
    for i in range(n):
        audio = speech_like(rng, rng.uniform(*seconds), sample_rate, active=active)
        path = folder / f"utt{i:04d}.flac"
        sf.write(path, audio, sample_rate)
        utterances.append(
            Utterance(
                utt_id=f"utt{i:04d}",
                path=str(path),
                label="spoof" if i % 2 else "bonafide",
                speaker=f"spk{i % n_speakers}",
                system="A01" if i % 2 else "-",
            )
        )
    return utterances


def test_write_utterances_makes_labelled_audible_files(tmp_path):
    utterances = write_utterances(tmp_path, 4, seconds=(1.0, 1.5))
    assert [u.label for u in utterances] == ["bonafide", "spoof", "bonafide", "spoof"]
    for utterance in utterances:
        audio, rate = sf.read(utterance.path)
        assert rate == 16000 and 1.0 <= len(audio) / rate <= 1.5
        assert np.abs(audio).max() > 0.1
