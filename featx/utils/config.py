"""Process-wide settings: one source, read in one order.

featx has three settings that belong to the process rather than to one call: the ``runtime``
that runs frozen backbones, the ``cache_dir`` that holds features, and the ``threads`` a
backbone forward may use. Each is read, at the moment it is needed, from

1. the innermost :func:`config_context` (or :func:`set_config`) that set it,
2. else its environment variable (``FEATX_RUNTIME``, ``FEATX_CACHE_DIR``,
   ``FEATX_COMPUTE_THREADS``),
3. else its default (``"auto"``, ``./cache``, one thread per core).

An explicit argument (``extract_features(..., runtime="keras")``, ``cache=...``) always wins over
all three. featx reads the environment and never writes it: a setting made here stays in this
process (as scikit-learn's ``config_context`` does) and is given explicitly to the workers featx
starts itself (Ray actors receive the runtime the driver resolved).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featx.utils.checks import check_choice, check_int, close_matches

__all__ = ["SETTINGS", "cache_dir", "cache_root", "config_context", "get_config", "set_config"]

#: Setting name -> (environment variable, default, what it means). The one list of them.
SETTINGS: dict[str, tuple[str, Any, str]] = {
    "runtime": ("FEATX_RUNTIME", "auto",
                "what runs frozen backbones: 'auto', 'onnxruntime' or 'keras'"),
    "cache_dir": ("FEATX_CACHE_DIR", "cache", "the feature-cache folder"),
    "threads": ("FEATX_COMPUTE_THREADS", None,
                "threads of a backbone forward (None: one per core)"),
}

_UNSET = object()
_LOCK = threading.Lock()
# Set values, shared by every thread of the process: an extraction's decode threads and a
# comparison's workers see what the calling thread set.
_SET: dict[str, Any] = {}


def _check_name(name: str) -> None:
    if name not in SETTINGS:
        hint = close_matches(name, list(SETTINGS))
        raise TypeError(f"featx has no setting {name!r}{hint}; the settings are "
                        f"{sorted(SETTINGS)}")


def get_config(name: str | None = None) -> Any:
    """The value of one setting (or a dict of all), read in the order the module describes.

    Parameters
    ----------
    name : str, optional
        ``"runtime"``, ``"cache_dir"`` or ``"threads"``; ``None`` returns all three.

    Returns
    -------
    object
        The set value, else the environment's (a string; ``""`` counts as unset), else the
        default.

    Examples
    --------
    >>> from featx.utils.config import config_context, get_config
    >>> with config_context(runtime="keras"):
    ...     get_config("runtime")
    'keras'
    """
    if name is None:
        return {n: get_config(n) for n in SETTINGS}
    _check_name(name)
    with _LOCK:
        value = _SET.get(name, _UNSET)
    if value is not _UNSET:
        return value
    env, default, _ = SETTINGS[name]
    return os.environ.get(env) or default


def set_config(**settings: Any) -> None:
    """Set settings for the rest of the process (``None`` unsets one: the environment and the
    default apply again). Prefer :func:`config_context`, which restores them.

    Examples
    --------
    >>> from featx.utils.config import get_config, set_config
    >>> set_config(cache_dir="/tmp/featx-doc")
    >>> get_config("cache_dir")
    '/tmp/featx-doc'
    >>> set_config(cache_dir=None)
    """
    for name in settings:
        _check_name(name)
    if "runtime" in settings and settings["runtime"] is not None:
        check_choice("runtime", settings["runtime"], ("auto", "onnxruntime", "keras"))
    if settings.get("threads") is not None:
        check_int("threads", settings["threads"], 1)
    if settings.get("cache_dir") is not None and not isinstance(settings["cache_dir"],
                                                                 str | os.PathLike):
        raise TypeError("cache_dir must be a folder path (str or os.PathLike) or None, got "
                        f"{settings['cache_dir']!r} of type {type(settings['cache_dir']).__name__}")
    with _LOCK:
        for name, value in settings.items():
            if value is None:
                _SET.pop(name, None)
            else:
                _SET[name] = os.fspath(value) if name == "cache_dir" else value


@contextlib.contextmanager
def config_context(**settings: Any) -> Iterator[None]:
    """Set featx settings for the duration of a ``with`` block, then restore them.

    Parameters
    ----------
    **settings
        ``runtime=`` (``"auto"``, ``"onnxruntime"``, ``"keras"``), ``cache_dir=`` (a folder),
        ``threads=`` (an int >= 1); ``None`` leaves a setting as it is.

    Examples
    --------
    >>> import featx
    >>> with featx.config_context(cache_dir="/tmp/featx-doc", runtime="keras"):
    ...     featx.get_config("cache_dir"), featx.get_config("runtime")
    ('/tmp/featx-doc', 'keras')
    """
    settings = {k: v for k, v in settings.items() if v is not None}
    for name in settings:
        _check_name(name)
    with _LOCK:
        saved = {name: _SET.get(name, _UNSET) for name in settings}
    set_config(**settings)
    try:
        yield
    finally:
        with _LOCK:
            for name, value in saved.items():
                if value is _UNSET:
                    _SET.pop(name, None)
                else:
                    _SET[name] = value


def cache_dir() -> Path:
    """The feature-cache folder: the ``cache_dir`` setting (:func:`config_context`), else
    ``$FEATX_CACHE_DIR``, else ``./cache``.

    The folder is not created here; writers create it when they first write.

    Examples
    --------
    >>> from featx.utils.config import cache_dir, config_context
    >>> with config_context(cache_dir="/tmp/featx-doc-cache"):
    ...     str(cache_dir())
    '/tmp/featx-doc-cache'
    """
    return Path(get_config("cache_dir"))


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
