"""A speaker-level spoof threshold for conversation verdicts, calibrated on dev calls.

A classifier's stored threshold (:mod:`amongus.classifiers.threshold`) is calibrated on single,
clean utterances. A speaker of a long call is scored on *separated* streams, which carry
separation artefacts and leakage from the other voices; their spoof probabilities sit much
higher (0.65-1.0 for AASIST behind the shipped ConvTasNet, against a single-utterance threshold
of 0.083), so that threshold calls every speaker spoof. The cut for conversation verdicts must
be calibrated on conversations analysed by the same separator, classifier and settings.

``python -m amongus.conversation.calibrate DEV_EVAL_DIR --out threshold.json`` reads the
``report.json`` that ``python -m amongus.evaluate dev_calls/conversations.jsonl --out
DEV_EVAL_DIR`` wrote (``metrics.speakers``: one row per reference speaker with its true label
and the score of the hypothesis speaker mapped to it) and picks the speaker-level threshold at
the dev-set EER point, with :func:`amongus.classifiers.threshold.eer_threshold` (the official
ASVspoof EER algorithm, moved to the middle of the gap to the next score). Speakers the
analysis missed (no score) are counted and left out.

The file (``"kind": "conversation-speaker-threshold"``)::

    {"kind": "conversation-speaker-threshold",
     "spoof_threshold": 0.91,          # a speaker is spoof when its score >= this
     "method": "dev-set EER point", "dev_eer": 0.1, "n_bonafide": 30, "n_spoof": 10,
     "n_missed": 1, "speaker_score": "mean",
     "separator": "...", "classifier": "...",   # the components it is valid for
     "data": "/path/to/DEV_EVAL_DIR/report.json (conversations ...)",
     "command": "python -m amongus.conversation.calibrate ...",
     "source": "dev-set EER point of 40 speakers in ..."}

It is used with ``--spoof-threshold threshold.json`` (``python -m amongus.conversation``,
``python -m amongus.evaluate`` on conversations) or ``Pipeline(spoof_threshold="threshold.json")``
(:func:`load_spoof_threshold`); reports then carry its ``source`` as ``threshold_source``. It is
a file of its own, never written into a model folder: it belongs to a separator + classifier
pair and a kind of call, not to the classifier.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..labels import BONAFIDE, SPOOF

logger = logging.getLogger(__name__)

__all__ = [
    "KIND",
    "SpeakerThreshold",
    "calibrate_speaker_threshold",
    "load_spoof_threshold",
    "read_speaker_threshold",
    "spoof_threshold_arg",
    "warn_component_mismatch",
]

#: The ``kind`` of a threshold file.
KIND = "conversation-speaker-threshold"
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class SpeakerThreshold:
    """A calibrated speaker-level threshold on the spoof score (higher = spoof).

    Attributes:
        spoof_threshold: a speaker is spoof when its score (the duration-weighted mean of its
            segments' spoof probabilities) is ``>=`` this; in ``[0, 1]``.
        source: one line saying how and on what it was computed (goes into reports as
            ``threshold_source``).
        method: ``"dev-set EER point"``.
        dev_eer: the speaker-level EER on the dev calls (fraction).
        n_bonafide, n_spoof: scored dev speakers of each class; n_missed: dev speakers the
            analysis found no cluster for (left out).
        speaker_score: how speaker scores were made (``"mean"``, as the verdicts are).
        separator, classifier: identities of the components it was calibrated with.
        data: the dev report, in words.
        command: the command that computed it.
    """

    spoof_threshold: float
    source: str
    method: str = "dev-set EER point"
    dev_eer: float | None = None
    n_bonafide: int | None = None
    n_spoof: int | None = None
    n_missed: int | None = None
    speaker_score: str = "mean"
    separator: str | None = None
    classifier: str | None = None
    data: str = ""
    command: str | None = None

    def __post_init__(self):
        value = self.spoof_threshold
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"spoof_threshold must be a number, got {value!r}")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"spoof_threshold must be in [0, 1], got {value!r}")
        if not self.source:
            raise ValueError("a speaker threshold needs a source")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, **{item.name: getattr(self, item.name) for item in fields(self)}}

    @classmethod
    def from_dict(cls, data: Any) -> SpeakerThreshold:
        """Read a threshold file's object.

        Raises:
            ValueError: not a JSON object, another ``kind``, or no valid ``spoof_threshold``
                / ``source``.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != KIND:
            raise ValueError(
                f"not a conversation speaker threshold (kind {data.get('kind')!r}, expected "
                f"{KIND!r}; made by python -m amongus.conversation.calibrate)"
            )
        if "spoof_threshold" not in data:
            raise ValueError("no 'spoof_threshold' entry")
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def describe(self) -> str:
        """The ``threshold_source`` line of reports using it."""
        return (
            f"calibrated on dev calls: {self.source} (speaker score >= {self.spoof_threshold:.4g})"
        )


def _report_path(dev: str | os.PathLike) -> Path:
    path = Path(dev)
    if path.is_dir():
        path = path / REPORT_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no evaluation report (give the --out folder of `python -m amongus.evaluate "
            "dev_calls/conversations.jsonl`)"
        )
    return path


def _read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the report ({error})") from error
    if not isinstance(report, dict) or report.get("kind") != "conversations":
        raise ValueError(
            f'{path}: not a conversation evaluation report (no "kind": "conversations"; '
            "made by python -m amongus.evaluate on a conversations.jsonl)"
        )
    if not isinstance(report.get("metrics"), dict):
        raise ValueError(f"{path}: the report has no metrics (no call could be analysed)")
    return report


def speaker_scores(
    report: dict[str, Any], path: str | os.PathLike = REPORT_NAME
) -> tuple[list[float], list[str], int]:
    """``(scores, labels, n_missed)`` of the reference speakers of a conversation report.

    Raises:
        ValueError: a malformed speaker row (naming ``path``), or a NaN/infinite score.
    """
    scores: list[float] = []
    labels: list[str] = []
    missed = 0
    rows = report["metrics"].get("speakers")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: metrics.speakers is not a list")
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("label") not in (BONAFIDE, SPOOF):
            raise ValueError(f"{path}: metrics.speakers[{index}] has no bonafide/spoof label")
        score = row.get("score")
        if score is None:
            missed += 1
            continue
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"{path}: metrics.speakers[{index}] score {score!r} is not a number")
        if not math.isfinite(score):
            raise ValueError(f"{path}: metrics.speakers[{index}] score {score!r} is not finite")
        scores.append(float(score))
        labels.append(row["label"])
    return scores, labels, missed


def calibrate_speaker_threshold(
    dev: str | os.PathLike, *, command: str | None = None
) -> SpeakerThreshold:
    """The dev-set EER point of the speaker scores of a conversation evaluation.

    Args:
        dev: the ``--out`` folder of ``python -m amongus.evaluate dev_calls/conversations.jsonl``
            (or its ``report.json``). The dev calls must not be the calls you test on.
        command: recorded in the result.

    Returns:
        A :class:`SpeakerThreshold` (spoof when speaker score ``>=`` it).

    Raises:
        FileNotFoundError: no report.
        ValueError: not a conversation report, no metrics, a malformed speaker row, speakers
            of one class only (the EER point needs bonafide and spoofed speakers), or a report
            whose speaker scores are not the duration-weighted mean the verdicts use.
    """
    from ..classifiers.threshold import eer_threshold

    path = _report_path(dev)
    report = _read_report(path)
    settings = report.get("settings") or {}
    how = settings.get("speaker_score", "mean")
    if how != "mean":
        raise ValueError(
            f"{path}: speaker scores made with speaker_score={how!r}; conversation verdicts use "
            "the duration-weighted mean: evaluate the dev calls with the default"
        )
    scores, labels, missed = speaker_scores(report, path)
    n_spoof = labels.count(SPOOF)
    n_bonafide = len(labels) - n_spoof
    if n_bonafide == 0 or n_spoof == 0:
        raise ValueError(
            f"{path}: calibration needs bonafide and spoofed speakers with a score, got "
            f"{n_bonafide} bonafide and {n_spoof} spoofed ({missed} missed): make dev calls "
            "with --spoofed-speakers below --speakers and at least one spoofed speaker"
        )
    # eer_threshold works on cm_score (higher = bonafide): negate the spoof scores.
    cut, dev_eer = eer_threshold([-s for s in scores], labels)
    threshold = min(max(-cut, 0.0), 1.0)
    calls = report.get("calls") or []
    data = f"{path} ({len(calls)} calls from {settings.get('source', 'an unknown manifest')})"
    source = (
        f"dev-set EER point of {len(scores)} speakers ({n_bonafide} bonafide, {n_spoof} spoofed) "
        f"in {path}: EER {dev_eer:.3f}"
    )
    if missed:
        logger.warning("%s: %d dev speaker(s) without a score (missed) left out", path, missed)
    return SpeakerThreshold(
        spoof_threshold=float(threshold),
        source=source,
        dev_eer=float(dev_eer),
        n_bonafide=n_bonafide,
        n_spoof=n_spoof,
        n_missed=missed,
        speaker_score="mean",
        separator=settings.get("separator"),
        classifier=settings.get("classifier"),
        data=data,
        command=command,
    )


def read_speaker_threshold(path: str | os.PathLike) -> SpeakerThreshold:
    """A threshold file written by :func:`write_speaker_threshold`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable or invalid (the message names the file).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such threshold file")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        return SpeakerThreshold.from_dict(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid speaker threshold file ({error})") from error


def write_speaker_threshold(threshold: SpeakerThreshold, path: str | os.PathLike) -> Path:
    """Write ``threshold`` as JSON (atomically)."""
    from ..fsutil import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(threshold.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def load_spoof_threshold(spec: Any) -> tuple[float | None, str | None]:
    """``(threshold, source)`` of a ``spoof_threshold=`` value.

    A number (or ``None``) is returned with source ``None`` (the caller's usual rule names
    it); a :class:`SpeakerThreshold`, or the path of a threshold file, gives its value and
    :meth:`SpeakerThreshold.describe`.

    Raises:
        FileNotFoundError, ValueError: a missing or invalid threshold file.
        TypeError: anything else.
    """
    if spec is None or (isinstance(spec, int | float) and not isinstance(spec, bool)):
        return spec, None
    if isinstance(spec, str | os.PathLike):
        spec = read_speaker_threshold(spec)
    if isinstance(spec, SpeakerThreshold):
        return spec.spoof_threshold, spec.describe()
    raise TypeError(
        "spoof_threshold must be a number, a SpeakerThreshold or the path of a threshold file, "
        f"got {type(spec).__name__}"
    )


def warn_component_mismatch(spec: Any, separator: str, classifier: str) -> None:
    """Warn when a threshold file was calibrated with other components than these."""
    if isinstance(spec, str | os.PathLike):
        spec = read_speaker_threshold(spec)
    if not isinstance(spec, SpeakerThreshold):
        return
    for kind, stored, used in (
        ("separator", spec.separator, separator),
        ("classifier", spec.classifier, classifier),
    ):
        if stored is not None and stored != used:
            logger.warning(
                "the speaker threshold was calibrated with the %s %s, this run uses %s: "
                "recalibrate on dev calls analysed with it",
                kind,
                stored,
                used,
            )


def spoof_threshold_arg(text: str) -> float | str:
    """argparse ``type`` of ``--spoof-threshold``: a number in ``[0, 1]``, or the path of a
    threshold file (returned as a string, read when the pipeline is built)."""
    try:
        value = float(text)
    except ValueError:
        if not Path(text).expanduser().is_file():
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a number nor an existing threshold file"
            ) from None
        return text
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"a spoof threshold must be in [0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.conversation.calibrate",
        description="Pick the speaker-level spoof threshold of conversation verdicts at the "
        "dev-set EER point of an evaluation on dev calls (python -m amongus.evaluate "
        "dev_calls/conversations.jsonl --out DEV_EVAL_DIR). Use it with --spoof-threshold.",
    )
    parser.add_argument("dev", type=Path, help="DEV_EVAL_DIR (or its report.json)")
    parser.add_argument(
        "--out", type=Path, default=Path("threshold.json"), help="threshold file to write"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli_options import configure_logging
    from ..fsutil import one_line

    args = build_parser().parse_args(argv)
    configure_logging()
    words = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "amongus.conversation.calibrate", *words])
    try:
        threshold = calibrate_speaker_threshold(args.dev, command=command)
        written = write_speaker_threshold(threshold, args.out)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(
        f"speaker threshold {threshold.spoof_threshold:.4f} (spoof when score >=), dev EER "
        f"{threshold.dev_eer:.3f} on {threshold.n_bonafide} bonafide + {threshold.n_spoof} "
        f"spoofed speakers ({threshold.n_missed} missed)\nwritten to {written}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
