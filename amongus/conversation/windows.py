"""Fixed analysis windows over a long recording, read block by block.

A recording of ``T`` samples is cut into windows of ``window`` samples every ``hop`` samples
(6 s every 3 s by default), the last one aligned to the recording's end so that every window
but the one of a recording shorter than a window has the full length. Each window owns a
**core**: the part of the recording closer to its centre than to any other window's centre.
Cores partition ``[0, T)`` exactly, so stitching per-window decisions by their cores covers
every sample once (the overlap-and-keep-the-centre rule of sliding-window diarization, e.g.
pyannote's speaker-diarization pipeline, Bredin, Interspeech 2023, which aggregates
overlapping local windows).

:class:`RecordingReader` reads a window's samples from a file with soundfile's ``seek`` and
``read`` (never the whole file), or slices an in-memory array, so the models only ever see one
window at a time and memory does not grow with the recording's length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio import to_mono
from ..validation import (
    SILENCE_FRAME_SECONDS,
    SILENCE_THRESHOLD_DBFS,
    InvalidAudioError,
    check_audio,
    check_header,
)

__all__ = ["RecordingReader", "Window", "window_plan"]


@dataclass(frozen=True)
class Window:
    """One analysis window, in samples of the recording's rate.

    Attributes:
        index: position in the plan (0, 1, ...).
        start, end: the window ``[start, end)``.
        core_start, core_end: the part of the recording this window decides for
            (``start <= core_start < core_end <= end``); cores of a plan partition the recording.
    """

    index: int
    start: int
    end: int
    core_start: int
    core_end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def window_plan(
    num_samples: int, sample_rate: int, window_seconds: float = 6.0, hop_seconds: float = 3.0
) -> list[Window]:
    """The windows of a recording of ``num_samples`` samples at ``sample_rate`` Hz.

    Windows start every ``hop_seconds``; the last starts at ``num_samples - window`` so that it
    ends with the recording; a recording shorter than one window is one window.

    Raises:
        ValueError: ``num_samples`` < 1, a non-positive length, or ``hop_seconds`` longer than
            ``window_seconds`` (the windows would leave gaps).
    """
    if num_samples < 1:
        raise ValueError(f"a recording needs samples, got {num_samples}")
    if not (window_seconds > 0 and hop_seconds > 0):
        raise ValueError(
            f"window_seconds and hop_seconds must be positive, got {window_seconds}, {hop_seconds}"
        )
    if hop_seconds > window_seconds:
        raise ValueError(
            f"hop_seconds ({hop_seconds}) must not exceed window_seconds ({window_seconds}): "
            "the windows would leave parts of the recording unanalysed"
        )
    window = max(1, round(window_seconds * sample_rate))
    hop = max(1, round(hop_seconds * sample_rate))
    if num_samples <= window:
        return [Window(0, 0, num_samples, 0, num_samples)]
    starts = list(range(0, num_samples - window, hop))
    starts.append(num_samples - window)
    if len(starts) > 1 and starts[-1] == starts[-2]:
        starts.pop()
    centres = [start + window / 2 for start in starts]
    windows = []
    for index, start in enumerate(starts):
        core_start = 0 if index == 0 else math.floor((centres[index - 1] + centres[index]) / 2)
        core_end = (
            num_samples
            if index == len(starts) - 1
            else math.floor((centres[index] + centres[index + 1]) / 2)
        )
        windows.append(Window(index, start, start + window, core_start, core_end))
    return windows


class RecordingReader:
    """Mono float32 samples of a recording, window by window.

    Args:
        source: a file path (any format soundfile reads; channels are averaged) or a ``[T]``
            array.
        sample_rate: the rate of an array source (ignored for files).
        name: names the recording in errors (default: the path, or ``"array input"``).

    Raises:
        amongus.validation.InvalidAudioError: a missing, unreadable, empty or too short file,
            or an array that is not ``[T]`` (reason ``layout``); :meth:`check` raises for
            non-finite or silent audio.
        ValueError: an array without ``sample_rate``.
    """

    #: Samples decoded per block by :meth:`check` (about 4 MB of float32 per channel).
    BLOCK = 1 << 20

    def __init__(self, source, sample_rate: int | None = None, *, name: str | None = None):
        self.path: str | None = None
        self._array: np.ndarray | None = None
        if isinstance(source, str | os.PathLike):
            self.path = str(source)
            self.name = name or self.path
            info = check_header(self.path)
            self.sample_rate = int(info.samplerate)
            self.num_samples = int(info.frames)
        else:
            self.name = name or "array input"
            if sample_rate is None:
                raise ValueError(f"{self.name}: an array recording needs sample_rate=")
            array = np.asarray(
                source.detach().cpu().numpy() if hasattr(source, "detach") else source
            )
            if array.ndim != 1:
                raise InvalidAudioError(
                    self.name, "layout", f"expected mono audio [T], got shape {array.shape}"
                )
            self._array = array.astype(np.float32, copy=False)
            self.sample_rate = int(sample_rate)
            self.num_samples = int(array.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sample_rate

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)`` as float32 mono ``[end - start]``.

        Raises:
            amongus.validation.InvalidAudioError: the file cannot be decoded there
                (``unreadable``) or holds NaN/inf there (``non_finite``).
        """
        start, end = max(0, int(start)), min(self.num_samples, int(end))
        if self._array is not None:
            block = self._array[start:end]
        else:
            import soundfile as sf

            try:
                with sf.SoundFile(self.path) as handle:
                    handle.seek(start)
                    block = handle.read(end - start, dtype="float32", always_2d=True)
            except (RuntimeError, sf.LibsndfileError) as error:
                raise InvalidAudioError(
                    self.name, "unreadable", f"{type(error).__name__}: {str(error)[:120]}"
                ) from error
            block = to_mono(block) if block.shape[1] > 1 else block[:, 0]
        if not np.all(np.isfinite(block)):
            raise InvalidAudioError(
                self.name, "non_finite", f"NaN or infinite samples in [{start}, {end})"
            )
        return np.ascontiguousarray(block, dtype=np.float32)

    def blocks(self, size: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, samples)`` over the whole recording in blocks of ``size`` samples."""
        size = int(size or self.BLOCK)
        for start in range(0, self.num_samples, size):
            yield start, self.read(start, start + size)

    def check(self) -> float:
        """Apply the validation policy block by block; returns the recording's speech level.

        The level is the 95th percentile of the 10 ms frame RMS levels in dBFS over the
        recording (a robust "loud speech" level that one click does not move), the reference of
        the speech activity detector (:mod:`amongus.conversation.speech`).

        Raises:
            amongus.validation.InvalidAudioError: ``non_finite``, ``unreadable`` or ``silent``
                (the loudest frame of the whole recording below the policy's threshold).
        """
        frame = max(1, round(SILENCE_FRAME_SECONDS * self.sample_rate))
        size = frame * max(1, self.BLOCK // frame)
        levels = []
        for _, block in self.blocks(size):
            n = block.shape[0] // frame
            if n:
                power = np.mean(block[: n * frame].astype(np.float64).reshape(n, frame) ** 2, 1)
                levels.append(10 * np.log10(power + 1e-20))
        if not levels:  # shorter than one frame: the policy's own checks say why
            check_audio(self.read(0, self.num_samples), self.sample_rate, path=self.name)
        level = np.concatenate(levels)
        if float(level.max()) < SILENCE_THRESHOLD_DBFS:
            raise InvalidAudioError(
                self.name,
                "silent",
                f"loudest {SILENCE_FRAME_SECONDS * 1000:.0f} ms frame at {level.max():.1f} dBFS, "
                f"below the {SILENCE_THRESHOLD_DBFS:.0f} dBFS threshold",
            )
        return float(np.percentile(level, 95))
