"""The demo's "Long recording" mode as functions: input checks, enrollment fields, and a short
simulated call (tone voices, one deepfake) analysed into the table, timeline and files the page
shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conversation_fixtures import RATE, VOICES, BandEmbedder, ToneClassifier, make_call, voice

from amongus.app import UploadError
from amongus.app_conversation import (
    LongAnalysis,
    analyse_long,
    check_long_upload,
    enrollment_clips,
    parse_n_speakers,
)
from amongus.separation.base import SeparatorBase

CLIP_LIMITS = {"max_bytes": 2**20, "max_seconds": 60.0}


def _tone(path: Path, seconds: float, f0: float = 220.0, rate: int = RATE) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.1 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), rate)
    return path


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), (" ", None),
                                                 (0, None), (0.0, None), (3, 3), ("4", 4),
                                                 (6.0, 6)])  # fmt: skip
def test_number_of_speakers_field(value, expected):
    assert parse_n_speakers(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("three", "not a number ('three')"),
        (2.5, "not a whole number (2.5)"),
        (float("nan"), "not a whole number"),
        (-1, "-1 is out of range; give 1 to 10"),
        (11, "11 is out of range"),
    ],
)
def test_number_of_speakers_field_refuses_nonsense(value, message):
    with pytest.raises(UploadError, match=re.escape(message)):
        parse_n_speakers(value)


def test_long_upload_limits_are_the_long_ones(tmp_path: Path):
    from amongus.app import check_upload

    clip = _tone(tmp_path / "call.flac", 70.0, rate=8000)
    with pytest.raises(UploadError, match="clip too long"):
        check_upload(clip)  # the short-clip limit (60 s)
    assert check_long_upload(clip).duration == pytest.approx(70.0)
    with pytest.raises(
        UploadError, match=r"call\.flac: clip too long \(70\.0 s\); the limit is 65"
    ):
        check_long_upload(clip, max_seconds=65.0)
    text = tmp_path / "call.txt"
    text.write_text("no audio")
    with pytest.raises(UploadError, match=r"call\.txt: not an audio file type"):
        check_long_upload(text)


def test_enrollment_clips_are_named_by_file_or_by_the_names_field(tmp_path: Path):
    alice = _tone(tmp_path / "alice.wav", 2.0)
    bob = _tone(tmp_path / "bob.flac", 2.0, f0=300.0)
    bob2 = _tone(tmp_path / "bob-again.flac", 2.0, f0=310.0)
    assert enrollment_clips(None, "", **CLIP_LIMITS) is None
    assert enrollment_clips([], None, **CLIP_LIMITS) is None
    assert enrollment_clips([alice, bob], "", **CLIP_LIMITS) == {
        "alice": [str(alice)],
        "bob": [str(bob)],
    }
    assert enrollment_clips([alice, bob, bob2], "Alice A.,\n Bob , Bob", **CLIP_LIMITS) == {
        "Alice A.": [str(alice)],
        "Bob": [str(bob), str(bob2)],
    }


def test_enrollment_fields_that_do_not_fit_are_refused(tmp_path: Path):
    alice = _tone(tmp_path / "alice.wav", 2.0)
    with pytest.raises(UploadError, match=r"2 name\(s\) for 1 clip\(s\)"):
        enrollment_clips([alice], "alice, bob", **CLIP_LIMITS)
    with pytest.raises(UploadError, match=r"1 name\(s\) given but no clip uploaded"):
        enrollment_clips([], "alice", **CLIP_LIMITS)
    fake = tmp_path / "carol.wav"
    fake.write_bytes(b"not audio at all" * 10)
    with pytest.raises(UploadError, match=r"carol\.wav: not readable as audio"):
        enrollment_clips([alice, fake], "", **CLIP_LIMITS)
    long_clip = _tone(tmp_path / "dave.wav", 3.0)
    with pytest.raises(UploadError, match=r"dave\.wav: clip too long \(3\.0 s\); the limit is 2"):
        enrollment_clips([long_clip], "", max_bytes=2**20, max_seconds=2.0)


class BandSplitSeparator(SeparatorBase):
    """Two streams: the mixture below and above 2 kHz (the tone voices' harmonics fall on one
    side each: the deepfake's 2.6 kHz voice is alone above), so no references are needed."""

    sample_rate = None
    n_src = 2

    @property
    def identity(self):
        return "band-split"

    def _separate(self, mixture, lengths, references):
        spectrum = torch.fft.rfft(mixture, dim=-1)
        freqs = torch.fft.rfftfreq(mixture.shape[-1], 1.0 / RATE)
        low = torch.fft.irfft(spectrum * (freqs < 2000), n=mixture.shape[-1], dim=-1)
        high = torch.fft.irfft(spectrum * (freqs >= 2000), n=mixture.shape[-1], dim=-1)
        return torch.stack([low, high], dim=1)


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    manifest, record = make_call(root)
    return manifest.parent / record.path, record


def test_long_recording_gives_the_table_timeline_and_files(call, tmp_path: Path):
    from amongus import Pipeline

    audio, record = call
    pipeline = Pipeline(separator=BandSplitSeparator(), classifier=ToneClassifier())
    analysis = analyse_long(pipeline, audio, tmp_path, embedder=BandEmbedder(), progress=False)
    assert isinstance(analysis, LongAnalysis)
    result = analysis.result
    rows = analysis.speaker_rows()
    assert [row[0] for row in rows] == [s.speaker for s in result.speakers]
    assert len(rows) >= 2
    for row, speaker in zip(rows, result.speakers, strict=True):
        assert row[2] == ("spoof" if speaker.score >= result.threshold else "bonafide")
        assert row[3] == pytest.approx(speaker.score, abs=1e-4)
        assert row[3] <= row[4] + 1e-4  # the mean is at most the highest segment score
        assert row[1] == ""  # nobody enrolled
    # the deepfake (the only voice above 2 kHz) is found and is the only spoofed speaker
    assert [row[2] for row in rows].count("spoof") == 1
    spoofed = next(row for row in rows if row[2] == "spoof")
    assert spoofed[3] > 0.9
    data = json.loads(analysis.files["json"].read_text())
    assert [s["verdict"] for s in data["speakers"]] == [row[2] for row in rows]
    assert analysis.files["rttm"].read_text().startswith(f"SPEAKER {record.conversation_id} ")
    assert analysis.files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.parent for p in analysis.files.values()} == {tmp_path}
    text = analysis.summary_markdown()
    assert f"### 1 of {len(rows)} speakers look spoofed: {spoofed[0]}" in text
    assert f"{result.duration:.1f} s" in text


def test_long_recording_names_the_spoofed_voice_from_enrollment(call, tmp_path: Path):
    from amongus import Pipeline

    audio, record = call
    rng = np.random.default_rng(7)
    paths = []
    for name, (f0, _) in VOICES.items():
        path = tmp_path / f"clip-{name}.wav"
        sf.write(path, voice(f0, 3.0, rng), RATE)
        paths.append(path)
    names = ", ".join(f"person {name}" for name in VOICES)
    clips = enrollment_clips(paths, names, **CLIP_LIMITS)
    pipeline = Pipeline(separator=BandSplitSeparator(), classifier=ToneClassifier())
    analysis = analyse_long(
        pipeline,
        audio,
        tmp_path / "out",
        n_speakers=len(VOICES),
        enrollment=clips,
        embedder=BandEmbedder(),
        progress=False,
    )
    rows = analysis.speaker_rows()
    assert len(rows) == len(VOICES)
    deepfake = next(s.name for s in record.speakers if s.label == "spoof")
    spoofed = [row for row in rows if row[2] == "spoof"]
    assert [row[1] for row in spoofed] == [f"person {deepfake}"]
    assert f"(voice of person {deepfake})" in analysis.summary_markdown()


def test_command_line_has_the_long_recording_options():
    from amongus.app import build_parser

    args = build_parser().parse_args(
        ["--max-long-seconds", "600", "--max-long-upload-mb", "50", "--embedder", "ecapa-tiny"]
    )
    assert (args.max_long_seconds, args.max_long_upload_mb, args.embedder) == (
        600.0,
        50.0,
        "ecapa-tiny",
    )
    defaults = build_parser().parse_args([])
    assert defaults.max_long_seconds == 1800.0 and defaults.embedder is None


def test_the_page_has_both_tabs(tmp_path: Path):
    pytest.importorskip("gradio", reason="gradio is not installed (app extra)")
    from amongus.app import AppConfig, build_app
    from amongus.testing.classifiers import build_tiny_classifier
    from amongus.testing.separators import build_tiny_convtasnet

    config = AppConfig(
        cache_dir=tmp_path / "examples",
        n_examples=1,
        separators=[str(build_tiny_convtasnet(tmp_path / "sep", sample_rate=16000))],
        classifiers=[str(build_tiny_classifier(tmp_path / "cls"))],
    )
    blocks, _ = build_app(config)
    ids = {getattr(block, "elem_id", None) for block in blocks.blocks.values()}
    assert {"run", "verdict", "long-recording", "long-run", "long-table", "long-timeline",
            "long-files", "long-enroll", "long-names", "long-speakers"} <= ids  # fmt: skip
