"""The reference study's file conventions: ``UTT1_UTT2.flac`` and its metadata lines.

One line per mixture, space separated::

    MIXTURE UTT1 LABEL1 UTT2 LABEL2 MIXLABEL

``MIXTURE`` is the mixture id (the file name without extension), ``LABELk`` ``bonafide`` or
``spoof`` and ``MIXLABEL`` the composition (``SS``, ``SB`` or ``BB``). Mixtures of more sources
list one ``UTT LABEL`` pair per source. Ids are written with
:func:`amongus.manifest.encode_field` (a space becomes ``%20``; the study's ids, which hold
none, are unchanged) and decoded on reading, so distinct ids never merge; a mixture id listed
twice is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..fsutil import atomic_write_text
from ..labels import composition_label
from ..manifest import Mixture, UniqueIds, decode_field, encode_field


def thesis_line(mixture: Mixture) -> str:
    """The study's metadata line for one mixture."""
    fields = [encode_field(mixture.mixture_id)]
    for source in mixture.sources:
        fields += [encode_field(source.utt_id), source.label]  # reversibly: no blank in a field
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
    that disagrees with the source labels, and ``DuplicateIdError`` (a ``ValueError``) naming
    both lines for a mixture id listed twice.
    """
    rows = []
    seen = UniqueIds("mixture id")
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 6 or len(fields) % 2 != 0:
                raise ValueError(f"{path}:{number}: expected MIXTURE (UTT LABEL)+ MIXLABEL")
            utterances, labels = fields[1:-1:2], fields[2:-1:2]
            if composition_label(labels) != fields[-1]:
                raise ValueError(f"{path}:{number}: label {fields[-1]} disagrees with {labels}")
            try:
                mixture_id = decode_field(fields[0])
                utterances = [decode_field(utterance) for utterance in utterances]
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
            seen.add(mixture_id, f"{path}:{number}")
            rows.append(
                {
                    "mixture": mixture_id,
                    "utterances": utterances,
                    "labels": labels,
                    "label": fields[-1],
                }  # fmt: skip
            )
    return rows
