"""The documentation site builds strictly and stays honest about the code.

* ``mkdocs build --strict`` passes (a warning, a broken link, a missing page or an API object that
  does not exist fails the build);
* every command-line tool in the package has its ``--help`` in docs/cli.md, and every option of
  every tool appears on the built page;
* every public module has an API reference page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="docs extra not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings", reason="docs extra not installed (pip install -e '.[docs]')")

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PACKAGE = REPO / "amongus"
CLI_MARKER = re.compile(r"^<!-- cli-help: (?P<module>[\w.]+) -->$", re.MULTILINE)
OPTION = re.compile(r"(?<![\w-])(--[a-zA-Z][\w-]*)")
ENV = {
    **os.environ,
    "COLUMNS": "100",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "NO_MKDOCS_2_WARNING": "1",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] in ("__init__", "__main__"):
        parts = parts[:-1]
    return ".".join(parts)


def command_line_modules() -> list[str]:
    """Every ``python -m`` entry point in the package: ``__main__.py`` files and modules with an
    ``if __name__ == "__main__":`` block."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        if any(
            part.startswith(("_", ".")) and part not in ("__main__.py",)
            for part in path.relative_to(PACKAGE).parts[:-1]
        ):
            continue
        if path.name == "__main__.py":
            modules.add(_module_name(path))
        elif path.name != "__init__.py" and re.search(
            r'^if __name__ == "__main__":', path.read_text(encoding="utf-8"), re.MULTILINE
        ):
            modules.add(_module_name(path))
    return sorted(modules)


def documented_cli_modules() -> list[str]:
    return sorted(set(CLI_MARKER.findall((DOCS / "cli.md").read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--clean",
            "-f",
            str(REPO / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, (
        f"mkdocs build --strict failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-6000:]}"
    )
    return site


def test_strict_build_writes_every_nav_page(built_site: Path):
    nav_pages = re.findall(
        r":\s*([\w/.-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE
    )
    assert len(nav_pages) > 20
    for page in nav_pages:
        stem = page.removesuffix(".md")
        built = stem if stem == "index" or stem.endswith("/index") else stem + "/index"
        html = built_site / f"{built}.html"
        assert html.is_file(), f"{page} was not built"


def test_every_command_line_tool_is_documented():
    found = command_line_modules()
    assert "amongus" in found and "amongus.app" in found
    missing = sorted(set(found) - set(documented_cli_modules()))
    assert not missing, f"command-line tools without a section in docs/cli.md: {missing}"


def _help(module: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, f"python -m {module} --help failed:\n{completed.stderr}"
    return completed.stdout


def test_built_cli_page_lists_every_option(built_site: Path):
    cli_html = (built_site / "cli" / "index.html").read_text(encoding="utf-8")
    modules = documented_cli_modules()
    with ThreadPoolExecutor(max_workers=3) as pool:
        helps = dict(zip(modules, pool.map(_help, modules), strict=True))
    for module, text in helps.items():
        options = set(OPTION.findall(text)) - {"--help"}
        missing = sorted(option for option in options if option not in cli_html)
        assert not missing, (
            f"options of python -m {module} missing from the built cli page: {missing}"
        )


def _public_modules() -> list[str]:
    """Top-level modules and subpackages of amongus, and the modules inside those subpackages
    that the package's own ``__init__`` does not hide (no leading underscore)."""
    modules = []
    for path in sorted(PACKAGE.iterdir()):
        if path.name.startswith(("_", ".")) or path.name == "data":
            continue
        if path.suffix == ".py":
            modules.append(f"amongus.{path.stem}")
        elif (path / "__init__.py").is_file():
            modules.append(f"amongus.{path.name}")
    return modules


def test_every_public_module_has_an_api_page():
    referenced = set()
    for page in (DOCS / "api").glob("*.md"):
        referenced |= set(
            re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.MULTILINE)
        )
    covered = {
        name
        for name in _public_modules()
        if any(ref == name or ref.startswith(name + ".") for ref in referenced)
    }
    missing = sorted(set(_public_modules()) - covered)
    assert not missing, f"public modules without an API reference (docs/api/*.md): {missing}"
