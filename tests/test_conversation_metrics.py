"""Conversation metrics on hand-made segment sets whose answers are worked out by hand."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "pyannote.metrics", reason='needs pyannote.metrics (pip install "pyannote.metrics>=4")'
)

from amongus.metrics_conversation import (  # noqa: E402
    diarization_error_rate,
    evaluate_conversation,
    evaluate_conversation_hypotheses,
    hypothesis_speaker_scores,
    segment_labels,
    spoof_time_error,
)
from amongus.rttm import Segment, write_rttm  # noqa: E402


def seg(onset, end, speaker, label=None, score=None, uri="call"):
    return Segment(uri, float(onset), float(end - onset), speaker, label=label, score=score)


# A: bonafide 0-10 and 20-25; B: spoof 8-18 (overlaps A 8-10); C: bonafide 18-21 (overlaps A).
REFERENCE = [
    seg(0, 10, "A", "bonafide"),
    seg(8, 18, "B", "spoof"),
    seg(18, 21, "C", "bonafide"),
    seg(20, 25, "A", "bonafide"),
]
TOTAL = 10 + 10 + 3 + 5  # reference speaker time (overlap counted per speaker)
SCORES = {"bonafide": 0.1, "spoof": 0.9}


def perfect(reference=REFERENCE, rename=lambda name: f"spk_{name}"):
    return [
        seg(s.onset, s.end, rename(s.speaker), score=SCORES[s.label], uri=s.uri) for s in reference
    ]


def test_a_perfect_hypothesis_scores_zero_everywhere():
    report = evaluate_conversation(REFERENCE, perfect())
    assert report.diarization.der == 0.0
    assert report.diarization.total == pytest.approx(TOTAL)
    assert report.spoof_time.error == 0.0
    assert report.spoof_time.total == pytest.approx(TOTAL)
    assert report.speaker_accuracy == 1.0
    assert report.speaker_eer == 0.0
    assert (report.n_reference_speakers, report.n_spoofed_speakers) == (3, 1)
    assert (report.n_missed_speakers, report.n_extra_speakers) == (0, 0)
    assert {r.speaker: r.hypothesis_speaker for r in report.speakers} == {
        "A": "spk_A", "B": "spk_B", "C": "spk_C"
    }  # fmt: skip


@pytest.mark.parametrize(("flipped", "seconds"), [("A", 15.0), ("B", 10.0), ("C", 3.0)])
def test_one_speakers_label_flipped_costs_that_speakers_share_of_speech_time(flipped, seconds):
    flip = {"bonafide": "spoof", "spoof": "bonafide"}
    hypothesis = [
        seg(
            s.onset,
            s.end,
            s.speaker,
            score=SCORES[flip[s.label] if s.speaker == flipped else s.label],
        )
        for s in REFERENCE
    ]
    report = evaluate_conversation(REFERENCE, hypothesis)
    assert report.diarization.der == 0.0  # who spoke when is still right
    assert report.spoof_time.error == pytest.approx(seconds / TOTAL)
    assert report.spoof_time.confusion == pytest.approx(seconds)
    assert report.spoof_time.missed == report.spoof_time.false_alarm == 0.0
    assert report.speaker_accuracy == pytest.approx(2 / 3)
    (wrong,) = [r for r in report.speakers if not r.correct]
    assert wrong.speaker == flipped


def test_missed_speech_and_false_alarms_count_as_in_der():
    hypothesis = perfect()[:-1] + [seg(20, 23, "spk_A", score=0.1)]  # A's last turn cut short
    hypothesis.append(seg(30, 34, "spk_D", score=0.9))  # speech where nobody talks
    times = spoof_time_error(REFERENCE, hypothesis)
    assert times.missed == pytest.approx(2.0)
    assert times.false_alarm == pytest.approx(4.0)
    assert times.confusion == 0.0
    assert times.error == pytest.approx(6.0 / TOTAL)
    der = diarization_error_rate(REFERENCE, hypothesis)
    assert (der.missed, der.false_alarm, der.confusion) == pytest.approx((2.0, 4.0, 0.0))
    assert der.der == pytest.approx(6.0 / TOTAL)


def test_overlap_found_as_one_voice_is_missed_speech_not_a_wrong_label():
    # reference: A bonafide 0-10, B spoof 5-15; hypothesis: one cluster 0-15, all spoof
    reference = [seg(0, 10, "A", "bonafide"), seg(5, 15, "B", "spoof")]
    hypothesis = [seg(0, 15, "X", score=0.8)]
    times = spoof_time_error(reference, hypothesis)
    # 0-5: A (bonafide) heard as spoof -> 5 s wrong label; 5-10: two voices, one found, the
    # spoof one right -> 5 s missed; 10-15: right
    assert (times.missed, times.false_alarm, times.confusion) == pytest.approx((5.0, 0.0, 5.0))
    assert times.total == pytest.approx(20.0)
    assert times.error == pytest.approx(0.5)


def test_speaker_confusion_is_not_a_spoof_error_when_labels_agree():
    # two bonafide speakers swapped halfway by the diarizer: DER counts it, the spoof error not
    reference = [seg(0, 10, "A", "bonafide"), seg(10, 20, "B", "bonafide")]
    hypothesis = [seg(0, 15, "X", score=0.2), seg(15, 20, "Y", score=0.3)]
    assert spoof_time_error(reference, hypothesis).error == 0.0
    assert diarization_error_rate(reference, hypothesis).confusion == pytest.approx(5.0)


def test_a_speaker_counts_once_where_its_segments_overlap():
    reference = [seg(0, 10, "A", "bonafide")]
    hypothesis = [seg(0, 6, "X", score=0.1), seg(4, 10, "X", score=0.2)]  # overlapping windows
    assert spoof_time_error(reference, hypothesis).false_alarm == 0.0


def test_impostor_verdict_by_mean_or_max_speaker_score():
    # I is bonafide 0-8 and spoofed 10-12 (taken over): spoofed for 20 % of its speech
    reference = [seg(0, 8, "I", "bonafide"), seg(10, 12, "I", "spoof"), seg(8, 10, "B", "bonafide")]
    hypothesis = [
        seg(0, 8, "x", score=0.1),
        seg(10, 12, "x", score=0.9),
        seg(8, 10, "y", score=0.2),
    ]
    scores = hypothesis_speaker_scores(hypothesis)
    assert scores[("call", "x")] == pytest.approx((8 * 0.1 + 2 * 0.9) / 10)
    assert evaluate_conversation(reference, hypothesis).speaker_accuracy == 0.5
    report = evaluate_conversation(reference, hypothesis, speaker_score="max")
    assert report.speaker_accuracy == 1.0
    assert report.spoof_time.error == 0.0  # segment labels are right either way


def test_missed_and_extra_speakers():
    hypothesis = [s for s in perfect() if s.speaker != "spk_C"]
    hypothesis.append(seg(40, 41, "spk_Z", score=0.1))
    report = evaluate_conversation(REFERENCE, hypothesis)
    assert report.n_missed_speakers == 1 and report.n_extra_speakers == 1
    missed = next(r for r in report.speakers if r.speaker == "C")
    assert (missed.hypothesis_speaker, missed.verdict, missed.correct) == (None, None, False)
    assert report.speaker_accuracy == pytest.approx(2 / 3)


def test_speaker_eer_over_recordings():
    # two calls; the spoofed speaker of call 2 scores below a bonafide speaker of call 1
    reference = REFERENCE + [
        seg(0, 5, "P", "bonafide", uri="call2"), seg(5, 9, "Q", "spoof", uri="call2")
    ]  # fmt: skip
    hypothesis = [
        seg(0, 10, "a", score=0.3), seg(8, 18, "b", score=0.9), seg(18, 21, "c", score=0.6),
        seg(20, 25, "a", score=0.3), seg(0, 5, "p", score=0.2, uri="call2"),
        seg(5, 9, "q", score=0.5, uri="call2"),
    ]  # fmt: skip
    report = evaluate_conversation(reference, hypothesis)
    assert report.n_recordings == 2 and report.n_reference_speakers == 5
    # bonafide 0.3, 0.6, 0.2; spoof 0.9, 0.5: one pair ranked wrong
    assert report.speaker_eer == pytest.approx(5 / 12)  # ASVspoof's EER: mean of FRR 1/3, FAR 1/2
    # at threshold 0.5 only c is wrong (q's 0.5 is spoof: verdicts are score >= threshold)
    assert report.speaker_accuracy == pytest.approx(4 / 5)


def test_labels_from_label_field_or_score_and_refusals():
    assert segment_labels([seg(0, 1, "a", label="spoof", score=0.0), seg(0, 1, "b", score=0.7)],
                          threshold=0.8) == ["spoof", "bonafide"]  # fmt: skip
    with pytest.raises(ValueError, match="neither a label nor a spoof score"):
        spoof_time_error(REFERENCE, [seg(0, 1, "x")])
    with pytest.raises(ValueError, match="without a reference"):
        spoof_time_error(REFERENCE, [seg(0, 1, "x", score=0.1, uri="other")])


def test_evaluate_rttm_files(tmp_path):
    write_rttm(tmp_path / "ref.rttm", REFERENCE)
    write_rttm(tmp_path / "hyp.rttm", perfect())
    report = evaluate_conversation_hypotheses(tmp_path / "ref.rttm", tmp_path / "hyp.rttm")
    assert report.diarization.der == 0.0 and report.spoof_time.error == 0.0
    assert "DER 0.0000" in str(report) and report.to_dict()["speaker_accuracy"] == 1.0
    write_rttm(tmp_path / "plain.rttm", [seg(0, 1, "A")])  # a diarization-only reference
    with pytest.raises(ValueError, match="without a bonafide/spoof label"):
        evaluate_conversation_hypotheses(tmp_path / "plain.rttm", tmp_path / "hyp.rttm")


def test_simulated_conversation_scored_against_itself(tmp_path):
    from amongus.corpora.demo import demo_utterances
    from amongus.mix.config import MixerConfig
    from amongus.mix.conversation import ConversationMixer
    from amongus.mix.conversation_config import ConversationConfig
    from amongus.rttm import read_rttm

    ConversationMixer(MixerConfig(), ConversationConfig(duration=(40.0, 40.0), impostor=True)).run(
        demo_utterances("eval"), tmp_path, n_conversations=2, seed=0, workers=1, progress=False
    )
    reference = read_rttm(tmp_path / "reference.rttm")
    report = evaluate_conversation(reference, perfect(reference), speaker_score="max")
    assert report.diarization.der == 0.0 and report.spoof_time.error == 0.0
    assert report.speaker_accuracy == 1.0 and report.n_spoofed_speakers == 2
