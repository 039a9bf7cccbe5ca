"""Heads: scikit-learn classifiers for cached CNN features, one table row per head.

A row is a :class:`HeadSpec` (the base rows in :mod:`~featx.heads.rows`, the whole table in
:mod:`~featx.heads.table`); :func:`make_head` turns it into an unfitted pipeline
(:mod:`~featx.heads.build`), and :mod:`~featx.heads.limits` holds the small-data limits a row may
name.
Adding a head is adding a row. Two rows are ensembles of the others (:mod:`~featx.heads.ensemble`:
``soft_vote``, ``stack``), and :mod:`~featx.heads.imbalance` holds the class-prior and
per-class-offset wrapper behind ``make_head(..., imbalance=...)``.
"""

import importlib

# The names of the table (featx.heads.names) load without scikit-learn, so that the command line
# checks a head's name at once; everything else loads on first use (PEP 562).
_EXPORTS = {
    "SoftVoteHead": "ensemble", "StackHead": "ensemble", "block_bounds": "ensemble",
    "IMBALANCE": "imbalance", "ClassBiasClassifier": "imbalance", "fit_size": "limits",
    "HeadSpec": "spec", "STEP_NAMES": "table", "describe": "table", "get_head_spec": "table",
    "head_param_grid": "table", "limited_params": "table", "list_heads": "table",
    "make_head": "table", "DEFAULT_HEAD_NAMES": "names", "HEAD_NAMES": "names",
    "check_head_name": "names",
}

__all__ = ["DEFAULT_HEAD_NAMES", "HEAD_NAMES", "IMBALANCE", "STEP_NAMES", "ClassBiasClassifier",
           "HeadSpec", "SoftVoteHead", "StackHead", "block_bounds", "check_head_name", "describe",
           "fit_size", "get_head_spec", "head_param_grid", "limited_params", "list_heads",
           "make_head"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featx.heads' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"featx.heads.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
