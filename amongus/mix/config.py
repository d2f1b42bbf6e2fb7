"""Typed configuration of the mixture generator, with the ``thesis`` and ``default`` presets.

Every field carries a ``help`` text in its metadata; ``python -m amongus.mix --help`` is built
from them, so the command line documents every option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..labels import composition_labels

PRESETS = ("default", "thesis")
LEVEL_MODES = ("gain", "db", "lufs")
PLACEMENTS = ("thesis", "overlap")
NAMINGS = ("index", "pair")
BAD_INPUT_POLICIES = ("skip", "error")
CODECS = ("none", "mulaw", "gsm", "amr-nb", "codec2")
NOISE_TYPES = ("white", "pink", "brown")


def _opt(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, list | dict):  # mutable defaults need a factory
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class MixerConfig:
    """How mixtures are drawn, placed, levelled, augmented and written.

    Use :meth:`from_preset` for the two named settings; every field can be overridden afterwards
    (``MixerConfig.from_preset("default", n_sources=3)``).
    """

    preset: str = _opt("default", "name of the preset these settings started from (recorded)")
    # --- composition --------------------------------------------------------------------------
    n_sources: int = _opt(2, "number of sources (speakers) per mixture, 2 or more")
    composition_probs: dict[str, float] | None = _opt(
        None,
        "probability of each composition label, e.g. 'SB=0.5,SS=0.25,BB=0.25'; "
        "unset = uniform over the n_sources+1 compositions",
    )
    distinct_speakers: bool = _opt(
        True, "draw sources of different speakers when speaker ids are known"
    )
    # --- rates and lengths --------------------------------------------------------------------
    sample_rate: int | None = _opt(
        16000,
        "mixture sample rate; sources at another rate are resampled (counted). "
        "0/unset = the first source's rate (the study's 'source rate')",
    )
    min_source_seconds: float = _opt(
        0.5, "utterances shorter than this are bad input (skipped or an error)"
    )
    max_source_seconds: float | None = _opt(
        None, "crop longer utterances to a random window of this many seconds (unset = no crop)"
    )
    # --- timing -------------------------------------------------------------------------------
    placement: str = _opt(
        "overlap",
        "'thesis': one random source delayed by U(0, max_delay) s, all cut to the shorter "
        "length after the delay; 'overlap': sources cropped to the shortest and offset so that "
        "a drawn fraction (overlap_ratio) of that length is shared by all",
    )
    max_delay: float = _opt(1.0, "thesis placement: the delay is drawn from U(0, max_delay) s")
    overlap_ratio: tuple[float, float] = _opt(
        (0.5, 1.0), "overlap placement: overlap ratio drawn from U(lo, hi), 0 < lo <= hi <= 1"
    )
    min_overlap: float | None = _opt(
        0.5,
        "presence guarantee: seconds in which every source is active (energy VAD) at once; "
        "placements (then sources) are redrawn until met; unset = no guarantee",
    )
    vad_threshold_db: float = _opt(
        40.0, "energy VAD: a 10 ms frame is active within this many dB of the source's loudest"
    )
    placement_attempts: int = _opt(
        20, "placements tried per source draw before the sources are redrawn"
    )
    max_redraws: int = _opt(
        50, "source redraws per mixture before giving up with an error (presence guarantee)"
    )
    # --- levels -------------------------------------------------------------------------------
    level_mode: str = _opt(
        "db",
        "'gain': linear gain U(gain_range) on the raw source (the study); 'db': sources "
        "equalised to the same active RMS then U(level_db) dB each (LibriMix style); "
        "'lufs': each source set to U(loudness_lufs) LUFS with pyloudnorm",
    )
    gain_range: tuple[float, float] = _opt((0.7, 1.3), "'gain' level mode: U(lo, hi) linear")
    level_db: tuple[float, float] = _opt((-3.0, 3.0), "'db' level mode: U(lo, hi) dB per source")
    loudness_lufs: tuple[float, float] = _opt(
        (-33.0, -25.0), "'lufs' level mode: U(lo, hi) LUFS per source (LibriMix's range)"
    )
    # --- normalisation ------------------------------------------------------------------------
    peak: float | None = _opt(
        0.9,
        "divide the mixture by its peak absolute value and multiply by this (1.0 = the study); "
        "an all-zero mixture is left as is; unset = no normalisation",
    )
    # --- augmentation -------------------------------------------------------------------------
    reverb_prob: float = _opt(0.0, "probability of reverberating the sources (pyroomacoustics)")
    rt60: tuple[float, float] = _opt((0.2, 0.7), "reverb: RT60 U(lo, hi) seconds")
    room_size: tuple[float, float] = _opt((3.0, 10.0), "reverb: room side lengths U(lo, hi) m")
    noise_prob: float = _opt(0.0, "probability of adding noise to the mixture")
    noise_snr: tuple[float, float] = _opt((5.0, 20.0), "noise: SNR U(lo, hi) dB")
    noise_type: str = _opt("white", "noise when no noise files are given: white, pink or brown")
    noise_files: list[str] = _opt([], "noise recordings to draw from (a random window)")
    channel_prob: float = _opt(0.0, "probability of a telephone channel (8 kHz band limit)")
    channel_codecs: list[str] = _opt(
        ["mulaw", "gsm", "amr-nb", "codec2"],
        "codecs drawn for the telephone channel: none, mulaw, gsm, amr-nb (sox), codec2",
    )
    # --- input and output ---------------------------------------------------------------------
    on_bad_input: str = _opt(
        "skip",
        "'skip': unusable utterances are left out and counted in the summary; 'error': the "
        "first one stops the run with a message naming the file",
    )
    naming: str = _opt("index", "mixture ids: 'index' ({split}-{index:06d}) or 'pair' (UTT1_UTT2)")
    audio_format: str = _opt("flac", "audio file format of the mixtures (flac or wav)")
    thesis_metadata: str | None = _opt(
        None,
        "also write the study's metadata lines 'MIXTURE UTT1 LABEL1 UTT2 LABEL2 MIXLABEL' "
        "to this file name inside the output folder",
    )
    cache_mb: int = _opt(256, "decoded sources kept in memory per worker process (MB)")

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MixerConfig:
        """The named settings (``"default"`` or ``"thesis"``) with ``overrides`` applied."""
        if name == "thesis":
            base: dict[str, Any] = dict(
                preset="thesis",
                n_sources=2,
                composition_probs={"SB": 0.5, "SS": 0.25, "BB": 0.25},
                distinct_speakers=False,
                sample_rate=None,
                min_source_seconds=0.0,
                placement="thesis",
                max_delay=1.0,
                min_overlap=None,
                level_mode="gain",
                gain_range=(0.7, 1.3),
                peak=1.0,
                naming="pair",
                thesis_metadata="metadata.txt",
            )
        elif name == "default":
            base = {"preset": "default"}
        else:
            raise ValueError(f"unknown mixer preset {name!r}; choose one of {PRESETS}")
        base.update(overrides)
        return cls(**base)

    def compositions(self) -> dict[str, float]:
        """Normalised probability of each composition label (uniform when unset)."""
        labels = composition_labels(self.n_sources)
        if not self.composition_probs:
            return {label: 1.0 / len(labels) for label in labels}
        total = float(sum(self.composition_probs.values()))
        return {label: self.composition_probs.get(label, 0.0) / total for label in labels}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixerConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown mixer option {key!r}")
            if isinstance(value, list) and "tuple" in str(known[key].type):
                value = tuple(value)
            values[key] = value
        return cls(**values)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option for any inconsistent setting."""

        def check(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"MixerConfig: {message}")

        check(self.n_sources >= 2, f"n_sources must be >= 2, got {self.n_sources}")
        if self.composition_probs:
            allowed = set(composition_labels(self.n_sources))
            unknown = set(self.composition_probs) - allowed
            check(not unknown, f"composition_probs has {sorted(unknown)}, not in {sorted(allowed)}")
            check(
                all(p >= 0 for p in self.composition_probs.values())
                and sum(self.composition_probs.values()) > 0,
                "composition_probs must be >= 0 and not all zero",
            )
        if self.sample_rate is not None:
            check(self.sample_rate >= 0, "sample_rate must be positive")
            if self.sample_rate == 0:
                self.sample_rate = None
        check(self.placement in PLACEMENTS, f"placement must be one of {PLACEMENTS}")
        check(self.level_mode in LEVEL_MODES, f"level_mode must be one of {LEVEL_MODES}")
        check(self.naming in NAMINGS, f"naming must be one of {NAMINGS}")
        check(self.on_bad_input in BAD_INPUT_POLICIES, f"on_bad_input: {BAD_INPUT_POLICIES}")
        check(self.noise_type in NOISE_TYPES, f"noise_type must be one of {NOISE_TYPES}")
        check(self.audio_format in ("flac", "wav"), "audio_format must be flac or wav")
        check(self.max_delay >= 0, "max_delay must be >= 0")
        lo, hi = self.overlap_ratio
        check(0 < lo <= hi <= 1, f"overlap_ratio must satisfy 0 < lo <= hi <= 1, got {lo, hi}")
        for name in ("gain_range", "level_db", "loudness_lufs", "rt60", "room_size", "noise_snr"):
            lo, hi = getattr(self, name)
            check(lo <= hi, f"{name} must be (lo, hi) with lo <= hi, got {(lo, hi)}")
        check(self.gain_range[0] > 0, "gain_range must be positive")
        check(self.room_size[0] > 1.0, "room_size lower bound must exceed 1 m")
        for name in ("reverb_prob", "noise_prob", "channel_prob"):
            check(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1]")
        bad_codecs = set(self.channel_codecs) - set(CODECS)
        check(not bad_codecs, f"channel_codecs {sorted(bad_codecs)} not in {CODECS}")
        check(
            not (self.channel_prob > 0 and not self.channel_codecs),
            "channel_codecs is empty",
        )
        check(self.peak is None or self.peak > 0, "peak must be > 0")
        check(self.min_overlap is None or self.min_overlap >= 0, "min_overlap must be >= 0")
        check(self.placement_attempts >= 1 and self.max_redraws >= 0, "attempt counts")
        check(self.min_source_seconds >= 0, "min_source_seconds must be >= 0")
        check(
            self.max_source_seconds is None or self.max_source_seconds > 0,
            "max_source_seconds must be > 0",
        )
