"""What the feature choice's probes cost, next to the extraction they choose from.

    FEATX_CACHE_DIR=/path/to/cache python benchmarks/select_cost.py \
        [--data ../shared/datasets/clothing-small] [--backbones efficientnet_lite0 ...] \
        [--taps "-1" "-1,-2" "-2,-3,-4"] [--views none flip] [--folds 3] [--dims 0 256] \
        [--jobs 0 1] [--pool]

Extracts (or reads from the cache) every backbone with the union of the taps and views, then,
for every candidate of :func:`featx.comparison.feature_choices` (each backbone alone and all of
them concatenated), times the cross-validated probe (:func:`featx.comparison.cv_fold_scores`)
with ``probe_dims`` each of ``--dims`` (0: the full width) and prints, per candidate, the CV score
and its seconds, then the probes' total seconds against the extraction's: a cold extraction's
seconds are measured; a warm cache gives them as forward seconds per image (measured here) x the
images x passes per image, which is what a cold run would pay for the forward alone. With
``--jobs 0 1`` each candidate is timed with the folds on one thread per core (0, the default of
``cv_fold_scores``) and on one thread (1), same scores, so the speed-up of fitting the folds side by
side is measured in the same run. ``--pool`` then times every (candidate, fold) fit in one thread
pool (:func:`featx.comparison.cv_fold_scores_many`, what a round of the selection does) against
the first ``--dims``/``--jobs`` setting's candidates one at a time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import featx
from featx.comparison import FeatureBank, cv_fold_scores, cv_fold_scores_many, feature_choices
from featx.heads import make_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/clothing-small")
    parser.add_argument("--backbones", nargs="+",
                        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    parser.add_argument("--taps", nargs="+", default=["-1", "-1,-2", "-2,-3,-4"])
    parser.add_argument("--views", nargs="+", default=["none", "flip"])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--dims", nargs="+", type=int, default=[0, 256])
    parser.add_argument("--probe", default="logreg")
    parser.add_argument("--jobs", nargs="+", type=int, default=[0],
                        help="fold threads to time (0: one per usable core, the default)")
    parser.add_argument("--pool", action="store_true",
                        help="also time every (candidate, fold) fit in one thread pool")
    args = parser.parse_args()

    splits = featx.ImageDataset.from_directory(args.data)
    taps = [[int(t) for t in s.split(",")] for s in args.taps]
    choices = feature_choices(args.backbones, taps=taps, views=args.views, concat=True)
    start = time.perf_counter()
    bank = FeatureBank.extract({"train": splits["train"]}, choices, measure=True,
                               layers=sorted({t for s in taps for t in s}, reverse=True))
    extract_s = time.perf_counter() - start
    n = len(splits["train"])
    cold = sum(bank.speed[(b, None)] * n * len(args.views) for b in args.backbones)
    print(f"extraction: {extract_s:.1f} s here ({sum(bank.passes.values())} passes); "
          f"forward alone on a cold cache: {cold:.1f} s ({n} images x {len(args.views)} views)")
    runs = [(dims, jobs) for jobs in args.jobs for dims in args.dims]
    totals = dict.fromkeys(runs, 0.0)
    print("| candidate | width | " + " | ".join(f"CV (dims {d or 'all'}, jobs {j or 'cores'}) | s"
                                              for d, j in runs) + " |")
    print("|---|---:|" + "---:|---:|" * len(runs))
    for choice in choices:
        views = [np.asarray(f.features) for f in bank.features(choice, "train")]
        y = bank.features(choice, "train")[0].labels
        cells = []
        for dims, jobs in runs:
            head = make_head(args.probe, n_samples=len(y), n_classes=int(y.max()) + 1,
                             random_state=0)
            t = time.perf_counter()
            scores = cv_fold_scores(head, views, y, folds=args.folds, probe_dims=dims or None,
                                    n_jobs=jobs or None)
            seconds = time.perf_counter() - t
            totals[(dims, jobs)] += seconds
            cells.append(f"{scores.mean():.4f} ± {scores.std(ddof=1) / np.sqrt(len(scores)):.4f}"
                         f" | {seconds:.1f}")
        print(f"| {choice.name} | {views[0].shape[1]} | " + " | ".join(cells) + " |")
    for (dims, jobs), seconds in totals.items():
        print(f"probes with dims {dims or 'all'}, fold threads {jobs or 'one per core'}: "
              f"{seconds:.1f} s = {100 * seconds / cold:.0f}% of the cold forward ({cold:.1f} s)")
    if args.pool:
        # what select_features does: every (candidate, fold) fit of a round in one pool
        y = bank.features(choices[0], "train")[0].labels
        heads = [(make_head(args.probe, n_samples=len(y), n_classes=int(y.max()) + 1,
                            random_state=0),
                  [np.asarray(f.features) for f in bank.features(c, "train")]) for c in choices]
        t = time.perf_counter()
        cv_fold_scores_many(heads, y, folds=args.folds)
        pooled = time.perf_counter() - t
        alone = totals[(args.dims[0], args.jobs[0])]
        print(f"one pool for every (candidate, fold): {pooled:.1f} s, against "
              f"{alone:.1f} s one candidate at a time (dims {args.dims[0] or 'all'}, fold "
              f"threads {args.jobs[0] or 'one per core'}): {alone / pooled:.2f}x")


if __name__ == "__main__":
    main()
