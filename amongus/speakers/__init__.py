"""Speaker embeddings and enrollment: who is speaking, across windows and by name.

* :func:`load_speaker_embedder` -> a :class:`SpeakerEmbedder` (``embed([B, T]) -> [B, D]``,
  L2-normalised; the shipped ``ecapa-tiny`` or a SpeechBrain ``spkrec-ecapa-voxceleb`` folder);
* :func:`enroll` -> an :class:`Enrollment` of known participants, which names found speakers
  (:meth:`Enrollment.identify`, :meth:`Enrollment.assign`).

Nothing heavy is imported here; torch and SpeechBrain load with the first model.
"""

from .base import FALLBACK_THRESHOLD, SpeakerEmbedder, load_speaker_embedder
from .enrollment import Enrollment, enroll

__all__ = [
    "FALLBACK_THRESHOLD",
    "Enrollment",
    "SpeakerEmbedder",
    "enroll",
    "load_speaker_embedder",
]
