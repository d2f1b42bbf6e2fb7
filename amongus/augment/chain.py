"""Composable waveform augmentation for training: RawBoost, codecs, reverberation, noise.

An :class:`Augmenter` is a list of steps applied in order, each with its own probability, in the
manner of DeepFense's augmentation pipelines. It is built from a spec such as
``"rawboost,codec:0.3,reverb"`` (:func:`parse_augment_spec`): a comma-separated list of step
names, each optionally followed by ``:p``, its probability (else the default probability).

Steps (:data:`STEPS`):

| name | what | implementation |
| --- | --- | --- |
| `rawboost` | RawBoost algorithms 1 then 2 in series (the paper's setting for LA) | :mod:`amongus.augment.rawboost` |
| `rawboost1` | RawBoost 1: linear and non-linear convolutive noise | :mod:`amongus.augment.rawboost` |
| `rawboost2` | RawBoost 2: impulsive signal-dependent noise | :mod:`amongus.augment.rawboost` |
| `rawboost3` | RawBoost 3: stationary signal-independent coloured noise (the paper's setting for DF) | :mod:`amongus.augment.rawboost` |
| `codec` | telephone channel: 8 kHz, 300-3400 Hz band, a random codec (mu-law, GSM, AMR-NB, Codec 2) | the Mixer's :func:`amongus.mix.augment.telephone_channel` |
| `reverb` | a random shoebox room (pyroomacoustics image source method), peak kept | the Mixer's :func:`amongus.mix.augment.apply_reverb` |
| `noise` | white, pink or brown noise (or a window of a noise file) at a random SNR | the Mixer's :func:`amongus.mix.augment.add_noise` |

Each step takes options (``options={"noise": {"snr_db": [5, 20]}}``); see :data:`STEPS` and
docs/training.md for their names and defaults.

Reproducibility: :meth:`Augmenter.__call__` takes a ``numpy.random.Generator``; every step draws
its "apply?" number and its own seed from it whether or not it is applied, so the randomness of a
step never depends on another step's probability, and the same generator state always gives the
same output. The Trainer seeds that generator from ``(seed, epoch, mixture, stream)``, so a
resumed run sees the same augmented streams.

Shape: ``[T] -> [T]`` float32, finite, for every step and any chain.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Transform = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


# ---------------------------------------------------------------- spec parsing
def parse_augment_spec(
    spec: str | Sequence[str] | None, *, default_probability: float = 0.5
) -> list[tuple[str, float]]:
    """``"rawboost,codec:0.3"`` -> ``[("rawboost", 0.5), ("codec", 0.3)]``.

    ``None``, ``""`` and ``"none"`` give ``[]``. A list of such strings is joined.

    Raises:
        ValueError: an unknown step, a step named twice, or a probability outside ``[0, 1]``.
    """
    if spec is None:
        return []
    parts = [spec] if isinstance(spec, str) else list(spec)
    items = [item.strip() for part in parts for item in str(part).split(",") if item.strip()]
    if items == ["none"]:
        return []
    steps: list[tuple[str, float]] = []
    for item in items:
        name, _, probability_text = item.partition(":")
        name = name.strip().lower()
        if name not in STEPS:
            raise ValueError(
                f"augment: unknown step {name!r} in {spec!r}; known steps: {', '.join(STEPS)}"
            )
        if any(name == seen for seen, _ in steps):
            raise ValueError(f"augment: step {name!r} given twice in {spec!r}")
        try:
            probability = (
                float(probability_text) if probability_text.strip() else default_probability
            )
        except ValueError:
            raise ValueError(
                f"augment: {item!r}: the probability after ':' must be a number"
            ) from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"augment: {item!r}: probability must be in [0, 1]")
        steps.append((name, probability))
    return steps


def _range(value: Any, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"augment option {name}: expected [low, high], got {value!r}") from None
    if low > high:
        raise ValueError(f"augment option {name}: low {low} > high {high}")
    return low, high


def _check_options(step: str, options: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"augment options for {step!r}: unknown {unknown}; known: {', '.join(known)}"
        )


# ---------------------------------------------------------------- RawBoost steps
def _notch_filters(value: Mapping[str, Any] | None, step: str):
    from .rawboost import NotchFilters

    if value is None:
        return NotchFilters()
    known = [f.name for f in fields(NotchFilters)]
    _check_options(f"{step}.filters", value, known)
    return NotchFilters(**value)


def _rawboost(step: str, options: Mapping[str, Any]) -> Transform:
    from . import rawboost

    known = {
        "rawboost1": ("filters", "n_orders", "nonlinear_bias_db"),
        "rawboost2": ("max_percent", "gain"),
        "rawboost3": ("filters", "snr_db"),
        "rawboost": ("filters", "n_orders", "nonlinear_bias_db", "max_percent", "gain"),
    }[step]
    _check_options(step, options, known)
    filters = _notch_filters(options.get("filters"), step)
    n_orders = int(options.get("n_orders", 5))
    bias = _range(options.get("nonlinear_bias_db", (5.0, 20.0)), f"{step}.nonlinear_bias_db")
    max_percent = float(options.get("max_percent", 10.0))
    gain = float(options.get("gain", 2.0))
    snr = _range(options.get("snr_db", (10.0, 40.0)), f"{step}.snr_db")

    def algorithm1(audio, rng, rate):
        return rawboost.convolutive_noise(
            audio, rng, rate, n_orders=n_orders, filters=filters, nonlinear_bias_db=bias
        )

    def algorithm2(audio, rng, rate):
        return rawboost.impulsive_noise(audio, rng, max_percent=max_percent, gain=gain)

    def algorithm3(audio, rng, rate):
        return rawboost.stationary_noise(audio, rng, rate, snr_db=snr, filters=filters)

    def series12(audio, rng, rate):
        return algorithm2(algorithm1(audio, rng, rate), rng, rate)

    return {
        "rawboost1": algorithm1,
        "rawboost2": algorithm2,
        "rawboost3": algorithm3,
        "rawboost": series12,
    }[step]


# ---------------------------------------------------------------- steps from the Mixer
_CODEC_TOOLS = {
    "mulaw": ("sox",),
    "gsm": ("sox",),
    "amr-nb": ("sox",),
    "codec2": ("c2enc", "c2dec"),
    "none": (),
}


def _codec(step: str, options: Mapping[str, Any]) -> Transform:
    from ..mix.augment import TELEPHONE_BAND, TELEPHONE_RATE, run_codec, telephone_channel

    _check_options(step, options, ("codecs",))
    codecs = list(options.get("codecs", ["mulaw", "gsm", "amr-nb", "codec2"]))
    if not codecs:
        raise ValueError("augment option codec.codecs: give at least one codec")
    for codec in codecs:
        if codec not in _CODEC_TOOLS:
            raise ValueError(
                f"augment option codec.codecs: unknown codec {codec!r}; known: "
                f"{', '.join(_CODEC_TOOLS)}"
            )
        missing = [tool for tool in _CODEC_TOOLS[codec] if shutil.which(tool) is None]
        if missing:
            raise ValueError(
                f"augment step 'codec': codec {codec!r} needs {', '.join(missing)} (install sox "
                "and libsox-fmt-all, or codec2), or leave it out with "
                '--augment-options \'{"codec": {"codecs": [...]}}\''
            )
        # fail now, with the codec named, rather than in a data-loader worker mid-epoch
        probe = 0.1 * np.sin(2 * np.pi * 440 * np.arange(TELEPHONE_RATE // 10) / TELEPHONE_RATE)
        try:
            run_codec(probe, codec)
        except RuntimeError as error:
            raise ValueError(
                f"augment step 'codec': codec {codec!r} does not run: {error}"
            ) from None

    def transform(audio, rng, rate):
        codec = codecs[int(rng.integers(len(codecs)))]
        params = {"codec": codec, "rate": TELEPHONE_RATE, "band_hz": list(TELEPHONE_BAND)}
        return telephone_channel(np.asarray(audio, dtype=np.float64), params, rate)

    return transform


def _reverb(step: str, options: Mapping[str, Any]) -> Transform:
    from ..mix.augment import _draw_reverb, apply_reverb
    from ..mix.config import MixerConfig

    _check_options(step, options, ("rt60", "room_size"))
    defaults = MixerConfig()
    room = MixerConfig(
        rt60=_range(options.get("rt60", defaults.rt60), "reverb.rt60"),
        room_size=_range(options.get("room_size", defaults.room_size), "reverb.room_size"),
    )

    def transform(audio, rng, rate):
        signal = np.asarray(audio, dtype=np.float64)
        peak = float(np.max(np.abs(signal))) if signal.size else 0.0
        if peak <= 0:
            return signal
        params = _draw_reverb(rng, 1, room)
        wet = apply_reverb(signal[None], params, rate)[0]
        wet_peak = float(np.max(np.abs(wet)))
        # a room impulse response attenuates by tens of dB: keep the level the model sees
        return wet * (peak / wet_peak) if wet_peak > 0 else signal

    return transform


def _noise(step: str, options: Mapping[str, Any]) -> Transform:
    from ..mix.augment import add_noise
    from ..mix.config import NOISE_TYPES

    _check_options(step, options, ("snr_db", "noise_types", "files"))
    snr = _range(options.get("snr_db", (5.0, 20.0)), "noise.snr_db")
    kinds = list(options.get("noise_types", ["white", "pink", "brown"]))
    files = [str(path) for path in options.get("files", [])]
    for kind in kinds:
        if kind not in NOISE_TYPES:
            raise ValueError(
                f"augment option noise.noise_types: unknown {kind!r}; known {NOISE_TYPES}"
            )
    if not kinds and not files:
        raise ValueError("augment step 'noise': give noise_types or files")
    for path in files:
        from ..audio import load_audio

        load_audio(path)  # AudioError naming the file now, not mid-epoch

    def transform(audio, rng, rate):
        params: dict[str, Any] = {
            "seed": int(rng.integers(0, 2**31 - 1)),
            "snr_db": float(rng.uniform(*snr)),
        }
        choice = int(rng.integers(len(kinds) + len(files)))
        if choice < len(kinds):
            params["noise_type"] = kinds[choice]
        else:
            params.update(
                noise_type="file", path=files[choice - len(kinds)], start_fraction=rng.random()
            )
        return add_noise(np.asarray(audio, dtype=np.float64), params, rate)

    return transform


#: Step names -> factories ``(name, options) -> transform(audio [T], rng, rate) -> [T]``.
STEPS: dict[str, Callable[[str, Mapping[str, Any]], Transform]] = {
    "rawboost": _rawboost,
    "rawboost1": _rawboost,
    "rawboost2": _rawboost,
    "rawboost3": _rawboost,
    "codec": _codec,
    "reverb": _reverb,
    "noise": _noise,
}


# ---------------------------------------------------------------- the chain
@dataclass(frozen=True)
class AugmentStep:
    """One step of an :class:`Augmenter`: its name, probability and transform."""

    name: str
    probability: float
    transform: Transform


class Augmenter:
    """Waveform augmentation steps applied in order, each with its probability.

    Args:
        steps: the steps (see :meth:`from_spec`).
        sample_rate: the rate of the audio it will be given, Hz.

    Example:
        >>> augmenter = Augmenter.from_spec("rawboost,noise:0.3", sample_rate=16000)
        >>> noisy = augmenter(stream, np.random.default_rng(0))  # doctest: +SKIP

    Shape: ``[T] -> [T]`` (float32, finite).
    """

    def __init__(self, steps: Sequence[AugmentStep], *, sample_rate: int):
        if sample_rate < 1:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.steps = list(steps)
        self.sample_rate = int(sample_rate)

    @classmethod
    def from_spec(
        cls,
        spec: str | Sequence[str] | None,
        *,
        sample_rate: int,
        probability: float = 0.5,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Augmenter:
        """Build the chain of a spec (:func:`parse_augment_spec`).

        Args:
            spec: ``"rawboost,codec:0.3,reverb"``.
            sample_rate: Hz.
            probability: the probability of the steps given without ``:p``.
            options: per step options, ``{"noise": {"snr_db": [5, 20]}, ...}``.

        Raises:
            ValueError: unknown steps or options, or a codec whose tools are missing.
        """
        options = dict(options or {})
        parsed = parse_augment_spec(spec, default_probability=probability)
        stray = sorted(set(options) - {name for name, _ in parsed})
        if stray:
            raise ValueError(f"augment options given for steps not in the chain: {stray}")
        steps = [
            AugmentStep(name, p, STEPS[name](name, dict(options.get(name) or {})))
            for name, p in parsed
        ]
        return cls(steps, sample_rate=sample_rate)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def describe(self) -> str:
        return ",".join(f"{step.name}:{step.probability:g}" for step in self.steps) or "none"

    def __repr__(self) -> str:
        return f"Augmenter({self.describe()!r}, sample_rate={self.sample_rate})"

    def __call__(self, audio, rng: np.random.Generator) -> np.ndarray:
        """Augment one waveform; the same ``rng`` state gives the same output.

        Shape: ``[T] -> [T]`` float32.
        """
        signal = np.asarray(audio, dtype=np.float32)
        if signal.ndim != 1:
            raise ValueError(f"augment one waveform [T] at a time, got shape {signal.shape}")
        length = signal.shape[0]
        for step in self.steps:
            # both draws always happen: a step's randomness never depends on the others'
            use = rng.random()
            seed = int(rng.integers(0, 2**63 - 1))
            if use >= step.probability or length == 0:
                continue
            out = np.asarray(step.transform(signal, np.random.default_rng(seed), self.sample_rate))
            if out.shape[0] < length:
                out = np.pad(out, (0, length - out.shape[0]))
            out = out[:length]
            if not np.all(np.isfinite(out)):
                logger.warning("augment step %s gave non-finite samples; step skipped", step.name)
                continue
            signal = out.astype(np.float32)
        return signal
