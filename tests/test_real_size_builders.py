"""Real-size random-weight builders (amongus.testing.real_size): sizes and cache, cheaply.

Parameter counts are taken on the meta device (nothing allocated); only AASIST (0.3 M) is
actually written, to test the cache and the loader round trip.
"""

from __future__ import annotations

import pytest

from amongus.testing import real_size


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # published counts: sepformer-wsj02mix 25.7 M, ConvTasNet Libri2Mix 5.1 M,
        # WavLM-base and wav2vec2-base classifiers 94.6 M, AASIST 297,866 (clovaai README)
        ("sepformer-wsj02mix", 25.7e6),
        ("convtasnet-libri2mix", 5.1e6),
        ("wavlm-base", 94.6e6),
        ("wav2vec2-base", 94.6e6),
        ("aasist", 297_866),
    ],
)
def test_parameter_counts_match_the_published_models(name, expected):
    count = real_size.real_parameter_count(name)
    # the published figures are rounded to 0.1 M
    assert count == pytest.approx(expected, abs=0.05e6 if expected > 1e6 else 0), (name, count)
    assert real_size.REAL_MODELS[name].parameters_millions == pytest.approx(count / 1e6, abs=0.05)


def test_unknown_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown real-size model"):
        real_size.build_real_model("sepformer-large", tmp_path)


def test_cache_builds_once_and_loads_through_the_real_loader(tmp_path, monkeypatch):
    from amongus.pipeline import load_classifier

    monkeypatch.setenv(real_size.CACHE_ENV, str(tmp_path / "cache"))
    first = real_size.cached_real_model("aasist")
    stamp = (first / "AASIST.pth").stat().st_mtime_ns
    again = real_size.cached_real_model("aasist")
    assert again == first and (first / "AASIST.pth").stat().st_mtime_ns == stamp
    assert first.parent == tmp_path / "cache"
    classifier = load_classifier(str(first))
    assert classifier.sample_rate == 16000
    assert sum(p.numel() for p in classifier.model.parameters()) == 297_866


def test_an_interrupted_build_is_redone(tmp_path):
    folder = tmp_path / "aasist-seed0"
    folder.mkdir()
    (folder / "AASIST.pth").write_bytes(b"half written")  # no marker: not complete
    built = real_size.cached_real_model("aasist", tmp_path)
    assert built == folder
    assert (folder / "AASIST.pth").stat().st_size > 1000
