"""Evaluation: ``python -m amongus.evaluate`` and single-stream (no separator) evaluation.

Two jobs share one report format (:class:`amongus.results.EvaluationReport`):

* **mixtures** -- run :class:`amongus.Pipeline` over a Mixer manifest (``mixtures.jsonl``):
  composition (SS/SB/BB) report, per-stream report on assigned streams, spoof-present EER/AUC,
  EER per spoof system and language;
* **single-stream** (``--single``) -- score single-speaker utterances with the classifier only,
  from an ASVspoof 2019 LA root, a real/fake folder tree or an utterance manifest: AUC, EER, ROC
  and DET, EER per spoof system. Several corpora in one run give the cross-dataset table
  (train on one corpus, test on others);
* **conversations** -- a conversation manifest (``amongus.mix --mode conversation``) is analysed
  call by call (:mod:`amongus.conversation.evaluate`): DER, spoof time error, per-speaker EER
  and spoof-speaker accuracy.

Examples::

    python -m amongus.evaluate runs/mix/mixtures.jsonl --separator sepformer \\
        --classifier path/to/classifier --out runs/eval
    python -m amongus.evaluate --single data/LA data/in_the_wild --split eval \\
        --classifier path/to/classifier --out runs/cross
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._compat import TorchFamilyError
from .audio import AudioError
from .cli_options import (
    add_component_options,
    add_version_options,
    component_specs,
    configure_logging,
    pipeline_from_args,
    version_requested,
)
from .fsutil import check_writable, one_line
from .labels import BONAFIDE, SPOOF
from .locking import FolderLock
from .manifest import Utterance
from .results import EvaluationReport
from .validation import load_utterance_audio

logger = logging.getLogger(__name__)


def _listing(source: Any, split: str | None):
    """``(utterances, problems, description)`` from a path, a CorpusListing or utterances."""
    from .corpora import load_utterances
    from .corpora.base import CorpusListing
    from .manifest import check_unique_ids

    if isinstance(source, str | os.PathLike):
        listing = load_utterances(source, split)  # its readers refuse repeated ids
        return listing.utterances, list(listing.problems), str(source)
    if isinstance(source, CorpusListing):
        utterances, problems, description = (
            source.utterances,
            list(source.problems),
            source.root or "corpus listing",
        )
    else:
        utterances = list(source)
        problems, description = [], f"{len(utterances)} utterances"
    # ids key the score file: refuse a repeat before scoring, not when the report is saved
    check_unique_ids(utterances, where=f"{description}: utterance")
    return utterances, problems, description


def evaluate_utterances(
    classifier: Any,
    utterances_or_source: str | os.PathLike | Iterable[Utterance] | Any,
    *,
    split: str | None = None,
    batch_size: int = 8,
    spoof_threshold: float | None = None,
    device: str = "cpu",
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> EvaluationReport:
    """Score single-speaker utterances with a classifier alone (no separator).

    Args:
        classifier: a :class:`~amongus.classifier.SpoofClassifier`, a folder or hub id, or a
            config dict (as for :class:`amongus.Pipeline`).
        utterances_or_source: an ASVspoof 2019 LA root, a real/fake folder tree, a JSONL
            utterance manifest (:func:`amongus.corpora.load_utterances`), a ``CorpusListing`` or
            a list of :class:`~amongus.manifest.Utterance`.
        split: keep one split (``"train"``, ``"dev"``, ``"eval"``) of a corpus.
        batch_size: utterances per classifier forward.
        spoof_threshold: an utterance is called spoof when its spoof probability is >= this;
            ``None``: the classifier's calibrated threshold, or 0.5 without one
            (:func:`amongus.classifiers.threshold.resolve_spoof_threshold`; the report's
            ``threshold_source`` says which).
        out_dir: also save the report there.
        limit: score only the first ``limit`` utterances.

    Returns:
        An :class:`EvaluationReport` of kind ``"utterances"``: ``metrics["streams"]`` is the
        per-utterance binary report (accuracy, precision, recall, F1, EER, AUC) and
        ``metrics["eer_by_system"]`` / ``["eer_by_language"]`` the breakdowns. Files the corpus
        reader could not use and files refused by the input-validation policy
        (:mod:`amongus.validation`: missing, unreadable, silent, too short, rate or duration
        unlike the utterance record) are in ``report.skipped``, counted by reason code; they
        are never scored.
    """
    from tqdm.auto import tqdm

    from .pipeline import load_classifier

    started = time.perf_counter()
    from .classifiers.threshold import resolve_spoof_threshold

    classifier = load_classifier(classifier, device=device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    spoof_threshold, threshold_source = resolve_spoof_threshold(classifier, spoof_threshold)
    utterances, problems, description = _listing(utterances_or_source, split)
    if limit is not None:
        utterances = utterances[:limit]
    skipped = [
        {"id": Path(path).stem, "path": str(path), "reason": reason} for path, reason in problems
    ]
    rate = int(classifier.sample_rate)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[Utterance, np.ndarray]] = []

    def flush() -> None:
        scores = classifier.score(
            [audio for _, audio in pending], sample_rate=rate, batch_size=batch_size
        )
        for index, (utterance, _) in enumerate(pending):
            probability = float(scores.spoof_probability[index])
            rows.append(
                {
                    "mixture_id": None,
                    "stream": 0,
                    "reference": 0,
                    "utt_id": utterance.utt_id,
                    "true_label": utterance.label,
                    "predicted_label": SPOOF if probability >= spoof_threshold else BONAFIDE,
                    "spoof_probability": probability,
                    "cm_score": float(scores.cm_score[index]),
                    "system": utterance.system,
                    "language": utterance.language,
                    "speaker": utterance.speaker,
                    "si_sdr": None,
                }
            )
        pending.clear()

    for utterance in tqdm(utterances, desc="score", unit="utt", disable=not progress):
        try:
            # the shared policy: silent, too short, unreadable or unlike its record -> skipped
            audio, _ = load_utterance_audio(utterance, sample_rate=rate)
        except AudioError as error:
            skipped.append(
                {"id": utterance.utt_id, "path": utterance.path, "reason": error.problem}
            )
            continue
        pending.append((utterance, audio))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    report = EvaluationReport(
        kind="utterances",
        mixture_rows=[],
        stream_rows=rows,
        skipped=skipped,
        classifier=str(getattr(classifier, "identity", type(classifier).__name__)),
        separator=None,
        rates={"classifier": rate},
        assignment=None,
        spoof_threshold=spoof_threshold,
        threshold_source=threshold_source,
        n_inputs=len(utterances) + len(problems),
        elapsed_seconds=time.perf_counter() - started,
        source=description if split is None else f"{description} ({split})",
    )
    if out_dir is not None:
        report.save(out_dir)
    return report


def cross_dataset_table(reports: dict[str, EvaluationReport]) -> str:
    """One line per evaluated corpus: n, EER, minDCF, actDCF (ASVspoof 5 costs, at each
    report's spoof threshold), AUC, accuracy (the course-style comparison)."""

    def number(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
        return "-" if value is None else f"{scale * value:.{digits}f}"

    header = ("corpus", "n", "EER %", "minDCF", "actDCF", "AUC", "acc")
    lines = ["{:<40} {:>6} {:>7} {:>7} {:>7} {:>6} {:>6}".format(*header)]
    for name, report in reports.items():
        metrics = report.metrics["streams"]
        if metrics is None:
            lines.append(f"{name:<40} {0:>6} {'-':>7} {'-':>7} {'-':>7} {'-':>6} {'-':>6}")
            continue
        lines.append(
            f"{name:<40} {metrics['n']:>6} {number(metrics['eer'], 100, 2):>7} "
            f"{number(metrics.get('min_dcf')):>7} {number(metrics.get('act_dcf')):>7} "
            f"{number(metrics['auc']):>6} {metrics['accuracy']:>6.3f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.evaluate",
        description=(
            "Evaluate a separator + spoof classifier on labelled mixtures (a Mixer manifest), "
            "or, with --single, a classifier alone on single-speaker corpora. Writes "
            "report.json, CSV rows, an ASVspoof score file and PNG plots, and prints a report."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="mixtures.jsonl or the Mixer's output folder; with --single: ASVspoof roots, "
        "real/fake folders or utterance manifests (one report each)",
    )
    parser.add_argument(
        "--single", action="store_true", help="single-stream evaluation (no separator)"
    )
    parser.add_argument("--split", default=None, help="--single: corpus split (train/dev/eval)")
    parser.add_argument("--preset", default="default", help="amongus.defaults preset for defaults")
    parser.add_argument(
        "--assignment",
        choices=("signal", "labels", "none"),
        default="signal",
        help="signal: best -SI-SDR permutation (honest); labels: the study's method "
        "(optimistic); none: mixture-level outputs only",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="mixtures (or utterances) per batch"
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        help="separate in chunks of this length (default: the separator's, 10 s for model "
        "separators; inf: whole)",
    )
    parser.add_argument(
        "--spoof-threshold",
        "--threshold",
        dest="threshold",
        type=_spoof_threshold_arg,
        default=None,
        metavar="FLOAT|threshold.json",
        help="spoof probability threshold (default: the classifier's calibrated threshold, "
        "0.5 for a classifier without one); for conversations also the threshold.json of "
        "python -m amongus.conversation.calibrate",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1... (default: cpu; under accelerate launch, the process's device)",
    )
    parser.add_argument(
        "--quantize",
        action="store_true",
        help="int8 dynamic quantization of the classifier's linear layers (CPU only; faster "
        "for transformer classifiers, scores change slightly; off by default)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("no", "bf16", "fp16"),
        default="no",
        help="run the models under torch.autocast (mixtures; bf16 on CPU or CUDA, fp16 on CUDA "
        "only; scores change slightly; for GPUs)",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N items only")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="output folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_component_options(parser)
    add_version_options(parser)
    return parser


def _spoof_threshold_arg(text: str) -> float | str:
    from .conversation.calibrate import spoof_threshold_arg

    return spoof_threshold_arg(text)


def _single(args: argparse.Namespace) -> int:
    from .pipeline import load_classifier

    if isinstance(args.threshold, str):
        raise SystemExit(
            f"--spoof-threshold {args.threshold}: a conversation speaker threshold applies to "
            "conversation manifests, not to single utterances; give a number"
        )

    spec = component_specs(args, preset=args.preset, kinds=("classifier",))["classifier"]
    if spec is None:
        from .defaults import default_components

        spec = default_components(args.preset)["classifier"]
    classifier = load_classifier(spec, device=args.device)
    if args.quantize:
        from .quantization import quantize_classifier

        quantize_classifier(classifier)
    reports: dict[str, EvaluationReport] = {}
    for index, source in enumerate(args.inputs):
        name = Path(source).name or f"corpus{index}"
        out_dir = args.out if len(args.inputs) == 1 else args.out / f"{index:02d}_{name}"
        report = evaluate_utterances(
            classifier,
            source,
            split=args.split,
            batch_size=args.batch_size,
            spoof_threshold=args.threshold,
            progress=not args.quiet,
            limit=args.limit,
        )
        report.save(out_dir, plots=not args.no_plots)
        print(report)
        print(f"report written to {out_dir}\n")
        reports[source] = report
    if len(reports) > 1:
        print(cross_dataset_table(reports))
    return 0


def _mixtures(args: argparse.Namespace) -> int:
    if len(args.inputs) != 1:
        raise SystemExit("give one mixtures.jsonl (or Mixer output folder) per run")
    from .conversation.evaluate import is_conversation_manifest, run_from_args

    # simulated calls (amongus.mix --mode conversation)
    if is_conversation_manifest(args.inputs[0]):
        return run_from_args(args)
    pipeline = pipeline_from_args(
        args,
        assignment=None if args.assignment == "none" else args.assignment,
        chunk_seconds=args.chunk_seconds,
        quantize=args.quantize,
        mixed_precision=args.mixed_precision,
    )
    state = _distributed_state(args.device)
    if state is None:
        report = pipeline.evaluate(args.inputs[0], progress=not args.quiet, limit=args.limit)
    else:
        report = _sharded_evaluation(pipeline, args, state)
        if report is None:
            return 0
    report.save(args.out, plots=not args.no_plots)
    print(report)
    print(f"report written to {args.out}")
    return 0


def _distributed_state(device: str | None = None):
    """accelerate's ``PartialState`` when launched on several processes (``accelerate launch
    --multi_gpu --num_processes N``, torchrun), else ``None``: a plain run does not import
    accelerate. On a machine without CUDA, or with ``--device cpu``, the processes talk over
    gloo (accelerate's MULTI_CPU), which it only sets up when asked for the CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    cpu = not torch.cuda.is_available() or str(device or "").startswith("cpu")
    return PartialState(cpu=cpu)


def _sharded_evaluation(pipeline, args: argparse.Namespace, state) -> EvaluationReport | None:
    """Each process evaluates its contiguous block of the manifest; the main process gathers
    the rows (in block order, so in manifest order) and returns the one report, with metrics
    computed once over all rows; the other processes return ``None``."""
    from accelerate.utils import gather_object

    from .sharding import merge_reports

    started = time.perf_counter()
    part = pipeline.evaluate(
        args.inputs[0],
        progress=not args.quiet and state.is_main_process,
        limit=args.limit,
        shard=(state.process_index, state.num_processes),
    )
    parts = gather_object([part])  # one report per process, in process order
    if not state.is_main_process:
        return None
    return merge_reports(parts, elapsed_seconds=time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    if version_requested(argv):
        return 0
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    state = _distributed_state(args.device)
    if args.device is None:
        args.device = "cpu" if state is None else str(state.device)
    if state is not None and args.single:
        print(
            "error: --single is not sharded; run it with python, not accelerate launch",
            file=sys.stderr,
        )
        return 2
    # under accelerate launch the main process owns the output folder; the others only compute
    owner = state is None or state.is_main_process
    try:
        # a full disk or read-only --out stops here, before any model is loaded or scored;
        # one run per output folder (FolderLock; kill -9 releases it)
        with FolderLock(args.out) if owner else contextlib.nullcontext():
            if owner:
                check_writable(args.out)
            status = _single(args) if args.single else _mixtures(args)
    except (FileNotFoundError, ValueError, OSError, TorchFamilyError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    if state is not None:
        # every process leaves together and tears its process group down: a process that
        # exits while the group is alive can abort in gloo's destructor (SIGABRT, "terminate
        # called without an active exception"), failing the launch after a complete run
        state.wait_for_everyone()
        state.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
