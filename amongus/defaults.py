"""The project's shipped default components: what ``amongus.Pipeline()`` uses with no arguments.

The trained models live in ``amongus/data/models/`` (installed with the package). Every default
resolution goes through :func:`default_components`, so there is one place to change when new
models are shipped. A preset names a separator (a registered name such as ``"oracle"`` or a
folder under ``amongus/data/models``) and a classifier folder (any classifier family).

The default classifier is :data:`DEFAULT_CLASSIFIER` (the official AASIST weights); the WavLM
classifiers trained by the project stay available as the ``wavlm-*`` presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent / "data" / "models"


@dataclass(frozen=True)
class Preset:
    """A named pair of shipped components.

    ``separator`` is a registered separator name (``"oracle"``, ``"passthrough"``) or a path
    relative to :data:`MODELS_DIR`; ``classifier`` is a path relative to :data:`MODELS_DIR`.
    ``options`` are extra ``Pipeline`` keyword arguments (``chunk_seconds``...).
    """

    separator: str
    classifier: str
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


_REGISTERED_SEPARATORS = ("oracle", "passthrough")

#: Shipped model folders under :data:`MODELS_DIR` (see docs/models.md for their model cards).
CONVTASNET_16K = "convtasnet-16k"
SEPFORMER_8K = "sepformer-8k"
CLASSIFIER_CLEAN = "wavlm-spoof-clean"
CLASSIFIER_FINETUNED = "wavlm-spoof-finetuned"
#: The official AASIST weights (clovaai/aasist, MIT), converted to safetensors: see its MODEL_CARD.md.
CLASSIFIER_AASIST = "aasist"
#: Names ``amongus.classifiers.load_classifier`` accepts for the shipped classifiers -> folders.
SHIPPED_CLASSIFIERS: dict[str, str] = {
    "aasist": CLASSIFIER_AASIST,
    "wavlm-spoof-clean": CLASSIFIER_CLEAN,
    "wavlm-spoof-finetuned": CLASSIFIER_FINETUNED,
}

#: The classifier of ``Pipeline()`` and of every preset not named after another classifier:
#: the official AASIST weights, deciding at their calibrated threshold (stored in their
#: ``config.json``; see docs/models.md). Replacing the default is this one line.
DEFAULT_CLASSIFIER = CLASSIFIER_AASIST

PRESETS: dict[str, Preset] = {
    "default": Preset(
        separator=CONVTASNET_16K,
        classifier=DEFAULT_CLASSIFIER,
        description="shipped ConvTasNet (16 kHz) + the default classifier (official AASIST "
        "weights, calibrated threshold)",
    ),
    "aasist": Preset(
        separator=CONVTASNET_16K,
        classifier=CLASSIFIER_AASIST,
        description="shipped ConvTasNet (16 kHz) + the official AASIST weights (ASVspoof 2019 LA)",
    ),
    "wavlm-finetuned": Preset(
        separator=CONVTASNET_16K,
        classifier=CLASSIFIER_FINETUNED,
        description="shipped ConvTasNet (16 kHz) + WavLM classifier fine-tuned on its separated "
        "streams (the default before AASIST)",
    ),
    "wavlm-clean": Preset(
        separator=CONVTASNET_16K,
        classifier=CLASSIFIER_CLEAN,
        description="shipped ConvTasNet (16 kHz) + WavLM classifier trained on clean utterances",
    ),
    "sepformer-8k": Preset(
        separator=SEPFORMER_8K,
        classifier=DEFAULT_CLASSIFIER,
        description="shipped SepFormer (8 kHz, the study's rate; streams resampled to 16 kHz) "
        "+ the default classifier",
    ),
    "sepformer-8k-wavlm-finetuned": Preset(
        separator=SEPFORMER_8K,
        classifier=CLASSIFIER_FINETUNED,
        description="shipped SepFormer (8 kHz -> 16 kHz) + fine-tuned WavLM classifier",
    ),
    "sepformer-8k-wavlm-clean": Preset(
        separator=SEPFORMER_8K,
        classifier=CLASSIFIER_CLEAN,
        description="shipped SepFormer (8 kHz -> 16 kHz) + clean-trained WavLM classifier",
    ),
    "oracle": Preset(
        separator="oracle",
        classifier=DEFAULT_CLASSIFIER,
        description="reference sources instead of a separator (upper bound) + the default "
        "classifier",
    ),
    "passthrough": Preset(
        separator="passthrough",
        classifier=DEFAULT_CLASSIFIER,
        description="no separation (the mixture as every stream) + the default classifier",
    ),
}
#: Earlier preset names that still mean the same components.
PRESET_ALIASES: dict[str, str] = {
    "clean": "wavlm-clean",
    "sepformer-8k-clean": "sepformer-8k-wavlm-clean",
}


def _resolve(spec: str) -> str:
    if spec in _REGISTERED_SEPARATORS:
        return spec
    path = MODELS_DIR / spec
    if not path.exists():
        raise FileNotFoundError(
            f"no shipped default yet: {path} does not exist. Pass separator= and classifier= "
            "explicitly (a registered name, a local folder or a config dict; on the command "
            "line --separator and --classifier)."
        )
    return str(path)


def available_presets() -> list[str]:
    return sorted(PRESETS)


def default_components(preset: str = "default") -> dict[str, Any]:
    """The separator and classifier specs of a preset, resolved to installed files.

    Returns:
        ``{"separator": name_or_path, "classifier": path, **options}``, ready for
        ``Pipeline(**default_components())``.

    ``preset`` may also be an earlier name listed in :data:`PRESET_ALIASES` (``"clean"``).

    Raises:
        ValueError: unknown preset.
        FileNotFoundError: ("no shipped default yet") when the preset's model files are not
            installed.
    """
    preset = PRESET_ALIASES.get(preset, preset)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(available_presets())}")
    chosen = PRESETS[preset]
    return {
        "separator": _resolve(chosen.separator),
        "classifier": _resolve(chosen.classifier),
        **chosen.options,
    }
