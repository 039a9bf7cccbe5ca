"""Screening fits against full fits: do halving's early rounds rank the candidates as the head's
own fits would, and at what cost?

    FEATX_CACHE_DIR=/path/to/cache python benchmarks/screen_bench.py \
        [--data ../shared/datasets/clothing-small] [--backbones ...] \
        [--round 0] [--folds 5] [--probe logreg]

Takes the candidates of a budget-style search (each backbone and every pair x taps [-1,-2] /
[-1..-4] x norms none / sqrt, as ``pipelines/clothing_budget.toml``), extracts (or reads from the
cache) the training split, and cross-validates every candidate on the rows of successive
halving's round ``--round`` (:func:`featx.comparison.halving_subsets`; 0: the first, a quarter of
train) twice, in the same run: with the probe's own parameters and with its screening parameters
(:attr:`featx.heads.HeadSpec.screen`). Prints both scores per candidate, both totals in seconds
and their ratio, the top candidate of each, and the Spearman correlation of the two rankings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

import featx
from featx.comparison import FeatureBank, cv_fold_scores, feature_choices, halving_subsets
from featx.heads import get_head_spec, make_head, norm_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/clothing-small")
    parser.add_argument("--backbones", nargs="+",
                        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--probe", default="logreg")
    args = parser.parse_args()

    train = featx.ImageDataset.from_directory(args.data)["train"]
    choices = [c for c in feature_choices(args.backbones, taps=[[-1, -2], [-1, -2, -3, -4]],
                                          concat="subsets", norms=["none", "sqrt"])
               if c.passes_per_image <= 2]
    rows = halving_subsets(train.labels, args.folds)[args.round]
    bank = FeatureBank.extract({"train": train.subset(rows)}, choices, layers=[-1, -2, -3, -4],
                               verbose=0)
    screen = dict(get_head_spec(args.probe).screen)
    print(f"{len(choices)} candidates, {len(rows)} of {len(train)} training images, "
          f"{args.folds}-fold CV of {args.probe!r}; screening parameters {screen}")
    scores: dict[str, list[float]] = {"own": [], "screen": []}
    seconds = dict.fromkeys(scores, 0.0)
    print(f"| candidate | CV ({args.probe}) | CV (screening) |\n|---|---:|---:|")
    for choice in choices:
        views = [np.asarray(f.features) for f in bank.features(choice, "train")]
        y = bank.features(choice, "train")[0].labels
        for kind, params in (("own", {}), ("screen", screen)):
            head = make_head(args.probe, random_state=0, **norm_options(choice.norm), **params)
            start = time.perf_counter()
            scores[kind].append(float(np.mean(cv_fold_scores(head, views, y, folds=args.folds))))
            seconds[kind] += time.perf_counter() - start
        print(f"| {choice.name} | {scores['own'][-1]:.4f} | {scores['screen'][-1]:.4f} |")
    for kind in scores:
        top = int(np.argmax(scores[kind]))
        print(f"{kind}: {seconds[kind]:.1f} s; top {choices[top].name} ({scores[kind][top]:.4f})")
    diff = np.subtract(scores["screen"], scores["own"])
    print(f"screening / own seconds: {seconds['screen'] / seconds['own']:.2f} "
          f"({seconds['own'] / seconds['screen']:.1f}x faster); Spearman of the rankings "
          f"{spearmanr(scores['own'], scores['screen']).statistic:.3f}; score difference "
          f"mean {diff.mean():+.4f}, largest {np.abs(diff).max():.4f}")


if __name__ == "__main__":
    main()
