"""Random-weight models at the sizes and in the layouts of the published checkpoints.

The benchmarks time these (``--size real``) so that their figures say what a user waits for: at
tiny sizes Python overhead is most of the cost. Each model is written exactly as its published
counterpart is laid out and is loaded through the real loaders; only the weights are random.

========================  =========================================  ==========  ==========
name                      published counterpart                      parameters  rate
========================  =========================================  ==========  ==========
``sepformer-wsj02mix``    ``speechbrain/sepformer-wsj02mix``          25.7 M      8 kHz
``convtasnet-libri2mix``  ``JorisCos/ConvTasNet_Libri2Mix_sepclean_    5.1 M      16 kHz
                          16k`` (Asteroid package)
``wavlm-base``            a WavLM-base spoof classifier (e.g.         94.6 M      16 kHz
                          ``abhishtagatya/wavlm-base-960h-asv19-
                          deepfake``), Hugging Face folder
``wav2vec2-base``         a wav2vec2-base classifier, same layout     94.6 M      16 kHz
``aasist``                clovaai/aasist ``AASIST.pth`` +             0.3 M       16 kHz
                          ``AASIST.conf``
========================  =========================================  ==========  ==========

Sizes: the SepFormer's from the published ``hyperparams.yaml`` (``N_encoder_out: 256``,
``d_model: 256``, 8 heads, ``d_ffn: 1024``, 8 transformer layers per block, 2 dual-path layers,
``K: 250``, kernel 16); the ConvTasNet's from the package's ``model_args`` (512 filters of 32
taps, stride 16, ``bn_chan 128``, ``hid_chan 512``, ``skip_chan 128``, 8 blocks x 3 repeats);
WavLM-base and wav2vec2-base are transformers' default configurations (which are those base
models) with the sequence-classification head (``classifier_proj_size 256``, two classes);
AASIST is :data:`amongus.classifiers.aasist.AASIST_CONFIG`.

:func:`cached_real_model` builds a model once into a cache folder (``$AMONGUS_REAL_MODEL_CACHE``,
else ``<tempdir>/amongus-real-size-models``) and returns its path on later calls;
:func:`real_parameter_count` counts a model's parameters on the ``meta`` device (nothing is
allocated), for fast tests.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variable naming the cache folder of :func:`cached_real_model`.
CACHE_ENV = "AMONGUS_REAL_MODEL_CACHE"
_DONE = ".amongus-built.json"

#: ``speechbrain/sepformer-wsj02mix`` sizes (keyword options of ``sepformer_hparams_text``).
SEPFORMER_WSJ02MIX = {
    "n_filters": 256,
    "kernel_size": 16,
    "d_model": 256,
    "nhead": 8,
    "d_ffn": 1024,
    "transformer_layers": 8,
    "num_layers": 2,
    "chunk_size": 250,
}
#: ``JorisCos/ConvTasNet_Libri2Mix_sepclean_16k`` ``model_args`` (``build_convtasnet_model``).
CONVTASNET_LIBRI2MIX = {
    "n_filters": 512,
    "kernel_size": 32,
    "stride": 16,
    "bn_chan": 128,
    "hid_chan": 512,
    "skip_chan": 128,
    "n_blocks": 8,
    "n_repeats": 3,
    "conv_kernel_size": 3,
    "norm_type": "gLN",
    "mask_act": "relu",
}
#: ``preprocessor_config.json`` of the base models (``microsoft/wavlm-base``,
#: ``facebook/wav2vec2-base``), which their fine-tuned classifiers copy.
FEATURE_EXTRACTORS = {
    "wavlm-base": {"do_normalize": False, "return_attention_mask": True},
    "wav2vec2-base": {"do_normalize": True, "return_attention_mask": False},
}


@dataclass(frozen=True)
class RealModel:
    """What :func:`build_real_model` writes for one name."""

    name: str
    role: str  # "separator" or "classifier"
    sample_rate: int
    layout: str
    parameters_millions: float  # the published count, rounded as in the model cards


REAL_MODELS: dict[str, RealModel] = {
    model.name: model
    for model in (
        RealModel("sepformer-wsj02mix", "separator", 8000, "SpeechBrain hub folder", 25.7),
        RealModel("convtasnet-libri2mix", "separator", 16000, "Asteroid package", 5.1),
        RealModel("wavlm-base", "classifier", 16000, "Hugging Face folder", 94.6),
        RealModel("wav2vec2-base", "classifier", 16000, "Hugging Face folder", 94.6),
        RealModel("aasist", "classifier", 16000, "clovaai AASIST.pth + AASIST.conf", 0.3),
    )
}


def _check_name(name: str) -> RealModel:
    if name not in REAL_MODELS:
        raise ValueError(f"unknown real-size model {name!r}; choose from {sorted(REAL_MODELS)}")
    return REAL_MODELS[name]


def _hf_config(name: str):
    from transformers import Wav2Vec2Config, WavLMConfig

    from .classifiers import DEFAULT_ID2LABEL

    config_class = WavLMConfig if name == "wavlm-base" else Wav2Vec2Config
    return config_class(
        num_labels=2,
        id2label=dict(DEFAULT_ID2LABEL),
        label2id={label: index for index, label in DEFAULT_ID2LABEL.items()},
    )


def _hf_model(name: str, config):
    from transformers import Wav2Vec2ForSequenceClassification, WavLMForSequenceClassification

    if name == "wavlm-base":
        return WavLMForSequenceClassification(config)
    return Wav2Vec2ForSequenceClassification(config)


def real_parameter_count(name: str) -> int:
    """The number of parameters of ``name``'s model, counted on the ``meta`` device (no memory,
    no weights written: a fraction of a second). Raises ``ValueError`` for an unknown name."""
    import torch

    _check_name(name)
    with torch.device("meta"):
        if name in ("wavlm-base", "wav2vec2-base"):
            model = _hf_model(name, _hf_config(name))
        elif name == "aasist":
            from amongus.classifiers.aasist import AASIST, AASIST_CONFIG

            model = AASIST(AASIST_CONFIG)
        elif name == "convtasnet-libri2mix":
            from .separators import build_convtasnet_model

            model = build_convtasnet_model(sample_rate=16000, **CONVTASNET_LIBRI2MIX)
        else:
            from .separators import instantiate_sepformer, sepformer_hparams_text

            modules = instantiate_sepformer(
                sepformer_hparams_text(sample_rate=8000, **SEPFORMER_WSJ02MIX)
            )["modules"]
            model = torch.nn.ModuleList(modules[key] for key in ("encoder", "masknet", "decoder"))
    return sum(parameter.numel() for parameter in model.parameters())


def build_real_model(name: str, path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write the random-weight ``name`` model (see the module table) at ``path``.

    Args:
        name: a key of :data:`REAL_MODELS`.
        path: the folder to write (created); for ``convtasnet-libri2mix`` it receives
            ``pytorch_model.bin`` as on the hub.
        seed: the random weights.

    Returns:
        What to give the loaders (``load_separator`` / ``load_classifier``): the folder.

    Raises:
        ValueError: an unknown name.
    """
    import torch

    _check_name(name)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if name == "sepformer-wsj02mix":
        from .separators import build_tiny_sepformer

        return build_tiny_sepformer(path, sample_rate=8000, seed=seed, **SEPFORMER_WSJ02MIX)
    if name == "convtasnet-libri2mix":
        from .separators import build_tiny_convtasnet

        build_tiny_convtasnet(path, sample_rate=16000, seed=seed, **CONVTASNET_LIBRI2MIX)
        return path
    if name == "aasist":
        from amongus.classifiers.aasist import AASIST_CONFIG

        from .countermeasures import write_tiny_aasist_checkpoint

        return write_tiny_aasist_checkpoint(path, seed=seed, config=AASIST_CONFIG)
    from transformers import Wav2Vec2FeatureExtractor

    config = _hf_config(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _hf_model(name, config).eval()
    model.save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, **FEATURE_EXTRACTORS[name]
    ).save_pretrained(path)
    return path


def real_model_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$AMONGUS_REAL_MODEL_CACHE``, else
    ``<tempdir>/amongus-real-size-models``."""
    chosen = cache_dir or os.environ.get(CACHE_ENV)
    return Path(chosen) if chosen else Path(tempfile.gettempdir()) / "amongus-real-size-models"


def cached_real_model(
    name: str, cache_dir: str | os.PathLike | None = None, *, seed: int = 0
) -> Path:
    """``build_real_model(name)`` into the cache folder once; later calls return the same path.

    A model is complete once its marker file (written last) names the same name and seed, so an
    interrupted build is redone rather than loaded half-written. Concurrent builders of the same
    model write to private folders and the first to finish wins.
    """
    import shutil

    spec = _check_name(name)
    folder = real_model_cache_dir(cache_dir) / f"{name}-seed{seed}"
    expected: dict[str, Any] = {"name": name, "seed": seed, "layout": spec.layout}
    marker = folder / _DONE
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8-sig")) == expected:
                return folder
        except (OSError, ValueError):
            pass
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        build_real_model(name, staging, seed=seed)
        (staging / _DONE).write_text(json.dumps(expected), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first
            if not marker.is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


__all__ = [
    "CACHE_ENV",
    "CONVTASNET_LIBRI2MIX",
    "REAL_MODELS",
    "SEPFORMER_WSJ02MIX",
    "RealModel",
    "build_real_model",
    "cached_real_model",
    "real_model_cache_dir",
    "real_parameter_count",
]
