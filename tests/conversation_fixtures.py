"""Shared pieces of the long-recording tests: a tone-voice corpus made into a simulated call by
the conversation mixer, and stand-ins for the classifier and the speaker embedder.

Each speaker's "voice" is a harmonic tone of its own pitch, switched on and off like syllables,
so that a correct pipeline (right windows, right streams, right linking across windows, right
bookkeeping) must recover exactly who spoke when: the stand-in embedder tells the pitches apart
and the stand-in classifier calls high voices spoof.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from amongus.classifier import StreamScores
from amongus.manifest import Utterance

RATE = 16000
#: speaker -> (fundamental Hz, label). spk_c is the deepfake: its voice is above 1 kHz.
VOICES = {"spk_a": (180.0, "bonafide"), "spk_b": (520.0, "bonafide"), "spk_c": (2600.0, "spoof")}


def voice(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in (1, 2, 3))
    syllables = (np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)) > -0.6).astype(float)
    return (0.25 * wave * syllables).astype(np.float32)


def write_tone_corpus(folder: Path, per_speaker: int = 5, seed: int = 0) -> list[Utterance]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utterances = []
    for name, (f0, label) in VOICES.items():
        for i in range(per_speaker):
            path = folder / f"{name}_{i}.flac"
            sf.write(path, voice(f0, rng.uniform(2.0, 4.0), rng), RATE)
            utterances.append(
                Utterance(
                    utt_id=f"{name}_{i}",
                    path=str(path),
                    label=label,
                    speaker=name,
                    system="A01" if label == "spoof" else "-",
                )
            )
    return utterances


def make_call(out: Path, *, seconds: float = 36.0, seed: int = 0):
    """One 3-speaker call (one spoofed) from the tone corpus; returns (manifest, record)."""
    from amongus.manifest import read_conversations
    from amongus.mix import MixerConfig
    from amongus.mix.conversation import ConversationMixer
    from amongus.mix.conversation_config import ConversationConfig

    utterances = write_tone_corpus(out / "corpus", seed=seed)
    ConversationMixer(
        MixerConfig(),
        ConversationConfig(
            speakers=(3, 3),
            spoofed_speakers=(1, 1),
            duration=(seconds, seconds),
            target_overlap=0.1,
        ),
    ).run(utterances, out / "calls", n_conversations=1, seed=seed, progress=False)
    manifest = out / "calls" / "conversations.jsonl"
    return manifest, read_conversations(manifest)[0]


def high_band_scores(rows) -> StreamScores:
    """Spoof logit = log-odds of the energy share above 1 kHz (at ``RATE``): the tone corpora
    here make spoofed voices high-pitched, so this stand-in classifier separates them."""
    logits = []
    for row in rows:
        spectrum = np.abs(np.fft.rfft(row)) ** 2
        freqs = np.fft.rfftfreq(row.size, 1 / RATE)
        share = (spectrum[freqs > 1000].sum() + 1e-9) / (spectrum.sum() + 2e-9)
        share = float(np.clip(share, 1e-4, 1 - 1e-4))
        logits.append([0.0, np.log(share / (1 - share))])
    return StreamScores.from_logits(np.array(logits), 1)


class ToneClassifier:
    """Spoof probability = share of energy above 1 kHz (high voices are the deepfake)."""

    sample_rate = RATE
    identity = "tone-classifier"

    def score(self, waveforms, *, sample_rate=None, lengths=None, batch_size=8, progress=False):
        assert sample_rate == self.sample_rate
        return high_band_scores(np.asarray(row, dtype=np.float64) for row in waveforms)


class BandEmbedder:
    """Speaker embedding stand-in: the L2-normalised log-energy in 48 frequency bands."""

    sample_rate = RATE
    identity = "band-embedder"
    verification_threshold = 0.8

    def __init__(self):
        self.n_calls = 0

    def embed(self, waveforms, sample_rate=None):
        assert sample_rate in (None, self.sample_rate)
        rows = waveforms if isinstance(waveforms, list) else list(torch.as_tensor(waveforms))
        out = []
        for row in rows:
            row = np.asarray(row, dtype=np.float64)
            spectrum = np.abs(np.fft.rfft(row)) ** 2
            freqs = np.fft.rfftfreq(row.size, 1 / RATE)
            edges = np.geomspace(100, 8000, 49)
            bands = np.array(
                [
                    spectrum[(freqs >= lo) & (freqs < hi)].sum()
                    for lo, hi in zip(edges[:-1], edges[1:], strict=True)
                ]
            )
            vector = np.log(bands + 1e-6 * bands.sum() + 1e-12)
            vector -= vector.mean()
            out.append(vector / np.linalg.norm(vector))
        self.n_calls += 1
        return torch.tensor(np.stack(out), dtype=torch.float32)
