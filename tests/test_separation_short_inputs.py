"""Inputs a model cannot take as they are (issue 12, cases 11 and 12): shorter than the encoder
kernel, longer than SepFormer's positional encoding, or a [T, C] array given to Pipeline. Each
used to end in a torch RuntimeError."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from amongus.separation import load_separator, separate_at_rate, separate_chunked
from amongus.separation.limits import conv_frames, dual_path_max_frames
from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

RATE = 8000


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    return {
        # kernels differ from the defaults so a hard-coded number could not pass
        "convtasnet": load_separator(
            build_tiny_convtasnet(root / "ctn.bin", sample_rate=RATE, kernel_size=20)
        ),
        "sepformer": load_separator(
            build_tiny_sepformer(root / "sepformer", sample_rate=RATE, kernel_size=24)
        ),
        # a SepFormer whose positional-encoding limit is reached in well under a second:
        # chunks of 4 frames, stride 1
        "sepformer-short-limit": load_separator(
            build_tiny_sepformer(
                root / "limit",
                sample_rate=RATE,
                kernel_size=2,
                chunk_size=4,
                n_filters=4,
                d_model=4,
                nhead=1,
                d_ffn=4,
            )  # fmt: skip
        ),
    }


@pytest.mark.parametrize("name,kernel", [("convtasnet", 20), ("sepformer", 24)])
def test_min_samples_is_the_encoder_kernel(models, name, kernel):
    separator = models[name]
    assert separator.min_samples == kernel
    # the minimum is tight: the raw model fails one sample below it, inside torch
    with pytest.raises(RuntimeError, match="[Kk]ernel size"):
        separator._forward(torch.randn(1, kernel - 1))
    separator._forward(torch.randn(1, kernel))


@pytest.mark.parametrize("name", ["convtasnet", "sepformer"])
@pytest.mark.parametrize("length", [1, 10, 19])
def test_inputs_shorter_than_the_kernel_are_padded_and_cropped_back(models, name, length):
    separator = models[name]
    mixture = torch.randn(1, length, generator=torch.Generator().manual_seed(length))
    streams = separator.separate(mixture)
    assert streams.shape == (1, separator.n_src, length)
    assert torch.isfinite(streams).all()
    # what it means: the streams of the zero-padded input, cropped back
    padded = torch.nn.functional.pad(mixture, (0, separator.min_samples - length))
    expected = separator.separate(
        padded, torch.tensor([separator.min_samples]), output_scale="none"
    )
    raw = separator.separate(mixture, output_scale="none")
    torch.testing.assert_close(raw, expected[..., :length], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["convtasnet", "sepformer"])
def test_a_short_item_in_a_padded_batch_is_separated_as_alone(models, name):
    # the trainer's and pipeline's path: a 20-sample mixture next to a normal one
    separator = models[name]
    generator = torch.Generator().manual_seed(0)
    mixture = torch.randn(2, 16000, generator=generator)
    lengths = torch.tensor([20, 16000])
    streams, _ = separate_at_rate(separator, mixture, 16000, 16000, lengths)
    assert torch.isfinite(streams).all()
    assert torch.count_nonzero(streams[0, :, 20:]) == 0
    alone, _ = separate_at_rate(separator, mixture[:1, :20], 16000, 16000)
    torch.testing.assert_close(streams[0, :, :20], alone[0], atol=1e-5, rtol=1e-4)


def test_sepformer_max_samples_is_derived_from_its_positional_encoding(models):
    separator = models["sepformer-short-limit"]
    limit = separator.max_samples
    # derivation: 2500 positions, chunks of 4 frames, kernel 2, stride 1
    assert conv_frames(limit, 2, 1) == dual_path_max_frames(4, 2500)
    separator._forward(torch.randn(1, limit))
    with pytest.raises(RuntimeError, match="must match the size"):
        separator._forward(torch.randn(1, limit + 1))  # F4's error, in small
    # published layout (K=250, stride 8 at 8 kHz): about 312 s in one piece
    assert 310 < dual_path_max_frames(250, 2500) * 8 / 8000 < 315


def test_inputs_longer_than_the_limit_are_chunked_even_when_chunking_is_off(models, caplog):
    separator = models["sepformer-short-limit"]
    length = 3 * separator.max_samples + 17
    mixture = torch.randn(2, length, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([length, separator.max_samples + 1])
    streams = separate_chunked(
        separator, mixture, lengths, chunk_seconds=math.inf, overlap_seconds=None, sample_rate=RATE
    )
    assert streams.shape == (2, separator.n_src, length) and torch.isfinite(streams).all()
    assert "takes at most" in caplog.text
    # the separator's default stays within the limit without a warning
    caplog.clear()
    assert separator.default_plan()[0] <= separator.max_samples
    separator.separate(mixture[:1])
    assert "takes at most" not in caplog.text


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from amongus import Pipeline
    from amongus.testing.classifiers import build_tiny_classifier

    root = tmp_path_factory.mktemp("pipeline")
    return Pipeline(
        separator=str(build_tiny_convtasnet(root / "ctn.bin", sample_rate=16000)),
        classifier=str(build_tiny_classifier(root / "classifier")),
        assignment=None,
    )


@pytest.mark.parametrize("channels", [2, 6])
def test_pipeline_refuses_a_channels_last_array_naming_its_shape(pipeline, channels):
    from amongus.audio import AudioError

    stereo = np.full((4000, channels), 0.01, np.float32)
    with pytest.raises(AudioError, match=rf"\(4000, {channels}\).*\[T, C\].*to_mono"):
        pipeline(stereo, sample_rate=16000)
    # a [B, T] batch is still a batch
    results = pipeline(stereo.T.copy() + np.random.default_rng(0).normal(0, 0.1, (channels, 4000)),
                       sample_rate=16000)  # fmt: skip
    assert len(results) == channels
