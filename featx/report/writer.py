"""Reports: a folder with ``report.md``, ``report.json`` and PNG plots of a comparison run.

This module writes the folder; the numbers and pictures come from elsewhere: the few-shot curve
from :func:`featx.evaluate.few_shot_curve` (no matplotlib), the plots from
:mod:`featx.report.plots` (matplotlib, imported lazily).

Plots (:data:`PLOTS`), each drawn by a function ``featx.report.plots.plot_*(..., path) -> Path``:

==================  ===========================================================================
``comparison``      bar chart of the test accuracy of every model (frozen heads and fine-tunes)
``confusion``       confusion matrix of the best model on the test split
``learning_curves`` loss and accuracy per epoch of each fine-tune (from its ``history_``)
``few_shot``        test accuracy vs training examples per class, for the frozen heads
``augmentation``    a few training images next to augmented variants of them
``misclassified``   thumbnails of the best model's misclassified test images, worst first
==================  ===========================================================================

``report.json`` and ``report.md`` also hold the best model's per-class precision, recall and F1
(from its confusion matrix), the library versions (:func:`featx.report.details.library_versions`)
and, from a pipeline, the seed, backbones and feature-cache keys (``run``).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.audit import summary_markdown
from featx.evaluate import comparison_markdown
from featx.report.catalog import PLOTS
from featx.report.details import library_versions, per_class_metrics
from featx.report.plots import (
    PLOTS_EXTRA,
    PlotsSkippedWarning,
    cost_rows,
    few_shot_band_text,
    metric_value,
    plot_augmentation,
    plot_comparison,
    plot_confusion,
    plot_cost,
    plot_few_shot,
    plot_learning_curves,
    plot_misclassified,
    plots_available,
    worst_confusions,
)
from featx.trust.outputs import check_outputs, remove_output, write_output
from featx.utils.jsonable import jsonable
from featx.utils.tables import format_cell, markdown_table
from featx.utils.version import __version__

__all__ = ["PLOTS", "Report", "check_report_folder", "rows_to_markdown", "write_report"]



# --------------------------------------------------------------------------- markdown, folder
def rows_to_markdown(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A GitHub-markdown table of dict rows (columns: the union of keys in first-seen order).

    Cells by :func:`featx.utils.tables.format_cell`: 4 decimals, ``n/a`` for ``None`` and NaN,
    empty for a key the row lacks.

    Examples
    --------
    >>> print(rows_to_markdown([{"name": "a", "accuracy": 0.5}, {"name": "b", "size": [8, 8]}]))
    | name | accuracy | size |
    |---|---|---|
    | a | 0.5000 |  |
    | b |  | 8x8 |
    <BLANKLINE>
    """
    if not rows:
        return "_(no rows)_\n"
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns and not isinstance(r[k], dict)]
    return markdown_table(rows, columns, digits=4, missing="n/a") + "\n"


def _comparison(rows: Sequence[Mapping]) -> str:
    return comparison_markdown(rows) + "\n" if rows else "_(no rows)_\n"


@dataclass
class Report:
    """What :func:`write_report` (and :func:`featx.pipeline.run_pipeline`) produced.

    Attributes
    ----------
    out_dir : Path
        The report folder.
    rows : list of dict
        The comparison table (:data:`featx.evaluate.ROW_KEYS`), one row per model, best first.
    best : dict or None
        The best row.
    files : dict
        ``{"report.md": path, "report.json": path, <plot name>: path, ...}``.
    data : dict
        Everything written to ``report.json``.
    """

    out_dir: Path
    rows: list[dict]
    best: dict | None
    files: dict[str, Path] = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The comparison table as markdown (:func:`featx.evaluate.comparison_markdown`, as
        ``featx compare`` prints it)."""
        return _comparison(self.rows)

    def __repr__(self) -> str:
        best = f"{self.best.get('name')} {self.best.get('accuracy', float('nan')):.3f}" \
            if self.best else "none"
        return f"Report({str(self.out_dir)!r}, {len(self.rows)} models, best={best})"


def _markdown(d: dict, plots: dict[str, Path]) -> str:
    lines = [f"# {d.get('title') or 'featx report'}", ""]
    lines.append(f"featx {d.get('featx_version', '?')} · {d.get('created', '')} · "
                 f"total {d.get('timings', {}).get('total_s', float('nan')):.1f} s")
    lines.append("")
    data = d.get("data") or {}
    if data:
        lines += ["## Data", ""]
        lines.append(f"Source: `{data.get('source')}` · " + " · ".join(
            f"{s}: {n} images" for s, n in (data.get("splits") or {}).items())
            + f" · {len(data.get('class_names') or [])} classes")
        lines.append("")
        if data.get("class_counts"):
            lines.append(rows_to_markdown(
                [{"class": c, **{s: data["class_counts"][s].get(c, 0)
                                 for s in data["class_counts"]}}
                 for c in data.get("class_names") or []]))
    lines += ["## Comparison", "", _comparison(d.get("results") or [])]
    lines += _leaks_markdown(d.get("inspection"))
    best = d.get("best")
    if best:
        how = (f" (chosen by {best.get('cv_metric') or 'accuracy'} in cross-validation on the "
               f"training split: {format_cell(best.get('cv_score'), 3)})"
               if best.get("selected") and best.get("cv_score") is not None
               else " (the pipeline's one feature choice and its selection head)"
               if best.get("selected") else "")
        lines.append(f"**Best:** {best.get('name')} — test accuracy "
                     f"{format_cell(best.get('accuracy'), 3, missing='n/a')}{how}")
        lines.append("")
    lines += _selection_markdown(d.get("selection"))
    captions = {name: desc for name, (_, desc) in PLOTS.items()}
    if d.get("plots_not_drawn"):
        lines += [f"_Plots not drawn: {', '.join(d['plots_not_drawn'])} (matplotlib is not "
                  f"installed; `{PLOTS_EXTRA}` draws them)._", ""]
    for name, path in plots.items():
        lines += [f"### {captions.get(name, name).capitalize()}", "",
                  f"![{name}]({Path(path).name})", ""]
    per_class = d.get("per_class")
    if per_class and per_class.get("rows"):
        lines += [f"## Per class: `{per_class.get('name')}` on the test split", "",
                  "Precision: of the images predicted as the class, the share that are; recall: "
                  "of the images of the class, the share found; F1: their harmonic mean; "
                  "support: test images of the class.", "",
                  rows_to_markdown(per_class["rows"])]
    fs = d.get("few_shot")
    if fs and fs.get("scores"):
        lines += ["## Few-shot (frozen features)", "",
                  few_shot_band_text(fs, plotted="few_shot" in plots), ""]
        rows = [{"examples/class": k, **{h: v[i] for h, v in fs["scores"].items()}}
                for i, k in enumerate(fs["n_per_class"])]
        lines.append(rows_to_markdown(rows))
    for name, hist in (d.get("histories") or {}).items():
        if hist:
            lines += [f"## Fine-tune `{name}`: per epoch", ""]
            keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in hist]
            n = max(len(hist[k]) for k in keys) if keys else 0
            warm = hist.get("warm_start") or {}
            first = [{"epoch": "0 (warm start)", **{k: warm[k] for k in keys if k in warm}}] \
                if warm else []
            if warm:
                lines += ["Epoch 0 is the warm start: a linear probe fitted on frozen features "
                          "and folded into the classifier; later epochs beat it or not.", ""]
            lines.append(rows_to_markdown(first + [
                {"epoch": i + 1, **{k: hist[k][i] for k in keys if i < len(hist[k])}}
                for i in range(n)], columns=["epoch", *keys]))
    if d.get("inspection"):
        lines += ["## Know your data", "", *summary_markdown(d["inspection"],
                                                             link=d["inspection"].get("folder"))]
    if d.get("advice"):
        lines += ["## Advice", "", str(d["advice"].get("text", "")), ""]
    lines += _run_markdown(d)
    timings = d.get("timings") or {}
    if timings:
        lines += ["## Timings (seconds)", "", rows_to_markdown([timings]), ""]
    if d.get("config_toml"):
        lines += ["## Configuration", "", "```toml", d["config_toml"].rstrip(), "```", ""]
    return "\n".join(lines)


def _selection_markdown(sel: Mapping | None) -> list[str]:
    """The "Feature choice" section: how the candidates were weighed and what choosing cost."""
    if not sel:
        return []
    rule = ("the cheapest candidate (forward seconds per image) whose cross-validated score is "
            "within one standard error of the best one's (the standard error of their "
            "differences fold by fold: every candidate meets the same folds)"
            if sel.get("rule") == "one_se" else "the best cross-validated score, whatever it costs")
    tuned = (" The probe's parameter grid was then cross-validated on the chosen features, "
             "and a row replaces the probe only when the folds clearly rank it above (by more "
             "than the standard error of the paired fold differences)." if sel.get("tune")
             else "")
    budget = sel.get("budget")
    lines = ["## Feature choice", "",
             f"{sel.get('candidates')} candidates, scored by {sel.get('folds')}-fold "
             f"cross-validation of `{sel.get('probe')}` on the training split "
             f"({sel.get('metric')}); chosen: {rule}"
             + (f", within a budget of {budget!r}" if budget else "") + "." + tuned,
             "",
             f"What choosing cost: {sel.get('passes')} backbone passes in this run "
             f"({format_cell(sel.get('extract_s'), 1)} s of extraction, 0 when every feature "
             f"came from the cache; {sel.get('cold_passes')} on an empty cache) and "
             f"{format_cell(sel.get('select_s'), 1)} s of cross-validated probes.", ""]
    tied = sel.get("tied") or []
    if tied:
        lines += [f"{len(tied)} other candidate(s) score within the standard error of the "
                  "paired fold differences of the best cross-validated score: the folds cannot "
                  "rank them, so each is as good a choice by cross-validation, and their test "
                  "scores in the comparison above show how far that noise reaches: "
                  + "; ".join(f"`{name}`" for name in tied) + ".", ""]
    out = sel.get("eliminated") or []
    if out:
        lines += [f"Ruled out early by successive halving ({len(out)}; scored on a stratified "
                  "part of the training split, never extracted on the rest or on test):", "",
                  rows_to_markdown(out, columns=["features", "n_train", "cv_score", "cv_se",
                                                 "passes_per_image", "seconds_per_image"]), ""]
    return lines


def _leaks_markdown(inspection: Mapping | None) -> list[str]:
    """Under the comparison table: the warning when test images have a training twin, and
    each model's accuracy without them."""
    n = (inspection or {}).get("leaked", {}).get("test", 0)
    if not n:
        return []
    return [f"**Warning:** {n} test image(s) have a twin in the training split (an exact or "
            "near copy, see *Know your data*): the accuracies above count them. Without them:",
            "", rows_to_markdown(inspection.get("without_leaks") or [],
                                 ["name", "accuracy", "accuracy_without_leaks", "test_images"]),
            ""]


def _run_markdown(d: dict) -> list[str]:
    """The "Run" section: seed, backbones, cache keys, library versions."""
    run, versions = d.get("run") or {}, d.get("versions") or {}
    lines = ["## Run", ""]
    if run.get("seed") is not None:
        lines.append(f"- seed: `{run['seed']}`")
    for b in run.get("backbones") or []:
        cached = b.get("cache_file")
        lines.append(f"- backbone `{b.get('backbone')}` (weights `{b.get('weights')}`): "
                     f"cache key `{b.get('cache_key')}`"
                     + (f", features in `{cached}`" if cached else ""))
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines + [""] if len(lines) > 2 else []


def check_report_folder(out_dir: str | os.PathLike, plots: Sequence[str] = tuple(PLOTS)) -> None:
    """Raise :class:`~featx.errors.OutputExistsError` when ``out_dir`` holds a file featx did not
    write (or one changed since) under a name the report writes: ``report.md``, ``report.json``
    or the file of one of ``plots``. Nothing is touched; :func:`featx.pipeline.run_pipeline`
    calls it before any work.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = (Path(folder) / "comparison.png").write_bytes(b"a user's picture")
    ...     check_report_folder(folder, plots=[])  # the report draws no comparison.png
    ...     check_report_folder(folder)
    Traceback (most recent call last):
    ...
    featx.errors.OutputExistsError: out_dir=...comparison.png' is a file featx did not write; ...
    """
    out = Path(out_dir)
    names = ["report.md", "report.json", *(PLOTS[p][0] for p in plots if p in PLOTS)]
    check_outputs([out / name for name in names], param="out_dir",
                  hint="choose another report folder, or move those files away yourself")


def write_report(out_dir: str | os.PathLike, *, rows: Sequence[Mapping], title: str = "",
                 data: Mapping | None = None, confusion: Mapping | None = None,
                 histories: Mapping | None = None, few_shot: Mapping | None = None,
                 augmentation: Mapping | None = None, plots: Sequence[str] = tuple(PLOTS),
                 misclassified: Mapping | None = None, extra: Mapping | None = None,
                 best: str | None = None) -> Report:
    """Write ``report.md``, ``report.json`` and the requested PNGs into ``out_dir``.

    Parameters
    ----------
    rows : list of dict
        One row per model in the comparison schema (:data:`featx.evaluate.ROW_KEYS`), with at
        least ``name``, ``kind`` (``"head"`` or ``"finetune"``, which colours the bars) and
        ``accuracy``; an ``estimator`` is left out.
    confusion : dict, optional
        ``{"name": str, "matrix": (k, k), "class_names": [...]}`` of the best model; its
        per-class precision, recall and F1 (``per_class``) are computed from it.
    histories : dict, optional
        ``{fine-tune name: history dict}`` (Keras ``History.history``: ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` per epoch), optionally with ``"warm_start": {"accuracy",
        "val_accuracy", "val_loss"}``, drawn and tabled as epoch 0.
    few_shot : dict, optional
        The output of :func:`featx.evaluate.few_shot_curve`.
    augmentation : dict, optional
        ``{"images": uint8 (n, h, w, 3), "augment": option dict or "default", "titles": [...]}``.
    plots : sequence of str
        Names from :data:`PLOTS`; a plot whose input is missing is left out. Without
        matplotlib none is drawn: one :class:`~featx.report.plots.PlotsSkippedWarning` says how
        to get them, and the report lists them as not drawn (``plots_not_drawn``).
    misclassified : dict, optional
        ``{"name": str, "paths": [...], "true": [class index...], "pred": [...],
        "class_names": [...]}``: the best model's test predictions, for the gallery.
    extra : dict, optional
        More keys for ``report.json`` (``config``, ``timings``, ``advice``, ``run``: ``{"seed",
        "backbones": [{"backbone", "weights", "cache_key", "cache_file"}]}``, ...).
    best : str, optional
        The name of the row chosen without the test split (a pipeline's feature choice, by
        cross-validation on the training split): the report's ``best``. Default: the row of
        highest test accuracy.

    Raises
    ------
    OutputExistsError
        If ``out_dir`` holds a file featx did not write (or one edited since) named like a file
        of the report (:func:`check_report_folder`): checked before anything is written, and
        left as it is. featx's own files of an earlier report are replaced, and its plots that
        this report does not draw are removed; nothing else in the folder is touched.
    """
    unknown = [p for p in plots if p not in PLOTS]
    if unknown:
        raise ValueError(f"plots has unknown name(s) {unknown}; allowed: {list(PLOTS)}")
    out = Path(out_dir)
    check_report_folder(out, plots)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(({k: v for k, v in r.items() if k != "estimator"} for r in rows),
                  key=lambda r: -np.nan_to_num(metric_value(r, "accuracy"), nan=-1))
    chosen = [r for r in rows if best is not None and r.get("name") == best]
    if best is not None and not chosen:
        raise ValueError(f"best={best!r} names no row; rows: {[r.get('name') for r in rows]}")
    best = chosen[0] if chosen else rows[0] if rows else None
    made: dict[str, Path] = {}
    not_drawn: list[str] = []
    if plots and not plots_available():
        # The report is the run's result and the plots only illustrate it: a base install
        # (no matplotlib) writes the tables and says what it left out, instead of failing.
        not_drawn, plots = list(plots), ()
        warnings.warn(f"report plots not drawn ({', '.join(not_drawn)}): matplotlib is not "
                      f"installed; `{PLOTS_EXTRA}` draws them", PlotsSkippedWarning,
                      stacklevel=2)
    inputs = {
        "comparison": (bool(rows), lambda p: plot_comparison(rows, p)),
        "confusion": (confusion is not None, lambda p: plot_confusion(
            confusion["matrix"], confusion["class_names"], p,
            title=f"Confusion matrix: {confusion.get('name', '')}")),
        "learning_curves": (bool(histories) and any(histories.values()),
                            lambda p: plot_learning_curves(
                                {k: v for k, v in histories.items() if v}, p)),
        "few_shot": (bool(few_shot and few_shot.get("scores")),
                     lambda p: plot_few_shot(few_shot, p)),
        "augmentation": (augmentation is not None and len(augmentation.get("images", [])) > 0,
                         lambda p: plot_augmentation(
                             augmentation["images"], p, augment=augmentation.get("augment",
                                                                                  "default"),
                             titles=augmentation.get("titles"))),
        "cost": (len(cost_rows(rows)) > 1,
                 lambda p: plot_cost(rows, p, best=best.get("name") if best else None)),
        "misclassified": (misclassified is not None and len(misclassified.get("paths", [])) > 0,
                          lambda p: plot_misclassified(
                              misclassified["paths"], misclassified["true"],
                              misclassified["pred"], misclassified["class_names"], p,
                              title=f"Misclassified by {misclassified.get('name', 'the model')}")),
    }
    for name in plots:
        ready, draw = inputs[name]
        if ready:
            made[name] = draw(out / PLOTS[name][0])
    for name, (file, _) in PLOTS.items():  # featx's plot of an earlier report in this folder
        if name not in made:
            remove_output(out / file)  # a user's file of that name stays
    payload = {
        "title": title, "featx_version": _version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": dict(data or {}), "results": rows, "best": best,
        "confusion": dict(confusion) if confusion else None,
        "per_class": {"name": confusion.get("name"), "rows": per_class_metrics(
            confusion["matrix"], confusion["class_names"])} if confusion else None,
        "misclassified": _misclassified(misclassified),
        "histories": dict(histories or {}), "few_shot": dict(few_shot) if few_shot else None,
        "plots": {k: v.name for k, v in made.items()}, "plots_not_drawn": not_drawn,
        "versions": library_versions(),
        **dict(extra or {}),
    }
    payload = jsonable(payload, nan_as_none=True)
    write_output(out / "report.json", json.dumps(payload, indent=2) + "\n", param="out_dir")
    write_output(out / "report.md", _markdown(payload, made), param="out_dir")
    files = {"report.md": out / "report.md", "report.json": out / "report.json", **made}
    return Report(out, rows, best, files, payload)


def _misclassified(m: Mapping | None) -> dict | None:
    """The gallery's images for ``report.json``: the count, and those shown, worst first."""
    if m is None:
        return None
    true, pred, names = np.asarray(m["true"]), np.asarray(m["pred"]), m["class_names"]
    shown = worst_confusions(true, pred)
    return {"name": m.get("name"), "n_wrong": int(np.sum(true != pred)), "n_test": len(true),
            "shown": [{"path": str(m["paths"][i]), "true": names[true[i]],
                       "predicted": names[pred[i]]} for i in shown]}


def _version() -> str:
    return __version__
