"""What every corpus reader returns: the utterances it found and the problems it met."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ..manifest import Utterance

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


@dataclass
class CorpusListing:
    """Utterances read from a corpus, plus every file that could not be used.

    ``problems`` holds ``(path, reason)`` pairs: missing files, unreadable audio, files without
    a label. Readers never drop a file silently; they list it here, and :meth:`summary` counts
    the problems by reason.
    """

    utterances: list[Utterance] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    root: str = ""
    kind: str = ""  # "asvspoof", "folder" or "manifest"

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

    def add(self, utterance: Utterance, *, check_files: bool = True) -> bool:
        """List ``utterance``; with ``check_files``, check its audio first.

        A missing or unreadable file goes to :attr:`problems` instead (returns ``False``); a
        readable one gets its duration and sample rate filled in where they are unknown.
        """
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
        self.utterances.extend(other.utterances)
        self.problems.extend(other.problems)


def check_audio_file(path: str | os.PathLike) -> tuple[str | None, float | None, int | None]:
    """``(problem or None, duration, sample rate)`` from the file header (no samples read)."""
    path = Path(path)
    if not path.exists():
        return "missing file", None, None
    try:
        info = sf.info(str(path))
    except Exception as error:
        return f"unreadable audio ({type(error).__name__}: {str(error)[:120]})", None, None
    if info.frames <= 0 or info.samplerate <= 0:
        return "empty audio (0 samples)", None, None
    return None, info.frames / info.samplerate, int(info.samplerate)
