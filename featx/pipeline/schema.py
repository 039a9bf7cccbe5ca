"""The pipeline schema: every key a pipeline file may hold, its checking, and its markdown.

:data:`SCHEMA` is the table (a :class:`Key` per row); :func:`validate_config` checks a parsed TOML
document against it and fills in defaults; :func:`schema_markdown` renders it for ``docs/cli.md``.
Re-exported by :mod:`featx.pipeline`, the public home of these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from featx.errors import ConfigError
from featx.sources import BUILTIN_DATA, DATA_FORMATS
from featx.utils.checks import close_matches
from featx.utils.params import Constraint, Interval


class _Errors:
    """Collects a config's mistakes so that all of them are reported at once."""

    def __init__(self, where: str):
        self.where, self.lines, self.failed = where, [], set()

    def add(self, message: str) -> None:
        self.lines.append(message)

    def check(self, key: Key, value):
        """``value`` checked against ``key``; its default (and ``key`` noted as failed) when
        it is wrong, so later checks go on with a value of the right type."""
        try:
            return _check_value(key, value, self.where)
        except ConfigError as exc:
            self.lines.extend(exc.errors)
            self.failed.add(key.path)
            return _copy(key.default_value())

    def raise_any(self) -> None:
        if not self.lines:
            return
        if len(self.lines) == 1:
            raise ConfigError(self.lines[0])
        n = len(self.where)
        shown = [line[n:] if n and line.startswith(self.where) else line for line in self.lines]
        head = f"{self.where}{len(self.lines)} errors:"
        raise ConfigError("\n".join([head, *(f"  {line}" for line in shown)]), self.lines)


# --------------------------------------------------------------------------- allowed values, lazily
# Imported when a value is checked, not with this module, so a pipeline file's syntax errors are
# reported before any table loads. None of these tables imports Keras (tests/test_cli_imports.py).
def _backbones() -> list[str]:
    from featx.backbones import list_backbones

    return list_backbones()


def _heads() -> list[str]:
    from featx.heads.names import HEAD_NAMES

    return list(HEAD_NAMES)


def _backbone_or_empty() -> list[str]:
    return ["", *_backbones()]


def _default_heads() -> list[str]:
    from featx.heads.names import DEFAULT_HEAD_NAMES

    return list(DEFAULT_HEAD_NAMES)


def _strategies() -> list[str]:
    from featx.finetune.strategies import STRATEGIES

    return list(STRATEGIES)


def _plots() -> list[str]:
    from featx.report.catalog import PLOTS

    return list(PLOTS)


def _row_poolings() -> list[str]:
    from featx.backbones import POOLINGS

    return [p for p in POOLINGS if p is not None]  # one row per image: no spatial maps


def _resize_modes() -> list[str]:
    from featx.images import RESIZE_MODES

    return list(RESIZE_MODES)


def _decoders() -> list[str]:
    from featx.images import DECODERS

    return list(DECODERS)


def _runtimes() -> list[str]:
    from featx.extract.forward import RUNTIME_CHOICES

    return ["", *RUNTIME_CHOICES]


def _views() -> list[str]:
    from featx.extract.views import list_views

    return list_views()


def _norms() -> list[str]:
    from featx.heads import FEATURE_NORMS

    return list(FEATURE_NORMS)


def _augment_options() -> list[str]:
    from featx.finetune.augment import AUGMENTATIONS

    return list(AUGMENTATIONS)


@dataclass(frozen=True)
class Key:
    """One row of the schema: ``section.name``, its TOML type, default, allowed values, meaning.

    ``allowed`` is a tuple, or a callable returning the list (tables owned by other modules:
    backbones, heads, strategies), checked per element for lists. ``default`` may be a callable
    too (the heads table's default heads), called when a default is filled in.
    """

    section: str
    name: str
    type: str
    default: Any
    doc: str
    allowed: tuple | Callable[[], Sequence] | None = None
    rule: Constraint | None = None  # a numeric range, declared as the API's are

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def allowed_values(self) -> list | None:
        if self.allowed is None:
            return None
        return list(self.allowed() if callable(self.allowed) else self.allowed)


#: The pipeline schema: every key a pipeline file may hold. Adding a key is adding a row.
SCHEMA: tuple[Key, ...] = (
    Key("data", "name", "str", "", "a built-in dataset (no download needed when installed)",
        tuple(BUILTIN_DATA)),
    Key("data", "path", "str", "", "class-folder directory (with or without "
        "train/validation/test), CSV (path,label[,split]), TFRecord shards, Parquet file or "
        "WebDataset shards (a file or a glob pattern); local (relative to the working "
        "directory, else to the TOML file) or any fsspec URL (s3://, gs://, https://; "
        "pip install 'featx[remote]')"),
    Key("data", "format", "str", "", "how to read data.path when its suffix does not say ('': "
        "from the suffix; a folder otherwise; docs/sources.md)", ("", *DATA_FORMATS)),
    Key("data", "fetch", "str", "", "what to download and where to put it, shown when the data is "
        "missing"),
    Key("data", "path_column", "str", "path", "a CSV's column of image paths (`--path-column`); "
        "for Parquet / TFRecord the image column / feature ('path': their defaults, `image` / "
        "`image/encoded`)"),
    Key("data", "label_column", "str", "label", "a CSV's column of class names "
        "(`--label-column`); for Parquet the label column, for TFRecord the label feature "
        "('label': `image/class/label`)"),
    Key("data", "allow_local", "bool", False, "let a list read from a URL (a CSV, a Parquet "
        "file's path cells) name files on this machine (`--allow-local`; default: a remote "
        "list names remote images only)"),
    Key("data", "test_size", "float", 0.2, "test fraction, used only when the data has no test "
        "split"),
    Key("data", "val_size", "float", 0.0, "validation fraction when the data has none (0: none; "
        "fine-tuning then holds out its own validation_split)"),
    Key("data", "limit", "int", 0, "at most this many images per class in every split (0: all)"),
    Key("data", "seed", "int", 0, "seed of splits, subsamples and fine-tuning"),
    Key("extract", "backbone", "str|list[str]", "efficientnet_lite0",
        "backbone(s) whose frozen features the heads use; several compare backbones", _backbones),
    Key("extract", "weights", "str", "imagenet", "'imagenet', 'none' (random, for tests) or a "
        "weights file"),
    Key("extract", "input_size", "int|list[int]", 0, "input size, an int or [h, w] (0: the "
        "backbone's own)"),
    Key("extract", "sizes", "list[int]", [], "candidate input sizes of [select] (each its "
        "own pass and cache entry), e.g. [96, 224] for 28 px images; []: input_size only"),
    Key("extract", "pooling", "str", "avg", "global pooling of the last feature map",
        _row_poolings),
    Key("extract", "resize", "str", "bilinear", "stretch ('bilinear') or keep aspect and centre "
        "crop ('crop')", _resize_modes),
    Key("extract", "decoder", "str", "pillow", "image decoder: 'pillow', or 'opencv' (about 2x "
        "faster per core; pip install 'featx[opencv]')", _decoders),
    Key("extract", "layers", "list", [], "intermediate layers to tap, pool and concatenate "
        "(earlier, more generic features for data unlike ImageNet); with `taps`, the pool the "
        "tap sets are sliced from ([]: their union)"),
    Key("extract", "taps", "list", [], "candidate layer-tap sets, each a list of negative block "
        "indices or block names ([[-1], [-2, -3, -4]]; -1 is the last block): every backbone is "
        "extracted once with all of them, each set is a column slice, chosen by [select]"),
    Key("extract", "views", "list[str]", ["none"], "views of every image (`none`, `flip`, "
        "`crop90`...): heads train on all views and average their probabilities (TTA); with "
        "several, both the first view alone and all views are candidates of [select]",
        _views),
    Key("extract", "concat", "bool|str", False, "also try the features of all backbones "
        "concatenated (one candidate per tap set and view set; no extra backbone pass); "
        "'only': the concatenation alone; 'subsets': each backbone and every combination of "
        "two or more (the pairs cost two passes)", (True, False, "only", "subsets")),
    Key("extract", "batch_size", "int", 32, "images per forward pass (does not change features)"),
    Key("extract", "runtime", "str", "", "what runs the frozen backbone: 'auto' (ONNX Runtime on "
        "a CPU, Keras on a GPU), 'onnxruntime' or 'keras' ('': $FEATX_RUNTIME, else auto); "
        "features agree within ~2e-6 and share the cache", _runtimes),
    Key("extract", "cache", "str", "",
        "feature-cache folder ('': $FEATX_CACHE_DIR, else a featx checkout's ./cache, else "
        "the per-user cache)"),
    Key("heads", "names", "list[str]", _default_heads,
        "scikit-learn heads fitted on the cached features (default: every head but the "
        "ensembles, featx.list_heads(default_only=True))", _heads),
    Key("heads", "cv", "int", 0, "folds of a grid search over each head's grid (0: defaults, "
        "no search)"),
    Key("heads", "imbalance", "str", "none", "class imbalance: 'prior' shifts each head's "
        "posteriors to equal class priors (balanced accuracy), 'tune' adds per-class offsets "
        "tuned for macro-F1 on out-of-fold training data", ("none", "prior", "tune")),
    Key("select", "folds", "int", 5, "feature choice (when taps, views or concat give several "
        "candidates): stratified folds of the cross-validation on the training split; the test "
        "split is never used to choose"),
    Key("select", "probe", "str", "logreg", "the head the candidate features are compared "
        "with", _heads),
    Key("select", "metric", "str", "accuracy", "what the feature choice maximises",
        ("accuracy", "macro_f1", "balanced_accuracy")),
    Key("select", "rule", "str", "auto", "how a candidate is chosen: one_se, the cheapest "
        "whose CV score is within one standard error of the best (compared fold by fold); "
        "best, the best score whatever it costs; auto, the best within a budget, else one_se",
        ("auto", "one_se", "best")),
    Key("select", "halving", "bool", True, "successive halving: score the candidates on a "
        "quarter, then half, then all of the training split, the better half going on each "
        "time, so a candidate that loses early costs a fraction of a full extraction"),
    Key("select", "budget", "float|str", 0, "only candidates within it compete: backbone "
        "passes per image (2), or forward seconds per image at prediction ('20ms', '0.02s'); "
        "0: no budget"),
    Key("select", "norms", "list[str]", ["none"], "feature normalisations as candidates (no "
        "backbone pass): none (the head's own scaling), sqrt (signed square root), l2, "
        "sqrt_l2, whiten (PCA whitening)", _norms),
    Key("select", "tune", "bool", True, "cross-validate the probe's grid (e.g. logreg's C) on "
        "the chosen features; a value wins when the folds clearly rank it above the default"),
    Key("finetune", "strategies", "list[str]", [], "unfreeze strategies to fine-tune and compare "
        "([]: none)", _strategies),
    Key("finetune", "backbone", "str", "", "backbone to fine-tune ('': the first of "
        "extract.backbone)", _backbone_or_empty),
    Key("finetune", "input_size", "int|list[int]", 0, "fine-tuning input size (0: "
        "extract.input_size, else the backbone's own); smaller is much faster on CPU "
        "(`featx compare --finetune-input-size`)"),
    Key("finetune", "epochs", "int", 10, "epochs per phase (as `FineTunedClassifier` and "
        "`--epochs`); early stopping ends a phase sooner"),
    Key("finetune", "learning_rate", "float", 0.0, "learning rate of every phase (0: the "
        "strategy's default)"),
    Key("finetune", "batch_size", "int", 32, "training batch size (`featx finetune "
        "--batch-size`, `featx compare --finetune-batch-size`)"),
    Key("finetune", "warm_start", "bool", True, "start the classifier from a logistic regression "
        "on cached features (no warm-up epochs); false: train the head first for `epochs`"),
    Key("finetune", "augment", "bool|table", True, "training augmentation: true (defaults), false, "
        "or a table of options (flip, rotation, zoom, brightness, contrast)"),
    Key("finetune", "blocks", "list[str]", [], "strategy 'blocks': named blocks to train "
        "([]: the top two)"),
    Key("finetune", "n", "int", 20, "strategy 'last_n': the top n layers"),
    Key("finetune", "schedule", "list", [], "strategy 'staged': [[layers, epochs(, lr)], ...], "
        "layers an int (top N) or block name(s)"),
    Key("finetune", "lr_decay", "float", 1.0, "discriminative learning rates: each lower block "
        "gets lr_decay times the one above (1: off)"),
    Key("finetune", "class_weight", "str", "balanced", "weight classes inversely to their "
        "frequency", ("balanced", "none")),
    Key("finetune", "dropout", "float", 0.2, "dropout before the classifier"),
    Key("finetune", "validation_split", "float", 0.1, "held-out fraction for early stopping when "
        "the data has no validation split"),
    Key("finetune", "early_stopping", "bool", True, "stop a phase when validation loss stops "
        "improving, keeping the best weights"),
    Key("finetune", "patience", "int", 3, "early-stopping patience (epochs)"),
    Key("finetune", "lr_schedule", "str", "constant", "learning-rate schedule within a phase",
        ("constant", "exp_decay", "cosine")),
    Key("inspect", "enabled", "bool", False, "know the data first (`featx inspect`): "
        "duplicates, train/test leaks, likely label errors and outliers from the cached "
        "features, written to inspect/ in the report folder and summed up in the report, whose "
        "comparison table then gives each model's accuracy without the leaked test images"),
    Key("inspect", "folds", "int", 5, "folds of the out-of-fold probabilities that rank the "
        "label errors"),
    Key("inspect", "threshold", "float", 0.0, "cosine similarity of near-duplicates (0: "
        "calibrated on 48 training images re-encoded; their backbone passes are cached)"),
    Key("inspect", "gallery", "int", 24, "findings of each kind shown in inspect/report.md"),
    Key("report", "out", "str", "", "report folder ('': reports/<pipeline file name>)"),
    Key("report", "title", "str", "", "report title ('': from the pipeline file name)"),
    Key("report", "plots", "list[str]", ["comparison", "confusion", "learning_curves",
                                         "few_shot", "augmentation", "misclassified", "cost"],
        "PNG plots to draw ([]: none, no matplotlib needed)", _plots),
    Key("report", "few_shot", "list[int]", [1, 2, 5, 10, 20, 0], "examples per class for the "
        "few-shot curve (0: all)"),
    Key("report", "few_shot_heads", "list[str]", [], "heads in the few-shot curve ([]: "
        "heads.names)", _heads),
    Key("report", "few_shot_repeats", "int", 2, "random subsamples averaged per few-shot point"),
    Key("report", "augment_images", "int", 4, "images in the augmentation preview"),
)

#: The declared constraints of the numeric keys (:mod:`featx.utils.params`): the same rows and
#: the same message shape as the API's parameters (``... must be an int >= 1, got 0 of type int``).
_RULES: dict[str, Constraint] = {
    "data.test_size": Interval(float, 0, 1, high_open=True),
    "data.val_size": Interval(float, 0, 1, high_open=True),
    "data.limit": Interval(int, 0),
    "extract.batch_size": Interval(int, 1),
    "heads.cv": Interval(int, 0),
    "select.folds": Interval(int, 2),
    "finetune.epochs": Interval(int, 1),
    "finetune.batch_size": Interval(int, 1),
    "finetune.n": Interval(int, 1),
    "inspect.folds": Interval(int, 2),
    "inspect.threshold": Interval(float, 0, 1),
    "inspect.gallery": Interval(int, 1),
    "report.few_shot_repeats": Interval(int, 1),
    "report.augment_images": Interval(int, 0),
}
SCHEMA = tuple(replace(k, rule=_RULES[k.path]) if k.path in _RULES else k for k in SCHEMA)
SECTIONS: dict[str, dict[str, Key]] = {}
for _k in SCHEMA:
    SECTIONS.setdefault(_k.section, {})[_k.name] = _k


# --------------------------------------------------------------------------- checking
def _is(value, t: str) -> bool:
    if t == "str":
        return isinstance(value, str)
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, bool)
    if t == "table":
        return isinstance(value, Mapping)
    if t == "list":
        return isinstance(value, list)
    if t.startswith("list[") and isinstance(value, list):
        return all(_is(v, t[5:-1]) for v in value)
    return False


def _check_value(key: Key, value, where: str) -> Any:
    if not any(_is(value, t) for t in key.type.split("|")):
        raise ConfigError(f"{where}{key.path} must be {key.type.replace('|', ' or ')}, got "
                          f"{value!r} ({type(value).__name__})")
    allowed = key.allowed_values()
    if allowed is not None:
        items = value if isinstance(value, list) else [value]
        wrong = [f"{where}{key.path}{f'[{i}]' if isinstance(value, list) else ''} = {item!r} "
                 f"is not allowed{close_matches(str(item), allowed, cutoff=0.5)}. "
                 f"Allowed: {', '.join(map(repr, allowed))}"
                 for i, item in enumerate(items) if item not in allowed]
        if wrong:
            raise ConfigError(wrong[0], wrong)
    if key.type.startswith("float"):
        value = float(value)
    if key.rule is not None:
        try:
            key.rule.check(f"{where}{key.path}", value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
    return value


def selects_features(cfg: Mapping) -> bool:
    """Whether a (filled-in) pipeline has a feature-choice step: several candidates from
    ``extract.taps``, ``views``, ``sizes``, ``concat`` of several backbones, or ``select.norms``."""
    e = cfg["extract"]
    return bool(e["taps"]) or e["views"] != ["none"] or bool(e["sizes"]) \
        or cfg["select"]["norms"] != ["none"] or bool(e["concat"] and len(e["backbone"]) > 1)


def _check_range(cfg: dict, where: str, errors: _Errors) -> None:
    def fail(path, value, what):
        errors.add(f"{where}{path} must be {what}, got {value!r}")

    d = cfg["data"]
    if d["test_size"] + d["val_size"] >= 1:
        fail("data.test_size + data.val_size", d["test_size"] + d["val_size"], "< 1")
    for i, layer in enumerate(cfg["extract"]["layers"]):
        if not (isinstance(layer, str) or isinstance(layer, int) and not isinstance(layer, bool)
                and layer < 0):
            fail(f"extract.layers[{i}]", layer, "a layer or block name, or a negative block index")
    for i, taps in enumerate(cfg["extract"]["taps"]):
        if not (isinstance(taps, list) and taps and all(
                isinstance(e, str) or isinstance(e, int) and not isinstance(e, bool) and e < 0
                for e in taps)):
            fail(f"extract.taps[{i}]", taps, "a non-empty list of negative block indices or "
                 "block names, e.g. [-2, -3, -4]")
    if len(set(cfg["extract"]["views"])) != len(cfg["extract"]["views"]) \
            or not cfg["extract"]["views"]:
        fail("extract.views", cfg["extract"]["views"], "a non-empty list of distinct views")
    sizes = cfg["extract"]["sizes"]
    if len(set(sizes)) != len(sizes) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in sizes):
        fail("extract.sizes", sizes, "a list of distinct input sizes (ints >= 8)")
    if len(set(cfg["select"]["norms"])) != len(cfg["select"]["norms"]) \
            or not cfg["select"]["norms"]:
        fail("select.norms", cfg["select"]["norms"], "a non-empty list of distinct norms")
    if cfg["heads"]["cv"] and selects_features(cfg):
        errors.add(f"{where}heads.cv = {cfg['heads']['cv']} cannot be combined with a feature "
                   "choice (extract.taps, views, sizes, concat or select.norms) yet: "
                   "its heads use their defaults; set heads.cv = 0")
    if cfg["heads"]["cv"] == 1:
        fail("heads.cv", 1, "0 (no search) or at least 2 folds")
    for s in ("extract", "finetune"):
        v = cfg[s]["input_size"]
        if isinstance(v, list) and (len(v) != 2 or min(v) < 1) or isinstance(v, int) and v < 0:
            fail(f"{s}.input_size", v, "0, a positive int or [h, w]")
    for i, k in enumerate(cfg["report"]["few_shot"]):
        if k < 0:
            fail(f"report.few_shot[{i}]", k, ">= 0 (0: all)")
    if cfg["finetune"]["augment"] not in (True, False):
        allowed = _augment_options()
        for name in cfg["finetune"]["augment"]:
            if name not in allowed:
                errors.add(f"{where}finetune.augment.{name} is not an augmentation option"
                           f"{close_matches(name, allowed, cutoff=0.5)}. Allowed: "
                           f"{', '.join(allowed)}")
    compared = {"heads.names", "finetune.strategies"}
    if not cfg["heads"]["names"] and not cfg["finetune"]["strategies"] \
            and not compared & errors.failed:
        errors.add(f"{where}nothing to compare: heads.names and finetune.strategies are "
                   "both empty; name at least one head or fine-tuning strategy")
    for name in ("path_column", "label_column"):
        if not d[name].strip():
            fail(f"data.{name}", d[name], "a column name (not empty)")
    if bool(d["name"]) == bool(d["path"]) and not {"data.name", "data.path"} & errors.failed:
        errors.add(
            f"{where}[data] needs exactly one of data.name (a built-in: "
            f"{', '.join(BUILTIN_DATA)}) or data.path (a folder, CSV, shards or URL); got "
            f"name={d['name']!r}, path={d['path']!r}")


def source_label(source) -> str:
    return f"{source}: " if source else ""


def validate_config(raw: Mapping, source: str | None = None) -> dict:
    """Check ``raw`` (a parsed TOML document) against :data:`SCHEMA`; fill in defaults.

    Raises
    ------
    ConfigError
        Naming every offending key at once (``errors``: one line each); a key with a wrong
        type or value is checked further as if it held its default.
    """
    where = source_label(source)
    errors = _Errors(where)
    all_keys: dict[str, str] = {}
    for k in SCHEMA:  # key name -> its first section's path, for "did you mean extract.backbone"
        all_keys.setdefault(k.name, k.path)
    cfg: dict[str, dict] = {}
    for section in raw:
        if section not in SECTIONS:
            hint = (f" (did you mean {all_keys[section]!r}?)" if section in all_keys
                    else close_matches(section, list(SECTIONS), cutoff=0.5))
            errors.add(f"{where}unknown section or key {section!r}{hint}. Sections: "
                       f"{', '.join(f'[{s}]' for s in SECTIONS)}")
        elif not isinstance(raw[section], Mapping):
            errors.add(f"{where}{section} must be a table ([{section}]), got {raw[section]!r}")
    for section, keys in SECTIONS.items():
        given = raw.get(section, {})
        given = dict(given) if isinstance(given, Mapping) else {}
        for name in given:
            if name not in keys:
                hint = close_matches(name, list(keys), cutoff=0.5)
                if not hint and name in all_keys:
                    hint = f" (did you mean {all_keys[name]!r}?)"
                errors.add(f"{where}unknown key {section}.{name}{hint}. Keys of "
                           f"[{section}]: {', '.join(keys)}")
        cfg[section] = {
            name: errors.check(key, given[name]) if name in given else _copy(key.default_value())
            for name, key in keys.items()
        }
    b = cfg["extract"]["backbone"]
    cfg["extract"]["backbone"] = [b] if isinstance(b, str) else list(b)
    if not cfg["extract"]["backbone"] and "extract.backbone" not in errors.failed:
        errors.add(f"{where}extract.backbone must name at least one backbone, got []")
    _check_range(cfg, where, errors)
    errors.raise_any()
    return cfg


def _copy(v):
    return list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


# --------------------------------------------------------------------------- schema as docs
def _default_md(key: Key) -> str:
    d = key.default_value()
    if isinstance(d, bool):
        return "`true`" if d else "`false`"
    if isinstance(d, str):
        return f'`"{d}"`'
    if isinstance(d, list):
        return "`[" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in d) + "]`"
    return f"`{d}`"


def schema_markdown() -> str:
    """The schema as markdown tables, one per section (the source of ``docs/cli.md``'s part)."""
    out = []
    for section, keys in SECTIONS.items():
        out += [f"### `[{section}]`", "", "| key | type | default | allowed | meaning |",
                "|---|---|---|---|---|"]
        for k in keys.values():
            if k.allowed is None:
                allowed = ""
            elif callable(k.allowed):
                allowed = {"_backbones": "`featx backbones`", "_heads": "heads: "
                           + ", ".join(_heads()), "_strategies": ", ".join(_strategies()),
                           "_plots": ", ".join(_plots()),
                           "_views": ", ".join(_views()),
                           "_backbone_or_empty": "`featx backbones` or empty",
                           }.get(k.allowed.__name__)
                if allowed is None:  # a table's names, read from the table
                    allowed = ", ".join(f"`{a}`" if a != "" else '`""`'
                                        for a in k.allowed_values())
            else:
                allowed = ", ".join(f"`{a}`" for a in k.allowed)
            out.append(f"| `{k.name}` | {k.type.replace('|', ' or ')} | {_default_md(k)} | "
                       f"{allowed} | {k.doc} |")
        out.append("")
    return "\n".join(out)
