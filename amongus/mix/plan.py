"""Seeded drawing of mixtures: compositions, sources, placements, levels.

Every random choice for mixture ``i`` comes from generators seeded with ``(seed, i, attempt,
stream)``, never from a generator shared between mixtures, so a mixture does not depend on the
number of worker processes or on the order in which mixtures are made. Separate streams keep the
draws independent: rejecting an unusable utterance (stream 0) does not shift the offsets and
gains (stream 1) or the augmentations (stream 2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..labels import BONAFIDE, SPOOF
from ..manifest import Utterance
from ..validation import InvalidAudioError, check_header
from .config import MixerConfig

logger = logging.getLogger(__name__)

STREAM_SOURCES = 0
STREAM_PLACEMENT = 1
STREAM_AUGMENT = 2
_MAX_REJECTIONS = 1000


def mixture_rng(seed: int, index: int, attempt: int, stream: int) -> np.random.Generator:
    """The generator of one random stream of one mixture (independent of all others)."""
    return np.random.default_rng([int(seed), int(index), int(attempt), int(stream)])


# ----------------------------------------------------------------------------------------------
# Input scan
# ----------------------------------------------------------------------------------------------
@dataclass
class InputScan:
    """What the header scan found: usable utterances, bad ones and what will be converted."""

    usable: list[bool]
    rates: list[int | None] = field(default_factory=list)  # header rate of each utterance
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    downmixed: int = 0
    resampled: int = 0


def scan_utterances(utterances: Sequence[Utterance], config: MixerConfig) -> InputScan:
    """Check each file's header (exists, readable, not empty, long enough; channels and rate)
    with :func:`amongus.validation.check_header`, the policy every entry point shares (the
    minimum length is ``config.min_source_seconds`` or the policy's floor, whichever is longer).

    Cheap: no sample is decoded. Content problems (silent, NaN/inf) are found when a drawn
    utterance is first decoded. Raises ``ValueError`` naming the file when
    ``config.on_bad_input == "error"``.
    """
    usable: list[bool] = []
    scan = InputScan(usable=usable)
    rates = Counter()
    for utterance in utterances:
        try:
            info = check_header(utterance.path, min_duration=config.min_source_seconds)
        except InvalidAudioError as error:
            if config.on_bad_input == "error":
                raise ValueError(f"{error} (utterance {utterance.utt_id})") from None
            scan.problems.append((utterance.path, error.problem))
            usable.append(False)
            scan.rates.append(None)
            continue
        usable.append(True)
        scan.rates.append(int(info.samplerate))
        rates[info.samplerate] += 1
        if info.channels > 1:
            scan.downmixed += 1
    target = config.sample_rate or (rates.most_common(1)[0][0] if rates else None)
    scan.resampled = sum(1 for rate in scan.rates if rate is not None and rate != target)
    return scan


# ----------------------------------------------------------------------------------------------
# Composition and sources
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceDraw:
    """The composition and utterances (indices into the utterance list) of one mixture."""

    index: int
    attempt: int
    composition: str
    utterances: tuple[int, ...]


class SourceSampler:
    """Draws compositions and utterances, skipping those known to be unusable.

    Utterances are drawn by rejection from the full pool of their label, so removing a bad
    utterance changes only the mixtures that had drawn it.
    """

    def __init__(self, utterances: Sequence[Utterance], config: MixerConfig, seed: int):
        self.utterances = utterances
        self.config = config
        self.seed = int(seed)
        self.pools = {
            label: np.array([i for i, u in enumerate(utterances) if u.label == label], dtype=int)
            for label in (SPOOF, BONAFIDE)
        }
        self.excluded: set[int] = set()

    def exclude(self, indices) -> None:
        self.excluded.update(int(i) for i in indices)

    def composition_probabilities(self) -> tuple[list[str], np.ndarray]:
        """Compositions and probabilities, dropping those the usable pools cannot fill."""
        available = {
            label: len(set(pool.tolist()) - self.excluded) for label, pool in self.pools.items()
        }
        labels, probs = [], []
        for composition, prob in self.config.compositions().items():
            n_spoof = composition.count("S")
            n_bona = len(composition) - n_spoof
            if prob > 0 and (available[SPOOF] < n_spoof or available[BONAFIDE] < n_bona):
                logger.warning(
                    "composition %s dropped: %d usable spoof and %d usable bonafide utterances",
                    composition,
                    available[SPOOF],
                    available[BONAFIDE],
                )
                continue
            labels.append(composition)
            probs.append(prob)
        total = sum(probs)
        if not labels or total <= 0:
            raise ValueError(
                f"no composition can be drawn from {available[SPOOF]} usable spoof and "
                f"{available[BONAFIDE]} usable bonafide utterances with "
                f"{self.config.n_sources} sources per mixture"
            )
        return labels, np.asarray(probs, dtype=float) / total

    def draw(self, index: int, attempt: int, compositions=None) -> SourceDraw:
        labels, probs = compositions or self.composition_probabilities()
        rng = mixture_rng(self.seed, index, attempt, STREAM_SOURCES)
        composition = labels[int(rng.choice(len(labels), p=probs))]
        slots = [SPOOF] * composition.count("S") + [BONAFIDE] * composition.count("B")
        chosen: list[int] = []
        for slot_label in slots:
            chosen.append(self._draw_one(rng, self.pools[slot_label], chosen))
        order = rng.permutation(len(chosen))
        return SourceDraw(index, attempt, composition, tuple(chosen[i] for i in order))

    def _draw_one(self, rng: np.random.Generator, pool: np.ndarray, chosen: list[int]) -> int:
        speakers = {self.utterances[i].speaker for i in chosen} - {"-", ""}
        want_distinct = self.config.distinct_speakers and bool(speakers)
        for _ in range(_MAX_REJECTIONS):
            candidate = int(pool[rng.integers(len(pool))])
            if candidate in self.excluded or candidate in chosen:
                continue
            if want_distinct and self.utterances[candidate].speaker in speakers:
                continue
            return candidate
        # Most of the pool is unusable or one speaker: fall back to an explicit list.
        valid = [int(i) for i in pool if int(i) not in self.excluded and int(i) not in chosen]
        if want_distinct:
            distinct = [i for i in valid if self.utterances[i].speaker not in speakers]
            valid = distinct or valid
        if not valid:
            raise ValueError("not enough usable utterances to fill a mixture")
        return valid[int(rng.integers(len(valid)))]


def safe_name(utt_id: str) -> str:
    """An utterance id usable in a file name: characters other than letters, digits, ``.``,
    ``_`` and ``-`` (path separators, spaces) become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", utt_id).strip(".") or "utt"


MAX_NAME_BYTES = 255  # NAME_MAX of ext4, XFS, Btrfs, APFS and NTFS


def fit_id(mixture_id: str, max_bytes: int) -> str:
    """``mixture_id`` itself, or, when longer than ``max_bytes`` (UTF-8), its first characters
    and ``-`` plus the first 10 hex digits of its SHA-1: distinct ids stay distinct, and the
    same id is always shortened the same way."""
    if len(mixture_id.encode()) <= max_bytes:
        return mixture_id
    digest = hashlib.sha1(mixture_id.encode()).hexdigest()[:10]
    head = mixture_id.encode()[: max(1, max_bytes - len(digest) - 1)].decode("utf-8", "ignore")
    return f"{head}-{digest}"


def mixture_ids(
    draws: Sequence[SourceDraw],
    utterances: Sequence[Utterance],
    config: MixerConfig,
    split: str,
    *,
    max_bytes: int = MAX_NAME_BYTES - len(".flac"),
) -> list[str]:
    """Deterministic, unique mixture ids: ``{split}-{index:06d}`` or ``UTT1_UTT2`` (``-2``,
    ``-3``... appended, in index order, to a name already taken: a repeated pair, or two
    utterance ids that read alike once made file-safe).

    An id longer than ``max_bytes`` (the file name limit less the extension) is shortened by
    :func:`fit_id` (a hash suffix), so long utterance ids never give an illegal file name.
    """
    if config.naming == "index":
        prefix = safe_name(split) if split and split != "-" else "mix"
        return [fit_id(f"{prefix}-{draw.index:06d}", max_bytes) for draw in draws]
    # Names are lossy (safe_name maps "a b" and "a-b" alike; the pair a + b drawn twice gives
    # "a_b-2", which is also the pair a + "b-2"), so uniqueness is checked on the final ids.
    taken: set[str] = set()
    ids = []
    for draw in sorted(draws, key=lambda d: d.index):
        name = "_".join(safe_name(utterances[i].utt_id) for i in draw.utterances)
        candidate, repeat = fit_id(name, max_bytes), 1
        while candidate in taken:
            repeat += 1
            candidate = fit_id(f"{name}-{repeat}", max_bytes)
        taken.add(candidate)
        ids.append(candidate)
    order = np.argsort([d.index for d in draws], kind="stable")
    result = [""] * len(draws)
    for rank, position in enumerate(order):
        result[position] = ids[rank]
    return result


def settings_key(config: MixerConfig, seed: int, split: str) -> str:
    """The part of a fingerprint shared by every mixture of a run (computed once)."""
    settings = config.to_dict()
    settings.pop("cache_mb", None)
    settings.pop("on_bad_input", None)
    return json.dumps({"config": settings, "seed": int(seed), "split": split}, sort_keys=True)


def fingerprint(settings: str, draw: SourceDraw, mixture_id: str, utterances) -> str:
    """A hash of everything that determines a mixture's audio and record (for resuming)."""
    payload = [
        settings,
        draw.index,
        draw.attempt,
        mixture_id,
        [(utterances[i].utt_id, utterances[i].path) for i in draw.utterances],
    ]
    return hashlib.sha1(json.dumps(payload).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Placement and levels
# ----------------------------------------------------------------------------------------------
@dataclass
class Placement:
    """Where each source goes: ``offset`` (samples of leading silence), ``start`` and
    ``length`` (the used window of the source), and the mixture length."""

    offsets: list[int]
    starts: list[int]
    lengths: list[int]
    num_samples: int
    delayed: int | None = None  # thesis placement: which source was delayed
    overlap_ratio: float | None = None  # overlap placement: the drawn ratio


def draw_placement(
    rng: np.random.Generator, lengths: Sequence[int], sample_rate: int, config: MixerConfig
) -> Placement:
    """Draw offsets and windows for sources of the given lengths (samples at the mixture rate)."""
    lengths = [int(n) for n in lengths]
    n = len(lengths)
    if config.placement == "thesis":
        # The study: one signal chosen at random gets U(0, max_delay) s of leading silence,
        # then every signal is cut to the shortest length (after the delay).
        delayed = int(rng.integers(n))
        delay = int(math.floor(rng.uniform(0.0, config.max_delay) * sample_rate))
        padded = [length + (delay if k == delayed else 0) for k, length in enumerate(lengths)]
        total = min(padded)
        offsets = [delay if k == delayed else 0 for k in range(n)]
        used = [
            max(0, min(length, total - offset))
            for length, offset in zip(lengths, offsets, strict=True)
        ]
        return Placement(offsets, [0] * n, used, total, delayed=delayed)

    # Overlap placement: optional crop to max_source_seconds, then every source cropped to the
    # shortest length L; the sources are spread over L + delta samples with delta =
    # (1 - ratio) * L, so all of them are placed together for ratio * L samples.
    windows = list(lengths)
    if config.max_source_seconds is not None:
        cap = int(round(config.max_source_seconds * sample_rate))
        windows = [min(length, cap) for length in windows]
    common = min(windows)
    starts = [int(rng.integers(0, length - common + 1)) for length in lengths]
    ratio = float(rng.uniform(*config.overlap_ratio))
    spread = int(round((1.0 - ratio) * common))
    order = rng.permutation(n)
    offsets = [0] * n
    offsets[int(order[-1])] = spread
    for k in order[1:-1]:
        offsets[int(k)] = int(rng.integers(0, spread + 1))
    return Placement(offsets, starts, [common] * n, common + spread, overlap_ratio=ratio)


def draw_levels(rng: np.random.Generator, n_sources: int, config: MixerConfig) -> list[float]:
    """One level per source in the unit of ``config.level_mode`` (linear, dB or LUFS)."""
    bounds = {
        "gain": config.gain_range,
        "db": config.level_db,
        "lufs": config.loudness_lufs,
    }[config.level_mode]
    return [float(rng.uniform(*bounds)) for _ in range(n_sources)]
