"""Speed and memory of ``Pipeline.evaluate`` against the study's per-file loop.

Both sides use the same tiny models (``amongus.testing``: a SepFormer at 8 kHz by default and a
WavLM classifier at 16 kHz, so both resampling steps happen), the same mixtures (made by the
Mixer from the bundled demo corpus) and run in the same process, alternating.

* **study loop** -- the plain way, as the study's evaluation script did it: for each file, read
  it, build a new ``torchaudio`` resampler to the separator's rate, separate it alone, and for
  each stream build another new resampler, run the feature extractor and the classifier; the
  classifier runs three times per stream (twice to choose the stream order against the labels,
  once for the scores). ``--forwards 1`` gives the same loop with one forward per stream.
* **Pipeline.evaluate** -- batched separation, cached resamplers, one classifier forward per
  stream, rows instead of audio kept; with ``assignment="labels"`` (the same method) and with the
  default ``"signal"`` (which additionally renders every mixture's reference sources).

Memory: ``Pipeline.evaluate`` runs in a fresh subprocess on ``N`` and on ``10 N`` mixtures and
reports each one's peak RSS (``resource.getrusage``); the target is at most 1.2x.

* **bare forwards** -- only the models' forward passes on the same mixtures, inputs prepared
  beforehand and held in memory: the separator's raw model on each mixture at its rate, the
  classifier's model on each mixture's streams. What no evaluation loop can avoid; the
  pipelines' times are also given as ratios to it.

``--size real`` uses random-weight models at the published sizes
(:mod:`amongus.testing.real_size`: SepFormer wsj02mix 25.7 M at 8 kHz or ConvTasNet Libri2Mix
5.1 M, and a WavLM-base / wav2vec2-base / AASIST classifier), built once into a cache folder; it
defaults to 8 mixtures, one round, no study loop (``--with-study`` adds it) and no memory
subprocesses (the process's own peak RSS is reported).

Run::

    python benchmarks/bench_evaluate.py                      # speed + memory, prints a table
    python benchmarks/bench_evaluate.py --separator convtasnet --n-mixtures 24 --json out.json
    python benchmarks/bench_evaluate.py --size real          # SepFormer + WavLM-base, 8 mixtures
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


# ---------------------------------------------------------------------------- setup
def demo_or_synthetic_utterances(work: Path) -> tuple[list, str]:
    """The bundled demo corpus (eval + dev), or synthetic tones when it is not installed."""
    try:
        from amongus.corpora.demo import demo_utterances

        utterances = demo_utterances("eval") + demo_utterances("dev")
        # private copies: the mixtures' sources stay valid whatever happens to the install
        copies = work / "utterances"
        copies.mkdir(parents=True, exist_ok=True)
        for utterance in utterances:
            target = copies / Path(utterance.path).name
            shutil.copyfile(utterance.path, target)
            utterance.path = str(target)
        return utterances, "demo corpus (eval + dev)"
    except (FileNotFoundError, ValueError) as error:
        print(f"demo corpus unavailable ({error}); using synthetic tones", flush=True)
    from amongus.audio import save_audio
    from amongus.manifest import Utterance

    rng = np.random.default_rng(0)
    utterances = []
    for index in range(32):
        n_samples = int(16000 * rng.uniform(2.0, 3.5))
        t = np.arange(n_samples) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (120 + 30 * index) * t) * (1 + 0.5 * np.sin(6 * t))
        wave = (wave + 0.02 * rng.normal(size=n_samples)).astype(np.float32)
        path = save_audio(work / "utterances" / f"u{index}.flac", wave, 16000)
        label = "spoof" if index % 2 else "bonafide"
        utterances.append(
            Utterance(utt_id=f"u{index}", path=str(path), label=label, speaker=f"s{index}")
        )
    return utterances, "synthetic tones"


def make_mixtures(work: Path, n_mixtures: int, seed: int = 0) -> tuple[Path, str]:
    """Mixtures of two utterances written by the Mixer (default settings)."""
    from amongus.mix import Mixer, MixerConfig

    utterances, description = demo_or_synthetic_utterances(work)
    out_dir = work / "mix"
    Mixer(MixerConfig()).run(
        utterances, out_dir, n_mixtures=n_mixtures, seed=seed, workers=1, progress=False
    )
    return out_dir / "mixtures.jsonl", description


def build_models(
    work: Path, separator_kind: str, size: str = "tiny", classifier_kind: str = "wavlm"
) -> tuple[str, str]:
    if size == "real":
        from amongus.testing.benchmarking import real_classifier, real_separator

        return real_separator(separator_kind), real_classifier(classifier_kind)
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

    classifier = build_tiny_classifier(work / "classifier")
    if separator_kind == "sepformer":
        separator = build_tiny_sepformer(work / "sepformer", sample_rate=8000)
    elif separator_kind == "convtasnet":
        separator = build_tiny_convtasnet(work / "convtasnet", sample_rate=16000)
    else:
        separator = separator_kind
    return str(separator), str(classifier)


# ---------------------------------------------------------------------------- the study's loop
def study_loop(manifest: Path, separator, model, feature_extractor, *, forwards: int = 3) -> int:
    """The per-file evaluation loop of the study (see the module docstring). Returns files done."""
    import soundfile as sf
    import torch
    import torchaudio

    from amongus.manifest import read_mixtures

    classifier_rate = int(feature_extractor.sampling_rate)
    done = 0
    for mixture in read_mixtures(manifest):
        audio, rate = sf.read(str(manifest.parent / mixture.path), dtype="float32")
        waveform = torch.from_numpy(audio)[None]
        separator_rate = separator.sample_rate or rate
        if separator_rate != rate:
            waveform = torchaudio.transforms.Resample(rate, separator_rate)(waveform)
        streams = separator.separate(waveform)  # [1, S, T]
        for index in range(streams.shape[1]):
            stream = streams[0, index]
            if separator_rate != classifier_rate:
                stream = torchaudio.transforms.Resample(separator_rate, classifier_rate)(stream)
            for _ in range(forwards):
                inputs = feature_extractor(
                    stream.numpy(), sampling_rate=classifier_rate, return_tensors="pt"
                )
                with torch.no_grad():
                    model(**inputs).logits.softmax(-1)
        done += 1
    return done


# ---------------------------------------------------------------------------- bare forwards
def load_for_bare(manifest: Path, separator, classifier) -> list:
    """Each mixture read and resampled to the separator's rate, beforehand: ``[1, T]`` tensors."""
    import torch

    from amongus.audio import load_audio, resample
    from amongus.manifest import read_mixtures

    inputs = []
    for mixture in read_mixtures(manifest):
        audio, rate = load_audio(manifest.parent / mixture.path)
        target = separator.sample_rate or rate
        inputs.append((torch.from_numpy(resample(audio, rate, target))[None], target))
    return inputs


def bare_forwards(inputs: list, separator, classifier) -> tuple[int, dict]:
    """The models' forwards only (see the module docstring); returns (mixtures, seconds by stage).

    Inputs to the classifier are made between the two timed stages, so no resampling or feature
    extraction is timed.
    """
    import torch

    from amongus.audio import resample

    started = time.perf_counter()
    outputs = []
    with torch.inference_mode():
        for waveform, _ in inputs:
            outputs.append(separator._separate(waveform, None, None))
    separate_seconds = time.perf_counter() - started
    rate = classifier.sample_rate
    batches = [
        classifier.prepare(
            [resample(stream.numpy(), separator_rate, rate) for stream in streams[0]],
            sample_rate=rate,
        )
        for streams, (_, separator_rate) in zip(outputs, inputs, strict=True)
    ]
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            classifier.logits(batch)
    classify_seconds = time.perf_counter() - started
    return len(inputs), {"separate": separate_seconds, "classify": classify_seconds}


# ---------------------------------------------------------------------------- memory child
def _evaluate_all(pipeline, manifest: Path) -> int:
    report = pipeline.evaluate(manifest, progress=False)
    if report.n_skipped:
        raise RuntimeError(f"benchmark mixtures were skipped: {report.skipped}")
    return report.n_evaluated


def memory_child(args: argparse.Namespace) -> None:
    from amongus.classifier import SpoofClassifier
    from amongus.pipeline import Pipeline

    pipeline = Pipeline(
        separator=args.separator_source,
        classifier=SpoofClassifier.from_pretrained(args.classifier_source),
        assignment=args.assignment,
        batch_size=args.batch_size,
    )
    started = time.perf_counter()
    report = pipeline.evaluate(args.manifest, progress=False, limit=args.limit)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "n": report.n_evaluated,
                "skipped": report.n_skipped,
                "peak_rss_mib": peak_kib / 1024,
                "seconds": elapsed,
            }
        )
    )


def run_memory_child(
    manifest, separator, classifier, limit, assignment, batch_size, threads
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        "--manifest",
        str(manifest),
        "--separator-source",
        separator,
        "--classifier-source",
        classifier,
        "--limit",
        str(limit),
        "--assignment",
        assignment,
        "--batch-size",
        str(batch_size),
        "--threads",
        str(threads),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--separator", default="sepformer", help="sepformer, convtasnet, passthrough"
    )
    parser.add_argument(
        "--size", choices=("tiny", "real"), default="tiny",
        help="tiny models, or random-weight models at the published sizes",
    )  # fmt: skip
    parser.add_argument(
        "--classifier", choices=("wavlm", "wav2vec2", "aasist"), default="wavlm",
        help="classifier kind (aasist needs --size real)",
    )  # fmt: skip
    parser.add_argument("--with-study", action="store_true", help="--size real: time the study too")
    parser.add_argument(
        "--quantize", action="store_true",
        help="also time the default pipeline with an int8-quantized classifier (own copy)",
    )  # fmt: skip
    parser.add_argument(
        "--compare-batched", action="store_true",
        help="also time the default pipeline with batched=True (the CPU default is one mixture "
        "at a time)",
    )  # fmt: skip
    parser.add_argument(
        "--n-mixtures", type=int, default=None, help="mixtures for the speed test (16; real: 8)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (2; real: 1)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--forwards", type=int, default=3, help="study loop forwards per stream")
    parser.add_argument("--memory-n", type=int, default=8, help="N for the memory test (and 10 N)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--workdir", type=Path, default=None)
    # internal: the memory measurement subprocess
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--separator-source", help=argparse.SUPPRESS)
    parser.add_argument("--classifier-source", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--assignment", default="signal", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        import torch

        torch.set_num_threads(args.threads)
        memory_child(args)
        return {}

    import torch

    from amongus.manifest import read_mixtures
    from amongus.pipeline import Pipeline, load_classifier, load_pipeline_separator
    from amongus.testing.benchmarking import (
        audio_seconds,
        describe_machine,
        machine_note,
        peak_rss_mib,
        real_time_factor,
    )

    real = args.size == "real"
    if args.n_mixtures is None:
        args.n_mixtures = 8 if real else 16
    if args.repeats is None:
        args.repeats = 1 if real else 2
    if real:
        args.no_memory = True
    with_study = args.classifier != "aasist" and (args.with_study or not real)
    torch.set_num_threads(args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    n_total = max(args.n_mixtures, 10 * args.memory_n if not args.no_memory else 0)
    print(f"making {n_total} mixtures in {work} ...", flush=True)
    manifest, data_description = make_mixtures(work, n_total)
    lines = manifest.read_text().splitlines()[: args.n_mixtures]
    # the speed manifest sits next to the audio folder, so relative paths resolve alike
    speed_manifest = manifest.parent / "speed.jsonl"
    speed_manifest.write_text("\n".join(lines) + "\n")
    separator_source, classifier_source = build_models(
        work, args.separator, args.size, args.classifier
    )
    separator = load_pipeline_separator(separator_source)
    classifier = load_classifier(classifier_source)
    pipelines = {
        "pipeline_labels": Pipeline(
            separator=separator, classifier=classifier, assignment="labels",
            batch_size=args.batch_size,
        ),
        "pipeline_signal": Pipeline(
            separator=separator, classifier=classifier, assignment="signal",
            batch_size=args.batch_size,
        ),
    }  # fmt: skip
    if real:
        del pipelines["pipeline_labels"]  # the default assignment is the one that counts
    if args.quantize:  # a classifier of its own: quantization replaces the model in place
        pipelines["pipeline_signal_int8"] = Pipeline(
            separator=separator, classifier=classifier_source, assignment="signal",
            batch_size=args.batch_size, quantize=True,
        )  # fmt: skip
    if args.compare_batched:
        pipelines["pipeline_signal_batched"] = Pipeline(
            separator=separator, classifier=classifier, assignment="signal",
            batch_size=args.batch_size, batched=True,
        )  # fmt: skip
    bare_inputs = load_for_bare(speed_manifest, separator, classifier)
    # warm-up (first-call costs: thread pools, resampler kernels) on two mixtures
    bare_forwards(bare_inputs[:2], separator, classifier)
    if with_study:
        study_loop(
            speed_manifest, separator, classifier.model, classifier.feature_extractor, forwards=1
        )
    for pipeline in pipelines.values():
        pipeline.evaluate(speed_manifest, progress=False, limit=2)

    names = [
        "bare_forwards",
        *(["study_loop"] if with_study else []),
        *(["plain_loop_1_forward"] if with_study and args.forwards != 1 else []),
        *pipelines,
    ]
    timings: dict[str, list[float]] = {name: [] for name in names}  # mixtures per wall second
    cpu_timings: dict[str, list[float]] = {name: [] for name in names}  # per CPU second

    def timed(name: str, run) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        done = run()
        timings[name].append(done / (time.perf_counter() - wall))
        cpu_timings[name].append(done / (time.process_time() - cpu))

    stages: list[dict] = []

    def bare() -> int:
        done, seconds = bare_forwards(bare_inputs, separator, classifier)
        stages.append(seconds)
        return done

    model = classifier.model
    extractor = getattr(classifier, "feature_extractor", None)
    for _ in range(args.repeats):
        timed("bare_forwards", bare)
        if with_study:
            timed(
                "study_loop",
                lambda: study_loop(
                    speed_manifest, separator, model, extractor, forwards=args.forwards
                ),
            )
        if "plain_loop_1_forward" in timings:
            timed(
                "plain_loop_1_forward",
                lambda: study_loop(speed_manifest, separator, model, extractor, forwards=1),
            )
        for name, pipeline in pipelines.items():
            timed(name, lambda p=pipeline: _evaluate_all(p, speed_manifest))
    best = {name: max(values) for name, values in timings.items()}
    best_cpu = {name: max(values) for name, values in cpu_timings.items()}
    total_audio = audio_seconds(speed_manifest)
    machine = machine_note()
    results = {
        "size": args.size,
        "machine": machine,
        "bare_stage_seconds": min(stages, key=lambda s: s["separate"] + s["classify"]),
        "over_bare_wall": {name: best["bare_forwards"] / best[name] for name in names},
        "real_time_factor": {
            name: real_time_factor(args.n_mixtures / best[name], total_audio) for name in names
        },
        "peak_rss_mib": peak_rss_mib(),
        "separator": separator.identity,
        "classifier": classifier.identity,
        "n_mixtures": args.n_mixtures,
        "data": data_description,
        "mixture_seconds_mean": float(
            np.mean([m.num_samples / m.sample_rate for m in read_mixtures(speed_manifest)])
        ),
        "batch_size": args.batch_size,
        "study_forwards_per_stream": args.forwards,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "mixtures_per_second": best,
        "mixtures_per_cpu_second": best_cpu,
        "all_rounds": timings,
        "all_rounds_cpu": cpu_timings,
    }
    reference = "study_loop" if with_study else "bare_forwards"
    for measure, table in (("wall", best), ("cpu", best_cpu)):
        for name in names:
            if name != reference and with_study:
                results[f"speedup_{measure}_{name}_vs_study"] = table[name] / table["study_loop"]
    print(
        f"\n{args.size} models: {separator.identity} + {classifier.identity}\n"
        f"{args.n_mixtures} mixtures, {total_audio:.1f} s of audio; {describe_machine(machine)}"
    )
    print(f"throughput (best of {args.repeats} rounds; CPU time counts all threads):")
    print(
        f"  {'':<24} {'mix/s wall':>10} {'mix/CPU-s':>10} {'x/bare':>7} {'RTF':>6}"
        + (f" {'x study':>8}" if with_study else "")
    )
    for name in names:
        line = (
            f"  {name:<24} {best[name]:10.3f} {best_cpu[name]:10.3f} "
            f"{best['bare_forwards'] / best[name]:7.2f} {results['real_time_factor'][name]:6.2f}"
        )
        if with_study:
            line += f" {best[name] / best['study_loop']:8.2f}"
        print(line)
    print(
        "  x/bare: wall time over the bare forwards' (lower is better); RTF: wall seconds per "
        "second of audio"
    )
    print(f"  peak RSS of this process: {results['peak_rss_mib']:.0f} MiB")
    if not args.no_memory:
        small = run_memory_child(
            manifest, separator_source, classifier_source, args.memory_n, "signal",
            args.batch_size, args.threads,
        )  # fmt: skip
        large = run_memory_child(
            manifest, separator_source, classifier_source, 10 * args.memory_n, "signal",
            args.batch_size, args.threads,
        )  # fmt: skip
        ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        results["memory"] = {"small": small, "large": large, "peak_rss_ratio": ratio}
        print(
            f"\npeak RSS of Pipeline.evaluate (signal assignment, fresh process): "
            f"{small['n']} mixtures {small['peak_rss_mib']:.0f} MiB, "
            f"{large['n']} mixtures {large['peak_rss_mib']:.0f} MiB -> ratio {ratio:.3f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
