"""Command-line parity: what a Python user can pass to the loaders, every CLI can pass too.

``python -m amongus``, ``python -m amongus.evaluate`` and ``python -m amongus.train`` take
``--trust-checkpoint``, ``--spoof-label``/``--spoof-index``, ``--separator-rate`` and JSON
component configs; the tests run each CLI on tiny models in published formats and check that the
options reach the components (a ``LABEL_0``/``LABEL_1`` classifier, an Asteroid package without
``sample_rate``, a pickle that needs trust).
"""

from __future__ import annotations

import csv
import fractions
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus import cli_options  # noqa: E402
from amongus.cli_options import OPTION_FLAGS, parse_component  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("asteroid")

RATE = 16000
LOADING_FLAGS = ("--trust-checkpoint", "--spoof-label", "--spoof-index", "--separator-rate")
PACKAGE = Path(__file__).resolve().parents[1] / "amongus"


def _tone(frequency: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (frequency + 7 * seed) * t)
    return (wave + 0.003 * rng.normal(size=t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A LABEL_0/LABEL_1 classifier, an Asteroid package without ``sample_rate`` in its
    ``model_args`` and one that holds a Python object (loads only with trust)."""
    import torch

    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_convtasnet_model

    root = tmp_path_factory.mktemp("models")
    labels = build_tiny_classifier(root / "labels", id2label={0: "LABEL_0", 1: "LABEL_1"})
    model = build_convtasnet_model(sample_rate=RATE)
    rateless = model.serialize()
    del rateless["model_args"]["sample_rate"]
    (root / "rateless").mkdir()
    torch.save(rateless, root / "rateless" / "pytorch_model.bin")
    with_object = model.serialize()
    with_object["infos"] = {**with_object.get("infos", {}), "ratio": fractions.Fraction(1, 3)}
    (root / "needs_trust").mkdir()
    torch.save(with_object, root / "needs_trust" / "pytorch_model.bin")
    return {
        "labels": labels,
        "rateless": root / "rateless" / "pytorch_model.bin",
        "needs_trust": root / "needs_trust" / "pytorch_model.bin",
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``real/*.wav`` and ``fake/<system>/*.wav`` tones (a folder corpus)."""
    from amongus.audio import save_audio

    root = tmp_path_factory.mktemp("folder_corpus")
    for index in range(3):
        save_audio(root / "real" / f"r{index}.wav", _tone(200.0, 0.5, index), RATE)
        save_audio(root / "fake" / "sysA" / f"f{index}.wav", _tone(3000.0, 0.5, index), RATE)
    return root


@pytest.fixture(scope="module")
def mixtures(tmp_path_factory):
    from mixture_fixtures import write_tone_mixtures

    mix = write_tone_mixtures(
        tmp_path_factory.mktemp("mix"),
        n_utterances=4,
        n_mixtures=2,
        seed=1,
        audio=lambda index, spoof: _tone(3000.0 if spoof else 200.0, 0.6, index),
        rate=RATE,
    )
    return mix / "mixtures.jsonl"


def _parsers():
    from amongus.__main__ import build_parser as main_parser
    from amongus.evaluate import build_parser as evaluate_parser
    from amongus.train import build_parser as train_parser

    return {"amongus": main_parser(), "evaluate": evaluate_parser(), "train": train_parser()}


def _options(parser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


# ---------------------------------------------------------------------------- the options exist
@pytest.mark.parametrize("tool", ["amongus", "evaluate", "train"])
def test_every_cli_has_every_loading_option(tool):
    options = _options(_parsers()[tool])
    for flag in (*LOADING_FLAGS, "--separator", "--classifier", "--version"):
        assert flag in options, f"python -m amongus.{tool} lacks {flag}"


def _recommended_keywords() -> set[str]:
    """Python keywords that error messages in the package tell users to pass."""
    keywords = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        keywords |= set(re.findall(r"[Pp]ass (?:`)?([a-z_]+)=", text))
        keywords |= set(re.findall(r"how_to_pass\(['\"]([a-z_]+)['\"]", text))
    return keywords


# Options recommended by messages that are reached through a JSON component config on the
# command line: the oracle's n_src (--separator '{"name": "oracle", "n_src": 3}') and the AASIST
# loader's architecture config (--classifier '{"path": ..., "config": {...}}').
JSON_CONFIG_ONLY = {"n_src", "config"}


def test_every_recommended_option_has_a_command_line_spelling():
    keywords = _recommended_keywords()
    assert {"trust_checkpoint", "spoof_label", "spoof_index", "sample_rate"} <= keywords
    missing = sorted(keywords - set(OPTION_FLAGS) - JSON_CONFIG_ONLY)
    assert not missing, f"messages recommend options with no command-line spelling: {missing}"
    every_cli = set.intersection(*(_options(parser) for parser in _parsers().values()))
    assert set(OPTION_FLAGS.values()) <= every_cli


def test_the_spoof_class_message_names_the_keyword_and_the_flag():
    from amongus.classifier import find_spoof_index

    with pytest.raises(ValueError) as caught:
        find_spoof_index({0: "LABEL_0", 1: "LABEL_1"})
    message = str(caught.value)
    for text in ("spoof_index=", "--spoof-index", "spoof_label=", "--spoof-label"):
        assert text in message


# ---------------------------------------------------------------------------- JSON configs
def test_parse_component_reads_json_objects_and_files(tmp_path):
    assert parse_component("convtasnet") == "convtasnet"
    assert parse_component("some/folder") == "some/folder"
    assert parse_component('{"name": "convtasnet", "sample_rate": 8000}') == {
        "name": "convtasnet",
        "sample_rate": 8000,
    }
    (tmp_path / "weights").mkdir()
    config = tmp_path / "separator.json"
    config.write_text(json.dumps({"path": "weights", "sample_rate": 8000, "name": "convtasnet"}))
    assert parse_component(str(config)) == {
        "name": "convtasnet",
        "path": str(tmp_path / "weights"),  # relative to the config file
        "sample_rate": 8000,
    }


@pytest.mark.parametrize(
    "text,problem",
    [("{not json", "invalid JSON"), ('["a", "b"]', "a JSON config must be an object")],
)
def test_parse_component_rejects_bad_json_naming_the_flag(text, problem, tmp_path):
    with pytest.raises(ValueError, match=f"--classifier: {problem}"):
        parse_component(text, flag="--classifier")
    path = tmp_path / "bad.json"
    path.write_text(text.replace("{not", "[not"))
    with pytest.raises(ValueError, match=re.escape(f"--separator {path}")):
        parse_component(str(path), flag="--separator")


def test_flags_override_a_json_config_and_skip_rate_free_separators():
    parser = _parsers()["evaluate"]
    args = parser.parse_args(
        [
            "m.jsonl",
            "--separator",
            '{"name": "convtasnet", "path": "x.bin", "sample_rate": 8000}',
            "--classifier",
            "folder",
            "--separator-rate",
            "16000",
            "--spoof-label",
            "fake",
        ]
    )
    specs = cli_options.component_specs(args)
    assert specs["separator"] == {"name": "convtasnet", "path": "x.bin", "sample_rate": 16000}
    assert specs["classifier"] == {"name": "folder", "spoof_label": "fake"}
    oracle = parser.parse_args(["m.jsonl", "--separator", "oracle", "--trust-checkpoint"])
    assert cli_options.component_specs(oracle)["separator"] == "oracle"
    with pytest.raises(ValueError, match="runs at any rate"):
        cli_options.component_specs(
            parser.parse_args(["m.jsonl", "--separator", "oracle", "--separator-rate", "8000"])
        )
    with pytest.raises(ValueError, match="not both"):
        cli_options.component_specs(
            parser.parse_args(["m.jsonl", "--spoof-label", "a", "--spoof-index", "1"])
        )


# ---------------------------------------------------------------------------- evaluate
def _stream_probabilities(out: Path) -> dict[str, float]:
    with open(out / "streams.csv", newline="", encoding="utf-8") as handle:
        return {row["utt_id"]: float(row["spoof_probability"]) for row in csv.DictReader(handle)}


def test_evaluate_single_uses_the_chosen_spoof_class(models, corpus, tmp_path, capsys):
    from amongus.evaluate import main

    base = [str(corpus), "--single", "--classifier", str(models["labels"]), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "none"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "--spoof-index" in err and "LABEL_0" in err
    for index in (0, 1):
        out = tmp_path / f"index{index}"
        assert main([*base, "--spoof-index", str(index), "--out", str(out), "--no-plots"]) == 0
    first, second = (
        _stream_probabilities(tmp_path / "index0"),
        _stream_probabilities(tmp_path / "index1"),
    )
    assert len(first) == 6 and first.keys() == second.keys()
    # two classes: the spoof probability of class 0 is one minus that of class 1
    for key in first:
        assert first[key] + second[key] == pytest.approx(1.0, abs=1e-6)
    label_out = tmp_path / "label"
    code = main([*base, "--spoof-label", "label_1", "--out", str(label_out), "--no-plots"])
    assert code == 0
    assert _stream_probabilities(label_out) == pytest.approx(second)


def test_evaluate_mixtures_with_json_configs_and_separator_rate(models, mixtures, tmp_path, capsys):
    from amongus.evaluate import main

    common = [str(mixtures), "--quiet", "--no-plots", "--batch-size", "2"]
    classifier = json.dumps({"path": str(models["labels"]), "spoof_index": 1})
    # the package states no rate: refused, and the message says how to give it
    code = main([*common, "--separator", str(models["rateless"]), "--classifier", classifier])
    assert code == 2
    assert "sample_rate" in capsys.readouterr().err
    out = tmp_path / "flag"
    code = main(
        [
            *common,
            "--separator",
            str(models["rateless"]),
            "--separator-rate",
            str(RATE),
            "--classifier",
            classifier,
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["evaluated"] == 2
    assert f"@{RATE}" in report["separator"]
    config_file = tmp_path / "separator.json"
    config_file.write_text(
        json.dumps({"name": "convtasnet", "path": str(models["rateless"]), "sample_rate": 8000})
    )
    out = tmp_path / "file"
    code = main(
        [*common, "--separator", str(config_file), "--classifier", classifier, "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert "@8000" in json.loads((out / "report.json").read_text())["separator"]


def test_trust_checkpoint_reaches_the_separator_loader(models, mixtures, tmp_path, capsys):
    from amongus.evaluate import main

    common = [
        str(mixtures),
        "--quiet",
        "--no-plots",
        "--separator",
        str(models["needs_trust"]),
        "--classifier",
        str(models["labels"]),
        "--spoof-index",
        "1",
    ]
    assert main([*common, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert str(models["needs_trust"]) in err and "trust_checkpoint" in err
    assert main([*common, "--trust-checkpoint", "--out", str(tmp_path / "trusted")]) == 0
    report = json.loads((tmp_path / "trusted" / "report.json").read_text())
    assert report["counts"]["evaluated"] == 2


def test_trust_checkpoint_reaches_the_classifier_loader(models, corpus, tmp_path, monkeypatch):
    from amongus.classifier import SpoofClassifier
    from amongus.evaluate import main

    calls = []
    original = SpoofClassifier.from_pretrained.__func__

    def spy(cls, name_or_path, **options):
        calls.append(options)
        return original(cls, name_or_path, **options)

    monkeypatch.setattr(SpoofClassifier, "from_pretrained", classmethod(spy))
    argv = [str(corpus), "--single", "--classifier", str(models["labels"]), "--quiet"]
    argv += ["--spoof-index", "1", "--no-plots", "--out", str(tmp_path / "out")]
    assert main([*argv, "--trust-checkpoint"]) == 0
    assert calls[-1]["trust_checkpoint"] is True and calls[-1]["spoof_index"] == 1
    assert main(argv) == 0
    assert not calls[-1].get("trust_checkpoint")


# ---------------------------------------------------------------------------- python -m amongus
def test_main_job_takes_components_and_loading_options(models, tmp_path, capsys):
    from amongus.__main__ import main

    base = ["--n-mixtures", "2", "--separator", str(models["needs_trust"])]
    base += ["--classifier", str(models["labels"])]
    assert main([*base, "--out", str(tmp_path / "a"), "--trust-checkpoint"]) == 2
    assert "--spoof-index" in capsys.readouterr().err
    code = main([*base, "--out", str(tmp_path / "b"), "--trust-checkpoint", "--spoof-index", "1"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "b" / "report" / "report.json").read_text())
    assert report["counts"]["inputs"] == 2
    assert report["classifier"].startswith(str(models["labels"]))


# ---------------------------------------------------------------------------- python -m amongus.train
def test_train_options_reach_the_trainer_components(models, mixtures, tmp_path):
    from amongus.train import build_parser, config_from_args
    from amongus.training import Trainer

    argv = [
        "--train-mixtures",
        str(mixtures),
        "--output-dir",
        str(tmp_path / "run"),
        "--classifier",
        json.dumps({"path": str(models["labels"]), "spoof_label": "LABEL_1"}),
        "--separator",
        json.dumps({"path": str(models["needs_trust"])}),
        "--separator-rate",
        str(RATE),
        "--trust-checkpoint",
    ]
    config = config_from_args(build_parser().parse_args(argv))
    assert config.classifier == str(models["labels"])
    assert config.classifier_options == {"spoof_label": "LABEL_1", "trust_checkpoint": True}
    assert config.separator == str(models["needs_trust"])
    assert config.separator_options == {"sample_rate": RATE, "trust_checkpoint": True}
    trainer = Trainer(config)
    assert trainer.classifier.spoof_index == 1
    assert trainer.separator.sample_rate == RATE
    # the same run without trust is refused when the separator is loaded
    refused = config_from_args(build_parser().parse_args(argv[:-1]))
    with pytest.raises(ValueError, match="trust_checkpoint"):
        Trainer(refused).separator  # noqa: B018


def test_train_cli_prepares_the_cache_with_the_options(models, mixtures, tmp_path, capsys):
    from amongus.train import main

    argv = [
        "--train-mixtures",
        str(mixtures),
        "--val-fraction",
        "0.5",
        "--output-dir",
        str(tmp_path / "run"),
        "--classifier",
        str(models["labels"]),
        "--separator",
        str(models["rateless"]),
        "--log-with",
        "none",
        "--prepare-only",
    ]
    assert main(argv) == 2
    assert "sample_rate" in capsys.readouterr().err
    assert main([*argv, "--separator-rate", str(RATE), "--spoof-index", "1"]) == 0
    assert "2 mixtures in" in capsys.readouterr().out
