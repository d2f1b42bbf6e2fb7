"""Atomic, resumable checkpoints.

A checkpoint is a folder ``<output>/checkpoints/step-<global step>`` holding:

* ``model/``: the classifier in its family's format (``save_pretrained``: for Hugging Face
  models config, safetensors weights, feature-extractor settings; for AASIST/SSL_W2V
  ``model.safetensors`` and ``config.json``), loadable by ``load_classifier``;
* Accelerate's state (``accelerator.save_state``): optimizer, scheduler, gradient scaler and the
  RNG states (python, numpy, torch, CUDA) of every process;
* ``trainer_state.json``: epoch, step within the epoch, global step, the sampler's batches for
  the epoch, the best validation EER so far and the history rows.

It is written under a temporary name (``.tmp-step-...``) and renamed when complete, so a
process killed at any moment leaves either the previous checkpoint or the new one, never half of
one. :func:`latest_checkpoint` only sees complete ones.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fsutil import write_errors
from .stream_cache import atomic_write_text

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
MODEL_DIR = "model"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_name(global_step: int) -> str:
    return f"step-{global_step:09d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    path = Path(checkpoint) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: unreadable trainer state ({error})") from error


def save_checkpoint(
    accelerator,
    root: str | os.PathLike,
    *,
    global_step: int,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write a checkpoint atomically (all processes call this); returns its folder.

    The model is written in Hugging Face format by the save hook the Trainer registers
    (:func:`register_hf_model_hooks`); ``state`` goes to ``trainer_state.json``.

    Raises:
        amongus.fsutil.OutputError: the file system refused a write (full disk, quota,
            read-only); the message names the checkpoint and the cause, and the partial
            checkpoint is removed.
    """
    root = Path(root)
    final = root / checkpoint_name(global_step)
    tmp = root / f".tmp-{checkpoint_name(global_step)}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    try:
        # torch.save reports a full disk as "unexpected pos" without a path: name it
        with write_errors(final):
            accelerator.save_state(str(tmp))
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # no partial checkpoint left behind
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        try:
            atomic_write_text(tmp / STATE_FILE, json.dumps(state, sort_keys=True) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _publish_checkpoint(tmp, root, global_step=global_step, keep=keep)
        for leftover in root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def register_hf_model_hooks(accelerator, classifier) -> None:
    """Make ``save_state``/``load_state`` write and read the model in Hugging Face format.

    The weights are then stored once per checkpoint, as ``model/`` (``save_pretrained``), instead
    of Accelerate's own ``model.safetensors``.
    """

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            classifier.save_pretrained(Path(output_dir) / MODEL_DIR)
        while weights:  # do not save the weights a second time
            weights.pop()

    def load_hook(models, input_dir):
        from safetensors.torch import load_file

        folder = Path(input_dir) / MODEL_DIR
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ValueError(f"{folder}: no safetensors weights in the checkpoint")
        state = {}
        for file in files:
            state.update(load_file(str(file)))
        while models:
            model = accelerator.unwrap_model(models.pop())
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or missing:
                raise ValueError(
                    f"{folder}: weights do not match the model (missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]})"
                )

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def save_model_atomically(
    classifier, directory: str | os.PathLike, *, extra: Callable[[Path], None] | None = None
) -> Path:
    """``classifier.save_pretrained`` into a temporary folder renamed over ``directory``.

    ``extra(folder)`` writes more files into the folder before the rename (the Trainer's
    ``trainer_config.json`` and ``history.csv``).
    """
    directory = Path(directory)
    tmp = directory.with_name(f".tmp-{directory.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        with write_errors(directory):
            classifier.save_pretrained(tmp)
            if extra is not None:
                extra(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, directory, old=directory.with_name(f".old-{directory.name}"))
    return directory


def save_folder_checkpoint(
    root: str | os.PathLike,
    *,
    global_step: int,
    state: dict[str, Any],
    keep: int,
    write: Callable[[Path], None],
) -> Path:
    """Write a single-process checkpoint atomically; returns its folder.

    ``write(folder)`` fills a temporary folder (models, optimizer state...), ``state`` goes to
    ``trainer_state.json``, then the folder is renamed to ``step-N`` (the joint trainer's
    checkpoints, :mod:`amongus.training.joint`; the same layout rules as
    :func:`save_checkpoint`, so :func:`latest_checkpoint` finds them).

    Raises:
        amongus.fsutil.OutputError: the file system refused a write (the partial checkpoint is
            removed).
    """
    root = Path(root)
    final = root / checkpoint_name(global_step)
    tmp = root / f".tmp-{checkpoint_name(global_step)}"
    root.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        with write_errors(final):
            write(tmp)
            atomic_write_text(tmp / STATE_FILE, json.dumps(state, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish_checkpoint(tmp, root, global_step=global_step, keep=keep)


def _swap_in(tmp: Path, final: Path, *, old: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``; an existing ``final`` is moved aside to
    ``old`` first and removed only once the new folder is in place, so a crash never leaves
    ``final`` missing or half written."""
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def _publish_checkpoint(tmp: Path, root: Path, *, global_step: int, keep: int) -> Path:
    """Rename the finished ``tmp`` to ``root/step-N`` (the same step written again after a
    resume replaces the old folder) and keep only the newest ``keep`` checkpoints."""
    final = root / checkpoint_name(global_step)
    _swap_in(tmp, final, old=root / f".old-{checkpoint_name(global_step)}")
    for stale in list_checkpoints(root)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    logger.info("checkpoint written: %s", final)
    return final
