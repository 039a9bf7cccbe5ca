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

Every read goes through the bounded reader (:mod:`featx.trust.reader`): at most
``max_item_bytes`` per item, one ``item_timeout`` deadline per item, and transient failures of
remote reads (a 5xx or 429 answer, a reset connection) retried :data:`RETRIES` times with a
short back-off; what still fails raises ``OSError`` with the reason, which callers list in
``skipped``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from urllib.parse import quote, unquote

from featx.errors import ItemTooLargeError
from featx.trust.reader import (
    CONTAINER_SCHEMES,
    EXTRAS,
    RETRIES,
    Budget,
    is_local,
    is_url,
    open_regular,
    read_item,
    read_local,
    read_url,
    require_fsspec,
    split_url,
    url_to_fs,
)
from featx.utils.registry import Registry

__all__ = ["EXTRAS", "IO_WORKERS", "READERS", "RETRIES", "Record", "check_stores",
           "container_location",
           "image_cell", "io_executor", "is_remote", "is_url", "location_suffix", "parse_container",
           "process_local", "require_pyarrow", "url_to_fs",
           "read_bytes", "read_many", "require_fsspec", "split_url"]

#: Threads reading remote locations ahead of the decoders (I/O bound: many more than cores).
IO_WORKERS = 16
_CONTAINERS = CONTAINER_SCHEMES


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


def _read_range(file: str, offset: int, size: int, budget: Budget) -> bytes:
    """``size`` bytes of ``file`` from ``offset``: one ranged read (one HTTP Range request)."""
    if is_url(file):
        return read_url(file, budget, offset, size)
    return read_local(file, budget, offset, size)


def _read_record(location: str, budget: Budget) -> bytes:
    rec = parse_container(location)
    return _read_range(rec.file, rec.offset, rec.size, budget)


_ROW_GROUPS: OrderedDict = OrderedDict()  # (file, column, row group) -> list of bytes
_ROW_GROUPS_KEPT = 4
_ROW_GROUP_LOCK = threading.Lock()


def image_cell(value) -> bytes | None:
    """The encoded bytes of one Parquet/Arrow image cell: ``bytes``, or the ``{bytes, path}``
    struct Hugging Face datasets write (``None`` when it holds no bytes)."""
    if isinstance(value, dict):
        value = value.get("bytes")
    return None if value is None else bytes(value)


#: A row group's image column is read whole (its cells are then kept for the neighbouring rows),
#: so it may hold at most this many times ``max_item_bytes`` (1 GiB by default).
ROW_GROUP_ITEMS = 4


def _column_bytes(pf, row_group: int, column: str) -> int:
    """The declared uncompressed size of ``column`` (all its leaves: a struct's ``bytes`` and
    ``path``) in one row group, from the file's footer."""
    meta = pf.metadata.row_group(row_group)
    return sum(meta.column(i).total_uncompressed_size for i in range(meta.num_columns)
               if meta.column(i).path_in_schema.split(".", 1)[0] == column)


def _read_parquet_row(location: str, budget: Budget) -> bytes:
    """One cell of a Parquet image column. Decode threads read neighbouring rows, so the last few
    row groups read are kept (a row group of images is a few MB: Hugging Face writes 100 rows).
    A row group whose image column declares more than :data:`ROW_GROUP_ITEMS` times the cap
    is refused before it is read."""
    pq = require_pyarrow()
    rec = parse_container(location)
    key = (rec.file, rec.name, rec.offset)
    with _ROW_GROUP_LOCK:
        cells = _ROW_GROUPS.get(key)
        if cells is None:
            budget.left(location)
            with contextlib.ExitStack() as stack:
                if is_url(rec.file):
                    fs, path = url_to_fs(rec.file)
                    pf = pq.ParquetFile(stack.enter_context(fs.open(path, "rb")))
                else:
                    pf = pq.ParquetFile(stack.enter_context(open_regular(rec.file)))
                declared = _column_bytes(pf, rec.offset, rec.name)
                if declared > ROW_GROUP_ITEMS * budget.limit:
                    raise ItemTooLargeError(
                        errno.EFBIG, f"its row group's {rec.name!r} column is {declared} bytes, "
                        f"over {ROW_GROUP_ITEMS} x max_item_bytes ({budget.limit}; "
                        "FEATX_MAX_ITEM_BYTES): write smaller row groups", location)
                table = pf.read_row_group(rec.offset, columns=[rec.name])
            cells = [image_cell(v) for v in table.column(0).to_pylist()]
            _ROW_GROUPS[key] = cells
            while len(_ROW_GROUPS) > _ROW_GROUPS_KEPT:
                _ROW_GROUPS.popitem(last=False)
        _ROW_GROUPS.move_to_end(key)
    data = cells[rec.size]
    if data is None:
        raise OSError(errno.ENODATA, "the image cell holds no bytes", location)
    budget.check_size(len(data), location)
    return data


#: Location scheme -> ``reader(location, budget) -> bytes`` (:class:`featx.trust.reader.Budget`:
#: the item's cap and deadline). ``""``: a local path; ``"url"``: any other URL.
READERS: Registry[Callable[[str, Budget], bytes]] = Registry("reader", {
    "": read_local,
    "url": read_url,
    "tfrecord": _read_record,
    "webdataset": _read_record,
    "parquet": _read_parquet_row,
})


def read_bytes(location: str | os.PathLike) -> bytes:
    """The bytes at ``location`` (a local path, a URL or a container record: see the module
    docstring).

    Read by the bounded reader (:func:`featx.trust.reader.read_item`): at most
    ``max_item_bytes``, within ``item_timeout``. Local items (files, ``file://``,
    ``memory://``) are read once (:func:`featx.images.open_regular`: only regular files).
    Remote reads are retried :data:`RETRIES` times on transient errors.

    Raises
    ------
    OSError
        ``FileNotFoundError`` for a location that does not exist (a 404),
        :class:`~featx.errors.ItemTooLargeError` or :class:`~featx.errors.ItemTimeoutError`
        for an item over the bounds, else an ``OSError`` whose ``strerror`` is the reason
        (``"HTTP 403 Forbidden"``, ``"... after 4 attempts"``).

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
    return read_item(location, reader, retries=0 if is_local(location) else RETRIES)


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
