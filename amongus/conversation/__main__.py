"""``python -m amongus.conversation RECORDING... --out DIR``: speakers, verdicts and a spoof
timeline for each long recording.

Writes ``<id>.json``, ``<id>.rttm`` and ``<id>.png`` per recording into ``--out`` and prints
each recording's speakers and verdicts. Exit status: 0 when every recording was analysed, 2 for
a usage error or when a recording was refused (the message names the file and the problem; the
other recordings are still analysed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli_options import (
    add_component_options,
    add_version_options,
    configure_logging,
    pipeline_from_args,
    version_requested,
)
from .calibrate import spoof_threshold_arg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.conversation",
        description="Find the speakers of long multi-party recordings, score each one's speech "
        "with the spoof classifier and say who is a deepfake, and when. Writes <id>.json, "
        "<id>.rttm and <id>.png per recording.",
    )
    parser.add_argument("recordings", nargs="+", type=Path, help="audio files (any rate)")
    parser.add_argument("--out", type=Path, default=Path("runs/conversation"), help="folder")
    parser.add_argument(
        "--speakers", type=int, default=None, metavar="N", help="number of speakers, if known"
    )
    parser.add_argument(
        "--enroll",
        action="append",
        default=[],
        metavar="NAME=CLIP",
        help="a known participant's clean clip (repeat per participant, or per clip); found "
        "speakers are named after them",
    )
    parser.add_argument("--embedder", default=None, help="speaker embedder (default ecapa-tiny)")
    parser.add_argument("--window", type=float, default=6.0, help="window length (s)")
    parser.add_argument("--hop", type=float, default=3.0, help="window hop (s)")
    parser.add_argument("--preset", default="default", help="amongus.defaults preset")
    parser.add_argument("--batch-size", type=int, default=4, help="windows separated together")
    parser.add_argument(
        "--spoof-threshold",
        "--threshold",
        dest="threshold",
        type=spoof_threshold_arg,
        default=None,
        metavar="FLOAT|threshold.json",
        help="speaker spoof threshold: a number in [0, 1] or the threshold.json of python -m "
        "amongus.conversation.calibrate (default: the classifier's single-utterance "
        "threshold, which does not transfer to separated streams; see docs/conversations.md)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG timelines")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_component_options(parser)
    add_version_options(parser)
    return parser


def _enrollment(items: Sequence[str]) -> dict[str, list[str]] | None:
    if not items:
        return None
    clips: dict[str, list[str]] = {}
    for item in items:
        name, sep, clip = item.partition("=")
        if not sep or not name or not clip:
            raise ValueError(f"--enroll expects NAME=CLIP, got {item!r}")
        clips.setdefault(name, []).append(clip)
    return clips


def main(argv: Sequence[str] | None = None) -> int:
    if version_requested(argv):
        return 0
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    from ..audio import AudioError
    from ..fsutil import check_writable, one_line

    try:
        from ..speakers import enroll, load_speaker_embedder

        check_writable(args.out)
        pipeline = pipeline_from_args(args, assignment=None)
        embedder = load_speaker_embedder(
            args.embedder, device=args.device, trust_checkpoint=args.trust_checkpoint
        )
        clips = _enrollment(args.enroll)
        enrollment = None if clips is None else enroll(embedder, clips)
    except (FileNotFoundError, ValueError, OSError, ImportError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    status = 0
    for recording in args.recordings:
        try:
            result = pipeline.analyze(
                recording,
                n_speakers=args.speakers,
                enrollment=enrollment,
                embedder=embedder,
                window_seconds=args.window,
                hop_seconds=args.hop,
                progress=not args.quiet,
            )
            written = result.save(args.out, plot=not args.no_plot)
        except (AudioError, ValueError, OSError) as error:
            message = one_line(error)
            if str(recording) not in message:
                message = f"{recording}: {message}"
            print(f"error: {message}", file=sys.stderr)
            status = 2
            continue
        print(result)
        print(f"  written: {', '.join(str(p) for p in written.values())}")
    return status


if __name__ == "__main__":
    sys.exit(main())
