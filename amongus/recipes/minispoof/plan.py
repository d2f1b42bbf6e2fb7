"""Planning: which utterances the corpus holds, decided up front from the seed alone.

The plan fixes, for every utterance, its id, split, label, speaker, system, the source clips or
texts it is made from, and every random post-processing choice (target duration, band limit,
loudness, noise floor). Rendering a job then needs nothing but the job, so the corpus does not
depend on the number of worker processes.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from .generators import VOCODER_REQUIREMENTS, available_engines, engine_key
from .sources import SourceClip
from .systems import (
    EVAL_ONLY_VOCODERS,
    SPLITS,
    SYSTEMS,
    SYSTEMS_BY_ID,
    SYSTEMS_BY_NAME,
    TTS_VOICES,
    speaker_split,
)

logger = logging.getLogger(__name__)

SPLIT_LETTERS = {"train": "T", "dev": "D", "eval": "E"}
NARROWBAND_CUTOFF_HZ = (3300.0, 3700.0)
WIDEBAND_CUTOFF_HZ = (5000.0, 7800.0)
LOUDNESS_LUFS = (-32.0, -20.0)
NOISE_SNR_DB = (30.0, 50.0)
MIN_NARROWBAND_SHARE = 0.3
CHARS_PER_SECOND = 13.0


@dataclass(frozen=True)
class SizeConfig:
    name: str
    per_class: dict[str, int]  # utterances per label in each split
    min_duration: float
    max_duration: float
    use_shared: bool = True
    max_clips_per_speaker: int | None = None


SIZES = {
    "tiny": SizeConfig("tiny", {"train": 16, "dev": 8, "eval": 16}, 1.0, 2.5),
    "demo": SizeConfig("demo", {"train": 16, "dev": 16, "eval": 16}, 2.0, 3.0, use_shared=False),
    "small": SizeConfig("small", {"train": 120, "dev": 60, "eval": 100}, 1.5, 5.0),
    "full": SizeConfig("full", {"train": 560, "dev": 240, "eval": 400}, 1.5, 6.0),
}


@dataclass
class Job:
    utt_id: str
    split: str
    label: str
    speaker: str
    system: str  # "-" for bonafide
    language: str
    kind: str  # "bonafide", "tts", "vocoder", "shared"
    source: str
    licence: str
    clip_paths: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    engine: str = ""
    voice: str = ""
    native_narrowband: bool = False
    target_duration: float = 3.0
    min_duration: float = 1.0
    cutoff_hz: float = 8000.0
    target_lufs: float = -26.0
    snr_db: float = 40.0
    seed: int = 0


def utterance_seed(seed: int, utt_id: str) -> int:
    """The seed of one utterance: depends on the corpus seed and the id only."""
    return int(np.random.SeedSequence([seed, zlib.crc32(utt_id.encode())]).generate_state(1)[0])


class _Cycle:
    """Draws from a shuffled list without replacement; reshuffles when it runs out (or, with
    ``repeat=False``, returns None from then on)."""

    def __init__(self, items: list, rng: np.random.Generator, *, repeat: bool = True):
        self.items = list(items)
        self.rng = rng
        self.repeat = repeat
        self._queue: list = []
        self._rounds = 0

    def next(self):
        if not self._queue:
            if not self.items or (self._rounds and not self.repeat):
                return None
            self._queue = [self.items[i] for i in self.rng.permutation(len(self.items))]
            self._rounds += 1
        return self._queue.pop()


@dataclass
class Plan:
    jobs: list[Job]
    skipped: Counter  # reason -> count (sources or systems left out)
    size: SizeConfig
    seed: int


def _fill_clips(cycle: _Cycle, target: float, max_clips: int = 6) -> list[SourceClip]:
    """Clips of one speaker estimated to last ``target`` seconds once trimmed, plus one in
    reserve (durations are estimates; rendering stops as soon as the target is reached)."""
    clips: list[SourceClip] = []
    total = 0.0
    reserve_taken = False
    while len(clips) < max_clips and not reserve_taken:
        reserve_taken = total >= target * 1.15
        clip = cycle.next()
        if clip is None or clip in clips:
            break
        clips.append(clip)
        total += clip.duration * 0.85  # leading and trailing silence is trimmed later
    return clips


def _fill_texts(cycle: _Cycle, target: float, max_texts: int = 8) -> list[str]:
    """Enough transcripts for ``target`` seconds of speech, with a margin for fast voices."""
    texts: list[str] = []
    while len(texts) < max_texts:
        text = cycle.next()
        if text is None or text in texts:
            break
        texts.append(text)
        if sum(len(t) for t in texts) / CHARS_PER_SECOND >= target * 1.5:
            break
    return texts


def build_plan(
    clips: list[SourceClip], *, size: SizeConfig, seed: int, skipped: Counter | None = None
) -> Plan:
    """Choose every utterance of the corpus (no audio is read or written here)."""
    rng = np.random.default_rng(seed)
    skipped = Counter() if skipped is None else skipped
    engines = available_engines()

    bonafide_pools: dict[str, list[SourceClip]] = defaultdict(list)
    shared_spoofs: dict[tuple[str, str], list[SourceClip]] = defaultdict(list)
    texts_by_language: dict[str, list[str]] = defaultdict(list)
    texts_by_split_language: dict[tuple[str, str], list[str]] = defaultdict(list)
    for clip in clips:
        split = speaker_split(clip.speaker)
        if split is None:
            skipped[f"speaker {clip.speaker} has no split in the table (left out)"] += 1
            continue
        if clip.label == "bonafide":
            bonafide_pools[clip.speaker].append(clip)
            if clip.text:
                texts_by_language[clip.language].append(clip.text)
                texts_by_split_language[(split, clip.language)].append(clip.text)
        else:
            system = SYSTEMS_BY_NAME.get(clip.system)
            if system is None:
                skipped[f"shared spoof system {clip.system} unknown (left out)"] += 1
                continue
            shared_spoofs[(system.system_id, clip.speaker)].append(clip)

    jobs: list[Job] = []
    for split in SPLITS:
        split_jobs = _plan_split(
            split,
            rng=rng,
            size=size,
            engines=engines,
            bonafide_pools={s: c for s, c in bonafide_pools.items() if speaker_split(s) == split},
            shared_spoofs={k: c for k, c in shared_spoofs.items() if speaker_split(k[1]) == split},
            texts_by_language=texts_by_language,
            texts_by_split_language=texts_by_split_language,
            skipped=skipped,
        )
        _assign_ids_and_randomness(split_jobs, split, rng=rng, size=size, seed=seed)
        jobs.extend(split_jobs)
    return Plan(jobs=jobs, skipped=skipped, size=size, seed=seed)


def _plan_split(
    split: str,
    *,
    rng: np.random.Generator,
    size: SizeConfig,
    engines: dict[str, str | None],
    bonafide_pools: dict[str, list[SourceClip]],
    shared_spoofs: dict[tuple[str, str], list[SourceClip]],
    texts_by_language: dict[str, list[str]],
    texts_by_split_language: dict[tuple[str, str], list[str]],
    skipped: Counter,
) -> list[Job]:
    n_per_class = size.per_class[split]
    speakers = sorted(bonafide_pools)
    clip_cycles = {
        s: _Cycle(sorted(bonafide_pools[s], key=lambda c: c.clip_id), rng) for s in speakers
    }
    durations = iter(lambda: float(rng.uniform(size.min_duration, size.max_duration)), None)
    jobs: list[Job] = []

    # Bonafide: round-robin over the split's speakers.
    for index in range(n_per_class if speakers else 0):
        speaker = speakers[index % len(speakers)]
        target = next(durations)
        chosen = _fill_clips(clip_cycles[speaker], target)
        first = chosen[0]
        jobs.append(
            Job(
                utt_id="",
                split=split,
                label="bonafide",
                speaker=speaker,
                system="-",
                language=first.language,
                kind="bonafide",
                source=first.source,
                licence=first.licence,
                clip_paths=[clip.path for clip in chosen],
                native_narrowband=first.native_rate <= 8000,
                target_duration=target,
            )
        )
    if not speakers:
        skipped[f"{split}: no bonafide speakers available"] += 1

    # Spoof units: (system id, unit description), each able to make utterances.
    units: dict[str, list[dict]] = defaultdict(list)
    for voice in TTS_VOICES:
        if voice.split != split:
            continue
        reason = engines.get(engine_key(voice.engine, voice.voice))
        if reason:
            skipped[f"{voice.system_id} voice {voice.voice}: {reason}"] += 1
            continue
        texts = texts_by_split_language.get((split, voice.language)) or texts_by_language.get(
            voice.language
        )
        if not texts:
            skipped[f"{voice.system_id} voice {voice.voice}: no {voice.language} texts"] += 1
            continue
        units[voice.system_id].append(
            {"kind": "tts", "voice": voice, "texts": _Cycle(sorted(set(texts)), rng)}
        )
    for system in SYSTEMS:
        if system.kind != "vocoder":
            continue
        if system.system_id in EVAL_ONLY_VOCODERS and split != "eval":
            continue
        reason = engines.get(VOCODER_REQUIREMENTS[system.engine])
        if reason:
            skipped[f"{system.system_id} {system.name}: {reason}"] += 1
            continue
        for speaker in speakers:
            units[system.system_id].append({"kind": "vocoder", "speaker": speaker})
    for (system_id, speaker), pool in sorted(shared_spoofs.items()):
        units[system_id].append(
            {
                "kind": "shared",
                "speaker": speaker,
                "clips": _Cycle(sorted(pool, key=lambda c: c.clip_id), rng, repeat=False),
            }
        )

    system_ids = sorted(units)
    unit_cycles = {s: _Cycle(list(range(len(units[s]))), rng) for s in system_ids}
    active = list(system_ids)
    made = 0
    while made < n_per_class and active:
        for system_id in list(active):
            if made >= n_per_class:
                break
            job = _spoof_job(
                split, units[system_id], unit_cycles[system_id], clip_cycles, next(durations)
            )
            if job is None:  # this system's ready-made files are used up
                active.remove(system_id)
                continue
            job.system = system_id
            jobs.append(job)
            made += 1
    if made < n_per_class:
        skipped[f"{split}: only {made} of {n_per_class} spoofs could be planned"] += 1
    return jobs


def _spoof_job(
    split: str,
    system_units: list[dict],
    unit_cycle: _Cycle,
    clip_cycles: dict[str, _Cycle],
    target: float,
) -> Job | None:
    for _ in range(len(system_units)):
        unit = system_units[unit_cycle.next()]
        if unit["kind"] == "tts":
            voice = unit["voice"]
            system = SYSTEMS_BY_ID[voice.system_id]
            return Job(
                utt_id="",
                split=split,
                label="spoof",
                speaker=voice.speaker,
                system=voice.system_id,
                language=voice.language,
                kind="tts",
                source=f"{system.name} voice {voice.voice} reading bonafide transcripts",
                licence=system.licence,
                texts=_fill_texts(unit["texts"], target),
                engine=voice.engine,
                voice=voice.voice,
                native_narrowband=voice.native_rate <= 8000,
                target_duration=target,
            )
        if unit["kind"] == "vocoder":
            chosen = _fill_clips(clip_cycles[unit["speaker"]], target)
            first = chosen[0]
            return Job(
                utt_id="",
                split=split,
                label="spoof",
                speaker=unit["speaker"],
                system="",
                language=first.language,
                kind="vocoder",
                source=f"vocoded {first.source}",
                licence=first.licence,
                clip_paths=[clip.path for clip in chosen],
                native_narrowband=first.native_rate <= 8000,
                target_duration=target,
            )
        clip = unit["clips"].next()
        if clip is None:
            continue
        return Job(
            utt_id="",
            split=split,
            label="spoof",
            speaker=unit["speaker"],
            system="",
            language=clip.language,
            kind="shared",
            source=clip.source,
            licence=clip.licence,
            clip_paths=[clip.path],
            native_narrowband=clip.native_rate <= 8000,
            target_duration=target,
        )
    return None


def _assign_ids_and_randomness(
    jobs: list[Job], split: str, *, rng: np.random.Generator, size: SizeConfig, seed: int
) -> None:
    order = rng.permutation(len(jobs))
    shuffled = [jobs[i] for i in order]
    jobs[:] = shuffled
    letter = SPLIT_LETTERS[split]
    for index, job in enumerate(jobs, start=1):
        job.utt_id = f"LA_{letter}_{index:07d}"
        job.seed = utterance_seed(seed, job.utt_id)
        job.min_duration = size.min_duration
        if job.kind == "vocoder" and job.system == "A14":
            job.native_narrowband = True  # codec2 runs at 8 kHz

    # Same share of telephone-band utterances in both classes: natively narrowband material
    # (Asterisk, flite kal, codec2) counts, the rest is low-passed with the probability that
    # brings each class to the common share.
    share = {}
    for label in ("bonafide", "spoof"):
        members = [job for job in jobs if job.label == label]
        share[label] = (
            sum(job.native_narrowband for job in members) / len(members) if members else 0.0
        )
    target_share = max(MIN_NARROWBAND_SHARE, *share.values())
    for job in jobs:
        job_rng = np.random.default_rng(job.seed)
        native = share[job.label]
        p_narrow = 1.0 if native >= 1.0 else (target_share - native) / (1.0 - native)
        narrow = job.native_narrowband or job_rng.random() < p_narrow
        low, high = NARROWBAND_CUTOFF_HZ if narrow else WIDEBAND_CUTOFF_HZ
        job.cutoff_hz = float(job_rng.uniform(low, high))
        job.target_lufs = float(job_rng.uniform(*LOUDNESS_LUFS))
        job.snr_db = float(job_rng.uniform(*NOISE_SNR_DB))
