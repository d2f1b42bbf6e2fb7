"""Label vocabulary, composition labels and score orientation.

Conventions used everywhere in amongus:

* an utterance or stream label is ``"bonafide"`` or ``"spoof"`` (ASVspoof spelling);
* in binary tensors and metrics the **positive class is spoof**: ``SPOOF_INDEX == 1``;
* a *spoof probability* is higher for spoof; an *ASVspoof score* (``cm_score``) is higher for
  bonafide, as in the official ASVspoof evaluation code;
* a mixture's composition label lists one letter per source, spoofs first: ``"SS"``, ``"SB"``,
  ``"BB"`` for two sources and ``"SSB"``, ``"SBBB"``... beyond. It is the sorted label multiset,
  so ``SB`` whatever the order of the sources.
"""

from __future__ import annotations

from collections.abc import Iterable

BONAFIDE = "bonafide"
SPOOF = "spoof"
LABELS = (BONAFIDE, SPOOF)
BONAFIDE_INDEX = 0
SPOOF_INDEX = 1

_SPOOF_SPELLINGS = {"spoof", "spoofed", "fake", "synthetic", "deepfake", "fake_audio", "s", "1"}
_BONAFIDE_SPELLINGS = {
    "bonafide",
    "bona-fide",
    "bona_fide",
    "bona fide",
    "real",
    "genuine",
    "human",
    "b",
    "0",
}


def normalize_label(label: str | int) -> str:
    """Map a spelling of a class name (``"Fake"``, ``"bona-fide"``, ``"real"``...) to amongus' label.

    Raises ``ValueError`` for anything it does not recognise.

    >>> normalize_label("Real"), normalize_label("FAKE")
    ('bonafide', 'spoof')
    """
    key = str(label).strip().lower()
    if key in _SPOOF_SPELLINGS:
        return SPOOF
    if key in _BONAFIDE_SPELLINGS:
        return BONAFIDE
    raise ValueError(
        f"unknown label {label!r}: expected a spelling of bonafide "
        f"({sorted(_BONAFIDE_SPELLINGS)}) or spoof ({sorted(_SPOOF_SPELLINGS)})"
    )


def is_spoof_label(label: str | int) -> bool:
    return normalize_label(label) == SPOOF


def label_index(label: str | int) -> int:
    """``0`` for bonafide, ``1`` for spoof."""
    return SPOOF_INDEX if is_spoof_label(label) else BONAFIDE_INDEX


def composition_label(labels: Iterable[str]) -> str:
    """The composition of a mixture: one letter per source, spoofs first.

    >>> composition_label(["bonafide", "spoof"]), composition_label(["spoof", "spoof", "bonafide"])
    ('SB', 'SSB')
    """
    normalized = [normalize_label(label) for label in labels]
    if not normalized:
        raise ValueError("a mixture needs at least one source label")
    n_spoof = sum(label == SPOOF for label in normalized)
    return "S" * n_spoof + "B" * (len(normalized) - n_spoof)


def composition_labels(n_sources: int) -> list[str]:
    """Every composition label for ``n_sources`` sources, most spoofs first.

    >>> composition_labels(2)
    ['SS', 'SB', 'BB']
    """
    if n_sources < 1:
        raise ValueError(f"n_sources must be >= 1, got {n_sources}")
    return ["S" * k + "B" * (n_sources - k) for k in range(n_sources, -1, -1)]


def n_spoofed(composition: str) -> int:
    """Number of spoofed speakers in a composition label such as ``"SSB"``."""
    if not composition or set(composition) - {"S", "B"}:
        raise ValueError(f"not a composition label: {composition!r}")
    return composition.count("S")
