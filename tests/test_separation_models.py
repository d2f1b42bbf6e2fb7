"""SepFormer and ConvTasNet adapters: tiny random models in the real on-disk formats, loaded
through ``load_separator(path)`` exactly as real checkpoints are; safety of loading; detection."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network: hub ids must fail fast and clearly

import json
import re

import pytest
import torch

from amongus.separation import CheckpointError, Separator, load_separator
from amongus.separation.convtasnet import ConvTasNetSeparator
from amongus.separation.detect import detect_kind
from amongus.separation.sepformer import SepformerSeparator
from amongus.testing.separators import (
    SEPFORMER_FILES,
    build_convtasnet_model,
    build_tiny_convtasnet,
    build_tiny_sepformer,
)


@pytest.fixture(scope="module")
def sepformer_dir(tmp_path_factory):
    return build_tiny_sepformer(tmp_path_factory.mktemp("models") / "sepformer")


@pytest.fixture(scope="module")
def convtasnet_file(tmp_path_factory):
    return build_tiny_convtasnet(tmp_path_factory.mktemp("models") / "convtasnet.bin")


def _mixture(batch=2, length=8003, seed=0):
    return torch.randn(batch, length, generator=torch.Generator().manual_seed(seed))


def test_tiny_sepformer_is_written_in_the_hub_layout(sepformer_dir):
    assert sorted(p.name for p in sepformer_dir.iterdir()) == sorted(SEPFORMER_FILES)
    text = (sepformer_dir / "hyperparams.yaml").read_text()
    top_level = set(re.findall(r"^(\w+):", text, flags=re.M))
    assert {
        "sample_rate",
        "num_spks",
        "Encoder",
        "MaskNet",
        "Decoder",
        "modules",
        "pretrainer",
    } <= (top_level)
    assert "!new:speechbrain.lobes.models.dual_path.SBTransformerBlock" in text
    state = torch.load(sepformer_dir / "masknet.ckpt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())


def test_tiny_convtasnet_is_an_asteroid_package(convtasnet_file):
    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        package = torch.load(convtasnet_file, weights_only=True)
    assert {"model_name", "model_args", "state_dict", "infos"} <= set(package)
    assert package["model_name"] == "ConvTasNet"
    assert package["model_args"]["sample_rate"] == 16000


def test_sepformer_loads_from_its_folder_and_matches_speechbrain(sepformer_dir):
    separator = load_separator(sepformer_dir, output_scale="none")
    assert isinstance(separator, SepformerSeparator) and isinstance(separator, Separator)
    assert (separator.sample_rate, separator.n_src) == (8000, 2)
    assert "@8000" in separator.identity and separator.weights_hash in separator.identity
    assert not any(module.training for module in separator.model.modules())
    mixture = _mixture()
    streams = separator.separate(mixture)
    assert streams.shape == (2, 2, 8003) and torch.isfinite(streams).all()
    assert not streams.requires_grad and not streams.is_inference()
    classifier = torch.nn.Linear(8003, 1)  # a trained model downstream can backpropagate
    classifier(streams).sum().backward()
    assert classifier.weight.grad is not None

    from speechbrain.inference.separation import SepformerSeparation

    direct = SepformerSeparation.from_hparams(source=str(sepformer_dir), savedir=None)
    with torch.inference_mode():
        expected = direct.separate_batch(mixture)  # SpeechBrain layout [B, T, S]
    for source in range(2):
        assert torch.allclose(streams[:, source], expected[:, :, source], atol=1e-6)


def test_sepformer_rate_and_sources_come_from_hyperparams(tmp_path):
    folder = build_tiny_sepformer(
        tmp_path / "sf", sample_rate=16000, n_src=3, n_filters=8, d_model=8
    )
    separator = load_separator(folder)
    assert (separator.sample_rate, separator.n_src) == (16000, 3)
    assert separator.separate(_mixture(1, 1000)).shape == (1, 3, 1000)
    assert load_separator(folder, sample_rate=8000).sample_rate == 8000


def test_convtasnet_loads_the_package_weights(convtasnet_file):
    separator = load_separator(convtasnet_file, output_scale="none")
    assert isinstance(separator, ConvTasNetSeparator)
    assert (separator.sample_rate, separator.n_src) == (16000, 2)
    mixture = _mixture(length=16000)
    expected = build_convtasnet_model(seed=0)(mixture)  # same seed: the weights that were saved
    assert torch.allclose(separator.separate(mixture), expected, atol=1e-6)
    other = build_convtasnet_model(seed=1)(mixture)
    assert not torch.allclose(separator.separate(mixture), other, atol=1e-3)


def test_convtasnet_from_a_hub_style_folder(tmp_path):
    path = build_tiny_convtasnet(tmp_path / "hub_folder")
    assert path.name == "pytorch_model.bin"
    assert detect_kind(tmp_path / "hub_folder") == "asteroid"
    assert load_separator(tmp_path / "hub_folder").n_src == 2


def test_sample_rate_override_for_mislabelled_checkpoints(tmp_path):
    mislabelled = build_tiny_convtasnet(tmp_path / "m.bin", sample_rate=8000)
    default = load_separator(mislabelled)
    fixed = load_separator(mislabelled, sample_rate=16000)
    assert (default.sample_rate, fixed.sample_rate) == (8000, 16000)
    assert default.identity != fixed.identity
    mixture = _mixture(1, 4000)
    assert torch.equal(default.separate(mixture), fixed.separate(mixture))  # same weights


def test_safetensors_with_json_config(tmp_path, convtasnet_file):
    from safetensors.torch import save_file

    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        package = torch.load(convtasnet_file, weights_only=True)
    save_file(package["state_dict"], str(tmp_path / "model.safetensors"))
    config = {"model_name": package["model_name"], "model_args": package["model_args"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    from_safetensors = load_separator(tmp_path / "model.safetensors")
    mixture = _mixture(1, 4000)
    expected = load_separator(convtasnet_file).separate(mixture)
    assert torch.allclose(from_safetensors.separate(mixture), expected, atol=1e-6)


@pytest.mark.parametrize("which", ["sepformer", "convtasnet"])
def test_padded_batch_equals_items_alone(which, sepformer_dir, convtasnet_file):
    separator = load_separator(sepformer_dir if which == "sepformer" else convtasnet_file)
    mixture = _mixture(3, 3000)
    lengths = torch.tensor([3000, 2100, 2100])
    streams = separator.separate(mixture, lengths)
    for item, length in enumerate(lengths.tolist()):
        alone = separator.separate(mixture[item : item + 1, :length])[0]
        assert torch.allclose(streams[item, :, :length], alone, atol=1e-5)
        assert torch.count_nonzero(streams[item, :, length:]) == 0


class _Marker:
    """Unpickling this calls ``Path.touch``: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.path),))


def test_unsafe_asteroid_pickle_is_refused_unless_trusted(tmp_path, convtasnet_file):
    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        package = torch.load(convtasnet_file, weights_only=True)
    marker = tmp_path / "code_ran"
    package["infos"]["payload"] = _Marker(marker)
    torch.save(package, tmp_path / "unsafe.bin")
    with pytest.raises(CheckpointError, match="trust_checkpoint=True"):
        load_separator(tmp_path / "unsafe.bin")
    assert not marker.exists()
    load_separator(tmp_path / "unsafe.bin", trust_checkpoint=True)  # the user's explicit opt-in
    assert marker.exists()


def test_unsafe_sepformer_files_are_refused(tmp_path):
    folder = build_tiny_sepformer(tmp_path / "sf")
    marker = tmp_path / "code_ran"
    torch.save({"weight": _Marker(marker)}, folder / "decoder.ckpt")
    with pytest.raises(CheckpointError, match="decoder.ckpt"):
        load_separator(folder)
    assert not marker.exists()

    folder = build_tiny_sepformer(tmp_path / "sf2")
    text = (folder / "hyperparams.yaml").read_text()
    text += f"\nrun_me: !apply:pathlib.Path.touch [!new:pathlib.Path ['{marker}']]\n"
    (folder / "hyperparams.yaml").write_text(text)
    with pytest.raises(CheckpointError, match="pathlib"):
        load_separator(folder)
    assert not marker.exists()


def test_foreign_and_missing_checkpoints_give_clear_errors(tmp_path, sepformer_dir):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "plain.pth")
    with pytest.raises(CheckpointError, match="not an Asteroid model package"):
        load_separator(tmp_path / "plain.pth")
    torch.save({"model_name": "os", "model_args": {}, "state_dict": {}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="not an Asteroid model class"):
        load_separator(tmp_path / "evil.pth")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("hyperparams.yaml", "encoder.ckpt"):
        (partial / name).write_bytes((sepformer_dir / name).read_bytes())
    with pytest.raises(CheckpointError, match="masknet.ckpt"):
        load_separator(partial)
    with pytest.raises(CheckpointError, match="no such file"):
        load_separator(tmp_path / "nothing_here.bin")


@pytest.mark.parametrize("name", ["sepformer", "convtasnet", "nobody/not-a-model-xyz"])
def test_hub_ids_offline_fail_with_a_hint(name, monkeypatch):
    import huggingface_hub.constants

    # offline even if huggingface_hub was imported before HF_HUB_OFFLINE was set
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="local"):
        load_separator(name)


def test_detection_by_format(sepformer_dir, convtasnet_file):
    assert detect_kind(sepformer_dir) == "sepformer"
    assert detect_kind(sepformer_dir / "hyperparams.yaml") == "sepformer"
    assert detect_kind(convtasnet_file) == "asteroid"
    assert detect_kind("speechbrain/sepformer-whamr") == "sepformer"
    assert detect_kind("JorisCos/ConvTasNet_Libri2Mix_sepnoisy_16k") == "asteroid"
    assert isinstance(load_separator(sepformer_dir / "hyperparams.yaml"), SepformerSeparator)
