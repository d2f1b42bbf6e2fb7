"""Speaker embedders: the published SpeechBrain layout, input handling, safety, strict keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_corpus import EvalPayload, SystemPayload

from amongus.audio import resample
from amongus.checkpoints import CheckpointError
from amongus.speakers import SpeakerEmbedder, load_speaker_embedder
from amongus.speakers.ecapa import EcapaConfig, EcapaEmbedder, save_ecapa_folder
from amongus.validation import InvalidAudioError

TINY = EcapaConfig(
    channels=[16, 16, 16, 16, 48],
    attention_channels=8,
    se_channels=8,
    res2net_scale=4,
    lin_neurons=12,
)
N_CLASSES = 3

# The inference hyperparams.yaml of speechbrain/spkrec-ecapa-voxceleb, shrunk (channels, sizes):
# no sample_rate key, hub paths under pretrained_path, the same tags and pretrainer.
# Kept as text on purpose rather than written by save_ecapa_folder (whose template repeats most
# of it): the loader must read the published file itself, not our writer's copy of it, and a
# change to the writer must not change what these tests load (the writer has its own round trip).
PUBLISHED_YAML = """\
# ############################################################################
# Model: ECAPA big for Speaker verification
# ############################################################################

# Feature parameters
n_mels: 80

# Pretrain folder (HuggingFace)
pretrained_path: speechbrain/spkrec-ecapa-voxceleb

# Output parameters
out_n_neurons: 3

# Model params
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 8
    se_channels: 8
    res2net_scale: 4
    lin_neurons: 12

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 12
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def _reference_embeddings(model: torch.nn.Module, waveforms: torch.Tensor) -> torch.Tensor:
    """What SpeechBrain's EncoderClassifier.encode_batch computes, normalised."""
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    lengths = torch.ones(waveforms.shape[0])
    with torch.no_grad():
        feats = InputNormalization(norm_type="sentence", std_norm=False)(
            Fbank(n_mels=80)(waveforms), lengths
        )
        out = model.eval()(feats, lengths).squeeze(1)
    return torch.nn.functional.normalize(out, dim=1)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A tiny random ECAPA in exactly the published layout, and its model."""
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("spkrec") / "spkrec-ecapa-voxceleb"
    folder.mkdir()
    model = TINY.build()
    # non-trivial batch-norm statistics, so a buffer that is not loaded would show
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 50, 80))
    classifier = Classifier(12, out_neurons=N_CLASSES)
    (folder / "hyperparams.yaml").write_text(PUBLISHED_YAML, encoding="utf-8")
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    torch.save(classifier.state_dict(), folder / "classifier.ckpt")
    # InputNormalization's saved statistics, as older SpeechBrain wrote them
    torch.save(
        {
            "count": 7,
            "glob_mean": torch.randn(1, 12),
            "glob_std": torch.ones(1, 12),
            "spk_dict_mean": {},
            "spk_dict_std": {},
            "spk_dict_count": {},
        },
        folder / "mean_var_norm_emb.ckpt",
    )
    (folder / "label_encoder.txt").write_text(
        "'id10001' => 0\n'id10002' => 1\n'id10003' => 2\n================\n'starting_index' => 0\n",
        encoding="utf-8",
    )
    return folder, model


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def test_published_layout_loads_untrusted_and_embeds_like_speechbrain(published):
    folder, model = published
    embedder = load_speaker_embedder(folder)
    assert isinstance(embedder, SpeakerEmbedder)
    assert embedder.sample_rate == 16000  # the published file states no rate
    assert embedder.embedding_dim == 12
    assert embedder.verification_threshold is None
    torch.manual_seed(1)
    waveforms = 0.1 * torch.randn(3, 16000)
    embedded = embedder.embed(waveforms)
    assert embedded.shape == (3, 12) and embedded.dtype == torch.float32
    torch.testing.assert_close(embedded.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(embedded, _reference_embeddings(model, waveforms))
    assert (
        embedder.identity.startswith("ecapa:")
        and embedder.identity == EcapaEmbedder(folder).identity
    )


def test_round_trip_of_the_writer(tmp_path, published):
    _, model = published
    folder = save_ecapa_folder(
        tmp_path / "model",
        model,
        TINY,
        labels=["a", "b"],
        embedding_mean=torch.zeros(12),
        embedding_count=3,
        verification={"threshold": 0.42},
    )
    embedder = EcapaEmbedder(folder)
    assert embedder.verification_threshold == 0.42
    waveforms = 0.1 * torch.randn(2, 12000)
    torch.testing.assert_close(embedder.embed(waveforms), _reference_embeddings(model, waveforms))


def test_batch_equals_per_item_and_layouts(published):
    embedder = load_speaker_embedder(published[0])
    rng = np.random.default_rng(0)
    batch = (0.1 * rng.standard_normal((3, 8000))).astype(np.float32)
    together = embedder.embed(batch)
    for row in range(3):
        torch.testing.assert_close(
            embedder.embed(batch[row])[0], together[row], atol=1e-5, rtol=1e-4
        )
    embedder.batch_size = 2  # split into bounded chunks: same result
    torch.testing.assert_close(
        embedder.embed(torch.from_numpy(batch)), together, atol=1e-5, rtol=1e-4
    )
    ragged = embedder.embed([batch[0], batch[1][:6000]])
    assert ragged.shape == (2, 12)
    torch.testing.assert_close(ragged[0], together[0], atol=1e-5, rtol=1e-4)


def test_other_rates_are_resampled(published):
    embedder = load_speaker_embedder(published[0])
    rng = np.random.default_rng(1)
    at_8k = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    via_embedder = embedder.embed(at_8k, sample_rate=8000)
    by_hand = embedder.embed(resample(torch.from_numpy(at_8k), 8000, 16000))
    torch.testing.assert_close(via_embedder, by_hand)
    # the same samples read as 16 kHz are another signal: resampling did happen
    assert not torch.allclose(via_embedder, embedder.embed(at_8k), atol=1e-3)


@pytest.mark.parametrize(
    "waveforms, error, words",
    [
        (np.full(16000, np.nan, dtype=np.float32), InvalidAudioError, "non_finite"),
        (np.ones(100, dtype=np.float32), InvalidAudioError, "too_short"),
        (np.zeros((2, 2, 16000), dtype=np.float32), ValueError, "shape"),
        (np.zeros(16000, dtype=np.int16), ValueError, "dtype"),
        ("speech.wav", ValueError, "expected"),
        ([], ValueError, "no waveforms"),
    ],
)
def test_bad_inputs_raise_clear_errors(published, waveforms, error, words):
    embedder = load_speaker_embedder(published[0])
    with pytest.raises(error, match=words):
        embedder.embed(waveforms)


def test_nan_in_one_row_names_the_row(published):
    embedder = load_speaker_embedder(published[0])
    batch = np.zeros((3, 16000), dtype=np.float32) + 0.01
    batch[2, 5] = np.inf
    with pytest.raises(InvalidAudioError, match="array input 2"):
        embedder.embed(batch)


# ---------------------------------------------------------------- strict keys
def _edit_state(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.mark.parametrize(
    "file_name, edit, words",
    [
        ("embedding_model.ckpt", lambda s: s.pop(next(iter(s))), "missing key"),
        ("embedding_model.ckpt", lambda s: s.update(extra=torch.zeros(2)), "unexpected key"),
        ("embedding_model.ckpt", lambda s: s.update(fc_w=s.pop(sorted(s)[-1])), "missing key"),
        ("classifier.ckpt", lambda s: s.update(weight=torch.zeros(5, 12)), "mis-shaped key"),
    ],
    ids=["missing", "unexpected", "renamed", "misshaped_classifier"],
)
def test_weights_that_do_not_fit_are_refused(tmp_path, published, file_name, edit, words):
    folder = _copy(published[0], tmp_path)
    _edit_state(folder / file_name, edit)
    with pytest.raises(CheckpointError, match=words) as caught:
        load_speaker_embedder(folder)
    assert str(folder / file_name) in str(caught.value)


def test_incomplete_folders_are_refused(tmp_path, published):
    folder = _copy(published[0], tmp_path)
    (folder / "embedding_model.ckpt").unlink()
    with pytest.raises(CheckpointError, match="embedding_model.ckpt"):
        load_speaker_embedder(folder)
    with pytest.raises(CheckpointError, match="no such folder"):
        load_speaker_embedder(tmp_path / "nowhere")
    # optional files may be absent
    optional = _copy(published[0], tmp_path / "optional")
    for name in ("classifier.ckpt", "mean_var_norm_emb.ckpt", "label_encoder.txt"):
        (optional / name).unlink()
    assert load_speaker_embedder(optional).embed(np.full(4000, 0.1, np.float32)).shape == (1, 12)


def test_statistics_file_of_the_wrong_kind_is_refused(tmp_path, published):
    folder = _copy(published[0], tmp_path)
    torch.save({"mean": torch.zeros(12)}, folder / "mean_var_norm_emb.ckpt")
    with pytest.raises(CheckpointError, match="InputNormalization statistics"):
        load_speaker_embedder(folder)


# ---------------------------------------------------------------- hostile files
HOSTILE_YAML = {
    "apply_os_system": 'boom: !apply:os.system ["touch {marker}"]',
    "walk_from_ecapa": (
        'boom: !apply:speechbrain.lobes.models.ECAPA_TDNN.torch.os.system ["touch {marker}"]'
    ),
    "python_object": 'boom: !!python/object/apply:os.system ["touch {marker}"]',
}


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_hostile_hyperparams_are_refused(tmp_path, published, case):
    folder = _copy(published[0], tmp_path)
    marker = tmp_path / "MARKER"
    yaml = folder / "hyperparams.yaml"
    yaml.write_text(
        yaml.read_text() + "\n" + HOSTILE_YAML[case].format(marker=marker) + "\n", "utf-8"
    )
    with pytest.raises(CheckpointError, match="refused") as caught:
        load_speaker_embedder(folder)
    assert not marker.exists()
    assert str(yaml) in str(caught.value) and "trust_checkpoint=True" in str(caught.value)


@pytest.mark.parametrize("file_name", ["embedding_model.ckpt", "mean_var_norm_emb.ckpt"])
@pytest.mark.parametrize("payload", [SystemPayload, EvalPayload], ids=["os_system", "eval"])
def test_pickled_payloads_are_refused(tmp_path, published, file_name, payload):
    folder = _copy(published[0], tmp_path)
    marker = tmp_path / "MARKER"
    state = torch.load(folder / file_name, weights_only=True)
    state["boom"] = payload(marker)
    torch.save(state, folder / file_name)
    with pytest.raises(CheckpointError, match="refused") as caught:
        load_speaker_embedder(folder)
    assert not marker.exists()
    assert str(folder / file_name) in str(caught.value)


def test_hostile_payload_is_live_when_trusted(tmp_path, published):
    """The refusal above means something only if the payload does run once trusted."""
    folder = _copy(published[0], tmp_path)
    marker = tmp_path / "MARKER"
    yaml = folder / "hyperparams.yaml"
    yaml.write_text(yaml.read_text() + f'\nboom: !apply:os.system ["touch {marker}"]\n', "utf-8")
    load_speaker_embedder(folder, trust_checkpoint=True)
    assert marker.exists()


def test_strict_keys_apply_when_trusted_too(tmp_path, published):
    folder = _copy(published[0], tmp_path)
    _edit_state(folder / "embedding_model.ckpt", lambda s: s.update(extra=torch.zeros(1)))
    with pytest.raises(CheckpointError, match="unexpected key"):
        load_speaker_embedder(folder, trust_checkpoint=True)


def test_an_instance_is_returned_as_is(published):
    embedder = load_speaker_embedder(published[0])
    assert load_speaker_embedder(embedder) is embedder


def test_speechbrain_loads_the_written_folder_to_the_same_embeddings(tmp_path, published):
    """SpeechBrain's own loader is the oracle of the layout save_ecapa_folder writes."""
    from speechbrain.inference.speaker import EncoderClassifier
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier

    folder = save_ecapa_folder(
        tmp_path / "model",
        published[1],
        TINY,
        classifier=Classifier(12, out_neurons=3),
        labels=["a", "b", "c"],
        embedding_mean=torch.zeros(12),
        embedding_count=1,
    )
    reference = EncoderClassifier.from_hparams(
        source=str(folder),
        savedir=str(tmp_path / "sb"),
        overrides={"pretrained_path": str(folder)},
    )
    waveforms = 0.1 * torch.randn(2, 16000)
    expected = torch.nn.functional.normalize(reference.encode_batch(waveforms).squeeze(1), dim=1)
    torch.testing.assert_close(EcapaEmbedder(folder).embed(waveforms), expected)


def test_shipped_default_loads_untrusted_with_its_threshold():
    from amongus.speakers.ecapa import ECAPA_FILES, shipped_folder

    folder = shipped_folder()
    assert all((folder / name).is_file() for name in ECAPA_FILES)
    embedder = load_speaker_embedder()
    assert embedder.identity.startswith("ecapa:ecapa-tiny:")
    assert embedder.identity == load_speaker_embedder("ecapa-tiny").identity
    assert (embedder.sample_rate, embedder.embedding_dim) == (16000, 128)
    assert 0.0 < embedder.verification_threshold < 1.0
    assert sum(path.stat().st_size for path in folder.iterdir()) < 5e6
