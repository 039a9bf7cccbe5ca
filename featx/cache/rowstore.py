"""The per-configuration row store: image content id -> feature row, append-only, crash-safe,
checksummed.

A store is a folder holding immutable HDF5 *segments*. Each segment has three datasets, ``ids``
(``S64``, the SHA-256 hex of the image bytes), ``features`` (``(n, *shape)``, contiguous) and
``digests`` (``(n, 32)`` ``uint8``: the SHA-256 of each row's id and feature bytes,
:func:`featx.cache.keys.row_digests`), and the store's configuration as attributes. Every HDF5
file featx writes starts with a digest header in its HDF5 user block (:func:`check_seal`): the
SHA-256 of its bytes, less a segment's feature rows, and the key of the store's configuration,
checked before HDF5 parses the file. A segment without that header (written before featx sealed
its files, or by hand) is not read: nothing the request knows (only content ids) can vouch for
its rows, so it is moved aside like a damaged one and its rows are extracted again.

A segment is written under a temporary name, flushed, ``fsync``-ed and then ``os.replace``-d to its
final ``seg-*.h5`` name, so a segment with a final name is always complete; temporary files left by
a killed writer are ignored by readers and deleted by the next writer. Writers hold an exclusive
lock on ``<store>/.lock`` for a whole run; readers hold a shared one (``fcntl.flock`` where there
is one; elsewhere, Windows, :func:`filelock.lock_descriptor`, which has no shared mode: readers
then take the exclusive lock too and wait for each other as well as for writers).

A segment that cannot be opened, whose shapes disagree or whose rows fail their digests is moved
to ``<cache>/damaged/`` (never deleted) by the writer that finds it; its intact rows are kept in a
new segment and the others are re-extracted. A write that the disk refuses (full, file-size
limit, read-only) raises :class:`CacheWriteError` before HDF5 writes a byte. See
``docs/cache.md`` for the full argument.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from featx.cache.keys import DIGEST_SIZE, ROW_DIGEST, row_digests
from featx.trust.store import (
    TMP_PREFIX,
    DamagedCacheError,
    DamagedCacheWarning,
    check_seal,
    h5_error,
    h5_size,
    move_aside,
    write_artifact,
    write_error,
    write_h5_atomic,
)

try:  # POSIX: flock, with shared locks for readers
    import fcntl
except ImportError:  # Windows: filelock's native lock (exclusive only)
    fcntl = None

__all__ = ["SEGMENT_GLOB", "RowStore", "segment_ids", "segment_problem"]

SEGMENT_GLOB = "seg-*.h5"
_MAX_SEGMENTS = 16  # more than this after a run: merge them all into one
_READ_BLOCK = 8192  # rows read at a time when gathering


def _failing(k: int, n: int | None = None) -> str:
    """``"1 of its rows fails its checksum"``, ``"3 of its 40 rows fail their checksums"``."""
    of = f"{k} of its {n} rows" if n is not None else f"{k} of its rows"
    return f"{of} {'fails its checksum' if k == 1 else 'fail their checksums'}"


def segment_problem(f: h5py.File, file_size: int) -> str | None:
    """Why the open segment ``f`` is not a consistent segment, or ``None``."""
    if "ids" not in f or "features" not in f:
        return f"it lacks its {'ids' if 'ids' not in f else 'features'} dataset"
    ids, feats = f["ids"], f["features"]
    if ids.ndim != 1 or feats.ndim < 2:
        return f"ids has shape {ids.shape} and features {feats.shape}"
    n = ids.shape[0]
    if feats.shape[0] != n:
        return f"it holds {n} ids but {feats.shape[0]} feature rows"
    if "digests" in f and f["digests"].shape != (n, DIGEST_SIZE):
        return f"it holds {n} ids but digests of shape {f['digests'].shape}"
    if "n_rows" in f.attrs and int(f.attrs["n_rows"]) != n:
        return f"it holds {n} rows but says n_rows={int(f.attrs['n_rows'])}"
    datasets = [ids, feats] + ([f["digests"]] if "digests" in f else [])
    if max(d.size * d.dtype.itemsize for d in datasets) > file_size:
        return f"its datasets claim more bytes than its {file_size} bytes"
    return None


def segment_ids(seg: Path, key: str | None = None) -> list[str]:
    """The content ids of segment ``seg`` (its seal, for ``key`` when given, and its structure
    checked first; else :class:`DamagedCacheError`)."""
    return [raw.decode("ascii", "replace") for raw in _read_ids(seg, key)]


#: Why a segment without featx's seal is not read.
UNSEALED = ("it has no seal (written before featx sealed its files, or not by featx): its rows "
            "cannot be vouched for")


def _read_ids(seg: Path, key: str | None = None) -> np.ndarray:
    """A segment's ids after its seal (bound to ``key``) and structure are checked; else
    :class:`DamagedCacheError`."""
    # everything but the feature rows, before HDF5 reads a byte of it
    if not check_seal(seg, key):
        raise DamagedCacheError(seg, UNSEALED)
    try:
        size = seg.stat().st_size
        with h5py.File(seg, "r") as f:
            if why := segment_problem(f, size):
                raise DamagedCacheError(seg, why)
            return f["ids"][:]
    except DamagedCacheError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for a damaged file
        raise DamagedCacheError(seg, h5_error(exc)) from None


def _try_lock(fd: int, exclusive: bool) -> bool:
    """Take the lock on ``fd`` without waiting; ``False`` when another holder has it."""
    if fcntl is None:
        import filelock

        return filelock.lock_descriptor(fd, blocking=False)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_lock(fd: int, exclusive: bool) -> None:
    """Take the lock on ``fd``, waiting as long as it takes (released by closing ``fd``)."""
    if fcntl is None:
        import filelock

        filelock.lock_descriptor(fd, blocking=True)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)


class _BadSegment(Exception):
    def __init__(self, seg: Path, why: str) -> None:
        super().__init__(why)
        self.seg, self.why = seg, why


class RowStore:
    """Append-only feature rows for one extractor configuration.

    Parameters
    ----------
    directory : path
        The store's folder (created on first write).
    attrs : dict
        Configuration attributes copied onto every segment (must include ``"key"``).

    Attributes
    ----------
    problems : list of (path, why)
        Damaged segments seen without the exclusive lock (left in place, not read).
    repairs : int
        Damaged segments this object moved aside (under the exclusive lock).
    """

    def __init__(self, directory: str | os.PathLike, attrs: dict | None = None) -> None:
        self.directory = Path(directory)
        self.attrs = dict(attrs or {})
        self._index: dict[str, tuple[Path, int]] | None = None
        self._lock_fd: int | None = None
        self._exclusive = False
        self._new_segments: list[Path] = []
        self.problems: list[tuple[Path, str]] = []
        self.repairs = 0

    @property
    def key(self) -> str:
        """The key of the store's configuration (its attributes' ``key``; else the 8 hex digits
        its folder's name ends with), which every segment's seal must name."""
        key = self.attrs.get("key")
        return str(key) if key else self.directory.name.rsplit("__", 1)[-1]

    # -- locking ---------------------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        """Whether this object holds the store's lock now (shared or exclusive)."""
        return self._lock_fd is not None

    @contextlib.contextmanager
    def lock(self, exclusive: bool = True, on_wait=None) -> Iterator[RowStore]:
        """Hold the lock on ``<store>/.lock`` (exclusive for writers, shared for readers; shared
        is exclusive where ``fcntl`` is missing, see the module's docstring).

        A shared lock on a read-only cache opens the lock file read-only; an exclusive one there
        raises :class:`CacheWriteError`.
        """
        fd = self._open_lock(exclusive)
        try:
            if not _try_lock(fd, exclusive):
                if on_wait is not None:
                    on_wait(self.directory)
                _wait_lock(fd, exclusive)
            self._lock_fd, self._index, self._new_segments = fd, None, []
            self._exclusive = exclusive
            if exclusive:
                self._remove_temporaries()
                self._write_config()
            yield self
        finally:
            self._lock_fd, self._index, self._exclusive = None, None, False
            if fcntl is None:  # Windows may release a closed handle's lock late: unlock first
                import filelock

                with contextlib.suppress(OSError):
                    filelock.unlock_descriptor(fd)
            os.close(fd)  # closing the descriptor releases the lock

    def _open_lock(self, exclusive: bool) -> int:
        path = self.directory / ".lock"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if not exclusive and path.exists():
                with contextlib.suppress(OSError):
                    return os.open(path, os.O_RDONLY)
            raise write_error(path, exc) from None

    def _remove_temporaries(self) -> None:
        # Only a writer holding the exclusive lock creates temporaries, so any found now are
        # leftovers of a writer that died.
        for tmp in self.directory.glob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _write_config(self) -> None:
        path = self.directory / "config.json"
        if not path.exists():
            text = json.dumps(self.attrs, indent=2, sort_keys=True, default=str) + "\n"
            write_artifact(path, self.key, lambda tmp: tmp.write_text(text),
                           size=len(text) + 4096, kind="row-store configuration")

    # -- reading ---------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """Final-named segment files, oldest first."""
        return sorted(self.directory.glob(SEGMENT_GLOB))

    def index(self) -> dict[str, tuple[Path, int]]:
        """Map content id -> (segment, row) over every committed segment (call under the lock).

        A segment that cannot be read or whose shapes or ids fail their checks is repaired
        (:meth:`repair`) under the exclusive lock, else skipped and listed in ``problems``.
        """
        while self._index is None:
            index: dict[str, tuple[Path, int]] = {}
            damaged = None
            for seg in self.segments():
                try:
                    ids = _read_ids(seg, self.key)
                except DamagedCacheError as exc:
                    if self._exclusive:
                        damaged = exc
                        break
                    self._note(seg, exc.why)
                    continue
                for row, raw in enumerate(ids):
                    index.setdefault(raw.decode("ascii", "replace"), (seg, row))
            if damaged is None:
                self._index = index
            else:  # moves the segment out of the folder: the next pass does not meet it again
                self.repair(damaged.path, damaged.why)
        return self._index

    def _note(self, seg: Path, why: str) -> None:
        if (seg, why) not in self.problems:
            self.problems.append((seg, why))

    def __len__(self) -> int:
        return len(self.index())

    def gather(self, ids: Sequence[str]) -> np.ndarray:
        """Feature rows for ``ids`` (all must be present), in that order, each checked against
        its digest.

        Raises :class:`DamagedCacheError` when a row fails its digest or a segment cannot be
        read; under the exclusive lock the segment has been repaired (:meth:`repair`) by then,
        so the lost rows are simply missing from :meth:`index` and can be extracted again.
        """
        index = self.index()
        by_segment: dict[Path, list[tuple[int, int]]] = {}
        for target, content_id in enumerate(ids):
            seg, row = index[content_id]
            by_segment.setdefault(seg, []).append((row, target))
        out = None
        bad: dict[Path, str] = {}
        for seg, pairs in by_segment.items():
            pairs.sort()
            rows = np.fromiter((r for r, _ in pairs), np.int64, len(pairs))
            targets = np.fromiter((t for _, t in pairs), np.int64, len(pairs))
            try:
                out = self._gather_segment(seg, rows, targets, ids, out, len(ids))
            except _BadSegment as exc:
                bad[seg] = exc.why
            except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for a damaged file
                bad[seg] = h5_error(exc)
        if bad:
            seg, why = next(iter(bad.items()))
            action = ""
            if self._exclusive:
                for s, w in bad.items():
                    self.repair(s, w)
                action = "moved aside; its lost rows are missing from the store now"
            raise DamagedCacheError(seg, why, action)
        if out is None:
            raise ValueError("gather() needs at least one id")
        return out

    def _gather_segment(self, seg, rows, targets, ids, out, n):
        with h5py.File(seg, "r") as f:
            ds = f["features"]
            digests = f["digests"][:] if "digests" in f else None
            if out is None:
                out = np.empty((n, *ds.shape[1:]), dtype=ds.dtype)
            elif ds.shape[1:] != out.shape[1:] or ds.dtype != out.dtype:
                raise _BadSegment(seg, f"its rows are {ds.dtype}{ds.shape[1:]}, the store's "
                                       f"other rows {out.dtype}{out.shape[1:]}")
            wrong = 0
            for start in range(int(rows[0]) // _READ_BLOCK * _READ_BLOCK, ds.shape[0],
                               _READ_BLOCK):
                lo, hi = np.searchsorted(rows, [start, start + _READ_BLOCK])
                if lo == hi:
                    continue
                block = ds[start : min(start + _READ_BLOCK, ds.shape[0])]
                out[targets[lo:hi]] = block[rows[lo:hi] - start]
                if digests is not None:
                    got = row_digests(out[targets[lo:hi]], [ids[t] for t in targets[lo:hi]])
                    wrong += int(np.any(got != digests[rows[lo:hi]], axis=1).sum())
            if wrong:
                raise _BadSegment(seg, _failing(wrong))
        return out

    def check(self) -> dict:
        """Read every row of every segment and check it against its digest (nothing changed).

        Returns ``{"segments", "rows", "checked", "legacy", "problems"}``: row counts (``legacy``:
        rows of segments written before digests, shape-checked only) and ``(path, why)`` pairs.
        """
        out = {"segments": 0, "rows": 0, "checked": 0, "legacy": 0, "problems": []}
        for seg in self.segments():
            out["segments"] += 1
            try:
                ids = _read_ids(seg, self.key)
                with h5py.File(seg, "r") as f:
                    n = len(ids)
                    out["rows"] += n
                    if "digests" not in f:
                        out["legacy"] += n
                        continue
                    bad = self._verify_rows(f, ids)
                    out["checked"] += n
            except DamagedCacheError as exc:
                out["problems"].append((seg, exc.why))
                continue
            except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for a damaged file
                out["problems"].append((seg, h5_error(exc)))
                continue
            if len(bad):
                first = ", ".join(str(int(r)) for r in bad[:5])
                out["problems"].append((seg, f"{_failing(len(bad), n)} (rows {first}"
                                             f"{', ...' if len(bad) > 5 else ''})"))
        return out

    @staticmethod
    def _verify_rows(f: h5py.File, ids) -> np.ndarray:
        """Indices of the rows of open segment ``f`` that fail their digests (or cannot be read)."""
        ds, digests = f["features"], f["digests"][:]
        bad = []
        for start in range(0, len(ids), _READ_BLOCK):
            stop = min(start + _READ_BLOCK, len(ids))
            try:
                got = row_digests(ds[start:stop], ids[start:stop])
            except Exception:  # noqa: BLE001 - an unreadable block: all its rows are lost
                bad.extend(range(start, stop))
                continue
            bad.extend(start + np.flatnonzero(np.any(got != digests[start:stop], axis=1)))
        return np.asarray(bad, np.int64)

    # -- writing (under the exclusive lock) ------------------------------------------------------
    def _segment_name(self) -> Path:
        return self.directory / f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:6]}.h5"

    def _write_segment(self, ids: Sequence[str], parts: Iterator[np.ndarray] | list[np.ndarray],
                       n: int, shape: tuple, dtype) -> Path:
        final = self._segment_name()
        row_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        size = h5_size(n * (row_bytes + 64 + DIGEST_SIZE) + 4096)

        def fill(f: h5py.File) -> None:
            for k, v in self.attrs.items():
                f.attrs[k] = v
            f.create_dataset("ids", data=np.asarray(ids, dtype="S64"))
            # contiguous: one byte range, which the file digest leaves to the row digests
            ds = f.create_dataset("features", shape=(n, *shape), dtype=dtype)
            digests = np.empty((n, DIGEST_SIZE), np.uint8)
            pos = 0
            for part in parts:
                ds[pos : pos + len(part)] = part
                digests[pos : pos + len(part)] = row_digests(np.asarray(part, dtype),
                                                             ids[pos : pos + len(part)])
                pos += len(part)
            if pos != n:
                raise ValueError(f"a segment of {n} rows was given {pos} feature rows")
            f.create_dataset("digests", data=digests)
            f.attrs["n_rows"] = n
            f.attrs["row_digest"] = ROW_DIGEST
            offset, nbytes = ds.id.get_offset(), ds.id.get_storage_size()
            return None if offset is None or not nbytes else (offset, nbytes)

        write_h5_atomic(final, fill, size, key=self.key)
        return final

    def commit(self, ids: Sequence[str], features: np.ndarray) -> Path:
        """Atomically add one segment of rows (with their digests); returns its path."""
        if self._lock_fd is None or not self._exclusive:
            raise RuntimeError("RowStore.commit() needs the exclusive lock: `with store.lock():`")
        features = np.asarray(features)
        ids = list(ids)
        if len(ids) != len(features):
            raise ValueError(f"commit() got {len(ids)} ids for {len(features)} feature rows")
        seg = self._write_segment(ids, [features], len(ids), features.shape[1:],
                                  features.dtype)
        self._new_segments.append(seg)
        if self._index is not None:
            for row, content_id in enumerate(ids):
                self._index.setdefault(content_id, (seg, row))
        return seg

    def repair(self, seg: Path, why: str) -> Path:
        """Move the damaged segment ``seg`` to ``<cache>/damaged/`` and keep the rows of it that
        pass their digests in a new segment (a segment without digests keeps none); warn with
        both paths. Returns where ``seg`` went. Needs the exclusive lock."""
        if not self._exclusive:
            raise RuntimeError("RowStore.repair() needs the exclusive lock: `with store.lock():`")
        keep_ids, keep_rows, n, shape, dtype = self._salvage(seg)
        kept = None
        if keep_ids:
            kept = self._write_segment(keep_ids, self._rows_of(seg, keep_rows), len(keep_ids),
                                       shape, dtype)
        dest = move_aside(seg, why)
        self._new_segments = [s for s in self._new_segments if s != seg] + ([kept] if kept
                                                                             else [])
        self._index = None
        self.repairs += 1
        lost = "its rows" if n is None else f"{n - len(keep_ids)} of its {n} rows"
        kept_text = f"{len(keep_ids)} intact rows kept in {kept.name}; " if kept else ""
        warnings.warn(f"featx: row-store segment {seg} is damaged ({why}); moved to {dest}; "
                      f"{kept_text}{lost} will be extracted again when needed",
                      DamagedCacheWarning, stacklevel=3)
        return dest

    def _salvage(self, seg: Path):
        """The rows of a damaged segment that pass their digests: (ids, rows, n, shape, dtype).
        Only rows of a segment whose digest header matches (all but its rows are sound) are
        read: HDF5 never parses a damaged file."""
        try:
            if not check_seal(seg, self.key):
                return [], [], None, None, None
            with h5py.File(seg, "r") as f:
                raw = f["ids"][:]
                n = len(raw)
                if "digests" not in f or segment_problem(f, seg.stat().st_size):
                    return [], [], n, None, None
                bad = set(self._verify_rows(f, raw).tolist())
                rows = [i for i in range(n) if i not in bad]
                return ([raw[i].decode("ascii") for i in rows], np.asarray(rows, np.int64), n,
                        f["features"].shape[1:], f["features"].dtype)
        except Exception:  # noqa: BLE001 - nothing of it can be trusted
            return [], [], None, None, None

    @staticmethod
    def _rows_of(seg: Path, rows: np.ndarray, verify_ids=None) -> Iterator[np.ndarray]:
        """Rows ``rows`` (sorted) of ``seg``, block by block; checked against their digests when
        ``verify_ids`` (the ids of ``rows``) is given (:class:`_BadSegment` on a mismatch)."""
        with h5py.File(seg, "r") as f:
            ds = f["features"]
            digests = f["digests"] if "digests" in f and verify_ids is not None else None
            for start in range(0, len(rows), _READ_BLOCK):
                sel = rows[start : start + _READ_BLOCK]
                if not len(sel):
                    continue
                try:
                    block = ds[int(sel[0]) : int(sel[-1]) + 1][sel - sel[0]]
                    stored = (None if digests is None else
                              digests[int(sel[0]) : int(sel[-1]) + 1][sel - sel[0]])
                except Exception as exc:  # noqa: BLE001 - h5py raises many kinds
                    raise _BadSegment(seg, h5_error(exc)) from None
                if digests is not None:
                    got = row_digests(block, verify_ids[start : start + _READ_BLOCK])
                    if np.any(got != stored):
                        raise _BadSegment(seg, _failing(int(np.any(got != stored, axis=1).sum())))
                yield block

    def compact(self) -> None:
        """Merge this run's segments into one (all segments when there are too many).

        Every row copied is checked against its digest first: a damaged segment is repaired
        (:meth:`repair`) instead of merged, and the merge waits for the next run. The merged
        segment is committed before the old ones are deleted; a crash in between leaves
        duplicate rows, which readers resolve by keeping the first copy of each id.
        """
        every = self.segments()
        fresh = [s for s in self._new_segments if s.exists()]
        merge = every if len(every) > _MAX_SEGMENTS else fresh
        if len(merge) < 2:
            return
        ids: list[str] = []
        seen: set[str] = set()
        keep: list[tuple[Path, np.ndarray, list[str]]] = []
        shapes: dict[tuple, int] = {}
        try:
            for seg in merge:
                raw = [r.decode("ascii", "replace") for r in _read_ids(seg, self.key)]
                with h5py.File(seg, "r") as f:
                    key = (f["features"].shape[1:], f["features"].dtype.str)
                shapes[key] = shapes.get(key, 0) + len(raw)
                rows = [i for i, r in enumerate(raw) if r not in seen]
                seen.update(raw)
                ids.extend(raw[i] for i in rows)
                keep.append((seg, np.asarray(rows, dtype=np.int64), [raw[i] for i in rows]))
        except DamagedCacheError as exc:
            self.repair(exc.path, exc.why)
            return
        (shape, dtype) = max(shapes, key=shapes.get)  # a damaged segment is the odd one out
        for seg, _, _ in keep:
            with h5py.File(seg, "r") as f:
                if (f["features"].shape[1:], f["features"].dtype.str) != (shape, dtype):
                    self.repair(seg, f"its rows are {f['features'].dtype}"
                                     f"{f['features'].shape[1:]}, the store's {dtype}{shape}")
                    return

        def parts() -> Iterator[np.ndarray]:
            for seg, rows, seg_ids in keep:
                yield from self._rows_of(seg, rows, seg_ids)

        try:
            merged = self._write_segment(ids, parts(), len(ids), shape, np.dtype(dtype))
        except _BadSegment as exc:
            self.repair(exc.seg, exc.why)
            return
        for seg in merge:
            with contextlib.suppress(OSError):
                seg.unlink()
        self._new_segments = [merged]
        self._index = None
