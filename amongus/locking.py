"""Exclusive ownership of an output folder while a run writes into it.

Two runs writing into the same folder corrupt each other (one's manifest, the other's audio).
:class:`FolderLock` holds an advisory ``fcntl.flock`` lock on ``<folder>/.amongus.lock`` for the
duration of a run. The kernel releases a ``flock`` when its holder dies, ``kill -9`` included, so
a lock is never stale; the file itself stays (deleting it would let a third run lock a new file
while the second still holds the old one). A second run is refused at once with
:class:`FolderBusyError`, naming the folder and the holder's pid and command.

Processes forked while a lock is held (worker pools) close their copy of the lock file, so the
lock belongs to the process that took it alone and ends with it.

On platforms without ``fcntl`` (Windows) the lock is a no-op with a warning.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from .fsutil import write_errors

logger = logging.getLogger(__name__)

LOCK_NAME = ".amongus.lock"
_HELD: weakref.WeakSet[FolderLock] = weakref.WeakSet()


class FolderBusyError(OSError):
    """Another live process holds the folder's lock; the message names folder, pid and
    command. An ``OSError`` (``errno.EBUSY``), so command-line mains print it as one line."""

    def __init__(self, folder: str | os.PathLike, holder: dict[str, Any]):
        self.folder = str(folder)
        self.holder = holder
        pid = holder.get("pid", "unknown")
        command = holder.get("command")
        since = holder.get("since")
        detail = f"pid {pid}" + (f", {command}" if command else "")
        detail += f", since {since}" if since else ""
        self.message = (
            f"{folder} is in use by another run ({detail}); wait for it to finish or choose "
            "another output folder"
        )
        super().__init__(errno.EBUSY, self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return (type(self), (self.folder, self.holder))


class FolderLock:
    """Exclusive lock on an output folder (a context manager; reentrant use is an error).

    The folder is created if needed; when the lock created it and it holds nothing but the lock
    file at release (the run failed before writing), it is removed again.

    >>> with FolderLock("runs/mix", purpose="amongus.mix"):  # doctest: +SKIP
    ...     write_everything()

    Raises:
        FolderBusyError: another live process holds the lock (on entry, never waits).
        OutputError: the folder or its lock file cannot be created.
    """

    def __init__(self, folder: str | os.PathLike, *, purpose: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.purpose = purpose
        self._fd: int | None = None
        self._created = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        if fcntl is None:  # pragma: no cover - Windows
            logger.warning("no fcntl: %s is not protected against concurrent runs", self.folder)
            return self
        self._created = not self.folder.exists()
        with write_errors(self.path):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderBusyError(self.folder, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD.add(self)
        record = {
            "pid": os.getpid(),
            "command": self.purpose or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        try:  # who holds it, for the refusal message; the lock itself is the flock
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError:
            pass
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the flock
        if self._created:  # a run that wrote nothing (it failed early) leaves nothing behind
            try:
                if [child.name for child in self.folder.iterdir()] == [LOCK_NAME]:
                    self.path.unlink()
                    self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _close_in_child() -> None:
    # A forked child shares the parent's open file description, and with it the flock: if the
    # parent died, an orphaned worker would keep the folder locked. The child drops its copy.
    for lock in list(_HELD):
        if lock._fd is not None:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
