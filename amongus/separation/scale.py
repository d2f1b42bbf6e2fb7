"""Output-scale policy: the level at which separated streams are handed on.

Separation models are trained with scale-invariant losses (SI-SNR), so the level of what they
return is arbitrary: Asteroid's ConvTasNet often returns streams many times louder than its
input, SepFormer's are usually quieter, and a random or fine-tuned model can return anything. A
spoof classifier whose feature extractor does not normalise its input (``do_normalize=False``)
sees that level, and streams saved to 16-bit files clip. So every separator takes an explicit
``output_scale``:

``"none"``
    the raw model output (the oracle's and passthrough's default: they are already at the
    mixture's scale).
``"projection"`` (default for model separators)
    each stream ``y`` is multiplied by ``<x, y> / <y, y>``, its least-squares gain against the
    mixture ``x``. A stream that is one of the sources comes back at the level at which that
    source is present in the mixture (speakers in a mixture are nearly uncorrelated), so the
    streams of a good separation sum to about the mixture and keep the speakers' relative
    levels; a stream the model invents that is not in the mixture comes back quiet; a
    polarity-flipped stream is flipped back. For passthrough the gain is exactly 1.
``"mixture_rms"``
    every stream gets the mixture's RMS (equal loudness; a near-silent stream is amplified).
``"peak"``
    every stream is divided by its own absolute maximum (SpeechBrain's ``separate_file``,
    which the study used).

Gains are computed per item and per stream over each item's valid samples (``lengths``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

OUTPUT_SCALES = ("none", "projection", "mixture_rms", "peak")
MODEL_DEFAULT_SCALE = "projection"


def check_output_scale(policy: str) -> str:
    """Return ``policy`` if it names an output-scale policy; raise ``ValueError`` otherwise."""
    if policy not in OUTPUT_SCALES:
        raise ValueError(
            f"unknown output_scale {policy!r}; choose one of {', '.join(OUTPUT_SCALES)}"
        )
    return policy


def valid_mask(lengths: torch.Tensor | None, length: int, like: torch.Tensor) -> torch.Tensor:
    """``[B, 1, T]`` mask of valid samples (all ones when ``lengths`` is None)."""
    import torch

    if lengths is None:
        return torch.ones(like.shape[0], 1, length, dtype=like.dtype, device=like.device)
    positions = torch.arange(length, device=like.device)
    return (positions[None, :] < lengths.to(like.device)[:, None]).to(like.dtype)[:, None, :]


def apply_output_scale(
    streams: torch.Tensor,
    mixture: torch.Tensor,
    policy: str,
    lengths: torch.Tensor | None = None,
    *,
    eps: float = 1e-8,
    inplace: bool = False,
) -> torch.Tensor:
    """Rescale separated streams according to ``policy`` (see the module docstring).

    Samples past ``lengths`` are set to zero. An all-zero stream stays zero under every policy.
    Gains come from reductions (no ``[B, S, T]`` temporaries), so long inputs cost little beyond
    the streams themselves; ``inplace=True`` rescales ``streams`` in place.

    Shape: ``streams [B, S, T]``, ``mixture [B, T]``, ``lengths [B]`` -> ``[B, S, T]``.
    """
    import torch

    check_output_scale(policy)
    length = streams.shape[-1]
    if lengths is not None:
        padding = (
            torch.arange(length, device=streams.device)[None, :]
            >= lengths.to(streams.device)[:, None]
        )
        streams = (streams.masked_fill_ if inplace else streams.masked_fill)(padding[:, None], 0.0)
        inplace = True  # from here on, streams is ours
    if policy == "none":
        return streams
    mixture = mixture.to(streams.dtype)
    if lengths is not None:
        mixture = mixture.masked_fill(padding, 0.0)
    energy = torch.linalg.vector_norm(streams, dim=-1).pow(2)  # [B, S]
    if policy == "projection":
        gain = torch.einsum("bst,bt->bs", streams, mixture) / energy.clamp_min(eps)
    elif policy == "mixture_rms":
        count = (
            lengths.to(streams.device, streams.dtype)[:, None].clamp_min(1.0)
            if lengths is not None
            else torch.full_like(energy[:, :1], float(length))
        )
        mixture_energy = torch.linalg.vector_norm(mixture, dim=-1).pow(2)[:, None]
        gain = (mixture_energy / count).sqrt() / (energy / count).sqrt().clamp_min(eps)
    else:  # peak
        peak = torch.maximum(streams.amax(-1).abs(), streams.amin(-1).abs())
        gain = 1.0 / peak.clamp_min(eps)
    gain = torch.where(energy > 0, gain, torch.zeros_like(gain))[..., None]
    return streams.mul_(gain) if inplace else streams * gain
