"""Heads: scikit-learn classifiers for cached CNN features, one table row per head.

A row is a :class:`HeadSpec` (the base rows in :mod:`~featx.heads.rows`, the whole table in
:mod:`~featx.heads.table`); :func:`make_head` turns it into an unfitted pipeline
(:mod:`~featx.heads.build`), and :mod:`~featx.heads.limits` holds the small-data limits a row may
name.
Adding a head is adding a row. Two rows are ensembles of the others (:mod:`~featx.heads.ensemble`:
``soft_vote``, ``stack``), and :mod:`~featx.heads.imbalance` holds the class-prior and
per-class-offset wrapper behind ``make_head(..., imbalance=...)``.
"""

from featx.heads.ensemble import SoftVoteHead, StackHead, block_bounds
from featx.heads.imbalance import IMBALANCE, ClassBiasClassifier
from featx.heads.limits import fit_size
from featx.heads.spec import HeadSpec
from featx.heads.table import (
    STEP_NAMES,
    describe,
    get_head_spec,
    head_param_grid,
    limited_params,
    list_heads,
    make_head,
)

__all__ = ["IMBALANCE", "STEP_NAMES", "ClassBiasClassifier", "HeadSpec", "SoftVoteHead",
           "StackHead", "block_bounds", "describe", "fit_size", "get_head_spec", "head_param_grid",
           "limited_params", "list_heads", "make_head"]
