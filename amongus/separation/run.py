"""Separate at the separator's rate and hand streams back at the caller's: the one place where
the separation stage resamples (8 kHz SepFormer fed from and returning to 16 kHz, in the study).

Resampling uses ``amongus.audio.resample``, which keeps one cached torchaudio resampler per
(rate pair, device, dtype). The returned ``rates`` dict names the rates used, so pipelines and
reports can state them.
"""

from __future__ import annotations

import logging
import math

from .base import Separator, check_batch, check_references, fit_length
from .scale import valid_mask

logger = logging.getLogger(__name__)
_WARNED: set[tuple[str, int, int]] = set()


def resampled_lengths(lengths, orig_sr: int, new_sr: int, limit: int):
    """``ceil(length * new_sr / orig_sr)`` per item, capped at ``limit``; ``None`` stays ``None``."""
    if lengths is None or orig_sr == new_sr:
        return lengths
    return ((lengths * new_sr + orig_sr - 1) // orig_sr).clamp(max=limit)


def separate_at_rate(
    separator: Separator,
    mixture,
    input_rate: int,
    output_rate: int,
    lengths=None,
    *,
    chunk_seconds: float | None = None,
    overlap_seconds: float | None = None,
    references=None,
    progress: bool = False,
):
    """Resample to the separator's rate, separate (in chunks when asked), resample the streams.

    Args:
        separator: any ``Separator``; ``sample_rate=None`` means it runs at ``input_rate``.
        mixture: ``[B, T]`` at ``input_rate``.
        input_rate: the rate of ``mixture`` (and ``references``).
        output_rate: the rate the streams are wanted at (the classifier's, e.g. 16000).
        lengths: ``[B]`` valid samples at ``input_rate``.
        chunk_seconds: separate in chunks of this length (``None``: all at once).
        overlap_seconds: chunk overlap (default: a quarter of ``chunk_seconds``).
        references: ``[B, S, T]`` at ``input_rate`` (for the oracle).

    Returns:
        ``(streams, rates)``: ``streams [B, S, ceil(T * output_rate / input_rate)]``, zero past
        each item's resampled length, and ``rates`` with ``input_rate``, ``separator_rate``,
        ``output_rate``, ``bandwidth_hz`` (the highest frequency the streams can carry:
        ``min(rates) / 2``), ``separator`` (its identity), ``chunk_seconds`` and
        ``overlap_seconds``.

    Shape: ``[B, T] -> [B, S, T_out]``.
    """
    from ..audio import resample
    from .chunking import separate_chunked

    mixture, lengths = check_batch(mixture, lengths)
    if references is not None:
        references = check_references(references, mixture)
    input_rate, output_rate = int(input_rate), int(output_rate)
    separator_rate = int(separator.sample_rate or input_rate)
    identity = str(getattr(separator, "identity", type(separator).__name__))
    bandwidth = min(input_rate, separator_rate, output_rate) / 2
    if separator_rate < min(input_rate, output_rate):
        key = (identity, input_rate, output_rate)
        if key not in _WARNED:
            _WARNED.add(key)
            logger.warning(
                "%s runs at %d Hz: the streams carry nothing above %d Hz although input and "
                "output are at %d/%d Hz",
                identity,
                separator_rate,
                separator_rate // 2,
                input_rate,
                output_rate,
            )
    length = mixture.shape[-1]
    model_input = resample(mixture, input_rate, separator_rate)
    model_lengths = resampled_lengths(lengths, input_rate, separator_rate, model_input.shape[-1])
    model_references = (
        None if references is None else resample(references, input_rate, separator_rate)
    )
    if chunk_seconds is None:
        streams = separator.separate(model_input, model_lengths, references=model_references)
    else:
        streams = separate_chunked(
            separator,
            model_input,
            model_lengths,
            chunk_seconds=chunk_seconds,
            overlap_seconds=overlap_seconds if overlap_seconds is not None else chunk_seconds / 4,
            sample_rate=separator_rate,
            references=model_references,
            progress=progress,
        )
    out_length = math.ceil(length * output_rate / input_rate)
    streams = fit_length(resample(streams.contiguous(), separator_rate, output_rate), out_length)
    if lengths is not None:
        out_lengths = resampled_lengths(lengths, input_rate, output_rate, out_length)
        streams = streams * valid_mask(out_lengths, out_length, streams)
    rates = {
        "input_rate": input_rate,
        "separator_rate": separator_rate,
        "output_rate": output_rate,
        "bandwidth_hz": bandwidth,
        "separator": identity,
        "chunk_seconds": chunk_seconds,
        "overlap_seconds": (
            None
            if chunk_seconds is None
            else (overlap_seconds if overlap_seconds is not None else chunk_seconds / 4)
        ),
    }
    return streams, rates
