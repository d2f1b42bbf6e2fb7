"""``--extra-speech``: the finders of the extra packages on fake layouts, packing short clips of
one speaker, the option's wiring, and validation/test speakers that do not move.

Runs without the apt packages: every layout here is written under ``tmp_path``.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus.manifest import Utterance  # noqa: E402
from amongus.recipes import separation_data as sd  # noqa: E402
from amongus.recipes import separation_sources as xs  # noqa: E402
from amongus.recipes import separator_state as ss  # noqa: E402
from amongus.recipes import speech_packing as sp  # noqa: E402
from amongus.recipes import train_separator as ts  # noqa: E402
from amongus.recipes.training_data import LoadedUtterance  # noqa: E402

RATE = 8000


def _word(rng: np.random.Generator, seconds: float, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.sin(2 * np.pi * rng.uniform(100, 250) * t) + 0.3 * np.sin(2 * np.pi * 700 * t)
    return (level * tone * np.hanning(t.size)).astype(np.float32)


def _write(path, audio, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, RATE, **options)
    return path


def _fake_packages(root, rng, *, words: int = 3, seconds: float = 0.5, with_fr: bool = False):
    """klettres (en, en_GB; letters and syllables), ktuberling (sr and its variant, fr as .wav
    with a theme), es-co as GSM."""
    for language in ("en", "en_GB"):
        for kind in ("alpha", "syllab"):
            for index in range(words):
                _write(root / xs.KLETTRES / language / kind / f"l{index}.ogg", _word(rng, seconds))
    (root / xs.KLETTRES / "icons" / "hicolor").mkdir(parents=True)  # no alpha/syllab: no voice
    sr = root / xs.KTUBERLING
    for index in range(words):
        _write(sr / "sr" / f"w{index}.ogg", _word(rng, seconds))
    _write(sr / "sr" / "nao_care.ogg", _word(rng, seconds))  # a prefix of one file: no theme
    # a script variant: one identical copy (left out) and one recording of its own
    (sr / "sr@latin").mkdir(parents=True)
    (sr / "sr@latin" / "w0.ogg").write_bytes((sr / "sr" / "w0.ogg").read_bytes())
    _write(sr / "sr@latin" / "own.ogg", _word(rng, seconds))
    for index in range(words):
        _write(sr / "fr" / f"mot{index}.wav", _word(rng, seconds))
    for index in range(xs.MIN_THEME_FILES):  # a theme: its own speaker
        _write(sr / "fr" / f"egypte_{index}.ogg", _word(rng, seconds))
    (sr / "fr.soundtheme").write_text("<language/>")
    gsm = dict(format="RAW", subtype="GSM610")
    prompts = root / xs.ASTERISK_SOUNDS / "es"
    for index in range(words):
        _write(prompts / f"vm-{index}.gsm", _word(rng, seconds + 1.0), **gsm)
    _write(prompts / "digits" / "1.gsm", _word(rng, seconds), **gsm)
    _write(prompts / "beep.gsm", _word(rng, 0.3), **gsm)  # a tone, never speech
    if with_fr:
        _write(root / xs.ASTERISK_SOUNDS / "fr" / "vm-0.gsm", _word(rng, 1.2), **gsm)
    else:  # Debian's alternatives link to another voice: not asterisk-prompt-fr-armelle
        (root / xs.ASTERISK_SOUNDS / "fr_CA_f_June").mkdir()
        _write(root / xs.ASTERISK_SOUNDS / "fr_CA_f_June" / "x.gsm", _word(rng, 1.0), **gsm)
        (root / xs.ASTERISK_SOUNDS / "fr").symlink_to("fr_CA_f_June")
    return root


# ------------------------------------------------------------------------ finders
NEW_SPEAKERS = {
    "es_co", "klettres_en_alpha", "klettres_en_syllab", "klettres_en_GB_alpha",
    "klettres_en_GB_syllab", "ktuberling_fr", "ktuberling_fr_egypte", "ktuberling_sr",
}  # fmt: skip


def test_finders_give_one_speaker_per_recording_set(tmp_path):
    root = _fake_packages(tmp_path, np.random.default_rng(0))
    extra = xs.find_extra_speech(root)
    assert extra.speakers == sorted(NEW_SPEAKERS)
    by_speaker = Counter(u.speaker for u in extra.utterances)
    assert by_speaker["klettres_en_alpha"] == 3 and by_speaker["klettres_en_GB_syllab"] == 3
    # sr@latin folds into sr; its byte-identical copy is left out, its own recording kept
    assert by_speaker["ktuberling_sr"] == 5
    assert extra.left_out == {"same bytes as another file": 1}
    assert by_speaker["ktuberling_fr"] == 3  # .wav files too
    assert by_speaker["ktuberling_fr_egypte"] == xs.MIN_THEME_FILES
    assert by_speaker["es_co"] == 4  # 3 prompts and a digit, not the beep
    assert not any("beep" in u.path for u in extra.utterances)
    ids = [u.utt_id for u in extra.utterances]
    assert len(set(ids)) == len(ids) and "klettres_en_GB_syllab_l0" in ids
    assert all(u.label == "bonafide" and os.path.isfile(u.path) for u in extra.utterances)
    # the symlinked fr folder is another voice: armelle counts as not installed
    assert extra.missing_packages == ["asterisk-prompt-fr-armelle"]
    assert extra.describe()["missing_packages"] == ["asterisk-prompt-fr-armelle"]
    with_fr = xs.find_extra_speech(_fake_packages(tmp_path / "b", np.random.default_rng(0),
                                                  with_fr=True))  # fmt: skip
    assert "armelle" in with_fr.speakers and with_fr.missing_packages == []
    capped = xs.find_extra_speech(root, max_per_speaker=2, seed=1)
    assert max(Counter(u.speaker for u in capped.utterances).values()) == 2
    over = len(extra.utterances) - 2 * len(extra.speakers)
    assert capped.left_out["over --max-per-speaker 2"] == over > 0


def test_missing_packages_are_counted_not_fatal(tmp_path, caplog, monkeypatch):
    caplog.set_level("WARNING")
    extra = xs.find_extra_speech(tmp_path)
    assert extra.utterances == [] and extra.speakers == []
    assert extra.missing_packages == sorted(xs.EXTRA_PACKAGES)
    assert "not installed" in caplog.text and "AMONGUS_SEPARATOR_DATA=1" in caplog.text
    # by default: the system root and the unpacked root, a package found in either counts
    system, unpacked = tmp_path / "system", tmp_path / "unpacked"
    _fake_packages(system, np.random.default_rng(0))
    _write(unpacked / xs.ASTERISK_SOUNDS / "fr" / "vm-0.gsm", _word(np.random.default_rng(1), 1.2),
           format="RAW", subtype="GSM610")  # fmt: skip
    monkeypatch.setattr(xs, "DEFAULT_ROOT", system)
    monkeypatch.setenv(xs.UNPACKED_ROOT_VARIABLE, str(unpacked))
    both = xs.find_extra_speech()
    assert both.missing_packages == [] and "armelle" in both.speakers
    assert len(both.utterances) == len(xs.find_extra_speech(system).utterances) + 1
    # the same files under both roots count once
    assert len(xs.find_extra_speech([system, system]).utterances) == len(
        xs.find_extra_speech(system).utterances
    )


# ------------------------------------------------------------------------ packing
def _clips(speaker: str, n: int, sign: float, seed: int) -> list[LoadedUtterance]:
    """Clips of 0.3-0.9 s at levels 100x apart; one sign per speaker, no zero sample."""
    rng = np.random.default_rng(seed)
    clips = []
    for index in range(n):
        level = 0.005 if index % 2 else 0.5
        audio = sign * level * (0.5 + rng.random(int(rng.uniform(0.3, 0.9) * RATE)))
        utterance = Utterance(f"{speaker}-{index:03d}", f"/x/{speaker}/{index}.ogg",
                              "bonafide", speaker=speaker, source=f"src {speaker}")  # fmt: skip
        clips.append(LoadedUtterance(utterance, audio.astype(np.float32)))
    return clips


def _runs(audio: np.ndarray) -> list[np.ndarray]:
    """The clips of a pack: the stretches between its pauses (exact zeros)."""
    edges = np.flatnonzero(np.diff(np.r_[0, (audio != 0).astype(np.int8), 0]))
    return [audio[start:end] for start, end in zip(edges[::2], edges[1::2], strict=True)]


def test_packing_gives_one_speaker_packs_within_bounds_at_even_levels():
    clips = _clips("a", 40, 1.0, 0) + _clips("b", 23, -1.0, 1) + _clips("c", 2, 1.0, 2)
    report = sp.PackingReport()
    packs = sp.pack_short_clips(clips[::-1], sample_rate=RATE, seed=3, report=report)
    options = sp.PackingOptions()
    assert report.clips == len(clips) and report.packs == len(packs)
    used = 0
    for speaker in ("a", "b", "c"):
        mine = [p for p in packs if p.utterance.speaker == speaker]
        seconds = [p.audio.shape[0] / RATE for p in mine]
        assert all(s <= options.max_seconds for s in seconds)
        # all but the last pack reach the minimum; the last at least the remainder minimum
        assert all(s >= options.min_seconds for s in seconds[:-1])
        assert seconds[-1] >= options.min_remainder_seconds
        for pack in mine:
            assert pack.utterance.utt_id.startswith(f"pack_{speaker}_")
            assert pack.utterance.source == f"src {speaker}"
            assert abs(pack.utterance.duration - pack.audio.shape[0] / RATE) < 1e-3
            # one speaker per pack: every clip of "b" is negative, of "a" and "c" positive
            assert np.all(np.sign(pack.audio[pack.audio != 0]) == (-1 if speaker == "b" else 1))
            runs = _runs(pack.audio)
            used += len(runs)
            levels = [float(np.sqrt(np.mean(r.astype(np.float64) ** 2))) for r in runs]
            assert max(levels) / min(levels) < 1.01  # 100x apart before packing
            assert np.max(np.abs(pack.audio)) == pytest.approx(options.peak, rel=1e-5)
    assert used + sum(report.left_out.values()) == len(clips)
    # deterministic given the seed, whatever the input order; another seed, another order
    again = sp.pack_short_clips(clips, sample_rate=RATE, seed=3)
    assert [p.utterance.utt_id for p in again] == [p.utterance.utt_id for p in packs]
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(again, packs, strict=True))
    other = sp.pack_short_clips(clips, sample_rate=RATE, seed=4)
    assert not all(
        x.audio.shape == y.audio.shape and np.array_equal(x.audio, y.audio)
        for x, y in zip(other, packs, strict=False)
    )


def test_packing_pauses_and_leftovers_are_as_documented():
    clips = _clips("a", 12, 1.0, 5)
    packs = sp.pack_short_clips(clips, sample_rate=RATE, seed=0)
    for pack in packs:
        audio = pack.audio
        inner = audio[np.flatnonzero(audio)[0] : np.flatnonzero(audio)[-1] + 1]
        silent = np.diff(np.r_[0, (inner == 0).astype(np.int8), 0])
        pauses = (np.flatnonzero(silent == -1) - np.flatnonzero(silent == 1)) / RATE
        assert np.all((pauses >= 0.1 - 1e-3) & (pauses <= 0.4 + 1e-3))
    report = sp.PackingReport()
    silent_clip = LoadedUtterance(Utterance("a-z", "/x", "bonafide", speaker="a"),
                                  np.zeros(RATE // 2, np.float32))  # fmt: skip
    tiny = _clips("t", 1, 1.0, 6)  # one clip < 1 s: a remainder too short to train on
    assert sp.pack_short_clips([silent_clip, *tiny], sample_rate=RATE, seed=0,
                               report=report) == []  # fmt: skip
    assert report.left_out == {"silent clip": 1, "speaker's remainder shorter than 1 s": 1}
    with pytest.raises(ValueError, match="max_seconds"):
        sp.pack_short_clips(clips, sample_rate=RATE, seed=0,
                            options=sp.PackingOptions(min_seconds=3, max_seconds=3.2))  # fmt: skip


# ------------------------------------------------------------------------ the recipe's option
LIBRI = ("1688", "1998", "2033", "2414", "2609", "3005", "3080", "3331", "367", "533")


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A shared real-audio folder (LibriSpeech, LJ with short clips) and the extra packages;
    the corpus recipe's apt finders are switched off."""
    from amongus.recipes.minispoof import sources

    for name in ("asterisk_clips", "festvox_ru_clips", "tuxpaint_clips"):
        monkeypatch.setattr(sources, name, lambda failures, n=name: failures.update([n]) or [])
    rng = np.random.default_rng(7)
    real = tmp_path / "real"
    rows = []
    for speaker in LIBRI:
        # a validation (3005) and a test speaker (3331) with clips under 1 s: never packed
        for index in range(6 if speaker in ("3005", "3331") else 2):
            relative = f"bonafide/librispeech/{speaker}-1-{index}.flac"
            _write(real / relative, _word(rng, 1.5 if index < 2 else 0.6))
            rows.append({"path": relative, "label": "bonafide", "speaker": speaker})
    for index in range(8):  # LJ trains; its clips under 1 s are skipped without the option
        relative = f"bonafide/ljspeech/LJ001-{index:04d}.flac"
        _write(real / relative, _word(rng, 1.5 if index < 2 else 0.6))
        rows.append({"path": relative, "label": "bonafide", "speaker": "LJ"})
    with open(real / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    root = _fake_packages(tmp_path / "root", rng, words=5, seconds=0.7)
    monkeypatch.setattr(xs, "DEFAULT_ROOT", root)
    monkeypatch.setenv(xs.UNPACKED_ROOT_VARIABLE, str(tmp_path / "nothing-unpacked"))
    return real


def _config(real, out, **overrides):
    options = dict(
        arch="convtasnet", out_dir=str(out), real_speech=str(real), sample_rate=RATE,
        size="tiny", segment_seconds=0.5, batch_size=2, max_steps=2, val_every=2,
        n_val_mixtures=2, val_seconds=0.5, n_test_mixtures=2, threads=1,
    )  # fmt: skip
    options.update(overrides)
    return ts.SeparatorTrainingConfig(**options)


def _ids(items):
    return [(i.utterance.utt_id, i.audio.shape[0], float(i.audio.sum())) for i in items]


def test_extra_speech_adds_training_speakers_and_leaves_val_and_test_alone(layout, tmp_path):
    plain = ts.prepare_data(_config(layout, tmp_path / "plain"), need_test=True)
    extra = ts.prepare_data(_config(layout, tmp_path / "xs", extra_speech=True), need_test=True)
    # validation and test: the same utterances, the same audio
    assert _ids(extra.val) == _ids(plain.val) and _ids(extra.test) == _ids(plain.test)
    assert extra.split.val == plain.split.val and extra.split.test == plain.split.test
    assert extra.split.held_out == plain.split.held_out
    plain_train = {i.utterance.speaker for i in plain.train}
    extra_train = {i.utterance.speaker for i in extra.train}
    new = NEW_SPEAKERS
    assert extra_train == plain_train | new
    assert set(extra.split.train) == set(plain.split.train) | new
    # what trained before still does, unchanged; LJ's short clips now arrive packed
    assert set(_ids(plain.train)) <= set(_ids(extra.train))
    packs = [i for i in extra.train if i.utterance.utt_id.startswith(sp.PACK_PREFIX)]
    assert {p.utterance.speaker for p in packs} >= {"lj", "klettres_en_alpha", "ktuberling_sr"}
    assert all(1.0 <= p.audio.shape[0] / RATE <= 6.0 for p in packs)
    assert all(i.audio.shape[0] >= RATE for i in extra.train)
    # split.json names the new speakers and what was missing
    written = json.loads((tmp_path / "xs" / sd.SPLIT_FILE).read_text())
    assert new <= set(written["train"])
    assert written["extra_speech"]["packages"]["missing_packages"] == ["asterisk-prompt-fr-armelle"]
    assert written["extra_speech"]["short_clips_of_other_sources"] == 6
    assert "extra_speech" not in json.loads((tmp_path / "plain" / sd.SPLIT_FILE).read_text())
    # the same command again reads the split back and loads the same data
    again = ts.prepare_data(_config(layout, tmp_path / "xs", extra_speech=True))
    assert _ids(again.train) == _ids(extra.train)


def test_option_reaches_the_config_and_a_run_resumes_only_with_it(layout, tmp_path):
    args = ts.build_parser().parse_args(
        ["--arch", "convtasnet", "--out", "x", "--real-speech", "auto", "--extra-speech"]
    )
    assert ts.config_from_args(args).extra_speech is True
    args = ts.build_parser().parse_args(["--arch", "convtasnet", "--out", "x", "--real-speech",
                                         "auto"])  # fmt: skip
    assert ts.config_from_args(args).extra_speech is False
    with pytest.raises(ValueError, match="needs real_speech"):
        _config(None, tmp_path, real_speech=None, train_sources=["x"], extra_speech=True).validate()
    # a run started without the option (even before it existed) refuses to go on with it
    ts.train_separator(_config(layout, tmp_path / "run"), progress=False)
    checkpoint = ss.load_checkpoint(tmp_path / "run" / ss.CHECKPOINT_FILE)
    assert checkpoint["config"]["extra_speech"] is False
    with pytest.raises(ValueError, match="extra_speech"):
        ts.train_separator(_config(layout, tmp_path / "run", max_steps=4, extra_speech=True),
                           progress=False)  # fmt: skip
    assert ss.config_differences({"extra_speech": True}, {"extra_speech": False}) == [
        "extra_speech"
    ]
    # a checkpoint written before the option existed has no such setting: refused too
    import torch

    path = tmp_path / "run" / ss.CHECKPOINT_FILE
    payload = torch.load(path, weights_only=True)
    del payload["config"]["extra_speech"]
    torch.save(payload, path)
    with pytest.raises(ValueError, match="extra_speech"):
        ts.train_separator(_config(layout, tmp_path / "run", max_steps=4, extra_speech=True),
                           progress=False)  # fmt: skip
    log = ts.train_separator(_config(layout, tmp_path / "run", max_steps=3), progress=False)
    assert log["steps"] == 3  # without the option it resumes as before


def test_a_setting_newer_than_the_run_is_compared_with_its_default():
    """The resume check knows settings added after a run started by their defaults: a
    checkpoint without ``extra_speech`` trained as if it were False (its default)."""
    defaults = {"extra_speech": False, "speed_perturb": 0.0}
    saved = {"arch": "convtasnet"}
    current = {"arch": "convtasnet", "extra_speech": True, "speed_perturb": 0.0}
    assert ss.config_differences(saved, current, defaults) == ["extra_speech"]
    assert ss.config_differences(saved, {**current, "extra_speech": False}, defaults) == []
    # without defaults, settings the checkpoint lacks are not compared (as before)
    assert ss.config_differences(saved, current) == []
