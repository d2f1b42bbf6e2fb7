"""Optional degradations of a mixture: reverberation, additive noise, a telephone channel.

Each augmentation is drawn as a plain dict of parameters (recorded in the manifest) and applied
by a pure function of those parameters, so a mixture can be rendered again exactly.

* reverb: one shoebox room per mixture (pyroomacoustics image-source method), one position
  per source, one microphone; each source is convolved with its own room impulse response;
* noise: white, pink or brown noise from a recorded seed, or a window of a noise file, scaled to
  a signal-to-noise ratio measured against the whole speech mixture;
* telephone: resampled to 8 kHz, band-limited to 300-3400 Hz, passed through a codec
  (mu-law, GSM, AMR-NB via sox; codec2 via c2enc/c2dec) and resampled back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..audio import load_audio, resample
from .config import MixerConfig

TELEPHONE_RATE = 8000
TELEPHONE_BAND = (300.0, 3400.0)
CODEC2_MODE = "3200"
_MAX_IMAGE_ORDER = 20


def draw_augmentations(
    rng: np.random.Generator, n_sources: int, config: MixerConfig
) -> list[dict[str, Any]]:
    """Draw which augmentations a mixture gets and their parameters.

    The same number of random values is consumed whatever is drawn, so the draws of one
    augmentation do not depend on another's probability.
    """
    augmentations: list[dict[str, Any]] = []
    use_reverb, use_noise, use_channel = rng.random(3)
    reverb_seed, noise_seed, channel_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=3))
    if use_reverb < config.reverb_prob:
        augmentations.append(_draw_reverb(np.random.default_rng(reverb_seed), n_sources, config))
        augmentations[-1]["seed"] = reverb_seed
    if use_noise < config.noise_prob:
        noise_rng = np.random.default_rng(noise_seed)
        params: dict[str, Any] = {
            "type": "noise",
            "seed": noise_seed,
            "snr_db": float(noise_rng.uniform(*config.noise_snr)),
        }
        if config.noise_files:
            params["noise_type"] = "file"
            params["path"] = str(
                config.noise_files[int(noise_rng.integers(len(config.noise_files)))]
            )
            params["start_fraction"] = float(noise_rng.random())
        else:
            params["noise_type"] = config.noise_type
        augmentations.append(params)
    if use_channel < config.channel_prob:
        channel_rng = np.random.default_rng(channel_seed)
        codec = config.channel_codecs[int(channel_rng.integers(len(config.channel_codecs)))]
        augmentations.append(
            {
                "type": "telephone",
                "seed": channel_seed,
                "codec": codec,
                "rate": TELEPHONE_RATE,
                "band_hz": list(TELEPHONE_BAND),
            }
        )
    return augmentations


def _draw_reverb(rng: np.random.Generator, n_sources: int, config: MixerConfig) -> dict[str, Any]:
    import pyroomacoustics as pra

    for _ in range(100):
        room = [float(rng.uniform(*config.room_size)) for _ in range(2)]
        room.append(float(rng.uniform(2.5, 3.5)))
        rt60 = float(rng.uniform(*config.rt60))
        try:
            absorption, max_order = pra.inverse_sabine(rt60, room)
        except ValueError:  # room too large for this RT60: draw again
            continue
        break
    else:  # pragma: no cover - only for absurd settings
        raise ValueError(f"no room in {config.room_size} m reaches RT60 in {config.rt60} s")

    def position() -> list[float]:
        return [
            float(rng.uniform(0.5, room[0] - 0.5)),
            float(rng.uniform(0.5, room[1] - 0.5)),
            float(rng.uniform(1.2, 1.9)),
        ]

    return {
        "type": "reverb",
        "room_m": room,
        "rt60_s": rt60,
        "absorption": float(absorption),
        "max_order": int(min(max_order, _MAX_IMAGE_ORDER)),
        "microphone_m": position(),
        "sources_m": [position() for _ in range(n_sources)],
    }


def room_impulse_responses(params: dict[str, Any], sample_rate: int) -> list[np.ndarray]:
    """The room impulse response from each source position to the microphone."""
    import pyroomacoustics as pra

    room = pra.ShoeBox(
        params["room_m"],
        fs=sample_rate,
        materials=pra.Material(params["absorption"]),
        max_order=params["max_order"],
    )
    for source in params["sources_m"]:
        room.add_source(source)
    room.add_microphone(np.asarray(params["microphone_m"], dtype=float))
    room.compute_rir()
    return [np.asarray(rir, dtype=np.float64) for rir in room.rir[0]]


def apply_reverb(sources: np.ndarray, params: dict[str, Any], sample_rate: int) -> np.ndarray:
    """Convolve each source with its room impulse response, keeping the length.

    Shape: ``[S, T] -> [S, T]``.
    """
    from scipy.signal import fftconvolve

    rirs = room_impulse_responses(params, sample_rate)
    if len(rirs) != sources.shape[0]:
        raise ValueError(f"reverb has {len(rirs)} source positions for {sources.shape[0]} sources")
    length = sources.shape[1]
    return np.stack(
        [fftconvolve(source, rir)[:length] for source, rir in zip(sources, rirs, strict=True)]
    )


def coloured_noise(rng: np.random.Generator, length: int, kind: str) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise with unit variance. Shape: ``[T]``."""
    white = rng.standard_normal(length)
    if kind == "white" or length < 2:
        return white
    exponent = {"pink": 0.5, "brown": 1.0}[kind]
    spectrum = np.fft.rfft(white)
    freqs = np.arange(spectrum.shape[0], dtype=float)
    freqs[0] = 1.0
    shaped = np.fft.irfft(spectrum / freqs**exponent, n=length)
    return shaped / (np.std(shaped) + 1e-12)


def add_noise(mixture: np.ndarray, params: dict[str, Any], sample_rate: int) -> np.ndarray:
    """Add noise at ``params["snr_db"]`` relative to the mixture's mean power. Shape: ``[T]``."""
    length = mixture.shape[0]
    rng = np.random.default_rng(params["seed"])
    if params["noise_type"] == "file":
        noise_audio, _ = load_audio(params["path"], sample_rate=sample_rate)
        repeats = int(np.ceil(2 * length / noise_audio.shape[0]))
        tiled = np.tile(noise_audio, max(repeats, 1))
        start = int(params["start_fraction"] * (tiled.shape[0] - length))
        noise = tiled[start : start + length].astype(np.float64)
    else:
        noise = coloured_noise(rng, length, params["noise_type"])
    speech_power = float(np.mean(np.square(mixture)))
    noise_power = float(np.mean(np.square(noise)))
    if speech_power <= 0 or noise_power <= 0:
        return mixture
    scale = np.sqrt(speech_power / (noise_power * 10 ** (params["snr_db"] / 10)))
    return mixture + scale * noise


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"the telephone channel needs `{tool}`: install the {package} package")
    return path


def run_codec(audio: np.ndarray, codec: str) -> np.ndarray:
    """Encode and decode 8 kHz audio with a telephone codec. Shape: ``[T] -> [T]``."""
    if codec == "none":
        return audio
    scale = float(np.max(np.abs(audio))) if audio.size else 0.0
    if scale <= 0:
        return audio
    pcm = np.clip(np.round(audio / scale * 0.9 * 32767), -32768, 32767).astype("<i2")
    raw = ["-t", "raw", "-r", str(TELEPHONE_RATE), "-e", "signed", "-b", "16", "-c", "1"]
    with tempfile.TemporaryDirectory(prefix="amongus-codec-") as tmp:
        source = os.path.join(tmp, "in.raw")
        decoded = os.path.join(tmp, "out.raw")
        pcm.tofile(source)
        if codec == "codec2":
            encoded = os.path.join(tmp, "enc.c2")
            commands = [
                [_require("c2enc", "codec2"), CODEC2_MODE, source, encoded],
                [_require("c2dec", "codec2"), CODEC2_MODE, encoded, decoded],
            ]
        else:
            sox = _require("sox", "sox and libsox-fmt-all")
            encoding = {
                "mulaw": ["-t", "wav", "-e", "u-law", "-b", "8"],
                "gsm": ["-t", "gsm"],
                "amr-nb": ["-t", "amr-nb", "-C", "7"],
            }[codec]
            encoded = os.path.join(
                tmp, "enc." + {"mulaw": "wav", "gsm": "gsm", "amr-nb": "amr"}[codec]
            )
            commands = [
                [sox, *raw, source, *encoding, encoded],
                [sox, *encoding[:2], encoded, *raw, decoded],
            ]
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"codec {codec}: {' '.join(command)} failed: {result.stderr}")
        out = np.fromfile(decoded, dtype="<i2").astype(np.float64) / (0.9 * 32767) * scale
    if out.shape[0] < audio.shape[0]:
        out = np.pad(out, (0, audio.shape[0] - out.shape[0]))
    return out[: audio.shape[0]]


def telephone_channel(mixture: np.ndarray, params: dict[str, Any], sample_rate: int) -> np.ndarray:
    """8 kHz band limit plus codec, returned at ``sample_rate`` with the same length.

    Shape: ``[T] -> [T]``.
    """
    from scipy.signal import butter, sosfilt

    rate = int(params.get("rate", TELEPHONE_RATE))
    narrow = resample(np.asarray(mixture, dtype=np.float64), sample_rate, rate)
    low, high = params.get("band_hz", TELEPHONE_BAND)
    sos = butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
    narrow = sosfilt(sos, narrow)
    narrow = run_codec(narrow, params["codec"])
    wide = resample(narrow, rate, sample_rate)
    length = mixture.shape[0]
    if wide.shape[0] < length:
        wide = np.pad(wide, (0, length - wide.shape[0]))
    return wide[:length]


def apply_augmentations(
    sources: np.ndarray, augmentations: Sequence[dict[str, Any]], sample_rate: int
) -> np.ndarray:
    """Reverberate the placed sources, sum them, add noise, pass the telephone channel.

    Shape: ``[S, T] -> [T]``.
    """
    by_type = {params["type"]: params for params in augmentations}
    unknown = set(by_type) - {"reverb", "noise", "telephone"}
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}")
    if "reverb" in by_type:
        sources = apply_reverb(sources, by_type["reverb"], sample_rate)
    mixture = sources.sum(axis=0)
    if "noise" in by_type:
        mixture = add_noise(mixture, by_type["noise"], sample_rate)
    if "telephone" in by_type:
        mixture = telephone_channel(mixture, by_type["telephone"], sample_rate)
    return mixture
