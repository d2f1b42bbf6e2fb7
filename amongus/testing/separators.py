"""Tiny separators written in the exact on-disk formats of the published checkpoints.

* SpeechBrain SepFormer (as ``speechbrain/sepformer-wsj02mix`` on the Hugging Face Hub): a folder
  with ``hyperparams.yaml`` (``Encoder``, an ``SBTransformerBlock``-based ``Dual_Path_Model``
  mask network, ``Decoder``, ``modules`` and a ``pretrainer`` whose loadables are ``encoder``,
  ``masknet`` and ``decoder``) and the three state dicts ``encoder.ckpt``, ``masknet.ckpt``,
  ``decoder.ckpt`` saved with ``torch.save``.
* Asteroid (``JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k``, ``mpariente/ConvTasNet_WHAM!_sepclean``):
  one ``torch.save``'d dict from ``model.serialize()`` with ``model_name``, ``model_args``
  (``sample_rate`` inside), ``state_dict`` and ``infos``.

The size parameters default to tiny values for tests; the same functions with real sizes make the
starting point of a separator trained by the project (``sepformer_hparams_text`` +
``save_sepformer``, ``build_convtasnet_model`` + ``save_asteroid_model``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

SEPFORMER_FILES = ("hyperparams.yaml", "encoder.ckpt", "masknet.ckpt", "decoder.ckpt")


def sepformer_hparams_text(
    *,
    sample_rate: int = 8000,
    n_src: int = 2,
    n_filters: int = 16,
    kernel_size: int = 16,
    d_model: int = 16,
    nhead: int = 2,
    d_ffn: int = 32,
    transformer_layers: int = 1,
    num_layers: int = 1,
    chunk_size: int = 50,
) -> str:
    """The ``hyperparams.yaml`` of a SepFormer, laid out as in ``speechbrain/sepformer-wsj02mix``.

    The published model uses ``n_filters=256, d_model=256, nhead=8, d_ffn=1024,
    transformer_layers=8, num_layers=2, chunk_size=250, kernel_size=16`` at 8000 Hz.
    The encoder stride is ``kernel_size // 2`` (SpeechBrain's ``Encoder``), as is the decoder's.
    """
    if kernel_size < 2 or kernel_size % 2:
        raise ValueError(f"kernel_size must be even and >= 2, got {kernel_size}")
    if d_model % nhead:
        raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
    transformer = f"""!new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: {transformer_layers}
    d_model: {d_model}
    nhead: {nhead}
    d_ffn: {d_ffn}
    dropout: 0
    use_positional_encoding: true
    norm_before: true"""
    return f"""# ################################
# Model: Inference for source separation with SepFormer
# https://arxiv.org/abs/2010.13154
# Layout of speechbrain/sepformer-wsj02mix, sizes set by amongus.testing.separators
# ################################

# Parameters
sample_rate: {int(sample_rate)}
num_spks: {int(n_src)}

# Specifying the network
Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: {kernel_size}
    out_channels: {n_filters}

SBtfintra: {transformer}

SBtfinter: {transformer}

MaskNet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: !ref <num_spks>
    in_channels: {n_filters}
    out_channels: {d_model}
    num_layers: {num_layers}
    K: {chunk_size}
    intra_model: !ref <SBtfintra>
    inter_model: !ref <SBtfinter>
    norm: ln
    linear_layer_after_inter_intra: false
    skip_around_intra: true

Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: {n_filters}
    out_channels: 1
    kernel_size: {kernel_size}
    stride: {kernel_size // 2}
    bias: false

modules:
    encoder: !ref <Encoder>
    decoder: !ref <Decoder>
    masknet: !ref <MaskNet>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        encoder: !ref <Encoder>
        masknet: !ref <MaskNet>
        decoder: !ref <Decoder>
"""


def instantiate_sepformer(hparams_text: str, *, seed: int = 0) -> dict[str, Any]:
    """Build the modules of a SepFormer ``hyperparams.yaml`` text with a seeded random init.

    Returns the loaded hyperparameters (``hparams["modules"]`` holds ``encoder``, ``masknet``,
    ``decoder``): train those modules, then write them with ``save_sepformer``.
    """
    import torch

    from .._compat import check_torch_family

    check_torch_family()  # the YAML imports SpeechBrain, which imports torchaudio
    from hyperpyyaml import load_hyperpyyaml

    torch.manual_seed(seed)
    return load_hyperpyyaml(hparams_text)


def save_sepformer(
    directory: str | os.PathLike, hparams_text: str, modules: dict[str, torch.nn.Module]
) -> Path:
    """Write ``hyperparams.yaml`` and ``<name>.ckpt`` state dicts, as SpeechBrain publishes them."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("encoder", "masknet", "decoder"):
        if name not in modules:
            raise ValueError(f"save_sepformer: modules lacks {name!r} (got {sorted(modules)})")
        torch.save(modules[name].state_dict(), directory / f"{name}.ckpt")
    (directory / "hyperparams.yaml").write_text(hparams_text, encoding="utf-8")
    return directory


def build_tiny_sepformer(
    directory: str | os.PathLike,
    *,
    sample_rate: int = 8000,
    n_src: int = 2,
    seed: int = 0,
    **sizes: int,
) -> Path:
    """Write a randomly initialised SepFormer in SpeechBrain's hub format; returns the folder.

    ``sizes`` are the keyword options of ``sepformer_hparams_text`` (``n_filters``,
    ``kernel_size``, ``d_model``, ``nhead``, ``d_ffn``, ``transformer_layers``, ``num_layers``,
    ``chunk_size``).

    Example:
        >>> folder = build_tiny_sepformer(tmp_path / "sepformer")  # doctest: +SKIP
        >>> load_separator(folder).sample_rate  # doctest: +SKIP
        8000
    """
    text = sepformer_hparams_text(sample_rate=sample_rate, n_src=n_src, **sizes)
    hparams = instantiate_sepformer(text, seed=seed)
    return save_sepformer(directory, text, hparams["modules"])


def build_convtasnet_model(
    *,
    sample_rate: int = 16000,
    n_src: int = 2,
    seed: int = 0,
    n_filters: int = 32,
    kernel_size: int = 16,
    stride: int | None = None,
    bn_chan: int = 16,
    hid_chan: int = 32,
    skip_chan: int = 16,
    n_blocks: int = 2,
    n_repeats: int = 1,
    conv_kernel_size: int = 3,
    norm_type: str = "gLN",
    mask_act: str = "sigmoid",
    **model_args: Any,
):
    """A seeded, randomly initialised ``asteroid.models.ConvTasNet`` (published: ``n_filters=512,
    bn_chan=128, hid_chan=512, skip_chan=128, n_blocks=8, n_repeats=3``)."""
    import torch

    from .._compat import check_torch_family

    check_torch_family()  # Asteroid imports torchaudio first thing
    from asteroid.models import ConvTasNet

    torch.manual_seed(seed)
    return ConvTasNet(
        n_src=n_src,
        n_filters=n_filters,
        kernel_size=kernel_size,
        stride=stride if stride is not None else kernel_size // 2,
        bn_chan=bn_chan,
        hid_chan=hid_chan,
        skip_chan=skip_chan,
        n_blocks=n_blocks,
        n_repeats=n_repeats,
        conv_kernel_size=conv_kernel_size,
        norm_type=norm_type,
        mask_act=mask_act,
        sample_rate=sample_rate,
        **model_args,
    ).eval()


def save_asteroid_model(model, path: str | os.PathLike) -> Path:
    """``torch.save(model.serialize(), path)``: Asteroid's published package (``pytorch_model.bin``).

    A folder (an existing directory or a path without suffix) receives ``pytorch_model.bin``.
    """
    import torch

    path = Path(path)
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        path = path / "pytorch_model.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.serialize(), path)
    return path


def build_tiny_convtasnet(
    path: str | os.PathLike,
    *,
    sample_rate: int = 16000,
    n_src: int = 2,
    seed: int = 0,
    **sizes: Any,
) -> Path:
    """Write a randomly initialised ConvTasNet in Asteroid's package format; returns the file.

    ``path`` is a file (``.bin``/``.pth``) or a folder (receives ``pytorch_model.bin``, as on the
    hub). ``sizes`` go to ``build_convtasnet_model`` (``n_filters``, ``bn_chan``, ``hid_chan``,
    ``skip_chan``, ``n_blocks``, ``n_repeats``, ...).
    """
    model = build_convtasnet_model(sample_rate=sample_rate, n_src=n_src, seed=seed, **sizes)
    return save_asteroid_model(model, path)
