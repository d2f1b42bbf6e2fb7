"""Real speech for countermeasures: a documented train/dev/eval split of ``../shared/data/real``.

The shared real-audio folder (``manifest.csv``: ``path,label,system,speaker,corpus,...``) holds
LibriSpeech test-other and LJSpeech bonafide speech and neural-vocoder copies (8 vocoders on
LJSpeech, 4 NSF vocoders on 4 CMU ARCTIC speakers). :func:`split_real_speech` gives every file one
part:

* ``train``: usable for fine-tuning;
* ``dev``: calibration (decision thresholds, :mod:`amongus.classifiers.threshold`) and model
  selection;
* ``eval``: held out, never used for training or calibration.

**The rule: by speaker, following the corpus recipe.** A file's part is its speaker's split in
the corpus recipe's table (:data:`amongus.recipes.minispoof.systems.SPEAKER_SPLITS`), the table
the shipped WavLM classifiers and separators were trained with: that corpus took these very
files into its own train/dev/eval splits by the same speaker table, so no file of the real-speech
``eval`` part was seen by a shipped model in training. A vocoded copy carries the speaker of its
original, so an utterance and its copies always share a part. Speakers the table does not know
(files added to the folder later) get a part from a hash of their name (:func:`hashed_part`:
60/20/20), deterministic and independent of the other files.

What that gives for the folder as distributed (228 files):

| part | bonafide | spoof |
| --- | --- | --- |
| train | LibriSpeech 1688, 1998, 2033, 2414, 2609 (50); LJSpeech (25) | LJSpeech copies by all 8 LJSpeech vocoders (55); NSF copies of ARCTIC bdl, clb (24) |
| dev | LibriSpeech 3005, 3080 (20) | NSF copies of ARCTIC rms (12) |
| eval | LibriSpeech 3331, 367, 533 (30) | NSF copies of ARCTIC slt (12) |

**LJSpeech** is one speaker whose originals and vocoded copies share their text. It stays whole
in ``train``: the corpus recipe put speaker ``lj`` in its train split, and the shipped WavLM
classifiers trained on every LJSpeech file here, originals and copies alike, so any LJSpeech file
in ``eval`` (or ``dev``) would be one they had learnt. Keeping the speaker whole also keeps every
original with all of its copies (no text crosses parts), and makes the 8 LJSpeech vocoders
train-only systems.

**Spoof systems are disjoint where the data allows.** The LJSpeech vocoders occur in ``train``
only. The 4 NSF vocoders are the only systems applied to more than one speaker, one speaker per
part; making them disjoint too would leave three NSF files in ``eval``, so the speaker rule wins
and ``eval`` measures *unseen speakers* with NSF vocoders whose outputs on other speakers are in
``train`` and ``dev`` (:attr:`RealSpeechSplit.systems_shared` lists them; the official AASIST
weights never saw any of these vocoders). ``eval`` compares LibriSpeech bonafide with ARCTIC
spoofs: corpus and channel differ with the label, so an EER there mixes spoof detection with
corpus recognition; the per-system figures say how much.

Command line::

    python -m amongus.recipes.real_speech split --root ../shared/data/real --out runs/real-split
    python -m amongus.recipes.real_speech calibrate --classifier aasist --dev runs/real-split --write
    python -m amongus.recipes.real_speech evaluate --split runs/real-split --out runs/real-eval

``calibrate`` and ``evaluate`` are :mod:`amongus.recipes.real_speech_eval` (decision thresholds at
the dev-set EER point; every shipped CM on the eval part, single and in mixtures). ``split``
writes ``train.jsonl``, ``dev.jsonl``, ``eval.jsonl`` (utterance manifests that
:func:`amongus.corpora.load_utterances`, ``python -m amongus.evaluate --single``, the Mixer and
the training recipes read), ``all.jsonl`` (every file, ``split`` set: ``load_utterances(path,
"dev")``) and ``split.json`` (counts, speakers and systems per part).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cli_options import configure_logging
from ..manifest import Utterance

logger = logging.getLogger(__name__)

PARTS = ("train", "dev", "eval")
MANIFEST_NAME = "manifest.csv"
#: What each part is for.
PART_USES = {
    "train": "fine-tuning",
    "dev": "calibration (decision thresholds) and model selection",
    "eval": "held out: never used for training or calibration",
}
#: Shares of :func:`hashed_part` for speakers the corpus recipe's table does not list.
HASHED_SHARES = (("train", 0.6), ("dev", 0.2), ("eval", 0.2))
REQUIRED_COLUMNS = ("path", "label", "speaker")


class RealSpeechError(ValueError):
    """The real-speech folder or its manifest cannot be used (the message names the file)."""


def shared_real_root(option: str | os.PathLike | None = "auto") -> Path | None:
    """The real-speech folder: a path, or ``"auto"`` (``../shared/data/real`` beside the working
    directory or the repository, ``None`` when absent).

    Raises:
        RealSpeechError: a given path that is not a folder.
    """
    from .minispoof.sources import resolve_shared_real

    try:
        return resolve_shared_real(option)
    except ValueError as error:
        raise RealSpeechError(str(error)) from error


def recipe_speaker(speaker: str) -> str:
    """The corpus recipe's name for a ``manifest.csv`` speaker: LibriSpeech ids become
    ``libri_<id>``, ``LJ`` becomes ``lj`` (as :func:`amongus.recipes.minispoof.sources.
    shared_clips` names them), others are kept.

    >>> recipe_speaker("1688"), recipe_speaker("LJ"), recipe_speaker("slt")
    ('libri_1688', 'lj', 'slt')
    """
    speaker = (speaker or "-").strip() or "-"
    if speaker == "LJ":
        return "lj"
    if speaker.isdigit():
        return f"libri_{speaker}"
    return speaker


def hashed_part(speaker: str) -> str:
    """A part for a speaker the corpus recipe does not list: SHA-1 of the name -> a number in
    [0, 1) -> train/dev/eval by :data:`HASHED_SHARES`. Deterministic, and the same whatever
    other files the folder holds.
    """
    digest = hashlib.sha1(speaker.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for part, share in HASHED_SHARES:
        cumulative += share
        if position < cumulative:
            return part
    return HASHED_SHARES[-1][0]


def assign_part(speaker: str) -> tuple[str, str]:
    """``(part, why)`` for a speaker in the corpus recipe's naming (:func:`recipe_speaker`).

    >>> assign_part("lj")
    ('train', 'corpus recipe speaker table')
    """
    from .minispoof.systems import speaker_split

    split = speaker_split(speaker)
    if split is not None:
        return split, "corpus recipe speaker table"
    return hashed_part(speaker), "speaker not in the corpus recipe table: hashed"


@dataclass
class RealSpeechSplit:
    """The parts of the real-speech folder.

    Attributes:
        root: the folder the manifest was read from.
        parts: ``{"train" | "dev" | "eval": [Utterance, ...]}`` in manifest order; every
            utterance's ``split`` is its part; ``speaker`` uses the corpus recipe's names
            (``libri_1688``, ``lj``, ``slt``), ``system`` the manifest's vocoder names.
        problems: ``(path, reason)`` of manifest rows that could not be used (missing or
            unreadable audio, a label that is neither bonafide nor spoof); never silently dropped.
        reasons: ``{utt_id: why it is in its part}``.
    """

    root: str
    parts: dict[str, list[Utterance]]
    problems: list[tuple[str, str]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def utterances(self, part: str | None = None) -> list[Utterance]:
        """The utterances of one part, or all of them (train, dev, eval order)."""
        if part is not None:
            if part not in PARTS:
                raise ValueError(f"part must be one of {PARTS}, got {part!r}")
            return list(self.parts[part])
        return [u for name in PARTS for u in self.parts[name]]

    def speakers(self, part: str) -> set[str]:
        return {u.speaker for u in self.parts[part]}

    def systems(self, part: str) -> set[str]:
        """The spoof systems of a part (bonafide's ``-`` excluded)."""
        return {u.system for u in self.parts[part] if u.label == "spoof"}

    @property
    def systems_shared(self) -> dict[str, list[str]]:
        """Spoof systems found in more than one part: ``{system: [parts]}`` (the documented
        exception to system disjointness: the NSF vocoders of CMU ARCTIC)."""
        found: dict[str, list[str]] = defaultdict(list)
        for part in PARTS:
            for system in sorted(self.systems(part)):
                found[system].append(part)
        return {system: parts for system, parts in sorted(found.items()) if len(parts) > 1}

    def summary(self) -> dict[str, Any]:
        """Counts, speakers and systems per part, the shared systems and the problems."""
        parts = {}
        for part in PARTS:
            utterances = self.parts[part]
            parts[part] = {
                "use": PART_USES[part],
                "n": len(utterances),
                "labels": dict(sorted(Counter(u.label for u in utterances).items())),
                "seconds": round(sum(u.duration or 0.0 for u in utterances), 2),
                "speakers": sorted(self.speakers(part)),
                "systems": sorted(self.systems(part)),
                "by_corpus": dict(
                    sorted(Counter(f"{u.source} [{u.label}]" for u in utterances).items())
                ),
            }
        return {
            "root": self.root,
            "rule": "part = the speaker's split in the corpus recipe's speaker table "
            "(amongus.recipes.minispoof.systems.SPEAKER_SPLITS); unknown speakers hashed "
            "60/20/20; vocoded copies carry their original's speaker",
            "parts": parts,
            "systems_in_several_parts": self.systems_shared,
            "problems": [{"path": path, "reason": reason} for path, reason in self.problems],
        }


def _utterance_id(relative_path: str) -> str:
    # the manifest path without its suffix: unique, and it says corpus and vocoder
    return re.sub(r"\.[A-Za-z0-9]+$", "", relative_path.replace(os.sep, "/"))


def _positive_float(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value > 0 and value != float("inf") else None


def _read_rows(manifest: Path) -> list[dict[str, str]]:
    try:
        with open(manifest, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise RealSpeechError(
                    f"{manifest}: missing column(s) {', '.join(missing)}; expected at least "
                    f"{', '.join(REQUIRED_COLUMNS)}"
                )
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RealSpeechError(f"{manifest}: cannot read the manifest ({error})") from error


def split_real_speech(root: str | os.PathLike, *, check_files: bool = True) -> RealSpeechSplit:
    """Assign every file of a real-speech folder to ``train``, ``dev`` or ``eval``.

    The assignment depends on each row's speaker alone (see the module docstring), so it is
    deterministic and does not change when rows are reordered, added or removed.

    Args:
        root: the folder holding ``manifest.csv`` (``../shared/data/real``).
        check_files: read each file's header (rate, duration); missing or unreadable files go to
            ``problems``. Without it, the duration comes from the manifest and the rate is
            left unset (the manifest's ``orig_sr`` is the rate before conversion).

    Returns:
        A :class:`RealSpeechSplit`; audio paths are absolute.

    Raises:
        RealSpeechError: no such folder, no ``manifest.csv``, a manifest without the required
            columns, or an utterance id listed twice.
    """
    import soundfile as sf

    from ..labels import normalize_label

    root = Path(root).expanduser().resolve()
    manifest = root / MANIFEST_NAME
    if not root.is_dir():
        raise RealSpeechError(f"{root}: no such real-speech folder")
    if not manifest.is_file():
        raise RealSpeechError(f"{manifest}: no such manifest (expected path,label,speaker,...)")
    parts: dict[str, list[Utterance]] = {part: [] for part in PARTS}
    problems: list[tuple[str, str]] = []
    reasons: dict[str, str] = {}
    for line, row in enumerate(_read_rows(manifest), start=2):
        relative = (row.get("path") or "").strip()
        if not relative:
            problems.append((f"{manifest}:{line}", "empty path"))
            continue
        path = root / relative
        try:
            label = normalize_label(row.get("label", ""))
        except ValueError as error:
            problems.append((str(path), f"bad label ({error})"))
            continue
        # orig_sr is the rate before conversion, not the file's: only a header says that
        rate, duration = None, _positive_float(row.get("duration"))
        if check_files:
            try:
                info = sf.info(str(path))
            except Exception as error:  # missing or unreadable: listed, never scored
                problems.append((str(path), f"unreadable audio ({error})"))
                continue
            rate, duration = int(info.samplerate), info.frames / info.samplerate
        speaker = recipe_speaker(row.get("speaker", "-"))
        part, why = assign_part(speaker)
        utt_id = _utterance_id(relative)
        if utt_id in reasons:
            raise RealSpeechError(f"{manifest}:{line}: utterance {utt_id} listed twice")
        system = (row.get("system") or "-").strip() or "-"
        parts[part].append(
            Utterance(
                utt_id=utt_id,
                path=str(path),
                label=label,
                speaker=speaker,
                system="-" if label == "bonafide" else system,
                language="en",
                sample_rate=rate,
                duration=duration,
                source=(row.get("corpus") or "-").strip() or "-",
                licence=(row.get("licence") or "-").strip() or "-",
                split=part,
            )
        )
        reasons[utt_id] = why
    split = RealSpeechSplit(str(root), parts, problems, reasons)
    logger.info(
        "real speech %s: %s; %d problem(s)",
        root,
        ", ".join(f"{p} {len(parts[p])}" for p in PARTS),
        len(problems),
    )
    return split


def _write_jsonl(path: Path, utterances: Iterable[Utterance]) -> None:
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "w", encoding="utf-8") as handle:
        for utterance in utterances:
            handle.write(json.dumps(utterance.to_dict(), ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def write_split(split: RealSpeechSplit, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``train.jsonl``, ``dev.jsonl``, ``eval.jsonl``, ``all.jsonl`` and ``split.json``.

    Returns:
        ``{"train": path, "dev": path, "eval": path, "all": path, "summary": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for part in PARTS:
        written[part] = out / f"{part}.jsonl"
        _write_jsonl(written[part], split.parts[part])
    written["all"] = out / "all.jsonl"
    _write_jsonl(written["all"], split.utterances())
    written["summary"] = out / "split.json"
    written["summary"].write_text(
        json.dumps(split.summary(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return written


def load_part(source: str | os.PathLike, part: str) -> list[Utterance]:
    """The utterances of one part from a split folder (``<part>.jsonl``) or a real-speech
    folder (split on the fly).

    Raises:
        RealSpeechError: neither a split folder nor a real-speech folder.
    """
    from ..corpora import load_utterances

    source = Path(source)
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if source.is_file():
        return list(load_utterances(source, part if source.name == "all.jsonl" else None))
    if (source / f"{part}.jsonl").is_file():
        return list(load_utterances(source / f"{part}.jsonl"))
    if (source / MANIFEST_NAME).is_file():
        return split_real_speech(source).utterances(part)
    raise RealSpeechError(
        f"{source}: neither a split folder (with {part}.jsonl, from `python -m "
        f"amongus.recipes.real_speech split`) nor a real-speech folder (with {MANIFEST_NAME})"
    )


# ---------------------------------------------------------------------------- command line
def _print_summary(split: RealSpeechSplit) -> None:
    summary = split.summary()
    for part in PARTS:
        info = summary["parts"][part]
        labels = ", ".join(f"{k} {v}" for k, v in info["labels"].items())
        print(
            f"{part:<6} {info['n']:>4} files ({labels}); speakers: "
            f"{', '.join(info['speakers'])}; systems: {', '.join(info['systems']) or '-'}"
        )
    for system, parts in summary["systems_in_several_parts"].items():
        print(f"note: system {system} occurs in {', '.join(parts)} (one speaker per part)")
    for problem in summary["problems"]:
        print(f"skipped: {problem['path']}: {problem['reason']}")


def _cmd_split(args: argparse.Namespace) -> int:
    root = shared_real_root(args.root)
    if root is None:
        print(
            "error: no real-speech folder: ../shared/data/real does not exist here; pass --root",
            file=sys.stderr,
        )
        return 2
    split = split_real_speech(root)
    written = write_split(split, args.out)
    _print_summary(split)
    print(f"manifests written to {args.out}: " + ", ".join(p.name for p in written.values()))
    return 0


def _split_source(option: str | None) -> Path:
    """``--split``: a split folder or real-speech folder; default ../shared/data/real."""
    if option:
        return Path(option)
    root = shared_real_root("auto")
    if root is None:
        raise RealSpeechError(
            "no real-speech folder: ../shared/data/real does not exist here; pass --split "
            "(a folder written by `split`, or a real-speech folder)"
        )
    return root


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ._cli import command_line, start_recipe_run
    from .real_speech_eval import calibrate

    start_recipe_run()
    dev = _split_source(args.dev)
    for spec in args.classifier:
        result = calibrate(
            _classifier_spec(spec),
            dev,
            write=args.write,
            batch_size=args.batch_size,
            device=args.device,
            out_dir=None if args.out is None else args.out / _slug(spec),
            progress=not args.quiet,
            command=command_line("amongus.recipes.real_speech", args.argv),
        )
        print(result)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ._cli import command_line, start_recipe_run
    from .real_speech_eval import DEFAULT_CLASSIFIERS, evaluate_real_speech

    start_recipe_run()
    specs = args.classifier or list(DEFAULT_CLASSIFIERS)
    separators = None
    if args.separator:
        separators = dict(_named(text) for text in args.separator)
    if args.no_mixtures:
        separators = {}
    results = evaluate_real_speech(
        _split_source(args.split),
        args.out,
        classifiers={_named(spec)[0]: _classifier_spec(_named(spec)[1]) for spec in specs},
        separators=separators,
        n_mixtures=args.n_mixtures,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        plots=not args.no_plots,
        command=command_line("amongus.recipes.real_speech", args.argv),
    )
    print(results.markdown())
    print(f"results written to {args.out}")
    return 0


def _named(text: str) -> tuple[str, str]:
    """``LABEL=SPEC`` or ``SPEC`` (labelled by itself)."""
    label, equals, spec = text.partition("=")
    if equals and label and not label.startswith("{"):
        return label, spec
    return text, text


def _classifier_spec(text: str) -> Any:
    """A JSON object on the command line is a config dict, as for ``python -m amongus``."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as error:
            raise RealSpeechError(f"--classifier {text}: not valid JSON ({error})") from error
    return text


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "x"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amongus.recipes.real_speech",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Real-speech split (train/dev/eval by speaker), calibration of decision\n"
        "thresholds on its dev part, and evaluation of the shipped countermeasures on its\n"
        "eval part (single utterances and two-speaker mixtures).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="write the train/dev/eval manifests")
    split.add_argument(
        "--root", default="auto", help="the real-speech folder (default: ../shared/data/real)"
    )
    split.add_argument("--out", type=Path, required=True, help="output folder")
    split.set_defaults(handler=_cmd_split)

    calibrate = commands.add_parser(
        "calibrate",
        help="decision threshold at the dev-set EER point; --write stores it with the model",
    )
    calibrate.add_argument(
        "--classifier",
        action="append",
        required=True,
        help="a shipped name (aasist, wavlm-spoof-clean...), a folder or a JSON config; repeatable",
    )
    calibrate.add_argument(
        "--dev",
        default=None,
        help="a folder written by `split` (its dev.jsonl) or a real-speech folder "
        "(default: ../shared/data/real)",
    )
    calibrate.add_argument(
        "--write",
        action="store_true",
        help="store the threshold in the classifier folder's config.json "
        "(amongus.decision_threshold)",
    )
    calibrate.add_argument("--out", type=Path, default=None, help="also save the dev reports")
    calibrate.set_defaults(handler=_cmd_calibrate)

    evaluate = commands.add_parser(
        "evaluate",
        help="every shipped CM (or the given ones) on the eval part: single utterances and "
        "two-speaker mixtures (default separator and oracle)",
    )
    evaluate.add_argument(
        "--classifier",
        action="append",
        default=None,
        help="[LABEL=]SPEC, repeatable (default: every shipped classifier: aasist, "
        "wavlm-spoof-clean, wavlm-spoof-finetuned)",
    )
    evaluate.add_argument(
        "--separator",
        action="append",
        default=None,
        help="[LABEL=]SPEC for the mixtures, repeatable (default: the default preset's "
        "separator and the oracle)",
    )
    evaluate.add_argument(
        "--split",
        default=None,
        help="a folder written by `split` (its eval.jsonl) or a real-speech folder "
        "(default: ../shared/data/real)",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="results folder")
    evaluate.add_argument(
        "--n-mixtures", type=int, default=40, help="two-speaker mixtures of the eval part"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="the mixtures' seed")
    evaluate.add_argument("--no-mixtures", action="store_true", help="single utterances only")
    evaluate.add_argument("--no-plots", action="store_true", help="no PNG figures")
    evaluate.set_defaults(handler=_cmd_evaluate)

    for command in (calibrate, evaluate):
        command.add_argument(
            "--batch-size",
            type=int,
            default=1,
            help="classifier windows per forward (1 is fastest for AASIST on a CPU)",
        )
        command.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
        command.add_argument("--quiet", action="store_true", help="no progress bars")
    # `--help` shows every command's options (the docs' CLI page is built from it)
    parser.epilog = "\n".join(sub.format_help() for sub in (split, calibrate, evaluate))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    try:
        return args.handler(args)
    except (RealSpeechError, FileNotFoundError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
