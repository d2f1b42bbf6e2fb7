"""Shared scoring of the countermeasures that are plain PyTorch modules (AASIST, SSL_W2V).

:class:`ModuleClassifier` gives such a model the classifier contract of
:class:`amongus.classifiers.Classifier`: it cuts each stream into fixed-length segments with the
family's :class:`~amongus.classifiers.segments.SegmentPolicy`, batches them, runs the model in eval
mode, averages the logits of a stream's windows and returns :class:`amongus.classifier.StreamScores`
(``spoof_probability`` higher = spoof, ``cm_score`` higher = bonafide), the class order read from
``id2label``. It never resamples or normalises the audio.

The on-disk format it writes (:meth:`ModuleClassifier.save_pretrained`) is a folder with
``model.safetensors`` (the state dict) and ``config.json``::

    {"family": "aasist", "sample_rate": 16000, "id2label": {"0": "spoof", "1": "bonafide"},
     "segment_samples": 64600, "model_config": {...}, ...}

Keys it does not know (for instance provenance written by a recipe) are kept in
:attr:`ModuleClassifier.metadata` and written back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from amongus.classifier import StreamScores, check_sample_rate, find_spoof_index, state_dict_digest

from .segments import SegmentPolicy, as_waveform_list, average_stream_logits, split_streams

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: config.json keys written by :meth:`ModuleClassifier.save_pretrained` itself.
RESERVED_KEYS = ("family", "sample_rate", "id2label", "segment_samples")


@dataclass
class CountermeasureOutput:
    """What a countermeasure module returns.

    Attributes:
        logits: ``[B, 2]`` class logits, in the model's class order (``id2label``).
        embedding: ``[B, D]`` the last hidden layer (the reference's first return value).
    """

    logits: Any
    embedding: Any


class ModuleClassifier:
    """A spoof/bonafide classifier around a PyTorch module that maps ``[B, T]`` audio to logits.

    Args:
        model: a module whose ``forward(input_values [B, T])`` returns a
            :class:`CountermeasureOutput`; it must have a ``config`` with ``num_labels``.
        id2label: class names by index (the spoof class is found with
            :func:`amongus.classifier.find_spoof_index`).
        sample_rate: the rate the model was trained at, Hz.
        segment_samples: the model's input length, samples.
        long_policy: ``"window"`` (default: windows of ``segment_samples`` every
            ``window_hop_seconds``, logits averaged) or ``"crop"`` (one segment).
        crop_position: ``"start"`` (the reference evaluation) or ``"center"``, for ``"crop"``.
        window_hop_seconds: hop between windows, half a segment by default.
        device: where the model runs.
        name: a name for reports and :attr:`identity` (the checkpoint path or preset name).
        metadata: extra ``config.json`` entries kept and written back by :meth:`save_pretrained`.
        spoof_label, spoof_index: override the spoof class found from ``id2label`` (as for
            :class:`amongus.classifier.SpoofClassifier`), for weights trained with another order.

    Streams shorter than a segment are repeated to fill it (see
    :class:`~amongus.classifiers.segments.SegmentPolicy`).
    """

    family: ClassVar[str] = ""
    #: the model takes no padding mask: every segment has exactly ``segment_samples`` samples
    uses_attention_mask: ClassVar[bool] = False

    def __init__(
        self,
        model: Any,
        *,
        id2label: Mapping[int, str] | Mapping[str, str],
        sample_rate: int,
        segment_samples: int,
        long_policy: str = "window",
        crop_position: str = "start",
        window_hop_seconds: float | None = None,
        device: str | Any = "cpu",
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        spoof_label: str | None = None,
        spoof_index: int | None = None,
    ):
        import torch

        from amongus.labels import BONAFIDE, SPOOF

        if window_hop_seconds is not None and not window_hop_seconds > 0:
            raise ValueError(f"window_hop_seconds must be positive, got {window_hop_seconds}")
        self.id2label = {int(index): str(label) for index, label in id2label.items()}
        self.spoof_index = find_spoof_index(
            self.id2label, spoof_label=spoof_label, spoof_index=spoof_index
        )
        if (spoof_label is not None or spoof_index is not None) and len(self.id2label) == 2:
            # written into config.json by save_pretrained: the copy loads without the override
            self.id2label = {self.spoof_index: SPOOF, 1 - self.spoof_index: BONAFIDE}
        self.sample_rate = int(sample_rate)
        hop = None if window_hop_seconds is None else round(window_hop_seconds * self.sample_rate)
        self.policy = SegmentPolicy(
            int(segment_samples),
            long_policy=long_policy,
            crop_position=crop_position,
            hop_samples=hop,
        )
        self.window_hop_seconds = window_hop_seconds
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.model.eval()
        self.name = name or self.family
        self.metadata = dict(metadata or {})
        self._identity: str | None = None

    # ------------------------------------------------------------------ description
    @property
    def labels(self) -> dict[int, str]:
        """Class names by index (``id2label``)."""
        return dict(self.id2label)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def segment_samples(self) -> int:
        return self.policy.segment_samples

    @property
    def long_policy(self) -> str:
        return self.policy.long_policy

    @property
    def identity(self) -> str:
        """The family, name, a hash of the weights, the rate and the input policy: a cache key."""
        if self._identity is None:
            self._identity = (
                f"{self.family}:{self.name}|sha256={state_dict_digest(self.model)}"
                f"|sr={self.sample_rate}|{self.policy.describe()}"
            )
        return self._identity

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, sample_rate={self.sample_rate}, "
            f"spoof_index={self.spoof_index}, segment_samples={self.segment_samples}, "
            f"long_policy={self.long_policy!r}, device={str(self.device)!r})"
        )

    def n_windows(self, n_samples: int) -> int:
        """How many model inputs a stream of ``n_samples`` samples becomes under the policy."""
        return self.policy.n_segments(n_samples)

    # ------------------------------------------------------------------ inputs and logits
    def prepare(
        self,
        waveforms,
        *,
        sample_rate: int | None = None,
        lengths: Sequence[int] | np.ndarray | None = None,
    ) -> dict[str, Any]:
        """One model input per stream: filled or cropped to ``segment_samples`` (crop policy).

        Windowing is a scoring policy (:meth:`score`); training crops (the dataset chooses
        where). ``attention_mask`` is all ones: no segment holds padding.

        Returns:
            ``{"input_values": [N, segment_samples] float32, "attention_mask": [N,
            segment_samples] long}`` on the CPU.

        Shape: ``list of [T_i] (or [N, T]) -> input_values [N, segment_samples]``.
        """
        import torch

        check_sample_rate(sample_rate, self.sample_rate)
        arrays = as_waveform_list(waveforms, lengths)
        if not arrays:
            raise ValueError("no waveforms given")
        values = torch.from_numpy(np.stack([self.policy.crop(a) for a in arrays]).astype("f4"))
        return {
            "input_values": values,
            "attention_mask": torch.ones(values.shape, dtype=torch.long),
        }

    def logits(self, batch: Mapping[str, Any]):
        """Run the model on ``batch["input_values"]``, moved to the model's device and dtype.

        Gradients flow when called outside ``torch.no_grad``/``inference_mode``.

        Shape: ``input_values [N, segment_samples] -> logits [N, 2]``.
        """
        parameter = next(self.model.parameters())
        values = batch["input_values"].to(parameter.device, parameter.dtype)
        return self.model(values).logits

    def score(
        self,
        waveforms,
        *,
        sample_rate: int | None = None,
        lengths: Sequence[int] | np.ndarray | None = None,
        batch_size: int = 8,
        progress: bool = False,
    ) -> StreamScores:
        """Score streams at :attr:`sample_rate`.

        Args:
            waveforms: a list of ``[T_i]`` arrays or tensors (any lengths), or a ``[N, T]`` batch.
            sample_rate: the rate of ``waveforms``; another rate raises ``ValueError``.
            lengths: valid samples per row of a ``[N, T]`` batch.
            batch_size: segments per forward pass (windows count individually).
            progress: show a tqdm progress bar over batches.

        Returns:
            :class:`amongus.classifier.StreamScores`, one entry per stream, in input order.

        Raises:
            ValueError: wrong rate, shapes, or NaN/infinite samples (naming the stream).

        Shape: ``list of [T_i] (or [N, T]) -> StreamScores of length N``.
        """
        import torch
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_sample_rate(sample_rate, self.sample_rate)
        arrays = as_waveform_list(waveforms, lengths)
        if not arrays:
            return StreamScores.from_logits(np.zeros((0, self.num_labels)), self.spoof_index)
        segments, owner = split_streams(arrays, self.policy.segments)
        segment_logits = np.zeros((len(segments), self.num_labels), dtype=np.float64)
        starts = range(0, len(segments), batch_size)
        parameter = next(self.model.parameters())
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in tqdm(starts, desc="classify", unit="batch", disable=not progress):
                    chunk = np.stack(segments[start : start + batch_size]).astype(np.float32)
                    values = torch.from_numpy(chunk).to(parameter.device, parameter.dtype)
                    logits = self.model(values).logits
                    segment_logits[start : start + len(chunk)] = logits.to(
                        "cpu", torch.float64
                    ).numpy()
        finally:
            self.model.train(was_training)
        return StreamScores.from_logits(
            average_stream_logits(segment_logits, owner, len(arrays)), self.spoof_index
        )

    # ------------------------------------------------------------------ saving
    def model_config_json(self) -> dict[str, Any]:  # pragma: no cover - overridden
        """The family's architecture entries of ``config.json``."""
        raise NotImplementedError

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created).

        :func:`amongus.classifiers.load_classifier` reads the folder back.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            key: tensor.detach().to("cpu").contiguous()
            for key, tensor in self.model.state_dict().items()
        }
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        # safetensors creates the file owner-only; weights are data, readable like the rest
        (directory / WEIGHTS_NAME).chmod(0o644)
        architecture = self.model_config_json()
        config = {
            "family": self.family,
            "sample_rate": self.sample_rate,
            "id2label": {str(index): label for index, label in sorted(self.id2label.items())},
            "segment_samples": self.segment_samples,
            **architecture,
            **{
                key: value
                for key, value in self.metadata.items()
                if key not in (*RESERVED_KEYS, *architecture)
            },
        }
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return directory


def read_config_json(path: Path) -> dict[str, Any]:
    """Read a JSON config file; a clear ``CheckpointError`` naming the file when it is not JSON."""
    from amongus.checkpoints import CheckpointError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the model config ({error})") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the model config must be a JSON object")
    return data
