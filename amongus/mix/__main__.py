"""``python -m amongus.mix``: make labelled overlapped mixtures from a corpus.

Every :class:`~amongus.mix.config.MixerConfig` field is an option (``--field-name``); options
that are not given keep the preset's value. Example::

    python -m amongus.mix --input /data/LA --split train --out mixes/train \\
        --n-mixtures 30000 --seed 0 --preset thesis

``--mode conversation`` makes long multi-party calls instead (amongus.mix.conversation)::

    python -m amongus.mix --mode conversation --input /data/LA --split eval --out calls \\
        --n-conversations 20 --speakers 4 4 --spoofed-speakers 1 1 --duration 600 600
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..cli_options import configure_logging
from .config import (
    BAD_INPUT_POLICIES,
    LEVEL_MODES,
    NAMINGS,
    NOISE_TYPES,
    PLACEMENTS,
    PRESETS,
    MixerConfig,
)
from .conversation_config import MODES, ConversationConfig

CHOICES = {
    "placement": PLACEMENTS,
    "level_mode": LEVEL_MODES,
    "naming": NAMINGS,
    "noise_type": NOISE_TYPES,
    "on_bad_input": BAD_INPUT_POLICIES,
    "audio_format": ("flac", "wav"),
}


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(str(item) for item in value) or "none"
    if isinstance(value, dict):
        return ",".join(f"{key}={val}" for key, val in value.items())
    return "none" if value is None else str(value)


def _optional(cast):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "") else cast(text)

    return parse


def _probabilities(text: str) -> dict[str, float] | None:
    if text.lower() in ("none", "uniform", ""):
        return None
    try:
        pairs = [item.split("=") for item in text.split(",") if item]
        return {label.strip().upper(): float(value) for label, value in pairs}
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected LABEL=PROB,... such as 'SB=0.5,SS=0.25,BB=0.25', got {text!r}"
        ) from error


def _add_config_options(
    parser: argparse.ArgumentParser,
    config_class: type = MixerConfig,
    title: str = "mixer options (default: the preset's value, shown in brackets for --preset "
    "default)",
) -> None:
    group = parser.add_argument_group(title)
    defaults = config_class()
    for spec in dataclasses.fields(config_class):
        if spec.name == "preset":
            continue
        flag = "--" + spec.name.replace("_", "-")
        kind = str(spec.type)
        default = getattr(defaults, spec.name)
        help_text = f"{spec.metadata['help']} [{_show(default)}]"
        common: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS}
        if kind == "bool":
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, help=help_text, **common
            )
        elif kind.startswith("tuple"):
            cast = int if kind.startswith("tuple[int") else float
            group.add_argument(
                flag, nargs=2, type=cast, metavar=("LO", "HI"), help=help_text, **common
            )
        elif kind.startswith("list"):
            group.add_argument(flag, nargs="*", metavar="ITEM", help=help_text, **common)
        elif kind.startswith("dict"):
            group.add_argument(
                flag, type=_probabilities, metavar="LABEL=P,...", help=help_text, **common
            )
        else:
            cast = {"int": int, "float": float, "str": str}[kind.split(" | ")[0]]
            if "None" in kind:
                cast = _optional(cast)
            if spec.name in CHOICES:
                common["choices"] = CHOICES[spec.name]
            group.add_argument(flag, type=cast, help=help_text, **common)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.mix",
        description=(
            "Mix labelled utterances (bonafide/spoof) into overlapped multi-speaker mixtures "
            "with exact composition labels (SS/SB/BB, SSB...). Writes OUT/audio/<id>.flac, "
            "OUT/mixtures.jsonl and OUT/summary.json; rerunning the same command resumes."
        ),
    )
    parser.add_argument(
        "--input",
        required=True,
        help="ASVspoof root (protocols + flac), a real/fake folder tree, or a JSONL utterance "
        "manifest",
    )
    parser.add_argument("--split", default=None, help="corpus split: train, dev or eval")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="mixture",
        help="'mixture': short overlapped mixtures (OUT/mixtures.jsonl); 'conversation': long "
        "multi-party calls with turn-taking and an RTTM reference per call "
        "(OUT/conversations.jsonl, OUT/rttm/, OUT/reference.rttm; see the conversation options)",
    )
    parser.add_argument(
        "--n-mixtures", type=int, default=None, help="mixtures to make (--mode mixture, required)"
    )
    parser.add_argument(
        "--n-conversations",
        type=int,
        default=1,
        help="conversations to make (--mode conversation)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (recorded per mixture)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: every core; the output does not depend on it)",
    )
    parser.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="make only the I-th of N contiguous blocks of mixture indices (0-based: 0/4 ... "
        "3/4), each into its own --out; plan, ids and files are those of the whole run "
        "(--mode mixture)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=(),
        metavar="SHARD_OUT",
        help="take the mixtures of these --shard output folders (made with the same options) "
        "into --out, then finish the run there: byte-identical to one unsharded run "
        "(--mode mixture)",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="'thesis' reproduces the reference study; 'default' fixes its flaws",
    )
    parser.add_argument("--config", type=Path, default=None, help="JSON file of mixer options")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the mixtures of an earlier run with other settings or inputs in --out "
        "(without it, such a folder is refused; the same settings resume)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--verbose", action="store_true", help="log at INFO level")
    _add_config_options(parser)
    _add_config_options(
        parser,
        ConversationConfig,
        "conversation options (--mode conversation; the mixer options above set the rate, "
        "levels, augmentations and output format)",
    )
    return parser


def load_input(source: str, split: str | None):
    """Utterances from a corpus root, folder tree or JSONL manifest (``amongus.corpora``).

    Files are not checked here: the Mixer checks them and applies ``--on-bad-input``.
    """
    from ..corpora import load_utterances

    try:
        listing = load_utterances(source, split, check_files=False)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"--input: {error}") from error
    if not listing.utterances:
        raise SystemExit(
            f"--input {source}: no utterances" + (f" in split {split!r}" if split else "")
        )
    return listing.utterances, listing


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    config_fields = {spec.name for spec in dataclasses.fields(MixerConfig)}
    conversation_fields = {spec.name for spec in dataclasses.fields(ConversationConfig)}
    overrides = json.loads(args.config.read_text(encoding="utf-8-sig")) if args.config else {}
    conversation_overrides = {
        key: overrides.pop(key) for key in list(overrides) if key in conversation_fields
    }
    overrides.update({key: value for key, value in vars(args).items() if key in config_fields})
    conversation_overrides.update(
        {key: value for key, value in vars(args).items() if key in conversation_fields}
    )
    shard = None
    if args.shard is not None:
        from ..sharding import parse_shard

        try:
            shard = parse_shard(args.shard)
        except ValueError as error:
            parser.error(f"--shard: {error}")
    if args.shard is not None and args.merge:
        parser.error("--shard and --merge: shard runs first, then one --merge run without --shard")
    if args.mode != "mixture" and (args.shard is not None or args.merge):
        parser.error("--shard and --merge are for --mode mixture")
    if args.mode == "mixture":
        if args.n_mixtures is None:
            parser.error("--n-mixtures is required with --mode mixture")
        if conversation_overrides:
            names = ", ".join(
                "--" + key.replace("_", "-") for key in sorted(conversation_overrides)
            )
            parser.error(f"{names}: conversation option(s), for --mode conversation")
    for key, value in overrides.items():
        if isinstance(value, list) and key not in ("noise_files", "channel_codecs"):
            overrides[key] = tuple(value)
    try:
        config = MixerConfig.from_preset(args.preset, **overrides)
    except ValueError as error:
        parser.error(str(error))
    from ..fsutil import one_line
    from .conversation import ConversationMixer
    from .mixer import Mixer

    conversation = None
    if args.mode == "conversation":
        try:
            conversation = ConversationConfig(**conversation_overrides)
        except (TypeError, ValueError) as error:
            parser.error(str(error))
    utterances, listing = load_input(args.input, args.split)
    if listing is not None and getattr(listing, "problems", None):
        print(listing.summary())
    try:
        if conversation is not None:
            mixer = ConversationMixer(config, conversation)
            count = {"n_conversations": args.n_conversations}
        else:
            mixer, count = Mixer(config), {"n_mixtures": args.n_mixtures}
            count.update(shard=shard, merge=args.merge)
        summary = mixer.run(
            utterances,
            args.out,
            **count,
            seed=args.seed,
            workers=args.workers,
            split=args.split or "-",
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:
        # full disk, read-only folder, a folder in use or made with other settings, bad input
        # with --on-bad-input error: one line naming the file, no traceback
        print(f"amongus.mix: {one_line(error)}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
