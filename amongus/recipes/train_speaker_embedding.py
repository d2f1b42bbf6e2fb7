"""Train a small ECAPA-TDNN speaker embedder on the real read speech found here.

``python -m amongus.recipes.train_speaker_embedding --out runs/ecapa-tiny --max-minutes 25``

**Data** (bonafide speech only, never spoofs):
:func:`amongus.recipes.separation_data.discover_speech` (the apt-packaged recordings of the
corpus recipe and the ``bonafide/`` files of the shared real-audio folder: LibriSpeech
test-other, LJSpeech). Speaker ids are the corpus recipe's (``libri_1688``, ``lj``,
``allison``, ``tux_fr``...). ``--test-speakers`` LibriSpeech speakers (seeded) are held out of
training entirely and used only for the verification and clustering measurements; speakers
with fewer than ``--min-utterances`` usable clips are left out.

**Classes**: every training speaker at every speed of ``--speeds`` is its own class (speed
perturbation changes pitch and formants, so a perturbed speaker counts as a new one: the trick of
the Kaldi/wespeaker VoxCeleb recipes, which triples the few speakers here).

**Training**, as SpeechBrain's VoxCeleb ECAPA recipe (``recipes/VoxCeleb/SpeakerRec``):
random ``--crop-seconds`` crops, 80 log-mel filterbanks with per-sentence mean normalisation,
additive angular margin softmax (AAM, margin 0.2, scale 30: Deng et al., *ArcFace*, 2019;
``speechbrain.nnet.losses.AdditiveAngularMargin``), Adam with a linear warm-up and cosine
decay. Augmentation: random gain, white noise at 5-30 dB SNR, and (as separated streams of a
conversation carry some crosstalk) another speaker's speech 10-25 dB below.

**Resumable**: ``checkpoint.pt`` in ``--out`` every ``--checkpoint-minutes``; a new run with the
same arguments continues from it. ``--max-minutes`` bounds wall-clock training time.

**Output**: the model in the published ``spkrec-ecapa-voxceleb`` layout in ``<out>/model``
(:func:`amongus.speakers.ecapa.save_ecapa_folder`) with ``verification.json`` (held-out EER, its
threshold, clustering accuracy of 2-4 held-out speakers, the data and the command), and
``metrics.json``/``train_log.jsonl`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._cli import command_line, start_recipe_run

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
TINY_ARCHITECTURE = {
    "channels": [128, 128, 128, 128, 384],
    "attention_channels": 64,
    "se_channels": 64,
    "lin_neurons": 128,
}


@dataclass
class SpeakerTrainingConfig:
    out: str = "runs/ecapa-tiny"
    shared_real: str = "auto"
    apt: bool = True
    test_speakers: int = 6
    min_utterances: int = 8
    max_per_speaker: int = 150
    max_utterance_seconds: float = 8.0
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    crop_seconds: float = 2.0
    batch_size: int = 32
    steps: int = 1400
    warmup_steps: int = 100
    lr: float = 2e-3
    weight_decay: float = 2e-5
    margin: float = 0.2
    scale: float = 30.0
    max_minutes: float = 25.0
    checkpoint_minutes: float = 2.0
    threads: int = 1
    seed: int = 0
    architecture: dict[str, Any] = field(default_factory=lambda: dict(TINY_ARCHITECTURE))

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a run to resume (time limits may change)."""
        data = asdict(self)
        for key in ("out", "max_minutes", "checkpoint_minutes", "threads", "steps"):
            data.pop(key)
        data["speeds"] = list(self.speeds)
        return data


# --------------------------------------------------------------------------- data
@dataclass
class SpeakerData:
    train: dict[str, list[np.ndarray]]  # speaker -> utterances [T] at 16 kHz
    test: dict[str, list[np.ndarray]]
    describe: dict[str, Any]


def prepare_speaker_data(config: SpeakerTrainingConfig) -> SpeakerData:
    """Find, split and load the speech (see the module doc).

    Raises:
        ValueError: nothing usable, or too few held-out speakers.
    """
    from .separation_data import LIBRISPEECH_PREFIX, discover_speech
    from .training_data import load_all

    inventory = discover_speech(
        config.shared_real,
        apt=config.apt,
        max_per_speaker=config.max_per_speaker,
        seed=config.seed,
    )
    items = load_all(
        inventory.utterances,
        sample_rate=SAMPLE_RATE,
        min_seconds=max(1.0, config.crop_seconds / 2),
        max_seconds=config.max_utterance_seconds,
    )
    by_speaker: dict[str, list[np.ndarray]] = defaultdict(list)
    sources: dict[str, set[str]] = defaultdict(set)
    for item in items:
        by_speaker[item.utterance.speaker].append(item.audio)
        sources[item.utterance.speaker].add(item.utterance.source)
    libri = sorted(s for s in by_speaker if s.startswith(LIBRISPEECH_PREFIX))
    pool = libri if len(libri) >= 2 else sorted(by_speaker)
    rng = random.Random(config.seed)
    test_ids = sorted(rng.sample(pool, min(config.test_speakers, len(pool) - 1)))
    if len(test_ids) < 2:
        raise ValueError(f"need at least 2 held-out speakers, found speakers {sorted(by_speaker)}")
    dropped = {
        s: len(u)
        for s, u in by_speaker.items()
        if s not in test_ids and len(u) < config.min_utterances
    }
    train = {s: u for s, u in sorted(by_speaker.items()) if s not in test_ids and s not in dropped}
    test = {s: by_speaker[s] for s in test_ids}
    if not train:
        raise ValueError("no training speaker left after the held-out split")
    describe = {
        "train_speakers": {s: len(u) for s, u in train.items()},
        "test_speakers": {s: len(u) for s, u in test.items()},
        "dropped_speakers_few_utterances": dropped,
        "train_minutes": round(
            sum(a.size for u in train.values() for a in u) / SAMPLE_RATE / 60, 1
        ),
        "sources": sorted(set().union(*(sources[s] for s in (*train, *test)))),
        "licences": {u.source: u.licence for u in inventory.utterances},
        "shared_real": inventory.describe()["shared_real"],
    }
    logger.info("speaker data: %s", json.dumps(describe))
    return SpeakerData(train, test, describe)


class BatchMaker:
    """Random training crops: class -> (speaker, speed), augmented (see the module doc)."""

    def __init__(self, train: dict[str, list[np.ndarray]], config: SpeakerTrainingConfig):
        self.speakers = sorted(train)
        self.train = train
        self.config = config
        self.classes = [(s, speed) for s in self.speakers for speed in config.speeds]
        self.crop = int(config.crop_seconds * SAMPLE_RATE)

    def labels(self) -> list[str]:
        return [f"{s}@speed{speed:g}" for s, speed in self.classes]

    def _crop(self, audio: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        if audio.size < length:  # repeat-pad short clips
            audio = np.tile(audio, math.ceil(length / audio.size))
        start = int(rng.integers(0, audio.size - length + 1))
        return audio[start : start + length]

    def _utterance(self, speaker: str, speed: float, rng: np.random.Generator) -> np.ndarray:
        from .separation_data import change_speed

        utterances = self.train[speaker]
        audio = utterances[int(rng.integers(len(utterances)))]
        raw = self._crop(audio, int(math.ceil(self.crop * speed)) + 8, rng)
        out = change_speed(raw, speed) if speed != 1.0 else raw
        return self._crop(out, self.crop, rng).astype(np.float32)

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        size = self.config.batch_size
        labels = rng.integers(len(self.classes), size=size)
        audio = np.zeros((size, self.crop), dtype=np.float32)
        for row, label in enumerate(labels):
            speaker, speed = self.classes[int(label)]
            clip = self._utterance(speaker, speed, rng)
            power = float(np.mean(clip**2)) + 1e-10
            if rng.random() < 0.3:  # crosstalk of another speaker, as in separated streams
                other = self.speakers[int(rng.integers(len(self.speakers)))]
                if other != speaker:
                    talk = self._utterance(other, 1.0, rng)
                    gain = math.sqrt(power / (np.mean(talk**2) + 1e-10)) * 10 ** (
                        -rng.uniform(10, 25) / 20
                    )
                    clip = clip + gain * talk
            if rng.random() < 0.5:
                noise = rng.standard_normal(clip.size).astype(np.float32)
                clip = clip + noise * math.sqrt(power) * 10 ** (-rng.uniform(5, 30) / 20)
            peak = float(np.abs(clip).max()) + 1e-9
            audio[row] = clip / peak * rng.uniform(0.1, 0.9)
        return audio, labels


# --------------------------------------------------------------------------- model
class Trainee:
    """Features, ECAPA-TDNN and the AAM classifier of one training run."""

    def __init__(self, config: SpeakerTrainingConfig, n_classes: int):
        import torch
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import Classifier
        from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
        from speechbrain.processing.features import InputNormalization

        from ..speakers.ecapa import EcapaConfig

        self.architecture = EcapaConfig(**config.architecture, sample_rate=SAMPLE_RATE)
        self.features = Fbank(n_mels=self.architecture.n_mels)
        self.normalize = InputNormalization(norm_type="sentence", std_norm=False)
        self.model = self.architecture.build()
        self.classifier = Classifier(self.architecture.lin_neurons, out_neurons=n_classes)
        self.loss = LogSoftmaxWrapper(AdditiveAngularMargin(config.margin, config.scale))
        self.optimizer = torch.optim.Adam(
            [*self.model.parameters(), *self.classifier.parameters()],
            lr=config.lr,
            weight_decay=config.weight_decay,
        )

    def embed(self, audio) -> Any:
        import torch

        with torch.no_grad():
            lengths = torch.ones(audio.shape[0])
            feats = self.normalize(self.features(audio), lengths)
        return self.model(feats, torch.ones(audio.shape[0]))

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "classifier": self.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load(self, state: dict[str, Any], source: Path) -> None:
        from ..checkpoints import load_state_dict_strict

        load_state_dict_strict(self.model, state["model"], source=source)
        load_state_dict_strict(self.classifier, state["classifier"], source=source)
        self.optimizer.load_state_dict(state["optimizer"])


def learning_rate(step: int, config: SpeakerTrainingConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of ``lr`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------- evaluation
def held_out_segments(
    test: dict[str, list[np.ndarray]], seconds: float | None
) -> tuple[list[np.ndarray], list[str]]:
    """One segment per held-out utterance: the middle ``seconds`` (``None``: all of it)."""
    audios, speakers = [], []
    for speaker, utterances in sorted(test.items()):
        for audio in utterances:
            if seconds is not None and audio.size > seconds * SAMPLE_RATE:
                length = int(seconds * SAMPLE_RATE)
                start = (audio.size - length) // 2
                audio = audio[start : start + length]
            audios.append(audio)
            speakers.append(speaker)
    return audios, speakers


def evaluate_embedder(embedder, test: dict[str, list[np.ndarray]], *, seed: int = 0) -> dict:
    """Held-out verification EER (whole utterances and 3-s segments) and clustering accuracy
    of 2-4 held-out speakers from 3-s segments (the number of speakers known, or estimated by
    cutting at the 3-s segments' EER threshold)."""
    from ..speakers.verification import clustering_accuracy, verification_eer

    report: dict[str, Any] = {"embedder": embedder.identity}
    audios, speakers = held_out_segments(test, None)
    whole = embedder.embed(audios).numpy()
    report["verification_utterances"] = verification_eer(whole, speakers)
    audios, speakers = held_out_segments(test, 3.0)
    segments = embedder.embed(audios).numpy()
    report["verification_3s_segments"] = verification_eer(segments, speakers)
    # the number of speakers is estimated on 3-s segments, so cut at their own EER point
    threshold = report["verification_3s_segments"]["threshold"]
    report["clustering_3s_segments"] = clustering_accuracy(
        segments, speakers, threshold=threshold, seed=seed
    )
    report["held_out_speakers"] = sorted(set(speakers))
    return report


# --------------------------------------------------------------------------- training
def train_speaker_embedding(config: SpeakerTrainingConfig, *, command: str = "") -> dict:
    """Train (or resume), evaluate and write the model; returns the metrics."""
    import torch

    from ..checkpoints import load_weights
    from ..fsutil import atomic_path, atomic_write_text
    from ..speakers.ecapa import EcapaEmbedder, save_ecapa_folder

    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_speaker_data(config)
    maker = BatchMaker(data.train, config)
    trainee = Trainee(config, len(maker.classes))
    checkpoint = out / "checkpoint.pt"
    step, elapsed = 0, 0.0
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    if checkpoint.is_file():
        state = load_weights(checkpoint)
        if json.dumps(state.get("fingerprint"), sort_keys=True) != json.dumps(
            config.fingerprint(), sort_keys=True
        ):
            raise ValueError(
                f"{checkpoint}: written with other settings; use another --out or delete it"
            )
        trainee.load(state, checkpoint)
        step, elapsed = int(state["step"]), float(state["elapsed"])
        rng = np.random.default_rng([config.seed, step])
        logger.info("resumed at step %d (%.1f min trained)", step, elapsed / 60)

    def save_checkpoint() -> None:
        with atomic_path(checkpoint) as temporary:
            torch.save(
                {
                    **trainee.state(),
                    "step": step,
                    "elapsed": elapsed,
                    "fingerprint": config.fingerprint(),
                },
                temporary,
            )

    log_path = out / "train_log.jsonl"
    started = time.monotonic() - elapsed
    last_save = time.monotonic()
    running = []
    trainee.model.train()
    trainee.classifier.train()
    while step < config.steps and (time.monotonic() - started) < config.max_minutes * 60:
        audio, labels = maker.batch(rng)
        for group in trainee.optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        embeddings = trainee.embed(torch.from_numpy(audio))
        outputs = trainee.classifier(embeddings)
        loss = trainee.loss(outputs, torch.from_numpy(labels).long().unsqueeze(1))
        trainee.optimizer.zero_grad()
        loss.backward()
        trainee.optimizer.step()
        running.append(loss.item())
        step += 1
        elapsed = time.monotonic() - started
        if step % 50 == 0:
            entry = {
                "step": step,
                "loss": round(float(np.mean(running)), 4),
                "lr": learning_rate(step, config),
                "minutes": round(elapsed / 60, 2),
            }
            running = []
            logger.info("step %d loss %.3f (%.1f min)", step, entry["loss"], elapsed / 60)
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
        if time.monotonic() - last_save > config.checkpoint_minutes * 60:
            save_checkpoint()
            last_save = time.monotonic()
    save_checkpoint()
    stop = "steps" if step >= config.steps else "max_minutes"
    logger.info("training stopped at step %d (%s), %.1f min", step, stop, elapsed / 60)

    trainee.model.eval()
    folder = out / "model"
    save_ecapa_folder(
        folder,
        trainee.model,
        trainee.architecture,
        classifier=trainee.classifier,
        labels=maker.labels(),
    )
    evaluation = evaluate_embedder(EcapaEmbedder(folder), data.test, seed=config.seed)
    # the mean embedding of training speech, stored like the published mean_var_norm_emb
    mean_rows = [maker._utterance(s, 1.0, rng) for s in maker.speakers for _ in range(8)]
    embedded = EcapaEmbedder(folder).embed(np.stack(mean_rows))
    verification = {
        "threshold": round(evaluation["verification_utterances"]["threshold"], 4),
        "threshold_rule": "equal-error-rate point of held-out whole-utterance trials",
        "evaluation": evaluation,
        "training": {
            "steps": step,
            "minutes": round(elapsed / 60, 1),
            "stopped_by": stop,
            "classes": len(maker.classes),
            "command": command,
            "config": asdict(config),
            "data": data.describe,
        },
    }
    save_ecapa_folder(
        folder,
        trainee.model,
        trainee.architecture,
        classifier=trainee.classifier,
        labels=maker.labels(),
        embedding_mean=embedded.mean(dim=0),
        embedding_count=len(mean_rows),
        verification=verification,
    )
    atomic_write_text(out / "metrics.json", json.dumps(verification, indent=2) + "\n")
    write_speaker_card(folder, verification)
    logger.info("held-out evaluation: %s", json.dumps(evaluation))
    return verification


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def speaker_card(verification: dict[str, Any], licences: dict[str, str] | None = None) -> str:
    """The ``MODEL_CARD.md`` text of a model trained here, from its ``verification.json``."""
    from ..speakers.ecapa import EcapaConfig

    training = verification["training"]
    config = training["config"]
    data = training["data"]
    evaluation = verification["evaluation"]
    whole = evaluation["verification_utterances"]
    segments = evaluation["verification_3s_segments"]
    licences = {**data.get("licences", {}), **(licences or {})}
    architecture = EcapaConfig(**config["architecture"])
    model = architecture.build()
    n_parameters = sum(p.numel() for p in model.parameters())
    rows = [
        f"| {k.removeprefix('k=')} | {_percent(v['accuracy_known_k'])} | {_percent(v['accuracy_estimated_k'])} | "
        f"{_percent(v['k_found_exactly'])} |"
        for k, v in evaluation["clustering_3s_segments"].items()
    ]
    sources = "\n".join(
        f"- {source}: {licences.get(source, 'see the source')}" for source in data["sources"]
    )

    def trial_row(name: str, result: dict[str, Any]) -> str:
        return (
            f"| {name} | {_percent(result['eer'])} | {result['threshold']:.3f} | "
            f"{result['target_trials']} / {result['nontarget_trials']} |"
        )

    train_speakers = ", ".join(f"{s} ({n})" for s, n in data["train_speakers"].items())
    return f"""# ecapa-tiny: a small ECAPA-TDNN speaker embedder

A speaker-embedding model in the layout of SpeechBrain's `speechbrain/spkrec-ecapa-voxceleb`
(`hyperparams.yaml`, `embedding_model.ckpt`, `mean_var_norm_emb.ckpt`, `classifier.ckpt`,
`label_encoder.txt`), plus amongus's `verification.json`. Load it with
`amongus.speakers.load_speaker_embedder()` (it is the default) or with SpeechBrain's
`EncoderClassifier.from_hparams(source=F, overrides={{"pretrained_path": F}})`, `F` this folder
(the same embeddings, checked).

- Architecture: ECAPA-TDNN (Desplanques et al., Interspeech 2020; SpeechBrain's
  `ECAPA_TDNN`), channels {architecture.channels}, attention {architecture.attention_channels},
  SE {architecture.se_channels}, embeddings of {architecture.lin_neurons} dimensions,
  {n_parameters:,} parameters.
- Input: 16 kHz mono; 80 log-mel filterbanks with per-utterance mean normalisation.
- Output: one embedding per waveform; compare by cosine similarity (higher = same speaker).

## Training data

Real read speech only (no spoofed or synthetic speech), found by
`amongus.recipes.separation_data.discover_speech`: {len(data["train_speakers"])} training
speakers ({data["train_minutes"]} minutes; utterances per speaker in brackets, at most
{config["max_per_speaker"]}, cut to {config["max_utterance_seconds"]:g} s): {train_speakers}.
Each speaker at speeds {", ".join(f"{s:g}" for s in config["speeds"])} is its own class
({training["classes"]} classes). Held out entirely (measurements only):
{", ".join(evaluation["held_out_speakers"])} (LibriSpeech test-other).

Sources and licences:

{sources}

## Training

`{training["command"]}`

AAM softmax (margin {config["margin"]}, scale {config["scale"]}), Adam (learning rate
{config["lr"]}, warm-up and cosine decay), batches of {config["batch_size"]} random
{config["crop_seconds"]:g}-s crops with gain, noise and crosstalk augmentation;
{training["steps"]} steps in {training["minutes"]} minutes on one CPU thread (stopped by
{training["stopped_by"]}).

## Evaluation (held-out speakers)

Verification, all pairs of the held-out utterances as trials, cosine scores:

| trials | EER | threshold at the EER | target / non-target trials |
|---|---|---|---|
{trial_row(f"whole utterances (up to {config['max_utterance_seconds']:g} s)", whole)}
{trial_row("3-s segments", segments)}

`verification.json` stores {verification["threshold"]} ({verification["threshold_rule"]}), the
default threshold of `amongus.speakers.enroll`.

Telling 2-4 held-out speakers apart (what a conversation pipeline does): random groups of k
speakers, 3 segments of 3 s each, agglomerative clustering (cosine, average linkage); accuracy
under the best mapping of clusters to speakers, with k known, or with k estimated by cutting the
tree at the 3-s segments' EER threshold (and how often k was found exactly):

| k | accuracy, k known | accuracy, k estimated | k found exactly |
|---|---|---|---|
{chr(10).join(rows)}

## Limits

Few training speakers, mostly studio prompts in a handful of languages: the model is weak for
unseen voices, telephone speech and noisy calls, and its threshold rests on six LibriSpeech
speakers. It is a small default that makes the conversation pipeline run offline; for real use
bring the published `speechbrain/spkrec-ecapa-voxceleb` (7,205 VoxCeleb speakers) and pass its
folder to `load_speaker_embedder`.
"""


def write_speaker_card(folder: str | Path, verification: dict[str, Any], **options) -> Path:
    """Write ``MODEL_CARD.md`` (:func:`speaker_card`) into ``folder``, paths made portable."""
    from ..fsutil import atomic_write_text
    from .model_cards import portable_text

    text = portable_text(speaker_card(verification, **options))
    return atomic_write_text(Path(folder) / "MODEL_CARD.md", text)


def build_parser() -> argparse.ArgumentParser:
    defaults = SpeakerTrainingConfig()
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.train_speaker_embedding",
        description="Train a small ECAPA-TDNN speaker embedder (published SpeechBrain layout) "
        "on the real read speech found on this machine; resumable.",
    )
    parser.add_argument("--out", default=defaults.out, help="run folder (model in <out>/model)")
    parser.add_argument(
        "--shared-real",
        default=defaults.shared_real,
        help="shared real-audio folder, 'auto' or 'none'",
    )
    parser.add_argument("--no-apt", action="store_true", help="leave out the apt recordings")
    parser.add_argument("--test-speakers", type=int, default=defaults.test_speakers)
    parser.add_argument("--min-utterances", type=int, default=defaults.min_utterances)
    parser.add_argument("--max-per-speaker", type=int, default=defaults.max_per_speaker)
    parser.add_argument(
        "--speeds",
        default=",".join(f"{s:g}" for s in defaults.speeds),
        help="comma-separated speed factors, each a class per speaker",
    )
    parser.add_argument("--crop-seconds", type=float, default=defaults.crop_seconds)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes)
    parser.add_argument("--checkpoint-minutes", type=float, default=defaults.checkpoint_minutes)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--channels", default=None, help="ECAPA channels, e.g. 128,128,128,128,384 (default: tiny)"
    )
    parser.add_argument("--lin-neurons", type=int, default=None, help="embedding size")
    return parser


def config_from_args(args: argparse.Namespace) -> SpeakerTrainingConfig:
    architecture = dict(TINY_ARCHITECTURE)
    if args.channels:
        architecture["channels"] = [int(c) for c in args.channels.split(",")]
    if args.lin_neurons:
        architecture["lin_neurons"] = int(args.lin_neurons)
    speeds = tuple(float(s) for s in str(args.speeds).split(",") if s.strip())
    if not speeds or any(s <= 0 for s in speeds):
        raise SystemExit(f"--speeds {args.speeds}: expected positive factors such as 0.9,1,1.1")
    return SpeakerTrainingConfig(
        out=args.out,
        shared_real=args.shared_real,
        apt=not args.no_apt,
        test_speakers=args.test_speakers,
        min_utterances=args.min_utterances,
        max_per_speaker=args.max_per_speaker,
        speeds=speeds,
        crop_seconds=args.crop_seconds,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        max_minutes=args.max_minutes,
        checkpoint_minutes=args.checkpoint_minutes,
        threads=args.threads,
        seed=args.seed,
        architecture=architecture,
    )


def main(argv: Sequence[str] | None = None) -> int:
    start_recipe_run()
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    metrics = train_speaker_embedding(
        config, command=command_line("amongus.recipes.train_speaker_embedding", argv)
    )
    evaluation = metrics["evaluation"]
    logger.info(
        "result: %s",
        json.dumps(
            {
                "eer": evaluation["verification_utterances"]["eer"],
                "threshold": metrics["threshold"],
                "clustering": evaluation["clustering_3s_segments"],
            }
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
