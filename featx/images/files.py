"""Opening image files safely: only regular files are read, and every way a path can fail to be
one (a dangling symlink, a symlink loop, a folder, a FIFO, a device) has a short reason.

A FIFO or a device given as an image would otherwise block the reader forever or never end;
:func:`open_regular` refuses them at once. The reasons are the ones ``ImageDataset.skipped``
and ``featx predict`` show.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

__all__ = ["entry_problem", "open_regular", "read_bytes", "unreadable_reason"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
# O_NONBLOCK: opening a FIFO does not wait for a writer (no effect on regular files)
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _kind(mode: int) -> str:
    return next((kind for test, kind in _KINDS if test(mode)), "a special file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (or a symlink to one).

    Raises
    ------
    OSError
        The usual ones (missing, no permission, symlink loop), and ``EINVAL`` with
        ``strerror`` "a FIFO, not a regular file" (or a folder, socket, device) for anything
        that is not a regular file, raised without reading from it.
    """
    fd = os.open(path, _FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{_kind(mode)}, not a regular file", os.fspath(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`)."""
    with open_regular(path) as f:
        return f.read()


def unreadable_reason(path: str | os.PathLike, exc: OSError) -> str:
    """Why ``path`` could not be opened, as ``"cannot read file (...)"``: a symlink loop and a
    dangling symlink (with its target) are named as such.

    Examples
    --------
    >>> import os, tempfile
    >>> link = os.path.join(tempfile.mkdtemp(), "a.jpg")
    >>> os.symlink("gone.jpg", link)
    >>> try:
    ...     read_bytes(link)
    ... except OSError as exc:
    ...     unreadable_reason(link, exc)
    "cannot read file (dangling symlink to 'gone.jpg')"
    """
    if exc.errno == errno.ELOOP:
        return "cannot read file (symlink loop: too many levels of symbolic links)"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:  # removed meanwhile
            target = "?"
        return f"cannot read file (dangling symlink to {target!r})"
    return f"cannot read file ({exc.strerror or exc})"


def entry_problem(path: str | os.PathLike) -> str | None:
    """``None`` when ``path`` is a regular file (or a symlink to one), else why it is not read:
    ``"folder"`` for a folder (the caller decides what a folder means), a reason for the rest.

    One ``stat``; nothing is opened.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return unreadable_reason(path, exc)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "folder"
    return f"cannot read file ({_kind(mode)}, not a regular file)"
