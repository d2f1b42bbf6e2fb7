"""amongus.Pipeline: data flow, assignment, evaluation report, bad inputs, real separators."""

import json
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from conversation_fixtures import high_band_scores  # noqa: E402

from amongus.audio import save_audio  # noqa: E402
from amongus.labels import composition_label  # noqa: E402
from amongus.manifest import Utterance, read_mixtures, write_jsonl  # noqa: E402
from amongus.pipeline import Pipeline  # noqa: E402
from amongus.separation.base import SeparatorBase  # noqa: E402

RATE = 16000
BONAFIDE_HZ, SPOOF_HZ = 200.0, 3000.0


def tone(frequency: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 1.0 + 0.5 * np.sin(2 * np.pi * (2 + seed % 3) * t)
    wave = 0.3 * envelope * np.sin(2 * np.pi * (frequency + 7 * seed) * t)
    return (wave + 0.003 * rng.normal(size=t.size)).astype(np.float32)


class ToneClassifier:
    """Deterministic stand-in classifier: spoof probability = share of energy above 1 kHz.

    Bonafide test utterances are low tones and spoofs high tones, so a correct pipeline (right
    streams, right assignment, right bookkeeping) classifies every stream correctly. It counts
    how many streams it scored.
    """

    sample_rate = RATE
    identity = "tone-classifier"

    def __init__(self):
        self.n_scored = 0
        self.n_calls = 0

    def score(self, waveforms, *, sample_rate=None, lengths=None, batch_size=8, progress=False):
        assert sample_rate == self.sample_rate
        rows = [np.asarray(row, dtype=np.float64) for row in waveforms]
        if lengths is not None:
            rows = [row[: int(n)] for row, n in zip(rows, lengths, strict=True)]
        self.n_calls += 1
        self.n_scored += len(rows)
        return high_band_scores(rows)


class SwappingOracle(SeparatorBase):
    """The oracle with its streams in reverse order (a separator's arbitrary order)."""

    sample_rate = None
    n_src = 2
    needs_references = True

    @property
    def identity(self):
        return "swapping-oracle"

    def _separate(self, mixture, lengths, references):
        return references.flip(1).clone()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Eight tone utterances, six mixtures of two made by the Mixer, a tiny WavLM classifier."""
    from amongus.mix import Mixer, MixerConfig
    from amongus.testing.classifiers import build_tiny_classifier

    root = tmp_path_factory.mktemp("pipeline")
    utterances = []
    for index in range(8):
        spoof = index % 2 == 1
        audio = tone(SPOOF_HZ if spoof else BONAFIDE_HZ, 1.2, index)
        path = save_audio(root / "utts" / f"u{index}.wav", audio, RATE)
        utterances.append(
            Utterance(
                utt_id=f"u{index}",
                path=str(path),
                label="spoof" if spoof else "bonafide",
                speaker=f"spk{index}",
                system=("A01" if index % 4 == 1 else "A02") if spoof else "-",
                language="en" if index < 4 else "fr",
            )
        )
    config = MixerConfig(level_mode="gain", min_overlap=0.3)
    Mixer(config).run(utterances, root / "mix", n_mixtures=6, seed=0, workers=1, progress=False)
    classifier_dir = build_tiny_classifier(root / "classifier")
    return {"root": root, "mix": root / "mix", "classifier": classifier_dir}


def test_oracle_pipeline_tracks_labels_end_to_end(workspace):
    classifier = ToneClassifier()
    # batched=True: the CPU default is one mixture at a time (tests/test_batching.py)
    pipeline = Pipeline(separator="oracle", classifier=classifier, batch_size=4, batched=True)
    mixtures = read_mixtures(workspace["mix"] / "mixtures.jsonl")
    report = pipeline.evaluate(workspace["mix"], progress=False)
    assert report.n_evaluated == len(mixtures) == 6 and report.n_skipped == 0
    # one classifier pass per stream, batched: 6 mixtures x 2 streams in 2 calls (4 + 2)
    assert classifier.n_scored == 12 and classifier.n_calls == 2
    assert report.metrics["composition"]["accuracy"] == 1.0
    assert report.metrics["streams"]["eer"] == 0.0
    assert report.metrics["spoof_present"]["accuracy"] == 1.0
    assert [row["true_label"] for row in report.mixture_rows] == [m.label for m in mixtures]
    assert report.metrics["separation"]["si_sdr_mean"] > 50


def test_signal_assignment_undoes_a_swapping_separator(workspace):
    mixture = read_mixtures(workspace["mix"] / "mixtures.jsonl")[0]
    mixture.path = str(workspace["mix"] / mixture.path)
    pipeline = Pipeline(separator=SwappingOracle(), classifier=ToneClassifier())
    result = pipeline(mixture)
    assert result.assignment.permutation == (1, 0)
    assert result.true_labels == mixture.source_labels
    # the stream assigned to each reference carries that reference's label
    assert result.assignment.reorder(result.predicted_labels) == mixture.source_labels
    assert result.mixture_label == mixture.label == composition_label(result.predicted_labels)


def test_labels_assignment_is_flagged_as_optimistic(workspace):
    pipeline = Pipeline(separator="passthrough", classifier=ToneClassifier(), assignment="labels")
    report = pipeline.evaluate(workspace["mix"], progress=False)
    assert report.assignment == "labels"
    assert "assignment: labels (study's method, optimistic)" in str(report)
    assert json.loads(report.to_json())["assignment_description"].endswith("optimistic)")
    assert all(row["reference"] is not None for row in report.stream_rows)


def test_no_assignment_gives_mixture_level_outputs_only(workspace):
    pipeline = Pipeline(separator="passthrough", classifier=ToneClassifier(), assignment=None)
    report = pipeline.evaluate(workspace["mix"], progress=False)
    assert report.metrics["streams"] is None
    assert report.metrics["composition"]["n"] == 6
    assert all(row["true_label"] is None for row in report.stream_rows)
    assert len(report.stream_rows) == 12


def test_passthrough_scores_equal_the_classifier_on_the_mixture(workspace):
    from amongus.audio import load_audio
    from amongus.classifier import SpoofClassifier

    classifier = SpoofClassifier.from_pretrained(workspace["classifier"])
    path = sorted((workspace["mix"] / "audio").glob("*.flac"))[0]
    pipeline = Pipeline(separator="passthrough", classifier=classifier)
    result = pipeline(str(path))
    audio, rate = load_audio(path)
    direct = classifier.score([audio], sample_rate=rate)
    assert result.streams.shape == (2, audio.shape[0])
    assert np.allclose(result.spoof_probability, direct.spoof_probability[0], atol=1e-5)
    assert result.rates == {"mixture": rate, "separator": rate, "classifier": 16000}
    # the same audio given as an array, and as a batch of two rows
    from_array = pipeline(audio, sample_rate=rate)
    assert np.allclose(from_array.cm_score, result.cm_score, atol=1e-5)
    batch = pipeline(np.stack([audio, audio]), sample_rate=rate)
    assert len(batch) == 2 and np.allclose(batch[1].cm_score, result.cm_score, atol=1e-4)


def test_batching_does_not_change_scores(workspace):
    one = Pipeline(separator="passthrough", classifier=str(workspace["classifier"]), batch_size=1)
    four = Pipeline(separator="passthrough", classifier=one.classifier, batch_size=4)
    first = one.evaluate(workspace["mix"], progress=False)
    second = four.evaluate(workspace["mix"], progress=False)
    a = np.array([row["cm_score"] for row in first.stream_rows])
    b = np.array([row["cm_score"] for row in second.stream_rows])
    assert np.allclose(a, b, atol=1e-4)


def test_spoof_threshold_sets_the_decisions(workspace):
    everything_spoof = Pipeline(
        separator="oracle", classifier=ToneClassifier(), spoof_threshold=0.0
    ).evaluate(workspace["mix"], progress=False)
    assert {row["predicted_label"] for row in everything_spoof.mixture_rows} == {"SS"}
    assert all(row["predicted_n_spoofed"] == 2 for row in everything_spoof.mixture_rows)


def test_evaluate_writes_the_full_report(workspace, tmp_path):
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    report = pipeline.evaluate(workspace["mix"], tmp_path / "report", progress=False)
    out = tmp_path / "report"
    for name in (
        "report.json",
        "report.txt",
        "mixtures.csv",
        "streams.csv",
        "skipped.csv",
        "scores_asvspoof.txt",
        "scores_spoof_present.txt",
        "roc_streams.png",
        "det_streams.png",
        "roc_spoof_present.png",
        "confusion_composition.png",
        "confusion_streams.png",
    ):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "report.json").read_text())
    mixtures = read_mixtures(workspace["mix"] / "mixtures.jsonl")
    assert data["counts"] == {
        "inputs": 6,
        "evaluated": 6,
        "skipped": 0,
        "streams": 12,
        "streams_with_labels": 12,
    }
    composition = data["metrics"]["composition"]
    assert sum(map(sum, composition["confusion_matrix"])) == 6
    truth = {label: sum(m.label == label for m in mixtures) for label in composition["labels"]}
    assert {k: v["support"] for k, v in composition["per_class"].items()} == truth
    systems = {s.system for m in mixtures for s in m.sources if s.label == "spoof"}
    assert set(data["metrics"]["eer_by_system"]) == systems
    assert data["separator"] == "oracle:scale=none" and data["classifier"] == "tone-classifier"
    assert data["rates"] == {"mixture": [16000], "separator": [16000], "classifier": 16000}
    score_lines = (out / "scores_asvspoof.txt").read_text().splitlines()
    assert len(score_lines) == 12
    n_spoof_streams = sum(m.n_spoofed for m in mixtures)
    assert sum(line.split()[2] == "spoof" for line in score_lines) == n_spoof_streams
    rows = (out / "mixtures.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("mixture_id,")
    assert len((out / "streams.csv").read_text().splitlines()) == 13
    assert "mixture composition (6 mixtures): accuracy 1.000" in (out / "report.txt").read_text()
    assert report.metrics["composition"]["accuracy"] == 1.0


def test_bad_and_missing_files_are_counted(workspace, tmp_path):
    mix_dir = tmp_path / "mix"
    shutil.copytree(workspace["mix"], mix_dir)
    mixtures = read_mixtures(mix_dir / "mixtures.jsonl")
    missing, garbage = mixtures[0], mixtures[1]
    (mix_dir / missing.path).unlink()
    (mix_dir / garbage.path).write_bytes(b"not audio")
    write_jsonl(mix_dir / "mixtures.jsonl", mixtures)
    with open(mix_dir / "mixtures.jsonl", "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    report = Pipeline(separator="oracle", classifier=ToneClassifier()).evaluate(
        mix_dir, progress=False
    )
    assert report.n_inputs == 7 and report.n_evaluated == 4 and report.n_skipped == 3
    reasons = {item["id"]: item["reason"] for item in report.skipped}
    assert reasons[missing.mixture_id].startswith("missing: file not found")
    assert reasons[garbage.mixture_id].startswith("unreadable: ")
    assert reasons["mixtures.jsonl:7"].startswith("bad manifest line")
    assert "skipped 3" in str(report)
    data = json.loads(report.to_json())
    assert data["skipped_reasons"] == {  # counted by amongus.validation's reason codes
        "missing": 1,
        "unreadable": 1,
        "bad manifest line": 1,
    }


def test_missing_reference_source_is_counted(workspace, tmp_path):
    mixtures = read_mixtures(workspace["mix"] / "mixtures.jsonl")[:2]
    for mixture in mixtures:
        mixture.path = str(workspace["mix"] / mixture.path)
    mixtures[0].sources[0].path = str(tmp_path / "gone.wav")
    report = Pipeline(separator="oracle", classifier=ToneClassifier()).evaluate(
        mixtures, progress=False
    )
    assert report.n_evaluated == 1 and report.n_skipped == 1
    assert report.skipped[0]["reason"].startswith("reference source: missing: file not found")


def test_components_from_names_dicts_and_defaults(workspace, monkeypatch, tmp_path):
    pipeline = Pipeline(
        separator={"name": "passthrough", "n_src": 3},
        classifier={"name": str(workspace["classifier"]), "max_seconds": 2.0},
    )
    assert pipeline.separator.n_src == 3 and pipeline.classifier.max_seconds == 2.0
    import amongus.defaults as defaults

    monkeypatch.setattr(defaults, "MODELS_DIR", tmp_path / "no-models")
    with pytest.raises(FileNotFoundError, match="no shipped default yet"):
        Pipeline()
    with pytest.raises(FileNotFoundError, match="no shipped default yet"):
        Pipeline.from_preset("oracle")
    with pytest.raises(ValueError, match="unknown preset"):
        Pipeline.from_preset("nope")
    with pytest.raises(ValueError, match="unknown assignment mode"):
        Pipeline("oracle", ToneClassifier(), assignment="both")


def test_oracle_without_references_fails_clearly(workspace):
    pipeline = Pipeline(separator="oracle", classifier=ToneClassifier())
    with pytest.raises(ValueError, match="needs the reference sources"):
        pipeline(tone(BONAFIDE_HZ, 0.5, 0), sample_rate=RATE)


@pytest.fixture(scope="module")
def demo_mix(tmp_path_factory):
    """Three mixtures of the bundled demo corpus (eval split) and a tiny WavLM classifier."""
    try:
        from amongus.corpora.demo import demo_utterances

        utterances = demo_utterances("eval")
    except (FileNotFoundError, ImportError, ValueError) as error:
        pytest.skip(f"bundled demo corpus not available: {error}")
    from amongus.mix import Mixer, MixerConfig
    from amongus.testing.classifiers import build_tiny_classifier

    root = tmp_path_factory.mktemp("demo")
    Mixer(MixerConfig()).run(
        utterances, root / "mix", n_mixtures=3, seed=0, workers=1, progress=False
    )
    return {"mix": root / "mix", "classifier": build_tiny_classifier(root / "classifier")}


@pytest.mark.parametrize(
    "kind,separator_rate",
    [("oracle", 16000), ("passthrough", 16000), ("sepformer", 8000), ("convtasnet", 16000)],
)
def test_pipeline_on_the_bundled_demo_with_each_separator(demo_mix, tmp_path, kind, separator_rate):
    from amongus.classifier import SpoofClassifier
    from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

    if kind == "sepformer":
        separator = str(build_tiny_sepformer(tmp_path / "sepformer", sample_rate=separator_rate))
    elif kind == "convtasnet":
        separator = str(build_tiny_convtasnet(tmp_path / "convtasnet", sample_rate=separator_rate))
    else:
        separator = kind
    classifier = SpoofClassifier.from_pretrained(demo_mix["classifier"])
    pipeline = Pipeline(separator=separator, classifier=classifier, batch_size=2)
    report = pipeline.evaluate(demo_mix["mix"], tmp_path / "report", progress=False)
    mixtures = read_mixtures(demo_mix["mix"] / "mixtures.jsonl")
    assert report.n_evaluated == len(mixtures) == 3 and report.n_skipped == 0
    assert report.rates == {"mixture": [16000], "separator": [separator_rate], "classifier": 16000}
    assert len(report.stream_rows) == 6
    assert all(row["true_label"] in ("bonafide", "spoof") for row in report.stream_rows)
    assert json.loads((tmp_path / "report" / "report.json").read_text())["counts"]["streams"] == 6
    # the same mixture through __call__: streams at the classifier rate, scores as in the report
    mixture = mixtures[0]
    mixture.path = str(demo_mix["mix"] / mixture.path)
    result = pipeline(mixture)
    assert result.streams.shape == (2, mixture.num_samples)
    assert np.all(np.isfinite(result.streams))
    assert result.rates["separator"] == separator_rate
    assert sorted(result.assignment.permutation) == [0, 1]
    first_rows = [row for row in report.stream_rows if row["mixture_id"] == mixture.mixture_id]
    assert np.allclose([row["cm_score"] for row in first_rows], result.cm_score, atol=1e-3)
