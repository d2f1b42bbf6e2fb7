"""How well an embedder tells speakers apart: verification EER and clustering accuracy.

* **Verification** (:func:`trial_scores`, :func:`verification_eer`): every pair of utterances is a
  trial, *target* when both are of one speaker; its score is the cosine similarity of their
  embeddings (higher = same speaker). The EER and its threshold are computed with
  :func:`amongus.metrics.eer` (the ASVspoof 2019 procedure), target scores in the role of the
  positive class.
* **Clustering** (:func:`clustering_accuracy`): what a conversation pipeline does with the
  embeddings of its segments. ``k`` speakers are drawn, a few segments of each, and the segments
  are clustered by agglomerative clustering on cosine distance with average linkage
  (``sklearn.cluster.AgglomerativeClustering``), once with ``k`` given and once with the number
  of clusters found by cutting the tree at ``1 - threshold``. Accuracy is the share of segments
  in the right cluster under the best one-to-one mapping of clusters to speakers (Hungarian
  algorithm), the usual purity-style measure of speaker clustering.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np


def trial_scores(embeddings: np.ndarray, speakers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of every pair of rows: ``(target_scores, nontarget_scores)``.

    Args:
        embeddings: ``[N, D]`` (normalised here).
        speakers: ``N`` speaker ids.

    Raises:
        ValueError: lengths differ, or there are no target or no non-target pairs.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(speakers):
        raise ValueError(
            f"expected [N, D] embeddings for {len(speakers)} speakers, got {embeddings.shape}"
        )
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    scores = unit @ unit.T
    upper = np.triu_indices(len(speakers), k=1)
    labels = np.asarray(speakers)
    same = labels[upper[0]] == labels[upper[1]]
    values = scores[upper]
    if not same.any() or same.all():
        raise ValueError("trials need at least two utterances of one speaker and two speakers")
    return values[same], values[~same]


def verification_eer(embeddings: np.ndarray, speakers: Sequence[str]) -> dict[str, Any]:
    """EER (fraction) and its cosine threshold over all pairs (see the module doc)."""
    from ..metrics import eer

    target, nontarget = trial_scores(embeddings, speakers)
    value, threshold = eer(target, nontarget, warn_inverted=False)
    return {
        "eer": float(value),
        "threshold": float(threshold),
        "target_trials": int(target.size),
        "nontarget_trials": int(nontarget.size),
        "target_mean": float(target.mean()),
        "nontarget_mean": float(nontarget.mean()),
    }


def cluster(embeddings: np.ndarray, *, n_clusters: int | None = None, threshold: float = 0.25):
    """Agglomerative clustering (cosine, average linkage) into ``n_clusters``, or, without it,
    cut where clusters are less similar than ``threshold`` (cosine similarity).

    Returns:
        ``[N]`` integer cluster labels.
    """
    from sklearn.cluster import AgglomerativeClustering

    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.shape[0] == 1:
        return np.zeros(1, dtype=int)
    options: dict[str, Any] = {"metric": "cosine", "linkage": "average"}
    if n_clusters is None:
        options.update(n_clusters=None, distance_threshold=1.0 - float(threshold))
    else:
        options.update(n_clusters=int(n_clusters))
    return AgglomerativeClustering(**options).fit_predict(embeddings)


def mapped_accuracy(truth: Sequence[str], clusters: Sequence[int]) -> float:
    """Share of items whose cluster maps to their speaker, under the best one-to-one mapping."""
    from scipy.optimize import linear_sum_assignment

    speakers = sorted(set(truth))
    labels = sorted(set(int(c) for c in clusters))
    counts = np.zeros((len(speakers), len(labels)))
    for speaker, label in zip(truth, clusters, strict=True):
        counts[speakers.index(speaker), labels.index(int(label))] += 1
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(truth))


def clustering_accuracy(
    embeddings: np.ndarray,
    speakers: Sequence[str],
    *,
    n_speakers: Sequence[int] = (2, 3, 4),
    segments_per_speaker: int = 3,
    draws: int = 100,
    threshold: float = 0.25,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean clustering accuracy of ``draws`` random groups of ``k`` speakers, for each ``k``.

    Returns:
        ``{"k=2": {"accuracy_known_k": ..., "accuracy_estimated_k": ...,
        "k_found_exactly": ..., "draws": ...}, ...}``; groups are drawn with ``seed``.
    """
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for index, speaker in enumerate(speakers):
        by_speaker[speaker].append(index)
    eligible = sorted(s for s, rows in by_speaker.items() if len(rows) >= segments_per_speaker)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    report: dict[str, Any] = {}
    for k in n_speakers:
        if len(eligible) < k:
            continue
        known, estimated, exact = [], [], []
        for _ in range(draws):
            group = rng.choice(len(eligible), size=k, replace=False)
            rows, truth = [], []
            for g in group:
                chosen = rng.choice(
                    by_speaker[eligible[g]], size=segments_per_speaker, replace=False
                )
                rows.extend(int(c) for c in chosen)
                truth.extend([eligible[g]] * segments_per_speaker)
            subset = embeddings[rows]
            known.append(mapped_accuracy(truth, cluster(subset, n_clusters=k)))
            found = cluster(subset, threshold=threshold)
            estimated.append(mapped_accuracy(truth, found))
            exact.append(len(set(found.tolist())) == k)
        report[f"k={k}"] = {
            "accuracy_known_k": round(float(np.mean(known)), 4),
            "accuracy_estimated_k": round(float(np.mean(estimated)), 4),
            "k_found_exactly": round(float(np.mean(exact)), 4),
            "draws": draws,
            "segments_per_speaker": segments_per_speaker,
        }
    return report
