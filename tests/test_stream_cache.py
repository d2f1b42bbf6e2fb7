"""The stream cache is keyed by what is in the mixture file, not only by its id (issue 12, case 1).

The small input of the issue: train and validation manifests holding the same eight mixture
ids with different audio. The validation mixtures' separated streams used to replace the
training ones in the cache, so training ran on the validation data without a message.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus.training.stream_cache import StreamCache  # noqa: E402

N_MIXTURES = 8


@pytest.fixture(scope="module")
def same_ids(tmp_path_factory):
    """Two Mixer runs (seeds 0 and 1) whose eight mixtures have the same ids, other audio."""
    from amongus.training.toy import make_toy_mixtures
    from amongus.training.trainer import read_mixture_manifest

    root = tmp_path_factory.mktemp("same_ids")
    train = make_toy_mixtures(root / "a", n_mixtures=N_MIXTURES, max_source_seconds=1.0, seed=0)
    val = make_toy_mixtures(root / "b", n_mixtures=N_MIXTURES, max_source_seconds=1.0, seed=1)
    train_ids = [m.mixture_id for m in read_mixture_manifest(train)]
    assert train_ids == [m.mixture_id for m in read_mixture_manifest(val)]
    return root, train, val


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    from amongus.testing.classifiers import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("clf"), hidden_size=16)


def _cache(root, **options) -> StreamCache:
    defaults = {"separator_identity": "sep:a", "separator_rate": 16000, "stream_rate": 16000}
    return StreamCache(root, **{**defaults, **options}, dtype="float32")


def test_same_id_with_other_audio_gets_its_own_entry(tmp_path, same_ids):
    from amongus.training.trainer import read_mixture_manifest

    _, train, val = same_ids
    first = read_mixture_manifest(train)[0]
    second = read_mixture_manifest(val)[0]
    assert first.mixture_id == second.mixture_id
    cache = _cache(tmp_path)
    streams_a = np.full((2, 100), 0.25, np.float32)
    streams_b = np.full((2, 100), -0.5, np.float32)
    entry_a = cache.put(first, streams_a)
    entry_b = cache.put(second, streams_b)
    assert entry_a.file != entry_b.file
    # a new process sees both, each under its own content
    again = _cache(tmp_path)
    np.testing.assert_array_equal(again.load(again.lookup(first)), streams_a)
    np.testing.assert_array_equal(again.load(again.lookup(second)), streams_b)
    np.testing.assert_array_equal(again.load(again.get(first)), streams_a)
    with pytest.raises(ValueError, match="2 entries with this id"):
        again.get(first.mixture_id)  # a bare id is ambiguous now: refused, not guessed


def test_same_audio_at_another_path_is_a_hit_and_a_changed_record_a_miss(tmp_path, same_ids):
    from amongus.training.trainer import read_mixture_manifest

    _, train, _ = same_ids
    mixture = read_mixture_manifest(train)[1]
    cache = _cache(tmp_path / "cache")
    cache.put(mixture, np.ones((2, 10), np.float32))
    moved = tmp_path / "moved.flac"
    shutil.copy(mixture.path, moved)
    copy = type(mixture).from_dict({**mixture.to_dict(), "path": str(moved)})
    assert cache.lookup(copy) is not None  # where the file lives is not what is in it
    relabelled = type(mixture).from_dict(mixture.to_dict())
    relabelled.sources[0].gain *= 2  # another record for the same audio: its own entry
    assert cache.lookup(relabelled) is None
    # the chunking and the validation policy are part of the key
    assert _cache(tmp_path / "cache", chunk_seconds=2.0).lookup(mixture) is None


def test_training_uses_the_training_files_when_val_reuses_their_ids(
    same_ids, tiny_classifier, tmp_path
):
    """End to end: the streams the Trainer trains on are separated from the training files."""
    from amongus.mix.render import render_sources
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.prepare import cached_entries
    from amongus.training.trainer import read_mixture_manifest

    _, train, val = same_ids
    config = TrainerConfig(
        train_mixtures=str(train),
        val_mixtures=str(val),
        classifier=str(tiny_classifier),
        separator="oracle",
        cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "run"),
        cache_dtype="float32",
    )
    trainer = Trainer(config)
    train_mixtures = read_mixture_manifest(train)
    val_mixtures = read_mixture_manifest(val)
    train_entries, val_entries = trainer._prepare_data(train_mixtures, val_mixtures)
    assert len(train_entries) == len(val_entries) == N_MIXTURES
    assert trainer.fill_report.separated == 2 * N_MIXTURES  # both sets, nothing overwritten
    for mixture, entry in zip(train_mixtures, train_entries, strict=True):
        streams = trainer.cache.load(entry)
        # the oracle's streams are the record's sources: the training file's, not validation's
        expected = render_sources(mixture)[:, : streams.shape[1]]
        np.testing.assert_allclose(streams, expected, atol=1e-5)
    for mixture, entry in zip(val_mixtures, val_entries, strict=True):
        expected = render_sources(mixture)
        np.testing.assert_allclose(
            trainer.cache.load(entry), expected[:, : entry.num_samples], atol=1e-5
        )
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert len(report["ids_in_train_and_val"]) == N_MIXTURES
    assert report["same_audio_in_train_and_val"] == []
    # a second run finds every entry: the two sets no longer evict each other
    again = Trainer(config)
    train_again, _ = again._prepare_data(train_mixtures, val_mixtures)
    assert again.fill_report.hits == 2 * N_MIXTURES and again.fill_report.separated == 0
    assert [e.file for e in train_again] == [e.file for e in train_entries]
    assert [e.file for e in cached_entries(again.cache, train_mixtures)[0]] == [
        e.file for e in train_entries
    ]


def test_training_losses_do_not_depend_on_the_val_ids(same_ids, tiny_classifier, tmp_path):
    """The issue's observation, reversed: with validation ids renamed (same audio), the
    history must be identical; when the cache mixed the sets up, it was not."""
    from amongus.manifest import write_jsonl
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.history import read_history_csv
    from amongus.training.trainer import read_mixture_manifest

    _, train, val = same_ids
    renamed = read_mixture_manifest(val)
    for mixture in renamed:
        mixture.mixture_id = f"val-{mixture.mixture_id}"
    renamed_manifest = write_jsonl(tmp_path / "renamed" / "mixtures.jsonl", renamed)

    def run(val_manifest, name):
        config = TrainerConfig(
            train_mixtures=str(train),
            val_mixtures=str(val_manifest),
            classifier=str(tiny_classifier),
            separator="oracle",
            cache_dir=str(tmp_path / "cache"),
            output_dir=str(tmp_path / name),
            epochs=1,
            batch_size=4,
            max_seconds=0.5,
            learning_rate=1e-3,
            freeze="none",
        )
        result = Trainer(config).train()
        return read_history_csv(result.output_dir / "history.csv")

    shared_ids = run(val, "shared")
    renamed_ids = run(renamed_manifest, "renamed")
    assert shared_ids[0]["train_loss"] == pytest.approx(renamed_ids[0]["train_loss"], abs=1e-7)
    assert shared_ids[0]["val_loss"] == pytest.approx(renamed_ids[0]["val_loss"], abs=1e-7)


def test_a_silent_training_mixture_is_skipped_counted_and_remembered(
    same_ids, tiny_classifier, tmp_path
):
    """The issue's input: one training mixture made silent. It is refused by the shared
    policy (not trained on), counted with its reason, and the refusal is cached by content."""
    from amongus.audio import audio_info, save_audio
    from amongus.manifest import write_jsonl
    from amongus.training import Trainer, TrainerConfig
    from amongus.training.trainer import read_mixture_manifest

    _, train, val = same_ids
    folder = tmp_path / "train"
    shutil.copytree(Path(train).parent, folder)
    mixtures = read_mixture_manifest(folder / "mixtures.jsonl")
    silent = mixtures[3]
    save_audio(silent.path, np.zeros(audio_info(silent.path).frames, np.float32), 16000)
    config = TrainerConfig(
        train_mixtures=str(folder / "mixtures.jsonl"),
        val_mixtures=str(val),
        classifier=str(tiny_classifier),
        separator="oracle",
        cache_dir=str(tmp_path / "cache"),
        output_dir=str(tmp_path / "run"),
        epochs=1,
        batch_size=4,
        max_seconds=0.5,
    )
    result = Trainer(config).train()
    report = result.data_report
    assert report["counts"]["train"] == {"mixtures": N_MIXTURES, "used": N_MIXTURES - 1}
    assert report["skipped_reasons"] == {"train": {"silent": 1}, "val": {}}
    assert report["skipped"][0]["id"] == silent.mixture_id
    assert report["skipped"][0]["reason"].startswith("silent: ")
    written = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert written["skipped_reasons"] == report["skipped_reasons"]
    # a rerun does not decode the refused file again: its refusal is cached by content
    again = Trainer(config)
    again._prepare_data(mixtures, [])
    assert again.fill_report.separated == 0
    assert [item[0] for item in again.fill_report.skipped] == [silent.mixture_id]
    # all training mixtures refused: a clear error, not a run on nothing
    for mixture in mixtures:
        save_audio(mixture.path, np.zeros(audio_info(mixture.path).frames, np.float32), 16000)
    write_jsonl(folder / "mixtures.jsonl", mixtures)
    with pytest.raises(ValueError, match="no usable training mixture.*'silent': 8"):
        Trainer(config).train()
