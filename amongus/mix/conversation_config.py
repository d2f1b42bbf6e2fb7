"""Settings of the conversation simulator (``python -m amongus.mix --mode conversation``).

Only what is particular to conversations lives here (speakers, length, turn-taking, overlap,
impostors); the sample rate, levels, augmentations, peak normalisation, output format and the
bad-input policy come from the same :class:`~amongus.mix.config.MixerConfig` the mixer uses.
Every field carries a ``help`` text; the command line is built from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MODES = ("mixture", "conversation")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class ConversationConfig:
    """Who talks, for how long, and how turns follow each other.

    The defaults make a 10-minute call of 4 speakers, one of them spoofed, with 10 % of the
    speech time overlapped (within the 0-40 % of LibriCSS; real meetings show 5-20 %).
    """

    speakers: tuple[int, int] = _opt(
        (4, 4), "speakers per conversation, drawn uniformly from LO..HI (2 or more; 2-6 tested)"
    )
    spoofed_speakers: tuple[int, int] = _opt(
        (1, 1),
        "spoofed speakers per conversation, drawn uniformly from LO..HI (at most the speaker "
        "count); a spoofed speaker's turns are spoof utterances with that speaker's id",
    )
    duration: tuple[float, float] = _opt(
        (600.0, 600.0),
        "conversation length in seconds, drawn from U(LO, HI); the call ends with the turn "
        "that reaches it (within about one turn of it)",
    )
    target_overlap: float = _opt(
        0.1,
        "overlap ratio to reach: the share of speech time in which two speakers talk at once "
        "(0 = strict turn-taking)",
    )
    overlap_turns: float = _opt(
        0.5,
        "share of speaker changes drawn as overlaps (the others start after a pause) before the "
        "overlaps are scaled to the target ratio; more are used when the target needs them",
    )
    pause_mean: float = _opt(0.8, "mean pause between turns in seconds (exponential distribution)")
    same_speaker_prob: float = _opt(
        0.1, "probability that a speaker keeps the floor for another turn after a pause"
    )
    impostor: bool = _opt(
        False,
        "spoofed speakers are impostors: bonafide in their turns before a takeover time, "
        "spoofed after it (needs speakers with bonafide and spoof utterances)",
    )
    takeover: tuple[float, float] = _opt(
        (0.3, 0.7),
        "impostor: the takeover time as a fraction of the conversation length, U(LO, HI)",
    )
    trim_silence: bool = _opt(
        True,
        "cut each turn's utterance to its first and last active 10 ms frame (energy VAD, "
        "vad_threshold_db), so reference segments hold speech, not leading silence",
    )

    def __post_init__(self) -> None:
        self.speakers = tuple(int(v) for v in self.speakers)  # type: ignore[assignment]
        self.spoofed_speakers = tuple(int(v) for v in self.spoofed_speakers)  # type: ignore[assignment]
        self.duration = tuple(float(v) for v in self.duration)  # type: ignore[assignment]
        self.takeover = tuple(float(v) for v in self.takeover)  # type: ignore[assignment]
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in data.items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown conversation option(s) {sorted(unknown)}")
        return cls(**data)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option for any inconsistent setting."""

        def check(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"ConversationConfig: {message}")

        for name in ("speakers", "spoofed_speakers", "duration", "takeover"):
            check(len(getattr(self, name)) == 2, f"{name} must be (LO, HI)")
            lo, hi = getattr(self, name)
            check(lo <= hi, f"{name} must be (LO, HI) with LO <= HI, got {(lo, hi)}")
        check(self.speakers[0] >= 2, f"speakers must be >= 2, got {self.speakers}")
        check(self.spoofed_speakers[0] >= 0, "spoofed_speakers must be >= 0")
        check(
            self.spoofed_speakers[0] <= self.speakers[1],
            f"spoofed_speakers {self.spoofed_speakers} exceeds speakers {self.speakers}",
        )
        check(self.duration[0] > 0, f"duration must be > 0 s, got {self.duration}")
        check(0.0 <= self.target_overlap < 1.0, "target_overlap must be in [0, 1)")
        check(0.0 < self.overlap_turns <= 1.0, "overlap_turns must be in (0, 1]")
        check(self.pause_mean >= 0, "pause_mean must be >= 0")
        check(0.0 <= self.same_speaker_prob < 1.0, "same_speaker_prob must be in [0, 1)")
        check(0.0 <= self.takeover[0] and self.takeover[1] <= 1.0, "takeover must be in [0, 1]")
