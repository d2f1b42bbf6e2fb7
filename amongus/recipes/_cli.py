"""What every training and table recipe's command line does first."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Sequence


def start_recipe_run() -> None:
    """Set up a long CPU run: passive OpenMP waiting and INFO logging with timestamps."""
    # On a shared CPU, OpenMP threads that spin while waiting slow training down by 10x or more
    # when other processes hold the cores; passive waiting degrades gracefully. It must be set
    # before torch is imported (the recipes import it lazily).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces this run, for model cards and result files."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return f"python -m {module} " + shlex.join(arguments)
