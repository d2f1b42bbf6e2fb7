"""Readers for the corpora users bring: ASVspoof 2019 LA protocols, real/fake folder trees and
JSONL utterance manifests. Every reader returns a :class:`~amongus.corpora.base.CorpusListing`
that reports missing or unreadable files instead of skipping them silently.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..manifest import read_utterances
from .asvspoof import is_asvspoof_root, read_asvspoof
from .base import CorpusListing, check_audio_file
from .demo import demo_corpus_root, demo_utterances
from .folder import read_folder_dataset

__all__ = [
    "CorpusListing",
    "check_audio_file",
    "demo_corpus_root",
    "demo_utterances",
    "load_utterances",
    "read_asvspoof",
    "read_folder_dataset",
    "read_manifest",
]


def read_manifest(path: str | os.PathLike, *, check_files: bool = True) -> CorpusListing:
    """Utterances from a JSONL manifest; relative audio paths are taken from the manifest's
    folder. Missing or unreadable audio goes to ``problems``."""
    path = Path(path)
    listing = CorpusListing(root=str(path), kind="manifest")
    for utterance in read_utterances(path):
        audio = Path(utterance.path)
        if not audio.is_absolute():
            audio = path.parent / audio
            utterance.path = str(audio)
        listing.add(utterance, check_files=check_files)
    return listing


def load_utterances(
    source: str | os.PathLike, split: str | None = None, *, check_files: bool = True
) -> CorpusListing:
    """Read a corpus, whatever its kind.

    ``source`` is an ASVspoof 2019 LA root (a folder with ``ASVspoof2019_LA_cm_protocols/``), a
    folder tree of real/fake audio, or a ``.jsonl`` utterance manifest. ``split`` keeps one
    split (``"train"``, ``"dev"``, ``"eval"``); ``None`` keeps all.

    >>> listing = load_utterances(demo_corpus_root(), "eval")
    >>> sorted({u.label for u in listing.utterances})
    ['bonafide', 'spoof']
    """
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() not in (".jsonl", ".json"):
            raise ValueError(f"{source}: expected a .jsonl utterance manifest or a folder")
        listing = read_manifest(source, check_files=check_files)
    elif source.is_dir() and is_asvspoof_root(source):
        return read_asvspoof(source, split, check_files=check_files)
    elif source.is_dir():
        listing = read_folder_dataset(source, check_files=check_files)
    else:
        raise FileNotFoundError(f"{source}: no such corpus (file or folder)")
    if split is not None:
        listing.utterances = [u for u in listing.utterances if u.split == split]
    return listing
