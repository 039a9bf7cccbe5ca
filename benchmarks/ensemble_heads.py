"""Ensembles and imbalance options on cached features: each against the logreg probe.

    python benchmarks/ensemble_heads.py                                   # Lite0, clothing-small
    python benchmarks/ensemble_heads.py --backbones efficientnet_lite0 efficientnet_lite1

Extracts (or reuses from the cache) each backbone's features of train/ and test/ at its native
size, then fits, train -> test: ``logreg`` (the probe), ``soft_vote`` and ``stack`` (members
and weights chosen by cross-validation on the training split only), and ``logreg`` with
``imbalance="tune"``. With several backbones it also fits ``logreg`` on the concatenation and
``soft_vote`` with one ``logreg`` per backbone (``blocks=``: the ensemble across backbones).
Prints one Markdown table (accuracy, macro-F1, balanced accuracy, train seconds).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

import featx
from featx.evaluate import HeadTable, evaluate_heads
from featx.extract import forward_pass_count

COLUMNS = ["name", "accuracy", "macro_f1", "balanced_accuracy", "train_seconds", "cv_score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/datasets/clothing-small")
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--cache", default=None, help="feature cache (default: featx's)")
    args = parser.parse_args()

    splits = featx.ImageDataset.from_directory(args.data)
    t0, passes = time.perf_counter(), forward_pass_count()
    feats = {b: [featx.extract_features(splits[s], b, cache=args.cache) for s in ("train", "test")]
             for b in args.backbones}
    print(f"features of {len(args.backbones)} backbone(s): {time.perf_counter() - t0:.0f} s, "
          f"{forward_pass_count() - passes} backbone forward passes")

    rows = HeadTable()
    for b, (train, test) in feats.items():
        heads = {"logreg": "logreg", "soft_vote": "soft_vote", "stack": "stack"}
        table = evaluate_heads(train, test, heads=heads)
        tuned = evaluate_heads(train, test, heads={"logreg+tune": "logreg"},
                               head_options={"imbalance": "tune"})
        for row in [*table, *tuned]:
            rows.append({**row, "name": f"{b}/{row['name']}"})
    if len(feats) > 1:
        parts = list(feats.values())
        train = SimpleNamespace(features=np.hstack([p[0].features for p in parts]),
                                labels=parts[0][0].labels, class_names=parts[0][0].class_names)
        test = SimpleNamespace(features=np.hstack([p[1].features for p in parts]),
                               labels=parts[0][1].labels, class_names=parts[0][1].class_names)
        widths = [p[0].features.shape[1] for p in parts]
        heads = {"concat/logreg": "logreg",
                 "vote-backbones/logreg": ("soft_vote", {"heads": ("logreg",), "blocks": widths})}
        for row in evaluate_heads(train, test, heads=heads):
            rows.append(row)
    print(rows.to_markdown(columns=COLUMNS))


if __name__ == "__main__":
    main()
