"""The bounded reader: every item featx reads goes through it, with a size cap, a deadline and
bounded retries; and the one rule for what a list may name.

- **Size**: an item (an image file, a URL's body, an archive member, a container record) has at
  most :func:`max_item_bytes` bytes (the ``max_item_bytes`` setting, ``FEATX_MAX_ITEM_BYTES``,
  default 256 MiB). A size known before reading (a file's size, a member's, a
  ``Content-Length``, a record's range) over the cap refuses the item at once; otherwise reads
  are streamed and stop one byte past the cap. Either way :class:`~featx.errors.ItemTooLargeError`
  (an ``OSError``), never a ``MemoryError``.
- **Time**: one deadline per item, retries included (:func:`item_timeout`, the ``item_timeout``
  setting, ``FEATX_ITEM_TIMEOUT``, default 60 s). An HTTP body that trickles is cut at the
  deadline (the request is cancelled), any other stream is checked between chunks:
  :class:`~featx.errors.ItemTimeoutError` (an ``OSError``).
- **Retries**: a transient failure (HTTP 5xx, 408, 429, a reset connection) is retried
  :data:`RETRIES` times with a doubling pause, while the deadline allows; an item over the cap,
  a missing one and any other permanent failure are read once.
- **Where**: :func:`confine` is the one rule of what a list (a CSV, a Parquet file's path cells)
  may name: a list that came from a remote place names only remote items, and a container's
  path cells stay in its folder, unless the user passes ``allow_local=True``.

Locations are strings: a local path, or an fsspec URL or chain (``https://h/a.jpg``,
``zip://a.jpg::photos.zip``). The container forms (``tfrecord://...``) are
:mod:`featx.images.locations`'; their reads come here as byte ranges.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from featx.errors import ItemTimeoutError, ItemTooLargeError
from featx.utils.config import get_config

__all__ = ["CONTAINER_SCHEMES", "EXTRAS", "ITEM_TIMEOUT", "MAX_ITEM_BYTES", "RETRIES", "Budget",
           "confine", "is_local", "is_url", "item_timeout", "max_item_bytes", "open_regular",
           "read_capped", "read_file", "read_item", "read_local", "read_url", "require_fsspec",
           "split_url", "url_to_fs"]

#: The default cap on one item's bytes (an image, a record, a member): generous for photos.
MAX_ITEM_BYTES = 256 * 2**20
#: The default deadline of one item, retries included, in seconds.
ITEM_TIMEOUT = 60.0
#: Attempts after the first for a transient failure of a remote read.
RETRIES = 3
_BACKOFF = 0.1  # seconds before the first retry, doubled each time
_CHUNK = 1 << 20  # bytes per read of a stream: the deadline is checked between chunks
#: Location schemes whose target is a record inside another file (``<scheme>://<file>#...``).
CONTAINER_SCHEMES = ("tfrecord", "webdataset", "parquet")
#: fsspec protocols that read this machine's files or this process's memory.
LOCAL_PROTOCOLS = frozenset({"file", "local", "memory"})
#: URL scheme -> the featx extra that installs its fsspec file system.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "http": "remote",
          "https": "remote"}
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
              ValueError, KeyError, ImportError, TypeError)


def max_item_bytes() -> int:
    """The most bytes one item may have: the ``max_item_bytes`` setting
    (:func:`featx.config_context`), else ``$FEATX_MAX_ITEM_BYTES``, else 256 MiB.

    Examples
    --------
    >>> from featx import config_context
    >>> with config_context(max_item_bytes=1000):
    ...     max_item_bytes()
    1000
    """
    return get_config("max_item_bytes")


def item_timeout() -> float:
    """Seconds one item may take to read, retries included: the ``item_timeout`` setting, else
    ``$FEATX_ITEM_TIMEOUT``, else 60.

    Examples
    --------
    >>> item_timeout() > 0
    True
    """
    return float(get_config("item_timeout"))


def _size(n: int) -> str:
    """``n`` bytes for a message: ``"12 GiB"``, ``"300 bytes"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


class Budget:
    """What reading one item may still take: ``limit`` bytes, and time until ``deadline`` (on
    :func:`time.monotonic`). Made once per item by :func:`read_item`, shared by its attempts.

    Examples
    --------
    >>> b = Budget(limit=10, timeout=5.0)
    >>> b.check_size(10, "a.jpg")
    >>> try:
    ...     b.check_size(11, "a.jpg")
    ... except OSError as exc:
    ...     print(exc.strerror)
    11 bytes, over the 10 bytes allowed per item (max_item_bytes, FEATX_MAX_ITEM_BYTES)
    """

    __slots__ = ("deadline", "limit", "timeout")

    def __init__(self, limit: int | None = None, timeout: float | None = None) -> None:
        self.limit = max_item_bytes() if limit is None else int(limit)
        self.timeout = item_timeout() if timeout is None else float(timeout)
        self.deadline = time.monotonic() + self.timeout

    def remaining(self) -> float:
        """Seconds left (negative once past the deadline)."""
        return self.deadline - time.monotonic()

    def left(self, source: str) -> float:
        """Seconds left; :class:`~featx.errors.ItemTimeoutError` when none are."""
        left = self.remaining()
        if left <= 0:
            raise self.timed_out(source)
        return left

    def timed_out(self, source: str, why: str = "") -> ItemTimeoutError:
        return ItemTimeoutError(errno.ETIMEDOUT, f"{why}{'; ' if why else ''}not read within "
                                f"{self.timeout:g} s (item_timeout, FEATX_ITEM_TIMEOUT)", source)

    def check_size(self, size: int, source: str, streamed: bool = False) -> None:
        """:class:`~featx.errors.ItemTooLargeError` when ``size`` bytes are over the limit."""
        if size > self.limit:
            what = f"more than {_size(self.limit)}" if streamed else _size(size)
            raise ItemTooLargeError(errno.EFBIG, f"{what}, over the {_size(self.limit)} "
                                    "allowed per item (max_item_bytes, FEATX_MAX_ITEM_BYTES)",
                                    source)


# -- locations --------------------------------------------------------------------------------
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


def is_local(location: str) -> bool:
    """Whether reading ``location`` reads this machine's files or this process's memory: a
    path, a ``file://`` (``local://``, ``memory://``) URL, a chain whose target is one
    (``zip://a.jpg::photos.zip``), a container record of such a file.

    Examples
    --------
    >>> is_local("/etc/hostname"), is_local("file:///etc/hostname"), is_local("https://h/a.jpg")
    (True, True, False)
    >>> is_local("zip://a.jpg::https://h/a.zip"), is_local("zip://a.jpg::photos.zip")
    (False, True)
    >>> is_local("tfrecord://s3://b/t.tfrecord#0@12+5")
    False
    """
    location = os.fspath(location)
    scheme, rest = split_url(location)
    if scheme in CONTAINER_SCHEMES:
        return is_local(rest.rpartition("#")[0])
    if not is_url(location):
        return True
    parts = location.split("::")
    for i, part in enumerate(parts):
        protocol, sep, _ = part.partition("://")
        if (protocol if sep else part).lower() in LOCAL_PROTOCOLS:
            return True
        if not sep and i == len(parts) - 1:  # a chain's target written as a plain path
            return True
    return False


def confine(item: str, origin: str, *, allow_local: bool = False,
            contained: bool = False) -> str | None:
    """Why a list read at ``origin`` may not name ``item``, or ``None`` when it may: the one
    rule of every list featx reads (a CSV, a Parquet file's path cells).

    A list that came from a remote location (:func:`is_local` is false) names only remote
    items: a CSV fetched over HTTP that names ``/etc/passwd`` or ``file:///...`` must not make
    featx read local files. With ``contained`` (a container's own cells, as written), a path
    must also stay inside ``origin``'s folder: absolute paths, ``../`` out of it and local URLs
    (``file://``) are refused (a container never reads outside itself); remote URLs follow the
    first rule. ``allow_local=True`` is the user's opt-in: the
    list is trusted and may name anything.

    Examples
    --------
    >>> confine("https://h/b.jpg", "https://h/list.csv") is None
    True
    >>> print(confine("/etc/passwd", "https://h/list.csv"))
    a local file named by a list read from a remote location: not read (allow_local=True, or ...)
    >>> confine("/etc/passwd", "https://h/list.csv", allow_local=True) is None
    True
    >>> print(confine("../../x.jpg", "/data/train.parquet", contained=True))
    '../../x.jpg' leaves the folder of the file that names it: a container is read only inside ...
    """
    if allow_local:
        return None
    outside = (f"{item!r} leaves the folder of the file that names it: a container is read "
               "only inside itself (allow_local=True, or --allow-local, reads it)")
    if contained and not is_url(item):
        norm = posixpath.normpath(item.replace(os.sep, "/"))
        if os.path.isabs(item) or posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
            return outside
        return None  # inside origin's folder: as local as origin
    if is_local(item) and (contained or not is_local(origin)):
        return outside if contained else (
            "a local file named by a list read from a remote location: not read "
            "(allow_local=True, or --allow-local, reads it)")
    return None


# -- opening ----------------------------------------------------------------------------------
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
# O_NONBLOCK: opening a FIFO does not wait for a writer (no effect on regular files)
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def file_kind(mode: int) -> str:
    """What a ``st_mode`` that is not a regular file is: ``"a FIFO"``, ``"a folder"``, ..."""
    return next((kind for test, kind in _KINDS if test(mode)), "a special file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (or a symlink to one).

    A FIFO or a device given as an image would otherwise block the reader forever or never
    end; they are refused at once, without reading from them.

    Raises
    ------
    OSError
        The usual ones (missing, no permission, symlink loop), and ``EINVAL`` with
        ``strerror`` "a FIFO, not a regular file" (or a folder, socket, device) for anything
        that is not a regular file.
    """
    fd = os.open(path, _FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{file_kind(mode)}, not a regular file", os.fspath(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def require_fsspec():
    """``fsspec``, or an ``ImportError`` saying what to install."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the ray extra and most stacks
        raise ImportError("reading URLs needs fsspec: pip install 'featx[remote]' "
                          "(and 'featx[s3]' or 'featx[gcs]' for those stores)") from None
    return fsspec


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


# -- reading ----------------------------------------------------------------------------------
def read_capped(f: BinaryIO, budget: Budget, source: str, size: int | None = None) -> bytes:
    """The rest of ``f`` (or its next ``size`` bytes), read in chunks: never more than
    ``budget.limit + 1`` bytes (then :class:`~featx.errors.ItemTooLargeError`), the deadline
    checked before each chunk."""
    want = budget.limit + 1 if size is None else size
    chunks, got = [], 0
    while got < want:
        budget.left(source)
        chunk = f.read(min(_CHUNK, want - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if size is None:
        budget.check_size(got, source, streamed=True)
    return b"".join(chunks)


def _short(data: bytes, size: int | None, offset: int, source: str) -> bytes:
    if size is not None and len(data) != size:
        raise OSError(errno.EIO, f"short read: {len(data)} of {size} bytes at offset {offset}",
                      source)
    return data


def read_local(path: str, budget: Budget, offset: int = 0, size: int | None = None) -> bytes:
    """The bytes of a regular file (or ``size`` of them from ``offset``): refused from its size
    at once when over the cap (a 12 GB sparse file is never read)."""
    with open_regular(path) as f:
        budget.check_size(size if size is not None else os.fstat(f.fileno()).st_size - offset,
                          path)
        if offset:
            f.seek(offset)
        return _short(read_capped(f, budget, path, size), size, offset, path)


_TAR_LOCK = threading.Lock()  # fsspec's tar file system reads every member through one handle


def _protocols(fs) -> tuple[str, ...]:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def read_url(url: str, budget: Budget, offset: int = 0, size: int | None = None) -> bytes:
    """The bytes at an fsspec URL (or ``size`` of them from ``offset``), bounded by ``budget``.

    HTTP(S) is streamed by featx (:func:`_http_read`: cut at the cap and at the deadline); other
    stores with an event loop (S3, GCS, ...) get one ranged read of at most the cap, cancelled
    at the deadline; in-process file systems (zip, tar, memory) are refused from their
    declared size, then streamed."""
    if size is not None:
        budget.check_size(size, url)
    fs, path = url_to_fs(url)
    if {"file", "local"} & set(_protocols(fs)) and "::" not in url:  # a FIFO must not block
        return read_local(path, budget, offset, size)
    if {"http", "https"} & set(_protocols(fs)):
        return _sync(fs, _http_read(fs, path, budget, url, offset, size), budget, url)
    if getattr(fs, "async_impl", False) and getattr(fs, "loop", None) is not None:
        end = offset + (size if size is not None else budget.limit + 1)
        data = _sync(fs, fs._cat_file(path, start=offset, end=end), budget, url)
        if size is None:
            budget.check_size(len(data), url, streamed=True)
        return _short(data, size, offset, url)
    if size is None:
        try:
            declared = fs.size(path)
        except Exception:  # noqa: BLE001 - no declared size: the stream's cap decides
            declared = None
        if declared is not None:
            budget.check_size(int(declared) - offset, url)
    lock = _TAR_LOCK if "tar" in _protocols(fs) else contextlib.nullcontext()
    with lock, fs.open(path, "rb") as f:
        if offset:
            f.seek(offset)
        return _short(read_capped(f, budget, url, size), size, offset, url)


def _sync(fs, coro, budget: Budget, source: str):
    """Run ``coro`` on ``fs``'s event loop until the deadline; past it the coroutine is
    cancelled (its connection closed) and :class:`~featx.errors.ItemTimeoutError` raised."""
    import asyncio

    from fsspec.asyn import FSTimeoutError, sync

    try:
        left = budget.left(source)
    except ItemTimeoutError:
        coro.close()
        raise
    try:
        # wait_for cancels at the deadline; sync's own time-out (polled each second) is a
        # backstop should the loop not answer
        return sync(fs.loop, asyncio.wait_for, coro, left, timeout=left + 2)
    except FSTimeoutError:
        if budget.remaining() <= 0:
            raise budget.timed_out(source) from None
        raise OSError(errno.ETIMEDOUT, "the store timed out", source) from None


async def _http_read(fs, path: str, budget: Budget, source: str, offset: int,
                     size: int | None) -> bytes:
    """An HTTP(S) GET on fsspec's session, streamed: a ``Content-Length`` over the cap refuses
    at once, a body longer than the cap (chunked, endless) stops one byte past it; a ranged
    read keeps only its range, even from a server that ignores ``Range``. Written here because
    fsspec's ``cat_file`` reads whole bodies."""
    kw = dict(fs.kwargs)
    headers = dict(kw.pop("headers", None) or {})
    if size is not None:
        headers["Range"] = f"bytes={offset}-{offset + size - 1}"
    session = await fs.set_session()
    async with session.get(fs.encode_url(path), headers=headers, **kw) as r:
        fs._raise_not_found_for_status(r, path)  # 404 -> FileNotFoundError; else by status
        skip = offset if size is not None and r.status != 206 else 0  # Range ignored
        identity = r.headers.get("Content-Encoding", "identity") in ("", "identity")
        if size is None and identity and r.content_length is not None:
            budget.check_size(r.content_length, source)
        want = size if size is not None else budget.limit + 1
        chunks, got = [], 0
        async for chunk in r.content.iter_chunked(_CHUNK):
            if skip:
                drop = min(skip, len(chunk))
                chunk, skip = chunk[drop:], skip - drop
            chunks.append(chunk[: want - got])
            got += len(chunks[-1])
            if got >= want:
                break
    if size is None:
        budget.check_size(got, source, streamed=True)
    return _short(b"".join(chunks), size, offset, source)


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


def read_item(location: str, read: Callable[[str, Budget], bytes], *,
              retries: int = RETRIES) -> bytes:
    """``read(location, budget)`` under one :class:`Budget`: the bytes of one item, bounded.

    Transient failures are retried ``retries`` times with a doubling pause while the deadline
    allows; an item over the cap, past the deadline, missing, or failing for good is not
    read again. With ``retries=0`` (local items) an OS error is raised as the OS gave it.

    Raises
    ------
    OSError
        :class:`~featx.errors.ItemTooLargeError`, :class:`~featx.errors.ItemTimeoutError`,
        ``FileNotFoundError`` (``"not found"``), or an ``OSError`` whose ``strerror`` is the
        reason (``"HTTP 403 Forbidden"``, ``"HTTP 500 ... (after 4 attempts)"``). Never a
        ``MemoryError``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"x" * 100)
    >>> len(read_item(path, read_local))
    100
    >>> from featx import config_context
    >>> with config_context(max_item_bytes=10):
    ...     read_item(path, read_local)
    Traceback (most recent call last):
    ...
    featx.errors.ItemTooLargeError: [Errno 27] 100 bytes, over the 10 bytes allowed per item ...
    """
    budget = Budget()
    attempt = 0
    while True:
        try:
            return read(location, budget)
        except (ItemTooLargeError, ItemTimeoutError, ImportError):
            raise
        except MemoryError:  # a decompressor or a store's client that allocated past the cap
            raise ItemTooLargeError(errno.ENOMEM, "not enough memory to read it", location
                                    ) from None
        except Exception as exc:  # noqa: BLE001 - any store's error becomes this item's reason
            if budget.remaining() <= 0:
                raise budget.timed_out(location, _reason(exc)) from None
            if retries == 0 and isinstance(exc, OSError) and exc.strerror:
                raise  # a local file's error, as the OS gave it
            if isinstance(exc, FileNotFoundError):
                raise FileNotFoundError(errno.ENOENT, "not found", location) from None
            if not _transient(exc) or retries == 0:
                raise OSError(errno.EIO, _reason(exc), location) from None
            if attempt == retries:
                raise OSError(errno.EIO, f"{_reason(exc)} (after {retries + 1} attempts)",
                              location) from None
            pause = _BACKOFF * 2**attempt
            if budget.remaining() <= pause:
                raise budget.timed_out(location, f"{_reason(exc)} (after {attempt + 1} "
                                       "attempts)") from None
            time.sleep(pause)
            attempt += 1


def read_file(path: str | os.PathLike) -> bytes:
    """The bytes of a regular local file, bounded (:func:`read_local` under :func:`read_item`);
    OS errors as the OS gave them.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"pixels")
    >>> read_file(path)
    b'pixels'
    """
    return read_item(os.fspath(path), read_local, retries=0)
