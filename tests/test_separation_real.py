"""The four separators on the real two-speaker mixtures of ../shared (skipped when absent)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch

from amongus.audio import load_audio
from amongus.separation import load_separator, separate_at_rate
from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

SEPARATION = Path(__file__).parents[1].parent / "shared" / "data" / "real" / "separation"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not SEPARATION.is_dir(), reason="../shared/data/real/separation is absent"),
]


def si_sdr(estimate, reference, eps=1e-12):
    """Scale-invariant SDR in dB. Shape: ``[..., T], [..., T] -> [...]``."""
    estimate = estimate.double() - estimate.double().mean(-1, keepdim=True)
    reference = reference.double() - reference.double().mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (
        reference.pow(2).sum(-1, keepdim=True) + eps
    )
    target = scale * reference
    return 10 * torch.log10(
        target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + eps) + eps
    )


@pytest.fixture(scope="module")
def real_batch():
    """The first two real mixtures as a padded batch at 16 kHz, with their sources."""
    mixtures, sources = [], []
    for index in (0, 2):  # 4.0 s and 7.2 s: a padded batch
        mixtures.append(torch.from_numpy(load_audio(SEPARATION / f"mixture_{index}.flac")[0]))
        sources.append(
            torch.stack(
                [
                    torch.from_numpy(load_audio(SEPARATION / f"source{s}_{index}.flac")[0])
                    for s in (1, 2)
                ]
            )
        )
    lengths = torch.tensor([m.shape[-1] for m in mixtures])
    batch = torch.zeros(2, int(lengths.max()))
    references = torch.zeros(2, 2, int(lengths.max()))
    for row, (mixture, source) in enumerate(zip(mixtures, sources, strict=True)):
        batch[row, : mixture.shape[-1]] = mixture
        references[row, :, : mixture.shape[-1]] = source
    return batch, lengths, references


def test_oracle_is_the_upper_bound_and_passthrough_the_floor(real_batch):
    mixture, lengths, references = real_batch
    oracle, _ = separate_at_rate(
        load_separator("oracle"), mixture, 16000, 16000, lengths, references=references
    )
    passthrough, _ = separate_at_rate(load_separator("passthrough"), mixture, 16000, 16000, lengths)
    for item, length in enumerate(lengths.tolist()):
        oracle_score = si_sdr(oracle[item, :, :length], references[item, :, :length])
        floor = si_sdr(passthrough[item, :, :length], references[item, :, :length])
        assert bool((oracle_score > 100).all())  # identical up to float rounding
        assert bool((floor < 15).all()) and bool((floor > -15).all())  # a mixture, not a source


def test_tiny_models_run_on_real_speech(real_batch, tmp_path):
    mixture, lengths, _ = real_batch
    for separator in (
        load_separator(build_tiny_sepformer(tmp_path / "sepformer")),
        load_separator(build_tiny_convtasnet(tmp_path / "convtasnet.bin")),
    ):
        streams, rates = separate_at_rate(
            separator, mixture, 16000, 16000, lengths, chunk_seconds=2.0
        )
        assert streams.shape == (2, 2, mixture.shape[-1])
        assert torch.isfinite(streams).all()
        assert torch.count_nonzero(streams[0, :, int(lengths[0]) :]) == 0
        assert rates["separator_rate"] == separator.sample_rate


def test_the_8khz_round_trip_removes_real_speech_above_4khz():
    """The study's loss, on real 16 kHz speech: what an 8 kHz separator hands a 16 kHz detector.

    (The separation mixtures themselves carry almost nothing above 5 kHz, so LibriSpeech is used.)
    """
    speech_files = sorted((SEPARATION.parent / "bonafide" / "librispeech").glob("*.flac"))
    if not speech_files:
        pytest.skip("../shared/data/real/bonafide/librispeech is absent")

    class EightKilohertzPassthrough(type(load_separator("passthrough"))):
        sample_rate = 8000

    speech = torch.from_numpy(load_audio(speech_files[0])[0])
    streams, _ = separate_at_rate(EightKilohertzPassthrough(), speech[None], 16000, 16000)

    def high_band_fraction(signal):
        spectrum = torch.fft.rfft(signal).abs().pow(2)
        frequencies = torch.fft.rfftfreq(signal.shape[-1], 1 / 16000)
        return float(spectrum[frequencies > 4200].sum() / spectrum.sum())

    before = high_band_fraction(speech)  # about 3 % of the energy
    after = high_band_fraction(streams[0, 0])
    assert before > 1e-2
    assert after < before / 100
