"""Pluggable separators: ``load_separator(name_or_path)`` -> ``Separator``.

Built in: ``"oracle"``, ``"passthrough"``, ``"sepformer"`` (SpeechBrain), ``"convtasnet"``
(Asteroid), or any checkpoint path / hub id in those formats. ``separate_chunked`` bounds memory on
long inputs; ``separate_at_rate`` resamples to and from the separator's rate.
"""

from .base import (
    CheckpointError,
    Separator,
    SeparatorBase,
    load_separator,
    register_separator,
    registered_separators,
)
from .chunking import separate_chunked
from .run import separate_at_rate
from .scale import OUTPUT_SCALES, apply_output_scale

__all__ = [
    "OUTPUT_SCALES",
    "CheckpointError",
    "Separator",
    "SeparatorBase",
    "apply_output_scale",
    "load_separator",
    "register_separator",
    "registered_separators",
    "separate_at_rate",
    "separate_chunked",
]
