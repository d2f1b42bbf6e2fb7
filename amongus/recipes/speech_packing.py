"""Short clips of one speaker packed into pseudo-utterances, for separator training.

Several speech sources installed here are single words (0.3-1.5 s: letters, object names,
telephone prompts). A separator learns from segments of 2-4 s, and the recipe skips clips
shorter than 1 s. :func:`pack_short_clips` joins the short clips of ONE speaker into
pseudo-utterances of about 3-6 s: clips in a seeded random order, a random pause of
0.1-0.4 s between two clips, each clip scaled to unit RMS first so that the words of one pack
are at similar levels (recording levels vary between the words of a package).

This is the "concatenate utterances of the same speaker" trick of speaker-recognition and
separation data preparation (e.g. the single-speaker segments of LibriMix and of the VoxCeleb
recipes of SpeechBrain); nothing here decides which clips are short: the caller does.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .training_data import LoadedUtterance

logger = logging.getLogger(__name__)

PACK_PREFIX = "pack_"
#: below this RMS a clip is digital silence: it cannot be brought to unit RMS
SILENT_RMS = 1e-5


@dataclass(frozen=True)
class PackingOptions:
    """Lengths of the pseudo-utterances and of the pauses between clips, in seconds."""

    min_seconds: float = 3.0
    max_seconds: float = 6.0
    gap_seconds: tuple[float, float] = (0.1, 0.4)
    #: a speaker's last, shorter pack is kept when it reaches this length, else dropped (counted)
    min_remainder_seconds: float = 1.0
    #: the peak of a pack after the unit-RMS scaling of its clips (relative levels unchanged)
    peak: float = 0.9

    def validate(self) -> None:
        low, high = self.gap_seconds
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ValueError(
                f"packing needs 0 < min_seconds <= max_seconds, got {self.min_seconds}, "
                f"{self.max_seconds}"
            )
        if not 0 <= low <= high:
            raise ValueError(f"gap_seconds must be 0 <= low <= high, got {self.gap_seconds}")
        if not 0 < self.min_remainder_seconds <= self.min_seconds:
            raise ValueError("min_remainder_seconds must be in (0, min_seconds]")
        if not self.longest_clip_seconds > 0:
            raise ValueError(
                "max_seconds must exceed min_seconds plus the longest pause, got "
                f"{self.max_seconds}, {self.min_seconds}, {high}"
            )

    @property
    def longest_clip_seconds(self) -> float:
        """The longest clip packed. A longer one could leave a pack that is full but shorter
        than ``min_seconds``; such clips are left out (they are not short anyway)."""
        return self.max_seconds - self.min_seconds - self.gap_seconds[1]


@dataclass
class PackingReport:
    """What packing did: clips in, packs out, what was left out and why."""

    clips: int = 0
    packs: int = 0
    seconds: float = 0.0
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> clips

    def to_dict(self) -> dict:
        return {
            "clips": self.clips,
            "packs": self.packs,
            "minutes": round(self.seconds / 60, 2),
            "left_out": dict(sorted(self.left_out.items())),
        }


def _speaker_seed(seed: int, speaker: str) -> list[int]:
    # one generator per speaker: a speaker's packs do not change when another speaker is added
    digest = hashlib.sha1(speaker.encode("utf-8")).digest()
    return [int(seed), int.from_bytes(digest[:8], "little")]


def pack_short_clips(
    clips: Sequence[LoadedUtterance],
    *,
    sample_rate: int,
    seed: int,
    options: PackingOptions | None = None,
    report: PackingReport | None = None,
) -> list[LoadedUtterance]:
    """Join the clips of each speaker into pseudo-utterances (see the module docstring).

    Args:
        clips: short single-speaker clips at ``sample_rate`` (audio ``[T]`` float32); clips of
            different speakers are never packed together.
        sample_rate: their rate, in Hz.
        seed: the order of the clips and the pauses are drawn from ``(seed, speaker)``:
            the same clips and seed give the same packs, sample for sample.
        options: lengths (:class:`PackingOptions`; 3-6 s packs, 0.1-0.4 s pauses by default).
        report: filled with the counts (clips, packs, clips left out and why).

    Returns:
        One :class:`LoadedUtterance` per pack, ordered by speaker then pack number: ``utt_id``
        ``pack_<speaker>_<n>``, the speaker, source, licence and language of its clips,
        ``path`` that of its first clip, ``duration`` in seconds. Every pack lasts between
        ``min_seconds`` and ``max_seconds``, except a speaker's last pack (or only pack, when
        the speaker has little audio), which may be shorter but lasts at least
        ``min_remainder_seconds``; shorter remainders and silent clips are left out and counted
        in ``report``. A clip longer than :attr:`PackingOptions.longest_clip_seconds` (2.6 s by
        default) is left out (counted): it is no short clip.

    Raises:
        ValueError: bad options or a non-positive ``sample_rate``.
    """
    options = options or PackingOptions()
    options.validate()
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    report = report if report is not None else PackingReport()
    by_speaker: dict[str, list[LoadedUtterance]] = defaultdict(list)
    for clip in clips:
        by_speaker[clip.utterance.speaker].append(clip)
    max_samples = int(options.max_seconds * sample_rate)
    longest = int(options.longest_clip_seconds * sample_rate)
    min_samples = int(options.min_seconds * sample_rate)
    remainder_samples = int(options.min_remainder_seconds * sample_rate)
    packs: list[LoadedUtterance] = []

    def left_out(reason: str, count: int = 1) -> None:
        report.left_out[reason] = report.left_out.get(reason, 0) + count

    for speaker in sorted(by_speaker):
        group = sorted(by_speaker[speaker], key=lambda item: item.utterance.utt_id)
        rng = np.random.default_rng(_speaker_seed(seed, speaker))
        order = rng.permutation(len(group))
        members: list[list[tuple[LoadedUtterance, int]]] = [[]]  # (clip, pause before it)
        lengths = [0]
        target = int(rng.uniform(options.min_seconds, options.max_seconds) * sample_rate)
        for index in order:
            clip = group[int(index)]
            report.clips += 1
            n = clip.audio.shape[0]
            if n > longest:
                left_out(f"clip longer than {options.longest_clip_seconds:g} s")
                continue
            if float(np.sqrt(np.mean(clip.audio.astype(np.float64) ** 2))) < SILENT_RMS:
                left_out("silent clip")
                continue
            # a pause before every clip but the first; the pause counts in the pack's length
            gap = int(rng.uniform(*options.gap_seconds) * sample_rate) if members[-1] else 0
            if members[-1] and lengths[-1] + gap + n > max_samples:
                members.append([])
                lengths.append(0)
                target = int(rng.uniform(options.min_seconds, options.max_seconds) * sample_rate)
                gap = 0
            members[-1].append((clip, gap))
            lengths[-1] += gap + n
            if lengths[-1] >= target:
                members.append([])
                lengths.append(0)
                target = int(rng.uniform(options.min_seconds, options.max_seconds) * sample_rate)
        if not members[-1]:
            members.pop()
            lengths.pop()
        for number, (pack, length) in enumerate(zip(members, lengths, strict=True)):
            is_last = number == len(members) - 1
            if length < min_samples and not (is_last and length >= remainder_samples):
                left_out(f"speaker's remainder shorter than {options.min_remainder_seconds:g} s",
                         len(pack))  # fmt: skip
                continue
            packs.append(_render_pack(speaker, number, pack, length, sample_rate, options.peak))
            report.packs += 1
            report.seconds += length / sample_rate
    return packs


def _render_pack(speaker, number, pack, length, sample_rate, peak) -> LoadedUtterance:
    audio = np.zeros(length, dtype=np.float64)
    position = 0
    for clip, gap in pack:
        position += gap
        samples = clip.audio.astype(np.float64)
        samples = samples / np.sqrt(np.mean(samples**2))
        audio[position : position + samples.shape[0]] = samples
        position += samples.shape[0]
    audio *= peak / float(np.max(np.abs(audio)))
    first = pack[0][0].utterance
    utterance = replace(
        first,
        utt_id=f"{PACK_PREFIX}{speaker}_{number:04d}",
        duration=round(length / sample_rate, 4),
        sample_rate=sample_rate,
    )
    return LoadedUtterance(utterance, audio.astype(np.float32))


def load_and_pack(
    utterances: Sequence,
    *,
    sample_rate: int,
    seed: int,
    short_seconds: float = 1.0,
    min_clip_seconds: float = 0.1,
    max_seconds: float | None = None,
    options: PackingOptions | None = None,
    progress: bool = True,
) -> tuple[list[LoadedUtterance], PackingReport]:
    """Load ``utterances`` (:class:`~amongus.manifest.Utterance`) at ``sample_rate``; those of
    ``short_seconds`` or more are kept as they are, shorter ones are packed
    (:func:`pack_short_clips`).

    Unreadable files and clips under ``min_clip_seconds`` are skipped and counted in the log
    (:func:`~amongus.recipes.training_data.load_all`); ``max_seconds`` keeps only the first
    seconds of long files. Returns ``(items, report)``: the kept utterances, then the packs;
    an empty list when nothing could be read (logged, not raised: this speech is optional).
    """
    from .training_data import load_all

    report = PackingReport()
    if not utterances:
        return [], report
    try:
        loaded = load_all(
            utterances, sample_rate=sample_rate, min_seconds=min_clip_seconds,
            max_seconds=max_seconds, progress=progress,
        )  # fmt: skip
    except ValueError as error:  # nothing readable
        logger.warning("extra speech: %s", error)
        return [], report
    threshold = int(short_seconds * sample_rate)
    kept = [item for item in loaded if item.audio.shape[0] >= threshold]
    short = [item for item in loaded if item.audio.shape[0] < threshold]
    packs = pack_short_clips(short, sample_rate=sample_rate, seed=seed, options=options,
                             report=report)  # fmt: skip
    logger.info(
        "packed %d clip(s) shorter than %g s into %d pseudo-utterance(s) (%.1f min); left out: %s",
        report.clips, short_seconds, report.packs, report.seconds / 60, report.left_out or "none",
    )  # fmt: skip
    return kept + packs, report
