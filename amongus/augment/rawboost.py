"""RawBoost: data boosting of raw waveforms by random filtering and noise.

Source: Tak, Kamble, Patino, Todisco and Evans, "RawBoost: A Raw Data Boosting and Augmentation
Method applied to Automatic Speaker Verification Anti-Spoofing", ICASSP 2022 (arXiv:2111.04433),
Sec. 3, written here from the paper's equations; the filters are designed with
``scipy.signal.firwin``.

* **Algorithm 1, linear and non-linear convolutive noise** (:func:`convolutive_noise`): the sum of
  ``n_orders`` terms ``g_j * (b_j * x**j)``, ``j = 1..n_orders``, each ``b_j`` a random
  multi-band filter (a cascade of notch filters, :func:`multiband_filter`) and ``g_j`` a random
  gain; the terms with ``j > 1`` are attenuated further by a random bias, so the non-linear
  (higher-order) distortion stays below the linear one. It models the channel: stationary
  colouration plus the harmonic distortion of transducers and codecs.
* **Algorithm 2, impulsive signal-dependent additive noise** (:func:`impulsive_noise`): a random
  ``P %`` of the samples (``P`` up to ``max_percent``) get ``g_sd * x[n] * r[n]`` added, ``r[n]``
  in ``[-1, 1]`` (the product of two uniform draws): clicks, overload and quantisation faults whose
  size follows the signal.
* **Algorithm 3, stationary signal-independent additive noise** (:func:`stationary_noise`): white
  noise coloured by a random multi-band filter, added at a random SNR in ``snr_db``.

The default parameters are those the paper reports for ASVspoof 2021 LA/DF (5 notch filters with
centre frequencies in 20-8000 Hz, widths 100-1000 Hz and 10-100 taps; 5 orders; gains 0 dB and a
5-20 dB bias for the non-linear terms; ``P = 10 %``, ``g_sd = 2``; SNR 10-40 dB). Two choices
are amongus's own and documented: the convolutive noise works on the signal scaled to a unit peak
and its output is scaled back to the input's peak (the paper normalises every output to a unit
peak, which would change the level the classifier sees), and the filters are applied with their
group delay removed (``mode="same"`` on the odd-length linear-phase FIR), so the augmented signal
stays aligned with the original.

Every function is pure given its ``rng`` (a ``numpy.random.Generator``): the same generator state
gives the same output. Shape: ``[T] -> [T]``, float32 in and out; the output is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NotchFilters:
    """How a random multi-band filter is drawn (RawBoost, Sec. 3.1).

    Attributes:
        n_bands: notch filters in the cascade.
        min_freq, max_freq: range of the centre frequencies, Hz (clipped below Nyquist).
        min_bandwidth, max_bandwidth: range of the notch widths, Hz.
        min_taps, max_taps: range of each notch filter's FIR length (made odd).
        min_gain_db, max_gain_db: range of the gain of the filtered term, dB.
    """

    n_bands: int = 5
    min_freq: float = 20.0
    max_freq: float = 8000.0
    min_bandwidth: float = 100.0
    max_bandwidth: float = 1000.0
    min_taps: int = 10
    max_taps: int = 100
    min_gain_db: float = 0.0
    max_gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.n_bands < 1:
            raise ValueError(f"n_bands must be >= 1, got {self.n_bands}")
        for low, high in (
            ("min_freq", "max_freq"),
            ("min_bandwidth", "max_bandwidth"),
            ("min_taps", "max_taps"),
            ("min_gain_db", "max_gain_db"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) > {high} ({getattr(self, high)})")
        if self.min_freq < 0 or self.min_bandwidth <= 0 or self.min_taps < 1:
            raise ValueError("frequencies must be >= 0, bandwidths > 0 and taps >= 1")


def _as_float64(audio) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"RawBoost works on one waveform [T], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("RawBoost input holds NaN or infinite samples")
    return audio.astype(np.float64)


def _finish(audio: np.ndarray) -> np.ndarray:
    # float32 overflow cannot happen for audio-range input, but never hand NaN/inf downstream
    return np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def multiband_filter(
    rng: np.random.Generator, sample_rate: int, filters: NotchFilters
) -> np.ndarray:
    """A random multi-band FIR filter: ``n_bands`` band-stop (notch) filters in cascade.

    Each notch has a uniform random centre frequency, width and (odd) length; it is designed with
    ``scipy.signal.firwin`` (Hamming window). The cascade is scaled to a peak magnitude response
    of 1, so it only removes energy from its stop bands.

    Returns:
        the FIR coefficients ``[L]`` (``L`` odd: linear phase, group delay ``(L - 1) / 2``).
    """
    from scipy.signal import firwin, freqz

    nyquist = sample_rate / 2.0
    taps = np.ones(1)
    for _ in range(filters.n_bands):
        centre = rng.uniform(filters.min_freq, filters.max_freq)
        width = rng.uniform(filters.min_bandwidth, filters.max_bandwidth)
        length = int(rng.integers(filters.min_taps, filters.max_taps + 1))
        length += 1 - length % 2  # a band-stop FIR needs an odd length
        # firwin needs edges strictly inside (0, Nyquist)
        low = float(np.clip(centre - width / 2, 1.0, nyquist - 2.0))
        high = float(np.clip(centre + width / 2, low + 1.0, nyquist - 1.0))
        notch = firwin(length, [low, high], window="hamming", pass_zero="bandstop", fs=sample_rate)
        taps = np.convolve(taps, notch)
    _, response = freqz(taps, worN=1024)
    peak = float(np.max(np.abs(response)))
    return taps / peak if peak > 0 else taps


def _filter(audio: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Zero-delay FIR filtering (``taps`` odd-length linear phase). Shape kept."""
    from scipy.signal import oaconvolve

    if audio.shape[0] == 0:
        return audio
    filtered = oaconvolve(audio, taps, mode="full")
    delay = (taps.shape[0] - 1) // 2
    return filtered[delay : delay + audio.shape[0]]


def convolutive_noise(
    audio,
    rng: np.random.Generator,
    sample_rate: int,
    *,
    n_orders: int = 5,
    filters: NotchFilters = NotchFilters(),
    nonlinear_bias_db: tuple[float, float] = (5.0, 20.0),
) -> np.ndarray:
    """RawBoost algorithm 1: linear and non-linear convolutive noise.

    ``y = sum_{j=1..n_orders} g_j * (b_j * x^j)`` on ``x`` scaled to a unit peak; ``g_j`` is drawn
    in ``[min_gain_db, max_gain_db]`` dB, minus a bias drawn in ``nonlinear_bias_db`` for
    ``j > 1``; the result is scaled to the input's peak. A silent input is returned unchanged.

    Shape: ``[T] -> [T]`` (float32).
    """
    if n_orders < 1:
        raise ValueError(f"n_orders must be >= 1, got {n_orders}")
    signal = _as_float64(audio)
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak <= 0:
        return _finish(signal)
    unit = signal / peak
    output = np.zeros_like(unit)
    for order in range(1, n_orders + 1):
        taps = multiband_filter(rng, sample_rate, filters)
        gain_db = rng.uniform(filters.min_gain_db, filters.max_gain_db)
        if order > 1:
            gain_db -= rng.uniform(*nonlinear_bias_db)
        output += 10.0 ** (gain_db / 20.0) * _filter(unit**order, taps)
    out_peak = float(np.max(np.abs(output)))
    if out_peak <= 0:  # every band of a pure tone removed: keep the input rather than silence
        return _finish(signal)
    return _finish(output * (peak / out_peak))


def impulsive_noise(
    audio,
    rng: np.random.Generator,
    *,
    max_percent: float = 10.0,
    gain: float = 2.0,
) -> np.ndarray:
    """RawBoost algorithm 2: impulsive signal-dependent additive noise.

    ``P`` is drawn uniformly in ``(0, max_percent]``; ``round(P / 100 * T)`` distinct samples
    ``n`` (at least one) get ``gain * x[n] * r[n]`` added, ``r = u1 * u2`` with ``u1, u2``
    uniform in ``[-1, 1]``.

    Shape: ``[T] -> [T]`` (float32).
    """
    if not 0 < max_percent <= 100:
        raise ValueError(f"max_percent must be in (0, 100], got {max_percent}")
    signal = _as_float64(audio)
    length = signal.shape[0]
    if length == 0:
        return _finish(signal)
    percent = max_percent * (1.0 - rng.random())  # (0, max_percent]
    count = min(length, max(1, round(percent / 100.0 * length)))
    where = rng.choice(length, size=count, replace=False)
    factor = rng.uniform(-1.0, 1.0, count) * rng.uniform(-1.0, 1.0, count)
    output = signal.copy()
    output[where] += gain * signal[where] * factor
    return _finish(output)


def stationary_noise(
    audio,
    rng: np.random.Generator,
    sample_rate: int,
    *,
    snr_db: tuple[float, float] = (10.0, 40.0),
    filters: NotchFilters = NotchFilters(),
) -> np.ndarray:
    """RawBoost algorithm 3: stationary signal-independent additive noise.

    White Gaussian noise filtered by a random multi-band filter, scaled so that the power ratio
    of the signal to the noise is an SNR drawn uniformly in ``snr_db`` (dB), and added. A silent
    input is returned unchanged (no SNR is defined).

    Shape: ``[T] -> [T]`` (float32).
    """
    if snr_db[0] > snr_db[1]:
        raise ValueError(f"snr_db must be (low, high), got {snr_db}")
    signal = _as_float64(audio)
    signal_power = float(np.mean(np.square(signal))) if signal.size else 0.0
    noise = _filter(
        rng.standard_normal(signal.shape[0]), multiband_filter(rng, sample_rate, filters)
    )
    snr = rng.uniform(*snr_db)
    noise_power = float(np.mean(np.square(noise))) if noise.size else 0.0
    if signal_power <= 0 or noise_power <= 0:
        return _finish(signal)
    scale = np.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0)))
    return _finish(signal + scale * noise)


__all__ = [
    "NotchFilters",
    "convolutive_noise",
    "impulsive_noise",
    "multiband_filter",
    "stationary_noise",
]
