"""The reference study's file conventions: ``UTT1_UTT2.flac`` and its metadata lines.

One line per mixture, space separated::

    MIXTURE UTT1 LABEL1 UTT2 LABEL2 MIXLABEL

``MIXTURE`` is the mixture id (the file name without extension), ``LABELk`` ``bonafide`` or
``spoof`` and ``MIXLABEL`` the composition (``SS``, ``SB`` or ``BB``). Mixtures of more sources
list one ``UTT LABEL`` pair per source.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..fsutil import atomic_write_text
from ..labels import composition_label
from ..manifest import Mixture


def thesis_line(mixture: Mixture) -> str:
    """The study's metadata line for one mixture."""
    fields = [mixture.mixture_id]
    for source in mixture.sources:
        fields += ["_".join(source.utt_id.split()), source.label]  # no blanks inside a field
    fields.append(mixture.label)
    return " ".join(fields)


def pair_name(utt_ids: Iterable[str]) -> str:
    """``UTT1_UTT2``: the study's mixture name."""
    return "_".join(utt_ids)


def write_thesis_metadata(path: str | os.PathLike, mixtures: Iterable[Mixture]) -> Path:
    """Write one metadata line per mixture, atomically."""
    text = "".join(thesis_line(mixture) + "\n" for mixture in mixtures)
    return atomic_write_text(path, text)


def read_thesis_metadata(path: str | os.PathLike) -> list[dict]:
    """Parse metadata lines into ``{"mixture", "utterances", "labels", "label"}`` dicts.

    Raises ``ValueError`` naming the file and line for a malformed line or a composition label
    that disagrees with the source labels.
    """
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 6 or len(fields) % 2 != 0:
                raise ValueError(f"{path}:{number}: expected MIXTURE (UTT LABEL)+ MIXLABEL")
            utterances, labels = fields[1:-1:2], fields[2:-1:2]
            if composition_label(labels) != fields[-1]:
                raise ValueError(f"{path}:{number}: label {fields[-1]} disagrees with {labels}")
            rows.append(
                {
                    "mixture": fields[0],
                    "utterances": utterances,
                    "labels": labels,
                    "label": fields[-1],
                }  # fmt: skip
            )
    return rows
