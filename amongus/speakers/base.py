"""The speaker-embedder protocol: waveforms in, one L2-normalised vector per waveform out.

An embedder declares the rate its model expects (:attr:`SpeakerEmbedder.sample_rate`) and a
stable :attr:`SpeakerEmbedder.identity` for caches and reports. :meth:`SpeakerEmbedder.embed`
takes care of what every model needs the same way: input layouts, resampling (through
:func:`amongus.audio.resample`, the one place where amongus resamples), input checks, bounded
batches and the final L2 normalisation, so that the cosine similarity of two embeddings is their
dot product. A model adapter only implements :meth:`SpeakerEmbedder._embed_batch`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..validation import InvalidAudioError, check_duration

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

#: Cosine-similarity threshold used when a model states none: the default of SpeechBrain's
#: ``SpeakerRecognition.verify_batch`` for ``spkrec-ecapa-voxceleb``.
FALLBACK_THRESHOLD = 0.25


class SpeakerEmbedder:
    """Base class of speaker embedders.

    Attributes:
        sample_rate: the rate (Hz) the model works at; other rates are resampled in
            :meth:`embed`.
        embedding_dim: ``D``, the size of one embedding.
        verification_threshold: the cosine similarity above which two embeddings are taken to be
            the same speaker, as measured for this model (``None``: not measured, callers use
            :data:`FALLBACK_THRESHOLD`).
        batch_size: at most this many waveforms go through the model at once (bounds memory).
    """

    sample_rate: int = 16000
    embedding_dim: int = 0
    verification_threshold: float | None = None
    batch_size: int = 16
    name: str = "embedder"

    @property
    def identity(self) -> str:
        """A stable id (name and weights digest) for caches and reports."""
        raise NotImplementedError

    def _embed_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Model forward on equal-length waveforms at :attr:`sample_rate`.

        Shape: ``[B, T] -> [B, D]`` (not normalised; :meth:`embed` normalises).
        """
        raise NotImplementedError

    def embed(self, waveforms: Any, sample_rate: int | None = None) -> torch.Tensor:
        """Embed waveforms.

        Args:
            waveforms: a ``torch.Tensor`` or ``np.ndarray`` of shape ``[B, T]`` or ``[T]``
                (full scale 1.0), or a sequence of ``[T]`` arrays of different lengths (each is
                embedded on its own, so no padding enters any embedding).
            sample_rate: their rate in Hz; ``None`` means :attr:`sample_rate`. Other rates are
                resampled with :func:`amongus.audio.resample`.

        Returns:
            ``torch.Tensor [B, D]``, float32, on the CPU, each row of unit L2 norm.

        Raises:
            ValueError: a layout other than the above, or a non-positive ``sample_rate``.
            InvalidAudioError: a waveform holds NaN or infinite samples (``non_finite``), or is
                shorter than :data:`amongus.validation.MIN_DURATION_SECONDS` (``too_short``);
                the message names the input by its index.
        """
        import torch

        rate = self.sample_rate if sample_rate is None else sample_rate
        if not isinstance(rate, int | np.integer) or rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if isinstance(waveforms, Sequence) and not isinstance(waveforms, str | bytes):
            if len(waveforms) == 0:
                raise ValueError("no waveforms to embed")
            rows = [
                self._as_batch(item, int(rate), first_index=i) for i, item in enumerate(waveforms)
            ]
            if any(row.shape[0] != 1 for row in rows):
                raise ValueError("a sequence of waveforms must hold [T] arrays")
            return torch.cat([self._run(row) for row in rows])
        return self._run(self._as_batch(waveforms, int(rate)))

    def _as_batch(self, waveforms: Any, rate: int, *, first_index: int = 0) -> torch.Tensor:
        """Any accepted layout -> a float32 ``[B, T]`` tensor at :attr:`sample_rate`, checked."""
        import torch

        if isinstance(waveforms, np.ndarray):
            waveforms = torch.from_numpy(np.ascontiguousarray(waveforms))
        if not isinstance(waveforms, torch.Tensor):
            raise ValueError(
                f"expected a torch.Tensor, a numpy array or a sequence of them, got "
                f"{type(waveforms).__name__}"
            )
        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2 or not waveforms.is_floating_point():
            raise ValueError(
                f"expected float waveforms of shape [B, T] or [T], got shape "
                f"{tuple(waveforms.shape)} and dtype {waveforms.dtype}"
            )
        if waveforms.shape[0] == 0:
            raise ValueError("no waveforms to embed (batch of 0)")
        waveforms = waveforms.detach().to("cpu", torch.float32)
        finite = torch.isfinite(waveforms).all(dim=1)
        for index in range(waveforms.shape[0]):
            where = f"array input {first_index + index}"
            check_duration(waveforms.shape[1], rate, path=where)
            if not bool(finite[index]):
                raise InvalidAudioError(where, "non_finite", "contains NaN or infinite samples")
        if rate != self.sample_rate:
            from ..audio import resample

            waveforms = resample(waveforms, rate, self.sample_rate)
        return waveforms

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        outputs = []
        with torch.inference_mode():
            for start in range(0, batch.shape[0], self.batch_size):
                embedded = self._embed_batch(batch[start : start + self.batch_size])
                outputs.append(embedded.reshape(embedded.shape[0], -1).float().cpu())
        embeddings = torch.cat(outputs)
        if not torch.isfinite(embeddings).all():
            raise RuntimeError(
                f"{self.identity}: the model returned NaN or infinite embeddings; refusing to "
                "pass them on"
            )
        return torch.nn.functional.normalize(embeddings, dim=1)


def load_speaker_embedder(
    spec: str | os.PathLike | SpeakerEmbedder | None = None,
    *,
    device: str = "cpu",
    trust_checkpoint: bool = False,
) -> SpeakerEmbedder:
    """Get a speaker embedder from a name, a folder or an instance.

    Args:
        spec: ``None`` or ``"ecapa-tiny"`` (the small ECAPA-TDNN shipped with amongus); a folder
            in the published SpeechBrain ``spkrec-ecapa-voxceleb`` layout (``hyperparams.yaml``
            + ``embedding_model.ckpt``, optionally ``mean_var_norm_emb.ckpt``,
            ``classifier.ckpt``, ``label_encoder.txt``); a Hugging Face Hub id of such a
            folder (found only in the local cache when offline); or an embedder instance,
            returned as it is.
        device: where the model runs (embeddings come back on the CPU).
        trust_checkpoint: skip the safety checks of ``hyperparams.yaml`` and the weight files
            (any code they hold runs). Weights are still loaded strictly.

    Returns:
        A :class:`SpeakerEmbedder`.

    Raises:
        amongus.checkpoints.CheckpointError: the folder is incomplete, a file is refused as
            unsafe, or the weights do not fit the model (missing, unexpected or mis-shaped keys).

    Example:
        >>> embedder = load_speaker_embedder()  # doctest: +SKIP
        >>> embedder.embed(torch.randn(2, 32000)).shape  # doctest: +SKIP
        torch.Size([2, 128])
    """
    if isinstance(spec, SpeakerEmbedder):
        return spec
    from .ecapa import EcapaEmbedder

    return EcapaEmbedder(spec, device=device, trust_checkpoint=trust_checkpoint)
