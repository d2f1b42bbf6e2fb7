"""ECAPA-TDNN speaker embeddings in the published SpeechBrain ``spkrec-ecapa-voxceleb`` layout.

The model is ECAPA-TDNN (Desplanques, Thienpondt and Demuynck, *ECAPA-TDNN: Emphasized Channel
Attention, Propagation and Aggregation in TDNN Based Speaker Verification*, Interspeech 2020) as
SpeechBrain implements it (``speechbrain.lobes.models.ECAPA_TDNN``). The folder layout and the
inference path are those of the Hugging Face model ``speechbrain/spkrec-ecapa-voxceleb`` and
SpeechBrain's ``EncoderClassifier.encode_batch``: 80 log-mel filterbanks
(``speechbrain.lobes.features.Fbank``), per-sentence mean normalisation
(``InputNormalization(norm_type="sentence", std_norm=False)``), then the embedding model.

Folder files:

* ``hyperparams.yaml`` (HyperPyYAML): ``compute_features``, ``mean_var_norm``,
  ``embedding_model``, ``classifier``, ``mean_var_norm_emb``, ``label_encoder``, ``modules`` and a
  ``pretrainer`` whose ``loadables`` name what is loaded from which file;
* ``embedding_model.ckpt`` (required): the ECAPA-TDNN state dict;
* ``mean_var_norm_emb.ckpt``, ``classifier.ckpt``, ``label_encoder.txt`` (optional): embedding
  statistics, the training classifier (AAM-softmax weights) and its speaker labels. They are
  checked and loaded when present, not used for embedding: like SpeechBrain's
  ``SpeakerRecognition.verify_batch``, embeddings are compared unnormalised by cosine similarity;
* ``verification.json`` (amongus's own, optional): the verification threshold measured for
  the model (:attr:`EcapaEmbedder.verification_threshold`).

Safety: ``hyperparams.yaml`` goes through :mod:`amongus.separation.yaml_safety` and every weight
file through :func:`amongus.checkpoints.load_weights` (``weights_only=True``) unless
``trust_checkpoint=True``; state dicts load strictly
(:func:`amongus.checkpoints.load_state_dict_strict`) in either case. SpeechBrain's ``Pretrainer``
is not used: it would fetch files named in ``paths`` from the hub and load keys loosely.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checkpoints import CheckpointError, load_state_dict_strict, load_weights
from ..separation.base import hash_files
from ..separation.yaml_safety import load_hyperparams
from .base import SpeakerEmbedder

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

ECAPA_TINY = "ecapa-tiny"
PUBLISHED_ECAPA = "speechbrain/spkrec-ecapa-voxceleb"
HYPERPARAMS = "hyperparams.yaml"
EMBEDDING_WEIGHTS = "embedding_model.ckpt"
VERIFICATION_FILE = "verification.json"
#: Files of the published layout; the first two are required.
ECAPA_FILES = (
    HYPERPARAMS,
    EMBEDDING_WEIGHTS,
    "mean_var_norm_emb.ckpt",
    "classifier.ckpt",
    "label_encoder.txt",
)
#: Modules the inference path needs, as ``EncoderClassifier.encode_batch`` uses them.
INFERENCE_MODULES = ("compute_features", "mean_var_norm", "embedding_model")
# loadables that may be absent from a folder: not needed to embed
_OPTIONAL_LOADABLES = ("classifier", "mean_var_norm_emb", "label_encoder")


def shipped_folder(name: str = ECAPA_TINY) -> Path:
    """The folder of a speaker embedder shipped with amongus (``amongus/data/models/<name>``)."""
    return Path(__file__).resolve().parent.parent / "data" / "models" / name


@dataclass
class EcapaConfig:
    """The architecture written into ``hyperparams.yaml`` (SpeechBrain ``ECAPA_TDNN`` arguments).

    Defaults are ``spkrec-ecapa-voxceleb``'s (channels 1024 x 4 + 3072, 192-d embeddings).
    """

    n_mels: int = 80
    channels: list[int] = field(default_factory=lambda: [1024, 1024, 1024, 1024, 3072])
    kernel_sizes: list[int] = field(default_factory=lambda: [5, 3, 3, 3, 1])
    dilations: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 1])
    attention_channels: int = 128
    se_channels: int = 128
    res2net_scale: int = 8
    lin_neurons: int = 192
    sample_rate: int = 16000

    def build(self) -> torch.nn.Module:
        """A randomly initialised ``ECAPA_TDNN`` of this shape."""
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        return ECAPA_TDNN(
            self.n_mels,
            channels=list(self.channels),
            kernel_sizes=list(self.kernel_sizes),
            dilations=list(self.dilations),
            attention_channels=self.attention_channels,
            se_channels=self.se_channels,
            res2net_scale=self.res2net_scale,
            lin_neurons=self.lin_neurons,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hyperparams_text(config: EcapaConfig, n_classes: int) -> str:
    """The inference ``hyperparams.yaml`` of the published layout for ``config``.

    ``n_classes``: the number of training speakers (``out_n_neurons`` of the classifier).
    """

    def listed(values: Sequence[int]) -> str:
        return "[" + ", ".join(str(int(v)) for v in values) + "]"

    return f"""# ############################################################################
# Model: ECAPA-TDNN speaker embeddings (speechbrain/spkrec-ecapa-voxceleb layout)
# Written by amongus.speakers.ecapa
# ############################################################################

sample_rate: {int(config.sample_rate)}
n_mels: {int(config.n_mels)}
pretrained_path: .
out_n_neurons: {int(n_classes)}

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: {listed(config.channels)}
    kernel_sizes: {listed(config.kernel_sizes)}
    dilations: {listed(config.dilations)}
    attention_channels: {int(config.attention_channels)}
    se_channels: {int(config.se_channels)}
    res2net_scale: {int(config.res2net_scale)}
    lin_neurons: {int(config.lin_neurons)}

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {int(config.lin_neurons)}
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def save_ecapa_folder(
    folder: str | os.PathLike,
    embedding_model: torch.nn.Module,
    config: EcapaConfig,
    *,
    classifier: torch.nn.Module | None = None,
    labels: Sequence[str] = (),
    embedding_mean: torch.Tensor | None = None,
    embedding_count: int = 0,
    verification: Mapping[str, Any] | None = None,
) -> Path:
    """Write a model in the published layout (files replaced atomically).

    Args:
        folder: created if needed.
        embedding_model: the ``ECAPA_TDNN`` of ``config``.
        config: its architecture.
        classifier: the training ``Classifier`` (written as ``classifier.ckpt`` when given).
        labels: the classifier's class names, in index order (``label_encoder.txt``).
        embedding_mean: mean embedding ``[D]`` of the training data, written as
            ``mean_var_norm_emb.ckpt`` in ``InputNormalization``'s format when given.
        embedding_count: how many embeddings that mean was computed from.
        verification: written as ``verification.json`` (``threshold`` is read back).

    Returns:
        The folder.
    """
    import torch

    from ..fsutil import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_classes = int(getattr(classifier, "weight", torch.empty(len(labels) or 1)).shape[0])

    def save(obj: Any, name: str) -> None:
        with atomic_path(folder / name) as temporary:
            torch.save(obj, temporary)

    def plain(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}

    atomic_write_text(folder / HYPERPARAMS, hyperparams_text(config, n_classes))
    save(plain(embedding_model), EMBEDDING_WEIGHTS)
    if classifier is not None:
        save(plain(classifier), "classifier.ckpt")
    if embedding_mean is not None:
        mean = embedding_mean.detach().cpu().float().reshape(1, -1)
        save(
            {"count": int(embedding_count), "glob_mean": mean, "glob_std": torch.ones_like(mean)},
            "mean_var_norm_emb.ckpt",
        )
    if labels:
        # CategoricalEncoder.save's format: one Python literal mapping per line
        lines = [f"{str(label)!r} => {index}" for index, label in enumerate(labels)]
        lines += ["================", "'starting_index' => 0"]
        atomic_write_text(folder / "label_encoder.txt", "\n".join(lines) + "\n")
    if verification is not None:
        atomic_write_text(
            folder / VERIFICATION_FILE, json.dumps(dict(verification), indent=2) + "\n"
        )
    return folder


def resolve_ecapa_folder(source: str | os.PathLike | None) -> Path:
    """The local folder of ``source`` (see :func:`amongus.speakers.load_speaker_embedder`).

    Raises:
        CheckpointError: no such folder or hub id, or a required file is missing.
    """
    if source is None or str(source) == ECAPA_TINY:
        local = shipped_folder(ECAPA_TINY)
    else:
        local = Path(source).expanduser()
    if not local.is_dir():
        text = str(source)
        if local.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
            raise CheckpointError(
                f"{source}: no such folder (expected {ECAPA_TINY!r}, a folder in the "
                f"{PUBLISHED_ECAPA} layout or a hub id such as {PUBLISHED_ECAPA!r})"
            )
        local = _fetch_from_hub(text)
    missing = [name for name in (HYPERPARAMS, EMBEDDING_WEIGHTS) if not (local / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{local}: not a speaker-embedding folder in the {PUBLISHED_ECAPA} layout, missing "
            f"{', '.join(missing)}"
        )
    return local.resolve()


def _fetch_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=list(ECAPA_FILES)))
    except Exception as error:  # offline, missing repository, no huggingface_hub
        raise CheckpointError(
            f"could not fetch {repo_id!r} from the Hugging Face Hub ({error}). Offline, download "
            f"the model folder elsewhere ({', '.join(ECAPA_FILES)}) and pass its local path."
        ) from error


def _load_statistics(module, path: Path, *, trust_checkpoint: bool) -> None:
    """``InputNormalization`` statistics (``count``, ``glob_mean``, ``glob_std``), checked."""
    import torch

    stats = load_weights(path, trust_checkpoint=trust_checkpoint)
    if not isinstance(stats, Mapping) or not all(
        isinstance(stats.get(key), torch.Tensor) for key in ("glob_mean", "glob_std")
    ):
        found = sorted(map(str, stats)) if isinstance(stats, Mapping) else type(stats).__name__
        raise CheckpointError(
            f"{path}: expected InputNormalization statistics (count, glob_mean, glob_std "
            f"tensors), found {found}"
        )
    if stats["glob_mean"].shape != stats["glob_std"].shape:
        raise CheckpointError(
            f"{path}: glob_mean {list(stats['glob_mean'].shape)} and glob_std "
            f"{list(stats['glob_std'].shape)} differ in shape"
        )
    module._load_statistics_dict(dict(stats))


def load_ecapa_weights(folder: Path, hparams: Mapping[str, Any], *, trust_checkpoint: bool) -> None:
    """Load every loadable of the pretrainer from ``folder``, strictly (see the module doc).

    Raises:
        CheckpointError: a module of the inference path is missing, the embedding model gets no
            weights, a file is unsafe or unreadable, or weights do not fit their module.
    """
    import torch
    from speechbrain.dataio.encoder import CategoricalEncoder
    from speechbrain.processing.features import InputNormalization
    from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

    yaml_path = folder / HYPERPARAMS
    pretrainer = hparams.get("pretrainer")
    loadables = dict(getattr(pretrainer, "loadables", None) or {}) or {
        "embedding_model": hparams["embedding_model"]
    }
    paths = dict(getattr(pretrainer, "paths", None) or {})
    if not any(obj is hparams["embedding_model"] for obj in loadables.values()):
        raise CheckpointError(
            f"{yaml_path}: the pretrainer loads no weights into embedding_model; it would stay "
            "random"
        )
    for name, obj in loadables.items():
        default = "label_encoder.txt" if isinstance(obj, CategoricalEncoder) else f"{name}.ckpt"
        # only the base name: a path in the YAML must not lead outside the folder
        path = folder / Path(str(paths.get(name, default))).name
        if not path.is_file():
            if name in _OPTIONAL_LOADABLES:
                logger.info("%s: no %s, not needed to embed", folder, path.name)
                continue
            raise CheckpointError(f"{folder}: missing {path.name}, which the pretrainer loads")
        if isinstance(obj, CategoricalEncoder):
            try:  # a text file of Python literals, read with ast.literal_eval
                obj.load(path)
            except Exception as error:
                raise CheckpointError(f"{path}: not a readable label encoder ({error})") from error
        elif isinstance(obj, InputNormalization):
            _load_statistics(obj, path, trust_checkpoint=trust_checkpoint)
        elif isinstance(obj, torch.nn.Module):
            state = load_weights(path, trust_checkpoint=trust_checkpoint)
            if isinstance(state, dict):
                state = hook_on_loading_state_dict_checkpoint(state)
            load_state_dict_strict(obj, state, source=path)
        else:
            raise CheckpointError(
                f"{yaml_path}: the pretrainer loadable {name!r} is a {type(obj).__name__}, which "
                "amongus does not know how to load"
            )


class EcapaEmbedder(SpeakerEmbedder):
    """A SpeechBrain ECAPA-TDNN speaker embedder (see the module doc for the layout).

    Args:
        source: ``None``/``"ecapa-tiny"`` (shipped), a folder or a hub id.
        device: where the model runs.
        trust_checkpoint: skip the safety checks (any code in the files runs); weights still
            load strictly.

    Attributes:
        sample_rate: ``sample_rate`` of ``hyperparams.yaml``, else 16000 (the published model's
            rate).
        embedding_dim: ``lin_neurons`` of the model.
        verification_threshold: from ``verification.json`` when the folder has one.

    Raises:
        CheckpointError: see :func:`resolve_ecapa_folder` and :func:`load_ecapa_weights`.

    Shape: ``embed``: ``[B, T] -> [B, D]``.
    """

    def __init__(
        self,
        source: str | os.PathLike | None = None,
        *,
        device: str = "cpu",
        trust_checkpoint: bool = False,
    ):
        folder = resolve_ecapa_folder(source)
        self.folder = folder
        self.name = ECAPA_TINY if source is None else Path(str(source)).name or str(source)
        hparams = load_hyperparams(folder / HYPERPARAMS, trust_checkpoint=trust_checkpoint)
        missing = [name for name in INFERENCE_MODULES if hparams.get(name) is None]
        if missing:
            raise CheckpointError(
                f"{folder / HYPERPARAMS}: no {', '.join(missing)} (a speaker-embedding file "
                f"defines {', '.join(INFERENCE_MODULES)})"
            )
        load_ecapa_weights(folder, hparams, trust_checkpoint=trust_checkpoint)
        self.device = device
        self.compute_features = hparams["compute_features"].to(device).eval()
        self.mean_var_norm = hparams["mean_var_norm"].to(device).eval()
        self.embedding_model = hparams["embedding_model"].to(device).eval()
        for parameter in self.embedding_model.parameters():
            parameter.requires_grad_(False)
        self.sample_rate = int(hparams.get("sample_rate") or 16000)
        self.embedding_dim = self._output_dim()
        self.verification_threshold = self._read_threshold(folder / VERIFICATION_FILE)
        present = [folder / name for name in (*ECAPA_FILES, VERIFICATION_FILE)]
        self.weights_hash = hash_files([path for path in present if path.is_file()])

    @property
    def identity(self) -> str:
        return f"ecapa:{self.name}:{self.weights_hash}@{self.sample_rate}"

    def _output_dim(self) -> int:
        fc = getattr(self.embedding_model, "fc", None)
        channels = getattr(getattr(fc, "conv", None), "out_channels", None)
        if channels is None:
            raise CheckpointError(f"{self.folder}: embedding_model is not an ECAPA_TDNN")
        return int(channels)

    @staticmethod
    def _read_threshold(path: Path) -> float | None:
        if not path.is_file():
            return None
        try:
            threshold = float(json.loads(path.read_text(encoding="utf-8-sig"))["threshold"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path}: no readable 'threshold' ({error})") from error
        if not -1.0 <= threshold <= 1.0:
            raise CheckpointError(f"{path}: threshold {threshold} is not a cosine similarity")
        return threshold

    def _embed_batch(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        batch = batch.to(self.device)
        lengths = torch.ones(batch.shape[0], device=self.device)
        features = self.compute_features(batch)
        features = self.mean_var_norm(features, lengths)
        return self.embedding_model(features, lengths).squeeze(1)
