"""Speaker segments with a spoof label, read and written as NIST RTTM.

An RTTM line has ten whitespace-separated fields (NIST Rich Transcription Time Marked, as
written by pyannote, dscore and md-eval)::

    SPEAKER <file> <chnl> <tbeg> <tdur> <ortho> <stype> <name> <conf> <slat>
    SPEAKER call-000000 1 12.340000 3.210000 <NA> spoof LA_0079 0.912000 <NA>

amongus puts the spoof information in fields that standard readers ignore (pyannote's
``load_rttm``, dscore and md-eval read the file, channel, onset, duration and speaker name
only), so an amongus RTTM is a valid RTTM for any diarization tool:

* ``stype`` (field 7, ``<NA>`` in plain diarization files) holds the segment's label,
  ``bonafide`` or ``spoof``: the reference written by the conversation simulator always sets
  it; a hypothesis may set it (a verdict) or leave ``<NA>``;
* ``conf`` (field 9) holds a hypothesis segment's **spoof score, higher = more likely spoof**
  (a spoof probability, not an ASVspoof ``cm_score``); ``<NA>`` when there is none.

Onsets and durations are written in seconds with six decimals (sample-exact at 16 kHz to
within 1e-6 s). File and speaker names go through :func:`amongus.manifest.encode_field`, so a
name with a space stays one field and reads back unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .labels import normalize_label
from .manifest import decode_field, encode_field

__all__ = [
    "RttmError",
    "Segment",
    "format_rttm",
    "group_by_uri",
    "parse_rttm",
    "read_rttm",
    "write_rttm",
]

NA = "<NA>"


class RttmError(ValueError):
    """A malformed RTTM line; the message names the file and line number."""


@dataclass(frozen=True)
class Segment:
    """One speaker's speech in one recording, with an optional spoof label and score.

    Attributes:
        uri: the recording (RTTM ``file`` field; the conversation id).
        onset: start in seconds from the start of the recording.
        duration: length in seconds (> 0).
        speaker: the speaker name (reference: the speaker; hypothesis: a cluster name).
        label: ``"bonafide"``, ``"spoof"`` or ``None`` (unknown / not given).
        score: spoof score, higher = more likely spoof; ``None`` when not given.
        channel: the RTTM channel field (``"1"``).
    """

    uri: str
    onset: float
    duration: float
    speaker: str
    label: str | None = None
    score: float | None = None
    channel: str = "1"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.onset) and self.onset >= 0):
            raise ValueError(f"segment of {self.speaker!r} in {self.uri!r}: onset {self.onset}")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(
                f"segment of {self.speaker!r} in {self.uri!r}: duration must be > 0, "
                f"got {self.duration}"
            )
        if self.score is not None and not math.isfinite(self.score):
            raise ValueError(f"segment of {self.speaker!r} in {self.uri!r}: score {self.score}")
        if self.label is not None:
            object.__setattr__(self, "label", normalize_label(self.label))

    @property
    def end(self) -> float:
        """``onset + duration`` (seconds)."""
        return self.onset + self.duration


def _format(segment: Segment) -> str:
    fields = [
        "SPEAKER",
        encode_field(segment.uri),
        encode_field(segment.channel),
        f"{segment.onset:.6f}",
        f"{segment.duration:.6f}",
        NA,
        segment.label or NA,
        encode_field(segment.speaker),
        NA if segment.score is None else repr(float(segment.score)),
        NA,
    ]
    return " ".join(fields)


def format_rttm(segments: Iterable[Segment]) -> str:
    """The RTTM text of ``segments``, one line each, in the given order."""
    return "".join(_format(segment) + "\n" for segment in segments)


def parse_rttm(text: str, *, where: str = "<rttm>") -> list[Segment]:
    """Segments of RTTM ``text``; lines of other types than ``SPEAKER`` and blank or ``#``
    comment lines are skipped.

    Raises:
        RttmError: a ``SPEAKER`` line with another number of fields than 10 (9 is accepted: the
            ``slat`` field is often left out), an unreadable number, a non-positive duration,
            or an unknown label in the ``stype`` field; the message names ``where`` and the line.
    """
    segments = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0].upper() != "SPEAKER":
            continue
        if len(fields) not in (9, 10):
            raise RttmError(f"{where}:{number}: expected 10 RTTM fields, got {len(fields)}")
        try:
            label = None if fields[6] == NA else fields[6]
            score = None if fields[8] == NA else float(fields[8])
            segments.append(
                Segment(
                    uri=decode_field(fields[1]),
                    onset=float(fields[3]),
                    duration=float(fields[4]),
                    speaker=decode_field(fields[7]),
                    label=label,
                    score=score,
                    channel=decode_field(fields[2]),
                )
            )
        except ValueError as error:
            raise RttmError(f"{where}:{number}: {error}") from None
    return segments


def read_rttm(path: str | os.PathLike) -> list[Segment]:
    """Segments of the RTTM file ``path`` (see :func:`parse_rttm`).

    Raises:
        FileNotFoundError: no such file.
        RttmError: a malformed line (the message names the file and line).
    """
    return parse_rttm(Path(path).read_text(encoding="utf-8-sig"), where=str(path))


def write_rttm(path: str | os.PathLike, segments: Iterable[Segment]) -> Path:
    """Write ``segments`` to ``path`` atomically (:func:`amongus.fsutil.atomic_write_text`).

    Raises:
        amongus.fsutil.OutputError: the file cannot be written (the message names it).
    """
    from .fsutil import atomic_write_text

    return atomic_write_text(path, format_rttm(segments))


def group_by_uri(segments: Iterable[Segment]) -> dict[str, list[Segment]]:
    """Segments by recording, each list sorted by onset, then speaker."""
    groups: dict[str, list[Segment]] = {}
    for segment in segments:
        groups.setdefault(segment.uri, []).append(segment)
    return {
        uri: sorted(items, key=lambda s: (s.onset, s.speaker, s.duration))
        for uri, items in sorted(groups.items())
    }
