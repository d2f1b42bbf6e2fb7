"""Joint fine-tuning of separator and classifier (TrainerConfig.joint, amongus.training.joint).

Tiny random separators and classifiers in their published formats (amongus.testing), the toy
mixtures: the separator trains only in joint mode, the loss is the weighted sum of its parts,
a resumed run ends where an uninterrupted one does, the saved separator reloads, the
differentiable classifier input equals the classifier's own, bad options are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.countermeasures import (
        write_tiny_aasist_checkpoint,
        write_tiny_ssl_w2v_checkpoint,
    )
    from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

    root = tmp_path_factory.mktemp("joint-models")
    return {
        "convtasnet": build_tiny_convtasnet(root / "convtasnet", sample_rate=16000).parent,
        "sepformer": build_tiny_sepformer(root / "sepformer", sample_rate=8000),
        "aasist": write_tiny_aasist_checkpoint(root / "aasist", layout="clovaai"),
        "hf": build_tiny_classifier(root / "hf", hidden_size=16, num_hidden_layers=2),
        "ssl_w2v": write_tiny_ssl_w2v_checkpoint(root / "ssl" / "LA_model.pth", write_config=True),
    }


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    from amongus.training.toy import make_toy_mixtures

    root = tmp_path_factory.mktemp("joint-toy")
    manifest = make_toy_mixtures(root / "data", n_mixtures=6, max_source_seconds=1.0)
    return {
        "train_mixtures": str(manifest),
        "epochs": 1,
        "batch_size": 2,
        "grad_accum_steps": 1,
        "val_fraction": 0.34,
        "learning_rate": 1e-3,
        "separator_lr": 1e-3,
        "log_with": "none",
        "num_workers": 0,
        "separator_segment_seconds": 0.5,
    }


def _options(models, toy, **changes) -> dict:
    return {
        **toy,
        "joint": True,
        "separator": str(models["convtasnet"]),
        "classifier": str(models["aasist"]),
        "freeze": "none",
        **changes,
    }


def _separator_weights(folder) -> dict[str, torch.Tensor]:
    from amongus.separation import load_separator

    separator = load_separator(str(folder))
    return {k: v.clone() for k, v in separator.model.state_dict().items()}


def _max_change(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def joint_run(models, toy, tmp_path_factory):
    from amongus.training import Trainer, TrainerConfig

    out = tmp_path_factory.mktemp("joint-run")
    config = TrainerConfig(
        **_options(models, toy, epochs=2, validate_first=True), output_dir=str(out)
    )
    return Trainer(config).train()


# ---------------------------------------------------------------- what trains
def test_joint_mode_trains_the_separator_and_saves_it_loadable(models, joint_run):
    from amongus.classifiers import load_classifier
    from amongus.pipeline import Pipeline

    out = joint_run.output_dir
    start = _separator_weights(models["convtasnet"])
    assert _max_change(start, _separator_weights(out / "final-separator")) > 1e-5
    assert (out / "separator" / "pytorch_model.bin").is_file()  # Asteroid's published package
    assert (out / "checkpoints").is_dir()
    assert load_classifier(str(joint_run.best_dir)).sample_rate == 16000
    pipeline = Pipeline(separator=str(out / "separator"), classifier=str(joint_run.best_dir))
    assert pipeline.separator.sample_rate == 16000

    rows = joint_run.history
    assert [row["epoch"] for row in rows] == [0, 1, 2]  # 0: before training (validate_first)
    assert rows[0].get("train_loss") is None and np.isfinite(rows[0]["val_si_sdri"])
    for row in rows[1:]:  # both models' validation metrics, every epoch
        for key in ("train_separation_loss", "train_classifier_loss", "val_si_sdri", "val_loss"):
            assert row[key] is not None and np.isfinite(row[key]), key
    assert "val_eer" in rows[-1]
    from amongus.training.history import read_history_csv

    written = read_history_csv(out / "history.csv")  # the joint columns reach the file too
    for key in ("val_si_sdri", "train_separation_loss"):
        assert [row[key] for row in written[1:]] == pytest.approx([row[key] for row in rows[1:]])
    assert written[0]["val_si_sdri"] == pytest.approx(rows[0]["val_si_sdri"])


def test_without_joint_the_separator_does_not_change(models, toy, tmp_path):
    from amongus.separation import load_separator
    from amongus.training import Trainer, TrainerConfig

    separator = load_separator(str(models["convtasnet"]))
    before = {k: v.clone() for k, v in separator.model.state_dict().items()}
    options = _options(models, toy, joint=False, cache_dir=str(tmp_path / "cache"))
    Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "run")), separator=separator).train()
    assert _max_change(before, separator.model.state_dict()) == 0.0
    assert not (tmp_path / "run" / "separator").exists()


def test_an_8k_sepformer_learns_from_a_16k_hugging_face_classifier(models, toy, tmp_path):
    """Differentiable resampling between the separator's and the classifier's rates."""
    from amongus.separation import load_separator
    from amongus.training import Trainer, TrainerConfig

    options = _options(
        models, toy, separator=str(models["sepformer"]), classifier=str(models["hf"]),
        separation_loss_weight=0.0, freeze="none",
    )  # fmt: skip
    result = Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "run"))).train()
    saved = tmp_path / "run" / "final-separator"
    assert (saved / "hyperparams.yaml").is_file() and (saved / "masknet.ckpt").is_file()
    assert load_separator(str(saved)).sample_rate == 8000
    # only the classifier loss: the separator still moved, so its gradient crossed the resampler
    assert _max_change(_separator_weights(models["sepformer"]), _separator_weights(saved)) > 0
    assert np.isfinite(result.history[-1]["val_si_sdri"])


# ---------------------------------------------------------------- the loss
def _batch_and_models(models, toy, classifier="aasist"):
    from amongus.separation import load_separator
    from amongus.training.data import label_to_index_map
    from amongus.training.joint import JointMixtureDataset, collate_mixtures, trainable_separator
    from amongus.training.trainer import load_training_classifier, read_mixture_manifest

    mixtures = read_mixture_manifest(toy["train_mixtures"])[:2]
    separator = trainable_separator(load_separator(str(models["convtasnet"])))
    clf = load_training_classifier(str(models[classifier]))
    dataset = JointMixtureDataset(
        mixtures, sample_rate=16000, segment_samples=8000, seed=0, random_crop=False,
        label_to_index=label_to_index_map(clf.spoof_index, 2),
    )  # fmt: skip
    batch = collate_mixtures([dataset[0], dataset[1]])
    separator.module.eval()
    clf.model.eval()
    return separator, clf, batch


def test_loss_is_the_weighted_sum_of_its_parts(models, toy):
    from amongus.training.joint import joint_forward

    separator, clf, batch = _batch_and_models(models, toy)
    weights = torch.tensor([0.3, 0.7])

    def run(ws, wc):
        torch.manual_seed(0)
        return joint_forward(
            separator, clf, clf.model, batch, separation_weight=ws, classifier_weight=wc,
            class_weights=weights,
        )  # fmt: skip

    only_sep, only_cm, both = run(1.0, 0.0), run(0.0, 1.0), run(2.0, 3.0)
    assert float(only_sep.loss) == pytest.approx(float(only_sep.separation_loss), rel=1e-6)
    assert float(only_cm.loss) == pytest.approx(float(only_cm.classifier_loss), rel=1e-6)
    expected = 2.0 * float(only_sep.separation_loss) + 3.0 * float(only_cm.classifier_loss)
    assert float(both.loss) == pytest.approx(expected, rel=1e-5)
    assert float(only_sep.separation_loss) != pytest.approx(float(only_cm.classifier_loss))

    # the separation loss is the PIT negative SI-SDR of the streams, in source order
    from asteroid.losses import pairwise_neg_sisdr

    pairwise = pairwise_neg_sisdr(both.streams, batch["sources"])
    assert float(pairwise.diagonal(dim1=1, dim2=2).mean()) == pytest.approx(
        float(both.separation_loss), rel=1e-5
    )
    # the classifier part trains nothing when its weight is 0
    clf.model.zero_grad(set_to_none=True)
    run(1.0, 0.0).loss.backward()
    grads = [p.grad for p in clf.model.parameters() if p.grad is not None]
    assert all(float(g.abs().max()) == 0.0 for g in grads)
    assert any(float(p.grad.abs().max()) > 0 for p in separator.module.parameters())


@pytest.mark.parametrize("family", ["aasist", "hf", "ssl_w2v"])
def test_every_family_passes_its_loss_back_to_the_separator(models, toy, family):
    from amongus.training.joint import joint_forward

    separator, clf, batch = _batch_and_models(models, toy, classifier=family)
    output = joint_forward(
        separator, clf, clf.model, batch, separation_weight=0.0, classifier_weight=1.0
    )
    assert torch.isfinite(output.loss)
    output.loss.backward()
    assert any(float(p.grad.abs().max()) > 0 for p in separator.module.parameters())


@pytest.mark.parametrize("family", ["aasist", "hf", "ssl_w2v"])
def test_differentiable_classifier_input_equals_prepare(models, toy, family):
    from amongus.training.joint import classifier_inputs
    from amongus.training.trainer import load_training_classifier

    clf = load_training_classifier(str(models[family]))
    rng = np.random.default_rng(0)
    for n_samples in (3000, 70000):
        streams = (0.1 * rng.standard_normal((3, n_samples))).astype(np.float32)
        expected = clf.prepare(list(streams))["input_values"]
        got = classifier_inputs(clf, torch.from_numpy(streams))["input_values"]
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-4), float((got - expected).abs().max())


# ---------------------------------------------------------------- resume
def test_resume_after_interruption_ends_where_an_uninterrupted_run_does(
    models, toy, tmp_path, monkeypatch
):
    import amongus.training.checkpoint as checkpoint_module
    from amongus.training import Trainer, TrainerConfig

    options = _options(models, toy, epochs=2, checkpoint_every_steps=1)
    reference = Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "a"))).train()

    original = checkpoint_module.save_folder_checkpoint
    saved = []

    def save_then_die(*args, **kwargs):
        path = original(*args, **kwargs)
        saved.append(path)
        if len(saved) == 2:
            raise KeyboardInterrupt("simulated crash")
        return path

    monkeypatch.setattr(checkpoint_module, "save_folder_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "b"))).train()
    monkeypatch.setattr(checkpoint_module, "save_folder_checkpoint", original)
    state = json.loads((saved[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (saved[-1] / "training_state.pt").is_file()

    result = Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "b"))).train()
    assert result.resumed_from is not None and result.resumed_from.name == saved[-1].name
    start = _separator_weights(models["convtasnet"])
    expected = _separator_weights(tmp_path / "a" / "final-separator")
    assert _max_change(start, expected) > 1e-5
    assert _max_change(expected, _separator_weights(tmp_path / "b" / "final-separator")) <= 1e-6
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    keys = ("train_loss", "val_loss", "val_si_sdri", "global_step")
    assert [[r[k] for k in keys] for r in result.history] == [
        [r[k] for k in keys] for r in reference.history
    ]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"separation_loss_weight": 0.0, "classifier_loss_weight": 0.0}, "both 0"),
        ({"separation_loss_weight": -1.0}, "separation_loss_weight"),
        ({"classifier_loss_weight": float("nan")}, "classifier_loss_weight"),
        ({"separator_lr": 0.0}, "separator_lr"),
        ({"separator_segment_seconds": -2.0}, "separator_segment_seconds"),
        ({"augment": "rawboost"}, "augment"),
    ],
)
def test_bad_joint_options_are_refused_clearly(changes, option):
    from amongus.training import TrainerConfig

    with pytest.raises(ValueError, match=option):
        TrainerConfig(train_mixtures="m.jsonl", classifier="c", joint=True, **changes)


def test_a_separator_without_a_model_is_refused(models, toy, tmp_path):
    from amongus.training import Trainer, TrainerConfig

    options = _options(models, toy, separator="oracle")
    with pytest.raises(ValueError, match="no trainable model"):
        Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "run"))).train()


def test_unusable_mixtures_are_skipped_and_counted(models, toy, tmp_path):
    from amongus.training import Trainer, TrainerConfig

    source = Path(toy["train_mixtures"])
    lines = source.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    folder = source.parent
    for record in records:  # absolute paths: the manifest is written elsewhere
        record["path"] = str(folder / record["path"])
        for s in record["sources"]:
            s["path"] = s["path"] if Path(s["path"]).is_absolute() else str(folder / s["path"])
    records[0]["path"] = str(tmp_path / "missing.flac")
    records[1]["sources"][1]["path"] = str(tmp_path / "gone.wav")  # a reference source
    manifest = tmp_path / "mixtures.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    options = _options(models, toy, train_mixtures=str(manifest), val_fraction=0.0)
    result = Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "run"))).train()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["counts"]["train"] == {"mixtures": len(records), "used": len(records) - 2}
    reasons = report["skipped_reasons"]["train"]
    assert sum(reasons.values()) == 2 and "reference_source" in reasons, reasons
    assert result.data_report["skipped"][0]["id"] == records[0]["mixture_id"]


def test_cli_refuses_prepare_only_in_joint_mode(models, toy, tmp_path, capsys):
    from amongus.train import main

    code = main([
        "--train-mixtures", toy["train_mixtures"], "--classifier", str(models["aasist"]),
        "--separator", str(models["convtasnet"]), "--output-dir", str(tmp_path / "run"),
        "--log-with", "none", "--joint", "--prepare-only",
    ])  # fmt: skip
    assert code == 2
    assert "joint" in capsys.readouterr().err
    assert not (tmp_path / "run" / "stream_cache").exists()  # no cache folder made for nothing
