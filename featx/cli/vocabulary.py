"""One vocabulary: each setting's name and default in the Python API, the command line and a
pipeline file, side by side, as one table (:data:`TERMS`).

The defaults are not written here: each is read where it lives (the API's signature, the
``featx`` parser, the pipeline schema), so :func:`vocabulary_rows` shows what the three really
do and ``tests/test_cli_vocabulary.py`` fails on any drift (a command-line option missing from
the table fails it too, unless :data:`COMMAND_LINE_ONLY` says why it has no counterpart).
:func:`vocabulary_markdown` is ``docs/cli.md``'s table. Not imported by ``featx`` itself.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

__all__ = ["COMMAND_LINE_ONLY", "TERMS", "Term", "same_default", "vocabulary_markdown",
           "vocabulary_rows"]


@dataclass(frozen=True)
class Term:
    """One setting: what it is, its API parameter (``"module:object"`` and the parameter), its
    option in each command (``{"*": "--flag"}`` for every command that has the flag, or named
    commands) and its pipeline key (``None``: no pipeline key)."""

    concept: str
    api: str
    param: str
    options: dict[str, str]
    key: str | None = None
    #: a ``--no-x`` switch whose default (off) is the API's True
    negated: bool = False

    def api_default(self) -> Any:
        module, _, name = self.api.partition(":")
        obj = getattr(importlib.import_module(module), name)
        return inspect.signature(obj).parameters[self.param].default

    def api_text(self) -> str:
        return f"`{self.api.partition(':')[2]}({self.param}=...)`"


_EXTRACT = "featx.extract:extract_features"
_DATA = "featx.sources:resolve_data"
_FT = "featx.finetune:FineTunedClassifier"

#: The table: one row per setting that the API, the command line and pipelines share.
TERMS: tuple[Term, ...] = (
    Term("backbone", _EXTRACT, "backbone", {"*": "--backbone"}, "extract.backbone"),
    Term("weights", _EXTRACT, "weights", {"*": "--weights"}, "extract.weights"),
    Term("input size", _EXTRACT, "input_size", {"*": "--input-size"}, "extract.input_size"),
    Term("pooling", _EXTRACT, "pooling", {"*": "--pooling"}, "extract.pooling"),
    Term("images per batch", _EXTRACT, "batch_size", {"*": "--batch-size"}, "extract.batch_size"),
    Term("image decoder", _EXTRACT, "decoder", {"*": "--decoder"}, "extract.decoder"),
    Term("what runs the backbone", _EXTRACT, "runtime", {"*": "--runtime"}, "extract.runtime"),
    Term("cache folder", _EXTRACT, "cache", {"*": "--cache"}, "extract.cache"),
    Term("data format", _DATA, "format", {"*": "--data-format"}, "data.format"),
    Term("test fraction", _DATA, "test_size", {"*": "--test-size"}, "data.test_size"),
    Term("validation fraction", _DATA, "val_size", {"*": "--val-size"}, "data.val_size"),
    Term("images per class", _DATA, "limit", {"*": "--limit"}, "data.limit"),
    Term("seed", _DATA, "seed", {"*": "--seed"}, "data.seed"),
    Term("CSV path column", _DATA, "path_column", {"*": "--path-column"}, "data.path_column"),
    Term("CSV label column", _DATA, "label_column", {"*": "--label-column"},
         "data.label_column"),
    Term("local files in a remote list", _DATA, "allow_local", {"*": "--allow-local"},
         "data.allow_local"),
    Term("head", "featx.estimators:TransferClassifier", "head", {"fit": "--head"}),
    Term("grid-search folds", "featx.estimators:TransferClassifier", "cv", {"fit": "--cv"},
         "heads.cv"),
    Term("heads compared", "featx.comparison:compare", "heads", {"compare": "--heads"},
         "heads.names"),
    Term("fine-tunes compared", "featx.comparison:compare", "finetune",
         {"compare": "--finetune"}, "finetune.strategies"),
    Term("unfreeze strategy", _FT, "strategy", {"finetune": "--strategy"}),
    Term("epochs per phase", _FT, "epochs", {"*": "--epochs"}, "finetune.epochs"),
    Term("learning rate", _FT, "learning_rate", {"*": "--learning-rate"},
         "finetune.learning_rate"),
    Term("fine-tuning batch size", _FT, "batch_size",
         {"finetune": "--batch-size", "compare": "--finetune-batch-size"}, "finetune.batch_size"),
    Term("fine-tuning input size", _FT, "input_size",
         {"finetune": "--input-size", "compare": "--finetune-input-size"}, "finetune.input_size"),
    Term("warm start", _FT, "warm_start", {"*": "--no-warm-start"}, "finetune.warm_start",
         negated=True),
    Term("augmentation", _FT, "augment", {"*": "--no-augment"}, "finetune.augment",
         negated=True),
    Term("validation split", _FT, "validation_split", {"*": "--validation-split"},
         "finetune.validation_split"),
    Term("probe images per class", "featx.advise:advise", "probe_per_class",
         {"advise": "--probe-per-class"}),
    Term("head ranking label errors", "featx.audit:inspect", "head", {"inspect": "--head"}),
    Term("out-of-fold folds", "featx.audit:inspect", "folds", {"inspect": "--folds"},
         "inspect.folds"),
    Term("near-duplicate similarity", "featx.audit:inspect", "threshold",
         {"inspect": "--threshold"}, "inspect.threshold"),
    Term("findings shown per kind", "featx.audit:write_inspection", "gallery",
         {"inspect": "--gallery"}, "inspect.gallery"),
)

#: Options that only the command line has, and why.
COMMAND_LINE_ONLY: dict[str, str] = {
    "--help": "argparse's", "--version": "the command's", "--debug": "the command's traceback",
    "--quiet": "progress lines (verbose=0 in Python)",
    "--out": "where a command writes its result (a path argument in Python)",
    "--json": "how `advise` prints", "--proba": "which CSV columns `predict` writes",
    "--trust": "featx.load(trust=True)", "--format": "featx.export(format=...)",
    "--set": "a pipeline's overrides (run_pipeline(overrides=...))",
    "--images": "`show-augment`'s picture", "--variants": "`show-augment`'s picture",
    "--size": "`show-augment`'s picture",
    "--sample": "`cache verify`", "--all": "`cache verify`", "--older-than": "`cache prune`",
    "--max-size": "`cache prune`", "--dry-run": "`cache rm`/`prune`",
    "--clean-list": "`inspect` writes Inspection.clean_rows() as a CSV",
    "--drop": "Inspection.clean_rows(drop=...)",
}


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
    return dict(sub.choices)


def _action(command: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in command._actions if flag in a.option_strings), None)


def term_for(command: str, flag: str) -> Term | None:
    """The row whose option ``flag`` is in ``command`` (a command's own row first)."""
    own = [t for t in TERMS if t.options.get(command) == flag]
    return own[0] if own else next((t for t in TERMS if t.options.get("*") == flag), None)


def cli_defaults(term: Term, parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """``{command: default}`` of ``term``'s option in every command that has it; a default of
    None means the command passes the API's own on (it leaves the parameter out)."""
    from featx.cli.main import build_parser

    parser = parser or build_parser()
    out = {}
    for name, command in _commands(parser).items():
        flag = term.options.get(name) or term.options.get("*")
        action = _action(command, flag) if flag else None
        if action is not None and term_for(name, flag) is term:
            out[name] = action.default
    return out


def same_default(term: Term, value: Any, api: Any) -> bool:
    """Whether ``value`` (a command-line or schema default) means the API's default ``api``:
    None on the command line passes the API's on; a schema's ``0``, ``""`` and ``[]`` mean
    "unset" where the API says None; a ``--no-x`` switch is off where the API's is on;
    ``True`` is augmentation's ``"default"``; sequences compare as lists."""
    def canon(v):
        if isinstance(v, tuple | list):
            return list(v) or None
        return None if v in (0, "") and not isinstance(v, bool) else v

    if term.param == "augment" and value is True:
        value = "default"
    return canon(value) == canon(api)


def vocabulary_rows(parser: argparse.ArgumentParser | None = None) -> list[dict[str, Any]]:
    """One row per :data:`TERMS` entry: the API's parameter and default, each command's option
    and default, the pipeline key and default, read where they live."""
    from featx.pipeline.schema import SECTIONS

    rows = []
    for term in TERMS:
        api = term.api_default()
        cli = cli_defaults(term, parser)
        key = None
        if term.key:
            section, _, name = term.key.partition(".")
            key = SECTIONS[section][name].default_value()
        rows.append({"term": term, "api": api, "cli": cli, "key": key})
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, tuple | list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def vocabulary_markdown() -> str:
    """The table of ``docs/cli.md`` ("One set of defaults"), read from the three places: the
    default is the API's, which the command line and the pipeline schema share ("none": the
    API decides, e.g. the backbone's own input size, every image, the strategy's rate)."""
    lines = ["| setting | API | command line | pipeline | default |", "|---|---|---|---|---|"]
    for row in vocabulary_rows():
        term = row["term"]
        flags = [f"`{flag}`" + ("" if where == "*" else f" ({where})")
                 for where, flag in term.options.items()]
        key = f"`{term.key}`" if term.key else ""
        api = row["api"]
        default = ("on" if api is True or api == "default" else _shown(api)) if term.negated \
            else _shown(api)
        lines.append(f"| {term.concept} | {term.api_text()} | {', '.join(flags)} | {key} | "
                     f"{default} |")
    return "\n".join(lines)
