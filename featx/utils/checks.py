"""One vocabulary for parameter mistakes: the same mistake gets the same message everywhere.

Every message names the parameter, echoes what was received (value and type) and says what is
allowed, in one of two shapes::

    batch_size must be an int >= 1, got 0 of type int
    batch_size must be None or an int >= 1, got '8' of type str
    pooling must be one of ['avg', 'max', None], got 'median' (did you mean 'max'?)

Checks raise ``ValueError`` (a ``TypeError`` only where a caller asks for it), before any file is
read or model built.
"""

from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Iterable
from typing import Any

__all__ = ["check_choice", "check_int", "close_matches", "renamed", "type_name"]


def type_name(value: Any) -> str:
    """The name of ``value``'s type, for messages (``int``, ``str``, ``ndarray``)."""
    return type(value).__name__


def close_matches(value: Any, names: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """The close-match hint of every "not allowed" message featx writes: ``" (did you mean
    'max'?)"``, or ``""`` when nothing is close (or ``value`` is not a string). The one place
    featx suggests names.

    Examples
    --------
    >>> close_matches("mox", ["avg", "max"]), close_matches("zzz", ["avg", "max"])
    (" (did you mean 'max'?)", '')
    """
    if not isinstance(value, str):
        return ""
    names = [str(x) for x in names if x is not None]
    lower = {x.lower(): x for x in names}
    close = [lower[m] for m in difflib.get_close_matches(value.lower(), list(lower), n, cutoff)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def check_int(name: str, value: Any, minimum: int = 1, *, allow_none: bool = False,
              meaning: str = "") -> int | None:
    """``value`` as an ``int`` >= ``minimum`` (or None when ``allow_none``); else ``ValueError``.

    Bools and strings are refused (``True`` is not a count, ``"8"`` is not an int); NumPy
    integers are accepted. ``meaning`` follows the name in the message (``" (decode threads)"``).

    Examples
    --------
    >>> check_int("batch_size", 32)
    32
    >>> check_int("batch_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an int >= 1, got 0 of type int
    >>> check_int("n_workers", "2", 0, allow_none=True)
    Traceback (most recent call last):
    ...
    ValueError: n_workers must be None or an int >= 0, got '2' of type str
    """
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < minimum):
        what = f"None or an int >= {minimum}" if allow_none else f"an int >= {minimum}"
        raise ValueError(f"{name}{meaning} must be {what}, got {value!r} of type "
                         f"{type_name(value)}")
    return int(value)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``; else ``ValueError`` listing them (and close matches).

    Examples
    --------
    >>> check_choice("pooling", "avg", ("avg", "max", None))
    'avg'
    >>> check_choice("pooling", "mox", ("avg", "max", None))
    Traceback (most recent call last):
    ...
    ValueError: pooling must be one of ['avg', 'max', None], got 'mox' (did you mean 'max'?)
    """
    allowed = list(allowed)
    try:
        if value in allowed:
            return value
    except TypeError:  # an unhashable or oddly comparing value is simply not allowed
        pass
    hint = close_matches(value, [a for a in allowed if isinstance(a, str)])
    raise ValueError(f"{name} must be one of {allowed}, got {value!r}{hint}")


def renamed(value: Any, old_value: Any, *, name: str, old_name: str, where: str) -> Any:
    """The value of a keyword that was renamed: ``value``, else ``old_value`` (given under the
    old name, still accepted) with a ``FutureWarning`` that says the new name.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed(None, "/tmp/c", name="cache", old_name="cache_dir", where="cache_ls")
    '/tmp/c'
    >>> str(caught[0].message)[:48]
    'cache_ls(cache_dir=...) is now cache_ls(cache=..'
    """
    if old_value is None:
        return value
    if value is not None:
        raise TypeError(f"{where}() got {name}={value!r} and its old name {old_name}="
                        f"{old_value!r}; give {name} only")
    warnings.warn(f"{where}({old_name}=...) is now {where}({name}=...), the name every featx "
                  f"function gives it; {old_name} still works for now", FutureWarning,
                  stacklevel=3)
    return old_value
