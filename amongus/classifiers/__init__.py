"""Pluggable spoof classifiers (countermeasures): ``load_classifier(spec)`` -> ``Classifier``.

Families: Hugging Face audio classification (``hf``: WavLM, wav2vec 2.0, HuBERT), ``aasist``
(AASIST, AASIST-L) and ``ssl_w2v`` (XLS-R front end + AASIST back end). A spec is a registered
name (``"aasist"``: the official AASIST weights shipped with amongus; ``"wavlm-spoof-finetuned"``,
``"wavlm-spoof-clean"``), a path or hub id whose files decide the family, a config dict
``{"name": ..., **options}`` or an instance. Every family declares its ``sample_rate``, its input
length policy and which logit is spoof; every one returns
:class:`amongus.classifier.StreamScores` (``cm_score`` higher = bonafide). A classifier loaded from
a folder carries the calibrated decision threshold stored there (``decision_threshold``,
:mod:`amongus.classifiers.threshold`).

Heavy modules (torch, transformers) are imported when a classifier is built.
"""

from __future__ import annotations

import importlib

from .base import (
    FAMILIES,
    Classifier,
    classifier_from_source,
    detect_family,
    load_classifier,
    register_classifier,
    registered_classifiers,
)

_LAZY = {
    "AASIST": "amongus.classifiers.aasist",
    "AasistClassifier": "amongus.classifiers.aasist",
    "AasistConfig": "amongus.classifiers.aasist",
    "AASIST_SEGMENT_SAMPLES": "amongus.classifiers.aasist",
    "load_aasist": "amongus.classifiers.aasist",
    "SSLW2V": "amongus.classifiers.ssl_w2v",
    "SslW2vClassifier": "amongus.classifiers.ssl_w2v",
    "SslW2vConfig": "amongus.classifiers.ssl_w2v",
    "load_ssl_w2v": "amongus.classifiers.ssl_w2v",
    "ModuleClassifier": "amongus.classifiers.module",
    "SegmentPolicy": "amongus.classifiers.segments",
    "SpoofClassifier": "amongus.classifier",
    "StreamScores": "amongus.classifier",
    "DecisionThreshold": "amongus.classifiers.threshold",
    "read_decision_threshold": "amongus.classifiers.threshold",
    "resolve_spoof_threshold": "amongus.classifiers.threshold",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'amongus.classifiers' has no attribute {name!r}")


__all__ = [
    "FAMILIES",
    "Classifier",
    "classifier_from_source",
    "detect_family",
    "load_classifier",
    "register_classifier",
    "registered_classifiers",
    *_LAZY,
]
