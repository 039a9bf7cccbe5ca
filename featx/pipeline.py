"""Declarative runs: a TOML file says what to compare; :func:`run_pipeline` runs it and reports.

A pipeline reads top to bottom like featx itself: ``[data]`` -> ``[extract]`` (features cached)
-> ``[heads]`` (scikit-learn heads on the cached features) -> ``[finetune]`` (optional) ->
``[report]``. Every key is a row of :data:`SCHEMA` (type, default, allowed values, meaning);
``docs/cli.md``'s schema section is generated from it by :func:`schema_markdown`. Errors name the
key (``heads.names[2]``), echo the value and list what is allowed, with close matches.

Examples
--------
>>> cfg = parse_config('[data]\\nname = "clothing-mini"\\n[heads]\\nnames = ["logreg"]')
>>> cfg["extract"]["backbone"], cfg["heads"]["names"], cfg["finetune"]["strategies"]
(['efficientnet_lite0'], ['logreg'], [])
"""

from __future__ import annotations

import difflib
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featx._resolve import BUILTIN_DATA, resolve_data

__all__ = ["SCHEMA", "ConfigError", "load_config", "parse_config", "run_pipeline",
           "schema_markdown"]


class ConfigError(ValueError):
    """A pipeline file is invalid; the message names the key and what is allowed."""


# --------------------------------------------------------------------------- allowed values, lazily
def _backbones() -> list[str]:
    from featx.backbones import list_backbones

    return list_backbones()


def _heads() -> list[str]:
    from featx.heads import list_heads

    return list_heads()


def _strategies() -> list[str]:
    from featx._strategies import STRATEGIES

    return list(STRATEGIES)


def _plots() -> list[str]:
    from featx.report import PLOTS

    return list(PLOTS)


def _augment_options() -> list[str]:
    from featx._augment import AUGMENTATIONS

    return list(AUGMENTATIONS)


@dataclass(frozen=True)
class Key:
    """One row of the schema: ``section.name``, its TOML type, default, allowed values, meaning.

    ``allowed`` is a tuple, or a callable returning the list (tables owned by other modules:
    backbones, heads, strategies), checked per element for lists.
    """

    section: str
    name: str
    type: str
    default: Any
    doc: str
    allowed: tuple | Callable[[], Sequence] | None = None

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    def allowed_values(self) -> list | None:
        if self.allowed is None:
            return None
        return list(self.allowed() if callable(self.allowed) else self.allowed)


#: The pipeline schema: every key a pipeline file may hold. Adding a key is adding a row.
SCHEMA: tuple[Key, ...] = (
    Key("data", "name", "str", "", "a built-in dataset (no download needed when installed)",
        tuple(BUILTIN_DATA)),
    Key("data", "path", "str", "", "class-folder directory (with or without train/validation/test) "
        "or CSV (path,label[,split]); relative to the working directory, else to the TOML file"),
    Key("data", "fetch", "str", "", "what to download and where to put it, shown when the data is "
        "missing"),
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
    Key("extract", "pooling", "str", "avg", "global pooling of the last feature map",
        ("avg", "max")),
    Key("extract", "resize", "str", "bilinear", "stretch ('bilinear') or keep aspect and centre "
        "crop ('crop')", ("bilinear", "crop")),
    Key("extract", "layers", "list[str]", [], "intermediate layers to tap, pool and concatenate "
        "(earlier, more generic features for data unlike ImageNet)"),
    Key("extract", "batch_size", "int", 32, "images per forward pass (does not change features)"),
    Key("extract", "cache", "str", "", "feature-cache folder ('': $FEATX_CACHE_DIR or ./cache)"),
    Key("heads", "names", "list[str]", ["logreg", "svm", "rf", "mlp", "knn"],
        "scikit-learn heads fitted on the cached features", _heads),
    Key("heads", "cv", "int", 0, "folds of a grid search over each head's grid (0: defaults, "
        "no search)"),
    Key("finetune", "strategies", "list[str]", [], "unfreeze strategies to fine-tune and compare "
        "([]: none)", _strategies),
    Key("finetune", "backbone", "str", "", "backbone to fine-tune ('': the first of "
        "extract.backbone)", lambda: ["", *_backbones()]),
    Key("finetune", "input_size", "int|list[int]", 0, "fine-tuning input size (0: "
        "extract.input_size, else the backbone's own); smaller is much faster on CPU"),
    Key("finetune", "epochs", "int", 3, "epochs per phase"),
    Key("finetune", "learning_rate", "float", 0.0, "learning rate of every phase (0: the "
        "strategy's default)"),
    Key("finetune", "batch_size", "int", 32, "training batch size"),
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
    Key("report", "out", "str", "", "report folder ('': reports/<pipeline file name>)"),
    Key("report", "title", "str", "", "report title ('': from the pipeline file name)"),
    Key("report", "plots", "list[str]", ["comparison", "confusion", "learning_curves",
                                         "few_shot", "augmentation"],
        "PNG plots to draw ([]: none, no matplotlib needed)", _plots),
    Key("report", "few_shot", "list[int]", [1, 2, 5, 10, 20, 0], "examples per class for the "
        "few-shot curve (0: all)"),
    Key("report", "few_shot_heads", "list[str]", [], "heads in the few-shot curve ([]: "
        "heads.names)", _heads),
    Key("report", "few_shot_repeats", "int", 2, "random subsamples averaged per few-shot point"),
    Key("report", "augment_images", "int", 4, "images in the augmentation preview"),
)
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


def _close(value, allowed: Sequence) -> str:
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def _check_value(key: Key, value, where: str) -> Any:
    if not any(_is(value, t) for t in key.type.split("|")):
        raise ConfigError(f"{where}{key.path} must be {key.type.replace('|', ' or ')}, got "
                          f"{value!r} ({type(value).__name__})")
    allowed = key.allowed_values()
    if allowed is not None:
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if item not in allowed:
                index = f"[{i}]" if isinstance(value, list) else ""
                raise ConfigError(
                    f"{where}{key.path}{index} = {item!r} is not allowed.{_close(item, allowed)} "
                    f"Allowed: {', '.join(map(repr, allowed))}")
    if key.type.startswith("float"):
        value = float(value)
    return value


def _check_range(cfg: dict, where: str) -> None:
    def fail(path, value, what):
        raise ConfigError(f"{where}{path} must be {what}, got {value!r}")

    d = cfg["data"]
    for name in ("test_size", "val_size"):
        if not 0 <= d[name] < 1:
            fail(f"data.{name}", d[name], "a fraction in [0, 1)")
    if d["test_size"] + d["val_size"] >= 1:
        fail("data.test_size + data.val_size", d["test_size"] + d["val_size"], "< 1")
    for path in ("data.limit", "extract.batch_size", "heads.cv", "finetune.epochs",
                 "finetune.batch_size", "finetune.n", "report.few_shot_repeats",
                 "report.augment_images"):
        s, k = path.split(".")
        v = cfg[s][k]
        positive = k in ("batch_size", "epochs", "n", "few_shot_repeats")
        if v < (1 if positive else 0):
            fail(path, v, "a positive int" if positive else ">= 0")
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
                raise ConfigError(f"{where}finetune.augment.{name} is not an augmentation option."
                                  f"{_close(name, allowed)} Allowed: {', '.join(allowed)}")
    if bool(d["name"]) == bool(d["path"]):
        raise ConfigError(
            f"{where}[data] needs exactly one of data.name (a built-in: "
            f"{', '.join(BUILTIN_DATA)}) or data.path (a folder or CSV); got "
            f"name={d['name']!r}, path={d['path']!r}")


def _where(source) -> str:
    return f"{source}: " if source else ""


def validate_config(raw: Mapping, source: str | None = None) -> dict:
    """Check ``raw`` (a parsed TOML document) against :data:`SCHEMA`; fill in defaults.

    Raises :class:`ConfigError` naming the first offending key.
    """
    where = _where(source)
    all_keys: dict[str, str] = {}
    for k in SCHEMA:  # key name -> its first section's path, for "did you mean extract.backbone"
        all_keys.setdefault(k.name, k.path)
    cfg: dict[str, dict] = {}
    for section in raw:
        if section not in SECTIONS:
            hint = (f" Did you mean {all_keys[section]!r}?" if section in all_keys
                    else _close(section, list(SECTIONS)))
            raise ConfigError(f"{where}unknown section or key {section!r}.{hint} Sections: "
                              f"{', '.join(f'[{s}]' for s in SECTIONS)}")
        if not isinstance(raw[section], Mapping):
            raise ConfigError(f"{where}{section} must be a table ([{section}]), got "
                              f"{raw[section]!r}")
    for section, keys in SECTIONS.items():
        given = dict(raw.get(section, {}))
        for name in given:
            if name not in keys:
                hint = _close(name, list(keys))
                if not hint and name in all_keys:
                    hint = f" Did you mean {all_keys[name]!r}?"
                raise ConfigError(f"{where}unknown key {section}.{name}.{hint} Keys of "
                                  f"[{section}]: {', '.join(keys)}")
        cfg[section] = {
            name: _check_value(key, given[name], where) if name in given else _copy(key.default)
            for name, key in keys.items()
        }
    b = cfg["extract"]["backbone"]
    cfg["extract"]["backbone"] = [b] if isinstance(b, str) else list(b)
    if not cfg["extract"]["backbone"]:
        raise ConfigError(f"{where}extract.backbone must name at least one backbone, got []")
    _check_range(cfg, where)
    return cfg


def _copy(v):
    return list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def _set_dotted(doc: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    if len(parts) != 2:
        raise ConfigError(f"override {dotted!r} must be section.key (e.g. data.limit)")
    doc.setdefault(parts[0], {})[parts[1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"data.limit=5"`` -> ``("data.limit", 5)``; the value is TOML (bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, _, value = text.partition("=")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def parse_config(text: str, *, source: str | None = None,
                 overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """Parse and validate TOML ``text``; ``overrides``: ``section.key=value`` strings or a dict."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_where(source)}invalid TOML: {exc}") from None
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    for key, value in items:
        _set_dotted(doc, key, value)
    return validate_config(doc, source)


def load_config(path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """Read, parse and validate a pipeline file; ``cfg["_file"]`` records where it came from."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            names = sorted(p.name for p in path.parent.glob("*.toml"))
            hint = _close(path.name, names) or (f" {path.parent} holds: {', '.join(names)}"
                                                if names else "")
        raise FileNotFoundError(f"pipeline file {str(path)!r} does not exist.{hint}")
    cfg = parse_config(path.read_text(encoding="utf-8"), source=str(path), overrides=overrides)
    cfg["_file"] = str(path)
    cfg["_text"] = path.read_text(encoding="utf-8")
    return cfg


# --------------------------------------------------------------------------- schema as docs
def _default_md(key: Key) -> str:
    d = key.default
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
                           "_plots": ", ".join(_plots())}.get(k.allowed.__name__,
                                                              "`featx backbones` or empty")
            else:
                allowed = ", ".join(f"`{a}`" for a in k.allowed)
            out.append(f"| `{k.name}` | {k.type.replace('|', ' or ')} | {_default_md(k)} | "
                       f"{allowed} | {k.doc} |")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- running
def _size(v):
    if isinstance(v, list):
        return (int(v[0]), int(v[1]))
    return None if not v else int(v)


def _weights(v: str):
    return None if v.lower() in ("none", "random", "") else v


def _data_path(cfg: dict) -> str:
    d = cfg["data"]
    if d["name"]:
        return d["name"]
    path = Path(d["path"]).expanduser()
    if not path.is_absolute() and not path.exists() and cfg.get("_file"):
        alt = Path(cfg["_file"]).parent / path
        if alt.exists():
            return str(alt)
    return str(path)


def _load_data(cfg: dict) -> dict:
    d = cfg["data"]
    fetch = d["fetch"] or None
    return resolve_data(_data_path(cfg), test_size=d["test_size"] or 0.2,
                        val_size=d["val_size"] or None, limit=d["limit"] or None, seed=d["seed"],
                        fetch=fetch)


def _merge_histories(history: Sequence[Mapping]) -> dict[str, list[float]]:
    """A FineTunedClassifier's per-phase records -> one series per metric across phases."""
    out: dict[str, list[float]] = {}
    for rec in history or []:
        if not rec.get("epochs"):
            continue  # the warm start has no epochs
        for k in ("loss", "val_loss", "accuracy", "val_accuracy"):
            out.setdefault(k, []).extend(float(v) for v in rec.get(k) or [])
    return {k: v for k, v in out.items() if v}


def _metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))}


def _finetune_kwargs(cfg: dict, strategy: str) -> dict:
    f = cfg["finetune"]
    params: dict[str, Any] = {}
    if strategy != "frozen" and f["lr_decay"] != 1.0:
        params["lr_decay"] = f["lr_decay"]
    if strategy == "blocks" and f["blocks"]:
        params["blocks"] = f["blocks"]
    if strategy == "last_n":
        params["n"] = f["n"]
    augment = f["augment"]
    return dict(
        strategy=strategy, strategy_params=params or None,
        schedule=[list(s) for s in f["schedule"]] if strategy == "staged" and f["schedule"]
        else None,
        epochs=f["epochs"], learning_rate=f["learning_rate"] or None, batch_size=f["batch_size"],
        augment="default" if augment is True else None if augment is False else dict(augment),
        dropout=f["dropout"], warm_start=f["warm_start"],
        class_weight=None if f["class_weight"] == "none" else f["class_weight"],
        validation_split=f["validation_split"], early_stopping=f["early_stopping"],
        patience=f["patience"], lr_schedule=f["lr_schedule"], random_state=cfg["data"]["seed"],
    )


def _say(echo, text: str) -> None:
    if echo is not None:
        echo(text)


def run_pipeline(config_or_path: str | os.PathLike | Mapping, *,
                 overrides: Sequence[str] | Mapping[str, Any] = (),
                 out: str | os.PathLike | None = None, verbose: int = 1,
                 echo: Callable[[str], Any] | None = print):
    """Run a pipeline: split -> extract (cached) -> heads -> fine-tune -> report.

    Parameters
    ----------
    config_or_path : path or dict
        A pipeline TOML file, or a config dict (validated here; raw TOML-shaped dicts are fine).
    overrides : list of "section.key=value" or dict
        Changes to the file's values (the CLI's ``--set``).
    out : path, optional
        Report folder (default ``report.out``, else ``reports/<file stem>``).
    verbose : int
        0 silent; 1 progress of extraction and fine-tuning.
    echo : callable or None
        Where the comparison table and the report folder are printed (default ``print``).

    Returns
    -------
    featx.report.Report
    """
    t_start = time.perf_counter()
    if isinstance(config_or_path, Mapping):
        raw = {k: v for k, v in config_or_path.items() if not k.startswith("_")}
        items = overrides.items() if isinstance(overrides, Mapping) \
            else map(parse_override, overrides)
        for k, v in items:
            _set_dotted(raw, k, v)
        cfg = {**validate_config(raw), **{k: v for k, v in config_or_path.items()
                                          if k.startswith("_")}}
    else:
        cfg = load_config(config_or_path, overrides)
    stem = Path(cfg.get("_file") or "pipeline").stem
    title = cfg["report"]["title"] or f"featx pipeline: {stem}"
    out_dir = Path(out or cfg["report"]["out"] or Path("reports") / stem)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    splits = _load_data(cfg)
    timings["data_s"] = time.perf_counter() - t
    train, test = splits["train"], splits["test"]
    class_names = train.class_names
    _say(echo, f"data: {_data_path(cfg)} (" + ", ".join(f"{s} {len(d)}" for s, d in
                                                       splits.items())
         + f", {len(class_names)} classes)")

    from featx.evaluate import evaluate_heads
    from featx.extract import extract_features

    e = cfg["extract"]
    rows: list[dict] = []
    predictions: dict[str, tuple] = {}  # model -> (y_true idx, y_pred idx)
    features: dict[str, dict] = {}
    t = time.perf_counter()
    t_heads = 0.0
    for backbone in e["backbone"]:
        fs = {s: extract_features(splits[s], backbone, weights=_weights(e["weights"]),
                                  input_size=_size(e["input_size"]), pooling=e["pooling"],
                                  layers=e["layers"] or None, resize=e["resize"],
                                  cache=e["cache"] or None, batch_size=e["batch_size"],
                                  verbose=verbose)
              for s in ("train", "test")}
        features[backbone] = fs
        th = time.perf_counter()
        table = evaluate_heads(fs["train"], fs["test"], heads=cfg["heads"]["names"],
                               cv=cfg["heads"]["cv"] or None)
        t_heads += time.perf_counter() - th
        for r in table:
            model = f"{backbone} + {r['name']}"
            est = r.get("estimator")
            if est is not None:
                predictions[model] = (fs["test"].labels, est.predict(fs["test"].features))
            rows.append({"model": model, "kind": "frozen", "backbone": backbone,
                         "method": r["name"], "accuracy": r.get("accuracy"),
                         "macro_f1": r.get("macro_f1"),
                         "balanced_accuracy": r.get("balanced_accuracy"),
                         "train_s": r.get("train_seconds"), "n_train": r.get("n_train")})
    timings["extract_s"] = time.perf_counter() - t - t_heads
    timings["heads_s"] = t_heads

    f = cfg["finetune"]
    histories: dict[str, dict] = {}
    t = time.perf_counter()
    if f["strategies"]:
        from featx.finetune import FineTunedClassifier

        ft_backbone = f["backbone"] or e["backbone"][0]
        ft_size = _size(f["input_size"]) or _size(e["input_size"])
        if isinstance(ft_size, int):  # FineTunedClassifier takes (h, w) only
            ft_size = (ft_size, ft_size)
        for strategy in f["strategies"]:
            name = f"{ft_backbone} fine-tuned ({strategy})"
            _say(echo, f"fine-tuning {ft_backbone} with strategy {strategy!r} ...")
            ts = time.perf_counter()
            clf = FineTunedClassifier(ft_backbone, weights=_weights(e["weights"]),
                                      input_size=ft_size, validation_data=splits.get("validation"),
                                      verbose=0 if verbose < 2 else 1,
                                      **_finetune_kwargs(cfg, strategy))
            clf.fit(train)
            train_s = time.perf_counter() - ts
            pred = clf.predict(test.paths)
            index = {c: i for i, c in enumerate(class_names)}
            y_pred = np.asarray([index[str(p)] for p in pred])
            predictions[name] = (test.labels, y_pred)
            histories[name] = _merge_histories(getattr(clf, "history_", None))
            size = getattr(clf, "input_size_", ft_size)
            rows.append({"model": name, "kind": "finetune", "backbone": ft_backbone,
                         "method": strategy, **_metrics(test.labels, y_pred),
                         "train_s": train_s, "n_train": len(train),
                         "epochs": sum(int(r.get("epochs") or 0) for r in clf.history_),
                         "input_size": list(size) if size else None})
    timings["finetune_s"] = time.perf_counter() - t

    t = time.perf_counter()
    report = _write(cfg, out_dir, title, splits, rows, predictions, histories, features, timings,
                    t_start)
    _say(echo, "")
    _say(echo, report.to_markdown().rstrip())
    _say(echo, "")
    if report.best:
        _say(echo, f"best: {report.best['model']} (test accuracy "
                   f"{report.best['accuracy']:.3f})")
    _say(echo, f"report: {report.out_dir}/report.md "
               f"({time.perf_counter() - t_start:.1f} s)")
    return report


def _write(cfg, out_dir, title, splits, rows, predictions, histories, features, timings,
           t_start):
    from sklearn.metrics import confusion_matrix

    from featx.report import few_shot_curve, write_report

    r = cfg["report"]
    train = splits["train"]
    class_names = train.class_names
    ranked = sorted(rows, key=lambda x: -(x.get("accuracy") or 0))
    confusion = None
    if ranked and ranked[0]["model"] in predictions:
        y_true, y_pred = predictions[ranked[0]["model"]]
        confusion = {"model": ranked[0]["model"], "class_names": class_names,
                     "matrix": confusion_matrix(y_true, y_pred,
                                                labels=range(len(class_names)))}
    t = time.perf_counter()
    few = None
    if r["few_shot"]:
        backbone = cfg["extract"]["backbone"][0]
        fs = features[backbone]
        known = {row["method"]: row["accuracy"] for row in rows
                 if row["kind"] == "frozen" and row["backbone"] == backbone}
        few = few_shot_curve(fs["train"], fs["test"],
                             r["few_shot_heads"] or cfg["heads"]["names"],
                             shots=[k or None for k in r["few_shot"]],
                             repeats=r["few_shot_repeats"], seed=cfg["data"]["seed"],
                             known=known)
        few["backbone"] = backbone
    timings["few_shot_s"] = time.perf_counter() - t
    aug = None
    if "augmentation" in r["plots"] and r["augment_images"]:
        aug = _augmentation_sample(cfg, train)
    data = {"source": _data_path(cfg), "splits": {s: len(d) for s, d in splits.items()},
            "class_names": class_names,
            "class_counts": {s: d.class_counts() for s, d in splits.items()}}
    timings["total_s"] = time.perf_counter() - t_start
    extra = {"config": {k: v for k, v in cfg.items() if not k.startswith("_")},
             "config_toml": cfg.get("_text"), "pipeline_file": cfg.get("_file"),
             "timings": timings}
    return write_report(out_dir, rows=rows, title=title, data=data, confusion=confusion,
                        histories=histories, few_shot=few, augmentation=aug, plots=r["plots"],
                        extra=extra)


def _augmentation_sample(cfg: dict, train) -> dict:
    """One image from each of the first classes, at the fine-tuning input size (max 160 px)."""
    from featx._image import read_image

    n = cfg["report"]["augment_images"]
    picks = []
    for k in range(len(train.class_names)):
        idx = np.flatnonzero(train.labels == k)
        if len(idx):
            picks.append(int(idx[0]))
        if len(picks) == n:
            break
    size = _size(cfg["finetune"]["input_size"]) or _size(cfg["extract"]["input_size"]) or 160
    h, w = (size, size) if isinstance(size, int) else size
    scale = min(1.0, 160 / max(h, w))
    h, w = max(16, int(h * scale)), max(16, int(w * scale))
    images = np.stack([read_image(train.paths[i], size=(h, w)) for i in picks])
    augment = cfg["finetune"]["augment"]
    return {"images": images, "titles": [train.class_names[train.labels[i]] for i in picks],
            "augment": "default" if augment in (True, False) else dict(augment)}


if __name__ == "__main__":  # pragma: no cover - `python -m featx.pipeline --schema`
    import sys

    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m featx.pipeline --schema   (prints the schema as markdown)")
    print(schema_markdown())
