"""Waveform augmentation: RawBoost's three algorithms and the composable chain (amongus.augment)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from amongus.augment import STEPS, Augmenter, parse_augment_spec, rawboost

RATE = 16000


def _speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A harmonic, amplitude-modulated tone with a silent gap in the middle."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * RATE)) / RATE
    audio = sum(np.sin(2 * np.pi * 150 * k * time + rng.uniform(0, 6)) / k for k in range(1, 12))
    audio *= 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * time))
    gap = slice(len(time) // 2 - 1600, len(time) // 2 + 1600)
    audio[gap] = 0.0
    return audio.astype(np.float32)


def _available_steps() -> list[str]:
    steps = [name for name in STEPS if name != "codec"]
    if shutil.which("sox") and shutil.which("c2enc"):
        steps.append("codec")
    return steps


@pytest.mark.parametrize("step", _available_steps())
def test_every_step_is_seeded_keeps_shape_and_changes_the_signal(step):
    audio = _speech_like()
    augmenter = Augmenter.from_spec(f"{step}:1", sample_rate=RATE)
    first = augmenter(audio, np.random.default_rng(3))
    again = augmenter(audio, np.random.default_rng(3))
    other = augmenter(audio, np.random.default_rng(4))
    assert first.shape == audio.shape and first.dtype == np.float32
    assert np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, again)  # same seed, same output
    assert not np.array_equal(first, other)  # another seed, another draw
    assert np.max(np.abs(first - audio)) > 1e-3  # it did something
    assert np.array_equal(audio, _speech_like())  # the input is not modified in place


@pytest.mark.parametrize("step", _available_steps())
def test_silence_stays_finite(step):
    augmenter = Augmenter.from_spec(f"{step}:1", sample_rate=RATE)
    out = augmenter(np.zeros(RATE // 2, dtype=np.float32), np.random.default_rng(0))
    assert out.shape == (RATE // 2,) and np.all(np.isfinite(out))


def test_probability_zero_is_the_identity_and_draws_do_not_depend_on_other_steps():
    audio = _speech_like()
    assert np.array_equal(
        Augmenter.from_spec("rawboost:0,noise:0", sample_rate=RATE)(
            audio, np.random.default_rng(0)
        ),
        audio,
    )
    # the noise step gets the same seed whether or not the (later) RawBoost step may run
    with_later = Augmenter.from_spec("noise:1,rawboost2:0", sample_rate=RATE)
    alone = Augmenter.from_spec("noise:1", sample_rate=RATE)
    np.testing.assert_array_equal(
        with_later(audio, np.random.default_rng(9)), alone(audio, np.random.default_rng(9))
    )


def test_convolutive_noise_keeps_the_peak_and_colours_the_spectrum():
    audio = _speech_like()
    out = rawboost.convolutive_noise(audio, np.random.default_rng(0), RATE)
    assert np.max(np.abs(out)) == pytest.approx(np.max(np.abs(audio)), rel=1e-5)
    # on white noise, the band energies after the random notch filters differ widely
    white = 0.1 * np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    coloured = rawboost.convolutive_noise(white, np.random.default_rng(0), RATE)
    bands_in = np.array([b.sum() for b in np.array_split(np.abs(np.fft.rfft(white)) ** 2, 32)])
    bands_out = np.array([b.sum() for b in np.array_split(np.abs(np.fft.rfft(coloured)) ** 2, 32)])
    gain = bands_out / bands_in
    assert gain.max() / gain.min() > 4.0


def test_multiband_filter_is_a_set_of_notches_with_unit_peak():
    from scipy.signal import freqz

    taps = rawboost.multiband_filter(np.random.default_rng(0), RATE, rawboost.NotchFilters())
    assert taps.shape[0] % 2 == 1  # linear phase, zero-delay alignment
    _, response = freqz(taps, worN=4096)
    magnitude = np.abs(response)
    assert magnitude.max() == pytest.approx(1.0, rel=1e-3)  # (peak found on a coarser grid)
    assert magnitude.min() < 0.5  # something is notched out


def test_impulsive_noise_touches_a_few_samples_in_proportion_to_the_signal():
    audio = _speech_like()
    out = rawboost.impulsive_noise(audio, np.random.default_rng(1), max_percent=10.0, gain=2.0)
    changed = out != audio
    assert 0 < changed.mean() <= 0.10 + 1e-9
    assert not np.any(changed[audio == 0])  # signal-dependent: silence stays silent
    bound = 2.0 * np.abs(audio) + 1e-6  # |g * x * r| <= g |x|
    assert np.all(np.abs(out - audio) <= bound)


@pytest.mark.parametrize("seed", range(5))
def test_stationary_noise_is_added_within_the_snr_range(seed):
    audio = _speech_like()
    out = rawboost.stationary_noise(audio, np.random.default_rng(seed), RATE, snr_db=(10.0, 40.0))
    noise = out.astype(np.float64) - audio
    snr = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) / np.mean(noise**2))
    assert 10.0 - 0.1 <= snr <= 40.0 + 0.1


def test_reverb_reuses_the_mixer_room_and_keeps_the_peak():
    audio = _speech_like()
    out = Augmenter.from_spec("reverb:1", sample_rate=RATE)(audio, np.random.default_rng(2))
    assert np.max(np.abs(out)) == pytest.approx(np.max(np.abs(audio)), rel=1e-5)
    # a reverberant tail fills the silent gap
    gap = slice(RATE // 2 - 1500, RATE // 2 - 1000)
    assert np.max(np.abs(out[gap])) > 1e-4


def test_bad_specs_and_options_are_refused_clearly():
    assert parse_augment_spec("rawboost, codec:0.3", default_probability=0.4) == [
        ("rawboost", 0.4),
        ("codec", 0.3),
    ]
    assert parse_augment_spec(None) == [] and parse_augment_spec("none") == []
    with pytest.raises(ValueError, match="unknown step 'rawbost'"):
        parse_augment_spec("rawbost")
    with pytest.raises(ValueError, match="probability"):
        parse_augment_spec("noise:1.5")
    with pytest.raises(ValueError, match="twice"):
        parse_augment_spec("noise,noise")
    with pytest.raises(ValueError, match="unknown"):
        Augmenter.from_spec("noise", sample_rate=RATE, options={"noise": {"snr": [1, 2]}})
    with pytest.raises(ValueError, match="not in the chain"):
        Augmenter.from_spec("noise", sample_rate=RATE, options={"reverb": {}})
    with pytest.raises(ValueError, match="unknown codec"):
        Augmenter.from_spec("codec", sample_rate=RATE, options={"codec": {"codecs": ["mp9"]}})
    with pytest.raises(ValueError, match="NaN"):
        rawboost.impulsive_noise(np.array([0.1, np.nan]), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[T\]"):
        Augmenter.from_spec("noise", sample_rate=RATE)(np.zeros((2, 10)), np.random.default_rng(0))
