"""Separator training on real speech: speaker split, study test mixtures, resumable runs.

Runs without ../shared and without the apt recordings: the "shared" folder here is synthetic
audio laid out like ../shared/data/real, and the apt finders are switched off.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus.manifest import Utterance  # noqa: E402
from amongus.recipes import separation_data as sd  # noqa: E402
from amongus.recipes import separator_eval as se  # noqa: E402
from amongus.recipes import separator_state as ss  # noqa: E402
from amongus.recipes import train_separator as ts  # noqa: E402
from amongus.recipes.training_data import LoadedUtterance  # noqa: E402

RATE = 16000
# LibriSpeech test-other speakers of ../shared/data/real: the corpus recipe puts 3331, 367 and
# 533 in eval, 3005 and 3080 in dev, the others in train.
LIBRI = ("1688", "1998", "2033", "2414", "2609", "3005", "3080", "3331", "367", "533")
CORPUS_EVAL = {"libri_3331", "libri_367", "libri_533"}
CORPUS_DEV = {"libri_3005", "libri_3080"}


def _voice(rng: np.random.Generator, f0: float, seconds: float) -> np.ndarray:
    """A harmonic, amplitude-modulated tone: speech-like enough for a few training steps."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 5))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 4) * t) ** 2
    return (0.2 * tone * envelope).astype(np.float32)


@pytest.fixture(scope="module")
def shared_real(tmp_path_factory):
    """A folder laid out like ../shared/data/real: LibriSpeech and LJ bonafide, plus spoofs of
    a LibriSpeech test speaker and of LJ that must never reach separator training."""
    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    rows = []

    def add(relative: str, label: str, speaker: str, corpus: str, f0: float) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _voice(rng, f0, 1.6), RATE)
        rows.append(
            {"path": relative, "label": label, "system": "-" if label == "bonafide" else "voc",
             "speaker": speaker, "corpus": corpus, "orig_sr": RATE, "duration": 1.6,
             "licence": "CC-BY-4.0", "source_repo": "test"}
        )  # fmt: skip

    for number, speaker in enumerate(LIBRI):
        for index in range(2):
            name = f"bonafide/librispeech/{speaker}-1-{index:04d}.flac"
            add(name, "bonafide", speaker, "LibriSpeech test-other", 90 + 15 * number + index)
    for index in range(3):
        add(f"bonafide/ljspeech/LJ001-{index:04d}.flac", "bonafide", "LJ", "LJSpeech", 210.0)
        add(f"spoof/melgan/LJ001-{index:04d}.flac", "spoof", "LJ", "LJSpeech", 215.0)
    add("spoof/melgan/1688-1-0000.flac", "spoof", "1688", "LibriSpeech test-other", 99.0)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def no_apt(monkeypatch):
    """Switch the apt-recording finders off (they read /usr/share when installed)."""
    from amongus.recipes.minispoof import sources

    def absent(name):
        def finder(failures):
            failures[f"{name} not installed"] += 1
            return []

        return finder

    for name in ("asterisk_clips", "festvox_ru_clips", "tuxpaint_clips"):
        monkeypatch.setattr(sources, name, absent(name))


def _real_config(shared_real, out, **overrides):
    options = dict(
        arch="convtasnet",
        out_dir=str(out),
        real_speech=str(shared_real),
        sample_rate=RATE,
        size="tiny",
        segment_seconds=0.5,
        batch_size=2,
        max_steps=4,
        val_every=2,
        n_val_mixtures=2,
        val_seconds=0.5,
        n_test_mixtures=4,
        balance_speakers=True,
        speed_perturb=0.1,
        threads=1,
    )
    options.update(overrides)
    return ts.SeparatorTrainingConfig(**options)


# ------------------------------------------------------------------------ speaker split
def test_split_holds_out_corpus_eval_speakers_and_fills_the_librispeech_test_set():
    speakers = [f"libri_{s}" for s in LIBRI] + ["lj", "allison", "menardi", "carlo"]
    split = sd.choose_speaker_split(speakers, n_test=5, n_val=2, seed=0)
    assert len(split.test) == 5 and all(s.startswith("libri_") for s in split.test)
    assert CORPUS_EVAL <= set(split.test)  # the study's eval speakers are never trained on
    assert CORPUS_DEV <= set(split.val)
    assert "menardi" in split.held_out  # a corpus-recipe eval speaker outside LibriSpeech
    train = set(split.train)
    assert not train & (set(split.test) | set(split.val) | set(split.held_out))
    assert {"lj", "allison"} <= train
    assert sorted(train | set(split.test) | set(split.val) | set(split.held_out)) == sorted(
        speakers
    )
    # seeded: the same speakers give the same split, another seed may move others
    assert sd.choose_speaker_split(speakers, seed=0) == split


def test_split_takes_explicit_lists_and_refuses_what_cannot_work():
    speakers = [f"libri_{s}" for s in LIBRI] + ["lj"]
    split = sd.choose_speaker_split(
        speakers, test_speakers=["libri_1688", "libri_1998"], val_speakers=["lj", "libri_2033"]
    )
    assert split.test == ["libri_1688", "libri_1998"] and split.val == ["libri_2033", "lj"]
    assert not set(split.train) & {"libri_1688", "libri_1998", "lj", "libri_2033"}
    with pytest.raises(ValueError, match="not among the available speakers"):
        sd.choose_speaker_split(speakers, test_speakers=["nobody", "libri_1688"])
    with pytest.raises(ValueError, match="test speaker"):
        sd.choose_speaker_split(["a", "b", "c"], n_test=5)  # no LibriSpeech, no eval speaker


def test_real_speech_pools_hold_no_spoof_and_no_test_speaker(shared_real, no_apt, tmp_path):
    config = _real_config(shared_real, tmp_path)
    data = ts.prepare_data(config, need_test=True)
    split = json.loads((tmp_path / sd.SPLIT_FILE).read_text())
    assert split["test_corpus"] == "LibriSpeech test-other"
    train_speakers = {item.utterance.speaker for item in data.train}
    test_speakers = {item.utterance.speaker for item in data.test}
    val_speakers = {item.utterance.speaker for item in data.val}
    assert len(test_speakers) == 5 and not train_speakers & test_speakers
    assert not train_speakers & val_speakers and not val_speakers & test_speakers
    everything = data.train + data.val + data.test
    assert all(item.utterance.label == "bonafide" for item in everything)
    assert not any("/spoof/" in item.utterance.path for item in everything)
    # a --train source holding a test speaker cannot bring it into training
    extra = tmp_path / "extra" / "libri_3331"
    extra.mkdir(parents=True)
    sf.write(extra / "x.flac", _voice(np.random.default_rng(1), 120, 1.5), RATE)
    config = _real_config(shared_real, tmp_path, train_sources=[f"audio:{extra.parent}"])
    data = ts.prepare_data(config)
    assert "libri_3331" not in {item.utterance.speaker for item in data.train}


def test_without_anything_installed_the_error_says_what_was_looked_for(no_apt):
    with pytest.raises(ValueError, match="no real speech found.*asterisk"):
        sd.discover_speech("none")


def test_without_shared_folder_it_says_so_and_trains_on_what_exists(
    monkeypatch, no_apt, caplog, tmp_path
):
    """Only apt recordings: a log line says LibriSpeech is missing; the corpus recipe's eval
    speakers form the test set, and a run trains."""
    from amongus.recipes.minispoof import sources

    rng = np.random.default_rng(2)
    clips = []
    # allison, june, nsh: corpus train; carlo, ivrvoice_ru: dev; menardi, tux_fr: eval
    for number, speaker in enumerate(
        ("allison", "june", "nsh", "carlo", "ivrvoice_ru", "menardi", "tux_fr")
    ):
        for index in range(2):
            path = tmp_path / "apt" / speaker / f"{index}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _voice(rng, 100 + 20 * number, 1.4), 8000)
            clips.append(
                sources.SourceClip(
                    clip_id=f"{speaker}_{index}", path=str(path), speaker=speaker,
                    language="en", text="x", source=f"apt {speaker}", licence="CC-BY-3.0",
                    native_rate=8000, duration=1.4,
                )
            )  # fmt: skip
    monkeypatch.setattr(sources, "asterisk_clips", lambda failures: list(clips))
    caplog.set_level("INFO")
    inventory = sd.discover_speech("none")
    assert "no shared real-audio folder" in caplog.text
    assert inventory.shared_root is None and len(inventory.utterances) == 14
    split = sd.choose_speaker_split([u.speaker for u in inventory.utterances])
    assert split.test == ["menardi", "tux_fr"] and split.test_corpus == "other"
    assert set(split.val) == {"carlo", "ivrvoice_ru"}
    log = ts.train_separator(_real_config("none", tmp_path / "run", max_steps=2), progress=False)
    assert log["steps"] == 2 and log["split"]["inventory"]["shared_real"] == "absent"


# ------------------------------------------------------------------------ test mixtures
def _pool(n_speakers: int = 3) -> list[LoadedUtterance]:
    rng = np.random.default_rng(0)
    return [
        LoadedUtterance(
            Utterance(utt_id=f"s{s}-{u}", path="-", label="bonafide", speaker=f"s{s}"),
            _voice(rng, 100 + 40 * s + 5 * u, 1.0 + 0.5 * u) * (1 + s),
        )
        for s in range(n_speakers)
        for u in range(2)
    ]


def test_study_test_mixtures_follow_the_study_recipe_and_are_seeded():
    pool = _pool()
    mixtures = sd.study_test_mixtures(pool, n_mixtures=12, seed=3, sample_rate=RATE)
    again = sd.study_test_mixtures(pool, n_mixtures=12, seed=3, sample_rate=RATE)
    other = sd.study_test_mixtures(pool, n_mixtures=12, seed=4, sample_rate=RATE)
    assert [m.record for m in mixtures] == [m.record for m in again]
    assert [m.record for m in mixtures] != [m.record for m in other]
    for item in mixtures:
        record = item.record
        assert len(set(record["speakers"])) == 2  # two different speakers
        assert all(0.7 <= gain <= 1.3 for gain in record["gains"])
        assert 0 <= record["delay_s"] <= 1.0
        assert item.sources.shape == (2, item.mixture.shape[0])
        np.testing.assert_allclose(item.sources.sum(0), item.mixture, atol=1e-5)
        assert abs(np.abs(item.mixture).max() - 1.0) < 1e-5  # peak-normalised to 1
        # cut to the shorter source after the delay: every source is present somewhere
        assert all(np.count_nonzero(source) > 0 for source in item.sources)


def test_draw_mixture_balances_speakers_and_perturbs_speed():
    """Speaker s0 has 40 utterances, s1 and s2 one each: drawn by speaker, all three appear
    about equally often (drawn by utterance, s0 would be in nearly every mixture)."""
    signs = {"s0": 1.0, "s1": -1.0}

    def utterance(speaker, index):
        audio = np.full(RATE, signs.get(speaker, 0.0), dtype=np.float32)
        if speaker == "s2":  # zero mean: neither of the others
            audio[::2], audio[1::2] = 1.0, -1.0
        item = Utterance(utt_id=f"{speaker}-{index}", path="-", label="bonafide", speaker=speaker)
        return LoadedUtterance(item, audio)

    pool = [utterance("s0", i) for i in range(40)] + [utterance("s1", 0), utterance("s2", 0)]

    def who(source):
        active = source[source != 0]
        mean = active.mean() / np.abs(active).max()
        return "s0" if mean > 0.5 else "s1" if mean < -0.5 else "s2"

    def counts(speakers):
        rng = np.random.default_rng(0)
        found = {"s0": 0, "s1": 0, "s2": 0}
        for _ in range(90):
            mixture, sources = sd.draw_mixture(
                pool, rng, n_src=2, n_samples=8000, partial_overlap_probability=0.5,
                gain_range_db=5.0, speakers=speakers,
            )  # fmt: skip
            np.testing.assert_allclose(sources.sum(0), mixture, atol=1e-6)
            drawn = {who(source) for source in sources}
            if speakers is not None:
                assert len(drawn) == 2  # two different speakers, always
            for name in drawn:
                found[name] += 1
        return found

    balanced = counts(sd.speaker_index(pool))
    assert min(balanced.values()) > 0.6 * max(balanced.values())
    by_utterance = counts(None)
    assert by_utterance["s0"] == 90  # in every mixture: the imbalance that balancing removes

    rng = np.random.default_rng(1)
    for _ in range(20):
        mixture, sources = sd.draw_mixture(
            _pool(), rng, n_src=2, n_samples=8000, partial_overlap_probability=0.5,
            gain_range_db=5.0, speed_factors=(0.9, 1.1),
        )  # fmt: skip
        np.testing.assert_allclose(sources.sum(0), mixture, atol=1e-6)
        assert all(np.count_nonzero(source) >= 4000 for source in sources)
    slow = sd.change_speed(np.ones(1000, dtype=np.float32), 0.9)
    assert slow.shape[0] == int(np.ceil(1000 / 0.9))


# ------------------------------------------------------------------------ resumable runs
def _audio_config(folder, out, **overrides):
    options = dict(
        arch="convtasnet",
        out_dir=str(out),
        train_sources=[f"audio:{folder}"],
        sample_rate=RATE,
        size="tiny",
        segment_seconds=0.5,
        batch_size=2,
        max_steps=6,
        val_every=3,
        n_val_mixtures=2,
        val_seconds=0.5,
        balance_speakers=True,
        speed_perturb=0.1,
        threads=1,
    )
    options.update(overrides)
    return ts.SeparatorTrainingConfig(**options)


@pytest.fixture(scope="module")
def speech_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    for number, speaker in enumerate(("spk_a", "spk_b", "spk_c", "spk_d")):
        (root / speaker).mkdir()
        for index in range(2):
            audio = _voice(rng, 110 + 50 * number + 5 * index, 1.5)
            sf.write(root / speaker / f"utt{index}.flac", audio, RATE)
    return root


def _weights(folder):
    saved = ss.load_checkpoint(folder / ss.CHECKPOINT_FILE)
    return saved


def _periodic(history, every):
    return [
        {k: v for k, v in record.items() if k not in ("elapsed_s", "time")}
        for record in history
        if record["step"] % every == 0
    ]


def _assert_same_run(first, second, every=3):
    import torch

    a, b = _weights(first), _weights(second)
    assert a["state"].step == b["state"].step
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(state_a[key]["exp_avg"], state_b[key]["exp_avg"]) for key in state_a)
    assert a["scheduler"] == b["scheduler"]
    assert _periodic(a["state"].history, every) == _periodic(b["state"].history, every)
    assert a["rng"]["mixtures"] == b["rng"]["mixtures"]


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(speech_folder, tmp_path):
    whole = ts.train_separator(_audio_config(speech_folder, tmp_path / "whole"), progress=False)
    assert whole["steps"] == 6 and whole["invocations"] == 1
    # stopped between validations (step 4), then the same command with a larger budget
    first = ts.train_separator(
        _audio_config(speech_folder, tmp_path / "parts", max_steps=4), progress=False
    )
    assert first["steps"] == 4
    second = ts.train_separator(_audio_config(speech_folder, tmp_path / "parts"), progress=False)
    assert second["steps"] == 6 and second["invocations"] == 2
    _assert_same_run(tmp_path / "whole", tmp_path / "parts")
    curve = ss.read_curve(tmp_path / "parts" / ss.CURVE_FILE)
    assert [r["step"] for r in curve] == [0, 3, 4, 6]  # the stop at 4 is on the curve once
    assert [r["step"] for r in ss.read_curve(tmp_path / "whole" / ss.CURVE_FILE)] == [0, 3, 6]


def test_killed_run_resumes_from_its_last_checkpoint(speech_folder, tmp_path):
    """A kill -9 after step 3's checkpoint: later curve lines are dropped, the run is replayed."""
    import shutil

    run = tmp_path / "run"
    ts.train_separator(_audio_config(speech_folder, run, max_steps=3), progress=False)
    kept = tmp_path / "checkpoint-at-3.pt"
    shutil.copy(run / ss.CHECKPOINT_FILE, kept)
    ts.train_separator(_audio_config(speech_folder, run), progress=False)
    # the state a kill -9 between the step-3 checkpoint and the end would leave
    shutil.copy(kept, run / ss.CHECKPOINT_FILE)
    assert [r["step"] for r in ss.read_curve(run / ss.CURVE_FILE)] == [0, 3, 6]
    ts.train_separator(_audio_config(speech_folder, run), progress=False)
    assert [r["step"] for r in ss.read_curve(run / ss.CURVE_FILE)] == [0, 3, 6]
    ts.train_separator(_audio_config(speech_folder, tmp_path / "whole"), progress=False)
    _assert_same_run(tmp_path / "whole", run)


def test_resume_refuses_other_settings_and_restart_starts_over(speech_folder, tmp_path):
    ts.train_separator(_audio_config(speech_folder, tmp_path, max_steps=3), progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        ts.train_separator(
            _audio_config(speech_folder, tmp_path, learning_rate=5e-4), progress=False
        )
    log = ts.train_separator(
        _audio_config(speech_folder, tmp_path, learning_rate=5e-4, max_steps=3),
        progress=False,
        restart=True,
    )
    assert log["invocations"] == 1 and log["steps"] == 3


def test_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / ss.CHECKPOINT_FILE
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(path)):
        ss.load_checkpoint(path)


def test_time_budget_stops_and_the_same_command_resumes(speech_folder, tmp_path):
    log = ts.train_separator(
        _audio_config(speech_folder, tmp_path, max_minutes=1e-7), progress=False
    )
    assert log["stop_reason"] == "max_minutes" and log["steps"] == 0
    assert (tmp_path / "pytorch_model.bin").is_file()
    log = ts.train_separator(_audio_config(speech_folder, tmp_path), progress=False)
    assert log["stop_reason"] == "max_steps" and log["steps"] == 6 and log["invocations"] == 2


# ------------------------------------------------------------------------ test set and export
def test_real_speech_run_evaluates_on_test_mixtures_and_exports(shared_real, no_apt, tmp_path):
    from amongus import load_separator

    run = tmp_path / "run"
    config = _real_config(shared_real, run)
    log = ts.train_separator(config, progress=False, command="python -m x")
    assert log["split"]["test_corpus"] == "LibriSpeech test-other"
    results = se.evaluate_on_test(config)
    run_result = results[se.RUN_MODEL]
    assert run_result["n_mixtures"] == 4 and np.isfinite(run_result["si_sdri_mean"])
    speakers = {s for row in run_result["mixtures"] for s in row["speakers"]}
    assert speakers <= set(run_result["test_speakers"])
    assert not speakers & set(log["split"]["train"])
    # the same mixtures at every evaluation (fixed seed)
    again = se.evaluate_on_test(config)[se.RUN_MODEL]
    assert again["mixtures"] == run_result["mixtures"]
    assert json.loads((run / se.TEST_RESULTS_FILE).read_text())[se.RUN_MODEL]["n_mixtures"] == 4

    target = tmp_path / "exported" / "convtasnet-16k"
    se.export_best(run, target, "python -m export")
    assert load_separator(str(target)).sample_rate == RATE
    assert not (target / ss.CHECKPOINT_FILE).exists()
    card = (target / "MODEL_CARD.md").read_text()
    assert "Speaker split and test set" in card and "SI-SDR" in card
    best_step = log["best"]["step"]
    assert f"best checkpoint (step {best_step}) | {run_result['si_sdri_mean']:.2f}" in card
    with pytest.raises(ValueError, match="run folder itself"):
        se.export_best(run, run, "python -m export")


def test_fit_gap_compares_training_and_validation_speakers(shared_real, no_apt, tmp_path):
    """``--fit-gap``: the same fixed mixtures for every model; a rate-free separator
    (passthrough, which made ``--evaluate passthrough`` fail on ``int(None)``) hears the run's
    rate and improves nothing."""
    run = tmp_path / "run"
    config = _real_config(shared_real, run, val_seconds=1.0)
    ts.train_separator(config, progress=False, command="python -m x")
    first = se.fit_gap(config, n_mixtures=8)
    again = se.fit_gap(config, n_mixtures=8)
    assert first == again
    row = first[se.RUN_MODEL]
    assert np.isfinite([row["train_si_sdri"], row["val_si_sdri"]]).all()
    assert row["gap"] == pytest.approx(row["train_si_sdri"] - row["val_si_sdri"], abs=1e-3)
    passthrough = se.fit_gap(config, ["passthrough"], n_mixtures=8)["passthrough"]
    assert passthrough["train_si_sdri"] == pytest.approx(0.0, abs=1e-3)
    assert passthrough["val_si_sdri"] == pytest.approx(0.0, abs=1e-3)
    tested = se.evaluate_on_test(config, ["passthrough"])["passthrough"]
    assert tested["sample_rate"] == RATE and tested["si_sdri_mean"] == pytest.approx(0, abs=1e-3)
    code = ts.main(
        ["--arch", "convtasnet", "--size", "tiny", "--sample-rate", str(RATE),
         "--real-speech", str(shared_real), "--out", str(run), "--fit-gap", "passthrough"]
    )  # fmt: skip
    assert code == 0
