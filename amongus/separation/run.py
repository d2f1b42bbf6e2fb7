"""Separate at the separator's rate and hand streams back at the caller's: the one place where
the separation stage resamples (8 kHz SepFormer fed from and returning to 16 kHz, in the study).

Resampling uses ``amongus.audio.resample``, which keeps one cached torchaudio resampler per
(rate pair, device, dtype). The returned ``rates`` dict names the rates used, so pipelines and
reports can state them.
"""

from __future__ import annotations

import logging
import math

from .base import Separator, SeparatorBase, check_batch, check_references, fit_length
from .scale import valid_mask

logger = logging.getLogger(__name__)
_WARNED: set[tuple[str, int, int]] = set()


def resampled_lengths(lengths, orig_sr: int, new_sr: int, limit: int):
    """``ceil(length * new_sr / orig_sr)`` per item, capped at ``limit``; ``None`` stays ``None``."""
    if lengths is None or orig_sr == new_sr:
        return lengths
    return ((lengths * new_sr + orig_sr - 1) // orig_sr).clamp(max=limit)


#: Input samples resampled per block by ``resample_long`` (about 1 MB of float32 per channel).
RESAMPLE_BLOCK = 1 << 18


def resample_long(signal, orig_sr: int, new_sr: int, *, block: int = RESAMPLE_BLOCK):
    """``amongus.audio.resample`` of a torch tensor, block by block: the same samples (to float
    rounding), with memory bounded by the block rather than the signal.

    torchaudio's sinc resampler is one strided convolution over the whole signal, whose
    intermediate buffers take several times the signal (about 0.75 GB for two 10-minute streams
    8 -> 16 kHz). Each output frame of ``new / gcd`` samples depends on the input within
    ``width`` samples (the resampler's filter half-length) of ``orig / gcd`` input samples, so
    blocks aligned to ``orig / gcd`` with ``width`` samples of context on each side reproduce
    the whole-signal output exactly; at the signal's ends the resampler's own zero padding
    applies, as for the whole signal.

    Shape: ``[..., T] -> [..., ceil(T * new_sr / orig_sr)]``.
    """
    from ..audio import get_resampler, resample

    orig_sr, new_sr = int(orig_sr), int(new_sr)
    length = signal.shape[-1]
    if orig_sr == new_sr or length <= 2 * block:
        return resample(signal, orig_sr, new_sr)
    resampler = get_resampler(orig_sr, new_sr, str(signal.device), signal.dtype)
    gcd = math.gcd(orig_sr, new_sr)
    step, out_step = orig_sr // gcd, new_sr // gcd
    block = step * max(1, block // step)
    context = step * math.ceil(int(resampler.width) / step)
    target = math.ceil(length * new_sr / orig_sr)
    out = signal.new_empty(*signal.shape[:-1], target)
    for start in range(0, length, block):
        end = min(start + block, length)
        low, high = max(0, start - context), min(length, end + context)
        piece = resampler(signal[..., low:high])
        first = start // step * out_step
        last = target if end == length else end // step * out_step
        offset = (start - low) // step * out_step
        out[..., first:last] = piece[..., offset : offset + last - first]
    return out


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
        chunk_seconds: separate in chunks of this length. ``None``: the separator's own
            default (``separator.chunk_seconds``: 10 s for the model separators, whole inputs for
            oracle and passthrough); ``math.inf``: whole inputs (a model still splits inputs
            longer than its ``max_samples``).
        overlap_seconds: chunk overlap (default: the separator's ``overlap_seconds`` with its
            default chunk, else a quarter of ``chunk_seconds``).
        progress: a tqdm bar over chunks.
        references: ``[B, S, T]`` at ``input_rate`` (for the oracle).

    Returns:
        ``(streams, rates)``: ``streams [B, S, ceil(T * output_rate / input_rate)]``, zero past
        each item's resampled length, and ``rates`` with ``input_rate``, ``separator_rate``,
        ``output_rate``, ``bandwidth_hz`` (the highest frequency the streams can carry:
        ``min(rates) / 2``), ``separator`` (its identity), ``chunk_seconds`` and
        ``overlap_seconds`` (the settings used; ``None`` when inputs were separated whole).

    Each item's streams equal those of separating it alone (padding, chunk grids and resampling
    are per item).

    Shape: ``[B, T] -> [B, S, T_out]``.
    """
    from .chunking import chunk_plan, separate_chunked

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
    if lengths is not None and separator_rate != input_rate and bool((lengths < length).any()):
        # the resampling filter reaches past an item's end: whatever the padding holds would
        # leak into its last samples, so it is zeroed (each item then resamples as alone)
        mask = valid_mask(lengths, length, mixture)
        mixture = mixture * mask[:, 0]
        if references is not None:
            references = references * mask
    model_input = resample_long(mixture, input_rate, separator_rate)
    model_lengths = resampled_lengths(lengths, input_rate, separator_rate, model_input.shape[-1])
    model_references = (
        None if references is None else resample_long(references, input_rate, separator_rate)
    )
    builtin = isinstance(separator, SeparatorBase)
    if chunk_seconds is None and builtin:
        plan = separator.default_plan()  # the model's default, within its input limit
    elif chunk_seconds is None:
        plan = None  # a foreign separator chunks (or not) by itself
    else:
        plan = chunk_plan(chunk_seconds, overlap_seconds, separator_rate)
    chunk_seconds, overlap_seconds = (
        (None, None) if plan is None else (plan[0] / separator_rate, plan[1] / separator_rate)
    )
    if builtin:
        streams = separator.separate_chunks(
            model_input,
            model_lengths,
            references=model_references,
            plan=plan,
            progress=progress,
        )
    elif chunk_seconds is None:
        streams = separator.separate(model_input, model_lengths, references=model_references)
    else:
        streams = separate_chunked(
            separator,
            model_input,
            model_lengths,
            chunk_seconds=chunk_seconds,
            overlap_seconds=overlap_seconds,
            sample_rate=separator_rate,
            references=model_references,
            progress=progress,
        )
    del model_input, model_references
    out_length = math.ceil(length * output_rate / input_rate)
    streams = fit_length(
        resample_long(streams.contiguous(), separator_rate, output_rate), out_length
    )
    if lengths is not None:
        out_lengths = resampled_lengths(lengths, input_rate, output_rate, out_length)
        streams = streams.mul_(valid_mask(out_lengths, out_length, streams))
    rates = {
        "input_rate": input_rate,
        "separator_rate": separator_rate,
        "output_rate": output_rate,
        "bandwidth_hz": bandwidth,
        "separator": identity,
        "chunk_seconds": chunk_seconds,
        "overlap_seconds": overlap_seconds,
    }
    return streams, rates
