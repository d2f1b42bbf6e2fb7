"""Asteroid ConvTasNet adapter (and any other Asteroid separation model in the same format).

Asteroid publishes a model as one ``torch.save``'d dict (``pytorch_model.bin`` on the hub, e.g.
``JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k``) with ``model_name``, ``model_args`` (holding
``sample_rate``), ``state_dict`` and ``infos``. It is read with
:func:`amongus.checkpoints.load_weights` (``torch.load(weights_only=True)``, zip or legacy format),
allowing only the plain types such packages contain (``TorchVersion`` in ``infos``, numpy
scalars in the recipe's metric averages, under their numpy 1.x and 2.x names); anything else is
refused with :class:`~amongus.checkpoints.CheckpointError` unless ``trust_checkpoint=True``. The
weights must fit the model exactly (:func:`amongus.checkpoints.load_state_dict_strict`). A
``.safetensors`` state dict with a JSON config (``model_name``, ``model_args``) next to it is
accepted too.

The rate is read from the checkpoint and can be overridden with ``sample_rate=``: some published
16 kHz checkpoints say 8000. The override declares the rate the model is fed; the model's own
arguments are kept (a ``param_sinc`` filterbank depends on them).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointError, load_state_dict_strict, load_weights
from ..cli_options import how_to_pass
from .base import SeparatorBase, hash_files, register_separator, run_by_length
from .chunking import MODEL_CHUNK_SECONDS, MODEL_OVERLAP_SECONDS
from .limits import model_min_samples
from .scale import MODEL_DEFAULT_SCALE, check_output_scale

logger = logging.getLogger(__name__)

DEFAULT_CONVTASNET = "JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k"
PACKAGE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt")
PACKAGE_KEYS = ("model_name", "model_args", "state_dict")


def resolve_asteroid_file(source: str | os.PathLike) -> Path:
    """The local package file of ``source``: a file, a folder, or a hub id (downloaded)."""
    local = Path(source).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        for name in ("pytorch_model.bin", "model.safetensors"):
            if (local / name).is_file():
                return local / name
        candidates = sorted(
            p for p in local.iterdir() if p.suffix in (*PACKAGE_SUFFIXES, ".safetensors")
        )
        if len(candidates) == 1:
            return candidates[0]
        raise CheckpointError(
            f"{local}: expected pytorch_model.bin (an Asteroid package) or one "
            f"{'/'.join(PACKAGE_SUFFIXES)}/.safetensors file, found "
            f"{[p.name for p in candidates] or 'none'}"
        )
    if local.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        raise CheckpointError(
            f"{source}: no such file or folder (expected an Asteroid checkpoint or a hub id such "
            f"as {DEFAULT_CONVTASNET!r})"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=str(source), filename="pytorch_model.bin"))
    except Exception as error:  # offline, missing repo, network: all end here
        raise CheckpointError(
            f"could not fetch pytorch_model.bin of {source!r} from the Hugging Face Hub ({error}). "
            "Offline, download it elsewhere and pass the local file or folder."
        ) from error


def _config_for(weights: Path) -> Path:
    for candidate in (weights.with_suffix(".json"), weights.parent / "config.json"):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{weights}: safetensors weights need a JSON config ({weights.stem}.json or config.json) "
        "with model_name and model_args"
    )


def load_asteroid_package(
    path: Path, *, trust_checkpoint: bool = False
) -> tuple[dict[str, Any], list[Path]]:
    """Read an Asteroid package dict (``model_name``, ``model_args``, ``state_dict``) safely.

    Returns the dict and the files it came from (for the weights hash).

    Raises:
        CheckpointError: the file is unsafe (see :func:`amongus.checkpoints.load_weights`),
            unreadable, or not an Asteroid package.
    """
    if path.suffix == ".safetensors":
        config_path = _config_for(path)
        try:
            package = json.loads(config_path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as error:
            raise CheckpointError(f"{config_path}: invalid JSON ({error})") from error
        if not isinstance(package, dict):
            raise CheckpointError(f"{config_path}: expected a JSON object")
        package["state_dict"] = load_weights(path)
        files = [config_path, path]
    else:
        package = load_weights(path, trust_checkpoint=trust_checkpoint)
        files = [path]
    if not isinstance(package, dict) or any(key not in package for key in PACKAGE_KEYS):
        found = (
            sorted(map(str, package))[:10] if isinstance(package, dict) else type(package).__name__
        )
        raise CheckpointError(
            f"{path}: not an Asteroid model package: expected keys {', '.join(PACKAGE_KEYS)}, "
            f"found {found} (a Lightning training checkpoint must be exported with "
            "model.serialize() first)"
        )
    return package, files


def build_asteroid_model(package: dict[str, Any], *, source: str = "checkpoint"):
    """Instantiate ``package["model_name"]`` (an Asteroid ``BaseModel``) and load its weights.

    Raises:
        CheckpointError: an unknown model name, arguments the class does not take, or weights
            with missing, unexpected or mis-shaped keys (listed in the message).
    """
    from asteroid import models as asteroid_models
    from asteroid.models.base_models import BaseModel

    name = str(package["model_name"])
    try:
        model_class = asteroid_models.get(name)
    except ValueError:
        model_class = None
    if not (isinstance(model_class, type) and issubclass(model_class, BaseModel)):
        raise CheckpointError(f"{source}: model_name {name!r} is not an Asteroid model class")
    if not isinstance(package["model_args"], dict):
        raise CheckpointError(f"{source}: model_args must be a dict of {name}'s arguments")
    try:
        model = model_class(**package["model_args"])
    except Exception as error:
        raise CheckpointError(f"{source}: model_args do not build {name} ({error})") from error
    load_state_dict_strict(model, package["state_dict"], source=source)
    return model


class ConvTasNetSeparator(SeparatorBase):
    """An Asteroid separation model (ConvTasNet, DPRNNTasNet, ...) from its published package.

    Args:
        source: a ``.bin``/``.pth``/``.ckpt``/``.safetensors`` file, a folder holding
            ``pytorch_model.bin``, or a hub id (default ``JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k``).
        device: where the model runs; outputs come back on the input's device.
        output_scale: see ``amongus.separation.scale`` (default ``"projection"``).
        sample_rate: the rate the model is fed, overriding the checkpoint's.
        trust_checkpoint: allow unpickling arbitrary objects (``weights_only=False``): only for
            a file whose source you trust. The weights must fit the model either way.
    """

    def __init__(
        self,
        source: str | os.PathLike = DEFAULT_CONVTASNET,
        *,
        device: str = "cpu",
        output_scale: str = MODEL_DEFAULT_SCALE,
        sample_rate: int | None = None,
        trust_checkpoint: bool = False,
    ):
        import torch

        self.output_scale = check_output_scale(output_scale)
        self.source = str(source)
        path = resolve_asteroid_file(source)
        package, files = load_asteroid_package(path, trust_checkpoint=trust_checkpoint)
        self.model = build_asteroid_model(package, source=str(path)).to(torch.device(device))
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.device = device
        self.model_name = str(package["model_name"])
        self.n_src = int(package["model_args"].get("n_src", getattr(self.model, "n_src", 0)))
        if self.n_src < 1:
            raise CheckpointError(f"{path}: model_args has no n_src")
        declared = package["model_args"].get("sample_rate", package.get("sample_rate"))
        if sample_rate is None and declared is None:
            raise CheckpointError(
                f"{path}: the checkpoint names no sample_rate; pass {how_to_pass('sample_rate', 'HZ')}"
            )
        if sample_rate is not None and declared is not None and int(sample_rate) != int(declared):
            logger.warning(
                "%s declares %s Hz; using sample_rate=%s as requested", path, declared, sample_rate
            )
        self.sample_rate = int(sample_rate if sample_rate is not None else declared)
        self.weights_hash = hash_files(files)

    @property
    def identity(self) -> str:
        return (
            f"{self.model_name.lower()}:{self.weights_hash}@{self.sample_rate}"
            f":scale={self.output_scale}{self.chunking_tag}"
        )

    # Input limit and default chunking (amongus.separation.limits / chunking): bounded memory.
    chunk_seconds = MODEL_CHUNK_SECONDS
    overlap_seconds = MODEL_OVERLAP_SECONDS

    @property
    def min_samples(self) -> int:
        return model_min_samples(self.model)

    def _forward(self, mixture):
        return self.model(mixture.to(self.device).float())

    def _separate(self, mixture, lengths, references):
        return run_by_length(self._forward, mixture, lengths, self.n_src)


@register_separator("convtasnet")
def _convtasnet(source: str | os.PathLike = DEFAULT_CONVTASNET, **options) -> ConvTasNetSeparator:
    return ConvTasNetSeparator(source, **options)
