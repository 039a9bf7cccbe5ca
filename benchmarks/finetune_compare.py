"""Frozen heads vs fine-tuning on clothing-small, and what the warm start saves.

    python benchmarks/finetune_compare.py                # full size: 224 px, staged, 10 epochs
    python benchmarks/finetune_compare.py --small        # 2-core CPU: 160 px, top blocks, 4 epochs

Steps: split 10% of train off (stratified, seed 0) for early stopping; ``featx.compare`` fits the
frozen heads on cached features and fine-tunes (warm-started from the same features); then, for
the warm-start measurement, the head is trained from a random Dense (``warm_start=False``,
strategy ``frozen``) and we count the epochs and forward passes it needs to reach the validation
accuracy the warm start has before any epoch. Writes a JSON report and prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from featx import FineTunedClassifier, ImageDataset, compare

DATA = "/work/shared/datasets/clothing-small"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--small", action="store_true",
                   help="CPU-sized run: 160 px, blocks block6+block7+top, 4 epochs")
    p.add_argument("--input-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--strategy")
    p.add_argument("--blocks", nargs="*")
    p.add_argument("--subset", type=int, help="use at most this many training images")
    p.add_argument("--heads", nargs="*", default=["logreg", "svm", "knn"])
    p.add_argument("--probe-epochs", type=int, default=3,
                   help="epochs of head training from scratch for the warm-start measurement "
                        "(0 skips it)")
    p.add_argument("--cache", default="/tmp/featx-bench-cache")
    p.add_argument("--out", default="reports/finetune_compare.json")
    args = p.parse_args()
    small = dict(input_size=160, epochs=4, strategy="blocks", blocks=["block6", "block7", "top"])
    full = dict(input_size=224, epochs=10, strategy="staged", blocks=None)
    for k, v in (small if args.small else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def main():
    args = parse_args()
    splits = ImageDataset.from_directory(args.data)
    train, test = splits["train"], splits["test"]
    if args.subset and args.subset < len(train):
        train, _ = train.split(test_size=1 - args.subset / len(train), random_state=0)
    train, val = train.split(test_size=0.1, random_state=0)
    print(f"train {len(train)}  validation {len(val)}  test {len(test)}  "
          f"input {args.input_size}px", flush=True)
    common = dict(epochs=args.epochs, patience=2, random_state=0, verbose=2)
    params = dict(common)
    if args.strategy == "blocks" and args.blocks:
        params["strategy_params"] = {"blocks": args.blocks}
    t0 = time.perf_counter()
    table = compare(train, test, validation=val, backbone="efficientnet_lite0",
                    input_size=args.input_size, heads=args.heads, finetune=(args.strategy,),
                    finetune_params=params, cache=args.cache)
    print(table.to_markdown(columns=["name", "kind", "accuracy", "macro_f1", "balanced_accuracy",
                                     "train_seconds", "backbone_forward_passes"]), flush=True)
    ft = table[f"finetune:{args.strategy}"]
    report = {"args": vars(args), "table": table.to_dict(), "compare_seconds":
              time.perf_counter() - t0, "history": ft["estimator"].history_}
    if args.probe_epochs:
        report["warm_start"] = measure_warm_start(train, val, ft, args)
        print(json.dumps(report["warm_start"], indent=2), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=repr))
    print(f"wrote {out}")


def measure_warm_start(train, val, ft_row, args) -> dict:
    """Epochs/forward passes for a randomly initialised head to match the warm start."""
    warm = ft_row["estimator"].history_[0]
    target = warm["val_accuracy"][0]
    t0 = time.perf_counter()
    cold = FineTunedClassifier("efficientnet_lite0", input_size=args.input_size,
                               strategy="frozen", warm_start=False, epochs=args.probe_epochs,
                               validation_data=val, early_stopping=False, random_state=0,
                               verbose=2).fit(train)
    head = cold.history_[0]  # frozen + warm_start=False: one head-only phase from a random Dense
    reached = [i + 1 for i, a in enumerate(head["val_accuracy"]) if a >= target]
    per_epoch = len(train) + len(val)
    return {
        "warm_start_val_accuracy": target,
        "warm_start_forward_passes": warm["forward_passes"],
        "cold_val_accuracy_per_epoch": head["val_accuracy"],
        "cold_epochs_to_match": reached[0] if reached else None,
        "cold_forward_passes_to_match": reached[0] * per_epoch if reached else None,
        "cold_forward_passes_run": head["forward_passes"],
        "cold_seconds": time.perf_counter() - t0,
        "note": "warm start: logreg on cached features, 0 training epochs (its forward passes "
                "are the validation check); cold: head trained from a random Dense",
        "reached": bool(reached),
        "best_cold_val_accuracy": float(np.max(head["val_accuracy"])),
    }


if __name__ == "__main__":
    main()
