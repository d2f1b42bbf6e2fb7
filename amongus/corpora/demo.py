"""The demo corpus bundled with the package (ASVspoof 2019 LA layout, 16 kHz FLAC).

Built by ``python -m amongus.recipes.minispoof --size demo --seed 0`` from apt packages only;
see ``amongus/data/demo/ATTRIBUTION.md`` for sources and licences.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..manifest import Utterance
from .asvspoof import SPLITS, read_asvspoof


def demo_corpus_root() -> Path:
    """Folder of the bundled demo corpus (works from a wheel install too)."""
    root = Path(str(files("amongus").joinpath("data", "demo")))
    if not (root / "ASVspoof2019_LA_cm_protocols").is_dir():
        raise FileNotFoundError(
            f"{root}: bundled demo corpus missing; reinstall amongus or rebuild it with "
            "python -m amongus.recipes.minispoof --size demo --seed 0 --out amongus/data/demo"
        )
    return root


def demo_utterances(split: str) -> list[Utterance]:
    """The demo utterances of ``split`` (``"train"``, ``"dev"`` or ``"eval"``).

    Raises ``ValueError`` if any bundled file is missing or unreadable (a broken install).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
    listing = read_asvspoof(demo_corpus_root(), split)
    if listing.problems:
        raise ValueError(f"bundled demo corpus is damaged:\n{listing.summary()}")
    return listing.utterances
