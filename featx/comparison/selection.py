"""Choosing the features: backbones x layer taps x views, selected by cross-validation on train.

:func:`feature_choices` lists the candidates (:class:`FeatureChoice`), :class:`FeatureBank`
extracts each (backbone, view, split) once with every candidate tap, and :func:`select_features`
scores each candidate by cross-validation on the training split only (:func:`cv_score`; the views
of an image share a fold and are averaged by :func:`predict_views`, test-time augmentation), picks
the best and reports every candidate on the test split as a :class:`~featx.comparison.Comparison`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featx.comparison.run import Comparison
from featx.evaluate import score_predictions
from featx.extract import FeatureSet, extract_features, forward_pass_count
from featx.utils.checks import check_choice

__all__ = ["SELECT_METRICS", "FeatureBank", "FeatureChoice", "cv_score", "feature_choices",
           "fit_views", "predict_views", "select_features"]

#: Selection metrics: name -> scorer of (true class indices, predicted class indices).
SELECT_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: score_predictions(y, p)["accuracy"],
    "macro_f1": lambda y, p: score_predictions(y, p)["macro_f1"],
    "balanced_accuracy": lambda y, p: score_predictions(y, p)["balanced_accuracy"],
}


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

    Examples
    --------
    >>> FeatureChoice(("efficientnet_lite0", "efficientnet_lite1"), (-1, -2), ("none", "flip")).name
    'efficientnet_lite0+efficientnet_lite1 taps[-1,-2] views[none,flip]'
    """

    # Pickles name the class by its public path (stable as modules move).
    __module__ = "featx.comparison"

    backbones: tuple[str, ...]
    taps: tuple | None = None
    views: tuple[str, ...] = ("none",)

    @property
    def name(self) -> str:
        name = "+".join(self.backbones)
        if self.taps is not None:
            name += " taps[" + ",".join(map(str, self.taps)) + "]"
        if tuple(self.views) != ("none",):
            name += " views[" + ",".join(self.views) + "]"
        return name

    @property
    def passes_per_image(self) -> int:
        """Backbone passes one image costs: one per backbone per view (taps are free)."""
        return len(self.backbones) * len(self.views)


def feature_choices(backbones: Sequence[str], *, taps: Sequence[Sequence] = (),
                    views: Sequence[str] = ("none",),
                    concat: bool | str = False) -> list[FeatureChoice]:
    """The candidates of a feature-choice step: every backbone (and, with ``concat=True``, all
    of them concatenated; ``concat="only"``: just the concatenation) x every tap set (``()``:
    the pooled output) x the first view alone and, when several ``views`` are given, all of
    them (TTA).

    Examples
    --------
    >>> [c.name for c in feature_choices(["a", "b"], taps=[[-1], [-2, -3]], concat=True)][:3]
    ['a taps[-1]', 'b taps[-1]', 'a+b taps[-1]']
    >>> len(feature_choices(["a"], views=["none", "flip"]))
    2
    >>> [c.name for c in feature_choices(["a", "b"], concat="only")]
    ['a+b']
    """
    check_choice("concat", concat, (True, False, "only"))
    from featx.extract.views import check_views

    views = tuple(check_views(list(views)))
    groups = [(b,) for b in backbones]
    if concat and len(backbones) > 1:
        groups = [tuple(backbones)] if concat == "only" else [*groups, tuple(backbones)]
    tap_sets = [tuple(t) for t in taps] or [None]
    view_sets = [views[:1]] + ([views] if len(views) > 1 else [])
    return [FeatureChoice(g, t, v) for v in view_sets for t in tap_sets for g in groups]


def _tap_union(choices: Sequence[FeatureChoice]) -> list | None:
    union: list = []
    for c in choices:
        for e in c.taps or ():
            if e not in union:
                union.append(e)
    return union or None


@dataclass
class FeatureBank:
    """Every (backbone, view, split) extracted once, with all candidate taps; any
    :class:`FeatureChoice` is then slices and concatenations of it, with no backbone pass.

    Attributes
    ----------
    sets : dict
        ``(backbone, view, split) -> FeatureSet``.
    passes : dict
        ``backbone -> images sent through it`` in this call (0 when all came from the cache).
    seconds : dict
        ``backbone -> extraction seconds``.
    """

    # Pickles name the class by its public path (stable as modules move).
    __module__ = "featx.comparison"

    sets: dict = field(default_factory=dict)
    passes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    taps: list | None = None

    @classmethod
    def extract(cls, splits: Mapping[str, Any], choices: Sequence[FeatureChoice],
                **extract_kw) -> FeatureBank:
        """Extract what ``choices`` need for every split of ``splits`` (cached).

        With taps, every backbone is extracted with the union of the choices' taps, or with
        ``extract_kw["layers"]`` when that lists all of them (a wider pool of taps, e.g. one
        cache entry shared by several pipelines).
        """
        bank = cls(taps=_tap_union(choices))
        pool = extract_kw.get("layers")
        if bank.taps and pool:
            missing = [t for t in bank.taps if t not in pool]
            if missing:
                raise ValueError(f"layers={list(pool)!r} must hold every tap of the candidates "
                                 f"(missing {missing}), or leave layers unset")
            bank.taps = list(pool)
        backbones = list(dict.fromkeys(b for c in choices for b in c.backbones))
        views = list(dict.fromkeys(v for c in choices for v in c.views))
        kw = {k: v for k, v in extract_kw.items() if k != "layers"}
        for backbone in backbones:
            start, before = time.perf_counter(), forward_pass_count()
            for view in views:
                for split, data in splits.items():
                    bank.sets[(backbone, view, split)] = extract_features(
                        data, backbone, layers=bank.taps or extract_kw.get("layers"),
                        view=view, **kw)
            bank.passes[backbone] = forward_pass_count() - before
            bank.seconds[backbone] = time.perf_counter() - start
        return bank

    def features(self, choice: FeatureChoice, split: str) -> list:
        """One FeatureSet per view of ``choice`` on ``split``, rows aligned across views."""
        out = []
        for view in choice.views:
            parts = [self.sets[(b, view, split)] for b in choice.backbones]
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
    """Class indices from the views' probabilities (or decision scores) averaged: TTA."""
    return np.mean([_scores(estimator, X) for X in views_X], axis=0).argmax(axis=1)


def cv_score(head, views_X: Sequence[np.ndarray], y, *, folds: int = 5, seed: int = 0,
             metric: str = "accuracy") -> float:
    """Cross-validated ``metric`` of ``head`` on training features (all views of an image in
    the same fold; the held-out fold scored by TTA over its views). Test data never enters.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 4)), np.repeat([0, 1], 30)
    >>> X[y == 1] += 3
    >>> cv_score(LogisticRegression(), [X, X + 0.1], y, folds=3) > 0.9
    True
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    score = SELECT_METRICS[check_choice("metric", metric, tuple(SELECT_METRICS))]
    y = np.asarray(y)
    folds = min(int(folds), int(np.bincount(y).min()))
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 training images per class, got a "
                         f"class with {int(np.bincount(y).min())}")
    true, pred = [], []
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=seed).split(views_X[0], y):
        est = fit_views(clone(head), [X[tr] for X in views_X], y[tr])
        true.append(y[va])
        pred.append(predict_views(est, [X[va] for X in views_X]))
    return float(score(np.concatenate(true), np.concatenate(pred)))


def select_features(train, test, choices: Sequence[FeatureChoice], *, heads: Sequence[str] =
                    ("logreg",), select_head: str = "logreg", folds: int = 5,
                    metric: str = "accuracy", seed: int = 0, cache=None,
                    extract_params: Mapping | None = None, verbose: int = 1,
                    echo: Callable[[str], Any] | None = None) -> Comparison:
    """The feature-choice step: score every candidate by cross-validation on ``train`` only,
    pick the best, and report every candidate on ``test``.

    Every candidate gets a row with ``select_head`` (its ``cv_score`` the cross-validated
    ``metric`` on the training split, its test metrics as in every comparison); the chosen one
    (``selected: True``) also gets a row per other head of ``heads``. The test split is only
    scored, never used to choose. A single candidate is not cross-validated (``cv_score``
    None): it is the choice.

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
    seed : int
        Fold shuffling, and heads with randomness.
    cache, extract_params, verbose
        As in :func:`run_comparison` (``extract_params["layers"]`` is the candidates' base
        when no taps are given).
    echo : callable, optional
        Called with one line per candidate scored.

    Returns
    -------
    Comparison
        ``table`` rows (best CV score first: the chosen candidate's rows lead), ``train`` and
        ``test`` the chosen candidate's first-view FeatureSets, ``timings``, and
        ``selected`` (the chosen row's name) in ``timings``' sibling attribute
        :attr:`Comparison.selected`. ``backbone_forward_passes`` of a row is the images its
        backbones ran on in this call (shared by the rows that use them).

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
    """
    from featx.evaluate import HeadTable
    from featx.heads import make_head

    check_choice("metric", metric, tuple(SELECT_METRICS))
    start = time.perf_counter()
    kw = dict(cache=cache, verbose=verbose, **dict(extract_params or {}))
    bank = FeatureBank.extract({"train": train, "test": test}, choices, **kw)
    timings = {"extract_s": time.perf_counter() - start}
    start = time.perf_counter()

    def head_for(name, n, k):
        return make_head(name, random_state=seed, n_samples=n, n_classes=k)

    def row_for(choice, head_name, tr, te, cv=None):
        y, yt = tr[0].labels, te[0].labels
        t = time.perf_counter()
        est = fit_views(head_for(head_name, len(y), len(tr[0].class_names)),
                        [np.asarray(f.features) for f in tr], y)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        pred = predict_views(est, [np.asarray(f.features) for f in te])
        size = [list(bank.sets[(b, choice.views[0], "train")].attrs.get("input_size", []))
                for b in choice.backbones]
        return {"name": f"{choice.name}/{head_name}", "kind": "head",
                "backbone": "+".join(choice.backbones),
                "input_size": size[0] if len(size) == 1 else size,
                **score_predictions(yt, pred), "train_seconds": fit_s,
                "predict_seconds": time.perf_counter() - t,
                "backbone_forward_passes": int(sum(bank.passes[b] for b in choice.backbones)),
                "n_train": len(y), "n_test": len(yt), "n_features": tr[0].features.shape[1],
                "cv_score": cv, "cv_metric": metric,
                "features": choice.name, "taps": None if choice.taps is None
                else list(choice.taps), "views": list(choice.views),
                "passes_per_image": choice.passes_per_image, "estimator": est}, pred

    rows, preds, scored = [], {}, []
    for choice in choices:
        tr, te = bank.features(choice, "train"), bank.features(choice, "test")
        y = tr[0].labels
        cv = None if len(choices) == 1 else cv_score(  # one candidate: nothing to choose
            head_for(select_head, len(y), len(tr[0].class_names)),
            [np.asarray(f.features) for f in tr], y, folds=folds, seed=seed, metric=metric)
        row, pred = row_for(choice, select_head, tr, te, cv)
        rows.append(row)
        preds[row["name"]] = pred
        scored.append((cv, -len(rows), choice, tr, te))
        if echo is not None and cv is not None:
            echo(f"select: {choice.name}: CV {metric} {cv:.3f} on train "
                 f"({tr[0].features.shape[1]} features x {len(choice.views)} view(s))")
    _, _, best, tr, te = max(scored, key=lambda s: (s[0] or 0.0, s[1]))
    selected = f"{best.name}/{select_head}"
    for name in heads:
        if name != select_head:
            row, pred = row_for(best, name, tr, te)
            rows.append(row)
            preds[row["name"]] = pred
    for row in rows:
        row["selected"] = row["name"] == selected
    rows.sort(key=lambda r: (not r["selected"], r["features"] != best.name,
                             -(r["cv_score"] if r["cv_score"] is not None else -1)))
    timings["heads_s"] = time.perf_counter() - start
    result = Comparison(HeadTable(rows), tr[0], te[0], timings)
    result._predicted.update(preds)
    result.selected = selected
    result.bank = bank
    return result
