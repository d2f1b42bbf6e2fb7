"""The install is reproducible: the torch family is pinned exactly, locked, and checked."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _resolve_module():
    spec = importlib.util.spec_from_file_location("resolve", ROOT / "scripts" / "resolve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*==\s*([^,;\s]+)", requirement.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_torch_family_pinned_exactly_and_locked_at_the_same_pair():
    resolve = _resolve_module()
    pins = _pyproject_pins()
    locked = resolve.read_lock()
    for name in resolve.TORCH_FAMILY:
        assert name in pins, f"pyproject.toml must pin {name} exactly (==X.Y.Z, no wildcard)"
        assert "*" not in pins[name], f"{name} pin {pins[name]!r} admits new builds"
        assert locked[name] == pins[name], f"lock has {name}=={locked[name]}, pyproject {pins[name]}"


def test_check_flags_a_torchaudio_release_that_breaks_the_pair():
    resolve = _resolve_module()
    locked = {"torch": "2.11.0", "torchaudio": "2.11.0", "numpy": "2.4.6"}
    assert resolve.torch_family_clashes(locked, dict(locked)) == []
    broken = dict(locked, torchaudio="2.11.1")
    (clash,) = resolve.torch_family_clashes(locked, broken)
    assert "torchaudio" in clash and "2.11.1" in clash
    # other packages drifting does not fail the check; a torch family package missing does
    assert resolve.torch_family_clashes(locked, dict(locked, numpy="3.0.0")) == []
    assert resolve.torch_family_clashes(locked, {"torch": "2.11.0"})


def test_installed_torch_family_is_the_locked_pair():
    locked = _resolve_module().read_lock()
    for name in ("torch", "torchaudio"):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - broken env
            pytest.fail(f"{name} is not installed")
        # local build tags (+cpu, +cu130) are the same release
        assert installed.split("+")[0] == locked[name]
