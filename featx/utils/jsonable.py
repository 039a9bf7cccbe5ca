"""One conversion of featx's values (NumPy scalars and arrays, HDF5 bytes, paths, tuples) to JSON
values: result dicts for reports and manifests, and cache attributes read back from HDF5."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(value: Any, *, nan_as_none: bool = False) -> Any:
    """``value`` with every part made a JSON value; anything else becomes its ``repr``.

    ``nan_as_none=True`` also maps NaN and infinities to ``None``, for files other tools read
    (strict JSON has no NaN).

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"acc": np.float32(0.5), "size": (224, 224), "f1": float("nan")},
    ...          nan_as_none=True)
    {'acc': 0.5, 'size': [224, 224], 'f1': None}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, nan_as_none=nan_as_none) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v, nan_as_none=nan_as_none) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, bytes):  # HDF5 attributes store some strings as bytes
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and nan_as_none and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
