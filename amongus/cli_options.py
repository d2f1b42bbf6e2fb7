"""Command-line options shared by ``python -m amongus``, ``amongus.evaluate`` and ``amongus.train``.

Every loading option a Python user has, and that an error message recommends, has one spelling
on every command line:

| Python keyword | command line | reaches |
| --- | --- | --- |
| ``trust_checkpoint=True`` | ``--trust-checkpoint`` | separator and classifier loading |
| ``spoof_label="..."`` | ``--spoof-label NAME`` | the classifier (``SpoofClassifier``) |
| ``spoof_index=1`` | ``--spoof-index N`` | the classifier (``SpoofClassifier``) |
| ``sample_rate=8000`` | ``--separator-rate HZ`` | the separator (Asteroid, SpeechBrain) |
| a config dict | ``--separator JSON``, ``--classifier JSON`` | ``load_separator``, ``load_classifier`` |

``--separator`` and ``--classifier`` take a registered name, a path or hub id, a JSON object
(``'{"name": "convtasnet", "path": "ckpt/model.bin", "sample_rate": 8000}'``) or the path of a
``.json`` file holding one. The flags above override the same keys of a JSON config. This module
imports nothing heavy, so error messages anywhere in the package can use :func:`how_to_pass`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Python keyword -> command-line flag, for error messages (:func:`how_to_pass`).
OPTION_FLAGS = {
    "trust_checkpoint": "--trust-checkpoint",
    "spoof_label": "--spoof-label",
    "spoof_index": "--spoof-index",
    "sample_rate": "--separator-rate",
    "separator": "--separator",
    "classifier": "--classifier",
}

#: Separators that load no checkpoint and run at any rate.
RATE_FREE_SEPARATORS = ("oracle", "passthrough")
#: Registered separators that load a checkpoint: a config's ``path`` is their ``source``.
MODEL_SEPARATORS = ("sepformer", "convtasnet")

_PATH_KEYS = ("name", "path", "source")


def how_to_pass(keyword: str, value: str = "...") -> str:
    """How to give an option in Python and on the command line, for error messages.

    >>> how_to_pass("spoof_index", "1")
    'spoof_index=1 (command line: --spoof-index 1)'
    >>> how_to_pass("trust_checkpoint", "True")
    'trust_checkpoint=True (command line: --trust-checkpoint)'
    """
    flag = OPTION_FLAGS[keyword]
    shown = "" if keyword == "trust_checkpoint" else f" {value}"
    return f"{keyword}={value} (command line: {flag}{shown})"


# ---------------------------------------------------------------------------- version
def add_version_options(parser: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    """``--version`` and (unless the parser has its own) ``-v/--verbose``.

    :func:`version_requested` acts on them before the parser runs, so ``--version`` works
    without the tool's required arguments.
    """
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the amongus version and exit; with --verbose, the environment report for "
        "bug reports (python, platform, torch, torchaudio, speechbrain, asteroid, ...)",
    )
    if verbose:
        parser.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="log at INFO level; with --version, print the full environment report",
        )


def configure_logging(verbose: bool = False, *, timestamps: bool = False) -> None:
    """The command lines' logging: to stderr, one line per record naming its logger, at INFO
    with ``--verbose`` (``verbose=True``) and WARNING otherwise; ``timestamps`` for long runs."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format=f"%(asctime)s {fmt}" if timestamps else fmt,
    )


def version_requested(argv: Sequence[str] | None, file=None) -> bool:
    """Print the version (or, with ``--verbose``, the environment report) if ``--version`` is
    in ``argv``; returns whether it was."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--version", action="store_true")
    pre.add_argument("-v", "--verbose", action="store_true")
    known, _ = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if not known.version:
        return False
    out = file or sys.stdout
    if known.verbose:
        from ._compat import show_versions

        show_versions(file=out)
    else:
        from . import __version__

        print(f"amongus {__version__}", file=out)
    return True


# ---------------------------------------------------------------------------- components
def add_component_options(
    parser: argparse.ArgumentParser, *, components: bool = True, default: str = "the preset's"
) -> None:
    """Add the loading options (see the module docstring).

    Args:
        parser: the parser to extend.
        components: also add ``--separator`` and ``--classifier`` (``amongus.train`` has its
            own, generated from ``TrainerConfig``).
        default: what the components default to, for the help text.
    """
    group = parser.add_argument_group(
        "components and checkpoint loading",
        "--separator and --classifier take a name, a folder or file, a hub id, a JSON object "
        'such as \'{"name": "convtasnet", "path": "model.bin", "sample_rate": 8000}\' or a '
        ".json file holding one; the flags below override the same keys of a JSON config",
    )
    if components:
        group.add_argument(
            "--separator",
            default=None,
            metavar="SPEC",
            help="oracle, passthrough, sepformer, convtasnet, a checkpoint folder or file, a hub "
            f"id, or a JSON config (default: {default})",
        )
        group.add_argument(
            "--classifier",
            default=None,
            metavar="SPEC",
            help="a Hugging Face classifier folder or hub id, or a JSON config "
            f"(default: {default})",
        )
    group.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load checkpoint files even when they can run code (pickles holding Python "
        "objects, HyperPyYAML tags outside the allowlist): only for files you trust "
        "(Python: trust_checkpoint=True)",
    )
    group.add_argument(
        "--spoof-label",
        default=None,
        metavar="NAME",
        help="the classifier's class name that means spoof, for unusual id2label names "
        "(Python: spoof_label=)",
    )
    group.add_argument(
        "--spoof-index",
        type=int,
        default=None,
        metavar="N",
        help="the classifier's class index that means spoof, e.g. 1 for a LABEL_0/LABEL_1 model "
        "(Python: spoof_index=)",
    )
    group.add_argument(
        "--separator-rate",
        type=int,
        default=None,
        metavar="HZ",
        help="the rate the separator is fed, for checkpoints that do not state it or state it "
        "wrongly (Asteroid packages without sample_rate in model_args; Python: sample_rate=)",
    )


def parse_component(text: str | None, *, flag: str = "--separator") -> str | dict[str, Any] | None:
    """A ``--separator``/``--classifier`` value as a spec for the loaders.

    A JSON object (text starting with ``{``; a JSON array is refused) or an existing ``.json``
    file becomes a config dict (paths in a file's config that exist relative to the file's folder
    are made relative to it); anything else (a name, path or hub id) is returned as is.

    Raises:
        ValueError: invalid JSON, or JSON that is not an object; the message names the flag
            (and the file).
    """
    if text is None:
        return None
    text = str(text)
    source = None
    if text.lstrip().startswith(("{", "[")):
        raw = text
    elif text.lower().endswith(".json") and Path(text).expanduser().is_file():
        source = Path(text).expanduser()
        try:
            raw = source.read_text(encoding="utf-8-sig")
        except OSError as error:
            raise ValueError(f"{flag} {source}: cannot read the config ({error})") from error
    else:
        return text
    where = f"{flag} {source}" if source is not None else flag
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: invalid JSON config ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(
            f"{where}: a JSON config must be an object such as "
            f'{{"name": "convtasnet", "path": "model.bin"}}, got {type(config).__name__}'
        )
    if source is not None:
        for key in _PATH_KEYS:
            value = config.get(key)
            if isinstance(value, str) and value not in RATE_FREE_SEPARATORS + MODEL_SEPARATORS:
                candidate = source.parent / value
                if not Path(value).is_absolute() and candidate.exists():
                    config[key] = str(candidate)
    return config


def _name_of(spec: Any) -> str | None:
    if isinstance(spec, dict):
        return spec.get("name")
    return spec if isinstance(spec, str) else None


def loading_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(separator options, classifier options)`` from the loading flags of ``args``."""
    separator: dict[str, Any] = {}
    classifier: dict[str, Any] = {}
    if getattr(args, "trust_checkpoint", False):
        separator["trust_checkpoint"] = True
        classifier["trust_checkpoint"] = True
    if getattr(args, "separator_rate", None) is not None:
        if args.separator_rate <= 0:
            raise ValueError(f"--separator-rate must be positive, got {args.separator_rate}")
        separator["sample_rate"] = int(args.separator_rate)
    if getattr(args, "spoof_label", None) is not None:
        classifier["spoof_label"] = args.spoof_label
    if getattr(args, "spoof_index", None) is not None:
        classifier["spoof_index"] = int(args.spoof_index)
    if "spoof_label" in classifier and "spoof_index" in classifier:
        raise ValueError("give --spoof-label or --spoof-index, not both")
    return separator, classifier


def with_options(spec: Any, options: dict[str, Any], *, kind: str) -> Any:
    """``spec`` with ``options`` added: a name or path becomes ``{"name": spec, **options}``, a
    config dict is updated (the options win). ``kind`` is ``"separator"`` or ``"classifier"``.

    The rate-free separators (oracle, passthrough) load no checkpoint: ``trust_checkpoint`` is
    dropped for them and a sample rate is an error.
    """
    options = dict(options)
    if kind == "separator" and _name_of(spec) in RATE_FREE_SEPARATORS:
        options.pop("trust_checkpoint", None)
        if "sample_rate" in options:
            raise ValueError(
                f"--separator-rate: the {_name_of(spec)} separator runs at any rate and takes "
                "no sample rate"
            )
    if not options:
        return spec
    if isinstance(spec, dict):
        return {**spec, **options}
    if isinstance(spec, str | os.PathLike):
        return {"name": str(spec), **options}
    raise TypeError(f"cannot add options {sorted(options)} to a {type(spec).__name__}")


def pipeline_from_args(args: argparse.Namespace, **options: Any):
    """The :class:`amongus.Pipeline` a command line asks for: its components
    (:func:`component_specs` under ``--preset``), ``--batch-size``, ``--device``,
    ``--threshold`` (the spoof threshold) and ``--preset``; ``options`` are the command's own
    further :class:`~amongus.Pipeline` arguments (``assignment``, ``chunk_seconds``...).

    Raises:
        what :class:`amongus.Pipeline` and :func:`component_specs` raise for a bad component.
    """
    from .pipeline import Pipeline

    return Pipeline(
        **component_specs(args, preset=args.preset),
        batch_size=args.batch_size,
        device=args.device,
        spoof_threshold=args.threshold,
        preset=args.preset,
        **options,
    )


def component_specs(
    args: argparse.Namespace,
    *,
    preset: str | None = None,
    kinds: Sequence[str] = ("separator", "classifier"),
) -> dict[str, Any]:
    """The ``separator`` and ``classifier`` specs a command line asks for.

    ``--separator``/``--classifier`` are parsed by :func:`parse_component`; the loading flags are
    merged in (:func:`with_options`). A component left out stays ``None`` (the pipeline then uses
    the preset's), unless a loading flag applies to it: then the preset's component is resolved
    here (:func:`amongus.defaults.default_components`) so that the flag reaches it.

    Args:
        args: the parsed command line.
        preset: the :mod:`amongus.defaults` preset of left-out components.
        kinds: the components wanted (``--single`` evaluation needs only the classifier).

    Returns:
        ``{kind: spec or None}`` for each of ``kinds``.
    """
    separator_options, classifier_options = loading_options(args)
    options_of = {"separator": separator_options, "classifier": classifier_options}
    specs = {}
    for kind in kinds:
        specs[kind] = parse_component(getattr(args, kind, None), flag=f"--{kind}")
        options = options_of[kind]
        if not options:
            continue
        if specs[kind] is None:
            from .defaults import default_components

            specs[kind] = default_components(preset or "default")[kind]
        specs[kind] = with_options(specs[kind], options, kind=kind)
    return specs


def split_config(spec: Any) -> tuple[Any, dict[str, Any]]:
    """``(name or path, options)`` of a spec: a config dict's ``name`` (or ``path``) and the
    rest; a plain name or path with no options. For APIs that take the two apart
    (``TrainerConfig.separator`` + ``separator_options``)."""
    if not isinstance(spec, dict):
        return spec, {}
    config = dict(spec)
    name = config.pop("name", None)
    path = config.pop("path", None)
    if name is None and path is None:
        raise ValueError(f"the config {spec!r} needs a 'name' or 'path'")
    if name is not None and path is not None:
        if name in MODEL_SEPARATORS:
            config["source"] = path
        else:
            raise ValueError(f"the config {spec!r} has both 'name' and 'path': give one")
    return (name if name is not None else path), config
