"""The ``featx`` command: parse the arguments, call the library, print the result.

Every command is a thin wrapper; the work happens in featx's modules, imported inside the command so
``featx --version`` and ``featx --help`` return at once without starting Keras. Errors print one
line (``featx: error: ...``) and exit non-zero; ``--debug`` shows the traceback instead.

DATA, wherever a command takes it, is a class-folder directory (with or without
``train/``, ``validation/``, ``test/``), a CSV (``path,label[,split]``) or a built-in name
(``clothing-mini``; ``fashion-mnist`` when installed); see :func:`featx._resolve.resolve_data`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from featx._version import __version__

__all__ = ["build_parser", "main"]

_EXIT_ERROR, _EXIT_USAGE, _EXIT_INTERRUPT = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors in featx's format."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(_EXIT_USAGE, f"featx: error: {message} (see `{self.prog} --help`)\n")


class CommandError(Exception):
    """A command cannot do what was asked; the message is shown as is."""


# --------------------------------------------------------------------------- argument helpers
def _size(text: str):
    """``"224"`` -> 224, ``"160x200"`` -> (160, 200)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int or HxW, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int or HxW, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _weights(value: str | None):
    return None if value is None or value.lower() in ("none", "random") else value


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print only results (no progress)")
    return p


def _data_args() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("data", metavar="DATA",
                   help="class-folder directory (with or without train/validation/test), "
                        "CSV (path,label[,split]) or built-in name (clothing-mini, fashion-mnist)")
    g = p.add_argument_group("data")
    g.add_argument("--limit", type=int, default=None, metavar="N",
                   help="at most N images per class in every split (quick runs)")
    g.add_argument("--test-size", type=float, default=0.2, metavar="F",
                   help="test fraction when DATA has no test split (default: 0.2)")
    g.add_argument("--val-size", type=float, default=None, metavar="F",
                   help="validation fraction when DATA has none (default: none)")
    g.add_argument("--seed", type=int, default=0, help="seed of splits and training (default: 0)")
    return p


def _backbone_args(default_backbone: str = "efficientnet_lite0") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("backbone")
    g.add_argument("--backbone", default=default_backbone,
                   help=f"backbone name, see `featx backbones` (default: {default_backbone})")
    g.add_argument("--weights", default="imagenet",
                   help="'imagenet' (default), 'none' (random init, for tests) or a weights file")
    g.add_argument("--input-size", type=_size, default=None, metavar="S",
                   help="input size, S or HxW (default: the backbone's own)")
    g.add_argument("--pooling", choices=("avg", "max"), default="avg",
                   help="global pooling (default: avg)")
    g.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="images per forward pass (default: 32)")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help="feature-cache folder (default: $FEATX_CACHE_DIR or ./cache)")
    return p


def _finetune_args(p: argparse.ArgumentParser, *, compare: bool = False) -> None:
    g = p.add_argument_group("fine-tuning")
    if not compare:
        g.add_argument("--strategy", default="blocks",
                       help="unfreeze strategy: frozen, full, last_n, blocks, staged "
                            "(default: blocks)")
    g.add_argument("--epochs", type=int, default=3, help="epochs per phase (default: 3)")
    g.add_argument("--learning-rate", type=float, default=None, metavar="LR",
                   help="learning rate of every phase (default: the strategy's)")
    g.add_argument("--ft-batch-size", type=int, default=32, metavar="N",
                   help="fine-tuning batch size (default: 32)")
    if not compare:
        g.add_argument("--ft-input-size", type=_size, default=None, metavar="S",
                       help="fine-tuning input size, S or HxW (default: --input-size)")
    g.add_argument("--no-warm-start", action="store_true",
                   help="train the head for --epochs first instead of fitting it on features")
    g.add_argument("--no-augment", action="store_true", help="no training augmentation")
    g.add_argument("--validation-split", type=float, default=0.1, metavar="F",
                   help="held-out fraction for early stopping without a validation split "
                        "(default: 0.1)")


def _verbose(args) -> int:
    return 0 if getattr(args, "quiet", False) else 1


def _resolve(args) -> dict:
    """DATA -> splits (cheap: no Keras), then Keras imported quietly for the work to come."""
    from featx._resolve import resolve_data

    splits = resolve_data(args.data, test_size=args.test_size, val_size=args.val_size,
                          limit=args.limit, seed=args.seed)
    _keras(args)
    return splits


def _say(args, text: str = "") -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _print_table(rows: Sequence[dict], columns: Sequence[str], headers: Sequence[str] | None
                 = None) -> None:
    headers = list(headers or columns)
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, tuple | list):
        ints = all(isinstance(x, int) and not isinstance(x, bool) for x in v)
        return ("x" if ints and len(v) == 2 else ", ").join(map(str, v))
    return str(v)


def _fit_kwargs(args) -> dict:
    return dict(weights=_weights(args.weights), input_size=args.input_size,
                pooling=args.pooling, cache=args.cache, batch_size=args.batch_size)


# --------------------------------------------------------------------------- commands
def cmd_backbones(args) -> int:
    _keras(args)
    from featx.backbones import describe

    rows = describe(args.pattern)
    if not rows:
        raise CommandError(f"no backbone matches pattern={args.pattern!r}; try `featx backbones`")
    _print_table(rows, ["name", "input_size", "feature_dim", "weights_source", "offline"],
                 ["name", "input size", "feature dim", "weights source", "offline"])
    return 0


def cmd_extract(args) -> int:
    splits = _resolve(args)
    from featx.extract import extract_features

    rows = []
    for split, ds in splits.items():
        fs = extract_features(ds, args.backbone, verbose=_verbose(args), **_fit_kwargs(args))
        rows.append({"split": split, "images": len(fs), "dim": fs.features.shape[1],
                     "skipped": len(fs.skipped), "file": str(fs.path or "(in memory)")})
    _print_table(rows, ["split", "images", "dim", "skipped", "file"])
    return 0


def cmd_fit(args) -> int:
    splits = _resolve(args)
    import featx
    from featx.estimators import TransferClassifier

    clf = TransferClassifier(args.backbone, head=args.head, cv=args.cv or None,
                             verbose=_verbose(args), **_fit_kwargs(args))
    clf.fit(splits["train"])
    test = splits["test"]
    acc = clf.score(test, test.label_names)
    path = featx.save(clf, args.out)
    print(f"{args.backbone} + {args.head}: test accuracy {acc:.4f} on {len(test)} images")
    print(f"model: {path}")
    return 0


_PROBA_COLUMN = "probability"


def _collect_images(items: Sequence[str]) -> list[str]:
    from featx.data import IMAGE_EXTENSIONS

    paths: list[str] = []
    for item in items:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                paths += [os.path.join(root, f) for f in sorted(files)
                          if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"IMAGES_OR_FOLDER {item!r} does not exist")
    if not paths:
        raise CommandError(f"no image files found in {list(items)} (extensions: "
                           f"{', '.join(IMAGE_EXTENSIONS)})")
    return paths


def cmd_predict(args) -> int:
    import csv

    import numpy as np

    import featx

    if not os.path.exists(args.model):
        raise FileNotFoundError(f"MODEL {args.model!r} does not exist; make one with "
                                "`featx fit DATA --head logreg --out model.featx`")
    _keras(args)
    import featx.backbones  # noqa: F401  (registers featx's Keras layers for fine-tuned models)
    from featx.persist import UntrustedModelError

    try:
        model = featx.load(args.model, trust=args.trust)
    except UntrustedModelError as exc:
        raise CommandError(f"{exc} From the command line: add --trust.") from None
    paths = _collect_images(args.images)
    labels = model.predict(paths)
    proba = None
    if hasattr(model, "predict_proba"):
        try:
            proba = np.max(np.asarray(model.predict_proba(paths)), axis=1)
        except (AttributeError, NotImplementedError):
            proba = None
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        w = csv.writer(out)
        w.writerow(["path", "label"] + ([_PROBA_COLUMN] if proba is not None else []))
        for i, (p, y) in enumerate(zip(paths, labels, strict=True)):
            w.writerow([p, y] + ([f"{proba[i]:.6f}"] if proba is not None else []))
    finally:
        if args.out:
            out.close()
    if args.out:
        _say(args, f"{len(paths)} predictions written to {args.out}")
    return 0


def _ft_params(args, strategy: str) -> dict:
    return dict(strategy=strategy, epochs=args.epochs, learning_rate=args.learning_rate,
                batch_size=args.ft_batch_size, warm_start=not args.no_warm_start,
                augment=None if args.no_augment else "default",
                validation_split=args.validation_split, random_state=args.seed)


def _ft_size(args):
    size = args.ft_input_size or args.input_size
    return (size, size) if isinstance(size, int) else size


def cmd_finetune(args) -> int:
    splits = _resolve(args)
    import featx
    from featx.finetune import FineTunedClassifier

    clf = FineTunedClassifier(args.backbone, weights=_weights(args.weights),
                              input_size=_ft_size(args),
                              validation_data=splits.get("validation"),
                              verbose=0, **_ft_params(args, args.strategy))
    _say(args, f"fine-tuning {args.backbone} ({args.strategy}) on {len(splits['train'])} images")
    clf.fit(splits["train"])
    rows = [{"phase": r.get("phase"), "epochs": r.get("epochs"),
             "loss": (r.get("loss") or [None])[-1], "val_loss": (r.get("val_loss") or [None])[-1],
             "val_accuracy": (r.get("val_accuracy") or [None])[-1]} for r in clf.history_]
    _print_table(rows, ["phase", "epochs", "loss", "val_loss", "val_accuracy"])
    test = splits["test"]
    acc = clf.score(test.paths, test.label_names)
    print(f"{args.backbone} fine-tuned ({args.strategy}): test accuracy {acc:.4f} on "
          f"{len(test)} images")
    if args.out:
        print(f"model: {featx.save(clf, args.out)}")
    return 0


def cmd_compare(args) -> int:
    splits = _resolve(args)
    from featx.compare import compare

    strategies = _names(args.finetune) if args.finetune else []
    params = None
    if strategies:
        params = {k: v for k, v in _ft_params(args, "").items() if k != "strategy"}
    size = args.input_size  # compare extracts and fine-tunes at one size
    table = compare(splits["train"], splits["test"], validation=splits.get("validation"),
                    backbone=args.backbone, weights=_weights(args.weights),
                    heads=_names(args.heads), finetune=strategies, finetune_params=params,
                    cache=args.cache, input_size=(size, size) if isinstance(size, int) else size)
    print(table.to_markdown(["name", "kind", "accuracy", "macro_f1", "balanced_accuracy",
                             "train_seconds", "backbone_forward_passes"]))
    try:
        best = table.best()
        print(f"\nbest: {best['name']} (test accuracy {best['accuracy']:.4f})")
    except ValueError:
        pass
    if args.out:
        if args.out.endswith(".md"):
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(table.to_markdown() + "\n")
        else:
            table.to_json(args.out)
        _say(args, f"table written to {args.out}")
    return 0


def cmd_run(args) -> int:
    from featx.pipeline import load_config, run_pipeline

    if not os.path.isfile(args.pipeline):
        load_config(args.pipeline)  # raises the error naming the file and close matches
    _keras(args)
    run_pipeline(args.pipeline, overrides=args.set or (), out=args.out,
                 verbose=_verbose(args), echo=print)
    return 0


def cmd_cache(args) -> int:
    from featx import cache

    if args.action == "ls":
        rows = cache.cache_ls(args.cache_dir)
        if not rows:
            print(f"(no cache files in {cache.resolve_root(args.cache_dir)})")
            return 0
        for r in rows:
            r["rows"] = r.get("n_rows")
            r["size"] = f"{(r.get('bytes') or 0) / 1e6:.2f} MB"
            r["name"] = os.path.basename(r["path"])
        _print_table(rows, ["kind", "name", "backbone", "input_size", "rows", "size"])
        return 0
    if not args.target:
        raise CommandError(f"`featx cache {args.action}` needs a PATH (see `featx cache ls`)")
    if args.action == "info":
        for k, v in cache.cache_info(_cache_path(args)).items():
            print(f"{k}: {_cell(v)}")
        return 0
    if args.action == "verify":
        _keras(args)
        report = cache.cache_verify(_cache_path(args), n=args.n)
        print(f"{'ok' if report else 'FAILED'}: {report.n_checked} rows checked, max abs diff "
              f"{report.max_abs_diff:.3g}")
        for path, why in report.failures + report.unverifiable:
            print(f"  {path}: {why}")
        return 0 if report else _EXIT_ERROR
    removed = cache.cache_rm(args.target, args.cache_dir)
    if not removed:
        raise CommandError(f"nothing in the cache matches {args.target!r} (see `featx cache ls`)")
    for p in removed:
        print(f"removed {p}")
    return 0


def _cache_path(args) -> str:
    from featx.cache import resolve_root

    if os.path.exists(args.target):
        return args.target
    alt = resolve_root(args.cache_dir) / args.target
    if alt.exists():
        return str(alt)
    raise FileNotFoundError(f"cache file {args.target!r} does not exist (also looked in "
                            f"{str(alt.parent)!r}); see `featx cache ls`")


def cmd_advise(args) -> int:
    splits = _resolve(args)
    from featx.advise import advise

    advice = advise(splits, backbone=args.backbone, weights=_weights(args.weights),
                    input_size=args.input_size, cache=args.cache, seed=args.seed,
                    probe_per_class=args.probe_per_class, verbose=_verbose(args))
    advice.command = advice.command.replace("DATA", args.data)
    if args.json:
        import json

        print(json.dumps(advice.to_dict(), indent=2))
    else:
        print(advice)
    return 0


def cmd_show_augment(args) -> int:
    import numpy as np

    from featx._image import read_image
    from featx.report import plot_augmentation

    train = _resolve(args)["train"]
    picks = []
    for k in range(len(train.class_names)):  # one image per class, first classes first
        idx = np.flatnonzero(train.labels == k)
        if len(idx):
            picks.append(int(idx[0]))
    picks = picks[: args.images]
    size = args.size if isinstance(args.size, tuple) else (args.size, args.size)
    images = np.stack([read_image(train.paths[i], size=size) for i in picks])
    path = plot_augmentation(images, args.out, n_variants=args.variants, seed=args.seed,
                             augment="default",
                             titles=[train.class_names[train.labels[i]] for i in picks])
    print(f"augmentation preview: {path}")
    return 0


# --------------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    """The ``featx`` argument parser (one sub-parser per command)."""
    common = _common()
    parser = _Parser(
        prog="featx", parents=[common],
        description="Transfer learning the cheap way: a frozen ImageNet CNN runs once per image, "
                    "features are cached in HDF5, scikit-learn heads fit in seconds; optional "
                    "fine-tuning compared side by side.",
        epilog="DATA is a class-folder directory, a CSV or a built-in name (clothing-mini). "
               "Run `featx COMMAND --help` for a command's options; docs/cli.md has them all.")
    parser.add_argument("--version", action="version", version=f"featx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    data, backbone = _data_args(), _backbone_args()

    p = sub.add_parser("backbones", parents=[common], help="list the registered backbones",
                       description="The backbone registry: name, native input size, pooled "
                                   "feature size, where the weights come from, offline or not.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'efficient*'")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("extract", parents=[common, data, backbone],
                       help="extract (and cache) backbone features of DATA",
                       description="Extract features of every split of DATA into the HDF5 "
                                   "cache; a second call with the same settings is instant.")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("fit", parents=[common, data, backbone],
                       help="fit a head on cached features and save the model",
                       description="Fit a TransferClassifier (frozen backbone + scikit-learn "
                                   "head) on the train split, score it on the test split, and "
                                   "save it with featx.save.")
    p.add_argument("--head", default="logreg",
                   help="head name: logreg, linear_svm, svm, rf, mlp, knn (default: logreg)")
    p.add_argument("--cv", type=int, default=0, metavar="K",
                   help="grid-search the head's parameters with K folds (default: no search)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.featx)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", parents=[common], help="predict images with a saved model",
                       description="Predict the label of each image (files or folders, "
                                   "searched recursively) with a model saved by `featx fit` or "
                                   "`featx finetune`; CSV columns: path, label, probability "
                                   "(when the model has predict_proba).")
    p.add_argument("model", metavar="MODEL", help="a model file written by featx")
    p.add_argument("images", metavar="IMAGES_OR_FOLDER", nargs="+",
                   help="image files and/or folders")
    p.add_argument("--out", metavar="CSV", default=None, help="write the CSV here (default: "
                                                              "stdout)")
    p.add_argument("--trust", action="store_true",
                   help="load a model holding types featx does not trust by default (only for "
                        "files from a trusted source)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("finetune", parents=[common, data, backbone],
                       help="fine-tune the backbone on DATA",
                       description="Fine-tune the backbone end to end with an unfreeze "
                                   "strategy; prints the per-phase history and the test "
                                   "accuracy, and saves the model with --out.")
    _finetune_args(p)
    p.add_argument("--out", metavar="MODEL", default=None, help="model file to write (.featx)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("compare", parents=[common, data, backbone],
                       help="frozen heads and fine-tuning side by side",
                       description="Fit every head on the cached features and, with --finetune, "
                                   "fine-tune with each strategy; one table, test metrics.")
    p.add_argument("--heads", default="logreg,svm,rf,mlp,knn",
                   help="comma-separated heads (default: logreg,svm,rf,mlp,knn)")
    p.add_argument("--finetune", default="", metavar="STRATEGIES",
                   help="comma-separated fine-tuning strategies, e.g. blocks,staged "
                        "(default: none)")
    _finetune_args(p, compare=True)
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the table: .md (markdown) or .json")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("run", parents=[common], help="run a TOML pipeline and write a report",
                       description="Run a declarative pipeline (data -> extract -> heads -> "
                                   "fine-tune -> report); prints the comparison table and the "
                                   "report folder. Schema: docs/cli.md.")
    p.add_argument("pipeline", metavar="PIPELINE.toml", help="pipeline file, e.g. "
                                                             "pipelines/quickstart.toml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a value, e.g. --set data.limit=5 --set "
                        "'heads.names=[\"logreg\"]' (repeatable)")
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: "
                                                              "report.out)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("cache", parents=[common], help="list, inspect, verify or remove cache "
                                                       "files",
                       description="Maintain the feature cache: ls (list), info PATH, verify "
                                   "PATH (re-extract a few rows and compare), rm PATTERN.")
    p.add_argument("action", choices=("ls", "info", "verify", "rm"), help="what to do")
    p.add_argument("target", nargs="?", default=None, metavar="PATH_OR_PATTERN",
                   help="a cache file (info, verify) or a path/glob pattern (rm)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="cache folder (default: $FEATX_CACHE_DIR or ./cache)")
    p.add_argument("-n", type=int, default=8, help="rows to re-extract for verify (default: 8)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("advise", parents=[common, data, backbone],
                       help="measure DATA and recommend a strategy",
                       description="Measure the dataset (images per class; a linear probe and "
                                   "its learning curve on cached features) and recommend frozen "
                                   "features, fine-tuning, or something in between, with the "
                                   "numbers behind it.")
    p.add_argument("--probe-per-class", type=int, default=200, metavar="N",
                   help="train images per class used by the probe (default: 200)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("show-augment", parents=[common, data],
                       help="draw a grid of training images and augmented variants",
                       description="Preview the fine-tuning augmentation: one row per image "
                                   "(one per class), the original then augmented variants.")
    p.add_argument("--out", required=True, metavar="PNG", help="image file to write")
    p.add_argument("--images", type=int, default=4, metavar="N", help="rows (default: 4)")
    p.add_argument("--variants", type=int, default=5, metavar="N",
                   help="augmented variants per image (default: 5)")
    p.add_argument("--size", type=_size, default=160, metavar="S",
                   help="image size in the grid (default: 160)")
    p.set_defaults(func=cmd_show_augment)
    return parser


# --------------------------------------------------------------------------- entry point
_PLAIN = (ValueError, KeyError, LookupError, FileNotFoundError, ImportError, CommandError,
          NotADirectoryError, PermissionError)


def _one_line(exc: BaseException) -> str:
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    msg = " ".join(str(msg).split()) or type(exc).__name__
    if not isinstance(exc, _PLAIN):
        msg = f"{type(exc).__name__}: {msg} (run with --debug for the traceback)"
    return msg


def _warning_line(message, category, filename, lineno, file=None, line=None):
    print(f"featx: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _keras(args) -> None:
    """Import Keras (and its backend) with the C++ start-up chatter of TensorFlow sent to
    /dev/null: those lines are not featx's and would bury its one-line messages. Commands call
    this after their cheap checks, so a bad argument fails fast. Python-level errors surface
    later, when the command imports Keras itself. ``--debug`` leaves stderr alone."""
    if "keras" in sys.modules or getattr(args, "debug", False):
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        import keras  # noqa: F401
    except Exception:  # noqa: BLE001 - the command itself reports a broken install
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``featx`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed already
        return exc.code if isinstance(exc.code, int) else _EXIT_USAGE
    debug = getattr(args, "debug", False)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return _EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _warning_line
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("featx: interrupted", file=sys.stderr)
            return _EXIT_INTERRUPT
        except BrokenPipeError:  # e.g. `featx predict ... | head`
            return 0
        except Exception as exc:  # noqa: BLE001 - the command line shows one line, not a trace
            if debug:
                raise
            print(f"featx: error: {_one_line(exc)}", file=sys.stderr)
            return _EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
