"""One input-validation policy for every entry point: mix, evaluate, ``--single``, Pipeline, train.

Every audio input is checked the same way before anything scores, separates or mixes it:

========================  ==========================================================================
reason code               the input is refused when
========================  ==========================================================================
``missing``               the file does not exist
``unreadable``            soundfile cannot read its header or samples
``empty``                 it holds 0 samples
``non_finite``            a sample is NaN or infinite
``layout``                an array is not one mono signal ``[T]`` (files are averaged to mono)
``too_short``             it is shorter than :data:`MIN_DURATION_SECONDS`
``silent``                its loudest 10 ms frame is below :data:`SILENCE_THRESHOLD_DBFS`
``rate_mismatch``         its sample rate differs from the rate its manifest record gives
``length_mismatch``       its length differs from its record by more than
                          :data:`LENGTH_TOLERANCE_SECONDS`
========================  ==========================================================================

The outcome is always one of two things, chosen by the entry point, never a score:

* a single input (``Pipeline(...)("x.wav")``, an array, a ``Mixture``) raises
  :class:`InvalidAudioError`, whose message names the file and starts with the reason code;
* an input among many (``Pipeline.evaluate``, ``evaluate --single``, the Mixer, the Trainer's
  stream cache) is skipped and counted under its reason code in the run's report.

Channel layout: a multi-channel *file* is averaged to mono
(:func:`amongus.audio.load_audio` with ``mono="mix"``, the policy of :func:`amongus.audio.to_mono`),
and the Mixer counts those it downmixed; an *array* handed to the library must already be ``[T]``
(or a ``[B, T]`` batch where the API says so). Rates: a file at any rate is accepted and resampled
by the caller (:func:`amongus.audio.resample`); only a disagreement with the record is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioError, load_audio, resample

# A minimum duration below which no spoof decision means anything: 0.1 s is shorter than one
# syllable (~0.2 s), so no real corpus utterance is refused, yet it is 4x the receptive field of
# the WavLM/wav2vec2 front end (400 samples at 16 kHz), 40x ConvTasNet's encoder kernel and 12x
# the 64 samples SepFormer 8 kHz needs, so every shipped model can run on any accepted input.
MIN_DURATION_SECONDS = 0.1

# Silence: the loudest 10 ms frame (RMS) below -60 dBFS. Measuring the loudest frame, not the
# whole file, keeps sparse speech (a word in 10 s of digital silence) acceptable. -60 dBFS is
# 1/1000 of full scale (~33 LSB in 16-bit PCM): speech recorded at any usable gain peaks 30 dB or
# more above it (the quietest of the 240 real test recordings peaks at -27 dBFS), while all-zero
# files (-inf), 16-bit dither (~ -100 dBFS) and the ~1e-12 "near-silent" sources of issue 12
# (-240 dBFS) fall far below. Classifier front ends normalise their input to unit variance, so
# such a file would otherwise be scored with confidence as amplified noise.
SILENCE_THRESHOLD_DBFS = -60.0
SILENCE_FRAME_SECONDS = 0.01

# File length against its record: 20 ms covers durations rounded to 10 ms and the few samples a
# resampler's length rounding adds; a truncated or swapped file differs by far more.
LENGTH_TOLERANCE_SECONDS = 0.02

REASONS: dict[str, str] = {
    "missing": "the file does not exist",
    "unreadable": "soundfile cannot read the header or the samples",
    "empty": "0 samples",
    "non_finite": "NaN or infinite samples",
    "layout": "not a mono [T] signal",
    "too_short": f"shorter than {MIN_DURATION_SECONDS} s",
    "silent": f"loudest {SILENCE_FRAME_SECONDS * 1000:.0f} ms frame below "
    f"{SILENCE_THRESHOLD_DBFS:.0f} dBFS",
    "rate_mismatch": "sample rate differs from the manifest record",
    "length_mismatch": f"length differs from the manifest record by more than "
    f"{LENGTH_TOLERANCE_SECONDS} s",
}


class InvalidAudioError(AudioError):
    """Audio refused by the validation policy.

    Attributes:
        path: the file (or ``"array input N"`` for arrays).
        reason: one of :data:`REASONS` (``"silent"``, ``"too_short"``...).
        detail: what was measured, in words.

    ``str(error)`` is ``"<path>: <reason>: <detail>"``; ``error.problem`` is
    ``"<reason>: <detail>"``, the text reports count by its reason code.
    """

    def __init__(self, path: str | os.PathLike, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(
                f"unknown validation reason {reason!r}; expected one of {list(REASONS)}"
            )
        self.reason = reason
        self.detail = detail
        super().__init__(path, f"{reason}: {detail}")

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.reason, self.detail)


def policy() -> dict[str, Any]:
    """The thresholds in force, as recorded in reports and cache keys."""
    return {
        "min_duration_seconds": MIN_DURATION_SECONDS,
        "silence_threshold_dbfs": SILENCE_THRESHOLD_DBFS,
        "silence_frame_seconds": SILENCE_FRAME_SECONDS,
        "length_tolerance_seconds": LENGTH_TOLERANCE_SECONDS,
    }


def policy_digest() -> str:
    """A short hash of :func:`policy` (part of the stream cache key)."""
    return hashlib.sha256(json.dumps(policy(), sort_keys=True).encode()).hexdigest()[:12]


def loudest_frame_dbfs(audio: np.ndarray, sample_rate: int) -> float:
    """RMS level (dBFS, full scale = 1.0) of the loudest non-overlapping 10 ms frame.

    A signal shorter than one frame is measured whole; all-zero audio gives ``-inf``.

    Shape: ``[T] -> scalar``.
    """
    audio = np.asarray(audio)
    if audio.dtype.kind != "f":
        audio = audio.astype(np.float64)
    if audio.size == 0:
        return -math.inf
    frame = max(1, int(round(SILENCE_FRAME_SECONDS * sample_rate)))
    n_frames = audio.shape[-1] // frame
    if n_frames == 0:
        energy = float(np.mean(np.square(audio)))
    else:
        framed = audio[: n_frames * frame].reshape(n_frames, frame)
        energy = float(np.einsum("ft,ft->f", framed, framed).max() / frame)
    return 10.0 * math.log10(energy) if energy > 0 else -math.inf


def check_audio(
    audio: np.ndarray,
    sample_rate: int,
    *,
    path: str | os.PathLike = "array input",
    min_duration: float = MIN_DURATION_SECONDS,
) -> np.ndarray:
    """Check decoded audio against the policy; returns it unchanged.

    Args:
        audio: ``[T]`` mono samples, full scale 1.0.
        sample_rate: its rate (Hz).
        path: names the input in the error.
        min_duration: seconds; the policy's :data:`MIN_DURATION_SECONDS` unless a caller is
            stricter (a lower value is raised to the policy's floor).

    Raises:
        InvalidAudioError: ``layout``, ``empty``, ``non_finite``, ``too_short`` or ``silent``.
    """
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"{path}: sample_rate must be a positive integer, got {sample_rate!r}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InvalidAudioError(
            path, "layout", f"expected mono audio of shape [T], got shape {audio.shape}"
        )
    if audio.shape[0] == 0:
        raise InvalidAudioError(path, "empty", "0 samples")
    if not np.all(np.isfinite(audio)):
        raise InvalidAudioError(path, "non_finite", "contains NaN or infinite samples")
    check_duration(audio.shape[0], sample_rate, path=path, min_duration=min_duration)
    level = loudest_frame_dbfs(audio, sample_rate)
    if level < SILENCE_THRESHOLD_DBFS:
        shown = "-inf" if math.isinf(level) else f"{level:.1f}"
        raise InvalidAudioError(
            path,
            "silent",
            f"loudest {SILENCE_FRAME_SECONDS * 1000:.0f} ms frame at {shown} dBFS, below the "
            f"{SILENCE_THRESHOLD_DBFS:.0f} dBFS threshold",
        )
    return audio


def check_duration(
    n_samples: int,
    sample_rate: int,
    *,
    path: str | os.PathLike = "array input",
    min_duration: float = MIN_DURATION_SECONDS,
) -> None:
    """Raise ``InvalidAudioError("too_short")`` below ``max(min_duration, MIN_DURATION_SECONDS)``."""
    minimum = max(float(min_duration), MIN_DURATION_SECONDS)
    seconds = n_samples / sample_rate
    if seconds < minimum:
        raise InvalidAudioError(
            path,
            "too_short",
            f"{seconds:.3f} s ({n_samples} samples at {sample_rate} Hz) is shorter than the "
            f"minimum {minimum:.3f} s",
        )


def check_header(path: str | os.PathLike, *, min_duration: float = MIN_DURATION_SECONDS):
    """Check a file from its header alone (no samples decoded); returns soundfile's info.

    Raises:
        InvalidAudioError: ``missing``, ``unreadable``, ``empty`` or ``too_short``.
    """
    info = read_header(path)
    check_duration(int(info.frames), int(info.samplerate), path=path, min_duration=min_duration)
    return info


def read_header(path: str | os.PathLike):
    """soundfile's header info of ``path``.

    Raises:
        InvalidAudioError: ``missing``, ``unreadable`` or ``empty`` (0 samples or no rate).
    """
    import soundfile as sf

    if not os.path.exists(path):
        raise InvalidAudioError(path, "missing", "file not found")
    try:
        info = sf.info(str(path))
    except Exception as error:  # soundfile raises several types for corrupt headers
        detail = f"{type(error).__name__}: {str(error)[:120]}"
        raise InvalidAudioError(path, "unreadable", detail) from error
    if info.frames <= 0 or info.samplerate <= 0:
        raise InvalidAudioError(path, "empty", "empty audio (0 samples)")
    return info


def check_record(
    path: str | os.PathLike,
    *,
    file_rate: int,
    file_samples: int,
    record_rate: int | None = None,
    record_samples: int | None = None,
    record_duration: float | None = None,
) -> None:
    """Check a file's rate and length against what its manifest record says.

    ``record_samples`` are counted at ``record_rate`` (the Mixer's ``num_samples``);
    ``record_duration`` is in seconds (an utterance's ``duration``). Unknown values are not
    checked.

    Raises:
        InvalidAudioError: ``rate_mismatch`` or ``length_mismatch``.
    """
    if record_rate is not None and int(record_rate) != int(file_rate):
        raise InvalidAudioError(
            path,
            "rate_mismatch",
            f"the file is at {file_rate} Hz, its record says {int(record_rate)} Hz",
        )
    seconds = file_samples / file_rate
    expected = None
    if record_samples is not None:
        expected = int(record_samples) / int(record_rate or file_rate)
    elif record_duration is not None:
        expected = float(record_duration)
    if expected is not None and abs(seconds - expected) > LENGTH_TOLERANCE_SECONDS:
        raise InvalidAudioError(
            path,
            "length_mismatch",
            f"the file lasts {seconds:.3f} s ({file_samples} samples), its record says "
            f"{expected:.3f} s",
        )


def _reason_of(error: AudioError) -> str:
    """The reason code of an ``AudioError`` raised by ``load_audio`` after the header passed."""
    if isinstance(error, InvalidAudioError):
        return error.reason
    return "non_finite" if "NaN" in error.problem else "unreadable"


def load_valid_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    record_rate: int | None = None,
    record_samples: int | None = None,
    record_duration: float | None = None,
    min_duration: float = MIN_DURATION_SECONDS,
) -> tuple[np.ndarray, int]:
    """Read a file as float32 mono (channels averaged) and apply the whole policy.

    The header is checked first (missing, unreadable, empty, against the record, too short), so
    a bad file costs no decoding; then the samples (non-finite, silent) at the file's own rate;
    then the audio is resampled to ``sample_rate`` when given. A file that disagrees with its
    record is reported as such (``length_mismatch``) even when it is also too short: the record
    says the file is not the one that was written.

    Args:
        path: any file soundfile reads.
        sample_rate: return the audio at this rate (``None``: the file's).
        record_rate, record_samples, record_duration: what the manifest record says (see
            :func:`check_record`); ``None`` skips that check.
        min_duration: a stricter minimum (seconds) than :data:`MIN_DURATION_SECONDS`.

    Returns:
        ``(audio [T] float32, rate)``.

    Raises:
        InvalidAudioError: naming the file, with one of :data:`REASONS`.
    """
    info = read_header(path)
    check_record(
        path,
        file_rate=int(info.samplerate),
        file_samples=int(info.frames),
        record_rate=record_rate,
        record_samples=record_samples,
        record_duration=record_duration,
    )
    check_duration(int(info.frames), int(info.samplerate), path=path, min_duration=min_duration)
    try:
        audio, rate = load_audio(path, mono="mix", allow_silent=True)
    except AudioError as error:
        raise InvalidAudioError(path, _reason_of(error), error.problem) from error
    check_audio(audio, rate, path=path, min_duration=min_duration)
    if sample_rate is not None and int(sample_rate) != rate:
        audio = resample(audio, rate, int(sample_rate))
        rate = int(sample_rate)
    return audio, rate


def load_mixture_audio(
    mixture, path: str | os.PathLike | None = None, *, sample_rate: int | None = None
) -> tuple[np.ndarray, int]:
    """A :class:`~amongus.manifest.Mixture`'s audio, checked against its record.

    ``path`` overrides ``mixture.path`` (resolved against a manifest's folder). The file must be
    at ``mixture.sample_rate`` and last ``mixture.num_samples`` (when recorded).

    Raises:
        InvalidAudioError: as :func:`load_valid_audio`.
    """
    return load_valid_audio(
        mixture.path if path is None else path,
        sample_rate=sample_rate,
        record_rate=mixture.sample_rate,
        record_samples=mixture.num_samples,
    )


def load_utterance_audio(utterance, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """An :class:`~amongus.manifest.Utterance`'s audio, checked against its optional
    ``sample_rate`` and ``duration``.

    Raises:
        InvalidAudioError: as :func:`load_valid_audio`.
    """
    return load_valid_audio(
        utterance.path,
        sample_rate=sample_rate,
        record_rate=utterance.sample_rate,
        record_duration=utterance.duration,
    )


def reason_code(problem: str) -> str:
    """The counting key of a skip reason: the text before the first ``": "`` or ``" ("``.

    >>> reason_code("silent: loudest 10 ms frame at -inf dBFS")
    'silent'
    """
    return problem.split(" (")[0].split(": ")[0]


def count_reasons(problems: Iterable[str]) -> dict[str, int]:
    """``{reason code: count}`` of skip reasons, most frequent first."""
    return dict(Counter(reason_code(problem) for problem in problems).most_common())


def file_digest(path: str | os.PathLike, *, block: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes: what is in the file, whatever its name."""
    digest = hashlib.sha256()
    with open(Path(path), "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "LENGTH_TOLERANCE_SECONDS",
    "MIN_DURATION_SECONDS",
    "REASONS",
    "SILENCE_FRAME_SECONDS",
    "SILENCE_THRESHOLD_DBFS",
    "InvalidAudioError",
    "check_audio",
    "check_duration",
    "check_header",
    "check_record",
    "count_reasons",
    "file_digest",
    "load_mixture_audio",
    "load_utterance_audio",
    "load_valid_audio",
    "loudest_frame_dbfs",
    "policy",
    "policy_digest",
    "reason_code",
]
