"""The resumable state of a separator training run: one checkpoint file and a learning curve.

``checkpoint.pt`` (``torch.save``, read back with ``weights_only=True``) holds everything that
decides the rest of the run: the model and optimizer state, the learning-rate scheduler, the
random generators (the mixture generator's state is the position in the data stream), the step,
the running training loss, the best validation score with its weights, the history and the
training wall time so far. It is written under a temporary name and renamed
(:func:`amongus.fsutil.atomic_path`), so a process killed at any moment leaves the previous
checkpoint or the new one. Rerunning the same command continues from it and gives the weights an
uninterrupted run would have had.

``learning_curve.jsonl`` has one JSON line per validation (``step``, ``elapsed_s`` training wall
time, ``train_loss``, ``si_sdr``, ``si_sdri`` on the validation mixtures, ``lr``, ``time``); it is
rewritten from the checkpoint's history on resume, so lines written after the last checkpoint
by a killed process do not stay.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CURVE_FILE = "learning_curve.jsonl"
FORMAT_VERSION = 1
#: Settings that may differ between the invocations of one run: budgets, the machine, the
#: test set. Any other difference is refused (the run would not be the one it continues).
RESUMABLE_CHANGES = frozenset(
    {"max_steps", "max_minutes", "threads", "device", "amp", "out_dir", "n_test_mixtures",
     "test_seed", "log_every"}
)  # fmt: skip


@dataclass
class RunState:
    """Counters of a run that are not model, optimizer or generator state."""

    step: int = 0
    wall_seconds: float = 0.0  # training wall time of the invocations before this one
    invocations: int = 0
    running_loss: float = 0.0  # sum of training losses since the last validation
    running_count: int = 0
    best: dict[str, Any] = field(default_factory=dict)  # step, si_sdr, si_sdri
    initial: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def capture_rng(train_rng) -> dict[str, Any]:
    """The states of the mixture generator (a ``numpy.random.Generator``), Python's and torch's
    generators (CPU and, when present, CUDA)."""
    import torch

    state: dict[str, Any] = {
        "mixtures": train_rng.bit_generator.state,
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(train_rng, state: dict[str, Any]) -> None:
    """Put the generators back in the states :func:`capture_rng` recorded."""
    import torch

    train_rng.bit_generator.state = state["mixtures"]
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def config_differences(
    saved: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[str]:
    """Names of the settings that differ, other than :data:`RESUMABLE_CHANGES`.

    A setting added to the code after the run started is absent from ``saved``; the run
    behaved as its default (``defaults``, which keeps the old behaviour), so it differs only
    when ``current`` sets something else. Without ``defaults`` such settings are not compared.
    """
    defaults = defaults or {}
    names = set(current) - RESUMABLE_CHANGES
    names = {name for name in names if not name.startswith("_")}  # notes, not settings
    changed = []
    for name in sorted(names):
        if name in saved:
            before = saved[name]
        elif name in defaults:
            before = defaults[name]
        else:
            continue
        if before != current[name]:
            changed.append(name)
    return changed


def save_checkpoint(
    path: str | os.PathLike,
    *,
    config: dict[str, Any],
    state: RunState,
    model_state: dict[str, Any],
    best_state: dict[str, Any],
    optimizer,
    scheduler,
    rng: dict[str, Any],
) -> Path:
    """Write the checkpoint atomically (see the module docstring). Returns its path.

    Raises:
        OutputError: the file system refused the write (names the file).
    """
    import torch

    from ..fsutil import atomic_path

    payload = {
        "format": "amongus-separator-training",
        "version": FORMAT_VERSION,
        "config": config,
        "state": state.to_dict(),
        "model": model_state,
        "best_model": best_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (no arbitrary code is unpickled).

    Raises:
        ValueError: the file is unreadable, truncated or not such a checkpoint (names it).
    """
    import torch

    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, ... all mean: not usable
        raise ValueError(f"{path}: unreadable training checkpoint ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != "amongus-separator-training":
        raise ValueError(f"{path}: not a separator training checkpoint of amongus")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {payload.get('version')}, this code reads {FORMAT_VERSION}"
        )
    payload["state"] = RunState(**payload["state"])
    return payload


def write_curve(path: str | os.PathLike, history: list[dict[str, Any]]) -> Path:
    """Rewrite the learning curve from ``history`` (atomically)."""
    from ..fsutil import atomic_write_text

    text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in history)
    return atomic_write_text(path, text)


def append_curve(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Add one line to the learning curve."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_curve(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The learning curve's records (an empty list when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                logger.warning("%s:%d: unreadable line skipped", path, number)
    return records
