"""Separation speed and memory: amongus's batched path against the study's per-file loop.

Two measurements, each mode in its own subprocess. Peak RSS is the kernel's high-water mark
(``VmHWM``), reset after the model is loaded and warmed up (``/proc/self/clear_refs``; elsewhere
``ru_maxrss``, which cannot be reset), so "over the loaded model" is what separating added:

1. **Throughput.** The same tiny 8 kHz SepFormer (real SpeechBrain format) and the same 16 kHz
   mixtures, in the study's setup (16 kHz in, separated at 8 kHz, 16 kHz out):
   * ``study``: one file at a time, a new ``torchaudio.transforms.Resample`` built for every call
     (16k -> 8k before, 8k -> 16k after), ``separate_batch`` on a batch of one;
   * ``amongus``: ``separate_at_rate`` on padded batches, with the cached resamplers of
     ``amongus.audio.resample``.
   * ``bare``: the model's forward only (``separator._separate``), one file at a time, on inputs
     resampled to its rate beforehand: what no loop can avoid; every mode is also given as a
     ratio to it.
   Both use ``output_scale="none"`` and their outputs are compared.
2. **Chunking.** Peak RSS separating 10 s and 60 s with the same chunk size, and 60 s unchunked.

``--size real`` times the random-weight SepFormer at the published wsj02mix size (25.7 M
parameters, :mod:`amongus.testing.real_size`) on 4 mixtures of 3 s, one round, and skips the
chunking measurement unless ``--files``/``--seconds``/``--repeats`` and ``--memory`` say otherwise.

Run: ``.venv/bin/python benchmarks/bench_separate.py [--files 32 --seconds 4 --batch-size 8]``
or ``.venv/bin/python benchmarks/bench_separate.py --size real``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_SEPARATION = REPO.parent / "shared" / "data" / "real" / "separation"

# A ConvTasNet large enough that its activations, not the interpreter, dominate unchunked memory.
MEMORY_MODEL_SIZES = {"n_filters": 64, "bn_chan": 32, "hid_chan": 128, "skip_chan": 32}

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch

torch.set_num_threads(int(sys.argv[2]))
args = json.loads(sys.argv[1])

def _status_mb(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None

def reset_peak():
    # Reset the kernel peak-RSS mark (Linux); return the resident set size now, in MB.
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _status_mb("VmRSS")
    except OSError:  # not Linux: ru_maxrss cannot be reset, the baseline is the peak so far
        return peak_mb()

def peak_mb():
    try:
        value = _status_mb("VmHWM")
    except OSError:
        value = None
    if value is None:
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return value

if args["task"] == "throughput":
    import torchaudio
    from amongus.separation import load_separator, separate_at_rate
    separator = load_separator(args["model"], output_scale="none")
    mixtures = [torch.from_numpy(np.load(p)) for p in args["inputs"]]
    rate = args["rate"]

    def study():
        outputs = []
        for mixture in mixtures:  # one file at a time, new resamplers every call
            down = torchaudio.transforms.Resample(rate, separator.sample_rate)
            up = torchaudio.transforms.Resample(separator.sample_rate, rate)
            with torch.inference_mode():
                est = separator.model.separate_batch(down(mixture[None]))  # [1, T, S]
                outputs.append(up(est.transpose(1, 2))[0, :, : mixture.shape[-1]])
        return outputs

    def ours(size):
        outputs = []
        for first in range(0, len(mixtures), size):
            group = mixtures[first : first + size]
            lengths = torch.tensor([m.shape[-1] for m in group])
            batch = torch.zeros(len(group), int(lengths.max()))
            for row, mixture in enumerate(group):
                batch[row, : mixture.shape[-1]] = mixture
            streams, _ = separate_at_rate(separator, batch, rate, rate, lengths)
            outputs += [s[:, :n] for s, n in zip(streams, lengths.tolist())]
        return outputs

    def bare():  # the model's forwards only, at its rate (streams not comparable: not saved)
        with torch.inference_mode():
            return [separator._separate(x, None, None)[0] for x in prepared]

    from amongus.audio import resample as _resample
    prepared = [_resample(m[None], rate, separator.sample_rate) for m in mixtures]

    # modes: {name: batch size, 0 = the study's loop, -1 = bare forwards}; rounds interleave
    # them so that load from other processes on a shared machine affects every mode alike
    runs = {name: (study if size == 0 else bare if size == -1 else (lambda size=size: ours(size)))
            for name, size in args["modes"].items()}
    for run in runs.values():
        run()  # warm-up (first-call allocations, cached resamplers)
    base = reset_peak()
    times = {name: [] for name in runs}
    for _ in range(args["repeats"]):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs = run()
            times[name].append(time.perf_counter() - start)
            np.save(f"{args['out']}/{name}.npy", torch.cat([o.flatten() for o in outputs]).numpy())
    print(json.dumps({"seconds": {n: sorted(t)[len(t) // 2] for n, t in times.items()},
                      "peak_mb": peak_mb(), "baseline_mb": base}))
else:
    from amongus.separation import load_separator, separate_chunked
    separator = load_separator(args["model"])
    rate = separator.sample_rate
    with torch.inference_mode():
        separator.separate(torch.randn(1, rate // 10))  # warm-up
    base = reset_peak()
    mixture = torch.randn(1, int(args["seconds"] * rate), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    if args["chunk_seconds"]:
        streams = separate_chunked(separator, mixture, chunk_seconds=args["chunk_seconds"],
                                   overlap_seconds=args["overlap_seconds"], sample_rate=rate)
    else:
        separator.chunk_seconds = None  # model separators chunk by default: measure them whole
        streams = separator.separate(mixture)
    assert streams.shape == (1, separator.n_src, mixture.shape[-1])
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak_mb(),
                      "baseline_mb": base}))
"""


def run_child(args: dict, *, threads: int = 1) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON result."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_peak_rss(
    model: str | os.PathLike,
    seconds: float,
    *,
    chunk_seconds: float | None,
    overlap_seconds: float = 0.5,
    threads: int = 1,
) -> dict:
    """Peak RSS (MB) of a fresh process separating ``seconds`` of noise with ``model``.

    Returns ``peak_mb``, ``baseline_mb`` (after loading the model and a warm-up) and ``seconds``
    (the time separation took).
    """
    return run_child(
        {
            "task": "memory",
            "model": str(model),
            "seconds": seconds,
            "chunk_seconds": chunk_seconds,
            "overlap_seconds": overlap_seconds,
        },
        threads=threads,
    )


def make_inputs(folder: Path, *, files: int, seconds: float, rate: int = 16000) -> list[str]:
    """``files`` mixtures of ``seconds`` at ``rate`` as .npy: the real two-speaker mixtures of
    ../shared (cycled with shifts) when present, else seeded noise."""
    import numpy as np

    length = int(seconds * rate)
    sources = []
    if SHARED_SEPARATION.is_dir():
        from amongus.audio import load_audio

        sources = [
            load_audio(p, sample_rate=rate)[0]
            for p in sorted(SHARED_SEPARATION.glob("mixture_*.flac"))
        ]
    generator = np.random.default_rng(0)
    paths = []
    for index in range(files):
        if sources:
            audio = np.roll(sources[index % len(sources)], index * 997)
            audio = np.resize(audio, length).astype(np.float32)
        else:
            audio = (0.1 * generator.standard_normal(length)).astype(np.float32)
        path = folder / f"mixture_{index}.npy"
        np.save(path, audio)
        paths.append(str(path))
    return paths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", choices=("tiny", "real"), default="tiny",
        help="tiny SepFormer, or the random-weight one at the published wsj02mix size",
    )  # fmt: skip
    parser.add_argument("--files", type=int, default=None, help="32; real: 4")
    parser.add_argument("--seconds", type=float, default=None, help="4; real: 3")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None, help="3; real: 1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk-seconds", type=float, default=4.0)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory", action="store_true", help="--size real: measure chunking too")
    options = parser.parse_args(argv)
    real = options.size == "real"
    for name, tiny, large in (("files", 32, 4), ("seconds", 4.0, 3.0), ("repeats", 3, 1)):
        if getattr(options, name) is None:
            setattr(options, name, large if real else tiny)
    if real and not options.memory:
        options.skip_memory = True

    import numpy as np

    from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if real:
            from amongus.testing.real_size import cached_real_model

            sepformer = cached_real_model("sepformer-wsj02mix")
        else:
            sepformer = build_tiny_sepformer(tmp / "sepformer", sample_rate=8000)
        inputs = make_inputs(tmp, files=options.files, seconds=options.seconds)
        modes = {
            "bare": (-1, "model forwards only, per file"),
            "study": (0, "per file, new Resample per call"),
            "amongus_b1": (1, "per file, cached resamplers"),
            "amongus": (options.batch_size, f"batches of {options.batch_size}"),
        }

        def throughput(selected: dict) -> dict:
            return run_child(
                {
                    "task": "throughput",
                    "modes": {name: modes[name][0] for name in selected},
                    "model": str(sepformer),
                    "inputs": inputs,
                    "rate": 16000,
                    "repeats": options.repeats,
                    "out": str(tmp),
                },
                threads=options.threads,
            )

        timing_run = throughput(modes)  # all modes interleaved in one process
        timing = timing_run["seconds"]
        # peak memory: one mode each (at real size the interleaved run's own peak is kept)
        memory = {name: throughput([name]) for name in modes} if not real else None
        reference = np.load(tmp / "study.npy")
        difference = max(
            float(np.abs(np.load(tmp / f"{name}.npy") - reference).max())
            for name in modes
            if name != "bare"
        )
        audio_seconds = options.files * options.seconds
        import torch

        from amongus.testing.benchmarking import describe_machine, machine_note

        torch.set_num_threads(options.threads)
        report["machine"] = machine_note()
        print(
            f"Throughput: {options.files} mixtures x {options.seconds:g} s at 16 kHz, "
            f"{options.size} SepFormer at 8 kHz, median of {options.repeats} interleaved "
            f"rounds; {describe_machine(report['machine'])}"
        )
        results = {}
        for name, (_, label) in modes.items():
            run = memory[name] if memory else timing_run
            extra = run["peak_mb"] - run["baseline_mb"]
            results[name] = {
                "seconds": timing[name],
                "over_bare": timing[name] / timing["bare"],
                "real_time_factor": timing[name] / audio_seconds,
                "peak_mb_over_model": extra,
            }
            print(
                f"  {name:10s} ({label:32s}): {timing[name]:.3f} s, "
                f"{timing[name] / timing['bare']:.2f}x bare, "
                f"RTF {timing[name] / audio_seconds:.3f}, peak +{extra:.0f} MB over the "
                f"loaded model{'' if memory else ' (all modes, one process)'}"
            )
        ratio = timing["study"] / timing["amongus"]
        ratio_b1 = timing["study"] / timing["amongus_b1"]
        print(
            f"  speed-up over the study's loop: batched {ratio:.2f}x, per file {ratio_b1:.2f}x; "
            f"max |difference| of the streams: {difference:.2e}"
        )
        report["throughput"] = {
            **results,
            "speedup": ratio,
            "speedup_per_file": ratio_b1,
            "max_abs_difference": difference,
        }

        if not options.skip_memory:
            convtasnet = build_tiny_convtasnet(tmp / "convtasnet.bin", **MEMORY_MODEL_SIZES)
            chunk = options.chunk_seconds
            rows = {
                f"10 s, chunks of {chunk:g} s": measure_peak_rss(
                    convtasnet, 10, chunk_seconds=chunk
                ),
                f"60 s, chunks of {chunk:g} s": measure_peak_rss(
                    convtasnet, 60, chunk_seconds=chunk
                ),
                "10 s, unchunked": measure_peak_rss(convtasnet, 10, chunk_seconds=None),
                "60 s, unchunked": measure_peak_rss(convtasnet, 60, chunk_seconds=None),
            }
            print(f"Memory: ConvTasNet {MEMORY_MODEL_SIZES} at 16 kHz, peak RSS of a fresh process")
            for name, r in rows.items():
                print(
                    f"  {name:24s} peak {r['peak_mb']:7.0f} MB "
                    f"(+{r['peak_mb'] - r['baseline_mb']:6.0f} MB over the loaded model), "
                    f"{r['seconds']:.2f} s"
                )
            values = list(rows.values())
            print(f"  chunked 60 s / 10 s peak: {values[1]['peak_mb'] / values[0]['peak_mb']:.2f}")
            report["memory"] = rows
    return report


if __name__ == "__main__":
    main()
