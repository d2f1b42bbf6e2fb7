"""``StreamCache``: separated streams on disk, so each mixture is separated once.

Layout::

    <root>/<namespace>/info.json                 the namespace's key (see below)
    <root>/<namespace>/manifest.jsonl            one line per entry (rewritten by write_manifest)
    <root>/<namespace>/streams/<name>.npy        [S, T] streams at the stream rate
    <root>/<namespace>/streams/<name>.json       the entry: labels, assignment, fingerprint
    <root>/<namespace>/streams/<name>.skip.json  a mixture refused by amongus.validation

The *namespace* is a hash of the separator identity (model + weights hash + rate), the
separator's working rate, the rate the streams are stored at (the classifier's), the dtype, the
chunk length and the input-validation policy (:func:`amongus.validation.policy`): change any of
them and the cache misses.

Within a namespace an entry is keyed by **what is in the mixture file** (the SHA-256 of its
bytes) together with its id and its record (sources, labels, offsets, gains, rate, length; not
its path): ``<name>`` holds a hash of the three. Two manifests that reuse a mixture id for
different audio (a train and a validation set, a re-mixed corpus) therefore get separate
entries, and a changed file is separated again. The file is hashed on every lookup (once per
process), not trusted from its size and mtime. Every file is written to a temporary name and
renamed, and the ``.json`` sidecar is written last, so a killed process never leaves an entry
that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fsutil import atomic_write
from ..fsutil import atomic_write_text as fsutil_atomic_write_text

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _atomic_write_bytes(path: Path, write) -> None:
    """``write(handle)`` into ``path`` atomically (:func:`amongus.fsutil.atomic_write`: the
    umask's mode, ``OutputError`` naming the file when the file system refuses)."""
    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to a temporary file beside ``path``, then rename it over ``path``."""
    return fsutil_atomic_write_text(path, text)


_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> SHA-256, this process only


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, computed once per process for an unchanged file.

    Raises:
        ValueError: the file cannot be read (names it).
    """
    from ..validation import file_digest

    try:
        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key not in _DIGESTS:
            _DIGESTS[key] = file_digest(path)
    except OSError as error:
        raise ValueError(f"{path}: mixture file cannot be read ({error})") from error
    return _DIGESTS[key]


def record_digest(mixture) -> str:
    """SHA-256 of a mixture record without its paths (where the files live is not content)."""
    data = mixture.to_dict()
    data.pop("path", None)
    data["sources"] = [
        {key: value for key, value in source.items() if key != "path"}
        for source in data.get("sources", [])
    ]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class CacheEntry:
    """One cached mixture: where its streams are and what they are.

    ``source_labels`` are the reference sources' labels in mixture order; ``permutation[i]``
    is the reference assigned to stream ``i`` by signal assignment (SI-SDR, best permutation),
    ``stream_labels[i] = source_labels[permutation[i]]``, ``si_sdr[i]`` the SI-SDR (dB) of
    stream ``i`` against its reference. ``permutation`` is ``None`` when the mixture had no
    references to compare with. ``fingerprint`` holds ``sha256`` (the mixture file's bytes) and
    ``record`` (its record's digest): the entry's key.
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
    """Separated streams cached on disk, keyed by the mixture's content and record, the
    separator identity and the rates.

    Args:
        root: cache folder (shared between runs and epochs).
        separator_identity: ``separator.identity`` (model, weights hash, rate).
        separator_rate: the rate the separator ran at (``None``: the mixture's own rate).
        stream_rate: the rate streams are stored at (the classifier's ``sample_rate``).
        dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        chunk_seconds: the chunk length the streams were separated with (``None``: whole).

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
        chunk_seconds: float | None = None,
    ):
        from ..validation import policy_digest

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
            "chunk_seconds": None if chunk_seconds is None else float(chunk_seconds),
            "validation_policy": policy_digest(),
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
    def entry_name(mixture_id: str, fingerprint: dict[str, Any]) -> str:
        """A file-system-safe name, unique per (id, file content, record)."""
        key = json.dumps(
            [mixture_id, fingerprint.get("sha256"), fingerprint.get("record")], sort_keys=True
        )
        short = hashlib.sha256(key.encode()).hexdigest()[:20]
        return f"{_SAFE.sub('_', mixture_id)[:60]}-{short}"

    @staticmethod
    def fingerprint(mixture) -> dict[str, Any]:
        """``{"sha256": <file bytes>, "record": <record digest>, "size": <bytes>}`` of a mixture.

        Raises:
            ValueError: the mixture file cannot be read (names it).
        """
        digest = content_digest(mixture.path)
        return {
            "sha256": digest,
            "record": record_digest(mixture),
            "size": os.path.getsize(mixture.path),
        }

    def _paths(self, mixture_id: str, fingerprint: dict[str, Any]) -> tuple[Path, Path]:
        name = self.entry_name(mixture_id, fingerprint)
        return self.streams_dir / f"{name}.npy", self.streams_dir / f"{name}.json"

    def _read_entry(self, mixture, fingerprint) -> CacheEntry | None:
        array_path, meta_path = self._paths(mixture.mixture_id, fingerprint)
        if not (meta_path.exists() and array_path.exists()):
            return None
        try:
            entry = CacheEntry.from_dict(json.loads(meta_path.read_text(encoding="utf-8-sig")))
        except (OSError, ValueError, TypeError) as error:
            logger.warning("%s: unreadable cache entry, separating again (%s)", meta_path, error)
            return None
        same = entry.mixture_id == mixture.mixture_id and all(
            entry.fingerprint.get(key) == fingerprint[key] for key in ("sha256", "record")
        )
        return entry if same else None

    # --- lookup / put / load ---------------------------------------------------------------------
    def lookup(self, mixture, fingerprint: dict[str, Any] | None = None) -> CacheEntry | None:
        """The entry for a ``Mixture`` with this id, file content and record, or ``None``.

        Raises:
            ValueError: the mixture file cannot be read.
        """
        fingerprint = fingerprint or self.fingerprint(mixture)
        entry = self._read_entry(mixture, fingerprint)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries[self.entry_name(mixture.mixture_id, fingerprint)] = entry
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

        ``fingerprint`` must be the one taken *before* the file was read for separation
        (:meth:`fingerprint`), so that streams are never filed under content they did not come
        from.

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
        fingerprint = fingerprint or self.fingerprint(mixture)
        array_path, meta_path = self._paths(mixture.mixture_id, fingerprint)
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
            fingerprint=dict(fingerprint),
        )
        _atomic_write_bytes(array_path, lambda handle: np.save(handle, data))
        atomic_write_text(meta_path, json.dumps(entry.to_dict(), sort_keys=True) + "\n")
        self._entries[self.entry_name(mixture.mixture_id, fingerprint)] = entry
        return entry

    def put_skip(self, mixture, reason: str, fingerprint: dict[str, Any]) -> None:
        """Remember that this mixture content was refused (``reason``: ``"<code>: <detail>"``)."""
        _, meta_path = self._paths(mixture.mixture_id, fingerprint)
        record = {"mixture_id": mixture.mixture_id, "reason": reason, "fingerprint": fingerprint}
        atomic_write_text(
            meta_path.with_suffix(".skip.json"), json.dumps(record, sort_keys=True) + "\n"
        )

    def skip_reason(self, mixture, fingerprint: dict[str, Any] | None = None) -> str | None:
        """Why this mixture content was refused by an earlier fill, or ``None``."""
        fingerprint = fingerprint or self.fingerprint(mixture)
        _, meta_path = self._paths(mixture.mixture_id, fingerprint)
        try:
            record = json.loads(meta_path.with_suffix(".skip.json").read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            return None
        return str(record.get("reason")) if record.get("fingerprint") == fingerprint else None

    def load(self, entry: CacheEntry, *, mmap: bool = True) -> np.ndarray:
        """The streams of an entry, ``[S, T]`` in the cache dtype (memory-mapped by default)."""
        path = self.streams_dir / entry.file
        try:
            return np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot read cached streams ({error})") from error

    def get(self, mixture) -> CacheEntry:
        """The entry of a ``Mixture`` (its id, current file content and record).

        A plain mixture id is accepted when exactly one entry on disk has it.

        Raises:
            KeyError: no entry (not separated yet, or refused: see :meth:`skip_reason`).
            ValueError: a mixture id held by several entries (different content).
        """
        if isinstance(mixture, str):
            matches = [entry for entry in self.entries() if entry.mixture_id == mixture]
            if not matches:
                raise KeyError(f"{mixture}: not in the stream cache {self.directory}")
            if len(matches) > 1:
                raise ValueError(
                    f"{mixture}: {len(matches)} entries with this id and different audio in "
                    f"{self.directory}; look it up by its Mixture record"
                )
            return matches[0]
        fingerprint = self.fingerprint(mixture)
        name = self.entry_name(mixture.mixture_id, fingerprint)
        entry = self._entries.get(name) or self._read_entry(mixture, fingerprint)
        if entry is None:
            raise KeyError(f"{mixture.mixture_id}: not in the stream cache {self.directory}")
        self._entries[name] = entry
        return entry

    # --- manifest --------------------------------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """Every complete entry on disk (sidecars), sorted by mixture id."""
        found = []
        for meta_path in sorted(self.streams_dir.glob("*.json")):
            if meta_path.name.endswith(".skip.json"):
                continue
            try:
                found.append(CacheEntry.from_dict(json.loads(meta_path.read_text("utf-8-sig"))))
            except (OSError, ValueError, TypeError):
                logger.warning("%s: unreadable cache entry skipped", meta_path)
        return sorted(found, key=lambda entry: (entry.mixture_id, entry.file))

    def write_manifest(self) -> Path:
        """Rewrite ``manifest.jsonl`` (one line per entry) atomically; returns its path."""
        lines = [json.dumps(entry.to_dict(), sort_keys=True) for entry in self.entries()]
        return atomic_write_text(
            self.directory / "manifest.jsonl", "".join(line + "\n" for line in lines)
        )

    def __repr__(self) -> str:
        return f"StreamCache({self.directory}, {self.key['separator_identity']!r})"
