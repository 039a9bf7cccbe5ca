"""The steps behind :func:`featx.pipeline.run_pipeline`: config values -> library arguments,
data loading, the comparison (:func:`featx.comparison.run_comparison`, once per backbone),
fine-tuning histories, and writing the report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featx.backbones import random_weights
from featx.images import is_url
from featx.pipeline.config import load_config, parse_override, set_dotted, with_values
from featx.pipeline.schema import selects_features, validate_config
from featx.sources import resolve_data
from featx.utils.config import config_context
from featx.utils.progress import say


def _size(v):
    if isinstance(v, list):
        return (int(v[0]), int(v[1]))
    return None if not v else int(v)


def _weights(v: str):
    return None if v == "" or random_weights(v) else v


def _data_path(cfg: dict) -> str:
    d = cfg["data"]
    if d["name"]:
        return d["name"]
    if is_url(d["path"]):  # Path() would fold "s3://b/x" into "s3:/b/x"
        return d["path"]
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
                        fetch=fetch, path_column=d["path_column"], label_column=d["label_column"],
                        format=d["format"] or None, allow_local=d["allow_local"])


def _merge_histories(history: Sequence[Mapping]) -> dict[str, Any]:
    """A FineTunedClassifier's per-phase records -> one series per metric across phases, and
    the warm start's metrics (no epochs: the report's epoch 0) under ``"warm_start"``."""
    out: dict[str, Any] = {}
    for rec in history or []:
        if not rec.get("epochs"):
            if rec.get("phase") == "warm_start":
                warm = {k: float(rec[k][-1]) for k in ("accuracy", "val_accuracy", "val_loss")
                        if rec.get(k)}
                if warm:
                    out["warm_start"] = warm
            continue
        for k in ("loss", "val_loss", "accuracy", "val_accuracy"):
            out.setdefault(k, []).extend(float(v) for v in rec.get(k) or [])
    return {k: v for k, v in out.items() if v}


def _finetune_kwargs(cfg: dict, strategy: str) -> dict:
    """The FineTunedClassifier parameters of ``strategy`` (the strategy itself left out)."""
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
        strategy_params=params or None,
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


def _select(cfg, train, test, extract_params, verbose, echo):
    """The feature-choice step (:func:`featx.comparison.select_features`) of a pipeline."""
    from featx.comparison import feature_choices, select_features

    e, sel = cfg["extract"], cfg["select"]
    choices = feature_choices(e["backbone"], taps=e["taps"], views=e["views"],
                              concat=e["concat"], norms=sel["norms"],
                              sizes=e["sizes"] or [None])
    _say(echo, f"select: {len(choices)} candidate features, {sel['folds']}-fold CV "
               f"{sel['metric']} on the training split with {sel['probe']!r}")
    heads = cfg["heads"]["names"]
    return select_features(
        train, test, choices, heads=heads, select_head=sel["probe"], folds=sel["folds"],
        metric=sel["metric"], rule=sel["rule"], budget=sel["budget"] or None,
        halving=sel["halving"], tune=sel["tune"],
        head_options=_head_options(cfg), seed=cfg["data"]["seed"], cache=e["cache"] or None,
        extract_params=dict(extract_params, weights=_weights(e["weights"]),
                            input_size=_size(e["input_size"]), decoder=e["decoder"]),
        verbose=verbose, echo=echo)


def _write(cfg, out_dir, title, splits, rows, sources, comparisons, histories, timings,
           t_start, selected=None, selection=None, verbose=1, inspection=None):
    """``sources``: row name -> (its Comparison, its name there); ``selected``: the row a
    feature-choice step chose on the training split (the report's best), if any."""
    from sklearn.metrics import confusion_matrix

    from featx.evaluate import few_shot_curve
    from featx.report import write_report
    from featx.report.plots import metric_value

    r = cfg["report"]
    train = splits["train"]
    class_names = train.class_names
    ranked = sorted(rows, key=lambda x: (x["name"] != selected,
                                         -np.nan_to_num(metric_value(x, "accuracy"), nan=-1)))
    confusion = misclassified = None
    if ranked:
        comparison, name = sources[ranked[0]["name"]]
        predicted = comparison.predictions(name)
        confusion = {"name": ranked[0]["name"], "class_names": class_names,
                     "matrix": confusion_matrix(comparison.test.labels, predicted,
                                                labels=range(len(class_names)))}
        misclassified = {"name": ranked[0]["name"], "paths": list(comparison.test.paths),
                         "true": np.asarray(comparison.test.labels), "pred": predicted,
                         "class_names": class_names}
    t = time.perf_counter()
    few = None
    if r["few_shot"]:
        backbone = cfg["extract"]["backbone"][0]
        first = comparisons[backbone]
        known = {row["name"]: row["accuracy"] for row in first.table if row["kind"] == "head"}
        if selected:  # the chosen features' first view; scores measured anew
            known = {}
        few_heads = r["few_shot_heads"] or cfg["heads"]["names"]
        if verbose:
            shots = ", ".join(str(k or "all") for k in r["few_shot"])
            say(f"few-shot: {', '.join(few_heads)} at {shots} images per class, "
                f"{r['few_shot_repeats']} repeat(s) ...")
        few = few_shot_curve(first.train, first.test, few_heads,
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
    if verbose:  # the plots named only when they can be drawn (else a warning says why not)
        from featx.report.plots import plots_available

        drawn = r["plots"] if plots_available() else []
        say(f"report: writing {out_dir}" + (f" with plots ({', '.join(drawn)})"
                                            if drawn else "") + " ...")
    extra = {"config": {k: v for k, v in cfg.items() if not k.startswith("_")},
             "config_toml": cfg.get("_text"), "pipeline_file": cfg.get("_file"),
             "timings": timings, "selection": selection, "run": {
                 "seed": cfg["data"]["seed"],
                 "backbones": [{"backbone": b, "weights": cfg["extract"]["weights"],
                                "cache_key": (getattr(c.train, "attrs", None) or {}).get("key"),
                                "cache_file": str(c.train.path) if getattr(c.train, "path", None)
                                else None}
                               for b, c in comparisons.items()]}}
    if inspection is not None:
        extra["inspection"] = _inspection_summary(inspection, rows, sources)
    return write_report(out_dir, rows=rows, title=title, data=data, confusion=confusion,
                        histories=histories, few_shot=few, augmentation=aug, plots=r["plots"],
                        misclassified=misclassified, extra=extra, best=selected)


def _inspect(cfg: dict, splits: dict, out_dir: Path, extract_params: dict, verbose: int, echo):
    """The ``[inspect]`` step (:func:`featx.audit.inspect`): its folder ``<out>/inspect``."""
    from featx.audit import inspect

    e, i = cfg["extract"], cfg["inspect"]
    found = inspect(splits, backbone=e["backbone"][0], weights=_weights(e["weights"]),
                    input_size=_size(e["input_size"]), cache=e["cache"] or None,
                    folds=i["folds"], threshold=i["threshold"] or None, seed=cfg["data"]["seed"],
                    verbose=verbose, extract_params=dict(extract_params, decoder=e["decoder"]))
    found.source = _data_path(cfg)
    found.write(out_dir / "inspect", gallery=i["gallery"])
    counts = ", ".join(f"{k} {v}" for k, v in found.counts().items()) or "nothing found"
    _say(echo, f"inspect: {counts} (findings in {out_dir / 'inspect'})")
    return found


def _inspection_summary(found, rows, sources) -> dict:
    """The inspection's numbers for the report, with each model's test accuracy without the
    leaked test images (a test image with a training twin)."""
    summary = {**found.summary(), "folder": "inspect/report.md"}
    leaked = found.leaked("test")
    scored = []
    for row in rows if leaked else []:
        comparison, name = sources[row["name"]]
        keep = np.array([p not in leaked for p in comparison.test.paths])
        if not keep.any():
            continue
        predicted = np.asarray(comparison.predictions(name))
        truth = np.asarray(comparison.test.labels)
        scored.append({"name": row["name"], "accuracy": row.get("accuracy"),
                       "accuracy_without_leaks": float(np.mean(predicted[keep] == truth[keep])),
                       "test_images": int(keep.sum())})
    summary["without_leaks"] = scored
    return summary


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
    verbose : int, default=1
        ``1``: progress of extraction and fine-tuning, and one line as the heads, few-shot and
        report phases start (stderr, or the ``"featx"`` logger when it has a handler); ``0``
        silent.
    echo : callable or None
        Where the comparison table and the report folder are printed (default ``print``).

    Returns
    -------
    featx.report.Report
        Its ``rows`` are the comparison's (:data:`featx.evaluate.ROW_KEYS`, best first, no
        estimators): the heads of every backbone and the fine-tunes, one
        :func:`featx.comparison.run_comparison` per backbone; row names get a ``<backbone>/``
        prefix when several backbones are compared.
    """
    t_start = time.perf_counter()
    if isinstance(config_or_path, Mapping):
        raw = {k: v for k, v in config_or_path.items() if not k.startswith("_")}
        items = overrides.items() if isinstance(overrides, Mapping) \
            else map(parse_override, overrides)
        items = list(items)
        for k, v in items:
            set_dotted(raw, k, v)
        cfg = {**validate_config(raw), **{k: v for k, v in config_or_path.items()
                                          if k.startswith("_")}}
        if cfg.get("_text"):  # the text the run follows, as the report shows it
            cfg["_text"] = with_values(cfg["_text"], items, note="overridden for this run")
    else:
        cfg = load_config(config_or_path, overrides)
    # [extract] runtime is the run's default for every extraction in it (estimators, comparisons)
    with config_context(runtime=cfg["extract"]["runtime"] or None):
        return _run_config(cfg, out, verbose, echo, t_start)


def _head_options(cfg: dict) -> dict | None:
    """``[heads] imbalance`` as :func:`featx.evaluate.evaluate_heads`' ``head_options``."""
    imbalance = cfg["heads"]["imbalance"]
    return None if imbalance == "none" else {"imbalance": imbalance}


def _run_config(cfg: dict, out, verbose: int, echo, t_start: float):
    """:func:`run_pipeline` on a validated config."""
    stem = Path(cfg.get("_file") or "pipeline").stem
    title = cfg["report"]["title"] or f"featx pipeline: {stem}"
    out_dir = Path(out or cfg["report"]["out"] or Path("reports") / stem)
    from featx.report import check_report_folder

    # a user's file where the report goes is refused now, before any work, not after it
    check_report_folder(out_dir, cfg["report"]["plots"])
    if cfg["inspect"]["enabled"]:
        from featx.audit import FILES
        from featx.trust.outputs import check_outputs

        check_outputs([out_dir / "inspect" / name for name in FILES], param="out_dir")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    splits = _load_data(cfg)
    timings["data_s"] = time.perf_counter() - t
    train, test = splits["train"], splits["test"]
    class_names = train.class_names
    _say(echo, f"data: {_data_path(cfg)} (" + ", ".join(f"{s} {len(d)}" for s, d in
                                                       splits.items())
         + f", {len(class_names)} classes)")

    from featx.comparison import resolve_rule, run_comparison

    e, f = cfg["extract"], cfg["finetune"]
    strategies = list(f["strategies"])
    ft_backbone = (f["backbone"] or e["backbone"][0]) if strategies else None
    plan = [(b, cfg["heads"]["names"], strategies if b == ft_backbone else [])
            for b in e["backbone"]]
    if ft_backbone is not None and ft_backbone not in e["backbone"]:
        plan.append((ft_backbone, [], strategies))
    ft_size = _size(f["input_size"]) or _size(e["input_size"])
    ft_params = {s: {"input_size": ft_size, **_finetune_kwargs(cfg, s)} for s in strategies}
    extract_params = dict(pooling=e["pooling"], layers=e["layers"] or None, resize=e["resize"],
                          batch_size=e["batch_size"])
    rows: list[dict] = []
    sources: dict[str, tuple] = {}  # row name -> (Comparison, its name there)
    comparisons: dict = {}  # backbone -> Comparison
    histories: dict[str, dict] = {}
    for key in ("extract_s", "heads_s", "finetune_s"):
        timings[key] = 0.0
    selected = chosen = None
    if selects_features(cfg):  # feature choice: candidates scored by CV on train, every one a row
        selection = _select(cfg, train, test, extract_params, verbose, echo)
        selected = selection.selected
        comparisons[e["backbone"][0]] = selection
        sel = cfg["select"]
        chosen = {"candidates": sum(bool(r.get("candidate")) for r in selection.table)
                  + len(selection.eliminated), "eliminated": selection.eliminated,
                  "halving": sel["halving"],
                  "folds": sel["folds"], "probe": sel["probe"], "metric": sel["metric"],
                  "rule": resolve_rule(sel["rule"], sel["budget"] or None),
                  "budget": sel["budget"] or None,
                  "norms": sel["norms"], "tune": sel["tune"],
                  "passes": int(sum(selection.bank.passes.values())),
                  "cold_passes": selection.cold_passes, "tied": selection.tied,
                  "extract_s": selection.timings["extract_s"],
                  "select_s": selection.timings["select_s"]}
        for key, seconds in selection.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
        for row in selection.table:
            sources[row["name"]] = (selection, row["name"])
            rows.append({k: v for k, v in row.items() if k != "estimator"})
        plan = [(ft_backbone, [], strategies)] if strategies else []
    for backbone, heads, backbone_strategies in plan:
        comparison = run_comparison(
            train, test, validation=splits.get("validation"), backbone=backbone,
            weights=_weights(e["weights"]), heads=heads, finetune=backbone_strategies,
            finetune_params={s: ft_params[s] for s in backbone_strategies},
            cache=e["cache"] or None, input_size=_size(e["input_size"]), decoder=e["decoder"],
            extract_params=extract_params, cv=cfg["heads"]["cv"] or None, verbose=verbose,
            echo=echo, head_options=_head_options(cfg))
        comparisons[backbone if backbone not in comparisons else f"{backbone} (fine-tune)"] = \
            comparison
        for key, seconds in comparison.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
        for row in comparison.table:
            name = f"{backbone}/{row['name']}" if len(plan) > 1 or selected else row["name"]
            sources[name] = (comparison, row["name"])
            rows.append({**{k: v for k, v in row.items() if k != "estimator"}, "name": name})
            if row["kind"] == "finetune":
                histories[name] = _merge_histories(row["estimator"].history_)

    inspection = None
    if cfg["inspect"]["enabled"]:
        t = time.perf_counter()
        inspection = _inspect(cfg, splits, out_dir, extract_params, verbose, echo)
        timings["inspect_s"] = time.perf_counter() - t
    t = time.perf_counter()
    report = _write(cfg, out_dir, title, splits, rows, sources, comparisons, histories, timings,
                    t_start, selected, chosen, verbose, inspection)
    _say(echo, "")
    _say(echo, report.to_markdown().rstrip())
    _say(echo, "")
    if report.best:
        how = ("" if not selected else " (the pipeline's feature choice)"
               if report.best.get("cv_score") is None
               else " (chosen by cross-validation on the training split)")
        _say(echo, f"best: {report.best['name']} (test accuracy "
                   f"{report.best['accuracy']:.3f}){how}")
    _say(echo, f"report: {report.out_dir}/report.md "
               f"({time.perf_counter() - t_start:.1f} s)")
    return report
