"""Render a mixture from its record: load the sources, place them, scale them, augment, normalise.

The Mixer writes each mixture with exactly these functions, so ``render_mixture(record)``
reproduces the saved audio (up to FLAC quantisation) and ``render_sources(record)`` returns each
source as it contributes to it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..audio import resample
from ..manifest import Mixture
from ..validation import load_valid_audio
from .augment import apply_augmentations

FRAME_SECONDS = 0.01  # energy VAD frame
REFERENCE_DBFS = -25.0  # 'db' level mode: sources are equalised to this active RMS first


class SourceCache:
    """Decoded sources, kept in memory up to ``max_bytes`` (least recently used first out).

    ``native(path)`` returns ``(audio, rate)`` as read (mono float32, checked by
    :func:`amongus.validation.load_valid_audio`, the policy every entry point shares);
    ``at_rate(path, rate)`` the same resampled, as float64. Raises
    :class:`amongus.audio.AudioError` (an :class:`~amongus.validation.InvalidAudioError` for a
    policy refusal: silent or near-silent, too short...) naming the file.
    """

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple[str, int | None], tuple[np.ndarray, int]] = OrderedDict()
        self._bytes = 0

    def _get(self, key):
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def _put(self, key, item) -> None:
        self._items[key] = item
        self._bytes += item[0].nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, (old, _) = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def native(self, path: str | os.PathLike) -> tuple[np.ndarray, int]:
        key = (str(path), None)
        item = self._get(key)
        if item is None:
            item = load_valid_audio(path)
            self._put(key, item)
        return item

    def reference_energy(self, path: str | os.PathLike, sample_rate: int) -> float:
        """The loudest 10 ms frame's mean square of the source at ``sample_rate``."""
        key = (str(path), -int(sample_rate))
        item = self._get(key)
        if item is None:
            energy = frame_energy(self.at_rate(path, sample_rate), sample_rate)
            item = (np.array([energy.max(initial=0.0)]), int(sample_rate))
            self._put(key, item)
        return float(item[0][0])

    def at_rate(self, path: str | os.PathLike, sample_rate: int) -> np.ndarray:
        key = (str(path), int(sample_rate))
        item = self._get(key)
        if item is None:
            audio, rate = self.native(path)
            converted = resample(audio.astype(np.float64), rate, int(sample_rate))
            item = (np.ascontiguousarray(converted), int(sample_rate))
            self._put(key, item)
        return item[0]


def place(
    audios: Sequence[np.ndarray],
    offsets: Sequence[int],
    starts: Sequence[int],
    lengths: Sequence[int | None],
    gains: Sequence[float],
    num_samples: int,
) -> np.ndarray:
    """Put each source's window ``[start, start + length)`` times its gain at its offset.

    Shape: ``S x [T_s] -> [S, T]`` (float64).
    """
    placed = np.zeros((len(audios), int(num_samples)), dtype=np.float64)
    for k, audio in enumerate(audios):
        start = int(starts[k])
        length = audio.shape[0] - start if lengths[k] is None else int(lengths[k])
        offset = int(offsets[k])
        length = max(0, min(length, num_samples - offset, audio.shape[0] - start))
        if length > 0:
            placed[k, offset : offset + length] = audio[start : start + length] * float(gains[k])
    return placed


def frame_energy(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean square per 10 ms frame (the last partial frame is dropped). Shape: ``[..., T] ->
    [..., F]``."""
    frame = max(1, int(round(FRAME_SECONDS * sample_rate)))
    n_frames = audio.shape[-1] // frame
    framed = audio[..., : n_frames * frame].reshape(*audio.shape[:-1], n_frames, frame)
    return np.einsum("...ft,...ft->...f", framed, framed) / frame


def activity(
    placed: np.ndarray,
    reference_energy: Sequence[float],
    gains: Sequence[float],
    sample_rate: int,
    threshold_db: float,
) -> np.ndarray:
    """Energy VAD of each placed source: frames within ``threshold_db`` of the source's loudest
    frame (measured on the whole utterance, scaled by its gain).

    Shape: ``[S, T] -> [S, F]`` (bool).
    """
    energy = frame_energy(placed, sample_rate)
    floor = np.asarray(reference_energy, dtype=np.float64) * np.square(np.asarray(gains))
    floor = floor * 10 ** (-threshold_db / 10)
    return (energy > floor[:, None]) & (energy > 0)


def active_rms(audio: np.ndarray, sample_rate: int, threshold_db: float) -> float:
    """RMS over the frames within ``threshold_db`` of the loudest (0 for silence)."""
    energy = frame_energy(audio, sample_rate)
    if energy.size == 0 or not np.any(energy > 0):
        return float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
    active = energy[energy > energy.max() * 10 ** (-threshold_db / 10)]
    return float(np.sqrt(np.mean(active)))


def unnormalised_mixture(placed: np.ndarray, mixture: Mixture) -> np.ndarray:
    """Sum (and augment) placed sources before peak normalisation. Shape: ``[S, T] -> [T]``."""
    if mixture.augmentations:
        return apply_augmentations(placed, mixture.augmentations, mixture.sample_rate)
    return placed.sum(axis=0)


def _placed_sources(mixture: Mixture, cache: SourceCache | None) -> np.ndarray:
    cache = cache or SourceCache()
    audios = [cache.at_rate(source.path, mixture.sample_rate) for source in mixture.sources]
    num_samples = mixture.num_samples
    if num_samples is None:
        num_samples = max(
            s.offset + (a.shape[0] - s.start if s.length is None else s.length)
            for s, a in zip(mixture.sources, audios, strict=True)
        )
    return place(
        audios,
        [s.offset for s in mixture.sources],
        [s.start for s in mixture.sources],
        [s.length for s in mixture.sources],
        [s.gain for s in mixture.sources],
        num_samples,
    )


def render_sources(mixture: Mixture, *, cache: SourceCache | None = None) -> np.ndarray:
    """Each source exactly as it contributes to the mixture, dry (before reverb, noise and
    channel), with offset, window, gain and the normalisation factor applied.

    ``render_sources(m).sum(0)`` equals the saved mixture when no augmentation was applied.

    Shape: ``-> [S, T]`` (float32, at ``mixture.sample_rate``).
    """
    placed = _placed_sources(mixture, cache)
    return (placed * mixture.normalization).astype(np.float32)


def render_references(mixture: Mixture, sample_rate: int) -> np.ndarray:
    """The mixture's reference sources (:func:`render_sources`) at ``sample_rate``: what the
    pipeline's signal assignment and joint training compare separated streams with.

    Shape: ``-> [S, T]`` (float32; ``T`` follows the record's length, resampled).

    Raises:
        amongus.audio.AudioError: a source file is refused or unreadable; the problem is
            prefixed ``reference source:`` and names the file.
    """
    from ..audio import AudioError

    try:
        sources = render_sources(mixture)
    except AudioError as error:
        raise AudioError(error.path, f"reference source: {error.problem}") from error
    if mixture.sample_rate != sample_rate:
        sources = resample(sources, mixture.sample_rate, sample_rate)
    return sources


def render_mixture(mixture: Mixture, *, cache: SourceCache | None = None) -> np.ndarray:
    """The mixture rendered again from its record, augmentations included.

    Shape: ``-> [T]`` (float32, at ``mixture.sample_rate``).
    """
    placed = _placed_sources(mixture, cache)
    return (unnormalised_mixture(placed, mixture) * mixture.normalization).astype(np.float32)
