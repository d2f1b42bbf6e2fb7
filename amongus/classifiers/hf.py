"""The Hugging Face audio-classification family (WavLM, wav2vec 2.0, HuBERT classifiers).

The implementation lives in :mod:`amongus.classifier` (:class:`~amongus.classifier.SpoofClassifier`);
this module re-exports it under the classifier registry and says which folders are in its format:
a ``config.json`` written by transformers (``model_type`` / ``architectures``) beside the weights
and a ``preprocessor_config.json``, or a hub id ``owner/name``.

Sample rate: the feature extractor's ``sampling_rate``; input length policy: ``max_seconds``
(10 s) per piece, ``long_policy`` ``"crop"`` or ``"window"``, short streams padded with silence to
the receptive field; orientation: the spoof class read from ``config.id2label``.
"""

from __future__ import annotations

import json
from pathlib import Path

from amongus.classifier import SpoofClassifier, StreamScores

FAMILY = "hf"


def is_hf_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a transformers model config (``model_type`` or ``architectures``)."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and ("model_type" in data or "architectures" in data)


def load_hf(name_or_path, **options) -> SpoofClassifier:
    """:meth:`SpoofClassifier.from_pretrained` (options as there)."""
    return SpoofClassifier.from_pretrained(name_or_path, **options)


__all__ = ["FAMILY", "SpoofClassifier", "StreamScores", "is_hf_folder", "load_hf"]
