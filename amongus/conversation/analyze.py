"""``analyze_recording``: who in a long recording is a deepfake, and when.

Data flow, one batch of windows at a time (memory bounded by the window, not the recording)::

    RecordingReader.check()          one block-by-block pass: validation policy, speech level
    window_plan()                    6 s windows every 3 s; each decides for its core
    separate_at_rate()               [B, W] windows -> [B, S, W'] streams at the classifier's
                                     rate (the pipeline's separator and 8k/16k handling)
    speech_activity()                speech frames per stream; inactive and duplicate streams
                                     dropped; overlapped speech = two active streams
    classifier.score()               one spoof probability per active window stream
    embedder.embed()                 one speaker embedding per active stream (its speech only)
    continuity_links()               same speaker across two windows' overlap
  then, once for the recording:
    cluster_streams()                agglomerative clustering -> global speakers
    enrollment.assign()              optional: speakers -> enrolled participants

Sources: sliding-window local separation/segmentation, per-local-speaker embeddings and
agglomerative clustering with cannot-link follow pyannote's speaker-diarization pipeline
(Bredin, Interspeech 2023); the speaker embeddings are ECAPA-TDNN (Desplanques et al.,
Interspeech 2020) by default (:mod:`amongus.speakers`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import BONAFIDE, SPOOF
from .result import ConversationResult, SpeakerVerdict, TimelineSegment, weighted_mean
from .speech import FRAME_SECONDS, SpeechSettings, frame_levels, overlap_mask, regions
from .speech import speech_activity as detect_speech
from .tracking import cluster_streams, continuity_links
from .windows import RecordingReader, Window, window_plan

logger = logging.getLogger(__name__)

__all__ = ["AnalysisSettings", "analyze_recording", "default_distance_threshold"]

#: Streams whose correlation with an earlier stream of the same window is above this are
#: copies (passthrough, or a separator that returns the same speaker twice) and dropped.
DUPLICATE_CORRELATION = 0.98


@dataclass(frozen=True)
class AnalysisSettings:
    """Settings of :func:`analyze_recording` (all times in seconds).

    Attributes:
        window_seconds, hop_seconds: the analysis windows (:func:`window_plan`).
        min_stream_speech: a stream with less speech in a window is inactive there (dropped:
            too little to embed or score).
        distance_threshold: cosine distance cutting the speaker clusters when ``n_speakers``
            is not given; ``None``: :func:`default_distance_threshold` of the embedder.
        score_seconds: the classifier hears this much of each active stream, centred on the
            window's core (at least the hop, so the core is inside; 4 s is AASIST's input
            length); ``None``: the whole window.
        continuity_weight, min_correlation: stream continuity (:mod:`.tracking`).
        batch_windows: windows separated together (default: the pipeline's ``batch_size``).
        merge_same_speaker: sum the streams of one window whose embeddings are at least
            ``1 - distance_threshold`` similar (one voice the separator split in two).
        classifier_batch: streams per classifier forward, unless the pipeline sets
            ``classifier_batch_size`` (AASIST holds about 250 MB per 4 s stream on CPU).
        speech: the speech detector's thresholds (:class:`SpeechSettings`).
    """

    window_seconds: float = 6.0
    hop_seconds: float = 3.0
    min_stream_speech: float = 0.5
    distance_threshold: float | None = None
    score_seconds: float | None = 4.0
    continuity_weight: float = 0.3
    min_correlation: float = 0.5
    batch_windows: int | None = None
    classifier_batch: int = 4
    merge_same_speaker: bool = True
    speech: SpeechSettings = field(default_factory=SpeechSettings)


@dataclass
class _Observation:
    """One active stream of one window (no audio kept)."""

    window: int
    embedding: np.ndarray  # [D]
    score: float
    speech: list[tuple[float, float]]  # core speech regions, seconds
    overlap: list[tuple[float, float]]  # the window's overlapped core regions, seconds
    speech_seconds: float


def default_distance_threshold(embedder: Any) -> float:
    """``1 - verification_threshold`` of the embedder (the cosine similarity above which it
    calls two clips the same speaker, measured at its EER point), else
    ``1 - amongus.speakers.FALLBACK_THRESHOLD``."""
    similarity = getattr(embedder, "verification_threshold", None)
    if similarity is None:
        from ..speakers import FALLBACK_THRESHOLD

        similarity = FALLBACK_THRESHOLD
    return 1.0 - float(similarity)


def _load_embedder(embedder: Any, device: str):
    if embedder is not None:
        return embedder
    from ..speakers import load_speaker_embedder

    return load_speaker_embedder(None, device=device)


def _enrollment(enrollment: Any, embedder: Any):
    if enrollment is None or hasattr(enrollment, "assign"):
        return enrollment
    from ..speakers import enroll

    return enroll(embedder, dict(enrollment))


def _check_references(references, reader: RecordingReader, needs: bool, separator: str):
    if references is None:
        if needs:
            raise ValueError(
                f"{separator} needs the reference sources of the recording: pass "
                "references=[S, T] (e.g. render_speaker() of each speaker of a Conversation)"
            )
        return None
    references = np.asarray(references, dtype=np.float32)
    if references.ndim != 2 or references.shape[1] != reader.num_samples:
        raise ValueError(
            f"{reader.name}: references must be [S, {reader.num_samples}] at the recording's "
            f"rate, got shape {references.shape}"
        )
    return references


def _intersection(a: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in a)


class _Analysis:
    """The state of one recording's analysis (bounded: per-stream summaries only)."""

    def __init__(self, pipeline, reader, references, embedder, settings, level_db):
        self.pipeline = pipeline
        self.reader = reader
        self.references = references
        self.embedder = embedder
        self.settings = settings
        self.level_db = level_db
        self.out_rate = int(pipeline.sample_rate)
        self.same_speaker_similarity: float | None = None
        self.observations: list[_Observation] = []
        self.links: list[tuple[int, int, float]] = []
        # the previous window: (window, observation ids, its streams past the next start)
        self._previous: tuple[Window, list[int], np.ndarray] | None = None

    def _to_out(self, samples: int) -> int:
        return math.ceil(samples * self.out_rate / self.reader.sample_rate)

    def _audible(self, audio: np.ndarray) -> bool:
        speech = self.settings.speech
        onset = max(self.level_db + speech.onset_db, speech.floor_dbfs)
        levels = frame_levels(audio, self.reader.sample_rate)
        return bool(levels.size) and float(levels.max()) > onset

    def run_batch(self, windows: list[Window], plan: list[Window]) -> None:
        import torch

        from ..separation.run import separate_at_rate

        rate = self.reader.sample_rate
        audios = [self.reader.read(w.start, w.end) for w in windows]
        live = [i for i, audio in enumerate(audios) if self._audible(audio)]
        if not live:
            self._previous = None
            return
        lengths = [audios[i].shape[0] for i in live]
        longest = max(lengths)
        mixture = torch.zeros(len(live), longest)
        references = None
        if self.references is not None:
            references = torch.zeros(len(live), self.references.shape[0], longest)
        for row, i in enumerate(live):
            mixture[row, : lengths[row]] = torch.from_numpy(audios[i])
            if references is not None:
                w = windows[i]
                references[row, :, : lengths[row]] = torch.from_numpy(
                    self.references[:, w.start : w.end]
                )
        with torch.inference_mode():
            streams, _ = separate_at_rate(
                self.pipeline.separator,
                mixture,
                rate,
                self.out_rate,
                torch.tensor(lengths),
                chunk_seconds=self.pipeline.chunk_seconds,
                references=references,
            )
        streams = streams.detach().cpu().numpy()
        pending = []  # (window, kept stream audio [k, T], activity [k, F])
        for row, i in enumerate(live):
            window = windows[i]
            out = streams[row, :, : self._to_out(lengths[row])]
            kept, activity = self._active(out)
            pending.append((window, out[kept], activity))
        self._score_and_embed(pending, plan)

    def _active(self, streams: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Active, non-duplicate streams of a window and their speech frames."""
        levels = frame_levels(streams, self.out_rate)
        activity = detect_speech(levels, self.level_db, self.settings.speech)
        minimum = self.settings.min_stream_speech / FRAME_SECONDS
        kept: list[int] = []
        for k in range(streams.shape[0]):
            if activity[k].sum() < minimum:
                continue
            if any(_correlation(streams[k], streams[j]) > DUPLICATE_CORRELATION for j in kept):
                continue
            kept.append(k)
        # overlap is judged among the kept streams only: a copy is not a second voice
        return kept, activity[kept]

    def _score_span(self, window: Window, length: int) -> tuple[int, int]:
        """The samples of a window's stream the classifier hears (see ``score_seconds``)."""
        seconds = self.settings.score_seconds
        if seconds is None:
            return 0, length
        span = min(length, max(1, round(seconds * self.out_rate)))
        centre = self._to_out((window.core_start + window.core_end) // 2 - window.start)
        start = min(max(0, centre - span // 2), length - span)
        return start, start + span

    def _embed(self, stream: np.ndarray, activity: np.ndarray) -> np.ndarray:
        """The speaker embedding ``[D]`` of a stream's speech frames."""
        import torch

        frame = max(1, round(FRAME_SECONDS * self.out_rate))
        speech_frames = np.repeat(activity, frame)
        voiced = stream[: speech_frames.size][speech_frames]
        with torch.inference_mode():
            embedding = self.embedder.embed(
                torch.from_numpy(np.ascontiguousarray(voiced))[None], sample_rate=self.out_rate
            )
        if hasattr(embedding, "detach"):
            embedding = embedding.detach().cpu().numpy()
        return np.asarray(embedding, dtype=np.float64).reshape(-1)

    def _merge_same_speaker(self, kept, activity, embeddings):
        """Streams of one window whose embeddings say "same speaker" are one voice that the
        separator split (a two-speaker separator given one voice spreads it over both
        streams): they are summed into one stream. Union of all pairs at or above
        ``same_speaker_similarity``."""
        similarity = self.same_speaker_similarity
        n = kept.shape[0]
        if similarity is None or n < 2:
            return kept, activity, embeddings
        unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        group = list(range(n))
        for i in range(n):
            for j in range(i + 1, n):
                if float(unit[i] @ unit[j]) >= similarity:
                    old, new = group[j], group[i]
                    group = [new if g == old else g for g in group]
        if len(set(group)) == n:
            return kept, activity, embeddings
        members = [[k for k in range(n) if group[k] == g] for g in sorted(set(group))]
        streams = np.stack([kept[m].sum(axis=0) for m in members])
        active = np.stack([activity[m].any(axis=0) for m in members])
        merged = np.stack(
            [
                self._embed(streams[i], active[i]) if len(m) > 1 else embeddings[m[0]]
                for i, m in enumerate(members)
            ]
        )
        return streams, active, merged

    def _score_and_embed(self, pending, plan) -> None:
        prepared = []
        for window, kept, activity in pending:
            embeddings = np.zeros((0, 1))
            if len(kept):
                embeddings = np.stack([self._embed(kept[k], activity[k]) for k in range(len(kept))])
                kept, activity, embeddings = self._merge_same_speaker(kept, activity, embeddings)
            prepared.append((window, kept, activity, embeddings))
        flat = [
            stream[slice(*self._score_span(window, kept.shape[-1]))]
            for window, kept, _, _ in prepared
            for stream in kept
        ]
        if flat:
            scores = self.pipeline.classifier.score(
                flat,
                sample_rate=self.out_rate,
                batch_size=self.pipeline.classifier_batch_size or self.settings.classifier_batch,
            )
            probability = np.asarray(scores.spoof_probability, dtype=np.float64)
            if not np.all(np.isfinite(probability)):
                raise ValueError(
                    f"{self.reader.name}: the classifier returned non-finite spoof probabilities"
                )
        position = 0
        for window, kept, activity, embeddings in prepared:
            previous = self._previous
            if previous is not None and previous[0].index != window.index - 1:
                previous = None
            start_s = window.start / self.reader.sample_rate
            core = (
                window.core_start / self.reader.sample_rate,
                window.core_end / self.reader.sample_rate,
            )
            overlapped = _clip(regions(overlap_mask(activity), offset_seconds=start_s), *core)
            ids = []
            for k in range(kept.shape[0]):
                speech = _clip(regions(activity[k], offset_seconds=start_s), *core)
                ids.append(len(self.observations))
                self.observations.append(
                    _Observation(
                        window=window.index,
                        embedding=embeddings[k],
                        score=float(probability[position + k]),
                        speech=speech,
                        overlap=overlapped,
                        speech_seconds=sum(e - s for s, e in speech),
                    )
                )
            position += kept.shape[0]
            if previous is not None and ids and previous[1]:
                head = self._to_out(previous[0].end - window.start)
                tail = previous[2]
                n = min(head, tail.shape[-1], kept.shape[-1])
                for a, b, corr in continuity_links(
                    tail[:, :n], kept[:, :n], min_correlation=self.settings.min_correlation
                ):
                    self.links.append((previous[1][a], ids[b], corr))
            following = window.index + 1
            if following < len(plan):
                cut = self._to_out(plan[following].start - window.start)
                self._previous = (window, ids, np.ascontiguousarray(kept[:, cut:]))
            else:
                self._previous = None


def _clip(spans, start: float, end: float) -> list[tuple[float, float]]:
    out = []
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if e - s > 1e-9:
            out.append((s, e))
    return out


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 0 else 0.0


def _speakers(
    observations: list[_Observation],
    labels: np.ndarray,
    threshold: float,
    enrollment: Any,
) -> tuple[list[SpeakerVerdict], list[TimelineSegment]]:
    names = [f"SPEAKER_{label:02d}" for label in labels]
    timeline = []
    for observation, name in zip(observations, names, strict=True):
        for start, end in observation.speech:
            timeline.append(
                TimelineSegment(
                    start=round(start, 6),
                    end=round(end, 6),
                    speaker=name,
                    score=observation.score,
                    overlap=round(_intersection(observation.overlap, start, end), 6),
                    window=observation.window,
                )
            )
    timeline.sort(key=lambda s: (s.start, s.speaker))
    order = sorted({s.speaker for s in timeline})
    participants: dict[str, tuple[str | None, float | None]] = {}
    if enrollment is not None and order:
        centroids = []
        for name in order:
            rows = [o for o, n in zip(observations, names, strict=True) if n == name]
            weights = np.array([max(o.speech_seconds, 1e-3) for o in rows])
            unit = np.stack([o.embedding / max(np.linalg.norm(o.embedding), 1e-12) for o in rows])
            centroid = (weights[:, None] * unit).sum(0)
            centroids.append(centroid / max(np.linalg.norm(centroid), 1e-12))
        import torch

        matches = enrollment.assign(torch.from_numpy(np.stack(centroids).astype(np.float32)))
        for name, (who, similarity) in zip(order, matches, strict=True):
            participants[name] = (who, None if who is None else round(float(similarity), 6))
    speakers = []
    for name in order:
        segments = [s for s in timeline if s.speaker == name]
        score = weighted_mean([s.score for s in segments], [s.duration for s in segments])
        who, similarity = participants.get(name, (None, None))
        speakers.append(
            SpeakerVerdict(
                speaker=name,
                participant=who,
                score=score,
                verdict=SPOOF if score >= threshold else BONAFIDE,
                speech_seconds=round(sum(s.duration for s in segments), 6),
                max_score=max(s.score for s in segments),
                participant_similarity=similarity,
                segments=segments,
            )
        )
    return speakers, timeline


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def analyze_recording(
    pipeline,
    audio_or_path,
    sample_rate: int | None = None,
    *,
    n_speakers: int | None = None,
    enrollment: Any = None,
    embedder: Any = None,
    references=None,
    recording_id: str | None = None,
    settings: AnalysisSettings | None = None,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    progress: bool = True,
) -> ConversationResult:
    """Find the speakers of a long recording, score each one's speech, give verdicts.

    Args:
        pipeline: an :class:`amongus.Pipeline` (its separator, classifier, threshold, device,
            ``batch_size`` and ``chunk_seconds`` are used).
        audio_or_path: a file (any rate soundfile reads; channels averaged) or a ``[T]`` array.
        sample_rate: the rate of an array (Hz).
        n_speakers: the number of speakers when known; else found by the clustering threshold.
        enrollment: ``{participant: clip path}`` or an enrollment object from
            :func:`amongus.speakers.enroll`: found speakers are named after the participants
            (one-to-one).
        embedder: a speaker embedder (``embed(waveforms [B, T], sample_rate=) -> [B, D]``);
            default :func:`amongus.speakers.load_speaker_embedder` on the pipeline's device.
        references: ``[S, T]`` the speakers' dry tracks at the recording's rate, for separators
            that need them (the oracle).
        recording_id: the id in outputs (default: the file stem, or ``"recording"``).
        settings: :class:`AnalysisSettings`; ``window_seconds``/``hop_seconds`` override its
            window and hop.
        progress: a tqdm bar over the windows.

    Returns:
        A :class:`ConversationResult`: speakers (``SPEAKER_00``... with spoof score = duration
        weighted mean of segment spoof probabilities, higher = spoof; verdict at the pipeline's
        ``spoof_threshold``), timeline segments and overlapped regions, in seconds.

    Raises:
        amongus.validation.InvalidAudioError: the recording is missing, unreadable, empty,
            shorter than the policy's minimum, non-finite or silent (the message names it).
        ValueError: an array without ``sample_rate``, bad settings, references of the wrong
            shape, or a separator that needs references without them.
        ImportError: no embedder given and :mod:`amongus.speakers` unavailable.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    settings = settings or AnalysisSettings()
    if window_seconds is not None or hop_seconds is not None:
        from dataclasses import replace

        settings = replace(
            settings,
            window_seconds=settings.window_seconds if window_seconds is None else window_seconds,
            hop_seconds=settings.hop_seconds if hop_seconds is None else hop_seconds,
        )
    if n_speakers is not None and int(n_speakers) < 1:
        raise ValueError(f"n_speakers must be >= 1, got {n_speakers}")
    is_path = isinstance(audio_or_path, str | os.PathLike)
    reader = RecordingReader(audio_or_path, sample_rate)
    if recording_id is None:
        recording_id = Path(audio_or_path).stem if is_path else "recording"
    level = reader.check()
    references = _check_references(
        references, reader, bool(pipeline.needs_references), pipeline.separator_identity
    )
    embedder = _load_embedder(embedder, pipeline.device)
    enrollment = _enrollment(enrollment, embedder)
    plan = window_plan(
        reader.num_samples, reader.sample_rate, settings.window_seconds, settings.hop_seconds
    )
    threshold = settings.distance_threshold
    if threshold is None:
        threshold = default_distance_threshold(embedder)
    analysis = _Analysis(pipeline, reader, references, embedder, settings, level)
    if settings.merge_same_speaker:
        analysis.same_speaker_similarity = 1.0 - threshold
    batch = max(1, int(settings.batch_windows or pipeline.batch_size))
    with tqdm(total=len(plan), desc=recording_id, unit="window", disable=not progress) as bar:
        for first in range(0, len(plan), batch):
            windows = plan[first : first + batch]
            analysis.run_batch(windows, plan)
            bar.update(len(windows))
    observations = analysis.observations
    labels = cluster_streams(
        np.stack([o.embedding for o in observations]) if observations else np.zeros((0, 1)),
        np.array([o.window for o in observations], dtype=int),
        links=analysis.links,
        n_speakers=n_speakers,
        distance_threshold=threshold,
        continuity_weight=settings.continuity_weight,
    )
    speakers, timeline = _speakers(observations, labels, pipeline.spoof_threshold, enrollment)
    overlap = _merge([span for o in observations for span in o.overlap])
    if not speakers:
        logger.warning("%s: no speech found in any window", reader.name)
    return ConversationResult(
        recording_id=recording_id,
        path=reader.path,
        duration=reader.duration,
        sample_rate=reader.sample_rate,
        speakers=speakers,
        timeline=timeline,
        overlap=overlap,
        threshold=float(pipeline.spoof_threshold),
        threshold_source=str(pipeline.threshold_source),
        components={
            "separator": pipeline.separator_identity,
            "classifier": pipeline.classifier_identity,
            "embedder": str(getattr(embedder, "identity", type(embedder).__name__)),
        },
        settings={
            "window_seconds": settings.window_seconds,
            "hop_seconds": settings.hop_seconds,
            "min_stream_speech": settings.min_stream_speech,
            "distance_threshold": None if n_speakers is not None else threshold,
            "n_speakers": n_speakers,
            "continuity_weight": settings.continuity_weight,
            "score_seconds": settings.score_seconds,
            "merge_same_speaker": settings.merge_same_speaker,
            "speech_level_dbfs": round(level, 2),
            "classifier_rate": analysis.out_rate,
        },
        n_windows=len(plan),
        n_streams=len(observations),
        elapsed_seconds=time.perf_counter() - started,
    )
