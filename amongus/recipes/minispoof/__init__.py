"""minispoof: an ASVspoof-2019-LA-layout corpus built offline from real human speech (Asterisk
prompts, festvox-ru recordings, Tux Paint descriptions, optionally LibriSpeech/LJSpeech) and
real spoof generators (espeak-ng, Flite, Festival, Piper VITS, WORLD, Griffin-Lim, MLSA, LPC,
codec2, neural vocoders).

``python -m amongus.recipes.minispoof --out DIR --seed 0 --size small``; see docs/corpus.md.
"""

from __future__ import annotations

from .build import BuildResult, build_corpus, corpus_summary
from .cli import main
from .shortcut_check import ShortcutReport, shortcut_check, trivial_features

__all__ = [
    "BuildResult",
    "ShortcutReport",
    "build_corpus",
    "corpus_summary",
    "main",
    "shortcut_check",
    "trivial_features",
]
