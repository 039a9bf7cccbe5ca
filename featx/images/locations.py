"""Where an image's bytes are: one string, the *location*, read by :func:`read_bytes`.

A location is one of::

    /abs/path/photo.jpg                           a local file (opened by open_regular)
    s3://bucket/a.jpg  https://host/a.jpg         any fsspec URL (``"://"``), or an fsspec chain
    memory://a.jpg     zip://a.jpg::photos.zip    (``"::"``); needs ``pip install 'featx[remote]'``
    tfrecord://<shard>#<record>@<offset>+<size>   the image bytes of one tf.train.Example
    webdataset://<shard>#<member>@<offset>+<size> one member of an uncompressed tar shard
    parquet://<file>#<column>@<row group>/<row>   one row of a Parquet image column

The container forms are written by :meth:`featx.data.ImageDataset.from_tfrecords`,
``from_webdataset`` and ``from_parquet``; ``<shard>`` and ``<file>`` are themselves a local path or
a URL. The record's byte range is part of the location, so a reader (a decode thread, a Ray
worker on another machine) reads just those bytes with one ranged read, without the shard's
index. :data:`READERS` maps a scheme to its reader; everything that reads pixels (hashing, the
decode pool, Ray's decode tasks, ``read_image``) goes through :func:`read_bytes`.

Remote reads retry transient failures (a 5xx or 429 answer, a reset connection, a time-out)
:data:`RETRIES` times with a short back-off; what still fails raises ``OSError`` with the reason,
which callers list in ``skipped``.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from urllib.parse import quote, unquote

from featx.images.files import open_regular
from featx.images.files import read_bytes as read_file
from featx.utils.registry import Registry

__all__ = ["EXTRAS", "IO_WORKERS", "READERS", "RETRIES", "Record", "check_stores",
           "container_location",
           "image_cell", "io_executor", "is_remote", "is_url", "location_suffix", "parse_container",
           "process_local", "require_pyarrow", "url_to_fs",
           "read_bytes", "read_many", "require_fsspec", "split_url"]

#: Attempts after the first for a transient failure of a remote read.
RETRIES = 3
_BACKOFF = 0.1  # seconds before the first retry, doubled each time
#: Threads reading remote locations ahead of the decoders (I/O bound: many more than cores).
IO_WORKERS = 16
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
              ValueError, KeyError, ImportError, TypeError)


def require_fsspec():
    """``fsspec``, or an ``ImportError`` saying what to install."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the ray extra and most stacks
        raise ImportError("reading URLs needs fsspec: pip install 'featx[remote]' "
                          "(and 'featx[s3]' or 'featx[gcs]' for those stores)") from None
    return fsspec


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://...``) or an fsspec chain (``a::b``) rather than
    a local path.

    Examples
    --------
    >>> is_url("s3://bucket/a.jpg"), is_url("zip://a.jpg::photos.zip"), is_url("/data/a.jpg")
    (True, True, False)
    """
    s = os.fspath(location)
    return isinstance(s, str) and ("://" in s or "::" in s)


def split_url(location: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a URL; ``("", location)`` for a local path."""
    if not is_url(location):
        return "", location
    head = location.split("::", 1)[0]
    scheme, sep, _ = head.partition("://")
    return (scheme.lower(), location[len(scheme) + 3:]) if sep else ("", location)


class Record(NamedTuple):
    """A container location taken apart (:func:`parse_container`)."""

    scheme: str  # "tfrecord", "webdataset" or "parquet"
    file: str  # the shard or file: a local path or a URL
    name: str  # the record number, member name or column
    offset: int  # byte offset (row group for parquet)
    size: int  # byte count (row within the row group for parquet)


def container_location(scheme: str, file: str, name: str, offset: int, size: int) -> str:
    """The location of one record of a container file (see the module docstring).

    Examples
    --------
    >>> loc = container_location("tfrecord", "/data/train.tfrecord", "17", 1024, 300)
    >>> loc
    'tfrecord:///data/train.tfrecord#17@1024+300'
    >>> parse_container(loc).size
    300
    >>> parse_container(container_location("parquet", "x.parquet", "my #1", 2, 5)).name
    'my #1'
    """
    sep = "/" if scheme == "parquet" else "+"
    return f"{scheme}://{file}#{quote(name, safe='/')}@{int(offset)}{sep}{int(size)}"


def parse_container(location: str) -> Record:
    """The parts of a container location; ``ValueError`` when it is not one."""
    scheme, rest = split_url(location)
    file, hash_, frag = rest.rpartition("#")
    name, at, where = frag.rpartition("@")
    a, sep, b = where.partition("/" if scheme == "parquet" else "+")
    if not (hash_ and at and sep and a.isdigit() and b.isdigit()) or scheme not in _CONTAINERS:
        raise ValueError(f"not a container location: {location!r}")
    return Record(scheme, file, unquote(name), int(a), int(b))


def location_suffix(location: str) -> str | None:
    """The file extension a location names (lower case, ``""`` for none), or ``None`` for a
    container record (its format says it holds an image).

    Examples
    --------
    >>> location_suffix("https://host/a/B.JPG?sig=1"), location_suffix("/x/y.png")
    ('.jpg', '.png')
    """
    scheme, rest = split_url(location)
    if scheme in _CONTAINERS:
        return None
    if scheme:
        rest = rest.split("::", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return os.path.splitext(rest.rstrip("/"))[1].lower()


def is_remote(location: str) -> bool:
    """Whether reading ``location`` goes through fsspec (a URL, or a container whose file is a
    URL): these reads are worth running many at a time."""
    scheme, rest = split_url(location)
    if scheme in _CONTAINERS:
        return is_url(rest.rpartition("#")[0])
    return bool(scheme) or is_url(location)


def process_local(location: str) -> bool:
    """Whether ``location`` exists only inside this process (fsspec's ``memory://``, directly
    or as a container's file): other processes, such as Ray workers, cannot read it."""
    scheme, rest = split_url(location)
    if scheme in _CONTAINERS:
        scheme, _ = split_url(rest.rpartition("#")[0])
    return scheme == "memory"


# -- readers --------------------------------------------------------------------------------------
_TAR_LOCK = threading.Lock()  # fsspec's tar file system reads every member through one handle


#: URL scheme -> the featx extra that installs its fsspec file system.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "http": "remote",
          "https": "remote"}


def url_to_fs(url: str):
    """``(file system, path)`` of an fsspec URL; an ``ImportError`` naming the featx extra to
    install when the store's package is missing."""
    fsspec = require_fsspec()
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        extra = EXTRAS.get(split_url(url)[0], "remote")
        raise ImportError(f"reading {url!r} needs a package that is not installed ({exc}): "
                          f"pip install 'featx[{extra}]'") from None


def check_stores(locations: Sequence[str]) -> None:
    """Fail now, with the extra to install, when a URL scheme among ``locations`` (or among
    their containers' files) has no installed file system; one check per scheme."""
    seen: set[str] = set()
    for loc in locations:
        scheme, rest = split_url(loc)
        if scheme in _CONTAINERS:
            loc = rest.rpartition("#")[0]
            scheme, _ = split_url(loc)
        if scheme and scheme not in seen:
            seen.add(scheme)
            url_to_fs(loc)


def require_pyarrow():
    """``pyarrow.parquet``, or an ``ImportError`` saying what to install."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with the ray extra
        raise ImportError("reading Parquet needs pyarrow: pip install 'featx[parquet]'") from None
    return pq


_fs = url_to_fs


def _read_url(url: str) -> bytes:
    fs, path = _fs(url)
    if "tar" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        with _TAR_LOCK:
            return fs.cat_file(path)
    return fs.cat_file(path)


def _read_range(file: str, offset: int, size: int) -> bytes:
    """``size`` bytes of ``file`` from ``offset``: one ranged read (one HTTP Range request)."""
    if not is_url(file):
        with open_regular(file) as f:
            f.seek(offset)
            data = f.read(size)
    else:
        fs, path = _fs(file)
        data = fs.cat_file(path, start=offset, end=offset + size)
        if len(data) >= offset + size > size:  # a server that ignores Range sends the whole file
            data = data[offset:offset + size]
    if len(data) != size:
        raise OSError(errno.EIO, f"short read: {len(data)} of {size} bytes at offset {offset}",
                      file)
    return data


def _read_record(location: str) -> bytes:
    rec = parse_container(location)
    return _read_range(rec.file, rec.offset, rec.size)


_ROW_GROUPS: OrderedDict = OrderedDict()  # (file, column, row group) -> list of bytes
_ROW_GROUPS_KEPT = 4
_ROW_GROUP_LOCK = threading.Lock()


def image_cell(value) -> bytes | None:
    """The encoded bytes of one Parquet/Arrow image cell: ``bytes``, or the ``{bytes, path}``
    struct Hugging Face datasets write (``None`` when it holds no bytes)."""
    if isinstance(value, dict):
        value = value.get("bytes")
    return None if value is None else bytes(value)


def _read_parquet_row(location: str) -> bytes:
    """One cell of a Parquet image column. Decode threads read neighbouring rows, so the last few
    row groups read are kept (a row group of images is a few MB: Hugging Face writes 100 rows)."""
    pq = require_pyarrow()
    rec = parse_container(location)
    key = (rec.file, rec.name, rec.offset)
    with _ROW_GROUP_LOCK:
        cells = _ROW_GROUPS.get(key)
        if cells is None:
            if is_url(rec.file):
                fs, path = _fs(rec.file)
                with fs.open(path, "rb") as f:
                    table = pq.ParquetFile(f).read_row_group(rec.offset, columns=[rec.name])
            else:
                table = pq.ParquetFile(rec.file).read_row_group(rec.offset, columns=[rec.name])
            cells = [image_cell(v) for v in table.column(0).to_pylist()]
            _ROW_GROUPS[key] = cells
            while len(_ROW_GROUPS) > _ROW_GROUPS_KEPT:
                _ROW_GROUPS.popitem(last=False)
        _ROW_GROUPS.move_to_end(key)
    data = cells[rec.size]
    if data is None:
        raise OSError(errno.ENODATA, "the image cell holds no bytes", location)
    return data


#: Location scheme -> reader(location) -> bytes. ``""``: a local path; ``"url"``: any other URL.
READERS: Registry[Callable[[str], bytes]] = Registry("reader", {
    "": read_file,
    "url": _read_url,
    "tfrecord": _read_record,
    "webdataset": _read_record,
    "parquet": _read_parquet_row,
})
_CONTAINERS = ("tfrecord", "webdataset", "parquet")


def _transient(exc: BaseException) -> bool:
    status = getattr(exc, "status", None)
    if isinstance(status, int):  # an HTTP answer (aiohttp's ClientResponseError)
        return status >= 500 or status in (408, 429)
    return not isinstance(exc, _PERMANENT)


def _reason(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return f"HTTP {status} {getattr(exc, 'message', '')}".strip()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def read_bytes(location: str | os.PathLike) -> bytes:
    """The bytes at ``location`` (a local path, a URL or a container record: see the module
    docstring).

    Local files are read once (:func:`featx.images.open_regular`: only regular files). Remote
    reads are retried :data:`RETRIES` times on transient errors.

    Raises
    ------
    OSError
        ``FileNotFoundError`` for a location that does not exist (a 404), else an ``OSError``
        whose ``strerror`` is the reason (``"HTTP 403 Forbidden"``, ``"... after 4 attempts"``).

    Examples
    --------
    >>> import fsspec
    >>> with fsspec.open("memory://featx-doc/a.bin", "wb") as f:
    ...     _ = f.write(b"pixels")
    >>> read_bytes("memory://featx-doc/a.bin")
    b'pixels'
    """
    location = os.fspath(location)
    scheme, _ = split_url(location)
    reader = READERS[scheme if scheme in _CONTAINERS else "url" if is_url(location) else ""]
    if reader is read_file:
        return read_file(location)
    for attempt in range(RETRIES + 1):
        try:
            return reader(location)
        except Exception as exc:  # noqa: BLE001 - any store's error becomes this file's reason
            if isinstance(exc, FileNotFoundError):
                raise FileNotFoundError(errno.ENOENT, "not found", location) from None
            if isinstance(exc, ImportError):
                raise
            if not _transient(exc):
                raise OSError(errno.EIO, _reason(exc), location) from None
            if attempt == RETRIES:
                raise OSError(errno.EIO, f"{_reason(exc)} (after {RETRIES + 1} attempts)",
                              location) from None
            time.sleep(_BACKOFF * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


_IO: ThreadPoolExecutor | None = None
_IO_LOCK = threading.Lock()


def io_executor() -> ThreadPoolExecutor:
    """The process's pool of :data:`IO_WORKERS` threads for remote reads (made on first use)."""
    global _IO
    with _IO_LOCK:
        if _IO is None:
            _IO = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="featx-io")
        return _IO


def _read_or_error(location: str) -> bytes | OSError:
    try:
        return read_bytes(location)
    except OSError as exc:
        return exc


def read_many(locations: Sequence[str]) -> list[bytes | OSError]:
    """:func:`read_bytes` of each location, in order, an ``OSError`` in place of a failed read.
    Remote ones are read concurrently on :func:`io_executor`; must not be called from it."""
    remote = [i for i, loc in enumerate(locations) if is_remote(loc)]
    out: list = [None] * len(locations)
    futures = {i: io_executor().submit(_read_or_error, locations[i]) for i in remote}
    for i, loc in enumerate(locations):
        out[i] = futures[i].result() if i in futures else _read_or_error(loc)
    return out
