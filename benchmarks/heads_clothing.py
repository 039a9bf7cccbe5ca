"""Frozen-feature heads on clothing-small: every head, train -> test, EfficientNet-Lite0 features.

    python benchmarks/heads_clothing.py [--data ../shared/datasets/clothing-small] [--cv 3]

Extracts (or reuses from the cache) Lite0 features of train/ and test/, fits every head in the
table and prints the evaluate_heads table; then shows that fitting a TransferClassifier with another
head performs zero backbone forward passes.
"""

from __future__ import annotations

import argparse
import time

import featx
from featx.extract import forward_pass_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/datasets/clothing-small")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--cv", type=int, default=None, help="grid-search folds (default: none)")
    args = parser.parse_args()

    splits = featx.ImageDataset.from_directory(args.data)
    t0 = time.perf_counter()
    train = featx.extract_features(splits["train"], args.backbone)
    test = featx.extract_features(splits["test"], args.backbone)
    print(f"features: train {train.features.shape}, test {test.features.shape} "
          f"({time.perf_counter() - t0:.1f} s, {forward_pass_count()} backbone forward passes)")

    table = featx.evaluate_heads(train, test, cv=args.cv)
    print(table.to_markdown())

    before = forward_pass_count()
    for head in ("logreg", "svm"):
        clf = featx.TransferClassifier(args.backbone, head=head).fit(splits["train"])
        acc = clf.score(splits["test"], splits["test"].label_names)
        print(f"TransferClassifier(head={head!r}) test accuracy {acc:.4f}")
    print(f"backbone forward passes during those fits and scores: {forward_pass_count() - before}")


if __name__ == "__main__":
    main()
