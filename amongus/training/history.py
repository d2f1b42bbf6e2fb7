"""Training history: one row per epoch, written as ``history.csv`` and ``history.png``.

Columns: ``epoch, global_step, train_loss, val_loss, val_accuracy, val_eer, val_auc,
val_composition_accuracy, val_spoof_present_eer, learning_rate, epoch_seconds,
epoch_cpu_seconds`` (wall-clock and process CPU time of the training pass). A metric that is
undefined (e.g. an EER with no spoofed stream in validation) is written as an empty cell, never
as NaN. Both files are written atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from .stream_cache import _atomic_write_bytes, atomic_write_text

HISTORY_COLUMNS = (
    "epoch",
    "global_step",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_eer",
    "val_auc",
    "val_composition_accuracy",
    "val_spoof_present_eer",
    "learning_rate",
    "epoch_seconds",
    "epoch_cpu_seconds",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def write_history_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Write the epoch rows (dicts with :data:`HISTORY_COLUMNS` keys) as CSV, atomically.

    Keys of the rows beyond :data:`HISTORY_COLUMNS` (joint training's ``val_si_sdri``...) follow
    them, in the order they first appear.
    """
    columns = list(HISTORY_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return atomic_write_text(path, buffer.getvalue())


def read_history_csv(path: str | os.PathLike) -> list[dict[str, float | int | None]]:
    """Read a ``history.csv`` back (empty cells become ``None``)."""
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, float | int | None] = {}
            for key, value in raw.items():
                if value == "":
                    row[key] = None
                elif key in ("epoch", "global_step"):
                    row[key] = int(value)
                else:
                    row[key] = float(value)
            rows.append(row)
    return rows


def plot_history(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Loss curves (train, validation) and validation metrics per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def series(column: str) -> tuple[list[int], list[float]]:
        points = [
            (row["epoch"], float(row[column]))
            for row in rows
            if row.get(column) is not None and math.isfinite(float(row[column]))
        ]
        return [p[0] for p in points], [p[1] for p in points]

    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for column, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        xs, ys = series(column)
        if xs:
            loss_axis.plot(xs, ys, marker="o", label=label)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cross-entropy")
    loss_axis.set_title("loss")
    for column, label in (
        ("val_accuracy", "stream accuracy"),
        ("val_eer", "stream EER"),
        ("val_composition_accuracy", "composition accuracy"),
        ("val_spoof_present_eer", "spoof-present EER"),
    ):
        xs, ys = series(column)
        if xs:
            metric_axis.plot(xs, ys, marker="o", label=label)
    metric_axis.set_xlabel("epoch")
    metric_axis.set_ylim(-0.02, 1.02)
    metric_axis.set_title("validation")
    for axis in (loss_axis, metric_axis):
        if axis.get_lines():
            axis.legend(loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    path = Path(path)
    _atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))
    return path
