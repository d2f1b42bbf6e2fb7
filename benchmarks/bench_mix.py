"""Mixtures per second: amongus.mix (default settings, every core) vs the study's plain loop.

The reference loop is written the way the study did it: one process, ``librosa.load`` per
file, numpy delay/cut/gain/sum/peak, ``soundfile.write``. Both make the same number of
two-speaker mixtures from the same utterances in the same run.

    python benchmarks/bench_mix.py [--n-mixtures 400] [--workers N] [--input manifest.jsonl]
    python benchmarks/bench_mix.py --size real [--rounds 3]

Mixing runs no model, so ``--size`` only sets the defaults: ``tiny`` 400 mixtures, ``real`` 2,000
(a realistic run, still a few minutes on 2 cores). The study's loop is the bare compute here (read,
numpy, write, nothing else); the real-time factor is wall seconds per second of mixture audio.

Without ``--input`` it uses the bundled demo set when present (amongus.corpora.demo), else
synthetic 16 kHz utterances written to a temporary folder. ``--rounds N`` repeats both in
alternation, each round into new folders, and reports the median rates and the median of the
per-round ratios (load from other jobs then affects both sides alike).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from amongus.manifest import Utterance, read_utterances
from amongus.mix import Mixer, MixerConfig


def synthetic_utterances(folder: Path, n: int = 120, seed: int = 0) -> list[Utterance]:
    """ASVspoof-like inputs: 2-5 s, 16 kHz FLAC, half spoof."""
    rng = np.random.default_rng(seed)
    utterances = []
    for i in range(n):
        rate = 16000
        t = np.arange(int(rng.uniform(2.0, 5.0) * rate)) / rate
        envelope = (np.sin(2 * np.pi * rng.uniform(2, 4) * t) > -0.4).astype(float)
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * envelope
        audio += 0.003 * rng.standard_normal(t.shape[0])
        path = folder / f"LA_T_{i:07d}.flac"
        sf.write(path, audio.astype(np.float32), rate)
        label = "spoof" if i % 2 else "bonafide"
        utterances.append(Utterance(path.stem, str(path), label, speaker=f"LA_{i % 20:04d}"))
    return utterances


def demo_or_synthetic(folder: Path) -> tuple[list[Utterance], str]:
    try:
        from amongus.corpora.demo import demo_utterances

        utterances = demo_utterances("train")
        if len(utterances) >= 10:
            return utterances, "bundled demo set (train)"
    except Exception:  # demo set not available: synthetic inputs
        pass
    return synthetic_utterances(folder), "synthetic 16 kHz FLAC utterances (2-5 s)"


def study_loop(utterances: list[Utterance], out: Path, n_mixtures: int, seed: int) -> None:
    """The study's recipe, written the plain way."""
    import librosa

    random.seed(seed)
    spoof = [u for u in utterances if u.label == "spoof"]
    bonafide = [u for u in utterances if u.label == "bonafide"]
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(n_mixtures):
        r = random.random()
        if r < 0.5:
            first, second = random.choice(spoof), random.choice(bonafide)
        elif r < 0.75:
            first, second = random.sample(bonafide, 2)
        else:
            first, second = random.sample(spoof, 2)
        a, sr = librosa.load(first.path, sr=None)
        b, _ = librosa.load(second.path, sr=None)
        delay = np.zeros(int(random.uniform(0, 1) * sr))
        if random.random() < 0.5:
            a = np.concatenate([delay, a])
        else:
            b = np.concatenate([delay, b])
        n = min(len(a), len(b))
        mixture = a[:n] * random.uniform(0.7, 1.3) + b[:n] * random.uniform(0.7, 1.3)
        mixture = mixture / np.max(np.abs(mixture))
        sf.write(out / f"{first.utt_id}_{second.utt_id}.flac", mixture, sr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--n-mixtures", type=int, default=None, help="400; real: 2000")
    parser.add_argument("--workers", type=int, default=None, help="default: every core")
    parser.add_argument("--input", type=Path, default=None, help="JSONL utterance manifest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (median)")
    args = parser.parse_args(argv)
    if args.n_mixtures is None:
        args.n_mixtures = 2000 if args.size == "real" else 400
    workers = args.workers or os.cpu_count() or 1
    import librosa  # noqa: F401  (import cost is not part of either measurement)

    with tempfile.TemporaryDirectory(prefix="bench-mix-") as tmp:
        tmp = Path(tmp)
        if args.input:
            utterances, origin = read_utterances(args.input), str(args.input)
        else:
            (tmp / "utts").mkdir()
            utterances, origin = demo_or_synthetic(tmp / "utts")
        print(f"inputs: {len(utterances)} utterances, {origin}")
        print(f"machine: {os.cpu_count()} cores; mixer workers: {workers}")

        study_rates, mixer_rates = [], []
        for round_index in range(args.rounds):
            started = time.perf_counter()
            study_loop(utterances, tmp / f"study{round_index}", args.n_mixtures, args.seed)
            study_rates.append(args.n_mixtures / (time.perf_counter() - started))

            started = time.perf_counter()
            Mixer(MixerConfig()).run(
                utterances, tmp / f"amongus{round_index}", n_mixtures=args.n_mixtures,
                seed=args.seed, workers=workers, progress=False,
            )  # fmt: skip
            mixer_rates.append(args.n_mixtures / (time.perf_counter() - started))
        study_rate, mixer_rate = statistics.median(study_rates), statistics.median(mixer_rates)
        ratio = statistics.median(m / s for m, s in zip(mixer_rates, study_rates, strict=True))
        produced = sum(
            sf.info(str(path)).duration
            for path in (tmp / "amongus0").rglob("*")
            if path.suffix.lower() in (".flac", ".wav")
        ) or float("nan")

    import torch

    from amongus.testing.benchmarking import describe_machine, machine_note, peak_rss_mib

    print(describe_machine(machine_note()))
    print(
        f"audio made: {produced:.0f} s; real-time factor (wall s per audio s): study "
        f"{args.n_mixtures / study_rate / produced:.4f}, amongus "
        f"{args.n_mixtures / mixer_rate / produced:.4f}; peak RSS of the main process "
        f"{peak_rss_mib():.0f} MiB (torch {torch.__version__})"
    )

    print(f"study loop (librosa.load, numpy, soundfile.write; 1 process): {study_rate:8.1f} mix/s")
    print(f"amongus.mix default preset ({workers} workers):                {mixer_rate:8.1f} mix/s")
    print(
        f"ratio: {ratio:.2f}x (amongus over the bare loop; median of {args.rounds} round(s): "
        + ", ".join(f"{m / s:.2f}" for m, s in zip(mixer_rates, study_rates, strict=True))
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
