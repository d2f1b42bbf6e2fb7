"""The classifier contract: registry, format detection, input length policy, orientation, saving."""

import json
import os
import pickle

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")

from amongus.checkpoints import CheckpointError  # noqa: E402
from amongus.classifier import SpoofClassifier  # noqa: E402
from amongus.classifiers import (  # noqa: E402
    Classifier,
    detect_family,
    load_classifier,
    registered_classifiers,
)
from amongus.classifiers.aasist import (  # noqa: E402
    AASIST,
    AASIST_SEGMENT_SAMPLES,
    AasistClassifier,
    AasistConfig,
)
from amongus.classifiers.segments import SegmentPolicy  # noqa: E402
from amongus.testing.classifiers import build_tiny_classifier  # noqa: E402
from amongus.testing.countermeasures import (  # noqa: E402
    tiny_aasist_config,
    write_tiny_aasist_checkpoint,
)

RATE = 16000
SEGMENT = tiny_aasist_config().nb_samp  # 8000


def noise(samples: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


@pytest.fixture(scope="module")
def clovaai_folder(tmp_path_factory):
    return write_tiny_aasist_checkpoint(tmp_path_factory.mktemp("clovaai"), seed=1)


@pytest.fixture(scope="module")
def tiny(clovaai_folder):
    return load_classifier(clovaai_folder)


# ------------------------------------------------------------------ input length policy
def test_short_streams_are_repeated_and_empty_ones_are_silence():
    policy = SegmentPolicy(10)
    np.testing.assert_array_equal(policy.fill(np.arange(4.0)), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(policy.fill(np.zeros(0, np.float32)), np.zeros(10))
    assert policy.segments(np.arange(3.0))[0].shape == (10,)


def test_long_streams_are_windowed_to_their_end_or_cropped():
    array = np.arange(25.0)
    windows = SegmentPolicy(10, hop_samples=4).segments(array)
    assert [w[0] for w in windows] == [0, 4, 8, 12, 15]
    assert windows[-1][-1] == 24  # the last window ends at the stream's end
    assert SegmentPolicy(10, hop_samples=4).n_segments(25) == len(windows)
    assert SegmentPolicy(10, long_policy="crop").segments(array)[0][0] == 0
    assert SegmentPolicy(10, long_policy="crop", crop_position="center").crop(array)[0] == 7
    with pytest.raises(ValueError, match="long_policy"):
        SegmentPolicy(10, long_policy="average")


def test_aasist_declares_its_rate_length_and_orientation(tiny):
    assert AASIST_SEGMENT_SAMPLES == 64_600
    assert AasistConfig().nb_samp == AASIST_SEGMENT_SAMPLES
    assert tiny.sample_rate == RATE and tiny.segment_samples == SEGMENT
    assert tiny.labels == {0: "spoof", 1: "bonafide"} and tiny.spoof_index == 0
    scores = tiny.score([noise(SEGMENT, 0), noise(3000, 1)], sample_rate=RATE)
    np.testing.assert_allclose(scores.cm_score, scores.logits[:, 1] - scores.logits[:, 0])
    np.testing.assert_allclose(
        scores.spoof_probability, 1 / (1 + np.exp(scores.logits[:, 1] - scores.logits[:, 0]))
    )
    assert scores.predicted_label == ["spoof" if c < 0 else "bonafide" for c in scores.cm_score]


def test_window_scores_average_the_window_logits(tiny):
    stream = noise(2 * SEGMENT + 1234, 3)
    windows = tiny.policy.segments(stream)
    assert len(windows) == tiny.n_windows(stream.size) == 4  # starts 0, 4000, 8000, 9234
    with torch.no_grad():
        expected = tiny.model(torch.from_numpy(np.stack(windows))).logits.double().mean(0)
    got = tiny.score([stream], sample_rate=RATE).logits[0]
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    cropped = load_classifier({"path": tiny.name, "long_policy": "crop"})
    with torch.no_grad():
        first = cropped.model(torch.from_numpy(stream[None, :SEGMENT])).logits[0].double()
    np.testing.assert_allclose(cropped.score([stream]).logits[0], first.numpy(), atol=1e-5)


def test_a_short_stream_scores_as_its_repetition(tiny):
    short = noise(3000, 4)
    repeated = np.tile(short, 3)[:SEGMENT]
    a, b = tiny.score([short]).logits, tiny.score([repeated]).logits
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batches_padding_and_order_do_not_change_scores(tiny):
    streams = [noise(n, seed) for seed, n in enumerate([SEGMENT, 2500, 3 * SEGMENT, 0])]
    alone = np.concatenate([tiny.score([s]).logits for s in streams])
    together = tiny.score(streams, batch_size=3).logits
    np.testing.assert_allclose(together, alone, atol=1e-5)
    padded = np.zeros((len(streams), 3 * SEGMENT), np.float32)
    for index, stream in enumerate(streams):
        padded[index, : stream.size] = stream
    lengths = [s.size for s in streams]
    np.testing.assert_allclose(tiny.score(padded, lengths=lengths).logits, alone, atol=1e-5)
    assert np.all(np.isfinite(alone))  # the empty stream (silence) too


def test_bad_inputs_are_clear_errors(tiny):
    with pytest.raises(ValueError, match="stream 1: contains NaN"):
        tiny.score([noise(100, 0), np.array([0.0, np.nan], np.float32)])
    with pytest.raises(ValueError, match="8000 Hz given to a classifier that expects 16000 Hz"):
        tiny.score([noise(100, 0)], sample_rate=8000)
    with pytest.raises(ValueError, match="mono waveform"):
        tiny.score([np.zeros((2, 100), np.float32)])
    assert len(tiny.score([])) == 0


def test_prepare_and_logits_serve_training(clovaai_folder):
    classifier = load_classifier(clovaai_folder)  # trained below: not the shared fixture
    batch = classifier.prepare([noise(100, 0), noise(3 * SEGMENT, 1)])
    assert batch["input_values"].shape == (2, SEGMENT)
    assert batch["attention_mask"].all()
    classifier.model.train()
    logits = classifier.logits(batch)
    logits.sum().backward()
    assert logits.shape == (2, 2) and classifier.model.out_layer.weight.grad is not None
    assert classifier.model.config.num_labels == classifier.num_labels == 2
    # score() runs in eval mode and restores the training mode afterwards
    classifier.score([noise(100, 0)])
    assert classifier.model.training


# ------------------------------------------------------------------ formats and registry
def test_every_family_meets_the_protocol(tiny, tmp_path):
    hf = load_classifier(build_tiny_classifier(tmp_path / "hf"))
    assert isinstance(hf, SpoofClassifier)
    for classifier in (tiny, hf):
        assert isinstance(classifier, Classifier)


def test_formats_are_recognised_by_their_files(clovaai_folder, tmp_path):
    assert detect_family(build_tiny_classifier(tmp_path / "hf")) == "hf"
    amongus = write_tiny_aasist_checkpoint(tmp_path / "amongus", layout="amongus")
    assert detect_family(amongus) == "aasist"
    assert detect_family(clovaai_folder) == "state_dict"  # told apart by the tensor names
    assert detect_family("owner/name") == "hf"
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        detect_family(tmp_path / "nowhere")
    (tmp_path / "weights.npy").write_bytes(b"0")
    with pytest.raises(CheckpointError, match="unknown classifier format"):
        detect_family(tmp_path / "weights.npy")


def test_the_clovaai_layout_loads_with_its_config_in_every_form(clovaai_folder, tmp_path):
    pth = clovaai_folder / "AASIST.pth"
    conf = json.loads((clovaai_folder / "AASIST.conf").read_text())
    reference = load_classifier(clovaai_folder).score([noise(SEGMENT, 5)]).logits
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "AASIST.pth").write_bytes(pth.read_bytes())
    (tmp_path / "model_config.json").write_text(json.dumps(conf["model_config"]))
    for spec in (
        pth,  # the .conf beside it
        {"path": str(bare / "AASIST.pth"), "config": conf},  # a whole clovaai conf
        {"path": str(bare / "AASIST.pth"), "config": conf["model_config"]},
        {"path": str(bare / "AASIST.pth"), "config": str(tmp_path / "model_config.json")},
    ):
        loaded = load_classifier(spec)
        assert isinstance(loaded, AasistClassifier), spec
        np.testing.assert_array_equal(loaded.score([noise(SEGMENT, 5)]).logits, reference)


def test_weights_without_a_config_that_matches_nothing_are_refused(clovaai_folder, tmp_path):
    (tmp_path / "AASIST.pth").write_bytes((clovaai_folder / "AASIST.pth").read_bytes())
    with pytest.raises(CheckpointError, match="no model config given.*pass config="):
        load_classifier(tmp_path / "AASIST.pth")


def test_a_config_that_does_not_fit_lists_the_keys(clovaai_folder, tmp_path):
    wrong = tiny_aasist_config().to_model_config()
    wrong["gat_dims"] = [8, 12]
    with pytest.raises(CheckpointError, match=r"mis-shaped key.*HtrgGAT_layer_ST11"):
        load_classifier(clovaai_folder / "AASIST.pth", config=wrong)
    state = torch.load(clovaai_folder / "AASIST.pth", weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    del state["out_layer.bias"]
    torch.save(state, tmp_path / "AASIST.pth")
    (tmp_path / "AASIST.conf").write_text((clovaai_folder / "AASIST.conf").read_text())
    with pytest.raises(
        CheckpointError, match=r"missing key: out_layer.bias.*unexpected key: extra"
    ):
        load_classifier(tmp_path)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "AASIST.pth", "wb") as handle:
        pickle.dump({"pos_S": Payload()}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        load_classifier(tmp_path / "AASIST.pth")


def test_save_pretrained_round_trips(tiny, tmp_path):
    tiny.metadata = {"source": {"note": "kept"}}
    folder = tiny.save_pretrained(tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == "aasist" and config["segment_samples"] == SEGMENT
    assert config["model_config"] == tiny.model.config.to_model_config()
    again = load_classifier(folder)
    assert again.metadata == {"source": {"note": "kept"}}
    assert again.identity.split("|")[1] == tiny.identity.split("|")[1]  # same weights hash
    stream = noise(2 * SEGMENT, 9)
    np.testing.assert_array_equal(again.score([stream]).logits, tiny.score([stream]).logits)


def test_registered_names_and_config_dicts():
    assert {"aasist", "wavlm-spoof-clean", "wavlm-spoof-finetuned"} <= set(registered_classifiers())
    shipped = load_classifier({"name": "aasist", "long_policy": "crop", "device": "cpu"})
    assert isinstance(shipped, AasistClassifier) and shipped.long_policy == "crop"
    assert shipped.identity.startswith("aasist:aasist|sha256=")
    assert sum(p.numel() for p in shipped.model.parameters()) == 297_866
    with pytest.raises(ValueError, match="needs a 'name' or 'path'"):
        load_classifier({"long_policy": "crop"})


def test_the_pipeline_loads_every_family(clovaai_folder, tmp_path):
    """Before amongus.classifiers, Pipeline read only Hugging Face folders."""
    from amongus.pipeline import Pipeline

    pipeline = Pipeline(separator="passthrough", classifier=clovaai_folder, assignment=None)
    assert isinstance(pipeline.classifier, AasistClassifier)
    result = pipeline(noise(RATE, 0), sample_rate=RATE)
    assert result.cm_score.shape == (2,) and np.all(np.isfinite(result.cm_score))


def test_aasist_rejects_non_batched_input():
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        AASIST(tiny_aasist_config())(torch.zeros(8000))


def test_the_spoof_class_can_be_overridden_and_is_saved(clovaai_folder, tmp_path):
    """The command line's --spoof-index reaches every family (weights trained with 1 = spoof)."""
    swapped = load_classifier(clovaai_folder, spoof_index=1)
    assert swapped.spoof_index == 1 and swapped.labels == {1: "spoof", 0: "bonafide"}
    stream = noise(SEGMENT, 2)
    normal = load_classifier(clovaai_folder).score([stream])
    np.testing.assert_allclose(swapped.score([stream]).cm_score, -normal.cm_score)
    again = load_classifier(swapped.save_pretrained(tmp_path / "swapped"))
    assert again.spoof_index == 1
