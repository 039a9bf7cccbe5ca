"""Classifier heads for cached CNN features: a table of rows, one per head.

Each row (:class:`HeadSpec`) is data: the final estimator's class, its default
parameters, a small default grid, and the preprocessing it wants. One function,
:func:`make_head`, turns a row into an unfitted :class:`~sklearn.pipeline.Pipeline`
whose steps are named from the fixed set ``power``, ``normalize``, ``scale``, ``pca`` and
``clf`` (in that order, only those present). Adding a head is adding a row.

The defaults were chosen for pooled ImageNet features (about 1,000-2,000
non-negative ReLU/ReLU6 outputs, a few thousand images, ~10 classes); the grids
hold 3-6 candidates so ``cv=3`` over every head stays in the seconds-to-a-minute
range on 3,000 x 1,280 features. For tiny training sets (few-shot points, a 12-image
smoke test), ``make_head(name, n_samples=..., n_classes=...)`` lets the row's
``fit_limits`` rule adjust the defaults that cannot fit so few samples.
"""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

from featx.heads.build import build_head, check_imbalance, check_params
from featx.heads.ensemble import SoftVoteHead, StackHead
from featx.heads.limits import limit_value, limited
from featx.heads.rows import BASE_HEADS
from featx.heads.spec import HeadSpec
from featx.utils.registry import Registry
from featx.utils.tables import format_cell

__all__ = [
    "HEADS",
    "STEP_NAMES",
    "HeadSpec",
    "describe",
    "get_head_spec",
    "head_param_grid",
    "limited_params",
    "list_heads",
    "make_head",
]

#: The names a head pipeline's steps take, in pipeline order (a pipeline has only some of them).
STEP_NAMES = ("power", "normalize", "scale", "pca", "clf")


_HEADS: tuple[HeadSpec, ...] = (
    *BASE_HEADS,
    HeadSpec(
        name="soft_vote",
        description="soft voting over heads (and feature blocks: `blocks=` widths, e.g. one per "
        "backbone), weights minimising the out-of-fold log-loss on the training data",
        estimator=SoftVoteHead,
        defaults={"heads": ("logreg", "svm", "knn"), "cv": 3, "class_weight": "balanced"},
        grid={"heads": (("logreg", "knn"), ("logreg", "svm"), ("logreg", "svm", "knn"))},
        scale=False,
        note="each member brings its own row's preprocessing; cv + 1 fits per member (the SVMs "
        "calibrated: 6 each), so it costs several heads",
        default=False,
    ),
    HeadSpec(
        name="stack",
        description="stacking: logistic regression on the heads' out-of-fold outputs "
        "(StackingClassifier; `blocks=` as soft_vote)",
        estimator=StackHead,
        defaults={"heads": ("logreg", "svm", "knn"), "C": 1.0, "cv": 3,
                  "class_weight": "balanced"},
        grid={"C": (0.1, 1.0, 10.0)},
        scale=False,
        note="needs 2 training images per class; cv + 1 fits per member",
        default=False,
    ),
)

#: The head table: one row per head; ``HEADS.names(default_only=True)`` are the heads every
#: comparison fits when none are named.
HEADS: Registry[HeadSpec] = Registry("head", {spec.name: spec for spec in _HEADS},
                                     default=lambda spec: spec.default)


def list_heads(default_only: bool = False) -> list[str]:
    """Names of all heads, in table order; with ``default_only``, those fitted when no heads are
    named (every row but the ensembles, see :attr:`HeadSpec.default`).

    Examples
    --------
    >>> from featx.heads import list_heads
    >>> list_heads()
    ['logreg', 'linear_svm', 'svm', 'rf', 'mlp', 'knn', 'soft_vote', 'stack']
    >>> list_heads(default_only=True)
    ['logreg', 'linear_svm', 'svm', 'rf', 'mlp', 'knn']
    """
    return HEADS.names(default_only=default_only)


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
    return HEADS.get(name)


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
    check_params(spec, params)
    return limited(spec, params, n_samples, n_classes)


def make_head(
    name: str,
    *,
    pca: int | float | None = None,
    normalize: bool | None = None,
    power: float | None = None,
    whiten: bool = False,
    proba: bool = False,
    imbalance: str | None = None,
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
        L2-normalise each sample (step ``normalize``). None uses the row's default
        (True for ``knn`` only).
    power : float or None, default=None
        Put :class:`~featx.heads.SignedPower` first (step ``power``): each feature becomes
        ``sign(x) * |x| ** power``, a number > 0 (0.5: the signed square root, the power
        normalisation of Fisher-vector and bilinear-pooling features). None: no such step.
    whiten : bool, default=False
        ``PCA(whiten=True)``: the components scaled to unit variance. Needs ``pca``.
        :data:`~featx.heads.FEATURE_NORMS` names the useful combinations of ``power``,
        ``normalize``, ``pca`` and ``whiten``.
    proba : bool, default=False
        Guarantee ``predict_proba``: heads without it (``linear_svm``, ``svm``) get their
        classifier wrapped in ``CalibratedClassifierCV(ensemble=False)`` (5 extra fits; with
        ``n_samples``, fewer folds when the classes are small, at least 2 images per class).
        Grid keys then change; use ``head_param_grid(name, proba=True)``.
    imbalance : {"prior", "tune"} or None, default=None
        Wrap the classifier in :class:`~featx.heads.ClassBiasClassifier`: ``"prior"`` shifts
        its posterior to equal class priors (heads without ``predict_proba`` are calibrated
        first, as with ``proba=True``), ``"tune"`` adds per-class offsets tuned for macro-F1 on
        out-of-fold predictions of the training data (3 more fits). Grid keys gain an
        ``estimator__``; use ``head_param_grid(name, imbalance=...)``.
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
        Steps named ``power``, ``normalize``, ``scale``, ``pca``, ``clf`` (only those present,
        in that order: :data:`~featx.heads.STEP_NAMES`).

    Raises
    ------
    ValueError
        For an unknown head, an unknown estimator parameter, an invalid ``pca`` or
        ``power``, ``whiten=True`` without ``pca``, or ``n_samples`` / ``n_classes`` that are
        not ints >= 1.
    TypeError
        If ``whiten`` is not a bool.

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
    >>> [name for name, _ in make_head("logreg", power=0.5, pca=64, whiten=True).steps]
    ['power', 'scale', 'pca', 'clf']
    >>> make_head("logreg", whiten=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: whiten=True whitens the PCA step, which needs pca= ...; got whiten=True with ...
    """
    return build_head(get_head_spec(name), pca=pca, normalize=normalize, power=power,
                      whiten=whiten, proba=proba, imbalance=imbalance, random_state=random_state,
                      n_samples=n_samples, n_classes=n_classes, **params)


def head_param_grid(name: str, *, proba: bool = False, imbalance: str | None = None,
                    n_samples: int | None = None,
                    n_classes: int | None = None) -> dict[str, list]:
    """The row's default grid, keyed for the pipeline from :func:`make_head`.

    Parameters
    ----------
    name : str
        A name from :func:`list_heads`.
    proba : bool, default=False
        Match ``make_head(name, proba=True)`` (keys become ``clf__estimator__...`` for
        calibrated heads).
    imbalance : {"prior", "tune"} or None, default=None
        Match ``make_head(name, imbalance=...)`` (one more ``estimator__`` in the keys).
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
    check_imbalance(imbalance)
    calibrated = (proba or imbalance == "prior") and not spec.predict_proba
    prefix = "clf__" + "estimator__" * (calibrated + (imbalance is not None))
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
