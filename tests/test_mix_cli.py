"""``python -m amongus.mix``: every option documented, presets, summary."""

from __future__ import annotations

import dataclasses
import json

from test_mix_helpers import write_utterances

from amongus.manifest import read_mixtures, write_jsonl
from amongus.mix import MixerConfig
from amongus.mix.__main__ import build_parser, main


def test_help_lists_every_option():
    text = build_parser().format_help()
    for spec in dataclasses.fields(MixerConfig):
        if spec.name != "preset":
            assert "--" + spec.name.replace("_", "-") in text, spec.name
    for option in ("--input", "--split", "--out", "--n-mixtures", "--seed", "--workers",
                   "--preset", "--on-bad-input"):  # fmt: skip
        assert option in text


def test_cli_thesis_preset_with_overrides(tmp_path, capsys):
    utterances = write_utterances(tmp_path / "u", 8)
    manifest = write_jsonl(tmp_path / "utts.jsonl", utterances)
    out = tmp_path / "out"
    code = main([
        "--input", str(manifest), "--out", str(out), "--n-mixtures", "6", "--seed", "1",
        "--workers", "1", "--preset", "thesis", "--gain-range", "0.9", "1.1", "--no-progress",
        "--composition-probs", "SS=1",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "6/6" in printed and "SS" in printed
    mixtures = read_mixtures(out / "mixtures.jsonl")
    assert [m.label for m in mixtures] == ["SS"] * 6
    assert all(0.9 <= s.gain <= 1.1 for m in mixtures for s in m.sources)
    assert all(m.extra["preset"] == "thesis" for m in mixtures)
    assert (out / "metadata.txt").read_text().count("\n") == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_written"] == 6 and summary["compositions"] == {"SS": 6}


def test_config_round_trips_and_rejects_bad_values():
    config = MixerConfig.from_preset("thesis", n_sources=3, composition_probs={"SSB": 1})
    assert MixerConfig.from_dict(config.to_dict()) == config
    for bad in ({"n_sources": 1}, {"overlap_ratio": (0.0, 0.5)}, {"level_mode": "loud"},
                {"channel_codecs": ["mp3"]}, {"composition_probs": {"SX": 1}}):  # fmt: skip
        try:
            MixerConfig(**bad)
        except ValueError as error:
            assert "MixerConfig" in str(error)
        else:
            raise AssertionError(f"{bad} accepted")
