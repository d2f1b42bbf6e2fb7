"""What separation does to spoof cues: oracle sources versus separated streams, cue by cue.

The study's untested hypothesis is that separation loses the cues a spoof detector relies on.
One command measures it on a Mixer manifest (reference sources recorded)::

    python -m amongus.recipes.cue_analysis --mixtures runs/mix/mixtures.jsonl --out runs/cues

1. runs a :class:`amongus.Pipeline` (``--preset``'s separator and classifier, or
   ``--separator``/``--classifier``) and the same classifier behind the ``"oracle"`` separator
   (the reference sources as streams) on every mixture;
2. pairs each reference source with its separated stream through the pipeline's own signal
   assignment (best permutation of -SI-SDR, :func:`amongus.scoring.assign_streams`);
3. computes the cues of :mod:`amongus.cues` on both, over the same instants: the oracle stream's
   active frames (:func:`amongus.cues.active_frames`) and its active span;
4. writes ``cues.csv`` (one row per reference source: cues of both, shifts = separated - oracle,
   the detector's spoof probability and error ``|p(spoof) - y|`` on both), ``summary.json``
   (shifts per class and per spoof system, how well each ``|shift|`` predicts the detector's
   error on the separated stream, skipped inputs with their reasons) and PNG plots.

Shift statistics: median and quartiles, and the Wilcoxon signed-rank test of "no shift"
(``scipy.stats.wilcoxon``). Prediction: Spearman's rank correlation (``scipy.stats.spearmanr``)
of ``|shift|`` with the per-stream error on the separated stream, and with the error change
(separated - oracle); the ROC AUC (``sklearn.metrics.roc_auc_score``) of ``|shift|`` as a score
for a wrong decision on the separated stream; the same statistics of ``-SI-SDR`` (separation
quality alone) are the yardstick a cue must beat. A statistic that is undefined (too few streams,
a constant input, one class only) is written as ``null`` with the count, never NaN.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import math
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cues import CUE_NAMES, CUE_UNITS, active_frames, cue_features, frame_length, hop_length
from ..labels import BONAFIDE, SPOOF
from ..manifest import Mixture

logger = logging.getLogger(__name__)

CSV_NAME = "cues.csv"
SUMMARY_NAME = "summary.json"
#: Fewest streams for a correlation, an AUC or a signed-rank test to be reported.
MIN_STREAMS_FOR_STATISTICS = 5
#: Frames within this many dB of the oracle source's loudest frame are its active frames.
ACTIVITY_THRESHOLD_DB = 40.0
#: The spoof-system name of bonafide sources in tables and plots ("-" in the manifests).
BONAFIDE_SYSTEM = "bonafide"

CUE_TITLES = {
    "high_band_share_db": "energy above 4 kHz (dB of total)",
    "zero_crossing_rate": "zero-crossing rate (1/s)",
    "spectral_flatness": "spectral flatness",
    "modulation_energy_db": "50-200 Hz envelope modulation (dB)",
}
ID_COLUMNS = [
    "mixture_id",
    "reference",
    "stream",
    "utt_id",
    "label",
    "system",
    "speaker",
    "si_sdr",
    "active_seconds",
    "spoof_probability_oracle",
    "spoof_probability_separated",
    "error_oracle",
    "error_separated",
    "error_change",
    "wrong_oracle",
    "wrong_separated",
]
CUE_COLUMNS = [f"{kind}_{cue}" for cue in CUE_NAMES for kind in ("oracle", "separated", "shift")]
COLUMNS = ID_COLUMNS + CUE_COLUMNS


@dataclass
class CueAnalysis:
    """The rows of one analysis and what it skipped.

    Attributes:
        rows: one dict per reference source (keys: :data:`COLUMNS`), every number finite.
        skipped: ``{"id", "reason"}`` per mixture or stream left out.
        separator, classifier: the identities of the analysed components.
        stream_rate: the rate (Hz) the cues were computed at (the classifier's).
        n_mixtures: mixtures read from the manifest (analysed or skipped).
        spoof_threshold: a stream is called spoof when ``p(spoof) >= spoof_threshold``.
    """

    rows: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    separator: str
    classifier: str
    stream_rate: int
    n_mixtures: int
    spoof_threshold: float = 0.5
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- analysis
def _resolved(mixture: Mixture, base_dir: Path) -> Mixture:
    """The record with relative paths made relative to the manifest's folder (as
    :meth:`amongus.Pipeline.evaluate` reads them)."""

    def resolve(path: str) -> str:
        candidate = Path(path)
        if candidate.is_absolute() or candidate.exists():
            return path
        return str(base_dir / candidate)

    sources = [dataclasses.replace(s, path=resolve(s.path)) for s in mixture.sources]
    return dataclasses.replace(mixture, path=resolve(mixture.path), sources=sources)


def _read_manifest(
    manifest: Path, limit: int | None
) -> Iterator[tuple[Mixture | None, dict[str, str] | None]]:
    from ..manifest import iter_jsonl

    for count, (line_number, mixture, problem) in enumerate(iter_jsonl(manifest, Mixture)):
        if limit is not None and count >= limit:
            return
        if problem is not None:
            yield None, {"id": f"{manifest.name}:{line_number}", "reason": problem}
        else:
            yield _resolved(mixture, manifest.parent), None


def _batches(entries: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(pipeline, mixtures: list[Mixture], skipped: list[dict[str, str]]) -> dict[str, Any]:
    """``{mixture_id: PipelineResult}`` of a batch; on failure, item by item, skipping (with
    the reason) the mixtures that still fail."""
    from ..audio import AudioError

    try:
        return {r.mixture_id: r for r in pipeline(mixtures)}
    except (AudioError, ValueError, RuntimeError, OSError) as error:
        if len(mixtures) == 1:
            skipped.append({"id": mixtures[0].mixture_id, "reason": _one_line(error)})
            return {}
    results: dict[str, Any] = {}
    for mixture in mixtures:
        results.update(_run(pipeline, [mixture], skipped))
    return results


def _one_line(error: Exception) -> str:
    from ..fsutil import one_line

    return one_line(error)


def _active_span(mask: np.ndarray, rate: int) -> tuple[int, int, np.ndarray]:
    """``(first sample, end sample, mask of the cropped signal)`` from the first to the last
    active frame: the cropped signal's frames are exactly those frames."""
    active = np.flatnonzero(mask)
    first, last = int(active[0]), int(active[-1])
    hop = hop_length(rate)
    return first * hop, last * hop + frame_length(rate), mask[first : last + 1]


def pair_rows(
    separated_result,
    oracle_result,
    *,
    spoof_threshold: float = 0.5,
    threshold_db: float = ACTIVITY_THRESHOLD_DB,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The rows of one mixture: each reference source's oracle stream and separated stream.

    Streams are paired with references by the pipelines' own signal assignments
    (:attr:`amongus.PipelineResult.assignment`); the cues of both are computed over the oracle
    stream's active span and frames.

    Args:
        separated_result: the separating pipeline's :class:`amongus.PipelineResult`.
        oracle_result: the oracle pipeline's result for the same mixture.
        spoof_threshold: decision threshold for ``wrong_*``.
        threshold_db: activity threshold (:func:`amongus.cues.active_frames`).

    Returns:
        ``(rows, skipped)``: one row per reference source (:data:`COLUMNS`); a source whose cues
        are undefined (its oracle stream is silent or shorter than a frame, its separated stream
        digital silence) is skipped with the reason.
    """
    mixture_id = separated_result.mixture_id
    mixture = separated_result.mixture
    if (
        separated_result.stream_for_reference() is None
        or oracle_result.stream_for_reference() is None
    ):
        return [], [
            {
                "id": mixture_id,
                "reason": f"no stream assignment ({separated_result.n_streams} streams for "
                f"{len(mixture.sources)} sources)",
            }
        ]
    rate = int(separated_result.stream_sample_rate)
    if int(oracle_result.stream_sample_rate) != rate:
        raise ValueError("the oracle and separated streams are at different rates")
    separated_of = separated_result.stream_for_reference()
    oracle_of = oracle_result.stream_for_reference()
    rows, skipped = [], []
    for reference, source in enumerate(mixture.sources):
        stream, oracle_stream = separated_of[reference], oracle_of[reference]
        truth = 1.0 if source.label == SPOOF else 0.0
        try:
            mask = active_frames(
                oracle_result.streams[oracle_stream], rate, threshold_db=threshold_db
            )
            start, end, span_mask = _active_span(mask, rate)
            oracle_cues = cue_features(
                oracle_result.streams[oracle_stream][start:end], rate, frame_mask=span_mask
            )
            separated_cues = cue_features(
                separated_result.streams[stream][start:end], rate, frame_mask=span_mask
            )
        except ValueError as error:
            skipped.append({"id": f"{mixture_id}/{source.utt_id}", "reason": str(error)})
            continue
        p_oracle = float(oracle_result.spoof_probability[oracle_stream])
        p_separated = float(separated_result.spoof_probability[stream])
        si_sdr = separated_result.assignment.si_sdr
        row: dict[str, Any] = {
            "mixture_id": mixture_id,
            "reference": reference,
            "stream": int(stream),
            "utt_id": source.utt_id,
            "label": source.label,
            "system": BONAFIDE_SYSTEM if source.label == BONAFIDE else source.system,
            "speaker": source.speaker,
            "si_sdr": None if si_sdr is None else float(si_sdr[reference]),
            "active_seconds": float(span_mask.sum() * hop_length(rate) / rate),
            "spoof_probability_oracle": p_oracle,
            "spoof_probability_separated": p_separated,
            "error_oracle": abs(p_oracle - truth),
            "error_separated": abs(p_separated - truth),
            "error_change": abs(p_separated - truth) - abs(p_oracle - truth),
            "wrong_oracle": int((p_oracle >= spoof_threshold) != bool(truth)),
            "wrong_separated": int((p_separated >= spoof_threshold) != bool(truth)),
        }
        for cue in CUE_NAMES:
            row[f"oracle_{cue}"] = oracle_cues[cue]
            row[f"separated_{cue}"] = separated_cues[cue]
            row[f"shift_{cue}"] = separated_cues[cue] - oracle_cues[cue]
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            skipped.append({"id": f"{mixture_id}/{source.utt_id}", "reason": f"non-finite {bad}"})
            continue
        rows.append(row)
    return rows, skipped


def analyse_cues(
    mixtures: str | Path,
    *,
    preset: str = "default",
    separator: Any = None,
    classifier: Any = None,
    limit: int | None = None,
    batch_size: int = 4,
    device: str = "cpu",
    spoof_threshold: float = 0.5,
    threshold_db: float = ACTIVITY_THRESHOLD_DB,
    progress: bool = True,
) -> CueAnalysis:
    """Compute the cues of every reference source and its separated stream.

    Args:
        mixtures: a ``mixtures.jsonl`` written by ``python -m amongus.mix`` (or its folder);
            the reference sources must be readable (their paths are in the records).
        preset: the :mod:`amongus.defaults` preset of the components not given.
        separator, classifier: components as :class:`amongus.Pipeline` takes them.
        limit: analyse the first ``limit`` mixtures only.
        batch_size: mixtures separated together.
        device: where the models run.
        spoof_threshold: decision threshold for the ``wrong_*`` columns.
        threshold_db: activity threshold of the oracle stream's frames.
        progress: show a progress bar.

    Returns:
        :class:`CueAnalysis`.

    Raises:
        FileNotFoundError: no manifest there.
        ValueError: a bad option, or a classifier rate without a band above 4 kHz (the cues
            are computed at the classifier's rate).
    """
    from tqdm.auto import tqdm

    from ..cues import HIGH_BAND_CUTOFF_HZ
    from ..manifest import count_records
    from ..pipeline import Pipeline

    manifest = Path(mixtures)
    if manifest.is_dir():
        manifest = manifest / "mixtures.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such mixture manifest")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    options = dict(
        assignment="signal",
        batch_size=batch_size,
        device=device,
        spoof_threshold=spoof_threshold,
        preset=preset,
    )
    separating = Pipeline(separator=separator, classifier=classifier, **options)
    # the same classifier instance judges both, so only the streams differ
    oracle = Pipeline(separator="oracle", classifier=separating.classifier, **options)
    rate = separating.sample_rate
    if rate <= 2 * HIGH_BAND_CUTOFF_HZ:
        raise ValueError(
            f"the classifier runs at {rate} Hz: its streams have no band above "
            f"{HIGH_BAND_CUTOFF_HZ:.0f} Hz to compare"
        )
    total = count_records(manifest, Mixture)
    total = total if limit is None else min(total, limit)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    n_mixtures = 0
    entries = _read_manifest(manifest, limit)
    with tqdm(total=total, desc="cues", unit="mixture", disable=not progress) as bar:
        for batch in _batches(entries, batch_size):
            n_mixtures += len(batch)
            records = []
            for mixture, problem in batch:
                if problem is not None:
                    skipped.append(problem)
                else:
                    records.append(mixture)
            if records:
                separated = _run(separating, records, skipped)
                # mixtures the separating pipeline refused are not run again
                oracles = _run(oracle, [m for m in records if m.mixture_id in separated], skipped)
                for mixture in records:
                    if mixture.mixture_id in separated and mixture.mixture_id in oracles:
                        new_rows, new_skipped = pair_rows(
                            separated[mixture.mixture_id],
                            oracles[mixture.mixture_id],
                            spoof_threshold=spoof_threshold,
                            threshold_db=threshold_db,
                        )
                        rows.extend(new_rows)
                        skipped.extend(new_skipped)
            bar.update(len(batch))
    for item in skipped:
        logger.info("skipped %s: %s", item["id"], item["reason"])
    return CueAnalysis(
        rows=rows,
        skipped=skipped,
        separator=separating.separator_identity,
        classifier=separating.classifier_identity,
        stream_rate=rate,
        n_mixtures=n_mixtures,
        spoof_threshold=spoof_threshold,
        source=str(manifest),
        extra={"activity_threshold_db": threshold_db, "preset": preset},
    )


# ---------------------------------------------------------------------------- statistics
def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def shift_statistics(oracle: Sequence[float], separated: Sequence[float]) -> dict[str, Any]:
    """Paired statistics of one cue over a group of streams.

    Returns:
        ``n``, medians of both, mean / median / quartiles of the shift (separated - oracle) and
        the two-sided Wilcoxon signed-rank p-value of "no shift" (``None`` below
        :data:`MIN_STREAMS_FOR_STATISTICS` streams or when every shift is 0).
    """
    from scipy.stats import wilcoxon

    oracle = np.asarray(oracle, dtype=np.float64)
    separated = np.asarray(separated, dtype=np.float64)
    shift = separated - oracle
    stats: dict[str, Any] = {"n": int(shift.size)}
    if not shift.size:
        return stats
    stats.update(
        oracle_median=float(np.median(oracle)),
        separated_median=float(np.median(separated)),
        shift_mean=float(shift.mean()),
        shift_median=float(np.median(shift)),
        shift_q25=float(np.quantile(shift, 0.25)),
        shift_q75=float(np.quantile(shift, 0.75)),
        wilcoxon_p=None,
    )
    if shift.size >= MIN_STREAMS_FOR_STATISTICS and np.any(shift != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats["wilcoxon_p"] = _finite_or_none(wilcoxon(shift).pvalue)
    return stats


def prediction_statistics(
    predictor: Sequence[float],
    error: Sequence[float],
    wrong: Sequence[int],
    error_change: Sequence[float] | None = None,
) -> dict[str, Any]:
    """How well a per-stream predictor (a cue's ``|shift|``, or ``-SI-SDR``) predicts the
    detector's error on the separated stream.

    Args:
        predictor: ``[N]`` values expected to grow with the error.
        error: ``[N]`` the error ``|p(spoof) - y|`` on the separated stream (y = 1 for spoof).
        wrong: ``[N]`` 1 where the separated stream's decision is wrong.
        error_change: ``[N]`` separated error - oracle error, optional.

    Returns:
        ``n``; ``spearman_error`` and ``spearman_error_p`` (rank correlation of the predictor
        with the error); ``spearman_error_change`` and its ``_p`` (with the error's change from
        oracle to separated); ``auc_wrong`` (ROC AUC of the predictor as a score for a wrong
        decision; 0.5 = no information) and ``n_wrong``.
        Each is ``None`` when undefined (fewer than :data:`MIN_STREAMS_FOR_STATISTICS`
        streams, a constant input, no wrong or no right decision).
    """
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    predictor = np.asarray(predictor, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    wrong = np.asarray(wrong, dtype=int)
    stats: dict[str, Any] = {
        "n": int(predictor.size),
        "n_wrong": int(wrong.sum()),
        "spearman_error": None,
        "spearman_error_p": None,
        "spearman_error_change": None,
        "spearman_error_change_p": None,
        "auc_wrong": None,
    }
    if predictor.size < MIN_STREAMS_FOR_STATISTICS:
        return stats
    targets = {"error": error}
    if error_change is not None:
        targets["error_change"] = np.asarray(error_change, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: undefined, written as None
        for name, target in targets.items():
            result = spearmanr(predictor, target)
            stats[f"spearman_{name}"] = _finite_or_none(result.statistic)
            stats[f"spearman_{name}_p"] = _finite_or_none(result.pvalue)
    if 0 < wrong.sum() < wrong.size:
        stats["auc_wrong"] = float(roc_auc_score(wrong, predictor))
    return stats


def _column(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([row[key] for row in rows], dtype=np.float64)


def summarise(analysis: CueAnalysis) -> dict[str, Any]:
    """The ``summary.json`` content: shifts per class and per spoof system, the detector's
    error on oracle and separated streams, and each cue's prediction of that error."""
    from ..cues import MODULATION_BAND_HZ

    rows = analysis.rows
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {
        "all": {"all": list(rows)},
        "by_class": {},
        "by_system": {},
    }
    for row in rows:
        groups["by_class"].setdefault(row["label"], []).append(row)
        groups["by_system"].setdefault(row["system"], []).append(row)
    shifts: dict[str, Any] = {}
    prediction: dict[str, Any] = {}
    for cue in CUE_NAMES:
        shifts[cue] = {
            level: {
                name: shift_statistics(
                    _column(members, f"oracle_{cue}"), _column(members, f"separated_{cue}")
                )
                for name, members in sorted(named.items())
            }
            for level, named in groups.items()
        }
        shifts[cue]["all"] = shifts[cue]["all"]["all"]

        def predict(members, cue=cue):
            return prediction_statistics(
                np.abs(_column(members, f"shift_{cue}")),
                _column(members, "error_separated"),
                _column(members, "wrong_separated").astype(int),
                _column(members, "error_change"),
            )

        prediction[cue] = {
            "all": predict(rows),
            "by_class": {
                name: predict(members) for name, members in sorted(groups["by_class"].items())
            },
        }
    # the yardstick: how well separation quality alone (-SI-SDR) predicts the same error
    with_si_sdr = [row for row in rows if row["si_sdr"] is not None]
    prediction["minus_si_sdr"] = {
        "all": prediction_statistics(
            -_column(with_si_sdr, "si_sdr"),
            _column(with_si_sdr, "error_separated"),
            _column(with_si_sdr, "wrong_separated").astype(int),
            _column(with_si_sdr, "error_change"),
        )
    }
    detector: dict[str, Any] = {}
    for level, named in (("all", {"all": rows}), ("by_class", groups["by_class"])):
        detector[level] = {}
        for name, members in sorted(named.items()):
            detector[level][name] = {
                kind: {
                    "mean_error": _finite_or_none(_column(members, f"error_{kind}").mean())
                    if members
                    else None,
                    "error_rate": _finite_or_none(_column(members, f"wrong_{kind}").mean())
                    if members
                    else None,
                }
                for kind in ("oracle", "separated")
            }
    detector["all"] = detector["all"]["all"]
    si_sdr = [row["si_sdr"] for row in rows if row["si_sdr"] is not None]
    return {
        "source": analysis.source,
        "separator": analysis.separator,
        "classifier": analysis.classifier,
        "stream_rate_hz": analysis.stream_rate,
        "spoof_threshold": analysis.spoof_threshold,
        **analysis.extra,
        "n_mixtures": analysis.n_mixtures,
        "n_streams": len(rows),
        "n_skipped": len(analysis.skipped),
        "skipped_reasons": dict(Counter(_reason(item["reason"]) for item in analysis.skipped)),
        "skipped": analysis.skipped,
        "mean_si_sdr_db": _finite_or_none(np.mean(si_sdr)) if si_sdr else None,
        "cues": {cue: {"unit": CUE_UNITS[cue], "title": CUE_TITLES[cue]} for cue in CUE_NAMES},
        "modulation_band_hz": list(MODULATION_BAND_HZ),
        "detector": detector,
        "shifts": shifts,
        "prediction": prediction,
    }


def _reason(text: str) -> str:
    from ..validation import reason_code

    return reason_code(text)


# ---------------------------------------------------------------------------- plots
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, path: Path) -> Path:
    from ..fsutil import atomic_write_bytes

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def _boxes(axes, groups: dict[str, np.ndarray], *, seed: int = 0) -> None:
    """Box plot with every point drawn over it (small groups: the points are the data)."""
    names = list(groups)
    values = [groups[name] for name in names]
    axes.boxplot(values, showfliers=False, widths=0.6)
    rng = np.random.default_rng(seed)
    for position, group in enumerate(values, start=1):
        jitter = rng.uniform(-0.15, 0.15, size=len(group))
        axes.plot(position + jitter, group, "o", markersize=3, alpha=0.6, color="tab:blue")
    axes.set_xticks(range(1, len(names) + 1))
    axes.set_xticklabels([f"{name}\n(n={len(groups[name])})" for name in names], fontsize=7)
    axes.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")


def _system_order(rows: Sequence[dict[str, Any]]) -> list[str]:
    systems = sorted({row["system"] for row in rows} - {BONAFIDE_SYSTEM})
    return (
        [BONAFIDE_SYSTEM] if any(r["system"] == BONAFIDE_SYSTEM for r in rows) else []
    ) + systems


def plot_cue_analysis(
    rows: Sequence[dict[str, Any]], out_dir: str | Path, *, label: str | None = None
) -> list[Path]:
    """Write the four figures of an analysis to ``out_dir`` and return their paths.

    * ``shifts_by_class.png``: shift (separated - oracle) per cue, bonafide vs spoof;
    * ``shifts_by_system.png``: shift per cue and spoof system;
    * ``oracle_vs_separated.png``: each stream's cue on the oracle vs the separated stream;
    * ``shift_vs_error.png``: ``|shift|`` against the detector's error on the separated stream,
      with Spearman's rho.

    ``label`` (e.g. the separator's identity) is added to every figure's title.

    Raises:
        ValueError: no rows.
        amongus.fsutil.OutputError: a figure cannot be written.
    """
    if not rows:
        raise ValueError("no analysed streams to plot")
    out_dir = Path(out_dir)
    suffix = "" if not label else f"\n{label}"
    paths = []
    labels = [name for name in (BONAFIDE, SPOOF) if any(r["label"] == name for r in rows)]
    colours = {BONAFIDE: "tab:green", SPOOF: "tab:red"}

    figure = _figure(3.2 * len(CUE_NAMES), 3.4)
    for axes, cue in zip(figure.subplots(1, len(CUE_NAMES)), CUE_NAMES, strict=True):
        _boxes(
            axes,
            {
                lab: _column([r for r in rows if r["label"] == lab], f"shift_{cue}")
                for lab in labels
            },
        )
        axes.set_title(CUE_TITLES[cue], fontsize=9)
        axes.set_ylabel(f"separated - oracle ({CUE_UNITS[cue]})", fontsize=8)
    figure.suptitle("Cue shift (separated - oracle) by class" + suffix, fontsize=10)
    paths.append(_save(figure, out_dir / "shifts_by_class.png"))

    systems = _system_order(rows)
    figure = _figure(max(6.0, 0.55 * len(systems) + 2), 2.4 * len(CUE_NAMES))
    for axes, cue in zip(figure.subplots(len(CUE_NAMES), 1), CUE_NAMES, strict=True):
        _boxes(
            axes,
            {s: _column([r for r in rows if r["system"] == s], f"shift_{cue}") for s in systems},
        )
        axes.set_title(CUE_TITLES[cue], fontsize=9)
        axes.set_ylabel(f"shift ({CUE_UNITS[cue]})", fontsize=8)
    figure.suptitle("Cue shift (separated - oracle) by spoof system" + suffix, fontsize=10)
    paths.append(_save(figure, out_dir / "shifts_by_system.png"))

    figure = _figure(3.2 * len(CUE_NAMES), 3.3)
    for axes, cue in zip(figure.subplots(1, len(CUE_NAMES)), CUE_NAMES, strict=True):
        for lab in labels:
            members = [r for r in rows if r["label"] == lab]
            axes.plot(
                _column(members, f"oracle_{cue}"),
                _column(members, f"separated_{cue}"),
                "o",
                markersize=3,
                alpha=0.7,
                color=colours[lab],
                label=lab,
            )
        low = min(_column(rows, f"oracle_{cue}").min(), _column(rows, f"separated_{cue}").min())
        high = max(_column(rows, f"oracle_{cue}").max(), _column(rows, f"separated_{cue}").max())
        axes.plot([low, high], [low, high], color="grey", linewidth=0.8, linestyle=":")
        axes.set_title(CUE_TITLES[cue], fontsize=9)
        axes.set_xlabel("oracle source", fontsize=8)
        axes.set_ylabel("separated stream", fontsize=8)
        axes.legend(fontsize=7)
    figure.suptitle("Cue on the oracle source vs its separated stream" + suffix, fontsize=10)
    paths.append(_save(figure, out_dir / "oracle_vs_separated.png"))

    figure = _figure(3.2 * len(CUE_NAMES), 3.3)
    error = _column(rows, "error_separated")
    for axes, cue in zip(figure.subplots(1, len(CUE_NAMES)), CUE_NAMES, strict=True):
        abs_shift = np.abs(_column(rows, f"shift_{cue}"))
        for lab in labels:
            chosen = np.array([r["label"] == lab for r in rows])
            axes.plot(
                abs_shift[chosen],
                error[chosen],
                "o",
                markersize=3,
                alpha=0.7,
                color=colours[lab],
                label=lab,
            )
        rho = prediction_statistics(abs_shift, error, _column(rows, "wrong_separated"))
        shown = "n/a" if rho["spearman_error"] is None else f"{rho['spearman_error']:+.2f}"
        axes.set_title(f"{CUE_TITLES[cue]}\nSpearman rho {shown}", fontsize=9)
        axes.set_xlabel(f"|shift| ({CUE_UNITS[cue]})", fontsize=8)
        axes.set_ylabel("detector error on the separated stream", fontsize=8)
        axes.set_ylim(-0.02, 1.02)
        axes.legend(fontsize=7)
    figure.suptitle(
        "|Cue shift| vs the detector's error |p(spoof) - y| on the separated stream" + suffix,
        fontsize=10,
    )
    paths.append(_save(figure, out_dir / "shift_vs_error.png"))
    return paths


# ---------------------------------------------------------------------------- outputs
def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    return buffer.getvalue()


def write_cue_analysis(
    analysis: CueAnalysis, out_dir: str | Path, *, plots: bool = True, command: str | None = None
) -> dict[str, Any]:
    """Write ``cues.csv``, ``summary.json`` and (with rows and ``plots``) the PNGs; returns the
    summary.

    Raises:
        amongus.fsutil.OutputError: a file cannot be written (named).
    """
    from ..fsutil import atomic_write_text

    out_dir = Path(out_dir)
    summary = summarise(analysis)
    if command is not None:
        summary = {"command": command, **summary}
    atomic_write_text(out_dir / CSV_NAME, _csv_text(analysis.rows))
    if plots and analysis.rows:
        summary["plots"] = [
            path.name
            for path in plot_cue_analysis(
                analysis.rows, out_dir, label=f"separator {analysis.separator}"
            )
        ]
    # allow_nan=False: a NaN that slipped through is an error here, never a file
    atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A short text table of the summary: median shift per class and prediction per cue."""
    lines = [
        f"separator {summary['separator']}, classifier {summary['classifier']}: "
        f"{summary['n_streams']} streams of {summary['n_mixtures']} mixtures, "
        f"{summary['n_skipped']} skipped",
    ]
    detector = summary["detector"]["all"]
    if detector["oracle"]["error_rate"] is not None:
        lines.append(
            f"decision error rate: oracle {detector['oracle']['error_rate']:.3f}, "
            f"separated {detector['separated']['error_rate']:.3f}"
        )

    def number(value, digits=2):
        return "n/a" if value is None else f"{value:+.{digits}f}"

    lines.append(
        f"{'cue':<22} {'median shift B':>15} {'median shift S':>15} {'rho(|shift|,err)':>17} "
        f"{'AUC(wrong)':>11}"
    )
    for cue in CUE_NAMES:
        by_class = summary["shifts"][cue]["by_class"]
        prediction = summary["prediction"][cue]["all"]
        auc = prediction["auc_wrong"]
        lines.append(
            f"{cue:<22} {number(by_class.get(BONAFIDE, {}).get('shift_median'), 3):>15} "
            f"{number(by_class.get(SPOOF, {}).get('shift_median'), 3):>15} "
            f"{number(prediction['spearman_error']):>17} "
            f"{'n/a' if auc is None else f'{auc:.2f}':>11}"
        )
    baseline = summary["prediction"]["minus_si_sdr"]["all"]
    auc = baseline["auc_wrong"]
    lines.append(
        f"{'-SI-SDR (yardstick)':<22} {'':>15} {'':>15} {number(baseline['spearman_error']):>17} "
        f"{'n/a' if auc is None else f'{auc:.2f}':>11}"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    from ..cli_options import add_component_options

    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.cue_analysis",
        description=(
            "What separation does to spoof cues: energy above 4 kHz, zero-crossing rate, "
            "spectral flatness and 50-200 Hz envelope modulation of each reference source "
            "(oracle) and its separated stream, per class and spoof system, and how well each "
            "shift predicts the detector's error. Writes cues.csv, summary.json and PNG plots."
        ),
    )
    parser.add_argument(
        "--mixtures",
        required=True,
        type=Path,
        help="mixtures.jsonl written by python -m amongus.mix (or its folder)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--preset", default="default", help="amongus.defaults preset")
    parser.add_argument("--limit", type=int, default=None, help="analyse the first N mixtures")
    parser.add_argument("--batch-size", type=int, default=4, help="mixtures per batch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument("--threshold", type=float, default=0.5, help="spoof probability threshold")
    parser.add_argument(
        "--activity-db",
        type=float,
        default=ACTIVITY_THRESHOLD_DB,
        help="frames within this many dB of the oracle source's loudest frame are analysed",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_component_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli_options import component_specs
    from ..fsutil import check_writable, one_line
    from ..locking import FolderLock
    from ._cli import command_line, start_recipe_run

    args = build_parser().parse_args(argv)
    start_recipe_run()
    try:
        with FolderLock(args.out, purpose="amongus.recipes.cue_analysis"):
            check_writable(args.out)
            analysis = analyse_cues(
                args.mixtures,
                preset=args.preset,
                **component_specs(args, preset=args.preset),
                limit=args.limit,
                batch_size=args.batch_size,
                device=args.device,
                spoof_threshold=args.threshold,
                threshold_db=args.activity_db,
                progress=not args.quiet,
            )
            summary = write_cue_analysis(
                analysis,
                args.out,
                plots=not args.no_plots,
                command=command_line("amongus.recipes.cue_analysis", argv),
            )
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"written to {args.out}")
    return 0


__all__ = [
    "COLUMNS",
    "CueAnalysis",
    "analyse_cues",
    "format_summary",
    "pair_rows",
    "plot_cue_analysis",
    "prediction_statistics",
    "shift_statistics",
    "summarise",
    "write_cue_analysis",
]


if __name__ == "__main__":
    sys.exit(main())
