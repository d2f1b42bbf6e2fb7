"""``StreamCache``: separated streams on disk, so each mixture is separated once.

Layout::

    <root>/<namespace>/info.json               separator identity, rates, dtype (the key)
    <root>/<namespace>/manifest.jsonl          one line per entry (rewritten by write_manifest)
    <root>/<namespace>/streams/<name>.npy      [S, T] streams at the stream rate
    <root>/<namespace>/streams/<name>.json     the entry: labels, assignment, mixture fingerprint

The *namespace* is a hash of the separator identity (model + weights hash + rate), the
separator's working rate, the rate the streams are stored at (the classifier's) and the dtype:
change any of them and the cache misses. Within a namespace an entry is keyed by mixture id and
is valid only while the mixture file is unchanged (same size and mtime, or else the same SHA-1 of
its content), so a re-mixed file is separated again. Every file is written to a temporary name
and renamed, and the ``.json`` sidecar is written last, so a killed process never leaves an entry
that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    _atomic_write_bytes(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def file_sha1(path: str | os.PathLike, *, block: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CacheEntry:
    """One cached mixture: where its streams are and what they are.

    ``source_labels`` are the reference sources' labels in mixture order; ``permutation[i]``
    is the reference assigned to stream ``i`` by signal assignment (SI-SDR, best permutation),
    ``stream_labels[i] = source_labels[permutation[i]]``, ``si_sdr[i]`` the SI-SDR (dB) of
    stream ``i`` against its reference. ``permutation`` is ``None`` when the mixture had no
    references to compare with.
    """

    mixture_id: str
    file: str
    n_streams: int
    num_samples: int
    sample_rate: int
    dtype: str
    source_labels: list[str]
    permutation: list[int] | None
    stream_labels: list[str] | None
    si_sdr: list[float] | None
    mixture_label: str
    fingerprint: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheEntry:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class StreamCache:
    """Separated streams cached on disk, keyed by mixture and separator identity and rates.

    Args:
        root: cache folder (shared between runs and epochs).
        separator_identity: ``separator.identity`` (model, weights hash, rate).
        separator_rate: the rate the separator ran at (``None``: the mixture's own rate).
        stream_rate: the rate streams are stored at (the classifier's ``sample_rate``).
        dtype: ``"float16"`` (default, half the disk) or ``"float32"``.

    Example:
        >>> cache = StreamCache("cache", separator_identity=sep.identity,  # doctest: +SKIP
        ...                     separator_rate=sep.sample_rate, stream_rate=16000)
        >>> entry = cache.lookup(mixture) or cache.put(mixture, streams, source_labels=[...])
        >>> cache.load(entry).shape
        (2, 64000)
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        separator_identity: str,
        separator_rate: int | None,
        stream_rate: int,
        dtype: str = "float16",
    ):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"StreamCache: dtype must be float16 or float32, got {dtype!r}")
        if not separator_identity:
            raise ValueError("StreamCache: empty separator identity")
        self.root = Path(root)
        self.key = {
            "format": CACHE_FORMAT_VERSION,
            "separator_identity": str(separator_identity),
            "separator_rate": None if separator_rate is None else int(separator_rate),
            "stream_rate": int(stream_rate),
            "dtype": dtype,
        }
        self.stream_rate = int(stream_rate)
        self.dtype = dtype
        digest = hashlib.sha1(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:16]
        self.directory = self.root / digest
        self.streams_dir = self.directory / "streams"
        self.hits = 0
        self.misses = 0
        self._entries: dict[str, CacheEntry] = {}
        self.streams_dir.mkdir(parents=True, exist_ok=True)
        info = self.directory / "info.json"
        if not info.exists():
            atomic_write_text(info, json.dumps(self.key, indent=2, sort_keys=True) + "\n")

    # --- naming and fingerprints -----------------------------------------------------------------
    @staticmethod
    def entry_name(mixture_id: str) -> str:
        """A file-system-safe, collision-free name for a mixture id."""
        short = hashlib.sha1(mixture_id.encode()).hexdigest()[:10]
        return f"{_SAFE.sub('_', mixture_id)[:80]}-{short}"

    @staticmethod
    def fingerprint(path: str | os.PathLike, previous: dict[str, Any] | None = None) -> dict:
        """Size, mtime and SHA-1 of a mixture file; the hash is reused when size+mtime match."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as error:
            raise ValueError(f"{path}: mixture file cannot be read ({error})") from error
        current = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if (
            previous
            and previous.get("size") == current["size"]
            and previous.get("mtime_ns") == current["mtime_ns"]
            and previous.get("sha1")
        ):
            return {**current, "sha1": previous["sha1"]}
        return {**current, "sha1": file_sha1(path)}

    def _paths(self, mixture_id: str) -> tuple[Path, Path]:
        name = self.entry_name(mixture_id)
        return self.streams_dir / f"{name}.npy", self.streams_dir / f"{name}.json"

    # --- lookup / put / load ---------------------------------------------------------------------
    def lookup(self, mixture) -> CacheEntry | None:
        """The valid entry for a ``Mixture`` (same id, unchanged file), or ``None``."""
        array_path, meta_path = self._paths(mixture.mixture_id)
        if not (meta_path.exists() and array_path.exists()):
            self.misses += 1
            return None
        try:
            entry = CacheEntry.from_dict(json.loads(meta_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            logger.warning("%s: unreadable cache entry, separating again (%s)", meta_path, error)
            self.misses += 1
            return None
        current = self.fingerprint(mixture.path, entry.fingerprint)
        if current["sha1"] != entry.fingerprint.get("sha1"):
            logger.info("%s: mixture file changed, separating again", mixture.path)
            self.misses += 1
            return None
        self.hits += 1
        self._entries[entry.mixture_id] = entry
        return entry

    def put(
        self,
        mixture,
        streams: np.ndarray,
        *,
        permutation: list[int] | tuple[int, ...] | None = None,
        si_sdr: list[float] | np.ndarray | None = None,
        fingerprint: dict[str, Any] | None = None,
    ) -> CacheEntry:
        """Store a mixture's streams (``[S, T]`` at ``stream_rate``) with its assignment.

        Shape: ``streams [S, T]``.
        """
        streams = np.asarray(streams)
        if streams.ndim != 2 or streams.shape[1] == 0:
            raise ValueError(
                f"{mixture.mixture_id}: expected streams of shape [S, T], got {streams.shape}"
            )
        if not np.all(np.isfinite(streams)):
            raise ValueError(f"{mixture.mixture_id}: separated streams contain NaN or inf")
        source_labels = list(mixture.source_labels)
        stream_labels = None
        if permutation is not None:
            permutation = [int(index) for index in permutation]
            if len(permutation) != streams.shape[0]:
                raise ValueError(
                    f"{mixture.mixture_id}: permutation {permutation} for {streams.shape[0]} streams"
                )
            stream_labels = [source_labels[index] for index in permutation]
        array_path, meta_path = self._paths(mixture.mixture_id)
        data = streams.astype(self.dtype, copy=False)
        if self.dtype == "float16" and not np.all(np.isfinite(data)):
            raise ValueError(f"{mixture.mixture_id}: streams overflow float16; use float32")
        entry = CacheEntry(
            mixture_id=mixture.mixture_id,
            file=array_path.name,
            n_streams=int(streams.shape[0]),
            num_samples=int(streams.shape[1]),
            sample_rate=self.stream_rate,
            dtype=self.dtype,
            source_labels=source_labels,
            permutation=permutation,
            stream_labels=stream_labels,
            si_sdr=None if si_sdr is None else [float(value) for value in si_sdr],
            mixture_label=mixture.label,
            fingerprint=fingerprint or self.fingerprint(mixture.path),
        )
        _atomic_write_bytes(array_path, lambda handle: np.save(handle, data))
        atomic_write_text(meta_path, json.dumps(entry.to_dict(), sort_keys=True) + "\n")
        self._entries[entry.mixture_id] = entry
        return entry

    def load(self, entry: CacheEntry | str, *, mmap: bool = True) -> np.ndarray:
        """The streams of an entry, ``[S, T]`` in the cache dtype (memory-mapped by default)."""
        name = entry.file if isinstance(entry, CacheEntry) else self._paths(entry)[0].name
        path = self.streams_dir / name
        try:
            return np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot read cached streams ({error})") from error

    def get(self, mixture_id: str) -> CacheEntry:
        """An entry seen by ``lookup``/``put`` in this process, else read from its sidecar."""
        if mixture_id not in self._entries:
            meta_path = self._paths(mixture_id)[1]
            if not meta_path.exists():
                raise KeyError(f"{mixture_id}: not in the stream cache {self.directory}")
            data = json.loads(meta_path.read_text(encoding="utf-8"))
            self._entries[mixture_id] = CacheEntry.from_dict(data)
        return self._entries[mixture_id]

    # --- manifest --------------------------------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """Every complete entry on disk (sidecars), sorted by mixture id."""
        found = []
        for meta_path in sorted(self.streams_dir.glob("*.json")):
            try:
                found.append(CacheEntry.from_dict(json.loads(meta_path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                logger.warning("%s: unreadable cache entry skipped", meta_path)
        return sorted(found, key=lambda entry: entry.mixture_id)

    def write_manifest(self) -> Path:
        """Rewrite ``manifest.jsonl`` (one line per entry) atomically; returns its path."""
        lines = [json.dumps(entry.to_dict(), sort_keys=True) for entry in self.entries()]
        return atomic_write_text(
            self.directory / "manifest.jsonl", "".join(line + "\n" for line in lines)
        )

    def __repr__(self) -> str:
        return f"StreamCache({self.directory}, {self.key['separator_identity']!r})"
