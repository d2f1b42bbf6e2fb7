"""A tiny training set for tests, benchmarks and the documentation's examples.

:func:`make_toy_mixtures` mixes the bundled demo utterances (``amongus.corpora.demo``) with the
Mixer; when the demo set is not installed it synthesises a few labelled "utterances" (harmonic
tones with noise; spoofs with a buzzier spectrum) so the toy set always exists offline.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..audio import save_audio
from ..manifest import Utterance

logger = logging.getLogger(__name__)


def synthetic_utterances(
    directory: str | os.PathLike,
    *,
    n_utterances: int = 8,
    seconds: float = 1.5,
    sample_rate: int = 16000,
    seed: int = 0,
) -> list[Utterance]:
    """Labelled single-"speaker" recordings: alternating bonafide and spoof, 4 speakers."""
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    utterances = []
    for index in range(n_utterances):
        spoof = index % 2 == 1
        pitch = 110.0 + 35.0 * (index % 4) + 5.0 * rng.standard_normal()
        harmonics = 8 if spoof else 3
        audio = sum(
            np.sin(2 * np.pi * pitch * k * time + rng.uniform(0, 2 * np.pi)) / k
            for k in range(1, harmonics + 1)
        )
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2.0, 4.0) * time) ** 2
        audio = 0.2 * audio * envelope + 0.02 * rng.standard_normal(time.size)
        path = save_audio(directory / f"utt{index:03d}.wav", audio.astype(np.float32), sample_rate)
        utterances.append(
            Utterance(
                utt_id=f"utt{index:03d}",
                path=str(path),
                label="spoof" if spoof else "bonafide",
                speaker=f"spk{index % 4}",
                system="SYN" if spoof else "-",
                sample_rate=sample_rate,
                duration=seconds,
            )
        )
    return utterances


def toy_utterances(directory: str | os.PathLike, *, split: str = "train") -> list[Utterance]:
    """The bundled demo utterances of a split, or synthetic ones when the demo set is absent."""
    try:
        from ..corpora.demo import demo_utterances

        utterances = list(demo_utterances(split))
        labels = {u.label for u in utterances}
        if len(utterances) >= 4 and labels == {"bonafide", "spoof"}:
            return utterances
    except (ImportError, OSError, ValueError) as error:
        logger.info("demo set unavailable (%s); synthesising utterances", error)
    return synthetic_utterances(Path(directory) / "utterances")


def make_toy_mixtures(
    directory: str | os.PathLike,
    *,
    n_mixtures: int = 12,
    max_source_seconds: float = 1.5,
    seed: int = 0,
    split: str = "train",
) -> Path:
    """Mix a handful of two-speaker mixtures into ``directory``; returns ``mixtures.jsonl``."""
    from ..mix import Mixer, MixerConfig

    directory = Path(directory)
    utterances = toy_utterances(directory, split=split)
    config = MixerConfig(max_source_seconds=max_source_seconds, sample_rate=16000)
    Mixer(config).run(
        utterances, directory / "mixtures", n_mixtures=n_mixtures, seed=seed, workers=1,
        split=split, progress=False,
    )  # fmt: skip
    return directory / "mixtures" / "mixtures.jsonl"
