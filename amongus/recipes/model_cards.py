"""Model cards (``MODEL_CARD.md``) for the models the training recipes write.

A card is generated from the run's ``training_log.json`` at the end of training: architecture and
size, the exact command, the data with its licences (and the corpus ``ATTRIBUTION.md`` when the
training corpus has one), validation metrics and training time. Evaluation numbers from the
results table are appended under ``## Evaluation`` by :func:`set_evaluation_section`.

Cards and the files shipped next to them name no folder of the machine they were built on:
paths inside the repository (or the working directory) are written relative to it, and other
absolute paths (the training corpus) become ``path/to/<name>`` placeholders
(:func:`portable_path`, :func:`portable_command`, :func:`portable_data`).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

EVALUATION_HEADING = "## Evaluation"
#: Strings that :func:`portable_data` treats as shell commands.
_COMMANDS = ("python ", "python3 ", "accelerate ", "bash ")
#: An absolute POSIX path, a home-relative path or a Windows drive path.
_ABSOLUTE = re.compile(r"^(/|~|[A-Za-z]:[\\/])")


def repository_root() -> Path:
    """The folder holding the ``amongus`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parents[2]


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as a shipped file may name it: unchanged when relative; relative to the
    repository or the working directory when inside one; else the placeholder
    ``path/to/<name>``.

    >>> portable_path("/somewhere/else/corpus/minispoof")
    'path/to/minispoof'
    >>> portable_path("runs/mix/mixtures.jsonl")
    'runs/mix/mixtures.jsonl'
    """
    text = os.fspath(path)
    if not _ABSOLUTE.match(text):
        return text
    absolute = Path(text).expanduser()
    for base in (repository_root(), Path.cwd().resolve()):
        if base == Path(base.anchor) or base == Path.home():
            continue  # a path "relative" to / or ~ would still name the machine's folders
        try:
            return absolute.relative_to(base).as_posix() or "."
        except ValueError:
            continue
    return f"path/to/{absolute.name}" if absolute.name else "path/to"


def portable_command(command: str) -> str:
    """A shell command with every absolute path argument (``/x``, ``--opt=/x``) made portable
    (:func:`portable_path`)."""
    try:
        tokens = shlex.split(command)
    except ValueError:  # unbalanced quotes: leave the text as it is
        return command

    def fix(token: str) -> str:
        if _ABSOLUTE.match(token):
            return portable_path(token)
        option, equals, value = token.partition("=")
        if equals and option.startswith("-") and _ABSOLUTE.match(value):
            return f"{option}={portable_path(value)}"
        return token

    return shlex.join(fix(token) for token in tokens)


def portable_data(data: Any) -> Any:
    """A copy of JSON-like ``data`` whose absolute-path strings are made portable, for
    ``training_log.json``, ``trainer_config.json`` and result files shipped with the package."""
    if isinstance(data, dict):
        return {key: portable_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [portable_data(value) for value in data]
    if isinstance(data, str) and data.startswith(_COMMANDS):
        return portable_command(data)
    if isinstance(data, str) and _ABSOLUTE.match(data):
        return portable_path(data)
    return data


def portable_text(text: str) -> str:
    """Markdown with the commands in code spans (`` `python -m ...` ``) made portable
    (:func:`portable_command`) and paths under the repository or the working directory made
    relative; the last step before a card is written."""
    text = re.sub(r"`(python -m [^`\n]+)`", lambda match: f"`{portable_command(match[1])}`", text)
    for base in (repository_root(), Path.cwd().resolve()):
        if base != Path(base.anchor) and base != Path.home():
            text = text.replace(f"{base.as_posix()}/", "")
    return text


def folder_megabytes(folder: str | os.PathLike) -> float:
    """Size of every file in ``folder`` (recursively), in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def _data_table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| Source [label] | Utterances | Speakers | Hours | Licence |",
        "|---|---|---|---|---|",
    ]
    for key, entry in summary.items():
        licences = ", ".join(entry.get("licences", [])) or "-"
        lines.append(
            f"| {key} | {entry['utterances']} | {entry.get('speakers', '-')} | "
            f"{entry['hours']:.2f} | {licences} |"
        )
    return "\n".join(lines)


def _attribution(sources: list[str]) -> str:
    """The ``ATTRIBUTION.md`` of every training source folder that has one."""
    texts = []
    for source in sources:
        root = Path(source.removeprefix("audio:"))
        root = root.parent if root.is_file() else root
        for name in ("ATTRIBUTION.md", "README.md"):
            candidate = root / name
            if candidate.is_file():
                text = candidate.read_text("utf-8-sig").strip()
                text = re.sub(r"^#", "###", text, flags=re.MULTILINE)
                texts.append(f"From `{portable_path(root)}/{name}`:\n\n{text}")
                break
    return "\n\n".join(texts)


def _common_sections(log: dict[str, Any], command: str) -> list[str]:
    config = log["config"]
    return [
        "## Training command",
        "",
        "```bash",
        portable_command(command),
        "```",
        "",
        f"Seed {config['seed']}; {log['steps']} optimizer steps in "
        f"{log['wall_seconds'] / 60:.1f} min on a shared 2-core CPU "
        f"(stopped by {log['stop_reason']}); finished {log['finished_at']}. "
        "`training_log.json` in this folder holds the full configuration and the validation "
        "history.",
        "",
        "## Training data",
        "",
        f"Training split `{config['train_split']}` of: "
        + ", ".join(f"`{portable_path(s)}`" for s in config["train_sources"])
        + ".",
        "",
        _data_table(log["train_data"]),
        "",
        *([f"Note: {log['data_note']}.", ""] if log.get("data_note") else []),
        "Validation: "
        + (
            f"split `{config['val_split']}` of "
            + ", ".join(f"`{portable_path(s)}`" for s in config["val_sources"])
            if config["val_sources"]
            else "held-out speakers of the training sources"
        )
        + ".",
        "",
        _data_table(log["val_data"]),
        "",
    ]


def _licence_section(log: dict[str, Any]) -> list[str]:
    config = log["config"]
    attribution = _attribution(list(config["train_sources"]) + list(config["val_sources"]))
    return [
        "## Licences and attribution",
        "",
        "The weights are distributed with the amongus project (Apache-2.0). They were trained on "
        "the data listed above, under the licences in the tables. Attribution: LibriSpeech "
        "(CC-BY-4.0; Panayotov et al., *LibriSpeech: an ASR corpus based on public domain audio "
        "books*, ICASSP 2015), LJSpeech (public domain; Keith Ito), WaveFake (CC-BY-SA-4.0; "
        "Frank & Schoenherr, NeurIPS 2021 Datasets and Benchmarks), CMU ARCTIC / NSF "
        "copy-synthesis (BSD-3-Clause; Wang & Yamagishi), and the recordings and generators "
        "credited below. Some sources are share-alike or copyleft (CC-BY-SA-3.0 Asterisk prompts, "
        "GPL-2 Tux Paint stamp recordings): whether trained weights are derived works of their "
        "training audio is unsettled; no audio is distributed with the weights. The training "
        "corpus's own attribution follows.",
        "",
        attribution or "(the training sources ship no ATTRIBUTION.md)",
        "",
    ]


def separator_card(out_dir: str | os.PathLike, log: dict[str, Any], command: str) -> str:
    """The model card text of a separator trained by ``train_separator``."""
    config, args, best, initial = log["config"], log["model_args"], log["best"], log["initial"]
    arch = config["arch"]
    rate = config["sample_rate"]
    if arch == "convtasnet":
        title = f"ConvTasNet {rate // 1000} kHz"
        architecture = "`asteroid.models.ConvTasNet` (Luo & Mesgarani, 2019)"
        layout = (
            "Asteroid's published package: `pytorch_model.bin` = `torch.save(model.serialize())` "
            "(`model_name`, `model_args` with `sample_rate`, `state_dict`, `infos`), the layout of "
            "`JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k`"
        )
    else:
        title = f"SepFormer {rate // 1000} kHz"
        architecture = (
            "SpeechBrain SepFormer (Subakan et al., 2021): `Encoder`, `Dual_Path_Model` with "
            "`SBTransformerBlock` intra/inter blocks, `Decoder`"
        )
        layout = (
            "SpeechBrain's published layout: `hyperparams.yaml` + `encoder.ckpt`, "
            "`masknet.ckpt`, `decoder.ckpt`, as `speechbrain/sepformer-wsj02mix`"
        )
    sizes = ", ".join(f"{key}={value}" for key, value in args.items())
    lines = [
        f"# {title} separator (amongus shipped model)",
        "",
        "| | |",
        "|---|---|",
        f"| Architecture | {architecture}; {sizes} |",
        f"| Parameters | {log['parameters']:,} ({folder_megabytes(out_dir):.2f} MB on disk, float32) |",
        f"| Format | {layout} |",
        f"| Sample rate | {rate} Hz, {config['n_src']} sources |",
        "| Loss | permutation-invariant negative SI-SDR "
        "(`asteroid.losses.PITLossWrapper(pairwise_neg_sisdr)`) |",
        "",
        "## Use",
        "",
        "```python",
        "from amongus import load_separator",
        "from amongus.defaults import MODELS_DIR",
        "",
        f'separator = load_separator(str(MODELS_DIR / "{Path(out_dir).name}"))',
        f"streams = separator.separate(mixture)  # [B, T] at {rate} Hz -> [B, 2, T]",
        "```",
        "",
        "## Training",
        "",
        "Mixtures are made on the fly: two utterances of different speakers, random crops of "
        f"{config['segment_seconds']} s, each at unit RMS times a random gain of "
        f"+-{config['gain_range_db']} dB, partially overlapping with probability "
        f"{config['partial_overlap_probability']} (each source active on at least half the "
        "segment), summed and scaled to a random peak in [0.1, 0.95]. Adam, learning rate "
        f"{config['learning_rate']} (halved when validation SI-SDRi stalls), batch "
        f"{config['batch_size']}, gradient clipping {config['clip_grad_norm']}. The checkpoint "
        "kept is the one with the best validation SI-SDR improvement.",
        "",
        *_common_sections(log, command),
        "## Metrics",
        "",
        f"Validation ({config['n_val_mixtures']} fixed {config['val_seconds']} s mixtures of "
        "held-out speakers, seeded):",
        "",
        "| | SI-SDR (dB) | SI-SDR improvement (dB) |",
        "|---|---|---|",
        f"| random initialisation | {initial['si_sdr']:.2f} | {initial['si_sdri']:.2f} |",
        f"| trained (step {best['step']}) | {best['si_sdr']:.2f} | {best['si_sdri']:.2f} |",
        "",
        *_licence_section(log),
        "## Limitations",
        "",
        f"A small model trained for {_duration_words(log.get('wall_seconds'))} on a CPU: it "
        "separates far less well than published "
        "checkpoints trained for days on GPUs (e.g. `speechbrain/sepformer-wsj02mix`, 22.4 dB "
        "SI-SDRi on WSJ0-2mix). It is shipped so that the pipeline runs offline out of the box "
        "and so that the project's experiment can be rerun end to end; load a published "
        "checkpoint for real use (docs/real-checkpoints.md).",
        "",
    ]
    return "\n".join(lines)


def _duration_words(seconds: float | None) -> str:
    """``"35 minutes"`` / ``"4.4 hours"`` for a card's prose; ``"a short time"`` when unknown."""
    if not seconds:
        return "a short time"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def classifier_card(out_dir: str | os.PathLike, log: dict[str, Any], command: str) -> str:
    """The model card text of a classifier trained by ``train_classifier``."""
    config, best, initial = log["config"], log["best"], log["initial"]
    import json

    model_config = json.loads((Path(out_dir) / "config.json").read_text("utf-8-sig"))
    sizes = (
        f"hidden_size={model_config['hidden_size']}, "
        f"num_hidden_layers={model_config['num_hidden_layers']}, "
        f"num_attention_heads={model_config['num_attention_heads']}, "
        f"intermediate_size={model_config['intermediate_size']}, "
        f"conv_dim={tuple(model_config['conv_dim'])}, "
        f"feat_extract_norm={model_config['feat_extract_norm']!r}"
    )
    lines = [
        "# WavLM-architecture spoof classifier, trained on clean utterances (amongus shipped model)",
        "",
        "| | |",
        "|---|---|",
        f"| Architecture | `transformers.WavLMForSequenceClassification`, from scratch; {sizes} |",
        f"| Parameters | {log['parameters']:,} ({folder_megabytes(out_dir):.2f} MB on disk, float32) |",
        "| Format | Hugging Face: `config.json`, `model.safetensors`, `preprocessor_config.json` "
        "(`Wav2Vec2FeatureExtractor`, 16 kHz, per-utterance normalisation) |",
        "| Labels | `id2label = {0: bonafide, 1: spoof}` |",
        "| Scores | spoof probability; `cm_score` = logit(bonafide) - logit(spoof), higher = "
        "bonafide (ASVspoof convention) |",
        "",
        "## Use",
        "",
        "```python",
        "from amongus import SpoofClassifier",
        "from amongus.defaults import MODELS_DIR",
        "",
        f'classifier = SpoofClassifier.from_pretrained(MODELS_DIR / "{Path(out_dir).name}")',
        "scores = classifier.score([waveform_16k])  # .spoof_probability, .cm_score",
        "```",
        "",
        "## Training",
        "",
        "Class-balanced batches (half bonafide, half spoof, drawn with replacement; the class "
        f"counts were {log['class_counts']}), random {config['crop_seconds']} s crops with a "
        f"random peak level, batch {config['batch_size']}, cross-entropy, AdamW (learning rate "
        f"{config['learning_rate']}, weight decay {config['weight_decay']}, "
        f"{config['warmup_steps']} warm-up steps), gradient clipping {config['clip_grad_norm']}. "
        "The checkpoint kept is the one with the lowest validation EER.",
        "",
        *_common_sections(log, command),
        "## Metrics",
        "",
        f"Validation (first {config['val_seconds']} s of every validation utterance; EER from "
        "the ROC, used to pick the checkpoint):",
        "",
        "| | Loss | Accuracy | EER |",
        "|---|---|---|---|",
        f"| random initialisation | {initial['loss']:.3f} | {100 * initial['accuracy']:.1f}% | "
        f"{100 * initial['eer']:.1f}% |",
        f"| trained (step {best['step']}) | {best['loss']:.3f} | {100 * best['accuracy']:.1f}% | "
        f"{100 * best['eer']:.1f}% |",
        "",
        *_licence_section(log),
        "## Limitations",
        "",
        "A small transformer trained from scratch for minutes on a CPU, on a small corpus: it "
        "learns the artefacts of the corpus's spoof systems and generalises far less than a "
        "pretrained WavLM fine-tuned on ASVspoof. It is shipped so the pipeline works offline "
        "and the project's experiment can be rerun; see docs/real-checkpoints.md for real "
        "detectors.",
        "",
    ]
    return "\n".join(lines)


def write_card(out_dir: str | os.PathLike, text: str) -> Path:
    """Write ``MODEL_CARD.md``, keeping an existing ``## Evaluation`` section."""
    path = Path(out_dir) / "MODEL_CARD.md"
    if path.exists():
        old = path.read_text("utf-8-sig")
        if EVALUATION_HEADING in old:
            text = text.rstrip() + "\n\n" + old[old.index(EVALUATION_HEADING) :]
    path.write_text(portable_text(text), "utf-8")
    return path


def set_evaluation_section(out_dir: str | os.PathLike, body: str) -> Path:
    """Replace (or add) the card's ``## Evaluation`` section with ``body`` (Markdown)."""
    path = Path(out_dir) / "MODEL_CARD.md"
    text = path.read_text("utf-8-sig") if path.exists() else ""
    if EVALUATION_HEADING in text:
        text = text[: text.index(EVALUATION_HEADING)].rstrip()
    body = portable_text(body.strip())
    path.write_text(f"{text}\n\n{EVALUATION_HEADING}\n\n{body}\n", "utf-8")
    return path


def finetuned_card(
    out_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    base_card: str | os.PathLike,
    command: str,
    mix_commands: list[str],
    wall_minutes: float | None = None,
) -> str:
    """The model card of a classifier fine-tuned by ``python -m amongus.train``.

    Reads the Trainer's ``trainer_config.json`` and ``history.csv`` in ``run_dir``; the data and
    licence sections of the clean classifier's card (``base_card``) are reused, since the
    fine-tuning mixtures are made from the same corpus split.
    """
    import csv
    import json

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "trainer_config.json").read_text("utf-8-sig"))
    with open(run_dir / "history.csv", newline="", encoding="utf-8-sig") as handle:
        history = list(csv.DictReader(handle))
    base = Path(base_card).read_text("utf-8-sig")
    licences = base[base.index("## Licences and attribution") : base.index("## Limitations")]
    data = base[base.index("## Training data") : base.index("## Metrics")]

    def pct(value: str) -> str:
        return f"{100 * float(value):.1f}%" if value not in ("", None) else "-"

    rows = [
        "| Epoch | Step | Train loss | Val loss | Val stream accuracy | Val stream EER | "
        "Val SS/SB/BB accuracy | Val spoof-present EER |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in history:
        rows.append(
            f"| {entry['epoch']} | {entry['global_step']} | {float(entry['train_loss']):.3f} | "
            f"{float(entry['val_loss']):.3f} | {pct(entry['val_accuracy'])} | "
            f"{pct(entry['val_eer'])} | {pct(entry['val_composition_accuracy'])} | "
            f"{pct(entry['val_spoof_present_eer'])} |"
        )
    timing = f" in {wall_minutes:.1f} min" if wall_minutes else ""
    lines = [
        "# WavLM-architecture spoof classifier, fine-tuned on separated streams "
        "(amongus shipped model)",
        "",
        "| | |",
        "|---|---|",
        "| Architecture | the clean classifier (`wavlm-spoof-clean`, see its card) fine-tuned "
        f"with the separator `{Path(config['separator']).name}` frozen |",
        f"| Size | {folder_megabytes(out_dir):.2f} MB on disk, float32 |",
        "| Format | Hugging Face: `config.json`, `model.safetensors`, `preprocessor_config.json` |",
        "| Labels | `id2label = {0: bonafide, 1: spoof}` |",
        "",
        "## Training",
        "",
        "`python -m amongus.train` (the project's Trainer): every training mixture is separated "
        "once by the frozen separator into a stream cache; each stream is labelled by assigning "
        f"streams to the reference sources by SI-SDR (`assignment={config['assignment']!r}`); "
        f"AdamW, peak learning rate {config['learning_rate']}, linear warm-up "
        f"({config['warmup_ratio']} of the steps) and decay, batch {config['batch_size']} "
        f"mixtures x gradient accumulation {config['grad_accum_steps']}, clipping "
        f"{config['max_grad_norm']}, random {config['max_seconds']} s crops, freeze "
        f"{config['freeze']!r}, {config['epochs']} epochs, seed {config['seed']}. The checkpoint "
        f"shipped is the Trainer's `best/` (lowest validation stream EER){timing}.",
        "",
        "## Training command",
        "",
        "```bash",
        *(portable_command(line) for line in mix_commands),
        portable_command(command),
        "```",
        "",
        "`trainer_config.json` and `history.csv` in this folder are the run's own files.",
        "",
        "## Validation history",
        "",
        *rows,
        "",
        data.replace("## Training data", "## Data (the corpus of the clean classifier)").rstrip(),
        "",
        licences.rstrip(),
        "",
        "## Limitations",
        "",
        "Fine-tuned on streams of one small CPU-trained separator; it adapts to that separator's "
        "artefacts and may transfer less to others (compare the SepFormer rows of the results "
        "table). See the clean classifier's card.",
        "",
    ]
    return "\n".join(lines)
