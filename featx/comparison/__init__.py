"""Frozen-feature heads and fine-tuning, side by side in one :class:`~featx.evaluate.HeadTable`.

Two jobs, two modules: :mod:`~featx.comparison.run` is the one comparison loop
(:func:`run_comparison`, a :class:`Comparison` per backbone); :mod:`~featx.comparison.selection`
chooses the features the heads run on (backbones, layer taps, views) by cross-validation on the
training split (:func:`feature_choices`, :class:`FeatureBank`, :func:`select_features`).
:func:`compare` (:mod:`~featx.comparison.api`) runs the loop, after the choice when one is asked.
"""

from featx.comparison.api import compare
from featx.comparison.run import DEFAULT_HEADS, Comparison, run_comparison
from featx.comparison.selection import (
    SELECT_METRICS,
    SELECT_RULES,
    FeatureBank,
    FeatureChoice,
    check_budget,
    choose_candidate,
    cv_fold_scores,
    cv_fold_scores_many,
    cv_score,
    feature_choices,
    fit_views,
    fold_ids,
    halving_subsets,
    near_best,
    predict_views,
    resolve_rule,
    select_features,
)

__all__ = ["DEFAULT_HEADS", "SELECT_METRICS", "SELECT_RULES", "Comparison", "FeatureBank",
           "FeatureChoice", "check_budget", "choose_candidate", "compare", "cv_fold_scores",
           "cv_fold_scores_many", "cv_score", "feature_choices", "fit_views", "fold_ids",
           "halving_subsets", "near_best", "predict_views", "resolve_rule", "run_comparison",
           "select_features"]
