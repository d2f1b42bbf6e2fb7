"""The answer for one long recording: the speakers found, their verdicts, a spoof timeline.

Scores are spoof probabilities from the pipeline's classifier: **higher = more likely spoof**,
in ``[0, 1]``; a verdict is ``spoof`` when the score is ``>=`` the pipeline's threshold.
Times are seconds from the start of the recording.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..labels import BONAFIDE, SPOOF

__all__ = ["ConversationResult", "SpeakerVerdict", "TimelineSegment"]


@dataclass(frozen=True)
class TimelineSegment:
    """A stretch of one speaker's speech with one spoof score.

    Attributes:
        start, end: seconds.
        speaker: the found speaker's id (``SPEAKER_00``...).
        score: spoof probability of the window stream it was heard in (higher = spoof).
        overlap: seconds of the segment during which another speaker also talks.
        window: the analysis window the segment was decided in.
    """

    start: float
    end: float
    speaker: str
    score: float
    overlap: float = 0.0
    window: int | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class SpeakerVerdict:
    """One found speaker.

    Attributes:
        speaker: its id in the recording (``SPEAKER_00``, in order of first speech).
        participant: the enrolled participant it was matched to, or ``None`` (no enrollment, or
            no enrolled voice close enough). For a spoofed speaker, whose voice is imitated.
        score: duration-weighted mean of its segments' spoof probabilities.
        verdict: ``"spoof"`` when ``score >= threshold``, else ``"bonafide"``.
        speech_seconds: total length of its segments.
        max_score: the highest segment score (an impostor who takes over late shows here
            before it moves the mean).
        participant_similarity: cosine similarity to the matched participant's enrollment.
        segments: its timeline segments, in time order.
    """

    speaker: str
    participant: str | None
    score: float
    verdict: str
    speech_seconds: float
    max_score: float
    participant_similarity: float | None = None
    segments: list[TimelineSegment] = field(default_factory=list)


@dataclass
class ConversationResult:
    """Speakers, verdicts and timeline of one recording (:func:`analyze_recording`).

    Attributes:
        recording_id: the id used in RTTM (the file stem, or the manifest's conversation id).
        path: the file analysed, or ``None`` for an array.
        duration: seconds.
        sample_rate: the recording's rate (Hz).
        speakers: one :class:`SpeakerVerdict` per found speaker.
        timeline: every segment, in time order.
        overlap: ``(start, end)`` seconds where two or more found speakers talk at once.
        threshold, threshold_source: the spoof threshold and where it came from.
        components: identities of the separator, classifier and speaker embedder.
        settings: the analysis settings (window, hop, clustering...).
        n_windows: analysis windows; ``n_streams``: active streams found in them.
        elapsed_seconds: wall time of the analysis.
    """

    recording_id: str
    path: str | None
    duration: float
    sample_rate: int
    speakers: list[SpeakerVerdict]
    timeline: list[TimelineSegment]
    overlap: list[tuple[float, float]]
    threshold: float
    threshold_source: str
    components: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    n_windows: int = 0
    n_streams: int = 0
    elapsed_seconds: float = 0.0

    # ------------------------------------------------------------------ views
    @property
    def spoofed_speakers(self) -> list[SpeakerVerdict]:
        return [s for s in self.speakers if s.verdict == SPOOF]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["overlap"] = [list(pair) for pair in self.overlap]
        data["real_time_factor"] = (
            self.elapsed_seconds / self.duration if self.duration > 0 else None
        )
        return data

    def to_segments(self):
        """The timeline as :class:`amongus.rttm.Segment` (score in ``score``, verdict of the
        segment's score in ``label``)."""
        from ..rttm import Segment

        return [
            Segment(
                uri=self.recording_id,
                onset=round(s.start, 6),
                duration=round(s.duration, 6),
                speaker=s.speaker,
                label=SPOOF if s.score >= self.threshold else BONAFIDE,
                score=float(s.score),
            )
            for s in self.timeline
            if s.duration > 1e-6
        ]

    def __str__(self) -> str:
        lines = [
            f"{self.recording_id}: {self.duration:.1f} s, {len(self.speakers)} speaker(s), "
            f"threshold {self.threshold:.3f} ({self.threshold_source})"
        ]
        for s in self.speakers:
            who = f" = {s.participant}" if s.participant else ""
            lines.append(
                f"  {s.speaker}{who}: {s.verdict} (score {s.score:.3f}, max {s.max_score:.3f}, "
                f"{s.speech_seconds:.1f} s of speech, {len(s.segments)} segments)"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ files
    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON (atomically).

        Raises:
            amongus.fsutil.OutputError: the file cannot be written.
        """
        from ..fsutil import atomic_write_text

        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    def to_rttm(self, path: str | os.PathLike) -> Path:
        """Write the timeline as RTTM (:mod:`amongus.rttm`): one line per segment, the spoof
        score in ``conf`` and the segment's verdict in ``stype`` (docs/conversations.md)."""
        from ..rttm import write_rttm

        return write_rttm(path, self.to_segments())

    def plot(self, path: str | os.PathLike) -> Path:
        """A PNG timeline: one lane per speaker, segments coloured by spoof score (blue
        bonafide -> red spoof), overlapped speech hatched grey, verdicts in the lane labels."""
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        from ..plots import _figure, _save

        lanes = max(1, len(self.speakers))
        figure = _figure(12, 1.2 + 0.6 * lanes)
        axes = figure.add_subplot(1, 1, 1)
        cmap = colormaps["coolwarm"]
        norm = Normalize(0.0, 1.0)
        labels = []
        for lane, speaker in enumerate(self.speakers):
            y = lanes - 1 - lane
            bars = [(s.start, s.duration) for s in speaker.segments]
            colours = [cmap(norm(s.score)) for s in speaker.segments]
            if bars:
                axes.broken_barh(bars, (y - 0.35, 0.7), facecolors=colours)
            who = f" ({speaker.participant})" if speaker.participant else ""
            labels.append((y, f"{speaker.speaker}{who}\n{speaker.verdict} {speaker.score:.2f}"))
        for start, end in self.overlap:
            axes.axvspan(start, end, color="0.85", zorder=0, lw=0)
        axes.set_yticks([y for y, _ in labels], [text for _, text in labels], fontsize=8)
        axes.set_ylim(-0.6, lanes - 0.4)
        axes.set_xlim(0, max(self.duration, 1e-3))
        axes.set_xlabel("time (s)")
        axes.set_title(
            f"{self.recording_id}: spoof probability per segment "
            f"(threshold {self.threshold:.2f}; grey: overlapped speech)",
            fontsize=9,
        )
        figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="spoof probability")
        return _save(figure, path)

    def save(self, out_dir: str | os.PathLike, *, plot: bool = True) -> dict[str, Path]:
        """Write ``<id>.json``, ``<id>.rttm`` and (``plot``) ``<id>.png`` into ``out_dir``."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        from ..manifest import encode_field

        stem = encode_field(self.recording_id).replace("/", "%2F")
        written = {
            "json": self.to_json(folder / f"{stem}.json"),
            "rttm": self.to_rttm(folder / f"{stem}.rttm"),
        }
        if plot:
            written["png"] = self.plot(folder / f"{stem}.png")
        return written


def weighted_mean(values, weights) -> float:
    """Duration-weighted mean; NaN-free (0-weight input falls back to the plain mean)."""
    values, weights = list(values), list(weights)
    total = sum(weights)
    if total > 0:
        return float(sum(v * w for v, w in zip(values, weights, strict=True)) / total)
    return float(sum(values) / len(values)) if values else math.nan
