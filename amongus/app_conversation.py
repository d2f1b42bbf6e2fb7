"""The demo's "Long recording" mode, as plain functions (no Gradio needed).

A long multi-party recording goes through :meth:`amongus.Pipeline.analyze`
(:mod:`amongus.conversation`: windowed separation, speaker embeddings and clustering, per-speaker
spoof scores; docs/conversations.md). The page shows one row per found speaker with its spoof
score and verdict, the timeline plot and the JSON and RTTM files for download.

Inputs are checked before anything runs, by the same rules as the short-clip mode
(:func:`amongus.app.check_upload`) with the long-recording limits; enrollment clips get the
short-clip limits. Anything refused raises :class:`amongus.app.UploadError` naming the file (or
the field) and the problem.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .app import UploadError, UploadInfo, check_upload

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_LONG_SECONDS",
    "DEFAULT_MAX_LONG_UPLOAD_MB",
    "LongAnalysis",
    "MAX_SPEAKERS",
    "analyse_long",
    "check_long_upload",
    "enrollment_clips",
    "parse_n_speakers",
]

DEFAULT_MAX_LONG_SECONDS = 1800.0  # the conversation simulator's longest call (30 minutes)
DEFAULT_MAX_LONG_UPLOAD_MB = 200.0  # 30 minutes of 16 kHz 16-bit WAV is 58 MB; FLAC far less
MAX_SPEAKERS = 10


def check_long_upload(
    path: str | os.PathLike,
    *,
    max_bytes: int = int(DEFAULT_MAX_LONG_UPLOAD_MB * 1024 * 1024),
    max_seconds: float = DEFAULT_MAX_LONG_SECONDS,
) -> UploadInfo:
    """:func:`amongus.app.check_upload` with the long-recording limits.

    Raises:
        UploadError: wrong type, too large, unreadable, empty or longer than ``max_seconds``.
    """
    return check_upload(path, max_bytes=max_bytes, max_seconds=max_seconds)


def parse_n_speakers(value: Any) -> int | None:
    """The "number of speakers" field: blank or 0 means unknown (``None``), else 1 to
    :data:`MAX_SPEAKERS`.

    Raises:
        UploadError: not a whole number, or out of range.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UploadError(f"number of speakers: not a number ({value!r})") from None
    if number != number or number != int(number):  # NaN or a fraction
        raise UploadError(f"number of speakers: not a whole number ({value!r})")
    number = int(number)
    if number == 0:
        return None
    if not 1 <= number <= MAX_SPEAKERS:
        raise UploadError(
            f"number of speakers: {number} is out of range; give 1 to {MAX_SPEAKERS}, "
            "or 0 / blank when unknown"
        )
    return number


def enrollment_clips(
    paths: Sequence[str | os.PathLike] | None,
    names: str | None = None,
    *,
    max_bytes: int,
    max_seconds: float,
) -> dict[str, list[str]] | None:
    """Enrollment clips and their participants' names as ``{name: [clip, ...]}``.

    Args:
        paths: the uploaded clips, in upload order (``None`` or empty: no enrollment).
        names: participant names, one per clip in the same order, separated by commas or new
            lines; a name given twice collects several clips. Blank: each clip is named after
            its file name without the extension (``alice.wav`` -> ``alice``).
        max_bytes, max_seconds: limits of one clip (:func:`amongus.app.check_upload`).

    Returns:
        ``None`` when no clip was given, else the clips grouped by name.

    Raises:
        UploadError: a clip refused by the upload check (its file name and why), names given
            without clips, or a number of names different from the number of clips.
    """
    given = [name.strip() for name in re.split(r"[,\n]", names or "") if name.strip()]
    if not paths:
        if given:
            raise UploadError(
                f"enrollment: {len(given)} name(s) given but no clip uploaded; upload one "
                "short clip of each participant"
            )
        return None
    infos = [check_upload(path, max_bytes=max_bytes, max_seconds=max_seconds) for path in paths]
    if given and len(given) != len(infos):
        raise UploadError(
            f"enrollment: {len(given)} name(s) for {len(infos)} clip(s); give one name per clip "
            "in upload order, or none to use the file names"
        )
    labels = given or [info.path.stem for info in infos]
    clips: dict[str, list[str]] = {}
    for label, info in zip(labels, infos, strict=True):
        clips.setdefault(label, []).append(str(info.path))
    return clips


@dataclass
class LongAnalysis:
    """What the page shows for one long recording.

    Attributes:
        result: the :class:`amongus.conversation.ConversationResult`.
        files: ``{"json": path, "rttm": path, "png": path}`` written by ``result.save``.
    """

    result: Any
    files: dict[str, Path]

    def speaker_rows(self) -> list[list[Any]]:
        """One row per found speaker: id, enrolled participant (or ``""``), verdict, spoof
        score (duration-weighted mean spoof probability, higher = spoof), highest segment
        score, seconds of speech, number of segments."""
        return [
            [
                speaker.speaker,
                speaker.participant or "",
                speaker.verdict,
                round(float(speaker.score), 4),
                round(float(speaker.max_score), 4),
                round(float(speaker.speech_seconds), 1),
                len(speaker.segments),
            ]
            for speaker in self.result.speakers
        ]

    def summary_markdown(self) -> str:
        result = self.result
        spoofed = result.spoofed_speakers
        if spoofed:
            names = ", ".join(
                s.speaker + (f" (voice of {s.participant})" if s.participant else "")
                for s in spoofed
            )
            headline = (
                f"### {len(spoofed)} of {len(result.speakers)} speakers look spoofed: {names}"
            )
        else:
            headline = f"### No spoofed speaker among {len(result.speakers)} found"
        overlap = sum(end - start for start, end in result.overlap)
        lines = [
            headline,
            f"Recording `{result.recording_id}`: {result.duration:.1f} s, "
            f"{sum(s.speech_seconds for s in result.speakers):.1f} s of speech, "
            f"{overlap:.1f} s overlapped; threshold {result.threshold:.3f} "
            f"({result.threshold_source}).",
            f"Analysed in {result.elapsed_seconds:.1f} s ({result.n_windows} windows).",
        ]
        return "\n\n".join(lines)


def analyse_long(
    pipeline,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n_speakers: int | None = None,
    enrollment: dict[str, list[str]] | None = None,
    embedder: Any = None,
    progress: bool = True,
) -> LongAnalysis:
    """Analyse the recording at ``path`` with ``pipeline.analyze`` and save its outputs.

    Args:
        pipeline: an :class:`amongus.Pipeline` whose separator needs no references.
        path: the recording (any rate and channel count soundfile reads).
        out_dir: where ``<id>.json``, ``<id>.rttm`` and ``<id>.png`` are written.
        n_speakers: the number of participants when known.
        enrollment: ``{name: [clip, ...]}`` (:func:`enrollment_clips`).
        embedder: a speaker embedder instance, or a name or folder for
            :func:`amongus.speakers.load_speaker_embedder` (default: the shipped
            ``ecapa-tiny``).
        progress: a tqdm bar over the windows (the page follows it).

    Raises:
        amongus.validation.InvalidAudioError: the recording or a clip is refused by the
            validation policy (silent, too short, non-finite...).
    """
    from .speakers import enroll, load_speaker_embedder

    if embedder is None or isinstance(embedder, str | os.PathLike):
        embedder = load_speaker_embedder(embedder, device=pipeline.device)
    enrolled = enroll(embedder, enrollment) if enrollment else None
    result = pipeline.analyze(
        path, n_speakers=n_speakers, enrollment=enrolled, embedder=embedder, progress=progress
    )
    files = result.save(out_dir)
    logger.info(
        "long recording %s: %d speaker(s), outputs in %s", path, len(result.speakers), out_dir
    )
    return LongAnalysis(result, files)
