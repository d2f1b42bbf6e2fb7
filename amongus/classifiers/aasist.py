"""AASIST and AASIST-L: graph-attention countermeasures on raw 16 kHz audio.

Source: Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph
Attention Networks", ICASSP 2022 (arXiv:2110.01200), and the authors' reference implementation
and configurations (clovaai/aasist: ``models/AASIST.py``, ``config/AASIST.conf``,
``config/AASIST-L.conf``; MIT). The outputs equal the reference's within 1e-5 on the official
weights (``tests/test_classifiers_aasist.py`` runs the reference as an oracle).

Formats read (:func:`load_aasist`):

* the published layout: a plain state dict (``AASIST.pth``, tensors saved on a CUDA device, read
  onto the CPU) with its model configuration, given as ``config=`` (a dict, or a path to
  clovaai's ``config/AASIST.conf``, whose ``"model_config"`` is used, or to a bare model_config
  JSON), or found beside the weights (``config.json`` or a ``*.conf`` file); with neither, the
  tensor shapes are matched against the published AASIST and AASIST-L configurations and the one
  that fits is used, with a warning;
* amongus's folder (``config.json`` with ``"family": "aasist"`` and ``model.safetensors``),
  written by :meth:`AasistClassifier.save_pretrained` and shipped as the ``"aasist"`` preset.

Input length policy: the model was trained and evaluated on 64,600-sample segments
(:data:`AASIST_SEGMENT_SAMPLES`); shorter streams are repeated to fill a segment, longer ones are
cut into half-overlapping windows whose logits are averaged (``long_policy="window"``, the
default) or cropped at the start as the reference evaluation does (``long_policy="crop"``).

Score orientation: the reference labels bonafide 1 and spoof 0 (``data_utils.genSpoof_list``:
``1 if label == "bonafide" else 0``) and scores with ``output[:, 1]``, the bonafide logit. amongus
keeps that class order in the raw logits (``id2label = {0: "spoof", 1: "bonafide"}``, so
``spoof_index == 0`` and ``logits[:, 1]`` is the reference's score) and returns the usual
:class:`amongus.classifier.StreamScores`: ``spoof_probability`` (higher = spoof) and ``cm_score =
logit(bonafide) - logit(spoof)`` (higher = bonafide, the ASVspoof orientation).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from amongus.labels import BONAFIDE, SPOOF

from .encoder import SincFilterbank, pooled_size, residual_encoder
from .graph import GraphConfig, SpectroTemporalGraphModel
from .module import (
    CONFIG_NAME,
    RESERVED_KEYS,
    WEIGHTS_NAME,
    CountermeasureOutput,
    ModuleClassifier,
    read_config_json,
)

logger = logging.getLogger(__name__)

#: AASIST's input length: 64,600 samples at 16 kHz (about 4 s). Source: clovaai/aasist,
#: ``"nb_samp": 64600`` in ``config/AASIST.conf`` and ``cut = 64600`` ("take ~4 sec audio") in
#: ``data_utils.py``, used for training and evaluation alike.
AASIST_SEGMENT_SAMPLES = 64_600
#: The rate of ASVspoof 2019 LA, on which the published models were trained.
AASIST_SAMPLE_RATE = 16_000
#: The published class order (see the module docstring): index 1 is bonafide.
PUBLISHED_ID2LABEL: dict[int, str] = {0: SPOOF, 1: BONAFIDE}
#: Suffixes of the weight files read.
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


@dataclass(frozen=True)
class AasistConfig:
    """An AASIST architecture: the ``model_config`` of a clovaai configuration file.

    Attributes:
        first_conv: sinc filter length (made odd: 128 -> 129 taps).
        filts: ``[n_sinc_filters, [in, out] x 4]``: the filter count and the channel pairs of the
            residual blocks (the last pair serves the last three blocks).
        gat_dims: widths of the graph attention layers and of the heterogeneous layers.
        pool_ratios: graph pooling ratios (GAT-S, GAT-T, heterogeneous layers; the fourth is
            unused, as in the reference).
        temperatures: attention temperatures (GAT-S, GAT-T, heterogeneous layers, unused).
        nb_samp: the input length the model was trained on, samples.
        sample_rate: the rate the sinc filters are designed for (not in clovaai's files: 16 kHz).
    """

    first_conv: int = 128
    filts: tuple = (70, (1, 32), (32, 32), (32, 64), (64, 64))
    gat_dims: tuple = (64, 32)
    pool_ratios: tuple = (0.5, 0.7, 0.5, 0.5)
    temperatures: tuple = (2.0, 2.0, 100.0, 100.0)
    nb_samp: int = AASIST_SEGMENT_SAMPLES
    sample_rate: int = AASIST_SAMPLE_RATE
    #: two classes, in the order of :data:`PUBLISHED_ID2LABEL`
    num_labels: int = 2

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, source: str = "model config") -> AasistConfig:
        """Read a clovaai ``model_config`` (or a whole clovaai configuration holding one).

        Raises:
            CheckpointError: not an AASIST configuration, or malformed sizes (names ``source``).
        """
        from amongus.checkpoints import CheckpointError

        if "model_config" in config:
            config = config["model_config"]
        if not isinstance(config, Mapping):
            raise CheckpointError(f"{source}: model_config must be a JSON object")
        architecture = config.get("architecture", "AASIST")
        if architecture != "AASIST":
            raise CheckpointError(
                f"{source}: architecture {architecture!r} is not AASIST (AASIST-L is AASIST with "
                "smaller sizes; RawNet2 and RawGAT-ST are not supported)"
            )
        missing = [
            k
            for k in ("first_conv", "filts", "gat_dims", "pool_ratios", "temperatures")
            if k not in config
        ]
        if missing:
            raise CheckpointError(f"{source}: model_config lacks {', '.join(missing)}")
        try:
            filts = config["filts"]
            made = cls(
                first_conv=int(config["first_conv"]),
                filts=(int(filts[0]), *(tuple(int(c) for c in pair) for pair in filts[1:])),
                gat_dims=tuple(int(d) for d in config["gat_dims"]),
                pool_ratios=tuple(float(r) for r in config["pool_ratios"]),
                temperatures=tuple(float(t) for t in config["temperatures"]),
                nb_samp=int(config.get("nb_samp", AASIST_SEGMENT_SAMPLES)),
                sample_rate=int(config.get("sample_rate", AASIST_SAMPLE_RATE)),
            )
            made.graph()  # checks the graph sizes
        except (TypeError, ValueError, IndexError) as error:
            raise CheckpointError(f"{source}: malformed AASIST model_config ({error})") from error
        if len(made.filts) != 5 or any(len(pair) != 2 for pair in made.filts[1:]):
            raise CheckpointError(
                f"{source}: filts must be [n_filters, [in, out], [in, out], [in, out], [in, out]]"
            )
        return made

    def to_model_config(self) -> dict[str, Any]:
        """The clovaai ``model_config`` layout (JSON-ready)."""
        return {
            "architecture": "AASIST",
            "nb_samp": self.nb_samp,
            "first_conv": self.first_conv,
            "filts": [self.filts[0], *[list(pair) for pair in self.filts[1:]]],
            "gat_dims": list(self.gat_dims),
            "pool_ratios": list(self.pool_ratios),
            "temperatures": list(self.temperatures),
        }

    def graph(self) -> GraphConfig:
        return GraphConfig.build(
            self.filts[-1][-1], self.gat_dims, self.pool_ratios, self.temperatures
        )

    @property
    def n_spectral_nodes(self) -> int:
        """Spectral nodes: the sinc filters after the 3x3 max pooling."""
        return pooled_size(self.filts[0])


#: clovaai/aasist ``config/AASIST.conf`` (297,866 parameters; EER 0.83 % on ASVspoof 2019 LA eval).
AASIST_CONFIG = AasistConfig()
#: clovaai/aasist ``config/AASIST-L.conf`` (85,306 parameters; EER 0.99 %).
AASIST_L_CONFIG = AasistConfig(
    filts=(70, (1, 32), (32, 32), (32, 24), (24, 24)),
    gat_dims=(24, 32),
    pool_ratios=(0.4, 0.5, 0.7, 0.5),
)
PUBLISHED_CONFIGS: dict[str, AasistConfig] = {"AASIST": AASIST_CONFIG, "AASIST-L": AASIST_L_CONFIG}


class AASIST(SpectroTemporalGraphModel):
    """The AASIST network (Jung et al., ICASSP 2022).

    Sinc filterbank -> |.| -> 3x3 max pool -> batch norm -> SELU -> six residual blocks ->
    spectral nodes (max over time, plus ``pos_S``) and temporal nodes (max over frequency) ->
    graph attention, heterogeneous graph attention in two branches, readout -> 2 logits.

    Args:
        config: the architecture; :data:`AASIST_CONFIG` by default.

    Shape: ``input_values [B, T]`` (16 kHz, trained with ``T = 64600``) ->
    ``CountermeasureOutput(logits [B, 2], embedding [B, 5 * gat_dims[1]])``; ``logits[:, 1]`` is
    the bonafide logit.
    """

    def __init__(self, config: AasistConfig = AASIST_CONFIG):
        super().__init__()
        self.config = config
        self.filterbank = SincFilterbank(
            config.filts[0], config.first_conv, sample_rate=config.sample_rate
        )
        self.first_bn = nn.BatchNorm2d(1)
        self.selu = nn.SELU()
        self.encoder = residual_encoder(config.filts, pool_time=3)
        self._build_graph(config.graph(), config.n_spectral_nodes)

    def forward(self, input_values: torch.Tensor) -> CountermeasureOutput:
        if input_values.ndim != 2:
            raise ValueError(f"input_values must be [B, T], got {tuple(input_values.shape)}")
        bands = self.filterbank(input_values.unsqueeze(1)).abs().unsqueeze(1)  # [B, 1, F, T']
        features = self.selu(self.first_bn(F.max_pool2d(bands, (3, 3))))
        encoded = self.encoder(features).abs()  # [B, C, F', T'']
        spectral = encoded.amax(dim=3).transpose(1, 2) + self.pos_S
        temporal = encoded.amax(dim=2).transpose(1, 2)
        logits, embedding = self.classify_graph(spectral, temporal)
        return CountermeasureOutput(logits=logits, embedding=embedding)


def is_aasist_state_dict(keys) -> bool:
    """Whether state-dict keys look like AASIST's (graph layers, no wav2vec 2.0 front end)."""
    keys = set(keys)
    return (
        {"pos_S", "GAT_layer_S.att_weight", "encoder.0.0.conv1.weight"} <= keys
        and "LL.weight" not in keys
        and not any(key.startswith(("ssl_model.", "front_end.")) for key in keys)
    )


def matching_published_config(state_dict: Mapping[str, Any]) -> str | None:
    """The name of the published configuration whose tensor shapes ``state_dict`` has, if one."""
    shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    for name, config in PUBLISHED_CONFIGS.items():
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in AASIST(config).state_dict().items()}
        if expected == shapes:
            return name
    return None


class AasistClassifier(ModuleClassifier):
    """An AASIST (or AASIST-L) countermeasure behind the classifier contract.

    Build it with :func:`load_aasist` / :func:`amongus.classifiers.load_classifier`, or from a
    model: ``AasistClassifier(AASIST(config))``. Options are those of
    :class:`~amongus.classifiers.module.ModuleClassifier`; the rate and input length come from
    the config.
    """

    family = "aasist"

    def __init__(
        self,
        model: AASIST,
        *,
        id2label: Mapping[int, str] | None = None,
        **options: Any,
    ):
        super().__init__(
            model,
            id2label=PUBLISHED_ID2LABEL if id2label is None else id2label,
            sample_rate=model.config.sample_rate,
            segment_samples=model.config.nb_samp,
            **options,
        )

    def model_config_json(self) -> dict[str, Any]:
        return {"model_config": self.model.config.to_model_config()}


def _config_beside(weights: Path) -> tuple[dict[str, Any], Path] | None:
    """A model config next to a weight file: ``config.json``, else a single ``*.conf``."""
    folder = weights.parent
    candidates = [folder / CONFIG_NAME] if (folder / CONFIG_NAME).is_file() else []
    if not candidates:
        candidates = sorted(folder.glob("*.conf"))
    if len(candidates) > 1:
        from amongus.checkpoints import CheckpointError

        listed = ", ".join(p.name for p in candidates)
        raise CheckpointError(f"{folder}: several model configs ({listed}); pass config=")
    if not candidates:
        return None
    return read_config_json(candidates[0]), candidates[0]


def _resolve_config(
    config: Any, weights: Path, state_dict: Mapping[str, Any]
) -> tuple[AasistConfig, dict[str, Any]]:
    """The architecture for ``weights``, and the whole config file it came from (``{}`` when
    it did not come from a file beside the weights)."""
    from amongus.checkpoints import CheckpointError

    if isinstance(config, AasistConfig):
        return config, {}
    if isinstance(config, str) and config in PUBLISHED_CONFIGS:
        return PUBLISHED_CONFIGS[config], {}
    if isinstance(config, str | os.PathLike):
        source = Path(config)
        return AasistConfig.from_dict(read_config_json(source), source=str(source)), {}
    if isinstance(config, Mapping):
        return AasistConfig.from_dict(config, source=f"{weights}: config="), {}
    if config is not None:
        raise TypeError(f"config must be a dict, a path or an AasistConfig, got {config!r}")
    found = _config_beside(weights)
    if found is not None:
        data, path = found
        if data.get("family", "aasist") != "aasist":
            raise CheckpointError(f"{path}: family {data['family']!r}, not an AASIST config")
        if "model_config" not in data and "filts" not in data:
            raise CheckpointError(f"{path}: no AASIST model_config in this file")
        return AasistConfig.from_dict(data, source=str(path)), data
    name = matching_published_config(state_dict)
    if name is None:
        raise CheckpointError(
            f"{weights}: no model config given or found beside it (config.json or a .conf file), "
            "and the tensor shapes match neither published AASIST nor AASIST-L; pass config= "
            "(clovaai's config/*.conf or its model_config)"
        )
    logger.warning(
        "%s: no model config given; the tensor shapes match clovaai's published %s config, "
        "which is used (pass config= to choose another)",
        weights,
        name,
    )
    return PUBLISHED_CONFIGS[name], {}


def read_state_dict(path: Path, *, trust_checkpoint: bool = False) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``torch.save`` file, onto the CPU, loaded safely
    (:func:`amongus.checkpoints.load_weights`).

    Raises:
        CheckpointError: unreadable, unsafe, or not a mapping of tensors.
    """
    from amongus.checkpoints import CheckpointError, load_weights

    loaded = load_weights(path, trust_checkpoint=trust_checkpoint)
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        found = type(loaded).__name__
        if isinstance(loaded, Mapping):
            found += f" with keys {', '.join(list(map(str, loaded))[:5])}"
        raise CheckpointError(
            f"{path}: expected a plain state dict (parameter name -> tensor), found {found}"
        )
    return dict(loaded)


def weight_file_in(folder: Path) -> Path:
    """The one weight file of a folder (``model.safetensors`` first)."""
    from amongus.checkpoints import CheckpointError

    if (folder / WEIGHTS_NAME).is_file():
        return folder / WEIGHTS_NAME
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if len(found) != 1:
        what = (
            "no weight file"
            if not found
            else f"several weight files ({', '.join(p.name for p in found)})"
        )
        raise CheckpointError(f"{folder}: {what}; expected one {'/'.join(WEIGHT_SUFFIXES)} file")
    return found[0]


def read_weights(
    path: Path,
    *,
    trust_checkpoint: bool = False,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> tuple[Path, Mapping[str, torch.Tensor]]:
    """The weight file of ``path`` (``path`` itself, or the one weight file of a folder: see
    :func:`weight_file_in`) and its state dict (:func:`read_state_dict`; ``state_dict`` instead
    when the caller has already read it).

    Raises:
        CheckpointError: as :func:`weight_file_in` and :func:`read_state_dict`.
    """
    weights = weight_file_in(path) if path.is_dir() else path
    if state_dict is None:
        state_dict = read_state_dict(weights, trust_checkpoint=trust_checkpoint)
    return weights, state_dict


def load_aasist(
    path: str | os.PathLike,
    *,
    config: Any = None,
    trust_checkpoint: bool = False,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    name: str | None = None,
    **options: Any,
) -> AasistClassifier:
    """Load AASIST/AASIST-L weights (a weight file or a folder) as an :class:`AasistClassifier`.

    Args:
        path: ``AASIST.pth`` / ``.safetensors``, or a folder holding one weight file and its
            config (see the module docstring).
        config: the architecture: a dict (a clovaai ``model_config`` or a whole clovaai conf),
            a path to such a JSON file, ``"AASIST"``/``"AASIST-L"``, or an :class:`AasistConfig`.
        trust_checkpoint: allow arbitrary pickles (see :func:`amongus.checkpoints.load_weights`).
        state_dict: the already read weights of ``path`` (spares reading them twice).
        name: the name in reports (default: the path).
        options: :class:`AasistClassifier` options (``device``, ``long_policy``...).

    Raises:
        CheckpointError: unreadable or unsafe weights, a config that does not fit them (every
            missing, unexpected or mis-shaped key is listed).
    """
    from amongus.checkpoints import load_state_dict_strict

    path = Path(path).expanduser()
    weights, state_dict = read_weights(
        path, trust_checkpoint=trust_checkpoint, state_dict=state_dict
    )
    architecture, stored = _resolve_config(config, weights, state_dict)
    model = AASIST(architecture)
    load_state_dict_strict(model, state_dict, source=weights)
    # a clovaai .conf carries training settings, not amongus metadata: keep only amongus configs
    metadata = (
        {k: v for k, v in stored.items() if k not in (*RESERVED_KEYS, "model_config")}
        if stored.get("family") == AasistClassifier.family
        else {}
    )
    return AasistClassifier(
        model,
        id2label=stored.get("id2label"),
        name=name or str(path),
        metadata=metadata,
        **options,
    )
