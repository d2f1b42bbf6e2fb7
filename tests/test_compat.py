"""A torchaudio built for another torch gives a clear ImportError; the environment report.

The clash is simulated the way it happens in the wild: torchaudio 2.11.1 installed next to
torch 2.11.0, whose ``import torchaudio`` fails with ``OSError: libtorchaudio.so: undefined
symbol ...`` inside whatever imports it first (SpeechBrain, Asteroid, the resampler).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import io
import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from amongus import _compat  # noqa: E402
from amongus._compat import TorchFamilyError  # noqa: E402

LINKER_ERROR = (
    "/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: undefined symbol: "
    "torch_exception_get_what_without_backtrace"
)
# torchaudio and the libraries that import it at import time (dropped from sys.modules so that
# they import it again, as in a fresh process)
IMPORTERS_OF_TORCHAUDIO = (
    "torchaudio",
    "speechbrain",
    "asteroid",
    "asteroid_filterbanks",
    "torch_stoi",
)
PINS = {"torch": "2.11.0", "torchaudio": "2.11.0"}
FIX = 'pip install "torch==2.11.0" "torchaudio==2.11.0"'


class _BrokenTorchaudio(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``torchaudio`` first and fails to load it like a mismatched binary does."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torchaudio" or fullname.startswith("torchaudio."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise OSError(LINKER_ERROR)


@pytest.fixture
def broken_torchaudio(monkeypatch):
    """torchaudio 2.11.1 "installed" with torch 2.11.0, pins torch==torchaudio==2.11.0."""
    pytest.importorskip("torch")
    for name in list(sys.modules):
        if name.split(".")[0] in IMPORTERS_OF_TORCHAUDIO:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchaudio(), *sys.meta_path])
    monkeypatch.setattr(_compat, "_torchaudio_checked", False)
    real_version = _compat.installed_version
    fake = {"torch": "2.11.0", "torchaudio": "2.11.1"}
    monkeypatch.setattr(
        _compat, "installed_version", lambda name: fake.get(name) or real_version(name)
    )
    monkeypatch.setattr(_compat, "pinned_versions", lambda: dict(PINS))
    monkeypatch.setattr(sys.modules["torch"], "__version__", "2.11.0")


def _assert_explains_the_clash(error: BaseException) -> None:
    assert isinstance(error, ImportError)
    text = str(error)
    assert "torchaudio 2.11.1" in text and "torch 2.11.0" in text
    assert FIX in text
    assert "undefined symbol" in text  # the original cause is kept


@pytest.fixture(scope="module")
def tiny_separators(tmp_path_factory):
    """Tiny ConvTasNet and SepFormer checkpoints, built while torchaudio still loads (module
    scope: pytest builds them before the function-scoped ``broken_torchaudio``)."""
    pytest.importorskip("asteroid")
    pytest.importorskip("speechbrain")
    from amongus.testing.separators import build_tiny_convtasnet, build_tiny_sepformer

    root = tmp_path_factory.mktemp("separators")
    return {
        "convtasnet": build_tiny_convtasnet(root / "convtasnet", sample_rate=8000),
        "sepformer": build_tiny_sepformer(root / "sepformer"),
    }


def test_import_torchaudio_explains_a_version_clash(broken_torchaudio):
    with pytest.raises(TorchFamilyError) as caught:
        _compat.import_torchaudio()
    _assert_explains_the_clash(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.parametrize("kind", ["convtasnet", "sepformer"])
def test_loading_a_separator_explains_the_clash(kind, tiny_separators, broken_torchaudio):
    # Without the check the OSError escapes from deep inside Asteroid's/SpeechBrain's imports.
    source = tiny_separators[kind]
    from amongus.separation import load_separator

    with pytest.raises(ImportError) as caught:
        load_separator(str(source))
    _assert_explains_the_clash(caught.value)
    with pytest.raises(ImportError) as caught:
        load_separator({"name": kind, "source": str(source)})
    _assert_explains_the_clash(caught.value)


def test_resampling_tensors_explains_the_clash(broken_torchaudio):
    import torch

    from amongus.audio import resample

    with pytest.raises(ImportError) as caught:
        resample(torch.zeros(1, 800), 8001, 16000)  # a rate pair no other test caches
    _assert_explains_the_clash(caught.value)


def test_command_line_reports_the_clash_cleanly(
    tiny_separators, broken_torchaudio, tmp_path, capsys
):
    from amongus.evaluate import main

    manifest = tmp_path / "mixtures.jsonl"
    manifest.write_text("")
    separator = str(tiny_separators["convtasnet"])
    code = main([str(manifest), "--separator", separator, "--classifier", "x"])
    assert code == 2
    err = capsys.readouterr().err
    assert FIX in err and "torchaudio 2.11.1" in err


def test_pins_are_read_from_the_package_requirements(monkeypatch):
    requirements = [
        "torch==2.11.0",
        "torchaudio==2.11.0",
        "numpy>=1.24",
        'pytest>=7; extra == "test"',
    ]
    monkeypatch.setattr(_compat.importlib.metadata, "requires", lambda name: requirements)
    assert _compat.pinned_versions() == PINS
    assert _compat.install_command() == FIX


def test_without_pins_the_fix_matches_torchaudio_to_torch(monkeypatch):
    monkeypatch.setattr(_compat, "pinned_versions", dict)
    versions = {"torch": "2.9.1+cpu", "torchaudio": "2.11.1"}
    monkeypatch.setattr(_compat, "installed_version", versions.get)
    assert _compat.install_command() == 'pip install "torch==2.9.1" "torchaudio==2.9.1"'


def test_a_missing_torchaudio_says_so(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # import fails: ModuleNotFoundError
    monkeypatch.setattr(_compat, "_torchaudio_checked", False)
    monkeypatch.setattr(
        _compat, "installed_version", lambda name: None if name == "torchaudio" else "2.11.0"
    )
    monkeypatch.setattr(_compat, "pinned_versions", lambda: dict(PINS))
    with pytest.raises(TorchFamilyError, match="torchaudio is not installed") as caught:
        _compat.check_torch_family()
    assert FIX in str(caught.value)


# ---------------------------------------------------------------------------- the report
REPORTED = (
    "python",
    "platform",
    "amongus",
    "torch",
    "cuda available",
    "threads",
    "torchaudio",
    "speechbrain",
    "asteroid",
    "transformers",
    "numpy",
    "scipy",
    "soundfile",
    "libsndfile",
    "torchaudio loads",
)


def test_show_versions_lists_what_a_bug_report_needs():
    import amongus

    out = io.StringIO()
    amongus.show_versions(file=out)
    text = out.getvalue()
    for name in REPORTED:
        assert f"{name}:" in text, name
    report = _compat.environment_report()
    assert report["packages"]["numpy"] == __import__("numpy").__version__
    assert report["checks"]["torchaudio loads"] == "yes"


def test_show_versions_survives_missing_and_broken_packages(monkeypatch, broken_torchaudio):
    real_version = _compat.installed_version
    monkeypatch.setattr(
        _compat,
        "installed_version",
        lambda name: None if name == "asteroid" else real_version(name),
    )
    monkeypatch.setitem(sys.modules, "soundfile", None)  # not importable
    out = io.StringIO()
    _compat.show_versions(file=out)
    text = out.getvalue()
    assert "asteroid: not installed" in text
    assert "torchaudio loads: no: torchaudio 2.11.1 cannot be loaded with torch 2.11.0" in text
    assert "libsndfile: not loadable" in text


def test_show_versions_survives_a_torch_that_does_not_import(monkeypatch):
    for name in list(sys.modules):
        if name.split(".")[0] in IMPORTERS_OF_TORCHAUDIO:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(_compat, "_torchaudio_checked", False)
    report = _compat.environment_report()
    assert "import error" in report["torch"]
    assert report["checks"]["torchaudio loads"].startswith("no: ")


@pytest.mark.parametrize("module", ["amongus", "amongus.evaluate", "amongus.train"])
def test_version_flags(module):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    short = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, env=env
    )
    import amongus

    assert short.returncode == 0, short.stderr
    assert short.stdout.strip() == f"amongus {amongus.__version__}"
    verbose = subprocess.run(
        [sys.executable, "-m", module, "--version", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert verbose.returncode == 0, verbose.stderr
    for name in REPORTED:
        assert f"{name}:" in verbose.stdout, name
