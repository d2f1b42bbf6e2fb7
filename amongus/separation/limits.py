"""Input-length limits of separation models, derived from their modules (no magic numbers).

* **Minimum.** A model whose first layer is a strided convolution (the learned encoder of
  Conv-TasNet, Luo & Mesgarani 2019, and of SepFormer, Subakan et al. 2021) needs at least one
  full kernel of input: ``dilation * (kernel - 1) + 1 - 2 * padding`` samples. Shorter inputs end
  in torch's "Kernel size can't be greater than actual input size".
* **Maximum.** SpeechBrain's SepFormer adds a fixed table of ``max_len`` sinusoidal positional
  encodings (2500 in ``speechbrain.lobes.models.transformer.Transformer.PositionalEncoding``) to
  the sequence of chunks seen by its inter-chunk transformer. ``Dual_Path_Model._Segmentation``
  cuts ``L`` encoder frames into chunks of ``K`` frames with 50 % overlap after padding, giving
  ``S = 2 * (floor((L + K // 2) / K) + 1)`` chunks, so ``S <= max_len`` holds up to
  ``L = K * (max_len // 2) - 1 - K // 2`` frames (2500 positions, ``K = 250``, stride 8 at 8 kHz
  as in ``speechbrain/sepformer-wsj02mix``: about 312 s; the shipped ``K = 50``, stride 16:
  about 125 s).
"""

from __future__ import annotations

from typing import Any


def conv_min_samples(kernel_size: int, *, padding: int = 0, dilation: int = 1) -> int:
    """Shortest input (samples) a 1-D convolution accepts: one full (dilated) kernel."""
    return max(1, dilation * (int(kernel_size) - 1) + 1 - 2 * int(padding))


def conv_frames(samples: int, kernel_size: int, stride: int, *, padding: int = 0) -> int:
    """Output frames of a 1-D convolution over ``samples`` inputs."""
    return (int(samples) + 2 * int(padding) - int(kernel_size)) // int(stride) + 1


def _first_int(value: Any) -> int:
    return int(value[0]) if isinstance(value, tuple | list) else int(value)


def _first_conv1d(module) -> Any:
    import torch

    for child in module.modules():
        if isinstance(child, torch.nn.Conv1d):
            return child
    return None


def encoder_geometry(model) -> tuple[int, int, int, int] | None:
    """``(kernel_size, stride, padding, dilation)`` of a separation model's input layer.

    Knows Asteroid's filterbank encoders (``model.encoder.filterbank``), SpeechBrain's
    ``Encoder`` (``mods.encoder.conv1d``) and, failing those, the first ``torch.nn.Conv1d`` in the
    model. ``None`` when there is none.
    """
    encoder = getattr(model, "encoder", None)
    filterbank = getattr(encoder, "filterbank", None)
    if filterbank is not None and hasattr(filterbank, "kernel_size"):
        return (
            int(filterbank.kernel_size),
            int(getattr(filterbank, "stride", 1)),
            int(getattr(encoder, "padding", 0) or 0),
            1,
        )
    mods = getattr(model, "mods", None)
    conv = getattr(getattr(mods, "encoder", None), "conv1d", None) if mods is not None else None
    conv = conv if conv is not None else _first_conv1d(model)
    if conv is None:
        return None
    padding = conv.padding if isinstance(conv.padding, tuple | list) else (0,)
    return (
        _first_int(conv.kernel_size),
        _first_int(conv.stride),
        _first_int(padding),
        _first_int(conv.dilation),
    )


def model_min_samples(model) -> int:
    """Shortest input (samples) ``model`` accepts, from its encoder (1 when unknown)."""
    geometry = encoder_geometry(model)
    if geometry is None:
        return 1
    kernel, _, padding, dilation = geometry
    return conv_min_samples(kernel, padding=padding, dilation=dilation)


def positional_limit(module) -> int | None:
    """The smallest ``max_len`` of the positional-encoding tables in ``module`` (None: none)."""
    limits = []
    for child in module.modules():
        table = getattr(child, "pe", None)
        if table is not None and hasattr(table, "shape") and len(table.shape) >= 2:
            limits.append(int(table.shape[-2]))
    return min(limits) if limits else None


def dual_path_max_frames(chunk_frames: int, max_positions: int) -> int:
    """Most encoder frames a SpeechBrain ``Dual_Path_Model`` with chunks of ``chunk_frames``
    takes when its transformers hold ``max_positions`` positions (see the module docstring)."""
    return int(chunk_frames) * (int(max_positions) // 2) - 1 - int(chunk_frames) // 2


def sepformer_max_samples(model) -> int | None:
    """Longest input (samples) a SpeechBrain SepFormer (``SepformerSeparation``) accepts in one
    piece, or ``None`` when its mask network has no positional-encoding limit."""
    mods = getattr(model, "mods", None)
    masknet = getattr(mods, "masknet", None) if mods is not None else None
    chunk_frames = getattr(masknet, "K", None)
    if masknet is None or chunk_frames is None:
        return None
    max_positions = positional_limit(masknet)
    geometry = encoder_geometry(model)
    if max_positions is None or geometry is None:
        return None
    kernel, stride, padding, _ = geometry
    frames = dual_path_max_frames(int(chunk_frames), max_positions)
    if frames < 1 or int(chunk_frames) > max_positions:
        return None
    # the largest T with conv_frames(T) == frames
    return (frames - 1) * stride + kernel - 2 * padding + (stride - 1)
