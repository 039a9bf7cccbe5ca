"""Classifier heads for cached CNN features: a table of rows, one per head.

Each row (:class:`HeadSpec`) is data: the final estimator's class, its default
parameters, a small default grid, and the preprocessing it wants. One function,
:func:`make_head`, turns a row into an unfitted :class:`~sklearn.pipeline.Pipeline`
whose steps are named from the fixed set ``normalize``, ``scale``, ``pca`` and
``clf`` (in that order, only those present). Adding a head is adding a row.

The defaults were chosen for pooled ImageNet features (about 1,000-2,000
non-negative ReLU/ReLU6 outputs, a few thousand images, ~10 classes); the grids
hold 3-6 candidates so ``cv=3`` over every head stays in the seconds-to-a-minute
range on 3,000 x 1,280 features. For tiny training sets (few-shot points, a 12-image
smoke test), ``make_head(name, n_samples=..., n_classes=...)`` lets the row's
``fit_limits`` rule adjust the defaults that cannot fit so few samples.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC, LinearSVC

from featx.heads.limits import (
    cap_n_neighbors,
    early_stopping_if_room,
    limit_value,
    limited,
)
from featx.heads.spec import HeadSpec
from featx.utils.tables import format_cell

__all__ = [
    "STEP_NAMES",
    "HeadSpec",
    "describe",
    "get_head_spec",
    "head_param_grid",
    "limited_params",
    "list_heads",
    "make_head",
]

STEP_NAMES = ("normalize", "scale", "pca", "clf")


_HEADS: tuple[HeadSpec, ...] = (
    HeadSpec(
        name="logreg",
        description="StandardScaler + multinomial logistic regression (lbfgs); the usual best",
        estimator=LogisticRegression,
        defaults={"C": 0.1, "max_iter": 2000, "class_weight": "balanced"},
        grid={"C": (0.01, 0.1, 1.0)},
    ),
    HeadSpec(
        name="linear_svm",
        description="StandardScaler + LinearSVC (liblinear, one-vs-rest squared hinge)",
        estimator=LinearSVC,
        defaults={"C": 0.001, "dual": True, "max_iter": 5000, "class_weight": "balanced"},
        grid={"C": (0.0001, 0.001, 0.01)},
        predict_proba=False,
        note="standardized 1280-d features need a small C; dual=True measured 2-3x faster "
        "than the primal solver on 3,000 x 1,280 and large C gets slow",
    ),
    HeadSpec(
        name="svm",
        description="StandardScaler + RBF-kernel SVC",
        estimator=SVC,
        defaults={"C": 10.0, "kernel": "rbf", "gamma": "scale", "class_weight": "balanced"},
        grid={"C": (1.0, 10.0, 100.0)},
        predict_proba=False,
        note="predict_proba via make_head(..., proba=True) (sigmoid calibration, "
        "CalibratedClassifierCV(ensemble=False)); SVC(probability=True) is deprecated in "
        "scikit-learn 1.9",
    ),
    HeadSpec(
        name="rf",
        description="Random forest on raw features (no scaling needed)",
        estimator=RandomForestClassifier,
        defaults={"n_estimators": 200, "max_features": "sqrt", "class_weight": "balanced",
                  "n_jobs": None},
        grid={"max_features": ("sqrt", "log2"), "min_samples_leaf": (1, 3)},
        scale=False,
        note="n_jobs=None (one core): grid search and evaluate_heads own the parallelism, and "
        "n_jobs=-1 inside GridSearchCV(n_jobs=2) workers oversubscribes the cores; pass "
        "n_jobs=-1 when fitting a single forest",
    ),
    HeadSpec(
        name="mlp",
        description="StandardScaler + one-hidden-layer MLP (adam, early stopping)",
        estimator=MLPClassifier,
        defaults={"hidden_layer_sizes": (256,), "alpha": 1e-3, "early_stopping": True,
                  "max_iter": 300},
        grid={"hidden_layer_sizes": ((256,), (512,)), "alpha": (1e-3, 1e-2)},
        class_weight=False,
        fit_limits=early_stopping_if_room,
        note="MLPClassifier has no class_weight; early stopping holds out 10% of train",
    ),
    HeadSpec(
        name="knn",
        description="L2-normalise + k-nearest neighbours (euclidean on unit vectors = cosine)",
        estimator=KNeighborsClassifier,
        defaults={"n_neighbors": 15, "weights": "distance", "metric": "euclidean"},
        grid={"n_neighbors": (5, 15, 30), "weights": ("uniform", "distance")},
        scale=False,
        normalize=True,
        class_weight=False,
        fit_limits=cap_n_neighbors,
        note="on unit vectors |a-b|^2 = 2 - 2cos(a, b), so the ranking is cosine's",
    ),
)

_TABLE: Mapping[str, HeadSpec] = MappingProxyType({spec.name: spec for spec in _HEADS})


def list_heads() -> list[str]:
    """Names of all heads, in table order.

    Examples
    --------
    >>> from featx.heads import list_heads
    >>> list_heads()
    ['logreg', 'linear_svm', 'svm', 'rf', 'mlp', 'knn']
    """
    return list(_TABLE)


def get_head_spec(name: str) -> HeadSpec:
    """The table row for head ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a head; the message lists the heads and close matches.

    Examples
    --------
    >>> from featx.heads import get_head_spec
    >>> get_head_spec("logreg").defaults["C"]
    0.1
    """
    try:
        return _TABLE[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_TABLE), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown head={name!r}. Allowed heads: {', '.join(_TABLE)}.{hint}"
        ) from None


def _check_pca(pca):
    if pca is None:
        return
    if isinstance(pca, numbers.Integral) and not isinstance(pca, bool) and pca >= 1:
        return
    if isinstance(pca, numbers.Real) and not isinstance(pca, (bool, numbers.Integral)) \
            and 0.0 < pca < 1.0:
        return
    raise ValueError(
        "pca must be None, an int >= 1 (components) or a float in (0, 1) "
        f"(variance to keep); got pca={pca!r}."
    )


def _check_params(spec: HeadSpec, params: Mapping[str, Any]) -> None:
    valid = sorted(spec.estimator().get_params(deep=False))
    for key in params:
        if key not in valid:
            lower = {v.lower(): v for v in valid}
            close = [lower[m] for m in difflib.get_close_matches(key.lower(), lower, 3, 0.6)]
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"Invalid parameter {key!r} for head={spec.name!r} "
                f"({spec.estimator.__name__}).{hint} Valid parameters: {', '.join(valid)}."
            )


def limited_params(name: str, *, n_samples: int, n_classes: int | None = None,
                   **params: Any) -> dict[str, Any]:
    """The row defaults that :func:`make_head` changes for a training set of this size.

    Parameters
    ----------
    name : str
        A name from :func:`list_heads`.
    n_samples : int
        Training samples the head will be fitted on.
    n_classes : int or None, default=None
        Classes among them (None counts as 2).
    **params
        Parameters the user passes to :func:`make_head`; they are never changed.

    Returns
    -------
    dict of str to object
        ``{estimator parameter: value make_head uses instead of the row default}``; empty when
        the defaults fit.

    Examples
    --------
    >>> from featx.heads import limited_params
    >>> limited_params("knn", n_samples=8)
    {'n_neighbors': 4}
    >>> limited_params("mlp", n_samples=40, n_classes=10)
    {'early_stopping': False}
    >>> limited_params("knn", n_samples=8, n_neighbors=30)
    {}
    """
    spec = get_head_spec(name)
    _check_params(spec, params)
    return limited(spec, params, n_samples, n_classes)


def make_head(
    name: str,
    *,
    pca: int | float | None = None,
    normalize: bool | None = None,
    proba: bool = False,
    random_state: int | None = None,
    n_samples: int | None = None,
    n_classes: int | None = None,
    **params: Any,
) -> Pipeline:
    """Build the unfitted pipeline for head ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_heads`.
    pca : int, float or None, default=None
        Insert a ``PCA`` step before the classifier: an int keeps that many components,
        a float in (0, 1) keeps that fraction of the variance.
    normalize : bool or None, default=None
        L2-normalise each sample first (step ``normalize``). None uses the row's default
        (True for ``knn`` only).
    proba : bool, default=False
        Guarantee ``predict_proba``: heads without it (``linear_svm``, ``svm``) get their
        classifier wrapped in ``CalibratedClassifierCV(ensemble=False)`` (5 extra fits; with
        ``n_samples``, fewer folds when the classes are small, at least 2 images per class).
        Grid keys then change; use ``head_param_grid(name, proba=True)``.
    random_state : int or None, default=None
        Seed for the classifier and PCA, where they take one.
    n_samples : int or None, default=None
        Size of the training set the head will be fitted on (for a grid search, the smallest
        training fold). When given, the row's ``fit_limits`` rule changes the defaults that
        cannot fit so few samples (``knn``: ``n_neighbors`` capped at the mean class size
        ``n_samples // n_classes``; ``mlp``: no ``early_stopping`` when its validation split
        would miss classes); see
        :func:`limited_params`. Values passed in ``**params`` are never changed.
    n_classes : int or None, default=None
        Classes in that training set (used with ``n_samples``; None counts as 2).
    **params
        Parameters of the final estimator, overriding the row's defaults.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps named ``normalize``, ``scale``, ``pca``, ``clf`` (only those present).

    Raises
    ------
    ValueError
        For an unknown head, an unknown estimator parameter, an invalid ``pca``, or
        ``n_samples`` / ``n_classes`` that are not ints >= 1.

    Examples
    --------
    >>> from featx.heads import make_head
    >>> head = make_head("logreg", pca=0.95, C=0.5)
    >>> [name for name, _ in head.steps]
    ['scale', 'pca', 'clf']
    >>> head.get_params()["clf__C"]
    0.5
    >>> make_head("knn", n_samples=8, n_classes=2).get_params()["clf__n_neighbors"]  # 8 // 2
    4
    >>> make_head("knn", n_samples=8, n_neighbors=30).get_params()["clf__n_neighbors"]
    30
    """
    spec = get_head_spec(name)
    _check_params(spec, params)
    _check_pca(pca)
    kwargs = {**spec.defaults, **limited(spec, params, n_samples, n_classes), **params}
    if random_state is not None and "random_state" in spec.estimator().get_params(deep=False):
        kwargs.setdefault("random_state", random_state)
    clf = spec.estimator(**kwargs)
    if proba and not spec.predict_proba:
        # sigmoid calibration fits on held-out folds: scikit-learn's 5, or fewer when the
        # training set is small (a stratified fold needs a member of every class)
        folds = 5 if n_samples is None else min(5, n_samples // (n_classes or 2))
        if folds < 2:
            raise ValueError(
                f"proba=True calibrates head={name!r} on held-out folds, which needs at least 2 "
                f"training images per class; got n_samples={n_samples}, n_classes={n_classes}. "
                "Use a head with predict_proba (logreg, rf, mlp, knn) or proba=False.")
        clf = CalibratedClassifierCV(clf, method="sigmoid", ensemble=False, cv=folds)

    steps = []
    if spec.normalize if normalize is None else normalize:
        steps.append(("normalize", Normalizer(norm="l2")))
    if spec.scale:
        steps.append(("scale", StandardScaler()))
    if pca is not None:
        steps.append(("pca", PCA(n_components=pca, random_state=random_state)))
    steps.append(("clf", clf))
    return Pipeline(steps)


def head_param_grid(name: str, *, proba: bool = False, n_samples: int | None = None,
                    n_classes: int | None = None) -> dict[str, list]:
    """The row's default grid, keyed for the pipeline from :func:`make_head`.

    Parameters
    ----------
    name : str
        A name from :func:`list_heads`.
    proba : bool, default=False
        Match ``make_head(name, proba=True)`` (keys become ``clf__estimator__...`` for
        calibrated heads).
    n_samples, n_classes : int or None, default=None
        As in :func:`make_head` (for a grid search: the smallest training fold): each grid
        value goes through the row's ``fit_limits`` rule; duplicates are then dropped.

    Returns
    -------
    dict of str to list
        Ready for ``GridSearchCV(make_head(name), head_param_grid(name))``.

    Examples
    --------
    >>> from featx.heads import head_param_grid
    >>> head_param_grid("logreg")
    {'clf__C': [0.01, 0.1, 1.0]}
    >>> head_param_grid("knn", n_samples=20, n_classes=2)["clf__n_neighbors"]  # 20 // 2 = 10
    [5, 10]
    """
    spec = get_head_spec(name)
    prefix = "clf__estimator__" if proba and not spec.predict_proba else "clf__"
    grid = {}
    for key, values in spec.grid.items():
        limited = [limit_value(spec, key, v, n_samples, n_classes) for v in values]
        grid[prefix + key] = [v for i, v in enumerate(limited) if v not in limited[:i]]
    return grid


def describe() -> str:
    """The head table as Markdown (the source of ``docs/heads.md``).

    Examples
    --------
    >>> from featx.heads import describe
    >>> print(describe().splitlines()[0])
    | head | pipeline | defaults | grid (candidates) | predict_proba | class_weight |
    """
    lines = [
        "| head | pipeline | defaults | grid (candidates) | predict_proba | class_weight |",
        "|---|---|---|---|---|---|",
    ]
    for spec in _HEADS:
        pipe = [s for s, on in (("normalize", spec.normalize), ("scale", spec.scale)) if on]
        pipe.append(spec.estimator.__name__)
        proba = "yes" if spec.predict_proba else "with `proba=True`"
        cw = "balanced" if spec.class_weight else "n/a"
        lines.append(
            f"| `{spec.name}` | {' + '.join(pipe)} | `{format_cell(spec.defaults)}` | "
            f"`{format_cell(spec.grid)}` ({spec.n_candidates}) | {proba} | {cw} |"
        )
    lines.append("")
    for spec in _HEADS:
        note = f" Note: {spec.note}." if spec.note else ""
        lines.append(f"- `{spec.name}`: {spec.description}.{note}{_rule(spec)}")
    return "\n".join(lines) + "\n"


def _rule(spec: HeadSpec) -> str:
    """The row's ``fit_limits`` rule (first docstring paragraph) as a sentence, or ''."""
    if spec.fit_limits is None:
        return ""
    first = (spec.fit_limits.__doc__ or "").strip().split("\n\n")[0]
    text = " ".join(line.strip() for line in first.splitlines()).rstrip(".").replace("``", "`")
    return f" Small training sets (`make_head(..., n_samples=, n_classes=)`): {text}."
