"""Validation metrics of an epoch, from the logits of every validation stream.

Per stream: loss (the training loss), accuracy, EER and AUC of the ASVspoof score
(``cm_score = logit(bonafide) - logit(spoof)``, higher = bonafide). Per mixture: composition
accuracy (the SS/SB/BB... label from the stream decisions against the true one) and the EER of the
"spoof present" score (the lowest ``cm_score`` of the mixture's streams), which needs no
assignment. A metric that is undefined (one class absent) is ``None``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..labels import BONAFIDE, SPOOF, composition_label
from .losses import _best_order, assigned_loss, permutation_loss


@dataclass
class MixtureLogits:
    """One validation mixture: its streams' logits and labels (class indices)."""

    index: int
    logits: np.ndarray  # [S, C]
    labels: list[int]  # signal-assigned stream labels (-100: none)
    source_labels: list[int]
    mixture_label: str


def _eer_or_none(bonafide: np.ndarray, spoof: np.ndarray) -> tuple[float | None, float | None]:
    if bonafide.size == 0 or spoof.size == 0:
        return None, None
    from ..metrics import auc_score, eer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an inverted AUC early in training is expected
        return float(eer(bonafide, spoof)[0]), float(auc_score(bonafide, spoof))


def validation_metrics(
    mixtures: Sequence[MixtureLogits],
    *,
    spoof_index: int,
    assignment: str,
    class_weights: torch.Tensor | None = None,
) -> dict[str, float | None]:
    """Loss, per-stream and mixture-level metrics of a validation pass.

    With ``assignment="labels"`` the stream labels are the study's (the label permutation of
    least cross-entropy), so the per-stream numbers are optimistic, as in the study.
    """
    if not mixtures:
        return {}
    mixtures = sorted(mixtures, key=lambda m: m.index)
    logits = torch.from_numpy(np.concatenate([m.logits for m in mixtures])).float()
    weights = None if class_weights is None else class_weights.detach().float().cpu()
    group_sizes = torch.tensor([len(m.source_labels) for m in mixtures])
    source_labels = torch.tensor([lab for m in mixtures for lab in m.source_labels])
    if assignment == "labels":
        loss = permutation_loss(logits, source_labels, group_sizes, class_weights=weights)
        log_probs = torch.log_softmax(logits, dim=-1)
        stream_labels, start = [], 0
        for m in mixtures:
            size = len(m.source_labels)
            labels = torch.tensor(m.source_labels)
            w = torch.ones(logits.shape[-1]) if weights is None else weights
            cost = -log_probs[start : start + size][:, labels] * w[labels][None, :]
            order = _best_order(cost)
            stream_labels.extend(labels[order].tolist())
            start += size
        labels = torch.tensor(stream_labels)
    else:
        labels = torch.tensor([lab for m in mixtures for lab in m.labels])
        loss = assigned_loss(logits, labels, class_weights=weights)
    cm_score = (logits[:, 1 - spoof_index] - logits[:, spoof_index]).numpy().astype(np.float64)
    predicted = logits.argmax(dim=-1)
    valid = labels != -100
    accuracy = float((predicted[valid] == labels[valid]).float().mean()) if valid.any() else None
    is_spoof = (labels == spoof_index).numpy() & valid.numpy()
    is_bona = (labels != spoof_index).numpy() & valid.numpy()
    stream_eer, stream_auc = _eer_or_none(cm_score[is_bona], cm_score[is_spoof])

    correct, mixture_scores, spoof_present = 0, [], []
    start = 0
    for m in mixtures:
        size = m.logits.shape[0]
        decisions = [
            SPOOF if int(p) == spoof_index else BONAFIDE for p in predicted[start : start + size]
        ]
        correct += composition_label(decisions) == m.mixture_label
        mixture_scores.append(float(cm_score[start : start + size].min()))
        spoof_present.append("S" in m.mixture_label)
        start += size
    mixture_scores_arr = np.asarray(mixture_scores)
    present = np.asarray(spoof_present, dtype=bool)
    present_eer, _ = _eer_or_none(mixture_scores_arr[~present], mixture_scores_arr[present])
    value = float(loss)
    return {
        "val_loss": value if math.isfinite(value) else None,
        "val_accuracy": accuracy,
        "val_eer": stream_eer,
        "val_auc": stream_auc,
        "val_composition_accuracy": correct / len(mixtures),
        "val_spoof_present_eer": present_eer,
    }
