"""``Trainer``: fine-tune the spoof classifier on separated streams, the separator frozen
(or, with ``joint=True``, trained with it: :mod:`amongus.training.joint`).

Every classifier family trains (:mod:`amongus.classifiers`): Hugging Face audio classification
(WavLM...), AASIST/AASIST-L and SSL_W2V; what each family's freezing options mean is defined in
:mod:`amongus.training.freezing`. The fine-tuned model is saved in its family's format
(``save_pretrained``: a Hugging Face folder, or ``model.safetensors`` + ``config.json`` for
AASIST/SSL_W2V), loadable by :func:`amongus.classifiers.load_classifier`, with the run's
``trainer_config.json`` and ``history.csv`` beside it.

The loop, in order:

1. **Cache** (:meth:`Trainer.prepare_cache`): every training and validation mixture is separated
   once by the frozen separator and its streams, resampled to the classifier's rate, are stored
   in the :class:`~amongus.training.stream_cache.StreamCache` with their signal assignment.
2. **Epochs**: batches of cached streams (length-bucketed, padded, with attention masks;
   augmented on the fly with ``augment``) go through the classifier; AdamW, linear warm-up
   and decay, gradient accumulation, clipping and mixed precision on GPU, all through Hugging
   Face Accelerate (``accelerate launch`` runs the same code on several GPUs or nodes).
3. **Validation** after every epoch; the best model by validation EER goes to ``best/``; the
   history to ``history.csv`` / ``history.png`` and TensorBoard.
4. **Checkpoints** at every epoch end (and every ``checkpoint_every_steps``), atomic; rerunning
   the same command continues from the last one to the same final weights.

Output folder::

    <output_dir>/trainer_config.json   the config of the run
    <output_dir>/checkpoints/step-N/   resumable checkpoints (model/ in the family's format)
    <output_dir>/best/                 best model by validation EER (the family's format, with
                                       trainer_config.json and history.csv)
    <output_dir>/final/                model after the last epoch (likewise)
    <output_dir>/history.csv, history.png, logs/ (TensorBoard)
    <output_dir>/data_report.json      mixtures used, and those skipped by input validation

Bad input: a mixture refused by :mod:`amongus.validation` (silent, too short, unreadable, rate
or length unlike its record...) is skipped and counted with its reason in ``data_report.json``
and the log; a run whose training mixtures are all refused stops with a ``ValueError``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..manifest import read_mixtures
from .checkpoint import (
    latest_checkpoint,
    read_trainer_state,
    register_hf_model_hooks,
    save_checkpoint,
    save_model_atomically,
)
from .config import TrainerConfig
from .history import plot_history, write_history_csv
from .stream_cache import StreamCache, atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    final_dir: Path
    best_dir: Path | None
    best_metric: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: Path | None = None
    data_report: dict[str, Any] = field(default_factory=dict)  # as data_report.json


def resolve_mixed_precision(option: str) -> str:
    """``"auto"`` -> ``"bf16"`` on a GPU that supports it, ``"fp16"`` on other GPUs, else
    ``"no"``; explicit values are passed through (``"no"`` on CPU whatever is asked)."""
    import torch

    if not torch.cuda.is_available():
        return "no"
    if option == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return option


def resolve_trackers(option: str) -> list[str]:
    """Tracker names for Accelerate from the ``log_with`` option."""
    has_tensorboard = importlib.util.find_spec("tensorboard") is not None or (
        importlib.util.find_spec("tensorboardX") is not None
    )
    has_wandb = importlib.util.find_spec("wandb") is not None
    if option == "none":
        return []
    if option == "tensorboard":
        return ["tensorboard"] if has_tensorboard else []
    if option == "wandb":
        return ["wandb"] if has_wandb else []
    trackers = ["tensorboard"] if has_tensorboard else []
    wandb_configured = bool(os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"))
    if has_wandb and (option == "all" or wandb_configured):
        trackers.append("wandb")
    return trackers


def _step_seed(seed: int, process: int, micro_step: int) -> int:
    return (seed * 1_000_003 + process * 7_919 + micro_step * 104_729) % (2**31 - 1)


class Trainer:
    """Fine-tune a spoof classifier on separated streams with the separator frozen.

    Args:
        config: the :class:`TrainerConfig`.
        classifier: an already loaded ``SpoofClassifier`` (default: ``config.classifier``).
        separator: an already loaded separator (default: ``load_separator(config.separator)``).

    Example:
        >>> from amongus.training import Trainer, TrainerConfig  # doctest: +SKIP
        >>> result = Trainer(TrainerConfig(train_mixtures="mix/mixtures.jsonl",
        ...                                classifier="models/wavlm", separator="oracle",
        ...                                output_dir="runs/ft", epochs=2)).train()
        >>> result.best_dir
        PosixPath('runs/ft/best')
    """

    def __init__(self, config: TrainerConfig, *, classifier=None, separator=None):
        if not config.train_mixtures:
            raise ValueError("TrainerConfig.train_mixtures: a mixture manifest is required")
        if classifier is None and not config.classifier:
            raise ValueError("TrainerConfig.classifier: a classifier folder or hub id is required")
        self.config = config
        self.output_dir = Path(config.output_dir)
        self._classifier = classifier
        self._separator = separator
        self._accelerator = None
        self.cache: StreamCache | None = None
        self.fill_report = None
        self.data_report: dict[str, Any] = {}

    # ------------------------------------------------------------------ components
    @property
    def accelerator(self):
        if self._accelerator is None:
            import torch
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs

            trackers = resolve_trackers(self.config.log_with)
            self._accelerator = Accelerator(
                # without CUDA, ask for CPU explicitly so torchrun/mpirun start multi-CPU runs
                cpu=not torch.cuda.is_available(),
                mixed_precision=resolve_mixed_precision(self.config.mixed_precision),
                log_with=trackers or None,
                project_dir=str(self.output_dir),
                # WavLM's layerdrop skips whole layers in some steps: DDP must allow that.
                kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
            )
        return self._accelerator

    @property
    def classifier(self):
        if self._classifier is None:
            self._classifier = load_training_classifier(
                self.config.classifier, self.config.classifier_options
            )
        return self._classifier

    @property
    def separator(self):
        if self._separator is None:
            from ..separation import load_separator

            self._separator = load_separator(self.config.separator, **self.config.separator_options)
        return self._separator

    def _mixtures(self) -> tuple[list, list]:
        from .data import split_mixtures, subset_fraction

        config = self.config
        train = read_mixture_manifest(config.train_mixtures)
        if not train:
            raise ValueError(f"{config.train_mixtures}: no mixtures")
        if config.val_mixtures:
            val = read_mixture_manifest(config.val_mixtures)
        else:
            train, val = split_mixtures(train, val_fraction=config.val_fraction, seed=config.seed)
        train = subset_fraction(train, fraction=config.data_fraction, seed=config.seed)
        return train, val

    # ------------------------------------------------------------------ cache
    def prepare_cache(self, mixtures: list | None = None, *, progress: bool = True):
        """Separate every mixture not cached yet (once); returns the cache entries of the
        usable mixtures, in order (refused ones are in ``self.fill_report.skipped``).

        Under ``accelerate launch`` each process separates its share, then all read the lot.
        """
        from .prepare import cached_entries, fill_cache

        accelerator = self.accelerator
        if mixtures is None:
            train, val = self._mixtures()
            mixtures = train + val
        separator = self.separator
        self.cache = StreamCache(
            self.config.resolved_cache_dir,
            separator_identity=separator.identity,
            separator_rate=separator.sample_rate,
            stream_rate=self.classifier.sample_rate,
            dtype=self.config.cache_dtype,
            chunk_seconds=self.config.chunk_seconds,
        )
        _, report = fill_cache(
            self.cache,
            mixtures,
            separator,
            batch_size=self.config.separation_batch_size,
            chunk_seconds=self.config.chunk_seconds,
            shard=(accelerator.process_index, accelerator.num_processes),
            progress=progress and accelerator.is_local_main_process,
        )
        self.fill_report = report
        logger.info("%s", report)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self.cache.write_manifest()
        entries, skipped = cached_entries(self.cache, mixtures)
        report.skipped = skipped  # every shard's refusals, not only this process'
        return entries

    # ------------------------------------------------------------------ training
    def train(self) -> TrainResult:
        """Run (or resume) the training; returns where the models and history are.

        With ``config.joint`` the separator trains too (:func:`amongus.training.joint.train_joint`).
        """
        if self.config.joint:
            from .joint import train_joint

            return train_joint(self)
        import torch
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        from .data import (
            BucketBatchSampler,
            CachedStreamDataset,
            StreamCollator,
            label_to_index_map,
        )
        from .freezing import apply_freezing, count_parameters, describe_freezing, set_train_mode
        from .losses import resolve_class_weights

        config = self.config
        accelerator = self.accelerator
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        set_seed(config.seed)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if accelerator.is_main_process:
            atomic_write_text(
                self.output_dir / "trainer_config.json",
                json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n",
            )

        train_mixtures, val_mixtures = self._mixtures()
        train_entries, val_entries = self._prepare_data(train_mixtures, val_mixtures)
        classifier = self.classifier
        model = classifier.model
        label_to_index = label_to_index_map(classifier.spoof_index, model.config.num_labels)
        trainable = apply_freezing(model, freeze=config.freeze, train_layers=config.train_layers)
        n_trainable, n_total = count_parameters(model)
        logger.info(
            "training %d of %d parameters (%d tensors); by part: %s",
            n_trainable,
            n_total,
            len(trainable),
            describe_freezing(model),
        )
        mark_fine_tuned(classifier)

        segment = getattr(classifier, "segment_samples", None)
        if segment is not None:
            # fixed-input families (AASIST, SSL_W2V) train on their own segment length
            max_samples = int(segment)
        elif config.max_seconds is None:
            max_samples = None
        else:
            max_samples = int(config.max_seconds * classifier.sample_rate)
        signal = config.assignment == "signal"
        augmenter = self._augmenter(classifier.sample_rate)
        train_set = CachedStreamDataset(
            self.cache,
            train_entries,
            label_to_index=label_to_index,
            max_samples=max_samples,
            random_crop=True,
            seed=config.seed,
            require_assignment=signal,
            augmenter=augmenter,
        )
        val_set = CachedStreamDataset(
            self.cache,
            val_entries,
            label_to_index=label_to_index,
            max_samples=max_samples,
            random_crop=False,
            seed=config.seed,
            require_assignment=signal,
        )
        sampler = BucketBatchSampler(
            train_set.lengths(),
            batch_size=config.batch_size,
            seed=config.seed,
            bucket_size=config.bucket_size,
        )
        collate = StreamCollator(classifier.prepare)
        loader_options = {
            "collate_fn": collate,
            "num_workers": config.num_workers,
            "persistent_workers": config.num_workers > 0,
            # A private generator: creating a loader iterator must not draw from the global RNG.
            "generator": torch.Generator().manual_seed(config.seed),
        }
        train_loader = torch.utils.data.DataLoader(
            train_set, batch_sampler=sampler, **loader_options
        )
        val_loader = None
        if len(val_set):
            val_sampler = BucketBatchSampler(
                val_set.lengths(),
                batch_size=config.eval_batch_size,
                seed=config.seed,
                shuffle=False,
            )
            val_loader = torch.utils.data.DataLoader(
                val_set, batch_sampler=val_sampler, **loader_options
            )

        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=config.learning_rate,
            betas=tuple(config.adam_betas),
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
        )
        # Prepare the loader first: its per-process length sets the number of optimizer steps.
        train_loader = accelerator.prepare(train_loader)
        batches_per_epoch = len(train_loader)
        updates_per_epoch = math.ceil(batches_per_epoch / config.grad_accum_steps)
        total_updates = updates_per_epoch * config.epochs
        warmup = warmup_updates(config, total_updates)
        # Accelerate steps a prepared scheduler once per process per update.
        scheduler = get_linear_schedule_with_warmup(
            optimizer,
            num_warmup_steps=warmup * accelerator.num_processes,
            num_training_steps=total_updates * accelerator.num_processes,
        )
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        if val_loader is not None:
            val_loader = accelerator.prepare(val_loader)
        register_hf_model_hooks(accelerator, classifier)
        if config.class_weights is not None and isinstance(config.class_weights, list):
            if len(config.class_weights) != model_num_labels(model):
                raise ValueError(
                    f"TrainerConfig.class_weights: {len(config.class_weights)} weights for a "
                    f"{model_num_labels(model)}-class classifier ({classifier.labels})"
                )
        weights = resolve_class_weights(
            config.class_weights,
            label_to_index=label_to_index,
            label_counts=train_set.label_counts(assigned=signal),
        )
        class_weights = (
            None
            if weights is None
            else torch.tensor(weights, dtype=torch.float32, device=accelerator.device)
        )
        if weights is not None:
            by_label = {label: weights[index] for label, index in label_to_index.items()}
            logger.info("class weights %s (class-index order %s)", by_label, weights)
            self.data_report["class_weights"] = by_label
            if accelerator.is_main_process:
                atomic_write_text(
                    self.output_dir / "data_report.json",
                    json.dumps(self.data_report, indent=2, sort_keys=True) + "\n",
                )

        # ---- resume
        checkpoints_dir = self.output_dir / "checkpoints"
        state = {
            "epoch": 0,
            "batches_done": 0,
            "global_step": 0,
            "micro_step": 0,
            "loss_sum": 0.0,
            "loss_count": 0,
            "best_metric": None,
            "history": [],
        }
        resumed_from = latest_checkpoint(checkpoints_dir) if config.resume else None
        if resumed_from is not None:
            saved = read_trainer_state(resumed_from)
            if saved.get("updates_per_epoch") not in (None, updates_per_epoch):
                raise ValueError(
                    f"{resumed_from}: checkpoint was made with {saved['updates_per_epoch']} updates "
                    f"per epoch, this run has {updates_per_epoch}; the data or batch options changed"
                )
            accelerator.load_state(str(resumed_from))
            state.update({key: saved[key] for key in state if key in saved})
            sampler.load_state_dict(saved["sampler"])
            logger.info(
                "resumed from %s (epoch %d, batch %d)",
                resumed_from,
                state["epoch"],
                state["batches_done"],
            )
        if trackers_active(accelerator):
            accelerator.init_trackers("amongus-train", config=_tracker_config(config))
        history: list[dict[str, Any]] = list(state["history"])

        def checkpoint_state() -> dict[str, Any]:
            return {
                **state,
                "history": history,
                "sampler": sampler.state_dict(),
                "updates_per_epoch": updates_per_epoch,
                "config": config.to_dict(),
            }

        inputs_use_mask = bool(getattr(classifier, "uses_attention_mask", True))
        model_device = accelerator.device

        def keep_if_best(metrics: dict[str, Any]) -> None:
            metric = improved_metric(metrics, state["best_metric"])
            if metric is not None:
                state["best_metric"] = metric
                if accelerator.is_main_process:
                    save_model_atomically(
                        classifier, self.output_dir / "best", extra=self._run_files(history)
                    )

        if config.validate_first and starts_fresh(state, history) and val_loader is not None:
            # the baseline the epochs are compared with: the classifier before any update
            metrics = self._validate(
                model, val_loader, class_weights, inputs_use_mask, model_device
            )
            record_baseline(history, metrics, scheduler.get_last_lr()[0])
            keep_if_best(metrics)
        for epoch in range(state["epoch"], config.epochs):
            # Accelerate's loader re-sets its batch sampler's epoch from its own iteration count
            # when iterated; align that count with ours (it restarts at 0 after a resume).
            train_loader.set_epoch(epoch)
            sampler.set_epoch(epoch)
            set_train_mode(model)
            start_time, start_cpu = time.perf_counter(), time.process_time()
            skip = state["batches_done"]
            loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
            bar = tqdm(
                total=batches_per_epoch,
                initial=skip,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                unit="batch",
                disable=not accelerator.is_local_main_process,
            )
            for batch_index, batch in enumerate(loader, start=skip):
                group_size, sync = accumulation_group(
                    batch_index, config.grad_accum_steps, batches_per_epoch
                )
                # A seed per micro-step: dropout and masks do not depend on what ran before.
                set_seed(_step_seed(config.seed, accelerator.process_index, state["micro_step"]))
                context = contextlib.nullcontext() if sync else accelerator.no_sync(model)
                with context:
                    loss = self._batch_loss(
                        model, batch, class_weights, inputs_use_mask, model_device
                    )
                    accelerator.backward(loss / group_size)
                state["micro_step"] += 1
                state["loss_sum"] += float(loss.detach())
                state["loss_count"] += 1
                state["batches_done"] = batch_index + 1
                bar.update(1)
                if not sync:
                    continue
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["global_step"] += 1
                if state["global_step"] % config.log_every_steps == 0:
                    accelerator.log(
                        {
                            "train/loss": float(loss.detach()),
                            "train/lr": scheduler.get_last_lr()[0],
                        },
                        step=state["global_step"],
                    )
                if config.throttle_seconds:
                    time.sleep(config.throttle_seconds)
                if mid_epoch_checkpoint_due(config, state, batches_per_epoch):
                    save_checkpoint(
                        accelerator,
                        checkpoints_dir,
                        global_step=state["global_step"],
                        state=checkpoint_state(),
                        keep=config.keep_checkpoints,
                    )
            bar.close()

            # ---- end of epoch: validate, record, keep the best, checkpoint
            epoch_seconds = time.perf_counter() - start_time
            epoch_cpu_seconds = time.process_time() - start_cpu
            train_loss = _mean_across(accelerator, state["loss_sum"], state["loss_count"])
            metrics = self._validate(
                model, val_loader, class_weights, inputs_use_mask, model_device
            )
            row = {
                "epoch": epoch + 1,
                "global_step": state["global_step"],
                "train_loss": train_loss,
                **metrics,
                "learning_rate": scheduler.get_last_lr()[0],
                "epoch_seconds": epoch_seconds,  # the training pass (validation not included)
                "epoch_cpu_seconds": epoch_cpu_seconds,
            }
            history.append(row)
            logger.info("epoch %d: %s", epoch + 1, _format_row(row))
            accelerator.log(
                {f"epoch/{k}": v for k, v in row.items() if isinstance(v, int | float)},
                step=state["global_step"],
            )
            keep_if_best(metrics)
            state.update(epoch=epoch + 1, batches_done=0, loss_sum=0.0, loss_count=0)
            save_checkpoint(
                accelerator,
                checkpoints_dir,
                global_step=state["global_step"],
                state=checkpoint_state(),
                keep=config.keep_checkpoints,
            )
            if accelerator.is_main_process:
                write_history_csv(self.output_dir / "history.csv", history)
                plot_history(self.output_dir / "history.png", history)

        final_dir = self.output_dir / "final"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            save_model_atomically(classifier, final_dir, extra=self._run_files(history))
            if history:
                write_history_csv(self.output_dir / "history.csv", history)
                plot_history(self.output_dir / "history.png", history)
        accelerator.end_training()
        best_dir = self.output_dir / "best"
        return TrainResult(
            output_dir=self.output_dir,
            final_dir=final_dir,
            best_dir=best_dir if best_dir.exists() else None,
            best_metric=state["best_metric"],
            history=history,
            resumed_from=resumed_from,
            data_report=self.data_report,
        )

    def _run_files(self, history: list[dict[str, Any]]):
        """Writes the run's config and history beside a saved model."""
        config = self.config.to_dict()

        def write(folder: Path) -> None:
            atomic_write_text(
                folder / "trainer_config.json", json.dumps(config, indent=2, sort_keys=True) + "\n"
            )
            if history:
                write_history_csv(folder / "history.csv", history)

        return write

    def _augmenter(self, sample_rate: int):
        """The training streams' augmentation chain (``None`` without ``augment``)."""
        from ..augment import Augmenter

        augmenter = Augmenter.from_spec(
            self.config.augment,
            sample_rate=sample_rate,
            probability=self.config.augment_prob,
            options=self.config.augment_options,
        )
        if not augmenter:
            return None
        logger.info("augmenting training streams: %s", augmenter.describe())
        return augmenter

    # ------------------------------------------------------------------ data
    def _prepare_data(self, train_mixtures: list, val_mixtures: list) -> tuple[list, list]:
        """Fill the cache; the entries of the usable train and validation mixtures.

        Writes ``data_report.json`` (counts, skipped mixtures with reasons, ids shared by the
        two sets) and logs the skips. Raises ``ValueError`` when no training mixture is usable.
        """
        from .prepare import cached_entries

        shared = _shared_ids(train_mixtures, val_mixtures)
        self.prepare_cache(train_mixtures + val_mixtures)
        train_entries, train_skipped = cached_entries(self.cache, train_mixtures)
        val_entries, val_skipped = cached_entries(self.cache, val_mixtures)
        same_audio = sorted(mixture_id for mixture_id, same in shared.items() if same)
        report = data_report(
            (train_mixtures, val_mixtures),
            (len(train_entries), len(val_entries)),
            (train_skipped, val_skipped),
            shared,
        )
        report["same_audio_in_train_and_val"] = same_audio
        self.data_report = report
        if self.accelerator.is_main_process:
            atomic_write_text(
                self.output_dir / "data_report.json",
                json.dumps(report, indent=2, sort_keys=True) + "\n",
            )
        if train_skipped or val_skipped:
            logger.warning(
                "input validation skipped %d training and %d validation mixture(s): %s %s (see %s)",
                len(train_skipped),
                len(val_skipped),
                report["skipped_reasons"]["train"],
                report["skipped_reasons"]["val"],
                self.output_dir / "data_report.json",
            )
        if shared:
            logger.warning(
                "%d mixture id(s) are in both the training and the validation manifest (e.g. "
                "%s); %d of them with the same audio, so validation is not held out. Each "
                "mixture is used with its own audio (the stream cache is keyed by content).",
                len(shared),
                sorted(shared)[:3],
                len(same_audio),
            )
        if not train_entries:
            raise ValueError(
                f"{self.config.train_mixtures}: no usable training mixture: all "
                f"{len(train_mixtures)} were refused by input validation "
                f"{report['skipped_reasons']['train']}"
            )
        return train_entries, val_entries

    # ------------------------------------------------------------------ pieces of the loop
    def _batch_loss(self, model, batch, class_weights, use_mask: bool, device):
        from .losses import assigned_loss, permutation_loss

        inputs = {"input_values": batch["input_values"].to(device)}
        if use_mask:
            inputs["attention_mask"] = batch["attention_mask"].to(device)
        logits = model(**inputs).logits
        if self.config.assignment == "labels":
            return permutation_loss(
                logits,
                batch["source_labels"].to(device),
                batch["group_sizes"],
                class_weights=class_weights,
            )
        return assigned_loss(logits, batch["labels"].to(device), class_weights=class_weights)

    def _validate(self, model, val_loader, class_weights, use_mask: bool, device) -> dict:
        import torch
        from accelerate.utils import gather_object

        from .validation import MixtureLogits, validation_metrics

        if val_loader is None:
            return {}
        model.eval()
        records: list[MixtureLogits] = []
        entries = val_loader.dataset.entries
        with torch.no_grad():
            for batch in val_loader:
                inputs = {"input_values": batch["input_values"].to(device)}
                if use_mask:
                    inputs["attention_mask"] = batch["attention_mask"].to(device)
                logits = model(**inputs).logits.float().cpu().numpy()
                start = 0
                for index, size in zip(
                    batch["index"].tolist(), batch["group_sizes"].tolist(), strict=True
                ):
                    stop = start + size
                    records.append(
                        MixtureLogits(
                            index=index,
                            logits=logits[start:stop],
                            labels=batch["labels"][start:stop].tolist(),
                            source_labels=batch["source_labels"][start:stop].tolist(),
                            mixture_label=entries[index].mixture_label,
                        )
                    )
                    start = stop
        from .freezing import set_train_mode

        set_train_mode(model)
        gathered = gather_object(records) if self.accelerator.num_processes > 1 else records
        unique = {record.index: record for record in gathered}  # even_batches may repeat some
        return validation_metrics(
            list(unique.values()),
            spoof_index=self.classifier.spoof_index,
            assignment=self.config.assignment,
            class_weights=class_weights,
        )


def load_training_classifier(spec: str, options: dict[str, Any] | None = None):
    """Load the classifier to fine-tune, of any family, on the CPU (Accelerate moves it).

    A Hugging Face classifier is loaded with ``max_seconds=None`` (whole streams: the Trainer
    crops them itself), unless ``options`` say otherwise.

    Raises:
        FileNotFoundError, CheckpointError, OSError, ValueError: as
            :func:`amongus.classifiers.load_classifier`.
    """
    from ..classifiers import load_classifier

    options = {**(options or {}), "device": "cpu"}
    if classifier_family(spec, options, read_weights=False) == "hf":
        options = {"max_seconds": None, **options}
    return load_classifier(spec, **options)


def classifier_family(
    spec: str, options: dict[str, Any] | None = None, *, read_weights: bool = True
) -> str | None:
    """The family (``"hf"``, ``"aasist"``, ``"ssl_w2v"``) ``spec`` would load as, or ``None``
    when that cannot be told (``load_classifier`` then reports the problem). A bare weight file
    is told by its tensor names, which needs reading it (``read_weights``)."""
    from ..checkpoints import CheckpointError

    options = options or {}
    from ..classifiers.base import detect_family
    from ..defaults import MODELS_DIR, SHIPPED_CLASSIFIERS

    if options.get("family"):
        return str(options["family"])
    source = MODELS_DIR / SHIPPED_CLASSIFIERS[spec] if spec in SHIPPED_CLASSIFIERS else spec
    try:
        family = detect_family(source)
    except (OSError, ValueError):
        return None
    if family != "state_dict":
        return family
    if not read_weights:
        return None
    # a weight file (or a folder of one): its tensor names tell
    from ..classifiers.aasist import is_aasist_state_dict, read_state_dict, weight_file_in
    from ..classifiers.ssl_w2v import is_ssl_w2v_state_dict

    try:
        path = Path(source)
        names = read_state_dict(weight_file_in(path) if path.is_dir() else path).keys()
    except (OSError, ValueError, CheckpointError):
        return None
    if is_ssl_w2v_state_dict(names):
        return "ssl_w2v"
    return "aasist" if is_aasist_state_dict(names) else None


def mark_fine_tuned(classifier) -> None:
    """Record in a fine-tuned AASIST/SSL_W2V's ``config.json`` what it was fine-tuned from.

    The base model's metadata (provenance, published results, a calibrated threshold...) is
    moved under ``fine_tuned_from``: it describes the base, not the fine-tuned weights.
    Hugging Face classifiers keep their config as is.
    """
    metadata = getattr(classifier, "metadata", None)
    if not isinstance(metadata, dict) or getattr(classifier, "_fine_tune_marked", False):
        return
    classifier._fine_tune_marked = True
    base = {"name": getattr(classifier, "name", None), **metadata}
    metadata.clear()
    metadata["fine_tuned_from"] = base
    metadata["fine_tuned_by"] = (
        "amongus.training.Trainer (python -m amongus.train), separator frozen; options in "
        "trainer_config.json, validation history in history.csv"
    )


def read_mixture_manifest(path: str | os.PathLike) -> list:
    """Mixtures of a manifest, with relative audio paths resolved against its folder.

    The Mixer writes mixture paths relative to its output folder (where ``mixtures.jsonl`` is).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: mixture manifest not found")
    folder = path.parent
    mixtures = read_mixtures(path)
    for mixture in mixtures:
        if not Path(mixture.path).is_absolute():
            mixture.path = str(folder / mixture.path)
        for source in mixture.sources:
            if not Path(source.path).is_absolute() and (folder / source.path).exists():
                source.path = str(folder / source.path)
    return mixtures


def _shared_ids(train: list, val: list) -> dict[str, bool]:
    """Mixture ids found in both lists -> whether their files have the same bytes."""
    from .stream_cache import content_digest

    val_paths = {mixture.mixture_id: mixture.path for mixture in val}
    shared = {}
    for mixture in train:
        if mixture.mixture_id in val_paths:
            try:
                same = content_digest(mixture.path) == content_digest(val_paths[mixture.mixture_id])
            except ValueError:
                same = False
            shared[mixture.mixture_id] = same
    return shared


def model_num_labels(model) -> int:
    from accelerate.utils import extract_model_from_parallel

    return int(extract_model_from_parallel(model).config.num_labels)


def trackers_active(accelerator) -> bool:
    return bool(getattr(accelerator, "log_with", None))


def _tracker_config(config: TrainerConfig) -> dict[str, Any]:
    """Flat scalars only (TensorBoard's hparams accept nothing else)."""
    flat = {}
    for key, value in config.to_dict().items():
        if isinstance(value, bool | int | float | str):
            flat[key] = value
        elif value is not None:
            flat[key] = json.dumps(value)
    return flat


def _mean_across(accelerator, total: float, count: int) -> float | None:
    import torch

    values = torch.tensor([total, float(count)], device=accelerator.device, dtype=torch.float64)
    values = (
        accelerator.reduce(values, reduction="sum") if accelerator.num_processes > 1 else values
    )
    return float(values[0] / values[1]) if values[1] > 0 else None


def data_report(
    mixtures: tuple[list, list],
    used: tuple[int, int],
    skipped: tuple[list, list],
    shared: dict[str, bool],
) -> dict[str, Any]:
    """The ``data_report.json`` content both trainers write: per split (train, val) the
    mixture count, how many were used, the refusals ``(id, path, reason)`` counted by reason,
    the validation policy, and the ids found in both manifests (``shared``, from
    :func:`_shared_ids`)."""
    from ..validation import count_reasons, policy

    train_skipped, val_skipped = skipped
    listed = [("train", *item) for item in train_skipped]
    listed += [("val", *item) for item in val_skipped]
    return {
        "validation_policy": policy(),
        "counts": {
            "train": {"mixtures": len(mixtures[0]), "used": used[0]},
            "val": {"mixtures": len(mixtures[1]), "used": used[1]},
        },
        "skipped_reasons": {
            "train": count_reasons(reason for *_, reason in train_skipped),
            "val": count_reasons(reason for *_, reason in val_skipped),
        },
        "skipped": [
            {"split": split, "id": mixture_id, "path": path, "reason": reason}
            for split, mixture_id, path, reason in listed
        ],
        "ids_in_train_and_val": sorted(shared),
    }


def warmup_updates(config: TrainerConfig, total_updates: int) -> int:
    """Optimizer updates of linear warm-up: ``warmup_steps``, else ``warmup_ratio`` of all."""
    if config.warmup_steps is not None:
        return config.warmup_steps
    return int(round(config.warmup_ratio * total_updates))


def improved_metric(metrics: dict[str, Any], best: float | None) -> float | None:
    """The run's model-selection metric (``val_eer``, else ``val_loss``; lower is better) when
    it beats ``best``; ``None`` when it is absent or no better."""
    metric = metrics.get("val_eer")
    if metric is None:
        metric = metrics.get("val_loss")
    if metric is not None and (best is None or metric < best):
        return metric
    return None


def starts_fresh(state: dict[str, Any], history: list) -> bool:
    """Whether a run starts from scratch (not resumed from a checkpoint with progress)."""
    return state["epoch"] == 0 and state["batches_done"] == 0 and not history


def record_baseline(history: list, metrics: dict[str, Any], learning_rate: float) -> None:
    """Append the before-training validation row (epoch 0, step 0) to ``history`` and log it."""
    row = {"epoch": 0, "global_step": 0, **metrics, "learning_rate": learning_rate}
    history.append(row)
    logger.info("before training: %s", _format_row(row))


def mid_epoch_checkpoint_due(
    config: TrainerConfig, state: dict[str, Any], batches_per_epoch: int
) -> bool:
    """Whether the update just made is due a ``checkpoint_every_steps`` checkpoint; never at an
    epoch's last batch, whose checkpoint the end of the epoch writes (after validation)."""
    return bool(
        config.checkpoint_every_steps
        and state["global_step"] % config.checkpoint_every_steps == 0
        and state["batches_done"] < batches_per_epoch
    )


def accumulation_group(
    batch_index: int, grad_accum_steps: int, batches_per_epoch: int
) -> tuple[int, bool]:
    """``(group_size, sync)`` for a batch: how many micro-batches its gradient-accumulation
    group holds (the last group of an epoch may be shorter, so the loss is divided by its real
    size) and whether this batch ends the group (time for an optimizer update)."""
    group_start = batch_index - batch_index % grad_accum_steps
    group_size = min(grad_accum_steps, batches_per_epoch - group_start)
    return group_size, batch_index + 1 == group_start + group_size


def _format_row(row: dict[str, Any]) -> str:
    parts = []
    for key, value in row.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)
