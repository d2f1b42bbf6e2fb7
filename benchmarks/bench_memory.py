"""Peak memory of ``Pipeline`` on long recordings, per shipped preset (issue 12, case 12).

For every preset and duration, a fresh interpreter loads ``Pipeline.from_preset(preset)`` and
runs it on one synthetic 16 kHz recording (two amplitude-modulated harmonic "talkers" that take
turns and overlap, plus a little noise; 16-bit FLAC, written block by block so the parent stays
small). The child reports its peak resident set size (``resource.getrusage(...).ru_maxrss``:
the kernel's high-water mark of the whole process, model loading included) after loading and
after the run. One process per measurement, so no peak hides another.

The criterion: with the separators' default chunking, the peak on a 10-minute recording is at
most 1.5x the peak on a 10-second one, for every preset.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--presets default sepformer-8k]
[--durations 10 120 600] [--threads 1] [--json results.json] [--chunk-seconds inf]``
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
RATE = 16000
CRITERION = 1.5

_CHILD = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(args["threads"])
from amongus import Pipeline

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

overrides = {} if args["chunk_seconds"] is None else {"chunk_seconds": args["chunk_seconds"]}
pipeline = Pipeline.from_preset(args["preset"], **overrides)
loaded = peak_mb()
start = time.perf_counter()
result = pipeline(args["path"])
elapsed = time.perf_counter() - start
print(json.dumps({"peak_mb": peak_mb(), "loaded_mb": loaded, "seconds": elapsed,
                  "label": result.mixture_label, "separator": pipeline.separator_identity,
                  "chunk_seconds": pipeline.chunk_seconds or getattr(pipeline.separator, "chunk_seconds", None)}))
"""


def write_recording(path: Path, seconds: float, *, seed: int = 0, block_seconds: float = 10.0):
    """A synthetic two-talker recording of ``seconds`` at 16 kHz (16-bit FLAC), block by block."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(round(seconds * RATE))
    block = int(block_seconds * RATE)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as handle:
        for start in range(0, total, block):
            time = np.arange(start, min(start + block, total)) / RATE
            talkers = 0.0
            for pitch, turn in ((140.0, 0.0), (230.0, np.pi / 2)):
                voice = sum(np.sin(2 * np.pi * k * pitch * time) / k for k in range(1, 6))
                syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * time + turn))
                turns = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 0.1 * time + turn)) * 0.8)
                talkers = talkers + 0.08 * voice * syllables * turns
            noise = 0.005 * rng.standard_normal(time.size)
            handle.write((talkers + noise).astype(np.float32))


def measure(
    preset: str, path: Path, *, threads: int = 1, chunk_seconds: float | None = None
) -> dict:
    """Run the pipeline of ``preset`` on ``path`` in a fresh interpreter; its JSON report.

    ``chunk_seconds`` overrides the separator's default (``inf``: whole recordings).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    argument = json.dumps(
        {"preset": preset, "path": str(path), "threads": threads, "chunk_seconds": chunk_seconds}
    )
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, argument],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{preset} on {path.name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["default", "sepformer-8k"])
    parser.add_argument("--durations", nargs="+", type=float, default=[10.0, 120.0, 600.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        help="override the separators' default chunking (inf: whole recordings, for comparison)",
    )
    options = parser.parse_args(argv)
    durations = sorted(options.durations)

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        recordings = {}
        for seconds in durations:
            recordings[seconds] = Path(tmp) / f"recording_{seconds:g}s.flac"
            write_recording(recordings[seconds], seconds)
        for preset in options.presets:
            rows = results.setdefault(preset, {})
            for seconds in durations:
                rows[f"{seconds:g}"] = measure(
                    preset,
                    recordings[seconds],
                    threads=options.threads,
                    chunk_seconds=options.chunk_seconds,
                )

    reference = f"{durations[0]:g}"
    header = f"{'preset':<14} {'duration':>9} {'peak RSS':>10} {'vs ' + reference + ' s':>9}"
    print(header + f" {'after load':>11} {'run time':>9}  chunk")
    failed = []
    for preset, rows in results.items():
        base = rows[reference]["peak_mb"]
        for duration, row in rows.items():
            row["ratio"] = row["peak_mb"] / base
            print(
                f"{preset:<14} {duration + ' s':>9} {row['peak_mb']:>7.0f} MB {row['ratio']:>8.2f}x"
                f" {row['loaded_mb']:>8.0f} MB {row['seconds']:>8.1f}s  {row['chunk_seconds']}"
            )
            if row["ratio"] > CRITERION:
                failed.append(f"{preset} {duration} s")
    print(
        f"criterion (peak at most {CRITERION}x that on {reference} s): "
        + ("met" if not failed else "NOT met for " + ", ".join(failed))
    )
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
