"""Default preset: N sources, presence guarantee, levels, reproducibility, re-rendering."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from test_mix_helpers import write_utterances

from amongus.labels import composition_labels
from amongus.manifest import read_mixtures
from amongus.mix import Mixer, MixerConfig, render_mixture, render_sources
from amongus.mix.plan import SourceSampler


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    return write_utterances(tmp_path_factory.mktemp("utts"), 16, seconds=(1.0, 2.0))


@pytest.mark.parametrize("n_sources", [3, 4])
def test_n_source_labels_and_uniform_compositions(utterances, n_sources):
    config = MixerConfig.from_preset("default", n_sources=n_sources)
    sampler = SourceSampler(utterances, config, seed=0)
    draws = [sampler.draw(i, 0) for i in range(1500)]
    counts = Counter(draw.composition for draw in draws)
    assert set(counts) == set(composition_labels(n_sources))
    expected = 1500 / (n_sources + 1)
    assert all(abs(count - expected) < 0.2 * expected for count in counts.values())
    for draw in draws:
        labels = [utterances[i].label for i in draw.utterances]
        assert draw.composition == "S" * labels.count("spoof") + "B" * labels.count("bonafide")
        speakers = [utterances[i].speaker for i in draw.utterances]
        assert len(set(speakers)) == n_sources  # distinct speakers when known


def test_composition_probabilities_control_class_balance(utterances):
    config = MixerConfig.from_preset("default", n_sources=3, composition_probs={"SSS": 1, "BBB": 3})
    sampler = SourceSampler(utterances, config, seed=1)
    counts = Counter(sampler.draw(i, 0).composition for i in range(1000))
    assert set(counts) == {"SSS", "BBB"} and 0.68 < counts["BBB"] / 1000 < 0.82


def test_four_source_mixtures_render_with_labels(utterances, tmp_path):
    config = MixerConfig.from_preset("default", n_sources=4, min_overlap=0.2)
    Mixer(config).run(utterances, tmp_path, n_mixtures=6, seed=0, workers=1, progress=False)
    for mixture in read_mixtures(tmp_path / "mixtures.jsonl"):
        assert len(mixture.sources) == 4
        assert mixture.extra["n_spoofed"] == mixture.label.count("S") == mixture.n_spoofed
        assert mixture.mixture_id.startswith("mix-")


def _all_active_seconds(sources: np.ndarray, rate: int, threshold_db: float = 40.0) -> float:
    frame = rate // 100
    n = sources.shape[1] // frame
    energy = np.mean(sources[:, : n * frame].reshape(len(sources), n, frame) ** 2, axis=-1)
    active = energy > energy.max(axis=1, keepdims=True) * 10 ** (-threshold_db / 10)
    return float(np.all(active, axis=0).sum() * 0.01)


def test_presence_guarantee_holds_in_rendered_audio(tmp_path):
    # every utterance is 0.8 s of sound then 1.7 s of silence: random crops/offsets often miss
    utterances = write_utterances(tmp_path / "u", 10, seconds=(2.5, 2.5), active=0.8)
    config = MixerConfig.from_preset("default", min_overlap=0.4, overlap_ratio=(0.3, 1.0))
    summary = Mixer(config).run(
        utterances, tmp_path / "out", n_mixtures=30, seed=2, workers=1, progress=False
    )
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    assert len(mixtures) == 30
    for mixture in mixtures:
        measured = _all_active_seconds(render_sources(mixture), mixture.sample_rate)
        assert measured >= 0.4 - 0.011
        assert mixture.overlap_seconds >= 0.4
        assert abs(measured - mixture.overlap_seconds) <= 0.03
    # the same data without the guarantee gives mixtures where a source is (almost) absent
    unguarded = MixerConfig.from_preset("default", min_overlap=None, overlap_ratio=(0.3, 1.0))
    Mixer(unguarded).run(utterances, tmp_path / "raw", n_mixtures=30, seed=2, workers=1,
                         progress=False)  # fmt: skip
    raw = read_mixtures(tmp_path / "raw" / "mixtures.jsonl")
    assert min(m.overlap_seconds for m in raw) < 0.4
    assert summary.overlap_seconds_min >= 0.4


def test_impossible_presence_guarantee_is_a_clear_error(tmp_path):
    utterances = write_utterances(tmp_path / "u", 6, seconds=(1.0, 1.0), active=0.2)
    config = MixerConfig.from_preset("default", min_overlap=0.5, max_redraws=3)
    with pytest.raises(ValueError, match="presence guarantee"):
        Mixer(config).run(utterances, tmp_path / "out", n_mixtures=2, seed=0, workers=1,
                          progress=False)  # fmt: skip


def _tree_bytes(folder):
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "summary.json"
    }


def test_identical_output_whatever_the_number_of_workers(utterances, tmp_path):
    config = MixerConfig.from_preset("default", noise_prob=0.5, level_mode="lufs")
    for workers in (1, 2):
        Mixer(config).run(
            utterances, tmp_path / f"w{workers}", n_mixtures=24, seed=7, workers=workers,
            split="dev", progress=False,
        )  # fmt: skip
    one, two = _tree_bytes(tmp_path / "w1"), _tree_bytes(tmp_path / "w2")
    assert len([name for name in one if name.startswith("audio/")]) == 24
    assert one.keys() == two.keys() and all(one[name] == two[name] for name in one)
    other_seed = tmp_path / "seed8"
    Mixer(config).run(utterances, other_seed, n_mixtures=24, seed=8, workers=1, split="dev",
                      progress=False)  # fmt: skip
    assert _tree_bytes(other_seed)["mixtures.jsonl"] != one["mixtures.jsonl"]


def test_render_sources_sum_to_the_saved_mixture(utterances, tmp_path):
    config = MixerConfig.from_preset("default", n_sources=3, level_mode="db", min_overlap=0.2)
    Mixer(config).run(utterances, tmp_path, n_mixtures=5, seed=3, workers=1, progress=False)
    for mixture in read_mixtures(tmp_path / "mixtures.jsonl"):
        saved, rate = sf.read(tmp_path / mixture.path, dtype="float32")
        sources = render_sources(mixture)
        assert sources.shape == (3, len(saved)) and rate == mixture.sample_rate
        assert np.abs(sources.sum(0) - saved).max() < 2e-4  # 16-bit FLAC quantisation
        assert np.abs(render_mixture(mixture) - saved).max() < 2e-4
        assert abs(np.abs(saved).max() - 0.9) < 1e-3  # default peak
        # relative levels: drawn dB are recorded and within the range
        assert all(-3.0 <= s.gain_db <= 3.0 for s in mixture.sources)


def test_augmented_mixture_renders_again_exactly(utterances, tmp_path):
    config = MixerConfig.from_preset(
        "default", reverb_prob=1.0, noise_prob=1.0, channel_prob=1.0, channel_codecs=["gsm"]
    )
    Mixer(config).run(utterances, tmp_path, n_mixtures=2, seed=4, workers=1, progress=False)
    for mixture in read_mixtures(tmp_path / "mixtures.jsonl"):
        kinds = [a["type"] for a in mixture.augmentations]
        assert kinds == ["reverb", "noise", "telephone"]
        assert all("seed" in a for a in mixture.augmentations)
        saved, _ = sf.read(tmp_path / mixture.path, dtype="float32")
        dry = render_sources(mixture).sum(0)
        assert np.abs(render_mixture(mixture) - saved).max() < 2e-4
        assert np.abs(dry - saved).max() > 0.05  # the augmentations changed the signal
        # telephone band: almost no energy above 4 kHz
        spectrum = np.abs(np.fft.rfft(saved)) ** 2
        freqs = np.fft.rfftfreq(len(saved), 1 / mixture.sample_rate)
        assert spectrum[freqs > 4200].sum() < 0.01 * spectrum.sum()


def test_mismatched_rates_are_resampled(tmp_path):
    utts = write_utterances(tmp_path / "a", 6, sample_rate=16000)
    utts += write_utterances(tmp_path / "b", 6, sample_rate=22050, seed=1)
    for k, utt in enumerate(utts[6:]):
        utt.utt_id = f"b{k}"
    summary = Mixer(MixerConfig()).run(utts, tmp_path / "out", n_mixtures=10, seed=0, workers=1,
                                       progress=False)  # fmt: skip
    assert summary.n_resampled == 6
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    assert {m.sample_rate for m in mixtures} == {16000}
    assert {s.orig_sample_rate for m in mixtures for s in m.sources} == {16000, 22050}


def test_silent_windows_are_redrawn_never_written(tmp_path):
    # 0.3 s of sound then exact silence; 0.4 s windows cropped at random are often silent: such
    # placements are drawn again (and counted), so no all-zero mixture is written
    utterances = write_utterances(tmp_path / "u", 8, seconds=(3.0, 3.0), active=0.3)
    config = MixerConfig.from_preset("default", min_overlap=None, max_source_seconds=0.4)
    summary = Mixer(config).run(utterances, tmp_path / "out", n_mixtures=30, seed=0, workers=1,
                                progress=False)  # fmt: skip
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    assert len(mixtures) == 30
    for mixture in mixtures:
        saved, _ = sf.read(tmp_path / "out" / mixture.path)
        assert np.all(np.isfinite(saved)) and np.isfinite(mixture.normalization)
        assert abs(np.abs(saved).max() - 0.9) < 1e-3
    assert summary.silent_placements > 0, "the setting should draw all-silent placements"
    assert "all sources were silent" in str(summary)


def test_record_dict_matches_manifest_to_dict(utterances, tmp_path):
    from amongus.mix.mixer import mixture_dict

    config = MixerConfig.from_preset("default", reverb_prob=1.0)
    Mixer(config).run(utterances, tmp_path, n_mixtures=2, seed=0, workers=1, progress=False)
    for mixture in read_mixtures(tmp_path / "mixtures.jsonl"):
        assert mixture_dict(mixture) == mixture.to_dict()


def test_lufs_levels_reach_their_targets(utterances, tmp_path):
    import pyloudnorm

    config = MixerConfig.from_preset("default", level_mode="lufs", loudness_lufs=(-35.0, -20.0))
    Mixer(config).run(utterances, tmp_path, n_mixtures=6, seed=9, workers=1, progress=False)
    targets = []
    for mixture in read_mixtures(tmp_path / "mixtures.jsonl"):
        sources = render_sources(mixture).astype(np.float64) / mixture.normalization
        meter = pyloudnorm.Meter(mixture.sample_rate)
        for source, record in zip(sources, mixture.sources, strict=True):
            window = source[record.offset : record.offset + record.length]
            assert abs(meter.integrated_loudness(window) - record.loudness_lufs) < 0.1
            targets.append(record.loudness_lufs)
    assert -35.0 <= min(targets) and max(targets) <= -20.0 and np.std(targets) > 2.0
