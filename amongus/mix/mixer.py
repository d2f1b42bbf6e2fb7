"""The Mixer: plan mixtures, render them in worker processes, resume after a crash.

Output of ``Mixer(config).run(utterances, out_dir, n_mixtures=..., seed=...)``::

    out_dir/audio/<mixture_id>.flac   one file per mixture, each written atomically
    out_dir/mixtures.jsonl            Mixture records (amongus.manifest), in index order
    out_dir/summary.json              MixSummary: counts, bad inputs, overlap statistics, speed
    out_dir/.mix_journal.jsonl        one line per finished mixture (what a rerun skips)
    out_dir/metadata.txt              the study's metadata lines (thesis preset only)

Mixture paths in the manifest are relative to ``out_dir``.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AudioError, save_audio
from ..manifest import Mixture, MixtureSource, Utterance
from .augment import draw_augmentations
from .config import MixerConfig
from .plan import (
    STREAM_AUGMENT,
    STREAM_PLACEMENT,
    SourceSampler,
    draw_levels,
    draw_placement,
    fingerprint,
    mixture_ids,
    mixture_rng,
    scan_utterances,
    settings_key,
)
from .render import (
    FRAME_SECONDS,
    REFERENCE_DBFS,
    SourceCache,
    active_rms,
    activity,
    place,
    unnormalised_mixture,
)
from .thesis import write_thesis_metadata

logger = logging.getLogger(__name__)

JOURNAL_NAME = ".mix_journal.jsonl"
MANIFEST_NAME = "mixtures.jsonl"
SUMMARY_NAME = "summary.json"


@dataclass
class MixSummary:
    """What a run did: counts, skipped inputs, overlap statistics and speed."""

    out_dir: str
    n_requested: int
    n_written: int = 0  # rendered by this run
    n_resumed: int = 0  # found finished by an earlier (interrupted) run
    n_utterances: int = 0
    n_usable: int = 0
    bad_inputs: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), skipped
    n_downmixed: int = 0  # multi-channel utterances averaged to mono
    n_resampled: int = 0  # utterances at another rate than the mixtures
    compositions: dict[str, int] = field(default_factory=dict)
    presence_redraws: int = 0  # source draws rejected by the presence guarantee
    overlap_seconds_mean: float = 0.0
    overlap_seconds_min: float = 0.0
    n_without_overlap: int = 0  # mixtures where the sources are never active together
    n_absent_source: int = 0  # mixtures with a source that is never active
    workers: int = 1
    elapsed_seconds: float = 0.0

    @property
    def mixtures_per_second(self) -> float:
        return self.n_written / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def bad_input_reasons(self) -> dict[str, int]:
        return dict(Counter(reason.split(":")[0].split(" (")[0] for _, reason in self.bad_inputs))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad_inputs"] = [list(item) for item in self.bad_inputs]
        data["bad_input_reasons"] = self.bad_input_reasons
        data["mixtures_per_second"] = self.mixtures_per_second
        return data

    def __str__(self) -> str:
        lines = [
            f"mixtures: {self.n_written + self.n_resumed}/{self.n_requested} in {self.out_dir} "
            f"({self.n_written} made, {self.n_resumed} resumed; {self.elapsed_seconds:.1f} s, "
            f"{self.mixtures_per_second:.1f}/s on {self.workers} worker(s))",
            f"compositions: {dict(sorted(self.compositions.items()))}",
            f"utterances: {self.n_usable} usable of {self.n_utterances}; "
            f"{len(self.bad_inputs)} skipped{f' {self.bad_input_reasons}' if self.bad_inputs else ''}; "
            f"{self.n_downmixed} downmixed to mono; {self.n_resampled} resampled",
            f"overlap (all sources active): mean {self.overlap_seconds_mean:.2f} s, "
            f"min {self.overlap_seconds_min:.2f} s; {self.n_without_overlap} mixture(s) without "
            f"overlap, {self.n_absent_source} with an absent source; "
            f"{self.presence_redraws} source redraw(s) for presence",
        ]
        for path, reason in self.bad_inputs[:10]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.bad_inputs) > 10:
            lines.append(f"  ... {len(self.bad_inputs) - 10} more in summary.json")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Work done for one mixture (in a worker process or inline)
# ----------------------------------------------------------------------------------------------
@dataclass
class _WorkerState:
    config: MixerConfig
    utterances: Sequence[Utterance]
    seed: int
    split: str
    out_dir: Path
    cache: SourceCache


_STATE: _WorkerState | None = None


def _init_worker(config_dict, utterances, seed, split, out_dir) -> None:
    global _STATE
    config = MixerConfig.from_dict(config_dict)
    _STATE = _WorkerState(
        config, utterances, seed, split, Path(out_dir), SourceCache(config.cache_mb * 2**20)
    )


def _run_task(task: tuple) -> dict[str, Any]:
    assert _STATE is not None, "worker not initialised"
    return make_mixture(_STATE, *task)


def _source_gains(
    windows: list[np.ndarray], levels: list[float], rate: int, config: MixerConfig
) -> tuple[list[float], list[float | None], list[float | None]]:
    """Linear gains, gain_db and loudness (LUFS) per source for the drawn levels."""
    gains, gains_db, loudness = [], [], []
    for window, level in zip(windows, levels, strict=True):
        if config.level_mode == "gain":
            gain = level
            gains_db.append(20 * math.log10(level))
            loudness.append(None)
        elif config.level_mode == "db":
            rms = active_rms(window, rate, config.vad_threshold_db)
            reference = 10 ** ((REFERENCE_DBFS + level) / 20)
            gain = reference / rms if rms > 0 else 1.0
            gains_db.append(level)
            loudness.append(None)
        else:
            import pyloudnorm

            measured = -math.inf
            if window.shape[0] >= int(0.4 * rate):
                measured = pyloudnorm.Meter(rate).integrated_loudness(window)
            if math.isfinite(measured):
                gain = 10 ** ((level - measured) / 20)
                loudness.append(level)
            else:  # too short or silent for a loudness measure: equalise the RMS instead
                rms = active_rms(window, rate, config.vad_threshold_db)
                gain = 10 ** (level / 20) / rms if rms > 0 else 1.0
                loudness.append(None)
            gains_db.append(20 * math.log10(gain))
        gains.append(float(gain))
    return gains, gains_db, loudness


def make_mixture(
    state: _WorkerState,
    index: int,
    attempt: int,
    mixture_id: str,
    utterance_indices: Sequence[int],
    key: str,
) -> dict[str, Any]:
    """Render and save one planned mixture; return its record or why it could not be made."""
    config = state.config
    utterances = [state.utterances[i] for i in utterance_indices]
    natives = []
    for position, utterance in zip(utterance_indices, utterances, strict=True):
        try:
            natives.append(state.cache.native(utterance.path))
        except AudioError as error:
            return {"status": "bad", "utterance": position, "path": error.path,
                    "reason": error.problem}  # fmt: skip
    rate = config.sample_rate or natives[0][1]
    audios = [state.cache.at_rate(u.path, rate) for u in utterances]
    references = [state.cache.reference_energy(u.path, rate) for u in utterances]
    n = len(audios)

    rng = mixture_rng(state.seed, index, attempt, STREAM_PLACEMENT)
    frame = FRAME_SECONDS
    for _ in range(config.placement_attempts):
        placement = draw_placement(rng, [a.shape[0] for a in audios], rate, config)
        levels = draw_levels(rng, n, config)
        windows = [
            a[s : s + length]
            for a, s, length in zip(audios, placement.starts, placement.lengths, strict=True)
        ]
        gains, gains_db, loudness = _source_gains(windows, levels, rate, config)
        placed = place(
            audios,
            placement.offsets,
            placement.starts,
            placement.lengths,
            gains,
            placement.num_samples,
        )
        active = activity(placed, references, gains, rate, config.vad_threshold_db)
        overlap_seconds = float(np.all(active, axis=0).sum() * frame)
        if config.min_overlap is None or overlap_seconds >= config.min_overlap:
            break
    else:
        return {"status": "presence", "index": index, "overlap_seconds": overlap_seconds}

    augmentations = draw_augmentations(
        mixture_rng(state.seed, index, attempt, STREAM_AUGMENT), n, config
    )
    sources = [
        MixtureSource(
            utt_id=u.utt_id,
            path=os.path.abspath(u.path),
            label=u.label,
            speaker=u.speaker,
            system=u.system,
            language=u.language,
            offset=int(placement.offsets[k]),
            start=int(placement.starts[k]),
            length=int(placement.lengths[k]),
            gain=gains[k],
            gain_db=gains_db[k],
            loudness_lufs=loudness[k],
            orig_sample_rate=int(natives[k][1]),
        )
        for k, u in enumerate(utterances)
    ]
    placed_together = max(
        0,
        min(o + length for o, length in zip(placement.offsets, placement.lengths, strict=True))
        - max(placement.offsets),
    )
    mixture = Mixture(
        mixture_id=mixture_id,
        path=f"audio/{mixture_id}.{config.audio_format}",
        sample_rate=int(rate),
        sources=sources,
        num_samples=int(placement.num_samples),
        seed=int(state.seed),
        augmentations=augmentations,
        overlap_seconds=round(overlap_seconds, 6),
        split=state.split,
        extra={
            "index": int(index),
            "attempt": int(attempt),
            "rng": [int(state.seed), int(index), int(attempt)],
            "preset": config.preset,
            "n_spoofed": sum(u.label == "spoof" for u in utterances),
            "active_seconds": [round(float(a.sum() * frame), 6) for a in active],
            "placed_overlap_seconds": round(placed_together / rate, 6),
            "delayed_source": placement.delayed,
            "overlap_ratio": placement.overlap_ratio,
        },
    )
    unnormalised = unnormalised_mixture(placed, mixture)
    peak = float(np.max(np.abs(unnormalised))) if unnormalised.size else 0.0
    if config.peak is not None and peak > 1e-9:  # an all-zero mixture is left as is
        mixture.normalization = float(config.peak / peak)
    audio = (unnormalised * mixture.normalization).astype(np.float32)
    if not np.all(np.isfinite(audio)):  # pragma: no cover - inputs are checked for NaN
        raise ValueError(
            f"mixture {mixture_id}: non-finite samples from {[u.path for u in utterances]}"
        )
    save_audio(state.out_dir / mixture.path, audio, rate)
    return {"status": "ok", "index": index, "key": key, "record": mixture_dict(mixture)}


def mixture_dict(mixture: Mixture) -> dict[str, Any]:
    """``mixture.to_dict()`` without ``dataclasses.asdict``'s deep copy (the records hold only
    plain values); equal to it, key for key."""
    data = {f.name: getattr(mixture, f.name) for f in fields(Mixture)}
    data["sources"] = [dict(source.__dict__) for source in mixture.sources]
    data["augmentations"] = [dict(a) for a in mixture.augmentations]
    data["extra"] = dict(mixture.extra)
    data["label"] = mixture.label
    return data


# ----------------------------------------------------------------------------------------------
# Journal (resume)
# ----------------------------------------------------------------------------------------------
def _read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """Finished mixtures by fingerprint; a truncated last line (kill -9) is ignored."""
    entries: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return entries
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
                entries[entry["key"]] = entry["record"]
            except (ValueError, KeyError, TypeError):
                continue
    return entries


def _write_journal(path: Path, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as handle:
        for key, record in entries:
            handle.write(json.dumps({"key": key, "record": record}, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _write_manifest(path: Path, records: list[Mixture], dicts: list[dict[str, Any]]) -> None:
    """Validate the records and write the manifest lines from their dicts (as ``write_jsonl``
    would: ``json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False)``), atomically."""
    for record in records:
        record.validate()
    text = "".join(json.dumps(d, sort_keys=True, ensure_ascii=False) + "\n" for d in dicts)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _remove_partial_files(out_dir: Path) -> int:
    """Delete temporary files left by a killed run (``save_audio`` writes ``.name.*.part``)."""
    removed = 0
    for folder in (out_dir, out_dir / "audio"):
        if folder.is_dir():
            for leftover in folder.glob(".*.part"):
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed


# ----------------------------------------------------------------------------------------------
# Mixer
# ----------------------------------------------------------------------------------------------
class Mixer:
    """Makes labelled overlapped mixtures from single-speaker utterances.

    >>> summary = Mixer(MixerConfig.from_preset("thesis")).run(utts, "out", n_mixtures=100, seed=0)
    ... # doctest: +SKIP
    """

    def __init__(self, config: MixerConfig | None = None):
        self.config = config or MixerConfig()
        self.config.validate()

    def run(
        self,
        utterances: Sequence[Utterance],
        out_dir: str | os.PathLike,
        *,
        n_mixtures: int,
        seed: int,
        workers: int | None = None,
        split: str = "-",
        progress: bool = True,
    ) -> MixSummary:
        """Make ``n_mixtures`` mixtures into ``out_dir``; skip those an earlier run finished.

        ``workers=None`` uses every core; the audio and the manifest are byte-identical for any
        number of workers. Returns the run's :class:`MixSummary` (also written as summary.json).
        """
        started = time.perf_counter()
        config = self.config
        if n_mixtures < 0:
            raise ValueError(f"n_mixtures must be >= 0, got {n_mixtures}")
        utterances = list(utterances)
        out_dir = Path(out_dir)
        (out_dir / "audio").mkdir(parents=True, exist_ok=True)
        removed = _remove_partial_files(out_dir)
        if removed:
            logger.info("removed %d partial file(s) left by an interrupted run", removed)
        workers = int(workers or os.cpu_count() or 1)

        scan = scan_utterances(utterances, config)
        summary = MixSummary(
            out_dir=str(out_dir),
            n_requested=n_mixtures,
            n_utterances=len(utterances),
            bad_inputs=list(scan.problems),
            n_downmixed=scan.downmixed,
            n_resampled=scan.resampled,
            workers=workers,
        )
        sampler = SourceSampler(utterances, config, seed)
        sampler.exclude(i for i, ok in enumerate(scan.usable) if not ok)

        journal_path = out_dir / JOURNAL_NAME
        journal = _read_journal(journal_path)
        _write_journal(journal_path, journal.items())  # drops a truncated last line
        attempts = [0] * n_mixtures
        settings = settings_key(config, seed, split)
        self._written: set[str] = set()
        executor = None
        try:
            while True:
                compositions = sampler.composition_probabilities()
                draws = [sampler.draw(i, attempts[i], compositions) for i in range(n_mixtures)]
                ids = mixture_ids(draws, utterances, config, split)
                keys = [
                    fingerprint(settings, d, mid, utterances)
                    for d, mid in zip(draws, ids, strict=True)
                ]
                todo = [
                    (d.index, d.attempt, mid, d.utterances, key)
                    for d, mid, key in zip(draws, ids, keys, strict=True)
                    if not (key in journal and (out_dir / journal[key]["path"]).exists())
                ]
                if not todo:
                    break
                if executor is None and workers > 1 and len(todo) > 1:
                    executor = self._executor(workers, utterances, seed, split, out_dir)
                replan = self._render(
                    todo, executor, workers, utterances, seed, split, out_dir, journal,
                    journal_path, sampler, attempts, summary, progress,
                )  # fmt: skip
                if not replan:  # every mixture made: the plan stays as it is
                    break
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)

        records = [Mixture.from_dict(journal[key]) for key in keys]
        final = {key: journal[key] for key in keys}
        kept_paths = {record["path"] for record in final.values()}
        for key, record in journal.items():  # files of superseded plans (pair-name shifts)
            if key not in final and record["path"] not in kept_paths:
                (out_dir / record["path"]).unlink(missing_ok=True)
        _write_journal(journal_path, final.items())
        summary.n_resumed = n_mixtures - len(set(final) & self._written)
        _write_manifest(out_dir / MANIFEST_NAME, records, [final[key] for key in keys])
        if config.thesis_metadata:
            write_thesis_metadata(out_dir / config.thesis_metadata, records)

        summary.n_usable = len(utterances) - len(sampler.excluded)
        summary.compositions = dict(Counter(record.label for record in records))
        overlaps = [record.overlap_seconds or 0.0 for record in records]
        if overlaps:
            summary.overlap_seconds_mean = float(np.mean(overlaps))
            summary.overlap_seconds_min = float(np.min(overlaps))
        summary.n_without_overlap = sum(value <= 0 for value in overlaps)
        summary.n_absent_source = sum(
            min(record.extra.get("active_seconds", [1.0])) <= 0 for record in records
        )
        summary.elapsed_seconds = time.perf_counter() - started
        (out_dir / SUMMARY_NAME).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        return summary

    def _executor(self, workers, utterances, seed, split, out_dir):
        # fork is the cheapest start, but not safe once torch (and its thread pools) is loaded
        forkable = "fork" in multiprocessing.get_all_start_methods() and "torch" not in sys.modules
        context = multiprocessing.get_context("fork" if forkable else "spawn")
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.config.to_dict(), utterances, seed, split, str(out_dir)),
        )

    def _render(
        self, todo, executor, workers, utterances, seed, split, out_dir, journal, journal_path,
        sampler, attempts, summary, progress,
    ) -> bool:  # fmt: skip
        """Make the planned mixtures; True when some need planning again (bad input found,
        presence guarantee not met)."""
        from tqdm.auto import tqdm

        config = self.config
        if executor is None:
            _init_worker(config.to_dict(), utterances, seed, split, str(out_dir))
            results = map(_run_task, todo)
        else:
            chunksize = max(1, min(64, len(todo) // (workers * 8)))
            results = executor.map(_run_task, todo, chunksize=chunksize)
        bad_seen = {path for path, _ in summary.bad_inputs}
        replan = False
        with open(journal_path, "a", encoding="utf-8") as journal_file:
            bar = tqdm(results, total=len(todo), desc="mixing", unit="mix", disable=not progress)
            for result in bar:
                status = result["status"]
                if status == "ok":
                    journal[result["key"]] = result["record"]
                    line = {"key": result["key"], "record": result["record"]}
                    journal_file.write(json.dumps(line, sort_keys=True) + "\n")
                    journal_file.flush()
                    summary.n_written += 1
                    self._written.add(result["key"])
                elif status == "bad":
                    if config.on_bad_input == "error":
                        raise AudioError(result["path"], result["reason"])
                    sampler.exclude([result["utterance"]])
                    replan = True
                    if result["path"] not in bad_seen:
                        bad_seen.add(result["path"])
                        summary.bad_inputs.append((result["path"], result["reason"]))
                else:  # presence guarantee not met: draw other sources for this mixture
                    index = result["index"]
                    attempts[index] += 1
                    summary.presence_redraws += 1
                    replan = True
                    if attempts[index] > config.max_redraws:
                        raise ValueError(
                            f"mixture {index}: no source draw met the presence guarantee "
                            f"(min_overlap={config.min_overlap} s) in {config.max_redraws} "
                            "redraws; lower --min-overlap or use longer utterances"
                        )
        return replan
