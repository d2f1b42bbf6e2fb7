"""RTTM with spoof labels round-trips and stays readable by standard RTTM readers; the
Conversation record round-trips through JSONL and is validated before writing."""

from __future__ import annotations

import json

import pytest

from amongus.manifest import (
    Conversation,
    ConversationSpeaker,
    DuplicateIdError,
    Mixture,
    MixtureSource,
    read_conversations,
    read_jsonl,
    write_jsonl,
)
from amongus.rttm import RttmError, Segment, format_rttm, parse_rttm, read_rttm, write_rttm

SEGMENTS = [
    Segment("call 1", 0.0, 2.5, "LA_0079", label="bonafide"),
    Segment("call 1", 1.25, 3.0625, "speaker two", label="spoof", score=0.875),
    Segment("call-2", 10.000063, 0.5, "x%y", score=-1.5),
]


def test_rttm_round_trip_keeps_names_labels_scores_and_times(tmp_path):
    write_rttm(tmp_path / "ref.rttm", SEGMENTS)
    assert read_rttm(tmp_path / "ref.rttm") == SEGMENTS
    lines = (tmp_path / "ref.rttm").read_text().splitlines()
    assert lines[1] == "SPEAKER call%201 1 1.250000 3.062500 <NA> spoof speaker%20two 0.875 <NA>"
    assert all(len(line.split()) == 10 for line in lines)


def test_standard_rttm_readers_see_plain_speaker_segments(tmp_path):
    database = pytest.importorskip("pyannote.database.util")
    write_rttm(tmp_path / "ref.rttm", SEGMENTS)
    loaded = database.load_rttm(tmp_path / "ref.rttm")
    annotation = loaded["call%201"]  # pyannote keeps the field as written
    assert sorted(annotation.labels()) == ["LA_0079", "speaker%20two"]
    assert [round(s.duration, 6) for s, _ in annotation.itertracks()] == [2.5, 3.0625]


def test_plain_diarization_rttm_reads_without_labels():
    text = "SPEAKER rec 1 0.5 1.0 <NA> <NA> spk <NA> <NA>\nSPKR-INFO rec 1 <NA> <NA>\n\n# note\n"
    text += "SPEAKER rec 1 2.0 1.0 <NA> <NA> spk2 <NA>\n"  # 9 fields: slat left out
    assert parse_rttm(text) == [
        Segment("rec", 0.5, 1.0, "spk"),
        Segment("rec", 2.0, 1.0, "spk2"),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("SPEAKER rec 1 0.5 1.0 <NA> <NA> spk", "expected 10 RTTM fields"),
        ("SPEAKER rec 1 zero 1.0 <NA> <NA> spk <NA> <NA>", "could not convert"),
        ("SPEAKER rec 1 0.5 0 <NA> <NA> spk <NA> <NA>", "duration must be > 0"),
        ("SPEAKER rec 1 0.5 1 <NA> maybe spk <NA> <NA>", "maybe"),
        ("SPEAKER rec 1 0.5 1 <NA> spoof spk nan <NA>", "score"),
    ],
)
def test_malformed_rttm_lines_name_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.rttm"
    path.write_text(format_rttm(SEGMENTS[:1]) + line + "\n")
    with pytest.raises(RttmError, match=rf"bad\.rttm:2: .*{problem}"):
        read_rttm(path)


# ---------------------------------------------------------------------------- records
def conversation(conversation_id="call-000000", **changes) -> Conversation:
    turns = [
        MixtureSource("u1", "/a/u1.flac", "bonafide", speaker="A", offset=0, length=16000),
        MixtureSource("u2", "/a/u2.flac", "spoof", speaker="B", offset=8000, length=16000),
        MixtureSource("u3", "/a/u3.flac", "bonafide", speaker="B", offset=24000, length=8000),
    ]
    values = dict(
        conversation_id=conversation_id,
        path=f"audio/{conversation_id}.flac",
        rttm=f"rttm/{conversation_id}.rttm",
        sample_rate=16000,
        speakers=[
            ConversationSpeaker("A", "bonafide"),
            ConversationSpeaker("B", "spoof", impostor=True, takeover_seconds=0.5),
        ],
        turns=turns,
        num_samples=32000,
        overlap_ratio=0.25,
        target_overlap_ratio=0.25,
    )
    values.update(changes)
    return Conversation(**values)


def test_conversation_records_round_trip_through_jsonl(tmp_path):
    mixture = Mixture("mix-0", "audio/mix-0.flac", 16000, [MixtureSource("u1", "p", "spoof")])
    records = [conversation(), conversation("call-000001"), mixture]
    write_jsonl(tmp_path / "m.jsonl", records)
    line = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert (line["kind"], line["label"]) == ("conversation", "SB")
    assert list(read_jsonl(tmp_path / "m.jsonl")) == records  # the kind picks the class
    write_jsonl(tmp_path / "c.jsonl", records[:2])
    assert read_conversations(tmp_path / "c.jsonl") == records[:2]
    segments = records[0].reference_segments()
    assert [(s.speaker, s.label, s.onset, s.duration) for s in segments] == [
        ("A", "bonafide", 0.0, 1.0), ("B", "spoof", 0.5, 1.0), ("B", "bonafide", 1.5, 0.5)
    ]  # fmt: skip


def test_conversation_ids_are_unique_and_records_validated_before_writing(tmp_path):
    with pytest.raises(DuplicateIdError, match="conversation id 'call-000000'"):
        write_jsonl(tmp_path / "m.jsonl", [conversation(), conversation()])
    speakers = [ConversationSpeaker("A", "bonafide"), ConversationSpeaker("B", "bonafide")]
    bad = [
        (conversation(speakers=speakers), "spoofed turn of bonafide speaker 'B'"),
        (conversation(speakers=speakers[:1]), "'B' is not a listed speaker"),
        (conversation(num_samples=20000), "ends after the conversation"),
        (conversation(speakers=[*speakers, speakers[0]]), "listed twice"),
    ]
    for record, message in bad:
        with pytest.raises(ValueError, match=message):
            write_jsonl(tmp_path / "bad.jsonl", [record])
        assert not (tmp_path / "bad.jsonl").exists()
    data = conversation().to_dict()
    data["label"] = "BB"
    with pytest.raises(ValueError, match="disagrees with its speakers"):
        Conversation.from_dict(data)
