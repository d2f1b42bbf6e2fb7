"""Utterance and Mixture records, read and written as JSON Lines.

Manifests are data, not code: plain dataclasses with ``to_dict``/``from_dict``, one record per
line, validated before they are written, read lazily. A mixture records every source's path,
offset and gain, so it can be rendered again from its sources.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .labels import composition_label, normalize_label


@dataclass
class Utterance:
    """One labelled single-speaker recording."""

    utt_id: str
    path: str
    label: str
    speaker: str = "-"
    system: str = "-"  # spoof system id; "-" for bonafide, as in ASVspoof protocols
    language: str = "-"
    sample_rate: int | None = None
    duration: float | None = None
    source: str = "-"  # where the audio comes from (corpus, package, generator)
    licence: str = "-"
    split: str = "-"

    def __post_init__(self):
        self.label = normalize_label(self.label)

    def validate(self) -> None:
        if not self.utt_id:
            raise ValueError("utterance without utt_id")
        if not self.path:
            raise ValueError(f"utterance {self.utt_id}: empty path")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"utterance {self.utt_id}: duration must be > 0, got {self.duration}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Utterance:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class MixtureSource:
    """One source inside a mixture: the utterance, where it starts and how it was scaled.

    ``offset`` is the number of samples of leading silence (at the mixture rate) before the
    source, ``start`` the first sample of the (resampled) utterance that was used and
    ``length`` how many samples of it are in the mixture; ``gain`` the linear factor applied
    before summing.
    """

    utt_id: str
    path: str
    label: str
    speaker: str = "-"
    system: str = "-"
    language: str = "-"
    offset: int = 0
    start: int = 0
    length: int | None = None
    gain: float = 1.0
    gain_db: float | None = None
    loudness_lufs: float | None = None
    orig_sample_rate: int | None = None

    def __post_init__(self):
        self.label = normalize_label(self.label)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixtureSource:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class Mixture:
    """An overlapped mixture of labelled sources; ``label`` is derived from the sources."""

    mixture_id: str
    path: str
    sample_rate: int
    sources: list[MixtureSource]
    num_samples: int | None = None
    seed: int | None = None
    normalization: float = 1.0  # the factor the sum was multiplied by (peak normalisation)
    augmentations: list[dict[str, Any]] = field(default_factory=list)
    overlap_seconds: float | None = None  # seconds in which every source is active
    split: str = "-"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return composition_label(source.label for source in self.sources)

    @property
    def n_spoofed(self) -> int:
        return self.label.count("S")

    @property
    def source_labels(self) -> list[str]:
        return [source.label for source in self.sources]

    def validate(self) -> None:
        if not self.mixture_id:
            raise ValueError("mixture without mixture_id")
        if not self.sources:
            raise ValueError(f"mixture {self.mixture_id}: no sources")
        if self.sample_rate <= 0:
            raise ValueError(f"mixture {self.mixture_id}: sample_rate must be > 0")
        for source in self.sources:
            if source.offset < 0:
                raise ValueError(f"mixture {self.mixture_id}: negative offset for {source.utt_id}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["label"] = self.label  # written for readers; recomputed on read
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mixture:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["sources"] = [MixtureSource.from_dict(source) for source in data["sources"]]
        mixture = cls(**values)
        if "label" in data and data["label"] != mixture.label:
            raise ValueError(
                f"mixture {mixture.mixture_id}: label {data['label']!r} disagrees with its "
                f"sources ({mixture.label!r})"
            )
        return mixture


Record = Utterance | Mixture


def write_jsonl(path: str | os.PathLike, records: Iterable[Record]) -> Path:
    """Validate every record, then write them atomically, one JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for record in records:
        record.validate()
        lines.append(json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    os.replace(tmp_name, path)
    return path


def iter_jsonl(
    path: str | os.PathLike, kind: type | None = None
) -> Iterator[tuple[int, Record | None, str | None]]:
    """Lazily yield ``(line_number, record, problem)`` for every non-blank line.

    A well-formed line gives ``(n, record, None)``; a malformed one ``(n, None, problem)``, so
    callers that count bad lines (``Pipeline.evaluate``) and callers that stop at the first one
    (:func:`read_jsonl`) share one parser. ``kind`` is as in :func:`read_jsonl`.
    """
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                record_kind = kind or (Mixture if "sources" in data else Utterance)
                yield line_number, record_kind.from_dict(data), None
            except (ValueError, KeyError, TypeError) as error:
                yield line_number, None, f"bad manifest line ({error})"


def read_jsonl(path: str | os.PathLike, kind: type | None = None) -> Iterator[Record]:
    """Lazily yield records from a JSONL manifest.

    ``kind`` is ``Utterance`` or ``Mixture``; when omitted, each line's kind is guessed from
    its keys (``sources`` means a mixture). A malformed line raises ``ValueError`` naming the
    file and line number.
    """
    for line_number, record, problem in iter_jsonl(path, kind):
        if problem is not None:
            raise ValueError(f"{path}:{line_number}: {problem}")
        yield record


def read_mixtures(path: str | os.PathLike) -> list[Mixture]:
    return list(read_jsonl(path, Mixture))


def read_utterances(path: str | os.PathLike) -> list[Utterance]:
    return list(read_jsonl(path, Utterance))
