"""Splitting a job into shards and putting the shards' results back together.

Used by ``python -m amongus.mix --shard i/n`` and by ``accelerate launch -m amongus.evaluate``:
shard ``i`` of ``n`` is the ``i``-th of ``n`` contiguous blocks of the items, the blocks' sizes
differing by at most one (the first ``total % n`` blocks get one more), which is how
``accelerate.PartialState.split_between_processes`` cuts a list. Contiguous blocks keep the
order of the items: the results of shards ``0..n-1`` concatenated in order are the results of
the unsharded run, in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_COUNTED_NOTE = re.compile(r"^(\d+) (.*)$", re.DOTALL)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises:
        ValueError: not of the form ``i/n`` or out of range.
    """
    match = _SHARD.match(str(text))
    if match is None:
        raise ValueError(f"shard must be INDEX/COUNT such as 0/4, got {text!r}")
    return check_shard(int(match.group(1)), int(match.group(2)))


def check_shard(index: int, count: int) -> tuple[int, int]:
    """``(index, count)`` checked: ``count >= 1`` and ``0 <= index < count`` (``ValueError``)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need COUNT >= 1 and 0 <= INDEX < COUNT")
    return int(index), int(count)


def shard_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """``(start, stop)`` of shard ``index`` of ``count`` over ``total`` items (contiguous,
    sizes differ by at most one; an empty block when ``count > total``)."""
    index, count = check_shard(index, count)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    size, extra = divmod(total, count)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def merge_notes(notes: Sequence[Sequence[str]]) -> list[str]:
    """The notes of several shards' reports as one list: a note that starts with a count
    (``"3 mixture(s) had ..."``) is summed over the shards, any other kept once, in order."""
    counts: dict[str, int] = {}
    plain: dict[str, None] = {}
    order: list[tuple[str, str]] = []
    for shard_notes in notes:
        for note in shard_notes:
            match = _COUNTED_NOTE.match(note)
            if match is not None:
                text = match.group(2)
                if text not in counts:
                    order.append(("count", text))
                counts[text] = counts.get(text, 0) + int(match.group(1))
            elif note not in plain:
                plain[note] = None
                order.append(("plain", note))
    return [f"{counts[text]} {text}" if kind == "count" else text for kind, text in order]


def merge_reports(reports: Sequence[Any], *, elapsed_seconds: float | None = None):
    """One :class:`amongus.results.EvaluationReport` from the reports of shards ``0..n-1``
    (given in shard order) of one evaluation, its metrics computed once over all the rows.

    The rows, skipped entries, input counts, rates and notes are those of the unsharded run;
    ``elapsed_seconds`` is the given wall time (default: the slowest shard's).

    Raises:
        ValueError: no reports, or reports of different runs (kind, models, assignment,
            threshold or source differ).
    """
    from .results import EvaluationReport

    if not reports:
        raise ValueError("no shard reports to merge")
    first = reports[0]
    same = ("kind", "classifier", "separator", "assignment", "spoof_threshold", "source")
    for report in reports[1:]:
        for name in same:
            if getattr(report, name) != getattr(first, name):
                raise ValueError(
                    f"shard reports of different runs: {name} {getattr(report, name)!r} "
                    f"!= {getattr(first, name)!r}"
                )
    rates: dict[str, Any] = {}
    for report in reports:
        for key, value in report.rates.items():
            if isinstance(value, list):
                rates[key] = sorted(set(rates.get(key, [])) | set(value))
            else:
                rates.setdefault(key, value)
    return EvaluationReport(
        kind=first.kind,
        mixture_rows=[row for report in reports for row in report.mixture_rows],
        stream_rows=[row for report in reports for row in report.stream_rows],
        skipped=[item for report in reports for item in report.skipped],
        classifier=first.classifier,
        separator=first.separator,
        rates=rates,
        assignment=first.assignment,
        spoof_threshold=first.spoof_threshold,
        threshold_source=first.threshold_source,
        n_inputs=sum(report.n_inputs for report in reports),
        elapsed_seconds=(
            max(report.elapsed_seconds for report in reports)
            if elapsed_seconds is None
            else elapsed_seconds
        ),
        source=first.source,
        notes=merge_notes([report.notes for report in reports]),
    )


__all__ = ["check_shard", "merge_notes", "merge_reports", "parse_shard", "shard_bounds"]
