"""Small helpers shared by the benchmarks (``benchmarks/*.py``): model choice by size, machine
notes, peak memory and real-time factors, so every benchmark reports them the same way."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path
from typing import Any

SIZES = ("tiny", "real")
#: the real-size model of each separator / classifier kind (:mod:`amongus.testing.real_size`)
REAL_SEPARATORS = {"sepformer": "sepformer-wsj02mix", "convtasnet": "convtasnet-libri2mix"}
REAL_CLASSIFIERS = {"wavlm": "wavlm-base", "wav2vec2": "wav2vec2-base", "aasist": "aasist"}


def real_separator(kind: str) -> str:
    """The cached real-size separator for ``kind`` (``sepformer``, ``convtasnet``), or ``kind``
    itself for the model-free ones (``passthrough``, ``oracle``)."""
    from .real_size import cached_real_model

    if kind not in REAL_SEPARATORS:
        return kind
    return str(cached_real_model(REAL_SEPARATORS[kind]))


def real_classifier(kind: str) -> str:
    """The cached real-size classifier for ``kind`` (``wavlm``, ``wav2vec2``, ``aasist``)."""
    from .real_size import cached_real_model

    if kind not in REAL_CLASSIFIERS:
        raise ValueError(f"unknown classifier kind {kind!r}; choose from {sorted(REAL_CLASSIFIERS)}")
    return str(cached_real_model(REAL_CLASSIFIERS[kind]))


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB (``ru_maxrss``; KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def machine_note() -> dict[str, Any]:
    """Where a figure came from: CPU count, torch threads, load average, GPU if any."""
    import torch

    note: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "device": "cpu",
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        note["device"] = torch.cuda.get_device_name(0)
    return note


def describe_machine(note: dict[str, Any]) -> str:
    load = ", ".join(f"{value:.1f}" for value in note["load_average_1_5_15"])
    return (
        f"{note['device']}, {note['cpu_count']} cores, {note['torch_threads']} torch thread(s), "
        f"load average {load} (other jobs share the machine: compare ratios, not seconds)"
    )


def real_time_factor(seconds: float, audio_seconds: float) -> float:
    """Wall seconds per second of audio (below 1: faster than real time)."""
    return seconds / audio_seconds if audio_seconds else float("nan")


def audio_seconds(manifest: str | os.PathLike) -> float:
    """Total duration of the mixtures of a manifest, seconds."""
    from amongus.manifest import read_mixtures

    return float(sum(m.num_samples / m.sample_rate for m in read_mixtures(Path(manifest))))
