"""The parameters of a loaded model that say how much it may use when it runs (images per batch,
parallel jobs): :data:`RUNTIME_PARAMS`, bounded by :func:`featx.persist.load` unless
``trust=True``, so a file cannot make predicting six images allocate gigabytes or start
thousands of workers."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from numbers import Integral
from typing import Any

from featx.persist.path_params import estimators_in

__all__ = ["MAX_BATCH_SIZE", "RUNTIME_PARAMS", "bound_runtime_params"]

#: The largest ``batch_size`` a loaded model keeps without ``trust=True``: four times featx's
#: default on a GPU (256). A batch is never larger than the images it holds either, so this
#: bounds what one forward pass of a large dataset may allocate.
MAX_BATCH_SIZE = 1024


def _cores() -> int:
    return os.cpu_count() or 1


def _batch_size(value: int) -> int | None:
    """The bounded value, or ``None`` when ``value`` is within the bound."""
    return MAX_BATCH_SIZE if value > MAX_BATCH_SIZE else None


def _n_jobs(value: int) -> int | None:
    # joblib's meaning: n > 0 workers, -1 all cores, -k all but k-1; beyond the cores: all
    if value > _cores():
        return _cores()
    return -1 if value < -_cores() else None


#: Runtime parameters of a loaded model: name -> (what it is, the bound as a function of the
#: file's integer value returning the value kept, or ``None`` when it is within the bound).
#: Applied to every estimator inside the model (scikit-learn heads' ``n_jobs`` too).
RUNTIME_PARAMS: dict[str, tuple[str, Callable[[int], int | None]]] = {
    "batch_size": (f"images per forward pass, at most MAX_BATCH_SIZE={MAX_BATCH_SIZE}",
                   _batch_size),
    "n_jobs": ("parallel jobs, at most this machine's cores", _n_jobs),
}


def bound_runtime_params(model: Any, path) -> None:
    """Bring every :data:`RUNTIME_PARAMS` value of every estimator in ``model`` within its
    bound; one warning (for the caller's caller) names each value changed.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> forest = RandomForestClassifier(n_jobs=10**6)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     bound_runtime_params(forest, "forest.featx")
    >>> forest.n_jobs == (os.cpu_count() or 1), "RandomForestClassifier.n_jobs=1000000" in str(
    ...     caught[0].message)
    (True, True)
    """
    changed = []
    for est in estimators_in(model):
        for name, (what, bound) in RUNTIME_PARAMS.items():
            value = vars(est).get(name)
            if not isinstance(value, Integral) or isinstance(value, bool):
                continue  # None, "auto", ...: nothing to bound (validated where it is used)
            kept = bound(int(value))
            if kept is not None:
                setattr(est, name, kept)
                changed.append(f"{type(est).__name__}.{name}={value!r} -> {kept!r} ({what})")
    if changed:
        warnings.warn(
            f"Loading path={os.fspath(path)!r}: bounded {', '.join(changed)}: a loaded model "
            "runs within what this machine can hold, whatever the file says. Set them again "
            "with set_params(...), or load(path, trust=True) to keep the file's values.",
            UserWarning, stacklevel=3,
        )
