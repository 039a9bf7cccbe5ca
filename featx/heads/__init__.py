"""Heads: scikit-learn classifiers for cached CNN features, one table row per head.

A row is a :class:`HeadSpec` (:mod:`~featx.heads.table`); :func:`make_head` turns it into an
unfitted pipeline, and :mod:`~featx.heads.limits` holds the small-data limits a row may name.
Adding a head is adding a row.
"""

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

__all__ = ["STEP_NAMES", "HeadSpec", "describe", "fit_size", "get_head_spec", "head_param_grid",
           "limited_params", "list_heads", "make_head"]
