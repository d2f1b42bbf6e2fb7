"""amongus: find spoofed voices in multi-party audio.

The public names load lazily, so ``import amongus`` stays light: speechbrain, asteroid and
transformers are imported only when a component that needs them is used.
``amongus.show_versions()`` prints the environment report to paste into a bug report.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Pipeline": "amongus.pipeline",
    "Mixer": "amongus.mix.mixer",
    "MixerConfig": "amongus.mix.config",
    "load_separator": "amongus.separation.base",
    "Separator": "amongus.separation.base",
    "SpoofClassifier": "amongus.classifier",
    "Trainer": "amongus.training",
    "TrainerConfig": "amongus.training",
    "Utterance": "amongus.manifest",
    "Mixture": "amongus.manifest",
    "MixtureSource": "amongus.manifest",
    "PipelineResult": "amongus.results",
    "EvaluationReport": "amongus.results",
    "evaluate_utterances": "amongus.evaluate",
    "load_utterances": "amongus.corpora",
    "load_audio": "amongus.audio",
    "save_audio": "amongus.audio",
    "show_versions": "amongus._compat",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'amongus' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
