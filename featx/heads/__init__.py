"""Heads: scikit-learn classifiers for cached CNN features, one table row per head.

A row is a :class:`HeadSpec` (the base rows in :mod:`~featx.heads.rows`, the whole table in
:mod:`~featx.heads.table`); :func:`make_head` turns it into an unfitted pipeline
(:mod:`~featx.heads.build`), and :mod:`~featx.heads.limits` holds the small-data limits a row may
name.
Adding a head is adding a row. Two rows are ensembles of the others (:mod:`~featx.heads.ensemble`:
``soft_vote``, ``stack``), and :mod:`~featx.heads.imbalance` holds the class-prior and
per-class-offset wrapper behind ``make_head(..., imbalance=...)``.
:mod:`~featx.heads.preprocess` holds :class:`SignedPower` (``make_head(..., power=...)``), and
:mod:`~featx.heads.norms` the table of feature normalisations, :data:`FEATURE_NORMS`, each a set
of ``make_head`` options.
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
    "check_head_name": "names", "SignedPower": "preprocess", "FEATURE_NORMS": "norms",
    "FeatureNorm": "norms", "check_norm": "norms", "describe_norms": "norms",
    "norm_options": "norms",
}

__all__ = ["DEFAULT_HEAD_NAMES", "FEATURE_NORMS", "HEAD_NAMES", "IMBALANCE", "STEP_NAMES",
           "ClassBiasClassifier", "FeatureNorm", "HeadSpec", "SignedPower", "SoftVoteHead",
           "StackHead", "block_bounds", "check_head_name", "check_norm", "describe",
           "describe_norms", "fit_size", "get_head_spec", "head_param_grid", "limited_params",
           "list_heads", "make_head", "norm_options"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featx.heads' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"featx.heads.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
