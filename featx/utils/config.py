"""Process-wide settings read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "cache_root"]


def cache_dir() -> Path:
    """Return the feature-cache directory: ``$FEATX_CACHE_DIR``, else ``./cache``.

    The directory is not created here; writers create it when they first write.

    Examples
    --------
    >>> import os
    >>> saved = os.environ.get("FEATX_CACHE_DIR")
    >>> os.environ["FEATX_CACHE_DIR"] = "/tmp/featx-doc-cache"
    >>> str(cache_dir())
    '/tmp/featx-doc-cache'
    >>> if saved is None:
    ...     del os.environ["FEATX_CACHE_DIR"]
    ... else:
    ...     os.environ["FEATX_CACHE_DIR"] = saved
    """
    return Path(os.environ.get("FEATX_CACHE_DIR") or "cache")


def cache_root(cache=None) -> Path:
    """The folder a ``cache`` parameter names: ``None`` or ``True`` -> :func:`cache_dir`, a path
    -> that path. (``cache=False``, no disk at all, is the caller's to handle before.)

    Examples
    --------
    >>> str(cache_root("/tmp/x"))
    '/tmp/x'
    >>> cache_root(None) == cache_root(True) == cache_dir()
    True
    """
    return cache_dir() if cache is None or cache is True else Path(cache)
