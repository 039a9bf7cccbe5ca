"""The ``featx`` command: parse the arguments, call the library, print the result.

Every command is a thin wrapper; the work happens in featx's modules, imported inside the command so
``featx --version`` and ``featx --help`` return at once without starting Keras. Errors print one
line (``featx: error: ...``) and exit non-zero; ``--debug`` shows the traceback instead.

DATA, wherever a command takes it, is a class-folder directory (with or without
``train/``, ``validation/``, ``test/``), a CSV (``path,label[,split]``) or a built-in name
(``clothing-mini``; ``fashion-mnist`` when installed); see :func:`featx.sources.resolve_data`.

This module holds the parser and :func:`main`; the ``cmd_*`` commands live in
:mod:`featx.cli.commands` and their shared helpers in :mod:`featx.cli.common`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Sequence

from featx.backbones import POOLINGS
from featx.cli.cache_commands import cmd_cache
from featx.cli.commands import (
    cmd_advise,
    cmd_backbones,
    cmd_compare,
    cmd_export,
    cmd_extract,
    cmd_finetune,
    cmd_fit,
    cmd_init,
    cmd_pipelines,
    cmd_predict,
    cmd_run,
    cmd_show_augment,
)
from featx.cli.common import _EXIT_ERROR, _EXIT_INTERRUPT, _EXIT_USAGE
from featx.cli.inspect_command import add_parser as add_inspect_parser
from featx.deploy.formats import FORMATS
from featx.errors import CommandError, FeatxError
from featx.sources import DATA_FORMATS
from featx.utils.checks import close_matches
from featx.utils.config import config_context
from featx.utils.progress import keep_tensorflow_logs, quiet_tensorflow
from featx.utils.version import __version__

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors in featx's format."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(_EXIT_USAGE, f"featx: error: {message}{_choice_hint(message)} "
                               f"(see `{self.prog} --help`)\n")


def _choice_hint(message: str) -> str:
    """The close-match hint for argparse's "invalid choice" (a command or a ``choices=``
    option), as every other unknown name gets: ``" (did you mean 'extract'?)"``."""
    found = re.search(r"invalid choice: '?([^'\s]*)'? \(choose from (.*)\)", message)
    if not found:
        return ""
    quoted = re.findall(r"'([^']*)'", found.group(2))
    choices = quoted or [c.strip() for c in found.group(2).split(",")]
    return close_matches(found.group(1), choices)


# --------------------------------------------------------------------------- argument helpers
class _Names(Sequence):
    """The names of a featx table whose module is heavy (numpy, Pillow), read on first use: when
    argparse checks a value given for the option or draws the command's usage line. Building
    the parser (``featx --help``, ``featx backbones``) does not import the module."""

    def __init__(self, module: str, table: str) -> None:
        self.module, self.table, self._names = module, table, None

    def _read(self) -> tuple:
        if self._names is None:
            import importlib

            self._names = tuple(getattr(importlib.import_module(self.module), self.table))
        return self._names

    def __getitem__(self, i):
        return self._read()[i]

    def __len__(self) -> int:
        return len(self._read())

    def __iter__(self) -> Iterator:
        return iter(self._read())

    def __contains__(self, name) -> bool:
        return name in self._read()


_DECODERS = _Names("featx.images", "DECODERS")
_RUNTIMES = _Names("featx.extract.forward", "RUNTIME_CHOICES")


def _int_at_least(low: int, note: str = ""):
    """An argparse type: an int >= ``low`` (``note`` says what a special value means)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}{note}, got {text!r}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


_count = _int_at_least(1)


def _days(text: str) -> float:
    """``--older-than``: a number of days >= 0 (``1.5`` is a day and a half)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of days >= 0, got {text!r}")
    return value


def _folds(text: str) -> int:
    """``--cv``: 0 (no search) or 2 or more folds."""
    value = _int_at_least(0)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (no search) or at least 2 folds, got '1'")
    return value


def _size(text: str):
    """``"224"`` -> 224, ``"160x200"`` -> (160, 200)."""
    try:
        parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int or HxW, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int or HxW, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors, and TensorFlow's own log lines")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print only results (no progress)")
    return p


def _data_args() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("data", metavar="DATA",
                   help="class-folder directory (with or without train/validation/test), "
                        "CSV (path,label[,split]), TFRecord/Parquet/WebDataset shards, any of "
                        "them at an fsspec URL (s3://, https://, zip://...), or a built-in name "
                        "(clothing-mini, fashion-mnist)")
    g = p.add_argument_group("data")
    g.add_argument("--data-format", dest="data_format", choices=tuple(DATA_FORMATS),
                   default=None, help="how to read DATA when its suffix does not say")
    g.add_argument("--limit", type=_count, default=None, metavar="N",
                   help="at most N images per class in every split (quick runs)")
    g.add_argument("--test-size", type=float, default=0.2, metavar="F",
                   help="test fraction when DATA has no test split (default: 0.2)")
    g.add_argument("--val-size", type=float, default=None, metavar="F",
                   help="validation fraction when DATA has none (default: none)")
    g.add_argument("--seed", type=int, default=0, help="seed of splits and training (default: 0)")
    g.add_argument("--path-column", default="path", metavar="NAME",
                   help="a CSV's column of image paths (default: path)")
    g.add_argument("--label-column", default="label", metavar="NAME",
                   help="a CSV's column of class names (default: label)")
    g.add_argument("--allow-local", action="store_true",
                   help="let a list read from a URL (a CSV, a Parquet file's path cells) name "
                        "files on this machine (default: remote lists name remote images only)")
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
    g.add_argument("--pooling", choices=[p for p in POOLINGS if p is not None], default="avg",
                   help="global pooling (default: avg)")
    g.add_argument("--batch-size", type=_count, default=32, metavar="N",
                   help="images per batch (default: 32)")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help="feature-cache folder (default: $FEATX_CACHE_DIR, else a featx checkout's "
                        "./cache, else the per-user cache; `featx cache ls` says which)")
    g.add_argument("--decoder", choices=_DECODERS, default="pillow", metavar="DECODER",
                   help="image decoder: pillow (default) or opencv, about 2x faster per core "
                        "(pip install 'featx[opencv]')")
    _runtime_arg(g)
    return p


def _runtime_arg(g) -> None:
    g.add_argument("--runtime", choices=_RUNTIMES, default=None, metavar="RUNTIME",
                   help="what runs the frozen backbone: auto (default: $FEATX_RUNTIME, else ONNX "
                        "Runtime on a CPU, Keras on a GPU), onnxruntime or keras; features "
                        "agree within ~2e-6 and share the cache")


def _finetune_args(p: argparse.ArgumentParser, *, compare: bool = False) -> None:
    """The fine-tuning options. A default of None passes FineTunedClassifier's own on (one
    default, in one place); the help repeats it (tests/test_cli_vocabulary.py compares them).
    `featx finetune` trains at --input-size with --batch-size, as FineTunedClassifier's
    input_size and batch_size; `featx compare`, whose --input-size and --batch-size are the
    heads' extraction's, names the fine-tune's as [finetune] does: --finetune-input-size,
    --finetune-batch-size. The older --ft-* spellings still work."""
    g = p.add_argument_group("fine-tuning")
    if not compare:
        g.add_argument("--strategy", default="staged",
                       help="unfreeze strategy: frozen, full, last_n, blocks, staged "
                            "(default: staged, as FineTunedClassifier)")
    g.add_argument("--epochs", type=_count, default=None,
                   help="epochs per phase (default: 10, as FineTunedClassifier and pipelines; "
                        "early stopping ends a phase sooner; e.g. --epochs 3 for a quick run "
                        "on a CPU)")
    g.add_argument("--learning-rate", type=float, default=None, metavar="LR",
                   help="learning rate of every phase (default: the strategy's)")
    if compare:
        g.add_argument("--finetune-batch-size", dest="ft_batch_size", type=_count, default=None,
                       metavar="N", help="fine-tuning batch size (default: 32, as "
                                         "FineTunedClassifier's batch_size)")
        g.add_argument("--finetune-input-size", dest="ft_input_size", type=_size, default=None,
                       metavar="S", help="fine-tuning input size, S or HxW (default: "
                                         "--input-size)")
    # the older spellings, kept for scripts: in `featx finetune` they are --batch-size and
    # --input-size, in `featx compare` --finetune-batch-size and --finetune-input-size
    g.add_argument("--ft-batch-size", dest="ft_batch_size" if compare else "batch_size",
                   type=_count, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    g.add_argument("--ft-input-size", dest="ft_input_size" if compare else "input_size",
                   type=_size, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    g.add_argument("--no-warm-start", action="store_true",
                   help="train the head for --epochs first instead of fitting it on features")
    g.add_argument("--no-augment", action="store_true", help="no training augmentation")
    g.add_argument("--validation-split", type=float, default=None, metavar="F",
                   help="held-out fraction for early stopping without a validation split "
                        "(default: 0.1, as FineTunedClassifier)")


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
    p.add_argument("pattern", nargs="?", default="*",
                   help="a word found anywhere in the name (resnet) or a shell-style glob "
                        "('efficient*'); case is ignored (default: all)")
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
    p.add_argument("--cv", type=_folds, default=0, metavar="K",
                   help="grid-search the head's parameters with K folds (default: no search)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.featx)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", parents=[common], help="predict images with a saved model",
                       description="Predict the label of each image (files or folders, "
                                   "searched recursively) with a model saved by `featx fit` or "
                                   "`featx finetune`; CSV columns (LF line endings): path, "
                                   "label, then, with probabilities, probability (the top "
                                   "class's) and one proba_<class> column per class.")
    p.add_argument("model", metavar="MODEL", help="a model file written by featx")
    p.add_argument("images", metavar="IMAGES_OR_FOLDER", nargs="+",
                   help="image files and/or folders")
    p.add_argument("--out", metavar="CSV", default=None, help="write the CSV here (default: "
                                                              "stdout)")
    _runtime_arg(p)
    p.add_argument("--proba", action=argparse.BooleanOptionalAction, default=None,
                   help="write class probabilities: probability (top class) and proba_<class> "
                        "per class (default: on when the model has predict_proba; an error "
                        "with --proba when it has not, e.g. a `--head svm` model)")
    p.add_argument("--trust", action="store_true",
                   help="load a model holding types featx does not trust by default, and keep "
                        "the folders it names (only for files from a trusted source)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="feature-cache folder for the images' features (default: "
                        "$FEATX_CACHE_DIR, else a featx checkout's ./cache, else the per-user "
                        "cache; a model file's own folder is used only with --trust)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", parents=[common], help="write a saved model as one ONNX, "
                       "LiteRT, Keras or SavedModel file",
                       description="Write a model saved by `featx fit` or `featx finetune` as "
                                   "one graph that runs without featx: uint8 RGB images "
                                   "(N, H, W, 3), resized by the caller to the model's input "
                                   "size, in; class probabilities (ONNX: and labels) out. A "
                                   "frozen-feature model with a non-linear head (svm, rf, mlp, "
                                   "knn, soft_vote, stack) exports to onnx only. See "
                                   "docs/export.md.")
    p.add_argument("model", metavar="MODEL", help="a model file written by featx")
    p.add_argument("--format", default="onnx", choices=list(FORMATS),
                   help="onnx (onnxruntime), litert (.tflite; pip install 'featx[litert]'), "
                        "keras (.keras) or saved_model (a folder) (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="file to write (a folder for saved_model); replaced if it exists")
    p.add_argument("--trust", action="store_true",
                   help="load a model holding types featx does not trust by default (only for "
                        "files from a trusted source)")
    p.set_defaults(func=cmd_export)

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
    p.add_argument("--heads", default=None,
                   help="comma-separated heads (default: every head but the ensembles, "
                        "featx.list_heads(default_only=True))")
    p.add_argument("--finetune", default="", metavar="STRATEGIES",
                   help="comma-separated fine-tuning strategies, e.g. blocks,staged "
                        "(default: none, heads only, as featx.compare)")
    _finetune_args(p, compare=True)
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the table: .md (markdown) or .json")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("run", parents=[common], help="run a TOML pipeline and write a report",
                       description="Run a declarative pipeline (data -> extract -> heads -> "
                                   "fine-tune -> report); prints the comparison table and the "
                                   "report folder. Schema: docs/cli.md.")
    p.add_argument("pipeline", metavar="PIPELINE",
                   help="a pipeline file (e.g. my.toml, pipelines/quickstart.toml) or a "
                        "built-in pipeline's name (e.g. quickstart; `featx pipelines` lists "
                        "them)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a value, e.g. --set data.limit=5 --set "
                        "'heads.names=[\"logreg\"]' (repeatable)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report folder (default: the pipeline's [report] out, else "
                        "reports/<pipeline name>, e.g. reports/quickstart)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("pipelines", parents=[common], help="list the built-in pipelines",
                       description="The pipelines that ship inside featx: name, the data they "
                                   "read, what they show. Run one with `featx run NAME`; "
                                   "`featx init NAME` writes a copy to edit.")
    p.set_defaults(func=cmd_pipelines)

    p = sub.add_parser("init", parents=[common], help="write a built-in pipeline to edit",
                       description="Write the built-in pipeline NAME to a TOML file to edit, "
                                   "then `featx run FILE`.")
    p.add_argument("name", metavar="NAME", help="built-in pipeline (see `featx pipelines`)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="file to write (default: NAME.toml here; an existing file is not "
                        "overwritten)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("cache", parents=[common], help="list, inspect, verify or remove cache "
                                                       "files",
                       description="Maintain the feature cache: ls (list), info PATH, verify "
                                   "[PATH] (check every row's checksum; --sample N or --all "
                                   "also re-extract rows and compare), rm PATTERN "
                                   "[--dry-run], prune --older-than DAYS / --max-size SIZE "
                                   "[--dry-run].")
    # One sub-parser per action, so options may come before or after the PATH (a single
    # optional positional after the action would not take a PATH given after --cache).
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--cache", dest="cache_dir", default=None, metavar="DIR",
                       help="cache folder (default: $FEATX_CACHE_DIR, else a featx checkout's "
                            "./cache, else the per-user cache)")
    where.add_argument("--cache-dir", dest="cache_dir", default=None,  # the old name, kept
                       help=argparse.SUPPRESS)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                               help="ls, info, verify, rm or prune")
    for action, target, text in (
        ("ls", None, "list dataset files and row stores"),
        ("info", "PATH", "print a cache file's configuration and size"),
        ("verify", "PATH", "check every row's checksum and the files' shapes (all of the "
                           "cache without PATH); --sample N / --all also re-extract rows and "
                           "compare them with the stored ones"),
        ("rm", "PATTERN", "remove cache files: a path, or a glob over `featx cache ls` names"),
        ("prune", None, "remove featx dataset files and row-store segments not used for DAYS "
                        "and/or, least recently used first, until the cache takes at most "
                        "SIZE (never files featx did not write); removed entries are "
                        "extracted again when needed"),
    ):
        a = actions.add_parser(action, parents=[common, where], help=text, description=text)
        if target:
            a.add_argument("target", metavar=target,
                           help="a path, or a name as `featx cache ls` shows it"
                                + (" (a glob pattern matches several)" if action == "rm" else "")
                                + (" (default: the whole cache)" if action == "verify" else ""),
                           **({"nargs": "?"} if action == "verify" else {}))
        if action == "verify":
            how = a.add_mutually_exclusive_group()
            how.add_argument("--sample", "-n", type=_int_at_least(0), default=0, metavar="N",
                             help="also re-extract N random rows of each dataset file and "
                                  "compare them (default: 0, checksums only)")
            how.add_argument("--all", action="store_true",
                             help="also re-extract every row and compare")
        if action == "prune":
            a.add_argument("--older-than", type=_days, default=None, metavar="DAYS",
                           help="remove what was not used (read or written) for DAYS days")
            a.add_argument("--max-size", default=None, metavar="SIZE",
                           help="then remove the least recently used until the cache takes at "
                                "most SIZE: bytes or 500M, 2G, 1.5GB")
        if action in ("rm", "prune"):
            a.add_argument("--dry-run", action="store_true",
                           help="list what would be removed; remove nothing")
        a.set_defaults(func=cmd_cache, **({} if target else {"target": None}))

    p = sub.add_parser("advise", parents=[common, data, backbone],
                       help="measure DATA and recommend a strategy",
                       description="Measure the dataset (images per class; a linear probe and "
                                   "its learning curve on cached features) and recommend frozen "
                                   "features, fine-tuning, or something in between, with the "
                                   "numbers behind it.")
    p.add_argument("--probe-per-class", type=_count, default=200, metavar="N",
                   help="train images per class used by the probe (default: 200)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")
    p.set_defaults(func=cmd_advise)

    add_inspect_parser(sub, [common, data, backbone], _count)

    p = sub.add_parser("show-augment", parents=[common, data],
                       help="draw a grid of training images and augmented variants",
                       description="Preview the fine-tuning augmentation: one row per image "
                                   "(one per class), the original then augmented variants.")
    p.add_argument("--out", required=True, metavar="PNG", help="image file to write")
    p.add_argument("--images", type=_count, default=4, metavar="N", help="rows (default: 4)")
    p.add_argument("--variants", type=_count, default=5, metavar="N",
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
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and len(errors) > 1:  # a list of mistakes: one per line
        first, *rest = str(msg).splitlines()
        return "\n".join([" ".join(first.split()), *("  " + " ".join(r.split()) for r in rest)])
    msg = " ".join(str(msg).split()) or type(exc).__name__
    if not isinstance(exc, (*_PLAIN, FeatxError)):
        msg = f"{type(exc).__name__}: {msg} (run with --debug for the traceback)"
    return msg


def _warning_line(message, category, filename, lineno, file=None, line=None):
    print(f"featx: warning: {' '.join(str(message).split())}", file=sys.stderr)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (tests swap it, rich's live bar
    wraps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextlib.contextmanager
def _featx_logging(args):
    """The ``"featx"`` logger's messages on stderr, one plain line each, for one command:
    INFO and up, WARNING and up with ``--quiet``, DEBUG and up with ``--debug``."""
    logger = logging.getLogger("featx")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.level, logger.propagate
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    logger.setLevel(logging.DEBUG if getattr(args, "debug", False) else level)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


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
    with warnings.catch_warnings(), _featx_logging(args):
        if debug:
            keep_tensorflow_logs()
        else:
            warnings.showwarning = _warning_line
            quiet_tensorflow(own_stderr=True)  # before anything imports TensorFlow
        try:
            with config_context(runtime=getattr(args, "runtime", None)):
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
