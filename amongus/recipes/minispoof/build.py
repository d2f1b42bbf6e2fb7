"""Build the minispoof corpus: discover sources, plan, render in parallel, write protocols,
metadata, attribution, and report."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ...corpora.asvspoof import PROTOCOL_DIR, PROTOCOL_FILES, SPLITS
from ...manifest import Utterance, write_jsonl
from .generators import available_engines
from .plan import SIZES, build_plan
from .render import render_job
from .sources import (
    asterisk_clips,
    festvox_ru_clips,
    resolve_shared_real,
    shared_clips,
    tuxpaint_clips,
)
from .systems import SYSTEMS, SYSTEMS_BY_ID

logger = logging.getLogger(__name__)

OWNED_ENTRIES = (
    *(f"ASVspoof2019_LA_{split}" for split in SPLITS),
    PROTOCOL_DIR,
    "metadata.jsonl",
    "ATTRIBUTION.md",
    "README.md",
    "build.json",
)


@dataclass
class BuildResult:
    root: Path
    utterances: list[Utterance]
    failures: Counter = field(default_factory=Counter)  # reason -> count (rendering)
    skipped: Counter = field(default_factory=Counter)  # reason -> count (planning)
    seconds: float = 0.0


def _prepare_output(root: Path) -> None:
    if root.exists() and any(root.iterdir()):
        if not (root / "metadata.jsonl").exists() and not (root / PROTOCOL_DIR).exists():
            raise FileExistsError(
                f"{root}: folder exists and is not a minispoof corpus; choose an empty --out"
            )
        for name in OWNED_ENTRIES:  # a rebuild replaces the previous corpus, nothing else
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    root.mkdir(parents=True, exist_ok=True)


def discover_sources(shared_real: Path | None, skipped: Counter) -> list:
    clips = asterisk_clips(skipped) + festvox_ru_clips(skipped) + tuxpaint_clips(skipped)
    if shared_real is not None:
        clips += shared_clips(shared_real, skipped)
    return clips


def build_corpus(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    size: str = "small",
    workers: int | None = None,
    shared_real: str | os.PathLike | None = "auto",
    progress: bool = True,
) -> BuildResult:
    """Build the corpus under ``out`` (ASVspoof 2019 LA layout) and return what was made.

    Utterances whose generator fails are skipped and counted in ``failures``; sources or
    systems that are not installed are counted in ``skipped``. The result is identical for any
    ``workers`` (every utterance has its own seed).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: expected one of {sorted(SIZES)}")
    config = SIZES[size]
    start = time.monotonic()
    root = Path(out)
    _prepare_output(root)
    skipped: Counter = Counter()
    shared = resolve_shared_real(shared_real) if config.use_shared else None
    if not config.use_shared and shared_real not in (None, "none", "auto"):
        logger.warning("size %s is built from apt/pip sources only; ignoring --shared-real", size)
    clips = discover_sources(shared, skipped)
    plan = build_plan(clips, size=config, seed=seed, skipped=skipped)
    workers = workers or min(2, os.cpu_count() or 1)
    tasks = [(job, str(root)) for job in plan.jobs]
    records, failures = [], Counter()
    bar = tqdm(total=len(tasks), desc=f"minispoof {size}", unit="utt", disable=not progress)
    if workers <= 1:
        results = map(render_job, tasks)
        for result in results:
            _collect(result, records, failures)
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")  # no inherited threads or state
        with context.Pool(workers) as pool:
            for result in pool.imap_unordered(render_job, tasks, chunksize=2):
                _collect(result, records, failures)
                bar.update()
    bar.close()
    utterances = sorted((Utterance.from_dict(r) for r in records), key=lambda u: u.utt_id)
    _write_protocols(root, utterances)
    write_jsonl(root / "metadata.jsonl", utterances)
    (root / "ATTRIBUTION.md").write_text(attribution_text(utterances), encoding="utf-8")
    (root / "README.md").write_text(readme_text(size, seed, utterances), encoding="utf-8")
    result = BuildResult(root, utterances, failures, skipped, time.monotonic() - start)
    build_info = {
        "recipe": "amongus.recipes.minispoof",
        "size": size,
        "seed": seed,
        "shared_real": bool(shared),
        "utterances": len(utterances),
        "failures": dict(failures),
        "skipped": dict(skipped),
        "engines": {k: v or "ok" for k, v in available_engines().items()},
    }
    (root / "build.json").write_text(json.dumps(build_info, indent=1, sort_keys=True) + "\n")
    return result


def _collect(result: dict, records: list, failures: Counter) -> None:
    if "error" in result:
        failures[f"{result['system'] or '-'}: {result['error'][:160]}"] += 1
        logger.warning("skipped %s: %s", result["utt_id"], result["error"])
    else:
        records.append(result)


def _write_protocols(root: Path, utterances: list[Utterance]) -> None:
    folder = root / PROTOCOL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        lines = [
            f"{u.speaker} {u.utt_id} - {u.system if u.label == 'spoof' else '-'} {u.label}\n"
            for u in utterances
            if u.split == split
        ]
        (folder / PROTOCOL_FILES[split]).write_text("".join(lines), encoding="utf-8")


def attribution_text(utterances: list[Utterance]) -> str:
    by_source = Counter((u.source, u.licence) for u in utterances if u.label == "bonafide")
    spoof_systems = Counter(u.system for u in utterances if u.label == "spoof")
    lines = [
        "# Attribution",
        "",
        "This corpus was generated by `python -m amongus.recipes.minispoof` (amongus) from",
        "recordings and generators installed from Debian and PyPI packages. Every utterance's",
        "source and licence are in `metadata.jsonl`. Bonafide audio was resampled to 16 kHz,",
        "trimmed, cropped, mixed with a faint noise floor, low-passed and loudness-normalised;",
        "spoofs were made from the transcripts of (TTS) or from recordings (vocoders) of the",
        "sources below. Derived audio keeps the licence of its source (CC-BY-SA-3.0 sources:",
        "share alike).",
        "",
        "## Bonafide sources",
        "",
        "| source | licence | utterances |",
        "|---|---|---|",
    ]
    lines += [f"| {s} | {lic} | {n} |" for (s, lic), n in sorted(by_source.items())]
    lines += [
        "",
        "Italian prompts by Marco Menardi and Paola Dal Zot: http://www.voip.ammdomus.it",
        "(attribution requested by the authors). Asterisk prompts: Allison Smith",
        "(theivrvoice.com), June Wallack (junewallack.com), Carlo Flora",
        "(segreterietelefoniche.it), Russian prompts provided by Maxim Topal; Digium, Inc.",
        "",
        "## Spoof systems",
        "",
        "| id | name | kind | description | licence | utterances |",
        "|---|---|---|---|---|---|",
    ]
    for system in SYSTEMS:
        if spoof_systems.get(system.system_id):
            lines.append(
                f"| {system.system_id} | {system.name} | {system.kind} | {system.description} "
                f"| {system.licence} | {spoof_systems[system.system_id]} |"
            )
    return "\n".join(lines) + "\n"


def readme_text(size: str, seed: int, utterances: list[Utterance]) -> str:
    return (
        "# minispoof corpus\n\n"
        f"Built by `python -m amongus.recipes.minispoof --size {size} --seed {seed}`; "
        f"{len(utterances)} utterances, 16 kHz mono FLAC, ASVspoof 2019 LA layout.\n"
        "Protocol lines: `SPEAKER UTT - SYSTEM LABEL`. System ids are described in "
        "ATTRIBUTION.md; per-utterance source and licence in metadata.jsonl.\n\n"
        "```\n" + corpus_summary(utterances) + "\n```\n"
    )


def corpus_summary(utterances: list[Utterance]) -> str:
    """Counts per split x label x system x speaker, and total durations."""
    lines = []
    for split in SPLITS:
        members = [u for u in utterances if u.split == split]
        if not members:
            continue
        lines.append(
            f"{split}: {len(members)} utterances, {sum(u.duration for u in members) / 60:.1f} min"
        )
        for label in ("bonafide", "spoof"):
            group = [u for u in members if u.label == label]
            duration = sum(u.duration for u in group)
            lines.append(f"  {label}: {len(group)} utterances, {duration / 60:.1f} min")
            by_system: dict[str, Counter] = defaultdict(Counter)
            for u in group:
                by_system[u.system][u.speaker] += 1
            for system in sorted(by_system):
                speakers = by_system[system]
                name = SYSTEMS_BY_ID[system].name if system in SYSTEMS_BY_ID else "-"
                detail = " ".join(f"{spk}:{n}" for spk, n in sorted(speakers.items()))
                lines.append(f"    {system} {name} ({sum(speakers.values())}): {detail}")
    speakers = {u.speaker for u in utterances}
    bonafide_speakers = {u.speaker for u in utterances if u.label == "bonafide"}
    systems = sorted({u.system for u in utterances if u.label == "spoof"})
    eval_only = sorted(
        set(u.system for u in utterances if u.split == "eval" and u.label == "spoof")
        - {u.system for u in utterances if u.split != "eval"}
    )
    total = sum(u.duration for u in utterances)
    durations = sorted(u.duration for u in utterances)
    lines += [
        f"total: {len(utterances)} utterances, {total / 60:.1f} min "
        f"(duration {durations[0]:.2f}-{durations[-1]:.2f} s)"
        if durations
        else "total: 0",
        f"speakers: {len(speakers)} ({len(bonafide_speakers)} with bonafide speech)",
        f"spoof systems: {len(systems)} ({' '.join(systems)}); eval only: {' '.join(eval_only) or 'none'}",
        "languages: "
        + " ".join(f"{k}:{v}" for k, v in sorted(Counter(u.language for u in utterances).items())),
    ]
    return "\n".join(lines)
