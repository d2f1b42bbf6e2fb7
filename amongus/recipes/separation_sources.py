"""More training speakers for the separator recipe (``--extra-speech``): single-word recordings
of apt packages that the corpus recipe does not use.

* ``klettres-data``: letters and syllables, ``/usr/share/klettres/<lang>/{alpha,syllab}/``;
  one speaker per folder, ``klettres_<lang>_<alpha|syllab>`` (``klettres_en_GB_alpha``);
* ``ktuberling-data``: object names, ``/usr/share/ktuberling/sounds/<lang>/``; one speaker per
  language and theme: ``ktuberling_<lang>`` for the files without a theme prefix,
  ``ktuberling_<lang>_<theme>`` for a theme (a file-name prefix before ``_`` shared by at least
  :data:`MIN_THEME_FILES` files: ``egypt_camel.ogg``). Script variants of one language
  (``sr@latin``, ``sr@ijekavian``) hold the same recordings (identical files here) and count as
  the base language;
* ``asterisk-prompt-es-co`` (``/usr/share/asterisk/sounds/es/``, speaker ``es_co``) and
  ``asterisk-prompt-fr-armelle`` (``.../sounds/fr/``, speaker ``armelle``): telephone prompts,
  header-less GSM 6.10 at 8 kHz, which libsndfile reads by the ``.gsm`` suffix. The folder
  counts only when it is a real folder: Debian's ``sounds/es``, when it is a symlink, is the
  alternatives link to another voice. ``beep*`` files are tones and are not used.

**Where.** Each package is looked for under the file-system root and under an *unpacked*
root (:func:`unpacked_root`: ``$AMONGUS_EXTRA_SPEECH_ROOT``, else
``~/.cache/amongus/extra-speech``). The two Asterisk prompt packages conflict with
``asterisk-core-sounds-es``/``-fr`` (they provide ``asterisk-prompt-es``/``-fr``): installing
them with apt removes the transcripts that the corpus recipe (and the default separator data)
needs, so ``AMONGUS_SEPARATOR_DATA=1 scripts/setup.sh`` unpacks them there (``dpkg-deb -x``)
instead of installing them.

**Speakers are recording sets, and one voice per set is an assumption**: the packages do not
name their speakers (except the two Asterisk prompts: July E. Jimenez and Armelle Desjardins),
and nothing was listened to. A cheap check (median F0 per clip, ``librosa.yin``) showed that one
language folder is not one voice: KLettres' German letters are spoken at about 220 Hz and its
German syllables at about 110 Hz; KTuberling's Catalan files without a theme at about 150 Hz,
its Catalan themes at 220-270 Hz. Hence the finer speakers above. The cost: one person who
recorded two sets counts as two speakers, so a training mixture may, rarely, hold one voice
twice; the other way (two voices under one speaker) would put two voices in one packed
pseudo-utterance every time. Files that are byte-identical to an earlier one (in sorted path
order) are left out and counted, so that one recording never counts for two speakers.

The speakers found here are unknown to the corpus recipe: they only ever train
(:func:`add_training_speakers`); the validation and test speakers of a run stay those chosen
without them. Nothing here reads samples: discovery lists files and hashes their bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..manifest import Utterance

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/")
UNPACKED_ROOT_VARIABLE = "AMONGUS_EXTRA_SPEECH_ROOT"
KLETTRES = Path("usr/share/klettres")
KTUBERLING = Path("usr/share/ktuberling/sounds")
ASTERISK_SOUNDS = Path("usr/share/asterisk/sounds")
#: a file-name prefix shared by fewer files is part of a word (``naocare_``), not a theme
MIN_THEME_FILES = 4
CLIP_SUFFIXES = (".ogg", ".opus", ".wav", ".flac", ".gsm")
EXTRA_PACKAGES = (
    "klettres-data",
    "ktuberling-data",
    "asterisk-prompt-es-co",
    "asterisk-prompt-fr-armelle",
)


@dataclass(frozen=True)
class PromptVoice:
    folder: str  # under usr/share/asterisk/sounds
    package: str
    speaker: str
    language: str
    source: str
    licence: str


PROMPT_VOICES = (
    PromptVoice(
        "es", "asterisk-prompt-es-co", "es_co", "es",
        "asterisk-prompt-es-co (July E. Jimenez, Avatar Ltda.)", "GPL-2",
    ),
    PromptVoice(
        "fr", "asterisk-prompt-fr-armelle", "armelle", "fr",
        "asterisk-prompt-fr-armelle (Armelle Desjardins)", "BSD-3-Clause-like (see package)",
    ),
)  # fmt: skip


@dataclass
class ExtraSpeech:
    """The extra recordings found: utterances, the packages missing, files left out and why."""

    utterances: list[Utterance]
    missing_packages: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> files

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    def describe(self) -> dict[str, Any]:
        """Counts per package (utterances, speakers), missing packages, files left out."""
        from .separation_data import source_counts

        return {
            "sources": source_counts(self.utterances),
            "speakers": len(self.speakers),
            "missing_packages": sorted(self.missing_packages),
            "left_out": dict(sorted(self.left_out.items())),
        }


def unpacked_root() -> Path:
    """Where ``scripts/setup.sh`` unpacks packages that must not be installed (see above)."""
    value = os.environ.get(UNPACKED_ROOT_VARIABLE)
    return Path(value) if value else Path.home() / ".cache" / "amongus" / "extra-speech"


def _root(root: str | os.PathLike | None) -> Path:
    return Path(DEFAULT_ROOT if root is None else root)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES)


def _utterance(path: Path, utt_id: str, speaker: str, language: str, source: str, licence: str):
    return Utterance(
        utt_id=utt_id, path=str(path), label="bonafide", speaker=speaker, language=language,
        source=source, licence=licence,
    )  # fmt: skip


def klettres_clips(
    failures: Counter[str], root: str | os.PathLike | None = None
) -> list[Utterance]:
    """Letters and syllables of ``klettres-data``; one speaker per ``<lang>/<kind>`` folder.

    Missing package: counted in ``failures`` (``"klettres-data not installed"``).
    """
    base = _root(root) / KLETTRES
    if not base.is_dir():
        failures["klettres-data not installed"] += 1
        return []
    clips = []
    for language_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        language = language_dir.name
        for kind in ("alpha", "syllab"):
            folder = language_dir / kind
            if not folder.is_dir():
                continue
            for path in _audio_files(folder):
                clips.append(
                    _utterance(
                        path, f"klettres_{language}_{kind}_{path.stem}",
                        f"klettres_{language}_{kind}", language.split("_")[0],
                        "klettres-data (KDE KLettres sounds)", "GPL-2+",
                    )
                )  # fmt: skip
    return clips


def ktuberling_clips(
    failures: Counter[str], root: str | os.PathLike | None = None
) -> list[Utterance]:
    """Object names of ``ktuberling-data``; one speaker per language and theme (module
    docstring; script variants folded into their language).

    Missing package: counted in ``failures`` (``"ktuberling-data not installed"``).
    """
    base = _root(root) / KTUBERLING
    if not base.is_dir():
        failures["ktuberling-data not installed"] += 1
        return []
    clips = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        language = folder.name.split("@")[0]
        files = _audio_files(folder)
        prefixes = Counter(p.stem.split("_")[0] for p in files if "_" in p.stem)
        for path in files:
            theme = path.stem.split("_")[0] if "_" in path.stem else None
            speaker = f"ktuberling_{language}"
            if theme is not None and prefixes[theme] >= MIN_THEME_FILES:
                speaker = f"{speaker}_{theme}"
            clips.append(
                _utterance(
                    path, f"ktuberling_{folder.name}_{path.stem}", speaker, language,
                    "ktuberling-data (KDE KTuberling sounds)", "GPL-2+",
                )
            )  # fmt: skip
    return clips


def asterisk_prompt_clips(
    failures: Counter[str], root: str | os.PathLike | None = None
) -> list[Utterance]:
    """The GSM prompts of ``asterisk-prompt-es-co`` and ``asterisk-prompt-fr-armelle``.

    A voice whose folder is absent, a symlink or without ``.gsm`` files counts as not
    installed (``failures["<package> not installed"]``).
    """
    clips = []
    for voice in PROMPT_VOICES:
        folder = _root(root) / ASTERISK_SOUNDS / voice.folder
        files = []
        if folder.is_dir() and not folder.is_symlink():
            files = sorted(p for p in folder.rglob("*.gsm") if p.is_file())
        if not files:
            failures[f"{voice.package} not installed"] += 1
            continue
        for path in files:
            name = path.relative_to(folder).with_suffix("").as_posix()
            if path.name.startswith("beep"):
                continue  # tones, not speech
            clips.append(
                _utterance(
                    path, f"astp_{voice.speaker}_{name.replace('/', '_')}", voice.speaker,
                    voice.language, voice.source, voice.licence,
                )
            )  # fmt: skip
    return clips


FINDERS = (klettres_clips, ktuberling_clips, asterisk_prompt_clips)


def _drop_duplicates(utterances: list[Utterance], left_out: Counter[str]) -> list[Utterance]:
    seen: set[bytes] = set()
    kept = []
    for utterance in sorted(utterances, key=lambda u: u.path):
        try:
            digest = hashlib.sha1(Path(utterance.path).read_bytes()).digest()
        except OSError:
            left_out["unreadable file"] += 1
            continue
        if digest in seen:
            left_out["same bytes as another file"] += 1
            continue
        seen.add(digest)
        kept.append(utterance)
    return sorted(kept, key=lambda u: u.utt_id)


def find_extra_speech(
    root: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    max_per_speaker: int | None = None,
    seed: int = 0,
) -> ExtraSpeech:
    """The recordings of :data:`EXTRA_PACKAGES` found under ``root``.

    Args:
        root: a root or several (default: :data:`DEFAULT_ROOT`, ``/``, and
            :func:`unpacked_root`); tests point it at fake layouts. A package is missing when
            no root holds it; a file found under two roots counts once.
        max_per_speaker: keep at most this many files per speaker (seeded choice, as
            :func:`amongus.recipes.separation_data.discover_speech` does).
        seed: seed of that choice.

    Never raises for a missing package: it is named in ``missing_packages`` and in the log.
    """
    from .separation_data import _cap_per_speaker

    if root is None:
        roots = [DEFAULT_ROOT, unpacked_root()]
    elif isinstance(root, (str, os.PathLike)):
        roots = [root]
    else:
        roots = list(root)
    utterances: list[Utterance] = []
    missing_everywhere: set[str] | None = None
    for each in roots:
        failures: Counter[str] = Counter()
        for finder in FINDERS:
            utterances.extend(finder(failures, each))
        found_missing = set(failures)
        missing_everywhere = (
            found_missing if missing_everywhere is None else (missing_everywhere & found_missing)
        )
    left_out: Counter[str] = Counter()
    utterances = _drop_duplicates(utterances, left_out)
    if max_per_speaker:
        before = len(utterances)
        utterances = _cap_per_speaker(utterances, max_per_speaker, seed)
        if before > len(utterances):
            left_out[f"over --max-per-speaker {max_per_speaker}"] += before - len(utterances)
    missing = sorted(reason.removesuffix(" not installed") for reason in missing_everywhere or ())
    extra = ExtraSpeech(utterances, missing, dict(left_out))
    if missing:
        logger.warning(
            "extra speech: package(s) not installed: %s (AMONGUS_SEPARATOR_DATA=1 "
            "scripts/setup.sh installs them)", ", ".join(missing),
        )  # fmt: skip
    logger.info("extra speech found: %s", extra.describe())
    return extra


def add_training_speakers(split, speakers: Sequence[str]) -> list[str]:
    """Put the ``speakers`` that ``split`` does not name into its training speakers.

    ``split`` is a :class:`~amongus.recipes.separation_data.SpeakerSplit`, changed in place;
    its validation, test and held-out speakers are untouched. Returns the speakers added.
    """
    added = sorted({s for s in speakers if split.of(s) is None})
    if added:
        split.train = sorted([*split.train, *added])
    return added
