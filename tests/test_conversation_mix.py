"""The conversation simulator: reproducible, resumable, the overlap it promises, the speakers
and labels it promises, an RTTM reference that matches the audio."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_mix_helpers import write_utterances

from amongus.audio import AudioError
from amongus.corpora import load_utterances
from amongus.corpora.demo import demo_corpus_root, demo_utterances
from amongus.manifest import read_conversations, write_jsonl
from amongus.mix.__main__ import main as mix_main
from amongus.mix.config import MixerConfig
from amongus.mix.conversation import ConversationMixer, MixFolderConflict
from amongus.mix.conversation_config import ConversationConfig
from amongus.mix.conversation_render import render_conversation, render_speaker
from amongus.rttm import read_rttm

EVAL = demo_utterances("eval")


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("summary.json", ".amongus.lock")
    }


def _make(out, utterances=EVAL, *, n=2, seed=0, workers=1, mixer=None, **options):
    options.setdefault("duration", (30.0, 30.0))
    return ConversationMixer(mixer or MixerConfig(), ConversationConfig(**options)).run(
        utterances, out, n_conversations=n, seed=seed, workers=workers, progress=False
    )


def _active_counts(conversation) -> np.ndarray:
    """Number of turns active at each sample (independent of the simulator's own sweep)."""
    counts = np.zeros(conversation.num_samples, dtype=np.int16)
    for turn in conversation.turns:
        counts[turn.offset : turn.offset + turn.length] += 1
    return counts


# ---------------------------------------------------------------------------- reproducibility
def test_two_runs_are_byte_identical_whatever_the_workers(tmp_path):
    _make(tmp_path / "a", workers=1)
    _make(tmp_path / "b", workers=2)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second
    assert {"conversations.jsonl", "reference.rttm", "audio/call-000000.flac",
            "rttm/call-000001.rttm"} <= set(first)  # fmt: skip
    _make(tmp_path / "c", seed=1)
    assert _files(tmp_path / "c")["audio/call-000000.flac"] != first["audio/call-000000.flac"]


def test_rerun_resumes_and_remakes_a_changed_file(tmp_path):
    reference = tmp_path / "fresh"
    _make(reference, n=3)
    out = tmp_path / "resumed"
    first = _make(out, n=2)
    assert (first.n_written, first.n_resumed) == (2, 0)
    audio = out / "audio" / "call-000001.flac"
    data = bytearray(audio.read_bytes())
    data[-10] ^= 0xFF  # damaged after the run: the checksum must catch it
    audio.write_bytes(bytes(data))
    second = _make(out, n=3)
    assert (second.n_written, second.n_resumed, second.n_remade) == (2, 1, 1)
    assert _files(out) == _files(reference)


def test_other_settings_are_refused_then_overwritten(tmp_path):
    _make(tmp_path, n=1)
    with pytest.raises(MixFolderConflict, match="target_overlap"):
        _make(tmp_path, n=1, target_overlap=0.3)
    summary = ConversationMixer(
        MixerConfig(), ConversationConfig(duration=(30.0, 30.0), target_overlap=0.3)
    ).run(EVAL, tmp_path, n_conversations=1, seed=0, workers=1, progress=False, overwrite=True)
    assert summary.n_written == 1
    (record,) = read_conversations(tmp_path / "conversations.jsonl")
    assert record.target_overlap_ratio == 0.3


# ---------------------------------------------------------------------------- timing
@pytest.mark.parametrize("target", [0.0, 0.1, 0.3])
def test_overlap_ratio_within_tolerance_of_the_target(tmp_path, target):
    _make(tmp_path, n=2, target_overlap=target, duration=(60.0, 60.0))
    for conversation in read_conversations(tmp_path / "conversations.jsonl"):
        counts = _active_counts(conversation)
        measured = np.sum(counts >= 2) / np.sum(counts >= 1)
        assert measured == pytest.approx(target, abs=0.01)
        assert conversation.overlap_ratio == pytest.approx(measured, abs=1e-6)
        assert counts.max() <= 2  # never three voices at once
        assert conversation.duration >= 55.0  # about the drawn length (within one turn)
        for speaker in conversation.speakers:  # a speaker never overlaps itself
            own = sorted(
                (t.offset, t.offset + t.length)
                for t in conversation.turns
                if t.speaker == speaker.name
            )
            assert all(end <= start for (_, end), (start, _) in zip(own, own[1:], strict=False))


# ---------------------------------------------------------------------------- speakers, labels
@pytest.mark.parametrize(("speakers", "spoofed"), [(2, 1), (6, 2), (4, 0)])
def test_speaker_count_and_whole_call_labels(tmp_path, speakers, spoofed):
    everything = load_utterances(demo_corpus_root(), None, check_files=False).utterances
    _make(
        tmp_path,
        everything,
        n=2,
        speakers=(speakers, speakers),
        spoofed_speakers=(spoofed, spoofed),
    )
    corpus = {u.utt_id: u for u in everything}
    for conversation in read_conversations(tmp_path / "conversations.jsonl"):
        segments = read_rttm(tmp_path / conversation.rttm)
        assert len({s.speaker for s in segments}) == speakers  # every speaker speaks
        assert conversation.label == "S" * spoofed + "B" * (speakers - spoofed)
        by_name = {s.name: s for s in conversation.speakers}
        for turn in conversation.turns:
            assert turn.label == by_name[turn.speaker].label  # one label for the whole call
            utterance = corpus[turn.utt_id]
            assert utterance.label == turn.label
            assert utterance.speaker == turn.speaker  # spoof utterances carry the target's id


def test_impostor_is_bonafide_before_the_takeover_and_spoofed_after(tmp_path):
    _make(tmp_path, n=3, impostor=True, duration=(60.0, 60.0), speakers=(3, 3))
    for conversation in read_conversations(tmp_path / "conversations.jsonl"):
        (impostor,) = [s for s in conversation.speakers if s.impostor]
        assert impostor.label == "spoof"
        turns = [t for t in conversation.turns if t.speaker == impostor.name]
        labels = [t.label for t in turns]
        assert labels[0] == "bonafide" and labels[-1] == "spoof"
        takeover = labels.index("spoof")
        assert set(labels[takeover:]) == {"spoof"}  # taken over for good
        assert impostor.takeover_seconds == pytest.approx(
            turns[takeover].offset / conversation.sample_rate, abs=1e-6
        )
        reference = [
            s for s in read_rttm(tmp_path / conversation.rttm) if s.speaker == impostor.name
        ]
        assert [s.label for s in reference] == labels
        others = [s for s in conversation.speakers if not s.impostor]
        assert all(s.label == "bonafide" for s in others)


def test_impostor_needs_speakers_with_both_labels(tmp_path):
    spoof_only = [u for u in EVAL if u.label == "bonafide" or u.speaker.startswith("espeak")]
    with pytest.raises(ValueError, match="both bonafide and spoof"):
        _make(tmp_path, spoof_only, n=1, impostor=True)


# ---------------------------------------------------------------------------- reference, audio
def test_rttm_reference_matches_the_manifest_and_the_audio(tmp_path):
    _make(tmp_path, n=2)
    conversations = read_conversations(tmp_path / "conversations.jsonl")
    combined = read_rttm(tmp_path / "reference.rttm")
    assert len(combined) == sum(len(c.turns) for c in conversations)
    for conversation in conversations:
        segments = read_rttm(tmp_path / conversation.rttm)
        expected = conversation.reference_segments()
        assert [(s.speaker, s.label) for s in segments] == [(s.speaker, s.label) for s in expected]
        assert np.allclose([s.onset for s in segments], [s.onset for s in expected], atol=1e-6)
        assert np.allclose([s.end for s in segments], [s.end for s in expected], atol=1e-6)
        saved, rate = sf.read(tmp_path / conversation.path, dtype="float32")
        assert rate == conversation.sample_rate and saved.shape[0] == conversation.num_samples
        assert np.max(np.abs(render_conversation(conversation) - saved)) < 1e-4
        tracks = sum(render_speaker(conversation, s.name) for s in conversation.speakers)
        assert np.max(np.abs(tracks - saved)) < 1e-4  # no augmentation: the tracks sum up
        # silence outside every segment, speech inside
        counts = _active_counts(conversation)
        assert np.max(np.abs(saved[counts == 0])) < 1e-4
        assert np.sqrt(np.mean(saved[counts > 0] ** 2)) > 0.01


def test_augmentations_are_recorded_and_rendered_again(tmp_path):
    mixer = MixerConfig(reverb_prob=1.0, noise_prob=1.0, rt60=(0.2, 0.3), room_size=(3.0, 4.0))
    _make(tmp_path, n=1, mixer=mixer, speakers=(3, 3))
    (conversation,) = read_conversations(tmp_path / "conversations.jsonl")
    assert [a["type"] for a in conversation.augmentations] == ["reverb", "noise"]
    assert len(conversation.augmentations[0]["sources_m"]) == 3  # one position per speaker
    saved, _ = sf.read(tmp_path / conversation.path, dtype="float32")
    assert np.max(np.abs(render_conversation(conversation) - saved)) < 1e-4
    dry = sum(render_speaker(conversation, s.name) for s in conversation.speakers)
    assert np.max(np.abs(dry - saved)) > 1e-3  # the augmentations changed the audio


# ---------------------------------------------------------------------------- bad input
def test_silent_utterance_is_skipped_and_counted_or_refused(tmp_path):
    utterances = write_utterances(tmp_path / "utts", 28, seconds=(1.5, 2.5), n_speakers=7)
    options = dict(speakers=(4, 4), spoofed_speakers=(1, 1), duration=(30.0, 30.0))
    _make(tmp_path / "clean", utterances, n=1, **options)
    (clean,) = read_conversations(tmp_path / "clean" / "conversations.jsonl")
    drawn = clean.turns[0].utt_id  # an utterance the plan uses: now make it silent
    silent = next(u for u in utterances if u.utt_id == drawn)
    sf.write(silent.path, np.zeros(32000, dtype=np.float32), 16000)

    summary = _make(tmp_path / "skip", utterances, n=1, **options)
    assert summary.bad_inputs == [(silent.path, summary.bad_inputs[0][1])]
    assert summary.bad_input_reasons == {"silent": 1}
    assert summary.n_usable == len(utterances) - 1
    (conversation,) = read_conversations(tmp_path / "skip" / "conversations.jsonl")
    assert drawn not in {t.utt_id for t in conversation.turns}
    assert conversation.turns[0].speaker == clean.turns[0].speaker  # same plan, other utterance
    with pytest.raises(AudioError, match=silent.utt_id):
        _make(tmp_path / "error", utterances, n=1, mixer=MixerConfig(on_bad_input="error"),
              **options)  # fmt: skip


def test_speakers_without_ids_are_each_their_own_speaker(tmp_path):
    listing = load_utterances(demo_corpus_root(), "eval", check_files=False).utterances
    anonymous = [type(u)(**{**u.to_dict(), "speaker": "-"}) for u in listing]
    summary = _make(tmp_path, anonymous, n=1, speakers=(3, 3))
    assert summary.n_unknown_speaker == len(anonymous)
    (conversation,) = read_conversations(tmp_path / "conversations.jsonl")
    for speaker in conversation.speakers:
        turns = {t.utt_id for t in conversation.turns if t.speaker == speaker.name}
        assert speaker.name == f"utt-{next(iter(turns))}" and len(turns) == 1


# ---------------------------------------------------------------------------- command line
def test_command_line_makes_conversations_and_refuses_mixer_only_use(tmp_path, capsys):
    manifest = write_jsonl(tmp_path / "eval.jsonl", EVAL)
    out = tmp_path / "calls"
    argv = ["--mode", "conversation", "--input", str(manifest), "--out", str(out),
            "--n-conversations", "2", "--speakers", "3", "3", "--duration", "20", "20",
            "--impostor", "--target-overlap", "0.2", "--seed", "5", "--no-progress",
            "--workers", "1"]  # fmt: skip
    assert mix_main(argv) == 0
    assert "conversations: 2/2" in capsys.readouterr().out
    conversations = read_conversations(out / "conversations.jsonl")
    assert [c.conversation_id for c in conversations] == ["call-000000", "call-000001"]
    assert all(any(s.impostor for s in c.speakers) for c in conversations)
    with pytest.raises(SystemExit):
        mix_main(["--input", str(manifest), "--out", str(tmp_path / "m"), "--n-mixtures", "2",
                  "--impostor"])  # fmt: skip
    assert "--impostor: conversation option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mix_main([*argv[:-2], "--speakers", "1", "3"])
    assert "speakers must be >= 2" in capsys.readouterr().err


def test_ten_minute_four_speaker_call_from_the_command_line(tmp_path):
    # not marked slow: it takes about a second (the timing is asserted below)
    out = tmp_path / "call"
    started = time.perf_counter()
    argv = ["--mode", "conversation", "--input", str(demo_corpus_root()), "--split", "eval",
            "--out", str(out), "--n-conversations", "1", "--speakers", "4", "4",
            "--spoofed-speakers", "1", "1", "--duration", "600", "600", "--no-progress"]  # fmt: skip
    assert mix_main(argv) == 0
    elapsed = time.perf_counter() - started
    (conversation,) = read_conversations(out / "conversations.jsonl")
    assert conversation.label == "SBBB"
    assert 600.0 <= conversation.duration < 620.0
    assert conversation.overlap_ratio == pytest.approx(0.1, abs=0.01)
    info = sf.info(out / conversation.path)
    assert info.frames == conversation.num_samples
    assert len({s.speaker for s in read_rttm(out / "reference.rttm")}) == 4
    assert elapsed < 120, f"a 10-minute call took {elapsed:.1f} s"


def test_a_mixture_run_overwriting_a_conversation_folder_leaves_no_stale_reference(tmp_path):
    from amongus.mix import Mixer

    _make(tmp_path, n=2)
    with pytest.raises(MixFolderConflict, match="mode"):
        Mixer(MixerConfig()).run(EVAL, tmp_path, n_mixtures=2, seed=0, workers=1, progress=False)
    Mixer(MixerConfig()).run(
        EVAL, tmp_path, n_mixtures=2, seed=0, workers=1, progress=False, overwrite=True
    )
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert not [name for name in left if "call" in name or name.endswith(".rttm")], left
    assert "conversations.jsonl" not in left and "mixtures.jsonl" in left


def test_an_unreachable_overlap_target_is_reported_not_hidden(tmp_path, caplog):
    summary = _make(tmp_path, n=1, target_overlap=0.95)
    assert summary.overlap_ratio_max < 0.9  # an overlap takes at most half of a turn
    assert "below the target" in str(summary)
    assert "below the target 0.950" in caplog.text
