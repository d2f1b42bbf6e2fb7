"""Waveform augmentation for training countermeasures: RawBoost, codecs, reverberation, noise.

``Augmenter.from_spec("rawboost,codec:0.3,reverb", sample_rate=16000)`` builds a chain of steps
(:mod:`amongus.augment.chain`); RawBoost's three algorithms are in :mod:`amongus.augment.rawboost`;
codecs, reverberation and noise reuse the Mixer's (:mod:`amongus.mix.augment`). The Trainer applies
the chain to training streams only (``--augment``, docs/training.md).
"""

from .chain import STEPS, Augmenter, AugmentStep, parse_augment_spec

__all__ = ["STEPS", "AugmentStep", "Augmenter", "parse_augment_spec"]
