"""SpoofClassifier: loading from the Hugging Face format, label discovery, batching with padding
and attention masks, long/short stream policies, scores and saving. Tiny random models only."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from amongus.classifier import SpoofClassifier, StreamScores, find_spoof_index  # noqa: E402
from amongus.testing.classifiers import build_tiny_classifier  # noqa: E402

RATE = 16000
# Larger initial weights than the default 0.02 so that different inputs get clearly different
# scores (with 0.02 every score is ~0.02 and consistency checks would prove little).
SPREAD = {"initializer_range": 0.2}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny_wavlm"), seed=0, **SPREAD)


@pytest.fixture(scope="module")
def classifier(model_dir):
    return SpoofClassifier.from_pretrained(model_dir)


def streams(lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        t = np.arange(n) / RATE
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)
        out.append((tone + 0.05 * rng.standard_normal(n)).astype(np.float32) * rng.uniform(0.2, 2))
    return out


def single_scores(classifier, waveforms):
    return np.array([classifier.score([w]).cm_score[0] for w in waveforms])


# ------------------------------------------------------------------ builder and loading
def test_tiny_classifier_is_a_real_hf_checkpoint(model_dir, classifier):
    from transformers import AutoModelForAudioClassification, WavLMForSequenceClassification

    assert {"config.json", "preprocessor_config.json", "model.safetensors"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert isinstance(classifier.model, WavLMForSequenceClassification)
    assert classifier.sample_rate == 16000
    assert classifier.spoof_index == 1
    # WavLM's front end: 320 samples per frame, 400-sample receptive field.
    assert classifier.min_samples == 400
    assert int(classifier.model._get_feat_extract_output_lengths(RATE)) == 49
    # Same seed, same weights; another seed, other weights.
    again = AutoModelForAudioClassification.from_pretrained(model_dir)
    for name, tensor in classifier.model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


def test_builder_seed_controls_weights(tmp_path):
    a = SpoofClassifier.from_pretrained(build_tiny_classifier(tmp_path / "a", seed=1, **SPREAD))
    b = SpoofClassifier.from_pretrained(build_tiny_classifier(tmp_path / "b", seed=1, **SPREAD))
    c = SpoofClassifier.from_pretrained(build_tiny_classifier(tmp_path / "c", seed=2, **SPREAD))
    audio = streams([8000])
    assert a.score(audio).cm_score[0] == b.score(audio).cm_score[0]
    assert a.score(audio).cm_score[0] != c.score(audio).cm_score[0]
    assert a.identity.split("|")[1] == b.identity.split("|")[1] != c.identity.split("|")[1]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="no such classifier folder"):
        SpoofClassifier.from_pretrained(tmp_path / "nowhere")
    # "owner/name" is a hub id, not a folder: offline, the hub loader's error is reported.
    with pytest.raises(OSError, match="amongus-test/no-such-model: cannot load a spoof classifier"):
        SpoofClassifier.from_pretrained("amongus-test/no-such-model", local_files_only=True)


# ------------------------------------------------------------------ which class is spoof
@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "bonafide", 1: "spoof"}, 1),
        ({0: "fake", 1: "real"}, 0),
        ({"0": "Spoofed", "1": "Bona-Fide"}, 0),
        ({0: "genuine", 1: "DEEPFAKE"}, 1),
        ({0: "bona_fide", 1: "Spoof"}, 1),
        ({0: "Real", 1: "LABEL_1"}, 1),  # one side known is enough with two classes
        ({0: "bonafide", 1: "other", 2: "fake"}, 2),  # spoof vs the rest
    ],
)
def test_spoof_index_from_label_spellings(id2label, expected):
    assert find_spoof_index(id2label) == expected


@pytest.mark.parametrize(
    "id2label",
    [
        {0: "LABEL_0", 1: "LABEL_1"},
        {0: "spoof", 1: "fake"},
        {0: "cat", 1: "dog", 2: "bonafide"},
        {0: "0", 1: "1"},  # 1 means bonafide in some corpora, spoof in others
    ],
)
def test_unidentifiable_labels_fail_clearly(id2label):
    with pytest.raises(ValueError) as error:
        find_spoof_index(id2label)
    message = str(error.value)
    for name in id2label.values():
        assert repr(name) in message
    assert "spoof_index" in message


def test_explicit_override_and_saved_copy(tmp_path):
    directory = build_tiny_classifier(tmp_path / "m", id2label={0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ValueError, match="LABEL_0"):
        SpoofClassifier.from_pretrained(directory)
    chosen = SpoofClassifier.from_pretrained(directory, spoof_index=0)
    assert chosen.spoof_index == 0
    assert SpoofClassifier.from_pretrained(directory, spoof_label="label_1").spoof_index == 1
    with pytest.raises(ValueError, match="not a class"):
        SpoofClassifier.from_pretrained(directory, spoof_index=5)
    # The choice is written into the saved config: the copy loads without an override.
    reloaded = SpoofClassifier.from_pretrained(chosen.save_pretrained(tmp_path / "saved"))
    assert reloaded.spoof_index == 0
    assert reloaded.labels == {0: "spoof", 1: "bonafide"}


def test_scores_follow_the_spoof_index(tmp_path):
    audio = streams([6000, 9000], seed=3)
    plain = build_tiny_classifier(tmp_path / "a", id2label={0: "bonafide", 1: "spoof"}, **SPREAD)
    flipped = build_tiny_classifier(tmp_path / "b", id2label={0: "spoof", 1: "bonafide"}, **SPREAD)
    a = SpoofClassifier.from_pretrained(plain).score(audio)
    b = SpoofClassifier.from_pretrained(flipped).score(audio)
    np.testing.assert_array_equal(a.logits, b.logits)  # same seed, same weights
    np.testing.assert_allclose(a.cm_score, a.logits[:, 0] - a.logits[:, 1])
    np.testing.assert_allclose(b.cm_score, -a.cm_score)
    np.testing.assert_allclose(a.spoof_probability + b.spoof_probability, 1.0)


# ------------------------------------------------------------------ scores
def test_stream_scores_from_logits():
    logits = np.array([[2.0, -1.0], [0.0, 3.0], [400.0, -400.0], [500.0, -500.0]])
    scores = StreamScores.from_logits(logits, spoof_index=1)
    softmax = np.exp(logits[:2]) / np.exp(logits[:2]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.spoof_probability[:2], softmax[:, 1])
    np.testing.assert_allclose(scores.cm_score, logits[:, 0] - logits[:, 1])
    assert scores.predicted_label == ["bonafide", "spoof", "bonafide", "bonafide"]
    # Saturated probabilities tie; the logit difference still ranks the streams.
    as_float32 = torch.softmax(torch.tensor(logits[2:], dtype=torch.float32), dim=1)[:, 1]
    assert as_float32[0] == as_float32[1] == 0
    assert scores.cm_score[3] > scores.cm_score[2]


def test_non_finite_logits_are_refused():
    with pytest.raises(ValueError, match=r"streams \[1\]"):
        StreamScores.from_logits(np.array([[0.0, 1.0], [np.nan, 0.0]]), spoof_index=1)


def test_three_classes_spoof_versus_rest():
    logits = np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    scores = StreamScores.from_logits(logits, spoof_index=2)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.spoof_probability, softmax[:, 2])
    np.testing.assert_allclose(
        scores.cm_score, np.log(softmax[:, 0] + softmax[:, 1]) - np.log(softmax[:, 2])
    )
    assert scores.predicted_label == ["bonafide", "spoof"]


# ------------------------------------------------------------------ batching
def test_prepare_normalises_each_stream_over_its_own_samples(classifier):
    audio = streams([4000, 2500, 7000], seed=1)
    batch = classifier.prepare(audio)
    values, mask = batch["input_values"].numpy(), batch["attention_mask"].numpy()
    assert values.shape == mask.shape == (3, 7000)
    assert mask.sum(axis=1).tolist() == [4000, 2500, 7000]
    for row, wave in enumerate(audio):
        n = wave.shape[0]
        expected = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
        np.testing.assert_allclose(values[row, :n], expected, atol=1e-5)
        assert np.all(values[row, n:] == 0)


def test_stream_scores_the_same_alone_and_in_a_padded_batch(classifier):
    audio = streams([16000, 3100, 9000, 401, 12345, 5000, 7777], seed=2)
    alone = single_scores(classifier, audio)
    assert np.ptp(alone) > 0.05  # the streams really score differently
    together = classifier.score(audio, batch_size=4)
    np.testing.assert_allclose(together.cm_score, alone, atol=1e-4)
    reversed_order = classifier.score(audio[::-1], batch_size=7)
    np.testing.assert_allclose(reversed_order.cm_score[::-1], alone, atol=1e-4)


def test_group_norm_model_without_mask_is_batched_by_equal_length(tmp_path):
    # WavLM-base's front end (GroupNorm over time) and no attention mask: padding changes scores,
    # so the classifier only batches streams of equal length together.
    directory = build_tiny_classifier(
        tmp_path / "group", feat_extract_norm="group", return_attention_mask=False, **SPREAD
    )
    classifier = SpoofClassifier.from_pretrained(directory)
    assert not classifier.pads_safely
    audio = streams([8000, 3000, 8000, 5000], seed=4)
    alone = single_scores(classifier, audio)
    naive = classifier.prepare(audio)
    with torch.inference_mode():
        naive_logits = classifier.logits(naive).double().numpy()
    naive_scores = naive_logits[:, 0] - naive_logits[:, 1]
    assert np.max(np.abs(naive_scores[1:] - alone[1:])) > 1e-3  # the problem is real
    np.testing.assert_allclose(classifier.score(audio, batch_size=4).cm_score, alone, atol=1e-4)
    silent = classifier.score([np.zeros(8000, np.float32), np.zeros(0, np.float32)])
    assert np.all(np.isfinite(silent.logits))


def test_padded_tensor_batch_with_lengths(classifier):
    audio = streams([5000, 3000], seed=5)
    padded = torch.zeros(2, 5000)
    padded[0] = torch.from_numpy(audio[0])
    padded[1, :3000] = torch.from_numpy(audio[1])
    padded[1, 3000:] = float("nan")  # whatever lies beyond a stream's length is ignored
    from_tensor = classifier.score(padded, lengths=torch.tensor([5000, 3000]))
    np.testing.assert_allclose(from_tensor.cm_score, single_scores(classifier, audio), atol=1e-4)
    with pytest.raises(ValueError, match="length 6000 outside 0..5000"):
        classifier.score(padded, lengths=[6000, 3000])


# ------------------------------------------------------------------ short and long streams
def test_short_empty_and_silent_streams_get_finite_scores(classifier):
    short = streams([150], seed=6)[0]
    audio = [np.zeros(0, np.float32), np.zeros(8000, np.float32), short]
    scores = classifier.score(audio)
    assert np.all(np.isfinite(scores.cm_score)) and np.all(np.isfinite(scores.logits))
    # Short streams are padded with silence to the 400-sample receptive field.
    padded = np.pad(short, (0, 400 - short.shape[0]))
    assert scores.cm_score[2] == pytest.approx(classifier.score([padded]).cm_score[0], abs=1e-5)


def test_crop_policy(model_dir):
    long = streams([26000], seed=7)[0]  # 1.625 s
    start = SpoofClassifier.from_pretrained(model_dir, max_seconds=0.5)
    center = SpoofClassifier.from_pretrained(model_dir, max_seconds=0.5, crop_position="center")
    unlimited = SpoofClassifier.from_pretrained(model_dir, max_seconds=None)
    first, middle = long[:8000], long[9000:17000]
    assert start.score([long]).cm_score[0] == pytest.approx(
        unlimited.score([first]).cm_score[0], abs=1e-5
    )
    assert center.score([long]).cm_score[0] == pytest.approx(
        unlimited.score([middle]).cm_score[0], abs=1e-5
    )
    assert start.n_windows(26000) == 1
    assert start.prepare([long])["input_values"].shape == (1, 8000)


def test_window_policy_averages_window_logits(model_dir):
    long = streams([26000], seed=8)[0]
    windowed = SpoofClassifier.from_pretrained(
        model_dir, max_seconds=0.5, long_policy="window", window_hop_seconds=0.25
    )
    unlimited = SpoofClassifier.from_pretrained(model_dir, max_seconds=None)
    starts = [0, 4000, 8000, 12000, 16000, 18000]  # the last window ends at the stream's end
    assert windowed.n_windows(26000) == len(starts)
    expected = unlimited.score([long[s : s + 8000] for s in starts]).logits.mean(axis=0)
    result = windowed.score([long, long[:5000]], batch_size=4)
    np.testing.assert_allclose(result.logits[0], expected, atol=1e-5)
    assert result.cm_score[0] == pytest.approx(expected[0] - expected[1], abs=1e-5)
    # A stream within the limit is one window, unchanged.
    assert result.cm_score[1] == pytest.approx(unlimited.score([long[:5000]]).cm_score[0], abs=1e-5)


# ------------------------------------------------------------------ input checks
def test_no_streams_give_empty_scores(classifier):
    scores = classifier.score([])
    assert len(scores) == 0 and scores.logits.shape == (0, 2) and scores.cm_score.shape == (0,)


def test_wrong_rate_and_bad_input_are_refused(classifier):
    with pytest.raises(ValueError, match="8000 Hz.*16000 Hz"):
        classifier.score(streams([4000]), sample_rate=8000)
    classifier.score(streams([4000]), sample_rate=16000)
    bad = streams([4000])[0]
    bad[10] = np.nan
    with pytest.raises(ValueError, match="stream 1: contains NaN"):
        classifier.score([streams([4000])[0], bad])
    with pytest.raises(ValueError, match="mono"):
        classifier.score([np.zeros((2, 4000), np.float32)])
    with pytest.raises(ValueError, match="long_policy"):
        SpoofClassifier(classifier.model, classifier.feature_extractor, long_policy="average")


# ------------------------------------------------------------------ training and saving
def test_logits_carry_gradients_in_train_mode(model_dir):
    classifier = SpoofClassifier.from_pretrained(model_dir)
    classifier.model.train()
    batch = classifier.prepare(streams([4000, 6000], seed=9))
    logits = classifier.logits(batch)
    assert logits.shape == (2, 2) and logits.requires_grad
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert classifier.model.classifier.weight.grad is not None
    # score() runs in eval mode without gradients and restores the mode afterwards.
    scores = classifier.score(streams([4000], seed=9))
    assert classifier.model.training
    assert scores.logits.shape == (1, 2)


def test_save_pretrained_round_trip(classifier, tmp_path):
    audio = streams([7000, 3000], seed=10)
    saved = classifier.save_pretrained(tmp_path / "copy")
    reloaded = SpoofClassifier.from_pretrained(saved)
    np.testing.assert_array_equal(reloaded.score(audio).logits, classifier.score(audio).logits)
    assert reloaded.sample_rate == classifier.sample_rate
    assert reloaded.feature_extractor.do_normalize and reloaded.uses_attention_mask


# ------------------------------------------------------------------ real audio
SHARED = (
    __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
)


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "manifest.csv").exists(), reason="../shared/data/real absent")
def test_real_speech_scores_the_same_alone_and_batched(classifier):
    from amongus.audio import load_audio

    spoof_file = SHARED / "spoof" / "wavefake_melgan" / "LJ040-0073_gen.flac"
    bonafide_file = SHARED / "bonafide" / "librispeech" / "1688-142285-0002.flac"
    if not (spoof_file.exists() and bonafide_file.exists()):
        pytest.skip("expected files missing from ../shared/data/real")
    narrowband, _ = load_audio(bonafide_file, sample_rate=8000)
    with pytest.raises(ValueError, match="8000 Hz"):
        classifier.score([narrowband], sample_rate=8000)
    spoof, _ = load_audio(spoof_file, sample_rate=RATE)
    bonafide, _ = load_audio(bonafide_file, sample_rate=RATE)
    audio = [spoof[: 3 * RATE], bonafide[: 2 * RATE], spoof[RATE : RATE + 12345]]
    together = classifier.score(audio, sample_rate=RATE, batch_size=3)
    np.testing.assert_allclose(together.cm_score, single_scores(classifier, audio), atol=1e-4)
