"""The per-configuration row store: image content id -> feature row, append-only, crash-safe.

A store is a folder holding immutable HDF5 *segments*. Each segment has two datasets, ``ids``
(``S64``, the SHA-256 hex of the image bytes) and ``features`` (``(n, *shape)``), and the store's
configuration as attributes. A segment is written under a temporary name, flushed, ``fsync``-ed and
then ``os.replace``-d to its final ``seg-*.h5`` name, so a segment with a final name is always
complete; temporary files left by a killed writer are ignored by readers and deleted by the next
writer. Writers hold an exclusive ``fcntl.flock`` on ``<store>/.lock`` for a whole run; readers hold
a shared one. See ``docs/cache.md`` for the full argument.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

__all__ = ["RowStore", "SEGMENT_GLOB", "chunk_rows", "write_h5_atomic"]

SEGMENT_GLOB = "seg-*.h5"
TMP_PREFIX = ".tmp-"
_MAX_SEGMENTS = 16  # more than this after a run: merge them all into one
_READ_BLOCK = 8192  # rows read at a time when gathering


def chunk_rows(n: int, shape: tuple, itemsize: int = 4, target: int = 256 * 1024) -> int:
    """Rows per HDF5 chunk: about ``target`` bytes, split evenly so the last chunk is not mostly
    padding (chunks are stored whole)."""
    per = max(1, target // max(1, itemsize * int(np.prod(shape))))
    n = max(1, int(n))
    k = -(-n // per)  # chunks needed
    return -(-n // k)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_h5_atomic(final: Path, fill) -> None:
    """Create ``final`` by writing a temporary file with ``fill(h5file)``, fsync, ``os.replace``."""
    tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}")
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)


class RowStore:
    """Append-only feature rows for one extractor configuration.

    Parameters
    ----------
    directory : path
        The store's folder (created on first write).
    attrs : dict
        Configuration attributes copied onto every segment (must include ``"key"``).
    """

    def __init__(self, directory: str | os.PathLike, attrs: dict | None = None) -> None:
        self.directory = Path(directory)
        self.attrs = dict(attrs or {})
        self._index: dict[str, tuple[Path, int]] | None = None
        self._lock_fd: int | None = None
        self._new_segments: list[Path] = []

    # -- locking ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, exclusive: bool = True, on_wait=None) -> Iterator[RowStore]:
        """Hold ``flock`` on ``<store>/.lock`` (exclusive for writers, shared for readers)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(self.directory)
                fcntl.flock(fd, mode)
            self._lock_fd, self._index, self._new_segments = fd, None, []
            if exclusive:
                self._remove_temporaries()
                self._write_config()
            yield self
        finally:
            self._lock_fd = None
            self._index = None
            os.close(fd)  # closing the descriptor releases the lock

    def _remove_temporaries(self) -> None:
        # Only a writer holding the exclusive lock creates temporaries, so any found now are
        # leftovers of a writer that died.
        for tmp in self.directory.glob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _write_config(self) -> None:
        path = self.directory / "config.json"
        if not path.exists():
            tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-config.json")
            tmp.write_text(json.dumps(self.attrs, indent=2, sort_keys=True, default=str) + "\n")
            os.replace(tmp, path)

    # -- reading ---------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """Final-named segment files, oldest first."""
        return sorted(self.directory.glob(SEGMENT_GLOB))

    def index(self) -> dict[str, tuple[Path, int]]:
        """Map content id -> (segment, row) over every committed segment (call under the lock)."""
        if self._index is None:
            index: dict[str, tuple[Path, int]] = {}
            for seg in self.segments():
                with h5py.File(seg, "r") as f:
                    ids = f["ids"][:]
                for row, raw in enumerate(ids):
                    index.setdefault(raw.decode("ascii"), (seg, row))
            self._index = index
        return self._index

    def __len__(self) -> int:
        return len(self.index())

    def gather(self, ids: Sequence[str]) -> np.ndarray:
        """Feature rows for ``ids`` (all must be present), in that order."""
        index = self.index()
        by_segment: dict[Path, list[tuple[int, int]]] = {}
        for target, content_id in enumerate(ids):
            seg, row = index[content_id]
            by_segment.setdefault(seg, []).append((row, target))
        out = None
        for seg, pairs in by_segment.items():
            pairs.sort()
            rows = np.fromiter((r for r, _ in pairs), np.int64, len(pairs))
            targets = np.fromiter((t for _, t in pairs), np.int64, len(pairs))
            with h5py.File(seg, "r") as f:
                ds = f["features"]
                if out is None:
                    out = np.empty((len(ids), *ds.shape[1:]), dtype=ds.dtype)
                for start in range(int(rows[0]) // _READ_BLOCK * _READ_BLOCK, ds.shape[0],
                                   _READ_BLOCK):
                    lo, hi = np.searchsorted(rows, [start, start + _READ_BLOCK])
                    if lo == hi:
                        continue
                    block = ds[start : min(start + _READ_BLOCK, ds.shape[0])]
                    out[targets[lo:hi]] = block[rows[lo:hi] - start]
        if out is None:
            raise ValueError("gather() needs at least one id")
        return out

    # -- writing (under the exclusive lock) ------------------------------------------------------
    def _segment_name(self) -> Path:
        return self.directory / f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:6]}.h5"

    def _write_segment(self, ids: Sequence[str], parts: Iterator[np.ndarray] | list[np.ndarray],
                       n: int, shape: tuple, dtype) -> Path:
        final = self._segment_name()

        def fill(f: h5py.File) -> None:
            for k, v in self.attrs.items():
                f.attrs[k] = v
            f.create_dataset("ids", data=np.asarray(ids, dtype="S64"))
            rows = chunk_rows(n, shape, np.dtype(dtype).itemsize)
            ds = f.create_dataset("features", shape=(n, *shape), dtype=dtype,
                                  chunks=(rows, *shape) if n else None)
            pos = 0
            for part in parts:
                ds[pos : pos + len(part)] = part
                pos += len(part)
            f.attrs["n_rows"] = n

        write_h5_atomic(final, fill)
        return final

    def commit(self, ids: Sequence[str], features: np.ndarray) -> Path:
        """Atomically add one segment of rows; returns its path."""
        if self._lock_fd is None:
            raise RuntimeError("RowStore.commit() needs the exclusive lock: `with store.lock():`")
        features = np.asarray(features)
        seg = self._write_segment(list(ids), [features], len(ids), features.shape[1:],
                                  features.dtype)
        self._new_segments.append(seg)
        if self._index is not None:
            for row, content_id in enumerate(ids):
                self._index.setdefault(content_id, (seg, row))
        return seg

    def compact(self) -> None:
        """Merge this run's segments into one (all segments when there are too many).

        The merged segment is committed before the old ones are deleted; a crash in between leaves
        duplicate rows, which readers resolve by keeping the first copy of each id.
        """
        every = self.segments()
        fresh = [s for s in self._new_segments if s.exists()]
        merge = every if len(every) > _MAX_SEGMENTS else fresh
        if len(merge) < 2:
            return
        ids: list[str] = []
        seen: set[str] = set()
        keep: list[tuple[Path, np.ndarray]] = []
        shape, dtype = None, None
        for seg in merge:
            with h5py.File(seg, "r") as f:
                raw = [r.decode("ascii") for r in f["ids"][:]]
                shape, dtype = f["features"].shape[1:], f["features"].dtype
            rows = [i for i, r in enumerate(raw) if r not in seen]
            seen.update(raw)
            ids.extend(raw[i] for i in rows)
            keep.append((seg, np.asarray(rows, dtype=np.int64)))

        def parts() -> Iterator[np.ndarray]:
            for seg, rows in keep:
                with h5py.File(seg, "r") as f:
                    ds = f["features"]
                    for start in range(0, len(rows), _READ_BLOCK):
                        sel = rows[start : start + _READ_BLOCK]
                        if len(sel):
                            yield ds[int(sel[0]) : int(sel[-1]) + 1][sel - sel[0]]

        merged = self._write_segment(ids, parts(), len(ids), shape, dtype)
        for seg in merge:
            with contextlib.suppress(OSError):
                seg.unlink()
        self._new_segments = [merged]
        self._index = None
