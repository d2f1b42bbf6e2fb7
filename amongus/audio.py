"""Audio input/output and resampling: the one place where resampling happens.

Audio arrays are float32, mono, shape ``[T]`` (or ``[..., T]`` for tensors). Files are read and
written with soundfile (``torchaudio.load`` needs TorchCodec since 2.9).
"""

from __future__ import annotations

import functools
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:  # pragma: no cover
    import torch


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    mono: str = "mix",
    min_duration: float = 0.0,
    allow_silent: bool = False,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono and check it.

    Args:
        path: any file soundfile reads (wav, flac, ogg, mp3 with libsndfile >= 1.1).
        sample_rate: resample to this rate when given; otherwise the file's rate is kept.
        mono: what to do with several channels: ``"mix"`` averages them, ``"first"`` keeps
            channel 0, ``"error"`` raises.
        min_duration: shorter files raise, in seconds.
        allow_silent: an all-zero file raises unless this is set.

    Returns:
        ``(audio, rate)``; ``audio`` has shape ``[T]``.

    Raises:
        AudioError: missing, unreadable, empty, non-finite, multi-channel (with ``mono="error"``),
            too short or silent input; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for corrupt files
        raise AudioError(path, f"unreadable audio ({error})") from error
    if audio.shape[0] == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if audio.shape[1] > 1:
        if mono == "mix":
            audio = audio.mean(axis=1, keepdims=True)
        elif mono == "first":
            audio = audio[:, :1]
        else:
            raise AudioError(path, f"{audio.shape[1]} channels, expected mono")
    audio = np.ascontiguousarray(audio[:, 0])
    if not np.all(np.isfinite(audio)):
        raise AudioError(path, "contains NaN or infinite samples")
    if not allow_silent and not np.any(audio):
        raise AudioError(path, "all samples are zero")
    if audio.shape[0] / rate < min_duration:
        raise AudioError(
            path, f"too short: {audio.shape[0] / rate:.3f} s < minimum {min_duration:.3f} s"
        )
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return audio, int(rate)


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header information (rate, frames, channels) without reading the samples."""
    return sf.info(str(path))


def encode_audio(
    audio: np.ndarray, sample_rate: int, audio_format: str = "WAV", *, subtype: str | None = None
) -> bytes:
    """The bytes of an audio file (``"WAV"``, ``"FLAC"``...) holding mono ``audio`` ([T]).

    Raises ``ValueError`` for another shape or for NaN or infinite samples.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape [T], got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("refusing to write NaN or infinite samples")
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format=audio_format.upper(), subtype=subtype)
    return buffer.getvalue()


def save_audio(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, subtype: str | None = None
) -> Path:
    """Write mono audio ([T]) atomically (:func:`amongus.fsutil.atomic_write`).

    The file is encoded in memory (libsndfile does not report every failed write), then
    written to a temporary file in the same folder, synced and renamed: a killed process or a
    full disk never leaves a truncated file under ``path``. The format follows the suffix.

    Raises:
        ValueError: not mono, or NaN or infinite samples (nothing is written).
        amongus.fsutil.OutputError: the file system refused the write (one line naming
            ``path`` and the cause).
    """
    from .fsutil import atomic_write_bytes

    path = Path(path)
    audio_format = path.suffix.lstrip(".").upper() or "WAV"
    try:
        data = encode_audio(audio, sample_rate, audio_format, subtype=subtype)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return atomic_write_bytes(path, data)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """``[T]`` or ``[T, C]`` (soundfile layout) -> ``[T]`` by averaging channels."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        return audio.mean(axis=1)
    raise ValueError(f"expected [T] or [T, C] audio, got shape {audio.shape}")


def resample(audio, orig_sr: int, new_sr: int):
    """Resample a numpy array or a torch tensor along its last axis.

    numpy input uses a polyphase filter (``scipy.signal.resample_poly``); torch input uses one
    cached ``torchaudio.transforms.Resample`` per (rate pair, device, dtype), so repeated calls
    do not rebuild the filter. The output length is ``ceil(T * new_sr / orig_sr)``.

    Shape: ``[..., T] -> [..., T']``.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return audio
    if isinstance(audio, np.ndarray):
        from scipy.signal import resample_poly

        gcd = math.gcd(int(orig_sr), int(new_sr))
        out = resample_poly(audio, new_sr // gcd, orig_sr // gcd, axis=-1)
        return out.astype(audio.dtype if audio.dtype.kind == "f" else np.float32, copy=False)
    resampler = get_resampler(int(orig_sr), int(new_sr), str(audio.device), audio.dtype)
    return resampler(audio)


@functools.lru_cache(maxsize=32)
def get_resampler(orig_sr: int, new_sr: int, device: str = "cpu", dtype=None) -> torch.nn.Module:
    """The cached torchaudio resampler for a rate pair (one instance per pair, device, dtype)."""
    import torch

    from ._compat import import_torchaudio

    torchaudio = import_torchaudio()
    resampler = torchaudio.transforms.Resample(orig_sr, new_sr)
    return resampler.to(device=torch.device(device), dtype=dtype or torch.float32)


def peak_normalize(audio: np.ndarray, *, peak: float = 1.0, eps: float = 1e-9) -> np.ndarray:
    """Scale so the largest absolute sample is ``peak``; all-zero input is returned unchanged."""
    max_abs = float(np.max(np.abs(audio))) if audio.size else 0.0
    if max_abs < eps:
        return audio
    return audio * (peak / max_abs)
