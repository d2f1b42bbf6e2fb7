"""Which parameters of the classifier train: feature encoder, base model, chosen layers.

Three knobs, applied in this order by :func:`apply_freezing`:

* ``freeze="none"``: everything trains;
* ``freeze="feature_encoder"``: the convolutional front end is frozen
  (``model.freeze_feature_encoder()``, as in the Hugging Face audio-classification recipe);
* ``freeze="base"``: the whole base model (``model.base_model``, e.g. ``model.wavlm``) is
  frozen: only the head (projector + classifier) trains;
* ``train_layers="first:5,last:5"`` (or ``"0-4,7,-1"``): the base model is frozen except the
  chosen transformer layers (``base_model.encoder.layers[i]``); the head trains. This is the
  course studies' "fine-tune the first and last 5 layers".
"""

from __future__ import annotations

import re

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


def transformer_layers(model):
    """The list of transformer layers of an audio-classification model's base model."""
    base = model.base_model
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layers", None) if encoder is not None else None
    if layers is None:
        raise ValueError(
            f"train_layers: {type(model).__name__} has no base_model.encoder.layers to choose from"
        )
    return layers


def apply_freezing(model, *, freeze: str = "feature_encoder", train_layers: str | None = None):
    """Set ``requires_grad`` on the model's parameters; returns the names of trainable ones.

    Args:
        model: a ``transformers`` audio-classification model (``WavLMForSequenceClassification``).
        freeze: ``"none"``, ``"feature_encoder"`` or ``"base"`` (see the module docstring).
        train_layers: a :func:`parse_layer_spec` selection; the base model is frozen except
            those layers (the feature encoder stays frozen).
    """
    if freeze not in ("none", "feature_encoder", "base"):
        raise ValueError(f"freeze must be 'none', 'feature_encoder' or 'base', got {freeze!r}")
    model.requires_grad_(True)
    if freeze == "feature_encoder":
        if not hasattr(model, "freeze_feature_encoder"):
            raise ValueError(f"{type(model).__name__} has no freeze_feature_encoder()")
        model.freeze_feature_encoder()
    elif freeze == "base":
        model.base_model.requires_grad_(False)
    if train_layers is not None:
        layers = transformer_layers(model)
        chosen = parse_layer_spec(train_layers, n_layers=len(layers))
        model.base_model.requires_grad_(False)
        for index in chosen:
            layers[index].requires_grad_(True)
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("freezing left no trainable parameters")
    return trainable


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
