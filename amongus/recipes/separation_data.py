"""Real read speech for separator training: what is installed, a speaker split, test mixtures.

**Speech.** Only bonafide human speech is used to learn separation (spoofs would teach nothing
about separation and would leak the evaluation's spoof systems):

* the apt-packaged recordings that the corpus recipe uses (Asterisk prompts, festvox-ru,
  Tux Paint stamp descriptions; found by :mod:`amongus.recipes.minispoof.sources`); packages
  that are not installed are named in the log and in ``split.json``;
* the ``bonafide/`` files of the shared real-audio folder (``../shared/data/real``:
  LibriSpeech test-other, LJSpeech), when it exists.

**Speaker split** (:func:`choose_speaker_split`). Speakers known to the corpus recipe keep its
split (:func:`amongus.recipes.minispoof.systems.speaker_split`): its ``eval`` speakers are held out
of separator training and its ``dev`` speakers validate, so the study's evaluation mixtures never
hold a speaker the separator was trained on. LibriSpeech speakers move from training to the test
set (seeded) until it has ``n_test`` of them. The test set is LibriSpeech only, as in the study.

**Training mixtures** (:func:`draw_mixture`): made on the fly, see there.

**Test mixtures** (:func:`study_test_mixtures`). Two utterances of different test speakers, mixed
with the study's recipe, the ``thesis`` preset of :class:`amongus.mix.config.MixerConfig` (the
Mixer's own placement and level functions): a linear gain ``U(0.7, 1.3)`` on each raw source, one
source delayed by ``U(0, 1)`` s, both cut to the shorter length after the delay, the sum
normalised to peak 1. Every mixture has its own seeded generator, so the set does not depend on
the model or the order of evaluation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import Utterance
from .training_data import LoadedUtterance

logger = logging.getLogger(__name__)

LIBRISPEECH_PREFIX = "libri_"  # speaker ids as the corpus recipe writes them (libri_1688)
SPLIT_FILE = "split.json"
SPLITS = ("train", "val", "test", "held_out")


# --------------------------------------------------------------------------- discovery
@dataclass
class SpeechInventory:
    """The real speech found: utterances, the shared folder used, what was missing."""

    utterances: list[Utterance]
    shared_root: Path | None
    missing: dict[str, int] = field(default_factory=dict)  # reason -> count

    def describe(self) -> dict[str, Any]:
        return {
            "sources": source_counts(self.utterances),
            "shared_real": "present" if self.shared_root else "absent",
            "missing": dict(sorted(self.missing.items())),
        }


def source_counts(utterances: Sequence[Utterance]) -> dict[str, dict[str, int]]:
    """``{source: {"utterances": n, "speakers": n}}``, sources in sorted order."""
    counts: dict[str, dict[str, Any]] = {}
    for utterance in utterances:
        entry = counts.setdefault(utterance.source, {"utterances": 0, "speakers": set()})
        entry["utterances"] += 1
        entry["speakers"].add(utterance.speaker)
    return {
        key: {"utterances": value["utterances"], "speakers": len(value["speakers"])}
        for key, value in sorted(counts.items())
    }


def _clip_utterance(clip) -> Utterance:
    return Utterance(
        utt_id=clip.clip_id,
        path=clip.path,
        label="bonafide",
        speaker=clip.speaker,
        language=clip.language,
        duration=clip.duration,
        source=clip.source,
        licence=clip.licence,
    )


def discover_speech(
    shared_real: str | os.PathLike | None = "auto",
    *,
    apt: bool = True,
    max_per_speaker: int | None = None,
    seed: int = 0,
) -> SpeechInventory:
    """Every real read-speech recording available on this machine (bonafide only).

    Args:
        shared_real: the shared real-audio folder: a path, ``"auto"`` (``../shared/data/real``
            next to the working directory or the repository, used only when it exists) or
            ``"none"``/``None``. Only its ``bonafide/`` files are used.
        apt: include the apt-packaged recordings that are installed.
        max_per_speaker: keep at most this many utterances per speaker (seeded choice), which
            bounds memory and loading time for speakers with thousands of clips.
        seed: seed of that choice.

    Raises:
        ValueError: nothing was found; the message lists what was looked for.
    """
    from .minispoof import sources

    missing: Counter[str] = Counter()
    clips = []
    if apt:
        for finder in (sources.asterisk_clips, sources.festvox_ru_clips, sources.tuxpaint_clips):
            clips.extend(finder(missing))
    root = sources.resolve_shared_real(shared_real)
    if root is None:
        missing["shared real-audio folder absent (../shared/data/real)"] += 1
        logger.warning(
            "no shared real-audio folder (%s): training on the installed recordings only, "
            "without LibriSpeech or LJSpeech; there is no LibriSpeech test set",
            shared_real,
        )
    else:
        for clip in sources.shared_clips(root, missing):
            relative = Path(clip.path).relative_to(root).as_posix()
            if clip.label == "bonafide" and relative.startswith("bonafide/"):
                clips.append(clip)
    utterances = [_clip_utterance(clip) for clip in clips]
    if max_per_speaker:
        utterances = _cap_per_speaker(utterances, max_per_speaker, seed)
    for reason, count in sorted(missing.items()):
        logger.info("real speech: %s (%d)", reason, count)
    if not utterances:
        raise ValueError(
            "no real speech found: none of the apt recordings of the corpus recipe "
            "(asterisk-core-sounds-*, asterisk-prompt-it-menardi-wav, festvox-ru, "
            "tuxpaint-stamps-default; scripts/setup.sh installs them) is installed and there is "
            f"no shared real-audio folder ({shared_real!r})"
        )
    inventory = SpeechInventory(utterances, root, dict(missing))
    logger.info("real speech found: %s", json.dumps(inventory.describe()["sources"]))
    return inventory


def _cap_per_speaker(utterances: list[Utterance], cap: int, seed: int) -> list[Utterance]:
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        by_speaker[utterance.speaker].append(utterance)
    rng = random.Random(seed)
    kept = []
    for speaker in sorted(by_speaker):
        group = sorted(by_speaker[speaker], key=lambda u: u.utt_id)
        if len(group) > cap:
            group = sorted(rng.sample(group, cap), key=lambda u: u.utt_id)
        kept.extend(group)
    return kept


# --------------------------------------------------------------------------- speaker split
@dataclass
class SpeakerSplit:
    """Which speaker is used for what. ``held_out`` speakers are used for nothing."""

    train: list[str]
    val: list[str]
    test: list[str]
    held_out: list[str] = field(default_factory=list)
    seed: int = 0
    test_corpus: str = "LibriSpeech test-other"
    rule: str = ""

    def of(self, speaker: str) -> str | None:
        for name in SPLITS:
            if speaker in getattr(self, name):
                return name
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeakerSplit:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def check(self) -> None:
        """Raise ``ValueError`` when a speaker is in two splits or a split is too small."""
        seen: dict[str, str] = {}
        for name in SPLITS:
            for speaker in getattr(self, name):
                if speaker in seen:
                    raise ValueError(f"speaker {speaker!r} is in both {seen[speaker]} and {name}")
                seen[speaker] = name
        if not self.train:
            raise ValueError("the speaker split leaves no training speaker")
        for name in ("val", "test"):
            if len(getattr(self, name)) < 2:
                raise ValueError(
                    f"the speaker split has {len(getattr(self, name))} {name} speaker(s); "
                    "two-speaker mixtures of held-out speakers need at least 2"
                )


def choose_speaker_split(
    speakers: Sequence[str],
    *,
    n_test: int = 5,
    n_val: int = 2,
    seed: int = 0,
    test_speakers: Sequence[str] = (),
    val_speakers: Sequence[str] = (),
) -> SpeakerSplit:
    """Split speakers into train, validation, test and held out (see the module docstring).

    Args:
        speakers: every speaker id available (corpus-recipe ids: ``libri_1688``, ``lj``...).
        n_test: LibriSpeech test speakers wanted (the corpus recipe's eval speakers first, then
            training speakers drawn with ``seed``).
        n_val: validation speakers wanted (the corpus recipe's dev speakers first).
        seed: seed of the speakers moved from training.
        test_speakers, val_speakers: explicit lists, which replace the rule for that split.

    Without LibriSpeech speakers (no shared folder), the corpus recipe's eval speakers form the
    test set (``test_corpus`` says so).

    Raises:
        ValueError: an explicit speaker is unknown, or a split would be too small
            (:meth:`SpeakerSplit.check`).
    """
    from .minispoof.systems import speaker_split

    available = sorted(set(speakers))
    unknown = sorted((set(test_speakers) | set(val_speakers)) - set(available))
    if unknown:
        raise ValueError(f"speaker(s) {unknown} not among the available speakers {available}")
    corpus_split = {speaker: speaker_split(speaker) for speaker in available}
    libri = [s for s in available if s.startswith(LIBRISPEECH_PREFIX)]
    rng = random.Random(seed)
    rule = (
        "the corpus recipe's speaker split (its eval speakers held out, its dev speakers "
        "validate); LibriSpeech training speakers moved to the test set (seeded) until it has "
        f"{n_test}"
    )
    if test_speakers:
        test = sorted(test_speakers)
        rule = "test speakers given explicitly; " + rule
    elif libri:
        test = [s for s in libri if corpus_split[s] == "eval"][:n_test]
        movable = [s for s in libri if s not in test and corpus_split[s] not in ("dev",)]
        rng.shuffle(movable)
        test = sorted(test + movable[: max(0, n_test - len(test))])
    else:
        test = [s for s in available if corpus_split[s] == "eval"]
    test_corpus = "LibriSpeech test-other" if test and set(test) <= set(libri) else "other"
    if test_corpus != "LibriSpeech test-other":
        logger.warning(
            "no LibriSpeech test speakers: the test set is made of %s, not the study's "
            "LibriSpeech test-other speakers",
            test,
        )
    if val_speakers:
        val = sorted(val_speakers)
    else:
        val = [s for s in available if corpus_split[s] == "dev" and s not in test]
        if len(val) < n_val:
            movable = [s for s in available if s not in test and s not in val]
            movable = [s for s in movable if corpus_split[s] != "eval"]
            # LibriSpeech first: validation should look like the test set
            movable.sort(key=lambda s: (not s.startswith(LIBRISPEECH_PREFIX), s))
            val = val + movable[: n_val - len(val)]
        val = sorted(val)
    held_out = sorted(
        s for s in available if s not in test and s not in val and corpus_split[s] == "eval"
    )
    train = sorted(s for s in available if s not in test and s not in val and s not in held_out)
    split = SpeakerSplit(train, val, test, held_out, seed, test_corpus, rule)
    split.check()
    return split


def split_items(
    items: Sequence[LoadedUtterance], split: SpeakerSplit
) -> dict[str, list[LoadedUtterance]]:
    """The loaded utterances of each split, by speaker: ``{"train": [...], "val": ..., ...}``.

    Speakers the split does not name (added after it was written) are left out and logged.
    """
    parts: dict[str, list[LoadedUtterance]] = {name: [] for name in SPLITS}
    unnamed: Counter[str] = Counter()
    for item in items:
        name = split.of(item.utterance.speaker)
        if name is None:
            unnamed[item.utterance.speaker] += 1
        else:
            parts[name].append(item)
    if unnamed:
        logger.warning("left out %d utterance(s) of speakers not in the split: %s",
                       sum(unnamed.values()), sorted(unnamed))  # fmt: skip
    return parts


def write_split(path: str | os.PathLike, split: SpeakerSplit, extra: dict[str, Any]) -> Path:
    """Write ``split.json``: the split, its rule and ``extra`` (counts per split, sources)."""
    from ..fsutil import atomic_write_text

    data = {**split.to_dict(), **extra}
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_split(path: str | os.PathLike) -> SpeakerSplit:
    """Read a ``split.json`` written by :func:`write_split`.

    Raises:
        ValueError: the file is not a split (names the file).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        split = SpeakerSplit.from_dict(data)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a speaker split ({error})") from None
    return split


def describe_split(parts: dict[str, list[LoadedUtterance]], sample_rate: int) -> dict[str, Any]:
    """Utterances, minutes and speakers per split (for ``split.json`` and the model card)."""
    summary = {}
    for name, items in parts.items():
        per_speaker: Counter[str] = Counter()
        for item in items:
            per_speaker[item.utterance.speaker] += item.audio.shape[0]
        summary[name] = {
            "utterances": len(items),
            "minutes": round(sum(per_speaker.values()) / sample_rate / 60, 2),
            "speakers": {s: round(n / sample_rate / 60, 2) for s, n in sorted(per_speaker.items())},
            "sources": sorted({item.utterance.source for item in items}),
        }
    return summary


# --------------------------------------------------------------------------- mixtures on the fly
def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``audio`` ``factor`` times faster (tempo and pitch together, as resampling does; the
    speed perturbation of Ko et al., *Audio augmentation for speech recognition*, 2015).

    Shape: ``[T] -> [ceil(T / factor)]``.
    """
    from ..audio import resample

    return resample(audio, int(round(factor * 1000)), 1000)


def draw_mixture(
    pool: Sequence[LoadedUtterance],
    rng: np.random.Generator,
    *,
    n_src: int,
    n_samples: int,
    partial_overlap_probability: float,
    gain_range_db: float,
    speakers: Mapping[str, Sequence[int]] | None = None,
    speed_factors: Sequence[float] = (1.0,),
) -> tuple[np.ndarray, np.ndarray]:
    """One training mixture and its sources, scaled so that ``sources.sum(0) == mixture``.

    Sources come from different speakers where the pool has enough of them. Each source is a
    random crop; with ``partial_overlap_probability`` it is active on only part of the segment
    (at least half), so the model also sees single-talker stretches, as in the mixer's
    partially overlapped mixtures. Levels: each source at unit RMS times a random gain of
    ``+-gain_range_db``; the sum is scaled to a random peak in ``[0.1, 0.95]``.

    Args:
        speakers: pool indices of each speaker (:func:`speaker_index`). When given, a source's
            speaker is drawn uniformly among the speakers not yet in the mixture, then one of
            its utterances, so that a speaker with thousands of clips is not drawn more often
            than one with ten. ``None``: utterances are drawn uniformly.
        speed_factors: each source is played at a speed drawn from these
            (:func:`change_speed`); ``(1.0,)`` draws nothing and changes nothing.

    Shape: ``-> ([T], [n_src, T])``.
    """
    chosen_speakers: set[str] = set()
    picked: list[np.ndarray] = []
    names = list(speakers) if speakers else []
    for _ in range(n_src):
        if names:
            fresh = [name for name in names if name not in chosen_speakers] or names
            group = speakers[fresh[int(rng.integers(len(fresh)))]]
            item = pool[group[int(rng.integers(len(group)))]]
        else:
            for _attempt in range(20):
                item = pool[int(rng.integers(len(pool)))]
                if item.utterance.speaker not in chosen_speakers or _attempt == 19:
                    break
        chosen_speakers.add(item.utterance.speaker)
        picked.append(item.audio)
    sources = np.zeros((n_src, n_samples), dtype=np.float32)
    for index, audio in enumerate(picked):
        factor = 1.0
        if len(speed_factors) > 1:
            factor = float(speed_factors[int(rng.integers(len(speed_factors)))])
        active = n_samples
        if rng.random() < partial_overlap_probability:
            active = int(n_samples * rng.uniform(0.5, 1.0))
        active = min(active, int(audio.shape[0] / factor))
        window = min(audio.shape[0], int(math.ceil(active * factor)))
        start = int(rng.integers(audio.shape[0] - window + 1))
        offset = int(rng.integers(n_samples - active + 1))
        piece = audio[start : start + window]
        if factor != 1.0:
            piece = change_speed(piece, factor)[:active]
        rms = float(np.sqrt(np.mean(piece**2))) + 1e-8
        gain = 10 ** (rng.uniform(-gain_range_db, gain_range_db) / 20) / rms
        sources[index, offset : offset + piece.shape[0]] = piece * gain
    mixture = sources.sum(0)
    peak = float(np.max(np.abs(mixture))) + 1e-8
    scale = rng.uniform(0.1, 0.95) / peak
    return (mixture * scale).astype(np.float32), (sources * scale).astype(np.float32)


def speaker_index(pool: Sequence[LoadedUtterance]) -> dict[str, list[int]]:
    """Pool indices of each speaker, in sorted speaker order (for ``draw_mixture(speakers=)``)."""
    index: dict[str, list[int]] = {}
    for position, item in enumerate(pool):
        index.setdefault(item.utterance.speaker, []).append(position)
    return dict(sorted(index.items()))


def draw_batch(pool, rng, *, batch_size: int, **options) -> tuple[Any, Any]:
    """A batch of on-the-fly mixtures as tensors. Shape: ``-> ([B, T], [B, n_src, T])``."""
    import torch

    pairs = [draw_mixture(pool, rng, **options) for _ in range(batch_size)]
    mixtures = torch.from_numpy(np.stack([pair[0] for pair in pairs]))
    sources = torch.from_numpy(np.stack([pair[1] for pair in pairs]))
    return mixtures, sources


# --------------------------------------------------------------------------- test mixtures
@dataclass
class StudyMixture:
    """One test mixture: ``mixture`` ``[T]`` and the ``sources`` ``[2, T]`` that sum to it."""

    mixture: np.ndarray
    sources: np.ndarray
    record: dict[str, Any]


def study_test_mixtures(
    items: Sequence[LoadedUtterance], *, n_mixtures: int, seed: int, sample_rate: int
) -> list[StudyMixture]:
    """Two-speaker mixtures of ``items`` made with the study's recipe (module docstring).

    Shape: each mixture ``[T]``, its sources ``[2, T]`` with ``sources.sum(0) == mixture`` (the
    normalisation applied to both), float32 at ``sample_rate``; ``T`` varies.

    Raises:
        ValueError: fewer than two speakers among ``items``.
    """
    from ..mix.config import MixerConfig
    from ..mix.plan import draw_levels, draw_placement
    from ..mix.render import place

    by_speaker: dict[str, list[LoadedUtterance]] = defaultdict(list)
    for item in items:
        by_speaker[item.utterance.speaker].append(item)
    speakers = sorted(by_speaker)
    if len(speakers) < 2:
        raise ValueError(f"test mixtures need two speakers, got {speakers}")
    config = MixerConfig.from_preset("thesis")
    mixtures = []
    for index in range(n_mixtures):
        rng = np.random.default_rng([int(seed), index])
        pair = rng.choice(len(speakers), size=2, replace=False)
        chosen = []
        for speaker_index in pair:
            group = by_speaker[speakers[int(speaker_index)]]
            chosen.append(group[int(rng.integers(len(group)))])
        audios = [item.audio.astype(np.float64) for item in chosen]
        placement = draw_placement(rng, [a.shape[0] for a in audios], sample_rate, config)
        gains = draw_levels(rng, 2, config)
        placed = place(
            audios, placement.offsets, placement.starts, placement.lengths, gains,
            placement.num_samples,
        )  # fmt: skip
        mixture = placed.sum(0)
        peak = float(np.max(np.abs(mixture)))
        scale = config.peak / peak if peak > 0 else 1.0
        record = {
            "index": index,
            "utterances": [item.utterance.utt_id for item in chosen],
            "speakers": [item.utterance.speaker for item in chosen],
            "gains": [round(g, 4) for g in gains],
            "delayed": placement.delayed,
            "delay_s": round(max(placement.offsets) / sample_rate, 4),
            "seconds": round(placement.num_samples / sample_rate, 3),
        }
        mixtures.append(
            StudyMixture(
                (mixture * scale).astype(np.float32), (placed * scale).astype(np.float32), record
            )
        )
    return mixtures
