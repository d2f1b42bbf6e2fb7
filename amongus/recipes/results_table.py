"""The results table: what separation costs spoof detection, and what fine-tuning wins back.

One command runs the study's experiment end to end on mixtures of the corpus eval split
(speakers and spoof systems unseen in training)::

    python -m amongus.recipes.results_table --corpus path/to/minispoof --out results/table

1. mixes ``--n-mixtures`` two-speaker mixtures from the corpus eval split with the project's
   :class:`amongus.mix.Mixer` (seeded; reused when the folder already holds them);
2. for every separator (oracle, passthrough, the shipped ConvTasNet 16 kHz and SepFormer
   8 kHz -> 16 kHz) and every classifier (clean-trained, fine-tuned on separated streams) runs
   :meth:`amongus.Pipeline.evaluate` with signal-based stream assignment;
3. scores the same classifiers on the clean single utterances of the eval split;
4. writes ``results.md``, ``results.csv`` and ``results.json`` (every number of every report,
   the model identities, the command and the seed) plus each run's full report folder.

Columns: multiclass (SS/SB/BB) accuracy and macro-F1, per-stream EER and AUC (streams assigned
to reference speakers by SI-SDR), "spoof present" EER and AUC (mixture level, no assignment) and
the separator's mean SI-SDR improvement. EERs follow the ASVspoof algorithm
(:func:`amongus.metrics.eer`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..defaults import MODELS_DIR
from ._cli import command_line, start_recipe_run
from .model_cards import portable_data

logger = logging.getLogger(__name__)

#: Rows of the table: label -> separator spec (registered name or shipped model folder).
DEFAULT_SEPARATORS: dict[str, str] = {
    "oracle": "oracle",
    "passthrough": "passthrough",
    "ConvTasNet 16 kHz": str(MODELS_DIR / "convtasnet-16k"),
    "SepFormer 8 kHz -> 16 kHz": str(MODELS_DIR / "sepformer-8k"),
}
#: Classifiers: label -> classifier spec (a shipped name, a folder of any family, a hub id).
DEFAULT_CLASSIFIERS: dict[str, str] = {
    "clean-trained": str(MODELS_DIR / "wavlm-spoof-clean"),
    "fine-tuned": str(MODELS_DIR / "wavlm-spoof-finetuned"),
}

COLUMNS = [
    "separator",
    "classifier",
    "composition_accuracy",
    "composition_macro_f1",
    "stream_eer",
    "stream_auc",
    "spoof_present_eer",
    "spoof_present_auc",
    "si_sdri_db",
    "n",
]
HEADERS = {
    "separator": "Separator",
    "classifier": "Classifier",
    "composition_accuracy": "SS/SB/BB acc.",
    "composition_macro_f1": "SS/SB/BB macro-F1",
    "stream_eer": "Stream EER",
    "stream_auc": "Stream AUC",
    "spoof_present_eer": "Spoof-present EER",
    "spoof_present_auc": "Spoof-present AUC",
    "si_sdri_db": "SI-SDRi (dB)",
    "n": "n",
}
PERCENT_COLUMNS = {"composition_accuracy", "composition_macro_f1", "stream_eer"}
PERCENT_COLUMNS |= {"spoof_present_eer"}


@dataclass
class TableSpec:
    """What the table is computed on."""

    corpus: str
    out_dir: str
    separators: dict[str, str]
    classifiers: dict[str, str]
    mixtures: str | None = None
    split: str = "eval"
    n_mixtures: int = 300
    seed: int = 7
    batch_size: int = 4
    threads: int | None = 2
    limit: int | None = None


def _get(metrics: dict | None, *keys: str) -> float | None:
    value: Any = metrics
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def mixture_row(separator: str, classifier: str, metrics: dict[str, Any], n: int) -> dict:
    """One table row from an :class:`~amongus.results.EvaluationReport`'s ``metrics``."""
    return {
        "separator": separator,
        "classifier": classifier,
        "composition_accuracy": _get(metrics, "composition", "accuracy"),
        "composition_macro_f1": _get(metrics, "composition", "macro", "f1"),
        "stream_eer": _get(metrics, "streams", "eer"),
        "stream_auc": _get(metrics, "streams", "auc"),
        "spoof_present_eer": _get(metrics, "spoof_present", "eer"),
        "spoof_present_auc": _get(metrics, "spoof_present", "auc"),
        "si_sdri_db": _get(metrics, "separation", "si_sdr_improvement_mean"),
        "n": n,
    }


def ensure_mixtures(spec: TableSpec) -> Path:
    """The eval mixtures manifest: ``spec.mixtures`` if given, else mixed now (or reused)."""
    if spec.mixtures:
        path = Path(spec.mixtures)
        return path / "mixtures.jsonl" if path.is_dir() else path
    from ..corpora import load_utterances
    from ..mix import Mixer, MixerConfig

    out = Path(spec.out_dir) / f"mixtures_{spec.split}"
    manifest = out / "mixtures.jsonl"
    listing = load_utterances(spec.corpus, split=spec.split)
    if not listing.utterances:
        raise ValueError(f"{spec.corpus}: no utterances in split {spec.split!r}")
    summary = Mixer(MixerConfig()).run(
        listing.utterances, out, n_mixtures=spec.n_mixtures, seed=spec.seed, split=spec.split,
        overwrite=True,  # this table's own mixtures: the same settings resume, others remake
    )  # fmt: skip
    logger.info("mixtures: %s", summary)
    return manifest


def _format(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in PERCENT_COLUMNS:
        return f"{100 * value:.1f}%"
    if column in ("stream_auc", "spoof_present_auc"):
        return f"{value:.3f}"
    if column == "si_sdri_db":
        return f"{value:.1f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = [
        "| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_format(c, row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def build_table(spec: TableSpec, *, progress: bool = True, command: str = "") -> dict[str, Any]:
    """Run every evaluation of the table and write ``results.{md,csv,json}``; return the JSON."""
    import torch

    from ..evaluate import evaluate_utterances
    from ..pipeline import Pipeline, load_classifier, load_pipeline_separator

    if spec.threads:
        torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = ensure_mixtures(spec)
    # any family (a shipped name such as "aasist", a folder, a hub id), each deciding at its
    # calibrated threshold when its folder stores one
    classifiers = {name: load_classifier(path) for name, path in spec.classifiers.items()}
    rows, runs = [], {}
    for sep_name, sep_spec in spec.separators.items():
        separator = load_pipeline_separator(sep_spec)
        for cls_name, classifier in classifiers.items():
            tag = f"{_slug(sep_name)}__{_slug(cls_name)}"
            logger.info("evaluating %s", tag)
            pipeline = Pipeline(
                separator=separator,
                classifier=classifier,
                assignment="signal",
                batch_size=spec.batch_size,
            )
            report = pipeline.evaluate(
                manifest, out_dir=out / "runs" / tag, progress=progress, limit=spec.limit
            )
            row = mixture_row(sep_name, cls_name, report.metrics, report.n_evaluated)
            if (
                sep_spec == "oracle"
            ):  # streams are the references: SI-SDRi only measures float error
                row["si_sdri_db"] = None
            rows.append(row)
            runs[tag] = {
                "eer_by_system": report.metrics.get("eer_by_system"),
                "separator": report.separator,
                "classifier": report.classifier,
                "rates": report.rates,
                "skipped": report.n_skipped,
                "elapsed_seconds": round(report.elapsed_seconds, 1),
            }
    clean_rows = []
    for cls_name, classifier in classifiers.items():
        report = evaluate_utterances(
            classifier,
            spec.corpus,
            split=spec.split,
            out_dir=out / "runs" / f"clean-utterances__{_slug(cls_name)}",
            progress=progress,
        )
        streams = report.metrics["streams"] or {}
        clean_rows.append(
            {
                "classifier": cls_name,
                "accuracy": streams.get("accuracy"),
                "eer": streams.get("eer"),
                "auc": streams.get("auc"),
                "n": report.n_evaluated,
                "eer_by_system": report.metrics.get("eer_by_system"),
            }
        )
    result = {
        "command": command,
        "corpus": spec.corpus,
        "split": spec.split,
        "mixtures": str(manifest),
        "n_mixtures": spec.n_mixtures,
        "seed": spec.seed,
        "separators": spec.separators,
        "classifiers": spec.classifiers,
        "rows": rows,
        "clean_utterances": clean_rows,
        "runs": runs,
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_outputs(out, result)
    return result


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    """``results.json`` (everything), ``results.csv`` (mixture rows) and ``results.md``."""
    # published with the docs: paths relative to the repository, the corpus as a placeholder
    result = portable_data(result)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(result["rows"])
    clean = [
        {
            "classifier": row["classifier"],
            "stream_eer": row["eer"],
            "stream_auc": row["auc"],
            "composition_accuracy": row["accuracy"],
            "n": row["n"],
        }
        for row in result["clean_utterances"]
    ]
    text = [
        "# Results: what separation costs spoof detection",
        "",
        f"Mixtures: `{result['mixtures']}` ({result['split']} split of `{result['corpus']}`, "
        f"seed {result['seed']}). Streams are assigned to reference speakers by SI-SDR "
        '(`assignment="signal"`).',
        "",
        markdown_table(result["rows"], COLUMNS),
        "",
        "Clean single utterances of the same split (no mixing, no separation; the accuracy "
        "column is per-utterance binary accuracy):",
        "",
        markdown_table(
            clean, ["classifier", "composition_accuracy", "stream_eer", "stream_auc", "n"]
        )
        .replace("SS/SB/BB acc.", "Accuracy")
        .replace("Stream EER", "EER")
        .replace("Stream AUC", "AUC"),
        "",
        f"Command: `{result['command']}` ({result['elapsed_seconds'] / 60:.1f} min).",
        "",
    ]
    (out / "results.md").write_text("\n".join(text), "utf-8")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _named(pairs: Sequence[str], option: str) -> dict[str, str]:
    named = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option} expects NAME=SPEC, got {pair!r}")
        named[name] = value
    return named


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.results_table",
        description="Separator x classifier results table on eval-split mixtures "
        "(Markdown, CSV, JSON).",
    )
    parser.add_argument("--corpus", required=True, help="ASVspoof-layout corpus root")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--mixtures", default=None, help="existing mixtures.jsonl (default: mix the eval split)"
    )
    parser.add_argument("--split", default="eval")
    parser.add_argument("--n-mixtures", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N only")
    parser.add_argument(
        "--separator",
        action="append",
        default=[],
        help="NAME=SPEC row (repeatable); default: oracle, passthrough, shipped models",
    )
    parser.add_argument(
        "--classifier",
        action="append",
        default=[],
        help="NAME=SPEC (repeatable): a shipped name (aasist...), a classifier folder of any "
        "family or a hub id; default: the shipped clean and fine-tuned WavLM models",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_recipe_run()
    spec = TableSpec(
        corpus=args.corpus,
        out_dir=args.out,
        separators=_named(args.separator, "--separator") or dict(DEFAULT_SEPARATORS),
        classifiers=_named(args.classifier, "--classifier") or dict(DEFAULT_CLASSIFIERS),
        mixtures=args.mixtures,
        split=args.split,
        n_mixtures=args.n_mixtures,
        seed=args.seed,
        batch_size=args.batch_size,
        threads=args.threads,
        limit=args.limit,
    )
    command = command_line("amongus.recipes.results_table", argv)
    build_table(spec, progress=not args.no_progress, command=command)
    print((Path(spec.out_dir) / "results.md").read_text("utf-8-sig"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
