"""``amongus.Pipeline``: mixture -> separate -> resample -> classify each stream -> assign -> report.

Data flow (one way, batched)::

    load_valid_audio(mixture)                   [T] at the mixture's rate, checked by the
                                                input-validation policy (amongus.validation)
    separate_at_rate(separator, ...)            [B, T] -> [B, S, T'] at the classifier's rate
                                                (resampled to and from the separator's rate with
                                                cached resamplers: amongus.audio.resample)
    classifier.score([B * S streams])           one forward per stream
    assign_streams(...)                         streams -> reference sources (signal / labels)

Components are given pyannote-style: a registered name, a local path (or hub id), an instance,
or a config dict ``{"name": ..., **options}``; with none, the shipped defaults
(:func:`amongus.defaults.default_components`).

>>> pipeline = Pipeline(separator="sepformer", classifier="path/to/classifier")  # doctest: +SKIP
>>> result = pipeline("meeting.flac")                                             # doctest: +SKIP
>>> report = pipeline.evaluate("mixtures/mixtures.jsonl")                         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioError
from .manifest import Mixture, check_unique_ids, count_records, iter_jsonl
from .results import EvaluationReport, PipelineResult
from .scoring import assign_streams, check_assignment_mode, mixture_decision, si_sdr_improvement
from .sharding import shard_bounds
from .validation import check_audio, load_mixture_audio, load_valid_audio

logger = logging.getLogger(__name__)

MANIFEST_NAME = "mixtures.jsonl"
#: A 2-D array with at most this many columns (and more rows) is taken for soundfile's
#: [T, C] layout and refused, not read as a batch of tiny mixtures.
_MAX_CHANNELS = 8


@dataclass
class _Item:
    """One mixture ready for a batch: audio at its own rate, optionally its reference sources."""

    key: str
    audio: np.ndarray  # [T]
    rate: int
    path: str | None = None
    mixture: Mixture | None = None
    references: np.ndarray | None = None  # [S, T] at ``rate``


@dataclass
class _Skipped:
    key: str
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.key, "path": self.path, "reason": self.reason}


# ---------------------------------------------------------------------------- components
def load_classifier(spec: Any, *, device: str = "cpu"):
    """A classifier from a registered name (``"aasist"``...), a path or hub id (any family:
    Hugging Face, AASIST, SSL_W2V), a config dict or an instance (anything with ``score`` and
    ``sample_rate`` is used as is): :func:`amongus.classifiers.load_classifier` on ``device``,
    unless a config dict names its own."""
    from .classifiers import load_classifier as load_any_classifier

    if isinstance(spec, dict):
        return load_any_classifier({"device": device, **spec})
    return load_any_classifier(spec, device=device)


_RATE_FREE_SEPARATORS = ("oracle", "passthrough")


def load_pipeline_separator(spec: Any, *, device: str = "cpu"):
    """A separator from a name, path, config dict or instance (see
    :func:`amongus.separation.load_separator`). ``"oracle"`` by name accepts any number of
    sources; model separators are put on ``device``."""
    from .separation import load_separator

    if isinstance(spec, str) and spec == "oracle":
        return load_separator("oracle", n_src=None)
    if isinstance(spec, str) and spec in _RATE_FREE_SEPARATORS:
        return load_separator(spec)
    if isinstance(spec, str | os.PathLike):
        return load_separator(str(spec), device=device)
    if isinstance(spec, dict):
        config = dict(spec)
        if config.get("name") not in _RATE_FREE_SEPARATORS:
            config.setdefault("device", device)
        return load_separator(config)
    return load_separator(spec)


def _needs_references(separator) -> bool:
    explicit = getattr(separator, "needs_references", None)
    if explicit is not None:
        return bool(explicit)
    from .separation.oracle import OracleSeparator

    return isinstance(separator, OracleSeparator)


# ---------------------------------------------------------------------------- mixture input
def _resolve(path: str, base_dir: Path | None) -> Path:
    candidate = Path(path)
    if candidate.is_absolute() or base_dir is None:
        return candidate
    return base_dir / candidate


def _with_resolved_sources(mixture: Mixture, base_dir: Path | None) -> Mixture:
    if base_dir is None:
        return mixture
    sources = []
    for source in mixture.sources:
        resolved = _resolve(source.path, base_dir)
        if not Path(source.path).is_absolute() and not Path(source.path).exists():
            source = dataclasses.replace(source, path=str(resolved))
        sources.append(source)
    return dataclasses.replace(mixture, sources=sources)


def _manifest_path(source: str | os.PathLike) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such mixture manifest")
    return path


def _count_lines(path: Path) -> int:
    # a full pass that also refuses repeated mixture ids before any audio is processed
    return count_records(path, Mixture)


def _iter_manifest(path: Path) -> Iterator[tuple[Mixture | None, _Skipped | None]]:
    """Mixture records one by one; a malformed line becomes a skip, not a crash."""
    for line_number, mixture, problem in iter_jsonl(path, Mixture):
        if problem is not None:
            yield None, _Skipped(f"{path.name}:{line_number}", str(path), problem)
        else:
            yield mixture, None


# ---------------------------------------------------------------------------- the pipeline
class Pipeline:
    """Find spoofed speakers in a mixture: separate, classify each stream, assign, report.

    Args:
        separator: name (``"sepformer"``, ``"convtasnet"``, ``"oracle"``, ``"passthrough"``),
            checkpoint folder or hub id, config dict or instance; ``None``: shipped default.
        classifier: Hugging Face folder or hub id, config dict (``{"name": ..., **options}``
            for :meth:`SpoofClassifier.from_pretrained`) or instance; ``None``: shipped default.
        assignment: ``"signal"`` (best permutation of -SI-SDR against the reference sources:
            the honest default), ``"labels"`` (the study's method: optimistic), or ``None``
            (mixture-level outputs only).
        batch_size: mixtures separated together.
        classifier_batch_size: streams per classifier forward (default ``batch_size * S``).
        chunk_seconds: separate long mixtures in overlapping chunks of this length; ``None``:
            the separator's default (10 s for model separators, so memory is bounded;
            whole for oracle/passthrough); ``math.inf``: whole mixtures.
        device: where the models run (``"cpu"``, ``"cuda"``).
        spoof_threshold: a stream is called spoof when its spoof probability is >= this;
            ``None`` (default): the classifier's calibrated threshold (stored in its folder,
            :mod:`amongus.classifiers.threshold`), or 0.5 for a classifier without one.
            :attr:`threshold_source` (and every report) says which was used and where it came
            from. Also a speaker-level threshold calibrated on dev calls for conversation
            verdicts: the path of a ``threshold.json`` of ``python -m
            amongus.conversation.calibrate`` or a
            :class:`amongus.conversation.calibrate.SpeakerThreshold` (``FileNotFoundError`` /
            ``ValueError`` for a missing or invalid file).
        preset: the :mod:`amongus.defaults` preset used for missing components.
        loader_threads: background threads reading mixtures (and rendering their reference
            sources) ahead of the models in :meth:`evaluate`; 0 reads inline.
        quantize: quantize the classifier's linear layers to int8 (dynamic quantization,
            :func:`amongus.quantization.quantize_classifier`): faster on CPU for transformer
            classifiers, scores change slightly; CPU only (``ValueError`` otherwise). Off by
            default; the classifier identity in reports then ends in ``|int8-dynamic``.
        batched: run the models on a whole batch of mixtures at once (``True``: one separator
            call, one classifier call for all their streams) or one mixture at a time
            (``False``: its separation, then its streams); ``None`` (default): by device, one
            at a time on the CPU, batched elsewhere. Measured on CPU (docs/scaling.md,
            ``benchmarks/bench_separate.py``): batching equal-length mixtures was slower than
            separating them one by one (a CPU forward is already compute-bound at batch 1),
            and batching streams of different lengths pads them. One at a time, a mixture's
            results do not depend on its batch-mates, bit for bit, so a sharded evaluation
            equals an unsharded one exactly; batched, they agree to float precision (each
            item is separated as if alone; mixtures of different lengths are always separated
            in groups of equal length).
        mixed_precision: ``None`` / ``"no"`` (default: float32), ``"bf16"`` or ``"fp16"``: run
            the separator and classifier forwards under ``torch.autocast`` with that dtype
            (fp16 on CUDA only; bf16 on CPU or CUDA). Streams and scores are returned in
            float32; scores differ slightly from float32 ones (measured in docs/scaling.md).
            Not combined with ``quantize`` (``ValueError``). For GPUs: faster there; on the
            CPU it is a correctness check, not a speed-up.
    """

    def __init__(
        self,
        separator: Any = None,
        classifier: Any = None,
        *,
        assignment: str | None = "signal",
        batch_size: int = 4,
        classifier_batch_size: int | None = None,
        chunk_seconds: float | None = None,
        device: str = "cpu",
        spoof_threshold: float | str | os.PathLike | Any = None,
        preset: str = "default",
        loader_threads: int = 1,
        quantize: bool = False,
        batched: bool | None = None,
        mixed_precision: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if classifier_batch_size is not None and classifier_batch_size < 1:
            raise ValueError(f"classifier_batch_size must be >= 1, got {classifier_batch_size}")
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive or None, got {chunk_seconds}")
        # A threshold file (or SpeakerThreshold) of amongus.conversation.calibrate: its value,
        # and its source for the reports.
        from .conversation.calibrate import load_spoof_threshold

        threshold_spec = spoof_threshold
        spoof_threshold, calibrated_source = load_spoof_threshold(spoof_threshold)
        if spoof_threshold is not None and not 0.0 <= spoof_threshold <= 1.0:
            raise ValueError(f"spoof_threshold must be in [0, 1], got {spoof_threshold}")
        self.assignment = check_assignment_mode(assignment)
        if separator is None or classifier is None:
            from .defaults import default_components

            defaults = default_components(preset)
            separator = defaults["separator"] if separator is None else separator
            classifier = defaults["classifier"] if classifier is None else classifier
        self.device = str(device)
        self.mixed_precision = check_mixed_precision(mixed_precision, self.device, quantize)
        self.separator = load_pipeline_separator(separator, device=self.device)
        self.classifier = load_classifier(classifier, device=self.device)
        if quantize:
            from .quantization import quantize_classifier

            quantize_classifier(self.classifier)
        self.batch_size = int(batch_size)
        self.classifier_batch_size = classifier_batch_size
        self.chunk_seconds = chunk_seconds
        from .classifiers.threshold import resolve_spoof_threshold

        self.spoof_threshold, self.threshold_source = resolve_spoof_threshold(
            self.classifier, spoof_threshold
        )
        if calibrated_source is not None:
            from .conversation.calibrate import warn_component_mismatch

            self.threshold_source = calibrated_source
            warn_component_mismatch(
                threshold_spec, self.separator_identity, self.classifier_identity
            )
        self.loader_threads = int(loader_threads)
        self.needs_references = _needs_references(self.separator)
        self.batched = not self.device.startswith("cpu") if batched is None else bool(batched)

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: Any) -> Pipeline:
        """The pipeline of a shipped preset (:func:`amongus.defaults.default_components`)."""
        from .defaults import default_components

        options = {**default_components(preset), **overrides}
        return cls(**options)

    # -------------------------------------------------------------- identities
    @property
    def sample_rate(self) -> int:
        """The classifier's rate: the rate of the returned streams."""
        return int(self.classifier.sample_rate)

    @property
    def separator_identity(self) -> str:
        return str(getattr(self.separator, "identity", type(self.separator).__name__))

    @property
    def classifier_identity(self) -> str:
        identity = str(getattr(self.classifier, "identity", type(self.classifier).__name__))
        quantized = getattr(self.classifier, "quantized", None)
        return f"{identity}|{quantized}" if quantized else identity

    def __repr__(self) -> str:
        return (
            f"Pipeline(separator={self.separator_identity!r}, "
            f"classifier={self.classifier_identity!r}, assignment={self.assignment!r}, "
            f"batch_size={self.batch_size}, chunk_seconds={self.chunk_seconds})"
        )

    # -------------------------------------------------------------- inputs
    def _item_from_mixture(
        self, mixture: Mixture, base_dir: Path | None = None, *, with_references: bool = True
    ) -> _Item:
        """Load a mixture record's audio (and reference sources); raises AudioError.

        The file must pass the validation policy and agree with its record (rate, length).
        """
        path = _resolve(mixture.path, base_dir)
        audio, rate = load_mixture_audio(mixture, path)
        references = None
        if with_references:
            from .mix.render import render_references

            resolved = _with_resolved_sources(mixture, base_dir)
            references = _fit(render_references(resolved, rate), audio.shape[0])
        return _Item(mixture.mixture_id, audio, rate, str(path), mixture, references)

    def _wants_references(self) -> bool:
        return self.needs_references or self.assignment == "signal"

    def _items_from_inputs(self, inputs, sample_rate, references) -> tuple[list[_Item], bool]:
        """Turn ``__call__``'s argument into items; the flag says whether a list was given."""
        import torch

        if isinstance(inputs, np.ndarray | torch.Tensor):
            array = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else inputs
            if sample_rate is None:
                raise ValueError("an array input needs sample_rate=")
            if array.ndim == 1:
                refs = None if references is None else np.asarray(references, dtype=np.float32)
                return [
                    _Item("0", array.astype(np.float32), int(sample_rate), references=refs)
                ], False
            if array.ndim == 2 and array.shape[1] <= _MAX_CHANNELS < array.shape[0]:
                # soundfile's [T, C] layout would be read as T "mixtures" of C samples each
                raise AudioError(
                    f"array of shape {tuple(array.shape)}",
                    f"looks like [T, C] audio with {array.shape[1]} channels; Pipeline takes a "
                    "mono [T] array or a [B, T] batch. Average the channels first, as is done "
                    "for files (amongus.audio.to_mono(array)), or pass array.T for a batch",
                )
            if array.ndim == 2:
                refs = [None] * len(array) if references is None else list(references)
                items = [
                    _Item(str(i), row.astype(np.float32), int(sample_rate), references=ref)
                    for i, (row, ref) in enumerate(zip(array, refs, strict=True))
                ]
                return items, True
            raise ValueError(f"expected a [T] or [B, T] array, got shape {array.shape}")
        if isinstance(inputs, list | tuple):
            items = []
            for index, entry in enumerate(inputs):
                (item,), _ = self._items_from_inputs(entry, sample_rate, None)
                item.key = item.key if item.path or item.mixture else str(index)
                items.append(item)
            return items, True
        if isinstance(inputs, Mixture):
            return [self._item_from_mixture(inputs)], False
        if isinstance(inputs, str | os.PathLike):
            audio, rate = load_valid_audio(inputs)
            refs = None if references is None else np.asarray(references, dtype=np.float32)
            return [_Item(str(inputs), audio, rate, path=str(inputs), references=refs)], False
        raise TypeError(f"cannot run the pipeline on {type(inputs).__name__}")

    # -------------------------------------------------------------- running
    def __call__(self, inputs, sample_rate: int | None = None, *, references=None):
        """Run on one mixture or a batch.

        Args:
            inputs: a file path, a :class:`Mixture` record (its reference sources are rendered
                for the oracle separator and signal assignment), a ``[T]`` array or tensor, a
                ``[B, T]`` batch, or a list of any of these.
            sample_rate: the rate of array inputs.
            references: ``[S, T]`` reference sources of a single array/path input (for the
                oracle separator or signal assignment), at ``sample_rate``.

        Returns:
            A :class:`PipelineResult`, or a list of them for a list or ``[B, T]`` input.

        Raises:
            amongus.validation.InvalidAudioError: an input refused by the validation policy
                (silent, shorter than ``MIN_DURATION_SECONDS``, non-finite, unreadable, a
                ``Mixture`` whose file disagrees with its record...), naming the file or the
                array input; nothing is scored.
        """
        items, many = self._items_from_inputs(inputs, sample_rate, references)
        for item in items:
            if item.path is None:  # arrays; files were checked as they were read
                check_audio(item.audio, item.rate, path=f"array input {item.key}")
        results: list[PipelineResult] = []
        for batch in _batches_by_rate(items, self.batch_size):
            results.extend(self._run_batch(batch))
        return results if many else results[0]

    def _run_batch(self, items: list[_Item]) -> list[PipelineResult]:
        """Separate and classify a batch of items at the same rate.

        Shape: ``B x [T_b] -> B results with [S, T_b'] streams``.
        """
        import torch

        rate = items[0].rate
        classifier_rate = self.sample_rate
        lengths = [item.audio.shape[0] for item in items]
        longest = max(lengths)
        mixture = torch.zeros(len(items), longest)
        for row, item in enumerate(items):
            mixture[row, : lengths[row]] = torch.from_numpy(np.ascontiguousarray(item.audio))
        references = None
        if self.needs_references:
            missing = [item.key for item in items if item.references is None]
            if missing:
                raise ValueError(
                    f"{self.separator_identity} needs the reference sources of each mixture "
                    f"(give Mixture records or references=); missing for {missing[:3]}"
                )
            counts = {item.references.shape[0] for item in items}
            if len(counts) > 1:
                return [result for item in items for result in self._run_batch([item])]
            references = torch.zeros(len(items), counts.pop(), longest)
            for row, item in enumerate(items):
                references[row, :, : lengths[row]] = torch.from_numpy(item.references)
        with autocast(self.device, self.mixed_precision):
            streams, rates = _separate(
                self.separator,
                mixture,
                rate,
                classifier_rate,
                lengths,
                chunk_seconds=self.chunk_seconds,
                references=references,
                batched=self.batched,
            )
        streams = streams.float()  # autocast may hand back bf16/fp16 streams
        n_streams = streams.shape[1]
        out_lengths = [math.ceil(length * classifier_rate / rate) for length in lengths]
        flat = streams.reshape(len(items) * n_streams, streams.shape[-1])
        flat_lengths = [length for length in out_lengths for _ in range(n_streams)]
        with autocast(self.device, self.mixed_precision):
            if self.batched:
                scores = self.classifier.score(
                    flat,
                    sample_rate=classifier_rate,
                    lengths=flat_lengths,
                    batch_size=self.classifier_batch_size or len(items) * n_streams,
                )
                probability, cm_score = scores.spoof_probability, scores.cm_score
            else:  # each mixture's streams alone: no padding, no dependence on batch-mates
                parts = [
                    self.classifier.score(
                        flat[row * n_streams : (row + 1) * n_streams, :length],
                        sample_rate=classifier_rate,
                        batch_size=self.classifier_batch_size or n_streams,
                    )
                    for row, length in enumerate(out_lengths)
                ]
                probability = np.concatenate([np.asarray(p.spoof_probability) for p in parts])
                cm_score = np.concatenate([np.asarray(p.cm_score) for p in parts])
        used_rates = {
            "mixture": rate,
            "separator": rates.get("separator_rate", rate),
            "classifier": classifier_rate,
        }
        results = []
        for row, item in enumerate(items):
            span = slice(row * n_streams, (row + 1) * n_streams)
            item_streams = streams[row, :, : out_lengths[row]].detach().cpu().numpy()
            results.append(
                self._result(
                    item,
                    item_streams,
                    np.asarray(probability[span]),
                    np.asarray(cm_score[span]),
                    used_rates,
                )
            )
        return results

    def _result(self, item: _Item, streams, probability, cm_score, rates) -> PipelineResult:
        from .audio import resample

        decision = mixture_decision(
            probability, spoof_threshold=self.spoof_threshold, cm_score=cm_score
        )
        true_labels = None if item.mixture is None else item.mixture.source_labels
        classifier_rate = rates["classifier"]
        references = None
        if item.references is not None:
            references = _fit(
                resample(item.references, item.rate, classifier_rate), streams.shape[-1]
            )
        assignment = None
        improvement = None
        same_count = references is None or references.shape[0] == streams.shape[0]
        if true_labels is not None and len(true_labels) != streams.shape[0]:
            same_count = False
        if same_count and self.assignment is not None:
            if self.assignment == "signal" and references is not None:
                assignment = assign_streams(streams, references=references, mode="signal")
            elif self.assignment == "labels" and true_labels is not None:
                assignment = assign_streams(
                    streams if references is not None else None,
                    references=references,
                    labels=true_labels,
                    stream_spoof_probability=probability,
                    mode="labels",
                    spoof_threshold=self.spoof_threshold,
                )
        if references is not None and references.shape[0] == streams.shape[0]:
            # Separation quality is measured on the signal-optimal pairing, whatever the mode.
            signal = (
                assignment
                if assignment is not None and assignment.mode == "signal"
                else assign_streams(streams, references=references, mode="signal")
            )
            mixture_at_rate = _fit(
                resample(item.audio, item.rate, classifier_rate), streams.shape[-1]
            )
            improvement = si_sdr_improvement(
                None, references, mixture_at_rate, assigned_si_sdr=signal.si_sdr
            )
        return PipelineResult(
            streams=streams,
            stream_sample_rate=classifier_rate,
            spoof_probability=probability,
            cm_score=cm_score,
            predicted_labels=decision.predicted_labels,
            mixture_label=decision.composition,
            n_spoofed=decision.n_spoofed,
            spoof_present_score=decision.spoof_present_score,
            bonafide_score=decision.bonafide_score,
            rates=dict(rates),
            spoof_threshold=self.spoof_threshold,
            threshold_source=self.threshold_source,
            mixture_id=item.mixture.mixture_id if item.mixture is not None else item.key,
            path=item.path,
            assignment=assignment,
            true_labels=true_labels,
            si_sdr_improvement=improvement,
            mixture=item.mixture,
        )

    # -------------------------------------------------------------- long recordings
    def analyze(self, audio_or_path, sample_rate: int | None = None, **options: Any):
        """Who in a long multi-party recording is a deepfake, and when.

        :func:`amongus.conversation.analyze_recording` with this pipeline: the recording is
        separated in windows, streams are linked into speakers (speaker embeddings and stream
        continuity), each speaker's speech is scored and judged at :attr:`spoof_threshold`.
        ``options``: ``n_speakers``, ``enrollment``, ``embedder``, ``window_seconds``...

        Returns:
            An :class:`amongus.conversation.ConversationResult` (``.to_json``, ``.to_rttm``,
            ``.plot``).

        Raises:
            amongus.validation.InvalidAudioError: a recording refused by the validation policy.
        """
        from .conversation import analyze_recording

        return analyze_recording(self, audio_or_path, sample_rate, **options)

    # -------------------------------------------------------------- evaluation
    def evaluate(
        self,
        mixtures: str | os.PathLike | Iterable[Mixture],
        out_dir: str | os.PathLike | None = None,
        *,
        progress: bool = True,
        limit: int | None = None,
        shard: tuple[int, int] | None = None,
    ) -> EvaluationReport:
        """Evaluate on labelled mixtures and return the report (saved to ``out_dir`` if given).

        Args:
            mixtures: a ``mixtures.jsonl`` manifest, the Mixer's output folder holding one, or
                an iterable of :class:`Mixture` records (relative paths then resolve from the
                working directory; from a manifest, from its folder).
            out_dir: write the report there (:meth:`EvaluationReport.save`).
            progress: show a tqdm progress bar.
            limit: evaluate only the first ``limit`` mixtures.
            shard: ``(index, count)``: evaluate only the ``index``-th of ``count`` contiguous
                blocks of the manifest's entries (after ``limit``; block sizes differ by at most
                one, as in ``accelerate``'s ``split_between_processes``). Concatenating the
                rows of shards ``0..count-1`` in order gives the rows of the unsharded run
                (:func:`amongus.sharding.merge_reports`; ``accelerate launch -m
                amongus.evaluate`` does this).

        Memory does not grow with the number of mixtures: audio is dropped after each batch and
        only small per-mixture and per-stream rows are kept. Malformed manifest lines and
        mixtures refused by the validation policy (:mod:`amongus.validation`: missing,
        unreadable, silent, too short, rate or length unlike the record...) are counted in
        ``report.skipped`` with their reason code, never scored and never dropped silently.
        """
        from tqdm.auto import tqdm

        started = time.perf_counter()
        if isinstance(mixtures, str | os.PathLike):
            manifest = _manifest_path(mixtures)
            base_dir: Path | None = manifest.parent
            entries: Iterable[tuple[Mixture | None, _Skipped | None]] = _iter_manifest(manifest)
            total = _count_lines(manifest)
            source = str(manifest)
        else:
            records = list(mixtures)
            check_unique_ids(records, where="mixture record")
            base_dir = None
            entries = ((record, None) for record in records)
            total = len(records)
            source = f"{total} Mixture records"
        if limit is not None:
            total = min(total, limit)
        if shard is not None:
            start, stop = shard_bounds(total, *shard)
            logger.info("shard %d/%d: entries %d to %d of %d", *shard, start, stop - 1, total)
            entries = itertools.islice(entries, start, stop)
            total, limit = stop - start, None  # the block is already cut to the limit
        state = _EvaluationState()
        pending: list[_Item] = []
        n_inputs = 0
        with tqdm(total=total, desc="evaluate", unit="mixture", disable=not progress) as bar:
            if limit is not None:
                entries = itertools.islice(entries, limit)
            with_references = self._wants_references()

            def load(entry: tuple[Mixture | None, _Skipped | None]) -> _Item | _Skipped:
                mixture, problem = entry
                if problem is not None:
                    return problem
                try:
                    return self._item_from_mixture(
                        mixture, base_dir, with_references=with_references
                    )
                except (AudioError, ValueError, OSError) as error:
                    return _Skipped(mixture.mixture_id, mixture.path, str(_problem(error)))

            for item in _prefetch(load, entries, self.loader_threads, 2 * self.batch_size):
                n_inputs += 1
                if isinstance(item, _Skipped):
                    state.skip(item)
                    bar.update(1)
                    continue
                if pending and item.rate != pending[0].rate:
                    bar.update(self._flush(pending, state))
                    pending = []
                pending.append(item)
                if len(pending) >= self.batch_size:
                    bar.update(self._flush(pending, state))
                    pending = []
            if pending:
                bar.update(self._flush(pending, state))
        notes = []
        if state.n_unassigned:
            notes.append(
                f"{state.n_unassigned} mixture(s) had a different number of streams than "
                "sources: mixture-level outputs only for them"
            )
        report = EvaluationReport(
            kind="mixtures",
            mixture_rows=state.mixture_rows,
            stream_rows=state.stream_rows,
            skipped=[item.to_dict() for item in state.skipped],
            classifier=self.classifier_identity,
            separator=self.separator_identity,
            rates=state.rates_summary(self.sample_rate),
            assignment=self.assignment,
            spoof_threshold=self.spoof_threshold,
            threshold_source=self.threshold_source,
            n_inputs=n_inputs,
            elapsed_seconds=time.perf_counter() - started,
            source=source,
            notes=notes,
        )
        if out_dir is not None:
            report.save(out_dir)
        return report

    def _flush(self, items: list[_Item], state: _EvaluationState) -> int:
        """Process a batch; on failure retry item by item and skip those that still fail."""
        try:
            results = self._run_batch(items)
        except (ValueError, RuntimeError) as error:
            if len(items) == 1:
                state.skip(_Skipped(items[0].key, items[0].path or "", f"failed ({error})"))
                return 1
            logger.warning("batch failed (%s); retrying its %d items one by one", error, len(items))
            for item in items:
                self._flush([item], state)
            return len(items)
        for result in results:
            state.add(result)
        return len(items)


# ---------------------------------------------------------------------------- helpers
class _EvaluationState:
    """Rows kept during an evaluation (small dicts, no audio)."""

    def __init__(self):
        self.mixture_rows: list[dict[str, Any]] = []
        self.stream_rows: list[dict[str, Any]] = []
        self.skipped: list[_Skipped] = []
        self.mixture_rates: set[int] = set()
        self.separator_rates: set[int] = set()
        self.n_unassigned = 0

    def skip(self, item: _Skipped) -> None:
        logger.info("skipped %s: %s", item.key, item.reason)
        self.skipped.append(item)

    def add(self, result: PipelineResult) -> None:
        self.mixture_rows.append(mixture_row(result))
        self.stream_rows.extend(stream_rows(result))
        self.mixture_rates.add(int(result.rates["mixture"]))
        self.separator_rates.add(int(result.rates["separator"]))
        if result.true_labels is not None and result.n_streams != len(result.true_labels):
            self.n_unassigned += 1

    def rates_summary(self, classifier_rate: int) -> dict[str, Any]:
        return {
            "mixture": sorted(self.mixture_rates),
            "separator": sorted(self.separator_rates),
            "classifier": classifier_rate,
        }


def mixture_row(result: PipelineResult) -> dict[str, Any]:
    """The ``mixtures.csv`` row of a result."""
    mixture = result.mixture
    true_label = result.true_label
    return {
        "mixture_id": result.mixture_id,
        "path": result.path,
        "true_label": true_label,
        "predicted_label": result.mixture_label,
        "true_n_spoofed": None if true_label is None else true_label.count("S"),
        "predicted_n_spoofed": result.n_spoofed,
        "spoof_present_score": result.spoof_present_score,
        "bonafide_score": result.bonafide_score,
        "n_streams": result.n_streams,
        "assignment": None if result.assignment is None else result.assignment.mode,
        "si_sdr_improvement": result.si_sdr_improvement,
        "systems": None if mixture is None else [s.system for s in mixture.sources],
        "languages": None if mixture is None else [s.language for s in mixture.sources],
    }


def stream_rows(result: PipelineResult) -> list[dict[str, Any]]:
    """The ``streams.csv`` rows of a result: one per stream, with the assigned source's truth."""
    mixture = result.mixture
    permutation = None
    if result.assignment is not None and result.assignment.permutation is not None:
        permutation = result.assignment.permutation
    rows = []
    for stream in range(result.n_streams):
        row: dict[str, Any] = {
            "mixture_id": result.mixture_id,
            "stream": stream,
            "reference": None,
            "utt_id": None,
            "true_label": None,
            "predicted_label": result.predicted_labels[stream],
            "spoof_probability": float(result.spoof_probability[stream]),
            "cm_score": float(result.cm_score[stream]),
            "system": None,
            "language": None,
            "speaker": None,
            "si_sdr": None,
        }
        if permutation is not None and mixture is not None:
            reference = permutation[stream]
            source = mixture.sources[reference]
            row.update(
                reference=reference,
                utt_id=source.utt_id,
                true_label=source.label,
                system=source.system,
                language=source.language,
                speaker=source.speaker,
            )
            if result.assignment.si_sdr is not None:
                row["si_sdr"] = float(result.assignment.si_sdr[reference])
        rows.append(row)
    return rows


def _problem(error: Exception) -> str:
    if isinstance(error, AudioError):
        return f"{error.problem} ({error.path})"
    return str(error)


def _fit(array: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``length``. Shape: ``[..., T] -> [..., length]``."""
    array = np.asarray(array, dtype=np.float32)
    if array.shape[-1] == length:
        return array
    if array.shape[-1] > length:
        return np.ascontiguousarray(array[..., :length])
    pad = [(0, 0)] * (array.ndim - 1) + [(0, length - array.shape[-1])]
    return np.pad(array, pad)


def _prefetch(function, entries: Iterable, threads: int, depth: int) -> Iterator:
    """``map(function, entries)`` in order, computed up to ``depth`` items ahead by ``threads``
    background threads (file reading and decoding overlap the models' work); ``threads=0``
    runs inline. At most ``depth`` results wait in memory."""
    if threads <= 0:
        yield from map(function, entries)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="amongus-load") as pool:
        waiting: deque = deque()
        for entry in entries:
            waiting.append(pool.submit(function, entry))
            if len(waiting) > depth:
                yield waiting.popleft().result()
        while waiting:
            yield waiting.popleft().result()


MIXED_PRECISION = {"no": None, "bf16": "bfloat16", "fp16": "float16"}


def check_mixed_precision(value: str | None, device: str, quantize: bool = False) -> str | None:
    """``None``, ``"bf16"`` or ``"fp16"`` from a ``mixed_precision`` option (``"no"`` is
    ``None``). Raises ``ValueError`` for another value, fp16 off CUDA (CPU autocast is for
    bf16), or together with int8 quantization."""
    value = None if value in (None, "no") else str(value)
    if value is not None and value not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {sorted(MIXED_PRECISION)}, got {value!r}")
    if value == "fp16" and not str(device).startswith("cuda"):
        raise ValueError(f"mixed_precision='fp16' needs a CUDA device (got {device!r}); use bf16")
    if value is not None and quantize:
        raise ValueError("quantize (int8) and mixed_precision are alternatives: choose one")
    return value


def autocast(device: str, mixed_precision: str | None):
    """``torch.autocast`` for ``device`` with the dtype of ``mixed_precision``, or a context
    that does nothing when it is ``None``."""
    import contextlib

    if mixed_precision is None:
        return contextlib.nullcontext()
    import torch

    dtype = getattr(torch, MIXED_PRECISION[mixed_precision])
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _separate(separator, mixture, rate, out_rate, lengths, *, chunk_seconds, references, batched):
    """``separate_at_rate`` on the whole ``[B, T]`` batch, or (``batched=False``) on each item
    cropped to its length, the streams put back in one ``[B, S, T_out]`` tensor, zero past
    each item's end, as ``separate_at_rate`` returns them for the batch."""
    import torch

    from .separation.run import separate_at_rate

    if batched or mixture.shape[0] == 1:
        return separate_at_rate(separator, mixture, rate, out_rate, torch.tensor(lengths),
                                chunk_seconds=chunk_seconds, references=references)  # fmt: skip
    out_length = math.ceil(mixture.shape[-1] * out_rate / rate)
    streams, rates = None, None
    for row, length in enumerate(lengths):
        item_references = None if references is None else references[row : row + 1, :, :length]
        item, rates = separate_at_rate(separator, mixture[row : row + 1, :length], rate,
                                       out_rate, torch.tensor([length]),
                                       chunk_seconds=chunk_seconds,
                                       references=item_references)  # fmt: skip
        if streams is None:
            streams = item.new_zeros(mixture.shape[0], item.shape[1], out_length)
        streams[row, :, : item.shape[-1]] = item[0]
    return streams, rates


def _batches_by_rate(items: Sequence[_Item], batch_size: int) -> Iterator[list[_Item]]:
    batch: list[_Item] = []
    for item in items:
        if batch and (len(batch) >= batch_size or item.rate != batch[0].rate):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


__all__ = ["Pipeline", "PipelineResult", "load_classifier", "load_pipeline_separator"]
