"""The Separator protocol and the separator registry.

Every separator takes ``[B, T]`` mixtures at its own ``sample_rate`` and returns ``[B, n_src, T]``
streams of the same length (Asteroid's layout), with no hidden resampling or normalisation.
Resampling to and from the separator's rate is the pipeline's job (``amongus.audio.resample``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

# Defined with the loading code; re-exported here so ``amongus.separation.CheckpointError`` stays.
from ..checkpoints import CheckpointError  # noqa: F401

logger = logging.getLogger(__name__)
_WARNED_SHORT: set[tuple[str, int]] = set()
_REGISTRY: dict[str, Callable[..., Separator]] = {}
#: Registered separators that run without SpeechBrain, Asteroid or torchaudio.
_NEEDS_NO_MODEL_LIBRARY = ("oracle", "passthrough")


@runtime_checkable
class Separator(Protocol):
    """What the pipeline needs from a separator.

    ``sample_rate`` is the rate the separator must be fed (``None``: any rate, as for the oracle
    and passthrough); ``n_src`` the number of streams it returns; ``identity`` a stable string
    (kind, weights hash, rate, output scale) used as a cache key for separated streams.
    """

    sample_rate: int | None
    n_src: int
    identity: str

    def separate(self, mixture, lengths=None, *, references=None):  # pragma: no cover - protocol
        """Shape: ``[B, T] -> [B, n_src, T]``. ``lengths`` ([B], samples) marks padding;
        ``references`` ([B, S, T]) is used by the oracle and ignored by the others."""
        ...


class SeparatorBase:
    """Shared behaviour of the built-in separators; subclasses implement ``_separate``.

    ``separate`` validates the batch, separates each item as it would be alone (items of a padded
    batch are run in groups of equal valid length, cropped to it), zero-pads an input shorter
    than ``min_samples`` up to it and crops the streams back, separates inputs longer than
    ``chunk_seconds`` (or than ``max_samples``) in overlapping chunks
    (``amongus.separation.chunking``), runs everything under ``torch.inference_mode()``, applies
    the ``output_scale`` policy (``amongus.separation.scale``) once and zeroes every stream past
    its item's length.

    Attributes:
        chunk_seconds: chunk length ``separate`` uses by default (``None``: whole inputs). The
            model separators default to ``MODEL_CHUNK_SECONDS`` so that memory is bounded;
            set it on an instance to change it (``math.inf`` or ``None`` turns chunking off, up
            to ``max_samples``).
        overlap_seconds: overlap of those chunks (``None``: a quarter of the chunk).
        min_samples: shortest input the model accepts (its encoder kernel), in samples at
            ``sample_rate``; 1 for the oracle and passthrough.
        max_samples: longest input the model takes in one piece (``None``: no limit), e.g.
            SepFormer's positional-encoding table (``amongus.separation.limits``).
    """

    sample_rate: int | None = None
    n_src: int = 2
    output_scale: str = "none"
    chunk_seconds: float | None = None
    overlap_seconds: float | None = None

    @property
    def identity(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def min_samples(self) -> int:
        return 1

    @property
    def max_samples(self) -> int | None:
        return None

    @property
    def chunking_tag(self) -> str:
        """``":chunk=<seconds>/<overlap>"`` when ``separate`` chunks by default, else ``""``:
        model separators append it to their ``identity``, as chunking changes their output."""
        if self.chunk_seconds is None or math.isinf(self.chunk_seconds):
            return ""
        overlap = self.overlap_seconds
        overlap = self.chunk_seconds / 4 if overlap is None else overlap
        return f":chunk={self.chunk_seconds:g}/{overlap:g}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity})"

    def _separate(self, mixture, lengths, references):  # pragma: no cover - abstract
        """Shape: ``[B, T] -> [B, S, T']`` (raw, unscaled; ``T'`` may differ from ``T``).

        Called with ``lengths=None``: every row is valid and at least ``min_samples`` long."""
        raise NotImplementedError

    def separate(self, mixture, lengths=None, *, references=None, output_scale=None):
        """Separate a padded batch of mixtures.

        Args:
            mixture: ``[B, T]`` float tensor at ``self.sample_rate``.
            lengths: ``[B]`` valid samples per item (``None``: all ``T``).
            references: ``[B, S, T]`` reference sources (the oracle needs them).
            output_scale: overrides ``self.output_scale`` for this call.

        Each item's streams equal those of separating it alone. Inputs longer than
        ``chunk_seconds`` are separated in chunks (see the class docstring); inputs shorter than
        ``min_samples`` are zero-padded to it and the streams cropped back.

        Raises:
            ValueError: wrong rank or dtype, empty batch, NaN/inf samples, lengths out of range,
                references that do not fit, missing references for the oracle.

        Shape: ``[B, T] -> [B, n_src, T]``, on the device and with the dtype of ``mixture``.
        """
        return self.separate_chunks(
            mixture,
            lengths,
            references=references,
            output_scale=output_scale,
            plan=self.default_plan(),
        )

    def default_plan(self) -> tuple[int, int] | None:
        """``(chunk, overlap)`` in samples that ``separate`` uses (``chunk_seconds`` and
        ``overlap_seconds`` at ``sample_rate``, the chunk capped at ``max_samples``), or
        ``None`` for whole inputs."""
        from .chunking import chunk_plan

        plan = chunk_plan(self.chunk_seconds, self.overlap_seconds, self.sample_rate)
        limit = self.max_samples
        if plan is not None and limit is not None and plan[0] > limit:
            plan = (limit, min(plan[1], limit // 2))  # the default stays within the model
        return plan

    def separate_chunks(
        self,
        mixture,
        lengths=None,
        *,
        references=None,
        output_scale=None,
        plan=None,
        progress: bool = False,
    ):
        """``separate`` with explicit chunking: ``plan`` is ``(chunk, overlap)`` in samples at
        ``sample_rate`` (``amongus.separation.chunking.chunk_plan``) or ``None`` for whole
        inputs. A chunk (or a whole input) longer than ``max_samples`` is cut to it, with a
        warning. ``separate_chunked`` and ``separate_at_rate`` call this.

        Shape: ``[B, T] -> [B, n_src, T]``.
        """
        import torch

        from .chunking import stitch_chunks
        from .scale import apply_output_scale, check_output_scale

        mixture, lengths = check_batch(mixture, lengths)
        if references is not None:
            references = check_references(references, mixture)
        policy = check_output_scale(output_scale or self.output_scale)
        plan = self._within_limit(plan, mixture.shape[-1])
        with torch.inference_mode():
            if plan is None:
                streams = self._separate_grouped(mixture, lengths, references)
            else:
                streams = stitch_chunks(
                    self._separate_grouped,
                    mixture,
                    lengths,
                    references,
                    chunk=plan[0],
                    overlap=plan[1],
                    progress=progress,
                )
            # zeroes the padding too (streams is the model's fresh output: scaled in place)
            streams = apply_output_scale(
                streams.contiguous(), mixture, policy, lengths, inplace=True
            )
        # a copy made outside inference mode is an ordinary tensor: a classifier being trained
        # on the streams (separator frozen) can save it for backward
        return streams.clone()

    def _within_limit(self, plan, width: int):
        limit = self.max_samples
        if limit is None or (plan is None and width <= limit) or (plan and plan[0] <= limit):
            return plan
        wanted = "whole inputs" if plan is None else f"chunks of {plan[0]} samples"
        logger.warning(
            "%r takes at most %d samples in one piece; %s asked for: separating in chunks of %d "
            "samples instead",
            self,
            limit,
            wanted,
            limit,
        )
        return limit, max(1, min(limit // 4 if plan is None else plan[1], limit // 2))

    def _separate_grouped(self, mixture, lengths, references):
        """Run ``_separate`` on each group of items sharing a valid length, cropped to it (and
        zero-padded up to ``min_samples``). Returns raw streams ``[B, S, T]``, zero past each
        item's length; items of length 0 give zero streams without running the model.

        Why groups: SepFormer's ``ln`` and ConvTasNet's ``gLN`` normalise over the whole input,
        so padding would change a padded item's streams.
        """
        import torch

        batch, width = mixture.shape
        if lengths is None or bool((lengths == width).all()):
            groups = [(None, width)]
        else:
            groups = [
                ((lengths == value).nonzero().flatten(), value)
                for value in torch.unique(lengths).tolist()
            ]
        streams = None
        for index, value in groups:
            if value == 0:
                continue
            part = mixture if index is None else mixture[index, :value]
            part_references = references
            if references is not None and index is not None:
                part_references = references[index, :, :value]
            if value < self.min_samples:
                key = (repr(self), self.min_samples)
                # once per separator at warning level: a batch of many short items would flood
                (logger.debug if key in _WARNED_SHORT else logger.warning)(
                    "%r: %d item(s) of %d samples, shorter than the model's minimum input of %d "
                    "samples (its encoder kernel): zero-padded to it, streams cropped back",
                    self,
                    part.shape[0],
                    value,
                    self.min_samples,
                )
                _WARNED_SHORT.add(key)
                part = fit_length(part, self.min_samples)
                if part_references is not None:
                    part_references = fit_length(part_references, self.min_samples)
            raw = self._separate(part, None, part_references)
            raw = fit_length(raw.to(device=mixture.device, dtype=mixture.dtype), value)
            if raw.ndim != 3 or raw.shape[:2] != (part.shape[0], self.n_src):
                raise RuntimeError(
                    f"{self!r} returned streams of shape {tuple(raw.shape)}, expected "
                    f"[{part.shape[0]}, {self.n_src}, T]"
                )
            if index is None:
                return raw
            if streams is None:
                streams = mixture.new_zeros(batch, raw.shape[1], width)
            streams[index, :, :value] = raw
        if streams is None:
            streams = mixture.new_zeros(batch, self.n_src, width)
        return streams


def check_batch(mixture, lengths=None):
    """Validate a batch of mixtures; returns ``(mixture, lengths)`` with lengths as a long tensor.

    Raises ``ValueError`` for a wrong rank, an empty batch, non-finite samples or lengths out of
    ``[0, T]``.

    Shape: ``mixture [B, T]``, ``lengths [B]``.
    """
    import torch

    if not isinstance(mixture, torch.Tensor):
        raise ValueError(f"mixture must be a torch.Tensor [B, T], got {type(mixture).__name__}")
    if mixture.ndim != 2:
        raise ValueError(f"mixture must have shape [B, T], got {tuple(mixture.shape)}")
    if mixture.shape[0] == 0 or mixture.shape[1] == 0:
        raise ValueError(f"mixture batch is empty: shape {tuple(mixture.shape)}")
    if not mixture.is_floating_point():
        raise ValueError(f"mixture must be floating point, got {mixture.dtype}")
    if not bool(torch.isfinite(mixture).all()):
        raise ValueError("mixture contains NaN or infinite samples")
    if lengths is None:
        return mixture, None
    lengths = torch.as_tensor(lengths, device=mixture.device).long().reshape(-1)
    if lengths.shape[0] != mixture.shape[0]:
        raise ValueError(
            f"lengths has {lengths.shape[0]} entries for a batch of {mixture.shape[0]}"
        )
    if bool((lengths < 0).any()) or bool((lengths > mixture.shape[1]).any()):
        raise ValueError(f"lengths must lie in [0, {mixture.shape[1]}], got {lengths.tolist()}")
    return mixture, lengths


def check_references(references, mixture):
    """Validate ``references [B, S, T]`` against ``mixture [B, T]``; returns them as float."""
    import torch

    if not isinstance(references, torch.Tensor) or references.ndim != 3:
        shape = tuple(references.shape) if isinstance(references, torch.Tensor) else None
        raise ValueError(f"references must be a tensor [B, S, T], got {shape}")
    if references.shape[0] != mixture.shape[0] or references.shape[2] != mixture.shape[1]:
        raise ValueError(
            f"references {tuple(references.shape)} do not match mixture {tuple(mixture.shape)}: "
            "expected [B, S, T] with the mixture's B and T"
        )
    if not bool(torch.isfinite(references).all()):
        raise ValueError("references contain NaN or infinite samples")
    return references.to(device=mixture.device, dtype=mixture.dtype)


def fit_length(streams, length: int):
    """Crop or zero-pad the last axis to ``length`` (models may return a few samples more or less).

    Shape: ``[..., T'] -> [..., length]``.
    """
    import torch.nn.functional as F

    if streams.shape[-1] > length:
        return streams[..., :length]
    if streams.shape[-1] < length:
        return F.pad(streams, (0, length - streams.shape[-1]))
    return streams


def register_separator(name: str) -> Callable[[Callable[..., Separator]], Callable[..., Separator]]:
    """Decorator: make a separator factory loadable as ``load_separator(name, ...)``."""

    def decorator(factory: Callable[..., Separator]) -> Callable[..., Separator]:
        _REGISTRY[name] = factory
        return factory

    return decorator


def registered_separators() -> list[str]:
    _import_builtin_separators()
    return sorted(_REGISTRY)


def _import_builtin_separators() -> None:
    # Importing the adapter modules registers them; they import their heavy libraries lazily.
    from . import convtasnet, oracle, sepformer  # noqa: F401


def load_separator(name_or_path: Any, **options) -> Separator:
    """Build a separator from a registered name, a checkpoint path or hub id, or an instance.

    * a ``Separator`` instance is returned as is;
    * a dict ``{"name": ..., **options}`` is a config; ``{"path": ..., **options}`` names a
      checkpoint, and ``{"name": "convtasnet", "path": ..., ...}`` a checkpoint for a
      registered model separator (the path is its ``source``);
    * a registered name (``"oracle"``, ``"passthrough"``, ``"sepformer"``, ``"convtasnet"``...);
    * otherwise a local path or hub id, whose format (SpeechBrain ``hyperparams.yaml`` or an
      Asteroid checkpoint) decides the adapter.
    """
    if isinstance(name_or_path, Separator) and not isinstance(name_or_path, (str, dict)):
        return name_or_path
    if isinstance(name_or_path, dict):
        config = dict(name_or_path)
        name, path = config.pop("name", None), config.pop("path", None)
        if name is None and path is None:
            raise ValueError(f"separator config {name_or_path!r} needs a 'name' or a 'path'")
        if name is None:
            name = path
        elif path is not None:
            _import_builtin_separators()
            if name not in _REGISTRY or name in _NEEDS_NO_MODEL_LIBRARY:
                raise ValueError(
                    f"separator config {name_or_path!r}: 'path' goes with a registered model "
                    "separator name (sepformer, convtasnet), or alone"
                )
            config["source"] = path
        return load_separator(name, **{**config, **options})
    _import_builtin_separators()
    name = str(name_or_path)
    if name not in _NEEDS_NO_MODEL_LIBRARY:
        # SpeechBrain and Asteroid import torchaudio first thing; a torchaudio built for another
        # torch fails there with an opaque OSError, so check the pair before they are imported.
        from .._compat import check_torch_family

        check_torch_family()
    if name in _REGISTRY:
        return _REGISTRY[name](**options)
    from .detect import separator_from_source

    return separator_from_source(name, **options)


def run_by_length(forward, mixture, lengths, n_src: int):
    """Run ``forward`` on each group of items sharing a valid length, cropped to that length.

    Models with global normalisation or attention (SepFormer's ``ln``, ConvTasNet's ``gLN``) see
    padding as signal, so a padded item is separated exactly as it would be alone. Items of
    length 0 give zero streams without running the model.

    Shape: ``forward: [b, t] -> [b, S, t']``; ``mixture [B, T]``, ``lengths [B]`` -> ``[B, S, T]``.
    """
    import torch

    batch, length = mixture.shape
    if lengths is None or bool((lengths == length).all()):
        return fit_length(forward(mixture), length)
    streams = mixture.new_zeros(batch, n_src, length)
    for value in torch.unique(lengths).tolist():
        if value == 0:
            continue
        index = (lengths == value).nonzero().flatten()
        group = fit_length(forward(mixture[index, :value]), value)
        streams[index, :, :value] = group.to(streams.dtype)
    return streams


def hash_files(paths, *, extra: str = "") -> str:
    """First 16 hex digits of the SHA-256 of the files' bytes (in order) and ``extra``."""
    import hashlib

    digest = hashlib.sha256(extra.encode())
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
