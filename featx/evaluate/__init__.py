"""Fit every head on cached features and tabulate test metrics; the few-shot curve.

:mod:`~featx.evaluate.heads` fits and scores heads side by side (:func:`evaluate_heads`, a
:class:`HeadTable` of rows in the one schema :data:`ROW_KEYS`, the one metrics function
:func:`score_predictions`); :mod:`~featx.evaluate.few_shot` fits heads on ``k`` training examples
per class (:func:`few_shot_curve`). Both run on cached features: no backbone, no matplotlib.
"""

from featx.evaluate.few_shot import few_shot_curve
from featx.evaluate.heads import (
    COLUMNS,
    COMPARISON_COLUMNS,
    HEAD_OPTIONS,
    METRICS,
    ROW_KEYS,
    HeadTable,
    check_head_options,
    comparison_markdown,
    evaluate_heads,
    score_predictions,
    table_columns,
)

__all__ = [
    "COLUMNS", "COMPARISON_COLUMNS", "HEAD_OPTIONS", "METRICS", "ROW_KEYS", "HeadTable",
    "check_head_options", "comparison_markdown", "evaluate_heads", "few_shot_curve",
    "score_predictions", "table_columns",
]
