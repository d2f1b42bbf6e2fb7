"""Separator protocol, registry, oracle and passthrough, batch checks and the output-scale policy."""

import pytest
import torch

from amongus.separation import (
    OUTPUT_SCALES,
    Separator,
    apply_output_scale,
    load_separator,
    registered_separators,
)
from amongus.separation.oracle import OracleSeparator, PassthroughSeparator


def _batch(batch=3, length=4000, n_src=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    references = torch.randn(batch, n_src, length, generator=generator)
    return references.sum(1), references


def test_registry_names_the_four_builtin_separators():
    assert {"oracle", "passthrough", "sepformer", "convtasnet"} <= set(registered_separators())


def test_passthrough_copies_the_mixture_into_every_stream():
    mixture, _ = _batch()
    separator = load_separator("passthrough", n_src=3)
    assert isinstance(separator, Separator) and separator.sample_rate is None
    streams = separator.separate(mixture)
    assert streams.shape == (3, 3, 4000)
    for stream in range(3):
        assert torch.equal(streams[:, stream], mixture)


def test_oracle_returns_the_references_and_needs_them():
    mixture, references = _batch()
    oracle = load_separator("oracle")
    assert torch.equal(oracle.separate(mixture, references=references), references)
    with pytest.raises(ValueError, match="references"):
        oracle.separate(mixture)
    with pytest.raises(ValueError, match="n_src=2"):
        oracle.separate(mixture, references=torch.randn(3, 3, 4000))
    flexible = OracleSeparator(n_src=None)
    assert flexible.separate(mixture, references=torch.randn(3, 3, 4000)).shape == (3, 3, 4000)
    assert flexible.n_src == 3


def test_streams_past_each_length_are_zero():
    mixture, references = _batch()
    lengths = torch.tensor([4000, 2500, 0])
    for separator in (PassthroughSeparator(), OracleSeparator()):
        streams = separator.separate(mixture, lengths, references=references)
        assert torch.equal(
            streams[0], separator.separate(mixture[:1], references=references[:1])[0]
        )
        assert streams[1, :, 2500:].abs().max() == 0 and streams[1, :, :2500].abs().max() > 0
        assert streams[2].abs().max() == 0


def test_config_dict_and_instance_are_accepted():
    separator = load_separator({"name": "passthrough", "n_src": 4})
    assert separator.n_src == 4
    assert load_separator(separator) is separator


@pytest.mark.parametrize(
    "mixture,lengths,message",
    [
        (torch.zeros(100), None, r"\[B, T\]"),
        (torch.full((1, 10), float("nan")), None, "NaN"),
        (torch.zeros(2, 10), torch.tensor([5, 11]), "lengths"),
        (torch.zeros(2, 10), torch.tensor([5]), "entries"),
        (torch.zeros(2, 10, dtype=torch.long), None, "floating"),
    ],
)
def test_bad_batches_raise_clear_errors(mixture, lengths, message):
    with pytest.raises(ValueError, match=message):
        PassthroughSeparator().separate(mixture, lengths)


def test_identity_names_kind_sources_and_scale():
    assert PassthroughSeparator(n_src=2).identity != PassthroughSeparator(n_src=3).identity
    assert OracleSeparator().identity != OracleSeparator(output_scale="peak").identity
    assert PassthroughSeparator().identity == PassthroughSeparator().identity


def test_unknown_output_scale_is_refused():
    with pytest.raises(ValueError, match="output_scale"):
        PassthroughSeparator(output_scale="loud")
    assert set(OUTPUT_SCALES) == {"none", "projection", "mixture_rms", "peak"}


def test_projection_restores_each_source_level_and_polarity():
    mixture, references = _batch(batch=2, length=16000)
    distorted = references * torch.tensor([[7.0], [-0.25]])  # too loud / flipped and quiet
    restored = apply_output_scale(distorted, mixture, "projection")
    # independent sources are nearly orthogonal, so each comes back at about unit gain
    assert torch.allclose(restored, references, atol=0.05 * float(references.abs().max()))
    passthrough = mixture[:, None].expand(-1, 2, -1)
    assert torch.allclose(apply_output_scale(passthrough, mixture, "projection"), passthrough)


def test_mixture_rms_and_peak_policies():
    mixture, references = _batch(batch=2, length=8000)
    streams = references * torch.tensor([[30.0], [0.01]])
    rms = apply_output_scale(streams, mixture, "mixture_rms").pow(2).mean(-1).sqrt()
    assert torch.allclose(
        rms, mixture.pow(2).mean(-1, keepdim=True).sqrt().expand(-1, 2), rtol=1e-4
    )
    peak = apply_output_scale(streams, mixture, "peak").abs().amax(-1)
    assert torch.allclose(peak, torch.ones_like(peak))


def test_output_scale_ignores_padding_and_keeps_silence_silent():
    mixture, references = _batch(batch=1, length=8000)
    lengths = torch.tensor([6000])
    streams = references.clone()
    streams[..., 6000:] = 1e3  # garbage in the padding must not change the gain
    streams[:, 1] = 0.0
    scaled = apply_output_scale(streams, mixture, "projection", lengths)
    clean = apply_output_scale(references[..., :6000], mixture[:, :6000], "projection")
    assert torch.allclose(scaled[0, 0, :6000], clean[0, 0], atol=1e-5)
    for policy in OUTPUT_SCALES:
        assert apply_output_scale(streams, mixture, policy, lengths)[0, 1].abs().max() == 0


def test_separator_output_scale_option_applies():
    mixture, _ = _batch(batch=1)
    streams = PassthroughSeparator(output_scale="peak").separate(mixture * 5)
    assert torch.allclose(streams.abs().amax(-1), torch.ones(1, 2))
