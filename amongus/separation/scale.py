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
) -> torch.Tensor:
    """Rescale separated streams according to ``policy`` (see the module docstring).

    An all-zero stream stays zero under every policy.

    Shape: ``streams [B, S, T]``, ``mixture [B, T]``, ``lengths [B]`` -> ``[B, S, T]``.
    """
    check_output_scale(policy)
    if policy == "none":
        return streams
    import torch

    mask = valid_mask(lengths, streams.shape[-1], streams)
    valid_streams = streams * mask
    valid_mixture = mixture[:, None, :].to(streams.dtype) * mask
    if policy == "projection":
        energy = valid_streams.pow(2).sum(-1, keepdim=True)
        gain = (valid_streams * valid_mixture).sum(-1, keepdim=True) / energy.clamp_min(eps)
    elif policy == "mixture_rms":
        count = mask.sum(-1, keepdim=True).clamp_min(1.0)
        stream_rms = (valid_streams.pow(2).sum(-1, keepdim=True) / count).sqrt()
        mixture_rms = (valid_mixture.pow(2).sum(-1, keepdim=True) / count).sqrt()
        gain = mixture_rms / stream_rms.clamp_min(eps)
    else:  # peak
        gain = 1.0 / valid_streams.abs().amax(-1, keepdim=True).clamp_min(eps)
    gain = torch.where(valid_streams.abs().amax(-1, keepdim=True) > 0, gain, torch.zeros_like(gain))
    return streams * gain
