"""Frozen-feature heads and fine-tuning, side by side in one :class:`~featx.evaluate.HeadTable`.

The frozen heads fit on features extracted once (and cached); each fine-tuning strategy trains the
whole network on the same images, warm-started from those same cached features. Every row reports
test accuracy, macro-F1, balanced accuracy, training seconds and the backbone forward passes it
cost (images x epochs, counted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

__all__ = ["compare"]

DEFAULT_HEADS = ("logreg", "svm", "rf", "mlp", "knn")


def _per_strategy(finetune: Sequence[str], finetune_params: Mapping | None) -> dict[str, dict]:
    """``finetune_params`` is either shared by every strategy or keyed by strategy name."""
    params = dict(finetune_params or {})
    if params and set(params) <= set(finetune) and all(isinstance(v, Mapping)
                                                       for v in params.values()):
        return {name: dict(params.get(name, {})) for name in finetune}
    return {name: dict(params) for name in finetune}


def _as_dataset(fs):
    """The images a FeatureSet actually holds (unreadable ones were skipped), as a dataset."""
    from featx.data import ImageDataset

    return ImageDataset(list(fs.paths), np.asarray(fs.labels), list(fs.class_names))


def compare(train, test, *, validation=None, backbone: str = "efficientnet_lite0",
            weights="imagenet", heads: Sequence[str] = DEFAULT_HEADS,
            finetune: Sequence[str] = ("staged",), finetune_params: Mapping | None = None,
            cache=None, input_size=None, decoder: str = "pillow"):
    """Evaluate frozen heads and fine-tuning strategies on the same split.

    Parameters
    ----------
    train, test : ImageDataset
    validation : ImageDataset, optional
        Early-stopping data for fine-tuning; without it each fine-tune holds out
        ``validation_split`` of ``train``.
    backbone, weights, input_size, decoder
        As in :func:`featx.extract.extract_features`; fine-tuning decodes with the same
        ``decoder``.
    heads : sequence of str
        Frozen heads (names from :func:`featx.heads.list_heads`).
    finetune : sequence of str
        Strategies (rows of :data:`featx.finetune.STRATEGIES`); empty for heads only.
    finetune_params : dict, optional
        :class:`~featx.finetune.FineTunedClassifier` parameters, shared, or keyed by strategy
        name (``{"blocks": {"epochs": 3}, "staged": {...}}``). An ``input_size`` here fine-tunes
        at that size while the heads keep ``input_size`` (e.g. heads at 224, fine-tuning at 160
        on a CPU); the warm start then reads (or extracts) features at the fine-tuning size.
    cache
        Feature cache, as in :func:`featx.extract.extract_features`.

    Returns
    -------
    HeadTable
        Frozen rows (``kind="head"``) then fine-tune rows (``kind="finetune"``, named
        ``finetune:<strategy>``, with the fitted ``estimator``). ``backbone_forward_passes`` is the
        backbone work a row needs: the feature extraction (``n_train + n_test``, shared by every
        head and paid once, then cached) for heads; for fine-tuning the images of every epoch,
        validation, warm-start features not found in the cache, and the test predictions.
    """
    from featx.evaluate import evaluate_heads
    from featx.extract import extract_features
    from featx.finetune import FineTunedClassifier

    kw = dict(backbone=backbone, weights=weights, input_size=input_size, cache=cache,
              decoder=decoder, verbose=0)
    train_fs, test_fs = extract_features(train, **kw), extract_features(test, **kw)
    table = evaluate_heads(train_fs, test_fs, heads=list(heads))
    for row in table:
        row["backbone_forward_passes"] = len(train_fs) + len(test_fs)
    train_ds, test_ds = _as_dataset(train_fs), _as_dataset(test_fs)
    y_test = np.asarray(test_ds.label_names)
    for name, params in _per_strategy(finetune, finetune_params).items():
        params = {"input_size": input_size, "cache": cache, "decoder": decoder, **params}
        same_size = _same_size(backbone, params["input_size"], input_size)
        est = FineTunedClassifier(backbone, weights=weights, strategy=name,
                                  validation_data=validation, **params)
        start = time.perf_counter()
        est.fit(train_ds, warm_start_features=train_fs.features if same_size else None)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        pred = est.predict(test_ds)
        table.append(_finetune_row(name, est, y_test, pred, train_seconds,
                                   time.perf_counter() - start, len(train_ds)))
    return table


def _same_size(backbone: str, a, b) -> bool:
    """Whether two ``input_size`` values mean the same pixels for ``backbone``."""
    from featx.backbones import get_backbone_spec, resolve_input_size

    spec = get_backbone_spec(backbone)
    return resolve_input_size(spec, a) == resolve_input_size(spec, b)


def _finetune_row(name, est, y_test, pred, train_seconds, predict_seconds, n_train) -> dict:
    row: dict[str, Any] = {
        "name": f"finetune:{name}",
        "kind": "finetune",
        "accuracy": float(accuracy_score(y_test, pred)),
        "macro_f1": float(f1_score(y_test, pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
        "train_seconds": train_seconds,
        "predict_seconds": predict_seconds,
        "backbone_forward_passes": int(est.backbone_forward_passes_ + len(y_test)),
        "epochs": int(sum(r["epochs"] for r in est.history_)),
        "phases": [r["phase"] for r in est.history_],
        "n_train": n_train,
        "n_test": len(y_test),
        "estimator": est,
    }
    warm = est.history_[0]
    if warm["phase"] == "warm_start" and warm["val_accuracy"]:
        row["warm_start_val_accuracy"] = warm["val_accuracy"][0]
    return row
