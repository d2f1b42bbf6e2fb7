"""MkDocs hook: put each command-line tool's real ``--help`` into the docs at build time.

A page line ``<!-- cli-help: amongus.mix -->`` is replaced by the output of
``python -m amongus.mix --help`` (run with the interpreter that runs MkDocs, from the repository
root), so docs/cli.md can never drift from the parsers. A tool whose ``--help`` fails stops the
build: the docs must not describe a command that does not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- cli-help: (?P<module>[\w.]+) -->$", re.MULTILINE)
REPO_ROOT = Path(__file__).resolve().parents[2]
_CACHE: dict[str, str] = {}


def cli_help(module: str) -> str:
    """The ``--help`` text of ``python -m <module>``, at a fixed terminal width."""
    if module not in _CACHE:
        env = {
            **os.environ,
            "COLUMNS": "100",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
        }
        completed = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if completed.returncode != 0:
            raise PluginError(
                f"`python -m {module} --help` failed (exit {completed.returncode}):\n"
                f"{completed.stderr[-2000:]}"
            )
        _CACHE[module] = completed.stdout.rstrip()
    return _CACHE[module]


def on_pre_build(config, **kwargs) -> None:
    # Run every tool's --help once, in parallel, before the pages are rendered.
    docs_dir = Path(config["docs_dir"])
    modules = sorted(
        {
            match["module"]
            for page in docs_dir.rglob("*.md")
            for match in MARKER.finditer(page.read_text(encoding="utf-8"))
        }
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(cli_help, modules))


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        module = match["module"]
        return f"```text\n$ python -m {module} --help\n{cli_help(module)}\n```"

    return MARKER.sub(replace, markdown)
