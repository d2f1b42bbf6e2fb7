"""Spoof cues (amongus.cues) on signals with known answers, and the cue-analysis recipe end to end.

The recipe runs on a few mixtures of the bundled demo corpus with tiny random models
(amongus.testing), so nothing is downloaded; the oracle-as-separator run checks the pairing of
streams with sources (every shift must then be exactly 0).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from amongus import cues
from amongus.recipes import cue_analysis
from amongus.separation.oracle import OracleSeparator

RATE = 16000


def seconds(duration: float, rate: int = RATE) -> np.ndarray:
    return np.arange(int(duration * rate)) / rate


def tone(frequency: float, duration: float = 1.0, rate: int = RATE) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * seconds(duration, rate) + 0.1)


def white_noise(duration: float = 1.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(duration * rate))


def am_carrier(modulation_hz: float, depth: float = 1.0, carrier_hz: float = 1000.0):
    t = seconds(2.0)
    return (1 + depth * np.cos(2 * np.pi * modulation_hz * t)) * np.sin(2 * np.pi * carrier_hz * t)


# ---------------------------------------------------------------------------- the cues
@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("frequency", [100.0, 440.0, 1000.0])
def test_zero_crossing_rate_of_a_tone_is_twice_its_frequency(rate, frequency):
    assert cues.zero_crossing_rate(tone(frequency, rate=rate), rate) == pytest.approx(
        2 * frequency, rel=0.02
    )


def test_zero_crossing_rate_of_white_noise_is_half_the_rate():
    assert cues.zero_crossing_rate(white_noise(), RATE) == pytest.approx(RATE / 2, rel=0.05)


def test_spectral_flatness_is_high_for_noise_and_near_zero_for_a_tone():
    noise = cues.spectral_flatness(white_noise(), RATE)
    assert noise == pytest.approx(math.exp(-np.euler_gamma), abs=0.05)  # periodogram of noise
    assert cues.spectral_flatness(tone(440.0), RATE) < 0.01


def test_high_band_share_of_white_noise_and_of_low_passed_noise():
    # white noise: 4-8 kHz is half the band at 16 kHz, so -3 dB
    assert cues.high_band_share_db(white_noise(), RATE) == pytest.approx(-3.0, abs=0.3)
    low_passed = sosfiltfilt(butter(10, 3500, fs=RATE, output="sos"), white_noise())
    assert cues.high_band_share_db(low_passed, RATE) < -40.0
    # the cutoff moves the split: above 2 kHz, three quarters of white noise's power
    assert cues.high_band_share_db(white_noise(), RATE, cutoff_hz=2000) == pytest.approx(
        10 * math.log10(0.75), abs=0.3
    )


def test_modulation_energy_of_a_100_hz_am_carrier():
    # (1 + cos)^2 averages 1 + 1/2; the 100 Hz component holds 1/2 of it: 10 log10(1/3)
    assert cues.modulation_energy_db(am_carrier(100.0), RATE) == pytest.approx(
        10 * math.log10(1 / 3), abs=0.3
    )
    # depth m: (m^2 / 2) / (1 + m^2 / 2); the value measures modulation depth, not only shape
    assert cues.modulation_energy_db(am_carrier(100.0, depth=0.1), RATE) == pytest.approx(
        10 * math.log10(0.005 / 1.005), abs=0.3
    )
    # modulation outside 50-200 Hz, or none, leaves the band (almost) empty
    assert cues.modulation_energy_db(am_carrier(4.0), RATE) < -40.0
    assert cues.modulation_energy_db(am_carrier(400.0), RATE) < -40.0
    assert cues.modulation_energy_db(tone(1000.0), RATE) < -40.0
    assert cues.modulation_energy_db(am_carrier(100.0), RATE) > cues.modulation_energy_db(
        white_noise(2.0), RATE
    )


def test_modulation_spectrum_peaks_at_the_modulation_frequency():
    frequencies, density = cues.modulation_spectrum(am_carrier(150.0), RATE)
    above_dc = frequencies > 20
    assert frequencies[above_dc][np.argmax(density[above_dc])] == pytest.approx(150.0, abs=4.0)


def test_cues_do_not_depend_on_gain():
    signal = white_noise() + tone(300.0)
    assert cues.cue_features(signal, RATE) == pytest.approx(
        cues.cue_features(0.001 * signal, RATE), rel=1e-6
    )


def test_active_frames_and_frame_mask_select_the_speech():
    signal = np.concatenate([np.zeros(RATE // 2), tone(440.0, 0.5)])
    mask = cues.active_frames(signal, RATE)
    assert mask.shape == (cues.n_frames(signal.size, RATE),)
    assert not mask[: mask.size // 2 - 2].any() and mask[mask.size // 2 + 2 :].all()
    # another signal of the same length, judged on the first signal's active frames only (one
    # frame straddles the noise-tone boundary)
    other = np.concatenate([white_noise(0.5), tone(440.0, 0.5)])
    assert 880 < cues.zero_crossing_rate(other, RATE, frame_mask=mask) < 1.25 * 880
    assert cues.zero_crossing_rate(other, RATE) > 3000
    # frames wholly inside the tone: its rate exactly
    starts = np.arange(mask.size) * cues.hop_length(RATE)
    inside = starts >= RATE // 2
    assert cues.zero_crossing_rate(other, RATE, frame_mask=inside) == pytest.approx(880, rel=0.02)


@pytest.mark.parametrize(
    "audio,match",
    [
        (np.zeros(RATE), "digital silence"),
        (np.ones(100), "shorter than one"),
        (np.ones((2, RATE)), "mono"),
        (np.full(RATE, np.nan), "NaN"),
    ],
)
def test_undefined_cues_raise_a_clear_error(audio, match):
    for function in (
        cues.high_band_share_db,
        cues.zero_crossing_rate,
        cues.spectral_flatness,
        cues.modulation_energy_db,
        cues.active_frames,
    ):
        with pytest.raises(ValueError, match=match):
            function(audio, RATE)


def test_bad_masks_band_and_cutoff_raise():
    noise = white_noise()
    frames = cues.n_frames(noise.size, RATE)
    with pytest.raises(ValueError, match="frames"):
        cues.zero_crossing_rate(noise, RATE, frame_mask=np.ones(frames + 1, bool))
    with pytest.raises(ValueError, match="no frame"):
        cues.spectral_flatness(noise, RATE, frame_mask=np.zeros(frames, bool))
    with pytest.raises(ValueError, match="Nyquist"):
        cues.high_band_share_db(noise[:8000], 8000)  # an 8 kHz signal has nothing above 4 kHz
    with pytest.raises(ValueError, match="band"):
        cues.modulation_energy_db(noise, RATE, band_hz=(200.0, 50.0))


# ---------------------------------------------------------------------------- statistics
def test_prediction_statistics_known_cases():
    predictor = np.arange(10.0)
    stats = cue_analysis.prediction_statistics(
        predictor, predictor / 10, (predictor >= 5).astype(int), -predictor
    )
    assert stats["spearman_error"] == pytest.approx(1.0)
    assert stats["spearman_error_change"] == pytest.approx(-1.0)
    assert stats["auc_wrong"] == pytest.approx(1.0) and stats["n_wrong"] == 5
    # undefined statistics are None, never NaN: constant predictor, one class, too few streams
    constant = cue_analysis.prediction_statistics(np.ones(10), predictor, np.zeros(10, int))
    assert constant["spearman_error"] is None and constant["auc_wrong"] is None
    few = cue_analysis.prediction_statistics(predictor[:3], predictor[:3], [0, 1, 0])
    assert few["spearman_error"] is None and few["auc_wrong"] is None


def test_shift_statistics_known_shift():
    oracle = np.arange(8.0)
    stats = cue_analysis.shift_statistics(oracle, oracle + 2.0)
    assert stats["n"] == 8 and stats["shift_median"] == pytest.approx(2.0)
    assert stats["wilcoxon_p"] < 0.05
    assert cue_analysis.shift_statistics(oracle, oracle)["wilcoxon_p"] is None


# ---------------------------------------------------------------------------- the recipe
@pytest.fixture(scope="module")
def demo_setup(tmp_path_factory):
    """Four demo mixtures (eval split), a tiny ConvTasNet and a tiny WavLM classifier."""
    try:
        from amongus.corpora.demo import demo_utterances

        utterances = demo_utterances("eval")
    except (FileNotFoundError, ImportError, ValueError) as error:
        pytest.skip(f"bundled demo corpus not available: {error}")
    from amongus.mix import Mixer, MixerConfig
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet

    root = tmp_path_factory.mktemp("cues")
    Mixer(MixerConfig()).run(
        utterances, root / "mix", n_mixtures=4, seed=0, workers=1, progress=False
    )
    return {
        "mix": root / "mix",
        "classifier": str(build_tiny_classifier(root / "classifier")),
        "separator": str(build_tiny_convtasnet(root / "convtasnet.bin")),
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_recipe_end_to_end_writes_finite_csv_json_and_plots(demo_setup, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the manifest resolve from its folder
    out = tmp_path / "cues"
    code = cue_analysis.main(
        [
            "--mixtures",
            str(demo_setup["mix"] / "mixtures.jsonl"),
            "--out",
            str(out),
            "--separator",
            demo_setup["separator"],
            "--classifier",
            demo_setup["classifier"],
            "--batch-size",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    rows = _rows(out / "cues.csv")
    assert len(rows) == 8  # two sources per mixture
    assert list(rows[0]) == cue_analysis.COLUMNS
    for row in rows:
        for column in cue_analysis.COLUMNS[7:]:
            assert math.isfinite(float(row[column])), (column, row[column])
        assert float(row["error_separated"]) == pytest.approx(
            abs(float(row["spoof_probability_separated"]) - (row["label"] == "spoof"))
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_mixtures"] == 4 and summary["n_streams"] == 8 and summary["n_skipped"] == 0
    assert summary["stream_rate_hz"] == 16000
    assert summary["command"].startswith("python -m amongus.recipes.cue_analysis")
    for cue in cues.CUE_NAMES:
        assert summary["shifts"][cue]["all"]["n"] == 8
        assert set(summary["prediction"][cue]["all"]) >= {"spearman_error", "auc_wrong"}
    assert "minus_si_sdr" in summary["prediction"]
    for name in summary["plots"]:
        assert (out / name).stat().st_size > 1000
    assert len(summary["plots"]) == 4


class SwappedOracle(OracleSeparator):
    """The reference sources in reverse order: a perfect separator with another stream order."""

    def _separate(self, mixture, lengths, references):
        return super()._separate(mixture, lengths, references).flip(1)


@pytest.mark.parametrize("swapped", [False, True])
def test_perfect_separation_gives_zero_shift(demo_setup, swapped):
    """With the references as the separated streams (in the oracle's order or reversed), each
    reference must be paired with itself: a pairing bug (the assignment ignored, streams
    swapped, sources misread) shows as a nonzero shift or error change."""
    analysis = cue_analysis.analyse_cues(
        demo_setup["mix"],
        separator=SwappedOracle(n_src=None) if swapped else "oracle",
        classifier=demo_setup["classifier"],
        limit=2,
        progress=False,
    )
    assert analysis.n_mixtures == 2 and len(analysis.rows) == 4 and not analysis.skipped
    for row in analysis.rows:
        for cue in cues.CUE_NAMES:
            assert row[f"shift_{cue}"] == pytest.approx(0.0, abs=1e-9)
        assert row["error_change"] == pytest.approx(0.0, abs=1e-6)
        assert row["stream"] == (1 - row["reference"] if swapped else row["reference"])


def test_bad_mixtures_are_skipped_with_their_reason(demo_setup, tmp_path):
    lines = (demo_setup["mix"] / "mixtures.jsonl").read_text().splitlines()
    broken = json.loads(lines[0])
    broken["mixture_id"] = "missing-audio"
    broken["path"] = str(tmp_path / "no-such.flac")
    good = json.loads(lines[1])
    good["path"] = str(demo_setup["mix"] / good["path"])
    manifest = tmp_path / "mixtures.jsonl"
    manifest.write_text("\n".join([json.dumps(good), json.dumps(broken), "{not json"]) + "\n")
    analysis = cue_analysis.analyse_cues(
        manifest, separator="oracle", classifier=demo_setup["classifier"], progress=False
    )
    assert analysis.n_mixtures == 3 and len(analysis.rows) == 2
    reasons = {item["id"]: item["reason"] for item in analysis.skipped}
    assert "no-such.flac" in reasons["missing-audio"]
    assert any(key.startswith("mixtures.jsonl:") for key in reasons)
    summary = cue_analysis.write_cue_analysis(analysis, tmp_path / "out")
    assert summary["n_skipped"] == 2


def test_command_line_errors_are_one_line(tmp_path, capsys):
    code = cue_analysis.main(["--mixtures", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)])
    assert code == 2
    assert "no such mixture manifest" in capsys.readouterr().err
