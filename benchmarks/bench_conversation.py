"""Speed and memory of ``Pipeline.analyze`` on long calls: is it linear in the duration?

For each length in ``--minutes`` a call is simulated by the conversation mixer from the
bundled demo corpus (``amongus/data/demo``, eval split; ``--speakers`` speakers, one spoofed,
dry), then analysed by a fresh subprocess (so each peak RSS belongs to one length) with the
``--preset`` pipeline (default: shipped ConvTasNet 16 kHz + official AASIST) and the shipped
speaker embedder (``ecapa-tiny``; ``--embedder`` for another; ``--random-embedder`` builds a
random-weight ECAPA of the tiny shape: the same cost, meaningless speakers). Reported per
length: wall time of the analysis (models loaded beforehand), real-time factor, peak RSS of the
process, speakers found and the conversation metrics against the reference; then the ratios
10 min / 1 min and 30 min / 1 min of time and memory (linear time: ratio = length ratio).

Run::

    python benchmarks/bench_conversation.py --minutes 1 10 30
    python benchmarks/bench_conversation.py --minutes 1 10 --preset oracle --json out.json
    python benchmarks/bench_conversation.py --minutes 1 10 30 --tiny-classifier --random-embedder
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_call(folder: Path, minutes: float, speakers: int, seed: int) -> Path:
    from amongus.corpora.demo import demo_utterances
    from amongus.mix import MixerConfig
    from amongus.mix.conversation import ConversationMixer
    from amongus.mix.conversation_config import ConversationConfig

    manifest = folder / "conversations.jsonl"
    if not manifest.exists():
        seconds = 60.0 * minutes
        ConversationMixer(
            MixerConfig(),
            ConversationConfig(
                speakers=(speakers, speakers), spoofed_speakers=(1, 1), duration=(seconds, seconds)
            ),
        ).run(demo_utterances("eval"), folder, n_conversations=1, seed=seed, progress=False)
    return manifest


def random_embedder(folder: Path) -> str:
    """A random-weight ECAPA of the recipe's tiny shape, in the published layout."""
    import torch

    from amongus.recipes.train_speaker_embedding import TINY_ARCHITECTURE
    from amongus.speakers.ecapa import EcapaConfig, save_ecapa_folder

    if not (folder / "embedding_model.ckpt").exists():
        torch.manual_seed(0)
        config = EcapaConfig(**TINY_ARCHITECTURE)
        save_ecapa_folder(folder, config.build().eval(), config)
    return str(folder)


def child(args: argparse.Namespace) -> int:
    """Analyse one call; print one JSON line."""
    from amongus import Pipeline
    from amongus.manifest import read_conversations
    from amongus.metrics_conversation import evaluate_conversation
    from amongus.mix.conversation_render import render_speaker
    from amongus.rttm import read_rttm
    from amongus.speakers import load_speaker_embedder
    from amongus.testing.benchmarking import peak_rss_mib

    manifest = Path(args.child)
    record = read_conversations(manifest)[0]
    audio = manifest.parent / record.path
    overrides = {"classifier": args.classifier} if args.classifier else {}
    pipeline = Pipeline.from_preset(args.preset, device=args.device, **overrides)
    embedder = load_speaker_embedder(args.embedder, device=args.device)
    references = None
    if pipeline.needs_references:
        import numpy as np

        references = np.stack([render_speaker(record, s.name) for s in record.speakers])
    loaded_rss = peak_rss_mib()
    started = time.perf_counter()
    result = pipeline.analyze(audio, embedder=embedder, references=references, progress=False)
    wall = time.perf_counter() - started
    report = evaluate_conversation(
        read_rttm(manifest.parent / record.rttm), result.to_segments(),
        threshold=pipeline.spoof_threshold,
    )  # fmt: skip
    print(
        json.dumps(
            {
                "audio_seconds": result.duration,
                "wall_seconds": wall,
                "real_time_factor": wall / result.duration,
                "rss_after_loading_mib": loaded_rss,
                "peak_rss_mib": peak_rss_mib(),
                "windows": result.n_windows,
                "streams": result.n_streams,
                "speakers_true": len(record.speakers),
                "speakers_found": len(result.speakers),
                "der": report.diarization.der,
                "spoof_time_error": report.spoof_time.error,
                "speaker_accuracy": report.speaker_accuracy,
                "separator": pipeline.separator_identity,
                "classifier": pipeline.classifier_identity,
                "embedder": result.components["embedder"],
            }
        )
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 30.0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--embedder", default=None, help="speaker embedder (default: shipped)")
    parser.add_argument("--random-embedder", action="store_true")
    parser.add_argument("--classifier", default=None, help="instead of the preset's classifier")
    parser.add_argument(
        "--tiny-classifier",
        action="store_true",
        help="a random-weight tiny AASIST (amongus.testing): the scaling of everything but the "
        "classifier's cost",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep the calls here")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    from amongus.testing.benchmarking import describe_machine, machine_note

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-conversation-"))
    embedder = args.embedder
    if args.random_embedder:
        embedder = random_embedder(work / "random-ecapa")
    classifier = args.classifier
    if args.tiny_classifier:
        from amongus.testing.countermeasures import write_tiny_aasist_checkpoint

        classifier = str(write_tiny_aasist_checkpoint(work / "tiny-aasist"))
    rows = []
    for minutes in args.minutes:
        manifest = make_call(work / f"call-{minutes:g}min", minutes, args.speakers, args.seed)
        command = [sys.executable, __file__, "--child", str(manifest), "--preset", args.preset,
                   "--device", args.device]  # fmt: skip
        if embedder:
            command += ["--embedder", embedder]
        if classifier:
            command += ["--classifier", classifier]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = {"minutes": minutes, **json.loads(output.strip().splitlines()[-1])}
        rows.append(row)
        print(
            f"{minutes:g} min: {row['wall_seconds']:.1f} s (RTF {row['real_time_factor']:.3f}), "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB (after loading "
            f"{row['rss_after_loading_mib']:.0f}), {row['windows']} windows, speakers "
            f"{row['speakers_found']}/{row['speakers_true']}, DER {row['der']:.3f}",
            flush=True,
        )
        if args.json:  # after every length: a long run that is stopped keeps its rows
            args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    first = rows[0]
    for row in rows[1:]:
        print(
            f"{row['minutes']:g} min / {first['minutes']:g} min: time x"
            f"{row['wall_seconds'] / first['wall_seconds']:.2f} (length x"
            f"{row['audio_seconds'] / first['audio_seconds']:.2f}), peak RSS x"
            f"{row['peak_rss_mib'] / first['peak_rss_mib']:.2f}"
        )
    note = machine_note()
    print(describe_machine(note))
    if args.json:
        args.json.write_text(json.dumps({"machine": note, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
