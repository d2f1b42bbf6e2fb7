"""Which parameters of the classifier train, for every classifier family.

Every family's model is described once, by :func:`layer_groups`, as four nested parts:

| family | front end (``freeze="feature_encoder"``) | base (``freeze="base"``) | layers (``train_layers``) | head (always trains) |
| --- | --- | --- | --- | --- |
| `hf` (WavLM, wav2vec 2.0, HuBERT) | the convolutional feature encoder (``base_model.feature_extractor``) | the whole base model (``model.wavlm``...) | the transformer layers, ``base_model.encoder.layers`` | projector + classifier |
| `ssl_w2v` (XLS-R + AASIST) | the wav2vec 2.0 convolutional feature encoder (``front_end.feature_extractor``) | the whole wav2vec 2.0 front end (``front_end``) | its transformer layers, ``front_end.encoder.layers`` (24 in XLS-R 300M) | the AASIST back end: ``LL``, residual encoder, attention, graph |
| `aasist` (AASIST, AASIST-L) | the sinc filterbank (fixed, no parameters) and the batch norm after it (``first_bn``) | front end + the six residual blocks (``encoder``) | the residual blocks, ``encoder[0..5]`` | the graph back end: ``pos_S``, graph attention, heterogeneous layers, master nodes, output layer |

The options, applied by :func:`apply_freezing`:

* ``freeze="none"``: everything trains;
* ``freeze="feature_encoder"`` (the Trainer's default): the front end is frozen;
* ``freeze="base"``: the base is frozen: only the head trains;
* ``train_layers="first:5,last:5"`` (or ``"0-4,7,-1"``): the base is frozen except the chosen
  layers; the head trains. This is the seeds' "first-k / last-k layer" recipe (the SSL_W2V course
  recipe trained the first and last five of XLS-R's 24 transformer layers).

A frozen part computes exactly what it computed before training: its parameters get no gradient,
and its batch norms keep their running statistics (:func:`set_train_mode` puts a batch norm whose
parameters are all frozen in eval mode; the other modules train as usual, dropout included).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_SPEC_PART = re.compile(r"^(?:(first|last):(\d+)|(-?\d+)(?:-(-?\d+))?)$")


def parse_layer_spec(spec: str, *, n_layers: int | None) -> list[int]:
    """Parse a layer selection into sorted layer indices.

    Parts are comma-separated: ``first:k`` (layers ``0..k-1``), ``last:k`` (the last ``k``),
    ``i`` (negative counts from the end), ``i-j`` (inclusive range). With ``n_layers=None`` only
    the syntax is checked and ``[]`` is returned.

    >>> parse_layer_spec("first:2,last:2", n_layers=12)
    [0, 1, 10, 11]
    >>> parse_layer_spec("0-2,-1", n_layers=6)
    [0, 1, 2, 5]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"train_layers: empty layer selection {spec!r}")
    chosen: set[int] = set()
    for raw in spec.split(","):
        part = raw.strip().lower()
        match = _SPEC_PART.match(part)
        if not match:
            raise ValueError(
                f"train_layers: cannot parse {raw!r} in {spec!r}; use 'first:k', 'last:k', "
                "'i' or 'i-j' separated by commas"
            )
        if n_layers is None:
            continue
        side, count, start, stop = match.groups()
        if side is not None:
            k = int(count)
            if k > n_layers:
                raise ValueError(f"train_layers: {part!r} asks for {k} of {n_layers} layers")
            chosen.update(range(k) if side == "first" else range(n_layers - k, n_layers))
            continue
        first = int(start)
        last = int(stop) if stop is not None else first
        indices = []
        for index in (first, last):
            resolved = index + n_layers if index < 0 else index
            if not 0 <= resolved < n_layers:
                raise ValueError(
                    f"train_layers: layer {index} out of range for a model with {n_layers} layers"
                )
            indices.append(resolved)
        if indices[0] > indices[1]:
            raise ValueError(f"train_layers: empty range {part!r}")
        chosen.update(range(indices[0], indices[1] + 1))
    return sorted(chosen)


@dataclass
class LayerGroups:
    """What the freezing options mean for one model (see the module docstring's table).

    Attributes:
        family: ``"hf"``, ``"aasist"`` or ``"ssl_w2v"``.
        front_end: modules frozen by ``freeze="feature_encoder"``.
        base: modules frozen by ``freeze="base"`` (the front end included); everything outside
            them is the head.
        layers: the layers ``train_layers`` chooses from, in order.
        layer_kind: what a layer is, for messages.
    """

    family: str
    front_end: list[Any]
    base: list[Any]
    layers: Sequence[Any]
    layer_kind: str


def _unwrap(model):
    # DistributedDataParallel and friends keep the model in .module
    while hasattr(model, "module") and not hasattr(model, "config"):
        model = model.module
    return model


def layer_groups(model) -> LayerGroups:
    """The front end, base, layers and (implicitly) head of a classifier's model.

    Args:
        model: ``classifier.model`` of any family: a transformers audio-classification model,
            :class:`amongus.classifiers.aasist.AASIST` or
            :class:`amongus.classifiers.ssl_w2v.SSLW2V`.

    Raises:
        ValueError: a model of no known family.
    """
    model = _unwrap(model)
    from ..classifiers.aasist import AASIST
    from ..classifiers.ssl_w2v import SSLW2V

    if isinstance(model, SSLW2V):
        front = model.front_end
        return LayerGroups(
            family="ssl_w2v",
            front_end=[front.feature_extractor],
            base=[front],
            layers=front.encoder.layers,
            layer_kind="wav2vec 2.0 transformer layers (front_end.encoder.layers)",
        )
    if isinstance(model, AASIST):
        return LayerGroups(
            family="aasist",
            front_end=[model.filterbank, model.first_bn],
            base=[model.filterbank, model.first_bn, model.encoder],
            layers=list(model.encoder),
            layer_kind="AASIST residual blocks (encoder[i])",
        )
    base = getattr(model, "base_model", None)
    encoder = getattr(base, "encoder", None) if base is not None and base is not model else None
    layers = getattr(encoder, "layers", None) if encoder is not None else None
    feature_extractor = getattr(base, "feature_extractor", None) if base is not None else None
    if layers is None or feature_extractor is None:
        raise ValueError(
            f"{type(model).__name__}: not a classifier family the Trainer knows how to freeze "
            "(a transformers audio-classification model with base_model.feature_extractor and "
            "base_model.encoder.layers, AASIST or SSL_W2V)"
        )
    return LayerGroups(
        family="hf",
        front_end=[feature_extractor],
        base=[base],
        layers=layers,
        layer_kind="transformer layers (base_model.encoder.layers)",
    )


def transformer_layers(model):
    """The layers ``train_layers`` chooses from (:func:`layer_groups`)."""
    return layer_groups(model).layers


def apply_freezing(model, *, freeze: str = "feature_encoder", train_layers: str | None = None):
    """Set ``requires_grad`` on the model's parameters; returns the names of trainable ones.

    Args:
        model: the model of a classifier of any family (``classifier.model``).
        freeze: ``"none"``, ``"feature_encoder"`` or ``"base"`` (see the module docstring).
        train_layers: a :func:`parse_layer_spec` selection; the base is frozen except those
            layers (the front end stays frozen).

    Raises:
        ValueError: an unknown option, a model of no known family, a layer selection out of
            range, or options that leave nothing to train.
    """
    if freeze not in ("none", "feature_encoder", "base"):
        raise ValueError(f"freeze must be 'none', 'feature_encoder' or 'base', got {freeze!r}")
    groups = layer_groups(model)
    model.requires_grad_(True)
    if freeze == "feature_encoder":
        for module in groups.front_end:
            module.requires_grad_(False)
    elif freeze == "base":
        for module in groups.base:
            module.requires_grad_(False)
    if train_layers is not None:
        chosen = parse_layer_spec(train_layers, n_layers=len(groups.layers))
        for module in groups.base:
            module.requires_grad_(False)
        for index in chosen:
            groups.layers[index].requires_grad_(True)
    for module in model.modules():
        # transformers' feature encoders make their input require grad unless told they are
        # frozen (``_requires_grad``): keep that flag in step, so a frozen one costs no backward
        if hasattr(module, "_requires_grad"):
            module._requires_grad = any(p.requires_grad for p in module.parameters())
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("freezing left no trainable parameters")
    return trainable


def set_train_mode(model) -> None:
    """``model.train()``, then batch norms whose parameters are all frozen back in eval mode,
    so that frozen parts keep their running statistics (see the module docstring)."""
    import torch

    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters())
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()


def describe_freezing(model) -> dict[str, dict[str, int]]:
    """Trainable and total parameter counts of each part: ``{"front_end": {"trainable": n,
    "total": m}, "base": ..., "layers": ..., "head": ...}`` (``base`` includes ``front_end`` and
    ``layers``)."""
    groups = layer_groups(model)

    def counts(modules) -> dict[str, int]:
        seen: dict[int, Any] = {}
        for module in modules:
            for parameter in module.parameters():
                seen[id(parameter)] = parameter
        return {
            "trainable": sum(p.numel() for p in seen.values() if p.requires_grad),
            "total": sum(p.numel() for p in seen.values()),
        }

    base_ids = {id(p) for module in groups.base for p in module.parameters()}
    head = [p for p in _unwrap(model).parameters() if id(p) not in base_ids]
    return {
        "front_end": counts(groups.front_end),
        "base": counts(groups.base),
        "layers": counts(groups.layers),
        "head": {
            "trainable": sum(p.numel() for p in head if p.requires_grad),
            "total": sum(p.numel() for p in head),
        },
    }


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
