"""Fixed-length model inputs from streams of any length: the input length policy of a family.

Countermeasures such as AASIST and SSL_W2V were trained and evaluated on inputs of one length
(64,600 samples at 16 kHz, about 4 s). :class:`SegmentPolicy` turns a stream into such inputs:

* a **short** stream is repeated end to end until it fills a segment, then cut (the reference
  evaluation's padding: ``pad`` in clovaai/aasist ``data_utils.py`` tiles the waveform); an empty
  stream becomes one segment of silence;
* a **long** stream is either cropped to one segment (``"crop"``, at the ``"start"`` as the
  reference evaluation does, or the ``"center"``), or cut into windows of one segment every
  ``hop_samples`` samples, the last window ending at the stream's end (``"window"``), whose
  logits the classifier averages.

Nothing is resampled or normalised here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LONG_POLICIES = ("crop", "window")
CROP_POSITIONS = ("start", "center")


@dataclass(frozen=True)
class SegmentPolicy:
    """How a stream of any length becomes model inputs of exactly ``segment_samples`` samples.

    Attributes:
        segment_samples: the model's input length, in samples at the classifier's rate.
        long_policy: ``"window"`` (every part of the stream is scored, logits averaged) or
            ``"crop"`` (one segment).
        crop_position: ``"start"`` or ``"center"``, for ``long_policy="crop"``.
        hop_samples: hop between windows; ``segment_samples // 2`` when ``None``.

    Raises:
        ValueError: a non-positive length or hop, or an unknown policy.
    """

    segment_samples: int
    long_policy: str = "window"
    crop_position: str = "start"
    hop_samples: int | None = None

    def __post_init__(self) -> None:
        if int(self.segment_samples) < 1:
            raise ValueError(f"segment_samples must be >= 1, got {self.segment_samples}")
        if self.long_policy not in LONG_POLICIES:
            raise ValueError(
                f"long_policy must be one of {LONG_POLICIES}, got {self.long_policy!r}"
            )
        if self.crop_position not in CROP_POSITIONS:
            raise ValueError(
                f"crop_position must be one of {CROP_POSITIONS}, got {self.crop_position!r}"
            )
        if self.hop_samples is not None and int(self.hop_samples) < 1:
            raise ValueError(f"hop_samples must be >= 1, got {self.hop_samples}")

    @property
    def hop(self) -> int:
        return int(self.hop_samples or max(1, self.segment_samples // 2))

    def fill(self, array: np.ndarray) -> np.ndarray:
        """Repeat a short stream until it is ``segment_samples`` long (silence when empty).

        Shape: ``[T] -> [segment_samples]`` for ``T <= segment_samples``.
        """
        size = self.segment_samples
        if array.shape[0] == 0:
            return np.zeros(size, dtype=np.float32)
        if array.shape[0] >= size:
            return array[:size]
        return np.tile(array, math.ceil(size / array.shape[0]))[:size]

    def crop(self, array: np.ndarray) -> np.ndarray:
        """One segment of a stream: filled when short, cropped at ``crop_position`` when long.

        Shape: ``[T] -> [segment_samples]``.
        """
        size = self.segment_samples
        if array.shape[0] <= size:
            return self.fill(array)
        start = 0 if self.crop_position == "start" else (array.shape[0] - size) // 2
        return array[start : start + size]

    def segments(self, array: np.ndarray) -> list[np.ndarray]:
        """The model inputs of one stream under this policy.

        Shape: ``[T] -> list of [segment_samples]`` (one item unless windowing a long stream).
        """
        size = self.segment_samples
        if array.shape[0] <= size or self.long_policy == "crop":
            return [self.crop(array)]
        starts = list(range(0, array.shape[0] - size, self.hop)) + [array.shape[0] - size]
        return [array[start : start + size] for start in starts]

    def n_segments(self, n_samples: int) -> int:
        """How many model inputs a stream of ``n_samples`` samples becomes."""
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        if n_samples <= self.segment_samples or self.long_policy == "crop":
            return 1
        return math.ceil((n_samples - self.segment_samples) / self.hop) + 1

    def describe(self) -> str:
        """A short string for identities and reports, e.g. ``"64600|window|hop=32300"``."""
        if self.long_policy == "crop":
            return f"{self.segment_samples}|crop|{self.crop_position}"
        return f"{self.segment_samples}|window|hop={self.hop}"


def as_waveform_list(waveforms, lengths: Sequence[int] | np.ndarray | None = None) -> list:
    """Turn a list of 1-D arrays/tensors or a padded ``[N, T]`` batch into float32 numpy arrays.

    Args:
        waveforms: a list of ``[T_i]`` arrays or tensors, or a ``[N, T]`` (or ``[T]``) array or
            tensor.
        lengths: valid samples per row of a ``[N, T]`` batch (the rest is padding).

    Raises:
        ValueError: wrong ranks, lengths that do not fit, or NaN/infinite samples (the message
            names the stream).

    Shape: ``list of [T_i] (or [N, T]) -> list of [T_i]``.
    """
    import torch

    if isinstance(waveforms, torch.Tensor):
        waveforms = waveforms.detach().to("cpu", torch.float32).numpy()
    if isinstance(waveforms, np.ndarray):
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        if waveforms.ndim != 2:
            raise ValueError(
                f"waveforms must be [N, T] or a list of [T] arrays, got shape "
                f"{tuple(waveforms.shape)}"
            )
        rows = list(waveforms)
    else:
        rows = list(waveforms)
        if lengths is not None:
            raise ValueError("lengths= is only for a padded [N, T] batch")
    arrays = []
    for index, row in enumerate(rows):
        if isinstance(row, torch.Tensor):
            row = row.detach().to("cpu", torch.float32).numpy()
        array = np.asarray(row, dtype=np.float32)
        if array.ndim != 1:
            raise ValueError(
                f"stream {index}: expected a mono waveform [T], got shape {array.shape}"
            )
        arrays.append(array)
    if lengths is not None:
        lengths = [int(n) for n in np.asarray(torch.as_tensor(lengths).cpu()).reshape(-1)]
        if len(lengths) != len(arrays):
            raise ValueError(f"{len(lengths)} lengths for {len(arrays)} streams")
        for index, (array, length) in enumerate(zip(arrays, lengths, strict=True)):
            if not 0 <= length <= array.shape[0]:
                raise ValueError(f"stream {index}: length {length} outside 0..{array.shape[0]}")
        arrays = [array[:length] for array, length in zip(arrays, lengths, strict=True)]
    for index, array in enumerate(arrays):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"stream {index}: contains NaN or infinite samples")
    return arrays


def split_streams(arrays: Sequence[np.ndarray], segment) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut every stream into its model inputs with ``segment(array) -> list of arrays``.

    Returns:
        ``(segments, owner)``: all the inputs, stream after stream, and ``owner[i]``, the index
        of the stream that ``segments[i]`` comes from.
    """
    segments: list[np.ndarray] = []
    owner: list[int] = []
    for stream_index, array in enumerate(arrays):
        pieces = segment(array)
        segments.extend(pieces)
        owner.extend([stream_index] * len(pieces))
    return segments, np.asarray(owner, dtype=np.int64)


def average_stream_logits(
    segment_logits: np.ndarray, owner: np.ndarray, n_streams: int
) -> np.ndarray:
    """Average the logits of each stream's inputs (its windows; one input with ``"crop"``).

    Shape: ``segment_logits [S, C], owner [S] -> [n_streams, C]`` float64.
    """
    counts = np.bincount(owner, minlength=n_streams).astype(np.float64)
    stream_logits = np.zeros((n_streams, segment_logits.shape[1]), dtype=np.float64)
    np.add.at(stream_logits, owner, segment_logits)
    return stream_logits / counts[:, None]
