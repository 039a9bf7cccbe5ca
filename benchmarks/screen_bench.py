"""A looser solver tolerance for halving's early rounds, measured: faster, but does it rank the
candidates as the probe's own fits do?

    FEATX_CACHE_DIR=/path/to/cache python benchmarks/screen_bench.py \
        [--data ../shared/datasets/clothing-small] [--backbones ...] [--views none flip] \
        [--taps="-1,-2;-1,-2,-3,-4"] [--concat subsets] [--norms none sqrt] [--budget 2] \
        [--round 0] [--folds 5] [--tol 1e-3]

Takes the candidates of a feature choice (default: those of ``pipelines/clothing_budget.toml``,
each backbone and every pair x taps [-1,-2] / [-1..-4] x norms none / sqrt; ``--views none flip
--concat only --taps="-1;-1,-2" --norms none --folds 3`` gives ``clothing_best``'s), extracts (or
reads from the cache) the rows of successive halving's round ``--round``
(:func:`featx.comparison.halving_subsets`; 0: the first, a quarter of train), and
cross-validates every candidate twice in the same run: with the logistic-regression probe as it
is (``tol=1e-4``) and with ``--tol``. Prints both scores and their difference per candidate, both
totals in seconds and their ratio, the top candidate of each, the Spearman correlation of the
two rankings, and which candidates each keeps (the better half, as halving does).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import spearmanr

import featx
from featx.comparison import FeatureBank, cv_fold_scores, feature_choices, halving_subsets
from featx.heads import make_head, norm_options


def candidate_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments that name a feature choice's candidates (``clothing_budget``'s by
    default), as :func:`candidates` reads them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default="../shared/datasets/clothing-small")
    parser.add_argument("--backbones", nargs="+",
                        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    parser.add_argument("--taps", default="-1,-2;-1,-2,-3,-4",
                        help="tap sets, ';' between sets (a leading '-' needs --taps=...)")
    parser.add_argument("--views", nargs="+", default=["none"])
    parser.add_argument("--concat", default="subsets")
    parser.add_argument("--norms", nargs="+", default=["none", "sqrt"])
    parser.add_argument("--budget", type=int, default=2, help="passes per image (0: none)")
    return parser


def candidates(args: argparse.Namespace) -> tuple:
    """The training split of ``args.data`` and the candidates ``args`` name."""
    train = featx.ImageDataset.from_directory(args.data)["train"]
    concat = {"true": True, "false": False}.get(args.concat, args.concat)
    taps = [[int(t) for t in s.split(",")] for s in args.taps.split(";")]
    return train, [c for c in feature_choices(args.backbones, taps=taps, views=args.views,
                                              concat=concat, norms=args.norms)
                   if not args.budget or c.passes_per_image <= args.budget]


def main() -> None:
    parser = candidate_arguments(__doc__.splitlines()[0])
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args()
    train, choices = candidates(args)
    rows = halving_subsets(train.labels, args.folds)[args.round]
    bank = FeatureBank.extract({"train": train.subset(rows)}, choices, layers=[-1, -2, -3, -4],
                               verbose=0)
    print(f"{len(choices)} candidates, {len(rows)} of {len(train)} training images, "
          f"{args.folds}-fold CV of the logreg probe, its tol against tol={args.tol:g}")
    scores: dict[str, list[float]] = {"own": [], "loose": []}
    seconds = dict.fromkeys(scores, 0.0)
    print("| candidate | CV (probe) | CV (loose tol) | difference |\n|---|---:|---:|---:|")
    for choice in choices:
        views = [np.asarray(f.features) for f in bank.features(choice, "train")]
        y = bank.features(choice, "train")[0].labels
        for kind, params in (("own", {}), ("loose", {"tol": args.tol})):
            head = make_head("logreg", random_state=0, n_samples=len(y),
                             n_classes=int(y.max()) + 1, **norm_options(choice.norm), **params)
            start = time.perf_counter()
            scores[kind].append(float(np.mean(cv_fold_scores(head, views, y, folds=args.folds))))
            seconds[kind] += time.perf_counter() - start
        print(f"| {choice.name} | {scores['own'][-1]:.4f} | {scores['loose'][-1]:.4f} | "
              f"{scores['loose'][-1] - scores['own'][-1]:+.4f} |")
    half = (len(choices) + 1) // 2
    kept = {kind: {choices[i].name for i in np.argsort(s)[::-1][:half]}
            for kind, s in scores.items()}
    for kind in scores:
        top = int(np.argmax(scores[kind]))
        print(f"{kind}: {seconds[kind]:.1f} s; top {choices[top].name} ({scores[kind][top]:.4f})")
    diff = np.subtract(scores["loose"], scores["own"])
    print(f"loose / own seconds: {seconds['loose'] / seconds['own']:.2f} "
          f"({seconds['own'] / seconds['loose']:.1f}x faster); Spearman of the rankings "
          f"{spearmanr(scores['own'], scores['loose']).statistic:.3f}; score difference "
          f"mean {diff.mean():+.4f}, largest {np.abs(diff).max():.4f}")
    print(f"the better half ({half}) the probe keeps and the loose tolerance drops: "
          f"{sorted(kept['own'] - kept['loose']) or 'none'}")


if __name__ == "__main__":
    main()
