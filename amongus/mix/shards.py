"""Mixing on several machines: shard runs and merging their folders.

``python -m amongus.mix ... --shard i/n --out part_i`` makes only the mixtures of the ``i``-th
of ``n`` contiguous index blocks (:func:`amongus.sharding.shard_bounds`), planned exactly as the
unsharded run plans them. ``python -m amongus.mix ... --out all --merge part_0 ... part_n-1``
(the same options, no ``--shard``) brings the shards' finished mixtures into ``all`` and then
runs as a normal resumed run: every mixture a shard made is kept when its fingerprint (settings,
source draw, id) and its file's SHA-1 match; whatever a shard could not know about is made then
(a mixture redrawn because an input in another shard's block turned out unreadable, or an id
that changed because another block's mixture was redrawn). The merged folder's audio and
manifest are therefore those of the unsharded run, byte for byte.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fsutil import atomic_path
from ..locking import FolderLock

logger = logging.getLogger(__name__)


def import_shards(
    out_dir: Path,
    shard_dirs: Sequence[str | os.PathLike],
    *,
    settings: str,
    inputs: str,
    journal: dict[str, dict[str, Any]],
) -> int:
    """Copy the finished mixtures of ``shard_dirs`` into ``out_dir`` and add them to
    ``journal`` (finished mixtures by fingerprint, updated in place); returns how many were
    copied. A shard mixture whose file no longer matches its record is left out (it is made
    again by the run) with a warning.

    Raises:
        FileNotFoundError: a shard folder without a Mixer run in it.
        amongus.mix.mixer.MixFolderConflict: a shard made with other settings or inputs.
        amongus.locking.FolderBusyError: a shard run is still writing into its folder.
    """
    from .mixer import (
        JOURNAL_NAME,
        RUN_NAME,
        MixFolderConflict,
        _difference,
        _read_journal,
        file_problem,
    )

    copied = 0
    for shard_dir in map(Path, shard_dirs):
        if shard_dir.resolve() == out_dir.resolve():
            raise ValueError(f"--merge {shard_dir}: that is the output folder itself")
        run_path = shard_dir / RUN_NAME
        if not run_path.is_file():
            raise FileNotFoundError(f"--merge {shard_dir}: no Mixer run there ({RUN_NAME})")
        with FolderLock(shard_dir, purpose="amongus.mix --merge"):
            previous = json.loads(run_path.read_text(encoding="utf-8-sig"))
            if (previous.get("settings"), previous.get("inputs")) != (settings, inputs):
                difference = _difference(previous, settings, inputs, 0)
                raise MixFolderConflict(
                    f"--merge {shard_dir}: made with {difference}; merge only shards of this "
                    "command (the same options, seed, split and input)"
                )
            for key, record in _read_journal(shard_dir / JOURNAL_NAME).items():
                if key in journal and file_problem(out_dir, journal[key]) is None:
                    continue
                problem = file_problem(shard_dir, record)
                if problem is not None:
                    logger.warning("--merge: not taking %s/%s: %s", shard_dir, record["path"],
                                   problem)  # fmt: skip
                    continue
                target = out_dir / record["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as temporary:
                    shutil.copyfile(shard_dir / record["path"], temporary)
                journal[key] = record
                copied += 1
    logger.info("--merge: %d mixture(s) taken from %d shard folder(s)", copied, len(shard_dirs))
    return copied


__all__ = ["import_shards"]
