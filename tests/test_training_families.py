"""The Trainer fine-tunes every classifier family: Hugging Face, AASIST, SSL_W2V.

Tiny random models in each family's format (amongus.testing), the toy mixtures, the oracle
separator: freezing per family, what trains, class weights in the loss, augmentation of the
training streams only, the saved format, and resume equality for AASIST.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Parameter-name prefixes of each part of the tiny models, written from the documented table
#: in amongus.training.freezing (not from its code), so the test checks the definitions.
PARTS = {
    "hf": {
        "front_end": ("wavlm.feature_extractor.",),
        "base": ("wavlm.",),
        "layer": "wavlm.encoder.layers.{}.",
        "n_layers": 2,
    },
    "aasist": {
        "front_end": ("first_bn.",),
        "base": ("first_bn.", "encoder."),
        "layer": "encoder.{}.",
        "n_layers": 6,
    },
    "ssl_w2v": {
        "front_end": ("front_end.feature_extractor.",),
        "base": ("front_end.",),
        "layer": "front_end.encoder.layers.{}.",
        "n_layers": 2,
    },
}
#: What each family trains in the end-to-end runs (fast, and a part of each kind is frozen).
RUN_OPTIONS = {
    "hf": {"train_layers": "last:1"},
    "aasist": {"freeze": "base"},
    "ssl_w2v": {"train_layers": "last:1"},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.countermeasures import (
        write_tiny_aasist_checkpoint,
        write_tiny_ssl_w2v_checkpoint,
    )

    root = tmp_path_factory.mktemp("models")
    return {
        "hf": build_tiny_classifier(root / "hf", hidden_size=16, num_hidden_layers=2),
        # the published layouts: clovaai's AASIST.pth + AASIST.conf, fairseq names for SSL_W2V
        "aasist": write_tiny_aasist_checkpoint(root / "aasist", layout="clovaai"),
        "ssl_w2v": write_tiny_ssl_w2v_checkpoint(root / "ssl" / "LA_model.pth", write_config=True),
    }


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    from amongus.training.toy import make_toy_mixtures

    root = tmp_path_factory.mktemp("toy")
    manifest = make_toy_mixtures(root / "data", n_mixtures=8, max_source_seconds=1.0)
    return {
        "train_mixtures": str(manifest),
        "separator": "oracle",
        "cache_dir": str(root / "cache"),
        "epochs": 1,
        "batch_size": 2,
        "grad_accum_steps": 1,
        "val_fraction": 0.25,
        "learning_rate": 1e-3,
        "log_with": "none",
        "num_workers": 0,
    }


def _load(models, family):
    from amongus.training.trainer import load_training_classifier

    return load_training_classifier(str(models[family]))


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _starts(names, prefixes) -> set[str]:
    return {name for name in names if name.startswith(tuple(prefixes))}


# ---------------------------------------------------------------- freezing per family
@pytest.mark.parametrize("family", list(PARTS))
def test_freezing_per_family_freezes_exactly_what_it_says(models, family):
    from amongus.training.freezing import apply_freezing, layer_groups

    parts = PARTS[family]
    model = _load(models, family).model
    assert layer_groups(model).family == family
    names = {name for name, _ in model.named_parameters()}
    base = _starts(names, parts["base"])
    head = names - base
    assert head and base

    apply_freezing(model, freeze="none")
    assert _trainable(model) == names

    apply_freezing(model, freeze="feature_encoder")
    front = _starts(names, parts["front_end"])
    assert front and names - _trainable(model) == front

    apply_freezing(model, freeze="base")
    assert _trainable(model) == head

    last = parts["n_layers"] - 1
    apply_freezing(model, freeze="feature_encoder", train_layers="first:1,last:1")
    chosen = _starts(names, (parts["layer"].format(0), parts["layer"].format(last)))
    assert chosen and _trainable(model) == head | chosen

    with pytest.raises(ValueError, match="asks for"):
        apply_freezing(model, train_layers=f"first:{parts['n_layers'] + 1}")


def test_frozen_batch_norms_keep_their_statistics(models):
    from amongus.training.freezing import apply_freezing, set_train_mode

    model = _load(models, "aasist").model
    apply_freezing(model, freeze="base")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    set_train_mode(model)
    assert model.training and not model.first_bn.training and model.GAT_layer_S.bn.training
    model(torch.randn(4, model.config.nb_samp))
    after = model.state_dict()
    for key in before:
        if key.startswith(("first_bn.", "encoder.")):
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(
        before["GAT_layer_S.bn.running_mean"], after["GAT_layer_S.bn.running_mean"]
    )


def test_unknown_model_is_refused_clearly():
    from amongus.training.freezing import apply_freezing

    with pytest.raises(ValueError, match="not a classifier family"):
        apply_freezing(torch.nn.Linear(2, 2), freeze="base")


# ---------------------------------------------------------------- end-to-end runs
@pytest.fixture(scope="module")
def runs(models, toy, tmp_path_factory) -> dict:
    from amongus.training import Trainer, TrainerConfig

    root = tmp_path_factory.mktemp("runs")
    results = {}
    for family, options in RUN_OPTIONS.items():
        config = TrainerConfig(
            **toy, **options, classifier=str(models[family]), output_dir=str(root / family)
        )
        results[family] = Trainer(config).train()
    return results


@pytest.mark.parametrize("family", list(RUN_OPTIONS))
def test_each_family_trains_only_what_is_not_frozen(models, runs, family):
    from safetensors.torch import load_file

    from amongus.classifiers import load_classifier
    from amongus.training.freezing import apply_freezing

    result = runs[family]
    row = result.history[0]
    assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    start_classifier = _load(models, family)
    start = start_classifier.model.state_dict()
    trainable = set(apply_freezing(start_classifier.model, **RUN_OPTIONS[family]))
    end = load_file(str(result.final_dir / "model.safetensors"))
    assert set(end) == set(start)  # every tensor saved, in the family's own names
    moved = {k for k in start if not torch.equal(start[k], end[k])}
    moved_parameters = moved & set(dict(start_classifier.model.named_parameters()))
    assert moved_parameters, "nothing trained"
    assert moved_parameters <= trainable
    # buffers move only with their own module's parameters (frozen batch norms keep theirs)
    for key in moved - moved_parameters:
        module = key.rsplit(".", 1)[0]
        assert any(name.startswith(module + ".") for name in trainable), key

    # saved in the family's format, loadable, with the run's config and history beside it
    loaded = load_classifier(str(result.final_dir))
    assert type(loaded) is type(start_classifier)
    assert loaded.labels == start_classifier.labels
    assert (result.final_dir / "trainer_config.json").is_file()
    assert (result.final_dir / "history.csv").is_file()


def test_a_fine_tuned_aasist_says_what_it_was_fine_tuned_from(runs):
    import json

    config = json.loads((runs["aasist"].final_dir / "config.json").read_text())
    assert config["family"] == "aasist" and "model_config" in config
    assert config["fine_tuned_from"]["name"].endswith("aasist")
    assert "trainer_config.json" in config["fine_tuned_by"]


# ---------------------------------------------------------------- class weights, augmentation
def _capture_loss_weights(monkeypatch) -> list:
    import amongus.training.losses as losses

    seen = []
    original = losses.assigned_loss

    def spy(logits, labels, *, class_weights=None):
        seen.append((None if class_weights is None else class_weights.tolist(), labels.tolist()))
        return original(logits, labels, class_weights=class_weights)

    monkeypatch.setattr(losses, "assigned_loss", spy)
    return seen


@pytest.mark.parametrize(
    ("family", "weights", "expected"),
    [
        # by name: placed at each label's index whatever the family's class order
        ("aasist", "spoof=0.2 bonafide=0.8", [0.2, 0.8]),  # id2label {0: spoof, 1: bonafide}
        ("hf", "spoof=0.2 bonafide=0.8", [0.8, 0.2]),  # id2label {0: bonafide, 1: spoof}
        ("aasist", [0.3, 0.7], [0.3, 0.7]),  # numbers: class-index order, as given
    ],
)
def test_class_weights_reach_the_loss(
    models, toy, tmp_path, monkeypatch, family, weights, expected
):
    from amongus.training import Trainer, TrainerConfig

    seen = _capture_loss_weights(monkeypatch)
    config = TrainerConfig(
        **{**toy, "freeze": "base"},
        classifier=str(models[family]),
        output_dir=str(tmp_path),
        class_weights=weights,
    )
    Trainer(config).train()
    assert seen and all(w == pytest.approx(expected) for w, _ in seen)


def test_balanced_class_weights_equalise_the_classes(models, toy, tmp_path, monkeypatch):
    import json

    from amongus.training import Trainer, TrainerConfig

    seen = _capture_loss_weights(monkeypatch)
    config = TrainerConfig(
        **{**toy, "freeze": "base"},
        classifier=str(models["aasist"]),
        output_dir=str(tmp_path),
        class_weights="balanced",
    )
    trainer = Trainer(config)
    trainer.train()
    weights = seen[0][0]
    labels = [label for _, batch in seen for label in batch if label >= 0]  # one epoch
    counts = np.bincount(labels, minlength=2)
    assert counts.min() > 0
    # N / (C n_c): both classes weigh the same in total
    assert weights[0] * counts[0] == pytest.approx(weights[1] * counts[1])
    assert weights == pytest.approx([counts.sum() / (2 * c) for c in counts])
    report = json.loads((tmp_path / "data_report.json").read_text())
    assert report["class_weights"] == {
        "spoof": pytest.approx(weights[0]),
        "bonafide": pytest.approx(weights[1]),
    }


def test_augmentation_reaches_training_streams_only(models, toy, tmp_path, monkeypatch):
    import amongus.training.data as data
    from amongus.training import Trainer, TrainerConfig

    made = []
    original = data.CachedStreamDataset.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append((kwargs["random_crop"], self.augmenter))

    monkeypatch.setattr(data.CachedStreamDataset, "__init__", record)
    config = TrainerConfig(
        **{**toy, "freeze": "base"},
        classifier=str(models["aasist"]),
        output_dir=str(tmp_path),
        augment="rawboost,noise:0.3",
    )
    Trainer(config).train()
    training = [augmenter for random_crop, augmenter in made if random_crop]
    validation = [augmenter for random_crop, augmenter in made if not random_crop]
    assert len(training) == 1 and training[0].describe() == "rawboost:0.5,noise:0.3"
    assert validation == [None]


def test_augmented_items_are_a_function_of_seed_epoch_and_mixture(models, toy, tmp_path):
    from amongus.augment import Augmenter
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.data import CachedStreamDataset, label_to_index_map
    from amongus.training.trainer import read_mixture_manifest

    trainer = Trainer(
        TrainerConfig(**toy, classifier=str(models["aasist"]), output_dir=str(tmp_path))
    )
    entries = trainer.prepare_cache(read_mixture_manifest(toy["train_mixtures"]), progress=False)

    def dataset(augmenter):
        return CachedStreamDataset(
            trainer.cache,
            entries,
            label_to_index=label_to_index_map(0, 2),
            max_samples=4000,
            random_crop=True,
            seed=0,
            require_assignment=True,
            augmenter=augmenter,
        )

    augmenter = Augmenter.from_spec("rawboost:1", sample_rate=16000)
    plain, augmented = dataset(None), dataset(augmenter)
    first = augmented[(1, 2)]["streams"]
    again = dataset(augmenter)[(1, 2)]["streams"]  # a fresh dataset, e.g. after a resume
    for a, b, clean in zip(first, again, plain[(1, 2)]["streams"], strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.shape == clean.shape and np.all(np.isfinite(a))
        assert not np.array_equal(a, clean)
    assert not np.array_equal(first[0], augmented[(2, 2)]["streams"][0])  # another epoch


# ---------------------------------------------------------------- resume
def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("die_after", [2])
def test_aasist_resume_after_interruption_gives_identical_weights(
    models, toy, tmp_path, monkeypatch, die_after
):
    """With augmentation on and a data-loader worker: the same weights and history."""
    import amongus.training.trainer as trainer_module
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.history import read_history_csv

    options = {
        **toy,
        "epochs": 2,
        "num_workers": 1,
        "checkpoint_every_steps": 1,
        "classifier": str(models["aasist"]),
        "freeze": "none",
        "augment": "rawboost,noise",
        "class_weights": "balanced",
    }
    reference = Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "a"))).train()

    original = trainer_module.save_checkpoint
    saved = []

    def save_then_die(*args, **kwargs):
        path = original(*args, **kwargs)
        saved.append(path)
        if len(saved) == die_after:
            raise KeyboardInterrupt("simulated crash")
        return path

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "b"))).train()
    monkeypatch.setattr(trainer_module, "save_checkpoint", original)

    result = Trainer(TrainerConfig(**options, output_dir=str(tmp_path / "b"))).train()
    assert result.resumed_from is not None and result.resumed_from.name == saved[-1].name
    expected, got = _weights(reference.final_dir), _weights(result.final_dir)
    start = _load(models, "aasist").model.state_dict()
    assert max(float(np.max(np.abs(expected[k] - start[k].numpy()))) for k in expected) > 1e-4
    assert max(float(np.max(np.abs(expected[k] - got[k]))) for k in expected) <= 1e-6
    columns = ("train_loss", "val_loss", "global_step")
    assert [[r[c] for c in columns] for r in read_history_csv(tmp_path / "b" / "history.csv")] == [
        [r[c] for c in columns] for r in read_history_csv(tmp_path / "a" / "history.csv")
    ]


# ---------------------------------------------------------------- options
def test_class_weight_and_augment_options_parse_and_round_trip():
    from amongus.train import build_parser, config_from_args
    from amongus.training import TrainerConfig

    def parse(*flags):
        base = ["--train-mixtures", "m.jsonl", "--classifier", "aasist"]
        return config_from_args(build_parser().parse_args([*base, *flags]))

    assert parse("--class-weights", "spoof=0.1", "bonafide=0.9").class_weights == {
        "spoof": 0.1,
        "bonafide": 0.9,
    }
    assert parse("--class-weights", "fake=1", "real=3").class_weights == {
        "spoof": 1.0,
        "bonafide": 3.0,
    }
    assert parse("--class-weights", "balanced").class_weights == "balanced"
    assert parse("--class-weights", "0.1", "0.9").class_weights == [0.1, 0.9]
    config = parse(
        "--augment", "rawboost,codec:0.3", "--augment-prob", "0.4",
        "--augment-options", '{"codec": {"codecs": ["mulaw"]}}',
    )  # fmt: skip
    assert config.augment == "rawboost,codec:0.3" and config.augment_prob == 0.4
    assert config.augment_options == {"codec": {"codecs": ["mulaw"]}}
    for value in ("balanced", {"spoof": 0.1, "bonafide": 0.9}, [0.5, 0.5]):
        made = TrainerConfig(train_mixtures="m", classifier="c", class_weights=value)
        assert TrainerConfig.from_dict(made.to_dict()) == made

    with pytest.raises(ValueError, match="TrainerConfig.augment: .*unknown step 'rawbost'"):
        TrainerConfig(train_mixtures="m", classifier="c", augment="rawbost")
    with pytest.raises(ValueError, match="TrainerConfig.augment_options"):
        TrainerConfig(train_mixtures="m", classifier="c", augment_options={"noise": {}})
    with pytest.raises(ValueError, match="TrainerConfig.class_weights: unknown label"):
        TrainerConfig(train_mixtures="m", classifier="c", class_weights=["spof=0.1", "real=1"])
    with pytest.raises(ValueError, match="TrainerConfig.class_weights"):
        TrainerConfig(train_mixtures="m", classifier="c", class_weights=[-1, 1])
    with pytest.raises(ValueError, match="TrainerConfig.class_weights"):
        TrainerConfig(train_mixtures="m", classifier="c", class_weights=["spoof=1"] * 2)


# ---------------------------------------------------------------- the fine-tuning recipe
def test_finetune_recipe_never_trains_on_the_real_speech_eval_part(models, tmp_path):
    """The recipe mixes the corpus and the real-speech train/dev parts, never eval."""
    import json

    from amongus.classifiers import load_classifier
    from amongus.corpora.demo import demo_corpus_root
    from amongus.recipes.real_speech import load_part, shared_real_root
    from amongus.recipes.train_classifier import FineTuneConfig, finetune_classifier

    root = shared_real_root("auto")
    if root is None:
        pytest.skip("../shared/data/real is absent")
    config = FineTuneConfig(
        classifier=str(models["aasist"]),
        corpus=str(demo_corpus_root()),
        out_dir=str(tmp_path / "run"),
        separator="oracle",
        real_speech=str(root),
        corpus_train_mixtures=3,
        corpus_dev_mixtures=2,
        real_train_mixtures=12,
        real_dev_mixtures=2,
        epochs=1,
        batch_size=4,
        trainer_options={"num_workers": 0},
    )
    result = finetune_classifier(config, progress=False)
    held_out = {Path(u.path).resolve() for u in load_part(root, "eval")}
    used = set()
    for name in ("train", "dev"):
        for line in (tmp_path / "run" / "mix" / f"{name}.jsonl").read_text().splitlines():
            used.update(Path(s["path"]).resolve() for s in json.loads(line)["sources"])
    assert used & {Path(u.path).resolve() for u in load_part(root, "train")}  # real speech in
    assert not used & held_out
    recipe = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert recipe["family"] == "aasist" and recipe["class_weights"] == {
        "spoof": 0.1,
        "bonafide": 0.9,
    }
    trainer_config = json.loads((result.final_dir / "trainer_config.json").read_text())
    assert trainer_config["train_layers"] == "last:2" and trainer_config["augment"] == "rawboost"
    assert load_classifier(str(result.best_dir)).family == "aasist"


def test_validate_first_records_the_untrained_baseline(models, toy, tmp_path):
    """Epoch 0 is the classifier before any update: the same whatever the training options."""
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.history import read_history_csv

    rows = {}
    for name, learning_rate in (("slow", 1e-4), ("fast", 3e-3)):
        config = TrainerConfig(
            **{**toy, "learning_rate": learning_rate, "freeze": "none"},
            classifier=str(models["aasist"]),
            output_dir=str(tmp_path / name),
            validate_first=True,
        )
        Trainer(config).train()
        rows[name] = read_history_csv(tmp_path / name / "history.csv")
    for history in rows.values():
        assert [row["epoch"] for row in history] == [0, 1]
        assert history[0]["global_step"] == 0 and history[0]["train_loss"] is None
        assert np.isfinite(history[0]["val_loss"])
    assert rows["slow"][0]["val_loss"] == rows["fast"][0]["val_loss"]
    assert rows["slow"][1]["val_loss"] != rows["fast"][1]["val_loss"]
    # a rerun of the finished run resumes: no second baseline row
    again = Trainer(
        TrainerConfig(
            **{**toy, "learning_rate": 1e-4, "freeze": "none"},
            classifier=str(models["aasist"]),
            output_dir=str(tmp_path / "slow"),
            validate_first=True,
        )
    ).train()
    assert [row["epoch"] for row in again.history] == [0, 1]
