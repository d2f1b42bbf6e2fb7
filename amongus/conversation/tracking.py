"""Linking the streams of successive windows into the speakers of a recording.

Each window is separated on its own, so stream 0 of one window need not be stream 0 of the
next, and a speaker who is silent for minutes must still be recognised when they speak again.
As in pyannote's speaker-diarization pipeline (Bredin, *pyannote.audio 2.1 speaker diarization
pipeline: principle, benchmark, and recipe*, Interspeech 2023: local segmentation, one speaker
embedding per local speaker, agglomerative clustering of the embeddings with a "cannot-link"
between the speakers of one chunk), every active stream of every window gets a speaker
embedding, and the embeddings are clustered by scikit-learn's ``AgglomerativeClustering``
(average linkage, cosine distance):

* two streams of the same window are two different people (the separator split them): their
  distance is set to :data:`CANNOT_LINK`. Average linkage merges two clusters at the mean of
  their pairwise distances, so a penalty of the order of a cosine distance would be diluted in
  large clusters (two speakers who share a few windows out of hundreds would merge); 1000 keeps
  the mean above any threshold while a tenth of a percent of the pairs conflict, so clusters
  that share windows do not merge unless ``n_speakers`` forces it;
* **stream continuity** breaks ties: consecutive windows overlap, and on the overlap the same
  speaker's two streams are nearly the same signal. Streams whose overlap correlation is above
  ``min_correlation`` (paired one-to-one by the Hungarian algorithm) have their distance
  lowered by ``continuity_weight x correlation``.

The clusters are cut at ``distance_threshold`` (cosine distance), or into ``n_speakers``
clusters when the number of speakers is known.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CANNOT_LINK", "cluster_streams", "continuity_links"]

#: Distance between two streams of the same window (cosine distances lie in [0, 2]).
CANNOT_LINK = 1000.0


def continuity_links(
    previous: np.ndarray, current: np.ndarray, *, min_correlation: float = 0.5
) -> list[tuple[int, int, float]]:
    """Pairs of streams that continue each other across the overlap of two windows.

    Args:
        previous: ``[S1, N]`` the previous window's active streams on the overlap.
        current: ``[S2, N]`` the current window's active streams on the same samples.
        min_correlation: the least Pearson correlation of a kept pair.

    Returns:
        ``(row in previous, row in current, correlation)`` for a one-to-one pairing that
        maximises the total correlation (``scipy.optimize.linear_sum_assignment``).
    """
    from scipy.optimize import linear_sum_assignment

    previous = np.atleast_2d(np.asarray(previous, dtype=np.float64))
    current = np.atleast_2d(np.asarray(current, dtype=np.float64))
    if previous.size == 0 or current.size == 0 or previous.shape[-1] < 2:
        return []
    a = previous - previous.mean(axis=1, keepdims=True)
    b = current - current.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
    correlation = np.divide(a @ b.T, norms, out=np.zeros((a.shape[0], b.shape[0])), where=norms > 0)
    rows, cols = linear_sum_assignment(-correlation)
    return [
        (int(r), int(c), float(correlation[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if correlation[r, c] >= min_correlation
    ]


def cluster_streams(
    embeddings: np.ndarray,
    windows: np.ndarray,
    *,
    links: list[tuple[int, int, float]] = (),
    n_speakers: int | None = None,
    distance_threshold: float = 0.5,
    continuity_weight: float = 0.3,
) -> np.ndarray:
    """Speaker labels of stream embeddings.

    Args:
        embeddings: ``[N, D]`` one embedding per active stream (any scale; compared by cosine).
        windows: ``[N]`` the window of each stream (streams of one window cannot link).
        links: ``(i, j, correlation)`` continuity pairs between streams ``i`` and ``j``
            (:func:`continuity_links`, in stream indices).
        n_speakers: the number of speakers, when known (capped at ``N``); else the clusters
            are cut at ``distance_threshold``.
        distance_threshold: cosine distance (``1 - cosine similarity``) above which clusters
            are not merged.
        continuity_weight: how much a continuity link lowers a distance.

    Returns:
        ``[N]`` integer labels ``0..K-1``, numbered in order of first appearance.

    Raises:
        ValueError: ``n_speakers`` < 1, or shapes that disagree.
    """
    from sklearn.cluster import AgglomerativeClustering

    embeddings = np.asarray(embeddings, dtype=np.float64)
    windows = np.asarray(windows)
    if embeddings.ndim != 2 or windows.shape != (embeddings.shape[0],):
        raise ValueError(
            f"expected embeddings [N, D] and windows [N], got {embeddings.shape} and "
            f"{windows.shape}"
        )
    if n_speakers is not None and n_speakers < 1:
        raise ValueError(f"n_speakers must be >= 1, got {n_speakers}")
    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.maximum(norms, 1e-12)
    distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    for i, j, correlation in links:
        lowered = max(0.0, distance[i, j] - continuity_weight * correlation)
        distance[i, j] = distance[j, i] = lowered
    same_window = windows[:, None] == windows[None, :]
    distance[same_window] = CANNOT_LINK
    np.fill_diagonal(distance, 0.0)
    if n_speakers is not None:
        model = AgglomerativeClustering(
            n_clusters=min(int(n_speakers), n), metric="precomputed", linkage="average"
        )
    else:
        model = AgglomerativeClustering(
            n_clusters=None,
            distance_threshold=float(distance_threshold),
            metric="precomputed",
            linkage="average",
        )
    raw = model.fit_predict(distance)
    order: dict[int, int] = {}
    for label in raw:
        order.setdefault(int(label), len(order))
    return np.array([order[int(label)] for label in raw], dtype=int)
