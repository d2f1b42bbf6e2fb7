"""Commands on a separator run folder besides training: test-set evaluation, export, card, timing.

* :func:`evaluate_on_test`: SI-SDRi of the run's best model (or any separator) on the held-out
  test mixtures (:func:`amongus.recipes.separation_data.study_test_mixtures`), written to
  ``test_results.json``;
* :func:`export_best`: the best checkpoint in its published format, with ``training_log.json``
  and ``MODEL_CARD.md``, into a folder such as ``amongus/data/models/convtasnet-16k``;
* :func:`write_model_card`: the shared separator card plus the speaker split, the test result
  and the learning curve;
* :func:`benchmark_steps`: seconds per training step of a configuration;
* :func:`fit_gap`: SI-SDRi on fixed mixtures of the *training* speakers against the same on the
  validation speakers, which tells an undertrained model (both low) from an overfitted one
  (training far above validation).

All are reached through ``python -m amongus.recipes.train_separator`` (``--evaluate``,
``--export-to``, ``--benchmark-steps``, ``--fit-gap``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .model_cards import portable_data, portable_path
from .train_separator import (
    BEST_FILE,
    TRAINING_LOG_FILE,
    SeparatorTrainingConfig,
    _now,
    build_separator_model,
    count_parameters,
    prepare_data,
    resolve_device,
    save_published,
    si_sdr_improvement,
)
from .training_data import write_json

logger = logging.getLogger(__name__)

TEST_RESULTS_FILE = "test_results.json"
#: The run's own best model, as named in ``test_results.json``.
RUN_MODEL = "run"


# --------------------------------------------------------------------------- test set
def evaluate_on_test(
    config: SeparatorTrainingConfig, models: Sequence[str] = (), *, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """SI-SDRi of separators on the run's held-out test mixtures (the study's mixing recipe).

    Args:
        config: the run's settings (its ``out_dir`` holds ``split.json``; ``real_speech``
            must be set). The mixtures are ``n_test_mixtures`` with seed ``test_seed``.
        models: separators to measure, as ``amongus.load_separator`` takes them (a folder, a
            checkpoint, a registered name); empty: the run's best model (``out_dir``), named
            ``"run"`` in the results.
        progress: show a progress bar.

    Each model hears the mixtures at its own sample rate (the test audio is loaded at that
    rate and mixed there). Results (mean, median and standard deviation of SI-SDR and SI-SDRi
    in dB, and one row per mixture) are merged into ``out_dir/test_results.json`` and returned.

    Raises:
        ValueError: no ``real_speech`` in ``config``, or no test speakers.
    """
    import torch
    from tqdm import tqdm

    from .. import load_separator
    from . import separation_data as sd

    if config.real_speech is None:
        raise ValueError("the test set is made of real speech: set real_speech (--real-speech)")
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    results: dict[str, dict[str, Any]] = {}
    mixtures_at: dict[int, list[sd.StudyMixture]] = {}
    split = None
    for name, source in _targets(config, models):
        separator = load_separator(source)
        rate = _rate_of(separator, config)
        if rate not in mixtures_at:
            data = prepare_data(
                dataclasses.replace(config, sample_rate=rate), need_train=False, need_test=True
            )
            split = data.split
            mixtures_at[rate] = sd.study_test_mixtures(
                data.test, n_mixtures=config.n_test_mixtures, seed=config.test_seed,
                sample_rate=rate,
            )  # fmt: skip
        rows = []
        for item in tqdm(mixtures_at[rate], desc=f"test {name}", disable=not progress):
            mixture = torch.from_numpy(item.mixture)[None]
            sources = torch.from_numpy(item.sources)[None]
            separated = separator.separate(mixture)
            sdr, sdri = si_sdr_improvement(separated, sources, mixture)
            rows.append({**item.record, "si_sdr": round(sdr, 3), "si_sdri": round(sdri, 3)})
        improvements = np.array([row["si_sdri"] for row in rows])
        sdrs = np.array([row["si_sdr"] for row in rows])
        results[_result_name(name)] = {
            "si_sdri_mean": round(float(improvements.mean()), 3),
            "si_sdri_median": round(float(np.median(improvements)), 3),
            "si_sdri_std": round(float(improvements.std()), 3),
            "si_sdr_mean": round(float(sdrs.mean()), 3),
            "n_mixtures": len(rows),
            "test_seed": config.test_seed,
            "sample_rate": rate,
            "test_speakers": split.test if split else [],
            "test_corpus": split.test_corpus if split else "-",
            "best_step": _best_step(out_dir) if name == RUN_MODEL else None,
            "evaluated_at": _now(),
            "mixtures": rows,
        }
        logger.info(
            "%s: test SI-SDRi %.2f dB (median %.2f, SI-SDR %.2f) on %d mixtures at %d Hz",
            name, improvements.mean(), np.median(improvements), sdrs.mean(), len(rows), rate,
        )  # fmt: skip
    merged = read_json(out_dir / TEST_RESULTS_FILE)
    merged.update(results)
    write_json(out_dir / TEST_RESULTS_FILE, portable_data(merged))
    return results


#: Seed of the fixed mixtures of :func:`fit_gap` (not the validation seed: these are new draws).
FIT_GAP_SEED = 123


def fit_gap(
    config: SeparatorTrainingConfig,
    models: Sequence[str] = (),
    *,
    n_mixtures: int = 64,
    seed: int = FIT_GAP_SEED,
) -> dict[str, dict[str, float]]:
    """SI-SDRi of separators on fixed mixtures of the run's training and validation speakers.

    Both sets are drawn the way training draws its mixtures (:func:`draw_batch` with the run's
    overlap and gain settings, speakers balanced, segments of ``val_seconds``, no speed
    perturbation), from a generator seeded with ``seed``, so every model hears the same
    mixtures. A model that scores far better on training speakers than on validation speakers
    has overfitted them (more speakers would help); one that scores low on both is
    undertrained (more steps would help).

    Args:
        config: the run's settings; its ``out_dir`` holds ``split.json``.
        models: separators as ``amongus.load_separator`` takes them; empty: the run's best
            model, named ``"run"``. Each hears the audio at its own sample rate.
        n_mixtures: mixtures per set (rounded up to whole batches of 8).

    Returns:
        ``{model: {"train_si_sdri": dB, "val_si_sdri": dB, "gap": train - val}}``.

    Raises:
        ValueError: no usable audio or split (see :func:`prepare_data`).
    """
    import torch

    from .. import load_separator
    from .separation_data import draw_batch, speaker_index

    if config.threads:
        torch.set_num_threads(config.threads)
    options = config.mix_options()
    batches_at: dict[int, dict[str, list]] = {}
    results: dict[str, dict[str, float]] = {}
    for name, source in _targets(config, models):
        separator = load_separator(source)
        rate = _rate_of(separator, config)
        if rate not in batches_at:
            data = prepare_data(dataclasses.replace(config, sample_rate=rate))
            batches_at[rate] = {}
            for part, pool in (("train", data.train), ("val", data.val)):
                rng = np.random.default_rng(seed)
                batches_at[rate][part] = [
                    draw_batch(
                        pool, rng, batch_size=8, n_samples=int(config.val_seconds * rate),
                        speakers=speaker_index(pool), **options,
                    )  # fmt: skip
                    for _ in range(math.ceil(n_mixtures / 8))
                ]
        row: dict[str, float] = {}
        with torch.inference_mode():
            for part, batches in batches_at[rate].items():
                improvements = [
                    si_sdr_improvement(separator.separate(mixture), sources, mixture)[1]
                    for mixture, sources in batches
                ]
                row[f"{part}_si_sdri"] = round(float(np.mean(improvements)), 3)
        row["gap"] = round(row["train_si_sdri"] - row["val_si_sdri"], 3)
        results[_result_name(name)] = row
        logger.info("%s: SI-SDRi %.2f dB on training speakers, %.2f dB on validation speakers",
                    name, row["train_si_sdri"], row["val_si_sdri"])  # fmt: skip
    return results


def _targets(config: SeparatorTrainingConfig, models: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, source)`` of the separators to measure: ``models``, or the run's best model."""
    return [(m, m) for m in models] if models else [(RUN_MODEL, str(config.out_dir))]


def _result_name(name: str) -> str:
    """A model's key in the results: its portable path, or ``"run"`` for the run's best."""
    return name if name == RUN_MODEL else portable_path(name)


def _rate_of(separator, config: SeparatorTrainingConfig) -> int:
    """The rate a separator hears audio at; rate-free ones (passthrough) hear the run's rate."""
    rate = getattr(separator, "sample_rate", None)
    return int(rate) if rate else int(config.sample_rate)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's object, ``{}`` when the file does not exist.

    Raises:
        ValueError: the file is not JSON (names it).
    """
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as error:
        raise ValueError(f"{path}: unreadable JSON ({error})") from None


def _best_step(out_dir: Path) -> int | None:
    """The step of the best model kept in the run folder (``best.json``)."""
    return read_json(out_dir / BEST_FILE).get("step")


# --------------------------------------------------------------------------- export
def export_best(run_dir: str | os.PathLike, target: str | os.PathLike, command: str) -> Path:
    """Write the run's best checkpoint to ``target`` in its published format, with
    ``training_log.json`` and ``MODEL_CARD.md`` (the test results included when
    ``--evaluate`` measured that same checkpoint).

    The weights come from the training checkpoint (``best_model``), not from the copy kept in
    the run folder, so a copy cut short by a kill is never exported.

    Raises:
        ValueError: ``target`` is the run folder, or the run has no checkpoint or no
            ``training_log.json`` yet (nothing is written then).
    """
    from . import separator_state as ss

    run_dir, target = Path(run_dir), Path(target)
    if target.resolve() == run_dir.resolve():
        raise ValueError(f"--export-to {target}: that is the run folder itself")
    checkpoint_path = run_dir / ss.CHECKPOINT_FILE
    if not checkpoint_path.is_file():
        raise ValueError(f"{run_dir}: no {ss.CHECKPOINT_FILE}; train first")
    log = read_json(run_dir / TRAINING_LOG_FILE)
    if not log:
        raise ValueError(
            f"{run_dir}: no {TRAINING_LOG_FILE} yet (written when an invocation ends; stop a "
            "running one with SIGTERM)"
        )
    saved = ss.load_checkpoint(checkpoint_path)
    known = {f.name for f in dataclasses.fields(SeparatorTrainingConfig)}
    settings = {k: v for k, v in saved["config"].items() if k in known}
    config = SeparatorTrainingConfig(**settings)
    model = build_separator_model(
        config.arch, sample_rate=config.sample_rate, n_src=config.n_src, seed=config.seed,
        model_args=config.resolved_model_args(),
    )  # fmt: skip
    model.module.load_state_dict(saved["best_model"])
    model.module.eval()
    target.mkdir(parents=True, exist_ok=True)
    save_published(model, target)
    state = saved["state"]  # may be newer than the log: the checkpoint is what is exported
    log.update(
        best=state.best, steps=state.step, history=state.history,
        wall_seconds=round(state.wall_seconds, 1), invocations=state.invocations,
        saved=portable_path(target),
    )  # fmt: skip
    write_json(target / TRAINING_LOG_FILE, portable_data(log))
    write_model_card(
        target, log, log.get("command") or command,
        test_results=read_json(run_dir / TEST_RESULTS_FILE),
    )  # fmt: skip
    logger.info(
        "exported the best checkpoint (step %s, validation SI-SDRi %.2f dB) to %s",
        saved["state"].best["step"], saved["state"].best["si_sdri"], target,
    )  # fmt: skip
    return target


# --------------------------------------------------------------------------- model card
def write_model_card(
    out_dir: str | os.PathLike,
    log: dict[str, Any],
    command: str,
    *,
    test_results: dict[str, Any] | None = None,
) -> Path:
    """``MODEL_CARD.md`` of a trained separator: the shared separator card, plus (for real
    speech) the speaker split, the test set and its result, and the learning curve's summary."""
    from .model_cards import separator_card, write_card

    text = separator_card(out_dir, log, command)
    if "split" in log:
        extra = _split_card_section(log, (test_results or {}).get(RUN_MODEL))
        text = text.replace("## Licences and attribution", extra + "## Licences and attribution", 1)
    return write_card(out_dir, text)


def _split_card_section(log: dict[str, Any], test: dict[str, Any] | None) -> str:
    split, config = log["split"], log["config"]
    lines = [
        "## Speaker split and test set",
        "",
        f"Rule: {split.get('rule') or 'explicit lists'}. Seed {split.get('seed')}.",
        "",
        "| Split | Speakers | Minutes | Sources |",
        "|---|---|---|---|",
    ]
    for name in ("train", "val", "test"):
        entry = split.get("splits", {}).get(name, {})
        speakers = ", ".join(split.get(name, [])) or "-"
        sources = "; ".join(entry.get("sources", [])) or "-"
        minutes = entry.get("minutes") if entry.get("utterances") else "-"
        lines.append(f"| {name} | {speakers} | {minutes} | {sources} |")
    if split.get("held_out"):
        lines.append(f"| held out (unused) | {', '.join(split['held_out'])} | - | - |")
    missing = split.get("inventory", {}).get("missing", {})
    factors = SeparatorTrainingConfig(
        arch=config["arch"], out_dir=".", speed_perturb=config.get("speed_perturb", 0.0)
    ).speed_factors()
    lines += [
        "",
        (
            "Training mixtures draw each source's speaker uniformly (not its utterances)"
            if config.get("balance_speakers")
            else "Training mixtures draw utterances uniformly"
        )
        + f"; speed perturbation over {list(factors)}."
        + (f" Not available when trained: {', '.join(sorted(missing))}." if missing else ""),
        "",
        f"Test: {config.get('n_test_mixtures')} two-speaker mixtures of the test speakers "
        f"({split.get('test_corpus')}), seed {config.get('test_seed')}, made with the study's "
        "mixing recipe (`MixerConfig.from_preset('thesis')`: gain U(0.7, 1.3) on each raw "
        "source, one source delayed by U(0, 1) s, cut to the shorter, peak 1).",
        "",
    ]
    best_step = log.get("best", {}).get("step")
    if test and test.get("best_step") != best_step:
        lines += [
            f"(The test result on file is of step {test.get('best_step')}, not of this "
            f"checkpoint, step {best_step}: rerun `--evaluate`.)",
            "",
        ]
    elif test:
        lines += [
            "| Model | Test SI-SDRi mean (dB) | median | SI-SDR mean (dB) | Mixtures |",
            "|---|---|---|---|---|",
            f"| best checkpoint (step {test.get('best_step')}) | {test['si_sdri_mean']:.2f} | "
            f"{test['si_sdri_median']:.2f} | {test['si_sdr_mean']:.2f} | {test['n_mixtures']} |",
            "",
        ]
    history = [r for r in log.get("history", []) if r.get("train_loss") is not None]
    if history:
        lines += [
            "Learning curve (validation SI-SDRi; `history` in `training_log.json`):",
            "",
            "| Step | Training hours | Train loss | Validation SI-SDRi (dB) |",
            "|---|---|---|---|",
        ]
        shown = history if len(history) <= 12 else history[:: math.ceil(len(history) / 12)]
        if shown[-1] is not history[-1]:
            shown = [*shown, history[-1]]
        for record in shown:
            lines.append(
                f"| {record['step']} | {record['elapsed_s'] / 3600:.2f} | "
                f"{record['train_loss']:.2f} | {record['si_sdri']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- timing
def benchmark_steps(config: SeparatorTrainingConfig, n_steps: int) -> dict[str, Any]:
    """Seconds per training step of ``config``'s model on random batches of its shape (one
    warm-up step first); nothing is written. Returns parameters, MB and steps per second."""
    import torch
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    model = build_separator_model(
        config.arch, sample_rate=config.sample_rate, n_src=config.n_src, seed=config.seed,
        model_args=config.resolved_model_args(),
    )  # fmt: skip
    model.module.to(device).train()
    optimizer = torch.optim.Adam(model.module.parameters(), lr=config.learning_rate)
    loss_function = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    generator = torch.Generator().manual_seed(config.seed)
    n_samples = int(config.segment_seconds * config.sample_rate)
    times = []
    for _ in range(n_steps + 1):
        mixture = torch.randn(config.batch_size, n_samples, generator=generator).to(device)
        sources = torch.randn(config.batch_size, config.n_src, n_samples, generator=generator)
        started = time.perf_counter()
        loss = loss_function(model.forward(mixture), sources.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    seconds = float(np.median(times[1:]))
    parameters = count_parameters(model.module)
    return {
        "arch": config.arch,
        "size": config.size,
        "model_args": config.resolved_model_args(),
        "parameters": parameters,
        "megabytes": round(parameters * 4 / 1e6, 2),
        "sample_rate": config.sample_rate,
        "batch_size": config.batch_size,
        "segment_seconds": config.segment_seconds,
        "threads": torch.get_num_threads(),
        "device": device,
        "seconds_per_step": round(seconds, 3),
        "steps_per_second": round(1 / seconds, 3),
    }


def refresh_card(out_dir: str | os.PathLike, command: str) -> None:
    """Rewrite the run's ``MODEL_CARD.md`` with the latest test results (when the run has a
    ``training_log.json``)."""
    log = read_json(Path(out_dir) / TRAINING_LOG_FILE)
    if log:
        results = read_json(Path(out_dir) / TEST_RESULTS_FILE)
        write_model_card(out_dir, log, log.get("command") or command, test_results=results)
