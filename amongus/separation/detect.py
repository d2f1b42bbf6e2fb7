"""Pick the adapter for a checkpoint path or hub id from its format.

* a folder with ``hyperparams.yaml`` (or that file itself): SpeechBrain SepFormer;
* a ``.bin``/``.pth``/``.pt``/``.ckpt``/``.safetensors`` file, or a folder holding one
  (``pytorch_model.bin`` first): an Asteroid package (ConvTasNet, ...);
* a hub id ``owner/name``: whatever the Hugging Face cache already holds for it; otherwise
  SepFormer for ``speechbrain/...`` or names containing "sepformer", Asteroid for the rest.
  ``kind="sepformer"`` or ``kind="asteroid"`` forces the choice.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._compat import check_torch_family
from .base import CheckpointError, Separator
from .convtasnet import PACKAGE_SUFFIXES, ConvTasNetSeparator
from .sepformer import SepformerSeparator

KINDS = ("sepformer", "asteroid")


def detect_kind(source: str | os.PathLike) -> str:
    """``"sepformer"`` or ``"asteroid"`` for a local path or a hub id (see the module docstring)."""
    local = Path(source).expanduser()
    if local.is_dir():
        if (local / "hyperparams.yaml").is_file():
            return "sepformer"
        if any(p.suffix in (*PACKAGE_SUFFIXES, ".safetensors") for p in local.iterdir()):
            return "asteroid"
        raise CheckpointError(
            f"{local}: neither a SpeechBrain folder (hyperparams.yaml) nor an Asteroid checkpoint "
            f"folder (pytorch_model.bin or a {'/'.join(PACKAGE_SUFFIXES)}/.safetensors file)"
        )
    if local.is_file():
        if local.name == "hyperparams.yaml":
            return "sepformer"
        if local.suffix in (*PACKAGE_SUFFIXES, ".safetensors"):
            return "asteroid"
        raise CheckpointError(f"{local}: unknown checkpoint format (suffix {local.suffix!r})")
    text = str(source)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise CheckpointError(
            f"{text}: no such file or folder, and not a registered separator name or a hub id "
            "(owner/name); registered: oracle, passthrough, sepformer, convtasnet"
        )
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(text, "hyperparams.yaml"), str):
            return "sepformer"
        if isinstance(try_to_load_from_cache(text, "pytorch_model.bin"), str):
            return "asteroid"
    except Exception:  # noqa: BLE001 - the cache lookup is only a hint
        pass
    owner, name = text.split("/")
    return "sepformer" if owner == "speechbrain" or "sepformer" in name.lower() else "asteroid"


def separator_from_source(
    name_or_path: str | os.PathLike, *, kind: str | None = None, **options
) -> Separator:
    """Build the separator a checkpoint path or hub id holds; ``options`` go to its adapter."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_torch_family()  # before SpeechBrain/Asteroid import a mismatched torchaudio
    kind = kind or detect_kind(name_or_path)
    source = Path(name_or_path).expanduser()
    if kind == "sepformer":
        if source.is_file():  # the hyperparams.yaml itself
            source = source.parent
        return SepformerSeparator(source if source.exists() else str(name_or_path), **options)
    return ConvTasNetSeparator(source if source.exists() else str(name_or_path), **options)
