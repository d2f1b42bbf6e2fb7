"""Loading a checkpoint never runs its code unless trusted, and weights must fit their model.

Issue 11: a ``hyperparams.yaml`` could run ``os.system`` past the old prefix check; Asteroid
packages written under numpy 1.x were refused; a ``masknet.ckpt`` with missing or extra keys
loaded with warnings only; an unsafe classifier ``.bin`` raised a raw ``UnpicklingError``.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_corpus import CASES, CLASSIFIER, Bases

from amongus.checkpoints import (
    CheckpointError,
    load_state_dict_strict,
    load_weights,
    safe_globals,
)
from amongus.pipeline import load_classifier
from amongus.separation import load_separator
from amongus.testing.classifiers import build_tiny_classifier
from amongus.testing.separators import build_convtasnet_model, build_tiny_sepformer

MODELS = Path(__file__).resolve().parents[1] / "amongus" / "data" / "models"


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return Bases(tmp_path_factory.mktemp("bases"))


def _load(loader: str, path: Path, **options):
    if loader == CLASSIFIER:
        return load_classifier({"name": str(path), **options})
    return load_separator(str(path), **options)


# ---------------------------------------------------------------- the hostile corpus
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_file_is_refused_without_running_code(case, tmp_path, bases):
    marker = tmp_path / "MARKER"
    path = case.build(tmp_path, marker, bases)
    with pytest.raises(CheckpointError) as caught:
        _load(case.loader, path)
    message = str(caught.value)
    assert not marker.exists(), "the checkpoint's code ran"
    assert str(path) in message, message  # names the file or folder
    for name in case.names():
        assert name in message, message  # names the offending tag or global
    assert "trust_checkpoint=True" in message and "--trust-checkpoint" in message
    assert "\x1b" not in message  # no ANSI escape codes


TRUSTED_RUNS = [case for case in CASES if case.runs_if_trusted]


@pytest.mark.parametrize("case", TRUSTED_RUNS, ids=[case.name for case in TRUSTED_RUNS])
def test_hostile_corpus_is_live_when_trusted(case, tmp_path, bases):
    """The marker proves something only if the payload does run once the user opts in."""
    marker = tmp_path / "MARKER"
    path = case.build(tmp_path, marker, bases)
    try:
        _load(case.loader, path, trust_checkpoint=True)
    except Exception:  # noqa: BLE001 - the payload runs first; what breaks after is irrelevant
        pass
    assert marker.exists()


# ---------------------------------------------------------------- numpy 1.x Asteroid packages
def _as_numpy1(path: Path) -> None:
    """Rewrite a pickle as numpy 1.x writes it: ``numpy.core.multiarray`` (numpy 2 writes
    ``numpy._core.multiarray``); the rest of the bytes are the same."""
    old, new = b"numpy._core.multiarray", b"numpy.core.multiarray"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, data in entries:
                archive.writestr(name, data.replace(old, new) if name.endswith(".pkl") else data)
    else:
        path.write_bytes(path.read_bytes().replace(old, new))
    assert new in _pickled_bytes(path) and old not in _pickled_bytes(path)


def _pickled_bytes(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return b"".join(archive.read(n) for n in archive.namelist() if n.endswith(".pkl"))
    return path.read_bytes()


def _recipe_package() -> tuple[torch.nn.Module, dict]:
    """An Asteroid package as its recipes publish it: metric averages are numpy floats."""
    model = build_convtasnet_model(sample_rate=16000)
    package = model.serialize()
    package["infos"]["final_metrics"] = {
        "si_sdr": np.float64(15.2),
        "si_sdr_imp": np.float32(15.1),
        "n_utterances": np.int64(3000),
        "per_speaker": np.array([14.9, 15.5]),
    }
    return model, package


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("numpy_names", ["numpy1", "numpy2"])
def test_asteroid_package_with_numpy_values_loads_untrusted(tmp_path, legacy, numpy_names):
    model, package = _recipe_package()
    path = tmp_path / "pkg" / "pytorch_model.bin"
    path.parent.mkdir()
    torch.save(package, path, _use_new_zipfile_serialization=not legacy)
    if numpy_names == "numpy1":
        _as_numpy1(path)
    loaded = load_weights(path)
    metrics = loaded["infos"]["final_metrics"]
    assert metrics["si_sdr"] == np.float64(15.2) and isinstance(metrics["si_sdr"], np.float64)
    assert isinstance(metrics["si_sdr_imp"], np.float32)
    np.testing.assert_array_equal(metrics["per_speaker"], [14.9, 15.5])

    separator = load_separator(path.parent)  # trust_checkpoint=False
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(separator.model.state_dict()[name], tensor)


def test_numpy_names_of_both_major_versions_are_allowed():
    names = {entry[1] for entry in safe_globals() if isinstance(entry, tuple)}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        assert f"{module}.scalar" in names and f"{module}._reconstruct" in names
    assert "numpy.dtype" in names
    assert not any("Object" in name for name in names)


def test_extra_globals_and_trust(tmp_path):
    from pathlib import PurePosixPath

    path = tmp_path / "paths.pt"
    torch.save({"where": PurePosixPath("a/b")}, path)
    with pytest.raises(CheckpointError, match="pathlib.PurePosixPath"):
        load_weights(path)
    assert load_weights(path, extra_globals=[PurePosixPath])["where"] == PurePosixPath("a/b")
    assert load_weights(path, trust_checkpoint=True)["where"] == PurePosixPath("a/b")


def test_unreadable_weight_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such weight file"):
        load_weights(tmp_path / "absent.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{garbage}: not a torch checkpoint"):
        load_weights(garbage)
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"w": torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=f"{truncated}: not a readable torch checkpoint"):
        load_weights(truncated)


# ---------------------------------------------------------------- strict loading: SepFormer
@pytest.fixture(scope="module")
def sepformer_folder(tmp_path_factory):
    return build_tiny_sepformer(tmp_path_factory.mktemp("sf") / "sepformer")


def _edited_masknet(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    state = torch.load(target / "masknet.ckpt", weights_only=True)
    edit(state)
    (target / "masknet.ckpt").unlink()
    torch.save(state, target / "masknet.ckpt")
    return target


def _first_key(state, word="intra_mdl"):
    return next(key for key in state if word in key)


@pytest.mark.parametrize("problem", ["missing", "unexpected", "mis-shaped"])
def test_sepformer_masknet_that_does_not_fit_is_refused(tmp_path, sepformer_folder, problem):
    state = torch.load(sepformer_folder / "masknet.ckpt", weights_only=True)
    key = _first_key(state)

    def edit(edited):
        if problem == "missing":
            del edited[key]
        elif problem == "unexpected":
            edited["extra.layer.weight"] = torch.zeros(3)
        else:
            edited[key] = torch.zeros(*[n + 1 for n in edited[key].shape])

    folder = _edited_masknet(sepformer_folder, tmp_path / "sf", edit)
    with pytest.raises(CheckpointError) as caught:
        load_separator(folder)
    message = str(caught.value)
    assert str(folder / "masknet.ckpt") in message
    assert f"1 {problem} key" in message
    assert ("extra.layer.weight" if problem == "unexpected" else key) in message
    if problem == "mis-shaped":
        assert str([n + 1 for n in state[key].shape]) in message


def test_long_key_lists_are_truncated(tmp_path, sepformer_folder):
    folder = _edited_masknet(sepformer_folder, tmp_path / "sf", lambda state: state.clear())
    with pytest.raises(CheckpointError, match=r"missing keys: .*\.\.\. and \d+ more") as caught:
        load_separator(folder)
    assert len(str(caught.value)) < 2000


def test_sepformer_in_legacy_format_with_published_yaml_features_loads(tmp_path, sepformer_folder):
    """Old published folders: legacy (non-zip) ``.ckpt`` files; YAML with seeding calls at the
    top and a pretrainer whose ``paths`` name hub files (only their base names are used)."""
    folder = tmp_path / "published"
    shutil.copytree(sepformer_folder, folder)
    for name in ("encoder", "masknet", "decoder"):
        state = torch.load(folder / f"{name}.ckpt", weights_only=True)
        torch.save(state, folder / f"{name}.ckpt", _use_new_zipfile_serialization=False)
        assert not zipfile.is_zipfile(folder / f"{name}.ckpt")
    text = (folder / "hyperparams.yaml").read_text()
    text = (
        "seed: 1234\n__set_seed: !apply:torch.manual_seed [!ref <seed>]\n"
        "__set_random: !apply:random.seed [!ref <seed>]\n" + text
    )
    text += (
        "    paths:\n"
        "        encoder: speechbrain/sepformer-whamr/encoder.ckpt\n"
        "        masknet: speechbrain/sepformer-whamr/masknet.ckpt\n"
        "        decoder: speechbrain/sepformer-whamr/decoder.ckpt\n"
    )
    (folder / "hyperparams.yaml").write_text(text)
    separator = load_separator(folder)
    reference = load_separator(sepformer_folder)
    mixture = torch.randn(1, 4000)
    torch.testing.assert_close(separator.separate(mixture), reference.separate(mixture))


def test_allowed_name_bound_to_another_object_is_refused(sepformer_folder, monkeypatch):
    """The allowlist judges the object HyperPyYAML would build, not only the text."""
    import speechbrain.lobes.models.dual_path as dual_path

    class Impostor(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()

    monkeypatch.setattr(dual_path, "Decoder", Impostor)
    with pytest.raises(CheckpointError, match="Decoder at line .* resolves to .*Impostor"):
        load_separator(sepformer_folder)


# ---------------------------------------------------------------- strict loading: Asteroid
def test_asteroid_package_that_does_not_fit_is_refused(tmp_path):
    model, package = _recipe_package()
    key = next(iter(package["state_dict"]))
    del package["state_dict"][key]
    path = tmp_path / "pytorch_model.bin"
    torch.save(package, path)
    with pytest.raises(CheckpointError, match=f"1 missing key: {key}") as caught:
        load_separator(path)
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------- classifiers
@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("clf") / "classifier")


@pytest.mark.parametrize("problem", ["missing", "unexpected", "mis-shaped"])
def test_classifier_weights_that_do_not_fit_are_refused(tmp_path, classifier_folder, problem):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "classifier"
    shutil.copytree(classifier_folder, folder)
    state = load_file(folder / "model.safetensors")
    if problem == "missing":
        del state["classifier.weight"]
    elif problem == "unexpected":
        state["extra.weight"] = torch.zeros(2)
    else:
        state["classifier.weight"] = torch.zeros(3, 5)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as caught:
        load_classifier(str(folder))
    message = str(caught.value)
    assert str(folder) in message and f"1 {problem} key" in message
    assert ("extra.weight" if problem == "unexpected" else "classifier.weight") in message


@pytest.mark.parametrize("layout", ["bin_zip", "bin_legacy", "bin_old_weight_norm_names"])
def test_published_classifier_layouts_load_untrusted(tmp_path, classifier_folder, layout):
    from safetensors.torch import load_file

    folder = tmp_path / "classifier"
    shutil.copytree(classifier_folder, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    if layout == "bin_old_weight_norm_names":  # torch < 2.1 weight-norm names, as old uploads
        renames = {
            "parametrizations.weight.original0": "weight_g",
            "parametrizations.weight.original1": "weight_v",
        }
        renamed = {}
        for key, value in state.items():
            for new, old in renames.items():
                key = key.replace(new, old)
            renamed[key] = value
        assert renamed.keys() != state.keys()
        state = renamed
    torch.save(
        state, folder / "pytorch_model.bin", _use_new_zipfile_serialization=layout != "bin_legacy"
    )
    loaded = load_classifier(str(folder))
    reference = load_classifier(str(classifier_folder))
    audio = [np.random.default_rng(0).standard_normal(8000).astype(np.float32)]
    np.testing.assert_allclose(loaded.score(audio).logits, reference.score(audio).logits, rtol=1e-5)


# ---------------------------------------------------------------- shipped models
@pytest.mark.parametrize("name", ["sepformer-8k", "convtasnet-16k"])
def test_shipped_separators_load_untrusted(name):
    if not (MODELS / name).is_dir():
        pytest.skip(f"{name} is not shipped in this checkout")
    assert load_separator(MODELS / name).n_src == 2


@pytest.mark.parametrize("name", ["wavlm-spoof-clean", "wavlm-spoof-finetuned"])
def test_shipped_classifiers_load_untrusted(name):
    if not (MODELS / name).is_dir():
        pytest.skip(f"{name} is not shipped in this checkout")
    assert load_classifier(str(MODELS / name)).sample_rate == 16000


def test_strict_loader_refuses_non_tensor_entries():
    module = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="not tensors: weight"):
        load_state_dict_strict(module, {"weight": [1.0], "bias": torch.zeros(2)}, source="x.ckpt")
    with pytest.raises(CheckpointError, match="x.ckpt: expected a state dict"):
        load_state_dict_strict(module, [torch.zeros(2)], source="x.ckpt")


def test_trusted_classifier_pickle_loads(tmp_path, classifier_folder):
    """``trust_checkpoint=True`` reaches the weights even though transformers itself always
    unpickles with ``weights_only=True``."""
    from collections import defaultdict

    from safetensors.torch import load_file

    folder = tmp_path / "classifier"
    shutil.copytree(classifier_folder, folder)
    state = defaultdict(list, load_file(folder / "model.safetensors"))  # a global not allowed
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="collections.defaultdict"):
        load_classifier(str(folder))
    loaded = load_classifier({"name": str(folder), "trust_checkpoint": True})
    reference = load_classifier(str(classifier_folder))
    audio = [np.random.default_rng(1).standard_normal(6000).astype(np.float32)]
    np.testing.assert_allclose(loaded.score(audio).logits, reference.score(audio).logits, rtol=1e-5)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    )  # the user's folder is left as it was
