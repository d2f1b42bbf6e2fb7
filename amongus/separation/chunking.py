"""Separate long inputs in overlapping chunks so memory stays bounded.

The mixture is cut into chunks of ``chunk_seconds`` that overlap by ``overlap_seconds`` (the last
chunk ends at the end of the input, so every chunk has full length). Each chunk is separated on
its own; as a separator returns its streams in an arbitrary order, each chunk's streams are
reordered to match the previous chunk's on their overlap (the permutation of largest summed
normalised correlation, ``amongus.scoring.best_permutation``), then the chunks are overlap-added
with linear crossfades and divided by the summed window. The output-scale policy of the built-in
separators is applied once to the stitched result, as it would be without chunking.

Memory: the model sees at most one chunk at a time; what grows with the input is only the input
and the ``[B, S, T]`` output.
"""

from __future__ import annotations

import logging

from .base import Separator, SeparatorBase, check_batch, check_references
from .scale import apply_output_scale

logger = logging.getLogger(__name__)


def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Start samples of chunks of ``chunk`` samples every ``hop``; the last ends at ``length``."""
    if length <= chunk:
        return [0]
    starts = list(range(0, length - chunk, hop))
    starts.append(length - chunk)
    return starts


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


def separate_chunked(
    separator: Separator,
    mixture,
    lengths=None,
    *,
    chunk_seconds: float,
    overlap_seconds: float,
    sample_rate: int,
    references=None,
    progress: bool = False,
):
    """Separate ``mixture`` chunk by chunk and stitch the streams (see the module docstring).

    Args:
        separator: any ``Separator``; it must run at ``sample_rate`` (or be rate-agnostic).
        mixture: ``[B, T]`` at ``sample_rate``.
        lengths: ``[B]`` valid samples per item; streams past them are zero.
        chunk_seconds: chunk duration; inputs no longer than one chunk are separated at once.
        overlap_seconds: overlap between consecutive chunks, ``0 < overlap <= chunk / 2``.
        sample_rate: the rate of ``mixture`` (to turn seconds into samples).
        references: ``[B, S, T]`` for the oracle, chunked alongside.
        progress: show a tqdm bar over chunks.

    Shape: ``[B, T] -> [B, n_src, T]``.
    """
    import torch

    mixture, lengths = check_batch(mixture, lengths)
    if references is not None:
        references = check_references(references, mixture)
    if separator.sample_rate is not None and int(separator.sample_rate) != int(sample_rate):
        raise ValueError(
            f"separator runs at {separator.sample_rate} Hz but the mixture is at {sample_rate} Hz; "
            "resample first (amongus.separation.run.separate_at_rate does both)"
        )
    chunk = int(round(chunk_seconds * sample_rate))
    overlap = int(round(overlap_seconds * sample_rate))
    if chunk < 1:
        raise ValueError(f"chunk_seconds={chunk_seconds} is shorter than one sample")
    if not 0 < overlap <= chunk // 2:
        raise ValueError(
            f"overlap_seconds={overlap_seconds} must be positive and at most half of "
            f"chunk_seconds={chunk_seconds} (streams are aligned on the overlap)"
        )
    batch, length = mixture.shape
    if length <= chunk:
        return separator.separate(mixture, lengths, references=references)

    builtin = isinstance(separator, SeparatorBase)
    extra = {"output_scale": "none"} if builtin else {}
    starts = chunk_starts(length, chunk, chunk - overlap)
    streams = weight = previous = None
    previous_start = 0
    batch_index = torch.arange(batch, device=mixture.device)[:, None]
    iterator = starts
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(starts, desc="separating chunks", unit="chunk")
    for index, start in enumerate(iterator):
        end = start + chunk
        chunk_lengths = None if lengths is None else (lengths - start).clamp(0, chunk)
        chunk_references = None if references is None else references[..., start:end]
        separated = separator.separate(
            mixture[:, start:end], chunk_lengths, references=chunk_references, **extra
        )
        if streams is None:
            streams = mixture.new_zeros(batch, separated.shape[1], length)
            weight = mixture.new_zeros(length)
        window = mixture.new_ones(chunk)
        if previous is not None:
            shared = previous_start + chunk - start
            perms = align_to_previous(
                previous[..., start - previous_start :], separated[..., :shared]
            )
            separated = separated[batch_index, perms]
            window[:shared] *= _ramp(shared, rising=True, like=window)
        if index + 1 < len(starts):
            shared_next = end - starts[index + 1]
            window[-shared_next:] *= _ramp(shared_next, rising=False, like=window)
        streams[..., start:end] += separated * window
        weight[start:end] += window
        previous, previous_start = separated, start
    streams.div_(weight)  # in place throughout: memory beyond the chunk is only [B, S, T]
    policy = separator.output_scale if builtin else "none"
    return apply_output_scale(streams, mixture, policy, lengths, inplace=True)
