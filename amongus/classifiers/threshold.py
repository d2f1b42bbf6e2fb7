"""Calibrated decision thresholds stored with a classifier, and the one rule that picks a threshold.

A countermeasure's scores rank utterances; where to cut them is a separate choice. The fixed cut
``spoof_probability >= 0.5`` (``cm_score <= 0``) is right only for a model whose classes were
balanced and whose test data looks like its training data; on real speech it labels much
bonafide speech as spoof. So each shipped classifier folder stores a threshold calibrated on
held-out data, in its ``config.json`` (the same key for every family)::

    "amongus": {"decision_threshold": {
        "cm_score": -1.83,                # spoof when cm_score <= this
        "spoof_probability": 0.8617,      # the same cut on spoof_probability = 1/(1+e^cm_score)
        "method": "dev-set EER point",
        "data": "real-speech dev part (...)",
        "dev_eer": 0.125, "n_bonafide": 20, "n_spoof": 12,
        "weights_sha256": "...",          # the weights it was calibrated for
        "command": "python -m amongus.recipes.real_speech calibrate ...",
        "source": "dev-set EER point on ..."}}

**Which score.** The threshold is computed on ``cm_score`` (higher = bonafide, the orientation
:func:`amongus.metrics.eer` works in) and applied, like every decision in amongus, to
``spoof_probability`` (:func:`amongus.results.decision_rule`: spoof if ``spoof_probability >=
t``). The two are the same cut: ``spoof_probability = 1 / (1 + exp(cm_score))`` is how
:class:`amongus.classifier.StreamScores` computes it, so ``spoof_probability >= 1 / (1 +
exp(c))`` exactly when ``cm_score <= c``. Both values are stored.

**Which point.** :func:`eer_threshold`: the EER point of the ASVspoof DET curve
(:func:`amongus.metrics.eer`: items scoring at or below it are rejected), moved to the middle
of the gap up to the next score so that the dev decisions are those of the EER point and a
score rounded on the way does not flip.

**Which threshold a run uses** (:func:`resolve_spoof_threshold`): an explicit
``spoof_threshold=`` (``--threshold``) wins; otherwise the classifier's stored threshold;
otherwise 0.5 on ``spoof_probability``, with the source :data:`UNCALIBRATED_SOURCE`. A stored
threshold whose ``weights_sha256`` does not match the folder's weights (a copy saved after
fine-tuning keeps its parent's config) is ignored with a warning: it was calibrated for
other weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The ``config.json`` entry: ``config["amongus"]["decision_threshold"]``.
NAMESPACE = "amongus"
KEY = "decision_threshold"
CONFIG_NAME = "config.json"
#: The threshold on ``spoof_probability`` used when nothing else is known.
DEFAULT_SPOOF_THRESHOLD = 0.5
UNCALIBRATED_SOURCE = "uncalibrated default: spoof if spoof_probability >= 0.5 (cm_score <= 0)"
#: Weight files hashed for ``weights_sha256`` (every one in the folder, by name).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")


def cm_to_spoof_probability(cm_score: float) -> float:
    """``1 / (1 + exp(cm_score))``: the spoof probability of a score, computed as
    :meth:`amongus.classifier.StreamScores.from_logits` does.

    >>> cm_to_spoof_probability(0.0)
    0.5
    """
    return float(1.0 / (1.0 + np.exp(np.clip(float(cm_score), -700.0, 700.0))))


@dataclass(frozen=True)
class DecisionThreshold:
    """A calibrated decision threshold.

    Attributes:
        cm_score: spoof when ``cm_score <= cm_score`` (higher = bonafide).
        source: one line saying how and on what it was computed (goes into reports).
        method: ``"dev-set EER point"`` or another documented calibration.
        data: the calibration data, in words.
        dev_eer: the EER on that data (fraction), when the method is the EER point.
        n_bonafide, n_spoof: the calibration set's size.
        weights_sha256: :func:`weights_digest` of the weights it was calibrated for.
        command: the command that computed it.
    """

    cm_score: float
    source: str
    method: str = "dev-set EER point"
    data: str = ""
    dev_eer: float | None = None
    n_bonafide: int | None = None
    n_spoof: int | None = None
    weights_sha256: str | None = None
    command: str | None = None

    def __post_init__(self):
        if not isinstance(self.cm_score, int | float) or not math.isfinite(self.cm_score):
            raise ValueError(
                f"decision threshold cm_score must be a finite number, got {self.cm_score!r}"
            )
        if not self.source:
            raise ValueError("a decision threshold needs a source")

    @property
    def spoof_probability(self) -> float:
        """The same cut on ``spoof_probability`` (spoof when ``>=`` this)."""
        return cm_to_spoof_probability(self.cm_score)

    def to_dict(self) -> dict[str, Any]:
        data = {"cm_score": float(self.cm_score), "spoof_probability": self.spoof_probability}
        for item in fields(self):
            if item.name != "cm_score":
                data[item.name] = getattr(self, item.name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionThreshold:
        """Read the ``config.json`` entry; ``spoof_probability`` is derived, not read.

        Raises:
            ValueError: not a JSON object, or no finite ``cm_score`` / no ``source``.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        known = {item.name for item in fields(cls)}
        if "cm_score" not in data:
            raise ValueError("no 'cm_score' entry")
        return cls(**{key: value for key, value in data.items() if key in known})


def weights_digest(folder: str | os.PathLike) -> str | None:
    """SHA-256 over the weight files of a folder (names and bytes, sorted by name); ``None``
    when it holds none (a hub id, an instance)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _config(folder: Path) -> dict[str, Any]:
    from amongus.checkpoints import CheckpointError

    path = folder / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the model config ({error})") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the model config must be a JSON object")
    return data


def read_decision_threshold(
    folder: str | os.PathLike, *, check_weights: bool = True
) -> DecisionThreshold | None:
    """The threshold stored in ``folder/config.json``, or ``None``.

    ``None`` when the folder has no ``config.json`` or no entry, and (with a warning) when the
    entry was calibrated for other weights than the folder's (``weights_sha256``).

    Raises:
        CheckpointError: an entry that is not a valid threshold (naming the file).
    """
    from amongus.checkpoints import CheckpointError

    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file():
        return None
    entry = (_config(folder).get(NAMESPACE) or {}).get(KEY)
    if entry is None:
        return None
    try:
        threshold = DecisionThreshold.from_dict(entry)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: invalid {NAMESPACE}.{KEY} entry ({error})"
        ) from error
    if check_weights and threshold.weights_sha256 is not None:
        actual = weights_digest(folder)
        if actual is not None and actual != threshold.weights_sha256:
            logger.warning(
                "%s: the stored decision threshold was calibrated for other weights "
                "(weights_sha256 differs); ignored: recalibrate with `python -m "
                "amongus.recipes.real_speech calibrate`",
                folder / CONFIG_NAME,
            )
            return None
    return threshold


def write_decision_threshold(folder: str | os.PathLike, threshold: DecisionThreshold) -> Path:
    """Store ``threshold`` in ``folder/config.json``, keeping every other entry.

    Raises:
        CheckpointError: no readable ``config.json`` in ``folder``.
    """
    from amongus.checkpoints import CheckpointError

    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no model config to store the threshold in")
    data = _config(folder)
    namespace = data.get(NAMESPACE)
    namespace = dict(namespace) if isinstance(namespace, dict) else {}
    namespace[KEY] = threshold.to_dict()
    data[NAMESPACE] = namespace
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def eer_threshold(
    cm_scores: Sequence[float] | np.ndarray, true_labels: Sequence[str]
) -> tuple[float, float]:
    """The dev-set EER point as a decision threshold on ``cm_score``.

    The EER point of :func:`amongus.metrics.eer` (the official ASVspoof algorithm: items scoring
    at or below it are rejected as spoof), moved to the middle of the gap up to the next higher
    score, so that deciding "spoof when ``cm_score <= threshold``" reproduces the EER point's
    decisions on these scores without sitting on one of them.

    Args:
        cm_scores: one score per item, higher = bonafide.
        true_labels: ``"bonafide"``/``"spoof"`` per item; both classes must be present.

    Returns:
        ``(threshold, eer)``.

    Raises:
        ValueError: one class missing, or NaN/infinite scores.

    >>> eer_threshold([2.0, 3.0, 0.0, 1.0], ["bonafide", "bonafide", "spoof", "spoof"])
    (1.5, 0.0)
    """
    from amongus.metrics import eer, split_scores

    bonafide, spoof = split_scores(true_labels, cm_scores)
    if bonafide.size == 0 or spoof.size == 0:
        raise ValueError(
            f"calibration needs both classes: {bonafide.size} bonafide and {spoof.size} spoof "
            "scores"
        )
    value, point = eer(bonafide, spoof, warn_inverted=False)
    scores = np.concatenate((bonafide, spoof))
    above = scores[scores > point]
    threshold = point if above.size == 0 else (point + float(above.min())) / 2.0
    return float(threshold), float(value)


def classifier_threshold(classifier: Any) -> DecisionThreshold | None:
    """The calibrated threshold a loaded classifier carries (``decision_threshold``, set by
    :func:`amongus.classifiers.load_classifier` from its folder), or ``None``."""
    threshold = getattr(classifier, "decision_threshold", None)
    return threshold if isinstance(threshold, DecisionThreshold) else None


def resolve_spoof_threshold(classifier: Any, spoof_threshold: float | None) -> tuple[float, str]:
    """The threshold on ``spoof_probability`` a run decides with, and where it came from.

    Args:
        classifier: the loaded classifier.
        spoof_threshold: the caller's value (``spoof_threshold=`` / ``--threshold``), or
            ``None`` for the classifier's calibrated threshold.

    Returns:
        ``(threshold in [0, 1], source)``: ``"given by the caller ..."``, the stored
        threshold's source (``"calibrated: ..."``) or :data:`UNCALIBRATED_SOURCE`.

    Raises:
        ValueError: a given threshold outside ``[0, 1]``.
    """
    if spoof_threshold is not None:
        value = float(spoof_threshold)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"spoof_threshold must be in [0, 1], got {spoof_threshold}")
        return value, f"given by the caller (spoof_threshold={value:g})"
    stored = classifier_threshold(classifier)
    if stored is None:
        return DEFAULT_SPOOF_THRESHOLD, UNCALIBRATED_SOURCE
    return stored.spoof_probability, (
        f"calibrated: {stored.source} (cm_score <= {stored.cm_score:.4g}; stored with the "
        "classifier)"
    )


def attach_decision_threshold(classifier: Any, source: str | os.PathLike | None) -> Any:
    """Set ``classifier.decision_threshold`` from the folder it was loaded from (``None`` when
    there is none, or for a hub id: read from the model's config when it has the entry)."""
    threshold = None
    if source is not None and Path(source).expanduser().is_dir():
        threshold = read_decision_threshold(Path(source).expanduser())
    else:
        config = getattr(getattr(classifier, "model", None), "config", None)
        entry = (getattr(config, NAMESPACE, None) or {}).get(KEY) if config is not None else None
        if isinstance(entry, dict):
            try:
                threshold = DecisionThreshold.from_dict(entry)
            except (TypeError, ValueError) as error:
                logger.warning("ignored an invalid stored decision threshold (%s)", error)
    try:
        classifier.decision_threshold = threshold
    except AttributeError:  # pragma: no cover - a read-only object: no stored threshold
        pass
    return classifier
