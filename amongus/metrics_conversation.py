"""Metrics for conversations: who is spoofed, when, and how well speech was attributed.

Every function takes **reference** segments (an RTTM reference as the conversation simulator
writes it: speaker and ``label`` per segment) and **hypothesis** segments (speaker clusters
found by a system, each segment with a spoof ``score``, higher = more likely spoof, and/or a
``label`` verdict); see :mod:`amongus.rttm`. Times are in seconds. Several recordings may be
mixed in one list: segments are grouped by ``uri`` and errors summed over recordings (time
errors are pooled by time, as in NIST's DER, not averaged per recording).

* :func:`diarization_error_rate`: DER by ``pyannote.metrics`` (Bredin, Interspeech 2017);
* :func:`spoof_time_error`: the share of speech time whose spoof label is wrong, with missed
  speech and false alarms counted as in DER (defined below);
* :func:`speaker_results`: each reference speaker's verdict, from the hypothesis speaker it is
  mapped to (the DER's optimal one-to-one mapping), for the per-speaker EER and the
  spoof-speaker detection accuracy;
* :func:`evaluate_conversation` / :func:`evaluate_conversation_hypotheses`: all of them.

``pyannote.metrics`` is imported lazily; without it DER and the speaker mapping raise an
``ImportError`` that says what to install (``pip install "pyannote.metrics>=4"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .labels import BONAFIDE, SPOOF
from .rttm import Segment, group_by_uri, read_rttm

__all__ = [
    "ConversationReport",
    "DiarizationErrors",
    "SpeakerResult",
    "SPEAKER_SCORES",
    "SpoofTimeErrors",
    "diarization_error_rate",
    "evaluate_conversation",
    "evaluate_conversation_hypotheses",
    "hypothesis_speaker_scores",
    "segment_labels",
    "speaker_mapping",
    "speaker_results",
    "spoof_time_error",
]


def _pyannote():
    try:
        from pyannote.core import Annotation, Timeline
        from pyannote.core import Segment as TimeSegment
        from pyannote.metrics.diarization import DiarizationErrorRate
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'conversation metrics need pyannote.metrics: pip install "pyannote.metrics>=4"'
        ) from error
    return Annotation, Timeline, TimeSegment, DiarizationErrorRate


def _annotation(segments: Sequence[Segment], uri: str):
    Annotation, _, TimeSegment, _ = _pyannote()
    annotation = Annotation(uri=uri)
    for track, segment in enumerate(segments):
        annotation[TimeSegment(segment.onset, segment.end), str(track)] = segment.speaker
    return annotation


def _uem(reference: Sequence[Segment], hypothesis: Sequence[Segment]):
    """The evaluated region: from 0 to the last end of either side (the whole recording)."""
    _, Timeline, TimeSegment, _ = _pyannote()
    end = max([s.end for s in reference] + [s.end for s in hypothesis] + [0.0])
    return Timeline([TimeSegment(0.0, end)]) if end > 0 else Timeline()


def _paired(reference: Iterable[Segment], hypothesis: Iterable[Segment]):
    """``(uri, reference segments, hypothesis segments)`` per recording of the reference.

    Raises:
        ValueError: a hypothesis for a recording the reference does not have.
    """
    ref, hyp = group_by_uri(reference), group_by_uri(hypothesis)
    extra = sorted(set(hyp) - set(ref))
    if extra:
        raise ValueError(
            f"hypothesis segments for {len(extra)} recording(s) without a reference: {extra[:5]}"
        )
    return [(uri, ref[uri], hyp.get(uri, [])) for uri in ref]


# ----------------------------------------------------------------------------------------------
# Diarization error rate
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiarizationErrors:
    """DER and its parts, in seconds of speaker time: ``der = (missed + false_alarm +
    confusion) / total``; ``total`` is the reference speaker time (overlap counted per
    speaker)."""

    der: float
    missed: float
    false_alarm: float
    confusion: float
    total: float


def diarization_error_rate(
    reference: Iterable[Segment],
    hypothesis: Iterable[Segment],
    *,
    collar: float = 0.0,
    skip_overlap: bool = False,
) -> DiarizationErrors:
    """Diarization error rate by ``pyannote.metrics.diarization.DiarizationErrorRate``.

    The hypothesis speakers are mapped one-to-one to the reference speakers so as to
    maximise the overlap (Hungarian algorithm); ``collar`` (seconds, in total: half on each
    side of every reference boundary) and ``skip_overlap`` are pyannote's. Each recording is
    evaluated from 0 to the last end of its reference or hypothesis; errors are summed over
    recordings. Labels and scores are ignored.

    Returns:
        :class:`DiarizationErrors` (``der`` is 0.0 when the reference has no speech and the
        hypothesis none either, 1.0 for any false alarm on a reference without speech).

    Raises:
        ValueError: a hypothesis recording with no reference.
        ImportError: pyannote.metrics is not installed.
    """
    *_, DiarizationErrorRate = _pyannote()
    metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    parts = {"missed detection": 0.0, "false alarm": 0.0, "confusion": 0.0, "total": 0.0}
    for uri, ref, hyp in _paired(reference, hypothesis):
        detail = metric(
            _annotation(ref, uri), _annotation(hyp, uri), uem=_uem(ref, hyp), detailed=True
        )
        for key in parts:
            parts[key] += float(detail[key])
    errors = parts["missed detection"] + parts["false alarm"] + parts["confusion"]
    total = parts["total"]
    der = errors / total if total > 0 else (0.0 if errors == 0 else 1.0)
    return DiarizationErrors(
        der, parts["missed detection"], parts["false alarm"], parts["confusion"], total
    )


def speaker_mapping(
    reference: Sequence[Segment], hypothesis: Sequence[Segment], *, collar: float = 0.0
) -> dict[str, str]:
    """The DER's optimal one-to-one mapping of one recording: hypothesis speaker -> reference
    speaker (hypothesis speakers left over are absent).

    Raises:
        ImportError: pyannote.metrics is not installed.
    """
    *_, DiarizationErrorRate = _pyannote()
    uri = reference[0].uri if reference else (hypothesis[0].uri if hypothesis else "-")
    if not reference or not hypothesis:
        return {}
    mapping = DiarizationErrorRate(collar=collar).optimal_mapping(
        _annotation(reference, uri), _annotation(hypothesis, uri), uem=_uem(reference, hypothesis)
    )
    return {str(hyp): str(ref) for hyp, ref in mapping.items()}


# ----------------------------------------------------------------------------------------------
# Time-weighted spoof detection error
# ----------------------------------------------------------------------------------------------
def segment_labels(segments: Iterable[Segment], *, threshold: float = 0.5) -> list[str]:
    """The spoof label of each segment: its ``label`` when set, else ``spoof`` when ``score >=
    threshold`` (scores are higher = spoof), else ``bonafide``.

    Raises:
        ValueError: a segment with neither a label nor a score.
    """
    labels = []
    for segment in segments:
        if segment.label is not None:
            labels.append(segment.label)
        elif segment.score is not None:
            labels.append(SPOOF if segment.score >= threshold else BONAFIDE)
        else:
            raise ValueError(
                f"segment {segment.onset:.3f}+{segment.duration:.3f} s of {segment.speaker!r} in "
                f"{segment.uri!r} has neither a label nor a spoof score"
            )
    return labels


@dataclass(frozen=True)
class SpoofTimeErrors:
    """Time-weighted spoof detection error and its parts (seconds; see
    :func:`spoof_time_error`)."""

    error: float
    missed: float
    false_alarm: float
    confusion: float
    total: float


def _label_counts(segments: Sequence[Segment], labels: Sequence[str], bounds: np.ndarray):
    """Per elementary interval, how many speakers are active as bonafide and as spoof.

    A speaker counts once at a time however many of its segments are active; it counts as
    spoof where any of its active segments is spoof, as bonafide elsewhere it is active.
    """
    bona = np.zeros(max(0, bounds.size - 1), dtype=np.int64)
    spoof = np.zeros_like(bona)
    by_speaker: dict[str, list[int]] = {}
    for k, segment in enumerate(segments):
        by_speaker.setdefault(segment.speaker, []).append(k)
    for indices in by_speaker.values():
        active = np.zeros(bona.size + 1, dtype=np.int64)
        spoofed = np.zeros(bona.size + 1, dtype=np.int64)
        for k in indices:
            first = int(np.searchsorted(bounds, segments[k].onset))
            last = int(np.searchsorted(bounds, segments[k].end))
            active[first] += 1
            active[last] -= 1
            if labels[k] == SPOOF:
                spoofed[first] += 1
                spoofed[last] -= 1
        is_active = np.cumsum(active)[:-1] > 0
        is_spoof = np.cumsum(spoofed)[:-1] > 0
        spoof += is_spoof
        bona += is_active & ~is_spoof
    return bona, spoof


def spoof_time_error(
    reference: Iterable[Segment], hypothesis: Iterable[Segment], *, threshold: float = 0.5
) -> SpoofTimeErrors:
    """The share of speech time whose spoof label is wrong, counted as DER counts speakers.

    At each time ``t`` of a recording, let ``r_b(t)``, ``r_s(t)`` be the numbers of reference
    speakers active as bonafide and as spoof, ``h_b(t)``, ``h_s(t)`` the same for the
    hypothesis (a segment's label by :func:`segment_labels`), ``N_ref = r_b + r_s`` and
    ``N_hyp = h_b + h_s``. Then, summed over recordings::

        missed      = ∫ max(0, N_ref - N_hyp) dt
        false_alarm = ∫ max(0, N_hyp - N_ref) dt
        confusion   = ∫ [min(N_ref, N_hyp) - min(r_b, h_b) - min(r_s, h_s)] dt
        total       = ∫ N_ref dt
        error       = (missed + false_alarm + confusion) / total

    This is the diarization error rate of the two-class "speaker" labels bonafide and spoof:
    a wrong label is a confusion, speech not found is missed, speech found where there is
    none a false alarm, and which cluster said it does not matter (speaker errors are the
    DER's business). A hypothesis that is right everywhere but flips the label of one
    speaker scores that speaker's share of the reference speaker time.

    Where segments of one speaker overlap, the speaker counts once, as spoof if any of them
    is spoof. No collar is applied.

    Returns:
        :class:`SpoofTimeErrors`; ``error`` is 0.0 when neither side has speech, 1.0 when only
        the hypothesis has.

    Raises:
        ValueError: a hypothesis segment with neither label nor score, or a hypothesis
            recording with no reference.
    """
    missed = false_alarm = confusion = total = 0.0
    for _, ref, hyp in _paired(reference, hypothesis):
        ref_labels = segment_labels(ref, threshold=threshold)
        hyp_labels = segment_labels(hyp, threshold=threshold)
        bounds = np.unique(
            np.array([t for s in [*ref, *hyp] for t in (s.onset, s.end)], dtype=np.float64)
        )
        if bounds.size < 2:
            continue
        width = np.diff(bounds)
        r_b, r_s = _label_counts(ref, ref_labels, bounds)
        h_b, h_s = _label_counts(hyp, hyp_labels, bounds)
        n_ref, n_hyp = r_b + r_s, h_b + h_s
        correct = np.minimum(r_b, h_b) + np.minimum(r_s, h_s)
        missed += float(np.sum(np.maximum(0, n_ref - n_hyp) * width))
        false_alarm += float(np.sum(np.maximum(0, n_hyp - n_ref) * width))
        confusion += float(np.sum((np.minimum(n_ref, n_hyp) - correct) * width))
        total += float(np.sum(n_ref * width))
    errors = missed + false_alarm + confusion
    error = errors / total if total > 0 else (0.0 if errors == 0 else 1.0)
    return SpoofTimeErrors(error, missed, false_alarm, confusion, total)


# ----------------------------------------------------------------------------------------------
# Per speaker
# ----------------------------------------------------------------------------------------------
SPEAKER_SCORES = ("mean", "max")


def hypothesis_speaker_scores(
    hypothesis: Iterable[Segment], *, how: str = "mean"
) -> dict[tuple[str, str], float]:
    """Each hypothesis speaker's spoof score, keyed by ``(uri, speaker)``.

    ``how="mean"``: the duration-weighted mean of its segments' scores (robust to a few noisy
    segments; right for a speaker spoofed for the whole call); ``"max"``: the highest segment
    score (finds an impostor spoofed in a few turns only, at the price of more false alarms).
    A segment without a score counts as 1.0 when labelled spoof, 0.0 when bonafide; speakers
    with neither scores nor labels are left out.

    Raises:
        ValueError: ``how`` is not one of ``"mean"``, ``"max"``.
    """
    if how not in SPEAKER_SCORES:
        raise ValueError(f"how must be one of {SPEAKER_SCORES}, got {how!r}")
    sums: dict[tuple[str, str], list[float]] = {}
    for segment in hypothesis:
        if segment.score is not None:
            value = float(segment.score)
        elif segment.label is not None:
            value = 1.0 if segment.label == SPOOF else 0.0
        else:
            continue
        acc = sums.setdefault((segment.uri, segment.speaker), [0.0, 0.0, -np.inf])
        acc[0] += value * segment.duration
        acc[1] += segment.duration
        acc[2] = max(acc[2], value)
    if how == "max":
        return {key: float(top) for key, (_, _, top) in sums.items()}
    return {key: total / weight for key, (total, weight, _) in sums.items() if weight > 0}


@dataclass(frozen=True)
class SpeakerResult:
    """One reference speaker: its label, the hypothesis speaker mapped to it, the verdict.

    ``label`` is spoof when any of the speaker's reference segments is spoof (an impostor is a
    spoofed speaker). ``hypothesis_speaker``, ``score`` and ``verdict`` are ``None`` for a
    speaker the hypothesis missed (no cluster mapped to it); ``correct`` is then False.
    """

    uri: str
    speaker: str
    label: str
    seconds: float
    hypothesis_speaker: str | None
    score: float | None
    verdict: str | None
    correct: bool


def speaker_results(
    reference: Iterable[Segment],
    hypothesis: Iterable[Segment],
    *,
    threshold: float = 0.5,
    collar: float = 0.0,
    speaker_scores: dict[tuple[str, str], float] | None = None,
    speaker_score: str = "mean",
) -> tuple[list[SpeakerResult], int]:
    """Verdicts per reference speaker, and the number of hypothesis speakers mapped to none.

    Each recording's hypothesis speakers are mapped to reference speakers by
    :func:`speaker_mapping`; a reference speaker takes the score of its hypothesis speaker
    (``speaker_scores[(uri, speaker)]`` when given, else :func:`hypothesis_speaker_scores`
    with ``how=speaker_score``) and the verdict ``spoof`` when ``score >= threshold``.

    Raises:
        ValueError: a hypothesis recording with no reference.
        ImportError: pyannote.metrics is not installed.
    """
    results: list[SpeakerResult] = []
    extra = 0
    for uri, ref, hyp in _paired(reference, hypothesis):
        scores = speaker_scores or hypothesis_speaker_scores(hyp, how=speaker_score)
        mapping = speaker_mapping(ref, hyp, collar=collar)
        extra += len({s.speaker for s in hyp} - set(mapping))
        inverse = {ref_name: hyp_name for hyp_name, ref_name in mapping.items()}
        ref_labels = segment_labels(ref)
        speakers: dict[str, list[float]] = {}
        spoofed: set[str] = set()
        for segment, label in zip(ref, ref_labels, strict=True):
            speakers.setdefault(segment.speaker, []).append(segment.duration)
            if label == SPOOF:
                spoofed.add(segment.speaker)
        for name in sorted(speakers):
            label = SPOOF if name in spoofed else BONAFIDE
            hyp_name = inverse.get(name)
            score = scores.get((uri, hyp_name)) if hyp_name is not None else None
            verdict = None if score is None else (SPOOF if score >= threshold else BONAFIDE)
            results.append(
                SpeakerResult(
                    uri=uri,
                    speaker=name,
                    label=label,
                    seconds=float(sum(speakers[name])),
                    hypothesis_speaker=hyp_name,
                    score=score,
                    verdict=verdict,
                    correct=verdict == label,
                )
            )
    return results, extra


# ----------------------------------------------------------------------------------------------
# Everything
# ----------------------------------------------------------------------------------------------
@dataclass
class ConversationReport:
    """Every conversation metric of a set of recordings (see the module docstring).

    ``speaker_accuracy`` is the share of reference speakers whose verdict is right (a missed
    speaker counts as wrong); ``speaker_eer`` the EER over the reference speakers that have a
    score (``None`` unless both bonafide and spoofed speakers have one), with its threshold
    on the spoof-score scale.
    """

    n_recordings: int
    threshold: float
    diarization: DiarizationErrors
    spoof_time: SpoofTimeErrors
    speaker_accuracy: float | None
    speaker_eer: float | None
    speaker_eer_threshold: float | None
    n_reference_speakers: int
    n_spoofed_speakers: int
    n_missed_speakers: int
    n_extra_speakers: int
    speakers: list[SpeakerResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        d, s = self.diarization, self.spoof_time
        accuracy = "n/a" if self.speaker_accuracy is None else f"{self.speaker_accuracy:.3f}"
        eer = "n/a" if self.speaker_eer is None else f"{self.speaker_eer:.3f}"
        return "\n".join(
            [
                f"recordings: {self.n_recordings}; reference speakers: "
                f"{self.n_reference_speakers} ({self.n_spoofed_speakers} spoofed), "
                f"{self.n_missed_speakers} missed, {self.n_extra_speakers} extra in the "
                "hypothesis",
                f"DER {d.der:.4f} (missed {d.missed:.1f} s, false alarm {d.false_alarm:.1f} s, "
                f"confusion {d.confusion:.1f} s of {d.total:.1f} s)",
                f"spoof time error {s.error:.4f} (missed {s.missed:.1f} s, false alarm "
                f"{s.false_alarm:.1f} s, wrong label {s.confusion:.1f} s of {s.total:.1f} s)",
                f"speakers: accuracy {accuracy} at threshold {self.threshold}, EER {eer}",
            ]
        )


def evaluate_conversation(
    reference: Iterable[Segment],
    hypothesis: Iterable[Segment],
    *,
    threshold: float = 0.5,
    collar: float = 0.0,
    skip_overlap: bool = False,
    speaker_scores: dict[tuple[str, str], float] | None = None,
    speaker_score: str = "mean",
) -> ConversationReport:
    """DER, time-weighted spoof error and per-speaker verdicts of a hypothesis.

    Args:
        reference: reference segments with labels (one or more recordings).
        hypothesis: hypothesis segments with spoof scores (higher = spoof) and/or labels.
        threshold: the spoof-score threshold of verdicts and segment labels.
        collar, skip_overlap: for DER and the speaker mapping (pyannote's meaning).
        speaker_scores: a spoof score per hypothesis speaker ``(uri, speaker)``, when the
            system scores speakers itself.
        speaker_score: otherwise, how segment scores make a speaker's score: ``"mean"``
            (duration-weighted) or ``"max"`` (see :func:`hypothesis_speaker_scores`).

    Raises:
        ValueError: a hypothesis recording with no reference, or a hypothesis segment with
            neither label nor score.
        ImportError: pyannote.metrics is not installed.
    """
    from .metrics import eer

    reference, hypothesis = list(reference), list(hypothesis)
    speakers, extra = speaker_results(
        reference,
        hypothesis,
        threshold=threshold,
        collar=collar,
        speaker_scores=speaker_scores,
        speaker_score=speaker_score,
    )
    scored = [r for r in speakers if r.score is not None]
    bona = [-r.score for r in scored if r.label == BONAFIDE]  # eer() wants higher = bonafide
    spoof = [-r.score for r in scored if r.label == SPOOF]
    speaker_eer = eer_threshold = None
    if bona and spoof:
        value, at = eer(bona, spoof, warn_inverted=False)
        speaker_eer, eer_threshold = float(value), float(-at)
    accuracy = sum(r.correct for r in speakers) / len(speakers) if speakers else None
    return ConversationReport(
        n_recordings=len(group_by_uri(reference)),
        threshold=float(threshold),
        diarization=diarization_error_rate(
            reference, hypothesis, collar=collar, skip_overlap=skip_overlap
        ),
        spoof_time=spoof_time_error(reference, hypothesis, threshold=threshold),
        speaker_accuracy=accuracy,
        speaker_eer=speaker_eer,
        speaker_eer_threshold=eer_threshold,
        n_reference_speakers=len(speakers),
        n_spoofed_speakers=sum(r.label == SPOOF for r in speakers),
        n_missed_speakers=sum(r.hypothesis_speaker is None for r in speakers),
        n_extra_speakers=extra,
        speakers=speakers,
    )


def evaluate_conversation_hypotheses(
    reference_rttm: str | os.PathLike,
    hypothesis_rttm: str | os.PathLike,
    *,
    threshold: float = 0.5,
    collar: float = 0.0,
    skip_overlap: bool = False,
    speaker_score: str = "mean",
) -> ConversationReport:
    """:func:`evaluate_conversation` of two RTTM files: the simulator's ``reference.rttm``
    (labels in the ``stype`` field) and a system's hypothesis (spoof scores in the ``conf``
    field and/or labels in ``stype``; see :mod:`amongus.rttm`).

    Raises:
        FileNotFoundError: a file is missing.
        amongus.rttm.RttmError: a malformed line (the message names the file and line).
        ValueError: a reference segment without a label, a hypothesis recording with no
            reference, or a hypothesis segment with neither label nor score.
    """
    reference = read_rttm(reference_rttm)
    unlabelled = [s for s in reference if s.label is None]
    if unlabelled:
        first = unlabelled[0]
        raise ValueError(
            f"{reference_rttm}: {len(unlabelled)} reference segment(s) without a bonafide/spoof "
            f"label in the stype field (first: {first.uri} {first.speaker} at "
            f"{first.onset:.3f} s)"
        )
    return evaluate_conversation(
        reference,
        read_rttm(hypothesis_rttm),
        threshold=threshold,
        collar=collar,
        skip_overlap=skip_overlap,
        speaker_score=speaker_score,
    )
