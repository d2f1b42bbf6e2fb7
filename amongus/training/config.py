"""``TrainerConfig``: every option of the classifier fine-tuning, typed and documented.

The config is a plain dataclass. Each field carries its help text in ``metadata["help"]``; the
command line (``python -m amongus.train``) is generated from these fields, so every option is
documented in one place. A config round-trips through JSON (``to_dict`` / ``from_dict``) and is
saved with every run (``trainer_config.json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FREEZE_CHOICES = ("none", "feature_encoder", "base")
CLASS_WEIGHT_MODES = ("balanced",)
ASSIGNMENT_CHOICES = ("signal", "labels")
MIXED_PRECISION_CHOICES = ("auto", "no", "fp16", "bf16")
CACHE_DTYPE_CHOICES = ("float16", "float32")
LOG_WITH_CHOICES = ("auto", "none", "tensorboard", "wandb", "all")


def _opt(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - mirrors argparse
    metadata = {"help": help, **extra}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _weight_token(text: str) -> float | str:
    """A ``--class-weights`` word: a number, ``balanced`` or ``label=weight``."""
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class TrainerConfig:
    """Options of :class:`amongus.training.Trainer` (all keyword, all with defaults but the data).

    Example:
        >>> config = TrainerConfig(  # doctest: +SKIP
        ...     train_mixtures="mix/train/mixtures.jsonl", classifier="models/wavlm",
        ...     separator="sepformer", output_dir="runs/ft", epochs=3, batch_size=8,
        ...     train_layers="first:5,last:5", class_weights=[0.1, 0.9])
    """

    # data
    train_mixtures: str | None = _opt(
        None, "mixture manifest (mixtures.jsonl written by the Mixer) to train on", required=True
    )
    val_mixtures: str | None = _opt(
        None,
        "mixture manifest to validate on; when omitted, a seeded fraction (--val-fraction) of "
        "the training mixtures is held out (split by mixture)",
    )
    val_fraction: float = _opt(
        0.1, "fraction of the training mixtures held out for validation when no --val-mixtures"
    )
    data_fraction: float = _opt(
        1.0,
        "seeded fraction of the training mixtures used (e.g. 0.1, 0.5, 1.0); applied after the "
        "validation split, so validation never changes with it",
    )
    output_dir: str = _opt("runs/train", "run folder: checkpoints, best model, history, logs")
    cache_dir: str | None = _opt(
        None,
        "stream cache folder (default <output-dir>/stream_cache); share it between runs to "
        "separate each mixture only once",
    )
    cache_dtype: str = _opt(
        "float16",
        "dtype of cached streams: float16 halves the disk, float32 is exact",
        choices=CACHE_DTYPE_CHOICES,
    )
    # models
    classifier: str | None = _opt(
        None,
        "classifier to fine-tune, any family (amongus.classifiers.load_classifier): a shipped "
        "name ('aasist', 'wavlm-spoof-clean'...), a Hugging Face folder or hub id, an AASIST or "
        "SSL_W2V weight file or folder",
        required=True,
    )
    classifier_options: dict[str, Any] = _opt(
        {},
        "extra options for load_classifier, as JSON (e.g. '{\"spoof_index\": 1}' for a "
        'LABEL_0/LABEL_1 model, \'{"config": "AASIST-L"}\')',
    )
    separator: str = _opt(
        "sepformer",
        "frozen separator: oracle, passthrough, sepformer, convtasnet, a checkpoint path or hub id",
    )
    separator_options: dict[str, Any] = _opt(
        {},
        "extra options for load_separator, as JSON (e.g. '{\"n_src\": 2}', "
        "'{\"sample_rate\": 8000}')",
    )
    separation_batch_size: int = _opt(4, "mixtures per separator call while filling the cache")
    chunk_seconds: float | None = _opt(
        None,
        "separate long mixtures in overlapping chunks of this many seconds (None: the "
        "separator's default, 10 s for model separators; inf: whole)",
    )
    assignment: str = _opt(
        "signal",
        "stream labels: 'signal' assigns streams to reference sources by SI-SDR (best "
        "permutation), 'labels' is the study's label permutation: loss = min over permutations "
        "of the summed cross-entropy",
        choices=ASSIGNMENT_CHOICES,
    )
    # optimisation
    epochs: int = _opt(3, "number of epochs")
    batch_size: int = _opt(
        4, "mixtures per batch (each contributes all its streams, so 2-source mixtures give 2x)"
    )
    grad_accum_steps: int = _opt(2, "batches whose gradients are summed per optimizer step")
    learning_rate: float = _opt(1e-5, "AdamW peak learning rate")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    adam_betas: list[float] = _opt([0.9, 0.999], "AdamW betas")
    adam_eps: float = _opt(1e-8, "AdamW epsilon")
    warmup_ratio: float = _opt(
        0.1, "fraction of the optimizer steps used for linear warm-up (then linear decay to 0)"
    )
    warmup_steps: int | None = _opt(None, "warm-up steps; overrides --warmup-ratio when given")
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0 disables)")
    class_weights: list[float] | str | dict[str, float] | None = _opt(
        None,
        "cross-entropy class weights: by label name ('spoof=0.1 bonafide=0.9', the "
        "SSL_Anti-spoofing recipe's setting; the same whatever the family's class order), "
        "'balanced' (N / (2 n_c) from the training streams), or numbers in the classifier's "
        "class-index order (its id2label: spoof is index 0 for AASIST/SSL_W2V, usually 1 for "
        "Hugging Face models); none = unweighted",
        cli_type=_weight_token,
    )
    mixed_precision: str = _opt(
        "auto",
        "auto = bf16 on GPUs that support it, else fp16 on CUDA, 'no' on CPU",
        choices=MIXED_PRECISION_CHOICES,
    )
    seed: int = _opt(0, "seed of everything: split, data fraction, data order, crops, dropout")
    deterministic: bool = _opt(
        True, "torch.use_deterministic_algorithms (warn only) for bit-reproducible resumes"
    )
    # what trains
    freeze: str = _opt(
        "feature_encoder",
        "'feature_encoder' freezes the convolutional front end (model.freeze_feature_encoder), "
        "'base' freezes the whole base model so only the head trains, 'none' trains everything",
        choices=FREEZE_CHOICES,
    )
    train_layers: str | None = _opt(
        None,
        "train only these transformer layers (plus the head): 'first:5,last:5', '0,1,10-11'; "
        "the rest of the base model is frozen",
    )
    # streams
    max_seconds: float | None = _opt(
        4.0,
        "crop training streams to this many seconds (seeded random window per epoch; validation "
        "takes the centre window); None keeps whole streams. Fixed-input families (AASIST, "
        "SSL_W2V) always take their segment length (64,600 samples), repeat-padded",
    )
    augment: str | None = _opt(
        None,
        "waveform augmentation of training streams, on the fly: comma-separated steps applied "
        "in order, each 'name' or 'name:p' (p its probability): rawboost (RawBoost 1+2), "
        "rawboost1, rawboost2, rawboost3, codec, reverb, noise; e.g. 'rawboost,codec:0.3'",
    )
    augment_prob: float = _opt(0.5, "probability of each augmentation step given without ':p'")
    augment_options: dict[str, Any] = _opt(
        {},
        'per-step augmentation options, as JSON: e.g. \'{"noise": {"snr_db": [5, 20]}, '
        '"codec": {"codecs": ["mulaw", "gsm"]}}\' (see docs/training.md)',
    )
    bucket_size: int = _opt(
        50, "length bucketing: sort windows of bucket_size batches by length (1 disables)"
    )
    num_workers: int = _opt(
        1, "DataLoader worker processes reading the cache while the model computes (0: inline)"
    )
    # joint fine-tuning of the separator (amongus.training.joint)
    joint: bool = _opt(
        False,
        "spoof-aware joint fine-tuning: unfreeze the separator and train it with the classifier "
        "on separation_loss_weight * PIT neg-SI-SDR + classifier_loss_weight * classifier loss "
        "(no stream cache; mixtures and reference sources are read per batch)",
    )
    separation_loss_weight: float = _opt(
        1.0, "joint mode: weight of the PIT negative SI-SDR (dB) of the separated streams"
    )
    classifier_loss_weight: float = _opt(
        1.0, "joint mode: weight of the classifier's cross-entropy on the PIT-assigned streams"
    )
    separator_lr: float = _opt(
        1e-5, "joint mode: AdamW peak learning rate of the separator (its own parameter group)"
    )
    separator_segment_seconds: float | None = _opt(
        None,
        "joint mode: random crop of each training mixture, in seconds, so a batch fits "
        "(validation: a fixed crop); None: the classifier's input length (64,600 samples for "
        "AASIST/SSL_W2V) or --max-seconds",
    )
    # bookkeeping
    checkpoint_every_steps: int | None = _opt(
        None, "also checkpoint every N optimizer steps (always at the end of each epoch)"
    )
    keep_checkpoints: int = _opt(2, "number of most recent checkpoints kept")
    resume: bool = _opt(
        True, "continue from the last complete checkpoint in --output-dir when there is one"
    )
    log_with: str = _opt(
        "auto",
        "trackers: auto = TensorBoard, plus W&B when wandb is installed and WANDB_MODE or "
        "WANDB_API_KEY is set",
        choices=LOG_WITH_CHOICES,
    )
    log_every_steps: int = _opt(10, "log the training loss every N optimizer steps")
    eval_batch_size: int = _opt(8, "mixtures per validation batch")
    validate_first: bool = _opt(
        False,
        "validate the classifier before training too (a history row with epoch 0): the "
        "baseline the epochs are compared with; best/ is then the best of epochs 0..N",
    )
    throttle_seconds: float = _opt(
        0.0, "sleep after each optimizer step (testing aid for kill/resume; leave at 0)"
    )

    def __post_init__(self) -> None:
        self.class_weights = normalize_class_weights(self.class_weights)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option and the problem."""

        def bad(name: str, problem: str) -> ValueError:
            return ValueError(f"TrainerConfig.{name}: {problem}")

        if self.freeze not in FREEZE_CHOICES:
            raise bad("freeze", f"{self.freeze!r} is not one of {FREEZE_CHOICES}")
        if self.assignment not in ASSIGNMENT_CHOICES:
            raise bad("assignment", f"{self.assignment!r} is not one of {ASSIGNMENT_CHOICES}")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise bad(
                "mixed_precision", f"{self.mixed_precision!r} not in {MIXED_PRECISION_CHOICES}"
            )
        if self.cache_dtype not in CACHE_DTYPE_CHOICES:
            raise bad("cache_dtype", f"{self.cache_dtype!r} is not one of {CACHE_DTYPE_CHOICES}")
        if self.log_with not in LOG_WITH_CHOICES:
            raise bad("log_with", f"{self.log_with!r} is not one of {LOG_WITH_CHOICES}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise bad("data_fraction", f"must be in (0, 1], got {self.data_fraction}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise bad("val_fraction", f"must be in [0, 1), got {self.val_fraction}")
        for name in ("epochs", "batch_size", "grad_accum_steps", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise bad(name, f"must be >= 1, got {getattr(self, name)}")
        if self.bucket_size < 1:
            raise bad("bucket_size", f"must be >= 1, got {self.bucket_size}")
        if self.learning_rate <= 0:
            raise bad("learning_rate", f"must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise bad("warmup_ratio", f"must be in [0, 1], got {self.warmup_ratio}")
        if self.max_grad_norm < 0:
            raise bad("max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise bad("max_seconds", f"must be > 0 or None, got {self.max_seconds}")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise bad("checkpoint_every_steps", "must be >= 1 or None")
        if self.keep_checkpoints < 1:
            raise bad("keep_checkpoints", f"must be >= 1, got {self.keep_checkpoints}")
        if not 0.0 <= self.augment_prob <= 1.0:
            raise bad("augment_prob", f"must be in [0, 1], got {self.augment_prob}")
        from ..augment.chain import parse_augment_spec

        try:
            steps = {name for name, _ in parse_augment_spec(self.augment)}
        except ValueError as error:
            raise bad("augment", str(error)) from None
        stray = sorted(set(self.augment_options) - steps)
        if stray:
            raise bad("augment_options", f"options for steps not in --augment: {stray}")
        for name in ("separation_loss_weight", "classifier_loss_weight"):
            value = getattr(self, name)
            if not value >= 0 or not math.isfinite(value):  # also refuses NaN
                raise bad(name, f"must be a finite number >= 0, got {value}")
        if self.joint and self.separation_loss_weight == 0 and self.classifier_loss_weight == 0:
            raise bad(
                "separation_loss_weight",
                "and classifier_loss_weight are both 0: joint training would train nothing",
            )
        if not self.separator_lr > 0:
            raise bad("separator_lr", f"must be > 0, got {self.separator_lr}")
        if self.separator_segment_seconds is not None and not self.separator_segment_seconds > 0:
            value = self.separator_segment_seconds
            raise bad("separator_segment_seconds", f"must be > 0 or None, got {value}")
        if self.joint and self.augment:
            raise bad("augment", "is not available with joint (it acts on cached streams)")
        if len(self.adam_betas) != 2:
            raise bad("adam_betas", f"need two values, got {self.adam_betas}")
        if self.train_layers is not None:
            from .freezing import parse_layer_spec

            parse_layer_spec(self.train_layers, n_layers=None)  # syntax check

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainerConfig: unknown options {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainerConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read the trainer config ({error})") from error
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainerConfig:
        return dataclasses.replace(self, **changes)

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.output_dir) / "stream_cache"


def normalize_class_weights(value: Any) -> list[float] | str | dict[str, float] | None:
    """The stored form of ``class_weights``: ``None``, ``"balanced"``, a list of floats (class
    index order) or ``{"bonafide": w, "spoof": w}``.

    Accepts those, and their command-line spellings: ``["balanced"]``,
    ``["spoof=0.1", "bonafide=0.9"]`` (any label spelling :func:`amongus.labels.normalize_label`
    reads, e.g. ``fake``/``real``), ``"spoof=0.1,bonafide=0.9"``, ``["0.1", "0.9"]``.

    Raises:
        ValueError: ``TrainerConfig.class_weights: ...`` naming the problem.
    """
    from ..labels import normalize_label

    def bad(problem: str) -> ValueError:
        return ValueError(f"TrainerConfig.class_weights: {problem}")

    if value is None:
        return None
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(value)
        if len(items) == 1 and isinstance(items[0], str) and items[0].strip() in CLASS_WEIGHT_MODES:
            return items[0].strip()
        if all(isinstance(item, str) and "=" in item for item in items) and items:
            pairs = [tuple(item.split("=", 1)) for item in items]
        else:
            try:
                weights = [float(item) for item in items]
            except (TypeError, ValueError):
                raise bad(
                    f"{value!r}: give numbers (class-index order), 'balanced', or label=weight "
                    "pairs such as 'spoof=0.1 bonafide=0.9'"
                ) from None
            if len(weights) < 2 or any(w < 0 or w != w for w in weights) or not any(weights):
                raise bad(f"need >= 2 non-negative weights, not all zero, got {weights}")
            return weights
    else:
        raise bad(f"cannot read {value!r}")
    weights_by_label: dict[str, float] = {}
    for label, weight in pairs:
        try:
            name = normalize_label(str(label))
        except ValueError as error:
            raise bad(str(error)) from None
        if name in weights_by_label:
            raise bad(f"{name!r} given twice in {value!r}")
        try:
            weights_by_label[name] = float(weight)
        except (TypeError, ValueError):
            raise bad(f"{label}={weight!r}: the weight must be a number") from None
    values = list(weights_by_label.values())
    if any(w < 0 or w != w for w in values) or not any(values):
        raise bad(f"weights must be non-negative and not all zero, got {weights_by_label}")
    return weights_by_label
