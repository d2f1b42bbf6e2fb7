"""``python -m amongus.train``: fine-tune the spoof classifier with the separator frozen.

Every option of :class:`amongus.training.TrainerConfig` is a flag (``--batch-size 8``,
``--train-layers first:5,last:5``, ``--class-weights 0.1 0.9``, ``--no-resume``...); ``--config
run.json`` reads a JSON config first and the flags override it. ``--separator`` and
``--classifier`` also take a JSON component config, and the checkpoint-loading flags shared with
the other tools (``--trust-checkpoint``, ``--spoof-label``/``--spoof-index``,
``--separator-rate``; :mod:`amongus.cli_options`) go into ``separator_options`` and
``classifier_options``. The same command runs on several
GPUs or nodes under ``accelerate launch -m amongus.train ...``. Rerun the same command after an
interruption and training continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import types
import typing
from typing import Any

from ._compat import TorchFamilyError
from .cli_options import (
    add_component_options,
    add_version_options,
    configure_logging,
    loading_options,
    parse_component,
    split_config,
    version_requested,
    with_options,
)
from .fsutil import check_writable, one_line
from .locking import FolderLock
from .training.config import TrainerConfig


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """``(type, optional)`` from a field annotation such as ``float | None``."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        non_none = [arg for arg in args if arg is not type(None)]
        return non_none[0], len(non_none) < len(args)
    return annotation, False


def _optional(convert):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.train",
        description=(
            "Fine-tune a spoof classifier on streams separated by a frozen separator. Each "
            "mixture is separated once into a stream cache; training is resumable (rerun the "
            "same command) and runs multi-GPU/multi-node under `accelerate launch -m "
            "amongus.train`. See docs/training.md."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--config", default=None, help="JSON file of TrainerConfig options (flags override it)"
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="only fill the stream cache (separate every mixture once), then exit",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    hints = typing.get_type_hints(TrainerConfig)
    for item in dataclasses.fields(TrainerConfig):
        flag = "--" + item.name.replace("_", "-")
        base, optional = _base_type(hints[item.name])
        options: dict[str, Any] = {
            "dest": item.name,
            "default": argparse.SUPPRESS,
            "help": f"{item.metadata.get('help', '')} (default: {_show_default(item)})",
        }
        if "choices" in item.metadata:
            options["choices"] = item.metadata["choices"]
        origin = typing.get_origin(base)
        if base is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin is list:
            (element,) = typing.get_args(base)
            # a field may read its words itself (class weights: numbers or label=weight)
            options.update(nargs="+", type=item.metadata.get("cli_type", element))
        elif origin is dict:
            options.update(type=json.loads, metavar="JSON")
        else:
            options["type"] = _optional(base) if optional else base
        parser.add_argument(flag, **options)
    add_component_options(parser, components=False)
    add_version_options(parser, verbose=False)
    return parser


def _show_default(item: dataclasses.Field) -> str:
    if item.metadata.get("required"):
        return "required"
    if item.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return repr(item.default_factory())  # type: ignore[misc]
    return repr(item.default)


def config_from_args(args: argparse.Namespace) -> TrainerConfig:
    values: dict[str, Any] = {}
    if args.config:
        values.update(TrainerConfig.from_json(args.config).to_dict())
    names = {item.name for item in dataclasses.fields(TrainerConfig)}
    values.update({key: value for key, value in vars(args).items() if key in names})
    _merge_component_options(values, args)
    return TrainerConfig.from_dict(values)


def _merge_component_options(values: dict[str, Any], args: argparse.Namespace) -> None:
    """Split JSON component configs into ``separator``/``classifier`` and their ``*_options``,
    and add the loading flags (they win over the JSON and ``--*-options``)."""
    separator_flags, classifier_flags = loading_options(args)
    for kind, flags in (("separator", separator_flags), ("classifier", classifier_flags)):
        spec = values.get(kind)
        if isinstance(spec, str):
            spec = parse_component(spec, flag=f"--{kind}")
        if spec is None:
            continue  # TrainerConfig reports a missing classifier
        name, options = split_config(with_options(spec, flags, kind=kind))
        values[kind] = str(name)
        values[f"{kind}_options"] = {**(values.get(f"{kind}_options") or {}), **options}


def main(argv: list[str] | None = None) -> int:
    if version_requested(argv):
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, timestamps=True)
    try:
        config = config_from_args(args)
        from .training import Trainer

        # a full disk or read-only folder stops the run now, not at its first checkpoint
        check_writable(config.output_dir)
        if not config.joint:  # joint training separates every batch anew: no cache
            check_writable(config.resolved_cache_dir)
        trainer = Trainer(config)
        # one run per output folder (the main process holds the lock; kill -9 releases it)
        owner = FolderLock(config.output_dir) if trainer.accelerator.is_main_process else None
        with owner or contextlib.nullcontext():
            if args.prepare_only:
                if config.joint:
                    raise ValueError("--prepare-only: joint training (--joint) uses no stream cache")
                entries = trainer.prepare_cache()
                print(
                    f"{trainer.fill_report}; {len(entries)} mixtures in {trainer.cache.directory}"
                )
                return 0
            result = trainer.train()
    except (ValueError, OSError, TorchFamilyError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    if trainer.accelerator.is_main_process:
        last = result.history[-1] if result.history else {}
        print(f"final model: {result.final_dir}")
        print(f"best model:  {result.best_dir} (validation metric {result.best_metric})")
        print(f"history:     {result.output_dir / 'history.csv'}")
        if last:
            print("last epoch:  " + ", ".join(f"{k}={v}" for k, v in last.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
