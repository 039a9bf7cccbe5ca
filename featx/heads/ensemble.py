"""Ensembles of heads on cached features: soft voting and stacking, with weights chosen by
cross-validation on the training data only.

A member is one head of the table fitted on one column block of the feature matrix. With
``blocks=None`` every member sees every column (several heads on one backbone's features); with
``blocks=(1280, 1280, 1408)`` the matrix is the concatenation of several feature sets (three
backbones, or layer taps of one) and every head of ``heads`` is fitted once per block, so the
ensemble combines backbones instead of concatenating them.

:class:`SoftVoteHead` averages the members' probabilities with weights that minimise the log-loss
of their out-of-fold probabilities (``cv`` stratified folds of the training data);
:class:`StackHead` fits a logistic regression on those out-of-fold outputs
(:class:`sklearn.ensemble.StackingClassifier`). Both are rows of the head table (``soft_vote``,
``stack``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.heads.build import build_head
from featx.heads.rows import BASE_TABLE
from featx.utils.checks import check_int

__all__ = ["SoftVoteHead", "StackHead", "block_bounds"]


def block_bounds(blocks: Sequence[int] | None, n_features: int) -> list[tuple[int, int]]:
    """Column ranges ``[(start, stop), ...]`` of the blocks of widths ``blocks``.

    Parameters
    ----------
    blocks : sequence of int or None
        Widths of consecutive column blocks; they must add up to ``n_features``. None: one block
        of every column.
    n_features : int
        Columns of the feature matrix.

    Returns
    -------
    list of (int, int)

    Examples
    --------
    >>> from featx.heads.ensemble import block_bounds
    >>> block_bounds([1280, 1280, 1408], 3968)
    [(0, 1280), (1280, 2560), (2560, 3968)]
    >>> block_bounds(None, 64)
    [(0, 64)]
    """
    if blocks is None:
        return [(0, n_features)]
    widths = list(blocks) if isinstance(blocks, Sequence) and not isinstance(blocks, str) else None
    if not widths or any(not isinstance(w, numbers.Integral) or isinstance(w, bool) or w < 1
                         for w in widths):
        raise ValueError(f"blocks must be None or a non-empty sequence of ints >= 1 (the widths "
                         f"of the concatenated feature sets); got blocks={blocks!r}.")
    if sum(widths) != n_features:
        raise ValueError(f"blocks must add up to the {n_features} feature columns; got "
                         f"blocks={blocks!r} (sum {sum(widths)}).")
    stops = np.cumsum(widths).tolist()
    return list(zip([0, *stops[:-1]], stops, strict=True))


class _EnsembleHead(ClassifierMixin, BaseEstimator):
    """Members, folds and delegation shared by the two ensembles (``ensemble_`` does the work)."""

    def _check_heads(self) -> list[str]:
        heads = [self.heads] if isinstance(self.heads, str) else list(self.heads or ())
        if not heads:
            raise ValueError(f"heads must name at least one head; got heads={self.heads!r}.")
        for name in heads:
            if name not in BASE_TABLE:
                raise ValueError(f"{BASE_TABLE.unknown(name)}; in heads={self.heads!r} (an "
                                 "ensemble combines base heads, not other ensembles)")
        return heads

    def _folds(self, y) -> StratifiedKFold | None:
        """Stratified folds: ``cv``, or fewer when the smallest class has fewer samples; None
        when a class has a single sample (no held-out estimate is possible)."""
        check_int("cv", self.cv, 2)
        smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        n_splits = min(self.cv, smallest)
        if n_splits < 2:
            return None
        return StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)

    def _members(self, X, y, folds, *, proba: bool) -> list[tuple[str, Pipeline]]:
        """``[(name, block selector + sized head)]`` for every head on every block."""
        counts = np.unique(y, return_counts=True)[1]
        k = 1 if folds is None else folds.get_n_splits()
        n = len(y) if folds is None else len(y) - len(y) // k
        n_classes = len(counts)
        # a stratified training fold keeps at least count - ceil(count / k) of each class
        smallest = int((counts - (-(-counts // k) if k > 1 else 0)).min())
        bounds = block_bounds(self.blocks, X.shape[1])
        members, self.dropped_ = [], []
        for head in self._check_heads():
            spec = BASE_TABLE[head]
            calibrated = proba and not spec.predict_proba
            if calibrated and smallest < 2:
                self.dropped_.append(head)  # calibration needs 2 images per class and fold
                continue
            # calibration folds are min(5, n_samples // n_classes): size them by the smallest class
            size = smallest * n_classes if calibrated else n
            extra = {"class_weight": self.class_weight} if spec.class_weight else {}
            for b, (start, stop) in enumerate(bounds):
                est = build_head(spec, proba=proba, random_state=self.random_state,
                                 n_samples=size, n_classes=n_classes, **extra)
                if len(bounds) > 1:
                    cols = ColumnTransformer([("cols", "passthrough", slice(start, stop))])
                    est = Pipeline([("block", cols), ("head", est)])
                members.append((head if len(bounds) == 1 else f"{head}@{b}", est))
        if not members:
            raise ValueError(f"no head of heads={self.heads!r} can give probabilities on "
                             f"{n} training samples of {n_classes} classes; add a head with "
                             "predict_proba (logreg, rf, mlp, knn).")
        return members

    def _validate(self, X, y):
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y; got "
                             f"{len(self.classes_)} class: {self.classes_.tolist()}.")
        return X, y

    def predict(self, X):
        """Predicted class labels."""
        check_is_fitted(self, "ensemble_")
        return self.ensemble_.predict(validate_data(self, X, reset=False))

    def predict_proba(self, X):
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "ensemble_")
        return self.ensemble_.predict_proba(validate_data(self, X, reset=False))


class SoftVoteHead(_EnsembleHead):
    """Soft voting over heads (and column blocks), weights chosen by cross-validation.

    Each member's out-of-fold probabilities on the training data give the weights: the point of
    the simplex minimising the log-loss of their weighted average. The members are then refitted
    on all the training data and their probabilities averaged with those weights.

    Parameters
    ----------
    heads : sequence of str, default=("logreg", "svm", "knn")
        Base heads of the table (:func:`featx.heads.list_heads`, ensembles excluded), each with
        its row defaults, sized for the training folds; heads without ``predict_proba`` are
        calibrated (``make_head(..., proba=True)``).
    blocks : sequence of int or None, default=None
        Widths of concatenated feature blocks (e.g. one per backbone); every head is fitted on
        every block. None: one block of all columns.
    weights : "cv", None or sequence of float, default="cv"
        ``"cv"``: chosen on out-of-fold probabilities; None: equal; or one weight per member
        (heads in order, each over its blocks).
    cv : int, default=3
        Stratified folds for the out-of-fold probabilities (fewer when the smallest class is
        smaller; equal weights when a class has one sample).
    class_weight : "balanced" or None, default="balanced"
        Passed to the members that take one.
    random_state : int or None, default=None
        Seeds the folds and the members.

    Attributes
    ----------
    classes_ : ndarray
    weights_ : ndarray of shape (n_members,)
        The weights used (sum 1).
    member_names_ : list of str
        ``head`` or, with several blocks, ``head@block``.
    dropped_ : list of str
        Heads left out because the training folds are too small to calibrate them (fewer than
        2 samples per class: ``svm``, ``linear_svm``).
    cv_log_loss_ : float or None
        Out-of-fold log-loss of the weighted average (None when no folds were possible).
    ensemble_ : sklearn.ensemble.VotingClassifier
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from featx.heads import SoftVoteHead
    >>> X, y = make_classification(150, 12, n_informative=6, n_classes=3, random_state=0)
    >>> head = SoftVoteHead(heads=("logreg", "knn"), random_state=0).fit(X, y)
    >>> head.member_names_, round(float(head.weights_.sum()), 6)
    (['logreg', 'knn'], 1.0)
    >>> head.score(X, y) > 0.8
    True
    """

    def __init__(self, heads=("logreg", "svm", "knn"), *, blocks=None, weights="cv", cv=3,
                 class_weight="balanced", random_state=None):
        self.heads = heads
        self.blocks = blocks
        self.weights = weights
        self.cv = cv
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X, y):
        """Choose the weights on out-of-fold probabilities, then fit every member on ``X``."""
        X, y = self._validate(X, y)
        folds = self._folds(y)
        members = self._members(X, y, folds, proba=True)
        self.member_names_ = [name for name, _ in members]
        self.cv_log_loss_ = None
        if isinstance(self.weights, str) and self.weights == "cv" and folds is not None:
            codes = np.searchsorted(self.classes_, y)
            oof = [cross_val_predict(clone(est), X, y, cv=folds, method="predict_proba")
                   for _, est in members]
            self.weights_, self.cv_log_loss_ = _simplex_weights(oof, codes)
        elif self.weights is None or isinstance(self.weights, str):
            if self.weights not in (None, "cv"):
                raise ValueError(f"weights must be 'cv', None or one float per member; got "
                                 f"weights={self.weights!r}.")
            self.weights_ = np.full(len(members), 1.0 / len(members))
        else:
            w = np.asarray(self.weights, dtype=float)
            if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"weights must be 'cv', None or {len(members)} non-negative "
                                 f"floats (one per member {self.member_names_}); got "
                                 f"weights={self.weights!r}.")
            self.weights_ = w / w.sum()
        self.ensemble_ = VotingClassifier(members, voting="soft",
                                          weights=self.weights_.tolist()).fit(X, y)
        return self


def _simplex_weights(probas: list[np.ndarray], codes: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights on the simplex (a softmax of free logits) minimising the log-loss of the weighted
    average of ``probas``; starts from equal weights."""
    stacked = np.stack([p[np.arange(len(codes)), codes] for p in probas], axis=1)  # (n, members)

    def loss(z):
        return float(-np.mean(np.log(stacked @ softmax(z) + 1e-12)))

    z0 = np.zeros(stacked.shape[1])
    if stacked.shape[1] == 1:
        return np.ones(1), loss(z0)
    best = minimize(loss, z0, method="L-BFGS-B")
    z = best.x if best.fun <= loss(z0) else z0
    return softmax(z), loss(z)


class StackHead(_EnsembleHead):
    """Stacking: a logistic regression on the members' out-of-fold outputs.

    A thin layer over :class:`sklearn.ensemble.StackingClassifier`: members from the head table
    (one per head and column block, as :class:`SoftVoteHead`), ``cv`` stratified folds, each
    member's ``predict_proba`` (``decision_function`` for the SVMs) as the meta-features.

    Parameters
    ----------
    heads : sequence of str, default=("logreg", "svm", "knn")
        Base heads of the table, with their row defaults sized for the training folds.
    blocks : sequence of int or None, default=None
        Widths of concatenated feature blocks; every head is fitted on every block.
    C : float, default=1.0
        Inverse regularisation of the final logistic regression.
    cv : int, default=3
        Stratified folds for the out-of-fold outputs (fewer when the smallest class is smaller;
        at least 2 samples per class are needed).
    class_weight : "balanced" or None, default="balanced"
        Passed to the members that take one and to the final logistic regression.
    random_state : int or None, default=None

    Attributes
    ----------
    classes_ : ndarray
    member_names_ : list of str
    ensemble_ : sklearn.ensemble.StackingClassifier
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from featx.heads import StackHead
    >>> X, y = make_classification(150, 12, n_informative=6, n_classes=3, random_state=0)
    >>> head = StackHead(heads=("logreg", "knn"), random_state=0).fit(X, y)
    >>> head.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(self, heads=("logreg", "svm", "knn"), *, blocks=None, C=1.0, cv=3,
                 class_weight="balanced", random_state=None):
        self.heads = heads
        self.blocks = blocks
        self.C = C
        self.cv = cv
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X, y):
        """Fit the members on out-of-fold splits and the final logistic regression on their
        outputs, then refit the members on ``X``."""
        X, y = self._validate(X, y)
        folds = self._folds(y)
        if folds is None:
            labels, n = np.unique(y, return_counts=True)
            counts = dict(zip(labels.tolist(), n.tolist(), strict=True))
            raise ValueError(f"StackHead needs at least 2 training samples per class for its "
                             f"out-of-fold outputs; got class counts {counts}.")
        members = self._members(X, y, folds, proba=False)
        self.member_names_ = [name for name, _ in members]
        final = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        self.ensemble_ = StackingClassifier(members, final_estimator=final, cv=folds).fit(X, y)
        return self
