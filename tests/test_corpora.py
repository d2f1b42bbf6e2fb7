"""Corpus readers: ASVspoof protocols, folder datasets, manifests, the bundled demo set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amongus.corpora import (
    demo_corpus_root,
    demo_utterances,
    load_utterances,
    read_asvspoof,
    read_folder_dataset,
)
from amongus.corpora.asvspoof import PROTOCOL_DIR, PROTOCOL_FILES, parse_protocol_line
from amongus.corpora.base import has_audio_suffix
from amongus.corpora.folder import folder_label
from amongus.manifest import DuplicateIdError, Utterance, write_jsonl


def _tone(path: Path, seconds: float = 0.2, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), 0.1 * np.sin(2 * np.pi * 220 * t), rate)
    return path


def _asvspoof_tree(root: Path, lines: dict[str, list[str]], *, skip_audio=()) -> Path:
    (root / PROTOCOL_DIR).mkdir(parents=True)
    for split, split_lines in lines.items():
        (root / PROTOCOL_DIR / PROTOCOL_FILES[split]).write_text("\n".join(split_lines) + "\n")
        for line in split_lines:
            utt = line.split()[1]
            if utt not in skip_audio:
                _tone(root / f"ASVspoof2019_LA_{split}" / "flac" / f"{utt}.flac")
    return root


def test_protocol_lines_become_utterances_for_every_split(tmp_path):
    root = _asvspoof_tree(
        tmp_path,
        {
            "train": ["LA_0079 LA_T_1 - - bonafide", "LA_0080 LA_T_2 - A01 spoof"],
            "dev": ["LA_0069 LA_D_1 - A05 spoof"],
            "eval": ["LA_0039 LA_E_1 - A17 spoof", "LA_0040 LA_E_2 - - bonafide"],
        },
    )
    train = read_asvspoof(root, "train")
    assert [(u.utt_id, u.label, u.system, u.speaker) for u in train.utterances] == [
        ("LA_T_1", "bonafide", "-", "LA_0079"),
        ("LA_T_2", "spoof", "A01", "LA_0080"),
    ]
    assert all(u.split == "train" and u.sample_rate == 16000 for u in train.utterances)
    assert train.utterances[0].duration == pytest.approx(0.2)
    assert [u.system for u in read_asvspoof(root, "dev").utterances] == ["A05"]
    everything = read_asvspoof(root, None)
    assert len(everything.utterances) == 5
    assert {u.split for u in everything.utterances} == {"train", "dev", "eval"}
    assert load_utterances(root, "eval").utterances[0].system == "A17"


def test_2021_style_extra_columns_are_accepted():
    entry = parse_protocol_line(
        "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval", path="keys.txt", line_number=3
    )
    assert entry == {
        "speaker": "LA_0009",
        "utt_id": "LA_E_9332881",
        "system": "A07",
        "label": "spoof",
    }
    bonafide = parse_protocol_line(
        "LA_0007 LA_E_5013670 ulaw sky bonafide bonafide notrim eval", path="k", line_number=1
    )
    assert bonafide["label"] == "bonafide"


@pytest.mark.parametrize(
    "line, message",
    [("LA_0079 LA_T_1 - bonafide", "at least 5 columns"), ("A B - C D", "no 'bonafide'")],
)
def test_malformed_protocol_line_names_file_and_line(tmp_path, line, message):
    root = _asvspoof_tree(tmp_path, {"train": ["LA_0079 LA_T_0 - - bonafide"]})
    protocol = root / PROTOCOL_DIR / PROTOCOL_FILES["train"]
    protocol.write_text("LA_0079 LA_T_0 - - bonafide\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"{PROTOCOL_FILES['train']}:2: .*{message}"):
        read_asvspoof(root, "train")


def test_missing_and_unreadable_files_are_counted_not_dropped(tmp_path):
    root = _asvspoof_tree(
        tmp_path,
        {"train": [f"S1 LA_T_{i} - - bonafide" for i in range(4)]},
        skip_audio={"LA_T_1"},
    )
    (root / "ASVspoof2019_LA_train" / "flac" / "LA_T_2.flac").write_bytes(b"not audio at all")
    listing = read_asvspoof(root, "train")
    assert [u.utt_id for u in listing.utterances] == ["LA_T_0", "LA_T_3"]
    reasons = dict(listing.problem_counts())
    assert reasons == {"missing": 1, "unreadable": 1}
    text = listing.summary()
    assert "problems: 2" in text and "1 x missing" in text and "1 x unreadable" in text
    unchecked = read_asvspoof(root, "train", check_files=False)
    assert len(unchecked.utterances) == 4 and not unchecked.problems


def test_missing_protocol_raises(tmp_path):
    _asvspoof_tree(tmp_path, {"train": ["S LA_T_0 - - bonafide"]})
    with pytest.raises(FileNotFoundError, match="eval"):
        read_asvspoof(tmp_path, "eval")


def test_protocol_with_a_byte_order_mark(tmp_path):
    # Repro F5: a protocol saved by a Windows editor starts with a UTF-8 BOM, which became part
    # of the first speaker id ("\ufeffspkA"), so a distinct-speaker mixer paired spkA with
    # himself. The speaker ids must be the same as without the BOM.
    lines = ["spkA LA_E_0 - - bonafide", "spkA LA_E_1 - - bonafide", "spkB LA_E_2 - - bonafide"]
    root = _asvspoof_tree(tmp_path, {"eval": lines})
    protocol = root / PROTOCOL_DIR / PROTOCOL_FILES["eval"]
    protocol.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    assert protocol.read_bytes().startswith(b"\xef\xbb\xbf")
    listing = read_asvspoof(root, "eval")
    assert [u.speaker for u in listing.utterances] == ["spkA", "spkA", "spkB"]
    assert listing.utterances[0].utt_id == "LA_E_0"


def test_distinct_speaker_mixtures_from_a_protocol_with_a_bom(tmp_path):
    # Repro F5 end to end: 0 of the BB mixtures may pair a speaker with himself.
    from amongus.manifest import read_mixtures
    from amongus.mix import Mixer, MixerConfig

    speakers = ["spkA"] * 5 + ["spkB"]
    lines = [f"{speaker} LA_E_{i:07d} - - bonafide" for i, speaker in enumerate(speakers)]
    root = _asvspoof_tree(tmp_path / "corpus", {"eval": lines})
    for index in range(len(speakers)):  # long enough for the mixer
        _tone(root / "ASVspoof2019_LA_eval" / "flac" / f"LA_E_{index:07d}.flac", seconds=2.0)
    protocol = root / PROTOCOL_DIR / PROTOCOL_FILES["eval"]
    protocol.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    listing = read_asvspoof(root, "eval")
    Mixer(MixerConfig(composition_probs={"BB": 1.0})).run(
        listing.utterances, tmp_path / "mix", n_mixtures=20, seed=0, workers=1, progress=False
    )
    mixtures = read_mixtures(tmp_path / "mix" / "mixtures.jsonl")
    assert len(mixtures) == 20
    # compare the speakers as a person would read them (a BOM is invisible)
    assert all(len({s.speaker.lstrip("\ufeff") for s in m.sources}) == 2 for m in mixtures)


def test_duplicate_utterance_ids_are_refused_naming_both_places(tmp_path):
    root = _asvspoof_tree(
        tmp_path,
        {"train": ["S1 LA_T_0 - - bonafide", "S2 LA_T_1 - A01 spoof", "S3 LA_T_0 - A02 spoof"]},
    )
    protocol = PROTOCOL_FILES["train"]
    with pytest.raises(DuplicateIdError, match=rf"'LA_T_0': .*{protocol}:1 and .*{protocol}:3"):
        read_asvspoof(root, "train")
    # across splits too: one id in two protocols
    other = _asvspoof_tree(
        tmp_path / "two", {"train": ["S1 LA_X_0 - - bonafide"], "dev": ["S1 LA_X_0 - A01 spoof"]}
    )
    with pytest.raises(DuplicateIdError, match="'LA_X_0'.*train.*dev"):
        read_asvspoof(other, None)


def test_asvspoof_reader_matches_suffixes_whatever_their_case(tmp_path):
    # Repro F8: LA_E_1.FLAC next to the protocol was reported as a missing file, while the
    # folder reader accepted upper-case suffixes. Both now share one suffix rule.
    root = _asvspoof_tree(
        tmp_path,
        {"eval": ["S LA_E_1 - - bonafide", "S LA_E_2 - A01 spoof", "S LA_E_3 - A01 spoof"]},
        skip_audio={"LA_E_1", "LA_E_2", "LA_E_3"},
    )
    folder = root / "ASVspoof2019_LA_eval" / "flac"
    _tone(folder / "LA_E_1.FLAC")
    _tone(folder / "LA_E_2.Wav")
    listing = read_asvspoof(root, "eval")
    assert [Path(u.path).name for u in listing.utterances] == ["LA_E_1.FLAC", "LA_E_2.Wav"]
    assert listing.problems == [(str(folder / "LA_E_3.flac"), "missing (file not found)")]
    assert (
        has_audio_suffix("x.FLAC") and has_audio_suffix("x.Ogg") and not has_audio_suffix("x.txt")
    )
    # two spellings of one file name: which one the protocol means cannot be known
    _tone(folder / "LA_E_1.flac")
    if len(list(folder.glob("LA_E_1.*"))) == 2:  # a case-sensitive file system
        with pytest.raises(DuplicateIdError, match="LA_E_1"):
            read_asvspoof(root, "eval")


def test_folder_labels_splits_and_systems(tmp_path):
    root = tmp_path / "for-2seconds"
    _tone(root / "training" / "real" / "a.wav")
    _tone(root / "training" / "fake" / "b.wav")
    _tone(root / "validation" / "Real" / "c.flac")
    _tone(root / "testing" / "FAKE" / "melgan" / "d.wav")
    _tone(root / "testing" / "genuine" / "sub" / "e.ogg")
    (root / "notes.txt").write_text("not audio")
    listing = read_folder_dataset(root)
    found = {u.utt_id: (u.label, u.split, u.system) for u in listing.utterances}
    assert found == {
        "training/real/a": ("bonafide", "train", "-"),
        "training/fake/b": ("spoof", "train", "-"),
        "validation/Real/c": ("bonafide", "dev", "-"),
        "testing/FAKE/melgan/d": ("spoof", "eval", "melgan"),
        "testing/genuine/sub/e": ("bonafide", "eval", "-"),
    }
    assert not listing.problems
    only_eval = load_utterances(root, "eval")
    assert sorted(u.utt_id for u in only_eval.utterances) == [
        "testing/FAKE/melgan/d",
        "testing/genuine/sub/e",
    ]


def test_folder_problems_unlabelled_and_unreadable(tmp_path):
    _tone(tmp_path / "bonafide" / "ok.wav")
    _tone(tmp_path / "unsorted" / "who.wav")
    (tmp_path / "spoof").mkdir()
    (tmp_path / "spoof" / "broken.flac").write_bytes(b"\x00" * 10)
    listing = read_folder_dataset(tmp_path)
    assert [u.utt_id for u in listing.utterances] == ["bonafide/ok"]
    assert dict(listing.problem_counts()) == {"no label folder in path": 1, "unreadable": 1}
    assert "2 file(s) not usable" in listing.summary()


def test_folder_files_that_differ_only_by_suffix_are_refused(tmp_path):
    # Repro F6: real/a.wav and real/a.flac were both listed as "real/a" and scored twice.
    _tone(tmp_path / "real" / "a.wav")
    _tone(tmp_path / "real" / "a.flac")
    _tone(tmp_path / "fake" / "s" / "b.wav")
    with pytest.raises(DuplicateIdError, match=r"'real/a': .*a\.flac and .*a\.wav"):
        read_folder_dataset(tmp_path)
    with pytest.raises(DuplicateIdError):
        load_utterances(tmp_path)


def test_folder_label_spellings():
    assert folder_label("Real") == "bonafide"
    assert folder_label("fakes") == "spoof"
    assert folder_label("bona-fide") == "bonafide"
    assert folder_label("spoofed") == "spoof"
    assert folder_label("audio") is None
    assert folder_label("1") is None


def test_jsonl_manifest_relative_paths_and_missing(tmp_path):
    _tone(tmp_path / "audio" / "x.wav")
    utterances = [
        Utterance("x", "audio/x.wav", "bonafide", split="train"),
        Utterance("y", "audio/y.wav", "spoof", split="train"),
        Utterance("z", "audio/x.wav", "spoof", split="eval"),
    ]
    manifest = write_jsonl(tmp_path / "utts.jsonl", utterances)
    listing = load_utterances(manifest, "train")
    assert [u.utt_id for u in listing.utterances] == ["x"]
    assert Path(listing.utterances[0].path) == tmp_path / "audio" / "x.wav"
    assert listing.problems == [(str(tmp_path / "audio" / "y.wav"), "missing (file not found)")]


def test_load_utterances_rejects_unknown_sources(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_utterances(tmp_path / "nowhere")
    (tmp_path / "list.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="jsonl"):
        load_utterances(tmp_path / "list.csv")


def test_bundled_demo_corpus_layout_and_labels():
    root = demo_corpus_root()
    assert (root / "ATTRIBUTION.md").is_file() and (root / "metadata.jsonl").is_file()
    speakers = {}
    for split in ("train", "dev", "eval"):
        utterances = demo_utterances(split)
        labels = [u.label for u in utterances]
        assert labels.count("bonafide") >= 8 and labels.count("spoof") >= 8
        for utterance in utterances:
            assert Path(utterance.path).parent == root / f"ASVspoof2019_LA_{split}" / "flac"
            assert utterance.sample_rate == 16000
            assert 1.0 <= utterance.duration <= 4.0
            assert (utterance.system == "-") == (utterance.label == "bonafide")
        speakers[split] = {u.speaker for u in utterances}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["eval"]
    assert not speakers["dev"] & speakers["eval"]
    audio, rate = sf.read(demo_utterances("eval")[0].path)
    assert rate == 16000 and audio.ndim == 1 and np.all(np.isfinite(audio))
    with pytest.raises(ValueError, match="split"):
        demo_utterances("test")
