"""Regularisation and other heads on chosen features: 3-fold CV on train and test accuracy.

    FEATX_CACHE_DIR=/path/to/cache python benchmarks/heads_on_choice.py \
        [--data ../shared/datasets/clothing-small] \
        ["efficientnet_lite2 taps[-1,-2] views[none,flip]" ...]

Each argument names a candidate of :func:`featx.comparison.feature_choices` (Lite0/1/2 alone and
concatenated, taps ``[-1,-2]`` and ``[-2,-3,-4]``, with and without the flip; default: all of
them). The features come from the cache (extracted once with ``layers=[-1,-2,-3,-4]``, as
``clothing_best`` does); for each candidate the script prints the ``logreg`` probe at several
``C``, ``linear_svm``, ``svm`` and the probe on L2-normalised rows, each with its CV score (mean
± standard error, :func:`featx.comparison.cv_fold_scores`), its seconds and its test accuracy
(test-time augmentation over the candidate's views).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import featx
from featx.comparison import (
    FeatureBank,
    cv_fold_scores,
    feature_choices,
    fit_views,
    predict_views,
)
from featx.heads import make_head

BACKBONES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
HEADS = [("logreg", {"C": 0.01}), ("logreg", {"C": 0.03}), ("logreg", {"C": 0.1}),
         ("logreg", {"C": 0.3}), ("linear_svm", {}), ("svm", {}),
         ("logreg", {"C": 0.1, "normalize": True})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/clothing-small")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("candidates", nargs="*")
    args = parser.parse_args()

    splits = featx.ImageDataset.from_directory(args.data)
    choices = feature_choices(BACKBONES, taps=[[-1, -2], [-2, -3, -4]], views=["none", "flip"],
                              concat=True)
    wanted = [c for c in choices if c.name in args.candidates] or choices
    bank = FeatureBank.extract({"train": splits["train"], "test": splits["test"]}, wanted,
                               layers=[-1, -2, -3, -4], verbose=0)
    print("| candidate | head | CV (train) | CV s | test |")
    print("|---|---|---:|---:|---:|")
    for choice in wanted:
        train, test = bank.features(choice, "train"), bank.features(choice, "test")
        X = [np.asarray(f.features) for f in train]
        X_test = [np.asarray(f.features) for f in test]
        y, y_test = train[0].labels, test[0].labels
        for name, params in HEADS:
            params = dict(params)
            normalize = params.pop("normalize", None)

            kw = dict(n_samples=len(y), n_classes=len(train[0].class_names), random_state=0,
                      normalize=normalize, **params)
            start = time.perf_counter()
            scores = cv_fold_scores(make_head(name, **kw), X, y, folds=args.folds)
            seconds = time.perf_counter() - start
            fitted = fit_views(make_head(name, **kw), X, y)
            accuracy = float((predict_views(fitted, X_test) == y_test).mean())
            label = name + "".join(f" {k}={v}" for k, v in params.items()) \
                + (" normalize" if normalize else "")
            print(f"| {choice.name} | {label} | {scores.mean():.4f} ± "
                  f"{scores.std(ddof=1) / np.sqrt(len(scores)):.4f} | {seconds:.0f} | "
                  f"{accuracy:.4f} |", flush=True)


if __name__ == "__main__":
    main()
