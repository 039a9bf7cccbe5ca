"""``featx inspect DATA --out DIR``: duplicates, leaks, label errors and outliers of DATA, found
on its cached features (:func:`featx.audit.inspect`), written as ``findings.csv``, ``scores.csv``
and ``report.md``. The parser's part is :func:`add_parser`; nothing here imports Keras."""

from __future__ import annotations

import argparse
from pathlib import Path

from featx.cli.common import _fit_kwargs, _names, _print_table, _resolve, _verbose
from featx.trust.outputs import check_outputs

__all__ = ["add_parser", "cmd_inspect"]

_KINDS = "exact_duplicate, near_duplicate, leak, label_error, outlier, skipped"


def _similarity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a cosine similarity in (0, 1], got {text!r}")
    return value


def add_parser(sub, parents, count) -> argparse.ArgumentParser:
    """Add ``featx inspect`` to the sub-parsers ``sub`` (``parents``: common, data, backbone
    options; ``count``: the int >= 1 argument type)."""
    p = sub.add_parser("inspect", parents=parents,
                       help="find duplicates, train/test leaks, label errors and outliers",
                       description="Know your data before trusting a score: exact and near "
                                   "duplicates, test images with a training twin (leaks), "
                                   "likely label errors (out-of-fold probabilities of a head), "
                                   "outliers, skipped images and class health, all from the "
                                   "cached features. Writes DIR/findings.csv (one row per "
                                   "finding), DIR/scores.csv (one row per image) and "
                                   "DIR/report.md (galleries linked to the images). Your files "
                                   "are only read. See docs/inspect.md.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the findings to")
    p.add_argument("--head", default="logreg",
                   help="head whose out-of-fold probabilities rank label errors (default: "
                        "logreg)")
    p.add_argument("--folds", type=count, default=5, metavar="K",
                   help="folds of the out-of-fold probabilities (default: 5)")
    p.add_argument("--threshold", type=_similarity, default=None, metavar="COS",
                   help="cosine similarity of near-duplicates (default: calibrated on 48 of "
                        "your training images re-encoded; their backbone passes are cached)")
    p.add_argument("--gallery", type=count, default=24, metavar="N",
                   help="findings of each kind shown in report.md (default: 24; all are in "
                        "findings.csv)")
    p.add_argument("--clean-list", default=None, metavar="CSV",
                   help="also write a split list (path,label,split) without the flagged "
                        "copies, which featx reads as DATA; your files stay where they are")
    p.add_argument("--drop", default="exact_duplicate,near_duplicate,leak", metavar="KINDS",
                   help=f"kinds --clean-list leaves out, comma-separated ({_KINDS}; default: "
                        "exact_duplicate,near_duplicate,leak)")
    p.set_defaults(func=cmd_inspect)
    return p


def cmd_inspect(args) -> int:
    from featx.audit.write import FILES

    out = Path(args.out)
    targets = [out / name for name in FILES] + ([Path(args.clean_list)] if args.clean_list
                                                 else [])
    check_outputs(targets, param="--out")  # refused before the work, not after it
    drop = _names(args.drop)
    from featx.audit import KINDS

    unknown = [k for k in drop if k not in KINDS]
    if unknown:
        raise ValueError(f"--drop has unknown kind(s) {unknown}; allowed: {list(KINDS)}")
    splits = _resolve(args)
    from featx.audit import inspect

    kw = _fit_kwargs(args)
    found = inspect(splits, backbone=args.backbone, weights=kw.pop("weights"),
                    input_size=kw.pop("input_size"), cache=kw.pop("cache"), head=args.head,
                    folds=args.folds, threshold=args.threshold, seed=args.seed,
                    verbose=_verbose(args), extract_params=kw)
    found.source = args.data
    files = found.write(out, clean_list=args.clean_list, drop=drop, gallery=args.gallery)
    counts = found.counts()
    _print_table([{"kind": k, "findings": counts.get(k, 0)} for k in KINDS],
                 ["kind", "findings"])
    for split, n in found.summary()["leaked"].items():
        if n:
            print(f"warning: {n} {split} image(s) have a twin in train: their scores measure "
                  "memory, not generalisation")
    print(found.calibration.summary())
    print(f"report: {files['report.md']}")
    if args.clean_list:
        print(f"clean split list: {files['clean_list']}")
    return 0
