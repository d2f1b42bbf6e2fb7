"""Map fairseq wav2vec 2.0 parameter names onto transformers' ``Wav2Vec2Model``, strictly.

fairseq's ``Wav2Vec2Model`` (the XLS-R checkpoints, and the front end of SSL_W2V's ``LA_model.pth``
under ``ssl_model.model.``) and transformers' ``Wav2Vec2Model`` with ``do_stable_layer_norm=True``
and ``feat_extract_norm="layer"`` compute the same function; only the names differ. Every name is
either mapped by a rule below, or dropped by name because it serves pre-training only
(:data:`PRETRAINING_ONLY`); any other name is an error, so nothing is ever silently ignored.

Source of the correspondence: fairseq ``fairseq/models/wav2vec/wav2vec2.py`` (module names) and
transformers' ``convert_wav2vec2_original_pytorch_checkpoint_to_pytorch.py`` (its ``MAPPING``).

| fairseq | transformers |
| --- | --- |
| `feature_extractor.conv_layers.<i>.0.{weight,bias}` | `feature_extractor.conv_layers.<i>.conv.*` |
| `feature_extractor.conv_layers.<i>.2.1.{weight,bias}` | `feature_extractor.conv_layers.<i>.layer_norm.*` |
| `layer_norm.*` | `feature_projection.layer_norm.*` |
| `post_extract_proj.*` | `feature_projection.projection.*` |
| `encoder.pos_conv.0.bias` | `encoder.pos_conv_embed.conv.bias` |
| `encoder.pos_conv.0.weight_g` (or `...original0`) | the model's weight-norm magnitude |
| `encoder.pos_conv.0.weight_v` (or `...original1`) | the model's weight-norm direction |
| `encoder.layers.<i>.self_attn.{q,k,v,out}_proj.*` | `encoder.layers.<i>.attention.*_proj.*` |
| `encoder.layers.<i>.self_attn_layer_norm.*` | `encoder.layers.<i>.layer_norm.*` |
| `encoder.layers.<i>.fc1.*` / `fc2.*` | `...feed_forward.intermediate_dense.*` / `output_dense.*` |
| `encoder.layers.<i>.final_layer_norm.*` | `encoder.layers.<i>.final_layer_norm.*` |
| `encoder.layer_norm.*` | `encoder.layer_norm.*` |
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: fairseq names used only by wav2vec 2.0 pre-training, dropped by name, never by pattern:
#: ``mask_emb`` (the learnt vector that replaces masked frames: SSL_W2V runs with ``mask=False``),
#: the quantizer's codebook and its projection (``quantizer.vars``, ``quantizer.weight_proj``),
#: and the contrastive heads (``project_q``, ``final_proj``).
PRETRAINING_ONLY = (
    "mask_emb",
    "quantizer.vars",
    "quantizer.weight_proj.weight",
    "quantizer.weight_proj.bias",
    "project_q.weight",
    "project_q.bias",
    "final_proj.weight",
    "final_proj.bias",
)

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (
            r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$",
            r"feature_extractor.conv_layers.\1.conv.\2",
        ),
        (
            r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$",
            r"feature_extractor.conv_layers.\1.layer_norm.\2",
        ),
        (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
        (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
        (r"^encoder\.pos_conv\.0\.bias$", r"encoder.pos_conv_embed.conv.bias"),
        (
            r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)$",
            r"encoder.layers.\1.attention.\2_proj.\3",
        ),
        (
            r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$",
            r"encoder.layers.\1.layer_norm.\2",
        ),
        (
            r"^encoder\.layers\.(\d+)\.fc1\.(weight|bias)$",
            r"encoder.layers.\1.feed_forward.intermediate_dense.\2",
        ),
        (
            r"^encoder\.layers\.(\d+)\.fc2\.(weight|bias)$",
            r"encoder.layers.\1.feed_forward.output_dense.\2",
        ),
        (
            r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$",
            r"encoder.layers.\1.final_layer_norm.\2",
        ),
        (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    )
)
# weight norm of the positional convolution: torch < 2.1 names (weight_g, weight_v), torch >= 2.1
# parametrizations (original0 = magnitude, original1 = direction)
_WEIGHT_NORM = {
    "encoder.pos_conv.0.weight_g": "magnitude",
    "encoder.pos_conv.0.parametrizations.weight.original0": "magnitude",
    "encoder.pos_conv.0.weight_v": "direction",
    "encoder.pos_conv.0.parametrizations.weight.original1": "direction",
}
_TARGET_WEIGHT_NORM = {
    "magnitude": (
        "encoder.pos_conv_embed.conv.weight_g",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    ),
    "direction": (
        "encoder.pos_conv_embed.conv.weight_v",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    ),
}


def transformers_name(fairseq_name: str, target_names: Iterable[str]) -> str | None:
    """The transformers name of one fairseq name; ``None`` for a pre-training-only name.

    ``target_names`` (the transformers model's state-dict keys) decide how the weight norm of the
    positional convolution is stored.

    Raises:
        KeyError: a name that no rule maps and that is not in :data:`PRETRAINING_ONLY`.
    """
    if fairseq_name in PRETRAINING_ONLY:
        return None
    if fairseq_name in _WEIGHT_NORM:
        names = set(target_names)
        for candidate in _TARGET_WEIGHT_NORM[_WEIGHT_NORM[fairseq_name]]:
            if candidate in names:
                return candidate
        raise KeyError(f"{fairseq_name}: the target model has no weight-normed positional conv")
    for pattern, replacement in _RULES:
        if pattern.match(fairseq_name):
            return pattern.sub(replacement, fairseq_name)
    raise KeyError(fairseq_name)


def map_fairseq_state_dict(
    state_dict: Mapping[str, Any], target_names: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """Rename a fairseq wav2vec 2.0 state dict for transformers' ``Wav2Vec2Model``.

    Args:
        state_dict: fairseq names (without any prefix) -> tensors.
        target_names: the state-dict keys of the transformers model to fill.

    Returns:
        ``(mapped, dropped)``: the renamed tensors, and the fairseq names dropped as
        pre-training-only, sorted.

    Raises:
        CheckpointError: names no rule knows, or two names mapped onto one.
    """
    from amongus.checkpoints import CheckpointError

    target_names = list(target_names)
    mapped: dict[str, Any] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for name, tensor in state_dict.items():
        try:
            new_name = transformers_name(name, target_names)
        except KeyError:
            unknown.append(name)
            continue
        if new_name is None:
            dropped.append(name)
        elif new_name in mapped:
            raise CheckpointError(f"two fairseq tensors map onto {new_name} (one is {name})")
        else:
            mapped[new_name] = tensor
    if unknown:
        shown = ", ".join(sorted(unknown)[:8]) + (" ..." if len(unknown) > 8 else "")
        raise CheckpointError(
            f"{len(unknown)} fairseq wav2vec 2.0 tensor names are not known to the mapping: {shown}"
        )
    return mapped, sorted(dropped)
