"""SSL_W2V: a wav2vec 2.0 XLS-R 300M front end with an AASIST back end.

Source: Tak et al., "Automatic speaker verification spoofing and deepfake detection using
wav2vec 2.0 and data augmentation", Odyssey 2022 (arXiv:2202.12233), and the authors' reference
implementation (TakHemlata/SSL_Anti-spoofing, ``model.py``), whose published checkpoints
(``LA_model.pth``, ``DF_model.pth``) this module reads.

Architecture: XLS-R 300M (fairseq, run with ``mask=False, features_only=True``: the last
transformer layer after the final layer norm, ``[B, frames, 1024]``, 50 frames/s) ->
``LL`` (1024 -> 128) -> a ``[B, 1, 128, frames]`` map, 3x3 max pooling, batch norm, SELU -> six
residual blocks without time pooling -> batch norm, SELU -> ``attention`` (1x1 convolutions) whose
softmax weights pool the map over time (spectral nodes, plus ``pos_S``) and over the feature axis
(temporal nodes) -> AASIST's graph back end (:mod:`amongus.classifiers.graph`) -> 2 logits.

Checkpoint layout: the published state dict holds fairseq's wav2vec 2.0 names under
``ssl_model.model.``; they are mapped strictly onto transformers' ``Wav2Vec2Model`` (held as
``front_end``) by :mod:`amongus.classifiers.fairseq_wav2vec2`, and the pre-training-only tensors
(quantizer, ``project_q``, ``final_proj``, ``mask_emb``) are dropped by name. Every other key
(``LL``, ``first_bn``, ``encoder``, ``attention``, ``GAT_layer_S``...) keeps its name. A folder
saved by :meth:`SslW2vClassifier.save_pretrained` holds the transformers names (``front_end.*``).

Input length policy, sample rate and score orientation are AASIST's (see
:mod:`amongus.classifiers.aasist`): 64,600-sample segments at 16 kHz, repeat-padded, windows
averaged (or cropped); the reference labels bonafide 1 (``data_utils_SSL.py``) and scores with
``output[:, 1]``, so ``id2label = {0: "spoof", 1: "bonafide"}``. No normalisation: the reference
feeds the raw waveform to XLS-R.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .aasist import (
    AASIST_SAMPLE_RATE,
    AASIST_SEGMENT_SAMPLES,
    PUBLISHED_ID2LABEL,
    read_weights,
)
from .encoder import pooled_size, residual_encoder
from .fairseq_wav2vec2 import map_fairseq_state_dict
from .graph import GraphConfig, SpectroTemporalGraphModel
from .module import (
    CONFIG_NAME,
    RESERVED_KEYS,
    CountermeasureOutput,
    ModuleClassifier,
    read_config_json,
)

logger = logging.getLogger(__name__)

#: The prefix of the fairseq wav2vec 2.0 tensors in the published checkpoints.
FAIRSEQ_PREFIX = "ssl_model.model."
#: The prefix of the transformers front end in amongus's module and saved folders.
FRONT_END_PREFIX = "front_end."

#: transformers ``Wav2Vec2Config`` of XLS-R 300M (fairseq ``xlsr_large``: 24 layers of width 1024,
#: 16 heads, feed-forward 4096, seven 512-channel convolutions with layer norm and bias, pre-norm
#: transformer, a 128-tap positional convolution in 16 groups). Dropouts are fairseq's defaults for
#: that model; ``layerdrop`` is 0 and time masking is off, as in the reference's fine-tuning
#: (``mask=False``), so every layer always runs.
XLSR_300M: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "conv_dim": [512] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_bias": True,
    "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu",
    "do_stable_layer_norm": True,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "layer_norm_eps": 1e-5,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.0,
    "layerdrop": 0.0,
    "mask_time_prob": 0.0,
    "mask_feature_prob": 0.0,
}


@dataclass(frozen=True)
class SslW2vConfig:
    """An SSL_W2V architecture.

    Attributes:
        wav2vec2: ``transformers.Wav2Vec2Config`` keyword arguments of the front end
            (:data:`XLSR_300M` by default; entries given replace those defaults).
        filts: ``[LL width, [in, out] x 4]``: the width ``LL`` projects to (128), then the
            channel pairs of the residual blocks.
        attention_channels: hidden width of the ``attention`` 1x1 convolutions.
        gat_dims, pool_ratios, temperatures: the graph back end (as in AASIST's config).
        nb_samp: the input length the model was trained on, samples.
        sample_rate: Hz.
    """

    wav2vec2: Mapping[str, Any] = field(default_factory=lambda: dict(XLSR_300M))
    filts: tuple = (128, (1, 32), (32, 32), (32, 64), (64, 64))
    attention_channels: int = 128
    gat_dims: tuple = (64, 32)
    pool_ratios: tuple = (0.5, 0.5, 0.5, 0.5)
    temperatures: tuple = (2.0, 2.0, 100.0, 100.0)
    nb_samp: int = AASIST_SEGMENT_SAMPLES
    sample_rate: int = AASIST_SAMPLE_RATE
    num_labels: int = 2

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, source: str = "config") -> SslW2vConfig:
        """Read the ``config.json`` layout: ``{"wav2vec2": {...}, "model_config": {...}}``
        (every entry optional; missing ones take the published values).

        Raises:
            CheckpointError: malformed entries (names ``source``).
        """
        from amongus.checkpoints import CheckpointError

        model_config = dict(config.get("model_config", {}))
        try:
            defaults = cls()
            filts = model_config.get("filts", defaults.filts)
            made = cls(
                wav2vec2={**XLSR_300M, **dict(config.get("wav2vec2", {}))},
                filts=(int(filts[0]), *(tuple(int(c) for c in pair) for pair in filts[1:])),
                attention_channels=int(
                    model_config.get("attention_channels", defaults.attention_channels)
                ),
                gat_dims=tuple(int(d) for d in model_config.get("gat_dims", defaults.gat_dims)),
                pool_ratios=tuple(
                    float(r) for r in model_config.get("pool_ratios", defaults.pool_ratios)
                ),
                temperatures=tuple(
                    float(t) for t in model_config.get("temperatures", defaults.temperatures)
                ),
                nb_samp=int(model_config.get("nb_samp", defaults.nb_samp)),
                sample_rate=int(config.get("sample_rate", defaults.sample_rate)),
            )
            made.graph()
        except (TypeError, ValueError, IndexError) as error:
            raise CheckpointError(f"{source}: malformed SSL_W2V config ({error})") from error
        return made

    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` entries (see :meth:`from_dict`)."""
        return {
            "wav2vec2": dict(self.wav2vec2),
            "model_config": {
                "architecture": "SSL_W2V",
                "nb_samp": self.nb_samp,
                "filts": [self.filts[0], *[list(pair) for pair in self.filts[1:]]],
                "attention_channels": self.attention_channels,
                "gat_dims": list(self.gat_dims),
                "pool_ratios": list(self.pool_ratios),
                "temperatures": list(self.temperatures),
            },
        }

    def graph(self) -> GraphConfig:
        return GraphConfig.build(
            self.filts[-1][-1], self.gat_dims, self.pool_ratios, self.temperatures
        )

    def wav2vec2_config(self):
        from transformers import Wav2Vec2Config

        return Wav2Vec2Config(**dict(self.wav2vec2))


class SSLW2V(SpectroTemporalGraphModel):
    """The SSL_W2V network (Tak et al., Odyssey 2022): XLS-R front end + AASIST back end.

    Shape: ``input_values [B, T]`` (16 kHz, trained with ``T = 64600``) ->
    ``CountermeasureOutput(logits [B, 2], embedding [B, 5 * gat_dims[1]])``; ``logits[:, 1]`` is
    the bonafide logit.
    """

    def __init__(self, config: SslW2vConfig | None = None):
        from transformers import Wav2Vec2Model

        super().__init__()
        config = config or SslW2vConfig()
        self.config = config
        front = config.wav2vec2_config()
        self.front_end = Wav2Vec2Model(front)
        width, channels = config.filts[0], config.filts[-1][-1]
        self.LL = nn.Linear(front.hidden_size, width)
        self.first_bn = nn.BatchNorm2d(1)
        self.first_bn1 = nn.BatchNorm2d(channels)
        self.selu = nn.SELU()
        self.encoder = residual_encoder(config.filts, pool_time=None)
        self.attention = nn.Sequential(
            nn.Conv2d(channels, config.attention_channels, kernel_size=(1, 1)),
            nn.SELU(),
            nn.BatchNorm2d(config.attention_channels),
            nn.Conv2d(config.attention_channels, channels, kernel_size=(1, 1)),
        )
        self._build_graph(config.graph(), pooled_size(width))

    def forward(self, input_values: torch.Tensor) -> CountermeasureOutput:
        if input_values.ndim != 2:
            raise ValueError(f"input_values must be [B, T], got {tuple(input_values.shape)}")
        frames = self.front_end(input_values).last_hidden_state  # [B, frames, hidden]
        projected = self.LL(frames).transpose(1, 2).unsqueeze(1)  # [B, 1, width, frames]
        features = self.selu(self.first_bn(F.max_pool2d(projected, (3, 3))))
        encoded = self.selu(self.first_bn1(self.encoder(features)))  # [B, C, F, T]
        weights = self.attention(encoded)
        spectral = (encoded * F.softmax(weights, dim=-1)).sum(dim=-1)  # pooled over time
        temporal = (encoded * F.softmax(weights, dim=-2)).sum(dim=-2)  # pooled over features
        logits, embedding = self.classify_graph(
            spectral.transpose(1, 2) + self.pos_S, temporal.transpose(1, 2)
        )
        return CountermeasureOutput(logits=logits, embedding=embedding)


def is_ssl_w2v_state_dict(keys) -> bool:
    """Whether state-dict keys look like SSL_W2V's (published or amongus layout)."""
    keys = set(keys)
    front = any(key.startswith((FAIRSEQ_PREFIX, FRONT_END_PREFIX)) for key in keys)
    return front and {"LL.weight", "pos_S", "GAT_layer_S.att_weight"} <= keys


def published_to_module_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: SSLW2V
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a published SSL_W2V state dict (fairseq front end) for :class:`SSLW2V`.

    Returns:
        ``(mapped, dropped)``: the state dict in the module's names, and the published names
        dropped as pre-training-only (see :data:`~amongus.classifiers.fairseq_wav2vec2.PRETRAINING_ONLY`).
        A state dict already in the module's names (``front_end.*``) is returned as is.

    Raises:
        CheckpointError: a fairseq name that the mapping does not know.
    """
    fairseq = {
        k[len(FAIRSEQ_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(FAIRSEQ_PREFIX)
    }
    if not fairseq:
        return dict(state_dict), []
    rest = {k: v for k, v in state_dict.items() if not k.startswith(FAIRSEQ_PREFIX)}
    front_names = list(model.front_end.state_dict())
    mapped, dropped = map_fairseq_state_dict(fairseq, front_names)
    for name, tensor in mapped.items():
        rest[FRONT_END_PREFIX + name] = tensor
    return rest, [FAIRSEQ_PREFIX + name for name in dropped]


class SslW2vClassifier(ModuleClassifier):
    """An SSL_W2V countermeasure behind the classifier contract (options as
    :class:`~amongus.classifiers.module.ModuleClassifier`)."""

    family = "ssl_w2v"

    def __init__(self, model: SSLW2V, *, id2label: Mapping[int, str] | None = None, **options):
        super().__init__(
            model,
            id2label=PUBLISHED_ID2LABEL if id2label is None else id2label,
            sample_rate=model.config.sample_rate,
            segment_samples=model.config.nb_samp,
            **options,
        )

    def model_config_json(self) -> dict[str, Any]:
        return self.model.config.to_json()


def _resolve_config(config: Any, weights: Path) -> tuple[SslW2vConfig, dict[str, Any]]:
    from amongus.checkpoints import CheckpointError

    if isinstance(config, SslW2vConfig):
        return config, {}
    if isinstance(config, Mapping):
        return SslW2vConfig.from_dict(config, source=f"{weights}: config="), {}
    if isinstance(config, str | os.PathLike):
        return SslW2vConfig.from_dict(read_config_json(Path(config)), source=str(config)), {}
    if config is not None:
        raise TypeError(f"config must be a dict, a path or an SslW2vConfig, got {config!r}")
    beside = weights.parent / CONFIG_NAME
    if beside.is_file():
        data = read_config_json(beside)
        if data.get("family") == SslW2vClassifier.family:
            return SslW2vConfig.from_dict(data, source=str(beside)), data
        if data.get("family") is not None:
            raise CheckpointError(f"{beside}: family {data['family']!r}, not an SSL_W2V config")
    # the published checkpoints come without a config: their architecture is the paper's
    return SslW2vConfig(), {}


def load_ssl_w2v(
    path: str | os.PathLike,
    *,
    config: Any = None,
    trust_checkpoint: bool = False,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    name: str | None = None,
    **options: Any,
) -> SslW2vClassifier:
    """Load SSL_W2V weights (``LA_model.pth``, ``DF_model.pth``, or an amongus folder).

    Args:
        path: the weight file, or a folder holding it (and optionally ``config.json``).
        config: the architecture (an :class:`SslW2vConfig`, its ``config.json`` dict, or a path);
            by default ``config.json`` beside the weights, else the published architecture.
        trust_checkpoint: allow arbitrary pickles (see :func:`amongus.checkpoints.load_weights`).
        state_dict: the already read weights of ``path``.
        name: the name in reports (default: the path).
        options: :class:`SslW2vClassifier` options (``device``, ``long_policy``...).

    Raises:
        CheckpointError: unreadable or unsafe weights, unknown fairseq names, or weights that do
            not fit the architecture (every missing, unexpected or mis-shaped key is listed).
    """
    from amongus.checkpoints import load_state_dict_strict

    path = Path(path).expanduser()
    weights, state_dict = read_weights(
        path, trust_checkpoint=trust_checkpoint, state_dict=state_dict
    )
    architecture, stored = _resolve_config(config, weights)
    model = SSLW2V(architecture)
    mapped, dropped = published_to_module_state_dict(state_dict, model)
    if dropped:
        logger.info("%s: dropped %d pre-training-only tensors: %s", weights, len(dropped), dropped)
    load_state_dict_strict(model, mapped, source=weights)
    metadata = {
        k: v for k, v in stored.items() if k not in (*RESERVED_KEYS, "wav2vec2", "model_config")
    }
    return SslW2vClassifier(
        model, id2label=stored.get("id2label"), name=name or str(path), metadata=metadata, **options
    )
