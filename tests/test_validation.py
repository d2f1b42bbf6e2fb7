"""One input-validation policy for every entry point (issue 12, cases 3 and 10).

Case 3: all-zero audio and clips of a few milliseconds were scored with confidence by
``evaluate --single``, by ``Pipeline`` and in training (a silent spoof file got p(spoof) 0.001,
a silent mixture was labelled BB), while the Mixer skipped them. Case 10: a mixture file
recorded as 2.8 s but 10 ms long on disk, or at another rate, was scored without a note.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from test_pipeline import (  # noqa: E402
    BONAFIDE_HZ,
    RATE,
    SPOOF_HZ,
    ToneClassifier,
    tone,
    workspace,  # noqa: F401  (fixture)
)

from amongus.audio import AudioError, save_audio  # noqa: E402
from amongus.manifest import Utterance, read_mixtures, write_jsonl  # noqa: E402
from amongus.pipeline import Pipeline  # noqa: E402
from amongus.validation import (  # noqa: E402
    MIN_DURATION_SECONDS,
    SILENCE_THRESHOLD_DBFS,
    InvalidAudioError,
    check_audio,
    count_reasons,
    load_valid_audio,
    loudest_frame_dbfs,
)


def _noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """White noise at an RMS of ``dbfs``."""
    rng = np.random.default_rng(seed)
    return (10 ** (dbfs / 20) * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


# ---------------------------------------------------------------- the policy itself
@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (np.zeros(RATE, np.float32), "silent"),
        (np.full(RATE, 1e-12, np.float32), "silent"),  # the "near-silent" sources of case 4
        (_noise(1.0, -100.0), "silent"),  # 16-bit dither alone
        (tone(SPOOF_HZ, 1.0, 0)[:80], "too_short"),  # 5 ms
        (tone(SPOOF_HZ, 1.0, 0)[:20], "too_short"),  # under ConvTasNet's kernel (F3)
        (np.zeros(0, np.float32), "empty"),
        (np.stack([tone(SPOOF_HZ, 1.0, 0)] * 2, axis=1), "layout"),  # soundfile's [T, C]
        (np.where(np.arange(RATE) == 5, np.nan, 0.1).astype(np.float32), "non_finite"),
    ],
    ids=["zeros", "1e-12", "dither", "5ms", "20samples", "empty", "stereo_array", "nan"],
)
def test_policy_refuses_with_a_reason_code(audio, reason):
    with pytest.raises(InvalidAudioError) as caught:
        check_audio(audio, RATE, path="clip.wav")
    error = caught.value
    assert error.reason == reason and error.path == "clip.wav"
    assert str(error).startswith(f"clip.wav: {reason}: ")
    assert isinstance(error, AudioError) and isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))  # crosses worker-process boundaries intact
    assert (again.path, again.reason, str(again)) == (error.path, error.reason, str(error))


def test_policy_accepts_quiet_sparse_and_minimum_length_speech():
    check_audio(_noise(1.0, -45.0), RATE)  # quiet, but 15 dB above the threshold
    sparse = np.zeros(10 * RATE, np.float32)
    sparse[RATE : RATE + 1600] = tone(BONAFIDE_HZ, 0.1, 1)  # one word in 10 s of silence
    check_audio(sparse, RATE)
    check_audio(tone(BONAFIDE_HZ, MIN_DURATION_SECONDS, 2), RATE)
    assert loudest_frame_dbfs(sparse, RATE) > SILENCE_THRESHOLD_DBFS + 30
    assert loudest_frame_dbfs(np.zeros(100), RATE) == -np.inf


def test_files_are_read_mono_and_checked_against_their_record(tmp_path):
    audio = tone(SPOOF_HZ, 2.8, 3)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([audio, 0.5 * audio], axis=1), RATE)
    mono, rate = load_valid_audio(stereo, record_rate=RATE, record_samples=audio.size)
    assert rate == RATE and mono.shape == audio.shape  # channels averaged (amongus.audio policy)
    np.testing.assert_allclose(mono, 0.75 * audio, atol=1e-4)
    # case 10: a 10 ms file recorded as 2.8 s; a file at 8 kHz recorded at 16 kHz
    short = save_audio(tmp_path / "short.wav", audio[:160], RATE)
    with pytest.raises(InvalidAudioError, match=r"short\.wav: length_mismatch: .*0\.010 s.*2\.800"):
        load_valid_audio(short, record_rate=RATE, record_samples=audio.size)
    low = save_audio(tmp_path / "low.wav", tone(SPOOF_HZ, 2.8, 3)[::2], 8000)
    with pytest.raises(InvalidAudioError, match=r"low\.wav: rate_mismatch: .*8000 Hz.*16000"):
        load_valid_audio(low, record_rate=RATE, record_samples=audio.size)
    with pytest.raises(InvalidAudioError, match="length_mismatch"):
        load_valid_audio(short, record_duration=2.8)
    missing = tmp_path / "gone.wav"
    with pytest.raises(InvalidAudioError, match=r"gone\.wav: missing: file not found"):
        load_valid_audio(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio" * 10)
    with pytest.raises(InvalidAudioError) as caught:
        load_valid_audio(garbage)
    assert caught.value.reason == "unreadable"


def test_reason_counting_keys_on_the_code():
    problems = ["silent: a", "silent: b", "too_short: c", "reference source: silent: d"]
    assert count_reasons(problems) == {"silent": 2, "too_short": 1, "reference source": 1}


# ---------------------------------------------------------------- Pipeline.__call__
def test_pipeline_refuses_a_silent_or_tiny_single_input(tmp_path):
    pipeline = Pipeline(separator="passthrough", classifier=ToneClassifier(), assignment=None)
    silent = save_audio(tmp_path / "silent_spoof.wav", np.zeros(RATE, np.float32), RATE)
    with pytest.raises(InvalidAudioError, match=r"silent_spoof\.wav: silent: "):
        pipeline(str(silent))
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, 0.1 * np.random.default_rng(0).standard_normal(20), RATE)  # F3's file
    with pytest.raises(InvalidAudioError, match=r"tiny\.wav: too_short: "):
        pipeline(str(tiny))
    with pytest.raises(InvalidAudioError, match="array input 0: silent"):
        pipeline(np.zeros(RATE, np.float32), sample_rate=RATE)
    with pytest.raises(InvalidAudioError, match="array input 1: too_short"):
        pipeline([tone(SPOOF_HZ, 1.0, 0), tone(SPOOF_HZ, 1.0, 0)[:80]], sample_rate=RATE)
    # a valid input is still scored
    result = pipeline(tone(SPOOF_HZ, 1.0, 0), sample_rate=RATE)
    assert result.n_streams >= 1


def test_pipeline_refuses_a_mixture_unlike_its_record(workspace, tmp_path):  # noqa: F811
    mixture = read_mixtures(workspace["mix"] / "mixtures.jsonl")[0]
    audio, _ = sf.read(workspace["mix"] / mixture.path, dtype="float32")
    truncated = save_audio(tmp_path / "truncated.flac", audio[:160], RATE)
    mixture.path = str(truncated)
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    with pytest.raises(InvalidAudioError, match=r"truncated\.flac: length_mismatch"):
        pipeline(mixture)


# ---------------------------------------------------------------- Pipeline.evaluate
def test_evaluate_skips_and_counts_silent_short_and_mismatched_mixtures(
    workspace,  # noqa: F811
    tmp_path,
):
    mix_dir = tmp_path / "mix"
    shutil.copytree(workspace["mix"], mix_dir)
    mixtures = read_mixtures(mix_dir / "mixtures.jsonl")
    silent, truncated, other_rate, tiny = mixtures[:4]
    audio, _ = sf.read(mix_dir / silent.path, dtype="float32")
    save_audio(mix_dir / silent.path, np.zeros_like(audio), RATE)  # case 3: silent mixture
    audio, _ = sf.read(mix_dir / truncated.path, dtype="float32")
    save_audio(mix_dir / truncated.path, audio[:160], RATE)  # case 10: 10 ms on disk
    audio, _ = sf.read(mix_dir / other_rate.path, dtype="float32")
    save_audio(mix_dir / other_rate.path, audio[::2].copy(), 8000)  # case 10: another rate
    audio, _ = sf.read(mix_dir / tiny.path, dtype="float32")
    save_audio(mix_dir / tiny.path, audio[:80], RATE)  # case 3: a few ms, recorded as such
    tiny.num_samples = 80
    write_jsonl(mix_dir / "mixtures.jsonl", mixtures)

    classifier = ToneClassifier()
    report = Pipeline(separator="oracle", classifier=classifier).evaluate(mix_dir, progress=False)
    assert report.n_inputs == 6 and report.n_evaluated == 2 and report.n_skipped == 4
    assert classifier.n_scored == 4  # 2 mixtures x 2 streams: nothing refused was scored
    reasons = {item["id"]: item["reason"] for item in report.skipped}
    assert reasons[silent.mixture_id].startswith("silent: ")
    assert reasons[truncated.mixture_id].startswith("length_mismatch: ")
    assert reasons[other_rate.mixture_id].startswith("rate_mismatch: ")
    assert reasons[tiny.mixture_id].startswith("too_short: ")
    expected = {"silent": 1, "length_mismatch": 1, "rate_mismatch": 1, "too_short": 1}
    assert json.loads(report.to_json())["skipped_reasons"] == expected
    assert "skipped 4" in str(report)
    assert {row["mixture_id"] for row in report.mixture_rows} == {
        m.mixture_id for m in mixtures[4:]
    }


# ---------------------------------------------------------------- evaluate --single
def test_single_stream_evaluation_skips_and_counts_bad_utterances(tmp_path):
    from amongus.evaluate import evaluate_utterances

    def utterance(name, audio, label, rate=RATE, **record):
        # 32-bit float files: 16-bit PCM would round the near-silent file to zeros
        path = save_audio(tmp_path / f"{name}.wav", audio, rate, subtype="FLOAT")
        return Utterance(utt_id=name, path=str(path), label=label, **record)

    utterances = [
        utterance("good_spoof", tone(SPOOF_HZ, 0.6, 1), "spoof"),
        utterance("good_bona", tone(BONAFIDE_HZ, 0.6, 2), "bonafide"),
        utterance("silent_spoof", np.zeros(RATE, np.float32), "spoof"),  # case 3's file
        utterance("tiny", tone(SPOOF_HZ, 0.6, 3)[:80], "spoof"),  # 5 ms
        utterance("near_silent", np.full(RATE, 1e-12, np.float32), "bonafide"),
        utterance("cut", tone(BONAFIDE_HZ, 0.6, 4)[:160], "bonafide", duration=2.8),
    ]
    classifier = ToneClassifier()
    report = evaluate_utterances(classifier, utterances, progress=False)
    assert report.n_inputs == 6 and report.n_evaluated == 2 and classifier.n_scored == 2
    assert [row["utt_id"] for row in report.stream_rows] == ["good_spoof", "good_bona"]
    assert report.skipped_reasons == {"silent": 2, "too_short": 1, "length_mismatch": 1}
    reasons = {item["id"]: item["reason"] for item in report.skipped}
    assert reasons["silent_spoof"].startswith("silent: ")
    report.save(tmp_path / "out", plots=False)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["skipped_reasons"] == report.skipped_reasons


# ---------------------------------------------------------------- training
def test_training_cache_fill_skips_and_counts_refused_mixtures(workspace, tmp_path):  # noqa: F811
    from amongus.separation import load_separator
    from amongus.training.prepare import cached_entries, fill_cache
    from amongus.training.stream_cache import StreamCache
    from amongus.training.trainer import read_mixture_manifest

    mix_dir = tmp_path / "mix"
    shutil.copytree(workspace["mix"], mix_dir)
    mixtures = read_mixture_manifest(mix_dir / "mixtures.jsonl")
    audio, _ = sf.read(mixtures[0].path, dtype="float32")
    save_audio(mixtures[0].path, np.zeros_like(audio), RATE)
    audio, _ = sf.read(mixtures[1].path, dtype="float32")
    save_audio(mixtures[1].path, audio[:160], RATE)
    os.unlink(mixtures[2].path)
    oracle = load_separator("oracle")
    cache = StreamCache(
        tmp_path / "cache", separator_identity=oracle.identity, separator_rate=None,
        stream_rate=RATE,
    )  # fmt: skip
    _, report = fill_cache(cache, mixtures, oracle, progress=False)
    assert report.separated == 3
    assert report.skipped_reasons == {"silent": 1, "length_mismatch": 1, "missing": 1}
    assert "3 skipped" in str(report)
    entries, skipped = cached_entries(cache, mixtures)
    assert [e.mixture_id for e in entries] == [m.mixture_id for m in mixtures[3:]]
    assert [item[0] for item in skipped] == [m.mixture_id for m in mixtures[:3]]


# ---------------------------------------------------------------- the mixer
def test_mixer_skips_silent_and_near_silent_sources_with_the_shared_policy(tmp_path):
    from test_mix_helpers import write_utterances

    from amongus.mix import Mixer, MixerConfig

    utterances = write_utterances(tmp_path / "good", 6, seconds=(1.0, 1.5))
    bad = []
    for name, audio in (
        ("zeros", np.zeros(RATE, np.float32)),
        ("near_silent", np.full(RATE, 1e-12, np.float32)),  # case 4's sources
    ):
        path = save_audio(tmp_path / f"{name}.wav", audio, RATE, subtype="FLOAT")
        bad.append(Utterance(name, str(path), "spoof", speaker=name))
    summary = Mixer(MixerConfig(min_overlap=0.2)).run(
        utterances + bad, tmp_path / "out", n_mixtures=30, seed=0, workers=1, progress=False
    )
    reasons = dict(summary.bad_inputs)
    for utterance in bad:
        assert reasons[utterance.path].startswith("silent: "), reasons
    used = {s.utt_id for m in read_mixtures(tmp_path / "out" / "mixtures.jsonl") for s in m.sources}
    assert not used & {"zeros", "near_silent"}
