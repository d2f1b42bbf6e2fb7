"""The Mixer: plan mixtures, render them in worker processes, resume after a crash.

Output of ``Mixer(config).run(utterances, out_dir, n_mixtures=..., seed=...)``::

    out_dir/audio/<mixture_id>.flac   one file per mixture, each written atomically
    out_dir/mixtures.jsonl            Mixture records (amongus.manifest), in index order
    out_dir/summary.json              MixSummary: counts, bad inputs, overlap statistics, speed
    out_dir/.mix_journal.jsonl        one line per finished mixture (what a rerun skips)
    out_dir/.mix_run.json             the settings and inputs the folder was made with
    out_dir/.amongus.lock             held (flock) by the run writing into the folder
    out_dir/metadata.txt              the study's metadata lines (thesis preset only)

Mixture paths in the manifest are relative to ``out_dir``. Each record's ``extra`` holds the
SHA-1 and size of its audio file (``file_sha1``, ``file_bytes``): a rerun trusts a finished
mixture only when its file still matches them, and remakes it otherwise.

Only one run may write into a folder at a time (:class:`amongus.locking.FolderLock`); a rerun
with other settings or inputs is refused (:class:`MixFolderConflict`) unless ``overwrite=True``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
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

from ..audio import AudioError, audio_info, encode_audio
from ..fsutil import atomic_write_bytes, atomic_write_text, check_writable, name_max, write_errors
from ..locking import FolderLock
from ..manifest import Mixture, MixtureSource, Utterance, check_unique_ids
from ..processes import die_with_parent
from ..sharding import shard_bounds
from ..validation import SILENCE_THRESHOLD_DBFS, count_reasons, loudest_frame_dbfs
from .augment import draw_augmentations
from .config import MixerConfig
from .plan import (
    MAX_NAME_BYTES,
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
RUN_NAME = ".mix_run.json"


class MixFolderConflict(ValueError):
    """The output folder holds mixtures made with other settings or inputs; the message says
    which and how to proceed (another folder, or ``overwrite=True`` / ``--overwrite``)."""


@dataclass
class MixSummary:
    """What a run did: counts, skipped inputs, overlap statistics and speed."""

    out_dir: str
    n_requested: int
    n_written: int = 0  # rendered by this run
    n_resumed: int = 0  # found finished by an earlier (interrupted) run
    n_remade: int = 0  # found finished, but the file no longer matched its record: made again
    n_utterances: int = 0
    n_usable: int = 0
    bad_inputs: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), skipped
    n_downmixed: int = 0  # multi-channel utterances averaged to mono
    n_resampled: int = 0  # utterances at another rate than the mixtures
    compositions: dict[str, int] = field(default_factory=dict)
    presence_redraws: int = 0  # source draws rejected by the presence guarantee
    silent_placements: int = 0  # placements redrawn because every source window was silent
    n_shortened_ids: int = 0  # ids over the file name limit, shortened with a hash suffix
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
        return count_reasons(reason for _, reason in self.bad_inputs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad_inputs"] = [list(item) for item in self.bad_inputs]
        data["bad_input_reasons"] = self.bad_input_reasons
        data["mixtures_per_second"] = self.mixtures_per_second
        return data

    def __str__(self) -> str:
        lines = [
            f"mixtures: {self.n_written + self.n_resumed}/{self.n_requested} in {self.out_dir} "
            f"({self.n_written} made, {self.n_resumed} resumed"
            f"{f', {self.n_remade} remade (file changed on disk)' if self.n_remade else ''}; "
            f"{self.elapsed_seconds:.1f} s, "
            f"{self.mixtures_per_second:.1f}/s on {self.workers} worker(s))",
            f"compositions: {dict(sorted(self.compositions.items()))}",
            f"utterances: {self.n_usable} usable of {self.n_utterances}; "
            f"{len(self.bad_inputs)} skipped{f' {self.bad_input_reasons}' if self.bad_inputs else ''}; "
            f"{self.n_downmixed} downmixed to mono; {self.n_resampled} resampled",
            f"overlap (all sources active): mean {self.overlap_seconds_mean:.2f} s, "
            f"min {self.overlap_seconds_min:.2f} s; {self.n_without_overlap} mixture(s) without "
            f"overlap, {self.n_absent_source} with an absent source; "
            f"{self.presence_redraws} source redraw(s) for presence, "
            f"{self.silent_placements} placement(s) redrawn as all sources were silent there",
        ]
        if self.n_shortened_ids:
            lines.append(
                f"ids: {self.n_shortened_ids} shortened to fit the file name limit (hash suffix)"
            )
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


def _init_worker(config_dict, utterances, seed, split, out_dir, parent_pid=None) -> None:
    global _STATE
    if parent_pid is not None:  # a pool worker: exit if the run is killed (kill -9 included)
        die_with_parent(parent_pid)
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
    silent_placements = 0
    overlap_seconds = 0.0
    for _ in range(config.placement_attempts):
        placement = draw_placement(rng, [a.shape[0] for a in audios], rate, config)
        levels = draw_levels(rng, n, config)
        windows = [
            a[s : s + length]
            for a, s, length in zip(audios, placement.starts, placement.lengths, strict=True)
        ]
        if all(loudest_frame_dbfs(w, rate) < SILENCE_THRESHOLD_DBFS for w in windows):
            # nothing audible would be written (an all-zero file, or amplified noise floor)
            silent_placements += 1
            continue
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
        return {"status": "presence", "index": index, "overlap_seconds": overlap_seconds,
                "silent_placements": silent_placements}  # fmt: skip

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
    data = encode_audio(audio, rate, config.audio_format)
    mixture.extra["file_sha1"] = hashlib.sha1(data).hexdigest()
    mixture.extra["file_bytes"] = len(data)
    # No fsync per mixture (it halves the throughput of short mixtures): a rerun checks every
    # file against this checksum, so one emptied by a power cut is made again.
    atomic_write_bytes(state.out_dir / mixture.path, data, durable=False)
    return {"status": "ok", "index": index, "key": key, "record": mixture_dict(mixture),
            "silent_placements": silent_placements}  # fmt: skip


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
    with open(path, encoding="utf-8-sig") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
                entries[entry["key"]] = entry["record"]
            except (ValueError, KeyError, TypeError):
                continue
    return entries


def _write_journal(path: Path, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
    text = "".join(
        json.dumps({"key": key, "record": record}, sort_keys=True) + "\n" for key, record in entries
    )
    atomic_write_text(path, text)


def _write_manifest(path: Path, records: list[Mixture], dicts: list[dict[str, Any]]) -> None:
    """Validate the records and write the manifest lines from their dicts (as ``write_jsonl``
    would: ``json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False)``), atomically.
    A repeated mixture id is refused (``DuplicateIdError``), as by every manifest writer."""
    for record in records:
        record.validate()
    check_unique_ids(records, where=f"{path} record")
    text = "".join(json.dumps(d, sort_keys=True, ensure_ascii=False) + "\n" for d in dicts)
    atomic_write_text(path, text)


def _remove_partial_files(out_dir: Path) -> int:
    """Delete temporary files left by a killed run (atomic writes use ``.*.part`` names).

    Only called with the folder's lock held: no other run can be writing them."""
    removed = 0
    for folder in (out_dir, out_dir / "audio"):
        if folder.is_dir():
            for leftover in folder.glob(".*.part"):
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed


def file_problem(out_dir: Path, record: dict[str, Any]) -> str | None:
    """Why a finished mixture's file cannot be trusted any more (``None`` when it can): missing,
    another size or SHA-1 than recorded, or (records without a checksum) another length or
    rate than the record's."""
    path = out_dir / record["path"]
    extra = record.get("extra") or {}
    try:
        size = path.stat().st_size
    except OSError:
        return "file missing"
    if "file_sha1" in extra:
        if size != extra.get("file_bytes", size):
            return f"{size} bytes, recorded {extra['file_bytes']}"
        if _sha1(path) != extra["file_sha1"]:
            return "content differs from the recorded SHA-1"
        return None
    try:
        info = audio_info(path)
    except Exception as error:  # soundfile raises several types for damaged files
        return f"unreadable ({error})"
    if record.get("num_samples") is not None and info.frames != record["num_samples"]:
        return f"{info.frames} samples, recorded {record['num_samples']}"
    if info.samplerate != record.get("sample_rate", info.samplerate):
        return f"{info.samplerate} Hz, recorded {record['sample_rate']}"
    return None


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inputs_key(utterances: Sequence[Utterance]) -> str:
    """A hash of the utterance list (ids, paths, labels, speakers) the mixtures are drawn from."""
    digest = hashlib.sha1()
    for u in utterances:
        digest.update(json.dumps([u.utt_id, u.path, u.label, u.speaker]).encode() + b"\n")
    return digest.hexdigest()


def _claim_folder(
    out_dir: Path, settings: str, inputs: str, n_utterances: int, overwrite: bool
) -> None:
    """Check that ``out_dir`` holds nothing, or mixtures of these settings and inputs (then they
    are resumed); with ``overwrite`` remove another run's mixtures. Records the run."""
    run_path = out_dir / RUN_NAME
    previous = None
    if run_path.exists():
        try:
            previous = json.loads(run_path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            previous = None
    if previous is not None and (previous.get("settings"), previous.get("inputs")) != (
        settings,
        inputs,
    ):
        if not overwrite:
            raise MixFolderConflict(
                f"{out_dir} holds mixtures made with {_difference(previous, settings, inputs, n_utterances)}; "
                "choose another output folder, or overwrite them (--overwrite, "
                "Mixer.run(overwrite=True))"
            )
        try:
            metadata = json.loads(previous["settings"])["config"].get("thesis_metadata")
        except (KeyError, TypeError, ValueError):
            metadata = None
        removed = _remove_run(out_dir, [metadata] if metadata else [])
        logger.warning("--overwrite: removed %d file(s) of the earlier run in %s", removed, out_dir)
    record = {"settings": settings, "inputs": inputs, "n_utterances": n_utterances}
    atomic_write_text(run_path, json.dumps(record, sort_keys=True) + "\n")


def _difference(previous: dict[str, Any], settings: str, inputs: str, n_utterances: int) -> str:
    """What differs between the recorded run and this one, in words."""
    if previous.get("settings") != settings:
        try:
            old, new = json.loads(previous["settings"]), json.loads(settings)
        except (KeyError, TypeError, ValueError):
            return "other settings"
        parts = [
            f"{name} {old.get(name)!r} (now {new.get(name)!r})"
            for name in ("seed", "split")
            if old.get(name) != new.get(name)
        ]
        options = sorted(
            key
            for key in set(old.get("config", {})) | set(new.get("config", {}))
            if old.get("config", {}).get(key) != new.get("config", {}).get(key)
        )
        if options:
            parts.append(f"other options ({', '.join(options[:6])})")
        return "other settings: " + "; ".join(parts or ["other settings"])
    return (
        f"other inputs ({previous.get('n_utterances', '?')} utterances, now {n_utterances}, "
        "or the same number with other ids, paths or labels)"
    )


def _remove_run(out_dir: Path, extra_names: Sequence[str] = ()) -> int:
    """Remove the files a Mixer run wrote into ``out_dir`` (those its journal and manifest
    name, its bookkeeping and ``extra_names``); nothing else."""
    paths: set[str] = set()
    for name in (JOURNAL_NAME, MANIFEST_NAME):
        if (out_dir / name).exists():
            with open(out_dir / name, encoding="utf-8-sig") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    record = entry.get("record", entry) if isinstance(entry, dict) else {}
                    for key in ("path", "rttm"):  # a conversation has a reference too
                        if isinstance(record, dict) and isinstance(record.get(key), str):
                            paths.add(record[key])
    removed = 0
    for relative in sorted(paths):
        target = (out_dir / relative).resolve()
        if out_dir.resolve() in target.parents and target.is_file():
            target.unlink()
            removed += 1
    # conversations.jsonl and reference.rttm: a conversation run (amongus.mix.conversation)
    for name in (JOURNAL_NAME, MANIFEST_NAME, "conversations.jsonl", "reference.rttm",
                 SUMMARY_NAME, RUN_NAME, *extra_names):  # fmt: skip
        if (out_dir / name).is_file() and (out_dir / name).parent == out_dir:
            (out_dir / name).unlink()
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
        overwrite: bool = False,
        shard: tuple[int, int] | None = None,
        merge: Sequence[str | os.PathLike] = (),
    ) -> MixSummary:
        """Make ``n_mixtures`` mixtures into ``out_dir``; skip those an earlier run finished.

        ``workers=None`` uses every core; the audio and the manifest are byte-identical for any
        number of workers. Returns the run's :class:`MixSummary` (also written as summary.json).

        ``shard=(i, n)`` makes only mixtures ``shard_bounds(n_mixtures, i, n)`` (the ``i``-th
        of ``n`` contiguous index blocks), planned as the whole run plans them; ``merge``
        takes the finished mixtures of such shard folders first, so that a run with the same
        arguments and ``merge=[shard folders]`` completes the unsharded run, byte-identical to
        it (:mod:`amongus.mix.shards`).

        A rerun into the same folder resumes: a finished mixture is kept when its file still
        matches the size and SHA-1 recorded for it, and made again otherwise. ``overwrite``
        replaces the mixtures of an earlier run made with other settings or inputs.

        Raises:
            amongus.locking.FolderBusyError: another run is writing into ``out_dir``.
            MixFolderConflict: ``out_dir`` holds mixtures of other settings or inputs and
                ``overwrite`` is not set.
            amongus.fsutil.OutputError: ``out_dir`` cannot be written (checked before any
                mixing) or a write failed (full disk...); the message names the file.
            ValueError: bad settings, or no mixture can be drawn from the usable utterances.
        """
        if n_mixtures < 0:
            raise ValueError(f"n_mixtures must be >= 0, got {n_mixtures}")
        out_dir = Path(out_dir)
        with FolderLock(out_dir):
            return self._run(
                list(utterances), out_dir, n_mixtures, seed, workers, split, progress, overwrite,
                shard, merge,
            )  # fmt: skip

    def _run(
        self, utterances, out_dir, n_mixtures, seed, workers, split, progress, overwrite,
        shard=None, merge=(),
    ) -> MixSummary:  # fmt: skip
        started = time.perf_counter()
        config = self.config
        check_writable(out_dir / "audio")  # a full disk or read-only folder fails here, at once
        removed = _remove_partial_files(out_dir)
        if removed:
            logger.info("removed %d partial file(s) left by an interrupted run", removed)
        workers = int(workers or os.cpu_count() or 1)
        settings = settings_key(config, seed, split)
        inputs_key = _inputs_key(utterances)
        _claim_folder(out_dir, settings, inputs_key, len(utterances), overwrite)
        # a shard makes one contiguous block of indices but plans (ids, draws) the whole run
        start, stop = (0, n_mixtures) if shard is None else shard_bounds(n_mixtures, *shard)

        scan = scan_utterances(utterances, config)
        summary = MixSummary(
            out_dir=str(out_dir),
            n_requested=stop - start,
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
        if merge:
            from .shards import import_shards

            import_shards(out_dir, merge, settings=settings, inputs=inputs_key, journal=journal)
        _write_journal(journal_path, journal.items())  # drops a truncated last line
        attempts = [0] * n_mixtures
        max_id_bytes = min(MAX_NAME_BYTES, name_max(out_dir / "audio")) - len(
            f".{config.audio_format}".encode()
        )
        self._written: set[str] = set()
        verified: set[str] = set()
        remade: set[str] = set()

        def finished(key: str) -> bool:
            """Made by this run, or by an earlier one and its file still matches the record."""
            if key in self._written or key in verified:
                return True
            if key not in journal:
                return False
            problem = file_problem(out_dir, journal[key])
            if problem is None:
                verified.add(key)
                return True
            logger.warning("remaking %s: %s", journal[key]["path"], problem)
            remade.add(key)
            return False

        executor = None
        try:
            while True:
                compositions = sampler.composition_probabilities()
                draws = [sampler.draw(i, attempts[i], compositions) for i in range(n_mixtures)]
                ids = mixture_ids(draws, utterances, config, split, max_bytes=max_id_bytes)
                keys = [
                    fingerprint(settings, d, mid, utterances)
                    for d, mid in zip(draws, ids, strict=True)
                ]
                todo = [
                    (d.index, d.attempt, mid, d.utterances, key)
                    for d, mid, key in zip(draws, ids, keys, strict=True)
                    if start <= d.index < stop and not finished(key)
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

        unshortened = mixture_ids(draws, utterances, config, split, max_bytes=2**31)
        ids, unshortened, keys = ids[start:stop], unshortened[start:stop], keys[start:stop]
        records = [Mixture.from_dict(journal[key]) for key in keys]
        final = {key: journal[key] for key in keys}
        kept_paths = {record["path"] for record in final.values()}
        for key, record in journal.items():  # files of superseded plans (pair-name shifts)
            if key not in final and record["path"] not in kept_paths:
                (out_dir / record["path"]).unlink(missing_ok=True)
        _write_journal(journal_path, final.items())
        summary.n_resumed = len(keys) - len(set(final) & self._written)
        summary.n_remade = len(remade & set(final) & self._written)
        summary.n_shortened_ids = sum(a != b for a, b in zip(ids, unshortened, strict=True))
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
        atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(summary.to_dict(), indent=2) + "\n")
        return summary

    def _executor(self, workers, utterances, seed, split, out_dir):
        # fork is the cheapest start, but not safe once torch (and its thread pools) is loaded
        forkable = "fork" in multiprocessing.get_all_start_methods() and "torch" not in sys.modules
        context = multiprocessing.get_context("fork" if forkable else "spawn")
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.config.to_dict(), utterances, seed, split, str(out_dir), os.getpid()),
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
        with write_errors(journal_path):
            journal_file = open(journal_path, "a", encoding="utf-8")  # noqa: SIM115
        with journal_file:
            bar = tqdm(results, total=len(todo), desc="mixing", unit="mix", disable=not progress)
            for result in bar:
                status = result["status"]
                summary.silent_placements += result.get("silent_placements", 0)
                if status == "ok":
                    journal[result["key"]] = result["record"]
                    line = {"key": result["key"], "record": result["record"]}
                    with write_errors(journal_path):
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
                            f"(min_overlap={config.min_overlap} s, and not every source "
                            f"window silent) in {config.max_redraws} redraws; lower "
                            "--min-overlap or use longer (or less silent) utterances"
                        )
        return replan
