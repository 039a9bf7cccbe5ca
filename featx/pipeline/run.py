"""The steps behind :func:`featx.pipeline.run_pipeline`: config values -> library arguments,
data loading, fine-tuning metrics and histories, and writing the report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featx.pipeline.config import load_config, parse_override, set_dotted
from featx.pipeline.schema import validate_config
from featx.sources import resolve_data


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


def _write(cfg, out_dir, title, splits, rows, predictions, histories, features, timings,
           t_start):
    from sklearn.metrics import confusion_matrix

    from featx.report import write_report
    from featx.report.few_shot import few_shot_curve

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
    from featx.images import read_image

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
            set_dotted(raw, k, v)
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
