"""Command line of the minispoof recipe: forwards its options to :func:`build_corpus`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...cli_options import configure_logging
from .plan import SIZES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.minispoof",
        description="Build an ASVspoof 2019 LA layout corpus from offline real and spoofed speech.",
    )
    parser.add_argument("--out", type=Path, required=True, help="corpus root to create")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--workers", type=int, default=None, help="processes (default 2)")
    parser.add_argument(
        "--shared-real",
        default="auto",
        help="folder of extra real/spoof audio with manifest.csv, 'auto' (../shared/data/real "
        "when it exists) or 'none'; never used by --size demo",
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the trivial-feature shortcut check"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    from .build import build_corpus, corpus_summary
    from .shortcut_check import shortcut_check

    result = build_corpus(
        args.out,
        seed=args.seed,
        size=args.size,
        workers=args.workers,
        shared_real=args.shared_real,
        progress=not args.quiet,
    )
    print(f"minispoof {args.size} (seed {args.seed}) -> {result.root} in {result.seconds:.0f} s")
    print(corpus_summary(result.utterances))
    for title, counter in (("skipped while planning", result.skipped), ("failed", result.failures)):
        if counter:
            print(f"{title}: {sum(counter.values())}")
            for reason, count in sorted(counter.items()):
                print(f"  {count} x {reason}")
    if args.no_check:
        return 0
    report = shortcut_check(result.root, progress=not args.quiet)
    print(report.summary())
    return 0 if report.passed else 1
