"""What every corpus reader returns: the utterances it found and the problems it met, plus the
rules all readers share: audio file suffixes match whatever their case (``.FLAC`` is ``.flac``),
and an utterance id is listed once (:class:`~amongus.manifest.UniqueIds`)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..manifest import DuplicateIdError, UniqueIds, Utterance

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def has_audio_suffix(path: str | os.PathLike, suffixes: Sequence[str] = AUDIO_SUFFIXES) -> bool:
    """True when the file name ends in one of ``suffixes``, whatever its case.

    >>> has_audio_suffix("LA_E_1.FLAC"), has_audio_suffix("notes.txt")
    (True, False)
    """
    return Path(path).suffix.lower() in suffixes


class AudioFolderIndex:
    """The audio files of one folder by stem, for readers that know ids, not file names.

    The folder is listed once (a protocol of 70,000 lines then costs one listing, not 70,000
    look-ups), and suffixes are compared case-insensitively, as :func:`has_audio_suffix` does.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._files: dict[tuple[str, str], list[str]] = {}
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            names = []  # a missing folder: every look-up reports a missing file
        for name in names:
            stem, suffix = os.path.splitext(name)
            self._files.setdefault((stem, suffix.lower()), []).append(name)

    def find(self, stem: str, suffixes: Sequence[str]) -> Path:
        """The file ``stem`` + the first of ``suffixes`` (lower case, by preference) that exists
        in any case; the preferred name (``stem + suffixes[0]``) when none does, so that the
        caller reports it as missing.

        Raises:
            DuplicateIdError: two files differ only in the case of the suffix
                (``x.flac`` and ``x.FLAC``): which one the id means cannot be known.
        """
        for suffix in suffixes:
            names = self._files.get((stem, suffix.lower()), [])
            if len(names) > 1:
                first, second = (str(self.folder / name) for name in names[:2])
                raise DuplicateIdError(stem, first, second, what="audio file for utterance")
            if names:
                return self.folder / names[0]
        return self.folder / f"{stem}{suffixes[0]}"


@dataclass
class CorpusListing:
    """Utterances read from a corpus, plus every file that could not be used.

    ``problems`` holds ``(path, reason)`` pairs: missing files, unreadable audio, files without
    a label. Readers never drop a file silently; they list it here, and :meth:`summary` counts
    the problems by reason.

    Utterance ids are unique: :meth:`add` and :meth:`extend` raise
    :class:`~amongus.manifest.DuplicateIdError` for an id listed before (a file with a problem
    counts too), naming both places.
    """

    utterances: list[Utterance] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    root: str = ""
    kind: str = ""  # "asvspoof", "folder" or "manifest"
    ids: UniqueIds = field(
        default_factory=lambda: UniqueIds("utterance id"), repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self):
        return iter(self.utterances)

    def problem_counts(self) -> Counter:
        """``{reason: count}``; the reason is the text before any parenthesised detail."""
        return Counter(reason.split(" (")[0] for _, reason in self.problems)

    def summary(self) -> str:
        """A few lines: counts by split and label, systems, speakers, and problems by reason."""
        lines = [f"{self.kind or 'corpus'} {self.root}: {len(self.utterances)} utterances"]
        by_split_label = Counter((u.split, u.label) for u in self.utterances)
        for split in sorted({split for split, _ in by_split_label}):
            counts = ", ".join(
                f"{label} {by_split_label[(split, label)]}"
                for label in ("bonafide", "spoof")
                if by_split_label[(split, label)]
            )
            lines.append(f"  {split}: {counts}")
        systems = sorted({u.system for u in self.utterances if u.system != "-"})
        speakers = {u.speaker for u in self.utterances if u.speaker != "-"}
        if systems:
            lines.append(f"  spoof systems ({len(systems)}): {' '.join(systems)}")
        if speakers:
            lines.append(f"  speakers: {len(speakers)}")
        if self.problems:
            lines.append(f"  problems: {len(self.problems)} file(s) not usable")
            for reason, count in sorted(self.problem_counts().items()):
                lines.append(f"    {count} x {reason}")
        else:
            lines.append("  problems: none")
        return "\n".join(lines)

    def add(
        self, utterance: Utterance, *, check_files: bool = True, where: str | None = None
    ) -> bool:
        """List ``utterance``; with ``check_files``, check its audio first.

        A missing or unreadable file goes to :attr:`problems` instead (returns ``False``); a
        readable one gets its duration and sample rate filled in where they are unknown.
        ``where`` says where the record came from (``"protocol.txt:12"``; default: its audio
        path), for the message of a repeated id.

        Raises:
            DuplicateIdError: ``utterance.utt_id`` was added before.
        """
        self.ids.add(utterance.utt_id, where or str(utterance.path))
        if check_files:
            problem, duration, sample_rate = check_audio_file(utterance.path)
            if problem:
                self.problems.append((str(utterance.path), problem))
                return False
            utterance.duration = utterance.duration or duration
            utterance.sample_rate = utterance.sample_rate or sample_rate
        self.utterances.append(utterance)
        return True

    def extend(self, other: CorpusListing) -> None:
        """Add another listing's utterances and problems (ids stay unique across both).

        Raises:
            DuplicateIdError: an id of ``other`` is already listed here.
        """
        self.ids.update(other.ids)
        self.utterances.extend(other.utterances)
        self.problems.extend(other.problems)


def check_audio_file(path: str | os.PathLike) -> tuple[str | None, float | None, int | None]:
    """``(problem or None, duration, sample rate)`` from the file header (no samples read).

    The problem is the shared validation policy's reason code (``missing``, ``unreadable``,
    ``empty``; :mod:`amongus.validation`) with its detail in parentheses, so corpus listings and
    evaluation reports count the same reasons.
    """
    from ..validation import InvalidAudioError, read_header

    try:
        info = read_header(path)
    except InvalidAudioError as error:
        return f"{error.reason} ({error.detail})", None, None
    return None, info.frames / info.samplerate, int(info.samplerate)
