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


def resolve_class_weights(
    spec, *, label_to_index: dict[str, int], label_counts: dict[str, int] | None = None
) -> list[float] | None:
    """Class weights in the classifier's class-index order, from a normalised config value.

    Args:
        spec: ``None`` (unweighted), a list in class-index order (as given), a mapping
            ``{"bonafide": w, "spoof": w}`` (placed at each label's index, whatever the family's
            class order), or ``"balanced"``: ``w_c = N / (C * n_c)`` from ``label_counts``
            (scikit-learn's "balanced" weights: every class weighs the same in total).
        label_to_index: ``{"bonafide": i, "spoof": j}`` for the classifier.
        label_counts: training streams per label (needed for ``"balanced"``).

    Raises:
        ValueError: a label missing from the mapping, a class with no training stream for
            ``"balanced"``, or a list of the wrong length.

    Example:
        >>> resolve_class_weights({"spoof": 0.1, "bonafide": 0.9},
        ...                       label_to_index={"spoof": 0, "bonafide": 1})
        [0.1, 0.9]
    """
    n_classes = len(label_to_index)
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec != "balanced":
            raise ValueError(f"class_weights: unknown mode {spec!r} (expected 'balanced')")
        counts = dict(label_counts or {})
        empty = sorted(label for label in label_to_index if counts.get(label, 0) <= 0)
        if empty:
            raise ValueError(
                f"class_weights='balanced': no training stream labelled {empty}; give weights"
            )
        total = sum(counts[label] for label in label_to_index)
        weights = [0.0] * n_classes
        for label, index in label_to_index.items():
            weights[index] = total / (n_classes * counts[label])
        return weights
    if isinstance(spec, dict):
        missing = sorted(set(label_to_index) - set(spec))
        if missing:
            raise ValueError(f"class_weights {spec}: no weight for {missing}")
        weights = [0.0] * n_classes
        for label, index in label_to_index.items():
            weights[index] = float(spec[label])
        return weights
    weights = [float(w) for w in spec]
    if len(weights) != n_classes:
        raise ValueError(
            f"class_weights: {len(weights)} weights for a {n_classes}-class classifier"
        )
    return weights
