"""The conversation simulator: long multi-party calls with a spoofed (or impostor) speaker.

``ConversationMixer(config, conversation).run(utterances, out_dir, n_conversations=..., seed=...)``
writes::

    out_dir/audio/<id>.flac        one file per conversation, written atomically
    out_dir/rttm/<id>.rttm         its reference: one segment per turn, label in the stype field
    out_dir/reference.rttm         every conversation's reference in one file
    out_dir/conversations.jsonl    Conversation records (amongus.manifest), in index order
    out_dir/summary.json           ConversationSummary: counts, bad inputs, overlap, speed
    out_dir/.mix_journal.jsonl     one line per finished conversation (what a rerun skips)
    out_dir/.mix_run.json          the settings and inputs the folder was made with
    out_dir/.amongus.lock          held by the run writing into the folder

It is the mixer's machinery with another plan and renderer: the same folder lock, resume
verified by the SHA-1 of each file, refusal of a folder made with other settings (unless
``overwrite``), atomic writes, input checks by the shared validation policy
(:mod:`amongus.validation`) and worker processes that die with the run. Conversation ``i`` is a
function of ``(seed, i)`` and the inputs only, so reruns are byte-identical whatever the number
of workers. How turns are drawn: :mod:`amongus.mix.conversation_plan`; how they are rendered:
:mod:`amongus.mix.conversation_render`; the RTTM format: :mod:`amongus.rttm`.
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AudioError, encode_audio
from ..fsutil import atomic_write_bytes, atomic_write_text, check_writable, name_max, write_errors
from ..locking import FolderLock
from ..manifest import (
    Conversation,
    ConversationSpeaker,
    MixtureSource,
    Utterance,
    check_unique_ids,
)
from ..processes import die_with_parent
from ..rttm import format_rttm
from ..validation import count_reasons
from .augment import draw_augmentations
from .config import MixerConfig
from .conversation_config import ConversationConfig
from .conversation_plan import (
    CastError,
    UtteranceDrawer,
    draw_cast,
    draw_turns,
    fit_overlaps,
    overlap_ratio,
    place_turns,
    speaker_pools,
)
from .conversation_render import render_unnormalised
from .mixer import (
    JOURNAL_NAME,
    SUMMARY_NAME,
    MixFolderConflict,
    _claim_folder,
    _inputs_key,
    _read_journal,
    _remove_partial_files,
    _source_gains,
    _write_journal,
    file_problem,
)
from .plan import (
    MAX_NAME_BYTES,
    STREAM_AUGMENT,
    STREAM_PLACEMENT,
    STREAM_SOURCES,
    draw_levels,
    fit_id,
    mixture_rng,
    safe_name,
    scan_utterances,
    settings_key,
)
from .render import SourceCache, frame_energy

logger = logging.getLogger(__name__)

MANIFEST_NAME = "conversations.jsonl"
REFERENCE_NAME = "reference.rttm"
RTTM_FOLDER = "rttm"
STREAM_CROP = 3  # random windows of utterances longer than max_source_seconds

__all__ = [
    "MANIFEST_NAME",
    "REFERENCE_NAME",
    "ConversationMixer",
    "ConversationSummary",
    "MixFolderConflict",
    "conversation_ids",
]


@dataclass
class ConversationSummary:
    """What a conversation run did: counts, skipped inputs, overlap, length and speed."""

    out_dir: str
    n_requested: int
    n_written: int = 0
    n_resumed: int = 0
    n_remade: int = 0
    n_utterances: int = 0
    n_usable: int = 0
    bad_inputs: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), skipped
    n_downmixed: int = 0
    n_resampled: int = 0
    n_unknown_speaker: int = 0  # utterances without speaker id: each its own speaker
    compositions: dict[str, int] = field(default_factory=dict)  # "SBBB": count
    n_impostors: int = 0
    seconds_total: float = 0.0
    target_overlap: float = 0.0
    overlap_ratio_mean: float = 0.0
    overlap_ratio_min: float = 0.0
    overlap_ratio_max: float = 0.0
    workers: int = 1
    elapsed_seconds: float = 0.0

    @property
    def bad_input_reasons(self) -> dict[str, int]:
        return count_reasons(reason for _, reason in self.bad_inputs)

    @property
    def realtime_factor(self) -> float:
        """Seconds of conversation made per second of run time (this run's share)."""
        if self.elapsed_seconds <= 0 or self.n_requested == 0:
            return 0.0
        made = self.seconds_total * self.n_written / max(1, self.n_requested)
        return made / self.elapsed_seconds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad_inputs"] = [list(item) for item in self.bad_inputs]
        data["bad_input_reasons"] = self.bad_input_reasons
        data["realtime_factor"] = self.realtime_factor
        return data

    def __str__(self) -> str:
        lines = [
            f"conversations: {self.n_written + self.n_resumed}/{self.n_requested} in "
            f"{self.out_dir} ({self.n_written} made, {self.n_resumed} resumed"
            f"{f', {self.n_remade} remade (file changed on disk)' if self.n_remade else ''}; "
            f"{self.elapsed_seconds:.1f} s, {self.realtime_factor:.0f}x real time on "
            f"{self.workers} worker(s))",
            f"length: {self.seconds_total / 60:.1f} min in all; speakers (spoofed first): "
            f"{dict(sorted(self.compositions.items()))}; {self.n_impostors} impostor(s)",
            f"overlap ratio: target {self.target_overlap:.3f}, mean "
            f"{self.overlap_ratio_mean:.3f} (min {self.overlap_ratio_min:.3f}, max "
            f"{self.overlap_ratio_max:.3f})"
            + (
                "; below the target: an overlap takes at most half of the shorter of its two "
                "turns, so these turns cannot hold more"
                if self.n_requested and self.overlap_ratio_min < self.target_overlap - 0.01
                else ""
            ),
            f"utterances: {self.n_usable} usable of {self.n_utterances}; "
            f"{len(self.bad_inputs)} skipped"
            f"{f' {self.bad_input_reasons}' if self.bad_inputs else ''}; "
            f"{self.n_downmixed} downmixed to mono; {self.n_resampled} resampled",
        ]
        if self.n_unknown_speaker:
            lines.append(
                f"speakers: {self.n_unknown_speaker} utterance(s) without a speaker id, each "
                "taken as its own speaker"
            )
        for path, reason in self.bad_inputs[:10]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.bad_inputs) > 10:
            lines.append(f"  ... {len(self.bad_inputs) - 10} more in summary.json")
        return "\n".join(lines)


def conversation_ids(n: int, split: str, *, max_bytes: int = MAX_NAME_BYTES - 6) -> list[str]:
    """``{split}-call-{index:06d}`` (``call-{index:06d}`` without a split), shortened by
    :func:`amongus.mix.plan.fit_id` when longer than ``max_bytes``."""
    prefix = f"{safe_name(split)}-call" if split and split != "-" else "call"
    return [fit_id(f"{prefix}-{index:06d}", max_bytes) for index in range(n)]


def conversation_settings(config: MixerConfig, conversation: ConversationConfig, seed, split):
    """The settings string a run records (and every fingerprint starts from)."""
    settings = json.loads(settings_key(config, seed, split))
    # inside "config", so a refused rerun names the conversation options that differ
    settings["config"]["mode"] = "conversation"
    settings["config"].update(conversation.to_dict())
    return json.dumps(settings, sort_keys=True)


def _fingerprint(settings: str, index: int, conversation_id: str, inputs: str) -> str:
    payload = [settings, int(index), conversation_id, inputs]
    return hashlib.sha1(json.dumps(payload).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Work done for one conversation (in a worker process or inline)
# ----------------------------------------------------------------------------------------------
@dataclass
class _WorkerState:
    config: MixerConfig
    conversation: ConversationConfig
    utterances: Sequence[Utterance]
    usable: Sequence[bool]
    seed: int
    split: str
    out_dir: Path
    cache: SourceCache
    windows: dict[tuple[str, int], tuple[int, int]]  # speech span of an utterance at a rate


_STATE: _WorkerState | None = None


def _init_worker(config, conversation, utterances, usable, seed, split, out_dir, parent=None):
    global _STATE
    if parent is not None:  # a pool worker: exit if the run is killed (kill -9 included)
        die_with_parent(parent)
    config = MixerConfig.from_dict(config)
    _STATE = _WorkerState(
        config,
        ConversationConfig.from_dict(conversation),
        utterances,
        usable,
        seed,
        split,
        Path(out_dir),
        SourceCache(config.cache_mb * 2**20),
        {},
    )


def _run_task(task: tuple) -> dict[str, Any]:
    assert _STATE is not None, "worker not initialised"
    return make_conversation(_STATE, *task)


class _BadInput(Exception):
    def __init__(self, index: int, path: str, reason: str):
        super().__init__(path, reason)
        self.index, self.path, self.reason = index, path, reason


def _speech_span(audio: np.ndarray, rate: int, reference: float, threshold_db: float):
    """``(start, length)`` from the first to the last active 10 ms frame (energy VAD as the
    mixer's, relative to the utterance's loudest frame); the whole file when none is."""
    frame = max(1, int(round(0.01 * rate)))
    energy = frame_energy(audio, rate)
    active = np.flatnonzero((energy > reference * 10 ** (-threshold_db / 10)) & (energy > 0))
    if active.size == 0:
        return 0, int(audio.shape[0])
    start = int(active[0]) * frame
    stop = min(int(audio.shape[0]), (int(active[-1]) + 1) * frame)
    return start, stop - start


def make_conversation(
    state: _WorkerState, index: int, conversation_id: str, key: str
) -> dict[str, Any]:
    """Plan, render and save one conversation; return its record, or why it could not be
    made (an unusable utterance with ``on_bad_input="error"``, a cast the corpus cannot fill)."""
    config, options = state.config, state.conversation
    utterances = state.utterances
    rate = int(config.sample_rate or _first_rate(state))
    bad: list[tuple[int, str, str]] = []
    crop_rng = mixture_rng(state.seed, index, 0, STREAM_CROP)

    def window(position: int) -> tuple[int, int] | None:
        utterance = utterances[position]
        try:
            state.cache.native(utterance.path)
        except AudioError as error:
            if config.on_bad_input == "error":
                raise _BadInput(position, error.path, error.problem) from None
            bad.append((position, error.path, error.problem))
            return None
        span_key = (utterance.path, rate)
        if span_key not in state.windows:
            audio = state.cache.at_rate(utterance.path, rate)
            if options.trim_silence:
                reference = state.cache.reference_energy(utterance.path, rate)
                state.windows[span_key] = _speech_span(
                    audio, rate, reference, config.vad_threshold_db
                )
            else:
                state.windows[span_key] = (0, int(audio.shape[0]))
        start, length = state.windows[span_key]
        if config.max_source_seconds is not None:  # a random window of a long utterance
            cap = int(round(config.max_source_seconds * rate))
            if length > cap:
                start += int(crop_rng.integers(0, length - cap + 1))
                length = cap
        return start, length

    source_rng = mixture_rng(state.seed, index, 0, STREAM_SOURCES)
    timing_rng = mixture_rng(state.seed, index, 0, STREAM_PLACEMENT)
    pools = speaker_pools(utterances, state.usable)
    try:
        cast = draw_cast(
            source_rng, pools, options.speakers, options.spoofed_speakers, options.impostor
        )
        duration = float(timing_rng.uniform(*options.duration))
        target = int(round(duration * rate))
        takeover_draws = timing_rng.uniform(*options.takeover, size=len(cast))
        takeovers = [
            int(round(fraction * target)) if member.impostor else None
            for member, fraction in zip(cast, takeover_draws, strict=True)
        ]
        levels = draw_levels(timing_rng, len(cast), config)
        turns = draw_turns(
            source_rng,
            timing_rng,
            cast,
            UtteranceDrawer(pools, window),
            target_samples=target,
            sample_rate=rate,
            target_overlap=options.target_overlap,
            overlap_turns=options.overlap_turns,
            pause_mean=options.pause_mean,
            same_speaker_prob=options.same_speaker_prob,
            takeover_samples=takeovers,
        )
    except _BadInput as error:
        return {"status": "bad", "utterance": error.index, "path": error.path,
                "reason": error.reason}  # fmt: skip
    except CastError as error:
        return {"status": "cast", "index": index, "reason": str(error),
                "bad": [list(item) for item in bad]}  # fmt: skip
    offsets, num_samples = place_turns(turns, fit_overlaps(turns, options.target_overlap))

    records = []
    for turn, offset in zip(turns, offsets, strict=True):
        utterance = utterances[turn.utterance]
        audio = state.cache.at_rate(utterance.path, rate)
        piece = audio[turn.start : turn.start + turn.length]
        gains, gains_db, loudness = _source_gains([piece], [levels[turn.speaker]], rate, config)
        records.append(
            MixtureSource(
                utt_id=utterance.utt_id,
                path=os.path.abspath(utterance.path),
                label=turn.label,
                speaker=cast[turn.speaker].name,
                system=utterance.system,
                language=utterance.language,
                offset=int(offset),
                start=int(turn.start),
                length=int(turn.length),
                gain=gains[0],
                gain_db=gains_db[0],
                loudness_lufs=loudness[0],
                orig_sample_rate=int(state.cache.native(utterance.path)[1]),
            )
        )
    speakers = []
    for k, member in enumerate(cast):
        own = [t for t in records if t.speaker == member.name]
        spoofed = [t for t in own if t.label == "spoof"]
        speakers.append(
            ConversationSpeaker(
                name=member.name,
                label="spoof" if spoofed else "bonafide",
                impostor=member.impostor,
                takeover_seconds=(
                    round(spoofed[0].offset / rate, 6) if member.impostor and spoofed else None
                ),
                level=float(levels[k]),
            )
        )
    augmentations = draw_augmentations(
        mixture_rng(state.seed, index, 0, STREAM_AUGMENT), len(cast), config
    )
    ratio = overlap_ratio([t.offset for t in records], [int(t.length or 0) for t in records])
    conversation = Conversation(
        conversation_id=conversation_id,
        path=f"audio/{conversation_id}.{config.audio_format}",
        rttm=f"{RTTM_FOLDER}/{conversation_id}.rttm",
        sample_rate=rate,
        speakers=speakers,
        turns=records,
        num_samples=int(num_samples),
        seed=int(state.seed),
        augmentations=augmentations,
        overlap_ratio=round(ratio, 6),
        target_overlap_ratio=float(options.target_overlap),
        split=state.split,
        extra={
            "index": int(index),
            "rng": [int(state.seed), int(index), 0],
            "preset": config.preset,
            "drawn_seconds": round(duration, 6),
            "n_turns": len(records),
            "speech_seconds": round(sum(int(t.length or 0) for t in records) / rate, 6),
        },
    )
    conversation.validate()
    audio = render_unnormalised(conversation, cache=state.cache)
    peak = _peak(audio)
    if not math.isfinite(peak):  # pragma: no cover - inputs are checked for NaN
        raise ValueError(f"conversation {conversation_id}: non-finite samples")
    if config.peak is not None and peak > 1e-9:
        conversation.normalization = float(config.peak / peak)
    audio *= conversation.normalization
    audio = audio.astype(np.float32)  # the float64 buffer is freed here
    data = encode_audio(audio, rate, config.audio_format)
    del audio
    conversation.extra["file_sha1"] = hashlib.sha1(data).hexdigest()
    conversation.extra["file_bytes"] = len(data)
    atomic_write_bytes(state.out_dir / conversation.path, data, durable=False)
    return {"status": "ok", "index": index, "key": key, "record": conversation.to_dict(),
            "bad": [list(item) for item in bad]}  # fmt: skip


def _peak(audio: np.ndarray, block: int = 1 << 20) -> float:
    """The largest absolute sample (NaN if any sample is), block by block: no temporary array
    of the conversation's length."""
    peak = 0.0
    for start in range(0, audio.shape[0], block):
        piece = audio[start : start + block]
        peak = max(peak, float(np.max(np.abs(piece))))
        if not np.all(np.isfinite(piece)):
            return math.nan
    return peak


def _first_rate(state: _WorkerState) -> int:
    """The mixture rate when ``sample_rate`` is unset: the first usable utterance's."""
    for utterance, ok in zip(state.utterances, state.usable, strict=True):
        if ok:
            return int(state.cache.native(utterance.path)[1])
    raise ValueError("no usable utterance")


# ----------------------------------------------------------------------------------------------
# The simulator
# ----------------------------------------------------------------------------------------------
class ConversationMixer:
    """Makes simulated conversations, with their RTTM references, from labelled utterances.

    >>> mixer = ConversationMixer(MixerConfig(), ConversationConfig(duration=(60, 60)))
    >>> summary = mixer.run(utterances, "calls", n_conversations=10, seed=0)  # doctest: +SKIP
    """

    def __init__(
        self, config: MixerConfig | None = None, conversation: ConversationConfig | None = None
    ):
        self.config = config or MixerConfig()
        self.config.validate()
        self.conversation = conversation or ConversationConfig()
        self.conversation.validate()

    def run(
        self,
        utterances: Sequence[Utterance],
        out_dir: str | os.PathLike,
        *,
        n_conversations: int,
        seed: int,
        workers: int | None = None,
        split: str = "-",
        progress: bool = True,
        overwrite: bool = False,
    ) -> ConversationSummary:
        """Make ``n_conversations`` conversations into ``out_dir``; keep those an earlier run
        finished (their audio still matching its recorded SHA-1).

        ``workers=None`` uses every core (at most one per conversation); the output is
        byte-identical for any number of workers.

        Raises:
            amongus.locking.FolderBusyError: another run is writing into ``out_dir``.
            MixFolderConflict: ``out_dir`` holds a run of other settings or inputs and
                ``overwrite`` is not set.
            amongus.fsutil.OutputError: ``out_dir`` cannot be written (the message names the
                file).
            amongus.audio.AudioError: an unusable utterance with ``on_bad_input="error"``.
            ValueError: bad settings, or the corpus cannot supply the speakers asked for.
        """
        if n_conversations < 0:
            raise ValueError(f"n_conversations must be >= 0, got {n_conversations}")
        out_dir = Path(out_dir)
        with FolderLock(out_dir):
            return self._run(
                list(utterances), out_dir, n_conversations, seed, workers, split, progress,
                overwrite,
            )  # fmt: skip

    def _run(self, utterances, out_dir, n, seed, workers, split, progress, overwrite):
        started = time.perf_counter()
        config, options = self.config, self.conversation
        check_writable(out_dir / "audio")
        check_writable(out_dir / RTTM_FOLDER)
        removed = _remove_partial_files(out_dir)
        for leftover in (out_dir / RTTM_FOLDER).glob(".*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        if removed:
            logger.info("removed %d partial file(s) left by an interrupted run", removed)
        workers = max(1, min(int(workers or os.cpu_count() or 1), max(1, n)))
        settings = conversation_settings(config, options, seed, split)
        inputs = _inputs_key(utterances)
        _claim_folder(out_dir, settings, inputs, len(utterances), overwrite)

        scan = scan_utterances(utterances, config)
        pools = speaker_pools(utterances, scan.usable)
        summary = ConversationSummary(
            out_dir=str(out_dir),
            n_requested=n,
            n_utterances=len(utterances),
            bad_inputs=list(scan.problems),
            n_downmixed=scan.downmixed,
            n_resampled=scan.resampled,
            n_unknown_speaker=pools.n_unknown,
            target_overlap=options.target_overlap,
            workers=workers,
        )
        max_id = min(MAX_NAME_BYTES, name_max(out_dir / "audio")) - len(
            f".{config.audio_format}".encode()
        )
        ids = conversation_ids(n, split, max_bytes=max_id)
        keys = [_fingerprint(settings, i, cid, inputs) for i, cid in enumerate(ids)]
        journal_path = out_dir / JOURNAL_NAME
        journal = _read_journal(journal_path)
        _write_journal(journal_path, journal.items())
        remade: set[str] = set()

        def finished(key: str) -> bool:
            if key not in journal:
                return False
            problem = file_problem(out_dir, journal[key])
            if problem is None:
                return True
            logger.warning("remaking %s: %s", journal[key]["path"], problem)
            remade.add(key)
            return False

        todo = [(i, cid, key) for i, (cid, key) in enumerate(zip(ids, keys, strict=True))
                if not finished(key)]  # fmt: skip
        written = self._render(todo, workers, utterances, scan.usable, seed, split, out_dir,
                               journal, journal_path, summary, progress)  # fmt: skip

        final = {key: journal[key] for key in keys}
        kept = {record["path"] for record in final.values()}
        for key, record in journal.items():  # files of conversations no longer asked for
            if key not in final and record["path"] not in kept:
                (out_dir / record["path"]).unlink(missing_ok=True)
                if record.get("rttm"):
                    (out_dir / record["rttm"]).unlink(missing_ok=True)
        _write_journal(journal_path, final.items())
        records = [Conversation.from_dict(final[key]) for key in keys]
        self._write_outputs(out_dir, records, [final[key] for key in keys])

        summary.n_written = len(written)
        summary.n_resumed = n - len(written)
        summary.n_remade = len(remade & written)
        summary.n_usable = len(utterances) - len({path for path, _ in summary.bad_inputs})
        summary.compositions = dict(Counter(record.label for record in records))
        summary.n_impostors = sum(s.impostor for record in records for s in record.speakers)
        summary.seconds_total = float(sum(record.duration or 0.0 for record in records))
        ratios = [record.overlap_ratio or 0.0 for record in records]
        if ratios:
            summary.overlap_ratio_mean = float(np.mean(ratios))
            summary.overlap_ratio_min = float(np.min(ratios))
            summary.overlap_ratio_max = float(np.max(ratios))
        if ratios and summary.overlap_ratio_min < options.target_overlap - 0.01:
            logger.warning(
                "overlap ratio %.3f (lowest) is below the target %.3f: the turns cannot hold "
                "more overlap (each overlap is at most half of the shorter turn)",
                summary.overlap_ratio_min,
                options.target_overlap,
            )
        summary.elapsed_seconds = time.perf_counter() - started
        atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(summary.to_dict(), indent=2) + "\n")
        return summary

    @staticmethod
    def _write_outputs(out_dir: Path, records: list[Conversation], dicts: list[dict]) -> None:
        """The manifest and the RTTM references, from the records (validated, unique ids)."""
        for record in records:
            record.validate()
        check_unique_ids(records, where=f"{out_dir / MANIFEST_NAME} record")
        for record in records:
            atomic_write_text(out_dir / record.rttm, format_rttm(record.reference_segments()))
        atomic_write_text(
            out_dir / REFERENCE_NAME,
            "".join(format_rttm(record.reference_segments()) for record in records),
        )
        text = "".join(json.dumps(d, sort_keys=True, ensure_ascii=False) + "\n" for d in dicts)
        atomic_write_text(out_dir / MANIFEST_NAME, text)

    def _render(self, todo, workers, utterances, usable, seed, split, out_dir, journal,
                journal_path, summary, progress) -> set[str]:  # fmt: skip
        from tqdm.auto import tqdm

        init = (self.config.to_dict(), self.conversation.to_dict(), utterances, list(usable),
                seed, split, str(out_dir))  # fmt: skip
        executor = None
        if workers > 1 and len(todo) > 1:
            forkable = (
                "fork" in multiprocessing.get_all_start_methods() and "torch" not in sys.modules
            )
            executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("fork" if forkable else "spawn"),
                initializer=_init_worker,
                initargs=(*init, os.getpid()),
            )
            results = executor.map(_run_task, todo)
        else:
            _init_worker(*init)
            results = map(_run_task, todo)
        written: set[str] = set()
        bad_seen = {path for path, _ in summary.bad_inputs}
        try:
            with write_errors(journal_path):
                journal_file = open(journal_path, "a", encoding="utf-8")  # noqa: SIM115
            with journal_file:
                bar = tqdm(results, total=len(todo), desc="conversations", unit="call",
                           disable=not progress)  # fmt: skip
                for result in bar:
                    for _, path, reason in result.get("bad", []):
                        if path not in bad_seen:
                            bad_seen.add(path)
                            summary.bad_inputs.append((path, reason))
                    if result["status"] == "bad":
                        raise AudioError(result["path"], result["reason"])
                    if result["status"] == "cast":
                        raise ValueError(f"conversation {result['index']}: {result['reason']}")
                    journal[result["key"]] = result["record"]
                    line = {"key": result["key"], "record": result["record"]}
                    with write_errors(journal_path):
                        journal_file.write(json.dumps(line, sort_keys=True) + "\n")
                        journal_file.flush()
                    written.add(result["key"])
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
        return written
