"""Reader for folder datasets of real and fake audio.

Labels come from folder names (``real``/``fake``, ``bonafide``/``spoof``, ``Real``/``Fake``,
``genuine``, ``human``, ``synthetic``, ``deepfake``... via :func:`amongus.labels.normalize_label`,
plurals included), the split from folder names too (``training``/``train``,
``validation``/``valid``/``val``/``dev``, ``testing``/``test``/``eval``), so layouts such as
Fake-or-Real ``for-2seconds/{training,validation,testing}/{real,fake}/*.wav`` or
``my_set/fake/<system>/*.flac`` need no configuration. For a spoof, the folder directly under the
label folder (when there is one) is taken as the system name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..labels import normalize_label
from ..manifest import Utterance
from .base import AUDIO_SUFFIXES, CorpusListing, has_audio_suffix

logger = logging.getLogger(__name__)

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "trn": "train",
    "dev": "dev",
    "development": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "eval": "eval",
    "evaluation": "eval",
    "test": "eval",
    "testing": "eval",
}


def folder_label(name: str) -> str | None:
    """The label a folder name stands for, or None (``"Fake"`` -> ``"spoof"``, ``"reals"`` ->
    ``"bonafide"``, ``"audio"`` -> None)."""
    key = name.strip().lower()
    if len(key) <= 1:  # "s", "b", "0", "1" are label spellings, not folder names
        return None
    for candidate in (key, key[:-1] if key.endswith("s") else None):
        if candidate:
            try:
                return normalize_label(candidate)
            except ValueError:
                continue
    return None


def folder_split(name: str) -> str | None:
    return SPLIT_NAMES.get(name.strip().lower())


def read_folder_dataset(root: str | os.PathLike, *, check_files: bool = True) -> CorpusListing:
    """List every audio file (``.wav``, ``.flac``, ``.mp3``, ``.ogg``, recursively) under ``root``.

    The label is the innermost folder that names one; files under no label folder are reported
    in ``problems`` (``"no label folder in path"``), as are unreadable or empty files when
    ``check_files`` is set (headers only). Suffixes match whatever their case (``.WAV``).
    ``utt_id`` is the path relative to ``root`` without suffix.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        DuplicateIdError: two files differ only by suffix (``real/a.wav`` and ``real/a.flac``
            are both ``real/a``); a ``ValueError`` naming the id and both paths.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder dataset not found")
    listing = CorpusListing(root=str(root), kind="folder")
    for path in sorted(root.rglob("*")):
        if not has_audio_suffix(path) or not (path.is_file() or path.is_symlink()):
            continue
        relative = path.relative_to(root)
        folders = relative.parts[:-1]
        label = None
        label_depth = -1
        split = "-"
        for depth, name in enumerate(folders):
            name_label = folder_label(name)
            if name_label is not None:
                label, label_depth = name_label, depth
            name_split = folder_split(name)
            if name_split is not None:
                split = name_split
        if label is None:
            listing.problems.append((str(path), "no label folder in path"))
            continue
        system = "-"
        if label == "spoof" and label_depth + 1 < len(folders):
            system = folders[label_depth + 1]
        listing.add(
            Utterance(
                utt_id=relative.with_suffix("").as_posix(),
                path=str(path),
                label=label,
                system=system,
                source=f"folder dataset {root.name}",
                split=split,
            ),
            check_files=check_files,
        )
    if not listing.utterances and not listing.problems:
        logger.warning("%s: no audio files (%s) found", root, ", ".join(AUDIO_SUFFIXES))
    if listing.problems:
        logger.warning("%s: %d file(s) not usable", root, len(listing.problems))
    return listing
