"""Resolve the project's requirements afresh and compare or record the result.

``python scripts/resolve.py lock``  writes requirements/constraints.txt (the tested lock)
``python scripts/resolve.py check`` fails when a fresh resolution no longer gives the locked
                                    torch family (torch, torchaudio): a registry release that would
                                    break new installs fails CI instead of users.

Both run ``pip install --dry-run --ignore-installed --report`` for ``.[EXTRAS]`` in a new virtual
environment, with no cache and without the lock, which is what a new user's pip does. Only the
standard library is used: this runs before any environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "constraints.txt"
EXTRAS = "corpus,train,app,docs,test"
# Binary-coupled packages: a mismatch here fails at import (libtorchaudio.so: undefined symbol)
TORCH_FAMILY = ("torch", "torchaudio")
HEADER = """\
# The tested resolution of amongus[{extras}]: scripts/setup.sh passes it to pip as constraints.
# Regenerate (after changing pyproject.toml, then run the tests): python scripts/resolve.py lock
# CI checks that a fresh resolution still gives the locked torch family: python scripts/resolve.py check
"""


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def fresh_resolution(extras: str = EXTRAS) -> dict[str, str]:
    """``{package: version}`` that pip would install for ``.[extras]`` in a new environment."""
    with tempfile.TemporaryDirectory(prefix="amongus-resolve-") as scratch:
        env_dir = Path(scratch) / "venv"
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        report = Path(scratch) / "report.json"
        environment = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
        command = [
            str(python), "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--no-cache-dir", "--report", str(report), f"{ROOT}[{extras}]",
        ]  # fmt: skip
        subprocess.run(command, check=True, env=environment, cwd=scratch)
        data = json.loads(report.read_text(encoding="utf-8"))
    resolved = {}
    for item in data["install"]:
        name = _canonical(item["metadata"]["name"])
        if name != "amongus":
            resolved[name] = item["metadata"]["version"]
    return resolved


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_canonical(name)] = version.strip()
    return pins


def lock(extras: str) -> int:
    resolved = fresh_resolution(extras)
    lines = [HEADER.format(extras=extras)]
    lines += [f"{name}=={version}" for name, version in sorted(resolved.items())]
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    LOCK.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {LOCK.relative_to(ROOT)}: {len(resolved)} packages")
    return 0


def torch_family_clashes(locked: dict[str, str], resolved: dict[str, str]) -> list[str]:
    """One line per torch-family package whose fresh resolution differs from the lock."""
    return [
        f"{name}: locked {locked.get(name, 'absent')}, a fresh resolution gives "
        f"{resolved.get(name, 'absent')}"
        for name in TORCH_FAMILY
        if locked.get(name) is None or locked.get(name) != resolved.get(name)
    ]


def check(extras: str) -> int:
    locked = read_lock()
    resolved = fresh_resolution(extras)
    clashes = torch_family_clashes(locked, resolved)
    drift = sorted(
        name for name in resolved.keys() & locked.keys() if resolved[name] != locked[name]
    )
    if drift:
        print(f"note: {len(drift)} other packages resolve to newer/other versions than the lock "
              f"(installs use the lock): {', '.join(drift[:20])}")  # fmt: skip
    if clashes:
        print("FAIL: the torch family of a fresh install differs from the tested pair:")
        print("\n".join(f"  {line}" for line in clashes))
        print("Pin torch and torchaudio exactly in pyproject.toml, then: python scripts/resolve.py lock")
        return 1
    pair = ", ".join(f"{name}=={locked[name]}" for name in TORCH_FAMILY)
    print(f"ok: a fresh resolution gives the locked pair ({pair})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["lock", "check"])
    parser.add_argument("--extras", default=EXTRAS)
    args = parser.parse_args(argv)
    return lock(args.extras) if args.action == "lock" else check(args.extras)


if __name__ == "__main__":
    sys.exit(main())
