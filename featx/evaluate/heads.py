"""Fit every head on cached features and tabulate test metrics.

:func:`evaluate_heads` returns a :class:`HeadTable`: a list-like of row dicts with
``name``, ``kind`` (``"head"`` here, ``"finetune"`` for rows appended later),
test metrics, timings, ``backbone_forward_passes`` and the fitted ``estimator``.
:data:`ROW_KEYS` is the one row schema of every comparison (``featx.compare``, ``featx compare``,
``featx run`` and its report), :func:`score_predictions` the one place its metrics are computed
and :func:`comparison_markdown` the one table they are printed as.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence, Sized
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV

from featx.extract.config import describe, diff, feature_config, same_config
from featx.heads import fit_size, head_param_grid, limited_params, list_heads, make_head
from featx.trust.outputs import write_output
from featx.utils.jsonable import jsonable
from featx.utils.tables import markdown_table, text_table
from featx.utils.threads import blas_limit

__all__ = [
    "COLUMNS", "COMPARISON_COLUMNS", "HEAD_OPTIONS", "METRICS", "ROW_KEYS", "HeadTable",
    "check_head_options", "comparison_markdown", "evaluate_heads", "score_predictions",
    "table_columns",
]

#: The row schema of a comparison: :func:`featx.comparison.compare` (``featx compare``) and
#: :func:`featx.pipeline.run_pipeline` (``featx run``, ``report.json``'s ``results``) write these
#: keys; :func:`evaluate_heads` writes the head keys without ``backbone`` and ``input_size`` (it
#: sees features, not images). Key -> meaning.
ROW_KEYS: dict[str, str] = {
    "name": "the head (`logreg`) or `finetune:<strategy>`; a pipeline comparing several "
            "backbones prefixes `<backbone>/`",
    "kind": "`head` (a scikit-learn head on frozen features) or `finetune`",
    "backbone": "the backbone row name",
    "input_size": "[height, width] of the network input (the extraction's for a head)",
    "accuracy": "test accuracy (:func:`score_predictions`)",
    "macro_f1": "test macro-F1",
    "balanced_accuracy": "test balanced accuracy",
    "train_seconds": "fitting time (a head: its fit, or the whole grid search; a fine-tune: "
                     "`fit`, warm start included); the shared feature extraction is not in it",
    "predict_seconds": "predicting the test split (a fine-tune: its forward passes included)",
    "backbone_forward_passes": "images the backbone ran for the row in this call: for a head "
                               "the extraction of train and test that `compare` ran (shared by "
                               "every head; 0 when the features came from the cache), 0 in "
                               "`evaluate_heads` (its features are given); for a fine-tune its "
                               "`backbone_forward_passes_` plus the test images",
    "n_train": "training images (features) the row was fitted on",
    "n_test": "test images it was scored on",
    "epochs": "a fine-tune's epochs over all phases",
    "phases": "a fine-tune's phase names, in order",
    "warm_start_val_accuracy": "a fine-tune's validation accuracy after its warm start",
    "cv_score": "a head's best grid-search score (None without `cv`)",
    "best_params": "a head's grid-search choice (`{}` without `cv`)",
    "limited_params": "what a head's size rule changed for a small training set",
    "n_features": "a head's feature dimension",
    "cv_se": "a feature candidate's standard error of `cv_score` over the folds",
    "cv_folds": "a feature candidate's score on each fold (every candidate meets the same folds)",
    "cv_metric": "what a feature candidate's `cv_score` measures",
    "features": "a feature candidate: backbones, taps, views",
    "taps": "a feature candidate's layer taps (None: the pooled output)",
    "views": "a feature candidate's views (several: test-time augmentation)",
    "norm": "a feature candidate's normalisation (a row of `featx.heads.FEATURE_NORMS`)",
    "passes_per_image": "backbone passes one training image costs a feature candidate",
    "predict_passes_per_image": "backbone passes one image costs a feature candidate at "
                                "prediction",
    "seconds_per_image": "forward seconds one image costs a feature candidate at prediction, "
                         "measured in the run",
    "selected": "whether the feature choice chose this row",
    "candidate": "a feature candidate's probe row (False: another head on the chosen features)",
    "estimator": "the fitted model (kept in memory, never serialised)",
}
#: The one column vocabulary of every comparison table featx prints or writes (``featx
#: compare``, ``featx run``, ``report.md``, :class:`HeadTable`'s markdown and text,
#: :func:`evaluate_heads`' rows): these columns, in this order, each shown when some row has a
#: value for it (:func:`table_columns`); rows hold more (see ``ROW_KEYS``).
COLUMNS = (
    "name", "kind", "backbone", "input_size", "accuracy", "macro_f1", "balanced_accuracy",
    "train_seconds", "predict_seconds", "backbone_forward_passes", "epochs", "cv_score",
    "best_params", "limited_params",
)
#: The comparison table's columns: :data:`COLUMNS` (one vocabulary; the name is kept).
COMPARISON_COLUMNS = COLUMNS
#: Metric columns where higher is better (valid ``by=`` for :meth:`HeadTable.best`).
METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "cv_score")
_KINDS = ("head", "finetune")
#: Decimals of the tables' floats below 10.
_DIGITS = 3


def score_predictions(y_true, y_pred) -> dict[str, float]:
    """The test metrics of every comparison row, from true and predicted labels.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Labels of any kind (indices or names), the same kind in both.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (unweighted mean of the per-class F1; 0 for a class never
        predicted) and ``balanced_accuracy`` (mean per-class recall), as floats.

    Examples
    --------
    >>> from featx.evaluate import score_predictions
    >>> scores = score_predictions(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    >>> {k: round(v, 3) for k, v in scores.items()}
    {'accuracy': 0.75, 'macro_f1': 0.778, 'balanced_accuracy': 0.833}
    """
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))}


def comparison_markdown(rows: Iterable[Mapping[str, Any]]) -> str:
    """The comparison table: the :data:`COLUMNS` some row has a value for, as Markdown.

    ``featx compare`` and ``featx run`` print it and ``report.md`` shows it, so the three read
    the same.

    Parameters
    ----------
    rows : iterable of dict
        Rows of the :data:`ROW_KEYS` schema (a :class:`HeadTable`, ``Report.rows``...).

    Returns
    -------
    str
        The lines, without a final newline.

    Examples
    --------
    >>> from featx.evaluate import comparison_markdown
    >>> print(comparison_markdown([
    ...     {"name": "logreg", "kind": "head", "backbone": "resnet50", "input_size": [224, 224],
    ...      "accuracy": 0.81, "train_seconds": 1.5, "predict_seconds": 0.01},
    ...     {"name": "finetune:blocks", "kind": "finetune", "backbone": "resnet50",
    ...      "input_size": [160, 160], "accuracy": 0.9, "train_seconds": 61.04, "epochs": 3}]))
    | name | kind | backbone | input_size | accuracy | train_seconds | predict_seconds | epochs |
    |---|---|---|---|---|---|---|---|
    | logreg | head | resnet50 | 224x224 | 0.810 | 1.500 | 0.010 |  |
    | finetune:blocks | finetune | resnet50 | 160x160 | 0.900 | 61.0 |  | 3 |
    """
    rows = list(rows)
    return markdown_table(rows, table_columns(rows), digits=_DIGITS)


def table_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The :data:`COLUMNS` some row has a value for (not None, not empty), in their order: the
    columns of every table featx prints or writes.

    Examples
    --------
    >>> from featx.evaluate import table_columns
    >>> table_columns([{"name": "logreg", "kind": "head", "accuracy": 0.8, "cv_score": None,
    ...                 "best_params": {}, "n_train": 120}])
    ['name', 'kind', 'accuracy']
    """
    rows = list(rows)

    def has(row, column):
        value = row.get(column)
        return value is not None and not (isinstance(value, Sized) and not isinstance(value, str)
                                          and len(value) == 0) and value != ""

    return [c for c in COLUMNS if any(has(r, c) for r in rows)]


class HeadTable(Sequence):
    """Rows of evaluation results; a list of dicts with a few table helpers.

    Parameters
    ----------
    rows : iterable of dict, default=()
        Each needs ``name`` and ``kind`` (``"head"`` or ``"finetune"``); other keys
        are free (see ``COLUMNS``). An ``estimator`` key is kept but never serialised.
    class_names : list of str, optional
        Label names the metrics refer to.

    Examples
    --------
    >>> from featx.evaluate import HeadTable
    >>> table = HeadTable([{"name": "a", "kind": "head", "accuracy": 0.8},
    ...                    {"name": "b", "kind": "finetune", "accuracy": 0.9}])
    >>> table.best()["name"]
    'b'
    >>> print(table.to_markdown(columns=["name", "kind", "accuracy"]))
    | name | kind | accuracy |
    |---|---|---|
    | a | head | 0.800 |
    | b | finetune | 0.900 |
    """

    # Pickles name the class by its public path (stable as modules move).
    __module__ = "featx.evaluate"

    def __init__(self, rows: Iterable[Mapping[str, Any]] = (), *, class_names=None):
        self.rows: list[dict[str, Any]] = []
        self.class_names = None if class_names is None else list(class_names)
        for row in rows:
            self.append(row)

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row (e.g. a fine-tuning result); needs ``name`` and ``kind``."""
        if "name" not in row or row.get("kind") not in _KINDS:
            raise ValueError(
                f"row must have a 'name' and kind in {_KINDS}; got row keys "
                f"{sorted(row)} with kind={row.get('kind')!r}."
            )
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            for row in self.rows:
                if row["name"] == key:
                    return row
            raise KeyError(f"no row with name={key!r}; names: {self.names}")
        return self.rows[key]

    @property
    def names(self) -> list[str]:
        """Row names, in order."""
        return [row["name"] for row in self.rows]

    @property
    def columns(self) -> list[str]:
        """The :data:`COLUMNS` some row has a value for, in their order
        (:func:`table_columns`, as every comparison table featx prints)."""
        return table_columns(self.rows)

    def best(self, by: str = "accuracy") -> dict[str, Any]:
        """The row with the highest ``by`` (ties: first row wins)."""
        if by not in METRICS:
            raise ValueError(f"by must be one of {METRICS}; got by={by!r}.")
        scored = [r for r in self.rows if isinstance(r.get(by), (int, float))]
        if not scored:
            raise ValueError(f"no row has a value for by={by!r}; table has {len(self)} rows.")
        return max(scored, key=lambda r: r[by])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"class_names": ..., "rows": [...]}`` without estimators."""
        rows = [{k: jsonable(v) for k, v in r.items() if k != "estimator"} for r in self.rows]
        return {"class_names": self.class_names, "rows": rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadTable:
        """Inverse of :meth:`to_dict` (estimators are not restored)."""
        return cls(data["rows"], class_names=data.get("class_names"))

    def to_json(self, path=None, *, indent: int = 2) -> str:
        """:meth:`to_dict` as JSON text; also written to ``path`` when given.

        featx's own earlier file at ``path`` is replaced atomically; a file featx did not
        write (or one edited since) is refused with :class:`~featx.errors.OutputExistsError`
        and left as it is.
        """
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            write_output(path, text + "\n", param="path")
        return text

    def to_markdown(self, columns: Sequence[str] | None = None, *, digits: int = _DIGITS) -> str:
        """A Markdown table; ``columns`` defaults to :attr:`columns`."""
        columns = list(columns) if columns is not None else self.columns
        return markdown_table(self.rows, columns, digits=digits)

    def __str__(self) -> str:
        return text_table(self.rows, self.columns, digits=_DIGITS)

    def __repr__(self) -> str:
        try:
            best = self.best()
            tail = f", best={best['name']!r} accuracy={best['accuracy']:.3f}"
        except ValueError:
            tail = ""
        return f"HeadTable({len(self)} rows{tail})"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _as_xy(data, param: str):
    """Features, labels, class names and extractor configuration (None when unknown) from a
    FeatureSet-like or an ``(X, y)`` pair."""
    if isinstance(data, tuple) and len(data) == 2:
        (X, y), names, config = data, None, None
    elif hasattr(data, "features") and hasattr(data, "labels"):
        X, y, names = data.features, data.labels, getattr(data, "class_names", None)
        config = feature_config(getattr(data, "attrs", None))
    else:
        raise TypeError(
            f"{param} must be a FeatureSet (with .features and .labels) or an (X, y) tuple; "
            f"got {param}={type(data).__name__}."
        )
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(
            f"{param} needs features of shape (N, D) and labels of shape (N,); "
            f"got features {X.shape} and labels {y.shape}."
        )
    return X, y, None if names is None else list(names), config


def _resolve_heads(heads, random_state, n_samples, n_classes, search, options):
    """``[(name, estimator, grid, limited)]`` from None, a name, names, or a map of row names to
    head names, ``(head name, params)`` pairs or estimators.

    Named heads are sized for ``n_samples`` (the smallest training fold when ``search``) and get
    the ``make_head`` ``options``.
    """
    if heads is None:
        heads = list_heads(default_only=True)
    elif isinstance(heads, str):
        heads = [heads]
    if not isinstance(heads, Mapping):
        heads = {name: name for name in heads}
    out = []
    for name, est in heads.items():
        if isinstance(est, tuple) and len(est) == 2 and isinstance(est[0], str) \
                and isinstance(est[1], Mapping):
            head, params = est
        elif isinstance(est, str):
            head, params = est, {}
        else:
            out.append((name, clone(est), {}, {}))
            continue
        out.append((name, *_sized_head(head, random_state, n_samples, n_classes, search,
                                       options, dict(params))))
    return out


#: ``make_head`` options :func:`evaluate_heads` passes on (``head_options``); those marked True
#: change the grid's keys and go to ``head_param_grid`` too.
HEAD_OPTIONS = {"imbalance": True, "proba": True, "pca": False, "normalize": False,
                "power": False, "whiten": False}


def check_head_options(options: Mapping[str, Any] | None) -> dict:
    """``options`` as a dict when every key is one of :data:`HEAD_OPTIONS` (what
    :func:`evaluate_heads` and :func:`featx.comparison.select_features` pass on to every head).

    Examples
    --------
    >>> check_head_options({"imbalance": "tune"})
    {'imbalance': 'tune'}
    >>> from featx.heads import norm_options
    >>> check_head_options(norm_options("sqrt_l2"))
    {'power': 0.5, 'normalize': True}
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(HEAD_OPTIONS))
    if unknown:
        raise ValueError(f"head_options {unknown} are not make_head options featx passes on to "
                         f"heads; allowed: {sorted(HEAD_OPTIONS)}; got head_options={options!r}.")
    return options


def _sized_head(head, random_state, n_samples, n_classes, search, options, params):
    """``(pipeline, grid, limited)``: ``limited`` holds what the row's size rule changed, keyed
    like ``best_params`` (a default's new value, or with ``search`` a grid's remaining values).
    ``params`` (the row's estimator parameters) stay fixed: the grid leaves them out."""
    sizes = {"n_samples": n_samples, "n_classes": n_classes}
    grid_options = {k: v for k, v in options.items() if HEAD_OPTIONS[k]}
    grid = {k: v for k, v in head_param_grid(head, **sizes, **grid_options).items()
            if k.rsplit("__", 1)[-1] not in params}
    prefix = "clf__" + "estimator__" * (options.get("imbalance") is not None)
    limited = {prefix + k: v for k, v in limited_params(head, **sizes, **params).items()}
    if search:
        full = head_param_grid(head, **grid_options)
        limited = {k: v for k, v in limited.items() if k not in grid}
        limited.update({k: v for k, v in grid.items() if v != full[k]})
    estimator = make_head(head, random_state=random_state, **sizes, **options, **params)
    return estimator, grid, limited


def _evaluate_one(name, estimator, grid, limited, X, y, X_test, y_test, cv, n_jobs, scoring):
    row: dict[str, Any] = {"name": name, "kind": "head"}
    start = time.perf_counter()
    with blas_limit():  # the thread budget: one BLAS thread per fit (featx.utils.threads)
        if cv is None:
            fitted, best_params, cv_score = estimator.fit(X, y), {}, None
        else:
            search = GridSearchCV(estimator, grid, cv=cv, n_jobs=n_jobs, scoring=scoring)
            search.fit(X, y)
            fitted, best_params = search.best_estimator_, search.best_params_
            cv_score = float(search.best_score_)
    row["train_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    pred = fitted.predict(X_test)
    row["predict_seconds"] = time.perf_counter() - start
    row.update(
        **score_predictions(y_test, pred),
        cv_score=cv_score,
        best_params=dict(best_params),
        backbone_forward_passes=0,
        n_train=len(y),
        n_test=len(y_test),
        n_features=X.shape[1],
        estimator=fitted,
    )
    if limited:
        row["limited_params"] = limited
    return row


def evaluate_heads(
    train,
    test,
    heads=None,
    cv=None,
    n_jobs: int | None = None,
    *,
    scoring: str = "accuracy",
    random_state: int | None = 0,
    head_options: Mapping[str, Any] | None = None,
) -> HeadTable:
    """Fit each head on ``train`` features and score it on ``test``.

    Parameters
    ----------
    train, test : FeatureSet or tuple of (X, y)
        Anything with ``.features`` (N, D), ``.labels`` (N,) and optionally
        ``.class_names``; or an ``(X, y)`` pair. Two FeatureSets must come from the same
        extractor configuration (``attrs["key"]``): a ``ValueError`` names both otherwise
        (same-width features of another input size or backbone would score nonsense).
    heads : None, str, list of str or dict, default=None
        Head names (None: ``list_heads(default_only=True)``, every row but the ensembles), or
        a dict mapping a row name to a head name, to a ``(head name, params)`` pair
        (``params``: the row's estimator parameters, fixed, left out of the grid; e.g.
        ``("soft_vote", {"blocks": [1280, 1280, 1408]})`` for an ensemble over the parts of a
        concatenated FeatureSet) or to an unfitted estimator (searched over no grid, used as given).
    cv : None, int or CV splitter, default=None
        None fits each head once with its defaults; otherwise
        ``GridSearchCV(head, head_param_grid(name), cv=cv)`` picks the parameters.
        Named heads are sized for the data: ``make_head`` and ``head_param_grid`` get
        ``n_samples`` (the training set, or with ``cv`` its smallest training fold, e.g.
        ``floor(n * 2 / 3)`` for ``cv=3``) and ``n_classes``, so ``knn`` and ``mlp`` fit
        tiny training sets; what that changed is in the row's ``limited_params``.
    n_jobs : int or None, default=None
        Workers for the grid search (heads are fitted one after another so that the
        timings are comparable).
    scoring : str, default="accuracy"
        Grid-search criterion.
    random_state : int or None, default=0
        Seed passed to :func:`~featx.heads.make_head`.
    head_options : dict, optional
        More :func:`~featx.heads.make_head` options for every named head (keys of
        :data:`HEAD_OPTIONS`): ``{"imbalance": "tune"}`` tunes per-class offsets for macro-F1,
        ``{"imbalance": "prior"}`` shifts to equal priors, ``pca``, ``normalize``, ``power``,
        ``whiten``, ``proba``; a feature normalisation is ``featx.heads.norm_options(name)``
        (a row of :data:`featx.heads.FEATURE_NORMS`, e.g. ``{"power": 0.5}``). The grids
        follow (``head_param_grid`` gets ``imbalance`` and ``proba``).

    Returns
    -------
    HeadTable
        One row per head: ``name``, ``kind="head"``, ``accuracy``, ``macro_f1``,
        ``balanced_accuracy``, ``train_seconds`` (the whole search when ``cv`` is given),
        ``predict_seconds``, ``cv_score``, ``best_params``, ``backbone_forward_passes``
        (0: the features are already cached), ``n_train``, ``n_test``, ``n_features``
        and the fitted ``estimator``; plus ``limited_params`` where the training set was
        too small for a row default (``{"clf__n_neighbors": 8}``; with ``cv``, a grid's
        remaining values: ``{"clf__n_neighbors": [5, 8]}``).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from featx.evaluate import evaluate_heads
    >>> X, y = make_classification(200, 20, n_informative=8, n_classes=3, random_state=0)
    >>> table = evaluate_heads((X[:150], y[:150]), (X[150:], y[150:]), heads=["logreg", "knn"])
    >>> table.names
    ['logreg', 'knn']
    >>> 0.5 < table.best()["accuracy"] <= 1.0
    True
    """
    X, y, names, config = _as_xy(train, "train")
    X_test, y_test, test_names, test_config = _as_xy(test, "test")
    if not same_config(config, test_config):
        raise ValueError(
            "train and test features must come from the same extractor configuration; got "
            f"train={describe(config)} and test={describe(test_config)}"
            f"{diff(config, test_config)}. Features of different configurations are "
            "not comparable: extract both with the same backbone, input size and settings."
        )
    if X_test.shape[1] != X.shape[1]:
        raise ValueError(
            f"test features have {X_test.shape[1]} dimensions but train has {X.shape[1]}."
        )
    if names is not None and test_names is not None and names != test_names:
        raise ValueError(
            f"test.class_names must equal train.class_names; got test={test_names} "
            f"and train={names}."
        )
    options = check_head_options(head_options)
    table = HeadTable(class_names=names)
    cv, n_fit, n_classes = fit_size(X, y, cv)
    for name, estimator, grid, limited in _resolve_heads(heads, random_state, n_fit, n_classes,
                                                         cv is not None, options):
        table.append(_evaluate_one(name, estimator, grid, limited, X, y, X_test, y_test, cv,
                                   n_jobs, scoring))
    return table
