"""Training data: (stream, label) groups read from the stream cache, in a seeded, resumable order.

* :func:`split_mixtures` / :func:`subset_fraction`: the seeded train/validation split (by
  mixture) and the seeded data fraction.
* :class:`CachedStreamDataset`: item ``i`` is mixture ``i``'s streams (cropped, and augmented
  when training with an :class:`~amongus.augment.Augmenter`) with the stream labels of the signal
  assignment and the sources' labels (for the label-permutation loss).
* :class:`BucketBatchSampler`: batches of mixtures of similar length (less padding), in an
  order that is a pure function of ``(seed, epoch)``; its state (epoch, batches) is saved in
  every checkpoint, so a resumed run sees exactly the batches the interrupted one would have.
* :class:`StreamCollator`: flattens a batch of mixtures into streams and pads them with the
  classifier's ``prepare`` (attention mask included).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..labels import SPOOF, normalize_label
from .stream_cache import CacheEntry, StreamCache


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(key) & 0xFFFFFFFF for key in keys])


def split_mixtures(mixtures: Sequence, *, val_fraction: float, seed: int) -> tuple[list, list]:
    """Seeded split of one training set into (train, validation), by mixture.

    At least one mixture goes to each side when ``val_fraction > 0`` and there are two or more.
    """
    mixtures = list(mixtures)
    if val_fraction <= 0 or len(mixtures) < 2:
        return mixtures, []
    n_val = min(len(mixtures) - 1, max(1, round(val_fraction * len(mixtures))))
    order = _rng(seed, 1).permutation(len(mixtures))
    val_index = set(order[:n_val].tolist())
    train = [m for i, m in enumerate(mixtures) if i not in val_index]
    val = [m for i, m in enumerate(mixtures) if i in val_index]
    return train, val


def subset_fraction(mixtures: Sequence, *, fraction: float, seed: int) -> list:
    """A seeded subset of ``ceil(fraction * N)`` mixtures (at least one), in original order."""
    mixtures = list(mixtures)
    if not 0 < fraction <= 1:
        raise ValueError(f"data fraction must be in (0, 1], got {fraction}")
    if fraction >= 1 or not mixtures:
        return mixtures
    n_keep = max(1, math.ceil(fraction * len(mixtures)))
    keep = np.sort(_rng(seed, 2).permutation(len(mixtures))[:n_keep])
    return [mixtures[i] for i in keep.tolist()]


def crop_window(n_samples: int, max_samples: int | None, *, offset_rng=None) -> tuple[int, int]:
    """``(start, stop)`` of a window of at most ``max_samples``: random with ``offset_rng``,
    centred otherwise."""
    if max_samples is None or n_samples <= max_samples:
        return 0, n_samples
    spare = n_samples - max_samples
    start = int(offset_rng.integers(0, spare + 1)) if offset_rng is not None else spare // 2
    return start, start + max_samples


class CachedStreamDataset(torch.utils.data.Dataset):
    """Mixtures' separated streams from the cache, with their labels.

    Indexed by ``(epoch, i)`` (what :class:`BucketBatchSampler` yields) or ``i``: the epoch
    seeds the random crop of training streams, so the crops are reproducible and need no RNG
    state. Every stream of a mixture gets the same window. With an ``augmenter``, stream ``s`` of
    mixture ``i`` in epoch ``e`` is augmented with a generator seeded by ``(seed, e, i, s)``: the
    same in every run, in any worker process, before and after a resume.

    Args:
        cache: the stream cache.
        entries: one cache entry per mixture.
        label_to_index: maps "bonafide"/"spoof" to the classifier's class index.
        max_samples: crop length at the stream rate (``None``: whole streams).
        random_crop: seeded random window (training) instead of the centre (validation).
        seed: the run's seed.
        require_assignment: raise when an entry has no signal assignment (signal mode).
        augmenter: waveform augmentation applied to each cropped stream (training only), e.g.
            :class:`amongus.augment.Augmenter`; ``None`` for none.
    """

    def __init__(
        self,
        cache: StreamCache,
        entries: Sequence[CacheEntry],
        *,
        label_to_index: dict[str, int],
        max_samples: int | None,
        random_crop: bool,
        seed: int,
        require_assignment: bool,
        augmenter: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ):
        self.cache = cache
        self.augmenter = augmenter
        self.entries = list(entries)
        self.label_to_index = label_to_index
        self.max_samples = max_samples
        self.random_crop = random_crop
        self.seed = seed
        if require_assignment:
            missing = [e.mixture_id for e in self.entries if e.stream_labels is None]
            if missing:
                raise ValueError(
                    f"{len(missing)} mixtures have no signal assignment (no reference sources "
                    f"or a stream count that differs from the source count), e.g. {missing[:3]}; "
                    "use assignment='labels'"
                )

    def __len__(self) -> int:
        return len(self.entries)

    def lengths(self) -> list[int]:
        """Samples per item after cropping (for bucketing)."""
        cap = self.max_samples
        return [e.num_samples if cap is None else min(cap, e.num_samples) for e in self.entries]

    def label_counts(self, *, assigned: bool = True) -> dict[str, int]:
        """Streams per label: of the signal assignment (``assigned``), else of the sources."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            labels = entry.stream_labels if assigned else entry.source_labels
            for label in labels or []:
                if label is not None:
                    counts[label] = counts.get(label, 0) + 1
        return counts

    def __getitem__(self, key) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        entry = self.entries[index]
        streams = self.cache.load(entry)
        rng = _rng(self.seed, 3, epoch, index) if self.random_crop else None
        start, stop = crop_window(entry.num_samples, self.max_samples, offset_rng=rng)
        window = np.asarray(streams[:, start:stop], dtype=np.float32)
        if self.augmenter:
            window = np.stack(
                [
                    self.augmenter(stream, _rng(self.seed, 5, epoch, index, position))
                    for position, stream in enumerate(window)
                ]
            )
        stream_labels = entry.stream_labels or [None] * entry.n_streams
        return {
            "index": index,
            "streams": list(window),
            "labels": [-100 if lab is None else self.label_to_index[lab] for lab in stream_labels],
            "source_labels": [self.label_to_index[lab] for lab in entry.source_labels],
        }


class StreamCollator:
    """Flatten a batch of mixtures into streams and pad them with the classifier's ``prepare``.

    Returns ``input_values [N, T]``, ``attention_mask [N, T]``, ``labels [N]`` (signal
    assignment; -100 when none), ``source_labels [N]`` (the sources' labels, in mixture order,
    for the label-permutation loss), ``group_sizes [B]`` (streams per mixture) and ``index [B]``.
    """

    def __init__(self, prepare: Callable[[list[np.ndarray]], dict[str, torch.Tensor]]):
        self.prepare = prepare

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        streams = [stream for item in items for stream in item["streams"]]
        batch = dict(self.prepare(streams))
        batch["labels"] = torch.tensor([lab for item in items for lab in item["labels"]])
        batch["source_labels"] = torch.tensor(
            [lab for item in items for lab in item["source_labels"]]
        )
        batch["group_sizes"] = torch.tensor([len(item["streams"]) for item in items])
        batch["index"] = torch.tensor([item["index"] for item in items])
        return batch


class BucketBatchSampler:
    """Seeded, length-bucketed batches of item indices whose order is checkpointed.

    Each epoch: a permutation of the items seeded by ``(seed, epoch)``; windows of
    ``batch_size * bucket_size`` items are sorted by length and cut into batches (so a batch
    holds items of similar length: little padding); then the batches are shuffled. With
    ``shuffle=False`` (validation) items are sorted by length only.

    Yields lists of ``(epoch, index)`` keys for :class:`CachedStreamDataset`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        batch_size: int,
        seed: int,
        bucket_size: int = 50,
        shuffle: bool = True,
    ):
        if batch_size < 1 or bucket_size < 1:
            raise ValueError("batch_size and bucket_size must be >= 1")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.bucket_size = bucket_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._batches: list[list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = None

    def make_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's batches: a pure function of ``(seed, epoch)``."""
        n_items = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return [
                order[i : i + self.batch_size].tolist() for i in range(0, n_items, self.batch_size)
            ]
        rng = _rng(self.seed, 4, epoch)
        order = rng.permutation(n_items)
        window = self.batch_size * self.bucket_size
        batches = []
        for begin in range(0, n_items, window):
            chunk = order[begin : begin + window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(
                chunk[i : i + self.batch_size].tolist()
                for i in range(0, len(chunk), self.batch_size)
            )
        return [batches[i] for i in rng.permutation(len(batches)).tolist()]

    @property
    def batches(self) -> list[list[int]]:
        if self._batches is None:
            self._batches = self.make_batches(self.epoch)
        return self._batches

    def __iter__(self):
        epoch = self.epoch
        for batch in self.batches:
            yield [(epoch, index) for index in batch]

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size) if len(self.lengths) else 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(
                f"checkpoint data order was made with seed {state['seed']}, this run has {self.seed}"
            )
        self.epoch = int(state["epoch"])
        batches = [list(map(int, batch)) for batch in state["batches"]]
        if sorted(i for batch in batches for i in batch) != list(range(len(self.lengths))):
            raise ValueError(
                "checkpoint data order does not cover this dataset: the training data changed "
                "since the checkpoint was written"
            )
        self._batches = batches


def label_to_index_map(spoof_index: int, n_classes: int) -> dict[str, int]:
    """Amongus labels -> the classifier's class indices (binary classifiers)."""
    if n_classes != 2:
        raise ValueError(f"training needs a two-class classifier, got {n_classes} classes")
    return {SPOOF: spoof_index, normalize_label("bonafide"): 1 - spoof_index}
