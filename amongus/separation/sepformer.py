"""SpeechBrain SepFormer adapter.

Loads the format of ``speechbrain/sepformer-wsj02mix`` (a folder, local or on the Hugging Face
Hub, with ``hyperparams.yaml`` and ``encoder.ckpt``, ``masknet.ckpt``, ``decoder.ckpt``) and runs
``SepformerSeparation.separate_batch``, converting SpeechBrain's ``[B, T, n_src]`` to
``[B, n_src, T]`` once. The rate comes from ``sample_rate`` in the hyperparameters (8000 for
wsj02mix).

Safety and strictness (unless ``trust_checkpoint=True``):

* ``hyperparams.yaml`` is HyperPyYAML, which can construct any Python object; it is checked by
  :mod:`amongus.separation.yaml_safety` before anything is built (an exact allowlist of the
  SpeechBrain classes published inference files use);
* each module's ``<name>.ckpt`` is read with :func:`amongus.checkpoints.load_weights`
  (``torch.load(weights_only=True)``, zip or legacy format) and loaded with
  :func:`amongus.checkpoints.load_state_dict_strict`: a missing, unexpected or mis-shaped key
  raises :class:`~amongus.checkpoints.CheckpointError` (SpeechBrain's own pretrainer only logs
  them and leaves the missing layers random). Strict loading applies with
  ``trust_checkpoint=True`` too.

The weights are loaded here rather than by SpeechBrain's ``Pretrainer``, which would also fetch
files named in its ``paths`` from the hub.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..checkpoints import CheckpointError, load_state_dict_strict, load_weights
from ..cli_options import how_to_pass
from .base import SeparatorBase, hash_files, register_separator, run_by_length
from .chunking import MODEL_CHUNK_SECONDS, MODEL_OVERLAP_SECONDS
from .limits import model_min_samples, sepformer_max_samples
from .scale import MODEL_DEFAULT_SCALE, check_output_scale
from .yaml_safety import load_hyperparams

logger = logging.getLogger(__name__)

DEFAULT_SEPFORMER = "speechbrain/sepformer-wsj02mix"
SEPFORMER_FILES = ("hyperparams.yaml", "encoder.ckpt", "masknet.ckpt", "decoder.ckpt")
SEPFORMER_MODULES = ("encoder", "masknet", "decoder")


def load_sepformer_weights(folder: Path, hparams: dict, *, trust_checkpoint: bool = False) -> None:
    """Load ``<name>.ckpt`` of ``folder`` into each module the hyperparameters declare, strictly.

    The pretrainer's ``loadables`` name the modules (``encoder``, ``masknet``, ``decoder`` in
    published files); a file named in its ``paths`` is looked up by its base name in ``folder``.
    Every entry of ``modules`` must receive weights: one left out would stay random.

    Raises:
        CheckpointError: a module or file is missing, a file is unsafe or unreadable, or its
            keys or shapes do not fit the module (the message lists them).
    """
    from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

    yaml_path = folder / "hyperparams.yaml"
    modules = hparams.get("modules")
    if not isinstance(modules, dict) or any(name not in modules for name in SEPFORMER_MODULES):
        found = sorted(modules) if isinstance(modules, dict) else type(modules).__name__
        raise CheckpointError(
            f"{yaml_path}: 'modules' must hold {', '.join(SEPFORMER_MODULES)}, found {found}"
        )
    pretrainer = hparams.get("pretrainer")
    loadables = dict(getattr(pretrainer, "loadables", None) or {}) or {
        name: modules[name] for name in SEPFORMER_MODULES
    }
    paths = dict(getattr(pretrainer, "paths", None) or {})
    unloaded = [
        name
        for name, module in modules.items()
        if module is not None
        and any(True for _ in module.parameters())
        and not any(module is loadable for loadable in loadables.values())
    ]
    if unloaded:
        raise CheckpointError(
            f"{yaml_path}: the pretrainer loads no weights into modules {', '.join(unloaded)}; "
            "they would stay random"
        )
    for name, module in loadables.items():
        # only the base name: a path in the YAML must not lead outside the folder
        weights_path = folder / Path(str(paths.get(name, f"{name}.ckpt"))).name
        state = load_weights(weights_path, trust_checkpoint=trust_checkpoint)
        if isinstance(state, dict):
            # SpeechBrain's renames of old key spellings (e.g. ".mutihead_attn"), as its loader
            state = hook_on_loading_state_dict_checkpoint(state)
        load_state_dict_strict(module, state, source=weights_path)


def check_hyperparams(path: Path, *, trust_checkpoint: bool = False) -> None:
    """Refuse a ``hyperparams.yaml`` that could build objects outside the allowlist of
    :mod:`amongus.separation.yaml_safety` (no-op with ``trust_checkpoint=True``)."""
    from .yaml_safety import check_hyperparams_text

    if trust_checkpoint:
        return
    path = Path(path)
    check_hyperparams_text(path.read_text(encoding="utf-8-sig"), source=path)


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
        trust_checkpoint: skip the safety checks of the YAML and state dicts (runs any code
            they hold; keys are still checked).

    Raises:
        CheckpointError: the folder is incomplete, a file is refused as unsafe, or the weights do
            not fit the model (missing, unexpected or mis-shaped keys); the message names the
            file and what to do.

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
        hparams = load_hyperparams(folder / "hyperparams.yaml", trust_checkpoint=trust_checkpoint)
        load_sepformer_weights(folder, hparams, trust_checkpoint=trust_checkpoint)

        from speechbrain.inference.separation import SepformerSeparation

        try:
            self.model = SepformerSeparation(
                modules=hparams["modules"], hparams=hparams, run_opts={"device": device}
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
                f"{folder}/hyperparams.yaml has no sample_rate; pass "
                f"{how_to_pass('sample_rate', 'HZ')} explicitly"
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
