"""Writing output files safely: atomic replacement, the umask's modes, one-line errors.

Every file amongus writes goes through :func:`atomic_write` (or :func:`atomic_path` for writers
that need a file name, such as ``torch.save``):

* the data goes to a temporary file with a short random name (``.<12 hex>.part``) in the
  destination folder, is flushed and ``fsync``-ed, then renamed over the destination. A killed
  process or a full disk therefore never leaves a truncated file under the final name, and the
  temporary name never makes a legal final name too long;
* the temporary file is created with mode ``0o666`` and the kernel applies the process umask, so
  the result has the mode a plain ``open(path, "w")`` would give (``tempfile.mkstemp`` would
  give ``0o600`` whatever the umask);
* a failure of the file system (full disk, quota, read-only or forbidden folder, name too long)
  becomes an :class:`OutputError` whose message is one line naming the path and the cause,
  e.g. ``cannot write out/audio/mix-000001.flac: No space left on device``. Command-line mains
  print ``str(error)`` and exit non-zero, with no traceback.

:func:`check_writable` tries a small write in a folder up front, so a long run that could not
save its results stops before it starts.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "OutputError",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_name",
    "check_writable",
    "describe_error",
    "name_max",
    "one_line",
    "output_error",
    "write_errors",
]

#: errno values that mean "this output cannot be written here" (as opposed to a bug).
WRITE_ERRNOS = frozenset(
    code
    for code in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENAMETOOLONG,
        errno.EFBIG,
        errno.EIO,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENOENT,
    )
    if code is not None
)
TEMP_SUFFIX = ".part"
_PROBE_BYTES = 4096  # one block: enough for a full disk or quota to refuse it
# torch.save reports a failed write as a RuntimeError without errno or path; safetensors (Rust)
# as "... Os { code: 28, kind: StorageFull, ... }".
_TORCH_WRITE_FAILURE = re.compile(r"PytorchStreamWriter|unexpected pos|file write failed")
_RUST_OS_ERROR = re.compile(r"Os \{ code: (\d+)")


class OutputError(OSError):
    """An output that cannot be written; ``str(error)`` is ``cannot write PATH: CAUSE``.

    A subclass of ``OSError`` (``errno`` is set when known), so code catching ``OSError`` keeps
    working. Attributes: ``path``, ``cause``, ``errno``.
    """

    def __init__(self, path: str | os.PathLike, cause: str, code: int | None = None):
        super().__init__(code, cause)
        self.path = str(path)
        self.cause = cause

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.cause}"

    def __reduce__(self):  # picklable across worker processes despite the custom signature
        return (type(self), (self.path, self.cause, self.errno))


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing
    ancestor) accepts; 255 when it cannot be asked."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def check_name(path: str | os.PathLike) -> Path:
    """Raise :class:`OutputError` (``ENAMETOOLONG``) when ``path``'s file name is longer than
    its folder's file system allows; returns ``path``."""
    path = Path(path)
    size, limit = len(os.fsencode(path.name)), name_max(path.parent)
    if size > limit:
        raise OutputError(
            path, f"file name too long ({size} bytes, limit {limit})", errno.ENAMETOOLONG
        )
    return path


def describe_error(error: BaseException) -> str:
    """The cause of a failed write in a few words (``No space left on device``)."""
    code = getattr(error, "errno", None)
    if isinstance(error, OutputError):
        return error.cause
    if code:
        return os.strerror(code)
    match = _RUST_OS_ERROR.search(str(error))
    if match:
        return os.strerror(int(match.group(1)))
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def one_line(error: BaseException) -> str:
    """The message a command-line main prints for an error that ends a run: one line, with
    the file an ``OSError`` names (``out/x.flac: No space left on device``)."""
    if isinstance(error, OSError) and not isinstance(error, OutputError):
        if error.errno and error.filename and type(error).__str__ is OSError.__str__:
            return f"{os.fsdecode(error.filename)}: {os.strerror(error.errno)}"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def output_error(error: BaseException, path: str | os.PathLike) -> OutputError:
    """The :class:`OutputError` for ``error`` raised while writing ``path`` (the path in the
    error, when it has one, wins: it is the file that failed)."""
    if isinstance(error, OutputError):
        return error
    code = getattr(error, "errno", None)
    if not code:
        match = _RUST_OS_ERROR.search(str(error))
        code = int(match.group(1)) if match else None
    failed = getattr(error, "filename", None) or path
    cause = describe_error(error)
    if code == errno.ENAMETOOLONG:
        failed_path = Path(os.fsdecode(failed))
        cause += (
            f" ({len(os.fsencode(failed_path.name))} bytes, limit {name_max(failed_path.parent)})"
        )
    return OutputError(os.fsdecode(failed), cause, code)


def _diagnose(error: BaseException, path: Path) -> OutputError:
    """The cause of a write failure reported without errno (torch's writer): try a small write
    beside ``path``; a full disk or read-only folder refuses it too."""
    folder = path if path.is_dir() else path.parent
    try:
        check_writable(folder)
    except OutputError as probe:
        return OutputError(path, probe.cause, probe.errno)
    try:
        if shutil.disk_usage(folder).free < _PROBE_BYTES:
            return OutputError(path, os.strerror(errno.ENOSPC), errno.ENOSPC)
    except OSError:
        pass
    return OutputError(path, f"write failed ({describe_error(error)})")


@contextmanager
def write_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn file-system failures raised inside the block into :class:`OutputError`.

    Maps ``OSError`` with a file-system errno (:data:`WRITE_ERRNOS`), torch's serialization
    ``RuntimeError`` (``unexpected pos``, no errno) and safetensors' I/O errors; anything else
    passes through unchanged. ``path`` names the output when the error does not.
    """
    path = Path(path)
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        if error.errno in WRITE_ERRNOS:
            raise output_error(error, path) from error
        raise
    except Exception as error:
        text = str(error)
        if _RUST_OS_ERROR.search(text):
            raise output_error(error, path) from error
        if _TORCH_WRITE_FAILURE.search(text):
            raise _diagnose(error, path) from error
        raise


def _create_temp(folder: Path) -> tuple[int, Path]:
    """A new empty file ``.<random>.part`` in ``folder``, opened for writing, mode ``0o666``
    less the umask (applied by the kernel, as for ``open``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temporary = folder / f".{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _replaced_on_success(path: str | os.PathLike) -> Iterator[tuple[int, Path]]:
    """Yield ``(fd, temporary)``, a new file beside ``path`` opened for writing; when the block
    succeeds, rename it over ``path``. On any failure the temporary file is removed, ``path`` is
    left as it was, and file-system errors become :class:`OutputError` naming ``path``.

    The block owns ``fd`` (it closes it) and syncs the file's contents before it ends.
    """
    path = Path(path)
    temporary: Path | None = None
    with write_errors(path):
        check_name(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = _create_temp(path.parent)
        try:
            yield fd, temporary
            os.replace(temporary, path)
            temporary = None
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, the file written there
    is synced and renamed over ``path``. On any failure the temporary file is removed, ``path``
    is left as it was, and file-system errors become :class:`OutputError` naming ``path``.

    >>> with atomic_path("model.pt") as tmp:  # doctest: +SKIP
    ...     torch.save(state, tmp)
    """
    with _replaced_on_success(path) as (fd, temporary):
        os.close(fd)
        yield temporary
        _fsync_file(temporary)


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, durable: bool = True
) -> Path:
    """Call ``write(handle)`` on a binary temporary file beside ``path``, then sync it and
    rename it over ``path``. Returns ``path``.

    ``durable=False`` skips the ``fsync``: the rename is still atomic for a killed process,
    but a power cut may leave an empty file; for outputs whose readers verify a checksum.

    Raises:
        OutputError: the file system refused the write (the message names ``path``); nothing
            is left behind and an existing ``path`` is unchanged.
    """
    with _replaced_on_success(path) as (fd, _temporary):
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data), durable=durable)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write_bytes(path, text.encode(encoding))


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it (a one-block file,
    synced, then removed); returns the folder.

    Call it before a long run whose results go there, so a full disk, a quota or a read-only
    folder stops the run at once rather than after it.

    Raises:
        OutputError: naming ``folder`` and the cause.
    """
    folder = Path(folder)
    with write_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = _create_temp(folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"\0" * _PROBE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            temporary.unlink(missing_ok=True)
    return folder
