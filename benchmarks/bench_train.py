"""Time per training epoch: the Trainer against the study's loop and the unavoidable compute.

All three use the same tiny models (``amongus.testing``: a SepFormer at 8 kHz by default, so
streams are resampled to the classifier's 16 kHz, and a WavLM classifier), the same mixtures
(``amongus.training.toy``: the bundled demo set mixed by the Mixer) and run in the same process.
Epochs after the first are timed (the Trainer's first epoch follows the one-off cache fill).

* **Trainer** -- ``Trainer(TrainerConfig(...)).train()``: streams read from the stream cache,
  ``--batch-size`` mixtures per batch (padding + attention masks, length bucketing), one forward
  per stream, Accelerate. The time per epoch is the history's ``epoch_seconds`` (training pass;
  no validation set here; the epoch-end checkpoint is timed separately).
* **(a) study loop** -- as the study trained: every epoch, each mixture is read, resampled to
  the separator's rate with a new resampler, separated alone (``inference_mode``), each stream
  resampled to 16 kHz with a new resampler and featurised alone; the classifier runs twice per
  stream without gradients (to choose the label order) and once more with gradients for the
  loss; batch size 1, gradient accumulation 2, clipping, AdamW.
* **(b) unavoidable compute** -- the classifier's forward and backward (and optimizer step) on
  the Trainer's own batches, prepared and held in memory beforehand: what no loop can avoid.

Targets: the Trainer at least 3x faster than (a), within 1.10x of (b).

``--size real`` uses random-weight models at the published sizes
(:mod:`amongus.testing.real_size`: SepFormer wsj02mix at 8 kHz or ConvTasNet Libri2Mix, and a
WavLM-base or wav2vec2-base classifier, 94.6 M parameters), built once into a cache folder, with
8 mixtures, 2 epochs and 1 round unless given. The real-time factor is the epoch's wall time per
second of mixture audio; the peak RSS is this process's.

Run::

    python benchmarks/bench_train.py                       # prints a table
    python benchmarks/bench_train.py --n-mixtures 32 --epochs 3 --json out.json
    python benchmarks/bench_train.py --size real           # SepFormer + WavLM-base
    python benchmarks/bench_train.py --size real --classifier aasist   # SepFormer + AASIST
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(work: Path, args) -> tuple[Path, Path, Path]:
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer
    from amongus.training.toy import make_toy_mixtures

    manifest = make_toy_mixtures(
        work / "data", n_mixtures=args.n_mixtures, max_source_seconds=args.source_seconds
    )
    if args.size == "real":
        from amongus.testing.benchmarking import real_classifier, real_separator

        return manifest, Path(real_classifier(args.classifier)), Path(real_separator(args.separator))
    if args.classifier == "aasist":
        from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

        classifier = write_tiny_aasist_checkpoint(work / "aasist")
    else:
        classifier = build_tiny_classifier(work / "classifier", hidden_size=args.hidden_size)
    if args.separator == "sepformer":
        separator = build_tiny_sepformer(work / "sepformer", sample_rate=8000)
    else:
        separator = build_tiny_convtasnet(work / "convtasnet", sample_rate=16000)
    return manifest, classifier, separator


def trainer_config(manifest, classifier, separator, work: Path, args):
    from amongus.training import TrainerConfig

    return TrainerConfig(
        train_mixtures=str(manifest),
        classifier=str(classifier),
        separator=str(separator),
        output_dir=str(work / "run"),
        cache_dir=str(work / "cache"),
        val_fraction=0.0,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum_steps=2,
        max_seconds=None,
        freeze="feature_encoder",
        log_with="none",
        resume=False,
        num_workers=args.num_workers,
    )


def run_trainer(config) -> dict:
    from amongus.training import Trainer
    from amongus.training.checkpoint import latest_checkpoint

    started = time.perf_counter()
    trainer = Trainer(config)
    result = trainer.train()
    total = time.perf_counter() - started
    epochs = [row["epoch_seconds"] for row in result.history]
    return {
        "epoch_seconds": epochs,
        "epoch_cpu_seconds": [row["epoch_cpu_seconds"] for row in result.history],
        "total_seconds": total,
        "cache_fill": str(trainer.fill_report),
        "checkpoint": str(latest_checkpoint(Path(config.output_dir) / "checkpoints")),
    }


def unavoidable_compute(config, epochs: int) -> dict:
    """(b): forward + backward + step on the Trainer's batches, prepared beforehand."""
    import torch
    import torch.nn.functional as F

    from amongus.training.data import (
        BucketBatchSampler,
        CachedStreamDataset,
        StreamCollator,
        label_to_index_map,
    )
    from amongus.training.freezing import apply_freezing
    from amongus.training.stream_cache import StreamCache
    from amongus.training.trainer import load_training_classifier, read_mixture_manifest

    classifier = load_training_classifier(config.classifier)
    from amongus.separation import load_separator

    separator = load_separator(config.separator)
    cache = StreamCache(
        config.resolved_cache_dir,
        separator_identity=separator.identity,
        separator_rate=separator.sample_rate,
        stream_rate=classifier.sample_rate,
        dtype=config.cache_dtype,
        chunk_seconds=config.chunk_seconds,
    )
    mixtures = read_mixture_manifest(config.train_mixtures)
    dataset = CachedStreamDataset(
        cache,
        [cache.get(m) for m in mixtures],  # by content: ids may repeat across manifests
        label_to_index=label_to_index_map(classifier.spoof_index, 2),
        # as the Trainer: fixed-input families (AASIST) train on their own segment length
        max_samples=getattr(classifier, "segment_samples", None),
        random_crop=False,
        seed=config.seed,
        require_assignment=True,
    )
    sampler = BucketBatchSampler(
        dataset.lengths(), batch_size=config.batch_size, seed=config.seed, bucket_size=50
    )
    collate = StreamCollator(classifier.prepare)
    model = classifier.model
    apply_freezing(model, freeze=config.freeze)
    use_mask = bool(getattr(classifier, "uses_attention_mask", True))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times, cpu_times = [], []
    for epoch in range(epochs):
        batches = [collate([dataset[key] for key in keys]) for keys in sampler.batches]
        sampler.set_epoch(epoch + 1)
        started, started_cpu = time.perf_counter(), time.process_time()
        for index, batch in enumerate(batches):
            inputs = {"input_values": batch["input_values"]}
            if use_mask:
                inputs["attention_mask"] = batch["attention_mask"]
            logits = model(**inputs).logits
            loss = F.cross_entropy(logits, batch["labels"])
            (loss / 2).backward()
            if index % 2 == 1 or index == len(batches) - 1:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - started_cpu)
    return {"epoch_seconds": times, "epoch_cpu_seconds": cpu_times}


def study_loop(config, epochs: int) -> dict:
    """(a): separate every epoch, batch size 1, three classifier forwards per stream."""
    import torch
    import torch.nn.functional as F
    import torchaudio

    from amongus.audio import load_audio
    from amongus.labels import label_index
    from amongus.separation import load_separator
    from amongus.training.freezing import apply_freezing
    from amongus.training.trainer import load_training_classifier, read_mixture_manifest

    classifier = load_training_classifier(config.classifier)
    separator = load_separator(config.separator)
    mixtures = read_mixture_manifest(config.train_mixtures)
    model = classifier.model
    apply_freezing(model, freeze=config.freeze)  # model.freeze_feature_encoder() for WavLM
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    extractor = getattr(classifier, "feature_extractor", None)
    sep_rate = separator.sample_rate or 16000

    def features(stream):
        if extractor is None:  # AASIST-like: the classifier's own input (its segment length)
            batch = classifier.prepare([stream.numpy()], sample_rate=16000)
            return {"input_values": batch["input_values"]}
        return extractor(
            stream.numpy(), sampling_rate=16000, return_attention_mask=True, return_tensors="pt"
        )

    times, cpu_times = [], []
    for _ in range(epochs):
        started, started_cpu = time.perf_counter(), time.process_time()
        step = 0
        for mixture in mixtures:
            audio, rate = load_audio(mixture.path)
            to_separator = torchaudio.transforms.Resample(rate, sep_rate)  # new every file
            mixed = to_separator(torch.from_numpy(audio))[None]
            with torch.inference_mode():
                streams = separator.separate(mixed)[0]
            labels = [label_index(label) for label in mixture.source_labels]
            inputs = []
            for stream in streams:
                to_classifier = torchaudio.transforms.Resample(sep_rate, 16000)  # new every stream
                inputs.append(features(to_classifier(stream.clone())))
            # choose the stream order against the labels: two forwards per stream, no gradient
            model.eval()
            with torch.no_grad():
                errors = []
                for order in ([0, 1], [1, 0]):
                    total = 0.0
                    for stream_index, label_position in enumerate(order):
                        logits = model(**inputs[stream_index]).logits
                        total += float(
                            F.cross_entropy(logits, torch.tensor([labels[label_position]]))
                        )
                    errors.append(total)
            order = [0, 1] if errors[0] <= errors[1] else [1, 0]
            model.train()
            for stream_index, label_position in enumerate(order):  # the third forward
                logits = model(**inputs[stream_index]).logits
                loss = F.cross_entropy(logits, torch.tensor([labels[label_position]]))
                (loss / 2).backward()
                step += 1
                if step % 2 == 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - started_cpu)
    return {"epoch_seconds": times, "epoch_cpu_seconds": cpu_times}


def _merge(previous: dict | None, current: dict) -> dict:
    """Accumulate rounds: epoch times per round; min and median over the later epochs."""
    merged = dict(previous or {})
    for clock in ("epoch_seconds", "epoch_cpu_seconds"):
        merged.setdefault(clock, []).append(current[clock])
        later = [value for run in merged[clock] for value in run[1:]]
        merged[f"{clock}_later_min"] = min(later)
        merged[f"{clock}_later_median"] = statistics.median(later)
    for key, value in current.items():
        if key not in ("epoch_seconds", "epoch_cpu_seconds"):
            merged.setdefault(key, []).append(value)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", choices=("tiny", "real"), default="tiny",
        help="tiny models, or random-weight models at the published sizes",
    )  # fmt: skip
    parser.add_argument(
        "--classifier",
        choices=("wavlm", "wav2vec2", "aasist"),
        default="wavlm",
        help="WavLM/wav2vec2 (--size real) or AASIST (the published size with --size real, a "
        "tiny one otherwise)",
    )
    parser.add_argument("--n-mixtures", type=int, default=None, help="16; real: 8")
    parser.add_argument("--source-seconds", type=float, default=2.0)
    parser.add_argument(
        "--epochs", type=int, default=None, help="timed: every epoch after the first (3; real: 2)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="Trainer mixtures per batch")
    parser.add_argument("--hidden-size", type=int, default=32, help="tiny classifier width")
    parser.add_argument("--separator", choices=("sepformer", "convtasnet"), default="sepformer")
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternating repetitions (3; real: 1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 keeps CPU timings stable on a shared machine; 0: torch's default)",
    )
    parser.add_argument(
        "--num-workers", type=int, default=1, help="Trainer DataLoader workers (overlap loading)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    real = args.size == "real"
    for name, tiny, large in (("n_mixtures", 16, 8), ("epochs", 3, 2), ("rounds", 3, 1)):
        if getattr(args, name) is None:
            setattr(args, name, large if real else tiny)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (epochs after the first are timed)")
    import logging

    import torch

    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest, classifier, separator = build(work, args)
        config = trainer_config(manifest, classifier, separator, work, args)
        # Rounds alternate the three loops so a busy machine slows them alike.
        ours = compute = study = None
        for round_index in range(args.rounds):
            run_config = config.replace(output_dir=str(work / f"run{round_index}"))
            ours = _merge(ours, run_trainer(run_config))
            compute = _merge(compute, unavoidable_compute(config, args.epochs))
            study = _merge(study, study_loop(config, args.epochs))
        from amongus.testing.benchmarking import audio_seconds

        total_audio = audio_seconds(manifest)
    from amongus.testing.benchmarking import (
        describe_machine,
        machine_note,
        peak_rss_mib,
        real_time_factor,
    )

    machine = machine_note()
    report = {
        "machine": machine,
        "peak_rss_mib": peak_rss_mib(),
        "audio_seconds_per_epoch": total_audio,
        "setup": {
            **vars(args),
            "json": str(args.json) if args.json else None,
            "torch_threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "trainer": ours,
        "study_loop": study,
        "unavoidable_compute": compute,
    }
    print(
        f"\n{args.size} models, {args.n_mixtures} mixtures ({total_audio:.1f} s of audio per "
        f"epoch); {describe_machine(machine)}"
    )
    for clock, title in (("epoch_seconds", "wall-clock"), ("epoch_cpu_seconds", "process CPU")):
        ratios = {}
        for stat in ("min", "median"):
            key = f"{clock}_later_{stat}"
            ratios[f"speedup_vs_study_{stat}"] = study[key] / ours[key]
            ratios[f"trainer_over_compute_{stat}"] = ours[key] / compute[key]
        report[clock] = ratios
        print(f"\n{title} s/epoch, epochs after the first, {args.rounds} round(s)   min   median")
        for name, numbers in (
            ("Trainer (cached streams)", ours),
            ("(a) study loop", study),
            ("(b) unavoidable compute", compute),
        ):
            low, mid = numbers[f"{clock}_later_min"], numbers[f"{clock}_later_median"]
            rtf = f"  RTF {real_time_factor(low, total_audio):.2f}" if clock == "epoch_seconds" else ""
            print(f"{name:46s}{low:>8.3f}{mid:>8.3f}{rtf}")
        print(
            f"speed-up vs (a): {ratios['speedup_vs_study_min']:.2f}x (min) "
            f"{ratios['speedup_vs_study_median']:.2f}x (median); target >= 3x"
        )
        print(
            f"Trainer / (b):   {ratios['trainer_over_compute_min']:.2f}x (min) "
            f"{ratios['trainer_over_compute_median']:.2f}x (median); target <= 1.10x"
        )
    print(ours["cache_fill"][-1])
    print(f"peak RSS of this process: {report['peak_rss_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
