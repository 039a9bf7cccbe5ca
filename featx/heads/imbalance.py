"""Imbalanced classes: a class-prior correction and per-class offsets tuned for macro-F1.

:class:`ClassBiasClassifier` wraps any head and adds one offset per class to its log-probabilities
(its decision scores for heads without ``predict_proba``) before the argmax:

- ``method="prior"``: the offsets are ``-log(prior)`` of the training labels, the posterior's
  shift to equal class priors (Bayes' rule with the priors swapped); no held-out data needed.
- ``method="tune"``: the offsets maximise macro-F1 of the out-of-fold predictions on the training
  data (``cv`` stratified folds), by coordinate ascent over a grid per class; the multiclass
  counterpart of :class:`sklearn.model_selection.TunedThresholdClassifierCV`'s threshold.

Either way the wrapped head is then refitted on all the training data. :data:`IMBALANCE` is the
table ``make_head(..., imbalance=...)`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.utils.checks import check_choice, check_int

__all__ = ["IMBALANCE", "ClassBiasClassifier"]

#: ``make_head(..., imbalance=key)``: what each option does (``ClassBiasClassifier(method=key)``).
IMBALANCE: Mapping[str, str] = MappingProxyType({
    "prior": "shift the posterior to equal class priors: offsets -log(training prior)",
    "tune": "per-class offsets on the scores, tuned for macro-F1 on out-of-fold predictions",
})

#: Offsets tried per class by ``method="tune"`` (added to log-probabilities or scores scaled to
#: unit spread), and the rounds of coordinate ascent over the classes.
_GRID = np.linspace(-3.0, 3.0, 25)
_ROUNDS = 3


def _has_proba(self) -> bool:
    base = LogisticRegression() if self.estimator is None else self.estimator
    return hasattr(getattr(self, "estimator_", base), "predict_proba")


class ClassBiasClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A head with one additive offset per class on its log-probabilities (or scores).

    Parameters
    ----------
    estimator : classifier, default=None
        The head to wrap (unfitted); None is a ``LogisticRegression(max_iter=2000)``.
    method : {"prior", "tune"}, default="tune"
        ``"prior"``: offsets ``-log(prior)`` (needs ``predict_proba``). ``"tune"``: offsets that
        maximise macro-F1 on out-of-fold predictions of the training data.
    cv : int, default=3
        Stratified folds for ``method="tune"`` (fewer when the smallest class is smaller; no
        tuning, zero offsets, when a class has a single sample).
    random_state : int or None, default=None
        Seeds the folds.

    Attributes
    ----------
    classes_ : ndarray
    estimator_ : classifier
        The wrapped head, fitted on all the training data.
    offsets_ : ndarray of shape (n_classes,)
        Added to the log-probabilities (scores) before the argmax.
    cv_macro_f1_ : float or None
        ``"tune"``: out-of-fold macro-F1 with the offsets (None otherwise).
    cv_macro_f1_before_ : float or None
        ``"tune"``: the same without offsets.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from featx.heads import ClassBiasClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(180, int), np.ones(20, int)]
    >>> X = rng.normal(size=(200, 5)) + 0.8 * y[:, None]
    >>> head = ClassBiasClassifier(method="prior").fit(X, y)
    >>> bool(head.offsets_[1] > head.offsets_[0])  # the rare class is lifted
    True
    """

    def __init__(self, estimator=None, *, method="tune", cv=3, random_state=None):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y):
        """Fit the offsets (out-of-fold for ``"tune"``), then the head on all of ``X``."""
        check_choice("method", self.method, list(IMBALANCE))
        check_int("cv", self.cv, 2)
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"ClassBiasClassifier needs at least 2 classes in y; got 1 class: "
                             f"{self.classes_.tolist()}.")
        base = LogisticRegression(max_iter=2000) if self.estimator is None else self.estimator
        self.cv_macro_f1_ = self.cv_macro_f1_before_ = None
        self.score_scale_ = 1.0
        if self.method == "prior":
            if not hasattr(base, "predict_proba"):
                raise ValueError(f"method='prior' shifts probabilities: estimator needs "
                                 f"predict_proba; got {type(base).__name__}. Use method='tune' "
                                 f"or a calibrated head (make_head(..., proba=True)).")
            self.offsets_ = -np.log(np.bincount(codes) / len(codes))
            self.offsets_ -= self.offsets_.mean()
        else:
            self.offsets_ = self._tune(base, X, y, codes)
        self.estimator_ = clone(base).fit(X, y)
        return self

    def _tune(self, base, X, y, codes) -> np.ndarray:
        counts = np.bincount(codes)
        n_splits = min(self.cv, int(counts.min()))
        offsets = np.zeros(len(self.classes_))
        if n_splits < 2:
            return offsets
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
        method = "predict_proba" if hasattr(base, "predict_proba") else "decision_function"
        values = cross_val_predict(clone(base), X, y, cv=folds, method=method)
        if method == "decision_function":
            self.score_scale_ = float(np.std(values)) or 1.0
        scores = _as_scores(values, method, self.score_scale_)

        def score(off):
            return f1_score(codes, np.argmax(scores + off, axis=1), average="macro",
                            zero_division=0)

        best = self.cv_macro_f1_before_ = score(offsets)
        for _ in range(_ROUNDS):
            improved = False
            for k in range(len(offsets)):
                trial = offsets.copy()
                for value in _GRID:
                    trial[k] = value
                    s = score(trial)
                    if s > best + 1e-9:
                        best, offsets, improved = s, trial.copy(), True
            if not improved:
                break
        self.cv_macro_f1_ = best
        return offsets - offsets.mean()

    def _scores(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False)
        if hasattr(self.estimator_, "predict_proba"):
            return _as_scores(self.estimator_.predict_proba(X), "predict_proba")
        return _as_scores(self.estimator_.decision_function(X), "decision_function",
                          self.score_scale_)

    def predict(self, X):
        """The argmax of the offset scores, as labels."""
        scores = self._scores(X)  # checks that the head is fitted
        return self.classes_[np.argmax(scores + self.offsets_, axis=1)]

    @available_if(_has_proba)
    def predict_proba(self, X):
        """The wrapped head's probabilities with the offsets applied (renormalised)."""
        return softmax(self._scores(X) + self.offsets_, axis=1)


def _as_scores(values: np.ndarray, method: str, scale: float = 1.0) -> np.ndarray:
    """``(n, n_classes)`` scores: log-probabilities, or decision values divided by ``scale``
    (their out-of-fold spread; a binary decision function becomes ``[0, s]``)."""
    values = np.asarray(values, dtype=float)
    if method == "predict_proba":
        return log_softmax(np.log(np.clip(values, 1e-12, None)), axis=1)
    if values.ndim == 1:
        values = np.c_[np.zeros_like(values), values]
    return values / scale
