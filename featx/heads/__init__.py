"""Heads: classifier heads for cached CNN features, as a table of rows (one :class:`HeadSpec` per
head), the one function that turns a row into an unfitted pipeline (:func:`make_head`), and the
small-data limits each row may name (:mod:`featx.heads.limits`). Adding a head is adding a row.
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
