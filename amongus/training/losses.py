"""Losses of the stream classifier: assigned-label and label-permutation cross-entropy.

Both are the *weighted mean* cross-entropy of PyTorch (``sum_i w[y_i] CE_i / sum_i w[y_i]``), so
they agree whenever the label-permutation minimum picks the signal assignment's order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def assigned_loss(logits, labels, *, class_weights=None):
    """Cross-entropy against assigned stream labels (``-100`` ignored).

    Shape: ``logits [N, C], labels [N] -> scalar``.
    """
    return F.cross_entropy(logits.float(), labels, weight=class_weights, ignore_index=-100)


def permutation_loss(logits, source_labels, group_sizes, *, class_weights=None):
    """The study's label-permutation loss from ONE forward per stream.

    For each mixture (a group of ``S`` consecutive streams), the ``[S, S]`` matrix
    ``cost[i, j] = w[y_j] * CE(logits_i, y_j)`` is built from the logits already computed, and
    the permutation of least total cost is kept (every permutation up to 3 sources; the
    Hungarian algorithm above, on the detached costs). The loss is the sum of the kept costs over
    the batch divided by the sum of the labels' weights (the same for every permutation).

    Shape: ``logits [N, C], source_labels [N], group_sizes [B] -> scalar``.
    """
    logits = logits.float()
    log_probs = F.log_softmax(logits, dim=-1)
    if class_weights is None:
        class_weights = torch.ones(logits.shape[-1], device=logits.device)
    total = logits.new_zeros(())
    weight_sum = logits.new_zeros(())
    start = 0
    for size in group_sizes.tolist():
        stop = start + size
        labels = source_labels[start:stop]
        weights = class_weights[labels]  # [S] weight of each reference's label
        # cost[i, j] = -w[y_j] * log p_i(y_j)
        cost = -log_probs[start:stop][:, labels] * weights[None, :]
        total = total + cost[torch.arange(size), _best_order(cost.detach())].sum()
        weight_sum = weight_sum + weights.sum()
        start = stop
    if start != logits.shape[0]:
        raise ValueError(f"group sizes sum to {start} but there are {logits.shape[0]} streams")
    return total / weight_sum.clamp_min(torch.finfo(total.dtype).tiny)


def _best_order(cost: torch.Tensor) -> torch.Tensor:
    """``perm[i]`` = reference of stream ``i`` minimising the summed cost (``best_permutation``)."""
    from ..scoring import best_permutation

    return torch.tensor(best_permutation(cost.cpu().double().numpy()), device=cost.device)
