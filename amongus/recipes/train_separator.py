"""Train a speech separator (ConvTasNet or SepFormer) on mixtures made on the fly.

Every training step draws ``n_src`` utterances of different speakers, crops them to a segment,
sets their relative level and overlap at random, sums them and scales the sum to a random peak;
the loss is permutation-invariant negative SI-SDR (Asteroid's ``PITLossWrapper`` with
``pairwise_neg_sisdr``). Validation mixtures are drawn once, with a fixed seed, from held-out
speakers; the checkpoint kept is the one with the best validation SI-SDR improvement.

The model is saved in its library's published format, loadable by ``amongus.load_separator``:

* ``convtasnet``: ``asteroid.models.ConvTasNet``, ``torch.save(model.serialize())`` as
  ``pytorch_model.bin`` (the layout of ``JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k``);
* ``sepformer``: SpeechBrain's ``Encoder`` / ``Dual_Path_Model`` with ``SBTransformerBlock`` /
  ``Decoder``, saved as ``hyperparams.yaml`` + ``encoder.ckpt``, ``masknet.ckpt``,
  ``decoder.ckpt`` (the layout of ``speechbrain/sepformer-wsj02mix``).

Command line (``python -m amongus.recipes.train_separator --help``)::

    python -m amongus.recipes.train_separator --arch convtasnet --sample-rate 16000 \\
        --train path/to/minispoof --val path/to/minispoof \\
        --out amongus/data/models/convtasnet-16k --max-minutes 22 --seed 0
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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

ARCHITECTURES = ("convtasnet", "sepformer")

#: Model sizes. "small" is what the package ships; "tiny" is for tests and smoke runs.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "convtasnet": {
        "tiny": dict(
            n_filters=16, kernel_size=16, bn_chan=8, hid_chan=16, skip_chan=8, n_blocks=2,
            n_repeats=1,
        ),
        "small": dict(
            n_filters=128, kernel_size=32, stride=16, bn_chan=64, hid_chan=128, skip_chan=64,
            n_blocks=5, n_repeats=2,
        ),
    },
    "sepformer": {
        "tiny": dict(
            n_filters=16, kernel_size=16, d_model=16, nhead=2, d_ffn=32, transformer_layers=1,
            num_layers=1, chunk_size=50,
        ),
        "small": dict(
            # kernel 32 (4 ms, hop 2 ms at 8 kHz) instead of the published 16: 3x faster on CPU
            n_filters=128, kernel_size=32, d_model=96, nhead=4, d_ffn=384, transformer_layers=1,
            num_layers=2, chunk_size=50,
        ),
    },
}  # fmt: skip


@dataclass
class SeparatorTrainingConfig:
    """Everything that decides a separator training run (written to ``training_log.json``)."""

    arch: str
    out_dir: str
    train_sources: list[str]
    val_sources: list[str] = field(default_factory=list)
    train_split: str = "train"
    val_split: str = "dev"
    sample_rate: int = 16000
    n_src: int = 2
    size: str = "small"
    model_args: dict[str, Any] = field(default_factory=dict)
    segment_seconds: float = 3.0
    batch_size: int = 4
    learning_rate: float = 1e-3
    clip_grad_norm: float = 5.0
    max_steps: int = 100_000
    max_minutes: float | None = None
    val_every: int = 200
    n_val_mixtures: int = 48
    val_seconds: float = 4.0
    partial_overlap_probability: float = 0.5
    gain_range_db: float = 5.0
    max_utterance_seconds: float = 20.0
    seed: int = 0
    threads: int | None = 2

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.size not in SIZES[self.arch]:
            raise ValueError(f"size must be one of {sorted(SIZES[self.arch])}, got {self.size!r}")
        if not self.train_sources:
            raise ValueError("no training sources given")
        if self.n_src < 2:
            raise ValueError(f"n_src must be >= 2, got {self.n_src}")
        for name in ("segment_seconds", "val_seconds", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size < 1 or self.max_steps < 1 or self.val_every < 1:
            raise ValueError("batch_size, max_steps and val_every must be >= 1")

    def resolved_model_args(self) -> dict[str, Any]:
        return {**SIZES[self.arch][self.size], **self.model_args}


# --------------------------------------------------------------------------- mixtures on the fly
def draw_mixture(
    pool: Sequence[LoadedUtterance],
    rng: np.random.Generator,
    *,
    n_src: int,
    n_samples: int,
    partial_overlap_probability: float,
    gain_range_db: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One training mixture and its sources, scaled so that ``sources.sum(0) == mixture``.

    Sources come from different speakers where the pool has enough of them. Each source is a
    random crop; with ``partial_overlap_probability`` it is active on only part of the segment
    (at least half), so the model also sees single-talker stretches, as in the mixer's
    partially overlapped mixtures. Levels: each source at unit RMS times a random gain of
    ``+-gain_range_db``; the sum is scaled to a random peak in ``[0.1, 0.95]``.

    Shape: ``-> ([T], [n_src, T])``.
    """
    speakers: set[str] = set()
    picked: list[np.ndarray] = []
    for _ in range(n_src):
        for _attempt in range(20):
            item = pool[int(rng.integers(len(pool)))]
            if item.utterance.speaker not in speakers or _attempt == 19:
                break
        speakers.add(item.utterance.speaker)
        picked.append(item.audio)
    sources = np.zeros((n_src, n_samples), dtype=np.float32)
    for index, audio in enumerate(picked):
        active = n_samples
        if rng.random() < partial_overlap_probability:
            active = int(n_samples * rng.uniform(0.5, 1.0))
        active = min(active, audio.shape[0])
        start = int(rng.integers(audio.shape[0] - active + 1))
        offset = int(rng.integers(n_samples - active + 1))
        piece = audio[start : start + active]
        rms = float(np.sqrt(np.mean(piece**2))) + 1e-8
        gain = 10 ** (rng.uniform(-gain_range_db, gain_range_db) / 20) / rms
        sources[index, offset : offset + active] = piece * gain
    mixture = sources.sum(0)
    peak = float(np.max(np.abs(mixture))) + 1e-8
    scale = rng.uniform(0.1, 0.95) / peak
    return (mixture * scale).astype(np.float32), (sources * scale).astype(np.float32)


def draw_batch(pool, rng, *, batch_size: int, **options) -> tuple[Any, Any]:
    """A batch of on-the-fly mixtures as tensors. Shape: ``-> ([B, T], [B, n_src, T])``."""
    import torch

    pairs = [draw_mixture(pool, rng, **options) for _ in range(batch_size)]
    mixtures = torch.from_numpy(np.stack([pair[0] for pair in pairs]))
    sources = torch.from_numpy(np.stack([pair[1] for pair in pairs]))
    return mixtures, sources


# --------------------------------------------------------------------------- models
@dataclass
class SeparatorModel:
    """A trainable separator: its modules, a forward ``[B, T] -> [B, n_src, T]`` and a saver."""

    module: Any  # torch.nn.Module holding every trained parameter
    forward: Callable[[Any], Any]
    save: Callable[[Path], Path]
    description: dict[str, Any]


def build_separator_model(
    arch: str, *, sample_rate: int, n_src: int, seed: int, model_args: dict[str, Any]
) -> SeparatorModel:
    """Build a randomly initialised ConvTasNet or SepFormer with the project's format builders."""
    import torch

    from ..testing import separators as formats

    if arch == "convtasnet":
        model = formats.build_convtasnet_model(
            sample_rate=sample_rate, n_src=n_src, seed=seed, **model_args
        )

        def save(out_dir: Path) -> Path:
            return formats.save_asteroid_model(model, out_dir / "pytorch_model.bin")

        return SeparatorModel(model, model, save, {"format": "asteroid", **model_args})

    if arch == "sepformer":
        hparams_text = formats.sepformer_hparams_text(
            sample_rate=sample_rate, n_src=n_src, **model_args
        )
        hparams = formats.instantiate_sepformer(hparams_text, seed=seed)
        modules = hparams["modules"]
        encoder, masknet, decoder = modules["encoder"], modules["masknet"], modules["decoder"]
        container = torch.nn.ModuleDict(
            {"encoder": encoder, "masknet": masknet, "decoder": decoder}
        )

        def forward(mixture):
            # SepformerSeparation.separate_batch, returning Asteroid's [B, n_src, T] layout.
            encoded = encoder(mixture)
            masks = masknet(encoded)
            separated = torch.stack([decoder(encoded * masks[i]) for i in range(n_src)], dim=1)
            n_samples = mixture.shape[-1]
            if separated.shape[-1] < n_samples:
                separated = torch.nn.functional.pad(separated, (0, n_samples - separated.shape[-1]))
            return separated[..., :n_samples]

        def save(out_dir: Path) -> Path:
            return formats.save_sepformer(out_dir, hparams_text, dict(container.items()))

        return SeparatorModel(container, forward, save, {"format": "speechbrain", **model_args})

    raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


def count_parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


# --------------------------------------------------------------------------- validation
def si_sdr_improvement(separated, sources, mixture) -> tuple[float, float]:
    """Mean PIT SI-SDR of the estimates and its improvement over the unprocessed mixture (dB).

    Shape: ``[B, S, T], [B, S, T], [B, T] -> (float, float)``.
    """
    import torch
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    pit = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    with torch.no_grad():
        estimate_sdr = -pit(separated, sources).item()
        repeated = mixture.unsqueeze(1).expand_as(sources)
        mixture_sdr = -pairwise_neg_sisdr(repeated, sources).diagonal(dim1=1, dim2=2).mean().item()
    return estimate_sdr, estimate_sdr - mixture_sdr


def evaluate_separator(model: SeparatorModel, batches) -> dict[str, float]:
    """Average SI-SDR and SI-SDR improvement over fixed validation batches."""
    import torch

    model.module.eval()
    sdr, sdri, count = 0.0, 0.0, 0
    with torch.inference_mode():
        for mixture, sources in batches:
            estimate, improvement = si_sdr_improvement(model.forward(mixture), sources, mixture)
            sdr += estimate * len(mixture)
            sdri += improvement * len(mixture)
            count += len(mixture)
    model.module.train()
    return {"si_sdr": sdr / count, "si_sdri": sdri / count}


# --------------------------------------------------------------------------- training
def train_separator(config: SeparatorTrainingConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train a separator and save it (best validation SI-SDRi) in its real format.

    Stops after ``max_steps`` or ``max_minutes`` (checked between steps), whichever first; the
    best checkpoint so far is on disk after every validation, so an interrupted run still leaves
    a loadable model. Returns the training log (also written to ``out_dir/training_log.json``).
    """
    import torch

    from .._compat import check_torch_family

    check_torch_family()  # before Asteroid imports a torchaudio built for another torch
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
    from tqdm import tqdm

    config.validate()
    budget = TimeBudget(config.max_minutes)
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = config.sample_rate

    train_items, val_items = load_train_val(
        config, sample_rate=rate, min_seconds=1.0, val_max_seconds=config.max_utterance_seconds
    )
    model_args = config.resolved_model_args()
    model = build_separator_model(
        config.arch, sample_rate=rate, n_src=config.n_src, seed=config.seed, model_args=model_args
    )
    mix_options = dict(
        n_src=config.n_src,
        partial_overlap_probability=config.partial_overlap_probability,
        gain_range_db=config.gain_range_db,
    )
    val_rng = np.random.default_rng(config.seed + 1)
    val_batches = [
        draw_batch(
            val_items,
            val_rng,
            batch_size=min(8, config.n_val_mixtures - start),
            n_samples=int(config.val_seconds * rate),
            **mix_options,
        )
        for start in range(0, config.n_val_mixtures, 8)
    ]
    train_rng = np.random.default_rng(config.seed)
    loss_function = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    optimizer = torch.optim.Adam(model.module.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=2
    )

    initial = evaluate_separator(model, val_batches)
    history: list[dict[str, Any]] = [{"step": 0, **initial, "elapsed_s": budget.elapsed}]
    best = {"step": 0, **initial}
    best_state = copy.deepcopy(model.module.state_dict())
    running, n_running, step, stop_reason = 0.0, 0, 0, "max_steps"
    bar = tqdm(total=config.max_steps, desc=f"train {config.arch}", disable=not progress)
    model.module.train()
    while step < config.max_steps:
        if budget.expired():
            stop_reason = "max_minutes"
            break
        mixture, sources = draw_batch(
            train_items,
            train_rng,
            batch_size=config.batch_size,
            n_samples=int(config.segment_seconds * rate),
            **mix_options,
        )
        loss = loss_function(model.forward(mixture), sources)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: non-finite loss {loss.item()}; lower the lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.module.parameters(), config.clip_grad_norm)
        optimizer.step()
        step += 1
        running += loss.item()
        n_running += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.2f}")
        if step % config.val_every == 0:
            metrics = evaluate_separator(model, val_batches)
            record = {
                "step": step,
                "train_loss": running / n_running,
                **metrics,
                "lr": optimizer.param_groups[0]["lr"],
                "elapsed_s": round(budget.elapsed, 1),
            }
            history.append(record)
            logger.info("validation %s", record)
            running, n_running = 0.0, 0
            scheduler.step(metrics["si_sdri"])
            if metrics["si_sdri"] > best["si_sdri"]:
                best = {"step": step, **metrics}
                best_state = copy.deepcopy(model.module.state_dict())
                model.save(out_dir)
    bar.close()
    final = evaluate_separator(model, val_batches)
    if final["si_sdri"] > best["si_sdri"]:
        best = {"step": step, **final}
        best_state = copy.deepcopy(model.module.state_dict())
    model.module.load_state_dict(best_state)
    model.module.eval()
    saved = model.save(out_dir)
    log = {
        "config": asdict(config),
        "model_args": model_args,
        "format": model.description["format"],
        "parameters": count_parameters(model.module),
        "steps": step,
        "stop_reason": stop_reason,
        "wall_seconds": round(budget.elapsed, 1),
        "best": best,
        "initial": initial,
        "history": history,
        "train_data": describe_sources(train_items, rate),
        "val_data": describe_sources(val_items, rate),
        "saved": str(saved),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # shipped next to the weights: no folder of this machine in it (corpus -> placeholder)
    write_json(out_dir / "training_log.json", portable_data(log))
    return log


# --------------------------------------------------------------------------- command line
def _parse_model_args(pairs: Sequence[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--model-arg expects key=value, got {pair!r}")
        try:
            parsed[key] = int(value)
        except ValueError:
            try:
                parsed[key] = float(value)
            except ValueError:
                parsed[key] = value
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.train_separator",
        description="Train a ConvTasNet or SepFormer separator with PIT SI-SDR on on-the-fly "
        "mixtures; save it in Asteroid's or SpeechBrain's published format.",
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, required=True)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--train",
        action="append",
        required=True,
        help="training source (repeatable): corpus root / JSONL / CSV manifest / audio:<folder>",
    )
    parser.add_argument("--val", action="append", default=[], help="validation source(s)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="dev")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--n-src", type=int, default=2)
    parser.add_argument("--size", default="small", help="tiny | small (see SIZES)")
    parser.add_argument(
        "--model-arg", action="append", default=[], help="override a size, e.g. n_blocks=6"
    )
    parser.add_argument("--segment-seconds", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--n-val-mixtures", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_recipe_run()
    config = SeparatorTrainingConfig(
        arch=args.arch,
        out_dir=args.out,
        train_sources=args.train,
        val_sources=args.val,
        train_split=args.train_split,
        val_split=args.val_split,
        sample_rate=args.sample_rate,
        n_src=args.n_src,
        size=args.size,
        model_args=_parse_model_args(args.model_arg),
        segment_seconds=args.segment_seconds,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        val_every=args.val_every,
        n_val_mixtures=args.n_val_mixtures,
        seed=args.seed,
        threads=args.threads,
    )
    random.seed(config.seed)
    log = train_separator(config, progress=not args.no_progress)
    from .model_cards import separator_card, write_card

    command = command_line("amongus.recipes.train_separator", argv)
    write_card(config.out_dir, separator_card(config.out_dir, log, command))
    best = log["best"]
    print(
        f"{config.arch} @ {config.sample_rate} Hz: {log['parameters']} parameters, "
        f"{log['steps']} steps in {log['wall_seconds'] / 60:.1f} min ({log['stop_reason']}); "
        f"best validation SI-SDR {best['si_sdr']:.2f} dB, SI-SDRi {best['si_sdri']:.2f} dB "
        f"(step {best['step']}) -> {log['saved']}"
    )
    if not math.isfinite(best["si_sdri"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
