"""Process-wide settings read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


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
