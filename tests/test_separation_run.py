"""separate_at_rate: the one place where separation resamples; the four separators interchangeable."""

import logging
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from amongus import audio
from amongus.separation import load_separator, separate_at_rate
from amongus.separation.oracle import PassthroughSeparator
from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer


class EightKilohertzPassthrough(PassthroughSeparator):
    """Passthrough that declares 8 kHz, like speechbrain/sepformer-wsj02mix."""

    sample_rate = 8000


def _tone(frequency, seconds=1.0, rate=16000):
    time = torch.arange(int(seconds * rate)) / rate
    return torch.sin(2 * math.pi * frequency * time)


@pytest.fixture(scope="module")
def separators(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    return {
        "oracle": load_separator("oracle"),
        "passthrough": load_separator("passthrough"),
        "sepformer": load_separator(build_tiny_sepformer(root / "sepformer")),
        "convtasnet": load_separator(build_tiny_convtasnet(root / "convtasnet.bin")),
    }


def test_the_four_separators_are_interchangeable(separators):
    generator = torch.Generator().manual_seed(0)
    references = torch.randn(2, 2, 12001, generator=generator)
    mixture, lengths = references.sum(1), torch.tensor([12001, 9000])
    expected_rate = {"oracle": 16000, "passthrough": 16000, "sepformer": 8000, "convtasnet": 16000}
    for name, separator in separators.items():
        streams, rates = separate_at_rate(
            separator, mixture, 16000, 16000, lengths, references=references, chunk_seconds=0.3
        )
        assert streams.shape == (2, 2, 12001), name
        assert torch.isfinite(streams).all(), name
        assert torch.count_nonzero(streams[1, :, 9000:]) == 0, name
        assert rates["separator_rate"] == expected_rate[name], name
        assert rates["separator"] == separator.identity
        assert rates["bandwidth_hz"] == expected_rate[name] / 2


def test_an_8khz_separator_loses_the_band_above_4khz():
    low, high = _tone(1000), _tone(6000)
    streams, rates = separate_at_rate(EightKilohertzPassthrough(), (low + high)[None], 16000, 16000)
    assert rates == {
        "input_rate": 16000,
        "separator_rate": 8000,
        "output_rate": 16000,
        "bandwidth_hz": 4000.0,
        "separator": "passthrough:n_src=2:scale=none",
        "chunk_seconds": None,
        "overlap_seconds": None,
    }
    inner = slice(800, -800)  # away from the resampling filters' edge effects
    stream = streams[0, 0, inner]
    assert torch.dot(stream, low[inner]) / low[inner].norm() ** 2 == pytest.approx(1.0, abs=0.02)
    assert abs(float(torch.dot(stream, high[inner]) / high[inner].norm() ** 2)) < 0.01
    same_rate, _ = separate_at_rate(PassthroughSeparator(), (low + high)[None], 16000, 16000)
    assert torch.equal(same_rate[0, 0], low + high)


def test_lengths_follow_the_rates():
    mixture = torch.randn(2, 16001)
    lengths = torch.tensor([16001, 8001])
    streams, _ = separate_at_rate(EightKilohertzPassthrough(), mixture, 16000, 22050, lengths)
    assert streams.shape[-1] == math.ceil(16001 * 22050 / 16000)
    valid = math.ceil(8001 * 22050 / 16000)
    assert torch.count_nonzero(streams[1, :, valid:]) == 0
    assert streams[1, :, valid - 100 : valid].abs().max() > 0


def test_resamplers_are_built_once_per_rate_pair(monkeypatch):
    import torchaudio

    built = []

    class CountingResample(torchaudio.transforms.Resample):
        def __init__(self, orig_freq, new_freq, *args, **kwargs):
            built.append((orig_freq, new_freq))
            super().__init__(orig_freq, new_freq, *args, **kwargs)

    monkeypatch.setattr(torchaudio.transforms, "Resample", CountingResample)
    audio.get_resampler.cache_clear()
    try:
        for _ in range(3):
            separate_at_rate(EightKilohertzPassthrough(), torch.randn(2, 4000), 16000, 16000)
    finally:
        audio.get_resampler.cache_clear()
    assert sorted(built) == [(8000, 16000), (16000, 8000)]


def test_chunked_path_equals_whole_for_passthrough():
    mixture = torch.randn(1, 32000)
    whole, _ = separate_at_rate(EightKilohertzPassthrough(), mixture, 16000, 16000)
    chunked, rates = separate_at_rate(
        EightKilohertzPassthrough(), mixture, 16000, 16000, chunk_seconds=0.5
    )
    assert rates["chunk_seconds"] == 0.5 and rates["overlap_seconds"] == 0.125
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_bandwidth_loss_is_logged_once(caplog):
    separator = EightKilohertzPassthrough(n_src=3)  # a new identity, not yet warned about
    with caplog.at_level(logging.WARNING, logger="amongus.separation.run"):
        for _ in range(2):
            separate_at_rate(separator, torch.randn(1, 800), 16000, 16000)
    messages = [r.getMessage() for r in caplog.records if "8000 Hz" in r.getMessage()]
    assert len(messages) == 1 and "4000 Hz" in messages[0]


@pytest.mark.parametrize("rates", [(16000, 8000), (8000, 16000), (44100, 16000), (16000, 22050)])
@pytest.mark.parametrize("length", [12345, 40001])
def test_block_resampling_equals_whole_signal_resampling(rates, length):
    # issue 12, case 12: torchaudio's resampler took ~0.75 GB on two 10-minute streams; in
    # blocks it must still give the very same samples
    from amongus.separation.run import resample_long

    signal = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(length))
    whole = audio.resample(signal, *rates)
    blocks = resample_long(signal, *rates, block=1000)
    assert blocks.shape == whole.shape
    torch.testing.assert_close(blocks, whole, atol=1e-6, rtol=0)


def test_padding_content_does_not_leak_into_an_item():
    # lengths mark padding: whatever is there must not reach the item through the resampler
    separator = EightKilohertzPassthrough()
    mixture = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([1000, 4000])
    streams, _ = separate_at_rate(separator, mixture, 16000, 16000, lengths)
    alone, _ = separate_at_rate(separator, mixture[:1, :1000], 16000, 16000)
    torch.testing.assert_close(streams[0, :, :1000], alone[0], atol=1e-6, rtol=0)
