"""Opening image files safely: only regular files are read, and every way a path can fail to be
one (a dangling symlink, a symlink loop, a folder, a FIFO, a device) has a short reason.

A FIFO or a device given as an image would otherwise block the reader forever or never end;
:func:`open_regular` (the bounded reader's, :mod:`featx.trust.reader`) refuses them at once.
The reasons are the ones ``ImageDataset.skipped`` and ``featx predict`` show.
"""

from __future__ import annotations

import errno
import os
import stat

# read_bytes: a regular file's bytes, bounded (over max_item_bytes: refused from its size)
from featx.trust.reader import file_kind, open_regular
from featx.trust.reader import read_file as read_bytes

__all__ = ["entry_problem", "open_regular", "read_bytes", "unreadable_reason"]


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
    return f"cannot read file ({file_kind(mode)}, not a regular file)"
