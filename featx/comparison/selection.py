"""Choosing the features: backbones x layer taps x views x normalisations, selected by
cross-validation on train.

:func:`feature_choices` lists the candidates (:class:`FeatureChoice`), :class:`FeatureBank`
extracts each (backbone, view, split) once with every candidate tap, and :func:`select_features`
scores each candidate by cross-validation on the training split only (:func:`cv_score`; the views
of an image share a fold and are averaged by :func:`predict_views`, test-time augmentation),
weighs each candidate's score against its cost (:func:`choose_candidate`: the best score within a
budget, or without one the cheapest within one standard error of the best, fold by fold), tunes
the probe and tries the other heads on the chosen features, and reports every candidate on the
test split as a :class:`~featx.comparison.Comparison`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featx.comparison.run import Comparison
from featx.evaluate import score_predictions
from featx.extract import FeatureSet, extract_features, forward_pass_count, forward_seconds
from featx.utils.checks import check_choice
from featx.utils.threads import blas_limit, usable_cores

__all__ = ["CONCAT", "SELECT_METRICS", "SELECT_RULES", "FeatureBank", "FeatureChoice",
           "check_budget", "choose_candidate", "cv_fold_scores", "cv_fold_scores_many",
           "cv_score", "feature_choices", "fit_views", "fold_ids", "halving_subsets", "near_best",
           "predict_views", "resolve_rule", "select_features", "within_budget"]

#: Selection metrics: name -> scorer of (true class indices, predicted class indices).
SELECT_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: score_predictions(y, p)["accuracy"],
    "macro_f1": lambda y, p: score_predictions(y, p)["macro_f1"],
    "balanced_accuracy": lambda y, p: score_predictions(y, p)["balanced_accuracy"],
}

#: ``feature_choices(concat=...)``: no concatenation, each backbone and all of them, all of them
#: only, or each backbone and every combination of two or more.
CONCAT = (False, True, "only", "subsets")

#: How a candidate is chosen from its cross-validated score and its cost: ``one_se`` the cheapest
#: (forward seconds per image at prediction) whose score is within one standard error of the
#: best one's (Breiman's rule: a cheaper candidate that the folds cannot tell from the best;
#: the standard error of the paired fold differences, :func:`near_best`);
#: ``best`` the highest score whatever its cost; ``auto`` (the default) ``best`` within a
#: budget (the budget already weighs the cost) and ``one_se`` without one (:func:`resolve_rule`).
SELECT_RULES = ("auto", "one_se", "best")


@dataclass(frozen=True)
class FeatureChoice:
    """One candidate feature: backbones (concatenated in order), layer taps, views.

    Attributes
    ----------
    backbones : tuple of str
        One backbone, or several whose features are concatenated (:meth:`FeatureSet.concat`).
    taps : tuple or None
        Tapped layers (entries of ``layers=``: ``-1`` the last block, ``-2`` the one below...)
        sliced from one extraction of every candidate tap (:meth:`FeatureSet.select_layers`);
        ``None``: the backbone's pooled output (``extract_features`` without ``layers``).
    views : tuple of str
        Rows of :data:`featx.extract.views.VIEWS`: heads train on every view's rows and
        average the views' probabilities at prediction (test-time augmentation).
    norm : str
        A row of :data:`featx.heads.FEATURE_NORMS`: how every head's pipeline normalises the
        features first (``"none"``: the head's own preprocessing; ``"sqrt"``: a signed square
        root...). It costs no backbone pass.
    size : int or None
        The square input size every backbone of the candidate runs at (None: the extraction's
        ``input_size``, else each backbone's own); each size is its own cache entry.

    Examples
    --------
    >>> FeatureChoice(("efficientnet_lite0", "efficientnet_lite1"), (-1, -2), ("none", "flip")).name
    'efficientnet_lite0+efficientnet_lite1 taps[-1,-2] views[none,flip]'
    >>> FeatureChoice(("efficientnet_lite0",), norm="sqrt").name
    'efficientnet_lite0 norm[sqrt]'
    >>> FeatureChoice(("efficientnet_lite0",), size=320).sources
    (('efficientnet_lite0', 320),)
    """

    # Pickles name the class by its public path (stable as modules move).
    __module__ = "featx.comparison"

    backbones: tuple[str, ...]
    taps: tuple | None = None
    views: tuple[str, ...] = ("none",)
    norm: str = "none"
    size: int | None = None

    @property
    def sources(self) -> tuple[tuple[str, int | None], ...]:
        """``(backbone, size)`` of each part: what :class:`FeatureBank` extracts and caches."""
        return tuple((b, self.size) for b in self.backbones)

    @property
    def name(self) -> str:
        name = "+".join(self.backbones) + ("" if self.size is None else f" {self.size}px")
        if self.taps is not None:
            name += " taps[" + ",".join(map(str, self.taps)) + "]"
        if tuple(self.views) != ("none",):
            name += " views[" + ",".join(self.views) + "]"
        if self.norm != "none":
            name += f" norm[{self.norm}]"
        return name

    @property
    def passes_per_image(self) -> int:
        """Backbone passes one image costs: one per backbone per view (taps are free)."""
        return len(self.backbones) * len(self.views)


def feature_choices(backbones: Sequence[str], *, taps: Sequence[Sequence] = (),
                    views: Sequence[str] = ("none",), concat: bool | str = False,
                    norms: Sequence[str] = ("none",),
                    sizes: Sequence[int | None] = (None,)) -> list[FeatureChoice]:
    """The candidates of a feature-choice step: every backbone (and, with ``concat=True``, all
    of them concatenated; ``concat="only"``: just the concatenation; ``concat="subsets"``: every
    backbone and every combination of two or more, e.g. the pairs that cost two passes) x every
    tap set (``()``: the pooled output) x the first view alone and, when several ``views`` are
    given, all of them (TTA) x every normalisation of ``norms`` (rows of
    :data:`featx.heads.FEATURE_NORMS`; free: no backbone pass) x every input size of ``sizes``
    (``None``: the extraction's; e.g. ``[224, 320]`` for images far from a backbone's own size;
    a pass per size).

    Examples
    --------
    >>> [c.name for c in feature_choices(["a", "b"], taps=[[-1], [-2, -3]], concat=True)][:3]
    ['a taps[-1]', 'b taps[-1]', 'a+b taps[-1]']
    >>> len(feature_choices(["a"], views=["none", "flip"]))
    2
    >>> [c.name for c in feature_choices(["a", "b"], concat="only")]
    ['a+b']
    >>> [c.name for c in feature_choices(["a", "b", "c"], concat="subsets")]
    ['a', 'b', 'c', 'a+b', 'a+c', 'b+c', 'a+b+c']
    >>> [c.name for c in feature_choices(["a"], norms=["none", "sqrt"])]
    ['a', 'a norm[sqrt]']
    >>> [c.name for c in feature_choices(["a"], sizes=[96, 224])]
    ['a 96px', 'a 224px']
    """
    check_choice("concat", concat, CONCAT)
    from featx.extract.views import check_views
    from featx.heads import check_norm

    views = tuple(check_views(list(views)))
    if isinstance(norms, str) or not norms:
        raise ValueError(f"norms must be a non-empty list of normalisations, e.g. ['none', "
                         f"'sqrt']; got norms={norms!r}")
    norms = tuple(dict.fromkeys(check_norm(n) for n in norms))
    if isinstance(sizes, (str, int)) or not sizes or not all(
            s is None or isinstance(s, int) and not isinstance(s, bool) and s >= 8
            for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of input sizes (ints >= 8, or None "
                         f"for the extraction's), e.g. [224, 320]; got sizes={sizes!r}")
    sizes = tuple(dict.fromkeys(sizes))
    groups = [(b,) for b in backbones]
    if concat == "subsets":
        from itertools import combinations

        groups = [g for k in range(1, len(backbones) + 1) for g in combinations(backbones, k)]
    elif concat and len(backbones) > 1:
        groups = [tuple(backbones)] if concat == "only" else [*groups, tuple(backbones)]
    tap_sets = [tuple(t) for t in taps] or [None]
    view_sets = [views[:1]] + ([views] if len(views) > 1 else [])
    return [FeatureChoice(g, t, v, n, size) for size in sizes for n in norms for v in view_sets
            for t in tap_sets for g in groups]


def _tap_union(choices: Sequence[FeatureChoice]) -> list | None:
    union: list = []
    for c in choices:
        for e in c.taps or ():
            if e not in union:
                union.append(e)
    return union or None


# What forward_seconds takes of the extraction's settings (the rest, e.g. verbose, is not timed)
_TIMED = ("weights", "input_size", "pooling", "resize", "decoder", "dtype", "mixed_precision",
          "cache", "runtime", "batch_size")


@dataclass
class FeatureBank:
    """Every (backbone, view, split) extracted once, with all candidate taps; any
    :class:`FeatureChoice` is then slices and concatenations of it, with no backbone pass.

    Attributes
    ----------
    sets : dict
        ``((backbone, size), view, split) -> FeatureSet`` (``size`` None: the extraction's).
    passes : dict
        ``(backbone, size) -> images sent through it`` in this call (0 when all came from the
        cache).
    seconds : dict
        ``(backbone, size) -> extraction seconds``.
    speed : dict
        ``(backbone, size) -> forward seconds per image`` (:func:`~featx.extract.forward_seconds`,
        measured in this call whether or not the features were cached; empty when not asked).
    """

    # Pickles name the class by its public path (stable as modules move).
    __module__ = "featx.comparison"

    sets: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    taps: list | None = None
    speed: dict = field(default_factory=dict)

    @classmethod
    def extract(cls, splits: Mapping[str, Any], choices: Sequence[FeatureChoice],
                measure: bool = False, speed: Mapping[str, float] | None = None,
                **extract_kw) -> FeatureBank:
        """Extract what ``choices`` need for every split of ``splits`` (cached).

        With taps, every backbone is extracted with the union of the choices' taps, or with
        ``extract_kw["layers"]`` when that lists all of them (a wider pool of taps, e.g. one
        cache entry shared by several pipelines). ``measure=True`` also times each backbone's
        forward pass (:attr:`speed`), right after its extraction while it is still built;
        ``speed`` holds sources already timed (not timed again).
        """
        bank = cls(taps=_tap_union(choices), speed=dict(speed or {}))
        pool = extract_kw.get("layers")
        if bank.taps and pool:
            missing = [t for t in bank.taps if t not in pool]
            if missing:
                raise ValueError(f"layers={list(pool)!r} must hold every tap of the candidates "
                                 f"(missing {missing}), or leave layers unset")
            bank.taps = list(pool)
        sources = list(dict.fromkeys(s for c in choices for s in c.sources))
        views = list(dict.fromkeys(v for c in choices for v in c.views))
        kw = {k: v for k, v in extract_kw.items() if k != "layers"}
        for source in sources:
            backbone, size = source
            sized = kw if size is None else {**kw, "input_size": size}
            start, before = time.perf_counter(), forward_pass_count()
            for view in views:
                for split, data in splits.items():
                    bank.sets[(source, view, split)] = extract_features(
                        data, backbone, layers=bank.taps or extract_kw.get("layers"),
                        view=view, **sized)
            bank.passes[source] = forward_pass_count() - before
            bank.seconds[source] = time.perf_counter() - start
            if measure and source not in bank.speed:
                bank.speed[source] = forward_seconds(
                    backbone, layers=bank.taps or extract_kw.get("layers"), view=views[-1],
                    **{k: v for k, v in sized.items() if k in _TIMED})
        return bank

    def seconds_per_image(self, choice: FeatureChoice) -> float | None:
        """Forward seconds one image costs ``choice`` at prediction: each backbone once per view
        (None when the bank was extracted without ``measure``)."""
        if not all(s in self.speed for s in choice.sources):
            return None
        return sum(self.speed[s] for s in choice.sources) * len(choice.views)


    def features(self, choice: FeatureChoice, split: str) -> list:
        """One FeatureSet per view of ``choice`` on ``split``, rows aligned across views."""
        out = []
        for view in choice.views:
            parts = [self.sets[(s, view, split)] for s in choice.sources]
            if choice.taps is not None:
                parts = [p.select_layers(list(choice.taps)) for p in parts]
            out.append(FeatureSet.concat(parts))
        first = out[0]
        return [fs if fs.ids == first.ids else _align(fs, first) for fs in out]


def _align(fs, like):
    """``fs``'s rows in ``like``'s order (views of one split hold the same images)."""
    row = {cid: i for i, cid in enumerate(fs.ids)}
    return fs.subset([row[cid] for cid in like.ids])


def _scores(estimator, X) -> np.ndarray:
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)
    scores = estimator.decision_function(X)
    return scores if scores.ndim == 2 else np.stack([-scores, scores], axis=1)


def fit_views(estimator, views_X: Sequence[np.ndarray], y) -> Any:
    """Fit ``estimator`` on every view's rows stacked (each view of an image keeps its label)."""
    return estimator.fit(np.concatenate(views_X), np.concatenate([y] * len(views_X)))


def predict_views(estimator, views_X: Sequence[np.ndarray]) -> np.ndarray:
    """Class indices from the views' probabilities (or decision scores) averaged: TTA (a
    class the estimator never saw in training is never predicted)."""
    top = np.mean([_scores(estimator, X) for X in views_X], axis=0).argmax(axis=1)
    classes = getattr(estimator, "classes_", None)
    return top if classes is None else np.asarray(classes)[top]


def cv_score(head, views_X: Sequence[np.ndarray], y, *, folds: int = 5, seed: int = 0,
             metric: str = "accuracy") -> float:
    """Cross-validated ``metric`` of ``head`` on training features: the mean over the folds of
    :func:`cv_fold_scores`. Test data never enters.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 4)), np.repeat([0, 1], 30)
    >>> X[y == 1] += 3
    >>> cv_score(LogisticRegression(), [X, X + 0.1], y, folds=3) > 0.9
    True
    """
    return float(np.mean(cv_fold_scores(head, views_X, y, folds=folds, seed=seed, metric=metric)))


def cv_fold_scores(head, views_X: Sequence[np.ndarray], y, *, folds: int = 5, seed: int = 0,
                   metric: str = "accuracy", probe_dims: int | None = None,
                   n_jobs: int | None = None) -> np.ndarray:
    """``metric`` of ``head`` on each held-out fold of a stratified k-fold split of the training
    features (all views of an image in the same fold; a held-out fold scored by TTA over its
    views); ``folds`` drops to the smallest class's count. Fits use one BLAS thread each
    (:func:`featx.utils.threads.blas_limit`), as every head fit of featx does, and the folds are
    fitted side by side on ``n_jobs`` threads (None: one per usable core). Threads, not
    processes: the features are shared, not copied, and the solvers' numerical work releases
    the GIL (on 2 cores, 5 folds of Lite1/Lite2 probes up to 3,864 wide: 1.65x faster than one
    thread; ``benchmarks/select_cost.py --jobs 0 1``). :func:`cv_fold_scores_many` scores
    several candidates in one pool.

    ``probe_dims`` (an int) first projects wider features on their first ``probe_dims``
    principal components (standardised, then a randomised PCA fitted on each fold's training
    rows only). Measured on Lite0's candidates on clothing-small it saved little time and lost
    1.6-3.5 points of CV accuracy (``benchmarks/select_cost.py``), so :func:`select_features`
    does not use it; it is kept for that measurement on wider features.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 4)), np.repeat([0, 1], 30)
    >>> X[y == 1] += 3
    >>> cv_fold_scores(LogisticRegression(), [X], y, folds=3).shape
    (3,)
    """
    return cv_fold_scores_many([(head, views_X)], y, folds=folds, seed=seed, metric=metric,
                               probe_dims=probe_dims, n_jobs=n_jobs)[0]


def cv_fold_scores_many(candidates: Sequence[tuple[Any, Sequence[np.ndarray]]], y, *,
                        folds: int = 5, seed: int = 0, metric: str = "accuracy",
                        probe_dims: int | None = None,
                        n_jobs: int | None = None) -> list[np.ndarray]:
    """:func:`cv_fold_scores` of several ``(head, views_X)`` candidates on the same training
    rows (labels ``y``, the same folds for all), every (candidate, fold) fit in one pool of
    ``n_jobs`` threads (None: one per usable core). One pool keeps every core busy to the end:
    folds alone leave a core idle whenever the folds do not divide among the cores (5 folds on
    2 cores: 3 rounds of fits for 2.5 of work).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 4)), np.repeat([0, 1], 30)
    >>> X[y == 1] += 3
    >>> [s.shape for s in cv_fold_scores_many([(LogisticRegression(), [X]),
    ...                                        (LogisticRegression(C=0.1), [X])], y, folds=3)]
    [(3,), (3,)]
    """
    y = np.asarray(y)
    return _cv_fits(candidates, y, _stratified_split(y, folds, seed), metric=metric,
                    probe_dims=probe_dims, seed=seed, n_jobs=n_jobs)[0]


def _stratified_split(y: np.ndarray, folds: int, seed: int) -> list:
    """``(train rows, held rows)`` of each fold of a shuffled stratified k-fold split of labels
    ``y``; ``folds`` drops to the smallest class's count (a ``ValueError`` below 2)."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(y).min())
    if min(int(folds), smallest) < 2:
        raise ValueError(f"cross-validation needs at least 2 training images per class, got a "
                         f"class with {smallest}")
    return list(StratifiedKFold(min(int(folds), smallest), shuffle=True,
                                random_state=seed).split(np.zeros(len(y)), y))


def _cv_fits(candidates: Sequence[tuple[Any, Sequence[np.ndarray]]], y: np.ndarray,
             split: Sequence[tuple[np.ndarray, np.ndarray]], *, metric: str,
             probe_dims: int | None = None, seed: int = 0, n_jobs: int | None = None,
             starts: Sequence[Sequence | None] | None = None) -> tuple[list, list]:
    """The fold scores of each ``(head, views_X)`` candidate on ``split`` (``(train rows, held
    rows)`` per fold), and each fold's fitted final step. ``starts``: per candidate, a fitted
    final step per fold (or None) to start that fold's fit from (:func:`_started`)."""
    score = SELECT_METRICS[check_choice("metric", metric, tuple(SELECT_METRICS))]
    starts = list(starts) if starts is not None else [None] * len(candidates)

    def one(head, views_X, tr, va, start):
        fit_X, held_X = _project([X[tr] for X in views_X], [X[va] for X in views_X],
                                 probe_dims, seed)
        fitted = fit_views(_started(head, None if probe_dims else start, y[tr]), fit_X, y[tr])
        return score(y[va], predict_views(fitted, held_X)), _final_step(fitted)

    out = _on_threads(one, [(head, views_X, tr, va, None if start is None else start[k])
                            for (head, views_X), start in zip(candidates, starts, strict=True)
                            for k, (tr, va) in enumerate(split)], n_jobs)
    n = len(split)
    return ([np.asarray([s for s, _ in out[i * n:(i + 1) * n]], dtype=float)
             for i in range(len(candidates))],
            [[f for _, f in out[i * n:(i + 1) * n]] for i in range(len(candidates))])


def _started(head, start, y) -> Any:
    """A fresh clone of ``head`` whose final step, a linear model with ``warm_start``, starts
    from ``start``'s solution (a fit of the same kind on the same features and classes, on
    fewer rows or at another regularisation); a plain clone otherwise.

    Why: successive halving fits each candidate's folds again on twice the rows, and the
    probe's grid refits the chosen candidate's folds at other values of C. Started from the
    fit before, L-BFGS needs about a third of the iterations (``benchmarks/halving_rounds.py
    --warm``). A start never saw the held-out rows: the folds are nested across rounds."""
    from sklearn.base import clone

    head = clone(head)
    last = _final_step(head)
    if (start is None or type(start) is not type(last) or not hasattr(start, "coef_")
            or "warm_start" not in last.get_params()
            or not np.array_equal(getattr(start, "classes_", None), np.unique(y))):
        return head
    last.set_params(warm_start=True)
    last.coef_, last.intercept_ = start.coef_.copy(), np.array(start.intercept_, copy=True)
    return head


def _final_step(estimator) -> Any:
    """The last step of a pipeline; any other estimator itself."""
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def fold_ids(y, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's fold in the shuffled stratified k-fold split of labels ``y`` that
    :func:`cv_fold_scores` draws (``folds`` drops to the smallest class's count).
    :func:`select_features` draws it once on the whole training split, and every round of
    successive halving keeps its images in these folds.

    Examples
    --------
    >>> ids = fold_ids(np.repeat([0, 1], 6), folds=3)
    >>> sorted(np.bincount(ids).tolist())
    [4, 4, 4]
    """
    ids = np.empty(len(y), int)
    for k, (_, held) in enumerate(_stratified_split(np.asarray(y), folds, seed)):
        ids[held] = k
    return ids


def _nested_split(ids: Sequence, fold_of: Mapping, folds: int) -> list:
    """``(train rows, held rows)`` per fold of the rows named ``ids`` (paths), each row in the
    fold ``fold_of`` gives it: a round of successive halving keeps its images' folds."""
    at = np.asarray([fold_of[i] for i in ids])
    return [(np.flatnonzero(at != k), np.flatnonzero(at == k)) for k in range(folds)]


def _on_threads(fn: Callable, jobs: Sequence[tuple], n_jobs: int | None = None) -> list:
    """``fn(*job)`` of every job, in order, side by side on ``n_jobs`` threads (None: one per
    usable core), each with one BLAS thread (:func:`featx.utils.threads.blas_limit`)."""
    from joblib import Parallel, delayed

    with blas_limit():
        return Parallel(n_jobs=n_jobs or max(1, min(len(jobs), usable_cores())),
                        prefer="threads")(delayed(fn)(*job) for job in jobs)


def _project(fit_X: list, held_X: list, dims: int | None, seed: int) -> tuple[list, list]:
    """Both row sets on the first ``dims`` principal components of ``fit_X`` (standardised);
    unchanged when ``dims`` is None or not below the width and the row count."""
    stacked = np.concatenate(fit_X)
    if dims is None or dims >= min(stacked.shape):
        return fit_X, held_X
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    project = make_pipeline(StandardScaler(), PCA(int(dims), svd_solver="randomized",
                                                  random_state=seed)).fit(stacked)
    return [project.transform(X) for X in fit_X], [project.transform(X) for X in held_X]


def check_budget(budget: Any) -> tuple[str, float] | None:
    """``budget`` as ``(unit, limit)``: a number is backbone passes per image, a string ending
    in ``s`` or ``ms`` forward seconds per image at prediction (``"0.02s"``, ``"20ms"``).

    Examples
    --------
    >>> check_budget(2), check_budget("20ms"), check_budget("0.5 s"), check_budget(None)
    (('passes', 2.0), ('seconds', 0.02), ('seconds', 0.5), None)
    """
    if budget is None:
        return None
    text = str(budget).strip().lower().replace(" ", "")
    unit, scale = ("passes", 1.0)
    for suffix, s_scale in (("ms", 1e-3), ("s", 1.0)):
        if isinstance(budget, str) and text.endswith(suffix):
            unit, scale, text = "seconds", s_scale, text[: -len(suffix)]
            break
    try:
        value = float(text) * scale
    except ValueError:
        value = float("nan")
    if isinstance(budget, bool) or not value > 0:
        raise ValueError(
            "budget must be backbone passes per image (a number > 0, e.g. 2) or forward "
            f"seconds per image at prediction (a string, e.g. '0.02s' or '20ms'); got "
            f"budget={budget!r}")
    return unit, value


def resolve_rule(rule: str, budget: Any = None) -> str:
    """The rule ``rule`` means with ``budget``: ``"auto"`` is ``"best"`` within a budget (the
    budget is the user's price: the best score it buys) and ``"one_se"`` without one (the
    cheapest the folds cannot tell from the best); the others are themselves.

    Examples
    --------
    >>> resolve_rule("auto", 2), resolve_rule("auto"), resolve_rule("one_se", 2)
    ('best', 'one_se', 'one_se')
    """
    check_choice("rule", rule, SELECT_RULES)
    if rule != "auto":
        return rule
    return "one_se" if check_budget(budget) is None else "best"


def choose_candidate(rows: Sequence[Mapping[str, Any]], *, rule: str = "auto",
                     budget: Any = None) -> int:
    """The index of the chosen candidate among ``rows`` (dicts with ``cv_score``, ``cv_se``,
    ``passes_per_image``, ``seconds_per_image`` and, where known, ``cv_folds``; the cost is
    ``seconds_per_image``, or ``passes_per_image`` where seconds were not measured).

    Only candidates within ``budget`` (:func:`within_budget`) compete. ``rule="best"`` takes the
    highest score; ``"one_se"`` (:data:`SELECT_RULES`) the cheapest that the folds cannot tell
    from the best (:func:`near_best`; of equal cost, the better score; then the earlier row);
    ``"auto"`` the first within a budget, the second without (:func:`resolve_rule`).

    Examples
    --------
    >>> rows = [dict(cv_score=0.90, cv_se=0.01, passes_per_image=3, seconds_per_image=0.06),
    ...         dict(cv_score=0.895, cv_se=0.01, passes_per_image=1, seconds_per_image=0.02),
    ...         dict(cv_score=0.85, cv_se=0.01, passes_per_image=1, seconds_per_image=0.01)]
    >>> choose_candidate(rows), choose_candidate(rows, rule="best"), choose_candidate(rows,
    ...                                                                             budget="15ms")
    (1, 0, 2)
    """
    rule = resolve_rule(rule, budget)
    allowed = within_budget(rows, budget)
    score = [rows[i]["cv_score"] or 0.0 for i in allowed]
    best = allowed[int(np.argmax(score))]
    if rule == "best" or len(allowed) == 1:
        return best
    near = [allowed[i] for i in near_best([rows[i] for i in allowed])]
    return min(near, key=lambda i: (_cost(rows[i]), -(rows[i]["cv_score"] or 0.0), i))


def near_best(rows: Sequence[Mapping[str, Any]], *, paired: bool = True) -> list[int]:
    """The indices of ``rows`` whose cross-validated score the folds cannot tell from the best:
    at most one standard error below it.

    Every candidate is scored on the same folds (one seed, one training split), so the
    comparison is paired: the standard error is that of the per-fold differences between a
    candidate and the best (``cv_folds``), which leaves out how hard each fold is for every
    candidate alike. On clothing-small's 3-fold CV the candidates' own standard errors
    (0.007-0.009) spanned every strong candidate; the paired ones separate them. Rows without
    ``cv_folds``, or ``paired=False``, fall back on the best row's ``cv_se``.

    Examples
    --------
    >>> rows = [dict(cv_score=0.90, cv_folds=[0.92, 0.90, 0.88]),
    ...         dict(cv_score=0.89, cv_folds=[0.91, 0.89, 0.87]),   # 0.01 below on every fold
    ...         dict(cv_score=0.895, cv_folds=[0.88, 0.91, 0.895])]
    >>> near_best(rows)
    [0, 2]
    """
    scores = [row["cv_score"] if row.get("cv_score") is not None else -np.inf for row in rows]
    lead = int(np.argmax(scores))
    lead_folds = rows[lead].get("cv_folds") if paired else None
    near = []
    for i, row in enumerate(rows):
        folds = row.get("cv_folds")
        if lead_folds is not None and folds is not None and len(folds) == len(lead_folds) > 1:
            diff = np.asarray(lead_folds, float) - np.asarray(folds, float)
            margin = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
        else:
            margin = rows[lead].get("cv_se") or 0.0
        if scores[i] >= scores[lead] - margin - 1e-12:
            near.append(i)
    return near


def _cost(row: Mapping[str, Any]) -> tuple:
    seconds = row.get("seconds_per_image")
    return (row["passes_per_image"] if seconds is None else seconds, row["passes_per_image"])


def within_budget(rows: Sequence[Mapping[str, Any]], budget: Any) -> list[int]:
    """The indices of ``rows`` (``passes_per_image``, ``seconds_per_image``) within ``budget``
    (:func:`check_budget`; None: all); a ``ValueError`` names the cheapest when none is.

    Examples
    --------
    >>> within_budget([dict(passes_per_image=2), dict(passes_per_image=1)], 1)
    [1]
    """
    limit = check_budget(budget)
    if limit is None:
        return list(range(len(rows)))
    unit, value = limit
    if unit == "seconds" and any(row.get("seconds_per_image") is None for row in rows):
        raise ValueError(f"budget={budget!r} is in seconds per image, but the candidates' "
                         "forward speed was not measured")
    key = "passes_per_image" if unit == "passes" else "seconds_per_image"
    allowed = [i for i, row in enumerate(rows) if row[key] <= value + 1e-12]
    if not allowed:
        cheapest = min(rows, key=_cost)
        raise ValueError(
            f"budget={budget!r} leaves no candidate: the cheapest costs "
            f"{cheapest['passes_per_image']} pass(es) per image"
            + ("" if cheapest.get("seconds_per_image") is None else
               f", {cheapest['seconds_per_image'] * 1e3:.1f} ms per image")
            + "; raise the budget or add cheaper candidates (one backbone, one view)")
    return allowed


def halving_subsets(y, folds: int, seed: int = 0, *, start: float = 0.25,
                    factor: int = 2) -> list[np.ndarray]:
    """The training rows of each round of successive halving: nested stratified subsamples,
    ``start`` of every class, then ``factor`` times more per round, ending with every row.

    A round is kept only when its smallest class still has ``2 * folds`` images (a fold's
    training part then holds at least ``folds`` of each); too small a training split gets one
    round, all rows.

    Examples
    --------
    >>> y = np.repeat([0, 1], [40, 80])
    >>> [len(r) for r in halving_subsets(y, folds=3)]
    [30, 60, 120]
    >>> [len(r) for r in halving_subsets(np.repeat([0, 1], 8), folds=3)]  # 8 < 2 * 3 / 0.5
    [16]
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    rank = np.empty(len(y))  # each row's place in its class's shuffled order, in (0, 1]
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        rank[members] = (np.arange(len(members)) + 1) / len(members)
    smallest = int(np.bincount(y).min())
    fractions, f = [], float(start)
    while f < 1.0:
        if smallest * f >= 2 * folds:
            fractions.append(f)
        f *= factor
    return [np.flatnonzero(rank <= f + 1e-12) for f in fractions] + [np.arange(len(y))]


def _mean_se(fold_scores: np.ndarray | None) -> dict[str, Any]:
    """``cv_score`` (the folds' mean), ``cv_se`` (its standard error) and ``cv_folds`` (the
    scores) of a row; None for a row that was not cross-validated."""
    if fold_scores is None or len(fold_scores) == 0:
        return {"cv_score": None, "cv_se": None, "cv_folds": None}
    n = len(fold_scores)
    return {"cv_score": float(np.mean(fold_scores)),
            "cv_se": float(np.std(fold_scores, ddof=1) / np.sqrt(n)) if n > 1 else None,
            "cv_folds": [float(f) for f in fold_scores]}


def _survivors(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Who goes on to the next round: the better half by CV score, and every candidate within
    the round's best's own standard error (:func:`near_best` unpaired, a wider margin than the
    paired one: on part of the training split a candidate is dropped only when the folds
    clearly rank it below; with the paired margin, clothing_best's eventual winner was dropped
    on a quarter of it)."""
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["cv_score"])
    return sorted(set(order[: (len(rows) + 1) // 2]) | set(near_best(rows, paired=False)))


def _grid_points(grid: Mapping[str, Sequence], head) -> list[dict]:
    """The points of a head's parameter ``grid`` other than the values ``head`` already has."""
    from sklearn.model_selection import ParameterGrid

    now = head.get_params()
    return [p for p in ParameterGrid(dict(grid)) if any(now.get(k) != v for k, v in p.items())]


def select_features(train, test, choices: Sequence[FeatureChoice], *, heads: Sequence[str] =
                    ("logreg",), select_head: str = "logreg", folds: int = 5,
                    metric: str = "accuracy", rule: str = "auto", budget: Any = None,
                    halving: bool = True, tune: bool = True,
                    head_options: Mapping[str, Any] | None = None, seed: int = 0,
                    cache=None, extract_params: Mapping | None = None, verbose: int = 1,
                    echo: Callable[[str], Any] | None = None) -> Comparison:
    """The feature-choice step: score every candidate by cross-validation on ``train`` only,
    choose one by its score and its cost, and report every candidate on ``test``.

    Every candidate gets a row with ``select_head``: its ``cv_score`` (the mean of the folds'
    ``metric`` on the training split), ``cv_se`` (their standard error) and ``cv_folds`` (the
    folds' scores: every candidate meets the same folds), its cost
    (``passes_per_image`` at training and ``predict_passes_per_image`` at prediction: each
    backbone once per view; ``seconds_per_image``: those passes' forward seconds, measured in
    this call; ``n_features``) and its test metrics as in every comparison. The chosen one
    (``selected: True``, :func:`choose_candidate`) also gets a row per other point of the
    probe's parameter grid (``tune``: :func:`~featx.heads.head_param_grid`, e.g.
    ``logreg C=0.01``) and per other head of ``heads``, cross-validated the same way; in that
    order each replaces the choice so far (first the probe at its defaults) only when the folds
    clearly rank it above (better by more than the standard error of the paired fold
    differences, :func:`near_best`), and the last one standing is the choice
    (``selected: True``). The test split is only scored, never used to choose. A single candidate
    is not cross-validated (``cv_score`` None): it is the choice, with ``select_head``.

    Parameters
    ----------
    train, test : ImageDataset
    choices : list of FeatureChoice
        The candidates (:func:`feature_choices`).
    heads : sequence of str
        Heads fitted on the chosen features.
    select_head : str
        The head the candidates are compared with (default: the logistic-regression probe).
    folds : int
        Stratified folds of the cross-validation on ``train``.
    metric : {"accuracy", "macro_f1", "balanced_accuracy"}
        What the selection maximises (macro-F1 or balanced accuracy for imbalanced data).
    rule : {"auto", "one_se", "best"}
        ``one_se``: the cheapest candidate within one standard error of the best score;
        ``best``: the best score whatever it costs; ``auto``: ``best`` within a ``budget``,
        else ``one_se`` (:data:`SELECT_RULES`, :func:`resolve_rule`).
    budget : number or str, optional
        Only candidates within it compete: backbone passes per image (``2``) or forward
        seconds per image at prediction (``"0.02s"``, ``"20ms"``; :func:`check_budget`).
    halving : bool
        Successive halving: candidates are first scored on a stratified quarter of ``train``,
        then half, then all of it (:func:`halving_subsets`; fewer rounds for small classes);
        after each round only the better half and those within one standard error of the best
        go on, and only what they need is extracted for the next round's images (rows already
        extracted are cached). A candidate ruled out early costs a fraction of a full
        extraction, and no test pass. An image keeps its fold in every round (the folds of a
        stratified split of the whole of ``train``, restricted to the round's images), so a
        candidate's probe starts each fold's fit from its fit of the round before, which never
        saw that fold's held-out images (and the probe's grid starts from the chosen probe's
        fits): about a third of the L-BFGS iterations on clothing-small.
    tune : bool
        Cross-validate the probe's grid (``head_param_grid(select_head)``, e.g. its ``C``) on
        the chosen features, as a head row each.
    head_options : dict, optional
        :func:`~featx.heads.make_head` options for the probe and every head
        (``{"imbalance": "tune"}``), as :func:`~featx.evaluate.evaluate_heads` takes them.
    seed : int
        Fold shuffling, and heads with randomness.
    cache, extract_params, verbose
        As in :func:`run_comparison` (``extract_params["layers"]`` is the candidates' base
        when no taps are given).
    echo : callable, optional
        Called with one line per candidate scored and per head fitted.

    Returns
    -------
    Comparison
        ``table`` rows (the chosen candidate's rows lead, then by CV score), ``train`` and
        ``test`` the chosen candidate's first-view FeatureSets, ``timings`` (``extract_s``,
        ``select_s``: the probes' cross-validation, ``heads_s``),
        :attr:`Comparison.selected` (the chosen row's name) and :attr:`Comparison.eliminated`
        (a dict per candidate ruled out by halving: ``features``, ``n_train`` of its last
        round, ``cv_score``, ``cv_se`` and its cost; it has no test row) and
        :attr:`Comparison.cold_passes` (the backbone passes this choice costs on an empty
        cache, whatever this call found cached) and :attr:`Comparison.tied` (the other
        candidates within the paired standard error of the best CV score, :func:`near_best`,
        within ``budget``: the folds cannot rank them, so each is as good a choice).
        ``backbone_forward_passes`` of a row is the images its backbones ran on in this call,
        every round included (shared by the rows that use them).

    Examples
    --------
    >>> import featx
    >>> from featx.comparison import feature_choices, select_features
    >>> data = featx.load_clothing_mini()
    >>> train, test = (data[s].subset(range(0, len(data[s]), 3)) for s in ("train", "test"))
    >>> result = select_features(train, test, feature_choices(["mobilenet_v2"],
    ...                          taps=[[-1], [-2, -1]]), folds=2, cache=False,
    ...                          extract_params={"weights": None, "input_size": 32})
    >>> [row["name"] for row in result.table][0] == result.selected
    True
    >>> sorted(k for k in result.table[0] if "per_image" in k)
    ['passes_per_image', 'predict_passes_per_image', 'seconds_per_image']
    """
    from featx.evaluate import HEAD_OPTIONS, HeadTable, check_head_options
    from featx.heads import head_param_grid, make_head, norm_options

    check_choice("metric", metric, tuple(SELECT_METRICS))
    rule = resolve_rule(rule, budget)
    options = check_head_options(head_options)
    limit = check_budget(budget)
    if limit is not None and limit[0] == "passes":  # known before any extraction: spare it
        over = len(choices)
        choices = [choices[i] for i in within_budget(
            [{"passes_per_image": c.passes_per_image} for c in choices], budget)]
        if echo is not None and over > len(choices):
            echo(f"select: {over - len(choices)} of {over} candidates cost more than "
                 f"{budget!r} passes per image: not extracted")
    kw = dict(cache=cache, verbose=verbose, **dict(extract_params or {}))
    if not kw.get("layers") and _tap_union(choices):
        # every round extracts the same taps (one cache entry), whichever candidates remain
        kw["layers"] = _tap_union(choices)
    timings = {"extract_s": 0.0, "select_s": 0.0}
    n_candidates = len(choices)
    rounds = halving_subsets(train.labels, folds, seed) if halving and len(choices) > 2 \
        else [np.arange(len(train))]
    passes: dict[tuple, int] = {}
    speed: dict[tuple, float] = {}
    eliminated: list[dict] = []

    def head_for(name, n, k, norm, params=None):
        head = make_head(name, random_state=seed, n_samples=n, n_classes=k,
                         **{**options, **norm_options(norm)})
        return head.set_params(**params) if params else head

    # Every image keeps one fold through all rounds (the last round's folds are those of a
    # stratified k-fold split of the whole training split), so a candidate's fold fit of the
    # round before, which never saw the fold's held-out images, starts its fit in the next
    # round (and the chosen probe's fits start its grid's): about a third of the iterations.
    fold_of: dict[str, int] = {}  # training image path -> its fold (drawn at the first CV)
    fits: dict[str, list] = {}  # candidate name -> its probe's last fold fits

    def fold_scores(entries, keys, start_from=None):
        """The fold scores of each ``(features, norm, head name, params)`` of ``entries`` (the
        same training rows), every (entry, fold) fit in one pool. The probe's fold fits start
        from the last ones of its candidate (``keys``: the candidates' names), which they
        replace, or from those of candidate ``start_from``."""
        first = entries[0][0][0]
        y, k = first.labels, len(first.class_names)
        if not fold_of:
            fold_of.update(zip(train.paths, fold_ids(train.labels, folds, seed).tolist(),
                               strict=True))
        n_folds = max(fold_of.values()) + 1
        scores, fitted = _cv_fits(
            [(head_for(name, len(y), k, norm, params),
              [np.asarray(f.features) for f in features])
             for features, norm, name, params in entries],
            np.asarray(y), _nested_split(first.paths, fold_of, n_folds), metric=metric,
            seed=seed, starts=[fits.get(start_from or key) if name == select_head else None
                               for key, (_, _, name, _) in zip(keys, entries, strict=True)])
        if start_from is None:
            fits.update(zip(keys, fitted, strict=True))
        return scores

    cold_passes, done = 0, 0  # what an empty cache would cost: new rows x (backbone, view) pairs
    for r, rows_r in enumerate(rounds):
        last = r == len(rounds) - 1
        pairs = {(b, v) for c in choices for b in c.sources for v in c.views}
        cold_passes += len(pairs) * (len(rows_r) - done + (len(test) if last else 0))
        done = len(rows_r)
        t = time.perf_counter()
        splits = {"train": train, "test": test} if last else \
            {"train": train.subset(rows_r, name=f"{train.name}-halving{len(rows_r)}"
                                   if train.name else None)}
        bank = FeatureBank.extract(splits, choices, measure=True, speed=speed, **kw)
        speed.update(bank.speed)
        for b, n in bank.passes.items():
            passes[b] = passes.get(b, 0) + n
        timings["extract_s"] += time.perf_counter() - t
        if limit is not None and limit[0] == "seconds" and r == 0:  # measured: only those within
            choices = [choices[i] for i in within_budget(
                [{"passes_per_image": c.passes_per_image,
                  "seconds_per_image": bank.seconds_per_image(c)} for c in choices], budget)]
        if last:
            break
        t = time.perf_counter()
        scored = [{"features": choice.name, "n_train": len(rows_r), **_mean_se(folds_),
                   "cv_metric": metric, "passes_per_image": choice.passes_per_image,
                   "seconds_per_image": bank.seconds_per_image(choice)}
                  for choice, folds_ in zip(choices, fold_scores(
                      [(bank.features(c, "train"), c.norm, select_head, None)
                       for c in choices], [c.name for c in choices]), strict=True)]
        timings["select_s"] += time.perf_counter() - t
        keep = _survivors(scored)
        eliminated += [row for i, row in enumerate(scored) if i not in keep]
        if echo is not None:
            echo(f"select: round {r + 1} on {len(rows_r)} of {len(train)} training images: "
                 f"{len(keep)} of {len(choices)} candidates go on")
        choices = [choices[i] for i in keep]
    bank.passes = {b: passes.get(b, 0) for b in bank.passes}
    start, probes_before = time.perf_counter(), timings["select_s"]

    def row_for(choice, head_name, tr, te, cv=None, params=None):
        y, yt = tr[0].labels, te[0].labels
        t = time.perf_counter()
        # run by _on_threads: one BLAS thread per fit, as evaluate_heads and cv_fold_scores
        est = fit_views(head_for(head_name, len(y), len(tr[0].class_names), choice.norm,
                                 params), [np.asarray(f.features) for f in tr], y)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        pred = predict_views(est, [np.asarray(f.features) for f in te])
        size = [list(bank.sets[(s, choice.views[0], "train")].attrs.get("input_size", []))
                for s in choice.sources]
        label = head_name + "".join(f" {k.rsplit('__', 1)[-1]}={v}"
                                    for k, v in (params or {}).items())
        return {"name": f"{choice.name}/{label}", "kind": "head",
                "backbone": "+".join(choice.backbones),
                "input_size": size[0] if len(size) == 1 else size,
                **score_predictions(yt, pred), "train_seconds": fit_s,
                "predict_seconds": time.perf_counter() - t,
                "backbone_forward_passes": int(sum(bank.passes[s] for s in choice.sources)),
                "n_train": len(y), "n_test": len(yt), "n_features": tr[0].features.shape[1],
                **_mean_se(cv), "cv_metric": metric,
                "best_params": dict(params or {}),
                "features": choice.name, "taps": None if choice.taps is None
                else list(choice.taps), "views": list(choice.views), "norm": choice.norm,
                "passes_per_image": choice.passes_per_image,
                "predict_passes_per_image": choice.passes_per_image,
                "seconds_per_image": bank.seconds_per_image(choice),
                "estimator": est}, pred

    rows, preds, candidates = [], {}, []
    trains = [bank.features(choice, "train") for choice in choices]
    t = time.perf_counter()
    # one candidate from the start is the choice (one left after halving is still scored)
    all_folds = [None] * len(choices) if n_candidates == 1 else fold_scores(
        [(tr, choice.norm, select_head, None) for choice, tr in zip(choices, trains,
                                                                   strict=True)],
        [choice.name for choice in choices])
    timings["select_s"] += time.perf_counter() - t
    tests = [bank.features(choice, "test") for choice in choices]
    fitted = _on_threads(row_for, [(choice, select_head, tr, te, folds_, None)
                                   for choice, tr, te, folds_
                                   in zip(choices, trains, tests, all_folds, strict=True)])
    for choice, tr, te, folds_, (row, pred) in zip(choices, trains, tests, all_folds, fitted,
                                                   strict=True):
        rows.append(row)
        preds[row["name"]] = pred
        candidates.append((choice, tr, te))
        if echo is not None and folds_ is not None:
            echo(f"select: {choice.name}: CV {metric} {row['cv_score']:.3f} "
                 f"± {row['cv_se']:.3f} on train ({row['n_features']} features, "
                 f"{choice.passes_per_image} pass(es), "
                 f"{row['seconds_per_image'] * 1e3:.1f} ms per image)")
    best, tr, te = candidates[choose_candidate(rows, rule=rule, budget=budget)]
    selected = f"{best.name}/{select_head}"
    allowed = within_budget(rows, budget)
    tied = [] if n_candidates == 1 else [
        rows[allowed[i]]["features"] for i in near_best([rows[i] for i in allowed])
        if rows[allowed[i]]["features"] != best.name]
    if echo is not None and n_candidates > 1:
        echo(f"select: chose {best.name} ("
             + ("the best CV score" if rule == "best" else
                "the cheapest within one standard error of the best CV score")
             + ("" if budget is None else f", within budget {budget!r}") + ")")
        if tied:
            echo(f"select: {len(tied)} other candidate(s) score within the paired standard error "
                 f"of the best CV score (the folds cannot rank them): {'; '.join(tied)}")
    for row in rows:
        row["candidate"] = True
    chosen_row = next(r for r in rows if r["name"] == selected)
    # the probe's regularisation tuned on the chosen features (its row grid, the default value
    # already scored), then the other heads at their defaults
    others = [(name, None) for name in heads if name != select_head]
    if tune and n_candidates > 1:
        grid = head_param_grid(select_head, **{k: v for k, v in options.items()
                                               if HEAD_OPTIONS[k]})  # options that key the grid
        probe = head_for(select_head, len(tr[0].labels), len(tr[0].class_names), best.norm)
        others[:0] = [(select_head, params) for params in _grid_points(grid, probe)]
    t = time.perf_counter()
    # cross-validated like the probe (one candidate: like it, not at all), so that the head
    # that wins on the chosen features is chosen on train only too
    other_folds = [None] * len(others) if n_candidates == 1 or not others else fold_scores(
        [(tr, best.norm, name, params) for name, params in others], [None] * len(others),
        start_from=best.name)
    fitted = _on_threads(row_for, [(best, name, tr, te, folds_, params) for (name, params), folds_
                                   in zip(others, other_folds, strict=True)])
    if echo is not None and others:
        echo(f"heads: {len(others)} more on {best.name}, cross-validated and fitted in "
             f"{time.perf_counter() - t:.1f} s")
    for folds_, (row, pred) in zip(other_folds, fitted, strict=True):
        row["candidate"] = False
        rows.append(row)
        preds[row["name"]] = pred
        # the incumbent (first the probe at its defaults) gives way only to a row the folds
        # clearly rank above it: better by more than the paired standard error (near_best)
        if folds_ is not None and near_best([chosen_row, row]) == [1]:
            chosen_row = row
        if echo is not None:
            echo(f"heads: {row['name'].rsplit('/', 1)[-1]} on {best.name}: "
                 + ("" if folds_ is None else f"CV {metric} {row['cv_score']:.3f} "
                    f"± {row['cv_se']:.3f}, ")
                 + f"test accuracy {row['accuracy']:.3f}")
    if chosen_row["name"] != selected:
        selected = chosen_row["name"]
        if echo is not None:
            echo(f"heads: chose {selected} (clearly the best CV score on the chosen "
                 "features: by more than the paired standard error)")
    for row in rows:
        row["selected"] = row["name"] == selected
    rows.sort(key=lambda r: (not r["selected"], r["features"] != best.name,
                             -(r["cv_score"] if r["cv_score"] is not None else -1)))
    timings["heads_s"] = time.perf_counter() - start - (timings["select_s"] - probes_before)
    result = Comparison(HeadTable(rows), tr[0], te[0], timings)
    result._predicted.update(preds)
    result.selected = selected
    result.bank = bank
    result.eliminated = eliminated
    result.cold_passes = cold_passes
    result.tied = tied
    return result
