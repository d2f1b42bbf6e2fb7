"""What the pipeline returns: one mixture's :class:`PipelineResult` and an :class:`EvaluationReport`.

An evaluation keeps one small row per mixture and per stream (scores and labels, never audio),
so its memory does not grow with the audio evaluated. The report computes its metrics from the
rows with :mod:`amongus.metrics`, and :meth:`EvaluationReport.save` writes ``report.json``,
``mixtures.csv``, ``streams.csv``, ``skipped.csv``, an ASVspoof-format score file and PNG plots.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .labels import BONAFIDE, SPOOF, composition_labels
from .manifest import Mixture
from .scoring import Assignment, describe_assignment

logger = logging.getLogger(__name__)

MIXTURE_COLUMNS = [
    "mixture_id",
    "path",
    "true_label",
    "predicted_label",
    "true_n_spoofed",
    "predicted_n_spoofed",
    "spoof_present_score",
    "bonafide_score",
    "n_streams",
    "assignment",
    "si_sdr_improvement",
    "systems",
    "languages",
]
STREAM_COLUMNS = [
    "mixture_id",
    "stream",
    "reference",
    "utt_id",
    "true_label",
    "predicted_label",
    "spoof_probability",
    "cm_score",
    "system",
    "language",
    "speaker",
    "si_sdr",
]
SKIPPED_COLUMNS = ["id", "path", "reason"]
SCORE_FILE = "scores_asvspoof.txt"
MIXTURE_SCORE_FILE = "scores_spoof_present.txt"


@dataclass
class PipelineResult:
    """The pipeline's output for one mixture.

    Attributes:
        streams: ``[S, T]`` separated streams at ``stream_sample_rate`` (the classifier's rate),
            in the separator's order.
        stream_sample_rate: rate of ``streams``.
        spoof_probability: ``[S]`` spoof probability per stream (higher = spoof).
        cm_score: ``[S]`` ASVspoof score per stream (higher = bonafide).
        predicted_labels: per-stream decision (``spoof_probability >= spoof_threshold``).
        spoof_threshold, threshold_source: the threshold and where it came from (the
            classifier's calibrated threshold, the caller, or the uncalibrated 0.5).
        mixture_label: the predicted composition (``"SB"``...), from the stream decisions.
        n_spoofed: predicted number of spoofed speakers.
        spoof_present_score: the highest stream spoof probability.
        bonafide_score: ASVspoof-oriented mixture score (the lowest stream ``cm_score``).
        rates: ``{"mixture": ..., "separator": ..., "classifier": ...}`` in Hz.
        assignment: how streams were matched to reference sources (``None`` without them).
        true_labels: the reference sources' labels when known (from a Mixture record).
        mixture: the Mixture record, when the input was one.
    """

    streams: np.ndarray
    stream_sample_rate: int
    spoof_probability: np.ndarray
    cm_score: np.ndarray
    predicted_labels: list[str]
    mixture_label: str
    n_spoofed: int
    spoof_present_score: float
    bonafide_score: float
    rates: dict[str, Any]
    spoof_threshold: float = 0.5
    threshold_source: str | None = None
    mixture_id: str | None = None
    path: str | None = None
    assignment: Assignment | None = None
    true_labels: list[str] | None = None
    si_sdr_improvement: float | None = None
    mixture: Mixture | None = field(default=None, repr=False)

    @property
    def n_streams(self) -> int:
        return len(self.predicted_labels)

    @property
    def true_label(self) -> str | None:
        """The true composition when the mixture's sources are known."""
        if self.true_labels is None:
            return None
        from .labels import composition_label

        return composition_label(self.true_labels)

    def stream_for_reference(self) -> list[int] | None:
        """For each reference source, the stream assigned to it (``None`` without assignment)."""
        if self.assignment is None or self.assignment.permutation is None:
            return None
        return list(self.assignment.stream_for_reference)

    def to_dict(self, *, include_audio: bool = False) -> dict[str, Any]:
        data = {
            "mixture_id": self.mixture_id,
            "path": self.path,
            "stream_sample_rate": self.stream_sample_rate,
            "spoof_probability": self.spoof_probability.tolist(),
            "cm_score": self.cm_score.tolist(),
            "predicted_labels": list(self.predicted_labels),
            "mixture_label": self.mixture_label,
            "n_spoofed": self.n_spoofed,
            "spoof_present_score": self.spoof_present_score,
            "bonafide_score": self.bonafide_score,
            "spoof_threshold": self.spoof_threshold,
            "threshold_source": self.threshold_source,
            "rates": dict(self.rates),
            "true_labels": self.true_labels,
            "true_label": self.true_label,
            "assignment": None if self.assignment is None else self.assignment.mode,
            "permutation": None
            if self.assignment is None or self.assignment.permutation is None
            else list(self.assignment.permutation),
            "si_sdr_improvement": self.si_sdr_improvement,
        }
        if include_audio:
            data["streams"] = self.streams.tolist()
        return data

    def __str__(self) -> str:
        streams = ", ".join(
            f"stream {i}: {label} (p_spoof={p:.3f}, cm={c:+.3f})"
            for i, (label, p, c) in enumerate(
                zip(self.predicted_labels, self.spoof_probability, self.cm_score, strict=True)
            )
        )
        head = f"{self.mixture_id or self.path or 'mixture'}: predicted {self.mixture_label}"
        if self.true_label is not None:
            head += f" (true {self.true_label})"
        return f"{head}; {streams}; spoof present score {self.spoof_present_score:.3f}"


# ---------------------------------------------------------------------------- metrics
def _finite(values) -> bool:
    return all(value is not None and math.isfinite(float(value)) for value in values)


def _quiet(function, *args, **kwargs):
    """Run a metric, logging (not printing) the 'AUC < 0.5' warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args, **kwargs)
    for warning in caught:
        logger.warning("%s", warning.message)
    return result


def decision_rule(spoof_threshold: float) -> str:
    """How a report's stream decisions are made from the scores, in words."""
    return f"spoof if spoof_probability >= {spoof_threshold:g}"


def compute_metrics(
    mixture_rows: list[dict[str, Any]],
    stream_rows: list[dict[str, Any]],
    *,
    spoof_threshold: float = 0.5,
) -> dict[str, Any]:
    """All report metrics from the rows (see :class:`EvaluationReport`).

    ``spoof_threshold`` is the threshold the rows' ``predicted_label`` decisions were made with;
    actDCF is the cost of those decisions, and each binary report records the rule.
    """
    from .metrics import binary_report, eer_by_group, multiclass_report

    rule = decision_rule(spoof_threshold)

    metrics: dict[str, Any] = {
        "composition": None,
        "n_spoofed": None,
        "spoof_present": None,
        "streams": None,
        "eer_by_system": None,
        "eer_by_language": None,
        "separation": None,
    }
    if mixture_rows:
        truth = [row["true_label"] for row in mixture_rows]
        predicted = [row["predicted_label"] for row in mixture_rows]
        # every composition of each mixture size seen (SS, SB, BB), so matrices keep their shape
        order = [
            label
            for size in sorted({len(label) for label in truth + predicted})
            for label in composition_labels(size)
        ]
        metrics["composition"] = multiclass_report(truth, predicted, labels=order)
        true_n = np.array([row["true_n_spoofed"] for row in mixture_rows])
        predicted_n = np.array([row["predicted_n_spoofed"] for row in mixture_rows])
        metrics["n_spoofed"] = {
            "accuracy": float(np.mean(true_n == predicted_n)),
            "mean_absolute_error": float(np.mean(np.abs(true_n - predicted_n))),
            "n": len(mixture_rows),
        }
        present = [SPOOF if n > 0 else BONAFIDE for n in true_n]
        predicted_present = [SPOOF if n > 0 else BONAFIDE for n in predicted_n]
        report = _quiet(
            binary_report,
            present,
            predicted_present,
            cm_scores=[row["bonafide_score"] for row in mixture_rows],
            decisions=f"spoof present if any stream: {rule}",
        )
        report["positive_class"] = "mixtures with at least one spoofed speaker"
        report["score"] = (
            "bonafide_score = min stream cm_score (higher = no spoof); spoof_present_score = "
            "max stream spoof probability"
        )
        metrics["spoof_present"] = report
        improvements = [row["si_sdr_improvement"] for row in mixture_rows]
        improvements = [value for value in improvements if value is not None]
        if improvements:
            metrics["separation"] = {
                "si_sdr_improvement_mean": float(np.mean(improvements)),
                "n": len(improvements),
            }
    labelled = [row for row in stream_rows if row.get("true_label") not in (None, "")]
    if labelled:
        truth = [row["true_label"] for row in labelled]
        predicted = [row["predicted_label"] for row in labelled]
        cm_scores = [row["cm_score"] for row in labelled]
        metrics["streams"] = _quiet(
            binary_report, truth, predicted, cm_scores=cm_scores, decisions=rule
        )
        systems = [row.get("system") or "-" for row in labelled]
        languages = [row.get("language") or "-" for row in labelled]
        if any(label == SPOOF for label in truth):
            metrics["eer_by_system"] = eer_by_group(
                cm_scores, truth, systems, bonafide_pool="all", predicted_labels=predicted
            )
        metrics["eer_by_language"] = eer_by_group(
            cm_scores, truth, languages, predicted_labels=predicted
        )
        si_sdrs = [row.get("si_sdr") for row in labelled if row.get("si_sdr") is not None]
        if si_sdrs:
            separation = metrics["separation"] or {}
            separation["si_sdr_mean"] = float(np.mean(si_sdrs))
            separation["n_streams"] = len(si_sdrs)
            metrics["separation"] = separation
    return metrics


# ---------------------------------------------------------------------------- report
@dataclass
class EvaluationReport:
    """Metrics of an evaluation run, with the rows they were computed from.

    ``kind`` is ``"mixtures"`` (Pipeline.evaluate) or ``"utterances"`` (single-stream
    evaluation, no separator: ``mixture_rows`` is empty and each utterance is a stream row).

    ``metrics`` holds ``composition`` (multiclass SS/SB/BB report and confusion matrix),
    ``n_spoofed`` (accuracy of the number of spoofed speakers), ``spoof_present`` (binary report
    with EER/minDCF/actDCF/AUC of "a spoof is present", from the highest stream spoof score:
    defined without any assignment), ``streams`` (per-stream binary report with
    EER/minDCF/actDCF/AUC, on assigned streams), ``eer_by_system`` and ``eer_by_language``
    (the same per group), and ``separation`` (mean SI-SDR and SI-SDRi). minDCF and actDCF are
    the ASVspoof 5 CM costs (:func:`amongus.metrics.min_dcf`); actDCF is the cost of the
    report's own decisions, made with ``spoof_threshold`` (where that threshold came from is
    ``threshold_source``; both are recorded in ``to_dict()["decision"]``).
    """

    kind: str
    mixture_rows: list[dict[str, Any]]
    stream_rows: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    classifier: str
    separator: str | None = None
    rates: dict[str, Any] = field(default_factory=dict)
    assignment: str | None = None
    spoof_threshold: float = 0.5
    threshold_source: str | None = None
    n_inputs: int = 0
    elapsed_seconds: float = 0.0
    source: str = ""
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(init=False)

    def __post_init__(self):
        self.metrics = compute_metrics(
            self.mixture_rows, self.stream_rows, spoof_threshold=self.spoof_threshold
        )

    @property
    def decision(self) -> dict[str, Any]:
        """The threshold the decisions (and so accuracy, F1 and actDCF) use, and its origin."""
        return {
            "rule": decision_rule(self.spoof_threshold),
            "spoof_threshold": self.spoof_threshold,
            "score": "spoof_probability",
            "source": self.threshold_source or "given by the caller (not calibrated)",
        }

    # -------------------------------------------------------------- summaries
    @property
    def n_evaluated(self) -> int:
        return len(self.mixture_rows) if self.kind == "mixtures" else len(self.stream_rows)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    @property
    def skipped_reasons(self) -> dict[str, int]:
        """``{reason: count}``; the reason is the text before any parenthesised detail."""
        return dict(Counter(item["reason"].split(" (")[0].split(": ")[0] for item in self.skipped))

    @property
    def assignment_description(self) -> str:
        return describe_assignment(self.assignment) if self.kind == "mixtures" else "-"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "classifier": self.classifier,
            "separator": self.separator,
            "rates": self.rates,
            "assignment": self.assignment,
            "assignment_description": self.assignment_description,
            "spoof_threshold": self.spoof_threshold,
            "decision": self.decision,
            "counts": {
                "inputs": self.n_inputs,
                "evaluated": self.n_evaluated,
                "skipped": self.n_skipped,
                "streams": len(self.stream_rows),
                "streams_with_labels": sum(
                    row.get("true_label") not in (None, "") for row in self.stream_rows
                ),
            },
            "skipped_reasons": self.skipped_reasons,
            "skipped": self.skipped,
            "elapsed_seconds": self.elapsed_seconds,
            "items_per_second": self.n_evaluated / self.elapsed_seconds
            if self.elapsed_seconds > 0
            else None,
            "notes": self.notes,
            "metrics": self.metrics,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON (``NaN`` is never written: non-finite numbers become ``null``)."""
        text = json.dumps(_clean(self.to_dict()), indent=2, allow_nan=False) + "\n"
        if path is not None:
            _atomic_write(Path(path), text)
        return text

    def to_csv(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``mixtures.csv`` (mixture evaluations), ``streams.csv`` and ``skipped.csv``."""
        out_dir = Path(out_dir)
        written = []
        if self.kind == "mixtures":
            written.append(_write_csv(out_dir / "mixtures.csv", MIXTURE_COLUMNS, self.mixture_rows))
        written.append(_write_csv(out_dir / "streams.csv", STREAM_COLUMNS, self.stream_rows))
        written.append(_write_csv(out_dir / "skipped.csv", SKIPPED_COLUMNS, self.skipped))
        return written

    def write_scores(self, out_dir: str | os.PathLike) -> list[Path]:
        """ASVspoof-format score files: per labelled stream (``scores_asvspoof.txt``, ids
        ``MIXTURE_ID/UTT_ID`` for mixtures) and, for mixtures, per mixture
        (``scores_spoof_present.txt``: label spoof when a spoof is present).

        Ids are written with :func:`amongus.metrics.encode_score_field` (a space becomes
        ``%20``) and read back exactly by :func:`amongus.metrics.read_asvspoof_scores`.

        Raises:
            DuplicateIdError: two rows share an id (nothing is written).
        """
        from .metrics import write_asvspoof_scores

        out_dir = Path(out_dir)
        labelled = [row for row in self.stream_rows if row.get("true_label") not in (None, "")]
        ids = [
            row["utt_id"] if self.kind == "utterances" else f"{row['mixture_id']}/{row['utt_id']}"
            for row in labelled
        ]
        written = [
            write_asvspoof_scores(
                out_dir / SCORE_FILE,
                ids,
                [row.get("system") or "-" for row in labelled],
                [row["true_label"] for row in labelled],
                [row["cm_score"] for row in labelled],
            )
        ]
        if self.kind == "mixtures":
            rows = self.mixture_rows
            written.append(
                write_asvspoof_scores(
                    out_dir / MIXTURE_SCORE_FILE,
                    [row["mixture_id"] for row in rows],
                    [row["true_label"] for row in rows],
                    [SPOOF if row["true_n_spoofed"] > 0 else BONAFIDE for row in rows],
                    [row["bonafide_score"] for row in rows],
                )
            )
        return written

    def plot(self, out_dir: str | os.PathLike) -> list[Path]:
        """PNG plots: ROC and DET (streams and spoof-present), confusion matrices."""
        from .metrics import InvertedScoresWarning

        # the metrics already reported inverted scores once; the plots' EER/AUC would repeat it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InvertedScoresWarning)
            return self._plot(Path(out_dir))

    def _plot(self, out_dir: Path) -> list[Path]:
        from .metrics import plot_confusion, plot_det, plot_roc, split_scores

        written: list[Path] = []
        pairs = {}
        labelled = [row for row in self.stream_rows if row.get("true_label") not in (None, "")]
        if labelled:
            pairs["streams"] = split_scores(
                [row["true_label"] for row in labelled], [row["cm_score"] for row in labelled]
            )
        if self.mixture_rows:
            pairs["spoof_present"] = split_scores(
                [SPOOF if row["true_n_spoofed"] > 0 else BONAFIDE for row in self.mixture_rows],
                [row["bonafide_score"] for row in self.mixture_rows],
            )
        for name, (bonafide, spoof) in pairs.items():
            if bonafide.size == 0 or spoof.size == 0:
                logger.info("no ROC/DET for %s: one class is missing", name)
                continue
            title = "per stream" if name == "streams" else "spoof present (per mixture)"
            written.append(plot_roc(bonafide, spoof, out_dir / f"roc_{name}.png", title=title))
            written.append(plot_det(bonafide, spoof, out_dir / f"det_{name}.png", title=title))
        for name in ("composition", "streams", "spoof_present"):
            report = self.metrics.get(name)
            if report:
                written.append(
                    plot_confusion(
                        report["confusion_matrix"],
                        report["labels"],
                        out_dir / f"confusion_{name}.png",
                        title=f"confusion: {name.replace('_', ' ')}",
                    )
                )
        import matplotlib.pyplot as plt

        plt.close("all")
        return written

    def save(self, out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
        """Write everything into ``out_dir``; returns ``{name: path}``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        self.to_json(out_dir / "report.json")
        paths.append(out_dir / "report.json")
        paths.extend(self.to_csv(out_dir))
        paths.extend(self.write_scores(out_dir))
        if plots:
            paths.extend(self.plot(out_dir))
        _atomic_write(out_dir / "report.txt", str(self) + "\n")
        paths.append(out_dir / "report.txt")
        return {path.name: path for path in paths}

    def __str__(self) -> str:
        return format_report(self)


def format_report(report: EvaluationReport) -> str:
    """A readable multi-line summary of a report."""
    lines = []
    what = "mixtures" if report.kind == "mixtures" else "utterances"
    lines.append(
        f"amongus evaluation of {report.n_evaluated} {what} ({report.n_skipped} skipped of "
        f"{report.n_inputs}) from {report.source or '-'}"
    )
    if report.separator is not None:
        lines.append(f"separator:  {report.separator}")
    lines.append(f"classifier: {report.classifier}")
    if report.rates:
        lines.append(
            "rates:      " + ", ".join(f"{key} {value}" for key, value in report.rates.items())
        )
    if report.kind == "mixtures":
        lines.append(f"assignment: {report.assignment_description}")
    from .metrics import ASVSPOOF5_C_FA, ASVSPOOF5_C_MISS, ASVSPOOF5_P_SPOOF

    decision = report.decision
    lines.append(
        f"spoof threshold: {report.spoof_threshold:g} ({decision['rule']}; source: "
        f"{decision['source']})"
    )
    lines.append(
        f"DCF: normalized, ASVspoof 5 CM costs p_spoof {ASVSPOOF5_P_SPOOF:g}, "
        f"C_miss {ASVSPOOF5_C_MISS:g}, C_fa {ASVSPOOF5_C_FA:g}; actDCF at the spoof threshold"
    )
    metrics = report.metrics
    if metrics["composition"]:
        comp = metrics["composition"]
        lines.append("")
        lines.append(
            f"mixture composition ({comp['n']} mixtures): accuracy {comp['accuracy']:.3f}, "
            f"macro F1 {comp['macro']['f1']:.3f}"
        )
        lines.append("  class  precision  recall     f1  support")
        for label, row in comp["per_class"].items():
            lines.append(
                f"  {label:<5}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}"
                f"  {row['support']:7d}"
            )
        lines.append("  confusion (rows true, columns predicted): " + " ".join(comp["labels"]))
        for label, counts in zip(comp["labels"], comp["confusion_matrix"], strict=True):
            lines.append(f"    {label:<5} " + " ".join(f"{count:4d}" for count in counts))
        count = metrics["n_spoofed"]
        lines.append(f"number of spoofed speakers: accuracy {count['accuracy']:.3f}")
        lines.append("spoof present (per mixture): " + _binary_line(metrics["spoof_present"]))
    if metrics["streams"]:
        lines.append("")
        label = "per stream" if report.kind == "mixtures" else "per utterance"
        lines.append(f"{label}: " + _binary_line(metrics["streams"]))
        if report.assignment == "labels":
            lines.append(
                "  note: streams assigned with the study's label method: optimistic per-stream "
                "numbers"
            )
    for title, key in (
        ("EER by spoof system", "eer_by_system"),
        ("EER by language", "eer_by_language"),
    ):
        groups = metrics.get(key)
        if groups and (len(groups) > 1 or key == "eer_by_system"):
            lines.append(f"{title}:")
            for name, entry in groups.items():
                value = "n/a" if entry["eer"] is None else f"{100 * entry['eer']:.2f}%"
                lines.append(
                    f"  {name:<12} EER {value:>7}  minDCF {_number(entry.get('min_dcf')):>5}  "
                    f"actDCF {_number(entry.get('act_dcf')):>5}  (bonafide "
                    f"{entry['n_bonafide']}, spoof {entry['n_spoof']})"
                )
    if metrics["separation"]:
        separation = metrics["separation"]
        parts = []
        if "si_sdr_mean" in separation:
            parts.append(f"mean SI-SDR {separation['si_sdr_mean']:.2f} dB")
        if "si_sdr_improvement_mean" in separation:
            parts.append(f"mean SI-SDRi {separation['si_sdr_improvement_mean']:.2f} dB")
        lines.append("separation: " + ", ".join(parts))
    if report.skipped:
        lines.append("")
        lines.append(f"skipped {report.n_skipped}: {report.skipped_reasons}")
        for item in report.skipped[:5]:
            lines.append(f"  {item['id']}: {item['reason']}")
        if report.n_skipped > 5:
            lines.append(f"  ... {report.n_skipped - 5} more in skipped.csv")
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _binary_line(report: dict[str, Any]) -> str:
    eer = "n/a" if report["eer"] is None else f"{100 * report['eer']:.2f}%"
    return (
        f"n {report['n']} (spoof {report['n_spoof']}), accuracy {report['accuracy']:.3f}, "
        f"precision {report['precision']:.3f}, recall {report['recall']:.3f}, "
        f"F1 {report['f1']:.3f}, EER {eer}, minDCF {_number(report.get('min_dcf'))}, "
        f"actDCF {_number(report.get('act_dcf'))}, AUC {_number(report['auc'])}"
    )


# ---------------------------------------------------------------------------- file helpers
def _clean(value):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to ``None``."""
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic_write(path: Path, text: str) -> None:
    # amongus.fsutil: temporary file, fsync, rename; the umask's mode; OutputError naming path
    from .fsutil import atomic_write_text

    atomic_write_text(path, text)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_value(row.get(key)) for key in columns})
    _atomic_write(path, buffer.getvalue())
    return path


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if not math.isfinite(float(value)) else repr(float(value))
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return value
