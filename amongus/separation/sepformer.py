"""SpeechBrain SepFormer adapter.

Loads the format of ``speechbrain/sepformer-wsj02mix`` (a folder, local or on the Hugging Face
Hub, with ``hyperparams.yaml`` and ``encoder.ckpt``, ``masknet.ckpt``, ``decoder.ckpt``) through
``SepformerSeparation.from_hparams`` and runs ``separate_batch``, converting SpeechBrain's
``[B, T, n_src]`` to ``[B, n_src, T]`` once. The rate comes from ``sample_rate`` in the
hyperparameters (8000 for wsj02mix).

Safety: ``hyperparams.yaml`` is HyperPyYAML, which can construct any Python object; the file is
checked first and only SpeechBrain model classes, ``torch.nn`` and seeding calls are allowed
unless ``trust_checkpoint=True``. The ``.ckpt`` state dicts are checked with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .base import CheckpointError, SeparatorBase, hash_files, register_separator, run_by_length
from .chunking import MODEL_CHUNK_SECONDS, MODEL_OVERLAP_SECONDS
from .limits import model_min_samples, sepformer_max_samples
from .scale import MODEL_DEFAULT_SCALE, check_output_scale

logger = logging.getLogger(__name__)

DEFAULT_SEPFORMER = "speechbrain/sepformer-wsj02mix"
SEPFORMER_FILES = ("hyperparams.yaml", "encoder.ckpt", "masknet.ckpt", "decoder.ckpt")

# HyperPyYAML tags that build objects, and the targets a separation checkpoint may name.
_TAG = re.compile(r"!(new|name|apply|module|include)\s*:\s*([A-Za-z_][\w.]*)")
_ALLOWED_TARGETS = (
    "speechbrain.lobes.models.",
    "speechbrain.nnet.",
    "speechbrain.processing.",
    "speechbrain.utils.parameter_transfer.Pretrainer",
    "torch.nn.",
    "torch.manual_seed",
    "torch.cuda.manual_seed_all",
    "random.seed",
    "numpy.random.seed",
)


def check_hyperparams(path: Path, *, trust_checkpoint: bool = False) -> None:
    """Refuse a ``hyperparams.yaml`` that would construct objects outside the allowed list."""
    text = path.read_text(encoding="utf-8")
    if trust_checkpoint:
        return
    refused = sorted(
        {
            f"!{kind}:{target}"
            for kind, target in _TAG.findall(text)
            if kind in ("module", "include") or not target.startswith(_ALLOWED_TARGETS)
        }
    )
    if refused:
        raise CheckpointError(
            f"{path}: constructs objects outside SpeechBrain/torch.nn model classes "
            f"({', '.join(refused)}); HyperPyYAML would run them. Pass trust_checkpoint=True only "
            "if you trust this file."
        )


def check_state_dict_file(path: Path, *, trust_checkpoint: bool = False) -> None:
    """Refuse a ``.ckpt`` that is not a plain tensor state dict (``weights_only=True`` load)."""
    import pickle

    import torch

    if trust_checkpoint:
        return
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as error:
        if "mmap" in str(error):  # legacy (non-zip) serialisation cannot be memory-mapped
            try:
                torch.load(path, map_location="cpu", weights_only=True)
                return
            except Exception as inner:  # noqa: BLE001 - reported below
                error = inner
        raise CheckpointError(
            f"{path}: not loadable with torch.load(weights_only=True) ({str(error).splitlines()[0]}); "
            "it may contain arbitrary Python objects. Pass trust_checkpoint=True only if you "
            "trust this file."
        ) from error


def resolve_sepformer_folder(source: str | os.PathLike, *, savedir: str | None = None) -> Path:
    """The local folder holding ``hyperparams.yaml`` + the three ``.ckpt`` files of ``source``.

    A local folder is used in place (nothing is copied or linked). A hub id is fetched with
    SpeechBrain's ``fetch`` into the Hugging Face cache (or ``savedir``); offline, only what is
    already cached is found.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        missing = [name for name in SEPFORMER_FILES if not (local / name).is_file()]
        if missing:
            raise CheckpointError(
                f"{local}: not a SpeechBrain SepFormer folder, missing {', '.join(missing)} "
                f"(expected {', '.join(SEPFORMER_FILES)})"
            )
        return local.resolve()
    if local.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        raise CheckpointError(
            f"{source}: no such folder (expected a SepFormer folder or a hub id such as "
            f"{DEFAULT_SEPFORMER!r})"
        )
    from speechbrain.utils.fetching import LocalStrategy, fetch

    paths = []
    for name in SEPFORMER_FILES:
        try:
            paths.append(
                Path(
                    fetch(
                        name,
                        source=str(source),
                        savedir=savedir,
                        local_strategy=LocalStrategy.SYMLINK if savedir else LocalStrategy.NO_LINK,
                    )
                )
            )
        except Exception as error:  # network, offline mode, missing repo: all end here
            raise CheckpointError(
                f"could not fetch {name} of {source!r} from the Hugging Face Hub ({error}). "
                "Offline, download the model folder elsewhere (hyperparams.yaml, encoder.ckpt, "
                "masknet.ckpt, decoder.ckpt) and pass its local path."
            ) from error
    folders = {path.parent for path in paths}
    if len(folders) != 1:
        raise CheckpointError(f"{source}: files were fetched into different folders {folders}")
    return folders.pop()


class SepformerSeparator(SeparatorBase):
    """A SpeechBrain SepFormer (or any ``SepformerSeparation``-compatible model).

    Args:
        source: a local folder or a hub id (default ``speechbrain/sepformer-wsj02mix``).
        device: where the model runs; outputs come back on the input's device.
        output_scale: see ``amongus.separation.scale`` (default ``"projection"``).
        sample_rate: declare the rate the model expects when the hyperparameters lack it or
            state it wrongly (default: ``sample_rate`` from ``hyperparams.yaml``).
        savedir: where hub files are linked (default: only the Hugging Face cache).
        trust_checkpoint: skip the safety checks of the YAML and state dicts.

    Example:
        >>> sep = SepformerSeparator("speechbrain/sepformer-wsj02mix")  # doctest: +SKIP
        >>> sep.sample_rate, sep.n_src  # doctest: +SKIP
        (8000, 2)
    """

    def __init__(
        self,
        source: str | os.PathLike = DEFAULT_SEPFORMER,
        *,
        device: str = "cpu",
        output_scale: str = MODEL_DEFAULT_SCALE,
        sample_rate: int | None = None,
        savedir: str | None = None,
        trust_checkpoint: bool = False,
    ):
        self.output_scale = check_output_scale(output_scale)
        self.source = str(source)
        folder = resolve_sepformer_folder(source, savedir=savedir)
        check_hyperparams(folder / "hyperparams.yaml", trust_checkpoint=trust_checkpoint)
        for name in SEPFORMER_FILES[1:]:
            check_state_dict_file(folder / name, trust_checkpoint=trust_checkpoint)

        from speechbrain.inference.separation import SepformerSeparation

        try:
            self.model = SepformerSeparation.from_hparams(
                source=str(folder), savedir=None, run_opts={"device": device}
            )
        except Exception as error:
            raise CheckpointError(
                f"{folder}: SpeechBrain could not build the model ({error})"
            ) from error
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.device = device
        self.n_src = int(self.model.hparams.num_spks)
        declared = getattr(self.model.hparams, "sample_rate", None)
        if sample_rate is None and declared is None:
            raise CheckpointError(
                f"{folder}/hyperparams.yaml has no sample_rate; pass sample_rate= explicitly"
            )
        if sample_rate is not None and declared is not None and int(sample_rate) != int(declared):
            logger.warning(
                "%s declares %s Hz; using sample_rate=%s as requested",
                self.source,
                declared,
                sample_rate,
            )
        self.sample_rate = int(sample_rate if sample_rate is not None else declared)
        self.weights_hash = hash_files([folder / name for name in SEPFORMER_FILES])

    @property
    def identity(self) -> str:
        return (
            f"sepformer:{self.weights_hash}@{self.sample_rate}:scale={self.output_scale}"
            f"{self.chunking_tag}"
        )

    # Input limits and default chunking (amongus.separation.limits / chunking): bounded memory
    # by default, and never past the positional-encoding table.
    chunk_seconds = MODEL_CHUNK_SECONDS
    overlap_seconds = MODEL_OVERLAP_SECONDS

    @property
    def min_samples(self) -> int:
        return model_min_samples(self.model)

    @property
    def max_samples(self) -> int | None:
        return sepformer_max_samples(self.model)

    def _forward(self, mixture):
        # SpeechBrain layout [B, T, S] -> Asteroid layout [B, S, T], converted here only.
        return self.model.separate_batch(mixture.to(self.device).float()).transpose(1, 2)

    def _separate(self, mixture, lengths, references):
        return run_by_length(self._forward, mixture, lengths, self.n_src)


@register_separator("sepformer")
def _sepformer(source: str | os.PathLike = DEFAULT_SEPFORMER, **options) -> SepformerSeparator:
    return SepformerSeparator(source, **options)
