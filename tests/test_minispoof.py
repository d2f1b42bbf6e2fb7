"""The minispoof corpus recipe: layout, protocols, speaker split, unseen attacks, determinism and
the trivial-feature shortcut check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amongus.corpora import read_asvspoof
from amongus.corpora.asvspoof import PROTOCOL_DIR, PROTOCOL_FILES
from amongus.manifest import read_utterances
from amongus.recipes.minispoof import build_corpus, shortcut_check
from amongus.recipes.minispoof.plan import SIZES, Job, build_plan
from amongus.recipes.minispoof.render import render_job
from amongus.recipes.minispoof.sources import SourceClip

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "dev", "eval")
APT_PROGRAMS = ("espeak-ng", "flite", "text2wave", "c2enc")
needs_apt = pytest.mark.skipif(
    any(shutil.which(p) is None for p in APT_PROGRAMS),
    reason=f"needs apt packages providing {', '.join(APT_PROGRAMS)}",
)


def _needs_corpus_extra():
    pytest.importorskip("pyworld")
    pytest.importorskip("pysptk")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    if any(shutil.which(p) is None for p in APT_PROGRAMS):
        pytest.skip("apt packages for the recipe are missing")
    _needs_corpus_extra()
    root = tmp_path_factory.mktemp("minispoof") / "tiny"
    result = build_corpus(root, seed=0, size="tiny", workers=2, shared_real="none", progress=False)
    return result


def _protocol(root: Path, split: str) -> list[list[str]]:
    text = (root / PROTOCOL_DIR / PROTOCOL_FILES[split]).read_text()
    return [line.split(" ") for line in text.splitlines()]


@pytest.mark.apt
@needs_apt
def test_layout_protocols_and_audio(tiny_corpus):
    root = tiny_corpus.root
    assert not tiny_corpus.failures, tiny_corpus.failures
    metadata = {u.utt_id: u for u in read_utterances(root / "metadata.jsonl")}
    n_lines = 0
    for split in SPLITS:
        rows = _protocol(root, split)
        files = sorted(p.stem for p in (root / f"ASVspoof2019_LA_{split}" / "flac").iterdir())
        assert sorted(row[1] for row in rows) == files
        labels = [row[4] for row in rows]
        assert labels.count("bonafide") == SIZES["tiny"].per_class[split]
        assert labels.count("spoof") == SIZES["tiny"].per_class[split]
        for speaker, utt, dash, system, label in rows:
            assert dash == "-" and utt.startswith(f"LA_{split[0].upper()}_")
            assert (system == "-") == (label == "bonafide")
            record = metadata[utt]
            assert (record.speaker, record.system, record.label, record.split) == (
                speaker,
                system,
                label,
                split,
            )
            assert record.source != "-" and record.licence != "-"
            audio, rate = sf.read(root / record.path, dtype="float32")
            assert rate == 16000 and audio.ndim == 1
            assert np.all(np.isfinite(audio)) and 0 < np.max(np.abs(audio)) <= 1.0
            assert audio.size / rate == pytest.approx(record.duration, abs=1e-3)
            assert 0.5 <= record.duration <= SIZES["tiny"].max_duration + 0.01
        n_lines += len(rows)
    assert n_lines == len(metadata)
    assert "## Spoof systems" in (root / "ATTRIBUTION.md").read_text()
    assert read_asvspoof(root, "eval").problems == []


@pytest.mark.apt
@needs_apt
def test_speakers_disjoint_systems_and_unseen_attacks(tiny_corpus):
    speakers, systems = {}, {}
    bonafide_speakers = set()
    for split in SPLITS:
        rows = _protocol(tiny_corpus.root, split)
        speakers[split] = {row[0] for row in rows}
        systems[split] = {row[3] for row in rows if row[4] == "spoof"}
        bonafide_speakers |= {row[0] for row in rows if row[4] == "bonafide"}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["eval"]
    assert not speakers["dev"] & speakers["eval"]
    assert len(bonafide_speakers) >= 10
    assert len(set().union(*systems.values())) >= 8
    assert len(systems["eval"] - systems["train"] - systems["dev"]) >= 2


@pytest.mark.apt
@needs_apt
def test_level_and_bandwidth_distributions_match(tiny_corpus):
    import pyloudnorm

    meter = pyloudnorm.Meter(16000)
    loudness, narrow = defaultdict(list), defaultdict(list)
    for utterance in read_utterances(tiny_corpus.root / "metadata.jsonl"):
        audio, rate = sf.read(tiny_corpus.root / utterance.path)
        loudness[utterance.label].append(meter.integrated_loudness(audio))
        power = np.abs(np.fft.rfft(audio)) ** 2
        above = power[np.fft.rfftfreq(audio.size, 1 / rate) > 4000].sum() / power.sum()
        narrow[utterance.label].append(above < 1e-3)
    for label in ("bonafide", "spoof"):
        assert -33.5 <= min(loudness[label]) and max(loudness[label]) <= -19.5
    # Telephone-band share: equal by construction up to sampling noise.
    assert abs(np.mean(narrow["bonafide"]) - np.mean(narrow["spoof"])) < 0.3
    assert 0.2 < np.mean(narrow["bonafide"]) < 0.9


@pytest.mark.apt
@needs_apt
def test_trivial_features_do_not_separate_the_classes(tiny_corpus):
    report = shortcut_check(tiny_corpus.root, progress=False)
    assert report.n_test == 2 * SIZES["tiny"].per_class["eval"]
    assert report.eer >= 0.30, report.summary()


def _plan_rows(seed: int):
    from collections import Counter

    from amongus.recipes.minispoof.build import discover_sources

    clips = discover_sources(None, Counter())
    plan = build_plan(clips, size=SIZES["tiny"], seed=seed)
    return [json.dumps(vars(job), sort_keys=True) for job in plan.jobs]


@pytest.mark.apt
@needs_apt
def test_plan_depends_on_seed_only():
    assert _plan_rows(0) == _plan_rows(0)
    assert _plan_rows(0) != _plan_rows(1)


@pytest.mark.apt
@needs_apt
def test_rendering_in_one_process_gives_the_same_bytes(tiny_corpus, tmp_path):
    """Files made by 2 workers equal those rendered again here (1 process), one per system."""
    from collections import Counter

    from amongus.recipes.minispoof.build import discover_sources

    plan = build_plan(discover_sources(None, Counter()), size=SIZES["tiny"], seed=0)
    chosen, seen = [], set()
    for job in plan.jobs:
        key = (job.system, job.kind)
        if key not in seen or (job.kind == "bonafide" and len(chosen) < 22):
            seen.add(key)
            chosen.append(job)
    for job in chosen:
        result = render_job((job, str(tmp_path)))
        assert "error" not in result, result
        again = (tmp_path / result["path"]).read_bytes()
        assert again == (tiny_corpus.root / result["path"]).read_bytes(), job.utt_id


@pytest.mark.slow
@pytest.mark.apt
@needs_apt
def test_second_build_with_one_worker_is_byte_identical(tiny_corpus, tmp_path):
    second = build_corpus(
        tmp_path / "again", seed=0, size="tiny", workers=1, shared_real="none", progress=False
    )
    first_files = sorted(p.relative_to(tiny_corpus.root) for p in tiny_corpus.root.rglob("*.flac"))
    second_files = sorted(p.relative_to(second.root) for p in second.root.rglob("*.flac"))
    assert first_files == second_files
    differing = [
        str(name)
        for name in first_files
        if (tiny_corpus.root / name).read_bytes() != (second.root / name).read_bytes()
    ]
    assert differing == []
    for name in ("metadata.jsonl", f"{PROTOCOL_DIR}/{PROTOCOL_FILES['eval']}"):
        assert (tiny_corpus.root / name).read_bytes() == (second.root / name).read_bytes()


def test_failed_utterance_is_reported_not_written(tmp_path):
    job = Job(
        utt_id="LA_T_0000001",
        split="train",
        label="bonafide",
        speaker="nobody",
        system="-",
        language="en",
        kind="bonafide",
        source="test",
        licence="-",
        clip_paths=[str(tmp_path / "missing.wav")],
    )
    result = render_job((job, str(tmp_path / "corpus")))
    assert "missing.wav" in result["error"] and "file not found" in result["error"]
    assert not list(tmp_path.rglob("*.flac"))


def test_speakers_outside_the_split_table_are_counted(tmp_path):
    from collections import Counter

    clip = SourceClip("x", "/x.wav", "stranger", "en", "hi", "test", "-", 16000, 2.0)
    skipped = Counter()
    plan = build_plan([clip], size=SIZES["tiny"], seed=0, skipped=skipped)
    assert not [job for job in plan.jobs if job.speaker == "stranger"]
    assert skipped["speaker stranger has no split in the table (left out)"] == 1


def _write_corpus(root: Path, make_audio) -> None:
    rng = np.random.default_rng(0)
    (root / PROTOCOL_DIR).mkdir(parents=True)
    for split in ("train", "eval"):
        folder = root / f"ASVspoof2019_LA_{split}" / "flac"
        folder.mkdir(parents=True)
        lines = []
        for index in range(40):
            label = "bonafide" if index % 2 else "spoof"
            utt = f"LA_{split[0].upper()}_{index:07d}"
            sf.write(folder / f"{utt}.flac", make_audio(label, rng), 16000)
            lines.append(f"S{index % 4} {utt} - {'-' if label == 'bonafide' else 'A01'} {label}")
        (root / PROTOCOL_DIR / PROTOCOL_FILES[split]).write_text("\n".join(lines) + "\n")


def test_shortcut_check_catches_a_bandwidth_shortcut(tmp_path):
    from scipy.signal import butter, sosfilt

    lowpass = butter(8, 3000, fs=16000, output="sos")

    def make_audio(label, rng):
        noise = rng.standard_normal(int(rng.uniform(0.5, 1.0) * 16000)) * 0.05
        return noise if label == "bonafide" else sosfilt(lowpass, noise)

    _write_corpus(tmp_path, make_audio)
    report = shortcut_check(tmp_path, progress=False)
    assert report.eer < 0.1 and not report.passed
    assert report.per_feature_eer["energy_above_3k5"] < 0.1


def test_shortcut_check_passes_when_classes_are_alike(tmp_path):
    def make_audio(label, rng):
        return rng.standard_normal(int(rng.uniform(0.5, 1.0) * 16000)) * rng.uniform(0.01, 0.1)

    _write_corpus(tmp_path, make_audio)
    assert shortcut_check(tmp_path, progress=False).eer >= 0.3


def test_datasets_wrapper_forwards_to_the_recipe():
    completed = subprocess.run(
        [sys.executable, str(REPO / "datasets" / "minispoof.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--shared-real" in completed.stdout and "tiny" in completed.stdout
    assert not (REPO / "datasets" / "__init__.py").exists()  # would shadow HF `datasets`


def test_vocoders_do_not_depend_on_earlier_calls():
    """Regression: pysptk.excite keeps M-sequence state across calls, which made MLSA/LPC
    outputs depend on the process history (a 2-worker and a 1-worker build differed)."""
    _needs_corpus_extra()
    from amongus.recipes.minispoof.generators import lpc_vocoder, mlsa_vocoder

    rng = np.random.default_rng(3)
    t = np.arange(8000) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 150 * t) * (t < 0.25) + 0.05 * rng.standard_normal(8000)
    audio = audio.astype(np.float32)
    for vocoder in (mlsa_vocoder, lpc_vocoder):
        first, _ = vocoder(audio, 16000, np.random.default_rng(0))
        vocoder(audio[::-1].copy(), 16000, np.random.default_rng(1))
        again, _ = vocoder(audio, 16000, np.random.default_rng(0))
        np.testing.assert_array_equal(first, again)


def test_tts_text_is_cleaned_of_dot_runs():
    """Regression: Festival's text2wave crashed (SIGSEGV) on 'first ... ... callers'."""
    from amongus.recipes.minispoof.render import _sentence

    assert _sentence("Please enter the first ... ... callers waiting") == (
        "Please enter the first, callers waiting."
    )
    assert _sentence("Un momento…") == "Un momento."
    assert _sentence("Done!") == "Done!"


@pytest.mark.apt
@pytest.mark.skipif(shutil.which("text2wave") is None, reason="needs festival (apt)")
def test_festival_reads_a_cleaned_prompt():
    from amongus.recipes.minispoof.generators import festival_tts
    from amongus.recipes.minispoof.render import _sentence

    text = _sentence(
        "Please enter the first ... ... callers waiting to speak with a representative"
    )
    audio, rate = festival_tts(text, "kal_diphone", np.random.default_rng(0))
    assert rate == 16000 and audio.size > rate and np.all(np.isfinite(audio))
