"""Worker processes that die with their parent.

A ``ProcessPoolExecutor`` worker whose parent is killed with ``kill -9`` is orphaned: it waits
forever on a task queue that no one will fill, holding memory (and open files). Call
:func:`die_with_parent` in the pool's initializer:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` asks the kernel to kill the worker when the
  parent dies (``man 2 prctl``);
* everywhere, a daemon thread polls the parent pid once a second and exits the worker when it
  changes (the fallback for other systems, and for a parent that died before ``prctl`` ran).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval: float) -> None:
    event = threading.Event()
    while not event.wait(interval):
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent is gone: nothing will collect this worker's results


def die_with_parent(parent_pid: int | None = None, *, interval: float = WATCHDOG_SECONDS) -> None:
    """Make the calling process exit when ``parent_pid`` (default: its current parent) dies.

    Call it first thing in a worker process (a pool ``initializer``). Idempotent enough to be
    called once per worker; costs one sleeping thread.
    """
    parent_pid = os.getppid() if parent_pid is None else int(parent_pid)
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(
        target=_watch, args=(parent_pid, interval), name="die-with-parent", daemon=True
    ).start()
