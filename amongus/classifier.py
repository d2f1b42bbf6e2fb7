"""The spoof classifier: a Hugging Face audio-classification model (WavLM in practice) that scores
separated streams.

:class:`SpoofClassifier` wraps ``AutoModelForAudioClassification`` and ``AutoFeatureExtractor``
loaded from a hub id (``abhishtagatya/wavlm-base-960h-asv19-deepfake``) or a local folder written by
``save_pretrained``. It

* finds which class means *spoof* from ``config.id2label`` (any spelling that
  :func:`amongus.labels.normalize_label` knows: spoof/fake/deepfake vs bonafide/bona-fide/real...),
  or from an explicit ``spoof_label=`` / ``spoof_index=``;
* scores a batch of streams with padding and attention masks, normalising each stream over its own
  samples (the feature extractor's ``do_normalize``), so a stream gets the same score alone or in a
  padded batch;
* applies a documented policy to long streams (``"crop"`` or ``"window"``) and pads short ones to
  the model's receptive field;
* returns two explicitly named scores: ``spoof_probability`` (higher = spoof) and ``cm_score``
  (higher = bonafide, the ASVspoof convention: ``logit(bonafide) - logit(spoof)``).

The classifier never resamples: give it audio at :attr:`SpoofClassifier.sample_rate` (the pipeline
resamples with :func:`amongus.audio.resample`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from amongus.classifiers.segments import (
    CROP_POSITIONS,
    LONG_POLICIES,
    SegmentPolicy,
    as_waveform_list,
    average_stream_logits,
    split_streams,
)
from amongus.labels import BONAFIDE, SPOOF, normalize_label

if TYPE_CHECKING:  # pragma: no cover
    import torch

    Waveforms = Sequence[np.ndarray | torch.Tensor] | np.ndarray | torch.Tensor

logger = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class StreamScores:
    """Scores of ``N`` streams, in the order they were given.

    Attributes:
        spoof_probability: ``[N]`` softmax probability of the spoof class (higher = spoof).
        cm_score: ``[N]`` ASVspoof-convention score, higher = bonafide:
            ``log P(not spoof) - log P(spoof)``, i.e. ``logit(bonafide) - logit(spoof)`` for a
            two-class model. Computed from the logits in float64, so it keeps ranking streams whose
            probabilities saturate at 0 or 1.
        logits: ``[N, C]`` raw model logits (averaged over windows with ``long_policy="window"``).
        predicted_label: ``"spoof"`` where ``spoof_probability > 0.5`` (``cm_score < 0``), else
            ``"bonafide"``.
    """

    spoof_probability: np.ndarray
    cm_score: np.ndarray
    logits: np.ndarray
    predicted_label: list[str]

    def __len__(self) -> int:
        return len(self.predicted_label)

    @classmethod
    def from_logits(cls, logits: np.ndarray, spoof_index: int) -> StreamScores:
        """Build the scores from ``[N, C]`` logits.

        Shape: ``logits [N, C] -> StreamScores`` of length ``N``.
        """
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] < 2:
            raise ValueError(f"logits must have shape [N, C] with C >= 2, got {logits.shape}")
        if not np.all(np.isfinite(logits)):
            bad = np.flatnonzero(~np.all(np.isfinite(logits), axis=1)).tolist()
            raise ValueError(f"the classifier produced NaN or infinite logits for streams {bad}")
        spoof_logit = logits[:, spoof_index]
        others = np.delete(logits, spoof_index, axis=1)
        # log-sum-exp of the non-spoof logits, stable for large values
        peak = others.max(axis=1)
        not_spoof_logit = peak + np.log(np.exp(others - peak[:, None]).sum(axis=1))
        cm_score = not_spoof_logit - spoof_logit
        spoof_probability = 1.0 / (1.0 + np.exp(np.clip(cm_score, -700.0, 700.0)))
        predicted = [SPOOF if score < 0 else BONAFIDE for score in cm_score]
        return cls(
            spoof_probability=spoof_probability,
            cm_score=cm_score,
            logits=logits,
            predicted_label=predicted,
        )


def find_spoof_index(
    id2label: dict[int, str] | dict[str, str],
    *,
    spoof_label: str | None = None,
    spoof_index: int | None = None,
) -> int:
    """Which class index means spoof, from a model's ``config.id2label``.

    Without an override, the label names are matched with
    :func:`amongus.labels.normalize_label` (``"spoof"``, ``"Fake"``, ``"deepfake"``... for spoof;
    ``"bonafide"``, ``"bona-fide"``, ``"real"``... for bonafide). Exactly one class must read as spoof; with two classes, one reading as bonafide
    is also enough (the other is spoof). Bare digits or letters (``"0"``/``"1"``) are not trusted:
    corpora disagree on which one means spoof.

    Args:
        id2label: index -> name (the keys may be strings, as in ``config.json``).
        spoof_label: the exact name of the spoof class (case-insensitive), for models with
            unusual names.
        spoof_index: the spoof class index, e.g. for ``LABEL_0``/``LABEL_1`` models.

    Raises:
        ValueError: when the spoof class cannot be identified; the message lists the labels.

    >>> find_spoof_index({0: "Real", 1: "Fake"})
    1
    """
    labels = {int(index): str(name) for index, name in id2label.items()}
    if len(labels) < 2:
        raise ValueError(f"a spoof classifier needs at least 2 classes, id2label is {labels}")
    described = ", ".join(f"{index}: {name!r}" for index, name in sorted(labels.items()))
    if spoof_index is not None and spoof_label is not None:
        raise ValueError("give spoof_index or spoof_label, not both")
    if spoof_index is not None:
        if int(spoof_index) not in labels:
            raise ValueError(f"spoof_index={spoof_index} is not a class of the model ({described})")
        return int(spoof_index)
    if spoof_label is not None:
        matches = [i for i, name in labels.items() if name.lower() == str(spoof_label).lower()]
        if len(matches) != 1:
            raise ValueError(
                f"spoof_label={spoof_label!r} is not a class of the model ({described})"
            )
        return matches[0]

    def reads_as(name: str) -> str | None:
        # Bare digits and letters ("0"/"1", "s"/"b") are not trusted as class names: corpora
        # disagree on them (AASIST-style code uses 1 for bonafide).
        if len(name.strip()) <= 1:
            return None
        try:
            return normalize_label(name)
        except ValueError:
            return None

    readings = {index: reads_as(name) for index, name in labels.items()}
    spoofs = [index for index, reading in readings.items() if reading == SPOOF]
    bonafides = [index for index, reading in readings.items() if reading == BONAFIDE]
    if len(spoofs) == 1:
        return spoofs[0]
    if not spoofs and len(labels) == 2 and len(bonafides) == 1:
        return next(index for index in labels if index != bonafides[0])
    problem = "several classes read as spoof" if len(spoofs) > 1 else "no class reads as spoof"
    from .cli_options import how_to_pass

    raise ValueError(
        f"cannot tell which class is spoof from the model's id2label ({described}): {problem}. "
        "Expected names such as 'spoof'/'fake' and 'bonafide'/'real'; pass "
        f"{how_to_pass('spoof_label', 'NAME')} or {how_to_pass('spoof_index', 'N')} to choose"
    )


def state_dict_digest(model: Any) -> str:
    """The first 16 hex digits of a SHA-256 over a module's state dict (names and values, in
    name order): the weights part of a classifier's :attr:`identity`."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_sample_rate(sample_rate: int | None, expected: int) -> None:
    """Refuse audio at another rate than the classifier's (``None``: not checked).

    Raises:
        ValueError: naming both rates and how to resample.
    """
    if sample_rate is not None and int(sample_rate) != expected:
        raise ValueError(
            f"audio at {sample_rate} Hz given to a classifier that expects "
            f"{expected} Hz; resample it first (amongus.audio.resample)"
        )


def _receptive_field(config: Any) -> int:
    """Samples needed for one output frame of a wav2vec2-style convolutional front end."""
    kernels = getattr(config, "conv_kernel", None)
    strides = getattr(config, "conv_stride", None)
    if not kernels or not strides:
        return 1
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field


class SpoofClassifier:
    """A spoof/bonafide classifier for single-speaker streams.

    Build it with :meth:`from_pretrained`; the constructor takes already loaded objects.

    Args:
        model: an ``AutoModelForAudioClassification`` model (``WavLMForSequenceClassification``).
        feature_extractor: its feature extractor (``Wav2Vec2FeatureExtractor``); its
            ``sampling_rate`` is the classifier's :attr:`sample_rate`.
        spoof_label, spoof_index: override the spoof class found from ``config.id2label``.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        max_seconds: longest audio given to the model in one piece; ``None`` for no limit.
        long_policy: what happens to a stream longer than ``max_seconds``:
            ``"crop"`` scores one ``max_seconds`` piece (``crop_position`` ``"start"`` or
            ``"center"``); ``"window"`` scores windows of ``max_seconds`` every
            ``window_hop_seconds`` (the last window ends at the stream's end) and averages their
            logits.
        crop_position: ``"start"`` or ``"center"``, for ``long_policy="crop"``.
        window_hop_seconds: hop between windows, ``max_seconds / 2`` by default.
        name: a name for reports and :attr:`identity` (the hub id or folder).

    Streams shorter than the model's receptive field (400 samples for WavLM) are padded with
    silence to it; an empty or all-zero stream gets a finite score.
    """

    def __init__(
        self,
        model: Any,
        feature_extractor: Any,
        *,
        spoof_label: str | None = None,
        spoof_index: int | None = None,
        device: str | torch.device = "cpu",
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
        long_policy: str = "crop",
        crop_position: str = "start",
        window_hop_seconds: float | None = None,
        name: str | None = None,
    ):
        import torch

        if long_policy not in LONG_POLICIES:
            raise ValueError(f"long_policy must be one of {LONG_POLICIES}, got {long_policy!r}")
        if crop_position not in CROP_POSITIONS:
            raise ValueError(
                f"crop_position must be one of {CROP_POSITIONS}, got {crop_position!r}"
            )
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
        if window_hop_seconds is not None and not window_hop_seconds > 0:
            raise ValueError(f"window_hop_seconds must be positive, got {window_hop_seconds}")
        rate = getattr(feature_extractor, "sampling_rate", None)
        if not rate:
            raise ValueError(
                f"the feature extractor {type(feature_extractor).__name__} has no sampling_rate"
            )
        config = model.config
        explicit = spoof_label is not None or spoof_index is not None
        self.spoof_index = find_spoof_index(
            config.id2label, spoof_label=spoof_label, spoof_index=spoof_index
        )
        if explicit and config.num_labels == 2:
            # Write the choice into the config so a saved copy loads without the override.
            config.id2label = {self.spoof_index: SPOOF, 1 - self.spoof_index: BONAFIDE}
            config.label2id = {label: index for index, label in config.id2label.items()}
        self.model = model
        self.feature_extractor = feature_extractor
        self.sample_rate = int(rate)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.model.eval()
        self.max_seconds = max_seconds
        self.long_policy = long_policy
        self.crop_position = crop_position
        self.window_hop_seconds = window_hop_seconds
        self.name = name or getattr(config, "_name_or_path", "") or type(model).__name__
        self.min_samples = _receptive_field(config)
        # The model is given attention masks when its feature extractor was set up to produce
        # them (the convention it was trained with).
        self.uses_attention_mask = bool(getattr(feature_extractor, "return_attention_mask", False))
        # Padding leaves a stream's score unchanged only when the model is told where the padding
        # is and no layer pools statistics over time (WavLM-base's GroupNorm front end does).
        self.pads_safely = (
            self.uses_attention_mask and getattr(config, "feat_extract_norm", "layer") != "group"
        )
        self._identity: str | None = None

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
        long_policy: str = "crop",
        crop_position: str = "start",
        window_hop_seconds: float | None = None,
        spoof_label: str | None = None,
        spoof_index: int | None = None,
        trust_checkpoint: bool = False,
        **hub_kwargs: Any,
    ) -> SpoofClassifier:
        """Load a classifier from a hub id or a folder written by ``save_pretrained``.

        ``hub_kwargs`` go to both ``from_pretrained`` calls (``revision=``, ``cache_dir=``,
        ``local_files_only=``...). The other options are those of :class:`SpoofClassifier`.

        Loading is safe and strict: a pickled ``pytorch_model.bin`` is read with
        ``torch.load(weights_only=True)`` and the allowlist of :mod:`amongus.checkpoints`
        (``model.safetensors`` holds no code), and weights with missing, unexpected or
        mis-shaped keys are refused rather than left random. ``trust_checkpoint=True`` loads a
        pickle you trust with ``weights_only=False``; the keys are checked either way.

        Raises:
            OSError: the folder or hub id cannot be found or is not a classifier (the message
                names it).
            amongus.checkpoints.CheckpointError: (a ``ValueError``, the separators' error) the
                weights are refused as unsafe, or do not fit the model; the message names the
                folder or file, the offending global or keys, and how to proceed.
            ValueError: the spoof class cannot be identified (the message lists the labels).

        Example::

            classifier = SpoofClassifier.from_pretrained(
                "abhishtagatya/wavlm-base-960h-asv19-deepfake", long_policy="window"
            )
            scores = classifier.score([stream_16k])
        """
        import pickle

        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        from .checkpoints import (
            CheckpointError,
            check_hf_folder_weights,
            check_loading_info,
            hf_pickle_weight_files,
            trusted_safetensors_copy,
            unsafe_pickle_error,
        )

        source = str(name_or_path)
        # A hub id is "name" or "owner/name"; anything else path-like must be an existing folder.
        looks_local = (
            source.startswith(("/", ".", "~"))
            or source.count("/") > 1
            or "\\" in source
            or Path(source).exists()
        )
        if looks_local and not Path(source).expanduser().is_dir():
            raise OSError(f"{source}: no such classifier folder")
        if looks_local:
            source = str(Path(source).expanduser())
            # before transformers unpickles anything (its own check does not name the folder)
            check_hf_folder_weights(source, trust_checkpoint=trust_checkpoint)
        model_kwargs = dict(hub_kwargs)
        # report mis-shaped keys instead of raising without naming them; refused below
        model_kwargs["ignore_mismatched_sizes"] = True
        with contextlib.ExitStack() as stack:
            weights_from = source
            if trust_checkpoint and looks_local and hf_pickle_weight_files(source):
                # transformers unpickles with weights_only=True whatever it is told
                weights_from = str(stack.enter_context(trusted_safetensors_copy(source)))
            try:
                model, loading_info = AutoModelForAudioClassification.from_pretrained(
                    weights_from, output_loading_info=True, **model_kwargs
                )
                feature_extractor = AutoFeatureExtractor.from_pretrained(source, **hub_kwargs)
            except pickle.UnpicklingError as error:  # a hub download refused by weights_only
                if trust_checkpoint:
                    raise CheckpointError(
                        f"{source}: transformers refuses the pickled weights even with "
                        "trust_checkpoint=True; download the model folder (e.g. `hf download "
                        f"{source} --local-dir DIR`) and load DIR with trust_checkpoint=True"
                    ) from error
                raise unsafe_pickle_error(source, error) from error
            except CheckpointError:
                raise
            except (OSError, ValueError) as error:
                raise OSError(f"{source}: cannot load a spoof classifier ({error})") from error
        check_loading_info(loading_info, source=source, model_name=type(model).__name__)
        return cls(
            model,
            feature_extractor,
            spoof_label=spoof_label,
            spoof_index=spoof_index,
            device=device,
            max_seconds=max_seconds,
            long_policy=long_policy,
            crop_position=crop_position,
            window_hop_seconds=window_hop_seconds,
            name=source,
        )

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the model and the feature extractor (Hugging Face format) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.feature_extractor.save_pretrained(directory)
        return directory

    @property
    def identity(self) -> str:
        """A stable string naming the model, a hash of its weights and the scoring settings.

        Use it as a cache key: it changes when the weights or the long-stream policy change.
        """
        if self._identity is None:
            self._identity = (
                f"{self.name}|sha256={state_dict_digest(self.model)}|sr={self.sample_rate}"
                f"|max={self.max_seconds}|{self.long_policy}|{self.crop_position}"
                f"|hop={self.window_hop_seconds}"
            )
        return self._identity

    @property
    def labels(self) -> dict[int, str]:
        """The model's class names by index (``config.id2label``)."""
        return {int(index): str(name) for index, name in self.model.config.id2label.items()}

    def __repr__(self) -> str:
        return (
            f"SpoofClassifier({self.name!r}, sample_rate={self.sample_rate}, "
            f"spoof_index={self.spoof_index}, max_seconds={self.max_seconds}, "
            f"long_policy={self.long_policy!r}, device={str(self.device)!r})"
        )

    # ------------------------------------------------------------------ model inputs
    @property
    def max_samples(self) -> int | None:
        if self.max_seconds is None:
            return None
        return max(self.min_samples, int(round(self.max_seconds * self.sample_rate)))

    def _fit_short(self, array: np.ndarray) -> np.ndarray:
        # Silence, not repetition (SegmentPolicy.fill): the model takes any length above its
        # receptive field, and its attention mask tells it where the stream ends.
        if array.shape[0] >= self.min_samples:
            return array
        return np.pad(array, (0, self.min_samples - array.shape[0]))

    @property
    def _long_stream_policy(self) -> SegmentPolicy | None:
        """How a stream longer than ``max_seconds`` is cut (``None``: no limit).

        Streams up to :attr:`max_samples` go to the model whole, at their own length.
        """
        limit = self.max_samples
        if limit is None:
            return None
        hop_seconds = self.window_hop_seconds or self.max_seconds / 2
        return SegmentPolicy(
            limit,
            long_policy=self.long_policy,
            crop_position=self.crop_position,
            hop_samples=max(1, int(round(hop_seconds * self.sample_rate))),
        )

    def _crop(self, array: np.ndarray) -> np.ndarray:
        policy = self._long_stream_policy
        if policy is None or array.shape[0] <= policy.segment_samples:
            return array
        return policy.crop(array)

    def _segments(self, array: np.ndarray) -> list[np.ndarray]:
        """The pieces of one stream that the model sees, following the long-stream policy."""
        array = self._fit_short(array)
        policy = self._long_stream_policy
        if policy is None or array.shape[0] <= policy.segment_samples:
            return [array]
        return policy.segments(array)

    def prepare(
        self,
        waveforms: Waveforms,
        *,
        sample_rate: int | None = None,
        lengths: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Model inputs for a batch of streams: normalised, padded, with an attention mask.

        Each stream is padded with silence to the receptive field when shorter, cropped to
        ``max_seconds`` when longer (``crop_position``; window averaging is a scoring policy, see
        :meth:`score`), normalised over its own samples when the feature extractor has
        ``do_normalize``, then padded with zeros to the longest stream.

        Args:
            waveforms: a list of ``[T_i]`` arrays or tensors, or a ``[N, T]`` batch.
            sample_rate: checked against :attr:`sample_rate` when given.
            lengths: valid samples per row of a ``[N, T]`` batch.

        Returns:
            ``{"input_values": [N, T_max] float32, "attention_mask": [N, T_max] long}`` on the
            CPU (safe in DataLoader workers); :meth:`logits` moves them to the model's device.

        Shape: ``list of [T_i] (or [N, T]) -> input_values [N, T_max], attention_mask [N, T_max]``.
        """
        check_sample_rate(sample_rate, self.sample_rate)
        arrays = [self._crop(self._fit_short(a)) for a in as_waveform_list(waveforms, lengths)]
        if not arrays:
            raise ValueError("no waveforms given")
        return self._featurize(arrays)

    def _featurize(self, arrays: list[np.ndarray]) -> dict[str, torch.Tensor]:
        import torch

        features = self.feature_extractor(
            arrays,
            sampling_rate=self.sample_rate,
            padding="longest",
            # Always ask for the mask: with it, do_normalize uses each stream's own samples only.
            return_attention_mask=True,
            return_tensors="pt",
        )
        input_values = features["input_values"]
        attention_mask = features.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones(input_values.shape[:2], dtype=torch.long)
        return {
            "input_values": input_values.to(torch.float32),
            "attention_mask": attention_mask.to(torch.long),
        }

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run the model on a batch from :meth:`prepare`.

        The inputs are moved to the model's device and dtype. Gradients flow when called
        outside ``torch.no_grad``/``inference_mode`` (the Trainer calls it with the model in train
        mode). The attention mask is passed to the model when its
        feature extractor was configured to return one.

        Shape: ``input_values [N, T] -> logits [N, C]``.
        """
        # The model may have been moved (e.g. by Accelerate) since it was loaded: follow it.
        parameter = next(self.model.parameters())
        inputs = {"input_values": batch["input_values"].to(parameter.device, parameter.dtype)}
        if self.uses_attention_mask and "attention_mask" in batch:
            inputs["attention_mask"] = batch["attention_mask"].to(parameter.device)
        with warnings.catch_warnings():
            # WavLM's attention mixes a boolean padding mask with its float position bias.
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
            return self.model(**inputs).logits

    # ------------------------------------------------------------------ scoring
    def _batches(self, segments: list[np.ndarray], batch_size: int) -> Iterator[list[int]]:
        """Segment indices grouped for the model: longest first; equal lengths only when padding
        would change the result (models without a usable attention mask)."""
        order = sorted(range(len(segments)), key=lambda i: -segments[i].shape[0])
        if self.pads_safely:
            for start in range(0, len(order), batch_size):
                yield order[start : start + batch_size]
            return
        group: list[int] = []
        for index in order:
            if group and (
                len(group) == batch_size or segments[group[0]].shape[0] != segments[index].shape[0]
            ):
                yield group
                group = []
            group.append(index)
        if group:
            yield group

    def score(
        self,
        waveforms: Waveforms,
        *,
        sample_rate: int | None = None,
        lengths: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        batch_size: int = 8,
        progress: bool = False,
    ) -> StreamScores:
        """Score streams at :attr:`sample_rate`.

        Args:
            waveforms: a list of ``[T_i]`` arrays or tensors (any lengths), or a ``[N, T]`` batch.
            sample_rate: the rate of ``waveforms``; a different rate than :attr:`sample_rate`
                raises (resample first).
            lengths: valid samples per row of a ``[N, T]`` batch (the rest is padding).
            batch_size: model inputs per forward pass (windows count individually).
            progress: show a tqdm progress bar over batches.

        Returns:
            :class:`StreamScores` with one entry per stream, in input order.

        Shape: ``list of [T_i] (or [N, T]) -> StreamScores of length N``.
        """
        import torch
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_sample_rate(sample_rate, self.sample_rate)
        arrays = as_waveform_list(waveforms, lengths)
        n_classes = int(self.model.config.num_labels)
        if not arrays:
            return StreamScores.from_logits(np.zeros((0, n_classes)), self.spoof_index)
        segments, owner = split_streams(arrays, self._segments)
        segment_logits = np.zeros((len(segments), n_classes), dtype=np.float64)
        batches = list(self._batches(segments, batch_size))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for group in tqdm(batches, desc="classify", unit="batch", disable=not progress):
                    batch = self._featurize([segments[i] for i in group])
                    logits = self.logits(batch).to("cpu", torch.float64).numpy()
                    segment_logits[group] = logits
        finally:
            self.model.train(was_training)
        return StreamScores.from_logits(
            average_stream_logits(segment_logits, owner, len(arrays)), self.spoof_index
        )

    def n_windows(self, n_samples: int) -> int:
        """How many model inputs a stream of ``n_samples`` samples becomes under the policy."""
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        policy = self._long_stream_policy
        if policy is None:
            return 1
        return policy.n_segments(max(n_samples, self.min_samples))
