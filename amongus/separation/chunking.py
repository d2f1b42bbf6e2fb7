"""Separate long inputs in overlapping chunks so memory stays bounded.

Each item of a batch is cut on **its own** grid: chunks of ``chunk`` samples every
``chunk - overlap`` samples from its start, the last one ending at the end of the item's valid
length, so every chunk is full (no chunk of a few samples) and an item's chunks never depend on
its batch neighbours. Items no longer than one chunk are separated whole. The ``k``-th chunks of
all long items are separated together in one call.

A separator returns its streams in an arbitrary order, so each chunk's streams are reordered to
match the same item's previous chunk on their overlap (the permutation of largest summed
normalised correlation, ``amongus.scoring.best_permutation``); then the chunks are overlap-added
with linear crossfades and divided by the summed window (the approach of Asteroid's
``LambdaOverlapAdd``, with explicit alignment). The output-scale policy of the built-in
separators is applied once to the stitched result, as it would be without chunking.

Model separators chunk by default (:data:`MODEL_CHUNK_SECONDS`, :data:`MODEL_OVERLAP_SECONDS`,
capped at the model's own input limit), so memory is bounded for every caller.

Memory: the model sees at most one chunk per long item at a time; what grows with the input is
the input, the ``[B, S, T]`` output and one ``[B, T]`` overlap-add weight.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from .base import Separator, check_batch, check_references, fit_length
from .scale import apply_output_scale

logger = logging.getLogger(__name__)

#: Default chunk of the model separators (SepFormer, ConvTasNet): long enough for several
#: utterances of context (the published models were trained on 3-4 s segments), short enough
#: that a chunk's activations stay near 1 GB for the published SepFormer on CPU.
MODEL_CHUNK_SECONDS = 10.0
#: Default overlap of the model separators' chunks: the stretch on which consecutive chunks'
#: streams are aligned and crossfaded.
MODEL_OVERLAP_SECONDS = 2.0


def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Start samples of chunks of ``chunk`` samples every ``hop``; the last ends at ``length``."""
    if length <= chunk:
        return [0]
    starts = list(range(0, length - chunk, hop))
    starts.append(length - chunk)
    return starts


def chunk_plan(
    chunk_seconds: float | None, overlap_seconds: float | None, sample_rate: int | None
) -> tuple[int, int] | None:
    """``(chunk, overlap)`` in samples, or ``None`` (separate whole) for ``chunk_seconds`` None
    or infinite. ``overlap_seconds`` defaults to a quarter of the chunk.

    Raises:
        ValueError: a chunk shorter than one sample, an overlap not in ``(0, chunk / 2]``, or
            seconds without a ``sample_rate`` to convert them.
    """
    if chunk_seconds is None or math.isinf(chunk_seconds):
        return None
    if not chunk_seconds > 0:
        raise ValueError(
            f"chunk_seconds must be positive (or None/inf: whole), got {chunk_seconds}"
        )
    if sample_rate is None:
        raise ValueError(
            "chunk_seconds needs a sample rate: this separator accepts any rate, so use "
            "separate_chunked(..., sample_rate=) or separate_at_rate"
        )
    chunk = int(round(chunk_seconds * sample_rate))
    if chunk < 1:
        raise ValueError(f"chunk_seconds={chunk_seconds} is shorter than one sample")
    if overlap_seconds is None:
        overlap_seconds = chunk_seconds / 4
    overlap = int(round(overlap_seconds * sample_rate))
    if not 0 < overlap <= chunk // 2:
        raise ValueError(
            f"overlap_seconds={overlap_seconds} must be positive and at most half of "
            f"chunk_seconds={chunk_seconds} (streams are aligned on the overlap)"
        )
    return chunk, overlap


def _ramp(length: int, *, rising: bool, like):
    import torch

    values = (torch.arange(length, dtype=like.dtype, device=like.device) + 0.5) / length
    return values if rising else values.flip(0)


def align_to_previous(previous, current):
    """The order of ``current``'s streams that matches ``previous`` on a shared stretch.

    The similarity of two streams is their normalised correlation; the permutation with the
    largest total similarity wins (a silent stretch gives ties, which keep the current order).

    Shape: ``previous [B, S, L]``, ``current [B, S, L]`` -> permutations ``[B, S]``; the
    aligned streams are ``current[b, perm[b, i]]``.
    """
    import torch

    from ..scoring import best_permutation

    eps = 1e-8
    previous_unit = previous / previous.norm(dim=-1, keepdim=True).clamp_min(eps)
    current_unit = current / current.norm(dim=-1, keepdim=True).clamp_min(eps)
    similarity = torch.einsum("bil,bjl->bij", previous_unit, current_unit).double().cpu()
    perms = torch.tensor(
        [best_permutation((-matrix).numpy()) for matrix in similarity], device=current.device
    ).reshape(current.shape[0], current.shape[1])
    return perms


def stitch_chunks(
    run: Callable,
    mixture,
    lengths,
    references=None,
    *,
    chunk: int,
    overlap: int,
    progress: bool = False,
):
    """Separate every item of a padded batch on its own chunk grid and stitch the streams.

    Args:
        run: ``run(mixture [b, t], lengths [b] | None, references [b, S, t] | None)`` returns
            raw streams ``[b, S, t]``, each item separated as it would be alone (a padded item
            cropped to its length); ``SeparatorBase`` and every ``Separator`` honour this.
        mixture: ``[B, T]``, validated.
        lengths: ``[B]`` valid samples per item (``None``: all ``T``).
        references: ``[B, S, T]`` for the oracle, cut alongside.
        chunk: chunk length in samples; items of at most ``chunk`` samples are run whole.
        overlap: samples shared by consecutive chunks, ``0 < overlap <= chunk // 2``.
        progress: a tqdm bar over chunk rounds.

    Returns:
        ``[B, S, T]`` streams (unscaled), zero past each item's length.
    """
    import torch

    batch, width = mixture.shape
    sizes = [width] * batch if lengths is None else [int(n) for n in lengths.tolist()]
    hop = chunk - overlap
    grids = [chunk_starts(size, chunk, hop) if size > chunk else None for size in sizes]
    streams = None

    def output(n_src: int):
        return mixture.new_zeros(batch, n_src, width)

    whole = [row for row in range(batch) if grids[row] is None and sizes[row] > 0]
    if whole:
        span = max(sizes[row] for row in whole)
        index = torch.tensor(whole, device=mixture.device)
        part = run(
            mixture[index, :span],
            torch.tensor([sizes[row] for row in whole], device=mixture.device),
            None if references is None else references[index, :, :span],
        )
        part = fit_length(part.to(device=mixture.device, dtype=mixture.dtype), span)
        streams = output(part.shape[1])
        streams[index, :, :span] = part
        del part
    long_rows = [row for row in range(batch) if grids[row] is not None]
    if not long_rows:
        return streams if streams is not None else run(mixture, lengths, references)
    weight = mixture.new_zeros(len(long_rows), width)
    previous: dict[int, tuple] = {}
    rounds = range(max(len(grids[row]) for row in long_rows))
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc="separating chunks", unit="chunk")
    for step in rounds:
        active = [(slot, row) for slot, row in enumerate(long_rows) if len(grids[row]) > step]
        starts = [grids[row][step] for _, row in active]
        pieces = torch.stack(
            [
                mixture[row, start : start + chunk]
                for (_, row), start in zip(active, starts, strict=True)
            ]
        )
        piece_references = None
        if references is not None:
            piece_references = torch.stack(
                [
                    references[row, :, start : start + chunk]
                    for (_, row), start in zip(active, starts, strict=True)
                ]
            )
        separated = run(pieces, None, piece_references)
        separated = fit_length(separated.to(device=mixture.device, dtype=mixture.dtype), chunk)
        del pieces, piece_references
        if streams is None:
            streams = output(separated.shape[1])
        for position, ((slot, row), start) in enumerate(zip(active, starts, strict=True)):
            current = separated[position]
            window = mixture.new_ones(chunk)
            if row in previous:
                before, before_start = previous[row]
                shared = before_start + chunk - start
                perm = align_to_previous(
                    before[None, :, start - before_start :], current[None, :, :shared]
                )[0]
                current = current[perm]
                window[:shared] *= _ramp(shared, rising=True, like=window)
            grid = grids[row]
            if step + 1 < len(grid):
                shared_next = start + chunk - grid[step + 1]
                window[-shared_next:] *= _ramp(shared_next, rising=False, like=window)
            streams[row, :, start : start + chunk] += current * window
            weight[slot, start : start + chunk] += window
            previous[row] = (current, start)
        del separated
    for slot, row in enumerate(long_rows):
        size = sizes[row]
        streams[row, :, :size].div_(weight[slot, :size])  # in place: memory stays [B, S, T]
    return streams


def separate_chunked(
    separator: Separator,
    mixture,
    lengths=None,
    *,
    chunk_seconds: float | None,
    overlap_seconds: float | None,
    sample_rate: int,
    references=None,
    progress: bool = False,
):
    """Separate ``mixture`` chunk by chunk and stitch the streams (see the module docstring).

    Args:
        separator: any ``Separator``; it must run at ``sample_rate`` (or be rate-agnostic).
        mixture: ``[B, T]`` at ``sample_rate``.
        lengths: ``[B]`` valid samples per item; streams past them are zero.
        chunk_seconds: chunk duration; items no longer than one chunk are separated at once.
            ``None`` or ``math.inf``: every item whole (a built-in separator still splits an
            input longer than its ``max_samples``, with a warning).
        overlap_seconds: overlap between consecutive chunks, ``0 < overlap <= chunk / 2``
            (``None``: a quarter of the chunk).
        sample_rate: the rate of ``mixture`` (to turn seconds into samples).
        references: ``[B, S, T]`` for the oracle, chunked alongside.
        progress: show a tqdm bar over chunks.

    Each item's result equals separating that item alone with the same settings (to float
    rounding): grids are per item, so batch neighbours do not matter.

    Raises:
        ValueError: bad chunking options, a separator rate other than ``sample_rate``, or an
            invalid batch (see ``check_batch``).

    Shape: ``[B, T] -> [B, n_src, T]``.
    """
    from .base import SeparatorBase

    mixture, lengths = check_batch(mixture, lengths)
    if references is not None:
        references = check_references(references, mixture)
    if separator.sample_rate is not None and int(separator.sample_rate) != int(sample_rate):
        raise ValueError(
            f"separator runs at {separator.sample_rate} Hz but the mixture is at {sample_rate} Hz; "
            "resample first (amongus.separation.run.separate_at_rate does both)"
        )
    plan = chunk_plan(chunk_seconds, overlap_seconds, sample_rate)
    if isinstance(separator, SeparatorBase):
        return separator.separate_chunks(
            mixture, lengths, references=references, plan=plan, progress=progress
        )
    if plan is None:
        return separator.separate(mixture, lengths, references=references)

    def run(pieces, piece_lengths, piece_references):
        return separator.separate(pieces, piece_lengths, references=piece_references)

    streams = stitch_chunks(
        run, mixture, lengths, references, chunk=plan[0], overlap=plan[1], progress=progress
    )
    return apply_output_scale(streams, mixture, "none", lengths, inplace=True)
