"""A small labelled two-speaker mixture set made from tones, shared by the tests of the command
lines that read a mixture manifest (sharding, evaluation, common options).

Each test keeps its own tone function (frequencies, durations) and passes it in; what is shared
is the corpus layout and the mixer settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from amongus.audio import save_audio
from amongus.manifest import Utterance


def write_tone_mixtures(
    root: Path,
    *,
    n_utterances: int,
    n_mixtures: int,
    seed: int,
    audio: Callable[[int, bool], np.ndarray],
    rate: int,
) -> Path:
    """Write ``n_utterances`` utterances ``root/utts/u{i}.wav`` (odd ones spoof, system A07; each
    its own speaker), ``audio(index, spoof)`` giving the samples at ``rate`` Hz, and mix them into
    ``n_mixtures`` mixtures with the gain level mode; returns the mixture folder ``root/mix``
    (``mixtures.jsonl`` and ``audio/``)."""
    from amongus.mix import Mixer, MixerConfig

    utterances = []
    for index in range(n_utterances):
        spoof = index % 2 == 1
        path = save_audio(root / "utts" / f"u{index}.wav", audio(index, spoof), rate)
        utterances.append(
            Utterance(
                utt_id=f"u{index}",
                path=str(path),
                label="spoof" if spoof else "bonafide",
                speaker=f"s{index}",
                system="A07" if spoof else "-",
            )
        )
    config = MixerConfig(level_mode="gain", min_overlap=0.3)
    Mixer(config).run(
        utterances, root / "mix", n_mixtures=n_mixtures, seed=seed, workers=1, progress=False
    )
    return root / "mix"
