"""The few-shot curve: test accuracy of frozen-feature heads vs training examples per class.

The features are cached, so each point is only a head fit on a per-class subsample of the
training features (no backbone runs and no matplotlib); :func:`featx.report.plots.plot_few_shot`
draws the result and :func:`featx.advise.advise` reads it. Public as
:func:`featx.evaluate.few_shot_curve` (and, where it lived before, ``featx.report.few_shot_curve``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from featx.heads import make_head
from featx.utils.threads import blas_limit

__all__ = ["few_shot_curve"]


def _subsample_per_class(labels: np.ndarray, k: int | None, rng) -> np.ndarray:
    if k is None:
        return np.arange(len(labels))
    idx = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        idx.extend(rng.choice(members, size=min(k, len(members)), replace=False).tolist())
    return np.sort(np.asarray(idx, dtype=np.int64))


def few_shot_curve(train, test, heads: Sequence[str] = ("logreg",), *,
                   shots: Sequence[int | None] = (1, 2, 5, 10, 20, None), repeats: int = 3,
                   seed: int = 0, make=None, known: Mapping[str, float] | None = None) -> dict:
    """Test accuracy of each head fit on ``k`` training examples per class, for every ``k``.

    Parameters
    ----------
    train, test : FeatureSet (or anything with ``features`` and ``labels``)
        Cached features; nothing runs through a backbone here.
    heads : sequence of str
        Head names for :func:`featx.heads.make_head` (or any name ``make`` accepts).
    shots : sequence of int or None
        Examples per class; ``None`` (or 0) means all of them. Values above the smallest class
        are capped, duplicates dropped.
    repeats : int
        Random subsamples per point (averaged; the standard deviation is kept).
    make : callable, optional
        ``make(name) -> estimator``; default :func:`featx.heads.make_head`, called for each point
        with that point's ``n_samples`` and ``n_classes`` so that heads fit few examples
        (``knn``'s ``n_neighbors`` capped, ``mlp`` without early stopping).
    known : dict, optional
        ``{head: accuracy}`` already measured on the whole training set (e.g. the comparison
        table's): used for the "all" point instead of fitting the head again.

    Returns
    -------
    dict
        ``{"n_per_class": [...], "scores": {head: [mean...]}, "std": {head: [...]},
        "chance": float, "failed": {head: [reason per point or None]}, "repeats": int}``: the
        mean and standard deviation of each point are over ``repeats`` random subsamples (the
        last point, every example, is fitted once). A head that cannot fit
        a point (e.g. a ``make`` estimator needing more samples) scores NaN there.

    Notes
    -----
    Each fit runs with one BLAS thread (:func:`featx.utils.threads.blas_limit`), as
    :func:`featx.evaluate.evaluate_heads`'s do: these fits are small (a few hundred rows), and
    with a BLAS thread per core they ran about 40 times slower as soon as anything else wanted
    the cores (``benchmarks/advise_bench.py``).
    """
    from sklearn.base import clone

    if make is None:
        build = make_head
    else:
        def build(name, **sizes):
            return make(name)
    Xtr, ytr = np.asarray(train.features), np.asarray(train.labels)
    Xte, yte = np.asarray(test.features), np.asarray(test.labels)
    counts = np.bincount(ytr)
    counts = counts[counts > 0]
    full = int(counts.max())
    ks: list[int] = []
    for s in shots:
        k = full if not s else min(int(s), full)
        if k not in ks:
            ks.append(k)
    ks.sort()
    out = {"n_per_class": ks, "scores": {}, "std": {}, "failed": {},
           "repeats": max(1, int(repeats)),
           "chance": float(np.max(np.bincount(yte)) / len(yte)) if len(yte) else None}
    for head in heads:
        build(head)  # an unknown name raises here, not as a NaN point
        means, stds, failed = [], [], []
        for k in ks:
            if k >= full and known is not None and known.get(head) is not None:
                means.append(float(known[head]))
                stds.append(0.0)
                failed.append(None)
                continue
            reps = 1 if k >= full else max(1, int(repeats))
            scores, reason = [], None
            for r in range(reps):
                idx = _subsample_per_class(ytr, None if k >= full else k,
                                           np.random.default_rng(seed + 1000 * r + k))
                if len(np.unique(ytr[idx])) < 2:
                    reason = "needs at least two classes"
                    break
                try:
                    sizes = {"n_samples": len(idx), "n_classes": len(np.unique(ytr[idx]))}
                    with blas_limit():
                        est = clone(build(head, **sizes)).fit(Xtr[idx], ytr[idx])
                        scores.append(float(np.mean(est.predict(Xte) == yte)))
                except ValueError as exc:  # e.g. a make() head's CV folds > class size
                    reason = str(exc).splitlines()[0]
                    break
            means.append(float(np.mean(scores)) if scores and reason is None else float("nan"))
            stds.append(float(np.std(scores)) if scores and reason is None else float("nan"))
            failed.append(reason)
        out["scores"][head], out["std"][head], out["failed"][head] = means, stds, failed
    return out
