"""Train a WavLM-architecture spoof classifier from scratch on clean single-speaker utterances.

The model is ``transformers.WavLMForSequenceClassification`` with a small configuration (WavLM's
convolutional front end and strides, fewer and narrower transformer layers), built by
:func:`amongus.testing.classifiers.build_tiny_classifier` and saved in the Hugging Face format
with its ``Wav2Vec2FeatureExtractor``, so ``SpoofClassifier.from_pretrained(folder)`` loads it
exactly like ``abhishtagatya/wavlm-base-960h-asv19-deepfake``.

Training: class-balanced batches (half bonafide, half spoof, drawn with replacement, so the
minority class is not swamped), random crops of ``crop_seconds``, cross-entropy, AdamW with a
linear warm-up, gradient clipping; every ``val_every`` steps the dev EER is measured and the best
model so far is written. Seeded; bounded by ``--max-steps`` and ``--max-minutes``.

Command line (``python -m amongus.recipes.train_classifier --help``)::

    python -m amongus.recipes.train_classifier --train path/to/minispoof \\
        --val path/to/minispoof --out amongus/data/models/wavlm-spoof-clean \\
        --max-minutes 20 --seed 0

**Fine-tuning any family on separated streams** (``finetune``, :func:`finetune_classifier`): the
recipe of the shipped ``wavlm-spoof-finetuned`` (mixtures of the corpus's train and dev splits,
``python -m amongus.train`` with the separator frozen), extended to every classifier family and to
the real speech of ``../shared/data/real``: mixtures of its ``train`` part are added to the
training mixtures and mixtures of its ``dev`` part to the validation mixtures (parts of
:mod:`amongus.recipes.real_speech`; the ``eval`` part is never read). What trains per family is
:data:`FAMILY_RECIPES`; the class weights are SSL_Anti-spoofing's (:data:`RECIPE_CLASS_WEIGHTS`);
training streams get RawBoost (algorithms 1 and 2) with probability 0.5::

    python -m amongus.recipes.train_classifier finetune --classifier aasist \\
        --corpus path/to/minispoof --real-speech auto --out runs/aasist-finetuned
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import BONAFIDE, BONAFIDE_INDEX, SPOOF, SPOOF_INDEX
from ._cli import command_line, start_recipe_run
from .model_cards import portable_data
from .training_data import (
    LoadedUtterance,
    TimeBudget,
    describe_sources,
    load_train_val,
    seed_everything,
    write_json,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ID2LABEL = {BONAFIDE_INDEX: BONAFIDE, SPOOF_INDEX: SPOOF}

#: WavLMConfig sizes on top of ``tiny_wavlm_config_kwargs``; "small" is what the package ships.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2),
    "small": dict(
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        # WavLM's seven strided convolutions, narrow where the frame rate is high: on CPU the
        # front end, not the transformer, dominates the cost of a training step.
        conv_dim=(16, 32, 32, 64, 64, 64, 64),
        hidden_dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.0,
        final_dropout=0.1,
        mask_time_prob=0.05,
        mask_time_length=5,
    ),
}


@dataclass
class ClassifierTrainingConfig:
    """Everything that decides a classifier training run (written to ``training_log.json``)."""

    out_dir: str
    train_sources: list[str]
    val_sources: list[str] = field(default_factory=list)
    train_split: str = "train"
    val_split: str = "dev"
    size: str = "small"
    config_overrides: dict[str, Any] = field(default_factory=dict)
    crop_seconds: float = 3.0
    val_seconds: float = 6.0
    batch_size: int = 12
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    clip_grad_norm: float = 1.0
    max_steps: int = 100_000
    max_minutes: float | None = None
    val_every: int = 100
    max_utterance_seconds: float = 12.0
    seed: int = 0
    threads: int | None = 2

    def validate(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {self.size!r}")
        if not self.train_sources:
            raise ValueError("no training sources given")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 2 (balanced), got {self.batch_size}")
        for name in ("crop_seconds", "val_seconds", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def equal_error_rate(bonafide_scores: np.ndarray, spoof_scores: np.ndarray) -> float:
    """EER for validation (higher score = bonafide), from scikit-learn's ROC points.

    The reported results use :func:`amongus.metrics.eer` (the ASVspoof algorithm); this is a
    dependency-light monitor used to pick the best checkpoint.
    """
    from sklearn.metrics import roc_curve

    labels = np.r_[np.ones(len(bonafide_scores)), np.zeros(len(spoof_scores))]
    fpr, tpr, _ = roc_curve(labels, np.r_[bonafide_scores, spoof_scores])
    fnr = 1 - tpr
    index = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[index] + fnr[index]) / 2)


def random_crop(audio: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n_samples`` window (the whole clip when it is shorter). Shape: ``[T] -> [T']``."""
    if audio.shape[0] <= n_samples:
        return audio
    start = int(rng.integers(audio.shape[0] - n_samples + 1))
    return audio[start : start + n_samples]


class BalancedBatches:
    """Endless class-balanced batches: ``batch_size // 2`` utterances of each class, with
    replacement, each randomly cropped and given a random gain in ``[0.1, 1]`` of full scale."""

    def __init__(self, items: Sequence[LoadedUtterance], *, crop_samples: int, seed: int):
        self.by_class = {
            index: [item for item in items if item.utterance.label == name]
            for index, name in ID2LABEL.items()
        }
        for index, members in self.by_class.items():
            if not members:
                raise ValueError(f"the training data has no {ID2LABEL[index]!r} utterances")
        self.crop_samples = crop_samples
        self.rng = np.random.default_rng(seed)

    def draw(self, batch_size: int) -> tuple[list[np.ndarray], list[int]]:
        waveforms, labels = [], []
        for _ in range(batch_size // 2):
            for index, members in self.by_class.items():
                item = members[int(self.rng.integers(len(members)))]
                clip = random_crop(item.audio, self.crop_samples, self.rng)
                peak = float(np.max(np.abs(clip))) + 1e-8
                waveforms.append(clip * np.float32(self.rng.uniform(0.1, 1.0) / peak))
                labels.append(index)
        return waveforms, labels


def build_model(config: ClassifierTrainingConfig, directory: Path):
    """Write the seeded initial model with the project's builder; return (model, extractor)."""
    from transformers import Wav2Vec2FeatureExtractor, WavLMForSequenceClassification

    from ..testing.classifiers import build_tiny_classifier

    overrides = {**SIZES[config.size], **config.config_overrides}
    hidden = overrides.pop("hidden_size")
    if "conv_dim" not in overrides:
        overrides["conv_dim"] = (hidden,) * 7
    build_tiny_classifier(
        directory, id2label=ID2LABEL, seed=config.seed, hidden_size=hidden, **overrides
    )
    model = WavLMForSequenceClassification.from_pretrained(directory)
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(directory)
    return model, extractor


def _batch_inputs(extractor, waveforms: list[np.ndarray]):
    return extractor(
        waveforms,
        sampling_rate=SAMPLE_RATE,
        padding=True,
        return_attention_mask=True,
        return_tensors="pt",
    )


def validate_classifier(model, extractor, items, *, val_samples: int, batch_size: int) -> dict:
    """Dev loss, accuracy and EER on the first ``val_samples`` of every item."""
    import torch

    model.eval()
    scores, labels, losses = [], [], []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            inputs = _batch_inputs(extractor, [item.audio[:val_samples] for item in chunk])
            target = torch.tensor([SPOOF_INDEX if i.utterance.label == SPOOF else 0 for i in chunk])
            logits = model(**inputs).logits
            losses.append(torch.nn.functional.cross_entropy(logits, target, reduction="sum").item())
            scores.append((logits[:, BONAFIDE_INDEX] - logits[:, SPOOF_INDEX]).numpy())
            labels.append(target.numpy())
    model.train()
    cm_score, label = np.concatenate(scores), np.concatenate(labels)
    predicted = np.where(cm_score > 0, BONAFIDE_INDEX, SPOOF_INDEX)
    return {
        "loss": float(np.sum(losses) / len(items)),
        "accuracy": float(np.mean(predicted == label)),
        "eer": equal_error_rate(cm_score[label == BONAFIDE_INDEX], cm_score[label == SPOOF_INDEX]),
    }


def train_classifier(config: ClassifierTrainingConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train the classifier; the best dev-EER model is saved (HF format) in ``out_dir``.

    Returns the training log (also written to ``out_dir/training_log.json``).
    """
    import torch
    from tqdm import tqdm

    config.validate()
    budget = TimeBudget(config.max_minutes)
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_items, val_items = load_train_val(
        config, sample_rate=SAMPLE_RATE, min_seconds=0.3, val_max_seconds=config.val_seconds
    )
    counts = {
        name: sum(i.utterance.label == name for i in train_items) for name in ID2LABEL.values()
    }
    logger.info("training utterances per class: %s; validation: %d", counts, len(val_items))
    model, extractor = build_model(config, out_dir)
    model.train()
    batches = BalancedBatches(
        train_items, crop_samples=int(config.crop_seconds * SAMPLE_RATE), seed=config.seed
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, config.warmup_steps))
    )
    val_options = dict(val_samples=int(config.val_seconds * SAMPLE_RATE), batch_size=16)
    initial = validate_classifier(model, extractor, val_items, **val_options)
    history: list[dict[str, Any]] = [{"step": 0, **initial, "elapsed_s": 0.0}]
    best = {"step": 0, **initial}
    best_state = copy.deepcopy(model.state_dict())
    running, n_running, step, stop_reason = 0.0, 0, 0, "max_steps"
    bar = tqdm(total=config.max_steps, desc="train classifier", disable=not progress)
    while step < config.max_steps:
        if budget.expired():
            stop_reason = "max_minutes"
            break
        waveforms, labels = batches.draw(config.batch_size)
        inputs = _batch_inputs(extractor, waveforms)
        logits = model(**inputs).logits
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: non-finite loss; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        running += loss.item()
        n_running += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % config.val_every == 0:
            metrics = validate_classifier(model, extractor, val_items, **val_options)
            record = {
                "step": step,
                "train_loss": running / n_running,
                **metrics,
                "elapsed_s": round(budget.elapsed, 1),
            }
            history.append(record)
            logger.info("validation %s", record)
            running, n_running = 0.0, 0
            if (metrics["eer"], metrics["loss"]) < (best["eer"], best["loss"]):
                best = {"step": step, **metrics}
                best_state = copy.deepcopy(model.state_dict())
                model.save_pretrained(out_dir)
    bar.close()
    final = validate_classifier(model, extractor, val_items, **val_options)
    if (final["eer"], final["loss"]) < (best["eer"], best["loss"]):
        best = {"step": step, **final}
        best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    model.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)
    log = {
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": step,
        "stop_reason": stop_reason,
        "wall_seconds": round(budget.elapsed, 1),
        "class_counts": counts,
        "best": best,
        "initial": initial,
        "history": history,
        "train_data": describe_sources(train_items, SAMPLE_RATE),
        "val_data": describe_sources(val_items, SAMPLE_RATE),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # shipped next to the weights: no folder of this machine in it (corpus -> placeholder)
    write_json(out_dir / "training_log.json", portable_data(log))
    return log


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.train_classifier",
        description="Train a WavLM-architecture spoof classifier from scratch on clean "
        "utterances (class-balanced, seeded); save it in the Hugging Face format.",
    )
    parser.add_argument("--out", required=True, help="output folder (Hugging Face format)")
    parser.add_argument(
        "--train",
        action="append",
        required=True,
        help="training source (repeatable): corpus root / JSONL / CSV manifest",
    )
    parser.add_argument("--val", action="append", default=[], help="validation source(s)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="dev")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--crop-seconds", type=float, default=3.0)
    parser.add_argument(
        "--val-seconds", type=float, default=6.0, help="validation: first seconds of each file"
    )
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["finetune"]:
        return finetune_main(arguments[1:])
    args = build_parser().parse_args(argv)
    start_recipe_run()
    config = ClassifierTrainingConfig(
        out_dir=args.out,
        train_sources=args.train,
        val_sources=args.val,
        train_split=args.train_split,
        val_split=args.val_split,
        size=args.size,
        crop_seconds=args.crop_seconds,
        val_seconds=args.val_seconds,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        val_every=args.val_every,
        seed=args.seed,
        threads=args.threads,
    )
    log = train_classifier(config, progress=not args.no_progress)
    from .model_cards import classifier_card, write_card

    command = command_line("amongus.recipes.train_classifier", argv)
    write_card(config.out_dir, classifier_card(config.out_dir, log, command))
    best = log["best"]
    print(
        f"classifier: {log['parameters']} parameters, {log['steps']} steps in "
        f"{log['wall_seconds'] / 60:.1f} min ({log['stop_reason']}); best dev EER "
        f"{100 * best['eer']:.2f}% accuracy {100 * best['accuracy']:.1f}% (step {best['step']}) "
        f"-> {config.out_dir}"
    )
    return 0


# ---------------------------------------------------------------- fine-tuning, every family
#: The fine-tuning recipe of each classifier family: what trains (the parts are defined in
#: :mod:`amongus.training.freezing`) and the peak learning rate.
FAMILY_RECIPES: dict[str, dict[str, Any]] = {
    # the shipped wavlm-spoof-finetuned run
    "hf": {"freeze": "feature_encoder", "train_layers": None, "learning_rate": 2e-5},
    # the last two residual blocks and the graph back end; the sinc front end and the first four
    # blocks, which carry the low-level cues learnt on ASVspoof 2019, stay as published
    "aasist": {"freeze": "feature_encoder", "train_layers": "last:2", "learning_rate": 1e-4},
    # the course recipe: first and last five XLS-R layers; Tak et al. fine-tune at 1e-6
    "ssl_w2v": {
        "freeze": "feature_encoder",
        "train_layers": "first:5,last:5",
        "learning_rate": 1e-6,
    },
}
#: SSL_Anti-spoofing's cross-entropy weights ``[0.1, 0.9]`` in its class order (spoof 0,
#: bonafide 1), by name: the minority class of ASVspoof 2019 LA, bonafide, weighs 0.9.
RECIPE_CLASS_WEIGHTS: dict[str, float] = {"spoof": 0.1, "bonafide": 0.9}


@dataclass
class FineTuneConfig:
    """Everything that decides a :func:`finetune_classifier` run (saved as ``recipe.json``).

    ``None`` for ``freeze``, ``train_layers`` and ``learning_rate`` takes the family's
    :data:`FAMILY_RECIPES` entry; ``trainer_options`` are more
    :class:`amongus.training.TrainerConfig` fields.
    """

    classifier: str
    corpus: str
    out_dir: str
    separator: str | None = None  # the default preset's separator
    real_speech: str | None = "auto"  # a real-speech or split folder, "auto" or "none"
    corpus_train_mixtures: int = 160
    corpus_dev_mixtures: int = 30
    real_train_mixtures: int = 120
    real_dev_mixtures: int = 30
    max_source_seconds: float | None = 5.0
    epochs: int = 2
    batch_size: int = 4
    grad_accum_steps: int = 1
    learning_rate: float | None = None
    freeze: str | None = None
    train_layers: str | None = None
    class_weights: Any = field(default_factory=lambda: dict(RECIPE_CLASS_WEIGHTS))
    augment: str | None = "rawboost"
    seed: int = 0
    trainer_options: dict[str, Any] = field(default_factory=dict)


def default_separator() -> str:
    """The separator of ``Pipeline()``'s default preset (a folder in the package)."""
    from ..defaults import MODELS_DIR, PRESETS

    name = PRESETS["default"].separator
    return str(MODELS_DIR / name) if (MODELS_DIR / name).exists() else name


def _mix(utterances, out_dir: Path, *, n_mixtures: int, seed: int, split: str, config) -> Path:
    from ..mix import Mixer, MixerConfig

    mixer = Mixer(MixerConfig.from_preset("default", max_source_seconds=config.max_source_seconds))
    mixer.run(utterances, out_dir, n_mixtures=n_mixtures, seed=seed, workers=1, split=split)
    return out_dir / "mixtures.jsonl"


def combine_mixture_manifests(parts: dict[str, Path], out_path: Path) -> Path:
    """One manifest of several Mixer outputs: ids prefixed by the part's name, paths absolute
    (so the manifest can live anywhere)."""
    import dataclasses

    from ..manifest import write_jsonl
    from ..training.trainer import read_mixture_manifest

    combined = []
    for name, manifest in parts.items():
        for mixture in read_mixture_manifest(manifest):
            sources = [
                dataclasses.replace(source, path=str(Path(source.path).resolve()))
                for source in mixture.sources
            ]
            combined.append(
                dataclasses.replace(
                    mixture,
                    mixture_id=f"{name}-{mixture.mixture_id}",
                    path=str(Path(mixture.path).resolve()),
                    sources=sources,
                )
            )
    return write_jsonl(out_path, combined)


def finetune_classifier(config: FineTuneConfig, *, progress: bool = True):
    """Fine-tune a classifier of any family on separated streams; returns the Trainer's result.

    Steps: mixtures of the corpus's ``train`` and ``dev`` splits and, unless ``real_speech`` is
    ``"none"``, of the real-speech ``train`` and ``dev`` parts (never ``eval``) with the Mixer's
    default preset; the training and validation manifests combine them
    (``<out_dir>/mix/train.jsonl``, ``dev.jsonl``); :class:`amongus.training.Trainer` fine-tunes
    with the separator frozen. The model is ``<out_dir>/best`` (lowest validation stream EER) and
    ``<out_dir>/final``, in the family's format, loadable by ``load_classifier``.

    Raises:
        ValueError: bad options, or data that cannot be mixed.
        amongus.recipes.real_speech.RealSpeechError: ``real_speech`` is not a usable folder.
    """
    from ..corpora import load_utterances
    from ..training import Trainer, TrainerConfig
    from ..training.trainer import classifier_family

    out_dir = Path(config.out_dir)
    mix_dir = out_dir / "mix"
    family = classifier_family(config.classifier, {})
    if family not in FAMILY_RECIPES:
        raise ValueError(f"{config.classifier}: cannot tell its classifier family")
    recipe = FAMILY_RECIPES[family]
    train_parts: dict[str, Path] = {}
    dev_parts: dict[str, Path] = {}
    for split, count, seed, parts in (
        ("train", config.corpus_train_mixtures, config.seed + 1, train_parts),
        ("dev", config.corpus_dev_mixtures, config.seed + 2, dev_parts),
    ):
        if count:
            utterances = load_utterances(config.corpus, split).utterances
            parts["corpus"] = _mix(
                utterances, mix_dir / f"corpus-{split}", n_mixtures=count, seed=seed,
                split=split, config=config,
            )  # fmt: skip
    real_root = None if config.real_speech in (None, "none") else config.real_speech
    if real_root is not None:
        from .real_speech import load_part, shared_real_root

        root = shared_real_root(real_root) if real_root == "auto" else Path(real_root)
        if root is None:
            raise ValueError("real_speech='auto': ../shared/data/real not found; pass 'none'")
        for part, count, seed, parts in (
            ("train", config.real_train_mixtures, config.seed + 3, train_parts),
            ("dev", config.real_dev_mixtures, config.seed + 4, dev_parts),
        ):
            if count:
                parts["real"] = _mix(
                    load_part(root, part), mix_dir / f"real-{part}", n_mixtures=count,
                    seed=seed, split=part, config=config,
                )  # fmt: skip
    if not train_parts:
        raise ValueError("no training mixtures: give corpus or real-speech training mixtures")
    train_manifest = combine_mixture_manifests(train_parts, mix_dir / "train.jsonl")
    dev_manifest = (
        combine_mixture_manifests(dev_parts, mix_dir / "dev.jsonl") if dev_parts else None
    )
    options = {
        "freeze": recipe["freeze"] if config.freeze is None else config.freeze,
        "train_layers": recipe["train_layers"]
        if config.train_layers is None
        else config.train_layers,
        "learning_rate": config.learning_rate or recipe["learning_rate"],
        "log_with": "none",
        "validate_first": True,  # the base model's row (epoch 0): what fine-tuning changed
        **config.trainer_options,
    }
    if options["train_layers"] in ("", "none"):
        options["train_layers"] = None
    trainer_config = TrainerConfig(
        train_mixtures=str(train_manifest),
        val_mixtures=None if dev_manifest is None else str(dev_manifest),
        classifier=config.classifier,
        separator=config.separator or default_separator(),
        output_dir=str(out_dir),
        epochs=config.epochs,
        batch_size=config.batch_size,
        grad_accum_steps=config.grad_accum_steps,
        class_weights=config.class_weights,
        augment=config.augment,
        seed=config.seed,
        **options,
    )
    write_json(out_dir / "recipe.json", portable_data({"family": family, **asdict(config)}))
    started = time.perf_counter()
    result = Trainer(trainer_config).train()
    logger.info("fine-tuning took %.1f min", (time.perf_counter() - started) / 60)
    return result


def build_finetune_parser() -> argparse.ArgumentParser:
    defaults = FineTuneConfig(classifier="", corpus="", out_dir="")
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.train_classifier finetune",
        description="Fine-tune a classifier of any family (Hugging Face, AASIST, SSL_W2V) on "
        "streams separated by a frozen separator: mixtures of a corpus's train/dev splits and of "
        "the real-speech train/dev parts (never its eval part). See docs/training.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--classifier", required=True, help="name, folder or weight file")
    parser.add_argument("--corpus", required=True, help="minispoof (ASVspoof layout) root")
    parser.add_argument("--out", required=True, help="run folder (model in OUT/best)")
    parser.add_argument("--separator", default=None, help="default: the default preset's")
    parser.add_argument(
        "--real-speech",
        default=defaults.real_speech,
        help="real-speech folder or split folder, 'auto' (../shared/data/real) or 'none'",
    )
    for name in (
        "corpus_train_mixtures", "corpus_dev_mixtures", "real_train_mixtures",
        "real_dev_mixtures", "epochs", "batch_size", "grad_accum_steps", "seed",
    ):  # fmt: skip
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--max-source-seconds", type=float, default=defaults.max_source_seconds)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the family's")
    parser.add_argument("--freeze", default=None, help="default: the family's")
    parser.add_argument("--train-layers", default=None, help="default: the family's; 'none'")
    parser.add_argument(
        "--class-weights",
        nargs="+",
        default=None,
        help="label=weight pairs, 'balanced' or numbers in class-index order "
        "(default: spoof=0.1 bonafide=0.9, SSL_Anti-spoofing's)",
    )
    parser.add_argument("--augment", default=defaults.augment, help="augmentation steps; 'none'")
    parser.add_argument(
        "--trainer-options", type=json.loads, default={}, help="more TrainerConfig options, JSON"
    )
    return parser


def finetune_main(argv: Sequence[str]) -> int:
    from ..training.config import normalize_class_weights

    args = build_finetune_parser().parse_args(argv)
    start_recipe_run()
    config = FineTuneConfig(
        classifier=args.classifier,
        corpus=args.corpus,
        out_dir=args.out,
        separator=args.separator,
        real_speech=args.real_speech,
        corpus_train_mixtures=args.corpus_train_mixtures,
        corpus_dev_mixtures=args.corpus_dev_mixtures,
        real_train_mixtures=args.real_train_mixtures,
        real_dev_mixtures=args.real_dev_mixtures,
        max_source_seconds=args.max_source_seconds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum_steps,
        learning_rate=args.learning_rate,
        freeze=args.freeze,
        train_layers=args.train_layers,
        class_weights=(
            dict(RECIPE_CLASS_WEIGHTS)
            if args.class_weights is None
            else normalize_class_weights(args.class_weights)
        ),
        augment=None if args.augment in ("", "none") else args.augment,
        seed=args.seed,
        trainer_options=args.trainer_options,
    )
    try:
        result = finetune_classifier(config)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    best = result.history[-1] if result.history else {}
    print(
        f"fine-tuned {config.classifier} -> {result.best_dir} (best validation metric "
        f"{result.best_metric}); last epoch: {best}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
