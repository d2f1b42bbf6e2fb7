"""Render a conversation from its record, one turn at a time.

The simulator writes each conversation with :func:`render_conversation`, so rendering a record
again reproduces the saved audio (up to FLAC quantisation). Memory is bounded by the output,
not by the number of speakers: one float64 buffer of the conversation's length (230 MB for 30
minutes at 16 kHz) plus one turn at a time; no speaker track is held at full length.

Augmentations are the mixer's (:mod:`amongus.mix.augment`), drawn with one source position per
speaker: reverberation convolves each turn with its speaker's room impulse response and adds
the tail after the turn (the sum of these equals the convolution of each speaker's whole
track, as :func:`~amongus.mix.augment.apply_reverb` computes it, cut at the conversation's
end); noise and the telephone channel are then applied to the whole conversation.
"""

from __future__ import annotations

import numpy as np

from ..manifest import Conversation
from .augment import add_noise, room_impulse_responses, telephone_channel
from .render import SourceCache


def _speaker_index(conversation: Conversation) -> dict[str, int]:
    return {speaker.name: k for k, speaker in enumerate(conversation.speakers)}


def _num_samples(conversation: Conversation) -> int:
    if conversation.num_samples is not None:
        return int(conversation.num_samples)
    return max(int(turn.offset) + int(turn.length or 0) for turn in conversation.turns)


def _add_turns(
    out: np.ndarray,
    conversation: Conversation,
    cache: SourceCache,
    *,
    speaker: str | None = None,
    reverb: bool = True,
) -> None:
    """Add every turn (or one speaker's turns) into ``out`` in place."""
    from scipy.signal import fftconvolve

    by_type = {params["type"]: params for params in conversation.augmentations}
    unknown = set(by_type) - {"reverb", "noise", "telephone"}
    if unknown:
        raise ValueError(
            f"conversation {conversation.conversation_id}: unknown augmentation(s) "
            f"{sorted(unknown)}"
        )
    rate = int(conversation.sample_rate)
    rirs = None
    if reverb and "reverb" in by_type:
        rirs = room_impulse_responses(by_type["reverb"], rate)
        if len(rirs) != len(conversation.speakers):
            raise ValueError(
                f"conversation {conversation.conversation_id}: reverb has {len(rirs)} source "
                f"positions for {len(conversation.speakers)} speakers"
            )
    index = _speaker_index(conversation)
    total = out.shape[0]
    for turn in conversation.turns:
        if speaker is not None and turn.speaker != speaker:
            continue
        audio = cache.at_rate(turn.path, rate)
        window = audio[turn.start : turn.start + int(turn.length or 0)] * float(turn.gain)
        if rirs is not None:
            window = fftconvolve(window, rirs[index[turn.speaker]])
        stop = min(total, turn.offset + window.shape[0])
        if stop > turn.offset:
            out[turn.offset : stop] += window[: stop - turn.offset]


def render_unnormalised(
    conversation: Conversation, *, cache: SourceCache | None = None
) -> np.ndarray:
    """The conversation before peak normalisation: turns placed and scaled, reverberated,
    summed, then noise and the telephone channel when the record has them.

    Shape: ``-> [T]`` (float64, at ``conversation.sample_rate``).
    """
    cache = cache or SourceCache()
    out = np.zeros(_num_samples(conversation), dtype=np.float64)
    _add_turns(out, conversation, cache)
    by_type = {params["type"]: params for params in conversation.augmentations}
    rate = int(conversation.sample_rate)
    if "noise" in by_type:
        out = add_noise(out, by_type["noise"], rate)
    if "telephone" in by_type:
        out = telephone_channel(out, by_type["telephone"], rate)
    return out


def render_conversation(
    conversation: Conversation, *, cache: SourceCache | None = None
) -> np.ndarray:
    """The conversation rendered again from its record, augmentations and normalisation
    included (what the simulator saved, before FLAC quantisation).

    Shape: ``-> [T]`` (float32, at ``conversation.sample_rate``).
    """
    out = render_unnormalised(conversation, cache=cache)
    out *= conversation.normalization
    return out.astype(np.float32)


def render_speaker(
    conversation: Conversation, speaker: str, *, cache: SourceCache | None = None
) -> np.ndarray:
    """One speaker's turns as they enter the conversation, dry (before reverb, noise and
    channel), with gains and the normalisation factor: the reference track of that speaker
    for separation. Without augmentations, the speakers' tracks sum to the conversation.

    Shape: ``-> [T]`` (float32, at ``conversation.sample_rate``).

    Raises:
        KeyError: ``speaker`` is not one of the conversation's speakers.
    """
    if speaker not in _speaker_index(conversation):
        raise KeyError(
            f"conversation {conversation.conversation_id} has no speaker {speaker!r}; "
            f"speakers: {[s.name for s in conversation.speakers]}"
        )
    out = np.zeros(_num_samples(conversation), dtype=np.float64)
    _add_turns(out, conversation, cache or SourceCache(), speaker=speaker, reverb=False)
    out *= conversation.normalization
    return out.astype(np.float32)
