"""Rendering one planned utterance: make the audio, equalise it, write the FLAC.

The same post-processing runs on both classes, so bandwidth, level, noise floor and duration
come from the same distributions: resample to 16 kHz, trim edge silence, crop to the planned
duration, add a white noise floor at the planned SNR, low-pass at the planned cut-off and
normalise to the planned loudness (ITU-R BS.1770 via pyloudnorm).
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np

from ...audio import AudioError, load_audio, resample, save_audio
from .generators import TTS_ENGINES, VOCODERS, GeneratorError
from .plan import Job
from .systems import SYSTEMS_BY_ID

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
TRIM_TOP_DB = 35.0
FADE_SECONDS = 0.02
PEAK_LIMIT = 0.99


class RenderError(RuntimeError):
    """An utterance could not be made; the message says which step failed."""


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence (more than 35 dB below the peak)."""
    import librosa

    trimmed, _ = librosa.effects.trim(audio, top_db=TRIM_TOP_DB, frame_length=512, hop_length=128)
    return trimmed if trimmed.size else audio


def _concatenate(pieces: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    joined: list[np.ndarray] = []
    for index, piece in enumerate(pieces):
        if index:
            gap = int(rng.uniform(0.15, 0.4) * SAMPLE_RATE)
            joined.append(np.zeros(gap, dtype=np.float32))
        joined.append(piece.astype(np.float32))
    return np.concatenate(joined)


def _load_clips(paths: list[str], target: float, rng: np.random.Generator) -> np.ndarray:
    pieces, total = [], 0.0
    for path in paths:
        try:
            audio, _ = load_audio(path, sample_rate=SAMPLE_RATE)
        except AudioError as error:
            raise RenderError(f"source audio unusable: {error}") from error
        pieces.append(trim_silence(audio))
        total += len(pieces[-1]) / SAMPLE_RATE
        if total >= target:
            break
    return _concatenate(pieces, rng)


def _synthesize(job: Job, rng: np.random.Generator) -> np.ndarray:
    """All planned texts read in one go (the plan chose enough text for the target duration)."""
    if not job.texts:
        raise RenderError("no text to synthesise")
    text = " ".join(_sentence(text) for text in job.texts)
    audio, rate = TTS_ENGINES[job.engine](text, job.voice, rng)
    return trim_silence(resample(np.asarray(audio, dtype=np.float32), rate, SAMPLE_RATE))


def _sentence(text: str) -> str:
    # Runs of dots ("first ... ... callers") crash Festival's text2wave (segfault).
    text = re.sub(r"(?:\.\s*){2,}|…", ", ", text)
    text = re.sub(r"\s*(?:,\s*)+", ", ", text).strip(" ,")
    return text if text[-1:] in ".!?…" else text + "."


def crop(audio: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``seconds`` (the whole signal when it is shorter)."""
    length = int(round(seconds * SAMPLE_RATE))
    if len(audio) <= length:
        return audio
    start = int(rng.integers(0, len(audio) - length + 1))
    return audio[start : start + length]


def _fade(audio: np.ndarray) -> np.ndarray:
    n = min(int(FADE_SECONDS * SAMPLE_RATE), len(audio) // 4)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        audio = audio.copy()
        audio[:n] *= ramp
        audio[-n:] *= ramp[::-1]
    return audio


@functools.cache
def _lowpass(cutoff_hz: int):
    from scipy.signal import butter

    return butter(8, cutoff_hz, btype="lowpass", fs=SAMPLE_RATE, output="sos")


@functools.cache
def _meter():
    import pyloudnorm

    return pyloudnorm.Meter(SAMPLE_RATE)


def equalise(audio: np.ndarray, job: Job, rng: np.random.Generator) -> np.ndarray:
    """Noise floor, band limit and loudness, identical for both classes."""
    from scipy.signal import sosfiltfilt

    active = audio[np.abs(audio) > 0.05 * np.max(np.abs(audio))]
    level = float(np.sqrt(np.mean(active**2))) if active.size else float(np.std(audio))
    noise = rng.standard_normal(len(audio)).astype(np.float32)
    audio = audio + noise * level / 10 ** (job.snr_db / 20)
    audio = sosfiltfilt(_lowpass(int(job.cutoff_hz)), audio).astype(np.float32)
    audio = _fade(audio)
    loudness = _meter().integrated_loudness(audio.astype(np.float64))
    if not np.isfinite(loudness):
        raise RenderError("loudness undefined (silent audio)")
    audio = audio * 10 ** ((job.target_lufs - loudness) / 20)
    peak = float(np.max(np.abs(audio)))
    if peak > PEAK_LIMIT:
        audio = audio * (PEAK_LIMIT / peak)
    return audio.astype(np.float32)


def render_audio(job: Job) -> np.ndarray:
    """The finished 16 kHz waveform of a planned utterance.

    Shape: ``[T]``.
    """
    rng = np.random.default_rng(job.seed)
    try:
        if job.kind in ("bonafide", "shared"):
            audio = crop(
                _load_clips(job.clip_paths, job.target_duration, rng), job.target_duration, rng
            )
        elif job.kind == "tts":
            audio = crop(_synthesize(job, rng), job.target_duration, rng)
        elif job.kind == "vocoder":
            source = crop(
                _load_clips(job.clip_paths, job.target_duration, rng), job.target_duration, rng
            )
            vocoder = VOCODERS[SYSTEMS_BY_ID[job.system].engine]
            audio, rate = vocoder(source, SAMPLE_RATE, rng)
            audio = resample(np.asarray(audio, dtype=np.float32), rate, SAMPLE_RATE)
        else:
            raise RenderError(f"unknown job kind {job.kind!r}")
    except GeneratorError as error:
        raise RenderError(str(error)) from error
    if not np.all(np.isfinite(audio)) or not np.any(audio):
        raise RenderError("generator returned silent or non-finite audio")
    if len(audio) < 0.5 * job.min_duration * SAMPLE_RATE:
        raise RenderError(f"too short ({len(audio) / SAMPLE_RATE:.2f} s)")
    audio = equalise(audio, job, rng)
    if not np.all(np.isfinite(audio)):
        raise RenderError("non-finite samples after post-processing")
    return audio


def output_path(root: Path, job: Job) -> Path:
    return root / f"ASVspoof2019_LA_{job.split}" / "flac" / f"{job.utt_id}.flac"


def render_job(args: tuple[Job, str]) -> dict:
    """Worker entry point: render and write one utterance; never raises.

    Returns the utterance record (``amongus.manifest.Utterance`` fields) or ``{"error": ...}``.
    """
    job, root = args
    try:
        audio = render_audio(job)
        path = output_path(Path(root), job)
        save_audio(path, audio, SAMPLE_RATE, subtype="PCM_16")
    except Exception as error:  # reported and counted by the builder, never silently
        return {
            "utt_id": job.utt_id,
            "system": job.system,
            "error": f"{type(error).__name__}: {error}",
        }
    return {
        "utt_id": job.utt_id,
        "path": str(path.relative_to(root)),
        "label": job.label,
        "speaker": job.speaker,
        "system": job.system,
        "language": job.language,
        "sample_rate": SAMPLE_RATE,
        "duration": round(len(audio) / SAMPLE_RATE, 4),
        "source": job.source,
        "licence": job.licence,
        "split": job.split,
    }
