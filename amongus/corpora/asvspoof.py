"""Reader for ASVspoof 2019 LA protocols (and the 2021 style with extra columns).

Layout (as distributed)::

    ROOT/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.train.trn.txt   (dev.trl, eval.trl)
    ROOT/ASVspoof2019_LA_{train,dev,eval}/flac/LA_T_1000137.flac

Protocol lines are header-less and space separated: ``SPEAKER UTT - SYSTEM LABEL``
(``LA_0079 LA_T_1138215 - - bonafide``). The 2021 keys add columns
(``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval``); there the label is the first
``bonafide``/``spoof`` token from the fifth column on and the system the token before it.

Protocols are read as ``utf-8-sig`` (a byte-order mark is not part of the first speaker id);
audio files are found whatever the case of their suffix (``LA_E_1.FLAC``), ``.flac`` before
``.wav``; an utterance id listed twice (in one protocol or across splits) is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..labels import normalize_label
from ..manifest import Utterance
from .base import AudioFolderIndex, CorpusListing

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "eval")
PROTOCOL_DIR = "ASVspoof2019_LA_cm_protocols"
AUDIO_PREFERENCE = (".flac", ".wav")  # in this order: some copies are converted to WAV
PROTOCOL_FILES = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}


def protocol_path(root: str | os.PathLike, split: str) -> Path:
    """Where the protocol of ``split`` lives under ``root`` (the file may not exist)."""
    if split not in SPLITS:
        raise ValueError(f"unknown ASVspoof split {split!r}: expected one of {SPLITS}")
    return Path(root) / PROTOCOL_DIR / PROTOCOL_FILES[split]


def audio_dir(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / f"ASVspoof2019_LA_{split}" / "flac"


def is_asvspoof_root(root: str | os.PathLike) -> bool:
    """True when ``root`` holds at least one ASVspoof 2019 LA protocol file."""
    return any(protocol_path(root, split).is_file() for split in SPLITS)


def parse_protocol_line(line: str, *, path: str | os.PathLike, line_number: int) -> dict:
    """``{"speaker", "utt_id", "system", "label"}`` from one protocol line.

    Raises:
        ValueError: naming the file and line when the line has too few columns or no label.
    """
    fields = line.split()
    if len(fields) < 5:
        raise ValueError(
            f"{path}:{line_number}: expected at least 5 columns "
            f"'SPEAKER UTT - SYSTEM LABEL', got {len(fields)}: {line.strip()!r}"
        )
    label_index = None
    for index in range(4, len(fields)):
        if fields[index].lower() in ("bonafide", "spoof"):
            label_index = index
            break
    if label_index is None:
        raise ValueError(
            f"{path}:{line_number}: no 'bonafide' or 'spoof' label from column 5 on: "
            f"{line.strip()!r}"
        )
    return {
        "speaker": fields[0],
        "utt_id": fields[1],
        "system": fields[label_index - 1],
        "label": normalize_label(fields[label_index]),
    }


def read_asvspoof(
    root: str | os.PathLike, split: str | None, *, check_files: bool = True
) -> CorpusListing:
    """List the utterances of one split (``"train"``, ``"dev"``, ``"eval"``; ``None`` = every
    split whose protocol exists).

    Every protocol line becomes an :class:`~amongus.manifest.Utterance` unless its audio file
    is missing or unreadable (with ``check_files``, which reads headers only); those are listed
    in ``problems``. ``duration`` and ``sample_rate`` come from the header when checked.

    Raises:
        FileNotFoundError: the protocol of a requested split does not exist.
        ValueError: a malformed protocol line (the message names file and line).
        DuplicateIdError: an utterance id listed twice, in one protocol or in two splits (a
            ``ValueError`` naming the id and both ``file:line`` places).
    """
    root = Path(root)
    listing = CorpusListing(root=str(root), kind="asvspoof")
    if split is None:
        splits = [s for s in SPLITS if protocol_path(root, s).is_file()]
        if not splits:
            raise FileNotFoundError(f"{root}: no ASVspoof 2019 LA protocol under {PROTOCOL_DIR}/")
    else:
        splits = [split]
    for name in splits:
        listing.extend(_read_split(root, name, check_files=check_files))
    return listing


def _read_split(root: Path, split: str, *, check_files: bool) -> CorpusListing:
    protocol = protocol_path(root, split)
    if not protocol.is_file():
        raise FileNotFoundError(f"{protocol}: ASVspoof protocol for split {split!r} not found")
    listing = CorpusListing(root=str(root), kind="asvspoof")
    audio_files = AudioFolderIndex(audio_dir(root, split))
    with open(protocol, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            entry = parse_protocol_line(line, path=protocol, line_number=line_number)
            path = audio_files.find(entry["utt_id"], AUDIO_PREFERENCE)
            listing.add(
                Utterance(
                    utt_id=entry["utt_id"],
                    path=str(path),
                    label=entry["label"],
                    speaker=entry["speaker"],
                    system=entry["system"] if entry["label"] == "spoof" else "-",
                    source="ASVspoof 2019 LA layout",
                    split=split,
                ),
                check_files=check_files,
                where=f"{protocol}:{line_number}",
            )
    if listing.problems:
        logger.warning(
            "%s: %d of %d files missing or unreadable",
            protocol,
            len(listing.problems),
            len(listing.problems) + len(listing.utterances),
        )
    return listing
