"""Shared pieces of the training recipes: which audio to use, loading it once, a wall-time budget.

The recipes accept *sources* in several forms, so the same command works on the corpus built by
``python -m amongus.recipes.minispoof``, on a user's own data and on a folder of plain speech:

* an ASVspoof-layout corpus root, a real/fake folder tree or a JSONL utterance manifest (read by
  :func:`amongus.corpora.load_utterances`, with the ``split`` asked for);
* a CSV manifest with at least ``path`` and ``label`` columns (paths relative to the CSV file;
  optional ``speaker``, ``system``, ``corpus`` and ``licence`` columns), such as
  ``../shared/data/real/manifest.csv``;
* ``minispoof-split:<manifest.csv>``: such a CSV restricted to the speakers that the minispoof
  corpus recipe assigns to the requested split (no eval speaker reaches training);
* a folder of audio files without labels (every file is bonafide speech, the speaker is the
  file's parent folder): enough for separator training, which needs speech, not labels.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioError, load_audio
from ..corpora.base import has_audio_suffix
from ..manifest import UniqueIds, Utterance

logger = logging.getLogger(__name__)


class TimeBudget:
    """A wall-clock budget: ``expired()`` turns true once ``max_minutes`` have passed.

    ``max_minutes=None`` never expires. Training loops check it between steps and stop cleanly.
    """

    def __init__(self, max_minutes: float | None):
        if max_minutes is not None and max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0, got {max_minutes}")
        self.max_seconds = None if max_minutes is None else 60.0 * max_minutes
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return self.max_seconds is not None and self.elapsed >= self.max_seconds


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def read_csv_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Utterances from a CSV with ``path`` and ``label`` columns (paths relative to the CSV).

    ``utt_id`` is the ``path`` column without suffix (``bonafide/librispeech/1688-142285-0000``):
    a bonafide file and its vocoded copy share a file name, so the name alone is no id.

    Raises:
        ValueError: a required column is missing.
        DuplicateIdError: two rows give the same id (naming both lines).
    """
    path = Path(path)
    seen = UniqueIds("utterance id")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: CSV manifest lacks column(s) {sorted(missing)}")
        utterances = []
        for row in reader:
            utt_id = Path(row["path"]).with_suffix("").as_posix()
            seen.add(utt_id, f"{path}:{reader.line_num}")
            audio_path = Path(row["path"])
            if not audio_path.is_absolute():
                audio_path = path.parent / audio_path
            utterances.append(
                Utterance(
                    utt_id=utt_id,
                    path=str(audio_path),
                    label=row["label"],
                    speaker=row.get("speaker") or "-",
                    system=row.get("system") or "-",
                    source=row.get("corpus") or path.parent.name,
                    licence=row.get("licence") or "-",
                    duration=float(row["duration"]) if row.get("duration") else None,
                )
            )
    return utterances


def read_audio_folder(root: str | os.PathLike) -> list[Utterance]:
    """Every audio file under ``root`` as bonafide speech; the speaker is the parent folder.

    ``utt_id`` is ``PARENT-STEM``; two files giving one id (``x.wav`` next to ``x.flac``) raise
    ``DuplicateIdError`` naming both.
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if has_audio_suffix(p))
    seen = UniqueIds("utterance id")
    utterances = []
    for file in files:
        utt_id = f"{file.parent.name}-{file.stem}"
        seen.add(utt_id, str(file))
        utterances.append(
            Utterance(
                utt_id=utt_id,
                path=str(file),
                label="bonafide",
                speaker=file.parent.name,
                source=str(root),
            )
        )
    return utterances


def minispoof_speakers(utterances: list[Utterance], split: str | None) -> list[Utterance]:
    """Keep the utterances whose speaker the minispoof recipe assigns to ``split``.

    For a CSV manifest of extra audio (``../shared/data/real/manifest.csv``) used next to the
    corpus: its speakers are split exactly as ``python -m amongus.recipes.minispoof`` splits
    them, so no eval speaker reaches training.
    """
    from .minispoof.systems import speaker_split

    def corpus_speaker(speaker: str) -> str:
        speaker = "lj" if speaker == "LJ" else speaker
        return f"libri_{speaker}" if speaker.isdigit() else speaker

    return [u for u in utterances if speaker_split(corpus_speaker(u.speaker)) == split]


def with_corpus_metadata(root: str | os.PathLike, utterances: list[Utterance]) -> list[Utterance]:
    """Fill ``source``, ``licence`` and ``language`` from the corpus' ``metadata.jsonl``.

    The minispoof recipe writes one JSON line per utterance with its original source and
    licence; the ASVspoof protocol files do not carry them. Without the file, the utterances
    are returned unchanged.
    """
    metadata = Path(root) / "metadata.jsonl"
    if not metadata.is_file():
        return utterances
    by_id = {}
    with open(metadata, encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                by_id[record.get("utt_id")] = record
    for utterance in utterances:
        record = by_id.get(utterance.utt_id)
        if record:
            utterance.source = record.get("source") or utterance.source
            utterance.licence = record.get("licence") or utterance.licence
            if utterance.language in ("-", None):
                utterance.language = record.get("language") or utterance.language
    return utterances


def gather_utterances(sources: Iterable[str], *, split: str | None = None) -> list[Utterance]:
    """The utterances of every source (see the module docstring for the accepted forms).

    ``split`` is passed to corpus readers; CSV manifests and plain audio folders have no split
    and are used whole. A prefix ``audio:`` forces a path to be read as a plain audio folder.
    """
    utterances: list[Utterance] = []
    for source in sources:
        if source.startswith("audio:"):
            found = read_audio_folder(source.removeprefix("audio:"))
        elif source.startswith("minispoof-split:"):
            found = minispoof_speakers(read_csv_manifest(source.split(":", 1)[1]), split)
        elif source.endswith(".csv"):
            found = read_csv_manifest(source)
        else:
            from ..corpora import load_utterances

            listing = load_utterances(source, split=split)
            if listing.problems:
                logger.warning("%s: %d problem(s) while listing", source, len(listing.problems))
            found = with_corpus_metadata(source, list(listing.utterances))
        if not found:
            raise ValueError(f"{source}: no utterances found (split={split!r})")
        logger.info("%s: %d utterances", source, len(found))
        utterances.extend(found)
    return utterances


@dataclass
class LoadedUtterance:
    """An utterance's audio, loaded once at the training rate."""

    utterance: Utterance
    audio: np.ndarray  # [T] float32


def load_all(
    utterances: Sequence[Utterance],
    *,
    sample_rate: int,
    min_seconds: float = 0.5,
    max_seconds: float | None = None,
    progress: bool = True,
) -> list[LoadedUtterance]:
    """Load (and resample) every utterance once; unreadable or too short files are skipped.

    ``max_seconds`` keeps only the first seconds of long files (bounds memory). Skipped files
    are counted in the log, never silently dropped.
    """
    from tqdm import tqdm

    loaded, skipped = [], []
    for utterance in tqdm(utterances, desc="loading audio", disable=not progress):
        try:
            audio, _ = load_audio(utterance.path, sample_rate=sample_rate, min_duration=min_seconds)
        except AudioError as error:
            skipped.append((utterance.path, error.problem))
            continue
        if max_seconds is not None:
            audio = audio[: int(max_seconds * sample_rate)]
        loaded.append(LoadedUtterance(utterance, np.ascontiguousarray(audio, dtype=np.float32)))
    if skipped:
        logger.warning("skipped %d file(s), first: %s", len(skipped), skipped[0])
    if not loaded:
        raise ValueError("no usable audio among the training sources")
    return loaded


def load_train_val(
    config, *, sample_rate: int, min_seconds: float, val_max_seconds: float | None
) -> tuple[list[LoadedUtterance], list[LoadedUtterance]]:
    """The training and validation audio of a recipe config.

    ``config`` has ``train_sources``/``train_split``, ``val_sources``/``val_split``,
    ``max_utterance_seconds`` and ``seed``. Without validation sources, about 10% of the
    training speakers are held out (:func:`split_by_speaker`).
    """
    train_items = load_all(
        gather_utterances(config.train_sources, split=config.train_split),
        sample_rate=sample_rate,
        min_seconds=min_seconds,
        max_seconds=config.max_utterance_seconds,
    )
    if not config.val_sources:
        return split_by_speaker(train_items, fraction=0.1, seed=config.seed)
    val_items = load_all(
        gather_utterances(config.val_sources, split=config.val_split),
        sample_rate=sample_rate,
        min_seconds=min_seconds,
        max_seconds=val_max_seconds,
    )
    return train_items, val_items


def split_by_speaker(
    items: Sequence[LoadedUtterance], *, fraction: float, seed: int
) -> tuple[list[LoadedUtterance], list[LoadedUtterance]]:
    """Hold out about ``fraction`` of the speakers (seeded): ``(kept, held_out)``."""
    speakers = sorted({item.utterance.speaker for item in items})
    rng = random.Random(seed)
    rng.shuffle(speakers)
    n_held = max(1, round(fraction * len(speakers))) if len(speakers) > 1 else 0
    held = set(speakers[:n_held])
    kept = [item for item in items if item.utterance.speaker not in held]
    held_out = [item for item in items if item.utterance.speaker in held]
    if not held_out:  # one speaker only: hold out utterances instead
        order = list(range(len(items)))
        rng.shuffle(order)
        n_held = max(1, round(fraction * len(items)))
        held_out = [items[i] for i in order[:n_held]]
        kept = [items[i] for i in order[n_held:]]
    return kept, held_out


def describe_sources(items: Sequence[LoadedUtterance], sample_rate: int) -> dict:
    """Counts and hours per source corpus and label, for the training log and model card."""
    summary: dict[str, dict] = {}
    for item in items:
        key = f"{item.utterance.source} [{item.utterance.label}]"
        entry = summary.setdefault(
            key, {"utterances": 0, "hours": 0.0, "speakers": set(), "licences": set()}
        )
        entry["utterances"] += 1
        entry["hours"] += item.audio.shape[0] / sample_rate / 3600
        entry["speakers"].add(item.utterance.speaker)
        entry["licences"].add(item.utterance.licence)
    return {
        key: {
            "utterances": value["utterances"],
            "hours": round(value["hours"], 3),
            "speakers": len(value["speakers"]),
            "licences": sorted(value["licences"]),
        }
        for key, value in sorted(summary.items())
    }


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON (atomic rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", "utf-8")
    os.replace(tmp, path)
    return path
