"""PNG figures for reports: ROC, DET (normal-deviate axes) and confusion matrices.

matplotlib is imported lazily and used through ``matplotlib.figure.Figure`` (Agg canvas), without
pyplot: no global figure state, nothing accumulates in long evaluation runs, and a notebook's
backend is left alone. Each function writes one PNG (atomically) and returns its path.
Scores are higher = bonafide, as in :mod:`amongus.metrics`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ScorePair = tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _curves(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    label: str,
    extra_curves: Mapping[str, ScorePair] | None,
) -> list[tuple[str, Any, Any]]:
    curves = [(label, bonafide_scores, spoof_scores)]
    for name, (bonafide, spoof) in (extra_curves or {}).items():
        curves.append((name, bonafide, spoof))
    return curves


def _save(figure: Any, path: str | os.PathLike) -> Path:
    """Render to memory, then write atomically: a full disk never leaves a 0-byte PNG, and the
    error (:class:`amongus.fsutil.OutputError`) names the file."""
    import io

    from .fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    image_format = Path(path).suffix.lstrip(".").lower() or "png"
    figure.savefig(buffer, format=image_format, dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_roc(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    *,
    label: str = "classifier",
    title: str = "ROC",
    extra_curves: Mapping[str, ScorePair] | None = None,
) -> Path:
    """ROC curve (spoofs accepted vs bonafide accepted) with the AUC in the legend.

    ``extra_curves`` maps a legend name to another ``(bonafide_scores, spoof_scores)`` pair
    (e.g. before and after fine-tuning on one figure).
    """
    from amongus.metrics import auc_score, roc_points

    figure = _figure(4.5, 4.5)
    axes = figure.subplots()
    for name, bonafide, spoof in _curves(bonafide_scores, spoof_scores, label, extra_curves):
        points = roc_points(bonafide, spoof)
        auc = auc_score(bonafide, spoof, warn_inverted=False)
        axes.plot(points.x, points.y, label=f"{name} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("false acceptance rate (spoof accepted)")
    axes.set_ylabel("bonafide accepted (1 - FRR)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


_DET_TICKS = [0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95, 0.99]


def plot_det(
    bonafide_scores: Sequence[float] | np.ndarray,
    spoof_scores: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    *,
    label: str = "classifier",
    title: str = "DET",
    extra_curves: Mapping[str, ScorePair] | None = None,
) -> Path:
    """DET curve on normal-deviate axes (``scipy.stats.norm.ppf`` of the error rates), with the
    EER point marked and given in the legend."""
    from scipy.stats import norm

    from amongus.metrics import det_points, eer

    figure = _figure(4.5, 4.5)
    axes = figure.subplots()
    all_rates = []
    for name, bonafide, spoof in _curves(bonafide_scores, spoof_scores, label, extra_curves):
        points = det_points(bonafide, spoof)
        n_min = min(np.size(bonafide), np.size(spoof))
        floor = min(0.5 / max(n_min, 1), 0.05)
        far = np.clip(points.x, floor, 1 - floor)
        frr = np.clip(points.y, floor, 1 - floor)
        all_rates.extend([far, frr])
        value, _ = eer(bonafide, spoof)
        (line,) = axes.plot(norm.ppf(far), norm.ppf(frr), label=f"{name} (EER {100 * value:.2f}%)")
        rate = float(np.clip(value, floor, 1 - floor))
        axes.plot(norm.ppf(rate), norm.ppf(rate), "o", color=line.get_color())
    low = min(float(np.min(rates)) for rates in all_rates)
    ticks = [tick for tick in _DET_TICKS if tick >= low * 0.999] or _DET_TICKS
    positions = norm.ppf(ticks)
    labels = [f"{100 * tick:g}" for tick in ticks]
    axes.set_xticks(positions, labels)
    axes.set_yticks(positions, labels)
    limits = (norm.ppf(min(ticks[0], low)), norm.ppf(ticks[-1]))
    axes.set_xlim(*limits)
    axes.set_ylim(*limits)
    axes.plot(limits, limits, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("false acceptance rate (%)")
    axes.set_ylabel("false rejection rate (%)")
    axes.set_title(title)
    axes.legend(loc="upper right", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str = "confusion matrix",
    normalize: bool = False,
) -> Path:
    """Confusion matrix (rows true, columns predicted) with counts (or row shares) in the cells.

    ``confusion`` and ``labels`` are those of :func:`amongus.metrics.multiclass_report` or
    :func:`amongus.metrics.binary_report`.
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    labels = [str(label) for label in labels]
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix of shape {matrix.shape} for {len(labels)} labels")
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = 1.2 + 0.9 * len(labels)
    figure = _figure(size + 1, size)
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    peak = matrix.max() if matrix.size else 0
    for row in range(len(labels)):
        for column in range(len(labels)):
            value = matrix[row, column]
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            color = "white" if peak and value > peak / 2 else "black"
            axes.text(column, row, text, ha="center", va="center", color=color)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    return _save(figure, path)


def _validation_points(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of a learning curve worth drawing, by step: finite ``si_sdri``, step 0 (the
    untrained model, often tens of dB below the rest) left out."""
    points = [
        row
        for row in rows
        if int(row.get("step", 0)) > 0
        and row.get("si_sdri") is not None
        and np.isfinite(float(row["si_sdri"]))
    ]
    return sorted(points, key=lambda row: int(row["step"]))


def plot_learning_curve(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    title: str = "separator training",
) -> Path:
    """A separator run's learning curve: validation SI-SDRi (dB, left axis) and the running
    training loss (negative SI-SDR, dB, right axis) against the training step.

    ``rows`` are the lines of a run's ``learning_curve.jsonl``
    (:mod:`amongus.recipes.train_separator`): ``step``, ``si_sdri`` and optionally
    ``train_loss`` and ``elapsed_s`` (seconds of training; shown on a top axis as minutes).
    The step-0 row (the untrained model, often tens of dB below the rest) is left out so that
    the scale shows the progress. Raises ``ValueError`` when no later row has a finite
    ``si_sdri``.
    """
    points = _validation_points(rows)
    if not points:
        raise ValueError("no validation rows with a finite si_sdri to plot")
    steps = [int(row["step"]) for row in points]
    figure = _figure(6.5, 3.8)
    axes = figure.subplots()
    axes.plot(steps, [float(row["si_sdri"]) for row in points], "o-", label="validation SI-SDRi")
    best = max(points, key=lambda row: float(row["si_sdri"]))
    axes.annotate(
        f"best {float(best['si_sdri']):.2f} dB",
        (int(best["step"]), float(best["si_sdri"])),
        textcoords="offset points",
        xytext=(0, 8),
        ha="center",
        fontsize="small",
    )
    axes.set_xlabel("training step")
    axes.set_ylabel("validation SI-SDRi (dB)")
    axes.margins(y=0.15)
    losses = [(int(r["step"]), float(r["train_loss"])) for r in points if r.get("train_loss")]
    if losses:
        twin = axes.twinx()
        loss_steps, loss_values = zip(*losses, strict=True)
        twin.plot(
            loss_steps, loss_values, "s--", color="tab:orange", label="training loss (-SI-SDR)"
        )
        twin.set_ylabel("training loss, -SI-SDR (dB)")
        handles = axes.get_legend_handles_labels()
        extra = twin.get_legend_handles_labels()
        axes.legend(
            handles[0] + extra[0], handles[1] + extra[1], loc="lower left", fontsize="small"
        )
    else:
        axes.legend(loc="lower left", fontsize="small")
    timed = [row for row in points if row.get("elapsed_s") is not None]
    if len(timed) >= 2 and steps[-1] > 0:
        minutes = float(timed[-1]["elapsed_s"]) / 60
        axes.set_title(f"{title} ({steps[-1]} steps, {minutes:.0f} min of training)")
    else:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_learning_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike,
    *,
    title: str = "separator runs",
) -> Path:
    """Validation SI-SDRi (dB) of several separator runs against the training step, one line
    per run, to compare runs that share a validation set (for example the same data with and
    without more training speakers).

    ``runs`` maps a label to the rows of that run's ``learning_curve.jsonl`` (as in
    :func:`plot_learning_curve`; step-0 rows and non-finite values are left out). Raises
    ``ValueError`` naming the run that has no row to draw.
    """
    if not runs:
        raise ValueError("no runs to plot")
    figure = _figure(6.5, 3.8)
    axes = figure.subplots()
    for label, rows in runs.items():
        points = _validation_points(rows)
        if not points:
            raise ValueError(f"{label}: no validation rows with a finite si_sdri to plot")
        steps = [int(row["step"]) for row in points]
        values = [float(row["si_sdri"]) for row in points]
        axes.plot(steps, values, "o-", markersize=3, label=f"{label} (best {max(values):.2f} dB)")
    axes.set_xlabel("training step")
    axes.set_ylabel("validation SI-SDRi (dB)")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)

