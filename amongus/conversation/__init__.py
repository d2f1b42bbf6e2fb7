"""Long multi-party recordings: who is the deepfake, and when.

:func:`analyze_recording` (also ``Pipeline.analyze``) separates a recording in windows, finds
the speech of each stream, links the streams into speakers with speaker embeddings and stream
continuity, scores each speaker's speech with the pipeline's classifier and returns a
:class:`ConversationResult` (speakers with verdicts, a spoof-score timeline; JSON, RTTM and
PNG outputs). ``python -m amongus.conversation`` is the command line;
:func:`amongus.conversation.evaluate.evaluate_conversations` scores it on simulated calls.
See docs/conversations.md.
"""

from .analyze import AnalysisSettings, analyze_recording
from .result import ConversationResult, SpeakerVerdict, TimelineSegment
from .speech import SpeechSettings

__all__ = [
    "AnalysisSettings",
    "ConversationResult",
    "SpeakerVerdict",
    "SpeechSettings",
    "TimelineSegment",
    "analyze_recording",
]
