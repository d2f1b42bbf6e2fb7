"""Spoof-aware joint fine-tuning: the separator unfrozen and trained with the classifier.

``TrainerConfig(joint=True)`` (``python -m amongus.train --joint``) trains both models on::

    loss = separation_loss_weight * PIT neg-SI-SDR(separated streams, reference sources)
         + classifier_loss_weight * cross-entropy(classifier(PIT-assigned streams), source labels)

* **Separation loss**: utterance-level permutation-invariant training (uPIT; Kolbaek et al.,
  "Multitalker speech separation with utterance-level permutation invariant training of deep
  recurrent neural networks", IEEE/ACM TASLP 2017) of the negative scale-invariant SDR (Le Roux
  et al., "SDR - half-baked or well done?", ICASSP 2019), in dB, from Asteroid
  (``PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")``), as the separator recipe
  (:mod:`amongus.recipes.train_separator`) trains.
* **Classifier loss**: the permutation that minimises the separation loss assigns each stream
  to a reference source, whose label (bonafide/spoof) the stream is trained on, with the run's
  class weights (``assignment="signal"``); ``assignment="labels"`` uses the study's
  label-permutation loss instead (:mod:`amongus.training.losses`).
* **Streams**: the separator's raw output, reordered by PIT, rescaled by the separator's output
  scale (``apply_output_scale``, the pipeline's policy, differentiable), resampled to the
  classifier's rate by :func:`amongus.audio.resample` (torchaudio's ``Resample`` on tensors,
  differentiable: an 8 kHz SepFormer learns from a 16 kHz classifier), then made into the classifier's input in torch (the
  fixed-input families' repeat-fill and crop; the Hugging Face feature extractor's per-stream
  normalisation) so the gradient reaches the separator.

**Data.** No stream cache (the streams change with the separator): every batch reads its
mixtures and renders their reference sources (:func:`amongus.mix.render.render_sources`, as
the Mixer made them) at the separator's rate, and crops a window of
``separator_segment_seconds`` (seeded by ``(seed, epoch, mixture)``; of 8 candidate windows the
one where the quietest source is loudest, so no source is absent from the crop). Every mixture
is checked once before training (:mod:`amongus.validation`); refused ones (unreadable, silent,
a reference source that cannot be rendered, a number of sources unlike the separator's
``n_src``) are skipped and counted with their reason in ``data_report.json``.

**Validation** after every epoch (and before training with ``validate_first``) on fixed crops of
the validation mixtures: the classifier metrics of the cached-stream Trainer
(:func:`amongus.training.validation.validation_metrics`) plus the separator's ``val_si_sdr`` and
``val_si_sdri`` (dB, improvement over the unprocessed mixture). ``best/`` is chosen by
validation EER, as without ``joint``.

**Output** (besides what the Trainer always writes)::

    <output_dir>/separator/         the separator of best/, in its published format
    <output_dir>/final-separator/   the separator after the last epoch
    <output_dir>/checkpoints/step-N/{model/, separator/, training_state.pt, trainer_state.json}

so ``Pipeline(separator="<out>/separator", classifier="<out>/best")`` loads the pair. The
separator is saved as it was published: an Asteroid package (``pytorch_model.bin``) for
ConvTasNet and other Asteroid models, SpeechBrain's layout (``hyperparams.yaml`` and
``encoder/masknet/decoder.ckpt``) for SepFormer.

**Resume**: a checkpoint (every epoch end and every ``checkpoint_every_steps``) holds both
models, the optimizer (both parameter groups) and the scheduler. The data order, the crops and
the per-step seeds are functions of ``(seed, epoch, step)``, so rerunning the same command
continues from the last checkpoint to the weights an uninterrupted run reaches.

Joint mode runs in one process (CPU or one GPU, float32): it does not use ``accelerate launch``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

TRAINING_STATE_FILE = "training_state.pt"
SEPARATOR_DIR = "separator"
FINAL_SEPARATOR_DIR = "final-separator"
CROP_CANDIDATES = 8


# --------------------------------------------------------------------------- the separator
@dataclass
class TrainableSeparator:
    """A loaded model separator opened for training.

    ``module`` holds every parameter; ``forward`` maps ``[B, T]`` mixtures at ``sample_rate``
    to the raw ``[B, n_src, T]`` streams (no output scale); ``save(folder)`` writes the model in
    its published format.
    """

    separator: Any
    module: torch.nn.Module
    kind: str  # "asteroid" or "sepformer"
    hparams_text: str | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.separator.sample_rate)

    @property
    def n_src(self) -> int:
        return int(self.separator.n_src)

    @property
    def output_scale(self) -> str:
        return str(getattr(self.separator, "output_scale", "none"))

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        if self.kind == "asteroid":
            return self.module(mixture)
        # SpeechBrain's SepformerSeparation.separate_batch, with gradients, in [B, S, T]
        encoded = self.module["encoder"](mixture)
        masks = self.module["masknet"](encoded)
        streams = torch.stack(
            [self.module["decoder"](encoded * masks[i]) for i in range(self.n_src)], dim=1
        )
        n_samples = mixture.shape[-1]
        if streams.shape[-1] < n_samples:
            streams = torch.nn.functional.pad(streams, (0, n_samples - streams.shape[-1]))
        return streams[..., :n_samples]

    def save(self, folder: str | Path) -> Path:
        """Write the separator in its published format into ``folder`` (replaced atomically)."""
        from ..testing.separators import save_asteroid_model, save_sepformer

        folder = Path(folder)
        tmp = folder.with_name(f".tmp-{folder.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            if self.kind == "asteroid":
                save_asteroid_model(self.module, tmp / "pytorch_model.bin")
            else:
                save_sepformer(tmp, self.hparams_text or "", dict(self.module.items()))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = folder.with_name(f".old-{folder.name}")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder


def trainable_separator(separator) -> TrainableSeparator:
    """Open a loaded ConvTasNet/Asteroid or SepFormer separator for training.

    Its parameters get ``requires_grad=True`` and its modules are put in train mode.

    Raises:
        ValueError: the separator has no trainable model (oracle, passthrough, a custom one).
    """
    from ..separation.convtasnet import ConvTasNetSeparator
    from ..separation.sepformer import SepformerSeparator, resolve_sepformer_folder

    if isinstance(separator, ConvTasNetSeparator):
        opened = TrainableSeparator(separator, separator.model, "asteroid")
    elif isinstance(separator, SepformerSeparator):
        mods = separator.model.mods
        module = torch.nn.ModuleDict(
            {name: mods[name] for name in ("encoder", "masknet", "decoder")}
        )
        folder = resolve_sepformer_folder(separator.source)
        text = (folder / "hyperparams.yaml").read_text(encoding="utf-8-sig")
        opened = TrainableSeparator(separator, module, "sepformer", hparams_text=text)
    else:
        raise ValueError(
            f"TrainerConfig.joint: the separator {getattr(separator, 'identity', separator)!r} "
            "has no trainable model; joint training needs a ConvTasNet/Asteroid or SepFormer "
            "separator (e.g. --separator convtasnet or a checkpoint folder)"
        )
    opened.module.requires_grad_(True)
    opened.module.train()
    return opened


# --------------------------------------------------------------------------- data
def choose_window(sources: np.ndarray, size: int, rng: np.random.Generator | None) -> int:
    """Start of a ``size``-sample window of ``sources [S, T]`` in which every source is present.

    Of ``CROP_CANDIDATES`` starts (random with ``rng``, evenly spaced without), the one whose
    quietest source has the most energy: a source absent from the window would make its SI-SDR
    target silent.
    """
    n_samples = sources.shape[-1]
    if n_samples <= size:
        return 0
    spare = n_samples - size
    if rng is None:
        starts = np.linspace(0, spare, CROP_CANDIDATES).round().astype(int)
    else:
        starts = rng.integers(0, spare + 1, size=CROP_CANDIDATES)
    energy = np.square(sources, dtype=np.float64).cumsum(axis=-1)
    energy = np.concatenate([np.zeros((sources.shape[0], 1)), energy], axis=-1)
    quietest = [float((energy[:, s + size] - energy[:, s]).min()) for s in starts]
    return int(starts[int(np.argmax(quietest))])


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(key) & 0xFFFFFFFF for key in keys])


def load_mixture_and_sources(mixture, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A mixture's audio ``[T]`` and its reference sources ``[S, T]`` at ``sample_rate``.

    Raises:
        amongus.audio.AudioError: the mixture or a source is refused by the validation policy
            or unreadable (names the file).
    """
    from ..audio import resample
    from ..mix.render import render_references
    from ..validation import load_mixture_audio

    audio, rate = load_mixture_audio(mixture)
    sources = render_references(mixture, rate)
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
        sources = resample(sources, rate, sample_rate)
    sources = sources[:, : audio.shape[0]]
    if sources.shape[-1] < audio.shape[0]:
        sources = np.pad(sources, ((0, 0), (0, audio.shape[0] - sources.shape[-1])))
    return np.asarray(audio, np.float32), np.asarray(sources, np.float32)


def check_mixtures(mixtures: Sequence, *, n_src: int, sample_rate: int):
    """Mixtures usable for joint training, and ``(mixture_id, path, reason)`` of the others.

    Reads every mixture and renders its sources once (the validation policy's checks, plus the
    number of sources the separator returns).
    """
    from ..audio import AudioError

    usable, skipped = [], []
    for mixture in mixtures:
        if len(mixture.sources) != n_src:
            skipped.append(
                (
                    mixture.mixture_id,
                    str(mixture.path),
                    f"n_sources_{len(mixture.sources)}_not_{n_src}",
                )
            )
            continue
        try:
            _, sources = load_mixture_and_sources(mixture, sample_rate)
        except (AudioError, OSError, ValueError) as error:
            problem = str(getattr(error, "problem", error))
            code = getattr(error, "reason", None) or (
                "reference_source" if problem.startswith("reference source") else "unreadable"
            )
            skipped.append((mixture.mixture_id, str(mixture.path), f"{code}: {error}"))
            continue
        if not np.isfinite(sources).all():
            skipped.append((mixture.mixture_id, str(mixture.path), "non_finite_source"))
            continue
        usable.append(mixture)
    return usable, skipped


class JointMixtureDataset(torch.utils.data.Dataset):
    """Mixture ``i`` cropped, with its reference sources and their labels.

    Indexed by ``(epoch, i)`` (what :class:`~amongus.training.data.BucketBatchSampler` yields)
    or ``i``; training crops are seeded by ``(seed, epoch, i)``, validation crops are fixed.
    Items: ``mixture [T]``, ``sources [S, T]`` at ``sample_rate``, ``labels [S]`` (class
    indices), ``index``.
    """

    def __init__(
        self,
        mixtures: Sequence,
        *,
        sample_rate: int,
        segment_samples: int,
        label_to_index: dict[str, int],
        seed: int,
        random_crop: bool,
    ):
        self.mixtures = list(mixtures)
        self.sample_rate = int(sample_rate)
        self.segment_samples = int(segment_samples)
        self.label_to_index = label_to_index
        self.seed = int(seed)
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.mixtures)

    def lengths(self) -> list[int]:
        return [self.segment_samples] * len(self.mixtures)

    def label_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for mixture in self.mixtures:
            for label in mixture.source_labels:
                counts[label] = counts.get(label, 0) + 1
        return counts

    def __getitem__(self, key) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        mixture = self.mixtures[index]
        audio, sources = load_mixture_and_sources(mixture, self.sample_rate)
        rng = _rng(self.seed, 11, epoch, index) if self.random_crop else None
        start = choose_window(sources, self.segment_samples, rng)
        stop = start + self.segment_samples
        return {
            "index": index,
            "mixture": torch.from_numpy(audio[start:stop].copy()),
            "sources": torch.from_numpy(sources[:, start:stop].copy()),
            "labels": [self.label_to_index[label] for label in mixture.source_labels],
        }


def collate_mixtures(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items, all cut to the shortest one's length (no padding for SI-SDR to score).

    Returns ``mixture [B, T]``, ``sources [B, S, T]``, ``labels [B * S]`` (source order),
    ``index [B]``.
    """
    length = min(item["mixture"].shape[-1] for item in items)
    return {
        "mixture": torch.stack([item["mixture"][:length] for item in items]),
        "sources": torch.stack([item["sources"][:, :length] for item in items]),
        "labels": torch.tensor([label for item in items for label in item["labels"]]),
        "index": torch.tensor([item["index"] for item in items]),
    }


# --------------------------------------------------------------------------- the loss
def classifier_inputs(classifier, streams: torch.Tensor) -> dict[str, torch.Tensor]:
    """The classifier's model input for ``[N, T]`` streams, differentiably.

    The same operations as ``classifier.prepare`` on numpy arrays: fixed-input families
    (AASIST, SSL_W2V) repeat a short stream to ``segment_samples`` and crop a long one at their
    crop position; Hugging Face models pad to the receptive field and, when the feature
    extractor has ``do_normalize``, normalise each stream to zero mean and unit variance
    (``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``: variance + 1e-7).
    """
    n_samples = streams.shape[-1]
    segment = getattr(classifier, "segment_samples", None)
    if segment is not None:
        segment = int(segment)
        if n_samples < segment:
            streams = streams.repeat(1, math.ceil(segment / max(n_samples, 1)))[:, :segment]
        elif n_samples > segment:
            policy = getattr(classifier, "policy", None)
            start = 0
            if getattr(policy, "crop_position", "start") == "center":
                start = (n_samples - segment) // 2
            streams = streams[:, start : start + segment]
    else:
        minimum = int(getattr(classifier, "min_samples", 0) or 0)
        if n_samples < minimum:
            streams = torch.nn.functional.pad(streams, (0, minimum - n_samples))
        extractor = getattr(classifier, "feature_extractor", None)
        if getattr(extractor, "do_normalize", False):
            mean = streams.mean(dim=-1, keepdim=True)
            variance = streams.var(dim=-1, unbiased=False, keepdim=True)
            streams = (streams - mean) / torch.sqrt(variance + 1e-7)
    return {
        "input_values": streams,
        "attention_mask": torch.ones(streams.shape, dtype=torch.long, device=streams.device),
    }


def accept_graph_inputs(model) -> None:
    """Let Hugging Face feature encoders take an input that is already part of a graph.

    A trainable ``Wav2Vec2``/``WavLM`` feature encoder sets ``requires_grad`` on its input
    (``_requires_grad``), which torch refuses for a non-leaf tensor such as separated streams.
    The input needs no such flag here (it requires grad already); the parameters train as
    before.
    """
    for module in model.modules():
        if getattr(module, "_requires_grad", False) is True:
            module._requires_grad = False


@dataclass
class JointOutput:
    """One joint forward: the weighted loss, its two parts, the assigned streams' logits."""

    loss: torch.Tensor
    separation_loss: torch.Tensor  # mean PIT negative SI-SDR, dB
    classifier_loss: torch.Tensor
    logits: torch.Tensor  # [B * S, C], stream s of mixture b assigned to source s
    streams: torch.Tensor  # [B, S, T] raw separated streams in source order


def joint_forward(
    separator: TrainableSeparator,
    classifier,
    model,
    batch: dict[str, torch.Tensor],
    *,
    separation_weight: float,
    classifier_weight: float,
    class_weights: torch.Tensor | None = None,
    assignment: str = "signal",
    use_mask: bool | None = None,
) -> JointOutput:
    """Separate, assign streams by PIT, classify them; the weighted loss.

    ``loss = separation_weight * PIT neg-SI-SDR + classifier_weight * CE``. Both parts are
    always computed (and returned) so that a run logs them whatever the weights.

    Shape: ``batch["mixture"] [B, T], batch["sources"] [B, S, T]`` at the separator's rate,
    ``batch["labels"] [B * S]``.
    """
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    from ..audio import resample
    from ..separation.scale import apply_output_scale
    from .losses import assigned_loss, permutation_loss

    device = next(separator.module.parameters()).device
    mixture = batch["mixture"].to(device)
    sources = batch["sources"].to(device)
    labels = batch["labels"].to(device)
    estimates = separator.forward(mixture)
    pit = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    separation_loss, ordered = pit(estimates, sources, return_est=True)
    streams = apply_output_scale(ordered, mixture, separator.output_scale)
    n_batch, n_src, n_samples = streams.shape
    flat = streams.reshape(n_batch * n_src, n_samples)
    # amongus.audio.resample on a tensor is torchaudio's Resample: differentiable
    flat = resample(flat, separator.sample_rate, classifier.sample_rate)
    inputs = classifier_inputs(classifier, flat)
    accept_graph_inputs(model)
    model_device = next(model.parameters()).device
    if use_mask is None:
        use_mask = bool(getattr(classifier, "uses_attention_mask", True))
    if not use_mask:
        inputs.pop("attention_mask")
    logits = model(**{k: v.to(model_device) for k, v in inputs.items()}).logits
    if assignment == "labels":
        group_sizes = torch.full((n_batch,), n_src, dtype=torch.long)
        classifier_loss = permutation_loss(
            logits, labels.to(model_device), group_sizes, class_weights=class_weights
        )
    else:
        classifier_loss = assigned_loss(
            logits, labels.to(model_device), class_weights=class_weights
        )
    loss = separation_weight * separation_loss + classifier_weight * classifier_loss.to(device)
    return JointOutput(loss, separation_loss, classifier_loss, logits, ordered)


# --------------------------------------------------------------------------- the loop
def train_joint(trainer):
    """Run (or resume) joint training for ``trainer`` (a :class:`~amongus.training.Trainer`
    whose config has ``joint=True``); returns its :class:`~amongus.training.trainer.TrainResult`.

    Raises:
        ValueError: no usable training mixture, a separator without a trainable model, a
            checkpoint made with other data or batch options, a non-finite loss, several
            processes.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from .checkpoint import latest_checkpoint, read_trainer_state, save_folder_checkpoint
    from .data import BucketBatchSampler, label_to_index_map
    from .freezing import apply_freezing, count_parameters, describe_freezing, set_train_mode
    from .history import plot_history, write_history_csv
    from .losses import resolve_class_weights
    from .stream_cache import atomic_write_text
    from .trainer import (
        TrainResult,
        _format_row,
        _shared_ids,
        _step_seed,
        accumulation_group,
        data_report,
        improved_metric,
        mark_fine_tuned,
        mid_epoch_checkpoint_due,
        record_baseline,
        starts_fresh,
        warmup_updates,
    )

    config = trainer.config
    output_dir = trainer.output_dir
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "TrainerConfig.joint: joint training runs in one process; start it with python, "
            "not accelerate launch/torchrun"
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    set_seed(config.seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        output_dir / "trainer_config.json",
        json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n",
    )

    separator = trainable_separator(trainer.separator)
    classifier = trainer.classifier
    model = classifier.model
    label_to_index = label_to_index_map(classifier.spoof_index, model.config.num_labels)

    # ---- data: every mixture checked once, refusals counted with their reason
    train_mixtures, val_mixtures = trainer._mixtures()
    shared = _shared_ids(train_mixtures, val_mixtures)
    rate = separator.sample_rate
    train_usable, train_skipped = check_mixtures(
        train_mixtures, n_src=separator.n_src, sample_rate=rate
    )
    val_usable, val_skipped = check_mixtures(val_mixtures, n_src=separator.n_src, sample_rate=rate)
    report = data_report(
        (train_mixtures, val_mixtures),
        (len(train_usable), len(val_usable)),
        (train_skipped, val_skipped),
        shared,
    )
    if train_skipped or val_skipped:
        logger.warning(
            "skipped %d training and %d validation mixture(s): %s %s (see %s)",
            len(train_skipped), len(val_skipped), report["skipped_reasons"]["train"],
            report["skipped_reasons"]["val"], output_dir / "data_report.json",
        )  # fmt: skip
    if not train_usable:
        atomic_write_text(
            output_dir / "data_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n"
        )
        raise ValueError(
            f"{config.train_mixtures}: no usable training mixture for joint training: all "
            f"{len(train_mixtures)} were refused {report['skipped_reasons']['train']}"
        )

    segment_seconds = config.separator_segment_seconds
    if segment_seconds is None:
        fixed = getattr(classifier, "segment_samples", None)
        segment_seconds = (
            float(fixed) / classifier.sample_rate if fixed else (config.max_seconds or 4.0)
        )
    segment_samples = max(1, int(round(segment_seconds * rate)))
    dataset_options = dict(
        sample_rate=rate, segment_samples=segment_samples, label_to_index=label_to_index,
        seed=config.seed,
    )  # fmt: skip
    train_set = JointMixtureDataset(train_usable, random_crop=True, **dataset_options)
    val_set = JointMixtureDataset(val_usable, random_crop=False, **dataset_options)
    sampler = BucketBatchSampler(
        train_set.lengths(), batch_size=config.batch_size, seed=config.seed, bucket_size=1
    )
    val_loader = None
    if len(val_set):
        # fixed crops in a fixed order: read inline (the batches are few and small)
        val_loader = torch.utils.data.DataLoader(
            val_set, batch_size=config.eval_batch_size, shuffle=False, collate_fn=collate_mixtures
        )

    # ---- models and optimiser
    trainable = apply_freezing(model, freeze=config.freeze, train_layers=config.train_layers)
    n_trainable, n_total = count_parameters(model)
    n_separator = sum(p.numel() for p in separator.module.parameters())
    logger.info(
        "joint training: classifier %d of %d parameters (%d tensors; by part %s), separator %d "
        "parameters at %d Hz, crops of %d samples",
        n_trainable, n_total, len(trainable), describe_freezing(model), n_separator, rate,
        segment_samples,
    )  # fmt: skip
    mark_fine_tuned(classifier)
    if isinstance(getattr(classifier, "metadata", None), dict):
        classifier.metadata["fine_tuned_by"] = (
            "amongus.training.Trainer (python -m amongus.train --joint), jointly with the "
            "separator saved beside it; options in trainer_config.json, history in history.csv"
        )
    model.to(device)
    separator.module.to(device)
    classifier_parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": classifier_parameters, "lr": config.learning_rate},
            {"params": list(separator.module.parameters()), "lr": config.separator_lr},
        ],
        betas=tuple(config.adam_betas),
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )
    batches_per_epoch = len(sampler)
    updates_per_epoch = math.ceil(batches_per_epoch / config.grad_accum_steps)
    total_updates = updates_per_epoch * config.epochs
    warmup = warmup_updates(config, total_updates)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=total_updates
    )
    weights = resolve_class_weights(
        config.class_weights, label_to_index=label_to_index, label_counts=train_set.label_counts()
    )
    class_weights = None if weights is None else torch.tensor(weights, device=device)
    if weights is not None:
        report["class_weights"] = {label: weights[i] for label, i in label_to_index.items()}
    report["segment_samples"] = segment_samples
    report["separator_rate"] = rate
    trainer.data_report = report
    atomic_write_text(
        output_dir / "data_report.json", json.dumps(report, indent=2, sort_keys=True) + "\n"
    )

    # ---- resume
    checkpoints_dir = output_dir / "checkpoints"
    state: dict[str, Any] = {
        "epoch": 0, "batches_done": 0, "global_step": 0, "micro_step": 0, "loss_sum": 0.0,
        "separation_sum": 0.0, "classifier_sum": 0.0, "loss_count": 0, "best_metric": None,
        "history": [],
    }  # fmt: skip
    resumed_from = latest_checkpoint(checkpoints_dir) if config.resume else None
    if resumed_from is not None:
        saved = read_trainer_state(resumed_from)
        if saved.get("updates_per_epoch") not in (None, updates_per_epoch) or saved.get(
            "n_train"
        ) not in (None, len(train_set)):
            raise ValueError(
                f"{resumed_from}: checkpoint was made with {saved.get('n_train')} training "
                f"mixtures and {saved.get('updates_per_epoch')} updates per epoch, this run has "
                f"{len(train_set)} and {updates_per_epoch}; the data or batch options changed"
            )
        load_joint_state(resumed_from, model=model, separator=separator, optimizer=optimizer,
                         scheduler=scheduler)  # fmt: skip
        state.update({key: saved[key] for key in state if key in saved})
        logger.info(
            "resumed from %s (epoch %d, batch %d)",
            resumed_from, state["epoch"], state["batches_done"],
        )  # fmt: skip
    history: list[dict[str, Any]] = list(state["history"])

    def run_files(folder: Path) -> None:
        trainer._run_files(history)(folder)

    def write_checkpoint() -> None:
        def write(folder: Path) -> None:
            classifier.save_pretrained(folder / "model")
            separator.save(folder / SEPARATOR_DIR)
            torch.save(
                {
                    "separator": separator.module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                },
                folder / TRAINING_STATE_FILE,
            )

        save_folder_checkpoint(
            checkpoints_dir,
            global_step=state["global_step"],
            state={
                **state,
                "history": history,
                "updates_per_epoch": updates_per_epoch,
                "n_train": len(train_set),
                "config": config.to_dict(),
            },  # fmt: skip
            keep=config.keep_checkpoints,
            write=write,
        )

    use_mask = bool(getattr(classifier, "uses_attention_mask", True))
    forward_options = dict(
        separation_weight=config.separation_loss_weight,
        classifier_weight=config.classifier_loss_weight,
        class_weights=class_weights,
        assignment=config.assignment,
        use_mask=use_mask,
    )

    def validate() -> dict[str, Any]:
        if val_loader is None:
            return {}
        return validate_joint(separator, classifier, model, val_loader, **forward_options)

    def keep_if_best(metrics: dict[str, Any]) -> None:
        metric = improved_metric(metrics, state["best_metric"])
        if metric is not None:
            from .checkpoint import save_model_atomically

            state["best_metric"] = metric
            save_model_atomically(classifier, output_dir / "best", extra=run_files)
            separator.save(output_dir / SEPARATOR_DIR)

    if config.validate_first and starts_fresh(state, history) and val_loader is not None:
        metrics = validate()
        record_baseline(history, metrics, scheduler.get_last_lr()[0])
        keep_if_best(metrics)

    for epoch in range(state["epoch"], config.epochs):
        sampler.set_epoch(epoch)
        set_train_mode(model)
        separator.module.train()
        start_time, start_cpu = time.perf_counter(), time.process_time()
        skip = state["batches_done"]
        batches = sampler.batches[skip:]
        bar = tqdm(total=batches_per_epoch, initial=skip, desc=f"joint epoch {epoch + 1}/"
                   f"{config.epochs}", unit="batch")  # fmt: skip
        for batch_index, indices in enumerate(batches, start=skip):
            batch = collate_mixtures([train_set[(epoch, i)] for i in indices])
            group_size, sync = accumulation_group(
                batch_index, config.grad_accum_steps, batches_per_epoch
            )
            set_seed(_step_seed(config.seed, 0, state["micro_step"]))
            output = joint_forward(separator, classifier, model, batch, **forward_options)
            if not torch.isfinite(output.loss):
                raise ValueError(
                    f"joint training: non-finite loss at epoch {epoch + 1}, batch {batch_index} "
                    f"(separation {float(output.separation_loss)}, classifier "
                    f"{float(output.classifier_loss)}); lower --separator-lr/--learning-rate"
                )
            (output.loss / group_size).backward()
            state["micro_step"] += 1
            state["loss_sum"] += float(output.loss.detach())
            state["separation_sum"] += float(output.separation_loss.detach())
            state["classifier_sum"] += float(output.classifier_loss.detach())
            state["loss_count"] += 1
            state["batches_done"] = batch_index + 1
            bar.update(1)
            if not sync:
                continue
            if config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(
                    classifier_parameters + list(separator.module.parameters()),
                    config.max_grad_norm,
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["global_step"] += 1
            if config.throttle_seconds:
                time.sleep(config.throttle_seconds)
            if mid_epoch_checkpoint_due(config, state, batches_per_epoch):
                write_checkpoint()
        bar.close()

        count = max(state["loss_count"], 1)
        row = {
            "epoch": epoch + 1,
            "global_step": state["global_step"],
            "train_loss": state["loss_sum"] / count if state["loss_count"] else None,
            "train_separation_loss": state["separation_sum"] / count
            if state["loss_count"]
            else None,
            "train_classifier_loss": state["classifier_sum"] / count
            if state["loss_count"]
            else None,
            "epoch_seconds": time.perf_counter() - start_time,
            "epoch_cpu_seconds": time.process_time() - start_cpu,
        }
        metrics = validate()
        set_train_mode(model)
        separator.module.train()
        row.update(metrics)
        row["learning_rate"] = scheduler.get_last_lr()[0]
        row["separator_learning_rate"] = scheduler.get_last_lr()[1]
        history.append(row)
        logger.info("epoch %d: %s", epoch + 1, _format_row(row))
        keep_if_best(metrics)
        state.update(epoch=epoch + 1, batches_done=0, loss_sum=0.0, separation_sum=0.0,
                     classifier_sum=0.0, loss_count=0)  # fmt: skip
        write_checkpoint()
        write_history_csv(output_dir / "history.csv", history)
        plot_history(output_dir / "history.png", history)

    from .checkpoint import save_model_atomically

    final_dir = output_dir / "final"
    save_model_atomically(classifier, final_dir, extra=run_files)
    separator.save(output_dir / FINAL_SEPARATOR_DIR)
    if not (output_dir / SEPARATOR_DIR).exists():  # no validation: best is the last
        separator.save(output_dir / SEPARATOR_DIR)
    if history:
        write_history_csv(output_dir / "history.csv", history)
        plot_history(output_dir / "history.png", history)
    best_dir = output_dir / "best"
    return TrainResult(
        output_dir=output_dir,
        final_dir=final_dir,
        best_dir=best_dir if best_dir.exists() else None,
        best_metric=state["best_metric"],
        history=history,
        resumed_from=resumed_from,
        data_report=report,
    )


def validate_joint(
    separator: TrainableSeparator, classifier, model, val_loader, **forward_options
) -> dict[str, Any]:
    """Classifier metrics (``validation_metrics``) and the separator's ``val_si_sdr`` /
    ``val_si_sdri`` (dB) on the validation crops, both models in eval mode."""
    from asteroid.losses import pairwise_neg_sisdr

    from .validation import MixtureLogits, validation_metrics

    mixtures = val_loader.dataset.mixtures
    model.eval()
    separator.module.eval()
    records, sdr_sum, sdri_sum, count = [], 0.0, 0.0, 0
    with torch.no_grad():
        for batch in val_loader:
            output = joint_forward(separator, classifier, model, batch, **forward_options)
            sources = batch["sources"].to(output.streams.device)
            mixture = batch["mixture"].to(output.streams.device)
            estimate = -pairwise_neg_sisdr(output.streams, sources).diagonal(dim1=1, dim2=2)
            repeated = mixture.unsqueeze(1).expand_as(sources)
            baseline = -pairwise_neg_sisdr(repeated, sources).diagonal(dim1=1, dim2=2)
            sdr_sum += float(estimate.mean(dim=1).sum())
            sdri_sum += float((estimate - baseline).mean(dim=1).sum())
            count += mixture.shape[0]
            logits = output.logits.float().cpu().numpy()
            n_src = sources.shape[1]
            labels = batch["labels"].tolist()
            for position, index in enumerate(batch["index"].tolist()):
                rows = slice(position * n_src, (position + 1) * n_src)
                records.append(
                    MixtureLogits(
                        index=index,
                        logits=logits[rows],
                        labels=labels[rows],
                        source_labels=labels[rows],
                        mixture_label=mixtures[index].label,
                    )
                )
    class_weights = forward_options.get("class_weights")
    metrics = validation_metrics(
        records,
        spoof_index=classifier.spoof_index,
        assignment=forward_options.get("assignment", "signal"),
        class_weights=class_weights,
    )
    metrics["val_si_sdr"] = sdr_sum / count if count else None
    metrics["val_si_sdri"] = sdri_sum / count if count else None
    return metrics


def load_joint_state(checkpoint: Path, *, model, separator, optimizer, scheduler) -> None:
    """Put a joint checkpoint's classifier, separator, optimizer and scheduler states back.

    Raises:
        ValueError: the checkpoint is incomplete or its weights do not fit the models.
    """
    from safetensors.torch import load_file

    folder = Path(checkpoint) / "model"
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{folder}: no safetensors weights in the checkpoint")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{folder}: weights do not match the classifier (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    path = Path(checkpoint) / TRAINING_STATE_FILE
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign file: not usable
        raise ValueError(f"{path}: unreadable joint training state ({error})") from None
    try:
        separator.module.load_state_dict(saved["separator"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: does not fit this run's models ({error})") from None
