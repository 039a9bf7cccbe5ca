"""Small training sets: the ``fit_limits`` rules of the head table and the code applying them.

The rules (``knn``: cap ``n_neighbors`` at the mean class size; ``mlp``: early stopping only
with room for its validation split) are named by the rows in :mod:`featx.heads`, whose
``make_head``, ``head_param_grid`` and ``limited_params`` apply them through the helpers here;
``fit_size`` gives ``evaluate_heads`` and ``TransferClassifier`` the size to pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import check_cv

from featx.heads.spec import HeadSpec
from featx.utils.checks import check_int


# --------------------------------------------------------------------------- rules (table rows)
def cap_n_neighbors(params: Mapping[str, Any], n_samples: int,
                     n_classes: int | None) -> dict:
    """``n_neighbors`` is capped at the mean class size, ``n_samples // n_classes`` (a query needs
    that many fitted samples, and a neighbourhood wider than a class is outvoted by the others)
    """
    per_class = max(1, n_samples // (2 if n_classes is None else max(1, n_classes)))
    return {**params, "n_neighbors": min(params["n_neighbors"], per_class)}


def early_stopping_if_room(params: Mapping[str, Any], n_samples: int,
                            n_classes: int | None) -> dict:
    """``early_stopping`` is turned off unless its validation split,
    ``ceil(validation_fraction * n_samples)`` samples, holds ``max(2, n_classes)`` of them,
    the rest ``n_classes``, and ``n_samples >= 2 * n_classes`` (scikit-learn stratifies that
    split for binary targets and needs 2 validation samples)
    """
    if not params["early_stopping"]:
        return dict(params)
    n_classes = 2 if n_classes is None else n_classes
    n_val = math.ceil(params["validation_fraction"] * n_samples)  # as train_test_split rounds
    room = (n_val >= max(2, n_classes) and n_samples - n_val >= n_classes
            and n_samples >= 2 * n_classes)
    return {**params, "early_stopping": room}


# --------------------------------------------------------------------------- applying a rule
def _check_size(param: str, value) -> None:
    check_int(param, value, 1, allow_none=True)


def _effective(spec: HeadSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every estimator parameter as ``make_head`` would set it (sklearn's, row's, user's)."""
    return {**spec.estimator().get_params(deep=False), **spec.defaults, **params}


def _applies(spec: HeadSpec, n_samples: int | None, n_classes: int | None) -> bool:
    """Validate the sizes; True when the row has a rule and a size to apply it to."""
    _check_size("n_samples", n_samples)
    _check_size("n_classes", n_classes)
    return spec.fit_limits is not None and n_samples is not None


def limited(spec: HeadSpec, params: Mapping[str, Any], n_samples: int | None,
             n_classes: int | None) -> dict[str, Any]:
    """The values ``spec.fit_limits`` changes for this size, leaving out the keys in ``params``."""
    if not _applies(spec, n_samples, n_classes):
        return {}
    effective = _effective(spec, params)
    adjusted = spec.fit_limits(effective, n_samples, n_classes)
    return {k: v for k, v in adjusted.items() if k not in params and effective.get(k) != v}


def limit_value(spec: HeadSpec, key: str, value: Any, n_samples: int | None,
                 n_classes: int | None) -> Any:
    """Grid ``value`` of ``key`` after the row's ``fit_limits`` rule for this size."""
    if not _applies(spec, n_samples, n_classes):
        return value
    return spec.fit_limits(_effective(spec, {key: value}), n_samples, n_classes)[key]


def fit_size(X, y, cv=None) -> tuple[Any, int, int]:
    """``(cv, n_samples, n_classes)`` for sizing heads fitted on ``X, y`` or searched over ``cv``.

    With a ``cv``, it comes back through ``check_cv`` (a generator is read once, so pass the
    returned one on) and ``n_samples`` is the smallest training fold; the search's refit on all
    of ``X`` keeps the searched parameters, which fit the larger set too.
    """
    n_classes = len(np.unique(y))
    if cv is None:
        return None, len(y), n_classes
    cv = check_cv(cv, y, classifier=True)
    return cv, min(len(train) for train, _ in cv.split(X, y)), n_classes
