"""Permutation-invariant scoring: which separated stream is which speaker, and mixture labels.

A separator returns its streams in an arbitrary order. To score a stream against a speaker's
true label, each stream must first be *assigned* to a reference source:

* ``mode="signal"`` (the honest default when references exist): build a pairwise cost matrix of
  negative SI-SDR between streams and reference sources and take the permutation of least total
  cost (:func:`best_permutation`). The labels play no part, so per-stream metrics are unbiased.
* ``mode="labels"``: the study's method, kept for reproduction: take the order whose predicted
  labels have the lowest error against the true labels. It looks at the answer, so the
  per-stream numbers it gives are optimistic; reports say so.
* ``mode=None``: no assignment; only the mixture-level outputs (:func:`mixture_decision`) that
  need none.

Conventions: a cost matrix has rows = streams and columns = references; a permutation ``perm``
maps stream ``i`` to reference ``perm[i]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .labels import BONAFIDE, SPOOF, composition_label, normalize_label

ASSIGNMENT_MODES = ("signal", "labels", None)
#: Up to this many sources every permutation is tried; above, the Hungarian algorithm.
BRUTE_FORCE_MAX_SOURCES = 3


def _as_numpy(array) -> np.ndarray:
    """numpy view of a numpy array or a (possibly GPU, possibly grad-tracking) torch tensor."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def best_permutation(cost) -> tuple[int, ...]:
    """The assignment of streams (rows) to references (columns) of least total cost.

    Up to :data:`BRUTE_FORCE_MAX_SOURCES` sources every permutation is tried in lexicographic
    order and the first minimum is kept (so ties resolve deterministically, identity first);
    above, ``scipy.optimize.linear_sum_assignment`` (the Hungarian algorithm) finds a minimum.

    Args:
        cost: ``[S, S]`` array or tensor; ``cost[i, j]`` is the cost of giving stream ``i`` to
            reference ``j``.

    Returns:
        ``perm`` with ``perm[i]`` the reference of stream ``i``, minimising
        ``sum(cost[i, perm[i]])``.

    Shape: ``[S, S] -> tuple of S ints``.

    >>> best_permutation([[5.0, 1.0], [0.0, 4.0]])
    (1, 0)
    """
    matrix = np.asarray(_as_numpy(cost), dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"cost must be a square [S, S] matrix, got shape {matrix.shape}")
    n_sources = matrix.shape[0]
    if n_sources == 0:
        raise ValueError("cost is empty: no streams to assign")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("cost contains NaN or infinite values")
    if n_sources <= BRUTE_FORCE_MAX_SOURCES:
        rows = range(n_sources)
        best, best_total = None, math.inf
        for perm in itertools.permutations(range(n_sources)):
            total = math.fsum(matrix[row, perm[row]] for row in rows)
            if total < best_total:
                best, best_total = perm, total
        return tuple(int(index) for index in best)
    from scipy.optimize import linear_sum_assignment

    row_index, column_index = linear_sum_assignment(matrix)
    perm = [0] * n_sources
    for row, column in zip(row_index, column_index, strict=True):
        perm[int(row)] = int(column)
    return tuple(perm)


def inverse_permutation(perm: Sequence[int]) -> tuple[int, ...]:
    """``inverse[perm[i]] == i``: for each reference, the stream assigned to it."""
    inverse = [0] * len(perm)
    for stream, reference in enumerate(perm):
        inverse[reference] = stream
    return tuple(inverse)


def reorder(items, perm: Sequence[int]):
    """Put per-stream items (array rows, tensor rows or a list) in reference order.

    ``reorder(streams, perm)[j]`` is the stream assigned to reference ``j``.

    Shape: ``[S, ...] -> [S, ...]``.
    """
    order = list(inverse_permutation(perm))
    if isinstance(items, list | tuple):
        return [items[index] for index in order]
    return items[order]


def si_sdr(estimate, reference, *, eps: float = 1e-8) -> np.ndarray:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019), zero-mean.

    Both signals are made zero-mean; the reference is scaled by the least-squares factor
    ``alpha = <e, r> / |r|^2``, and ``SI-SDR = 10 log10(|alpha r|^2 / |e - alpha r|^2)``. The
    small ``eps`` keeps the result finite: a silent reference gives a very low value (about
    ``10 log10(eps / |e|^2)``), a silent reference and estimate give 0 dB, never NaN.

    Args:
        estimate, reference: arrays or tensors of shape ``[..., T]`` with the same ``T``
            (leading dimensions broadcast).

    Returns:
        float64 array of shape ``[...]`` (a 0-d array for 1-D input).

    Shape: ``[..., T], [..., T] -> [...]``.
    """
    estimate = np.asarray(_as_numpy(estimate), dtype=np.float64)
    reference = np.asarray(_as_numpy(reference), dtype=np.float64)
    if estimate.shape[-1:] != reference.shape[-1:]:
        raise ValueError(
            f"si_sdr: estimate and reference shapes differ: {estimate.shape} vs {reference.shape}"
        )
    try:
        estimate, reference = np.broadcast_arrays(estimate, reference)
    except ValueError as error:
        raise ValueError(
            f"si_sdr: shapes {estimate.shape} and {reference.shape} do not broadcast"
        ) from error
    if estimate.shape[-1] == 0:
        raise ValueError("si_sdr: signals have no samples")
    estimate = estimate - estimate.mean(axis=-1, keepdims=True)
    reference = reference - reference.mean(axis=-1, keepdims=True)
    dot = np.sum(estimate * reference, axis=-1, keepdims=True)
    reference_energy = np.sum(reference**2, axis=-1, keepdims=True)
    target = dot / (reference_energy + eps) * reference
    noise = estimate - target
    target_energy = np.sum(target**2, axis=-1)
    noise_energy = np.sum(noise**2, axis=-1)
    return 10.0 * np.log10((target_energy + eps) / (noise_energy + eps))


def pairwise_si_sdr(streams, references, *, eps: float = 1e-8) -> np.ndarray:
    """SI-SDR of every stream against every reference (same definition as :func:`si_sdr`).

    Computed from inner products (``[S, T] @ [T, R]``) instead of ``S * R`` projected copies.

    Shape: ``[S, T], [R, T] -> [S, R]``.
    """
    streams = np.asarray(_as_numpy(streams), dtype=np.float64)
    references = np.asarray(_as_numpy(references), dtype=np.float64)
    if streams.ndim != 2 or references.ndim != 2:
        raise ValueError(
            f"expected streams [S, T] and references [R, T], got {streams.shape} and "
            f"{references.shape}"
        )
    if streams.shape[-1] != references.shape[-1]:
        raise ValueError(
            f"streams have {streams.shape[-1]} samples but references {references.shape[-1]}; "
            "bring them to the same rate and length first"
        )
    if streams.shape[-1] == 0:
        raise ValueError("pairwise_si_sdr: signals have no samples")
    streams = streams - streams.mean(axis=-1, keepdims=True)
    references = references - references.mean(axis=-1, keepdims=True)
    dot = streams @ references.T  # [S, R]
    reference_energy = np.sum(references**2, axis=-1)[None, :]
    stream_energy = np.sum(streams**2, axis=-1)[:, None]
    alpha = dot / (reference_energy + eps)
    target_energy = alpha**2 * reference_energy
    # |e - alpha r|^2 expanded; rounding can make it slightly negative for perfect estimates
    noise_energy = np.maximum(stream_energy - 2 * alpha * dot + target_energy, 0.0)
    return 10.0 * np.log10((target_energy + eps) / (noise_energy + eps))


def pairwise_cost(streams, references, *, eps: float = 1e-8) -> np.ndarray:
    """Cost matrix for signal assignment: ``cost[i, j] = -SI-SDR(stream i, reference j)``.

    Shape: ``[S, T], [R, T] -> [S, R]``.
    """
    return -pairwise_si_sdr(streams, references, eps=eps)


def label_cost(
    stream_spoof_probability, true_labels: Sequence[str], *, spoof_threshold: float = 0.5
) -> np.ndarray:
    """Cost matrix of the study's label assignment: prediction errors against the true labels.

    ``cost[i, j]`` is 1 when stream ``i``'s predicted label (spoof probability >= threshold)
    differs from reference ``j``'s true label, plus ``|p_i - y_j| / (S + 1)``, a tie-break
    (always below 1 in total) that prefers the order whose probabilities are closer to the
    labels.

    Shape: ``[S], S labels -> [S, S]``.
    """
    probability = np.asarray(_as_numpy(stream_spoof_probability), dtype=np.float64).reshape(-1)
    truth = np.array([normalize_label(label) == SPOOF for label in true_labels], dtype=np.float64)
    if probability.shape[0] != truth.shape[0]:
        raise ValueError(
            f"{probability.shape[0]} stream probabilities but {truth.shape[0]} true labels"
        )
    predicted = (probability >= spoof_threshold).astype(np.float64)
    mismatch = (predicted[:, None] != truth[None, :]).astype(np.float64)
    distance = np.abs(probability[:, None] - truth[None, :])
    return mismatch + distance / (len(probability) + 1)


@dataclass
class Assignment:
    """How the streams of one mixture were matched to its reference sources.

    ``permutation[i]`` is the reference index of stream ``i`` (``None`` when ``mode`` is None).
    ``si_sdr`` (when references were given) holds, in reference order, the SI-SDR of the stream
    assigned to each reference.
    """

    mode: str | None
    permutation: tuple[int, ...] | None = None
    cost: np.ndarray | None = field(default=None, repr=False)
    si_sdr: np.ndarray | None = None

    @property
    def optimistic(self) -> bool:
        """True for the study's label-based assignment, which looks at the answer."""
        return self.mode == "labels"

    @property
    def stream_for_reference(self) -> tuple[int, ...] | None:
        """For each reference ``j``, the stream assigned to it."""
        return None if self.permutation is None else inverse_permutation(self.permutation)

    def reorder(self, items):
        """Per-stream items in reference order; raises when there is no assignment."""
        if self.permutation is None:
            raise ValueError("no assignment (mode=None): streams have no reference order")
        return reorder(items, self.permutation)


def describe_assignment(mode: str | None) -> str:
    """The line reports print for an assignment mode."""
    if mode == "signal":
        return "signal (best permutation of -SI-SDR against the reference sources)"
    if mode == "labels":
        return "labels (study's method, optimistic)"
    if mode is None:
        return "none (mixture-level outputs only)"
    raise ValueError(f"unknown assignment mode {mode!r}; expected one of {ASSIGNMENT_MODES}")


def check_assignment_mode(mode) -> str | None:
    """Normalise ``"none"``/``None`` and reject unknown modes with a clear error."""
    if mode is None or (isinstance(mode, str) and mode.lower() == "none"):
        return None
    if mode in ("signal", "labels"):
        return mode
    raise ValueError(f"unknown assignment mode {mode!r}; expected 'signal', 'labels' or None")


def assign_streams(
    streams=None,
    *,
    references=None,
    labels: Sequence[str] | None = None,
    stream_spoof_probability=None,
    mode: str | None = "signal",
    spoof_threshold: float = 0.5,
) -> Assignment:
    """Match separated streams to reference sources.

    Args:
        streams: ``[S, T]`` separated streams (needed for ``"signal"`` and for ``si_sdr``).
        references: ``[S, T]`` reference sources at the streams' rate and length.
        labels: the references' true labels (needed for ``"labels"``).
        stream_spoof_probability: ``[S]`` the classifier's spoof probability per stream
            (needed for ``"labels"``).
        mode: ``"signal"``, ``"labels"`` or ``None``.
        spoof_threshold: decision threshold used by ``"labels"``.

    Returns:
        :class:`Assignment`. SI-SDR per reference is filled whenever streams and references
        are both given, whatever the mode.

    Shape: ``[S, T], [S, T] -> permutation of S``.
    """
    mode = check_assignment_mode(mode)
    pair_si_sdr = None
    if streams is not None and references is not None:
        pair_si_sdr = pairwise_si_sdr(streams, references)
        if pair_si_sdr.shape[0] != pair_si_sdr.shape[1]:
            raise ValueError(
                f"{pair_si_sdr.shape[0]} streams but {pair_si_sdr.shape[1]} reference sources; "
                "assignment needs as many streams as sources"
            )
    if mode is None:
        return Assignment(mode=None)
    if mode == "signal":
        if pair_si_sdr is None:
            raise ValueError("assignment mode 'signal' needs both streams and references")
        cost = -pair_si_sdr
    else:
        if labels is None or stream_spoof_probability is None:
            raise ValueError(
                "assignment mode 'labels' needs the true labels and the stream spoof probability"
            )
        cost = label_cost(stream_spoof_probability, labels, spoof_threshold=spoof_threshold)
    perm = best_permutation(cost)
    assigned_si_sdr = None
    if pair_si_sdr is not None:
        assigned_si_sdr = np.array(
            [pair_si_sdr[stream, reference] for stream, reference in enumerate(perm)]
        )
        assigned_si_sdr = reorder(assigned_si_sdr, perm)
    return Assignment(mode=mode, permutation=perm, cost=cost, si_sdr=assigned_si_sdr)


def si_sdr_improvement(assigned_streams, references, mixture, *, assigned_si_sdr=None) -> float:
    """Mean SI-SDR improvement (SI-SDRi, dB) of assigned streams over the unprocessed mixture.

    ``assigned_streams[j]`` is the stream assigned to ``references[j]``; the improvement is
    ``mean_j SI-SDR(stream_j, ref_j) - SI-SDR(mixture, ref_j)``. ``assigned_si_sdr`` (``[S]``,
    e.g. :attr:`Assignment.si_sdr`) skips recomputing the first term.

    Shape: ``[S, T], [S, T], [T] -> float``.
    """
    references = np.asarray(_as_numpy(references), dtype=np.float64)
    mixture = np.asarray(_as_numpy(mixture), dtype=np.float64)
    if mixture.ndim != 1:
        raise ValueError(f"mixture must be [T], got shape {mixture.shape}")
    if assigned_si_sdr is None:
        separated = si_sdr(assigned_streams, references)
    else:
        separated = np.asarray(assigned_si_sdr, dtype=np.float64)
    baseline = pairwise_si_sdr(mixture[None, :], references)[0]
    return float(np.mean(separated - baseline))


@dataclass
class MixtureDecision:
    """Mixture-level outputs that need no assignment.

    ``spoof_present_score`` is the highest stream spoof probability (higher = a spoof is more
    likely present); ``bonafide_score`` is its ASVspoof-oriented counterpart (higher = the
    mixture is more likely all bonafide), used for the spoof-present EER.
    """

    predicted_labels: list[str]
    composition: str
    n_spoofed: int
    spoof_present_score: float
    bonafide_score: float

    @property
    def spoof_present(self) -> bool:
        return self.n_spoofed > 0


def mixture_decision(
    stream_spoof_probability, *, spoof_threshold: float = 0.5, cm_score=None
) -> MixtureDecision:
    """Composition label, number of spoofed speakers and spoof-present score of one mixture.

    Args:
        stream_spoof_probability: ``[S]`` spoof probability of each separated stream.
        spoof_threshold: a stream is called spoof when its probability is >= this.
        cm_score: optional ``[S]`` ASVspoof scores (higher = bonafide); when given, the
            mixture's ``bonafide_score`` is their minimum (no saturation ties), otherwise the
            negated maximum spoof probability.

    Shape: ``[S] -> MixtureDecision``.
    """
    probability = np.asarray(_as_numpy(stream_spoof_probability), dtype=np.float64).reshape(-1)
    if probability.size == 0:
        raise ValueError("no stream probabilities")
    if not np.all(np.isfinite(probability)):
        raise ValueError("stream spoof probabilities contain NaN or infinite values")
    if not 0.0 <= spoof_threshold <= 1.0:
        raise ValueError(f"spoof_threshold must be in [0, 1], got {spoof_threshold}")
    predicted = [SPOOF if value >= spoof_threshold else BONAFIDE for value in probability]
    if cm_score is not None:
        scores = np.asarray(_as_numpy(cm_score), dtype=np.float64).reshape(-1)
        bonafide_score = float(np.min(scores))
    else:
        bonafide_score = -float(np.max(probability))
    composition = composition_label(predicted)
    return MixtureDecision(
        predicted_labels=predicted,
        composition=composition,
        n_spoofed=composition.count("S"),
        spoof_present_score=float(np.max(probability)),
        bonafide_score=bonafide_score,
    )
