"""Speed-up and EER change of int8 dynamic quantization (``quantize=True``) on real speech.

For each classifier: the float and the int8 classifier score the same inputs in the same process,
in interleaved rounds (so load from other jobs affects both alike):

* the real-speech eval part, single utterances (``amongus.recipes.real_speech``; needs
  ``../shared/data/real`` or ``--eval``);
* with ``--mixtures`` (a Mixer folder of the eval part, e.g. the one
  ``python -m amongus.recipes.real_speech evaluate`` writes), the oracle streams of those
  mixtures through :meth:`amongus.Pipeline.evaluate` (signal assignment).

Printed per classifier and input: seconds (wall and process CPU, median of ``--rounds``), the
speed-up, the EER of each and its change, the bootstrap standard error of the float EER
(``--bootstrap`` resamples of the utterances, stratified by label: the noise level the change is
compared with) and the largest change of a spoof probability.

Run: ``python benchmarks/bench_quantize.py --classifiers aasist wavlm-spoof-clean``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def bootstrap_eer_se(labels: list[str], scores: np.ndarray, *, n: int, seed: int = 0) -> float:
    """Standard error of the EER under resampling items with replacement, within each class."""
    from amongus.metrics import eer

    labels_array = np.asarray(labels)
    bonafide = scores[labels_array == "bonafide"]
    spoof = scores[labels_array == "spoof"]
    rng = np.random.default_rng(seed)
    values = [
        eer(rng.choice(bonafide, bonafide.size), rng.choice(spoof, spoof.size),
            warn_inverted=False)[0]
        for _ in range(n)
    ]  # fmt: skip
    return float(np.std(values, ddof=1))


def _eer(labels: list[str], scores: np.ndarray) -> float:
    from amongus.metrics import eer, split_scores

    bonafide, spoof = split_scores(labels, scores)
    return float(eer(bonafide, spoof, warn_inverted=False)[0])


def compare_single(name: str, utterances, rounds: int, bootstrap: int) -> dict:
    from amongus.pipeline import load_classifier
    from amongus.quantization import quantize_classifier
    from amongus.validation import load_utterance_audio

    models = {"float": load_classifier(name), "int8": quantize_classifier(load_classifier(name))}
    rate = int(models["float"].sample_rate)
    audio = [load_utterance_audio(u, sample_rate=rate)[0] for u in utterances]
    labels = [u.label for u in utterances]
    times: dict[str, list[tuple[float, float]]] = {key: [] for key in models}
    scores = {}
    for model in models.values():  # warm-up
        model.score(audio[:1], sample_rate=rate, batch_size=1)
    for _ in range(rounds):
        for key, model in models.items():
            result, wall, cpu = _timed(lambda m=model: m.score(audio, sample_rate=rate,
                                                                batch_size=1))  # fmt: skip
            times[key].append((wall, cpu))
            scores[key] = result
    return _summary(name, "single utterances", labels, scores, times, bootstrap,
                    seconds_of_audio=sum(a.size for a in audio) / rate)  # fmt: skip


def compare_mixtures(name: str, mixtures: Path, rounds: int, bootstrap: int) -> dict:
    from amongus.pipeline import Pipeline

    pipelines = {
        "float": Pipeline(separator="oracle", classifier=name, batch_size=1),
        "int8": Pipeline(separator="oracle", classifier=name, batch_size=1, quantize=True),
    }
    times: dict[str, list[tuple[float, float]]] = {key: [] for key in pipelines}
    scores, labels = {}, None
    for _ in range(rounds):
        for key, pipeline in pipelines.items():
            report, wall, cpu = _timed(
                lambda p=pipeline: p.evaluate(mixtures, progress=False)
            )
            times[key].append((wall, cpu))
            rows = [row for row in report.stream_rows if row.get("true_label")]
            labels = [row["true_label"] for row in rows]
            scores[key] = rows
    as_scores = {
        key: _Scores(np.array([r["cm_score"] for r in rows]),
                     np.array([r["spoof_probability"] for r in rows]))
        for key, rows in scores.items()
    }  # fmt: skip
    return _summary(name, "oracle streams of the eval mixtures", labels, as_scores, times,
                    bootstrap)  # fmt: skip


class _Scores:
    def __init__(self, cm_score, spoof_probability):
        self.cm_score, self.spoof_probability = cm_score, spoof_probability


def _summary(name, inputs, labels, scores, times, bootstrap, seconds_of_audio=None) -> dict:
    median = {
        key: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for key, values in times.items()
    }
    float_cm = np.asarray(scores["float"].cm_score, dtype=float)
    int8_cm = np.asarray(scores["int8"].cm_score, dtype=float)
    result = {
        "classifier": name,
        "inputs": inputs,
        "n": len(labels),
        "n_spoof": labels.count("spoof"),
        "wall_seconds": {key: value[0] for key, value in median.items()},
        "cpu_seconds": {key: value[1] for key, value in median.items()},
        "speedup_wall": median["float"][0] / median["int8"][0],
        "speedup_cpu": median["float"][1] / median["int8"][1],
        "eer_float": _eer(labels, float_cm),
        "eer_int8": _eer(labels, int8_cm),
        "eer_bootstrap_se": bootstrap_eer_se(labels, float_cm, n=bootstrap),
        "max_abs_probability_change": float(
            np.abs(np.asarray(scores["float"].spoof_probability)
                   - np.asarray(scores["int8"].spoof_probability)).max()
        ),  # fmt: skip
        "audio_seconds": seconds_of_audio,
    }
    result["eer_change"] = result["eer_int8"] - result["eer_float"]
    result["within_noise"] = abs(result["eer_change"]) <= result["eer_bootstrap_se"]
    print(
        f"{name:22s} {inputs:38s} n {result['n']:3d}: int8 {result['speedup_wall']:.2f}x "
        f"faster (wall; CPU time {result['speedup_cpu']:.2f}x); EER {100 * result['eer_float']:.1f}%"
        f" -> {100 * result['eer_int8']:.1f}% (change {100 * result['eer_change']:+.1f} points; "
        f"bootstrap SE {100 * result['eer_bootstrap_se']:.1f}); max |d p_spoof| "
        f"{result['max_abs_probability_change']:.4f}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifiers", nargs="+", default=["aasist", "wavlm-spoof-clean"])
    parser.add_argument("--eval", default=None,
                        help="split folder or eval.jsonl (default: ../shared/data/real)")  # fmt: skip
    parser.add_argument("--mixtures", type=Path, default=None,
                        help="Mixer folder of eval-part mixtures (oracle streams)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    options = parser.parse_args(argv)

    import torch

    from amongus.recipes.real_speech import load_part, shared_real_root

    torch.set_num_threads(options.threads)
    source = options.eval or shared_real_root("auto")
    if source is None:
        print("no real speech: give --eval or put the folder at ../shared/data/real")
        return []
    utterances = load_part(source, "eval")
    from amongus.testing.benchmarking import describe_machine, machine_note

    print(f"{len(utterances)} eval utterances; {describe_machine(machine_note())}; "
          f"{options.rounds} interleaved rounds, {options.threads} thread(s)")  # fmt: skip
    results = []
    for name in options.classifiers:
        results.append(compare_single(name, utterances, options.rounds, options.bootstrap))
        if options.mixtures is not None:
            results.append(
                compare_mixtures(name, options.mixtures, options.rounds, options.bootstrap)
            )
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
