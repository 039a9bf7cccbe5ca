"""Sealed, atomic cache writes: how every HDF5 file featx writes reaches its final name whole,
carries a digest of its bytes in its HDF5 user block (checked before HDF5 parses it), fails with
one clear error when the disk refuses it, and is moved aside (kept) when found damaged.

A file is written under a temporary name with its size reserved first (so a full disk, a
file-size limit or a read-only folder is :class:`CacheWriteError` before HDF5 writes a byte),
sealed, ``fsync``-ed and ``os.replace``-d. The row store (:mod:`featx.cache.rowstore`) and the
dataset files (:mod:`featx.cache.files`) both write through :func:`write_h5_atomic`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import h5py
import numpy as np

from featx.errors import (
    CacheWriteError,
    DamagedCacheError,
    DamagedCacheWarning,
    MissingRowsError,
)

try:  # POSIX only: the process's file-size limit (`ulimit -f`)
    import resource
except ImportError:  # Windows
    resource = None

__all__ = ["DAMAGED", "STORE_NAME", "TMP_PREFIX", "USERBLOCK", "CacheWriteError",
           "DamagedCacheError", "DamagedCacheWarning", "MissingRowsError", "cache_root_of",
           "check_seal", "chunk_rows", "h5_error", "h5_size", "move_aside", "write_error",
           "write_h5_atomic"]

TMP_PREFIX = ".tmp-"
DAMAGED = "damaged"  # <cache>/damaged/: damaged files, moved aside and kept
#: Bytes reserved at the start of every HDF5 file featx writes (an HDF5 *user block*, which HDF5
#: skips): featx's digest header goes there.
USERBLOCK = 512
_SEAL = b"featx-digest\n"  # the header: this line, then one line of JSON
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
STORE_NAME = re.compile(r".+__[0-9a-f]{8}")  # <backbone>-<size>-<pooling>__<key8>


def chunk_rows(n: int, shape: tuple, itemsize: int = 4, target: int = 256 * 1024) -> int:
    """Rows per HDF5 chunk: about ``target`` bytes, split evenly so the last chunk is not mostly
    padding (chunks are stored whole)."""
    per = max(1, target // max(1, itemsize * int(np.prod(shape))))
    n = max(1, int(n))
    k = -(-n // per)  # chunks needed
    return -(-n // k)


def h5_size(nbytes: int, n_chunks: int = 1) -> int:
    """A generous bound on the size of an HDF5 file holding ``nbytes`` of data in ``n_chunks``
    chunks (object headers, B-trees, heaps, chunk padding)."""
    return int(nbytes * 1.05) + 64 * 1024 + 256 * int(n_chunks)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def cache_root_of(path: Path) -> Path:
    """The cache folder a dataset file (``<cache>/x.h5``), a row store (``<cache>/rows/<slug>``)
    or a store's file (``<cache>/rows/<slug>/seg-*.h5``) lives in."""
    path = Path(path)
    if path.parent.parent.name == "rows" and STORE_NAME.fullmatch(path.parent.name):
        return path.parents[2]
    if path.parent.name == "rows" and STORE_NAME.fullmatch(path.name):
        return path.parents[1]
    return path.parent


def h5_error(exc: BaseException) -> str:
    """What h5py said about a file it could not read, on one line."""
    return f"h5py cannot read it: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{int(n)} bytes"


def write_error(target: Path, exc: OSError, size: int = 0) -> CacheWriteError:
    """One error naming the cache folder, the file and the cause, with the limit that was hit."""
    target = Path(target)
    root = cache_root_of(target)
    where = os.fspath(target.relative_to(root)) if target.is_relative_to(root) else target.name
    code = exc.errno or 0
    hint = ""
    if code == errno.EFBIG and resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit = "unlimited" if soft == resource.RLIM_INFINITY else _mb(soft)
        hint = (f": the process's file-size limit (`ulimit -f`) is {limit} and this file needs "
                f"about {_mb(size)}")
    elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(root if root.exists() else target.parent).free
            hint = f": {_mb(free)} free, this file needs about {_mb(size)}"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = ": the folder is read-only or not writable by this user (choose another with "\
               "cache=... or $FEATX_CACHE_DIR)"
    cause = exc.strerror or str(exc)
    err = CacheWriteError(f"cannot write to the feature cache {os.fspath(root)!r} ({where}): "
                          f"{cause}{hint}; the cache is left as it was before this write")
    err.errno, err.strerror, err.filename = code, cause, os.fspath(target)
    return err


def _reserve(tmp: Path, size: int) -> None:
    """Create ``tmp`` and make sure ``size`` bytes can be written to it (disk space, the
    file-size limit, permissions), so HDF5 never meets a failing write: a write that fails inside
    HDF5 leaves the library in a state that crashes the process later."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if size <= 0:
            return
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except AttributeError:  # no posix_fallocate (macOS): check what can be checked
            pass
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else None
        if soft is not None and soft != resource.RLIM_INFINITY and size > soft:
            raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))
        if shutil.disk_usage(tmp.parent).free < size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    finally:
        os.close(fd)


def _ranges(size: int, skip) -> list[tuple[int, int]]:
    """The byte ranges a digest covers: after the user block, less ``skip`` (offset, length)."""
    if not skip:
        return [(USERBLOCK, size)]
    off, n = (int(v) for v in skip)
    if not USERBLOCK <= off <= off + n <= size:
        raise ValueError(f"the range {skip} lies outside the file's {size} bytes")
    return [(USERBLOCK, off), (off + n, size)]


def _sha256(fh, ranges) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    for start, stop in ranges:
        fh.seek(start)
        left = stop - start
        while left > 0:
            got = fh.readinto(view[: min(left, len(buf))])
            if not got:
                break
            h.update(view[:got])
            left -= got
    return h.hexdigest()


def _seal(path: Path, skip=None) -> None:
    """Write featx's digest header into the user block of the closed HDF5 file ``path``: the
    SHA-256 of every byte after the user block, less ``skip`` (a segment's feature rows, which
    carry their own digests)."""
    with open(path, "rb+") as fh:
        digest = _sha256(fh, _ranges(os.fstat(fh.fileno()).st_size, skip))
        header = _SEAL + json.dumps({"sha256": digest, "skip": list(skip) if skip else None},
                                    separators=(",", ":")).encode() + b"\n"
        fh.seek(0)
        fh.write(header)


def check_seal(path: Path) -> bool:
    """Check a file's digest header before HDF5 reads anything of it.

    Returns ``True`` when the file carries featx's header and its bytes match it, ``False`` when
    it has none (written before featx stored digests, or not featx's: HDF5's own checks decide).
    Raises :class:`DamagedCacheError` when the bytes differ from the header, or the header is
    unreadable, so that HDF5 never parses a damaged file (a damaged HDF5 file can crash or hang
    the library).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(USERBLOCK)
            if not head.startswith(_SEAL):
                fh.seek(USERBLOCK)
                if head[:8] != _HDF5_SIGNATURE and fh.read(8) == _HDF5_SIGNATURE:
                    raise DamagedCacheError(path, "its digest header is unreadable")
                return False
            try:
                meta = json.loads(head[len(_SEAL):].split(b"\n", 1)[0])
                ranges = _ranges(os.fstat(fh.fileno()).st_size, meta["skip"])
                expected = str(meta["sha256"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise DamagedCacheError(path, "its digest header is unreadable") from None
            if _sha256(fh, ranges) != expected:
                raise DamagedCacheError(path, "its bytes differ from the digest written with "
                                              "them")
            return True
    except (FileNotFoundError, DamagedCacheError):
        raise
    except OSError as exc:
        raise DamagedCacheError(path, f"it cannot be read: {exc}") from None


def write_h5_atomic(final: Path, fill, size: int = 0) -> None:
    """Create ``final`` by writing a temporary file with ``fill(h5file)``, sealing it with its
    digest (:func:`check_seal`), fsync, ``os.replace``.

    ``fill`` may return an ``(offset, length)`` byte range the file digest leaves out (rows that
    carry their own digests). ``size`` bounds the file's size (:func:`h5_size`): that much space
    is checked before HDF5 writes, so a full disk, a file-size limit or a read-only folder raise
    one :class:`CacheWriteError` naming the folder, and the temporary file is removed.
    """
    final = Path(final)
    tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}")
    size = size and size + USERBLOCK
    try:
        try:
            _reserve(tmp, size)
        except OSError as exc:
            raise write_error(final, exc, size) from None
        with h5py.File(tmp, "w", userblock_size=USERBLOCK) as f:
            skip = fill(f)
            f.flush()
        try:
            _seal(tmp, skip)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            raise write_error(final, exc, size) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)


def move_aside(path: Path, why: str, root: Path | None = None) -> Path:
    """Move a damaged cache file to ``<cache>/damaged/<its path in the cache>`` (kept, never
    deleted; ``.1``, ``.2``, ... when that name is taken), log it in ``damaged/log.jsonl`` and
    return where it went."""
    path = Path(path)
    root = Path(root) if root is not None else cache_root_of(path)
    rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    dest = root / DAMAGED / rel
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        k = 0
        while dest.exists():
            k += 1
            dest = dest.with_name(f"{rel.stem}.{k}{rel.suffix}")
        os.rename(path, dest)
        with open(root / DAMAGED / "log.jsonl", "a") as log:
            log.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                  "file": os.fsdecode(path), "moved_to": os.fsdecode(dest),
                                  "why": why}) + "\n")
    except OSError as exc:
        raise write_error(path, exc) from None
    return dest
