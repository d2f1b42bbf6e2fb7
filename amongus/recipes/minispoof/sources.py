"""Bonafide sources for the minispoof recipe: real human speech installed by apt (and, when
present, the shared LibriSpeech/LJSpeech/neural-vocoder folder).

Every clip is described by a :class:`SourceClip` (where the audio is, who speaks, what is said,
licence); nothing here reads samples, only headers, so discovery takes a second or two.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

logger = logging.getLogger(__name__)

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
ASTERISK_DOCS = Path("/usr/share/doc")
FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")


@dataclass(frozen=True)
class SourceClip:
    """One recording of a real person (or, for ``label == "spoof"``, a ready-made spoof)."""

    clip_id: str
    path: str
    speaker: str
    language: str
    text: str  # transcript ("" when unknown)
    source: str
    licence: str
    native_rate: int
    duration: float
    label: str = "bonafide"
    system: str = "-"  # ready-made spoofs only (shared neural vocoders)


@dataclass(frozen=True)
class AsteriskVoice:
    folder: str
    transcript_language: str  # core-sounds-XX.txt.gz that holds the transcripts
    speaker: str
    language: str
    source: str
    licence: str


ASTERISK_VOICES = (
    AsteriskVoice(
        "en_US_f_Allison",
        "en",
        "allison",
        "en",
        "asterisk-core-sounds-en-wav (Allison Smith)",
        "CC-BY-SA-3.0",
    ),
    AsteriskVoice(
        "es_MX_f_Allison",
        "es",
        "allison",
        "es",
        "asterisk-core-sounds-es-wav (Allison Smith)",
        "CC-BY-SA-3.0",
    ),
    AsteriskVoice(
        "fr_CA_f_June",
        "fr",
        "june",
        "fr",
        "asterisk-core-sounds-fr-wav (June Wallack)",
        "CC-BY-SA-3.0",
    ),
    AsteriskVoice(
        "it_IT_m_Carlo",
        "it",
        "carlo",
        "it",
        "asterisk-core-sounds-it-wav (Carlo Flora)",
        "CC-BY-3.0",
    ),
    AsteriskVoice(
        "ru_RU_f_IvrvoiceRU",
        "ru",
        "ivrvoice_ru",
        "ru",
        "asterisk-core-sounds-ru-wav (IvrvoiceRU, provided by Maxim Topal)",
        "CC-BY-3.0",
    ),
    AsteriskVoice(
        "it_IT_f_Menardi",
        "it",
        "menardi",
        "it",
        "asterisk-prompt-it-menardi-wav (Marco Menardi, Paola Dal Zot; www.voip.ammdomus.it)",
        "CC-BY-SA-3.0",
    ),
)

# Tux Paint stamp descriptions: one narrator per language is assumed (the package does not
# name them); the English ones have no language suffix.
TUXPAINT_LANGUAGES = ("en", "be", "bg", "ca", "da", "el", "es", "fr", "lt", "nl", "ro", "ru")


def _header(path: Path) -> tuple[int, float] | None:
    try:
        info = sf.info(str(path))
    except Exception as error:  # corrupt or unsupported file: counted by the caller
        logger.debug("unreadable %s: %s", path, error)
        return None
    if info.frames <= 0:
        return None
    return int(info.samplerate), info.frames / info.samplerate


def _clean_text(text: str) -> str:
    text = re.sub(r"\[[^\]]*\]", " ", text)  # stage directions such as [beep]
    return re.sub(r"\s+", " ", text).strip()


def read_asterisk_transcripts(language: str) -> dict[str, str]:
    """``{prompt name: text}`` from ``core-sounds-XX.txt.gz`` (empty when not installed)."""
    path = ASTERISK_DOCS / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
    if not path.exists():
        return {}
    transcripts = {}
    with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            text = _clean_text(text)
            if text:
                transcripts[name.strip()] = text
    return transcripts


def asterisk_clips(failures: dict[str, int]) -> list[SourceClip]:
    clips = []
    for voice in ASTERISK_VOICES:
        folder = ASTERISK_SOUNDS / voice.folder
        if not folder.is_dir():
            failures[f"asterisk {voice.folder} not installed"] += 1
            continue
        transcripts = read_asterisk_transcripts(voice.transcript_language)
        for path in sorted(folder.rglob("*.wav")):
            name = path.relative_to(folder).with_suffix("").as_posix()
            text = transcripts.get(name, "")
            if not text or name.startswith("silence/"):
                continue  # tones, silence and untranscribed prompts
            header = _header(path)
            if header is None:
                failures[f"unreadable asterisk file ({voice.folder})"] += 1
                continue
            clips.append(
                SourceClip(
                    clip_id=f"ast_{voice.folder}_{name.replace('/', '_')}",
                    path=str(path),
                    speaker=voice.speaker,
                    language=voice.language,
                    text=text,
                    source=voice.source,
                    licence=voice.licence,
                    native_rate=header[0],
                    duration=header[1],
                )
            )
    return clips


def festvox_ru_clips(failures: dict[str, int]) -> list[SourceClip]:
    transcript_file = FESTVOX_RU / "etc" / "txt.done.data"
    if not transcript_file.exists():
        failures["festvox-ru recordings not installed"] += 1
        return []
    clips = []
    pattern = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')
    for line in transcript_file.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        match = pattern.match(line.strip())
        if not match:
            continue
        name, text = match.groups()
        path = FESTVOX_RU / "wav" / f"{name}.wav"
        header = _header(path)
        if header is None:
            failures["unreadable festvox-ru file"] += 1
            continue
        clips.append(
            SourceClip(
                clip_id=f"fvru_{name}",
                path=str(path),
                speaker="nsh",
                language="ru",
                text=_clean_text(text.replace("+", "")),
                source="festvox-ru (msu_ru_nsh recordings)",
                licence="BSD-like (festvox-ru)",
                native_rate=header[0],
                duration=header[1],
            )
        )
    return clips


def _tuxpaint_text(txt_path: Path, language: str) -> str:
    try:
        lines = txt_path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        return ""
    if language == "en":
        return _clean_text(lines[0]) if lines else ""
    prefix = f"{language}.utf8="
    for line in lines:
        if line.startswith(prefix):
            return _clean_text(line[len(prefix) :])
    return ""


def tuxpaint_clips(failures: dict[str, int]) -> list[SourceClip]:
    if not TUXPAINT_STAMPS.is_dir():
        failures["tuxpaint-stamps-default not installed"] += 1
        return []
    clips = []
    for path in sorted(TUXPAINT_STAMPS.rglob("*_desc*.ogg")):
        match = re.match(r"^(.*)_desc(?:_([a-z]{2}))?\.ogg$", path.name)
        if not match:
            continue
        stem, language = match.group(1), match.group(2) or "en"
        if language not in TUXPAINT_LANGUAGES:
            continue
        text = _tuxpaint_text(path.with_name(f"{stem}.txt"), language)
        if not text:
            continue
        # Reading 7,000 Ogg headers takes seconds: the duration is estimated from the file
        # size (about 18 kB/s at the package's bit rate); rendering reads the real audio.
        try:
            size = path.stat().st_size
        except OSError:
            failures["unreadable tuxpaint file"] += 1
            continue
        header = (44100, size / 18000.0)
        rel = path.relative_to(TUXPAINT_STAMPS).with_suffix("").as_posix().replace("/", "_")
        clips.append(
            SourceClip(
                clip_id=f"tux_{rel}",
                path=str(path),
                speaker=f"tux_{language}",
                language=language,
                text=text,
                source="tuxpaint-stamps-default (stamp descriptions)",
                licence="GPL-2",
                native_rate=header[0],
                duration=header[1],
            )
        )
    return clips


def shared_clips(root: Path, failures: dict[str, int]) -> list[SourceClip]:
    """Clips listed in ``root/manifest.csv`` (the shared real-audio folder), both labels."""
    manifest = root / "manifest.csv"
    if not manifest.exists():
        failures[f"shared folder without manifest.csv ({root})"] += 1
        return []
    clips = []
    with open(manifest, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            path = root / row["path"]
            header = _header(path)
            if header is None:
                failures["unreadable shared file"] += 1
                continue
            speaker = row.get("speaker") or "-"
            speaker = "lj" if speaker == "LJ" else speaker
            speaker = f"libri_{speaker}" if speaker.isdigit() else speaker
            clips.append(
                SourceClip(
                    clip_id="shared_"
                    + re.sub(r"[^A-Za-z0-9]+", "_", row["path"].rsplit(".", 1)[0]),
                    path=str(path),
                    speaker=speaker,
                    language="en",
                    text="",
                    source=f"{row.get('corpus', '-')} via {row.get('source_repo', '-')}",
                    licence=row.get("licence", "-"),
                    native_rate=int(float(row.get("orig_sr") or header[0])),
                    duration=header[1],
                    label=row["label"].strip(),
                    system=row.get("system", "-") or "-",
                )
            )
    return clips


def resolve_shared_real(option: str | os.PathLike | None) -> Path | None:
    """``--shared-real``: a path, ``"none"``, or ``"auto"`` (../shared/data/real next to the
    current directory or the repository, used only when it exists)."""
    if option is None or str(option) == "none":
        return None
    if str(option) != "auto":
        path = Path(option)
        if not path.is_dir():
            raise ValueError(f"--shared-real {path}: not a folder")
        return path
    repo = Path(__file__).resolve().parents[3]
    for base in (Path.cwd(), repo):
        candidate = base.parent / "shared" / "data" / "real"
        if candidate.is_dir():
            return candidate
    return None
