"""Opt-in fast CPU inference: dynamic int8 quantization of a classifier's linear layers.

``torch.ao.quantization.quantize_dynamic`` (PyTorch's post-training *dynamic* quantization:
weights stored as int8, activations quantized on the fly per batch; Jacob et al., 2018,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference")
replaces each chosen ``torch.nn.Linear`` by an int8 kernel. It pays on CPU for transformer
classifiers (WavLM-base, wav2vec2-base), whose cost is mostly matrix products, and does nothing
useful for AASIST (convolutions and graph attention). Scores change slightly, so it is off by
default (``Pipeline(..., quantize=True)``, ``amongus.evaluate --quantize``) and a quantized
classifier reports a different identity.

Some models read a linear layer's ``weight``/``bias`` tensors directly instead of calling it
(transformers' WavLM attention passes ``q_proj.bias`` to ``multi_head_attention_forward``); a
quantized layer has no such tensors. Every linear layer is tried first; when a probe forward
fails, the layers inside attention modules are left in float and the rest quantized.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

logger = logging.getLogger(__name__)

#: Appended to a quantized classifier's identity, so reports and caches tell the two apart.
QUANTIZED_TAG = "int8-dynamic"


def _linear_names(model, *, skip_attention: bool) -> set[str]:
    import torch

    attention = [
        name for name, module in model.named_modules() if "Attention" in type(module).__name__
    ]
    names = set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if skip_attention and any(name.startswith(prefix + ".") for prefix in attention):
            continue
        names.add(name)
    return names


def _probe(classifier) -> None:
    import numpy as np
    import torch

    rate = int(classifier.sample_rate)
    noise = np.random.default_rng(0).standard_normal(rate).astype(np.float32) * 0.1
    with torch.inference_mode():
        classifier.logits(classifier.prepare([noise], sample_rate=rate))


def quantize_classifier(classifier: Any) -> Any:
    """Quantize the linear layers of ``classifier.model`` to int8 (dynamic), in place.

    Args:
        classifier: a loaded classifier on the CPU (:class:`amongus.classifier.SpoofClassifier`
            or a :mod:`amongus.classifiers` family): anything with ``model``, ``prepare``,
            ``logits``, ``sample_rate``.

    Returns:
        ``classifier``, whose ``model`` is now the quantized copy and whose ``quantized``
        attribute is :data:`QUANTIZED_TAG`.

    Raises:
        ValueError: the model is not on the CPU (int8 dynamic kernels are CPU-only), or it has
            no linear layer that can be quantized.
    """
    import torch

    model = classifier.model
    devices = {parameter.device.type for parameter in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(
            f"quantize=True needs a classifier on the CPU (int8 dynamic quantization has CPU "
            f"kernels only); this one is on {sorted(devices)}"
        )
    if getattr(classifier, "quantized", None):
        return classifier
    # the identity hashes the float weights (a quantized state dict holds packed, non-tensor
    # entries): compute it now so it is cached; the Pipeline appends QUANTIZED_TAG to it
    getattr(classifier, "identity", None)
    problem = None
    for skip_attention in (False, True):
        names = _linear_names(model, skip_attention=skip_attention)
        if not names:
            break
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated in favour of torchao, which is not a dependency
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
            quantized = torch.ao.quantization.quantize_dynamic(model, names, dtype=torch.qint8)
        classifier.model = quantized
        try:
            _probe(classifier)
        except (TypeError, RuntimeError, AttributeError) as error:
            problem = error
            classifier.model = model
            continue
        classifier.quantized = QUANTIZED_TAG
        logger.info(
            "quantized %d linear layer(s) of %s to int8%s",
            len(names),
            type(model).__name__,
            " (attention projections left in float)" if skip_attention else "",
        )
        return classifier
    raise ValueError(
        f"cannot quantize {type(model).__name__}: "
        + (f"a quantized forward failed ({problem})" if problem else "it has no linear layer")
    )


__all__ = ["QUANTIZED_TAG", "quantize_classifier"]
