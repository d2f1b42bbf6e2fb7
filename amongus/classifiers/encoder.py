"""AASIST's front end: a fixed sinc filterbank and the RawNet2-style residual encoder.

Sources: Jung et al., AASIST (ICASSP 2022, arXiv:2110.01200), Sec. 2.1 (the RawNet2-based
encoder of Tak et al., ICASSP 2021, on a sinc-convolution layer after Ravanelli and Bengio,
SLT 2018), and the authors' reference implementation (clovaai/aasist ``models/AASIST.py``, MIT).

Behaviours of the reference kept on purpose, because the published weights were trained with them:

* the sinc filters are fixed (not learnt): ``n_filters`` band-pass filters whose edges are
  equally spaced on the mel scale between 0 Hz and the Nyquist frequency, each an ideal band-pass
  (difference of two sinc low-pass filters) times a Hamming window, with an odd kernel length
  (``first_conv + 1`` when ``first_conv`` is even); they are not part of the state dict;
* a residual block after the first one holds a batch norm ``bn1`` (in the published weights) whose
  output the reference computes and then discards: its first convolution sees the block's raw
  input. ``bn1`` is kept so that checkpoints load strictly, and has no effect on the output.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def sinc_filters(n_filters: int, kernel_size: int, sample_rate: int) -> np.ndarray:
    """Mel-spaced band-pass sinc filters, Hamming-windowed.

    Returns ``[n_filters, kernel_size']`` float64, ``kernel_size'`` the odd kernel length.
    """
    if n_filters < 1 or kernel_size < 1 or sample_rate < 1:
        raise ValueError(
            f"need positive sizes, got n_filters={n_filters}, kernel_size={kernel_size}, "
            f"sample_rate={sample_rate}"
        )
    size = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate // 2), n_filters + 1))
    taps = np.arange(size, dtype=np.float64) - (size - 1) / 2
    window = np.hamming(size)

    def low_pass(cutoff: float) -> np.ndarray:
        return 2.0 * cutoff / sample_rate * np.sinc(2.0 * cutoff * taps / sample_rate)

    bands = zip(edges[:-1], edges[1:], strict=True)
    return np.stack([window * (low_pass(high) - low_pass(low)) for low, high in bands])


class SincFilterbank(nn.Module):
    """Fixed band-pass sinc filters applied to raw audio.

    Shape: ``[B, 1, T] -> [B, n_filters, T - kernel + 1]`` (``kernel`` odd, see module docstring).
    """

    def __init__(self, n_filters: int, kernel_size: int, *, sample_rate: int = 16000):
        super().__init__()
        filters = sinc_filters(n_filters, kernel_size, sample_rate)
        # not persistent: derived from the config, absent from published checkpoints
        self.register_buffer(
            "filters", torch.from_numpy(filters).float().unsqueeze(1), persistent=False
        )

    @property
    def kernel_size(self) -> int:
        return int(self.filters.shape[-1])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return F.conv1d(audio, self.filters.to(audio.dtype))


class ResidualBlock(nn.Module):
    """A RawNet2-style residual block on ``[B, C, F, T]`` feature maps.

    ``conv1`` (kernel 2x3), batch norm, SELU, ``conv2`` (kernel 2x3), plus the input (through a
    1x3 ``conv_downsample`` when the channel count changes), then max pooling over time by
    ``pool_time`` (AASIST: 3; SSL_W2V: none).

    Shape: ``[B, in_channels, F, T] -> [B, out_channels, F, T // pool_time]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, first: bool, pool_time: int | None):
        super().__init__()
        if not first:
            self.bn1 = nn.BatchNorm2d(in_channels)  # unused by the forward: see module docstring
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1))
        self.selu = nn.SELU()
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1))
        if in_channels != out_channels:
            self.conv_downsample = nn.Conv2d(
                in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1)
            )
        self.pool = nn.MaxPool2d((1, pool_time)) if pool_time else nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.conv2(self.selu(self.bn2(self.conv1(features))))
        shortcut = self.conv_downsample(features) if hasattr(self, "conv_downsample") else features
        return self.pool(hidden + shortcut)


def residual_encoder(filts, *, pool_time: int | None) -> nn.Sequential:
    """The six residual blocks of AASIST's encoder, nested as in the published checkpoints
    (``encoder.<i>.0.<layer>``): channel pairs ``filts[1]``, ``filts[2]``, ``filts[3]``, then
    ``filts[4]`` three times.
    """
    pairs = [filts[1], filts[2], filts[3], filts[4], filts[4], filts[4]]
    return nn.Sequential(
        *(
            nn.Sequential(ResidualBlock(int(a), int(b), first=index == 0, pool_time=pool_time))
            for index, (a, b) in enumerate(pairs)
        )
    )


def pooled_size(size: int, factor: int = 3) -> int:
    """Length of an axis after non-overlapping max pooling by ``factor`` (floor)."""
    return math.floor(size / factor)
