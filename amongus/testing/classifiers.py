"""A tiny, randomly initialised WavLM spoof classifier saved in the Hugging Face format.

The folder it writes (``config.json``, ``model.safetensors``, ``preprocessor_config.json``) has
exactly the layout of a real hub checkpoint such as ``abhishtagatya/wavlm-base-960h-asv19-deepfake``
and is loaded through :meth:`amongus.classifier.SpoofClassifier.from_pretrained`, the real path.

The convolutional front end keeps WavLM's seven layers and its total stride of 320 samples
(20 ms at 16 kHz) and receptive field of 400 samples, so the tiny model sees audio the way the real
one does; only the widths are small. Raise ``hidden_size`` and friends through ``config_overrides``
to train a larger model of the same architecture.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_ID2LABEL: dict[int, str] = {0: "bonafide", 1: "spoof"}


def tiny_wavlm_config_kwargs(*, hidden_size: int = 32) -> dict[str, Any]:
    """The keyword arguments of :class:`transformers.WavLMConfig` for the tiny model.

    ``hidden_size`` sets the width; the other widths follow it. The convolutional front end has
    WavLM's strides ``(5, 2, 2, 2, 2, 2, 2)`` (320 in total) and kernels
    ``(10, 3, 3, 3, 3, 2, 2)`` (receptive field 400 samples).
    """
    if hidden_size < 4 or hidden_size % 2:
        raise ValueError(f"hidden_size must be an even number >= 4, got {hidden_size}")
    return {
        "hidden_size": hidden_size,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 2 * hidden_size,
        "conv_dim": (hidden_size,) * 7,
        "conv_stride": (5, 2, 2, 2, 2, 2, 2),
        "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
        "conv_bias": False,
        # "layer" normalises each frame on its own, so padding never changes a stream's features
        # (WavLM-base's "group" norm averages over time, padding included).
        "feat_extract_norm": "layer",
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
        "num_buckets": 32,
        "max_bucket_distance": 100,
        "classifier_proj_size": hidden_size,
        "use_weighted_layer_sum": False,
        "mask_time_prob": 0.0,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.0,
        "layerdrop": 0.0,
    }


def build_tiny_classifier(
    directory: str | os.PathLike,
    *,
    id2label: Mapping[int, str] | None = None,
    seed: int = 0,
    hidden_size: int = 32,
    sampling_rate: int = 16000,
    return_attention_mask: bool = True,
    do_normalize: bool = True,
    **config_overrides: Any,
) -> Path:
    """Write a tiny random ``WavLMForSequenceClassification`` + ``Wav2Vec2FeatureExtractor``.

    Args:
        directory: created if needed; the model and feature extractor are saved into it with
            ``save_pretrained``.
        id2label: class names by index, ``{0: "bonafide", 1: "spoof"}`` by default. Any spelling
            may be used (``{0: "fake", 1: "real"}``, ``{0: "LABEL_0", 1: "LABEL_1"}``) to test label
            discovery.
        seed: seeds the random weights, so the same arguments write the same model.
        hidden_size: transformer width (the convolution and projection widths follow it).
        sampling_rate, return_attention_mask, do_normalize: feature-extractor settings.
        **config_overrides: any other ``WavLMConfig`` field, e.g. ``feat_extract_norm="group"``
            (WavLM-base's front end) or ``num_hidden_layers=4``.

    Returns:
        The directory, loadable with ``SpoofClassifier.from_pretrained(directory)``.
    """
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForSequenceClassification

    id2label = dict(DEFAULT_ID2LABEL if id2label is None else id2label)
    id2label = {int(index): str(name) for index, name in id2label.items()}
    if sorted(id2label) != list(range(len(id2label))) or len(id2label) < 2:
        raise ValueError(f"id2label must map 0..N-1 (N >= 2) to names, got {id2label}")
    kwargs = tiny_wavlm_config_kwargs(hidden_size=hidden_size)
    kwargs.update(config_overrides)
    config = WavLMConfig(
        **kwargs,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Seed a private generator state so building a model does not disturb the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WavLMForSequenceClassification(config)
    model.eval()
    model.save_pretrained(directory)
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sampling_rate,
        padding_value=0.0,
        do_normalize=do_normalize,
        return_attention_mask=return_attention_mask,
    )
    feature_extractor.save_pretrained(directory)
    return directory
