"""Bad inputs: a clear error naming the file (--on-bad-input error) or a counted skip."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from test_mix_helpers import speech_like, write_utterances

from amongus.manifest import Utterance, read_mixtures
from amongus.mix import Mixer, MixerConfig

RATE = 16000


def _bad_file(folder, kind: str) -> str:
    rng = np.random.default_rng(0)
    path = folder / f"bad_{kind}.wav"
    if kind == "unreadable":
        path = folder / "bad_unreadable.flac"
        path.write_bytes(b"this is not audio at all" * 10)
    elif kind == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), RATE)
    elif kind == "all_zero":
        sf.write(path, np.zeros(RATE, dtype=np.float32), RATE)
    elif kind in ("nan", "inf"):
        audio = speech_like(rng, 1.0, RATE)
        audio[100:200] = np.nan if kind == "nan" else np.inf
        sf.write(path, audio, RATE, subtype="FLOAT")
    elif kind == "too_short":
        sf.write(path, speech_like(rng, 0.1, RATE), RATE)
    elif kind == "missing":
        path = folder / "does_not_exist.flac"
    else:
        raise AssertionError(kind)
    return str(path)


BAD_KINDS = {
    "unreadable": "unreadable",
    "empty": "empty",
    "all_zero": "silent",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "too_short": "too_short",
    "missing": "not found",
}


def _with_bad(tmp_path, kinds):
    good = write_utterances(tmp_path / "good", 6, seconds=(1.0, 1.5))
    bad = [
        Utterance(f"bad_{kind}", _bad_file(tmp_path, kind), "spoof" if k % 2 else "bonafide")
        for k, kind in enumerate(kinds)
    ]
    return good + bad, bad


def test_bad_inputs_are_skipped_and_counted(tmp_path):
    utterances, bad = _with_bad(tmp_path, list(BAD_KINDS))
    stereo_path = tmp_path / "stereo.flac"
    audio = speech_like(np.random.default_rng(1), 1.2, RATE)
    sf.write(stereo_path, np.stack([audio, 0.5 * audio], axis=1), RATE)
    low_rate = tmp_path / "rate8k.flac"
    sf.write(low_rate, speech_like(np.random.default_rng(2), 1.2, 8000), 8000)
    utterances += [
        Utterance("stereo", str(stereo_path), "bonafide", speaker="st"),
        Utterance("rate8k", str(low_rate), "spoof", speaker="r8"),
    ]
    summary = Mixer(MixerConfig(min_overlap=0.2)).run(
        utterances, tmp_path / "out", n_mixtures=40, seed=0, workers=1, progress=False
    )
    reasons = dict(summary.bad_inputs)
    for utterance, kind in zip(bad, BAD_KINDS, strict=True):
        assert utterance.path in reasons, f"{kind} not reported"
        assert BAD_KINDS[kind] in reasons[utterance.path]
    assert len(summary.bad_inputs) == len(BAD_KINDS)
    assert summary.n_downmixed == 1 and summary.n_resampled == 1
    assert summary.n_usable == len(utterances) - len(BAD_KINDS)
    mixtures = read_mixtures(tmp_path / "out" / "mixtures.jsonl")
    assert len(mixtures) == 40
    used = {s.utt_id for m in mixtures for s in m.sources}
    assert not used & {u.utt_id for u in bad}
    assert {"stereo", "rate8k"} <= used  # converted, not dropped
    for mixture in mixtures:
        saved, _ = sf.read(tmp_path / "out" / mixture.path)
        assert np.all(np.isfinite(saved)) and np.abs(saved).max() > 0
    written = (tmp_path / "out" / "summary.json").read_text()
    assert "bad_unreadable.flac" in written and '"n_downmixed": 1' in written
    # the same skips and the same mixtures with two worker processes
    parallel = Mixer(MixerConfig(min_overlap=0.2)).run(
        utterances, tmp_path / "out2", n_mixtures=40, seed=0, workers=2, progress=False
    )
    assert parallel.bad_inputs == summary.bad_inputs
    manifest = (tmp_path / "out" / "mixtures.jsonl").read_bytes()
    assert (tmp_path / "out2" / "mixtures.jsonl").read_bytes() == manifest


@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_bad_input_is_an_error_naming_the_file(tmp_path, kind):
    utterances, bad = _with_bad(tmp_path, [kind])
    config = MixerConfig(on_bad_input="error", min_overlap=0.2)
    with pytest.raises(ValueError) as error:
        Mixer(config).run(utterances, tmp_path / "out", n_mixtures=30, seed=0, workers=1,
                          progress=False)  # fmt: skip
    assert bad[0].path in str(error.value) and BAD_KINDS[kind] in str(error.value)
    assert not (tmp_path / "out" / "mixtures.jsonl").exists()


def test_no_usable_utterance_of_a_label_is_a_clear_error(tmp_path):
    utterances = [u for u in write_utterances(tmp_path, 6) if u.label == "bonafide"]
    # BB is still possible: only SS and SB are dropped
    summary = Mixer(MixerConfig()).run(
        utterances, tmp_path / "ok", n_mixtures=5, seed=0, workers=1, progress=False
    )
    assert summary.compositions == {"BB": 5}
    with pytest.raises(ValueError, match="no composition can be drawn"):
        Mixer(MixerConfig(composition_probs={"SS": 1.0})).run(
            utterances, tmp_path / "bad", n_mixtures=5, seed=0, workers=1, progress=False
        )
