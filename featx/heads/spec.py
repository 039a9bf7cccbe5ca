"""One row of the head table: :class:`HeadSpec`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sklearn.base import BaseEstimator

__all__ = ["HeadSpec"]


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class HeadSpec:
    """One row of the head table.

    Parameters
    ----------
    name : str
        Registry key, used by :func:`make_head`.
    description : str
        One line for tables and docs.
    estimator : callable
        Factory (usually the class) for the final ``clf`` step; called with keyword params.
    defaults : mapping
        Parameters passed to ``estimator`` unless overridden in :func:`make_head`.
    grid : mapping of str to tuple
        Small default search space, keys are ``estimator`` parameter names (unprefixed).
    scale : bool
        Prepend a ``StandardScaler`` (step ``scale``).
    normalize : bool
        Default for L2-normalising each sample first (step ``normalize``).
    predict_proba : bool
        Whether the default head has ``predict_proba``; others get it with ``proba=True``.
    class_weight : bool
        Whether the estimator takes ``class_weight`` (set to ``"balanced"`` in ``defaults``).
    fit_limits : callable or None
        ``fit_limits(params, n_samples, n_classes) -> params``: the estimator's full effective
        parameters, adjusted so that it can fit ``n_samples`` samples of ``n_classes`` classes
        (``n_classes=None``: unknown, counted as 2). Its docstring's first paragraph is the
        rule :func:`describe` prints. None: the defaults fit any training set.
    note : str
        Anything a user should know about the defaults.
    default : bool
        Fitted when no heads are named (``evaluate_heads(heads=None)``); the ensembles, which
        cost several heads each, are fitted only when named.
    """

    name: str
    description: str
    estimator: Callable[..., BaseEstimator]
    defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)
    grid: Mapping[str, tuple] = field(default_factory=dict, hash=False)
    scale: bool = True
    normalize: bool = False
    predict_proba: bool = True
    class_weight: bool = True
    fit_limits: Callable[[Mapping[str, Any], int, int | None], dict] | None = None
    note: str = ""
    default: bool = True

    def __post_init__(self):
        object.__setattr__(self, "defaults", _frozen(self.defaults))
        object.__setattr__(self, "grid", _frozen({k: tuple(v) for k, v in self.grid.items()}))

    @property
    def n_candidates(self) -> int:
        """Number of parameter combinations in :attr:`grid`."""
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n
