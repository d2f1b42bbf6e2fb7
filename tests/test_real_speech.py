"""The real-speech split (amongus.recipes.real_speech): by speaker, following the corpus recipe.

Tests on ../shared/data/real skip when it is absent; the others build a small folder.
"""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amongus.corpora import load_utterances
from amongus.recipes import real_speech
from amongus.recipes.minispoof.systems import SPEAKER_SPLITS
from amongus.recipes.real_speech import (
    PARTS,
    RealSpeechError,
    assign_part,
    hashed_part,
    recipe_speaker,
    split_real_speech,
    write_split,
)

SHARED_REAL = Path(__file__).parents[1].parent / "shared" / "data" / "real"
_absent = pytest.mark.skipif(
    not (SHARED_REAL / "manifest.csv").is_file(), reason="../shared/data/real is absent"
)


def needs_shared(test):
    return pytest.mark.shared(_absent(test))


COLUMNS = ["path", "label", "system", "speaker", "corpus", "orig_sr", "duration", "licence"]


def _folder(tmp_path: Path, rows: list[dict[str, str]], *, shuffle_seed: int | None = None):
    root = tmp_path / "real"
    for row in rows:
        path = root / row["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            sf.write(path, 0.1 * np.ones(1600, dtype=np.float32), 16000)
    ordered = list(rows)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(ordered)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in ordered:
            writer.writerow({c: row.get(c, "-") for c in COLUMNS})
    return root


def _row(path, label, speaker, system="-"):
    return {"path": path, "label": label, "speaker": speaker, "system": system, "duration": "0.1"}


SMALL = [
    _row("bonafide/librispeech/1688-1.flac", "bonafide", "1688"),
    _row("bonafide/librispeech/3331-1.flac", "bonafide", "3331"),
    _row("bonafide/librispeech/3005-1.flac", "bonafide", "3005"),
    _row("bonafide/ljspeech/LJ001.flac", "bonafide", "LJ"),
    _row("spoof/voc_a/LJ001.flac", "spoof", "LJ", "voc_a"),
    _row("spoof/nsf/slt_1.flac", "spoof", "slt", "nsf"),
    _row("spoof/nsf/bdl_1.flac", "spoof", "bdl", "nsf"),
    _row("bonafide/new/newcomer-1.flac", "bonafide", "newcomer"),
]


def test_speaker_names_follow_the_corpus_recipe():
    assert recipe_speaker("1688") == "libri_1688"
    assert recipe_speaker("LJ") == "lj"
    assert recipe_speaker("slt") == "slt"
    assert assign_part("libri_3331") == ("eval", "corpus recipe speaker table")
    assert assign_part("lj")[0] == "train"


def test_unknown_speakers_are_hashed_deterministically_over_all_parts():
    parts = [hashed_part(f"speaker{i}") for i in range(400)]
    assert parts == [hashed_part(f"speaker{i}") for i in range(400)]
    shares = {part: parts.count(part) / len(parts) for part in PARTS}
    assert 0.5 < shares["train"] < 0.7 and 0.12 < shares["dev"] < 0.28
    assert 0.12 < shares["eval"] < 0.28
    assert assign_part("newcomer")[1].startswith("speaker not in the corpus recipe table")


def test_split_keeps_a_speaker_whole_and_copies_with_their_original(tmp_path):
    split = split_real_speech(_folder(tmp_path, SMALL))
    by_id = {u.utt_id: u for u in split.utterances()}
    assert len(by_id) == len(SMALL)
    assert by_id["bonafide/ljspeech/LJ001"].split == by_id["spoof/voc_a/LJ001"].split == "train"
    assert by_id["bonafide/librispeech/3331-1"].split == "eval"
    assert by_id["bonafide/librispeech/3005-1"].split == "dev"
    assert by_id["spoof/nsf/slt_1"].split == "eval" and by_id["spoof/nsf/bdl_1"].split == "train"
    assert by_id["bonafide/new/newcomer-1"].split == hashed_part("newcomer")
    for part in PARTS:
        others = set().union(*(split.speakers(p) for p in PARTS if p != part))
        assert not split.speakers(part) & others
    assert split.systems_shared == {"nsf": ["train", "eval"]}


def test_split_does_not_depend_on_row_order(tmp_path):
    first = split_real_speech(_folder(tmp_path / "a", SMALL))
    second = split_real_speech(_folder(tmp_path / "b", SMALL, shuffle_seed=3))
    for part in PARTS:
        assert sorted(u.utt_id for u in first.parts[part]) == sorted(
            u.utt_id for u in second.parts[part]
        )


def test_missing_audio_and_bad_labels_are_listed_not_dropped(tmp_path):
    root = _folder(tmp_path, SMALL[:2])
    (root / SMALL[1]["path"]).unlink()
    with open(root / "manifest.csv", "a", newline="", encoding="utf-8") as handle:
        handle.write("bonafide/librispeech/1688-1.flac,maybe,-,1688,x,16000,0.1,x\n")
    split = split_real_speech(root)
    assert len(split.utterances()) == 1
    reasons = sorted(reason.split(" (")[0] for _, reason in split.problems)
    assert reasons == ["bad label", "unreadable audio"]


def test_bad_folders_raise_a_clear_error(tmp_path):
    with pytest.raises(RealSpeechError, match="no such real-speech folder"):
        split_real_speech(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RealSpeechError, match="manifest.csv: no such manifest"):
        split_real_speech(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.csv").write_text("path,label\nx.flac,spoof\n")
    with pytest.raises(RealSpeechError, match="missing column"):
        split_real_speech(tmp_path / "empty")


def test_written_manifests_are_read_back_by_the_corpus_readers(tmp_path):
    split = split_real_speech(_folder(tmp_path, SMALL))
    written = write_split(split, tmp_path / "out")
    for part in PARTS:
        listing = load_utterances(written[part])
        assert [u.utt_id for u in listing] == [u.utt_id for u in split.parts[part]]
        assert not listing.problems
        assert [u.utt_id for u in load_utterances(written["all"], part)] == [
            u.utt_id for u in split.parts[part]
        ]
        assert real_speech.load_part(tmp_path / "out", part) == listing.utterances
    summary = json.loads(written["summary"].read_text())
    assert summary["parts"]["eval"]["n"] == len(split.parts["eval"])


def test_cli_without_the_shared_folder_fails_cleanly(tmp_path, capsys):
    code = real_speech.main(["split", "--root", str(tmp_path / "absent"), "--out", str(tmp_path)])
    assert code == 2
    assert "not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------- ../shared
@needs_shared
def test_shared_split_is_disjoint_by_speaker_and_documented_systems():
    split = split_real_speech(SHARED_REAL)
    with open(SHARED_REAL / "manifest.csv", encoding="utf-8-sig", newline="") as handle:
        n_rows = sum(1 for _ in csv.DictReader(handle))
    assert len(split.utterances()) + len(split.problems) == n_rows
    assert not split.problems
    for part in PARTS:
        assert split.parts[part], part
        assert {u.label for u in split.parts[part]} == {"bonafide", "spoof"}
        for other in PARTS:
            if other != part:
                assert not split.speakers(part) & split.speakers(other)
    # the LJSpeech vocoders are train-only; only the NSF vocoders (one ARCTIC speaker per
    # part) cross parts, as documented
    assert all(system.startswith("nsf_") for system in split.systems_shared)
    lj_systems = {u.system for u in split.utterances() if u.speaker == "lj" and u.label == "spoof"}
    assert lj_systems and lj_systems <= split.systems("train")
    assert not lj_systems & (split.systems("dev") | split.systems("eval"))


@needs_shared
def test_shared_eval_holds_nothing_the_shipped_models_trained_on():
    """The corpus recipe took these files into its splits by the same speaker table; no eval
    file may belong to a speaker it trained on."""
    from collections import Counter

    from amongus.recipes.minispoof.sources import shared_clips

    split = split_real_speech(SHARED_REAL)
    by_path = {u.path: u for u in split.utterances()}
    clips = shared_clips(SHARED_REAL, Counter())
    assert len(clips) == len(by_path)
    for clip in clips:
        utterance = by_path[str(Path(clip.path).resolve())]
        assert utterance.speaker == clip.speaker
        assert utterance.split == SPEAKER_SPLITS[clip.speaker]
    assert all(SPEAKER_SPLITS[u.speaker] == "eval" for u in split.parts["eval"])


@needs_shared
def test_shared_split_is_deterministic_and_the_cli_writes_it(tmp_path, capsys):
    first = split_real_speech(SHARED_REAL)
    second = split_real_speech(SHARED_REAL)
    assert first.parts == second.parts
    code = real_speech.main(["split", "--root", str(SHARED_REAL), "--out", str(tmp_path)])
    assert code == 0
    for part in PARTS:
        assert [u.utt_id for u in load_utterances(tmp_path / f"{part}.jsonl")] == [
            u.utt_id for u in first.parts[part]
        ]
    assert "note: system nsf_" in capsys.readouterr().out


def test_the_results_table_takes_a_classifier_of_any_family(tmp_path):
    """The study's table recipe loaded Hugging Face folders only; AASIST rows need any family."""
    from amongus.corpora.demo import demo_corpus_root
    from amongus.recipes.results_table import TableSpec, build_table
    from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

    folder = write_tiny_aasist_checkpoint(tmp_path / "aasist", layout="amongus")
    spec = TableSpec(
        corpus=str(demo_corpus_root()),
        out_dir=str(tmp_path / "table"),
        separators={"oracle": "oracle"},
        classifiers={"tiny AASIST": str(folder)},
        n_mixtures=2,
        threads=1,
    )
    result = build_table(spec, progress=False)
    assert [row["classifier"] for row in result["rows"]] == ["tiny AASIST"]
    assert result["rows"][0]["n"] == 2
    assert result["clean_utterances"][0]["n"] > 0
    assert "tiny AASIST" in (tmp_path / "table" / "results.md").read_text()


# ---------------------------------------------------------------------------- calibrate, evaluate
def _tone_folder(tmp_path: Path) -> Path:
    """A small real-speech folder with the corpus recipe's dev and eval speakers: bonafide low
    tones, spoofs high tones (so a threshold and the tables have something to separate)."""
    rows = []
    rng = np.random.default_rng(0)
    for speaker, label, system in (
        ("3005", "bonafide", "-"),
        ("rms", "spoof", "nsf_x"),
        ("3331", "bonafide", "-"),
        ("367", "bonafide", "-"),
        ("slt", "spoof", "nsf_x"),
        ("533", "spoof", "nsf_y"),
    ):
        for index in range(3):
            rows.append(_row(f"{label}/{speaker}_{index}.flac", label, speaker, system))
    root = _folder(tmp_path, rows)
    t = np.arange(16000) / 16000
    for index, row in enumerate(rows):
        frequency = 3000.0 if row["label"] == "spoof" else 200.0
        wave = 0.3 * np.sin(2 * np.pi * (frequency + 11 * index) * t)
        wave += 0.01 * rng.standard_normal(t.size)
        sf.write(root / row["path"], wave.astype(np.float32), 16000)
    return root


def test_calibrate_writes_a_threshold_the_classifier_then_uses(tmp_path):
    from amongus.classifiers import load_classifier
    from amongus.classifiers.threshold import read_decision_threshold, weights_digest
    from amongus.recipes.real_speech_eval import calibrate
    from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

    root = _tone_folder(tmp_path)
    folder = write_tiny_aasist_checkpoint(tmp_path / "cm", layout="amongus")
    result = calibrate(str(folder), root, write=True, progress=False, command="calibrate x")
    stored = read_decision_threshold(folder)
    assert stored == result.threshold and stored.weights_sha256 == weights_digest(folder)
    assert (stored.n_bonafide, stored.n_spoof) == (3, 3)
    assert "rms" in stored.data and "slt" not in stored.data  # the dev part only
    labels = [row["true_label"] for row in result.report.stream_rows]
    scores = [row["cm_score"] for row in result.report.stream_rows]
    # the stored cut reproduces the EER point's decisions (equal classes: error rate = EER)
    pairs = zip(scores, labels, strict=True)
    wrong = sum((c <= stored.cm_score) != (y == "spoof") for c, y in pairs)
    assert wrong / len(labels) == pytest.approx(stored.dev_eer)
    assert load_classifier(str(folder)).decision_threshold == stored
    with pytest.raises(ValueError, match="only a classifier folder"):
        calibrate(load_classifier(str(folder)), root, write=True, progress=False)


def test_evaluate_writes_the_table_single_and_mixtures(tmp_path):
    from amongus.recipes.real_speech_eval import COLUMNS, evaluate_real_speech
    from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

    root = _tone_folder(tmp_path)
    write_split(split_real_speech(root), tmp_path / "split")
    folder = write_tiny_aasist_checkpoint(tmp_path / "cm", layout="amongus")
    results = evaluate_real_speech(
        tmp_path / "split",
        tmp_path / "out",
        classifiers={"tiny": str(folder)},
        separators={"oracle": "oracle"},
        n_mixtures=4,
        progress=False,
    )
    assert [(row["classifier"], row["input"]) for row in results.rows] == [
        ("tiny", "single utterances"),
        ("tiny", "oracle streams"),
    ]
    single, mixed = results.rows
    assert single["n"] == len(split_real_speech(root).parts["eval"]) == 12
    assert mixed["n_mixtures"] == 4 and mixed["n"] == 8
    assert single["threshold_source"].startswith("uncalibrated default")
    assert set(COLUMNS) == set(single)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(results.rows))
    assert "| tiny | oracle streams | 8 |" in (tmp_path / "out" / "results.md").read_text()
    assert sorted(p.name for p in (tmp_path / "out").glob("det-*.png")) == [
        "det-oracle-streams.png",
        "det-single-utterances.png",
    ]
