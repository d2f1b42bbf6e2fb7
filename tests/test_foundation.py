"""The foundation: light import, labels, audio I/O and manifests."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from amongus import labels
from amongus.audio import AudioError, load_audio, peak_normalize, resample, save_audio
from amongus.manifest import Mixture, MixtureSource, Utterance, read_jsonl, write_jsonl


def test_import_amongus_does_not_import_heavy_libraries():
    code = (
        "import sys, amongus; "
        "print([m for m in ('speechbrain', 'asteroid', 'transformers', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_public_names_resolve():
    import amongus

    assert amongus.Utterance is Utterance
    with pytest.raises(AttributeError):
        amongus.NotAThing  # noqa: B018


@pytest.mark.parametrize(
    "spelling,expected",
    [("Real", "bonafide"), ("bona-fide", "bonafide"), ("FAKE", "spoof"), ("spoof", "spoof")],
)
def test_normalize_label(spelling, expected):
    assert labels.normalize_label(spelling) == expected


def test_normalize_label_rejects_unknown():
    with pytest.raises(ValueError, match="unknown label"):
        labels.normalize_label("LABEL_0")


def test_composition_label_is_order_free_and_general():
    assert labels.composition_label(["bonafide", "spoof"]) == "SB"
    assert labels.composition_label(["spoof", "bonafide"]) == "SB"
    assert labels.composition_label(["spoof", "spoof"]) == "SS"
    assert labels.composition_label(["bonafide"] * 3 + ["spoof"]) == "SBBB"
    assert labels.composition_labels(3) == ["SSS", "SSB", "SBB", "BBB"]
    assert labels.n_spoofed("SSB") == 2


def test_save_and_load_round_trip(tmp_path):
    audio = (0.1 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    path = save_audio(tmp_path / "a.flac", audio, 8000)
    loaded, rate = load_audio(path)
    assert rate == 8000
    assert np.max(np.abs(loaded - audio)) < 1e-3
    assert not list(tmp_path.glob("*.part"))
    resampled, rate16 = load_audio(path, sample_rate=16000)
    assert rate16 == 16000 and len(resampled) == 16000


def test_save_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "bad.wav", np.array([0.0, np.nan], dtype=np.float32), 16000)
    assert not (tmp_path / "bad.wav").exists()


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="garbage.wav: unreadable"):
        load_audio(garbage)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="all samples are zero"):
        load_audio(silent)
    assert load_audio(silent, allow_silent=True)[0].shape == (1600,)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.ones((1600, 2), dtype=np.float32) * [0.2, 0.4], 16000)
    assert np.allclose(load_audio(stereo)[0], 0.3, atol=1e-4)
    with pytest.raises(AudioError, match="2 channels"):
        load_audio(stereo, mono="error")
    with pytest.raises(AudioError, match="too short"):
        load_audio(stereo, min_duration=1.0)


def test_resample_numpy_and_torch_agree_on_length():
    torch = pytest.importorskip("torch")
    audio = np.random.default_rng(0).standard_normal(8001).astype(np.float32)
    out_np = resample(audio, 8000, 16000)
    out_torch = resample(torch.from_numpy(audio), 8000, 16000)
    assert out_np.shape == (16002,) and tuple(out_torch.shape) == (16002,)
    # a band-limited tone survives both resamplers nearly unchanged
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    back = resample(resample(tone, 16000, 8000), 8000, 16000)
    assert np.max(np.abs(back[200:-200] - tone[200:-200])) < 0.02


def test_resampler_is_cached():
    pytest.importorskip("torch")
    from amongus.audio import get_resampler

    assert get_resampler(8000, 16000) is get_resampler(8000, 16000)


def test_peak_normalize_never_divides_by_zero():
    assert np.array_equal(peak_normalize(np.zeros(10)), np.zeros(10))
    assert np.max(np.abs(peak_normalize(np.array([0.5, -2.0])))) == pytest.approx(1.0)


def test_manifest_round_trip_and_derived_label(tmp_path):
    mixture = Mixture(
        mixture_id="m1",
        path="audio/m1.flac",
        sample_rate=16000,
        sources=[
            MixtureSource(utt_id="u1", path="u1.flac", label="Fake", offset=10, gain=0.8),
            MixtureSource(utt_id="u2", path="u2.flac", label="real"),
        ],
        seed=3,
    )
    utterance = Utterance(utt_id="u1", path="u1.flac", label="spoof", system="A01")
    path = write_jsonl(tmp_path / "m.jsonl", [mixture, utterance])
    first, second = list(read_jsonl(path))
    assert first == mixture and first.label == "SB" and first.n_spoofed == 1
    assert second == utterance
    line = json.loads(path.read_text().splitlines()[0])
    assert line["label"] == "SB"


def test_manifest_rejects_inconsistent_label_and_bad_records(tmp_path):
    bad = tmp_path / "bad.jsonl"
    source = {"utt_id": "u", "path": "p", "label": "spoof"}
    bad.write_text(
        json.dumps(
            {
                "mixture_id": "m",
                "path": "p",
                "sample_rate": 16000,
                "sources": [source, source],
                "label": "BB",
            }
        )
        + "\n"
    )
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        list(read_jsonl(bad))
    with pytest.raises(ValueError, match="negative offset"):
        write_jsonl(
            tmp_path / "x.jsonl",
            [Mixture("m", "p", 16000, [MixtureSource("u", "p", "spoof", offset=-1)])],
        )
    assert not (tmp_path / "x.jsonl").exists()
