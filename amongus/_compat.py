"""The torch family check and the environment report.

torch and torchaudio are built for each other: a torchaudio wheel loads only with the torch it was
compiled against. When the pair does not match, ``import torchaudio`` fails with an ``OSError``
from the dynamic linker (``libtorchaudio.so: undefined symbol ...``), raised from deep inside
whatever imported it first (SpeechBrain, Asteroid). :func:`import_torchaudio` and
:func:`check_torch_family` turn that into a :class:`TorchFamilyError` that names both installed
versions and the ``pip install`` command of the pair this project pins. Every place in amongus
that is the first to import torchaudio, SpeechBrain or Asteroid calls one of them.

:func:`show_versions` (``python -m amongus --version --verbose``) prints what a bug report
needs, in the spirit of ``sklearn.show_versions()``; it never raises, whatever is missing or
broken.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
from typing import Any, TextIO

#: The packages that must be built for each other.
TORCH_FAMILY = ("torch", "torchaudio")

#: The packages listed by :func:`show_versions`, in order.
REPORTED_PACKAGES = (
    "amongus",
    "torch",
    "torchaudio",
    "speechbrain",
    "asteroid",
    "transformers",
    "numpy",
    "scipy",
    "soundfile",
)

_EXACT_PIN = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.-]+)\s*===?\s*(?P<version>[^\s;,]+)\s*(;.*)?$")

_torchaudio_checked = False


class TorchFamilyError(ImportError):
    """torchaudio cannot be imported with the installed torch (or is not installed).

    The message names the installed versions and the ``pip install`` command that fixes it.
    """


def installed_version(name: str) -> str | None:
    """The version of an installed distribution from its metadata (nothing is imported)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - broken metadata must not break a diagnosis
        return None


def pinned_versions() -> dict[str, str]:
    """The exact ``name==version`` pins of the torch family in amongus's own requirements.

    Read from the installed package metadata; empty when amongus is not installed (e.g. run from
    a source tree) or when the requirements are not exact pins.
    """
    try:
        requirements = importlib.metadata.requires("amongus") or []
    except Exception:  # noqa: BLE001 - not installed, or broken metadata
        return {}
    pins = {}
    for requirement in requirements:
        match = _EXACT_PIN.match(requirement)
        if match and match["name"].lower() in TORCH_FAMILY and "extra ==" not in requirement:
            pins[match["name"].lower()] = match["version"]
    return pins


def _public(version: str) -> str:
    """``2.11.0+cpu`` -> ``2.11.0`` (pip cannot install a local version from the index)."""
    return version.split("+", 1)[0]


def install_command() -> str:
    """``pip install "torch==X" "torchaudio==Y"``: the pinned pair, or one matching torch."""
    pins = pinned_versions()
    if len(pins) == len(TORCH_FAMILY):
        torch_version, torchaudio_version = pins["torch"], pins["torchaudio"]
    else:
        # Without pins, torchaudio releases carry the version of the torch they were built for.
        torch_version = _public(installed_version("torch") or "")
        torchaudio_version = torch_version
        if not torch_version:
            return "pip install torch torchaudio  # from the same PyTorch release"
    return f'pip install "torch=={torch_version}" "torchaudio=={torchaudio_version}"'


def _torch_version() -> str:
    module = sys.modules.get("torch")
    version = getattr(module, "__version__", None) if module is not None else None
    return str(version or installed_version("torch") or "not installed")


def clash_message(error: BaseException | None = None) -> str:
    """The explanation of a torch/torchaudio clash: versions, the error and the fix."""
    torchaudio_version = installed_version("torchaudio")
    cause = ""
    if error is not None:
        # torchaudio wraps the linker's error ("undefined symbol ...") in its own OSError
        root = error
        while root.__cause__ is not None:
            root = root.__cause__
        lines = str(root).strip().splitlines()
        cause = f" ({type(root).__name__}: {lines[0][:300] if lines else ''})"
    if torchaudio_version is None:
        head = f"torchaudio is not installed (torch {_torch_version()})"
    else:
        head = (
            f"torchaudio {torchaudio_version} cannot be loaded with torch {_torch_version()}"
            f"{cause}. torch and torchaudio must come from the same PyTorch release"
        )
    pins = pinned_versions()
    tested = (
        f"; amongus is tested with torch {pins['torch']} and torchaudio {pins['torchaudio']}"
        if len(pins) == len(TORCH_FAMILY)
        else ""
    )
    # one line: the command-line tools print only the first line of an error
    return (
        f"{head}{tested}. Fix the environment with: {install_command()} "
        "(`python -m amongus --version --verbose` prints the installed versions)"
    )


def import_torchaudio():
    """Import and return torchaudio, or raise :class:`TorchFamilyError` explaining the clash.

    Raises:
        TorchFamilyError: torchaudio is missing or does not load with the installed torch
            (``OSError: libtorchaudio.so: undefined symbol ...`` and the like); the message
            names both versions and the ``pip install`` command of the tested pair.
    """
    global _torchaudio_checked
    try:
        import torchaudio
    except (OSError, ImportError, RuntimeError, AttributeError) as error:
        # a missing library, an undefined symbol or a half-initialised module: all mean that
        # this torchaudio does not work with this torch
        raise TorchFamilyError(clash_message(error)) from error
    _torchaudio_checked = True
    return torchaudio


def check_torch_family() -> None:
    """Make sure torchaudio loads with the installed torch before SpeechBrain or Asteroid is
    imported (both import torchaudio first thing, and its failure there is an opaque
    ``OSError``). Cheap after the first success.

    Raises:
        TorchFamilyError: see :func:`import_torchaudio`.
    """
    if not _torchaudio_checked:
        import_torchaudio()


# ---------------------------------------------------------------------------- the report
def _torch_details() -> dict[str, Any]:
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - the report shows what is broken
        return {"import error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    details: dict[str, Any] = {"version": getattr(torch, "__version__", "?")}
    try:
        details["threads"] = torch.get_num_threads()
        details["cuda available"] = bool(torch.cuda.is_available())
        details["cuda build"] = getattr(torch.version, "cuda", None)
        if details["cuda available"]:
            details["devices"] = [
                torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())
            ]
    except Exception as error:  # noqa: BLE001
        details["error"] = f"{type(error).__name__}: {error}"
    return details


def _torchaudio_loads() -> str:
    try:
        import_torchaudio()
    except Exception as error:  # noqa: BLE001
        return "no: " + str(error).splitlines()[0]
    return "yes"


def _libsndfile_version() -> str:
    try:
        import soundfile
    except Exception as error:  # noqa: BLE001
        return f"not loadable ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    return str(getattr(soundfile, "__libsndfile_version__", "?"))


def environment_report() -> dict[str, dict[str, Any]]:
    """What a bug report needs: the system, the package versions and what loads.

    Returns:
        ``{"system": {...}, "packages": {name: version or "not installed"}, "torch": {...},
        "checks": {...}}``. Package versions come from the installed metadata, so a package
        that is broken still shows its version; nothing here raises.
    """
    from . import __version__

    packages = {name: installed_version(name) or "not installed" for name in REPORTED_PACKAGES}
    if packages["amongus"] == "not installed":
        packages["amongus"] = f"{__version__} (source tree, not installed)"
    return {
        "system": {
            "python": sys.version.replace("\n", " "),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "packages": packages,
        "torch": _torch_details(),
        "checks": {
            "torchaudio loads": _torchaudio_loads(),
            "libsndfile": _libsndfile_version(),
            "pinned torch family": ", ".join(f"{k}=={v}" for k, v in pinned_versions().items())
            or "none found",
        },
    }


def format_report(report: dict[str, dict[str, Any]]) -> str:
    """The report of :func:`environment_report` as aligned text sections."""
    lines = []
    for section, values in report.items():
        lines.append(f"{section}:")
        width = max((len(str(key)) for key in values), default=0)
        for key, value in values.items():
            lines.append(f"    {str(key):>{width}}: {value}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def show_versions(file: TextIO | None = None) -> None:
    """Print the environment report for bug reports (like ``sklearn.show_versions()``).

    Lists python, the platform, amongus, torch (CUDA availability, threads), torchaudio,
    speechbrain, asteroid, transformers, numpy, scipy, soundfile and libsndfile, and whether
    torchaudio loads with the installed torch. Never raises on a missing or broken package.
    Same output as ``python -m amongus --version --verbose``.

    Args:
        file: where to print (default: standard output).
    """
    print(format_report(environment_report()), end="", file=file or sys.stdout)
