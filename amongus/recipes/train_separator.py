"""Train a speech separator (ConvTasNet or SepFormer) on mixtures made on the fly.

Every training step draws ``n_src`` utterances of different speakers, crops them to a segment,
sets their relative level and overlap at random, sums them and scales the sum to a random peak;
the loss is permutation-invariant negative SI-SDR (Asteroid's ``PITLossWrapper`` with
``pairwise_neg_sisdr``). Validation mixtures are drawn once, with a fixed seed, from held-out
speakers; the checkpoint kept is the one with the best validation SI-SDR improvement.

**Real speech** (``--real-speech auto``): dynamic mixing of all the real read speech installed
here (:mod:`amongus.recipes.separation_data`), with a speaker split written to ``split.json``;
speakers are drawn uniformly (not utterances) and each source can be speed-perturbed.

**Runs last hours and resume.** ``--max-minutes`` bounds one invocation; the run folder keeps a
checkpoint of everything (:mod:`amongus.recipes.separator_state`), and rerunning the same command
continues where the last one stopped (also after ``kill -9``: from the last validation). SIGTERM
and SIGINT stop after the current step and save. The learning curve is appended to
``learning_curve.jsonl`` and the log to ``train.log``. The device is chosen automatically (CUDA
when available; ``--amp`` runs the model in bfloat16 there).

**Other commands on a run folder:** ``--evaluate [MODEL ...]`` measures SI-SDRi on the held-out
test mixtures (the study's mixing recipe, fixed seed); ``--export-to DIR`` writes the best
checkpoint in its published format with its model card; ``--benchmark-steps N`` times training
steps; ``--fit-gap [MODEL ...]`` compares SI-SDRi on training and validation speakers
(:mod:`amongus.recipes.separator_eval`).

The model is saved in its library's published format, loadable by ``amongus.load_separator``:

* ``convtasnet``: ``asteroid.models.ConvTasNet``, ``torch.save(model.serialize())`` as
  ``pytorch_model.bin`` (the layout of ``JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k``);
* ``sepformer``: SpeechBrain's ``Encoder`` / ``Dual_Path_Model`` with ``SBTransformerBlock`` /
  ``Decoder``, saved as ``hyperparams.yaml`` + ``encoder.ckpt``, ``masknet.ckpt``,
  ``decoder.ckpt`` (the layout of ``speechbrain/sepformer-wsj02mix``).

Command line (``python -m amongus.recipes.train_separator --help``)::

    python -m amongus.recipes.train_separator --arch convtasnet --size medium \\
        --sample-rate 16000 --real-speech auto --out runs/separator-16k --max-minutes 100
    python -m amongus.recipes.train_separator ... --out runs/separator-16k --evaluate
    python -m amongus.recipes.train_separator ... --out runs/separator-16k \\
        --export-to amongus/data/models/convtasnet-16k
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ._cli import command_line, start_recipe_run
from .model_cards import portable_data
from .separation_data import (  # noqa: F401 - mixing on the fly, re-exported for the recipe's API
    change_speed,
    draw_batch,
    draw_mixture,
    speaker_index,
)
from .training_data import (
    LoadedUtterance,
    TimeBudget,
    describe_sources,
    gather_utterances,
    load_all,
    load_train_val,
    seed_everything,
    write_json,
)

logger = logging.getLogger(__name__)

ARCHITECTURES = ("convtasnet", "sepformer")
LOG_FILE = "train.log"
TRAINING_LOG_FILE = "training_log.json"
BEST_FILE = "best.json"

#: Model sizes. "small" is what the package shipped first; "medium" is the ConvTasNet chosen
#: for long runs on real speech (docs/separator-training.md: the timing that chose it); "tiny"
#: is for tests and smoke runs.
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
        "medium": dict(
            # the paper's encoder of 2 ms hop would cost 2x; 16-sample hop at 16 kHz (1 ms) is
            # what a 2-core CPU affords, with the separator stack of the paper's smaller models
            n_filters=256, kernel_size=32, stride=16, bn_chan=128, hid_chan=256, skip_chan=128,
            n_blocks=8, n_repeats=2,
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
    """Everything that decides a separator training run (written to ``training_log.json``).

    Data come from ``train_sources`` (corpus roots, manifests, ``audio:`` folders; see
    :mod:`amongus.recipes.training_data`) and/or ``real_speech`` (``"auto"``, a shared
    real-audio folder, or ``"none"`` for the apt recordings alone; see
    :mod:`amongus.recipes.separation_data`). With ``real_speech``, speakers are split into
    train / val / test by :func:`~amongus.recipes.separation_data.choose_speaker_split`.
    """

    arch: str
    out_dir: str
    train_sources: list[str] = field(default_factory=list)
    val_sources: list[str] = field(default_factory=list)
    train_split: str = "train"
    val_split: str = "dev"
    real_speech: str | None = None
    n_test_speakers: int = 5
    n_val_speakers: int = 2
    split_seed: int = 0
    test_speakers: list[str] = field(default_factory=list)
    val_speakers: list[str] = field(default_factory=list)
    max_per_speaker: int | None = 400
    extra_speech: bool = False
    balance_speakers: bool = False
    speed_perturb: float = 0.0
    sample_rate: int = 16000
    n_src: int = 2
    size: str = "small"
    model_args: dict[str, Any] = field(default_factory=dict)
    segment_seconds: float = 3.0
    batch_size: int = 4
    learning_rate: float = 1e-3
    lr_patience: int = 2
    clip_grad_norm: float = 5.0
    max_steps: int = 100_000
    max_minutes: float | None = None
    val_every: int = 200
    log_every: int = 50
    n_val_mixtures: int = 48
    val_seconds: float = 4.0
    partial_overlap_probability: float = 0.5
    gain_range_db: float = 5.0
    max_utterance_seconds: float = 20.0
    n_test_mixtures: int = 100
    test_seed: int = 0
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    amp: bool = False

    def validate(self, *, need_data: bool = True) -> None:
        """Raise ``ValueError`` naming the first bad setting (``need_data=False``: data
        sources may be absent, as for timing)."""
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.size not in SIZES[self.arch]:
            raise ValueError(f"size must be one of {sorted(SIZES[self.arch])}, got {self.size!r}")
        if need_data and not self.train_sources and self.real_speech is None:
            raise ValueError("no training sources given (--train or --real-speech)")
        if self.extra_speech and self.real_speech is None:
            raise ValueError("extra_speech (--extra-speech) needs real_speech (--real-speech)")
        if self.n_src < 2:
            raise ValueError(f"n_src must be >= 2, got {self.n_src}")
        for name in ("segment_seconds", "val_seconds", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size < 1 or self.max_steps < 1 or self.val_every < 1:
            raise ValueError("batch_size, max_steps and val_every must be >= 1")
        if not 0 <= self.speed_perturb < 0.5:
            raise ValueError(f"speed_perturb must be in [0, 0.5), got {self.speed_perturb}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.n_test_mixtures < 1 or self.n_val_mixtures < 1:
            raise ValueError("n_test_mixtures and n_val_mixtures must be >= 1")

    def resolved_model_args(self) -> dict[str, Any]:
        return {**SIZES[self.arch][self.size], **self.model_args}

    def mix_options(self) -> dict[str, Any]:
        """How training and validation mixtures are drawn (``separation_data.draw_batch``)."""
        return dict(
            n_src=self.n_src,
            partial_overlap_probability=self.partial_overlap_probability,
            gain_range_db=self.gain_range_db,
        )

    def speed_factors(self) -> tuple[float, ...]:
        """Speeds a source may be played at: 5 steps over ``1 +- speed_perturb``."""
        if not self.speed_perturb:
            return (1.0,)
        return tuple(round(float(f), 3) for f in np.linspace(-1, 1, 5) * self.speed_perturb + 1)


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


def save_published(model: SeparatorModel, folder: Path) -> Path:
    """Save ``model`` in its published format into ``folder``, each file replaced at once
    (written beside, then renamed), so that a reader (``--evaluate`` during training) never
    sees a half-written file."""
    staging = folder / ".published.part"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model.save(staging)
        for produced in sorted(staging.iterdir()):
            os.replace(produced, folder / produced.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def save_best(model: SeparatorModel, folder: Path, best: dict[str, Any]) -> None:
    """The best model so far in its published format, and ``best.json`` (its step and
    validation scores), which ``--evaluate`` records with its result."""
    save_published(model, folder)
    write_json(folder / BEST_FILE, best)


def count_parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def resolve_device(name: str) -> str:
    """``"auto"``: ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other names unchanged.

    Raises:
        ValueError: a CUDA device was asked for and torch sees none.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return name


# --------------------------------------------------------------------------- validation
def si_sdr_improvement(separated, sources, mixture) -> tuple[float, float]:
    """Mean PIT SI-SDR of the estimates and its improvement over the unprocessed mixture (dB).

    Shape: ``[B, S, T], [B, S, T], [B, T] -> (float, float)``.
    """
    import torch
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    pit = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    with torch.no_grad():
        separated, sources, mixture = separated.float(), sources.float(), mixture.float()
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


# --------------------------------------------------------------------------- data
@dataclass
class SeparationData:
    """Training and validation audio (and, for real speech, the test audio and the split)."""

    train: list[LoadedUtterance]
    val: list[LoadedUtterance]
    test: list[LoadedUtterance] = field(default_factory=list)
    split: Any = None  # separation_data.SpeakerSplit for real speech
    summary: dict[str, Any] = field(default_factory=dict)


def prepare_data(
    config: SeparatorTrainingConfig, *, need_train: bool = True, need_test: bool = False
) -> SeparationData:
    """Load the audio of a run, at ``config.sample_rate``.

    With ``real_speech``, the speaker split of the run folder (``split.json``) is reused when
    it exists, so that every invocation of a run (and its evaluation) sees the same speakers;
    otherwise it is chosen and written there. Utterances of ``train_sources`` whose speaker is
    a validation, test or held-out speaker are left out (and counted in the log).

    With ``extra_speech`` (training only): the speakers of
    :mod:`amongus.recipes.separation_sources` join the training speakers (the split is chosen
    without them, so validation and test stay those of a run without the option), and the
    clips under 1 s of every training speaker are packed into 3-6 s pseudo-utterances
    (:mod:`amongus.recipes.speech_packing`) instead of being skipped.

    Raises:
        ValueError: no usable audio, or a split that is too small (the message says which).
    """
    from . import separation_data as sd

    rate = config.sample_rate
    if config.real_speech is None:
        train_items, val_items = load_train_val(
            config, sample_rate=rate, min_seconds=1.0, val_max_seconds=config.max_utterance_seconds
        )
        return SeparationData(train_items, val_items)

    inventory = sd.discover_speech(
        config.real_speech, max_per_speaker=config.max_per_speaker, seed=config.split_seed
    )
    split_path = Path(config.out_dir) / sd.SPLIT_FILE
    if split_path.is_file():
        split = sd.read_split(split_path)
        logger.info("speaker split read from %s", split_path)
    else:
        split = sd.choose_speaker_split(
            [u.speaker for u in inventory.utterances],
            n_test=config.n_test_speakers,
            n_val=config.n_val_speakers,
            seed=config.split_seed,
            test_speakers=config.test_speakers,
            val_speakers=config.val_speakers,
        )
    extra_speech = None
    if config.extra_speech and need_train:
        from . import separation_sources as xs

        extra_speech = xs.find_extra_speech(
            max_per_speaker=config.max_per_speaker, seed=config.split_seed
        )
        added = xs.add_training_speakers(split, extra_speech.speakers)
        if added:
            logger.info("extra speech: %d training speaker(s) added: %s", len(added), added)
    wanted = ({"train", "val"} if need_train else set()) | ({"test"} if need_test else set())
    chosen = [u for u in inventory.utterances if split.of(u.speaker) in wanted]
    items = load_all(
        chosen, sample_rate=rate, min_seconds=1.0, max_seconds=config.max_utterance_seconds
    )
    parts = sd.split_items(items, split)
    if need_train and config.train_sources:
        extra = load_all(
            gather_utterances(config.train_sources, split=config.train_split),
            sample_rate=rate,
            min_seconds=1.0,
            max_seconds=config.max_utterance_seconds,
        )
        kept = [i for i in extra if split.of(i.utterance.speaker) in (None, "train")]
        if len(kept) < len(extra):
            logger.warning(
                "left out %d utterance(s) of --train sources: their speakers are held out",
                len(extra) - len(kept),
            )
        parts["train"].extend(kept)
    extra_summary = None
    if extra_speech is not None:
        extra_summary = _add_extra_speech(config, extra_speech, chosen, items, split, parts)
    for name, needed in (("train", need_train), ("val", need_train), ("test", need_test)):
        if needed and not parts[name]:
            raise ValueError(f"no usable {name} audio after the speaker split ({split.to_dict()})")
    summary = {
        "inventory": inventory.describe(),
        "splits": sd.describe_split(parts, rate),
    }
    if extra_summary is not None:
        summary["extra_speech"] = extra_summary
    if need_train and not split_path.is_file():
        sd.write_split(split_path, split, summary)
        logger.info("speaker split written to %s: %s", split_path, split.to_dict())
    return SeparationData(parts["train"], parts["val"], parts["test"], split, summary)


def _add_extra_speech(config, extra_speech, chosen, items, split, parts) -> dict[str, Any]:
    """Add ``--extra-speech`` audio to ``parts["train"]``; returns its summary for the log.

    The clips of training speakers that the usual loading skipped (shorter than 1 s, or
    unreadable: those are skipped again and counted) are loaded again, with the extra
    packages' recordings of training speakers, and the short ones packed.
    """
    from .speech_packing import load_and_pack

    loaded_ids = {item.utterance.utt_id for item in items}
    skipped = [u for u in chosen if split.of(u.speaker) == "train" and u.utt_id not in loaded_ids]
    extra = [u for u in extra_speech.utterances if split.of(u.speaker) == "train"]
    if len(extra) < len(extra_speech.utterances):
        logger.warning(
            "extra speech: left out %d file(s) of speakers that split.json does not train on",
            len(extra_speech.utterances) - len(extra),
        )
    added, report = load_and_pack(
        skipped + extra, sample_rate=config.sample_rate, seed=config.split_seed,
        max_seconds=config.max_utterance_seconds,
    )  # fmt: skip
    parts["train"].extend(added)
    return {
        "packages": extra_speech.describe(),
        "packing": report.to_dict(),
        "short_clips_of_other_sources": len(skipped),
        "utterances_added": len(added),
        "minutes_added": round(sum(i.audio.shape[0] for i in added) / config.sample_rate / 60, 2),
    }


# --------------------------------------------------------------------------- training
@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT (main thread only): the loop stops after its step."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request(signum, _frame):
        logger.warning("signal %d: stopping after this step and saving the checkpoint", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """Copy the log records of this run to ``path`` (appended across invocations)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous_level = root.level
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def _data_fingerprint(*pools: Sequence[LoadedUtterance]) -> str:
    import hashlib

    digest = hashlib.sha1()
    for pool in pools:
        for item in pool:
            digest.update(f"{item.utterance.utt_id}:{item.audio.shape[0]}\n".encode())
    return digest.hexdigest()[:16]


def _fresh_state_dict(module) -> dict[str, Any]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def train_separator(
    config: SeparatorTrainingConfig,
    *,
    progress: bool = True,
    restart: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Train a separator, resuming from the run folder's checkpoint when there is one.

    Stops after ``max_steps`` or ``max_minutes`` (checked between steps) or on SIGTERM/SIGINT,
    whichever first, and saves the checkpoint; the best model so far (by validation SI-SDRi)
    is kept in its published format in ``out_dir`` after every validation that improves it, so
    a stopped run still leaves a loadable model. ``restart=True`` ignores an existing
    checkpoint and starts over.

    Returns the training log (also written to ``out_dir/training_log.json``).

    Raises:
        ValueError: bad settings, no usable audio, or a checkpoint made with other settings
            (the message names them; use ``restart``).
        FolderBusyError: another run is writing into ``out_dir``.
        FloatingPointError: the loss became NaN or infinite.
    """
    import torch

    from .._compat import check_torch_family

    check_torch_family()  # before Asteroid imports a torchaudio built for another torch
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
    from tqdm import tqdm

    from ..locking import FolderLock
    from . import separator_state as ss

    config.validate()
    budget = TimeBudget(config.max_minutes)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = config.sample_rate
    checkpoint_path = out_dir / ss.CHECKPOINT_FILE
    curve_path = out_dir / ss.CURVE_FILE

    with (
        FolderLock(out_dir, purpose="amongus.recipes.train_separator"),
        _log_to_file(out_dir / LOG_FILE),
        _stop_requests() as stop,
    ):
        saved = None
        if checkpoint_path.is_file() and not restart:
            saved = ss.load_checkpoint(checkpoint_path)
            changed = ss.config_differences(
                saved["config"], asdict(config), _field_defaults(SeparatorTrainingConfig)
            )
            if changed:
                raise ValueError(
                    f"{checkpoint_path}: the run was started with other settings "
                    f"({', '.join(changed)}); rerun with the same settings to resume, or "
                    "pass --restart to start over"
                )
        elif restart:
            for name in (ss.CHECKPOINT_FILE, ss.CURVE_FILE):
                (out_dir / name).unlink(missing_ok=True)
            from .separation_data import SPLIT_FILE

            (out_dir / SPLIT_FILE).unlink(missing_ok=True)
        device = resolve_device(config.device)
        use_amp = bool(config.amp and device.startswith("cuda"))
        if config.amp and not use_amp:
            logger.info("--amp has no effect on %s: training in float32", device)
        seed_everything(config.seed)
        data = prepare_data(config)
        fingerprint = _data_fingerprint(data.train, data.val)
        model_args = config.resolved_model_args()
        model = build_separator_model(
            config.arch, sample_rate=rate, n_src=config.n_src, seed=config.seed,
            model_args=model_args,
        )  # fmt: skip
        model.module.to(device)
        mix_options = config.mix_options()
        val_rng = np.random.default_rng(config.seed + 1)
        val_speakers = speaker_index(data.val) if config.balance_speakers else None
        val_batches = [
            tuple(
                tensor.to(device)
                for tensor in draw_batch(
                    data.val,
                    val_rng,
                    batch_size=min(8, config.n_val_mixtures - start),
                    n_samples=int(config.val_seconds * rate),
                    speakers=val_speakers,
                    **mix_options,
                )
            )
            for start in range(0, config.n_val_mixtures, 8)
        ]
        train_options = dict(
            mix_options,
            speakers=speaker_index(data.train) if config.balance_speakers else None,
            speed_factors=config.speed_factors(),
        )
        train_rng = np.random.default_rng(config.seed)
        loss_function = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
        optimizer = torch.optim.Adam(model.module.parameters(), lr=config.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            # floor: a long run whose validation wobbles must not halve its rate to nothing
            optimizer, mode="max", factor=0.5, patience=config.lr_patience,
            min_lr=config.learning_rate / 100,
        )  # fmt: skip

        def forward(mixture):
            if use_amp:
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                    return model.forward(mixture).float()
            return model.forward(mixture)

        if saved is not None:
            state: ss.RunState = saved["state"]
            model.module.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            ss.restore_rng(train_rng, saved["rng"])
            best_state = saved["best_model"]
            if saved["config"].get("_data") not in (None, fingerprint):
                logger.warning("the training or validation audio changed since the checkpoint")
            ss.write_curve(curve_path, state.history)
            logger.info(
                "resuming %s at step %d (best validation SI-SDRi %.2f dB at step %d)",
                checkpoint_path, state.step, state.best["si_sdri"], state.best["step"],
            )  # fmt: skip
        else:
            initial = evaluate_separator(model, val_batches)
            state = ss.RunState(best={"step": 0, **initial}, initial=initial)
            state.history.append({"step": 0, **initial, "elapsed_s": 0.0, "time": _now()})
            best_state = _fresh_state_dict(model.module)
            ss.write_curve(curve_path, state.history)
            save_best(model, out_dir, state.best)
        state.invocations += 1
        config_record = {**asdict(config), "_data": fingerprint}
        earlier_seconds = state.wall_seconds  # of the invocations before this one

        def save_checkpoint() -> None:
            # the time of this invocation counts even if it is killed after this checkpoint
            state.wall_seconds = earlier_seconds + budget.elapsed
            ss.save_checkpoint(
                checkpoint_path,
                config=config_record,
                state=state,
                model_state=model.module.state_dict(),
                best_state=best_state,
                optimizer=optimizer,
                scheduler=scheduler,
                rng=ss.capture_rng(train_rng),
            )

        def validate(*, periodic: bool) -> dict[str, Any]:
            nonlocal best_state
            metrics = evaluate_separator(model, val_batches)
            record = {
                "step": state.step,
                "train_loss": (
                    state.running_loss / state.running_count if state.running_count else None
                ),
                **metrics,
                "lr": optimizer.param_groups[0]["lr"],
                "elapsed_s": round(earlier_seconds + budget.elapsed, 1),
                "time": _now(),
            }
            state.history.append(record)
            ss.append_curve(curve_path, record)
            logger.info(
                "step %d: train loss %s, validation SI-SDRi %.2f dB (best %.2f), lr %.2g",
                state.step,
                "-" if record["train_loss"] is None else f"{record['train_loss']:.3f}",
                metrics["si_sdri"], max(metrics["si_sdri"], state.best["si_sdri"]), record["lr"],
            )  # fmt: skip
            if periodic:
                state.running_loss, state.running_count = 0.0, 0
                scheduler.step(metrics["si_sdri"])
            if metrics["si_sdri"] > state.best["si_sdri"]:
                state.best = {"step": state.step, **metrics}
                best_state = _fresh_state_dict(model.module)
                save_best(model, out_dir, state.best)
            return record

        logger.info(
            "training %s (%s, %d parameters) at %d Hz on %s: %d training and %d validation "
            "utterances, step %d of %d, budget %s min",
            config.arch, config.size, count_parameters(model.module), rate, device,
            len(data.train), len(data.val), state.step, config.max_steps, config.max_minutes,
        )  # fmt: skip
        stop_reason = "max_steps"
        n_samples = int(config.segment_seconds * rate)
        bar = tqdm(
            total=config.max_steps, initial=state.step, desc=f"train {config.arch}",
            disable=not progress,
        )  # fmt: skip
        model.module.train()
        last_log = time.monotonic()
        steps_since_log = 0
        while state.step < config.max_steps:
            if budget.expired():
                stop_reason = "max_minutes"
                break
            if stop.is_set():
                stop_reason = "signal"
                break
            mixture, sources = draw_batch(
                data.train, train_rng, batch_size=config.batch_size, n_samples=n_samples,
                **train_options,
            )  # fmt: skip
            mixture, sources = mixture.to(device), sources.to(device)
            loss = loss_function(forward(mixture), sources)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"step {state.step}: non-finite loss {loss.item()}; lower the lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.module.parameters(), config.clip_grad_norm)
            optimizer.step()
            state.step += 1
            state.running_loss += loss.item()
            state.running_count += 1
            steps_since_log += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.2f}")
            if config.log_every and state.step % config.log_every == 0:
                now = time.monotonic()
                logger.info(
                    "step %d: train loss %.3f, %.3f steps/s",
                    state.step, state.running_loss / state.running_count,
                    steps_since_log / max(now - last_log, 1e-9),
                )  # fmt: skip
                last_log, steps_since_log = now, 0
            if state.step % config.val_every == 0:
                validate(periodic=True)
                save_checkpoint()
        bar.close()
        if state.step > 0 and state.step % config.val_every != 0:
            # The last steps are judged too; neither the scheduler nor the running loss moves,
            # so that a resumed run's trajectory and curve stay those of an uninterrupted one.
            validate(periodic=False)
        save_checkpoint()
        if not _published_files_exist(out_dir, config.arch):
            model.module.load_state_dict(best_state)
            save_best(model, out_dir, state.best)
        log = _training_log(config, state, model, model_args, data, stop_reason, out_dir)
        log["command"] = command
        write_json(out_dir / TRAINING_LOG_FILE, portable_data(log))
        logger.info(
            "stopped (%s) at step %d after %.1f min (%.1f min in all); best validation "
            "SI-SDRi %.2f dB at step %d",
            stop_reason, state.step, budget.elapsed / 60, state.wall_seconds / 60,
            state.best["si_sdri"], state.best["step"],
        )  # fmt: skip
        return log


def _field_defaults(cls) -> dict[str, Any]:
    """The default of every field of dataclass ``cls`` that has one."""
    defaults = {}
    for item in fields(cls):
        if item.default is not MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not MISSING:
            defaults[item.name] = item.default_factory()
    return defaults


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _published_files_exist(folder: Path, arch: str) -> bool:
    from ..testing.separators import SEPFORMER_FILES

    names = ("pytorch_model.bin",) if arch == "convtasnet" else SEPFORMER_FILES
    return all((folder / name).is_file() for name in names)


def _data_sources(config: SeparatorTrainingConfig, data: SeparationData) -> list[str]:
    """What the model card lists as the training data's origin."""
    if config.real_speech is None:
        return list(config.train_sources)
    found = data.summary.get("splits", {}).get("train", {}).get("sources", [])
    return [*found, *config.train_sources]


def _training_log(config, state, model, model_args, data, stop_reason, out_dir) -> dict[str, Any]:
    config_record = asdict(config)
    if config.real_speech is not None:
        # The card's data section names the corpora found, not the option's value.
        config_record["train_sources"] = _data_sources(config, data)
        config_record["val_sources"] = []
    log = {
        "config": config_record,
        "model_args": model_args,
        "format": model.description["format"],
        "parameters": count_parameters(model.module),
        "steps": state.step,
        "stop_reason": stop_reason,
        "wall_seconds": round(state.wall_seconds, 1),
        "invocations": state.invocations,
        "best": state.best,
        "initial": state.initial,
        "history": state.history,
        "train_data": describe_sources(data.train, config.sample_rate),
        "val_data": describe_sources(data.val, config.sample_rate),
        "saved": str(out_dir),
        "finished_at": _now(),
    }
    if data.split is not None:
        log["split"] = {**data.split.to_dict(), **data.summary}
        log["data_note"] = (
            "speech only (no spoofed audio); speakers split into train, validation and test "
            "as listed in the section 'Speaker split and test set'"
        )
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


def _speaker_list(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.train_separator",
        description="Train a ConvTasNet or SepFormer separator with PIT SI-SDR on on-the-fly "
        "mixtures; save it in Asteroid's or SpeechBrain's published format. Rerunning the same "
        "command resumes the run in --out.",
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, required=True)
    parser.add_argument("--out", required=True, help="run folder (checkpoint, log, best model)")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--train",
        action="append",
        default=[],
        help="training source (repeatable): corpus root / JSONL / CSV manifest / audio:<folder>",
    )
    data.add_argument("--val", action="append", default=[], help="validation source(s)")
    data.add_argument("--train-split", default="train")
    data.add_argument("--val-split", default="dev")
    data.add_argument(
        "--real-speech",
        default=None,
        metavar="auto|FOLDER|none",
        help="dynamic mixing of the real read speech installed here: the apt recordings of the "
        "corpus recipe plus the bonafide/ files of a shared real-audio folder (auto: "
        "../shared/data/real when it exists; none: apt recordings only); speakers are split "
        "into train/val/test (split.json)",
    )
    data.add_argument("--n-test-speakers", type=int, default=5)
    data.add_argument("--n-val-speakers", type=int, default=2)
    data.add_argument("--test-speakers", help="comma-separated test speakers (replaces the rule)")
    data.add_argument("--val-speakers", help="comma-separated validation speakers")
    data.add_argument("--split-seed", type=int, default=0)
    data.add_argument("--max-per-speaker", type=int, default=400)
    data.add_argument(
        "--extra-speech",
        action="store_true",
        help="with --real-speech: more training speakers from the single-word recordings of "
        "klettres-data, ktuberling-data, asterisk-prompt-es-co and asterisk-prompt-fr-armelle "
        "(AMONGUS_SEPARATOR_DATA=1 scripts/setup.sh installs them), and clips under 1 s of "
        "training speakers packed into 3-6 s pseudo-utterances instead of skipped; validation "
        "and test speakers are unchanged",
    )
    data.add_argument(
        "--balance-speakers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw speakers uniformly, not utterances (default: on with --real-speech)",
    )
    data.add_argument(
        "--speed-perturb",
        type=float,
        default=None,
        help="play sources at speeds in 1 +- this (default: 0.1 with --real-speech, else 0)",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--sample-rate", type=int, default=16000)
    model.add_argument("--n-src", type=int, default=2)
    model.add_argument("--size", default="small", help="tiny | small | medium (see SIZES)")
    model.add_argument(
        "--model-arg", action="append", default=[], help="override a size, e.g. n_blocks=6"
    )
    train = parser.add_argument_group("training")
    train.add_argument("--segment-seconds", type=float, default=3.0)
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument(
        "--lr-patience", type=int, default=2, help="validations without progress before halving"
    )
    train.add_argument("--max-steps", type=int, default=100_000)
    train.add_argument(
        "--max-minutes", type=float, default=None, help="budget of this invocation; then it saves "
        "and exits, and the same command resumes"
    )  # fmt: skip
    train.add_argument("--val-every", type=int, default=200)
    train.add_argument("--log-every", type=int, default=50)
    train.add_argument("--n-val-mixtures", type=int, default=48)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or all)"
    )
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:N")
    train.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    train.add_argument("--restart", action="store_true", help="ignore the checkpoint, start over")
    train.add_argument("--no-progress", action="store_true")
    other = parser.add_argument_group("other commands on the run folder (no training)")
    other.add_argument(
        "--evaluate",
        nargs="*",
        metavar="MODEL",
        default=None,
        help="SI-SDRi on the held-out test mixtures of the run's split; no MODEL: the run's "
        "best model; MODEL: folders, checkpoints or registered separators (results go to "
        "test_results.json)",
    )
    other.add_argument("--n-test-mixtures", type=int, default=100)
    other.add_argument("--test-seed", type=int, default=0)
    other.add_argument(
        "--export-to", metavar="DIR", help="write the best checkpoint, its log and card to DIR"
    )
    other.add_argument(
        "--benchmark-steps", type=int, metavar="N", help="time N training steps, print, exit"
    )
    other.add_argument(
        "--fit-gap",
        nargs="*",
        metavar="MODEL",
        default=None,
        help="SI-SDRi on fixed mixtures of the training speakers and of the validation "
        "speakers (undertrained: both low; overfitted: training far above); no MODEL: the "
        "run's best model",
    )
    other.add_argument(
        "--plot-curve",
        metavar="PNG",
        help="draw the run's learning curve (validation SI-SDRi and training loss) to PNG",
    )
    other.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        default=(),
        help="with --plot-curve: draw these run folders' validation SI-SDRi on the same plot",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SeparatorTrainingConfig:
    """The training settings of parsed command-line arguments."""
    real = args.real_speech is not None
    return SeparatorTrainingConfig(
        arch=args.arch,
        out_dir=args.out,
        train_sources=args.train,
        val_sources=args.val,
        train_split=args.train_split,
        val_split=args.val_split,
        real_speech=args.real_speech,
        n_test_speakers=args.n_test_speakers,
        n_val_speakers=args.n_val_speakers,
        split_seed=args.split_seed,
        test_speakers=_speaker_list(args.test_speakers),
        val_speakers=_speaker_list(args.val_speakers),
        max_per_speaker=args.max_per_speaker,
        extra_speech=args.extra_speech,
        balance_speakers=real if args.balance_speakers is None else args.balance_speakers,
        speed_perturb=(0.1 if real else 0.0) if args.speed_perturb is None else args.speed_perturb,
        sample_rate=args.sample_rate,
        n_src=args.n_src,
        size=args.size,
        model_args=_parse_model_args(args.model_arg),
        segment_seconds=args.segment_seconds,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_patience=args.lr_patience,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        val_every=args.val_every,
        log_every=args.log_every,
        n_val_mixtures=args.n_val_mixtures,
        n_test_mixtures=args.n_test_mixtures,
        test_seed=args.test_seed,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        amp=args.amp,
    )


def plot_run_curve(
    run_dir: str | Path, path: str | Path, compare: Sequence[str | Path] = ()
) -> Path:
    """Draw ``run_dir``'s ``learning_curve.jsonl`` to ``path`` (:func:`amongus.plots.plot_learning_curve`);
    with ``compare`` (other run folders), the validation SI-SDRi of all of them on one plot
    (:func:`amongus.plots.plot_learning_curves`), each labelled with its folder name.

    Raises ``ValueError`` naming the file when it is missing or holds no validation row.
    """
    from ..plots import plot_learning_curve, plot_learning_curves

    if compare:
        runs = {}
        for folder in (run_dir, *compare):
            label = Path(folder).name
            if label in runs:  # two folders of one name: tell them apart by their path
                label = Path(folder).as_posix()
            runs[label] = _curve_rows(Path(folder))
        try:
            return plot_learning_curves(runs, path)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    rows = _curve_rows(Path(run_dir))
    try:
        return plot_learning_curve(rows, path, title=Path(run_dir).name)
    except ValueError as error:
        raise ValueError(f"{Path(run_dir) / 'learning_curve.jsonl'}: {error}") from None


def _curve_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir/learning_curve.jsonl``; ``ValueError`` naming the file and line."""
    import json

    curve = run_dir / "learning_curve.jsonl"
    if not curve.is_file():
        raise ValueError(f"{curve}: no learning curve (has the run validated yet?)")
    rows = []
    for number, line in enumerate(curve.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{curve}:{number}: not JSON ({error.msg})") from None
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_recipe_run()
    config = config_from_args(args)
    random.seed(config.seed)
    command = command_line("amongus.recipes.train_separator", argv)
    from . import separator_eval as tools

    try:
        if args.benchmark_steps:
            config.validate(need_data=False)
            timing = tools.benchmark_steps(config, args.benchmark_steps)
            print(" ".join(f"{key}={value}" for key, value in timing.items()))
            return 0
        if args.plot_curve:
            plot_run_curve(config.out_dir, args.plot_curve, args.compare)
            print(f"wrote {args.plot_curve}")
            return 0
        if args.export_to:
            tools.export_best(config.out_dir, args.export_to, command)
            print(f"exported the best checkpoint of {config.out_dir} to {args.export_to}")
            return 0
        if args.fit_gap is not None:
            config.validate()
            for name, row in tools.fit_gap(config, args.fit_gap).items():
                print(
                    f"{name}: SI-SDRi {row['train_si_sdri']:.2f} dB on training speakers, "
                    f"{row['val_si_sdri']:.2f} dB on validation speakers (gap {row['gap']:.2f})"
                )
            return 0
        if args.evaluate is not None:
            config.validate()
            results = tools.evaluate_on_test(config, args.evaluate, progress=not args.no_progress)
            for name, result in results.items():
                print(
                    f"{name}: test SI-SDRi {result['si_sdri_mean']:.2f} dB (median "
                    f"{result['si_sdri_median']:.2f}, SI-SDR {result['si_sdr_mean']:.2f}) on "
                    f"{result['n_mixtures']} mixtures at {result['sample_rate']} Hz"
                )
            tools.refresh_card(config.out_dir, command)
            return 0
        log = train_separator(
            config, progress=not args.no_progress, restart=args.restart, command=command
        )
    except (ValueError, OSError) as error:
        logging.getLogger(__name__).error("%s", error)
        return 2
    results = tools.read_json(Path(config.out_dir) / tools.TEST_RESULTS_FILE)
    tools.write_model_card(config.out_dir, log, command, test_results=results)
    best = log["best"]
    print(
        f"{config.arch} @ {config.sample_rate} Hz: {log['parameters']} parameters, "
        f"{log['steps']} steps, {log['wall_seconds'] / 60:.1f} min in all ({log['stop_reason']}); "
        f"best validation SI-SDR {best['si_sdr']:.2f} dB, SI-SDRi {best['si_sdri']:.2f} dB "
        f"(step {best['step']}) -> {log['saved']}"
    )
    if not math.isfinite(best["si_sdri"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
