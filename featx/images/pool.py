"""Parallel read + hash + decode + resize, with a bounded prefetch window.

Workers (threads or processes) each take a small chunk of paths and return, per path, the SHA-256 of
the bytes read and either the decoded ``uint8`` image or the reason it could not be read (or
:data:`SKIPPED` for content the caller already has: its bytes are hashed, not decoded). At
most ``window`` chunks are in flight, so memory stays ``O(window x chunk x image)`` whatever the
number of paths.
This module imports only numpy and Pillow (OpenCV on demand), so process workers start fast.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import deque
from collections.abc import Container, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from featx.images.decode import decode_bytes
from featx.images.files import unreadable_reason
from featx.images.locations import (
    IO_WORKERS,
    _read_or_error,
    io_executor,
    is_remote,
    read_many,
)
from featx.images.opencv import require_cv2
from featx.images.pillow import ImageError
from featx.utils.checks import check_choice
from featx.utils.threads import usable_cores

__all__ = ["SKIPPED", "DecodePool", "default_workers", "hash_file", "hash_files", "load_chunk"]

#: The reason :func:`load_chunk` gives for an image whose content id is in ``skip``: read and
#: hashed, not decoded (its features are known already). Not a failure.
SKIPPED = "known content: not decoded"


def hash_file(path: str) -> tuple[str | None, str | None]:
    """``(sha256 hex, None)`` of the bytes at a location (a file, a URL, a container record: see
    :func:`featx.images.read_bytes`, which bounds every read), or ``(None, reason)`` if it
    cannot be read."""
    return _digest(path, _read_or_error(path))


def _digest(path: str, data: bytes | OSError) -> tuple[str | None, str | None]:
    if isinstance(data, OSError):
        return None, unreadable_reason(path, data)
    return hashlib.sha256(data).hexdigest(), None


def hash_files(paths: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """Hash many locations: local files serially (faster than threads for small files on a
    page-cached disk), remote ones :data:`~featx.images.IO_WORKERS` at a time, at most
    ``4 * IO_WORKERS`` images' bytes held at once."""
    if not any(is_remote(p) for p in paths):
        return [hash_file(p) for p in paths]
    out: list[tuple[str | None, str | None]] = []
    pending: deque = deque()  # a sliding window of reads in flight, hashed in order
    for p in paths:
        pending.append((p, io_executor().submit(_read_or_error, p)))
        if len(pending) >= 4 * IO_WORKERS:
            q, future = pending.popleft()
            out.append(_digest(q, future.result()))
    out += [_digest(q, future.result()) for q, future in pending]
    return out


def load_chunk(paths: Sequence[str], size: tuple[int, int], resize: str,
                decoder: str = "pillow", data: Sequence[bytes | OSError] | None = None,
                skip: Container[str] | None = None):
    """Worker: per path ``(sha256, image or None, reason or None)``; images stacked.

    ``data``: the bytes already read (or the ``OSError`` of the read), as
    :func:`featx.images.read_many` returns them; default: read here (remote locations
    concurrently). ``skip``: content ids not to decode (their reason is :data:`SKIPPED`), so
    one read both keys an image and, only when its content is new, decodes it."""
    ids, images, reasons = [], [], []
    if data is None:
        data = read_many(paths)
    for path, item in zip(paths, data, strict=True):
        if isinstance(item, OSError):
            ids.append(None), images.append(None)
            reasons.append(unreadable_reason(path, item))
            continue
        ids.append(hashlib.sha256(item).hexdigest())
        if skip is not None and ids[-1] in skip:
            images.append(None), reasons.append(SKIPPED)
            continue
        try:
            images.append(decode_bytes(item, size, resize, decoder=decoder, source=path))
            reasons.append(None)
        except ImageError as exc:
            images.append(None)
            reasons.append(str(exc).removeprefix(f"{path}: "))
        except Exception as exc:  # a decoder bug must not kill the run; report it per file
            images.append(None)
            reasons.append(f"decode failed ({type(exc).__name__}: {exc})")
    ok = [im for im in images if im is not None]
    stacked = np.stack(ok) if ok else np.zeros((0, *size, 3), np.uint8)
    return ids, stacked, reasons


def _single_threaded_cv2() -> int:
    """Turn OpenCV's internal threads off; return the previous setting."""
    cv2 = require_cv2()
    old = cv2.getNumThreads()
    cv2.setNumThreads(1)
    return old


def default_workers() -> int:
    """One worker per core this process may use (:func:`featx.utils.threads.usable_cores`)."""
    return usable_cores()


class DecodePool:
    """Decode images in parallel, yielding results in input order with a bounded window.

    Parameters
    ----------
    size : (height, width)
        Target size passed to :func:`featx.images.decode_bytes`.
    resize : {"bilinear", "crop"}
    decoder : {"pillow", "opencv"}
        See :func:`featx.images.decode_bytes`.
    n_workers : int, optional
        Workers (default: one per core). ``0`` decodes in the calling thread.
    kind : {"thread", "process"}
        Threads suffice because Pillow and OpenCV release the GIL while decoding and resizing.
    chunk : int
        Paths per task.
    window : int
        Tasks in flight at most (the prefetch bound).

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> d = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     Image.new("RGB", (20, 10), (i, 0, 0)).save(os.path.join(d, f"{i}.png"))
    >>> paths = [os.path.join(d, f"{i}.png") for i in range(3)]
    >>> with DecodePool((8, 8), n_workers=1) as pool:
    ...     [(len(ids), imgs.shape) for ids, imgs, _ in pool.imap(paths)]
    [(3, (3, 8, 8, 3))]
    """

    def __init__(self, size, resize="bilinear", n_workers=None, kind="thread", chunk=8,
                 window=8, decoder="pillow"):
        self.size = tuple(int(s) for s in size)
        self.resize, self.decoder = resize, decoder
        self.n_workers = default_workers() if n_workers is None else int(n_workers)
        check_choice("kind", kind, ("thread", "process"))
        self.kind, self.chunk, self.window = kind, max(1, int(chunk)), max(1, int(window))
        self._executor: Executor | None = None

    def __enter__(self) -> DecodePool:
        self._cv2_threads = None
        if self.n_workers > 0:
            # The pool already runs one decode per core; OpenCV's own thread pool on top of it
            # only adds threads competing for the same cores, so it is off while we run.
            opencv = self.decoder == "opencv"
            if self.kind == "thread":
                if opencv:
                    self._cv2_threads = _single_threaded_cv2()
                self._executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="featx-dec")
            else:
                ctx = multiprocessing.get_context("spawn")  # never fork a process running TF
                self._executor = ProcessPoolExecutor(
                    self.n_workers, mp_context=ctx,
                    initializer=_single_threaded_cv2 if opencv else None)
        return self

    def __exit__(self, *exc) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._cv2_threads is not None:
            import cv2

            cv2.setNumThreads(self._cv2_threads)
            self._cv2_threads = None

    def imap(self, paths: Sequence[str], skip: Container[str] | None = None
             ) -> Iterator[tuple[list, np.ndarray, list]]:
        """Yield ``(ids, images, reasons)`` per chunk, in order; ``images``: the decodable ones.

        ``skip``: content ids not to decode (reason :data:`SKIPPED`); thread workers read it as
        it is when they hash each file, so ids the caller adds while the pool runs count too.
        Process workers would each get a copy per chunk, which costs more than the decodes it
        saves: they decode everything and the caller drops what it already has.

        Remote locations (URLs, containers on a store) are read ahead by
        :func:`featx.images.io_executor`'s threads, up to ``2 * window`` chunks before the
        decoders, so a slow store keeps many reads in flight instead of one per decoder."""
        chunks = (paths[i : i + self.chunk] for i in range(0, len(paths), self.chunk))
        if self._executor is None:
            for c in chunks:
                yield load_chunk(c, self.size, self.resize, self.decoder, skip=skip)
            return
        if self.kind == "process":
            skip = None
        remote = any(is_remote(p) for p in paths)
        fetching: deque = deque()  # (chunk, [future of bytes or OSError]) read ahead
        pending: deque = deque()

        def decode(c, reads) -> None:
            data = [f.result() for f in reads] if reads is not None else None
            pending.append(self._executor.submit(load_chunk, c, self.size, self.resize,
                                                 self.decoder, data, skip))

        for c in chunks:
            if remote:
                fetching.append((c, [io_executor().submit(_read_or_error, p) for p in c]))
                if len(fetching) < 2 * self.window:
                    continue
                decode(*fetching.popleft())
            else:
                decode(c, None)
            if len(pending) >= self.window:
                yield pending.popleft().result()
        while fetching:
            decode(*fetching.popleft())
            if len(pending) >= self.window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
