"""Unit tests of the training pieces: stream cache, data order, freezing, losses, history, CLI."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus.training.data import (  # noqa: E402
    BucketBatchSampler,
    split_mixtures,
    subset_fraction,
)
from amongus.training.freezing import apply_freezing, parse_layer_spec  # noqa: E402
from amongus.training.history import (  # noqa: E402
    plot_history,
    read_history_csv,
    write_history_csv,
)
from amongus.training.losses import assigned_loss, permutation_loss  # noqa: E402
from amongus.training.stream_cache import StreamCache  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_manifest(tmp_path_factory) -> Path:
    from amongus.training.toy import make_toy_mixtures
    from amongus.training.trainer import read_mixture_manifest

    manifest = make_toy_mixtures(
        tmp_path_factory.mktemp("toy"), n_mixtures=6, max_source_seconds=1.0
    )
    assert len(read_mixture_manifest(manifest)) == 6
    return manifest


@pytest.fixture(scope="module")
def toy_mixtures(toy_manifest):
    from amongus.training.trainer import read_mixture_manifest

    return read_mixture_manifest(toy_manifest)


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    from amongus.testing.classifiers import build_tiny_classifier

    return build_tiny_classifier(
        tmp_path_factory.mktemp("clf"), num_hidden_layers=4, hidden_size=16
    )


# ---------------------------------------------------------------- stream cache
def _cache(root, identity="sep:a", rate=8000, dtype="float16"):
    return StreamCache(
        root, separator_identity=identity, separator_rate=rate, stream_rate=16000, dtype=dtype
    )


def test_cache_put_lookup_and_keys(tmp_path, toy_mixtures):
    mixture = toy_mixtures[0]
    cache = _cache(tmp_path)
    assert cache.lookup(mixture) is None
    streams = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32) * 0.1
    entry = cache.put(mixture, streams, permutation=[1, 0], si_sdr=[10.0, 12.0])
    assert entry.stream_labels == [mixture.source_labels[1], mixture.source_labels[0]]
    again = _cache(tmp_path).lookup(mixture)  # a new process sees the entry
    assert again is not None and again.permutation == [1, 0]
    loaded = _cache(tmp_path).load(again)
    assert loaded.dtype == np.float16 and loaded.shape == (2, 1000)
    np.testing.assert_allclose(loaded, streams, atol=1e-3)
    # another separator identity, separator rate or stored dtype is another key: a miss
    assert _cache(tmp_path, identity="sep:b").lookup(mixture) is None
    assert _cache(tmp_path, rate=16000).lookup(mixture) is None
    assert _cache(tmp_path, dtype="float32").lookup(mixture) is None
    assert not list(tmp_path.rglob("*.part"))
    manifest = cache.write_manifest()
    lines = manifest.read_text().splitlines()
    assert [json.loads(line)["mixture_id"] for line in lines] == [mixture.mixture_id]


def test_cache_invalidates_changed_mixture_file(tmp_path, toy_mixtures):
    import shutil

    original = toy_mixtures[1]
    copy = tmp_path / "copy.flac"
    shutil.copy(original.path, copy)
    mixture = type(original).from_dict({**original.to_dict(), "path": str(copy)})
    cache = _cache(tmp_path / "cache")
    cache.put(mixture, np.zeros((2, 10), np.float32))
    assert cache.lookup(mixture) is not None
    os.utime(copy, ns=(1, 1))  # touched but same content: still valid (hash reused)
    assert cache.lookup(mixture) is not None
    from amongus.audio import load_audio, save_audio

    audio, rate = load_audio(copy)
    save_audio(copy, audio * 0.5, rate)  # re-mixed: different content
    assert cache.lookup(mixture) is None


def test_fill_cache_separates_once_and_assigns(tmp_path, toy_mixtures):
    from amongus.mix.render import render_sources
    from amongus.separation import load_separator
    from amongus.training.prepare import fill_cache

    oracle = load_separator("oracle")
    cache = StreamCache(
        tmp_path,
        separator_identity=oracle.identity,
        separator_rate=oracle.sample_rate,
        stream_rate=16000,
        dtype="float32",
    )
    entries, report = fill_cache(cache, toy_mixtures, oracle, batch_size=3, progress=False)
    assert report.separated == len(toy_mixtures) and report.hits == 0
    assert len(entries) == len(toy_mixtures) and not report.skipped
    for mixture in toy_mixtures:
        entry = cache.get(mixture)
        # the oracle returns the references in order: identity assignment, very high SI-SDR
        assert entry.permutation == [0, 1]
        assert min(entry.si_sdr) > 40
        streams = cache.load(entry)
        references = render_sources(mixture)
        np.testing.assert_allclose(streams, references[:, : streams.shape[1]], atol=1e-5)
    _, second = fill_cache(cache, toy_mixtures, oracle, progress=False)
    assert second.separated == 0 and second.hits == len(toy_mixtures)
    passthrough = load_separator("passthrough")
    other = StreamCache(
        tmp_path,
        separator_identity=passthrough.identity,
        separator_rate=passthrough.sample_rate,
        stream_rate=16000,
    )
    _, third = fill_cache(other, toy_mixtures[:2], passthrough, progress=False)
    assert third.separated == 2


# ---------------------------------------------------------------- data
def test_split_and_fraction_are_seeded_and_sized():
    items = list(range(40))
    train, val = split_mixtures(items, val_fraction=0.1, seed=3)
    assert len(val) == 4 and len(train) == 36 and not set(train) & set(val)
    assert split_mixtures(items, val_fraction=0.1, seed=3) == (train, val)
    assert split_mixtures(items, val_fraction=0.1, seed=4)[1] != val
    for fraction, size in ((0.1, 4), (0.5, 20), (1.0, 40), (0.01, 1)):
        subset = subset_fraction(items, fraction=fraction, seed=0)
        assert len(subset) == size and subset == sorted(subset)
        assert subset == subset_fraction(items, fraction=fraction, seed=0)
    assert subset_fraction(items, fraction=0.5, seed=0) != subset_fraction(
        items, fraction=0.5, seed=1
    )
    with pytest.raises(ValueError):
        subset_fraction(items, fraction=0.0, seed=0)


def test_bucket_sampler_order_is_a_function_of_seed_and_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1000, 50000, size=103)
    sampler = BucketBatchSampler(lengths, batch_size=4, seed=7, bucket_size=5)
    epoch0 = sampler.make_batches(0)
    assert sorted(i for b in epoch0 for i in b) == list(range(103))
    assert len(epoch0) == len(sampler) == 26
    assert epoch0 == BucketBatchSampler(lengths, batch_size=4, seed=7, bucket_size=5).make_batches(
        0
    )
    assert epoch0 != sampler.make_batches(1)

    # bucketing: far less padding than unsorted batches of the same size
    def padding(batches):
        return sum(max(lengths[b]) * len(b) - sum(lengths[b]) for b in batches)

    unbucketed = BucketBatchSampler(lengths, batch_size=4, seed=7, bucket_size=1).make_batches(0)
    assert padding(epoch0) < 0.5 * padding(unbucketed)
    # state round trip: a restored sampler yields the same batches, with the epoch in the keys
    sampler.set_epoch(2)
    state = json.loads(json.dumps(sampler.state_dict()))
    restored = BucketBatchSampler(lengths, batch_size=4, seed=7, bucket_size=5)
    restored.load_state_dict(state)
    assert list(restored) == list(sampler)
    assert all(key[0] == 2 for batch in restored for key in batch)
    with pytest.raises(ValueError, match="seed"):
        BucketBatchSampler(lengths, batch_size=4, seed=8).load_state_dict(state)
    with pytest.raises(ValueError, match="changed"):
        BucketBatchSampler(lengths[:50], batch_size=4, seed=7).load_state_dict(state)


# ---------------------------------------------------------------- freezing
def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freezing_options_freeze_exactly_what_they_say(tiny_classifier_dir):
    from transformers import AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(tiny_classifier_dir)
    names = {name for name, _ in model.named_parameters()}
    head = {n for n in names if not n.startswith("wavlm.")}
    assert head  # projector + classifier

    apply_freezing(model, freeze="none")
    assert _trainable(model) == names

    apply_freezing(model, freeze="feature_encoder")
    frozen = names - _trainable(model)
    assert frozen and all(n.startswith("wavlm.feature_extractor.") for n in frozen)
    assert {n for n in names if n.startswith("wavlm.feature_extractor.")} == frozen

    apply_freezing(model, freeze="base")
    assert _trainable(model) == head

    apply_freezing(model, freeze="feature_encoder", train_layers="first:1,last:1")
    layers = {n for n in names if n.startswith("wavlm.encoder.layers.")}
    chosen = {
        n for n in layers if n.startswith(("wavlm.encoder.layers.0.", "wavlm.encoder.layers.3."))
    }
    assert chosen and _trainable(model) == head | chosen


def test_parse_layer_spec():
    assert parse_layer_spec("first:5,last:5", n_layers=12) == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    assert parse_layer_spec("0-2,-1", n_layers=6) == [0, 1, 2, 5]
    for bad in ("first5", "last:13", "12", "-13", "3-1", ""):
        with pytest.raises(ValueError):
            parse_layer_spec(bad, n_layers=12)


# ---------------------------------------------------------------- losses
@pytest.mark.parametrize("weights", [None, [0.1, 0.9]])
def test_permutation_loss_equals_brute_force_minimum(weights):
    generator = torch.Generator().manual_seed(0)
    group_sizes = [2, 3, 2]
    logits = torch.randn(sum(group_sizes), 2, generator=generator) * 3
    labels = torch.tensor([0, 1, 1, 1, 0, 0, 0])
    w = None if weights is None else torch.tensor(weights)
    loss = permutation_loss(logits, labels, torch.tensor(group_sizes), class_weights=w)
    # brute force: every combination of per-mixture label permutations, weighted mean CE
    offsets = np.cumsum([0, *group_sizes])
    candidates = []
    per_group = [list(itertools.permutations(range(size))) for size in group_sizes]
    for combo in itertools.product(*per_group):
        permuted = torch.cat(
            [labels[offsets[g] : offsets[g + 1]][list(p)] for g, p in enumerate(combo)]
        )
        candidates.append(float(F.cross_entropy(logits, permuted, weight=w)))
    assert float(loss) == pytest.approx(min(candidates), rel=1e-6)
    # when the labels are already in the best order, it equals the assigned-label loss
    best = candidates.index(min(candidates))
    combo = list(itertools.product(*per_group))[best]
    ordered = torch.cat([labels[offsets[g] : offsets[g + 1]][list(p)] for g, p in enumerate(combo)])
    assert float(assigned_loss(logits, ordered, class_weights=w)) == pytest.approx(float(loss))


def test_label_mode_runs_one_forward_per_stream(tmp_path, toy_manifest, tiny_classifier_dir):
    from amongus.training import Trainer, TrainerConfig

    config = TrainerConfig(
        train_mixtures=str(toy_manifest),
        classifier=str(tiny_classifier_dir),
        separator="oracle",
        assignment="labels",
        output_dir=str(tmp_path),
    )
    trainer = Trainer(config)
    model = trainer.classifier.model
    calls = []

    def counting_forward(module, args, kwargs):
        calls.append(kwargs["input_values"].shape[0])

    handle = model.register_forward_pre_hook(counting_forward, with_kwargs=True)
    batch = {
        **trainer.classifier.prepare([np.random.randn(4000).astype(np.float32) for _ in range(4)]),
        "source_labels": torch.tensor([0, 1, 1, 1]),
        "labels": torch.tensor([-100] * 4),
        "group_sizes": torch.tensor([2, 2]),
    }
    loss = trainer._batch_loss(model, batch, None, True, torch.device("cpu"))
    handle.remove()
    assert calls == [4]  # one forward over the 4 streams, not one per permutation
    loss.backward()
    assert any(p.grad is not None for p in model.parameters())


# ---------------------------------------------------------------- history, config, CLI
def test_history_csv_and_png(tmp_path):
    rows = [
        {
            "epoch": 1,
            "global_step": 5,
            "train_loss": 0.7,
            "val_loss": 0.69,
            "val_eer": float("nan"),
        },
        {"epoch": 2, "global_step": 10, "train_loss": 0.5, "val_loss": 0.6, "val_eer": 0.25},
    ]
    path = write_history_csv(tmp_path / "history.csv", rows)
    assert "nan" not in path.read_text().lower()
    back = read_history_csv(path)
    assert back[0]["val_eer"] is None and back[1]["val_eer"] == 0.25 and back[1]["epoch"] == 2
    png = plot_history(tmp_path / "history.png", back)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_config_validation_and_cli_parsing(tmp_path):
    from amongus.train import build_parser, config_from_args
    from amongus.training import TrainerConfig

    with pytest.raises(ValueError, match="freeze"):
        TrainerConfig(freeze="everything")
    with pytest.raises(ValueError, match="train_layers"):
        TrainerConfig(train_layers="top:3")
    with pytest.raises(ValueError, match="data_fraction"):
        TrainerConfig(data_fraction=0)
    (tmp_path / "run.json").write_text(json.dumps({"epochs": 7, "batch_size": 3}))
    args = build_parser().parse_args(
        [
            "--config", str(tmp_path / "run.json"), "--batch-size", "5",
            "--class-weights", "0.1", "0.9", "--max-seconds", "none", "--no-resume",
            "--train-layers", "first:5,last:5", "--separator-options", '{"n_src": 2}',
        ]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.epochs == 7 and config.batch_size == 5
    assert config.class_weights == [0.1, 0.9] and config.max_seconds is None
    assert config.resume is False and config.separator_options == {"n_src": 2}
    assert TrainerConfig.from_dict(config.to_dict()) == config


def test_cli_help_documents_every_option():
    import dataclasses

    from amongus.training import TrainerConfig

    result = subprocess.run(
        [sys.executable, "-m", "amongus.train", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    help_text = "".join(result.stdout.split())  # argparse wraps lines (and hyphenated words)
    for item in dataclasses.fields(TrainerConfig):
        flag = "--" + item.name.replace("_", "-")
        assert flag in help_text, flag
        assert "".join(item.metadata["help"].split())[:40] in help_text, item.name


def test_cli_reports_a_missing_manifest_clearly(tmp_path):
    missing = tmp_path / "nothing" / "mixtures.jsonl"
    result = subprocess.run(
        [
            sys.executable, "-m", "amongus.train", "--train-mixtures", str(missing),
            "--classifier", str(tmp_path), "--output-dir", str(tmp_path / "run"),
            "--log-with", "none",
        ],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{missing}: mixture manifest not found" in result.stderr
    assert "Traceback" not in result.stderr
