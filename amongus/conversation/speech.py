"""Speech activity of separated streams, and where two streams speak at once.

An energy detector with hysteresis, in the manner of the classic double-threshold endpoint
detectors (Rabiner & Sambur, *An algorithm for determining the endpoints of isolated
utterances*, Bell System Technical Journal 1975): 10 ms frames whose RMS level rises above an
*onset* threshold start a speech region, which then lasts while the level stays above a lower
*offset* threshold; gaps shorter than ``min_silence`` are bridged and regions shorter than
``min_speech`` dropped. Thresholds are relative to the recording's speech level (the 95th
percentile of its frame levels, :meth:`RecordingReader.check`), with an absolute floor, so the
detector does not depend on the recording's gain.

After a separator, a stream also counts as silent in a frame where it is more than
``dominance_db`` below the loudest stream of the same window: what a separator leaks of the
other speaker sits 15 dB or more below it, while two people who really talk at once are within
a few dB of each other. Frames where two or more streams are active are **overlapped speech**.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpeechSettings", "frame_levels", "overlap_mask", "regions", "speech_activity"]

#: Frame length of the detector (seconds).
FRAME_SECONDS = 0.01


@dataclass(frozen=True)
class SpeechSettings:
    """The detector's thresholds.

    Attributes:
        onset_db: a region starts in a frame at least this loud, in dB relative to the
            recording's speech level (negative: below it).
        offset_db: and lasts while frames stay above this (dB relative; below ``onset_db``).
        floor_dbfs: frames below this absolute level (dBFS) are never speech.
        dominance_db: a stream more than this many dB below the loudest stream of the frame is
            silent there (separator leakage).
        min_speech: regions shorter than this (seconds) are dropped.
        min_silence: gaps shorter than this (seconds) are bridged.
    """

    onset_db: float = -30.0
    offset_db: float = -40.0
    floor_dbfs: float = -60.0
    dominance_db: float = 20.0
    min_speech: float = 0.2
    min_silence: float = 0.3

    def __post_init__(self):
        if self.offset_db > self.onset_db:
            raise ValueError(
                f"offset_db ({self.offset_db}) must not be above onset_db ({self.onset_db})"
            )
        if self.min_speech < 0 or self.min_silence < 0 or self.dominance_db <= 0:
            raise ValueError("min_speech and min_silence must be >= 0, dominance_db > 0")


def frame_levels(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level (dBFS) of consecutive 10 ms frames; a trailing partial frame is dropped.

    Shape: ``[..., T] -> [..., T // frame]``.
    """
    signal = np.asarray(signal, dtype=np.float64)
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    n = signal.shape[-1] // frame
    framed = signal[..., : n * frame].reshape(*signal.shape[:-1], n, frame)
    return 10.0 * np.log10(np.mean(framed**2, axis=-1) + 1e-20)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` frame runs of True."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _hysteresis(levels: np.ndarray, onset: float, offset: float) -> np.ndarray:
    candidate = levels > offset
    active = np.zeros_like(candidate)
    for start, end in _runs(candidate):
        if np.any(levels[start:end] > onset):
            active[start:end] = True
    return active


def _smooth(mask: np.ndarray, min_speech: int, min_silence: int) -> np.ndarray:
    mask = mask.copy()
    for start, end in _runs(~mask):
        if 0 < start and end < mask.size and end - start < min_silence:
            mask[start:end] = True
    for start, end in _runs(mask):
        if end - start < min_speech:
            mask[start:end] = False
    return mask


def speech_activity(
    levels: np.ndarray, reference_db: float, settings: SpeechSettings | None = None
) -> np.ndarray:
    """Speech frames of the streams of one window.

    Args:
        levels: ``[S, F]`` frame levels (dBFS) of ``S`` streams (:func:`frame_levels`).
        reference_db: the recording's speech level (dBFS) the thresholds are relative to.
        settings: thresholds (default :class:`SpeechSettings`).

    Returns:
        ``[S, F]`` boolean: speech in the stream at that frame.
    """
    settings = settings or SpeechSettings()
    levels = np.atleast_2d(np.asarray(levels, dtype=np.float64))
    onset = max(reference_db + settings.onset_db, settings.floor_dbfs)
    offset = max(reference_db + settings.offset_db, settings.floor_dbfs)
    dominant = levels >= levels.max(axis=0, keepdims=True) - settings.dominance_db
    min_speech = round(settings.min_speech / FRAME_SECONDS)
    min_silence = round(settings.min_silence / FRAME_SECONDS)
    out = np.zeros(levels.shape, dtype=bool)
    for row in range(levels.shape[0]):
        masked = np.where(dominant[row], levels[row], -np.inf)
        out[row] = _smooth(_hysteresis(masked, onset, offset), min_speech, min_silence)
    return out


def overlap_mask(activity: np.ndarray) -> np.ndarray:
    """Frames where two or more streams speak. Shape: ``[S, F] -> [F]``."""
    activity = np.atleast_2d(np.asarray(activity, dtype=bool))
    return activity.sum(axis=0) >= 2


def regions(mask: np.ndarray, *, offset_seconds: float = 0.0) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of the True runs of a frame mask whose first frame starts at
    ``offset_seconds``."""
    return [
        (offset_seconds + start * FRAME_SECONDS, offset_seconds + end * FRAME_SECONDS)
        for start, end in _runs(np.asarray(mask, dtype=bool))
    ]
