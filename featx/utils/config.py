"""Process-wide settings: one source, read in one order.

featx's settings belong to the process rather than to one call: the ``runtime`` that runs
frozen backbones, the ``cache_dir`` that holds features, the ``threads`` a backbone forward may
use, and the bounds of every read (``max_item_bytes``, ``item_timeout``: see
:mod:`featx.trust.reader`). Each is read, at the moment it is needed, from

1. the innermost :func:`config_context` (or :func:`set_config`) that set it,
2. else its environment variable (``FEATX_RUNTIME``, ``FEATX_CACHE_DIR``,
   ``FEATX_COMPUTE_THREADS``, ``FEATX_MAX_ITEM_BYTES``, ``FEATX_ITEM_TIMEOUT``),
3. else its default (:data:`SETTINGS`; the cache folder's: a featx checkout's ``./cache``, else
   the per-user cache, see :func:`cache_dir`).

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
from featx.utils.params import Interval

__all__ = ["PROJECT_CACHE", "SETTINGS", "cache_dir", "cache_origin", "cache_root",
           "config_context", "get_config", "set_config", "user_cache_dir"]

#: Setting name -> (environment variable, default, what it means). The one list of them.
SETTINGS: dict[str, tuple[str, Any, str]] = {
    "runtime": ("FEATX_RUNTIME", "auto",
                "what runs frozen backbones: 'auto', 'onnxruntime' or 'keras'"),
    "cache_dir": ("FEATX_CACHE_DIR", None,
                  "the feature-cache folder (None: a featx checkout's ./cache, else the per-user "
                  "cache; see cache_dir())"),
    "threads": ("FEATX_COMPUTE_THREADS", None,
                "threads of a backbone forward (None: one per core)"),
    # Generous for photos (a 50-megapixel JPEG is ~25 MB), small enough that a few items read
    # at once by the I/O threads cannot exhaust memory.
    "max_item_bytes": ("FEATX_MAX_ITEM_BYTES", 256 * 2**20,
                       "the most bytes one item (an image, a URL's body, a member, a record) "
                       "may have"),
    # A photo takes seconds even on a slow link (10 MB at 2 MB/s: 5 s), so a minute leaves room
    # for retries and a cold store, while a stalled or trickling store costs at most a minute
    # per item (the I/O threads wait on many at once), not the tens of minutes of a socket's
    # default time-outs times the retries.
    "item_timeout": ("FEATX_ITEM_TIMEOUT", 60.0,
                     "seconds to read one item, retries included"),
}
#: Numeric settings: what they accept (set values are checked, environment values parsed).
_NUMBERS = {"max_item_bytes": Interval(int, 1), "item_timeout": Interval(float, 0.01)}

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
        A name of :data:`SETTINGS`; ``None`` returns all of them.

    Returns
    -------
    object
        The set value, else the environment's (a string, a number for the numeric settings;
        ``""`` counts as unset), else the default.

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
    raw = os.environ.get(env)
    if raw and name in _NUMBERS:
        return _parse_env(name, env, raw)
    return raw or default


def _parse_env(name: str, env: str, raw: str) -> int | float:
    """A numeric setting's environment value, or a ``ValueError`` naming the variable."""
    try:
        value = _NUMBERS[name].kind(raw.strip())
    except ValueError:
        value = None
    try:
        return _NUMBERS[name].check(env, value)
    except ValueError:
        raise ValueError(f"{env} must be {_NUMBERS[name].describe()}, got {raw!r}") from None


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
    for name, constraint in _NUMBERS.items():
        if settings.get(name) is not None:
            settings = {**settings, name: constraint.check(name, settings[name])}
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
        ``threads=`` (an int >= 1), ``max_item_bytes=`` (an int >= 1), ``item_timeout=``
        (seconds, a number >= 0.01); ``None`` leaves a setting as it is.

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


#: A featx project checkout's own cache: ``./cache`` holding this marker file, whose text names
#: it (the repository ships ``cache/README.md``); a folder named ``cache`` that is not featx's
#: is never used.
PROJECT_CACHE = (Path("cache"), "README.md", "featx feature cache")


def user_cache_dir() -> Path:
    """The per-user feature cache: ``platformdirs.user_cache_dir("featx")`` (on Linux
    ``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``; ``~/Library/Caches/featx`` on macOS;
    ``%LOCALAPPDATA%\\featx\\Cache`` on Windows)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("featx", appauthor=False))


def _project_cache() -> Path | None:
    """``./cache`` when the current folder is a featx checkout with its cache folder."""
    folder, marker, words = PROJECT_CACHE
    try:
        text = (folder / marker).read_text(encoding="utf-8", errors="replace")[:500]
    except OSError:
        return None
    return folder if words in text.lower() else None


def cache_origin() -> tuple[Path, str]:
    """The feature-cache folder and what chose it: ``"cache_dir setting"``,
    ``"$FEATX_CACHE_DIR"``, ``"this featx checkout's cache/"`` or ``"the per-user cache"``.

    Examples
    --------
    >>> from featx.utils.config import cache_origin, config_context
    >>> with config_context(cache_dir="/tmp/featx-doc-cache"):
    ...     cache_origin()
    (PosixPath('/tmp/featx-doc-cache'), 'cache_dir setting')
    """
    with _LOCK:
        value = _SET.get("cache_dir")
    if value is not None:
        return Path(value), "cache_dir setting"
    if os.environ.get("FEATX_CACHE_DIR"):
        return Path(os.environ["FEATX_CACHE_DIR"]), "$FEATX_CACHE_DIR"
    project = _project_cache()
    if project is not None:
        return project, "this featx checkout's cache/"
    return user_cache_dir(), "the per-user cache"


def cache_dir() -> Path:
    """The feature-cache folder, the first of

    1. the ``cache_dir`` setting (:func:`config_context`, :func:`set_config`),
    2. ``$FEATX_CACHE_DIR``,
    3. ``./cache`` when the current folder is a featx checkout with its cache folder
       (:data:`PROJECT_CACHE`: ``cache/README.md`` naming it),
    4. the per-user cache, :func:`user_cache_dir` (``~/.cache/featx`` on Linux), shared by every
       folder the user works in, so changing folders never extracts the same images twice.

    An explicit ``cache=`` argument wins over all four (:func:`cache_root`). The folder is not
    created here; writers create it when they first write.

    Examples
    --------
    >>> from featx.utils.config import cache_dir, config_context
    >>> with config_context(cache_dir="/tmp/featx-doc-cache"):
    ...     str(cache_dir())
    '/tmp/featx-doc-cache'
    """
    return cache_origin()[0]


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
