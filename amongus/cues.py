"""Acoustic cues of spoofed speech that separation may destroy: one scalar per cue and signal.

Each function takes one mono signal ``[T]`` (float, any scale: every cue is a ratio or a rate, so
gain does not change it) and its sample rate, and returns a float. The frame-based cues share one
framing (:data:`FRAME_SECONDS` Hann frames every :data:`HOP_SECONDS`, no padding: librosa's
``center=False``), so a ``frame_mask`` computed on one signal (:func:`active_frames` of the
oracle source) selects the same instants in another signal of the same length: that is how
:mod:`amongus.recipes.cue_analysis` compares an oracle source with its separated stream.

| cue | function | unit |
| --- | --- | --- |
| energy above 4 kHz | :func:`high_band_share_db` | dB (share of the total power) |
| zero-crossing rate | :func:`zero_crossing_rate` | crossings per second |
| spectral flatness | :func:`spectral_flatness` | ratio in (0, 1] |
| 50-200 Hz modulation | :func:`modulation_energy_db` | dB (share of the envelope's energy) |

Why these four: band-limited vocoders and codecs leave little energy above 4 kHz, noise-excited
or aperiodic synthesis raises the zero-crossing rate and the spectral flatness, and vocoder buzz
or missing periodicity shows in the envelope modulation at pitch rates (50-200 Hz).

>>> import numpy as np
>>> rate = 16000
>>> tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
>>> round(zero_crossing_rate(tone, rate) / 100)  # two crossings per period
9
"""

from __future__ import annotations

import math

import numpy as np

#: Frame length and hop of the frame-based cues (32 ms / 16 ms: 512 / 256 samples at 16 kHz).
FRAME_SECONDS = 0.032
HOP_SECONDS = 0.016
#: The band split of :func:`high_band_share_db` (Hz): the top of telephone band and of 8 kHz
#: audio, above which band-limited vocoders and codecs leave (almost) nothing.
HIGH_BAND_CUTOFF_HZ = 4000.0
#: The modulation band of :func:`modulation_energy_db` (Hz): voice pitch rates.
MODULATION_BAND_HZ = (50.0, 200.0)
#: Welch segment of the envelope's modulation spectrum: 0.25 s, a 4 Hz resolution.
MODULATION_SEGMENT_SECONDS = 0.25
#: Ratios are floored here before taking dB (-120 dB), so a cue is always finite.
POWER_FLOOR = 1e-12
CUE_NAMES = (
    "high_band_share_db",
    "zero_crossing_rate",
    "spectral_flatness",
    "modulation_energy_db",
)
CUE_UNITS = {
    "high_band_share_db": "dB",
    "zero_crossing_rate": "crossings/s",
    "spectral_flatness": "ratio",
    "modulation_energy_db": "dB",
}


def frame_length(sample_rate: int) -> int:
    """Samples per frame of the frame-based cues at ``sample_rate`` (Hz)."""
    return max(2, int(round(FRAME_SECONDS * sample_rate)))


def hop_length(sample_rate: int) -> int:
    """Samples between frame starts at ``sample_rate`` (Hz)."""
    return max(1, int(round(HOP_SECONDS * sample_rate)))


def n_frames(n_samples: int, sample_rate: int) -> int:
    """Number of frames of a signal of ``n_samples`` (no padding; 0 if shorter than a frame)."""
    frame = frame_length(sample_rate)
    return 0 if n_samples < frame else 1 + (n_samples - frame) // hop_length(sample_rate)


def _signal(audio, sample_rate: int, *, name: str = "audio") -> np.ndarray:
    """Check a mono float signal; raises ValueError with the problem."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    signal = np.asarray(audio, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"{name}: expected a mono [T] signal, got shape {signal.shape}")
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"{name}: contains NaN or infinite samples")
    if signal.shape[0] < frame_length(sample_rate):
        raise ValueError(
            f"{name}: {signal.shape[0]} samples is shorter than one {FRAME_SECONDS * 1000:.0f} ms "
            f"frame ({frame_length(sample_rate)} samples at {sample_rate} Hz)"
        )
    if not np.any(signal):
        raise ValueError(f"{name}: digital silence (every sample is 0); the cues are undefined")
    return signal


def _mask(frame_mask, count: int) -> np.ndarray:
    if frame_mask is None:
        return np.ones(count, dtype=bool)
    mask = np.asarray(frame_mask, dtype=bool)
    if mask.shape != (count,):
        raise ValueError(f"frame_mask has shape {mask.shape}, the signal has {count} frames")
    if not mask.any():
        raise ValueError("frame_mask selects no frame")
    return mask


def _power_spectrogram(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Hann-windowed power spectrogram, no padding. Shape: ``[T] -> [F_bins, frames]``."""
    import librosa

    spectrum = librosa.stft(
        signal,
        n_fft=frame_length(sample_rate),
        hop_length=hop_length(sample_rate),
        window="hann",
        center=False,
    )
    return np.abs(spectrum) ** 2


def _db(ratio: float) -> float:
    return 10.0 * math.log10(max(float(ratio), POWER_FLOOR))


def active_frames(reference, sample_rate: int, *, threshold_db: float = 40.0) -> np.ndarray:
    """Frames where ``reference`` is active: RMS within ``threshold_db`` of its loudest frame.

    An energy voice-activity detector on the cue framing. Computed on an oracle source, it is
    the ``frame_mask`` of both that source and its separated stream, so the frame-based cues of
    the two are averaged over the same instants (the speaker's speech, not the silence around
    it, where the oracle is digital zero and the separated stream holds leakage).

    Args:
        reference: ``[T]`` signal.
        sample_rate: its rate (Hz).
        threshold_db: how far below the loudest frame a frame still counts as active.

    Returns:
        ``[frames]`` bool, frames as :func:`n_frames`.

    Shape: ``[T] -> [frames]``.

    Raises:
        ValueError: not a finite mono signal, shorter than a frame, or all zeros.
    """
    import librosa

    signal = _signal(reference, sample_rate, name="reference")
    rms = librosa.feature.rms(
        y=signal,
        frame_length=frame_length(sample_rate),
        hop_length=hop_length(sample_rate),
        center=False,
    )[0]
    floor = rms.max() * 10 ** (-threshold_db / 20)
    return (rms > floor) & (rms > 0)


def high_band_share_db(
    audio, sample_rate: int, *, cutoff_hz: float = HIGH_BAND_CUTOFF_HZ, frame_mask=None
) -> float:
    """Share of the signal's power above ``cutoff_hz``, in dB (``<= 0``).

    ``10 log10(sum_{f > cutoff} P(f) / sum_f P(f))`` with ``P`` the Hann-windowed power spectrum
    summed over the selected frames (Welch's averaged periodogram restricted to ``frame_mask``;
    P. Welch, IEEE Trans. Audio Electroacoust. 15(2), 1967). White noise gives ``10 log10(1 - 2 cutoff / rate)``
    (-3 dB for 4 kHz at 16 kHz); audio band-limited below the cutoff (an 8 kHz vocoder or codec)
    gives -40 dB or less. Floored at -120 dB.

    Shape: ``[T] -> float``; ``frame_mask`` ``[frames]`` bool (:func:`active_frames`).

    Raises:
        ValueError: bad signal (see :func:`active_frames`), a mask of the wrong length or
            selecting nothing, or ``cutoff_hz`` not inside ``(0, sample_rate / 2)``.
    """
    signal = _signal(audio, sample_rate)
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(
            f"cutoff_hz={cutoff_hz} is not below the Nyquist frequency ({sample_rate / 2} Hz) "
            f"of {sample_rate} Hz audio: there is no band above it"
        )
    power = _power_spectrogram(signal, sample_rate)
    power = power[:, _mask(frame_mask, power.shape[1])].sum(axis=1)
    frequencies = np.fft.rfftfreq(frame_length(sample_rate), d=1.0 / sample_rate)
    total = power.sum()
    if total <= 0:
        return _db(0.0)
    return _db(power[frequencies > cutoff_hz].sum() / total)


def zero_crossing_rate(audio, sample_rate: int, *, frame_mask=None) -> float:
    """Mean zero-crossing rate over the selected frames, in crossings per second.

    Per frame, librosa's ``zero_crossing_rate`` (the fraction of consecutive sample pairs whose
    sign differs; Rabiner & Schafer, *Digital Processing of Speech Signals*, 1978, sec. 4.5),
    times the sample rate so that the value does not depend on it: a pure tone of ``f`` Hz gives
    ``2 f``, white noise about ``rate / 2``.

    Shape: ``[T] -> float``; ``frame_mask`` ``[frames]`` bool.

    Raises:
        ValueError: bad signal or mask (see :func:`high_band_share_db`).
    """
    import librosa

    signal = _signal(audio, sample_rate)
    per_frame = librosa.feature.zero_crossing_rate(
        signal,
        frame_length=frame_length(sample_rate),
        hop_length=hop_length(sample_rate),
        center=False,
    )[0]
    return float(per_frame[_mask(frame_mask, per_frame.shape[0])].mean() * sample_rate)


def spectral_flatness(audio, sample_rate: int, *, frame_mask=None) -> float:
    """Mean spectral flatness over the selected frames: a ratio in ``(0, 1]``.

    Per frame, the geometric mean of the power spectrum over its arithmetic mean (Wiener
    entropy; J. D. Johnston, IEEE J. Sel. Areas Commun. 6(2), 1988; S. Dubnov, IEEE Signal
    Process. Lett. 11(8), 2004), as
    librosa's ``spectral_flatness`` computes it (power spectrum floored at 1e-10). Near 0 for a
    tone or strongly harmonic speech, about ``exp(-0.5772) = 0.56`` for white noise (the
    periodogram's exponential distribution), 1 for a perfectly flat spectrum.

    Shape: ``[T] -> float``; ``frame_mask`` ``[frames]`` bool.

    Raises:
        ValueError: bad signal or mask (see :func:`high_band_share_db`).
    """
    import librosa

    signal = _signal(audio, sample_rate)
    magnitude = np.sqrt(_power_spectrogram(signal, sample_rate))
    per_frame = librosa.feature.spectral_flatness(S=magnitude, power=2.0)[0]
    return float(per_frame[_mask(frame_mask, per_frame.shape[0])].mean())


def modulation_spectrum(audio, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The power spectrum of the signal's amplitude envelope (the modulation spectrum).

    The envelope is the magnitude of the analytic signal, ``e(t) = |x(t) + j H{x}(t)|``
    (``scipy.signal.hilbert``), the temporal envelope of the modulation-transfer literature
    (Houtgast & Steeneken, J. Acoust. Soc. Am. 77(3), 1985; Drullman, Festen & Plomp,
    J. Acoust. Soc. Am. 95(2), 1994). Its power spectrum is Welch's estimate (``scipy.signal.welch``, Hann
    segments of :data:`MODULATION_SEGMENT_SECONDS`, half overlap, *no* detrending: the 0 Hz bin
    keeps the envelope's mean, so the spectrum sums to its total energy).

    Returns:
        ``(frequencies [K] in Hz, one-sided power spectral density [K])``.

    Shape: ``[T] -> ([K], [K])``, ``K = segment // 2 + 1``.

    Raises:
        ValueError: bad signal (see :func:`active_frames`).
    """
    from scipy.signal import hilbert, welch

    signal = _signal(audio, sample_rate)
    envelope = np.abs(hilbert(signal))
    segment = min(envelope.shape[0], int(round(MODULATION_SEGMENT_SECONDS * sample_rate)))
    return welch(
        envelope,
        fs=sample_rate,
        window="hann",
        nperseg=segment,
        detrend=False,
        scaling="density",
    )


def modulation_energy_db(
    audio, sample_rate: int, *, band_hz: tuple[float, float] = MODULATION_BAND_HZ
) -> float:
    """Energy of the amplitude envelope's modulation spectrum in ``band_hz`` relative to the
    envelope's total energy, in dB (``<= 0``).

    ``10 log10(sum_{50 <= f <= 200 Hz} M(f) / sum_f M(f))`` with ``M`` the envelope's power
    spectrum (:func:`modulation_spectrum`; the total includes the 0 Hz bin, the envelope's mean,
    so the value measures the modulation *depth* at pitch rates, not only its spectral shape).
    A carrier fully amplitude-modulated at 100 Hz, ``(1 + cos 2 pi 100 t) sin 2 pi f_c t``, gives
    ``10 log10((1/2) / (1 + 1/2)) = -4.8 dB``; a steady tone (flat envelope) gives -60 dB or
    less. Voiced speech carries its pitch in this band (harmonics beat at F0); vocoders and
    codecs change it (Wu, Xiao, Chng & Li, "Synthetic speech detection using temporal
    modulation feature", ICASSP 2013). Computed on the whole
    signal (the envelope needs continuity; crop the signal to the speaker's span first), floored
    at -120 dB.

    Shape: ``[T] -> float``.

    Raises:
        ValueError: bad signal (see :func:`active_frames`) or a band not inside
            ``[0, sample_rate / 2]``.
    """
    low, high = band_hz
    if not 0 <= low < high <= sample_rate / 2:
        raise ValueError(f"band_hz={band_hz} is not a band inside [0, {sample_rate / 2}] Hz")
    frequencies, density = modulation_spectrum(audio, sample_rate)
    total = density.sum()
    if total <= 0:
        return _db(0.0)
    in_band = (frequencies >= low) & (frequencies <= high)
    return _db(density[in_band].sum() / total)


def cue_features(audio, sample_rate: int, *, frame_mask=None) -> dict[str, float]:
    """Every cue of one signal: ``{name: value}`` for the names of :data:`CUE_NAMES`.

    ``frame_mask`` (``[frames]`` bool) selects the frames of the frame-based cues; the
    modulation energy uses the whole signal.

    Shape: ``[T] -> {name: float}``.

    Raises:
        ValueError: bad signal or mask (see the cue functions).
    """
    return {
        "high_band_share_db": high_band_share_db(audio, sample_rate, frame_mask=frame_mask),
        "zero_crossing_rate": zero_crossing_rate(audio, sample_rate, frame_mask=frame_mask),
        "spectral_flatness": spectral_flatness(audio, sample_rate, frame_mask=frame_mask),
        "modulation_energy_db": modulation_energy_db(audio, sample_rate),
    }


__all__ = [
    "CUE_NAMES",
    "CUE_UNITS",
    "active_frames",
    "cue_features",
    "frame_length",
    "high_band_share_db",
    "hop_length",
    "modulation_energy_db",
    "modulation_spectrum",
    "n_frames",
    "spectral_flatness",
    "zero_crossing_rate",
]
