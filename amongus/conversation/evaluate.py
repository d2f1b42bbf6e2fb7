"""Evaluation on simulated calls: ``python -m amongus.evaluate runs/calls/conversations.jsonl``.

Each :class:`amongus.manifest.Conversation` of a conversation manifest (the simulator's
``conversations.jsonl``, or its folder) is analysed by :func:`analyze_recording`; the
hypotheses are compared with the references (the records' RTTM files) by
:func:`amongus.metrics_conversation.evaluate_conversation`: DER (pyannote.metrics), the
time-weighted spoof detection error, per-speaker EER and spoof-speaker detection accuracy, at
the pipeline's spoof threshold.

Written to ``out_dir``::

    report.json        every metric, per reference speaker, per call, skipped calls, settings
    hypothesis.rttm    every call's hypothesis (spoof score in conf, verdict in stype)
    reference.rttm     the references of the calls that were analysed
    calls/<id>.json    per call: ConversationResult (and <id>.rttm, <id>.png)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..audio import AudioError
from ..manifest import CONVERSATION_KIND, Conversation, iter_jsonl
from ..validation import check_header

logger = logging.getLogger(__name__)

__all__ = [
    "CONVERSATIONS_NAME",
    "ConversationEvaluation",
    "evaluate_conversations",
    "is_conversation_manifest",
]

CONVERSATIONS_NAME = "conversations.jsonl"


def _manifest(source: str | os.PathLike) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / CONVERSATIONS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such conversation manifest")
    return path


def is_conversation_manifest(source: str | os.PathLike) -> bool:
    """Whether ``source`` is a conversation manifest (its first record has ``"kind":
    "conversation"``) or a folder holding ``conversations.jsonl`` and no ``mixtures.jsonl``."""
    path = Path(source)
    if path.is_dir():
        return (path / CONVERSATIONS_NAME).is_file() and not (path / "mixtures.jsonl").exists()
    if not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for line in handle:
                if line.strip():
                    return json.loads(line).get("kind") == CONVERSATION_KIND
    except (OSError, ValueError, AttributeError):
        return False
    return False


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def _references(record: Conversation, base: Path):
    """The speakers' dry tracks ``[S, T]`` (for the oracle separator)."""
    import numpy as np

    from ..mix.conversation_render import render_speaker

    turns = [
        turn
        if Path(turn.path).is_absolute() or Path(turn.path).exists()
        else dataclasses.replace(turn, path=str(base / turn.path))
        for turn in record.turns
    ]
    resolved = dataclasses.replace(record, turns=turns)
    return np.stack([render_speaker(resolved, speaker.name) for speaker in record.speakers])


@dataclasses.dataclass
class ConversationEvaluation:
    """The outcome of :func:`evaluate_conversations`.

    Attributes:
        metrics: :class:`amongus.metrics_conversation.ConversationReport` (``None`` when no
            call could be analysed).
        calls: one row per analysed call (id, duration, speakers found, seconds, RTF).
        skipped: ``{"id", "path", "reason"}`` per call that was not analysed.
        settings: components, threshold and its source, analysis settings.
    """

    metrics: Any
    calls: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    settings: dict[str, Any]
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "conversations",
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
            "calls": self.calls,
            "skipped": self.skipped,
            "settings": self.settings,
            "elapsed_seconds": self.elapsed_seconds,
        }

    def __str__(self) -> str:
        lines = [f"conversations: {len(self.calls)} analysed, {len(self.skipped)} skipped"]
        for row in self.skipped:
            lines.append(f"  skipped {row['id']}: {row['reason']}")
        if self.metrics is not None:
            lines.append(str(self.metrics))
        return "\n".join(lines)


def evaluate_conversations(
    pipeline,
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    embedder: Any = None,
    known_speakers: bool = False,
    limit: int | None = None,
    collar: float = 0.0,
    speaker_score: str = "mean",
    plots: bool = True,
    progress: bool = True,
    **options: Any,
) -> ConversationEvaluation:
    """Analyse every call of a conversation manifest and score the hypotheses.

    Args:
        pipeline: an :class:`amongus.Pipeline`.
        manifest: ``conversations.jsonl`` or the simulator's output folder.
        out_dir: where the files listed in the module docstring go (``None``: nowhere).
        embedder: the speaker embedder (default :func:`amongus.speakers.load_speaker_embedder`,
            loaded once).
        known_speakers: give each call's true number of speakers to the clustering
            (``n_speakers``); otherwise it is estimated.
        limit: the first ``limit`` calls only.
        collar, speaker_score: as in :func:`amongus.metrics_conversation.evaluate_conversation`.
        plots: write a timeline PNG per call.
        progress: progress bars.
        options: more :func:`analyze_recording` keywords (``settings``...).

    Returns:
        A :class:`ConversationEvaluation`. Calls refused by the validation policy (missing,
        unreadable, silent... file), malformed lines and calls whose reference RTTM is missing
        or unreadable are skipped and counted with their reason, never scored.

    Raises:
        FileNotFoundError: no manifest.
        ImportError: pyannote.metrics is missing (the metrics need it).
    """
    from tqdm.auto import tqdm

    from ..metrics_conversation import evaluate_conversation
    from ..rttm import RttmError, read_rttm, write_rttm
    from .analyze import _load_embedder, analyze_recording

    started = time.perf_counter()
    path = _manifest(manifest)
    base = path.parent
    embedder = _load_embedder(embedder, pipeline.device)
    out = None if out_dir is None else Path(out_dir)
    entries = list(iter_jsonl(path, Conversation))
    if limit is not None:
        entries = entries[:limit]
    references, hypotheses, calls, skipped = [], [], [], []
    for line, record, problem in tqdm(entries, desc="calls", unit="call", disable=not progress):
        if problem is not None:
            skipped.append({"id": f"{path.name}:{line}", "path": str(path), "reason": problem})
            continue
        audio = _resolve(record.path, base)
        try:
            check_header(audio)  # a missing or broken file is named before its reference
            reference = [
                s for s in read_rttm(_resolve(record.rttm, base)) if s.uri == record.conversation_id
            ]
            if not reference:
                raise ValueError(f"{record.rttm}: no segment of {record.conversation_id}")
            result = analyze_recording(
                pipeline,
                audio,
                embedder=embedder,
                recording_id=record.conversation_id,
                n_speakers=len(record.speakers) if known_speakers else None,
                references=_references(record, base) if pipeline.needs_references else None,
                progress=False,
                **options,
            )
        except (AudioError, RttmError, ValueError, OSError, KeyError) as error:
            reason = error.problem if isinstance(error, AudioError) else str(error)
            logger.warning("skipped %s: %s", record.conversation_id, reason)
            skipped.append({"id": record.conversation_id, "path": str(audio), "reason": reason})
            continue
        if out is not None:
            result.save(out / "calls", plot=plots)
        references.extend(reference)
        hypotheses.extend(result.to_segments())
        calls.append(
            {
                "id": record.conversation_id,
                "path": str(audio),
                "duration": result.duration,
                "true_speakers": len(record.speakers),
                "found_speakers": len(result.speakers),
                "true_label": record.label,
                "spoofed_found": [s.speaker for s in result.spoofed_speakers],
                "elapsed_seconds": result.elapsed_seconds,
                "real_time_factor": result.elapsed_seconds / result.duration,
            }
        )
    metrics = None
    if references:
        metrics = evaluate_conversation(
            references,
            hypotheses,
            threshold=pipeline.spoof_threshold,
            collar=collar,
            speaker_score=speaker_score,
        )
    evaluation = ConversationEvaluation(
        metrics=metrics,
        calls=calls,
        skipped=skipped,
        settings={
            "source": str(path),
            "separator": pipeline.separator_identity,
            "classifier": pipeline.classifier_identity,
            "embedder": str(getattr(embedder, "identity", type(embedder).__name__)),
            "threshold": pipeline.spoof_threshold,
            "threshold_source": pipeline.threshold_source,
            "known_speakers": known_speakers,
            "collar": collar,
            "speaker_score": speaker_score,
        },
        elapsed_seconds=time.perf_counter() - started,
    )
    if out is not None:
        from ..fsutil import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        write_rttm(out / "hypothesis.rttm", hypotheses)
        write_rttm(out / "reference.rttm", references)
        text = json.dumps(evaluation.to_dict(), indent=2, allow_nan=False, default=str)
        atomic_write_text(out / "report.json", text + "\n")
    return evaluation


def run_from_args(args) -> int:
    """``python -m amongus.evaluate`` on a conversation manifest (its parsed arguments)."""
    from ..cli_options import pipeline_from_args

    pipeline = pipeline_from_args(
        args, assignment=None, chunk_seconds=args.chunk_seconds, quantize=args.quantize
    )
    evaluation = evaluate_conversations(
        pipeline,
        args.inputs[0],
        args.out,
        known_speakers=bool(getattr(args, "known_speakers", False)),
        limit=args.limit,
        plots=not args.no_plots,
        progress=not args.quiet,
    )
    print(evaluation)
    print(f"report written to {args.out}")
    return 0
