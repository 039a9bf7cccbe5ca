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

import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featx._pipeline_run import (
    _data_path,
    _finetune_kwargs,
    _load_data,
    _merge_histories,
    _metrics,
    _say,
    _size,
    _weights,
    _write,
)
from featx._pipeline_schema import (
    SCHEMA,
    ConfigError,
    _close,
    _where,
    schema_markdown,
    validate_config,
)
from featx._pipeline_schema import SECTIONS as SECTIONS  # re-exported
from featx._pipeline_schema import Key as Key  # re-exported

__all__ = ["SCHEMA", "ConfigError", "load_config", "parse_config", "run_pipeline",
           "schema_markdown"]


# --------------------------------------------------------------------------- reading
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


# --------------------------------------------------------------------------- running
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
                                  decoder=e["decoder"],
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
        for strategy in f["strategies"]:
            name = f"{ft_backbone} fine-tuned ({strategy})"
            _say(echo, f"fine-tuning {ft_backbone} with strategy {strategy!r} ...")
            ts = time.perf_counter()
            clf = FineTunedClassifier(ft_backbone, weights=_weights(e["weights"]),
                                      input_size=ft_size, cache=e["cache"] or None,
                                      decoder=e["decoder"],
                                      validation_data=splits.get("validation"),
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


if __name__ == "__main__":  # pragma: no cover - `python -m featx.pipeline --schema`
    import sys

    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m featx.pipeline --schema   (prints the schema as markdown)")
    print(schema_markdown())
