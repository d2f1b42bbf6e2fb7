"""Seeded drawing of a conversation: who takes part, who is spoofed, turns, pauses and overlaps.

The method follows the simulated-conversation recipes of Landini et al., "From simulated
mixtures to simulated conversations as training data for end-to-end neural diarization"
(Interspeech 2022, arXiv:2204.00890; the ``ConversationalMeetingSimulator`` of Lhotse's
``workflows/meeting_simulation``) and LibriCSS (Chen et al., ICASSP 2020) for the overlap ratio:

1. speakers take turns: the first turns go round every speaker once (in a random order), then
   each turn goes to another speaker, chosen uniformly, or with ``same_speaker_prob`` stays with
   the same one; each turn is one utterance of that speaker;
2. each change of speaker is drawn as a pause (exponential, mean ``pause_mean`` s) or, with
   probability ``overlap_turns``, as an overlap whose raw length is exponential; a speaker
   keeping the floor always pauses;
3. the overlap ratio is then fitted, as Lhotse's simulators adjust theirs: with turns of total
   length ``D`` and at most two speakers at once, a ratio ``r`` (overlapped speech time over
   speech time) needs ``O = r D / (1 + r)`` samples of overlap. The raw overlaps are scaled
   by one factor (found by bisection) so that they sum to ``O``, each capped at half of the
   shorter of its two turns; when the drawn overlaps cannot hold ``O`` even at their caps,
   further speaker changes (in a drawn order) become overlaps.

The caps keep the timeline simple and checkable: a turn overlaps only its neighbours, never
two turns at once, and never a turn of its own speaker.

Every random value comes from generators seeded with ``(seed, index, 0, stream)``
(:func:`amongus.mix.plan.mixture_rng`): stream 0 draws the speakers and the utterances; stream 1
the turn order, timing, levels and takeover times; stream 2 the augmentations; stream 3 the
windows cut from utterances longer than ``max_source_seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..labels import BONAFIDE, SPOOF
from ..manifest import Utterance

_MAX_REJECTIONS = 1000
_OVERLAP_CAP = 0.5  # an overlap takes at most this share of the shorter of its two turns


class CastError(ValueError):
    """The corpus cannot supply the speakers a conversation needs (the message says why)."""


# ----------------------------------------------------------------------------------------------
# Speakers
# ----------------------------------------------------------------------------------------------
def speaker_name(utterance: Utterance) -> str:
    """The speaker an utterance belongs to: its corpus speaker id, or ``utt-<utt_id>`` when the
    corpus gives none (a folder tree), so an unknown voice never merges with another."""
    speaker = (utterance.speaker or "").strip()
    return speaker if speaker not in ("", "-") else f"utt-{utterance.utt_id}"


@dataclass
class SpeakerPools:
    """Usable utterances (indices) by speaker and label; ``n_unknown`` utterances had no
    speaker id and are a speaker each."""

    pools: dict[str, dict[str, list[int]]]
    n_unknown: int = 0

    def names_with(self, *labels: str) -> list[str]:
        """Speakers with at least one usable utterance of every one of ``labels``, sorted."""
        return sorted(
            name for name, by_label in self.pools.items() if all(by_label[lb] for lb in labels)
        )


def speaker_pools(utterances: Sequence[Utterance], usable: Sequence[bool]) -> SpeakerPools:
    """Group the usable utterances by :func:`speaker_name` and label."""
    pools: dict[str, dict[str, list[int]]] = {}
    unknown = 0
    for index, (utterance, ok) in enumerate(zip(utterances, usable, strict=True)):
        if not ok:
            continue
        name = speaker_name(utterance)
        unknown += name.startswith("utt-") and utterance.speaker in ("", "-")
        pools.setdefault(name, {BONAFIDE: [], SPOOF: []})[utterance.label].append(index)
    return SpeakerPools(pools, unknown)


@dataclass(frozen=True)
class CastMember:
    """One speaker of a conversation: spoofed for the whole call, an impostor, or bonafide."""

    name: str
    spoofed: bool
    impostor: bool = False


def draw_cast(
    rng: np.random.Generator,
    pools: SpeakerPools,
    n_speakers: tuple[int, int],
    n_spoofed: tuple[int, int],
    impostor: bool,
) -> list[CastMember]:
    """Draw the speakers of one conversation, spoofed ones first, then bonafide ones.

    A spoofed speaker needs spoof utterances under its speaker id (in ASVspoof-style corpora a
    spoof utterance carries the id of the speaker it imitates); an impostor needs bonafide ones
    too; a bonafide speaker needs bonafide ones. Speakers are distinct.

    Raises:
        CastError: the usable utterances hold too few such speakers.
    """
    total = int(rng.integers(n_speakers[0], n_speakers[1] + 1))
    spoofed = min(int(rng.integers(n_spoofed[0], n_spoofed[1] + 1)), total)
    spoof_candidates = pools.names_with(BONAFIDE, SPOOF) if impostor else pools.names_with(SPOOF)
    if len(spoof_candidates) < spoofed:
        need = "both bonafide and spoof" if impostor else "spoof"
        raise CastError(
            f"a conversation needs {spoofed} spoofed speaker(s), but only "
            f"{len(spoof_candidates)} speaker(s) have usable {need} utterances"
        )
    chosen = [str(name) for name in rng.choice(spoof_candidates, size=spoofed, replace=False)]
    bonafide_candidates = [name for name in pools.names_with(BONAFIDE) if name not in chosen]
    if len(bonafide_candidates) < total - spoofed:
        raise CastError(
            f"a conversation needs {total - spoofed} bonafide speaker(s) besides the spoofed "
            f"one(s), but only {len(bonafide_candidates)} other speaker(s) have usable bonafide "
            "utterances (speakers are told apart by the corpus speaker id)"
        )
    others = [
        str(name) for name in rng.choice(bonafide_candidates, size=total - spoofed, replace=False)
    ]
    return [CastMember(name, True, impostor) for name in chosen] + [
        CastMember(name, False) for name in others
    ]


# ----------------------------------------------------------------------------------------------
# Turns
# ----------------------------------------------------------------------------------------------
@dataclass
class PlannedTurn:
    """A turn before timing: who speaks, which utterance, which window of it (samples at the
    conversation rate), and, for a change of speaker, the pause or raw overlap before it."""

    speaker: int  # index into the cast
    utterance: int  # index into the utterance list
    label: str
    start: int
    length: int
    pause: int = 0  # samples of silence before the turn (when it does not overlap)
    overlap_wanted: bool = False
    raw_overlap: float = 0.0
    priority: float = 0.0  # order in which extra speaker changes become overlaps
    same_speaker: bool = False


WindowFn = Callable[[int], "tuple[int, int] | None"]


class UtteranceDrawer:
    """Draws a usable utterance of a speaker and label by rejection from its whole pool, so an
    utterance found unusable changes only the turns that drew it.

    ``window(index)`` gives the ``(start, length)`` of an utterance's window at the
    conversation rate, or ``None`` when it cannot be used (then it is excluded and another one
    drawn).
    """

    def __init__(self, pools: SpeakerPools, window: WindowFn):
        self.pools = pools
        self.window = window
        self.excluded: set[int] = set()

    def draw(self, rng: np.random.Generator, name: str, label: str) -> tuple[int, int, int]:
        pool = self.pools.pools[name][label]
        for _ in range(_MAX_REJECTIONS):
            candidate = int(pool[int(rng.integers(len(pool)))])
            if candidate in self.excluded:
                continue
            window = self.window(candidate)
            if window is None:
                self.excluded.add(candidate)
                continue
            return candidate, *window
        for candidate in pool:  # most of the pool unusable: try the rest in order
            if candidate not in self.excluded:
                window = self.window(candidate)
                if window is not None:
                    return candidate, *window
                self.excluded.add(candidate)
        raise CastError(f"speaker {name!r} has no usable {label} utterance")


def draw_turns(
    source_rng: np.random.Generator,
    timing_rng: np.random.Generator,
    cast: Sequence[CastMember],
    drawer: UtteranceDrawer,
    *,
    target_samples: int,
    sample_rate: int,
    target_overlap: float,
    overlap_turns: float,
    pause_mean: float,
    same_speaker_prob: float,
    takeover_samples: Sequence[int | None],
) -> list[PlannedTurn]:
    """Draw turns until the conversation, once overlaps are fitted, would reach
    ``target_samples`` (and every speaker has spoken once).

    The label of a turn is the speaker's: spoof for a spoofed speaker; for an impostor,
    bonafide before its takeover time and spoof from it (judged on the expected timeline), with
    at least one turn of each label when the impostor speaks twice or more.
    """
    n = len(cast)
    shrink = target_overlap / (1.0 + target_overlap)  # share of turn time lost to overlap
    introductions = [int(k) for k in timing_rng.permutation(n)]
    turns: list[PlannedTurn] = []
    expected = 0.0  # expected end of the last turn, in samples
    while len(turns) < n or expected < target_samples:
        # a fixed number of timing draws per turn: the turn order and timing do not depend on
        # which utterances were drawn (nor on one found unusable)
        stay, pick, wants_overlap, raw, pause_s, priority = timing_rng.random(6)
        raw_overlap = -math.log(1.0 - raw)  # exponential, mean 1 (scaled when fitted)
        pause = int(round(-math.log(1.0 - pause_s) * pause_mean * sample_rate))
        if len(turns) < n:
            speaker = introductions[len(turns)]
        elif stay < same_speaker_prob:
            speaker = turns[-1].speaker
        else:
            others = [k for k in range(n) if k != turns[-1].speaker]
            speaker = others[min(int(pick * len(others)), len(others) - 1)]
        member = cast[speaker]
        start_estimate = expected + (pause if turns else 0)
        label = _turn_label(member, takeover_samples[speaker], start_estimate)
        utterance, start, length = drawer.draw(source_rng, member.name, label)
        same = bool(turns) and turns[-1].speaker == speaker
        overlap = bool(turns) and not same and target_overlap > 0 and wants_overlap < overlap_turns
        turns.append(
            PlannedTurn(
                speaker=speaker,
                utterance=utterance,
                label=label,
                start=start,
                length=length,
                pause=0 if not turns else pause,
                overlap_wanted=overlap,
                raw_overlap=raw_overlap if overlap else 0.0,
                priority=float(priority),
                same_speaker=same,
            )
        )
        if len(turns) == 1:
            expected = length
        else:
            expected += (0 if overlap else pause) + length * (1.0 - shrink)
    _ensure_impostor_labels(turns, cast, drawer, source_rng)
    return turns


def _turn_label(member: CastMember, takeover: int | None, start_estimate: float) -> str:
    if not member.spoofed:
        return BONAFIDE
    if member.impostor and takeover is not None and start_estimate < takeover:
        return BONAFIDE
    return SPOOF


def _ensure_impostor_labels(turns, cast, drawer, rng) -> None:
    """An impostor that speaks twice or more is bonafide in its first turn and spoofed in its
    last; one that speaks once is spoofed (the takeover is at its only turn)."""
    for speaker, member in enumerate(cast):
        if not member.impostor:
            continue
        own = [turn for turn in turns if turn.speaker == speaker]
        if not own:
            continue
        wanted = {id(own[-1]): SPOOF}
        if len(own) >= 2:
            wanted[id(own[0])] = BONAFIDE
        for turn in own:
            label = wanted.get(id(turn))
            if label is not None and turn.label != label:
                turn.label = label
                turn.utterance, turn.start, turn.length = drawer.draw(rng, member.name, label)


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
def fit_overlaps(turns: Sequence[PlannedTurn], target_overlap: float) -> list[int]:
    """Overlap (samples) of each turn with the one before it, summing to ``r D / (1 + r)``.

    Only changes of speaker may overlap; each overlap is capped at half of the shorter of its
    two turns (so no three turns and no two turns of one speaker ever overlap).
    """
    n = len(turns)
    overlaps = [0] * n
    if n < 2 or target_overlap <= 0:
        return overlaps
    total = sum(turn.length for turn in turns)
    needed = target_overlap * total / (1.0 + target_overlap)
    caps = [0.0] * n
    for i in range(1, n):
        if not turns[i].same_speaker:
            caps[i] = math.floor(_OVERLAP_CAP * min(turns[i - 1].length, turns[i].length))
    chosen = [i for i in range(1, n) if turns[i].overlap_wanted and caps[i] > 0]
    weights = {i: turns[i].raw_overlap for i in chosen}
    spare = sorted(
        (i for i in range(1, n) if caps[i] > 0 and i not in weights),
        key=lambda i: turns[i].priority,
    )
    while sum(caps[i] for i in weights) < needed and spare:
        i = spare.pop(0)
        weights[i] = max(turns[i].raw_overlap, 1e-3) or 1.0
    if not weights:
        return overlaps
    if sum(caps[i] for i in weights) <= needed:  # the target is out of reach: all at the cap
        for i in weights:
            overlaps[i] = int(caps[i])
        return overlaps

    def amount(scale: float) -> float:
        return sum(min(caps[i], scale * w) for i, w in weights.items())

    low, high = 0.0, max(caps[i] / max(w, 1e-12) for i, w in weights.items())
    for _ in range(100):  # bisection: amount() is continuous and increasing
        middle = 0.5 * (low + high)
        if amount(middle) < needed:
            low = middle
        else:
            high = middle
    for i, w in weights.items():
        overlaps[i] = int(min(caps[i], high * w))
    return overlaps


def place_turns(turns: Sequence[PlannedTurn], overlaps: Sequence[int]) -> tuple[list[int], int]:
    """Offsets (samples) of the turns and the conversation length: each turn starts after the
    previous one's end plus its pause, or ``overlap`` samples before that end."""
    offsets: list[int] = []
    end = 0
    for i, turn in enumerate(turns):
        if i == 0:
            offset = 0
        elif overlaps[i] > 0:
            offset = end - int(overlaps[i])
        else:
            offset = end + int(turn.pause)
        offsets.append(offset)
        end = max(end, offset + turn.length)
    return offsets, end


def overlap_ratio(offsets: Sequence[int], lengths: Sequence[int]) -> float:
    """Overlapped speech time over speech time: the share of the time in which at least one
    interval ``[offset, offset + length)`` is active where two or more are (LibriCSS's
    definition); ``0.0`` with no speech."""
    speech, overlapped = _coverage(offsets, lengths)
    return overlapped / speech if speech > 0 else 0.0


def _coverage(offsets: Sequence[int], lengths: Sequence[int]) -> tuple[int, int]:
    """(time with >= 1 interval active, time with >= 2 active), by a sweep over the ends."""
    events = sorted(
        [(int(o), 1) for o in offsets]
        + [(int(o) + int(n), -1) for o, n in zip(offsets, lengths, strict=True)]
    )
    speech = overlapped = 0
    active = 0
    previous = events[0][0] if events else 0
    for time, change in events:
        if active >= 1:
            speech += time - previous
        if active >= 2:
            overlapped += time - previous
        active += change
        previous = time
    return speech, overlapped
