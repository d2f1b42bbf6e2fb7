"""Calibrate countermeasures on the real-speech dev part and measure them on its eval part.

The parts are those of :mod:`amongus.recipes.real_speech` (by speaker, following the corpus
recipe; ``eval`` holds nothing a shipped model trained on).

* :func:`calibrate`: score the ``dev`` part, take the dev-set EER point as the decision threshold
  (:func:`amongus.classifiers.threshold.eer_threshold`) and, with ``write=True``, store it in the
  classifier's folder (``config.json``, key ``amongus.decision_threshold``), where
  ``Pipeline``, ``python -m amongus.evaluate`` and ``--single`` find it.
* :func:`evaluate_real_speech`: every classifier on the ``eval`` part, single utterances, and on
  two-speaker mixtures of it made by :class:`amongus.mix.Mixer` (default preset, seeded),
  separated by the default separator and by the oracle (the reference sources: what separation
  costs shows as the gap), each at the classifier's calibrated threshold. Writes
  ``results.md``, ``results.json``, DET figures, and each run's full report under ``runs/``.

Command line: ``python -m amongus.recipes.real_speech calibrate|evaluate`` (see that module).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..labels import BONAFIDE, SPOOF
from ..manifest import Utterance

logger = logging.getLogger(__name__)

#: The shipped countermeasures evaluated by default (registered names).
DEFAULT_CLASSIFIERS = ("aasist", "wavlm-spoof-clean", "wavlm-spoof-finetuned")
DEFAULT_N_MIXTURES = 40
DEFAULT_SEED = 0
ORACLE = "oracle"
SINGLE = "single utterances"


# ---------------------------------------------------------------------------- helpers
def classifier_folder(spec: Any) -> Path | None:
    """The folder a classifier spec loads from: a registered shipped name, a folder path, or a
    config dict naming either; ``None`` otherwise (a hub id, a weight file, an instance)."""
    from ..defaults import MODELS_DIR, SHIPPED_CLASSIFIERS

    if isinstance(spec, dict):
        spec = spec.get("name") or spec.get("path")
    if isinstance(spec, str) and spec in SHIPPED_CLASSIFIERS:
        return MODELS_DIR / SHIPPED_CLASSIFIERS[spec]
    if isinstance(spec, str | os.PathLike) and Path(spec).expanduser().is_dir():
        return Path(spec).expanduser()
    return None


def describe_data(utterances: Sequence[Utterance], part: str) -> str:
    """One line naming a part's speakers and systems by label (for thresholds and tables)."""
    bonafide = sorted({u.speaker for u in utterances if u.label == BONAFIDE})
    spoof_speakers = sorted({u.speaker for u in utterances if u.label == SPOOF})
    systems = sorted({u.system for u in utterances if u.label == SPOOF})
    n_bonafide = sum(u.label == BONAFIDE for u in utterances)
    n_spoof = len(utterances) - n_bonafide
    text = (
        f"real-speech {part} part (../shared/data/real, split by "
        f"amongus.recipes.real_speech): {n_bonafide} bonafide of {', '.join(bonafide) or '-'}; "
        f"{n_spoof} spoof of {', '.join(spoof_speakers) or '-'} by {', '.join(systems) or '-'}"
    )
    if part in ("dev", "eval"):
        # the part is that of the corpus recipe's speaker table: say what that means for the
        # models trained with the recipe (the shipped WavLM classifiers)
        text += (
            f"; these speakers are in the corpus recipe's {part} split too: models trained "
            "with that recipe never trained on them"
            + (" (they chose checkpoints on them)" if part == "dev" else "")
        )
    return text


def _labels_and_scores(report) -> tuple[list[str], list[float], list[float]]:
    rows = [row for row in report.stream_rows if row.get("true_label") in (BONAFIDE, SPOOF)]
    return (
        [row["true_label"] for row in rows],
        [float(row["cm_score"]) for row in rows],
        [float(row["spoof_probability"]) for row in rows],
    )


# ---------------------------------------------------------------------------- calibration
@dataclass
class Calibration:
    """What :func:`calibrate` found.

    Attributes:
        name: the classifier as given.
        threshold: the calibrated :class:`~amongus.classifiers.threshold.DecisionThreshold`.
        report: the dev-part evaluation (scores of every dev utterance).
        written: the ``config.json`` the threshold was stored in (``None`` without ``write``).
        before: ``{"threshold", "source", "bonafide_called_spoof", "spoof_called_spoof"}`` for
            the threshold the classifier used before (its stored one or 0.5).
        after: the same at the new threshold.
    """

    name: str
    threshold: Any
    report: Any
    written: Path | None
    before: dict[str, Any]
    after: dict[str, Any]

    def __str__(self) -> str:
        t = self.threshold

        def counts(side: dict[str, Any]) -> str:
            return (
                f"bonafide called spoof {side['bonafide_called_spoof']}/{t.n_bonafide}, spoof "
                f"called spoof {side['spoof_called_spoof']}/{t.n_spoof}"
            )

        lines = [
            f"{self.name}: dev EER {100 * t.dev_eer:.2f}% on {t.n_bonafide} bonafide + "
            f"{t.n_spoof} spoof",
            f"  calibrated threshold: cm_score <= {t.cm_score:.4f} "
            f"(spoof_probability >= {t.spoof_probability:.6g}): {counts(self.after)}",
            f"  before ({self.before['source']}): spoof_probability >= "
            f"{self.before['threshold']:.6g}: {counts(self.before)}",
        ]
        lines.append(
            f"  written to {self.written}" if self.written else "  not written (use --write)"
        )
        return "\n".join(lines)


def _decision_counts(labels, probabilities, threshold: float) -> dict[str, int]:
    called = [p >= threshold for p in probabilities]
    return {
        "bonafide_called_spoof": sum(
            c for c, y in zip(called, labels, strict=True) if y == BONAFIDE
        ),
        "spoof_called_spoof": sum(c for c, y in zip(called, labels, strict=True) if y == SPOOF),
    }


def calibrate(
    classifier: Any,
    dev: str | os.PathLike | Sequence[Utterance],
    *,
    write: bool = False,
    batch_size: int = 1,
    device: str = "cpu",
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Calibration:
    """Calibrate a classifier's decision threshold at the dev-set EER point.

    Args:
        classifier: a registered name (``"aasist"``...), a folder, a config dict.
        dev: a split folder or real-speech folder (its ``dev`` part,
            :func:`amongus.recipes.real_speech.load_part`), a JSONL utterance manifest, or
            utterances.
        write: store the threshold in the classifier's folder ``config.json``
            (:func:`amongus.classifiers.threshold.write_decision_threshold`).
        batch_size: classifier windows per forward (1 is fastest for AASIST on a CPU).
        out_dir: also save the dev evaluation report there.
        command: the command line to record with the threshold.

    Returns:
        A :class:`Calibration`.

    Raises:
        ValueError: the dev data lacks one class, or ``write`` for a classifier without a folder.
        RealSpeechError: ``dev`` is neither a split folder nor a real-speech folder.
    """
    from ..classifiers.threshold import (
        DecisionThreshold,
        eer_threshold,
        resolve_spoof_threshold,
        weights_digest,
        write_decision_threshold,
    )
    from ..evaluate import evaluate_utterances
    from ..pipeline import load_classifier
    from .model_cards import portable_command
    from .real_speech import load_part

    folder = classifier_folder(classifier)
    if write and folder is None:
        raise ValueError(
            f"cannot store a threshold for {classifier!r}: only a classifier folder (or a "
            "shipped name) has a config.json to hold it"
        )
    if isinstance(dev, str | os.PathLike):
        utterances = load_part(dev, "dev")
    else:
        utterances = list(dev)
    loaded = load_classifier(classifier, device=device)
    before_threshold, before_source = resolve_spoof_threshold(loaded, None)
    report = evaluate_utterances(
        loaded, utterances, batch_size=batch_size, progress=progress, out_dir=out_dir
    )
    labels, cm_scores, probabilities = _labels_and_scores(report)
    value, dev_eer = eer_threshold(cm_scores, labels)
    n_bonafide = labels.count(BONAFIDE)
    threshold = DecisionThreshold(
        cm_score=value,
        source=(
            f"dev-set EER point on the real-speech dev part ({n_bonafide} bonafide, "
            f"{len(labels) - n_bonafide} spoof; dev EER {100 * dev_eer:.1f}%)"
        ),
        method="dev-set EER point (amongus.classifiers.threshold.eer_threshold)",
        data=describe_data(utterances, "dev"),
        dev_eer=dev_eer,
        n_bonafide=n_bonafide,
        n_spoof=len(labels) - n_bonafide,
        weights_sha256=None if folder is None else weights_digest(folder),
        command=None if command is None else portable_command(command),
    )
    written = write_decision_threshold(folder, threshold) if write else None
    return Calibration(
        name=str(classifier),
        threshold=threshold,
        report=report,
        written=written,
        before={
            "threshold": before_threshold,
            "source": before_source,
            **_decision_counts(labels, probabilities, before_threshold),
        },
        after={
            "threshold": threshold.spoof_probability,
            **_decision_counts(labels, probabilities, threshold.spoof_probability),
        },
    )


# ---------------------------------------------------------------------------- evaluation
COLUMNS = [
    "classifier",
    "input",
    "n",
    "eer",
    "min_dcf",
    "act_dcf",
    "auc",
    "bonafide_called_spoof",
    "n_bonafide",
    "spoof_called_spoof",
    "n_spoof",
    "bonafide_called_spoof_at_0_5",
    "composition_accuracy",
    "n_mixtures",
    "spoof_present_eer",
    "si_sdr_improvement",
    "spoof_threshold",
    "threshold_source",
    "seconds",
]


def table_row(classifier: str, input_name: str, report) -> dict[str, Any]:
    """One row of the real-speech table from an evaluation report (per stream or utterance)."""
    streams = report.metrics["streams"] or {}
    matrix = streams.get("confusion_matrix") or [[0, 0], [0, 0]]
    labels, _, probabilities = _labels_and_scores(report)
    composition = report.metrics.get("composition") or {}
    present = report.metrics.get("spoof_present") or {}
    separation = report.metrics.get("separation") or {}
    return {
        "classifier": classifier,
        "input": input_name,
        "n": streams.get("n", 0),
        "eer": streams.get("eer"),
        "min_dcf": streams.get("min_dcf"),
        "act_dcf": streams.get("act_dcf"),
        "auc": streams.get("auc"),
        "bonafide_called_spoof": matrix[0][1],
        "n_bonafide": streams.get("n_bonafide", 0),
        "spoof_called_spoof": matrix[1][1],
        "n_spoof": streams.get("n_spoof", 0),
        "bonafide_called_spoof_at_0_5": _decision_counts(labels, probabilities, 0.5)[
            "bonafide_called_spoof"
        ],
        "composition_accuracy": composition.get("accuracy"),
        "n_mixtures": composition.get("n"),
        "spoof_present_eer": present.get("eer"),
        "si_sdr_improvement": separation.get("si_sdr_improvement_mean"),
        "spoof_threshold": report.spoof_threshold,
        "threshold_source": report.decision["source"],
        "seconds": round(report.elapsed_seconds, 1),
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The table of :func:`evaluate_real_speech` as Markdown."""
    header = (
        "| Classifier | Input | n | EER | minDCF | actDCF | AUC | bonafide called spoof "
        "(at 0.5) | spoof called spoof | SS/SB/BB acc. |"
    )
    lines = [header, "|" + "---|" * 10]
    for row in rows:
        accuracy = row["composition_accuracy"]
        lines.append(
            f"| {row['classifier']} | {row['input']} | {row['n']} | {_percent(row['eer'])} | "
            f"{_number(row['min_dcf'])} | {_number(row['act_dcf'])} | {_number(row['auc'])} | "
            f"{row['bonafide_called_spoof']}/{row['n_bonafide']} "
            f"({row['bonafide_called_spoof_at_0_5']}) | "
            f"{row['spoof_called_spoof']}/{row['n_spoof']} | "
            f"{'-' if accuracy is None else _percent(accuracy)} |"
        )
    return "\n".join(lines)


def _det_figures(reports: dict[tuple[str, str], Any], out_dir: Path) -> list[Path]:
    """One DET figure per input, a curve per classifier."""
    from ..metrics import split_scores
    from ..plots import plot_det

    written = []
    inputs = list(dict.fromkeys(input_name for _, input_name in reports))
    for input_name in inputs:
        curves = {}
        for (classifier, name), report in reports.items():
            labels, cm_scores, _ = _labels_and_scores(report)
            if name == input_name and BONAFIDE in labels and SPOOF in labels:
                curves[classifier] = split_scores(labels, cm_scores)
        if not curves:
            continue
        first, *others = curves
        slug = "".join(c if c.isalnum() else "-" for c in input_name.lower()).strip("-")
        written.append(
            plot_det(
                *curves[first],
                out_dir / f"det-{slug}.png",
                label=first,
                title=f"real speech, eval part: {input_name}",
                extra_curves={name: curves[name] for name in others},
            )
        )
    return written


@dataclass
class RealSpeechResults:
    """What :func:`evaluate_real_speech` wrote: ``rows`` (see :data:`COLUMNS`), ``files``."""

    rows: list[dict[str, Any]]
    files: dict[str, Path]
    info: dict[str, Any]

    def markdown(self) -> str:
        return markdown_table(self.rows)


def make_eval_mixtures(
    utterances: Sequence[Utterance],
    out_dir: str | os.PathLike,
    *,
    n_mixtures: int = DEFAULT_N_MIXTURES,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> Path:
    """Two-speaker mixtures of the eval part with the Mixer's default preset (seeded; an
    earlier run with the same settings is reused). Returns the ``mixtures.jsonl`` path."""
    from ..mix import Mixer, MixerConfig

    out_dir = Path(out_dir)
    Mixer(MixerConfig.from_preset("default")).run(
        utterances,
        out_dir,
        n_mixtures=n_mixtures,
        seed=seed,
        workers=1,
        split="eval",
        progress=progress,
    )
    return out_dir / "mixtures.jsonl"


def evaluate_real_speech(
    eval_source: str | os.PathLike | Sequence[Utterance],
    out_dir: str | os.PathLike,
    *,
    classifiers: Sequence[Any] | Mapping[str, Any] = DEFAULT_CLASSIFIERS,
    separators: Mapping[str, Any] | None = None,
    n_mixtures: int = DEFAULT_N_MIXTURES,
    seed: int = DEFAULT_SEED,
    batch_size: int = 1,
    device: str = "cpu",
    progress: bool = True,
    plots: bool = True,
    command: str | None = None,
) -> RealSpeechResults:
    """Evaluate countermeasures on the real-speech eval part, single and in mixtures.

    Args:
        eval_source: a split folder or real-speech folder (its ``eval`` part), a JSONL
            utterance manifest, or utterances.
        out_dir: results folder: ``results.md``, ``results.json``, ``det-*.png``,
            ``mixtures/`` (the mixtures) and ``runs/<classifier>/<input>/`` (full reports).
        classifiers: names or specs (a mapping gives them table labels); each decides at its
            calibrated threshold (0.5 without one, said in the table's source column).
        separators: ``{label: spec}`` for the mixtures; default: the default preset's separator
            and the oracle. ``{}``: single utterances only. ``n_mixtures=0`` does the same.
        n_mixtures, seed: the mixtures (Mixer default preset; reused when already made).
        batch_size: classifier windows per forward (1 is fastest for AASIST on a CPU).

    Returns:
        :class:`RealSpeechResults`.
    """
    from ..defaults import PRESETS, default_components
    from ..evaluate import evaluate_utterances
    from ..pipeline import Pipeline, load_classifier, load_pipeline_separator
    from .model_cards import portable_command, portable_data
    from .real_speech import load_part

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(eval_source, str | os.PathLike):
        utterances = load_part(eval_source, "eval")
    else:
        utterances = list(eval_source)
    if not isinstance(classifiers, Mapping):
        classifiers = {str(spec): spec for spec in classifiers}
    if separators is None:
        default_separator = PRESETS["default"].separator
        separators = {
            default_separator: default_components()["separator"],
            ORACLE: ORACLE,
        }
    mixtures = None
    if separators and n_mixtures > 0:
        mixtures = make_eval_mixtures(
            utterances, out_dir / "mixtures", n_mixtures=n_mixtures, seed=seed, progress=progress
        )
    loaded_separators = {
        label: load_pipeline_separator(spec, device=device) for label, spec in separators.items()
    }
    reports: dict[tuple[str, str], Any] = {}
    rows = []
    for label, spec in classifiers.items():
        classifier = load_classifier(spec, device=device)
        logger.info("%s: %d eval utterances", label, len(utterances))
        report = evaluate_utterances(
            classifier, utterances, batch_size=batch_size, progress=progress
        )
        report.save(out_dir / "runs" / _slug(label) / "single", plots=plots)
        reports[(label, SINGLE)] = report
        rows.append(table_row(label, SINGLE, report))
        if mixtures is None:
            continue
        for separator_label, separator in loaded_separators.items():
            pipeline = Pipeline(
                separator=separator,
                classifier=classifier,
                batch_size=1,
                classifier_batch_size=batch_size,
                device=device,
            )
            report = pipeline.evaluate(mixtures, progress=progress)
            input_name = f"{separator_label} streams"
            report.save(out_dir / "runs" / _slug(label) / _slug(separator_label), plots=plots)
            reports[(label, input_name)] = report
            rows.append(table_row(label, input_name, report))
    files: dict[str, Path] = {}
    if plots:
        for path in _det_figures(reports, out_dir):
            files[path.name] = path
    info = {
        "command": None if command is None else portable_command(command),
        "eval_data": describe_data(utterances, "eval"),
        "n_utterances": len(utterances),
        "n_mixtures": n_mixtures if mixtures is not None else 0,
        "mixer": "amongus.mix.Mixer, preset 'default'",
        "seed": seed,
        "separators": {label: str(spec) for label, spec in separators.items()},
        "classifiers": {label: reports[(label, SINGLE)].classifier for label in classifiers},
        "decision": "each classifier at its calibrated threshold (threshold_source), "
        "bonafide called spoof also counted at 0.5",
        "dcf": "ASVspoof 5 CM costs: p_spoof 0.05, C_miss 1, C_fa 10 (amongus.metrics)",
        "seconds": round(time.perf_counter() - started, 1),
    }
    files["results.json"] = out_dir / "results.json"
    files["results.json"].write_text(
        json.dumps(portable_data({"info": info, "rows": rows}), indent=2) + "\n",
        encoding="utf-8",
    )
    files["results.md"] = out_dir / "results.md"
    files["results.md"].write_text(
        f"# Real speech, eval part\n\n{info['eval_data']}\n\n{markdown_table(rows)}\n",
        encoding="utf-8",
    )
    return RealSpeechResults(rows=rows, files=files, info=info)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "x"
