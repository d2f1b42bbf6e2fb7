"""The main job on the embedded default, offline: ``python -m amongus``.

Mixes the bundled demo set, runs the default pipeline (shipped separator and classifier) over the
mixtures and prints and writes the multiclass + per-stream report. ``--separator``,
``--classifier`` and the checkpoint-loading flags (:mod:`amongus.cli_options`) swap components;
``--version --verbose`` prints the environment report for bug reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._compat import TorchFamilyError
from .cli_options import (
    add_component_options,
    add_version_options,
    component_specs,
    configure_logging,
    version_requested,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus",
        description=(
            "Main job on the bundled demo set, offline: mix the demo utterances, separate, "
            "classify each stream, assign streams to speakers, and write the report."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("runs/default"), help="output folder")
    parser.add_argument("--split", default="eval", help="demo split to mix (train, dev, eval)")
    parser.add_argument("--n-mixtures", type=int, default=24, help="number of mixtures to make")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the mixer")
    parser.add_argument(
        "--preset",
        default="default",
        help="pipeline preset (see amongus.defaults: default, wavlm-finetuned, wavlm-clean, "
        "sepformer-8k, oracle, ...)",
    )
    parser.add_argument("--workers", type=int, default=None, help="mixer worker processes")
    add_component_options(parser, default="the preset's")
    add_version_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    if version_requested(argv):
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return _run(parser, args)
    except (ValueError, OSError, TorchFamilyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .corpora.demo import demo_utterances
    from .defaults import available_presets
    from .mix import Mixer, MixerConfig
    from .pipeline import Pipeline

    if args.preset not in available_presets():
        parser.error(f"unknown preset {args.preset!r}; available: {', '.join(available_presets())}")
    # the models load before anything is mixed, so a bad component fails at once
    components = {k: v for k, v in component_specs(args, preset=args.preset).items() if v}
    print(f"[1/3] loading the pipeline (preset {args.preset!r})")
    pipeline = Pipeline.from_preset(args.preset, **components)
    args.out.mkdir(parents=True, exist_ok=True)
    utterances = demo_utterances(args.split)
    print(
        f"[2/3] mixing {args.n_mixtures} mixtures from {len(utterances)} demo utterances "
        f"({args.split} split)"
    )
    mix_dir = args.out / "mixtures"
    summary = Mixer(MixerConfig()).run(
        utterances,
        mix_dir,
        n_mixtures=args.n_mixtures,
        seed=args.seed,
        workers=args.workers,
        split=args.split,
        overwrite=True,  # the job's own mixtures of the demo set: another seed remakes them
    )
    print(summary)
    print(f"[3/3] evaluating {mix_dir / 'mixtures.jsonl'}")
    report = pipeline.evaluate(mix_dir / "mixtures.jsonl")
    report_dir = args.out / "report"
    report.save(report_dir)
    print(report)
    print(f"report written to {report_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
