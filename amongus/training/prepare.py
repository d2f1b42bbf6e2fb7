"""Fill the stream cache: separate each mixture once with the frozen separator.

For every mixture that the cache does not hold yet: load it, render its reference sources
(``amongus.mix.render.render_sources``), separate it at the separator's rate under
``torch.inference_mode()`` (the separator is in eval mode with ``requires_grad=False``), resample
the streams to the classifier's rate, assign streams to references by SI-SDR (best permutation,
``amongus.scoring``) and store streams + assignment in the cache. Under ``accelerate launch``
each process fills its own shard of the mixtures.

Every mixture goes through the input-validation policy first (:mod:`amongus.validation`:
missing, unreadable, silent, too short, rate or length unlike its record...). Training
**skips** a refused mixture and counts it with its reason (:attr:`FillReport.skipped`, the
Trainer's ``data_report.json`` and log); the refusal is remembered in the cache, keyed by the
file's content, so a rerun does not decode the file again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..audio import AudioError, resample
from ..validation import count_reasons, load_mixture_audio
from .stream_cache import CacheEntry, StreamCache

logger = logging.getLogger(__name__)


@dataclass
class FillReport:
    """What a cache fill did: entries found, mixtures separated (and their audio seconds),
    mixtures skipped by the validation policy as ``(mixture_id, path, reason)``."""

    hits: int = 0
    separated: int = 0
    separated_seconds: float = 0.0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def skipped_reasons(self) -> dict[str, int]:
        """``{reason code: count}`` (:func:`amongus.validation.count_reasons`)."""
        return count_reasons(reason for _, _, reason in self.skipped)

    def __str__(self) -> str:
        text = (
            f"stream cache: {self.hits} hits, {self.separated} mixtures separated "
            f"({self.separated_seconds:.1f} s of audio), {len(self.skipped)} skipped"
        )
        return text + (f" {self.skipped_reasons}" if self.skipped else "")


def freeze_separator(separator) -> list:
    """Put every ``torch.nn.Module`` held by a separator in eval mode without gradients.

    Returns the modules found (the separator itself when it is a module).
    """
    import torch

    modules = []
    candidates = [separator, *vars(separator).values()] if hasattr(separator, "__dict__") else []
    for candidate in candidates:
        if isinstance(candidate, torch.nn.Module) and all(candidate is not m for m in modules):
            candidate.eval()
            candidate.requires_grad_(False)
            modules.append(candidate)
    return modules


def _references(mixture) -> np.ndarray | None:
    """``[S, T]`` reference sources at the mixture rate, or ``None`` when they cannot be rendered."""
    try:
        from ..mix.render import render_sources

        return np.asarray(render_sources(mixture), dtype=np.float32)
    except (ImportError, OSError, ValueError) as error:
        logger.warning("%s: reference sources unavailable (%s)", mixture.mixture_id, error)
        return None


def _fit(array: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``length``. Shape: ``[..., T] -> [..., length]``."""
    if array.shape[-1] >= length:
        return array[..., :length]
    pad = [(0, 0)] * (array.ndim - 1) + [(0, length - array.shape[-1])]
    return np.pad(array, pad)


def assign_by_signal(streams: np.ndarray, references: np.ndarray):
    """Signal assignment: best permutation of -SI-SDR; returns ``(perm, si_sdr per stream)``.

    Shape: ``streams [S, T], references [S, T']`` (cropped/padded to the streams' length).
    """
    from ..scoring import best_permutation, pairwise_cost

    references = _fit(references, streams.shape[-1])
    cost = pairwise_cost(streams, references)
    perm = best_permutation(cost)
    return list(perm), [float(-cost[index, ref]) for index, ref in enumerate(perm)]


def separate_batch(
    separator, mixtures: Sequence, *, stream_rate: int, chunk_seconds=None, audios=None
):
    """Separate mixtures that share a sample rate; yields ``(mixture, streams [S, T], refs)``.

    Resampling to and from the separator's rate goes through
    ``amongus.separation.run.separate_at_rate`` (the pipeline's path). ``streams`` are at
    ``stream_rate``; ``refs`` ``[S, T]`` at ``stream_rate`` (or ``None``). ``audios`` are the
    mixtures' samples ``[T]`` when already loaded; otherwise they are read and validated
    (:func:`amongus.validation.load_mixture_audio`, which raises ``InvalidAudioError``).
    """
    import torch

    from ..separation.run import separate_at_rate

    rate = mixtures[0].sample_rate
    if audios is None:
        audios = [load_mixture_audio(mixture)[0] for mixture in mixtures]
    audios, references = list(audios), []
    for mixture, audio in zip(mixtures, audios, strict=True):
        refs = _references(mixture)
        references.append(None if refs is None else _fit(refs, len(audio)))
    lengths = [len(audio) for audio in audios]
    longest = max(lengths)
    batch = torch.zeros(len(audios), longest)
    for row, audio in enumerate(audios):
        batch[row, : len(audio)] = torch.from_numpy(np.ascontiguousarray(audio))
    reference_batch = None
    if all(refs is not None for refs in references) and len({r.shape[0] for r in references}) == 1:
        reference_batch = torch.zeros(len(audios), references[0].shape[0], longest)
        for row, refs in enumerate(references):
            reference_batch[row, :, : lengths[row]] = torch.from_numpy(np.ascontiguousarray(refs))
    with torch.inference_mode():
        separated, _ = separate_at_rate(
            separator,
            batch,
            rate,
            stream_rate,
            torch.tensor(lengths),
            chunk_seconds=chunk_seconds,
            references=reference_batch,
        )
    for row, mixture in enumerate(mixtures):
        out_length = math.ceil(lengths[row] * stream_rate / rate)
        streams = separated[row, :, :out_length].float().cpu().numpy()
        refs = references[row]
        if refs is not None:
            refs = _fit(resample(refs, rate, stream_rate), streams.shape[-1])
        yield mixture, streams, refs


def fill_cache(
    cache: StreamCache,
    mixtures: Sequence,
    separator,
    *,
    batch_size: int = 4,
    chunk_seconds: float | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> tuple[dict[str, CacheEntry], FillReport]:
    """Make sure every mixture of this process' shard is in the cache.

    Args:
        cache: the stream cache (its ``stream_rate`` is the classifier's).
        mixtures: ``Mixture`` records.
        separator: a loaded separator; it is frozen here.
        batch_size: mixtures per separator call (grouped by sample rate, sorted by length).
        chunk_seconds: separate in overlapping chunks (``separate_chunked``) when given.
        shard: ``(index, count)``: this process fills mixtures ``index::count``.

    Returns:
        ``(entries of this shard by entry file name, FillReport)``. Mixtures refused by the
        validation policy have no entry; they are in ``FillReport.skipped``.
    """
    from tqdm.auto import tqdm

    freeze_separator(separator)
    index, count = shard
    mine = list(mixtures)[index::count]
    report = FillReport()
    entries: dict[str, CacheEntry] = {}
    missing = []
    fingerprints: dict[int, dict] = {}
    for mixture in mine:
        try:
            fingerprint = cache.fingerprint(mixture)
        except ValueError:  # missing or unreadable: the policy names the reason
            fingerprint = None
        entry = None if fingerprint is None else cache.lookup(mixture, fingerprint)
        reason = None if fingerprint is None else cache.skip_reason(mixture, fingerprint)
        if entry is not None:
            entries[entry.file] = entry
            report.hits += 1
        elif reason is not None:
            report.skipped.append((mixture.mixture_id, str(mixture.path), reason))
        else:
            fingerprints[id(mixture)] = fingerprint
            missing.append(mixture)
    if not missing:
        return entries, report
    missing.sort(key=lambda m: (m.sample_rate, m.num_samples or 0, m.mixture_id))
    groups: list[list] = []
    for mixture in missing:
        if (
            groups
            and len(groups[-1]) < batch_size
            and groups[-1][0].sample_rate == mixture.sample_rate
        ):
            groups[-1].append(mixture)
        else:
            groups.append([mixture])
    bar = tqdm(total=len(missing), desc="separating (once)", unit="mix", disable=not progress)
    for group in groups:
        valid, audios = [], []
        for mixture in group:
            try:
                audios.append(load_mixture_audio(mixture)[0])
            except AudioError as error:
                _skip(cache, report, mixture, error, fingerprints[id(mixture)])
                bar.update(1)
                continue
            valid.append(mixture)
        if not valid:
            continue
        results = separate_batch(
            separator,
            valid,
            stream_rate=cache.stream_rate,
            chunk_seconds=chunk_seconds,
            audios=audios,
        )
        for mixture, streams, refs in results:
            permutation = si = None
            if refs is not None and refs.shape[0] == streams.shape[0]:
                permutation, si = assign_by_signal(streams, refs)
            elif refs is not None:
                logger.warning(
                    "%s: %d streams for %d sources; no signal assignment",
                    mixture.mixture_id,
                    streams.shape[0],
                    refs.shape[0],
                )
            entry = cache.put(
                mixture,
                streams,
                permutation=permutation,
                si_sdr=si,
                fingerprint=fingerprints[id(mixture)],
            )
            entries[entry.file] = entry
            report.separated += 1
            report.separated_seconds += streams.shape[-1] / cache.stream_rate
            bar.update(1)
    bar.close()
    if report.skipped:
        logger.warning(
            "stream cache: %d mixture(s) skipped by the input-validation policy: %s",
            len(report.skipped),
            report.skipped_reasons,
        )
    return entries, report


def _skip(cache: StreamCache, report: FillReport, mixture, error: AudioError, fingerprint):
    report.skipped.append((mixture.mixture_id, str(mixture.path), error.problem))
    logger.info("skipped %s: %s", mixture.mixture_id, error)
    if fingerprint is not None:  # the content is known: remember the refusal for reruns
        cache.put_skip(mixture, error.problem, fingerprint)


def cached_entries(
    cache: StreamCache, mixtures: Sequence
) -> tuple[list[CacheEntry], list[tuple[str, str, str]]]:
    """Each mixture's cache entry after a fill (any process' shard), in order, and the
    mixtures refused by the validation policy as ``(mixture_id, path, reason)``.

    Raises:
        KeyError: a mixture neither cached nor refused (the cache was not filled for it).
    """
    from ..validation import load_mixture_audio as _check

    entries, skipped = [], []
    for mixture in mixtures:
        try:
            fingerprint = cache.fingerprint(mixture)
        except ValueError:
            fingerprint = None
        reason = None if fingerprint is None else cache.skip_reason(mixture, fingerprint)
        if fingerprint is None:
            try:  # missing or unreadable now: let the policy word it
                _check(mixture)
                reason = "unreadable: mixture file cannot be read"
            except AudioError as error:
                reason = error.problem
        if reason is not None:
            skipped.append((mixture.mixture_id, str(mixture.path), reason))
            continue
        entries.append(cache.get(mixture))
    return entries, skipped
