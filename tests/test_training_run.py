"""A tiny training run end to end: trains, validates, checkpoints, resumes to identical weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[key] - b[key]))) for key in a)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.training.toy import make_toy_mixtures

    root = tmp_path_factory.mktemp("train")
    manifest = make_toy_mixtures(root / "data", n_mixtures=10, max_source_seconds=1.0)
    classifier = build_tiny_classifier(root / "clf", hidden_size=16)
    options = {
        "train_mixtures": str(manifest),
        "classifier": str(classifier),
        "separator": "oracle",
        "cache_dir": str(root / "cache"),
        "epochs": 2,
        "batch_size": 2,
        "grad_accum_steps": 2,
        "max_seconds": 0.5,
        "val_fraction": 0.3,
        "learning_rate": 1e-3,
        "freeze": "none",
        "checkpoint_every_steps": 1,
        "keep_checkpoints": 3,
        "log_with": "tensorboard",
    }
    return root, options


@pytest.fixture(scope="module")
def uninterrupted(setup):
    from amongus.training import Trainer, TrainerConfig

    root, options = setup
    trainer = Trainer(TrainerConfig(**options, output_dir=str(root / "run_a")))
    result = trainer.train()
    return trainer, result


def test_run_trains_validates_and_writes_everything(setup, uninterrupted):
    from amongus.classifier import SpoofClassifier
    from amongus.training.checkpoint import list_checkpoints, read_trainer_state
    from amongus.training.history import read_history_csv

    root, options = setup
    trainer, result = uninterrupted
    assert trainer.fill_report.separated == 10  # first run: every mixture separated once
    rows = read_history_csv(result.output_dir / "history.csv")
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        for column in ("train_loss", "val_loss", "val_accuracy", "val_eer"):
            assert row[column] is not None and np.isfinite(row[column]), column
        assert 0 <= row["val_accuracy"] <= 1 and 0 <= row["val_eer"] <= 1
    assert rows[-1]["global_step"] == 2 * rows[0]["global_step"]
    assert (result.output_dir / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert list(result.output_dir.rglob("events.out.tfevents*")), "no TensorBoard log"
    # models in Hugging Face format; training moved the weights
    final = SpoofClassifier.from_pretrained(result.final_dir)
    assert final.spoof_index == 1
    assert SpoofClassifier.from_pretrained(result.best_dir).sample_rate == 16000
    assert _max_difference(_weights(result.final_dir), _weights(Path(options["classifier"]))) > 1e-4
    # complete checkpoints only, each with the HF model and the trainer state
    checkpoints = list_checkpoints(result.output_dir / "checkpoints")
    assert len(checkpoints) == 3 and not list((result.output_dir / "checkpoints").glob(".tmp-*"))
    last = checkpoints[-1]
    assert (last / "model" / "config.json").exists()
    assert (last / "optimizer.bin").exists() and (last / "scheduler.bin").exists()
    state = read_trainer_state(last)
    assert state["epoch"] == 2 and state["global_step"] == rows[-1]["global_step"]
    np.testing.assert_array_equal(_weights(last / "model")["classifier.weight"],
                                  _weights(result.final_dir)["classifier.weight"])  # fmt: skip


@pytest.mark.parametrize("die_after", [1, 4])  # in the first epoch, in the second
def test_resume_after_interruption_gives_identical_weights(
    setup, uninterrupted, monkeypatch, die_after
):
    """Stop a run right after a mid-epoch checkpoint, rerun it: same weights and history."""
    import amongus.training.trainer as trainer_module
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.history import read_history_csv

    root, options = setup
    _, reference = uninterrupted
    original = trainer_module.save_checkpoint
    saved = []

    def save_then_die(*args, **kwargs):
        path = original(*args, **kwargs)
        saved.append(path)
        if len(saved) == die_after:
            raise KeyboardInterrupt("simulated crash")
        return path

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    output = root / f"run_b{die_after}"
    with pytest.raises(KeyboardInterrupt):
        Trainer(TrainerConfig(**options, output_dir=str(output))).train()
    monkeypatch.setattr(trainer_module, "save_checkpoint", original)
    assert not (output / "final").exists()

    trainer = Trainer(TrainerConfig(**options, output_dir=str(output)))
    result = trainer.train()
    assert result.resumed_from is not None and result.resumed_from.name == saved[-1].name
    assert trainer.fill_report.separated == 0  # the cache is shared: no separation at all
    assert trainer.fill_report.hits == 10
    assert _max_difference(_weights(result.final_dir), _weights(reference.final_dir)) <= 1e-6
    columns = ("train_loss", "val_loss", "val_eer", "global_step")
    expected = read_history_csv(reference.output_dir / "history.csv")
    got = read_history_csv(output / "history.csv")
    assert [[row[c] for c in columns] for row in got] == [
        [row[c] for c in columns] for row in expected
    ]


def test_rerun_of_a_finished_run_does_not_train_again(setup, uninterrupted):
    from amongus.training import Trainer, TrainerConfig

    root, options = setup
    _, reference = uninterrupted
    before = _weights(reference.final_dir)
    result = Trainer(TrainerConfig(**options, output_dir=str(reference.output_dir))).train()
    assert result.resumed_from is not None and len(result.history) == 2
    assert _max_difference(_weights(result.final_dir), before) == 0.0


def test_label_assignment_and_class_weights_train(setup, tmp_path):
    from amongus.training import Trainer, TrainerConfig

    _, options = setup
    config = TrainerConfig(
        **{**options, "epochs": 1, "checkpoint_every_steps": None, "log_with": "none"},
        assignment="labels",
        class_weights=[0.1, 0.9],
        train_layers="last:1",
        output_dir=str(tmp_path),
    )
    result = Trainer(config).train()
    row = result.history[0]
    assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    start = _weights(Path(options["classifier"]))
    end = _weights(result.final_dir)
    # only the last transformer layer and the head moved
    moved = {key for key in start if np.max(np.abs(start[key] - end[key])) > 0}
    assert moved and all(
        key.startswith(("wavlm.encoder.layers.1.", "projector.", "classifier.")) for key in moved
    )
