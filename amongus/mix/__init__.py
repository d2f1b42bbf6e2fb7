"""Mixture generation: ``Mixer`` + ``MixerConfig``; ``python -m amongus.mix`` is the CLI."""

from .config import MixerConfig
from .mixer import Mixer, MixFolderConflict, MixSummary
from .render import render_mixture, render_sources

__all__ = [
    "MixFolderConflict",
    "MixSummary",
    "Mixer",
    "MixerConfig",
    "render_mixture",
    "render_sources",
]
