"""Enrollment: name found speakers after known participants, from short clean clips.

Each participant is enrolled from one or more clips: every clip is embedded on its own, the
embeddings are averaged and the mean is L2-normalised again (the usual enrollment of speaker
verification, e.g. SpeechBrain's VoxCeleb recipe averages enrollment embeddings). A found
speaker's embedding is then compared with each participant by cosine similarity (higher = more
alike, in ``[-1, 1]``):

* :meth:`Enrollment.identify`: each embedding gets its most similar participant, or ``None``
  when even that one is below :attr:`Enrollment.threshold`;
* :meth:`Enrollment.assign`: a one-to-one assignment (Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``, maximising the total similarity), for when every
  participant speaks as one found speaker at most.

The default threshold is the embedder's measured verification threshold
(:attr:`SpeakerEmbedder.verification_threshold`: for ``ecapa-tiny``, the equal-error-rate point
of its held-out trial pairs, see its model card), else
:data:`amongus.speakers.base.FALLBACK_THRESHOLD`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import FALLBACK_THRESHOLD, SpeakerEmbedder

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: One (name, cosine similarity) per embedding; the name is ``None`` when nobody matches.
Match = tuple[str | None, float]


@dataclass
class Enrollment:
    """Enrolled participants.

    Attributes:
        names: participant names, in the order of the rows of ``embeddings``.
        embeddings: ``torch.Tensor [P, D]``, L2-normalised, one per participant.
        threshold: cosine similarity under which nobody is named.
        embedder_identity: the :attr:`SpeakerEmbedder.identity` the embeddings came from
            (embeddings of another model are not comparable).
        clips: participant -> how many clips were averaged.
    """

    names: list[str]
    embeddings: torch.Tensor
    threshold: float
    embedder_identity: str = ""
    clips: dict[str, int] = field(default_factory=dict)

    def similarities(self, embeddings: Any) -> np.ndarray:
        """Cosine similarities ``[N, P]`` of ``embeddings`` (``[N, D]`` or ``[D]``) to each
        participant.

        Raises:
            ValueError: the embedding size differs from the enrolled one, or a value is not
                finite.
        """
        import torch

        found = torch.as_tensor(embeddings, dtype=torch.float32).detach().cpu()
        if found.ndim == 1:
            found = found.unsqueeze(0)
        enrolled = self.embeddings.detach().cpu().float()
        if found.ndim != 2 or found.shape[1] != enrolled.shape[1]:
            raise ValueError(
                f"expected embeddings of shape [N, {enrolled.shape[1]}], got "
                f"{tuple(found.shape)} (were they made by "
                f"{self.embedder_identity or 'the same model'}?)"
            )
        if not torch.isfinite(found).all():
            raise ValueError("embeddings hold NaN or infinite values")
        found = torch.nn.functional.normalize(found, dim=1)
        return (found @ enrolled.T).numpy().astype(np.float64)

    def identify(self, embeddings: Any) -> list[Match]:
        """The most similar participant of each embedding (several may get the same one).

        Args:
            embeddings: ``[N, D]`` (normalised or not).

        Returns:
            ``N`` pairs ``(name or None, similarity)``: the similarity is the best one, and the
            name is ``None`` when it is below :attr:`threshold`.
        """
        scores = self.similarities(embeddings)
        best = scores.argmax(axis=1)
        return [
            (self.names[index] if score >= self.threshold else None, float(score))
            for index, score in zip(best, scores[np.arange(len(best)), best], strict=True)
        ]

    def assign(self, embeddings: Any, *, use_threshold: bool = True) -> list[Match]:
        """A one-to-one assignment of found speakers to participants, maximising the summed
        cosine similarity (``scipy.optimize.linear_sum_assignment``).

        Args:
            embeddings: ``[N, D]``, one per found speaker.
            use_threshold: name nobody for a pair whose similarity is below :attr:`threshold`.

        Returns:
            ``N`` pairs ``(name or None, similarity)``. With more found speakers than
            participants, the unassigned ones get ``(None, their best similarity)``.
        """
        from scipy.optimize import linear_sum_assignment

        scores = self.similarities(embeddings)
        rows, columns = linear_sum_assignment(scores, maximize=True)
        matches: list[Match] = [(None, float(row.max())) for row in scores]
        for row, column in zip(rows, columns, strict=True):
            score = float(scores[row, column])
            named = not use_threshold or score >= self.threshold
            matches[row] = (self.names[column] if named else None, score)
        return matches

    def to_dict(self) -> dict[str, Any]:
        """Names, threshold, identity and clip counts (embeddings left out), for reports."""
        return {
            "participants": list(self.names),
            "threshold": self.threshold,
            "embedder": self.embedder_identity,
            "clips": dict(self.clips),
        }


ClipSource = str | os.PathLike | np.ndarray


def _clips_of(value: Any) -> list[Any]:
    if isinstance(value, str | os.PathLike | np.ndarray) or hasattr(value, "dim"):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise ValueError(
        f"expected a clip path, an array or a list of them, got {type(value).__name__}"
    )


def enroll(
    embedder: SpeakerEmbedder,
    participants: Mapping[str, ClipSource | Sequence[ClipSource]],
    sample_rate: int | None = None,
    *,
    threshold: float | None = None,
) -> Enrollment:
    """Enroll participants from short clean clips of their voices.

    Args:
        embedder: from :func:`amongus.speakers.load_speaker_embedder`.
        participants: name -> a clip or a list of clips; a clip is an audio file path (any
            format soundfile reads, any rate, averaged to mono) or a ``[T]`` array.
        sample_rate: the rate (Hz) of array clips (``None``: the embedder's rate).
        threshold: cosine similarity under which :meth:`Enrollment.identify` names nobody
            (default: the embedder's measured ``verification_threshold``, else
            :data:`~amongus.speakers.base.FALLBACK_THRESHOLD`).

    Returns:
        An :class:`Enrollment` with one L2-normalised mean embedding per participant.

    Raises:
        ValueError: no participant, a participant without clips, an empty name, or a threshold
            outside ``[-1, 1]``.
        amongus.validation.InvalidAudioError: a clip is missing, unreadable, too short, silent,
            non-finite or not mono; the message names the file (or ``<name> clip <i>``).
    """
    import torch

    from ..audio import resample
    from ..validation import check_audio, load_valid_audio

    if not participants:
        raise ValueError("no participants to enroll")
    if threshold is None:
        threshold = embedder.verification_threshold
        threshold = FALLBACK_THRESHOLD if threshold is None else float(threshold)
    if not -1.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
    array_rate = int(sample_rate or embedder.sample_rate)
    names, means, counts = [], [], {}
    for name, value in participants.items():
        if not str(name).strip():
            raise ValueError("a participant name is empty")
        clips = _clips_of(value)
        if not clips:
            raise ValueError(f"participant {name!r} has no clips")
        audios = []
        for index, clip in enumerate(clips):
            if isinstance(clip, str | os.PathLike):
                audio, _ = load_valid_audio(clip, sample_rate=embedder.sample_rate)
            else:
                raw = clip.detach().cpu().numpy() if hasattr(clip, "detach") else clip
                audio = check_audio(
                    np.asarray(raw, dtype=np.float32), array_rate, path=f"{name} clip {index}"
                )
                audio = resample(audio, array_rate, embedder.sample_rate)
            audios.append(np.ascontiguousarray(audio, dtype=np.float32))
        embedded = embedder.embed(audios)
        means.append(torch.nn.functional.normalize(embedded.mean(dim=0), dim=0))
        names.append(str(name))
        counts[str(name)] = len(audios)
    return Enrollment(
        names=names,
        embeddings=torch.stack(means),
        threshold=float(threshold),
        embedder_identity=embedder.identity,
        clips=counts,
    )
