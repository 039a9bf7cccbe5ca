"""The comparison loop: frozen-feature heads and fine-tuning, side by side in one table.

The frozen heads fit on features extracted once (and cached); each fine-tuning strategy trains the
whole network on the same images, warm-started from those same cached features. Every row reports
test accuracy, macro-F1, balanced accuracy, training seconds and the backbone forward passes it
cost in this call (counted: 0 for heads whose features came from the cache; images x epochs for
fine-tuning), in the schema of :data:`featx.evaluate.ROW_KEYS`.

:func:`run_comparison` is the one comparison loop: :func:`featx.compare` returns its table, and
:func:`featx.pipeline.run_pipeline` runs it once per backbone and keeps the rest (features,
predictions for the confusion matrix, fine-tuning histories, timings) for its report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featx.backbones import check_weights, get_backbone_spec, resolve_input_size
from featx.data import ImageDataset
from featx.evaluate import evaluate_heads, score_predictions
from featx.extract import extract_features, forward_pass_count
from featx.heads import list_heads
from featx.utils.progress import say

__all__ = ["DEFAULT_HEADS", "Comparison", "run_comparison"]

#: The heads a comparison fits when none are named: the head table's default rows.
DEFAULT_HEADS = tuple(list_heads(default_only=True))


def _per_strategy(finetune: Sequence[str], finetune_params: Mapping | None) -> dict[str, dict]:
    """``finetune_params`` is either shared by every strategy or keyed by strategy name."""
    params = dict(finetune_params or {})
    if params and set(params) <= set(finetune) and all(isinstance(v, Mapping)
                                                       for v in params.values()):
        return {name: dict(params.get(name, {})) for name in finetune}
    return {name: dict(params) for name in finetune}


def _as_dataset(fs):
    """The images a FeatureSet actually holds (unreadable ones were skipped), as a dataset."""
    return ImageDataset(list(fs.paths), np.asarray(fs.labels), list(fs.class_names))


@dataclass
class Comparison:
    """What :func:`run_comparison` measured on one backbone.

    Attributes
    ----------
    table : HeadTable
        The rows (:data:`featx.evaluate.ROW_KEYS`): heads, then fine-tunes.
    train, test : FeatureSet
        The frozen features the heads used; their images (unreadable ones left out) are the
        ones every row was fitted and scored on.
    timings : dict
        Seconds: ``extract_s`` (both splits), ``heads_s`` (every head), ``finetune_s`` (every
        fine-tune, test predictions included).
    selected : str or None
        The row a feature-choice step (:func:`select_features`) chose by cross-validation on
        the training split; ``None`` for a plain comparison.
    bank : FeatureBank or None
        The extracted features behind a feature-choice step.
    eliminated : list of dict
        The candidates a feature-choice step ruled out early (successive halving).
    cold_passes : int
        The backbone passes a feature-choice step costs on an empty cache.
    tied : list of str
        The candidates (``features``) a feature-choice step could not tell from the best
        cross-validated score (:func:`near_best`) besides the chosen one: as good a choice by
        cross-validation.
    """

    # Pickles name the class by its public path (stable as modules move).
    __module__ = "featx.comparison"

    table: Any
    train: Any
    test: Any
    timings: dict[str, float] = field(default_factory=dict)
    _predicted: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    selected: str | None = None
    bank: Any = field(default=None, repr=False)
    eliminated: list = field(default_factory=list)
    cold_passes: int = 0
    tied: list = field(default_factory=list)

    def predictions(self, name: str) -> np.ndarray:
        """Row ``name``'s test predictions as class indices, aligned with ``test.labels``.

        A head predicts again from the cached features (cheap); a fine-tune's predictions were
        kept when it was scored.
        """
        if name in self._predicted:
            return self._predicted[name]
        return np.asarray(self.table[name]["estimator"].predict(self.test.features))


def _same_size(backbone: str, a, b) -> bool:
    """Whether two ``input_size`` values mean the same pixels for ``backbone``."""
    spec = get_backbone_spec(backbone)
    return resolve_input_size(spec, a) == resolve_input_size(spec, b)


def _reusable(backbone, weights, input_size, params, extract_params) -> bool:
    """Whether the heads' train features are the ones the fine-tuner's warm start would read from
    the cache itself: pretrained weights (a random network is drawn anew by the fine-tuner), the
    same input size, and the extraction defaults it uses (average pooling of the last map,
    bilinear resize)."""
    ex = dict(extract_params or {})
    return (check_weights(weights) is not None
            and _same_size(backbone, params["input_size"], input_size)
            and ex.get("pooling", "avg") == "avg" and not ex.get("layers")
            and ex.get("resize", "bilinear") == "bilinear")


def run_comparison(train, test, *, validation=None, backbone: str = "efficientnet_lite0",
                   weights="imagenet", heads: Sequence[str] = DEFAULT_HEADS,
                   finetune: Sequence[str] = (), finetune_params: Mapping | None = None,
                   cache=None, input_size=None, decoder: str = "pillow",
                   extract_params: Mapping | None = None, cv=None, verbose: int = 1,
                   echo: Callable[[str], Any] | None = None,
                   head_options: Mapping[str, Any] | None = None) -> Comparison:
    """Extract ``backbone`` features once, fit every head on them, fine-tune every strategy on the
    same images, and score all of them on ``test``.

    Parameters
    ----------
    train, test, validation, backbone, weights, heads, finetune, finetune_params, cache,
    input_size, decoder
        As in :func:`compare`.
    extract_params : dict, optional
        More :func:`featx.extract.extract_features` arguments for the heads' features
        (``pooling``, ``layers``, ``resize``, ``batch_size``...). The fine-tunes warm-start from
        those features only when they are what the fine-tuner would read itself (pretrained
        weights, its input size, average pooling of the last map, bilinear resize).
    cv : None, int or CV splitter, optional
        Grid search of the heads, as in :func:`featx.evaluate.evaluate_heads`.
    head_options : dict, optional
        Options of every named head, as in :func:`featx.evaluate.evaluate_heads` (e.g.
        ``{"imbalance": "tune"}``: per-class offsets tuned for macro-F1 on out-of-fold data).
    verbose : int, default=1
        Progress of the extraction and, 1 and up, one line per fine-tuning epoch (2: Keras's
        own bar too).
    echo : callable, optional
        Called with a line before each fine-tune starts.

    Returns
    -------
    Comparison
        ``table`` (rows of :data:`featx.evaluate.ROW_KEYS`), the feature sets, each row's test
        predictions (:meth:`Comparison.predictions`) and timings. A fine-tune fits and predicts
        the images the extraction could read (``train.paths``, ``test.paths``).

    Examples
    --------
    >>> import featx
    >>> from featx.comparison import run_comparison
    >>> data = featx.load_clothing_mini()
    >>> train, test = (data[s].subset(range(0, len(data[s]), 4)) for s in ("train", "test"))
    >>> result = run_comparison(train, test, backbone="mobilenet_v2", weights=None,
    ...                         input_size=32, heads=["logreg", "knn"], finetune=[], cache=False)
    >>> result.table.names, result.table["knn"]["input_size"]
    (['logreg', 'knn'], [32, 32])
    >>> result.predictions("logreg").shape == result.test.labels.shape
    True
    """
    timings = {}
    start = time.perf_counter()
    kw = dict(backbone=backbone, weights=weights, input_size=input_size, cache=cache,
              decoder=decoder, verbose=verbose, **dict(extract_params or {}))
    passes = forward_pass_count()
    train_fs, test_fs = extract_features(train, **kw), extract_features(test, **kw)
    passes = forward_pass_count() - passes  # 0 when every feature came from the cache
    timings["extract_s"] = time.perf_counter() - start
    size = list(resolve_input_size(get_backbone_spec(backbone), input_size))

    start = time.perf_counter()
    if verbose and heads:
        say(f"heads {backbone}: fitting {', '.join(heads)} on {len(train_fs)} train images"
            + (f" ({cv}-fold search)" if cv else "") + " ...")
    table = evaluate_heads(train_fs, test_fs, heads=list(heads), cv=cv,
                           head_options=head_options)
    for i, row in enumerate(table.rows):  # the schema's leading keys first
        table.rows[i] = {"name": row["name"], "kind": row["kind"], "backbone": backbone,
                         "input_size": size, **row,
                         "backbone_forward_passes": passes}
    timings["heads_s"] = time.perf_counter() - start

    start = time.perf_counter()
    result = Comparison(table, train_fs, test_fs, timings)
    train_ds, test_ds = _as_dataset(train_fs), _as_dataset(test_fs)
    index = {c: i for i, c in enumerate(test_fs.class_names)}
    for name, params in _per_strategy(finetune, finetune_params).items():
        from featx.finetune import FineTunedClassifier  # Keras: only when a fine-tune runs

        params = {"input_size": input_size, "cache": cache, "decoder": decoder,
                  "verbose": verbose, **params}
        warm = train_fs.features if _reusable(backbone, weights, input_size, params,
                                              extract_params) else None
        est = FineTunedClassifier(backbone, weights=weights, strategy=name,
                                  validation_data=validation, **params)
        if echo is not None:
            echo(f"fine-tuning {backbone} with strategy {name!r} ...")
        t = time.perf_counter()
        est.fit(train_ds, warm_start_features=warm)
        train_seconds = time.perf_counter() - t
        t = time.perf_counter()
        pred = est.predict(test_ds)
        predict_seconds = time.perf_counter() - t
        row = {"name": f"finetune:{name}", "kind": "finetune", "backbone": backbone,
               "input_size": list(est.input_size_),
               **score_predictions(test_ds.label_names, pred),
               "train_seconds": train_seconds, "predict_seconds": predict_seconds,
               "backbone_forward_passes": int(est.backbone_forward_passes_ + len(test_ds)),
               "epochs": int(sum(r["epochs"] for r in est.history_)),
               "phases": [r["phase"] for r in est.history_],
               "n_train": len(train_ds), "n_test": len(test_ds), "estimator": est}
        first = est.history_[0]
        if first["phase"] == "warm_start" and first["val_accuracy"]:
            row["warm_start_val_accuracy"] = first["val_accuracy"][0]
        table.append(row)
        result._predicted[row["name"]] = np.asarray([index.get(str(p), -1) for p in pred])
    timings["finetune_s"] = time.perf_counter() - start
    return result
