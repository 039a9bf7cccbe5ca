"""The sealed-artifact store: how every file featx writes under its cache is written, sealed,
opened and, when damaged, moved aside.

Every artifact (a dataset file, a row-store segment, converted weights, an ONNX graph, and
anything added later) is

- **written atomically**: under a temporary name in its folder, with its size reserved first (so
  a full disk, a file-size limit or a read-only folder is one :class:`CacheWriteError` before a
  byte is written: a write that fails inside HDF5 can crash the process later), ``fsync``-ed and
  ``os.replace``-d;
- **sealed**: the SHA-256 of its bytes and the *key* it was written for are recorded with it, in
  the file itself where its format has room (an HDF5 *user block*, which HDF5 skips:
  :func:`write_h5_atomic`), else beside it (``<file>.seal``: :func:`write_artifact`). A file
  whose bytes or key differ from its seal (edited, truncated, another configuration's graph
  copied under this name) fails :func:`check_seal` / :func:`open_artifact`;
- **opened only when it is a regular file** (opened non-blocking, ``S_ISREG`` checked): a FIFO
  or a device named like a cache file cannot hang a reader;
- **moved aside, never deleted**, when it fails its seal (:func:`move_aside`: to
  ``<cache>/damaged/``, logged), and rebuilt by its owner.

Inside :func:`nothing_on_disk` (what ``cache=False`` runs under) the store writes nothing that
outlives the call: :func:`persistent` is false and owners keep their artifacts in memory or in a
temporary folder they remove.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np

from featx.errors import (
    CacheWriteError,
    DamagedCacheError,
    DamagedCacheWarning,
    MissingRowsError,
)
from featx.trust.reader import file_kind, open_regular
from featx.utils.config import cache_dir

try:  # POSIX only: the process's file-size limit (`ulimit -f`)
    import resource
except ImportError:  # Windows
    resource = None

__all__ = ["DAMAGED", "SEAL_SUFFIX", "STORE_NAME", "TMP_PREFIX", "USERBLOCK", "CacheWriteError",
           "DamagedCacheError", "DamagedCacheWarning", "MissingRowsError", "cache_root_of",
           "check_seal", "chunk_rows", "h5_error", "h5_size", "move_aside", "nothing_on_disk",
           "artifact_problem", "artifact_root", "artifacts_under", "open_artifact",
           "file_digest", "open_regular", "persistent", "regular_problem", "seal_path",
           "set_aside", "write_artifact",
           "write_error", "write_h5_atomic"]

TMP_PREFIX = ".tmp-"
DAMAGED = "damaged"  # <cache>/damaged/: damaged files, moved aside and kept
#: Bytes reserved at the start of every HDF5 file featx writes (an HDF5 *user block*, which HDF5
#: skips): featx's digest header goes there.
USERBLOCK = 512
_SEAL = b"featx-digest\n"  # the header: this line, then one line of JSON
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
STORE_NAME = re.compile(r".+__[0-9a-f]{8}")  # <backbone>-<size>-<pooling>__<key8>
#: The seal of an artifact whose format has no room for one: ``<file>.seal`` beside it.
SEAL_SUFFIX = ".seal"
ARTIFACTS = "weights"  # <cache>/weights/: converted weights; <cache>/weights/onnx/: graphs

# -- scope: where artifacts go (cache=..., cache=False) --------------------------------------------
# None: the cache_dir setting; a Path: the cache an extraction was given; False: nowhere.
_ROOT: contextvars.ContextVar[Path | bool | None] = contextvars.ContextVar("featx_artifact_root",
                                                                          default=None)


@contextlib.contextmanager
def artifacts_under(root: str | os.PathLike | bool | None) -> Iterator[None]:
    """Within this block (in this thread and the context it runs), artifacts that belong to no
    one dataset (converted weights, ONNX graphs) go under the cache folder ``root``: the one an
    extraction was given with ``cache=``. ``None`` or ``True``: the ``cache_dir`` setting;
    ``False``: nowhere (:func:`nothing_on_disk`)."""
    token = _ROOT.set(None if root is None or root is True else
                      False if root is False else Path(root))
    try:
        yield
    finally:
        _ROOT.reset(token)


def nothing_on_disk():
    """Within this block the store writes nothing that outlives the call: :func:`persistent` is
    false, :func:`write_artifact` leaves nothing behind and :func:`open_artifact` finds nothing.
    ``cache=False`` runs under it.

    Examples
    --------
    >>> with nothing_on_disk():
    ...     persistent()
    False
    >>> persistent()
    True
    """
    return artifacts_under(False)


def persistent() -> bool:
    """Whether artifacts may be kept on disk now (false inside :func:`nothing_on_disk`)."""
    return _ROOT.get() is not False


def artifact_root() -> Path:
    """The cache folder artifacts go under now (:func:`artifacts_under`), else the
    ``cache_dir`` setting."""
    root = _ROOT.get()
    return root if isinstance(root, Path) else cache_dir()


# -- regular files only ---------------------------------------------------------------------------
def regular_problem(path: str | os.PathLike) -> str | None:
    """``None`` when ``path`` is a regular file (or a symlink to one), else what it is
    (``"a FIFO, not a regular file"``); ``FileNotFoundError`` when it does not exist. One
    ``stat``: nothing is opened."""
    mode = os.stat(path).st_mode
    return None if stat.S_ISREG(mode) else f"{file_kind(mode)}, not a regular file"


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
    """The cache folder a dataset file (``<cache>/x.h5``), a row store (``<cache>/rows/<slug>``),
    a store's file (``<cache>/rows/<slug>/seg-*.h5``), converted weights
    (``<cache>/weights/x``) or a graph (``<cache>/weights/onnx/x.onnx``) lives in."""
    path = Path(path)
    if path.parent.parent.name == "rows" and STORE_NAME.fullmatch(path.parent.name):
        return path.parents[2]
    if path.parent.name == "rows" and STORE_NAME.fullmatch(path.name):
        return path.parents[1]
    if path.parent.parent.name == "arrays":  # <cache>/arrays/<digest>/x
        return path.parents[2]
    if path.parent.name == "onnx" and path.parent.parent.name == ARTIFACTS:
        return path.parents[2]
    if path.parent.name == ARTIFACTS:
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


def _seal(path: Path, skip=None, key: str | None = None) -> None:
    """Write featx's digest header into the user block of the closed HDF5 file ``path``: the
    SHA-256 of every byte after the user block, less ``skip`` (a segment's feature rows, which
    carry their own digests), and the ``key`` the file was written for."""
    with open(path, "rb+") as fh:
        digest = _sha256(fh, _ranges(os.fstat(fh.fileno()).st_size, skip))
        meta = {"sha256": digest, "skip": list(skip) if skip else None}
        if key is not None:
            meta["key"] = str(key)
        header = _SEAL + json.dumps(meta, separators=(",", ":")).encode() + b"\n"
        if len(header) > USERBLOCK:
            raise ValueError(f"a seal of {len(header)} bytes does not fit the user block")
        fh.seek(0)
        fh.write(header)


def _key_problem(sealed: object, key: str | None) -> str | None:
    """Why a seal's key does not bind it to ``key`` (which may be a prefix: a store folder names
    only the first 8 hex digits of its configuration's key), or ``None``."""
    if key is None or sealed is None:  # nothing asked, or sealed before seals named their key
        return None
    key = str(key)
    if not (isinstance(sealed, str) and len(min(sealed, key, key=len)) >= 8
            and (sealed.startswith(key) or key.startswith(sealed))):
        return (f"it was written for another configuration (key {str(sealed)[:16]}, "
                f"not {str(key)[:16]})")
    return None


def check_seal(path: Path, key: str | None = None) -> bool:
    """Check a file's digest header before HDF5 reads anything of it.

    Returns ``True`` when the file carries featx's header, its bytes match it and (with
    ``key``) it was written for ``key``; ``False`` when it has none (written before featx
    sealed its files, or not by featx: its owner decides what an unsealed file may be used
    for). Raises :class:`DamagedCacheError` when the bytes or the key differ from the header,
    the header is unreadable, or the path is not a regular file, so that HDF5 never parses a
    damaged file (a damaged HDF5 file can crash or hang the library) and a FIFO never blocks.
    """
    path = Path(path)
    try:
        with open_regular(path) as fh:
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
            if why := _key_problem(meta.get("key"), key):
                raise DamagedCacheError(path, why)
            if _sha256(fh, ranges) != expected:
                raise DamagedCacheError(path, "its bytes differ from the digest written with "
                                              "them")
            return True
    except (FileNotFoundError, DamagedCacheError):
        raise
    except OSError as exc:
        raise DamagedCacheError(path, f"it cannot be read: {exc.strerror or exc}") from None


def _tmp_name(final: Path) -> Path:
    """A private temporary name beside ``final`` (readers ignore :data:`TMP_PREFIX` names; the
    suffix is kept, for writers that insist on one, such as Keras' ``.weights.h5``)."""
    return final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}")


def _commit(tmp: Path, final: Path, size: int) -> None:
    """fsync ``tmp`` and rename it to ``final`` (a refusal: :class:`CacheWriteError`)."""
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        raise write_error(final, exc, size) from None


def write_h5_atomic(final: Path, fill, size: int = 0, key: str | None = None) -> None:
    """Create ``final`` by writing a temporary file with ``fill(h5file)``, sealing it with its
    digest and ``key`` (:func:`check_seal`), fsync, ``os.replace``.

    ``fill`` may return an ``(offset, length)`` byte range the file digest leaves out (rows that
    carry their own digests). ``size`` bounds the file's size (:func:`h5_size`): that much space
    is checked before HDF5 writes, so a full disk, a file-size limit or a read-only folder raise
    one :class:`CacheWriteError` naming the folder, and the temporary file is removed.
    """
    final = Path(final)
    tmp = _tmp_name(final)
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
            _seal(tmp, skip, key)
        except OSError as exc:
            raise write_error(final, exc, size) from None
        _commit(tmp, final, size)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)


#: What a refusing disk says (full, file-size limit, quota, read-only, no permission).
_DISK_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                getattr(errno, "EDQUOT", errno.ENOSPC)}


# -- artifacts sealed beside them -----------------------------------------------------------------
def seal_path(artifact: Path) -> Path:
    """Where the seal of an artifact without room for one inside is kept: ``<file>.seal``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SEAL_SUFFIX)


def file_digest(path: str | os.PathLike) -> tuple[int, str]:
    """``(size, SHA-256 hex)`` of a regular file (:func:`open_regular`: never waits on a FIFO)."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        return size, _sha256(fh, [(0, size)])


def write_artifact(final: str | os.PathLike, key: str, produce: Callable[[Path], None], *,
                   size: int = 0, kind: str = "artifact", meta: dict | None = None
                   ) -> Path | None:
    """Write an artifact whose format has no room for a seal (an ONNX graph, a Keras weights
    file) with ``produce(tmp)``, and seal it beside itself (``<file>.seal``: its size, SHA-256
    and ``key``; ``meta``: more JSON fields for it, such as where the artifact came from).

    ``size`` (bytes, a generous bound) is reserved before ``produce`` runs, so a full disk, a
    file-size limit or a read-only folder is one :class:`CacheWriteError`. The seal is written
    first and the artifact renamed into place last: a reader that finds the new artifact finds
    its seal. Inside :func:`nothing_on_disk` nothing is written and ``None`` is returned (the
    caller keeps what it produced in memory).

    Returns the artifact's path, or ``None`` inside :func:`nothing_on_disk`.
    """
    if not persistent():
        return None
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(final, exc, size) from None
    tmp, seal_tmp = _tmp_name(final), _tmp_name(seal_path(final))
    try:
        try:
            _reserve(tmp, size)
        except OSError as exc:
            raise write_error(final, exc, size) from None
        try:
            produce(tmp)
            n, digest = file_digest(tmp)
            seal = {**(meta or {}), "featx_seal": 1, "kind": kind, "key": str(key), "size": n,
                    "sha256": digest}
            seal_tmp.write_text(json.dumps(seal, indent=1) + "\n")
        except OSError as exc:
            if exc.errno not in _DISK_ERRORS:  # the producer's own failure: the caller's to name
                raise
            raise write_error(final, exc, size) from None
        _commit(seal_tmp, seal_path(final), 0)
        _commit(tmp, final, size)
    except BaseException:
        for t in (tmp, seal_tmp):
            with contextlib.suppress(OSError):
                t.unlink()
        raise
    _fsync_dir(final.parent)
    return final


def artifact_problem(path: str | os.PathLike, key: str) -> str | None:
    """Why the artifact at ``path`` cannot be used for ``key`` (its seal is missing, unreadable,
    written for another key, or its bytes differ), or ``None`` when it can. Raises
    ``FileNotFoundError`` when there is no artifact."""
    path = Path(path)
    if why := regular_problem(path):
        return f"it is {why}"
    try:
        with open_regular(seal_path(path)) as fh:
            seal = json.loads(fh.read(64 * 1024))
        size, digest = seal["size"], seal["sha256"]
        if not (isinstance(size, int) and isinstance(digest, str)):
            raise TypeError
    except FileNotFoundError:
        return f"it has no seal ({seal_path(path).name} is missing): not written by this featx"
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return f"its seal {seal_path(path).name} is unreadable"
    if why := _key_problem(seal.get("key"), key):
        return why
    try:
        n, actual = file_digest(path)
    except OSError as exc:
        return f"it cannot be read: {exc.strerror or exc}"
    if n != size:
        return f"it has {n} bytes where its seal says {size} (truncated or overwritten)"
    if actual != digest:
        return "its bytes differ from the digest written with them (modified)"
    return None


def open_artifact(path: str | os.PathLike, key: str, *, warn=DamagedCacheWarning
                  ) -> Path | None:
    """The artifact at ``path`` when its seal binds it to ``key`` and its bytes match, else
    ``None``: missing, or failing its seal, when it is moved aside (:func:`move_aside`, with its
    seal) with a warning of class ``warn`` naming both places, so that its owner rebuilds it.
    Inside :func:`nothing_on_disk` it is ``None`` (nothing on disk is used)."""
    if not persistent():
        return None
    path = Path(path)
    try:
        why = artifact_problem(path, key)
    except FileNotFoundError:
        return None
    if why is None:
        return path
    dest = set_aside(path, why)
    warnings.warn(warn(f"featx: cache file {path} cannot be used ({why}); moved to {dest} and "
                       "rebuilt"), stacklevel=3)
    return None


def set_aside(artifact: str | os.PathLike, why: str) -> Path:
    """Move an artifact sealed beside itself (:func:`write_artifact`) to ``damaged/`` with its
    seal (:func:`move_aside`); returns where the artifact went."""
    artifact = Path(artifact)
    dest = move_aside(artifact, why)
    if seal_path(artifact).exists():
        with contextlib.suppress(CacheWriteError):
            move_aside(seal_path(artifact), why)
    return dest


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
