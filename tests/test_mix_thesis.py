"""The thesis preset reproduces the reference study's recipe."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_mix_helpers import write_utterances

from amongus.labels import composition_label
from amongus.manifest import Utterance, read_mixtures
from amongus.mix import Mixer, MixerConfig
from amongus.mix.plan import (
    SourceSampler,
    draw_levels,
    draw_placement,
    mixture_rng,
    safe_name,
)
from amongus.mix.thesis import read_thesis_metadata


def _fake_utterances(n: int) -> list[Utterance]:
    return [
        Utterance(f"u{i}", f"/nowhere/u{i}.flac", "spoof" if i % 2 else "bonafide")
        for i in range(n)
    ]


def test_thesis_composition_frequencies_match_the_study():
    config = MixerConfig.from_preset("thesis")
    sampler = SourceSampler(_fake_utterances(40), config, seed=3)
    draws = [sampler.draw(i, 0) for i in range(2000)]
    counts = Counter(draw.composition for draw in draws)
    # SB 1/2, SS 1/4, BB 1/4: binomial standard deviation ~ 0.011 at n=2000
    assert abs(counts["SB"] / 2000 - 0.5) < 0.04
    assert abs(counts["SS"] / 2000 - 0.25) < 0.035
    assert abs(counts["BB"] / 2000 - 0.25) < 0.035
    utterances = sampler.utterances
    for draw in draws:
        labels = [utterances[i].label for i in draw.utterances]
        assert composition_label(labels) == draw.composition
        assert len(set(draw.utterances)) == 2
    # SB whatever the order: both orders occur
    orders = Counter(
        utterances[draw.utterances[0]].label for draw in draws if draw.composition == "SB"
    )
    assert min(orders.values()) > 400


def test_thesis_placement_and_gain_distributions():
    config = MixerConfig.from_preset("thesis")
    rate = 16000
    delays, gains, delayed_counts = [], [], Counter()
    for index in range(2000):
        rng = mixture_rng(0, index, 0, 1)
        lengths = [int(rng.integers(rate // 2, 3 * rate)), int(rng.integers(rate // 2, 3 * rate))]
        placement = draw_placement(rng, lengths, rate, config)
        gains += draw_levels(rng, 2, config)
        nonzero = [offset for offset in placement.offsets if offset > 0]
        assert len(nonzero) <= 1  # exactly one source carries the delay
        delayed = placement.delayed
        delayed_counts[delayed] += 1
        delay = placement.offsets[delayed]
        delays.append(delay / rate)
        padded = [length + (delay if k == delayed else 0) for k, length in enumerate(lengths)]
        assert placement.num_samples == min(padded)  # cut to the shorter length after the delay
        assert placement.starts == [0, 0]
    delays = np.array(delays)
    gains = np.array(gains)
    assert delays.min() >= 0 and delays.max() < 1.0
    assert abs(delays.mean() - 0.5) < 0.03 and abs(np.quantile(delays, 0.9) - 0.9) < 0.03
    assert gains.min() >= 0.7 and gains.max() <= 1.3 and abs(gains.mean() - 1.0) < 0.02
    assert abs(delayed_counts[0] / 2000 - 0.5) < 0.04


@pytest.fixture(scope="module")
def thesis_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("thesis")
    utterances = write_utterances(folder / "utts", 10, seconds=(0.6, 1.4))
    out = folder / "out"
    summary = Mixer(MixerConfig.from_preset("thesis")).run(
        utterances, out, n_mixtures=40, seed=5, workers=1, split="train", progress=False
    )
    return utterances, out, summary


def test_thesis_files_follow_the_study(thesis_run):
    utterances, out, summary = thesis_run
    by_id = {u.utt_id: u for u in utterances}
    mixtures = read_mixtures(out / "mixtures.jsonl")
    assert len(mixtures) == 40 == summary.n_written
    names = [m.mixture_id for m in mixtures]
    assert len(set(names)) == 40
    for mixture in mixtures:
        pair = "_".join(s.utt_id for s in mixture.sources)
        assert mixture.mixture_id == pair or mixture.mixture_id.startswith(pair + "-")
        audio, rate = sf.read(out / mixture.path)
        assert rate == 16000 and (out / "audio" / f"{mixture.mixture_id}.flac").exists()
        # divided by the peak absolute value: peak 1 up to 16-bit quantisation
        assert abs(np.abs(audio).max() - 1.0) < 1e-3
        lengths = [sf.info(by_id[s.utt_id].path).frames for s in mixture.sources]
        delayed = [k for k, s in enumerate(mixture.sources) if s.offset > 0]
        assert len(delayed) == 1 and mixture.sources[delayed[0]].offset < rate
        d = delayed[0]
        expected = min(
            n + (mixture.sources[d].offset if k == d else 0) for k, n in enumerate(lengths)
        )
        assert len(audio) == expected == mixture.num_samples
        assert all(0.7 <= s.gain <= 1.3 for s in mixture.sources)
        assert mixture.overlap_seconds is not None and mixture.overlap_seconds >= 0
    rows = read_thesis_metadata(out / "metadata.txt")
    assert [row["mixture"] for row in rows] == names
    for row, mixture in zip(rows, mixtures, strict=True):
        assert row["utterances"] == [s.utt_id for s in mixture.sources]
        assert row["labels"] == [by_id[u].label for u in row["utterances"]]
        assert row["label"] == composition_label(row["labels"])


def test_thesis_repeated_pairs_get_a_suffix(thesis_run):
    _, out, _ = thesis_run
    names = [m.mixture_id for m in read_mixtures(out / "mixtures.jsonl")]
    pairs = Counter(name.split("-")[0] for name in names)
    # 10 utterances give few distinct pairs, so 40 draws repeat some: each repeat has a suffix
    assert max(pairs.values()) > 1
    for pair, count in pairs.items():
        expected = {pair} | {f"{pair}-{k}" for k in range(2, count + 1)}
        assert {n for n in names if n.split("-")[0] == pair} == expected


def test_thesis_records_missing_overlap_instead_of_fixing_it(tmp_path):
    # short second utterances: a delay longer than them leaves a "speaker" absent
    utterances = write_utterances(tmp_path / "u", 8, seconds=(0.3, 0.5))
    summary = Mixer(MixerConfig.from_preset("thesis")).run(
        utterances, tmp_path / "out", n_mixtures=40, seed=1, workers=1, progress=False
    )
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    absent = [m for m in mixtures if min(m.extra["active_seconds"]) == 0]
    assert absent, "with delays up to 1 s some delayed sources must fall off the end"
    assert all(m.overlap_seconds == 0 for m in absent)
    assert summary.n_absent_source == len(absent)


def test_pair_names_are_safe_file_names(tmp_path):
    utterances = write_utterances(tmp_path / "u", 6)
    for utterance in utterances:  # folder-tree corpora use relative paths as ids
        utterance.utt_id = f"spoof/sys A/{utterance.utt_id}"
    Mixer(MixerConfig.from_preset("thesis")).run(
        utterances, tmp_path / "out", n_mixtures=5, seed=0, workers=1, progress=False
    )
    files = sorted(p.name for p in (tmp_path / "out" / "audio").rglob("*") if p.is_file())
    assert len(files) == 5 and all("/" not in f and " " not in f for f in files)
    rows = read_thesis_metadata(tmp_path / "out" / "metadata.txt")
    # the ids read back exactly (a space is written %20, not merged into "_")
    ids = {utterance.utt_id for utterance in utterances}
    assert all(u in ids for row in rows for u in row["utterances"])
    lines = (tmp_path / "out" / "metadata.txt").read_text().splitlines()
    assert all(len(line.split()) == 6 for line in lines)  # no blank inside a field


def _near_silent(folder, names, seconds=1.2, rate=16000, amplitude=1e-12):
    """Float WAVs of noise at ~1e-12 (-240 dBFS): the issue's near-silent sources."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for name in names:
        path = folder / f"{name}.wav"
        audio = amplitude * rng.standard_normal(int(seconds * rate))
        sf.write(path, audio.astype(np.float32), rate, subtype="FLOAT")
        paths.append(str(path))
    return paths


def test_thesis_skips_near_silent_sources_and_counts_them(tmp_path):
    # issue 12 case 4: before the fix such sources were mixed (an all-zero file labelled SB
    # when both were near-silent) and the summary reported no absent source
    utterances = write_utterances(tmp_path / "u", 6, seconds=(1.0, 1.5))
    quiet = _near_silent(tmp_path / "quiet", ["quiet_spoof", "quiet_bona"])
    utterances += [
        Utterance("quiet_spoof", quiet[0], "spoof", speaker="q1"),
        Utterance("quiet_bona", quiet[1], "bonafide", speaker="q2"),
    ]
    summary = Mixer(MixerConfig.from_preset("thesis")).run(
        utterances, tmp_path / "out", n_mixtures=30, seed=0, workers=1, progress=False
    )
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    assert len(mixtures) == 30
    for mixture in mixtures:
        assert not {"quiet_spoof", "quiet_bona"} & {s.utt_id for s in mixture.sources}
        audio, _ = sf.read(tmp_path / "out" / mixture.path)
        assert np.abs(audio).max() > 0.5  # thesis peak normalisation to 1.0, never all zero
    reasons = dict(summary.bad_inputs)
    assert set(reasons) == set(quiet)
    assert all(reason.startswith("silent") for reason in reasons.values())
    assert summary.bad_input_reasons == {"silent": 2}
    assert summary.n_usable == 6
    assert "silent" in str(summary)


def test_thesis_with_only_near_silent_sources_is_a_clear_error(tmp_path):
    paths = _near_silent(tmp_path, [f"q{i}" for i in range(4)])
    utterances = [
        Utterance(f"q{i}", path, "spoof" if i % 2 else "bonafide") for i, path in enumerate(paths)
    ]
    with pytest.raises(ValueError, match="no composition can be drawn"):
        Mixer(MixerConfig.from_preset("thesis")).run(
            utterances, tmp_path / "out", n_mixtures=3, seed=0, workers=1, progress=False
        )
    assert not list((tmp_path / "out" / "audio").iterdir())


def _long_named_corpus(root, length):
    """The F2 repro's corpus: real/ and fake/ folders of utterances with ``length``-character
    names (ids become ``real-<name>`` and ``fake-<name>``)."""
    rng = np.random.default_rng(0)
    for folder, letter in (("real", "a"), ("fake", "b")):
        (root / folder).mkdir(parents=True)
        for suffix in ("", "2"):
            stem = letter * (length - len(suffix)) + suffix
            sf.write(root / folder / f"{stem}.wav", 0.1 * rng.standard_normal(32000), 16000)
    return root


def test_thesis_pair_names_of_long_ids_are_written(tmp_path, capsys):
    # issue 12 case 13 (repro F2): a legal 250-byte final name failed with a raw
    # "OSError: File name too long" from the temporary file's longer name
    from amongus.mix.__main__ import main

    root = _long_named_corpus(tmp_path / "corpus", 117)
    out = tmp_path / "mix"
    code = main(["--input", str(root), "--out", str(out), "--n-mixtures", "2", "--seed", "0",
                 "--workers", "1", "--preset", "thesis", "--composition-probs", "SB=1",
                 "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    names = [p.name for p in (out / "audio").iterdir()]
    assert len(names) == 2 and all(len(name.encode()) == 250 for name in names)
    mixtures = read_mixtures(out / "mixtures.jsonl")
    assert all(m.mixture_id == "_".join(safe_name(s.utt_id) for s in m.sources) for m in mixtures)


def test_ids_too_long_for_a_file_name_are_shortened_with_a_hash(tmp_path):
    root = _long_named_corpus(tmp_path / "corpus", 140)  # pair names of 290 bytes
    from amongus.corpora import load_utterances

    utterances = load_utterances(root, check_files=False).utterances
    summary = Mixer(MixerConfig.from_preset("thesis", composition_probs={"SB": 1.0})).run(
        utterances, tmp_path / "out", n_mixtures=6, seed=0, workers=1, progress=False
    )
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    assert summary.n_shortened_ids == 6 and "shortened" in str(summary)
    ids = [m.mixture_id for m in mixtures]
    assert len(set(ids)) == 6  # repeats of a pair stay distinct after shortening
    for mixture in mixtures:
        name = Path(mixture.path).name
        assert len(name.encode()) <= 255 and (tmp_path / "out" / mixture.path).is_file()
        full = "_".join(safe_name(s.utt_id) for s in mixture.sources)
        assert full.startswith(mixture.mixture_id[:-11]) and len(mixture.mixture_id) > 200
    rows = read_thesis_metadata(tmp_path / "out" / "metadata.txt")
    assert [row["mixture"] for row in rows] == ids
    assert all(len(u) > 140 for row in rows for u in row["utterances"])  # full ids kept


def test_fit_id_is_deterministic_distinct_and_bounded():
    from amongus.mix.plan import fit_id

    short = "a" * 250
    assert fit_id(short, 250) == short
    long_ids = ["x" * 300, "x" * 299 + "y", "x" * 300 + "-2"]
    fitted = [fit_id(item, 250) for item in long_ids]
    assert all(len(item.encode()) <= 250 for item in fitted)
    assert len(set(fitted)) == 3 and fitted == [fit_id(item, 250) for item in long_ids]


def test_pair_names_stay_unique_when_names_read_alike():
    # H3 review: the pair a + b drawn twice was named "a_b-2", which is also the name of the
    # pair a + "b-2"; and safe_name maps "c d" and "c-d" alike. Ids must stay distinct.
    from amongus.manifest import Utterance
    from amongus.mix.config import MixerConfig
    from amongus.mix.plan import SourceDraw, mixture_ids

    names = ["a", "b", "b-2", "c d", "c-d"]
    utterances = [
        Utterance(utt_id=name, path=f"{name}.wav", label="bonafide", speaker=name)
        for name in names
    ]
    pairs = [(0, 1), (0, 1), (0, 2), (3, 0), (4, 0)]
    draws = [SourceDraw(index, 0, "BB", pair) for index, pair in enumerate(pairs)]
    ids = mixture_ids(draws, utterances, MixerConfig(naming="pair"), "eval")
    assert len(set(ids)) == len(ids), ids
    assert ids[:2] == ["a_b", "a_b-2"]
