"""The parts of the long-recording analysis: windows, speech activity, speaker linking."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from amongus.conversation.speech import (
    FRAME_SECONDS,
    SpeechSettings,
    frame_levels,
    overlap_mask,
    regions,
    speech_activity,
)
from amongus.conversation.tracking import cluster_streams, continuity_links
from amongus.conversation.windows import RecordingReader, window_plan
from amongus.validation import InvalidAudioError


# ---------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    ("num_samples", "rate", "window", "hop"),
    [(16000 * 37 + 123, 16000, 6.0, 3.0), (8000 * 6, 8000, 6.0, 3.0), (999, 16000, 6.0, 3.0),
     (16000 * 20 + 1, 16000, 5.0, 5.0), (44100 * 13, 44100, 4.0, 1.5)],
)  # fmt: skip
def test_window_cores_partition_the_recording(num_samples, rate, window, hop):
    plan = window_plan(num_samples, rate, window, hop)
    assert plan[0].core_start == 0 and plan[-1].core_end == num_samples
    for before, after in zip(plan[:-1], plan[1:], strict=True):
        assert before.core_end == after.core_start  # no gap, no double coverage
        assert after.start > before.start
    full = round(window * rate)
    for w in plan:
        assert 0 <= w.start <= w.core_start < w.core_end <= w.end <= num_samples
        assert w.length == min(full, num_samples)  # the last window is aligned to the end


def test_window_plan_refuses_gaps_and_empty_recordings():
    with pytest.raises(ValueError, match="must not exceed"):
        window_plan(16000 * 10, 16000, 2.0, 3.0)
    with pytest.raises(ValueError, match="needs samples"):
        window_plan(0, 16000)


def test_windows_read_from_the_file_reassemble_it(tmp_path):
    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((16000 * 20 + 77, 2))).astype(np.float32)
    path = tmp_path / "call.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    reader = RecordingReader(path)
    plan = window_plan(reader.num_samples, reader.sample_rate)
    cores = [reader.read(w.start, w.end)[w.core_start - w.start : w.core_end - w.start]
             for w in plan]  # fmt: skip
    np.testing.assert_allclose(np.concatenate(cores), stereo.mean(axis=1), atol=1e-7)
    assert reader.check() < 0  # a dBFS speech level


def test_recording_reader_names_the_file_for_bad_audio(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(InvalidAudioError, match="silent.wav: silent"):
        RecordingReader(silent).check()
    nan = tmp_path / "nan.wav"
    audio = np.full(16000 * 3, 0.1, dtype=np.float32)
    audio[20000] = np.nan
    sf.write(nan, audio, 16000, subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="nan.wav: non_finite"):
        RecordingReader(nan).check()
    with pytest.raises(InvalidAudioError, match="missing"):
        RecordingReader(tmp_path / "nope.flac")
    with pytest.raises(InvalidAudioError, match="layout"):
        RecordingReader(np.zeros((2, 100)), 16000)


# ---------------------------------------------------------------------------- speech
def _levels_for(db_per_frame: list[float]) -> np.ndarray:
    return np.array(db_per_frame, dtype=float)[None, :]


def test_hysteresis_keeps_the_quiet_end_of_a_loud_region_only():
    settings = SpeechSettings(min_speech=0.0, min_silence=0.0)
    # reference 0 dBFS: onset -30, offset -40. A loud burst followed by a quiet tail (-35) is one
    # region; the same quiet level on its own never starts one.
    levels = [-80] * 10 + [-10] * 10 + [-35] * 10 + [-80] * 10 + [-35] * 10 + [-80] * 10
    active = speech_activity(_levels_for(levels), 0.0, settings)[0]
    assert active[10:30].all()
    assert not active[40:50].any()
    assert not active[:10].any() and not active[30:40].any()


def test_short_gaps_are_bridged_and_short_blips_dropped():
    settings = SpeechSettings(min_speech=0.2, min_silence=0.3)
    levels = [-10] * 50 + [-80] * 20 + [-10] * 50 + [-80] * 50 + [-10] * 10 + [-80] * 20
    active = speech_activity(_levels_for(levels), 0.0, settings)[0]
    assert active[:120].all()  # 0.2 s gap < 0.3 s: bridged
    assert not active[170:180].any()  # a 0.1 s blip < 0.2 s: dropped


def test_separator_leakage_is_not_speech_but_two_real_voices_overlap():
    rate = 16000
    rng = np.random.default_rng(1)
    loud = 0.3 * rng.standard_normal(rate * 2)
    leak = 0.003 * rng.standard_normal(rate * 2)  # 40 dB below: what a separator leaks
    other = 0.2 * rng.standard_normal(rate * 2)  # a second real voice, 3.5 dB below
    levels = frame_levels(np.stack([loud, leak, other]), rate)
    active = speech_activity(levels, float(levels[0].max()))
    assert active[0].all() and active[2].all()
    assert not active[1].any()
    assert overlap_mask(active).all()
    assert overlap_mask(active[:2]).sum() == 0


def test_regions_are_in_seconds_from_the_offset():
    mask = np.zeros(100, dtype=bool)
    mask[10:30] = True
    assert regions(mask, offset_seconds=5.0) == [
        pytest.approx((5.0 + 10 * FRAME_SECONDS, 5.0 + 30 * FRAME_SECONDS))
    ]


# ---------------------------------------------------------------------------- tracking
def test_clustering_gives_the_number_of_speakers_asked_for():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    embeddings = np.concatenate([c + 0.05 * rng.standard_normal((6, 16)) for c in centres])
    windows = np.tile(np.arange(6), 4)
    truth = np.repeat(np.arange(4), 6)
    for k in (1, 2, 4):
        labels = cluster_streams(embeddings, windows, n_speakers=k)
        assert len(set(labels)) == k
    labels = cluster_streams(embeddings, windows, distance_threshold=0.5)
    # the same partition as the truth, numbered by first appearance
    assert len(set(labels)) == 4
    for label in set(labels):
        assert len(set(truth[labels == label])) == 1


def test_two_streams_of_one_window_are_never_merged_by_the_threshold():
    same = np.ones((2, 8))
    labels = cluster_streams(same, np.array([0, 0]), distance_threshold=0.5)
    assert labels.tolist() == [0, 1]
    labels = cluster_streams(same, np.array([0, 1]), distance_threshold=0.5)
    assert labels.tolist() == [0, 0]


def test_cannot_link_is_not_diluted_in_large_clusters():
    # 10 windows, each with two streams of voices the embedder cannot tell apart: merging
    # clusters pairwise, average linkage must still never put two streams of a window together
    rng = np.random.default_rng(0)
    embeddings = np.ones((20, 4)) + 0.01 * rng.standard_normal((20, 4))
    windows = np.concatenate([np.arange(10), np.arange(10)])
    labels = cluster_streams(embeddings, windows, distance_threshold=0.5)
    assert all(labels[i] != labels[i + 10] for i in range(10))


def test_continuity_breaks_a_tie_between_ambiguous_embeddings():
    # streams 0 and 1 (window 0) and 2 (window 1): stream 2's embedding is half-way between,
    # slightly closer to stream 1, but its signal continues stream 0 on the overlap.
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [0.69, 0.72]])
    windows = np.array([0, 0, 1])
    assert cluster_streams(embeddings, windows, n_speakers=2).tolist() == [0, 1, 1]
    linked = cluster_streams(embeddings, windows, n_speakers=2, links=[(0, 2, 0.9)])
    assert linked.tolist() == [0, 1, 0]


def test_continuity_links_follow_the_signal_across_a_permutation():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(4000), rng.standard_normal(4000)
    previous = np.stack([a, b])
    current = np.stack([b + 0.1 * rng.standard_normal(4000), a])  # the separator swapped them
    links = continuity_links(previous, current)
    assert sorted((i, j) for i, j, _ in links) == [(0, 1), (1, 0)]
    assert all(c > 0.9 for *_, c in links)
    assert continuity_links(previous, rng.standard_normal((2, 4000))) == []
