"""The Classifier protocol, the classifier registry and :func:`load_classifier`.

Every classifier scores single-speaker streams at its own ``sample_rate`` and returns
:class:`amongus.classifier.StreamScores` (``spoof_probability``: higher = spoof; ``cm_score``:
higher = bonafide), whatever the class order of its model. It never resamples or normalises
behind the caller's back: the pipeline resamples (``amongus.audio.resample``).

Families (formats recognised by :func:`load_classifier` from their files):

| family | what it reads |
| --- | --- |
| `hf` | a transformers audio-classification folder (`config.json` with `model_type`, weights, `preprocessor_config.json`) or a hub id: `amongus.classifiers.hf` |
| `aasist` | an AASIST/AASIST-L state dict (`.pth`/`.safetensors`) with its clovaai model config, or an amongus folder: `amongus.classifiers.aasist` |
| `ssl_w2v` | an SSL_W2V state dict (fairseq wav2vec 2.0 names under `ssl_model.model.`), or an amongus folder: `amongus.classifiers.ssl_w2v` |
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

_REGISTRY: dict[str, Callable[..., Any]] = {}

#: Format families and what they read.
FAMILIES = {
    "hf": "Hugging Face audio classification (WavLM, wav2vec 2.0, HuBERT): folder or hub id",
    "aasist": "AASIST / AASIST-L: state dict + clovaai model_config, or an amongus folder",
    "ssl_w2v": "SSL_W2V: XLS-R (fairseq names) + AASIST back end state dict, or an amongus folder",
}


@runtime_checkable
class Classifier(Protocol):
    """What the pipeline, the evaluation and the Trainer need from a classifier.

    Attributes:
        sample_rate: the rate the classifier must be fed, Hz.
        identity: a stable string (family or name, weights hash, rate, input policy): a cache key.
        spoof_index: which column of the model's logits is the spoof class.
        labels: class names by index (``id2label``).

    Loaded classifiers also carry ``decision_threshold``: the calibrated
    :class:`~amongus.classifiers.threshold.DecisionThreshold` stored in their folder, or
    ``None`` (optional on instances given directly; the pipeline then decides at 0.5).
    """

    sample_rate: int
    identity: str
    spoof_index: int
    labels: dict[int, str]

    def score(
        self, waveforms, *, sample_rate=None, lengths=None, batch_size=8, progress=False
    ):  # pragma: no cover - protocol
        """Shape: ``list of [T_i] (or [N, T] with lengths) -> StreamScores of length N``."""
        ...


def register_classifier(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a classifier factory loadable as ``load_classifier(name, **options)``."""

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = factory
        return factory

    return decorator


def _register_shipped() -> None:
    """Register the classifiers shipped in ``amongus/data/models`` under their preset names."""
    from amongus.defaults import MODELS_DIR, SHIPPED_CLASSIFIERS

    for name, folder in SHIPPED_CLASSIFIERS.items():
        if name in _REGISTRY:
            continue

        def factory(_folder: str = folder, _name: str = name, **options: Any):
            path = MODELS_DIR / _folder
            if not path.exists():
                raise FileNotFoundError(
                    f"the shipped classifier {_name!r} is not installed: {path} does not exist"
                )
            return classifier_from_source(path, preset_name=_name, **options)

        factory.__doc__ = f"The shipped classifier ``{name}`` (``amongus/data/models/{folder}``)."
        _REGISTRY[name] = factory


def registered_classifiers() -> list[str]:
    """The names :func:`load_classifier` accepts besides paths and hub ids."""
    _register_shipped()
    return sorted(_REGISTRY)


def load_classifier(spec: Any, *, device: str | None = None, **options: Any):
    """Build a classifier from a name, a path or hub id, a config dict, or an instance.

    * an object with ``score`` and ``sample_rate`` is returned as is;
    * a dict ``{"name": ..., **options}`` (or ``"path"``) is a config;
    * a registered name (``"aasist"``, ``"wavlm-spoof-finetuned"``... see
      :func:`registered_classifiers`);
    * otherwise a local path or hub id whose files decide the family (see the module docstring);
      ``family="aasist"`` / ``"ssl_w2v"`` / ``"hf"`` forces it.

    Args:
        spec: what to load.
        device: where the model runs (``"cpu"``, ``"cuda"``...).
        options: passed to the family's loader: ``config=`` (AASIST/SSL_W2V architecture),
            ``trust_checkpoint=``, ``long_policy=``, ``crop_position=``,
            ``window_hop_seconds=``, and the options of
            :meth:`amongus.classifier.SpoofClassifier.from_pretrained` for ``hf``.

    Raises:
        FileNotFoundError: no such path, and not a registered name or a hub id.
        CheckpointError: a file or folder in no known format, or weights that do not fit.
        OSError: a Hugging Face folder or hub id that cannot be loaded.
        ValueError: the spoof class cannot be identified.

    Example:
        >>> classifier = load_classifier("aasist")  # doctest: +SKIP
        >>> scores = classifier.score([stream_16k], sample_rate=16000)  # doctest: +SKIP
    """
    if hasattr(spec, "score") and hasattr(spec, "sample_rate") and not isinstance(spec, dict):
        return spec
    if device is not None:
        options["device"] = device
    if isinstance(spec, dict):
        config = dict(spec)
        source = config.pop("name", None) or config.pop("path", None)
        if source is None:
            raise ValueError(f"classifier config {spec!r} needs a 'name' or 'path'")
        return load_classifier(source, **{**config, **options})
    if not isinstance(spec, str | os.PathLike):
        raise TypeError(f"cannot build a classifier from {type(spec).__name__}: {spec!r}")
    _register_shipped()
    if isinstance(spec, str) and spec in _REGISTRY:
        return _REGISTRY[spec](**options)
    return classifier_from_source(spec, **options)


def _looks_like_hub_id(text: str) -> bool:
    return not text.startswith((".", "/", "~")) and text.count("/") == 1 and "\\" not in text


def detect_family(source: str | os.PathLike) -> str:
    """The family of a folder, a config-bearing folder or a hub id, from its files alone.

    Weight files (and folders holding only one) are told apart by their tensor names, which
    needs reading them: :func:`classifier_from_source` does that once and returns
    ``"state_dict"`` here.

    Raises:
        FileNotFoundError: no such path, and not a hub id.
        CheckpointError: a format no family reads.
    """
    from amongus.checkpoints import CheckpointError

    from .aasist import WEIGHT_SUFFIXES
    from .hf import is_hf_folder
    from .module import CONFIG_NAME, read_config_json

    path = Path(source).expanduser()
    if path.is_dir():
        config = path / CONFIG_NAME
        if config.is_file():
            data = read_config_json(config)
            family = data.get("family")
            if family is not None:
                if family not in FAMILIES or family == "hf":
                    raise CheckpointError(
                        f"{config}: unknown classifier family {family!r}; known: "
                        f"{', '.join(sorted(FAMILIES))}"
                    )
                return str(family)
            if is_hf_folder(path):
                return "hf"
            if "model_config" in data or "filts" in data:
                return "aasist"
            raise CheckpointError(
                f"{config}: neither a transformers config (model_type), an amongus classifier "
                "config (family) nor a clovaai AASIST config (model_config)"
            )
        return "state_dict"
    if path.is_file():
        if path.suffix in WEIGHT_SUFFIXES:
            return "state_dict"
        raise CheckpointError(
            f"{path}: unknown classifier format (suffix {path.suffix!r}); expected a folder or a "
            f"{'/'.join(WEIGHT_SUFFIXES)} weight file"
        )
    text = str(source)
    if _looks_like_hub_id(text):
        return "hf"
    raise FileNotFoundError(
        f"{text}: no such file or folder, and not a registered classifier name or a hub id "
        f"(owner/name); registered: {', '.join(registered_classifiers())}"
    )


def classifier_from_source(
    source: str | os.PathLike,
    *,
    family: str | None = None,
    preset_name: str | None = None,
    trust_checkpoint: bool = False,
    **options: Any,
):
    """Load the classifier a path or hub id holds (see :func:`load_classifier`), with the
    calibrated decision threshold its folder stores as ``decision_threshold``
    (:mod:`amongus.classifiers.threshold`; ``None`` when it stores none)."""
    from .threshold import attach_decision_threshold

    classifier = _classifier_from_source(
        source,
        family=family,
        preset_name=preset_name,
        trust_checkpoint=trust_checkpoint,
        **options,
    )
    return attach_decision_threshold(classifier, source)


def _classifier_from_source(
    source: str | os.PathLike,
    *,
    family: str | None = None,
    preset_name: str | None = None,
    trust_checkpoint: bool = False,
    **options: Any,
):
    from amongus.checkpoints import CheckpointError

    from .aasist import is_aasist_state_dict, load_aasist, read_weights
    from .hf import load_hf
    from .ssl_w2v import is_ssl_w2v_state_dict, load_ssl_w2v

    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    detected = family or detect_family(source)
    if detected == "hf":
        if trust_checkpoint:
            options["trust_checkpoint"] = trust_checkpoint
        return load_hf(source, **options)
    path = Path(source).expanduser()
    loaders = {"aasist": load_aasist, "ssl_w2v": load_ssl_w2v}
    common = {"trust_checkpoint": trust_checkpoint, "name": preset_name, **options}
    if detected in loaders:
        return loaders[detected](path, **common)
    weights, state_dict = read_weights(path, trust_checkpoint=trust_checkpoint)
    if is_ssl_w2v_state_dict(state_dict):
        return load_ssl_w2v(path, state_dict=state_dict, **common)
    if is_aasist_state_dict(state_dict):
        return load_aasist(path, state_dict=state_dict, **common)
    shown = ", ".join(list(state_dict)[:6])
    raise CheckpointError(
        f"{weights}: not an AASIST or SSL_W2V state dict (first keys: {shown}); a Hugging Face "
        "classifier is a folder with config.json, loaded by its folder"
    )
