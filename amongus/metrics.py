"""Metrics for spoof detection: EER, minDCF and actDCF (ASVspoof 5), AUC, ROC/DET points, binary
and multiclass reports, per-group EER, and ASVspoof score files.

Conventions (scikit-learn style):

* score arrays come as two explicit arguments, ``bonafide_scores`` and ``spoof_scores``, with the
  ASVspoof orientation: **higher = bonafide** (the classifier's ``cm_score``). Pass
  ``-spoof_probability`` (or ``cm_score``) rather than ``spoof_probability``;
* classification metrics (precision, recall, F1) use **spoof as the positive class**;
* ``*_score`` is higher-better (``auc_score``), ``eer``, ``min_dcf``, ``act_dcf`` and
  ``*_error`` lower-better;
* every ranking metric (``eer``, ``min_dcf``, ``act_dcf``, ``auc_score``) runs one shared check
  and warns (:class:`InvertedScoresWarning`) when the scores look inverted (AUC < 0.5).

:func:`eer` computes exactly what the official ASVspoof 2019 evaluation code
(``eval_metrics.py``: ``compute_det_curve`` + ``compute_eer``) computes; :func:`min_dcf` and
:func:`act_dcf` what the ASVspoof 5 evaluation package computes for CM-only (track 1)
evaluation; see their docstrings.

Plots live in :mod:`amongus.plots` and are re-exported here (``plot_roc``, ``plot_det``,
``plot_confusion``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amongus.labels import BONAFIDE, SPOOF, normalize_label
from amongus.manifest import UniqueIds, decode_field, encode_field
from amongus.plots import plot_confusion, plot_det, plot_roc

__all__ = [
    "ASVSPOOF5_C_FA",
    "ASVSPOOF5_C_MISS",
    "ASVSPOOF5_P_SPOOF",
    "AsvspoofScores",
    "CurvePoints",
    "InvertedScoresWarning",
    "act_dcf",
    "auc_score",
    "binary_report",
    "det_curve",
    "det_points",
    "eer",
    "eer_by_group",
    "llr_threshold",
    "min_dcf",
    "multiclass_report",
    "normalized_dcf",
    "plot_confusion",
    "plot_det",
    "plot_roc",
    "read_asvspoof_scores",
    "roc_points",
    "split_scores",
    "write_asvspoof_scores",
]

# ASVspoof 5 CM-only (track 1) detection cost parameters: the evaluation plan (Wang et al.,
# "ASVspoof 5 evaluation plan", 2024, Phase 1 metrics) and the official evaluation package
# (github.com/asvspoof-challenge/asvspoof5, evaluation-package/calculate_metrics.py:
# Pspoof = 0.05, Cmiss = 1, Cfa = 10).
ASVSPOOF5_P_SPOOF = 0.05  # prior probability of a spoofing attack
ASVSPOOF5_C_MISS = 1.0  # cost of rejecting a bonafide utterance
ASVSPOOF5_C_FA = 10.0  # cost of accepting a spoof


class InvertedScoresWarning(UserWarning):
    """Scores rank spoof above bonafide (AUC < 0.5): probably the wrong orientation."""


# ---------------------------------------------------------------------------- input checks
def _as_scores(values: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return array


def _as_labels(values: Iterable[Any], name: str) -> list[str]:
    labels = []
    for index, value in enumerate(values):
        try:
            labels.append(normalize_label(value))
        except ValueError as error:
            raise ValueError(f"{name}[{index}]: {error}") from None
    return labels


def _warn_if_inverted(target: np.ndarray, nontarget: np.ndarray, metric: str) -> float:
    """The one orientation check of every ranking metric: warn when the AUC is below 0.5.

    Returns the AUC (the probability that a random bonafide score beats a random spoof score,
    ties half), so :func:`auc_score` needs no second pass.
    """
    from sklearn.metrics import roc_auc_score

    y_true = np.concatenate((np.ones(target.size), np.zeros(nontarget.size)))
    value = float(roc_auc_score(y_true, np.concatenate((target, nontarget))))
    if value < 0.5:
        warnings.warn(
            f"{metric}: the scores look inverted (AUC {value:.3f} < 0.5: bonafide scores rank "
            "below spoof scores); amongus metrics expect higher = bonafide (the ASVspoof "
            "cm_score): pass cm_score or -spoof_probability, not spoof_probability",
            InvertedScoresWarning,
            stacklevel=3,
        )
    return value


def split_scores(
    true_labels: Sequence[Any], scores: Sequence[float] | np.ndarray, *, higher: str = BONAFIDE
) -> tuple[np.ndarray, np.ndarray]:
    """Split one score array into ``(bonafide_scores, spoof_scores)`` by the true labels.

    Args:
        true_labels: ``"bonafide"``/``"spoof"`` (any spelling) or ``0``/``1`` (1 = spoof).
        scores: one score per item.
        higher: which class the scores favour when higher: ``"bonafide"`` (``cm_score``) or
            ``"spoof"`` (``spoof_probability``; the scores are negated so the result is
            bonafide-oriented).

    >>> split_scores(["spoof", "bonafide"], [0.9, 0.2], higher="spoof")
    (array([-0.2]), array([-0.9]))
    """
    labels = _as_labels(true_labels, "true_labels")
    values = _as_scores(scores, "scores")
    if len(labels) != values.size:
        raise ValueError(f"{len(labels)} labels for {values.size} scores")
    orientation = normalize_label(higher)
    if orientation == SPOOF:
        values = -values
    is_spoof = np.array([label == SPOOF for label in labels], dtype=bool)
    return values[~is_spoof], values[is_spoof]


# ---------------------------------------------------------------------------- EER and DET
def det_curve(
    bonafide_scores: Sequence[float] | np.ndarray, spoof_scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ASVspoof DET curve: ``(frr, far, thresholds)``, each of length ``N_b + N_s + 1``.

    This is the official ``compute_det_curve``: all scores are concatenated (bonafide first,
    label 1; spoof label 0) and sorted with a *stable* sort; after the ``i``-th sorted score the
    false rejection rate is the share of bonafide scores among the first ``i`` and the false
    acceptance rate the share of spoof scores after them. The first point is ``(frr, far) = (0, 1)`` at
    threshold ``min(scores) - 0.001``; the others use the sorted scores as thresholds.

    Ties are not merged: tied scores are passed one by one in concatenation order (bonafide
    first), exactly as the official code does.
    """
    target = _as_scores(bonafide_scores, "bonafide_scores")
    nontarget = _as_scores(spoof_scores, "spoof_scores")
    n_scores = target.size + nontarget.size
    all_scores = np.concatenate((target, nontarget))
    labels = np.concatenate((np.ones(target.size), np.zeros(nontarget.size)))
    indices = np.argsort(all_scores, kind="mergesort")
    labels = labels[indices]
    target_sums = np.cumsum(labels)
    nontarget_sums = nontarget.size - (np.arange(1, n_scores + 1) - target_sums)
    frr = np.concatenate((np.atleast_1d(0), target_sums / target.size))
    far = np.concatenate((np.atleast_1d(1), nontarget_sums / nontarget.size))
    thresholds = np.concatenate(
        (np.atleast_1d(all_scores[indices[0]] - 0.001), all_scores[indices])
    )
    return frr, far, thresholds


def eer(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    *,
    warn_inverted: bool = True,
) -> tuple[float, float]:
    """Equal error rate and its threshold, as the official ASVspoof 2019 code computes them.

    Scores are **higher = bonafide** (``cm_score``). On the DET points of :func:`det_curve`, the
    first point where ``|FRR - FAR|`` is smallest is taken; the EER is the mean of its FRR and FAR
    and the threshold its score. There is no interpolation: where FRR and FAR never meet exactly,
    the EER is the mean of the closest pair.

    Note the official code's treatment of ties: tied bonafide and spoof scores are not merged, so
    if *all* scores are equal the EER is ``1.0`` (not ``0.5``).

    Returns:
        ``(eer, threshold)``: the EER as a fraction in ``[0, 1]`` and the score threshold.

    Raises:
        ValueError: an empty input or a NaN/infinite score.

    Warns:
        InvertedScoresWarning: the scores look inverted (AUC < 0.5; the EER is then above 0.5),
            unless ``warn_inverted=False``.

    >>> eer([2.0, 3.0], [0.0, 1.0])
    (0.0, 1.0)
    """
    frr, far, thresholds = det_curve(bonafide_scores, spoof_scores)
    if warn_inverted:
        _warn_if_inverted(
            _as_scores(bonafide_scores, "bonafide_scores"),
            _as_scores(spoof_scores, "spoof_scores"),
            "eer",
        )
    abs_diffs = np.abs(frr - far)
    min_index = int(np.argmin(abs_diffs))
    value = float(np.mean((frr[min_index], far[min_index])))
    return value, float(thresholds[min_index])


@dataclass(frozen=True)
class CurvePoints:
    """Points of a ROC or DET curve (numpy arrays of equal length)."""

    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray
    x_name: str
    y_name: str

    def to_dict(self) -> dict[str, list[float]]:
        return {
            self.x_name: self.x.tolist(),
            self.y_name: self.y.tolist(),
            "thresholds": self.thresholds.tolist(),
        }


def det_points(
    bonafide_scores: Sequence[float] | np.ndarray, spoof_scores: Sequence[float] | np.ndarray
) -> CurvePoints:
    """DET points: ``x`` = false acceptance rate (spoofs accepted), ``y`` = false rejection rate
    (bonafide rejected), from :func:`det_curve`."""
    frr, far, thresholds = det_curve(bonafide_scores, spoof_scores)
    return CurvePoints(x=far, y=frr, thresholds=thresholds, x_name="far", y_name="frr")


# ---------------------------------------------------------------------------- ROC and AUC
def _bonafide_positive(
    bonafide_scores: Sequence[float] | np.ndarray, spoof_scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    target = _as_scores(bonafide_scores, "bonafide_scores")
    nontarget = _as_scores(spoof_scores, "spoof_scores")
    y_true = np.concatenate((np.ones(target.size), np.zeros(nontarget.size)))
    return y_true, np.concatenate((target, nontarget))


def roc_points(
    bonafide_scores: Sequence[float] | np.ndarray, spoof_scores: Sequence[float] | np.ndarray
) -> CurvePoints:
    """ROC points (``sklearn.metrics.roc_curve``) with bonafide as the accepted class:
    ``x`` = false positive rate (spoofs accepted, FAR), ``y`` = true positive rate (bonafide
    accepted, ``1 - FRR``). Scores are higher = bonafide."""
    from sklearn.metrics import roc_curve

    y_true, scores = _bonafide_positive(bonafide_scores, spoof_scores)
    fpr, tpr, thresholds = roc_curve(y_true, scores, pos_label=1, drop_intermediate=False)
    return CurvePoints(x=fpr, y=tpr, thresholds=thresholds, x_name="fpr", y_name="tpr")


def auc_score(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    *,
    warn_inverted: bool = True,
) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``): the probability that a random
    bonafide score is higher than a random spoof score (ties count half).

    Scores are higher = bonafide, like :func:`eer`. Identical to the AUC of ``spoof_probability``
    with spoof as the positive class when ``cm_score`` and ``spoof_probability`` rank alike.

    Warns:
        InvertedScoresWarning: when the AUC is below 0.5 (the scores look inverted: was
            ``spoof_probability`` passed where higher should mean bonafide?), unless
            ``warn_inverted=False``.
    """
    from sklearn.metrics import roc_auc_score

    target = _as_scores(bonafide_scores, "bonafide_scores")
    nontarget = _as_scores(spoof_scores, "spoof_scores")
    if warn_inverted:
        return _warn_if_inverted(target, nontarget, "auc_score")
    y_true, scores = _bonafide_positive(target, nontarget)
    return float(roc_auc_score(y_true, scores))


# ---------------------------------------------------------------------------- DCF (ASVspoof 5)
def _check_costs(p_spoof: float, c_miss: float, c_fa: float) -> None:
    if not 0.0 < p_spoof < 1.0:
        raise ValueError(f"p_spoof must be in (0, 1), got {p_spoof}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(f"c_miss and c_fa must be > 0, got {c_miss} and {c_fa}")


def normalized_dcf(
    p_miss: float | np.ndarray,
    p_fa: float | np.ndarray,
    *,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
) -> float | np.ndarray:
    """The ASVspoof 5 normalized detection cost of a CM at one operating point.

    ``DCF = (c_miss * (1 - p_spoof) * p_miss + c_fa * p_spoof * p_fa) / DCF_default`` with
    ``DCF_default = min(c_miss * (1 - p_spoof), c_fa * p_spoof)``, the cost of the better of
    accepting or rejecting everything (ASVspoof 5 evaluation plan, Phase 1; official
    ``compute_mindcf``/``compute_actDCF``). With the default ASVspoof 5 parameters
    (``p_spoof=0.05, c_miss=1, c_fa=10``) ``DCF_default = 0.5``: a CM that accepts everything
    scores 1.0, and 0 is perfect.

    Args:
        p_miss: share of bonafide items rejected (false rejection rate), in ``[0, 1]``.
        p_fa: share of spoof items accepted (false acceptance rate), in ``[0, 1]``.
        p_spoof, c_miss, c_fa: prior of a spoof, cost of a miss (bonafide rejected) and of a
            false alarm (spoof accepted).

    Raises:
        ValueError: ``p_spoof`` outside ``(0, 1)`` or a cost that is not positive.

    >>> normalized_dcf(0.0, 1.0)  # accept everything
    1.0
    """
    _check_costs(p_spoof, c_miss, c_fa)
    cost = c_miss * (1.0 - p_spoof) * np.asarray(p_miss) + c_fa * p_spoof * np.asarray(p_fa)
    value = cost / min(c_miss * (1.0 - p_spoof), c_fa * p_spoof)
    return float(value) if np.ndim(value) == 0 else value


def min_dcf(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    *,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
    warn_inverted: bool = True,
) -> tuple[float, float]:
    """Minimum normalized DCF over all thresholds, as ASVspoof 5 defines it for CM-only
    evaluation (track 1's primary metric).

    Scores are **higher = bonafide** (``cm_score``), like :func:`eer`. The cost
    :func:`normalized_dcf` is evaluated at every point of the ASVspoof DET curve
    (:func:`det_curve`, so ties are passed one at a time as in :func:`eer`) and the smallest
    (first, on ties) is taken: this is the official ``compute_mindcf`` of the ASVspoof 5
    evaluation package (github.com/asvspoof-challenge/asvspoof5,
    ``evaluation-package/calculate_modules.py``). Defaults are the ASVspoof 5 CM parameters
    from its evaluation plan: ``p_spoof = 0.05``, ``c_miss = 1``, ``c_fa = 10``. It is at most
    1.0 (accepting everything is one of the points).

    Returns:
        ``(min_dcf, threshold)``: the cost and the threshold reaching it (items scoring above it
        are accepted as bonafide).

    Raises:
        ValueError: an empty input, a NaN/infinite score, or invalid costs.

    Warns:
        InvertedScoresWarning: the scores look inverted (AUC < 0.5), unless
            ``warn_inverted=False``.

    >>> min_dcf([2.0, 3.0], [0.0, 1.0])
    (0.0, 1.0)
    """
    _check_costs(p_spoof, c_miss, c_fa)
    frr, far, thresholds = det_curve(bonafide_scores, spoof_scores)
    if warn_inverted:
        _warn_if_inverted(
            _as_scores(bonafide_scores, "bonafide_scores"),
            _as_scores(spoof_scores, "spoof_scores"),
            "min_dcf",
        )
    costs = normalized_dcf(frr, far, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)
    index = int(np.argmin(costs))
    return float(costs[index]), float(thresholds[index])


def act_dcf(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    *,
    threshold: float,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
    warn_inverted: bool = True,
) -> float:
    """Actual normalized DCF: the ASVspoof 5 cost of the decisions made at ``threshold``.

    Scores are **higher = bonafide**; an item is accepted as bonafide when its score is
    ``>= threshold`` (the official ``compute_actDCF`` rule: misses are bonafide scores below
    the threshold, false alarms spoof scores at or above it). Unlike :func:`min_dcf` it
    measures calibration too: a good ranking with a badly placed threshold costs.

    The official package fixes the threshold at the Bayes decision threshold for scores that
    are log-likelihood ratios, :func:`llr_threshold` (``-log(1.9)`` for the ASVspoof 5
    parameters); pass that when the scores are calibrated LLRs, or the threshold the system
    actually decides with. Defaults are the ASVspoof 5 CM parameters (``p_spoof = 0.05``,
    ``c_miss = 1``, ``c_fa = 10``; evaluation plan, Phase 1).

    Raises:
        ValueError: an empty input, a NaN/infinite score or threshold, or invalid costs.

    Warns:
        InvertedScoresWarning: the scores look inverted (AUC < 0.5), unless
            ``warn_inverted=False``.

    >>> act_dcf([2.0, 3.0], [0.0, 2.5], threshold=2.5)  # one miss, one false alarm
    1.45
    """
    _check_costs(p_spoof, c_miss, c_fa)
    target = _as_scores(bonafide_scores, "bonafide_scores")
    nontarget = _as_scores(spoof_scores, "spoof_scores")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    if warn_inverted:
        _warn_if_inverted(target, nontarget, "act_dcf")
    p_miss = float(np.mean(target < threshold))
    p_fa = float(np.mean(nontarget >= threshold))
    return normalized_dcf(p_miss, p_fa, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)


def llr_threshold(
    *,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
) -> float:
    """The Bayes decision threshold for bonafide-vs-spoof log-likelihood-ratio scores:
    ``-log(c_miss * (1 - p_spoof) / (c_fa * p_spoof))`` (the threshold the ASVspoof 5 package
    uses for actDCF). About ``-0.642`` for the ASVspoof 5 parameters.

    >>> round(llr_threshold(), 3)
    -0.642
    """
    _check_costs(p_spoof, c_miss, c_fa)
    return float(-np.log(c_miss * (1.0 - p_spoof) / (c_fa * p_spoof)))


# ---------------------------------------------------------------------------- reports
def _decision_dcf(truth: list[str], predicted: list[str], **costs: float) -> float:
    """The normalized DCF of hard decisions (both classes present)."""
    bonafide = [guess for label, guess in zip(truth, predicted, strict=True) if label == BONAFIDE]
    spoof = [guess for label, guess in zip(truth, predicted, strict=True) if label == SPOOF]
    p_miss = sum(guess == SPOOF for guess in bonafide) / len(bonafide)
    p_fa = sum(guess == BONAFIDE for guess in spoof) / len(spoof)
    return normalized_dcf(p_miss, p_fa, **costs)


def binary_report(
    true_labels: Sequence[Any],
    predicted_labels: Sequence[Any],
    spoof_probability: Sequence[float] | np.ndarray | None = None,
    *,
    cm_scores: Sequence[float] | np.ndarray | None = None,
    decisions: str | None = None,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
) -> dict[str, Any]:
    """Per-stream (or per-utterance) binary report, JSON-serialisable.

    Args:
        true_labels, predicted_labels: ``"bonafide"``/``"spoof"`` (any spelling) or ``0``/``1``.
        spoof_probability: higher = spoof; used for EER, minDCF and AUC when ``cm_scores`` is
            not given.
        cm_scores: higher = bonafide; preferred for EER, minDCF and AUC (no ties from saturated
            probabilities).
        decisions: how ``predicted_labels`` were made (e.g. ``"spoof if spoof_probability >=
            0.5"``), recorded as ``decisions``: actDCF is the cost of exactly those decisions.
        p_spoof, c_miss, c_fa: DCF parameters (default: ASVspoof 5 CM, see :func:`min_dcf`).

    Returns:
        ``n``, ``n_bonafide``, ``n_spoof``, ``n_predicted_spoof``; ``accuracy``, ``precision``,
        ``recall``, ``f1`` (positive class spoof, ``zero_division=0``); ``eer``,
        ``eer_threshold`` and ``min_dcf_threshold`` (in the units of ``score_used``),
        ``min_dcf``, ``auc`` and ``score_used`` (``"cm_score"``, ``"spoof_probability"`` or
        ``None``; these are ``None`` without scores or when a class is missing); ``act_dcf``
        (the normalized DCF of ``predicted_labels``: no scores needed, ``None`` when a class
        is missing), ``decisions``, ``dcf_parameters``; ``confusion_matrix`` (rows true,
        columns predicted, order ``labels``); ``labels``; ``notes``.

    Warns:
        InvertedScoresWarning: once, when the scores look inverted (see :func:`auc_score`).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    truth = _as_labels(true_labels, "true_labels")
    predicted = _as_labels(predicted_labels, "predicted_labels")
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels for {len(predicted)} predicted labels")
    if not truth:
        raise ValueError("binary_report needs at least one item")
    _check_costs(p_spoof, c_miss, c_fa)
    costs = {"p_spoof": p_spoof, "c_miss": c_miss, "c_fa": c_fa}
    order = [BONAFIDE, SPOOF]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=[SPOOF], average=None, zero_division=0
    )
    n_spoof = sum(label == SPOOF for label in truth)
    report: dict[str, Any] = {
        "n": len(truth),
        "n_bonafide": len(truth) - n_spoof,
        "n_spoof": n_spoof,
        "n_predicted_spoof": sum(label == SPOOF for label in predicted),
        "accuracy": float(accuracy_score(truth, predicted)),
        "precision": float(precision[0]),
        "recall": float(recall[0]),
        "f1": float(f1[0]),
        "eer": None,
        "eer_threshold": None,
        "min_dcf": None,
        "min_dcf_threshold": None,
        "act_dcf": None,
        "auc": None,
        "score_used": None,
        "decisions": decisions,
        "dcf_parameters": dict(costs),
        "labels": order,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=order).tolist(),
        "notes": [],
    }
    if 0 < n_spoof < len(truth):
        report["act_dcf"] = _decision_dcf(truth, predicted, **costs)
    else:
        missing = SPOOF if n_spoof == 0 else BONAFIDE
        report["notes"].append(f"no {missing} items: EER, minDCF, actDCF and AUC undefined")
        return report
    if cm_scores is not None:
        scores, sign, report["score_used"] = _as_scores(cm_scores, "cm_scores"), 1.0, "cm_score"
    elif spoof_probability is not None:
        scores = _as_scores(spoof_probability, "spoof_probability")
        sign, report["score_used"] = -1.0, "spoof_probability"
    else:
        report["notes"].append("no scores given: EER, minDCF and AUC not computed")
        return report
    if scores.size != len(truth):
        raise ValueError(f"{scores.size} scores for {len(truth)} labels")
    bonafide_scores, spoof_scores = split_scores(truth, sign * scores)
    value, threshold = eer(bonafide_scores, spoof_scores, warn_inverted=False)
    report["eer"] = value
    report["eer_threshold"] = sign * threshold
    cost, cost_threshold = min_dcf(bonafide_scores, spoof_scores, warn_inverted=False, **costs)
    report["min_dcf"] = cost
    report["min_dcf_threshold"] = sign * cost_threshold
    report["auc"] = auc_score(bonafide_scores, spoof_scores)
    return report


def _default_label_order(labels: Iterable[str]) -> list[str]:
    """Composition labels most-spoofs-first (``SS, SB, BB``); other labels sorted."""
    unique = sorted(set(labels))
    if unique and all(label and not set(label) - {"S", "B"} for label in unique):
        return sorted(unique, key=lambda label: (len(label), -label.count("S")))
    return unique


def multiclass_report(
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Multiclass report (scikit-learn), e.g. for mixture compositions ``SS``/``SB``/``BB``.

    Args:
        true_labels, predicted_labels: one class name per item.
        labels: the class order of the confusion matrix and per-class table; by default every
            label seen, compositions ordered most spoofs first (``SS, SB, BB``), others sorted.

    Returns:
        ``labels``; ``confusion_matrix`` (rows true, columns predicted); ``per_class``
        ``{label: {precision, recall, f1, support}}``; ``macro`` and ``weighted`` averages of
        precision, recall and F1 (``zero_division=0``); ``accuracy``; ``n``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    truth = [str(label) for label in true_labels]
    predicted = [str(label) for label in predicted_labels]
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels for {len(predicted)} predicted labels")
    if not truth:
        raise ValueError("multiclass_report needs at least one item")
    order = list(labels) if labels is not None else _default_label_order(truth + predicted)
    unknown = sorted(set(truth + predicted) - set(order))
    if unknown:
        raise ValueError(f"labels {unknown} are not in labels={order}")
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=order, average=None, zero_division=0
    )
    report: dict[str, Any] = {
        "labels": order,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=order).tolist(),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(order)
        },
        "accuracy": float(accuracy_score(truth, predicted)),
        "n": len(truth),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            truth, predicted, labels=order, average=average, zero_division=0
        )
        report[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return report


def eer_by_group(
    cm_scores: Sequence[float] | np.ndarray,
    true_labels: Sequence[Any],
    groups: Sequence[str],
    *,
    bonafide_pool: str = "group",
    predicted_labels: Sequence[Any] | None = None,
    p_spoof: float = ASVSPOOF5_P_SPOOF,
    c_miss: float = ASVSPOOF5_C_MISS,
    c_fa: float = ASVSPOOF5_C_FA,
) -> dict[str, dict[str, Any]]:
    """EER, minDCF, actDCF and AUC per group, e.g. per spoof system or per language.

    Args:
        cm_scores: higher = bonafide, one per item.
        true_labels: ``"bonafide"``/``"spoof"`` per item.
        groups: a group name per item (system id, language...).
        bonafide_pool: ``"group"`` compares the bonafide and spoof items *of each group* (per
            language); ``"all"`` compares each group's spoofs with *all* bonafide items, as
            ASVspoof reports per attack system (groups then come from the spoof items only).
        predicted_labels: the decisions per item; when given, ``act_dcf`` is their cost.
        p_spoof, c_miss, c_fa: DCF parameters (default: ASVspoof 5 CM, see :func:`min_dcf`).

    Returns:
        ``{group: {"eer", "threshold", "min_dcf", "act_dcf", "auc", "n_bonafide", "n_spoof",
        "skipped"}}`` sorted by group; a group without both classes has its metrics ``None``
        and ``skipped`` saying why (otherwise ``skipped`` is ``None``); ``act_dcf`` is
        ``None`` without ``predicted_labels``. Groups do not warn about inverted scores (a small
        group often looks inverted by chance); the overall report does.
    """
    if bonafide_pool not in ("group", "all"):
        raise ValueError(f"bonafide_pool must be 'group' or 'all', got {bonafide_pool!r}")
    _check_costs(p_spoof, c_miss, c_fa)
    costs = {"p_spoof": p_spoof, "c_miss": c_miss, "c_fa": c_fa}
    scores = _as_scores(cm_scores, "cm_scores")
    labels = _as_labels(true_labels, "true_labels")
    group_names = [str(group) for group in groups]
    if not scores.size == len(labels) == len(group_names):
        raise ValueError(
            f"cm_scores ({scores.size}), true_labels ({len(labels)}) and groups "
            f"({len(group_names)}) differ in length"
        )
    decided = None
    if predicted_labels is not None:
        decided = np.array(_as_labels(predicted_labels, "predicted_labels"), dtype=object)
        if decided.size != scores.size:
            raise ValueError(f"{decided.size} predicted labels for {scores.size} scores")
    is_spoof = np.array([label == SPOOF for label in labels], dtype=bool)
    group_array = np.array(group_names, dtype=object)
    if bonafide_pool == "all":
        names = sorted(set(group_array[is_spoof]))
    else:
        names = sorted(set(group_names))
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        in_group = group_array == name
        spoof_scores = scores[in_group & is_spoof]
        bonafide_mask = ~is_spoof if bonafide_pool == "all" else in_group & ~is_spoof
        bonafide_scores = scores[bonafide_mask]
        entry: dict[str, Any] = {
            "eer": None,
            "threshold": None,
            "min_dcf": None,
            "act_dcf": None,
            "auc": None,
            "n_bonafide": int(bonafide_scores.size),
            "n_spoof": int(spoof_scores.size),
            "skipped": None,
        }
        if bonafide_scores.size == 0 or spoof_scores.size == 0:
            missing = BONAFIDE if bonafide_scores.size == 0 else SPOOF
            entry["skipped"] = f"no {missing} items"
        else:
            entry["eer"], entry["threshold"] = eer(
                bonafide_scores, spoof_scores, warn_inverted=False
            )
            entry["min_dcf"], _ = min_dcf(
                bonafide_scores, spoof_scores, warn_inverted=False, **costs
            )
            entry["auc"] = auc_score(bonafide_scores, spoof_scores, warn_inverted=False)
            if decided is not None:
                p_miss = float(np.mean(decided[bonafide_mask] == SPOOF))
                p_fa = float(np.mean(decided[in_group & is_spoof] == BONAFIDE))
                entry["act_dcf"] = normalized_dcf(p_miss, p_fa, **costs)
        results[name] = entry
    return results


# ---------------------------------------------------------------------------- score files
@dataclass
class AsvspoofScores:
    """The rows of an ASVspoof 2019 CM score file (``UTT SYSTEM LABEL SCORE``)."""

    utt_ids: list[str] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    cm_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.utt_ids)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """``(bonafide_scores, spoof_scores)`` for :func:`eer` and :func:`auc_score`."""
        return split_scores(self.labels, self.cm_scores)


def write_asvspoof_scores(
    path: str | os.PathLike,
    utt_ids: Sequence[str],
    systems: Sequence[str],
    labels: Sequence[Any],
    cm_scores: Sequence[float] | np.ndarray,
) -> Path:
    """Write an ASVspoof 2019 CM score file, one ``UTT SYSTEM LABEL SCORE`` line per item.

    For example ``LA_E_2834763 A11 spoof -3.14``; ``SYSTEM`` is ``-`` for bonafide in ASVspoof
    protocols; ``LABEL`` is written ``bonafide`` or ``spoof``; ``SCORE`` is higher = bonafide
    and written with full float precision. The file is written atomically.

    ``UTT`` and ``SYSTEM`` go through :func:`encode_field`: an id holding a space (a
    folder corpus' ``real/a b``) is written ``real/a%20b`` and read back as ``real/a b`` by
    :func:`read_asvspoof_scores`, so ids never merge. Utterance ids must be unique: the id is
    the key other tools join on.

    Raises:
        ValueError: different lengths, an empty field, an unknown label, or a NaN or infinite
            score (nothing is written).
        DuplicateIdError: an utterance id given twice (a ``ValueError`` naming both rows;
            nothing is written).
    """
    scores = _as_scores(cm_scores, "cm_scores", allow_empty=True)
    utt_ids, systems, labels = list(utt_ids), list(systems), list(labels)
    if not len(utt_ids) == len(systems) == len(labels) == scores.size:
        raise ValueError(
            f"utt_ids ({len(utt_ids)}), systems ({len(systems)}), labels ({len(labels)}) and "
            f"cm_scores ({scores.size}) differ in length"
        )
    normalized = _as_labels(labels, "labels")
    path = Path(path)
    seen = UniqueIds("utterance id")
    lines = []
    for row, (utt, system, label, score) in enumerate(
        zip(utt_ids, systems, normalized, scores, strict=True), start=1
    ):
        try:
            utt_field, system_field = encode_field(utt), encode_field(system)
        except ValueError as error:
            raise ValueError(f"{path}: row {row}: {error} (utterance id or system)") from None
        seen.add(str(utt), f"{path} row {row}")
        lines.append(f"{utt_field} {system_field} {label} {float(score)!r}\n")
    from .fsutil import atomic_write_text  # the umask's mode; OutputError naming the file

    return atomic_write_text(path, "".join(lines))


def read_asvspoof_scores(path: str | os.PathLike) -> AsvspoofScores:
    """Read an ASVspoof 2019 CM score file written by :func:`write_asvspoof_scores` (or the
    challenge's own ``UTT SYSTEM LABEL SCORE`` files). Blank lines are skipped, a leading
    byte-order mark is ignored, and ``UTT``/``SYSTEM`` are decoded with
    :func:`decode_field`.

    Raises:
        ValueError: a malformed line, an unknown label or a non-finite score, naming the file and
            the line.
        DuplicateIdError: an utterance id on two lines (a ``ValueError`` naming both).
    """
    path = Path(path)
    result = AsvspoofScores()
    scores = []
    seen = UniqueIds("utterance id")
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                raise ValueError(
                    f"{path}:{number}: expected 'UTT SYSTEM LABEL SCORE', got {line.strip()!r}"
                )
            utt, system, label, score_text = fields
            try:
                utt, system = decode_field(utt), decode_field(system)
                label = normalize_label(label)
                score = float(score_text)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
            if not np.isfinite(score):
                raise ValueError(f"{path}:{number}: score {score_text!r} is not finite")
            seen.add(utt, f"{path}:{number}")
            result.utt_ids.append(utt)
            result.systems.append(system)
            result.labels.append(label)
            scores.append(score)
    result.cm_scores = np.asarray(scores, dtype=np.float64)
    return result
