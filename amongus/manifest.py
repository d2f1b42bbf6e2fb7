"""Utterance, Mixture and Conversation records, read and written as JSON Lines.

Manifests are data, not code: plain dataclasses with ``to_dict``/``from_dict``, one record per
line, validated before they are written, read lazily. A mixture records every source's path,
offset and gain, so it can be rendered again from its sources.

Ids are keys: an utterance id (or a mixture id) appears once per manifest. Every reader and
writer of records refuses a repeated id with :class:`DuplicateIdError`, which names the id and
both places (``file:line`` or file paths); :class:`UniqueIds` is the one check they all share.
Text is read as ``utf-8-sig``, so a byte-order mark left by a Windows editor is not part of
the first record. Ids written into whitespace-separated files go through :func:`encode_field`,
which is reversible (:func:`decode_field`), so two ids never merge into one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .labels import composition_label, normalize_label


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of the dataclass ``cls``; the others are ignored."""
    known = {f.name for f in dataclasses.fields(cls)}
    return {key: value for key, value in data.items() if key in known}


def _check_written_label(data: dict[str, Any], label: str, record: str, parts: str) -> None:
    """Refuse a record whose written ``label`` disagrees with the ``label`` its ``parts`` give.

    Raises:
        ValueError: naming the ``record`` and both labels.
    """
    if "label" in data and data["label"] != label:
        raise ValueError(
            f"{record}: label {data['label']!r} disagrees with its {parts} ({label!r})"
        )


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
        return cls(**_known_fields(cls, data))


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
        return cls(**_known_fields(cls, data))


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
        values = _known_fields(cls, data)
        values["sources"] = [MixtureSource.from_dict(source) for source in data["sources"]]
        mixture = cls(**values)
        _check_written_label(data, mixture.label, f"mixture {mixture.mixture_id}", "sources")
        return mixture


@dataclass
class ConversationSpeaker:
    """One participant of a simulated conversation (:class:`Conversation`).

    ``label`` is the whole-call label: ``"spoof"`` when any of the speaker's turns is spoofed
    (an impostor included), ``"bonafide"`` otherwise. An ``impostor`` is bonafide in its turns
    before ``takeover_seconds`` and spoofed from then on (the deepfake takes over).
    ``name`` is the speaker's name in the RTTM reference (the corpus speaker id, or
    ``utt-<utt_id>`` for utterances without one); ``level`` the level drawn for the whole call,
    in the unit of the mixer's ``level_mode`` (linear gain, dB or LUFS).
    """

    name: str
    label: str
    impostor: bool = False
    takeover_seconds: float | None = None
    level: float | None = None

    def __post_init__(self):
        self.label = normalize_label(self.label)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationSpeaker:
        return cls(**_known_fields(cls, data))


CONVERSATION_KIND = "conversation"


@dataclass
class Conversation:
    """A simulated multi-party conversation: speakers taking turns, with pauses and overlaps.

    Each turn is a :class:`MixtureSource` (one utterance window placed at ``offset`` samples,
    scaled by ``gain``), whose ``speaker`` is the name of one of ``speakers`` and whose
    ``label`` is that turn's label. ``rttm`` is the reference RTTM file (relative to the
    manifest's folder, like ``path``); it holds one segment per turn with the turn's label in
    the ``stype`` field (:mod:`amongus.rttm`). ``overlap_ratio`` is the share of speech time
    (at least one turn active) in which two or more turns are active, measured on the placed
    turns; ``label`` is the composition of the speakers' whole-call labels (``"SBBB"``).

    In a JSONL manifest the record carries ``"kind": "conversation"``.
    """

    conversation_id: str
    path: str
    sample_rate: int
    speakers: list[ConversationSpeaker]
    turns: list[MixtureSource]
    rttm: str = ""
    num_samples: int | None = None
    seed: int | None = None
    normalization: float = 1.0
    augmentations: list[dict[str, Any]] = field(default_factory=list)
    overlap_ratio: float | None = None
    target_overlap_ratio: float | None = None
    split: str = "-"
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = CONVERSATION_KIND

    @property
    def label(self) -> str:
        return composition_label(speaker.label for speaker in self.speakers)

    @property
    def duration(self) -> float | None:
        """Length in seconds (``None`` when ``num_samples`` is unknown)."""
        return None if self.num_samples is None else self.num_samples / self.sample_rate

    def validate(self) -> None:
        """Raise ``ValueError`` naming the conversation for an inconsistent record: no speakers
        or turns, a repeated speaker name, a turn of an unknown speaker, a negative offset, an
        empty turn or a turn past ``num_samples``, a spoofed turn of a bonafide speaker."""
        name = f"conversation {self.conversation_id}"
        if not self.conversation_id:
            raise ValueError("conversation without conversation_id")
        if self.kind != CONVERSATION_KIND:
            raise ValueError(f"{name}: kind must be {CONVERSATION_KIND!r}, got {self.kind!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"{name}: sample_rate must be > 0")
        if not self.speakers or not self.turns:
            raise ValueError(f"{name}: needs speakers and turns")
        speakers = {}
        for speaker in self.speakers:
            if speaker.name in speakers:
                raise ValueError(f"{name}: speaker {speaker.name!r} listed twice")
            speakers[speaker.name] = speaker
        for number, turn in enumerate(self.turns, start=1):
            where = f"{name} turn {number} ({turn.utt_id})"
            if turn.speaker not in speakers:
                raise ValueError(f"{where}: speaker {turn.speaker!r} is not a listed speaker")
            if turn.offset < 0 or turn.length is None or turn.length <= 0:
                raise ValueError(f"{where}: offset must be >= 0 and length > 0")
            if self.num_samples is not None and turn.offset + turn.length > self.num_samples:
                raise ValueError(f"{where}: ends after the conversation")
            if turn.label == "spoof" and speakers[turn.speaker].label != "spoof":
                raise ValueError(f"{where}: spoofed turn of bonafide speaker {turn.speaker!r}")

    def reference_segments(self) -> list:
        """The reference: one :class:`amongus.rttm.Segment` per turn (seconds, with the
        turn's label), in turn order."""
        from .rttm import Segment

        rate = float(self.sample_rate)
        return [
            Segment(
                uri=self.conversation_id,
                onset=turn.offset / rate,
                duration=int(turn.length or 0) / rate,
                speaker=turn.speaker,
                label=turn.label,
            )
            for turn in self.turns
        ]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["label"] = self.label  # written for readers; recomputed on read
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        values = _known_fields(cls, data)
        values["speakers"] = [ConversationSpeaker.from_dict(s) for s in data["speakers"]]
        values["turns"] = [MixtureSource.from_dict(turn) for turn in data["turns"]]
        conversation = cls(**values)
        _check_written_label(
            data, conversation.label, f"conversation {conversation.conversation_id}", "speakers"
        )
        return conversation


Record = Utterance | Mixture | Conversation


# ---------------------------------------------------------------------------- unique ids
class DuplicateIdError(ValueError):
    """An id that must be unique was seen twice.

    Attributes:
        id: the repeated id.
        first, second: where it was seen (``"file:line"``, a file path, ``"row 3"``).
        what: what kind of id (``"utterance id"``, ``"mixture id"``...).
    """

    def __init__(self, id: str, first: str, second: str, *, what: str = "id"):
        self.id, self.first, self.second, self.what = id, first, second, what
        super().__init__(f"duplicate {what} {id!r}: {first} and {second}")


class UniqueIds:
    """Where each id was first seen; :meth:`add` refuses a second one.

    The one duplicate check of every reader and writer (manifests, corpus readers, score files),
    so they all refuse alike.

    >>> ids = UniqueIds("utterance id")
    >>> ids.add("U1", "utts.jsonl:1")
    >>> ids.add("U1", "utts.jsonl:2")
    Traceback (most recent call last):
    ...
    amongus.manifest.DuplicateIdError: duplicate utterance id 'U1': utts.jsonl:1 and utts.jsonl:2
    """

    def __init__(self, what: str = "id"):
        self.what = what
        self._first: dict[tuple[str, str], str] = {}

    def add(self, id: str, where: str, *, what: str | None = None) -> None:
        """Remember ``id`` as seen at ``where``; ``what`` (default: the one given at
        construction) is both the namespace and the word in the message, so one instance can
        hold utterance and mixture ids apart.

        Raises:
            DuplicateIdError: ``id`` was added before (the message names both places).
        """
        what = what or self.what
        key = (what, id)
        if key in self._first:
            raise DuplicateIdError(id, self._first[key], where, what=what)
        self._first[key] = where

    def update(self, other: UniqueIds) -> None:
        """Add every id of ``other`` (with where it was seen there).

        Raises:
            DuplicateIdError: an id of ``other`` is already here.
        """
        for (what, id), where in other._first.items():
            self.add(id, where, what=what)

    def __len__(self) -> int:
        return len(self._first)


def record_key(record: Record) -> tuple[str, str]:
    """``("mixture id", mixture_id)``, ``("conversation id", conversation_id)`` or
    ``("utterance id", utt_id)``: the unique key of a record (a manifest may hold several
    kinds; their ids are separate namespaces)."""
    if isinstance(record, Mixture):
        return "mixture id", record.mixture_id
    if isinstance(record, Conversation):
        return "conversation id", record.conversation_id
    return "utterance id", record.utt_id


def check_unique_ids(records: Iterable[Record], *, where: str = "record") -> None:
    """Refuse records that repeat an id (``where`` names the collection in the message).

    Raises:
        DuplicateIdError: naming the id and the two record positions (1-based).
    """
    seen = UniqueIds()
    for number, record in enumerate(records, start=1):
        what, id = record_key(record)
        seen.add(id, f"{where} {number}", what=what)


# ---------------------------------------------------------------------------- text fields
def encode_field(text: Any) -> str:
    """One field of a whitespace-separated text file (score files, the study's metadata lines),
    reversibly: ``%``, whitespace and unprintable characters are percent-encoded (their UTF-8
    bytes as ``%XX``, as in URLs), so ``"real/a b"`` becomes ``"real/a%20b"`` and stays distinct
    from ``"real/a_b"``. Fields without such characters (every ASVspoof id and system name) are
    written unchanged. :func:`decode_field` gives the text back.

    Raises:
        ValueError: an empty field.

    >>> encode_field("real/a b"), encode_field("LA_E_1"), encode_field("5%")
    ('real/a%20b', 'LA_E_1', '5%25')
    """
    text = str(text)
    if not text:
        raise ValueError("empty field")
    return "".join(
        char
        if char != "%" and char.isprintable() and not char.isspace()
        else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )


def decode_field(field: str) -> str:
    """The text :func:`encode_field` encoded (``%XX`` sequences decoded as UTF-8).

    Raises:
        ValueError: the ``%XX`` sequences are not valid UTF-8.

    >>> decode_field("real/a%20b")
    'real/a b'
    """
    from urllib.parse import unquote

    try:
        return unquote(field, errors="strict")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"field {field!r}: percent-encoded bytes are not UTF-8 ({error})"
        ) from None


# ---------------------------------------------------------------------------- JSONL
def write_jsonl(path: str | os.PathLike, records: Iterable[Record]) -> Path:
    """Validate every record, then write them atomically, one JSON object per line.

    Raises:
        ValueError: an invalid record (nothing is written).
        DuplicateIdError: two records share an id (nothing is written).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    seen = UniqueIds()
    for number, record in enumerate(records, start=1):
        record.validate()
        what, id = record_key(record)
        seen.add(id, f"{path} record {number}", what=what)
        lines.append(json.dumps(record.to_dict(), sort_keys=True, ensure_ascii=False))
    from .fsutil import atomic_write_text  # the umask's mode; OutputError naming the file

    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def _record_kind(data: dict[str, Any]) -> type:
    """The record class of one manifest line: ``"kind": "conversation"`` is a
    :class:`Conversation`, ``sources`` a :class:`Mixture`, anything else an :class:`Utterance`."""
    if isinstance(data, dict) and data.get("kind") == CONVERSATION_KIND:
        return Conversation
    return Mixture if "sources" in data else Utterance


def iter_jsonl(
    path: str | os.PathLike, kind: type | None = None
) -> Iterator[tuple[int, Record | None, str | None]]:
    """Lazily yield ``(line_number, record, problem)`` for every non-blank line.

    A well-formed line gives ``(n, record, None)``; a malformed one ``(n, None, problem)``, so
    callers that count bad lines (``Pipeline.evaluate``) and callers that stop at the first one
    (:func:`read_jsonl`) share one parser. ``kind`` is as in :func:`read_jsonl`. A leading
    byte-order mark is ignored.

    Raises:
        DuplicateIdError: a record repeats the id of an earlier one (the message names the file,
            the id and both line numbers): which of two conflicting records is meant cannot be
            known, so the manifest is refused rather than a line skipped.
    """
    seen = UniqueIds()
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                record_kind = kind or _record_kind(data)
                record = record_kind.from_dict(data)
            except (ValueError, KeyError, TypeError) as error:
                yield line_number, None, f"bad manifest line ({error})"
                continue
            what, id = record_key(record)
            seen.add(id, f"{path}:{line_number}", what=what)
            yield line_number, record, None


def count_records(path: str | os.PathLike, kind: type | None = None) -> int:
    """The number of non-blank lines of a JSONL manifest (malformed ones included), after a
    full pass that checks that no id repeats, so a long run is refused before it starts.

    Raises:
        DuplicateIdError: as :func:`iter_jsonl`.
    """
    return sum(1 for _ in iter_jsonl(path, kind))


def read_jsonl(path: str | os.PathLike, kind: type | None = None) -> Iterator[Record]:
    """Lazily yield records from a JSONL manifest.

    ``kind`` is ``Utterance``, ``Mixture`` or ``Conversation``; when omitted, each line's kind
    is guessed from its keys (``"kind": "conversation"`` means a conversation, ``sources`` a
    mixture). A malformed line raises ``ValueError`` naming the
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


def read_conversations(path: str | os.PathLike) -> list[Conversation]:
    """The :class:`Conversation` records of a conversation manifest (``conversations.jsonl``)."""
    return list(read_jsonl(path, Conversation))
