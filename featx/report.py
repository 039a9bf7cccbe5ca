"""Reports: a folder with ``report.md``, ``report.json`` and PNG plots of a comparison run.

The numbers are computed here without matplotlib (the few-shot curve is cheap: features are cached,
so each point is a head fit on a per-class subsample of the training features); only the plotting
functions need it, and they import it lazily and draw with the Agg canvas (no pyplot, no global
backend switch), failing with the ``pip install`` line when it is missing.

Plots, each a function ``plot_*(..., path) -> Path``:

==================  ===========================================================================
``comparison``      bar chart of the test accuracy of every model (frozen heads and fine-tunes)
``confusion``       confusion matrix of the best model on the test split
``learning_curves`` loss and accuracy per epoch of each fine-tune (from its ``history_``)
``few_shot``        test accuracy vs training examples per class, for the frozen heads
``augmentation``    a few training images next to augmented variants of them
==================  ===========================================================================
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PLOTS", "Report", "augment_images", "few_shot_curve", "plot_augmentation",
    "plot_comparison", "plot_confusion", "plot_few_shot", "plot_learning_curves",
    "rows_to_markdown", "write_report",
]

#: Plot name -> (file name, what it shows). ``[report] plots`` takes these names.
PLOTS: dict[str, tuple[str, str]] = {
    "comparison": ("comparison.png", "test accuracy of every model"),
    "confusion": ("confusion.png", "confusion matrix of the best model on the test split"),
    "learning_curves": ("learning_curves.png", "fine-tuning loss and accuracy per epoch"),
    "few_shot": ("few_shot.png", "accuracy vs training examples per class (frozen heads)"),
    "augmentation": ("augmentation.png", "training images and augmented variants"),
}

_DPI = 100


# --------------------------------------------------------------------------- matplotlib, lazily
def _figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg canvas (no pyplot state, no GUI)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "featx's report plots need matplotlib, which is not installed; run "
            "`pip install featx[plots]` (or `pip install matplotlib`), or pass plots=[] "
            "(`[report] plots = []`) to write the report without them"
        ) from None
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, facecolor="white")
    return path


def _metric_value(row: Mapping, metric: str) -> float:
    v = row.get(metric)
    return float("nan") if v is None else float(v)


# --------------------------------------------------------------------------- plots
def plot_comparison(rows: Sequence[Mapping], path, *, metric: str = "accuracy",
                    label: str = "model", title: str | None = None) -> Path:
    """Horizontal bars of ``row[metric]`` per ``row[label]``, best on top; fine-tunes hatched."""
    rows = sorted(rows, key=lambda r: -np.nan_to_num(_metric_value(r, metric), nan=-1))
    fig = _figure(7, 0.9 + 0.38 * max(1, len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    values = [_metric_value(r, metric) for r in rows]
    colors = ["#d62728" if r.get("kind") == "finetune" else "#1f77b4" for r in rows]
    bars = ax.barh(y, np.nan_to_num(values), color=colors)
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2,
                "n/a" if math.isnan(v) else f"{v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, [str(r.get(label, "?")) for r in rows], fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel(f"test {metric}")
    ax.set_title(title or f"Test {metric} (blue: frozen features + head, red: fine-tuned)",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_confusion(matrix, class_names: Sequence[str], path, *, title: str = "") -> Path:
    """Row-normalised confusion matrix (counts in the cells), true class down, predicted across."""
    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    size = max(3.5, min(12.0, 1.0 + 0.55 * k))
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix", fontsize=10)
    return _save(fig, path)


def plot_learning_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path) -> Path:
    """Loss (left) and accuracy (right) per epoch for every fine-tune; validation dashed."""
    fig = _figure(10, 4)
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    cycle = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, (name, hist) in enumerate(histories.items()):
        c = cycle[i % len(cycle)]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = hist.get(prefix + key)
                if values:
                    ax.plot(range(1, len(values) + 1), values, style, color=c, marker="o",
                            markersize=3, label=f"{name} {prefix or 'train_'}{key}")
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax_acc.set_ylim(0, 1.02)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Fine-tuning learning curves", fontsize=10)
    return _save(fig, path)


def plot_few_shot(curve: Mapping, path) -> Path:
    """Accuracy vs examples per class (log x), a line per head, a ±1 std band; chance dotted."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    x = np.asarray(curve["n_per_class"], dtype=float)
    for head, values in curve["scores"].items():
        mean = np.asarray(values, dtype=float)
        std = np.asarray(curve.get("std", {}).get(head, np.zeros_like(mean)), dtype=float)
        ax.plot(x, mean, marker="o", label=head)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    if curve.get("chance"):
        ax.axhline(curve["chance"], linestyle=":", color="grey", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(x, [str(int(v)) for v in x])
    ax.set_xlabel("training examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Few-shot curve ({curve.get('backbone', 'frozen features')})", fontsize=10)
    return _save(fig, path)


def augment_images(images: np.ndarray, n_variants: int = 5, *, augment: Any = "default",
                   seed: int = 0) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 -> ``(n, n_variants, h, w, 3)`` uint8 augmented copies.

    Uses the fine-tuning augmentation table (:mod:`featx._augment`) when present, else Keras'
    RandomFlip / RandomRotation / RandomZoom / RandomContrast.
    """
    import keras

    try:
        from featx._augment import build_augmentation, resolve_augment

        layers = build_augmentation(resolve_augment(augment), seed=seed)
    except ImportError:  # pragma: no cover - _augment ships with featx
        layers = [keras.layers.RandomFlip("horizontal", seed=seed),
                  keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
                  keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
                  keras.layers.RandomContrast(0.1, value_range=(0, 255), seed=seed + 3)]
    x = np.asarray(images, dtype="float32")
    out = []
    for _ in range(n_variants):
        y = x
        for layer in layers:
            y = layer(y, training=True)
        out.append(np.clip(np.rint(keras.ops.convert_to_numpy(y)), 0, 255).astype(np.uint8))
    return np.stack(out, axis=1)


def plot_augmentation(images: np.ndarray, path, *, n_variants: int = 5, augment: Any = "default",
                      seed: int = 0, titles: Sequence[str] | None = None) -> Path:
    """A grid: each row an original image then ``n_variants`` augmented versions of it."""
    images = np.asarray(images)
    variants = augment_images(images, n_variants, augment=augment, seed=seed)
    n = len(images)
    fig = _figure(1.6 * (n_variants + 1), 1.6 * n + 0.4)
    for i in range(n):
        for j in range(n_variants + 1):
            ax = fig.add_subplot(n, n_variants + 1, i * (n_variants + 1) + j + 1)
            ax.imshow(images[i] if j == 0 else variants[i, j - 1])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"augmented {j}", fontsize=8)
            if j == 0 and titles is not None:
                ax.set_ylabel(str(titles[i]), fontsize=8)
    fig.suptitle("Fine-tuning augmentation preview", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------- few-shot numbers
def _subsample_per_class(labels: np.ndarray, k: int | None, rng) -> np.ndarray:
    if k is None:
        return np.arange(len(labels))
    idx = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        idx.extend(rng.choice(members, size=min(k, len(members)), replace=False).tolist())
    return np.sort(np.asarray(idx, dtype=np.int64))


def few_shot_curve(train, test, heads: Sequence[str] = ("logreg",), *,
                   shots: Sequence[int | None] = (1, 2, 5, 10, 20, None), repeats: int = 3,
                   seed: int = 0, make=None, known: Mapping[str, float] | None = None) -> dict:
    """Test accuracy of each head fit on ``k`` training examples per class, for every ``k``.

    Parameters
    ----------
    train, test : FeatureSet (or anything with ``features`` and ``labels``)
        Cached features; nothing runs through a backbone here.
    heads : sequence of str
        Head names for :func:`featx.heads.make_head` (or any name ``make`` accepts).
    shots : sequence of int or None
        Examples per class; ``None`` (or 0) means all of them. Values above the smallest class
        are capped, duplicates dropped.
    repeats : int
        Random subsamples per point (averaged; the standard deviation is kept).
    make : callable, optional
        ``make(name) -> estimator``; default :func:`featx.heads.make_head`, called for each point
        with that point's ``n_samples`` and ``n_classes`` so that heads fit few examples
        (``knn``'s ``n_neighbors`` capped, ``mlp`` without early stopping).
    known : dict, optional
        ``{head: accuracy}`` already measured on the whole training set (e.g. the comparison
        table's): used for the "all" point instead of fitting the head again.

    Returns
    -------
    dict
        ``{"n_per_class": [...], "scores": {head: [mean...]}, "std": {head: [...]},
        "chance": float, "failed": {head: [reason per point or None]}}``. A head that cannot fit
        a point (e.g. a ``make`` estimator needing more samples) scores NaN there.
    """
    from sklearn.base import clone

    if make is None:
        from featx.heads import make_head as build
    else:
        def build(name, **sizes):
            return make(name)
    Xtr, ytr = np.asarray(train.features), np.asarray(train.labels)
    Xte, yte = np.asarray(test.features), np.asarray(test.labels)
    counts = np.bincount(ytr)
    counts = counts[counts > 0]
    full = int(counts.max())
    ks: list[int] = []
    for s in shots:
        k = full if not s else min(int(s), full)
        if k not in ks:
            ks.append(k)
    ks.sort()
    out = {"n_per_class": ks, "scores": {}, "std": {}, "failed": {},
           "chance": float(np.max(np.bincount(yte)) / len(yte)) if len(yte) else None}
    for head in heads:
        build(head)  # an unknown name raises here, not as a NaN point
        means, stds, failed = [], [], []
        for k in ks:
            if k >= full and known is not None and known.get(head) is not None:
                means.append(float(known[head]))
                stds.append(0.0)
                failed.append(None)
                continue
            reps = 1 if k >= full else max(1, int(repeats))
            scores, reason = [], None
            for r in range(reps):
                idx = _subsample_per_class(ytr, None if k >= full else k,
                                           np.random.default_rng(seed + 1000 * r + k))
                if len(np.unique(ytr[idx])) < 2:
                    reason = "needs at least two classes"
                    break
                try:
                    sizes = {"n_samples": len(idx), "n_classes": len(np.unique(ytr[idx]))}
                    est = clone(build(head, **sizes)).fit(Xtr[idx], ytr[idx])
                    scores.append(float(np.mean(est.predict(Xte) == yte)))
                except ValueError as exc:  # e.g. a make() head's CV folds > class size
                    reason = str(exc).splitlines()[0]
                    break
            means.append(float(np.mean(scores)) if scores and reason is None else float("nan"))
            stds.append(float(np.std(scores)) if scores and reason is None else float("nan"))
            failed.append(reason)
        out["scores"][head], out["std"][head], out["failed"][head] = means, stds, failed
    return out


# --------------------------------------------------------------------------- markdown, folder
def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, list | tuple):
        return "x".join(map(str, v))
    return str(v)


def rows_to_markdown(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A GitHub-markdown table of dict rows (columns: the union of keys in first-seen order).

    Examples
    --------
    >>> print(rows_to_markdown([{"model": "a", "accuracy": 0.5}, {"model": "b", "size": [8, 8]}]))
    | model | accuracy | size |
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
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join(
        "| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    return str(obj)


@dataclass
class Report:
    """What :func:`write_report` (and :func:`featx.pipeline.run_pipeline`) produced.

    Attributes
    ----------
    out_dir : Path
        The report folder.
    rows : list of dict
        The comparison table, one row per model, best first.
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
        """The comparison table as markdown."""
        return rows_to_markdown(self.rows)

    def __repr__(self) -> str:
        best = f"{self.best.get('model')} {self.best.get('accuracy', float('nan')):.3f}" \
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
    lines += ["## Comparison", "", rows_to_markdown(d.get("results") or [])]
    best = d.get("best")
    if best:
        lines.append(f"**Best:** {best.get('model')} — test accuracy "
                     f"{_fmt(best.get('accuracy'))}")
        lines.append("")
    captions = {name: desc for name, (_, desc) in PLOTS.items()}
    for name, path in plots.items():
        lines += [f"### {captions.get(name, name).capitalize()}", "",
                  f"![{name}]({Path(path).name})", ""]
    fs = d.get("few_shot")
    if fs and fs.get("scores"):
        lines += ["## Few-shot (frozen features)", ""]
        rows = [{"examples/class": k, **{h: v[i] for h, v in fs["scores"].items()}}
                for i, k in enumerate(fs["n_per_class"])]
        lines.append(rows_to_markdown(rows))
    for name, hist in (d.get("histories") or {}).items():
        if hist:
            lines += [f"## Fine-tune `{name}`: per epoch", ""]
            keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in hist]
            n = max(len(hist[k]) for k in keys) if keys else 0
            lines.append(rows_to_markdown(
                [{"epoch": i + 1, **{k: hist[k][i] for k in keys if i < len(hist[k])}}
                 for i in range(n)]))
    if d.get("advice"):
        lines += ["## Advice", "", str(d["advice"].get("text", "")), ""]
    timings = d.get("timings") or {}
    if timings:
        lines += ["## Timings (seconds)", "", rows_to_markdown([timings]), ""]
    if d.get("config_toml"):
        lines += ["## Configuration", "", "```toml", d["config_toml"].rstrip(), "```", ""]
    return "\n".join(lines)


def write_report(out_dir: str | os.PathLike, *, rows: Sequence[Mapping], title: str = "",
                 data: Mapping | None = None, confusion: Mapping | None = None,
                 histories: Mapping | None = None, few_shot: Mapping | None = None,
                 augmentation: Mapping | None = None, plots: Sequence[str] = tuple(PLOTS),
                 extra: Mapping | None = None) -> Report:
    """Write ``report.md``, ``report.json`` and the requested PNGs into ``out_dir``.

    Parameters
    ----------
    rows : list of dict
        One row per model with at least ``model`` and ``accuracy`` (``kind``: ``"frozen"`` or
        ``"finetune"`` colours the bars).
    confusion : dict, optional
        ``{"model": str, "matrix": (k, k), "class_names": [...]}`` of the best model.
    histories : dict, optional
        ``{fine-tune name: history dict}`` (Keras ``History.history``).
    few_shot : dict, optional
        The output of :func:`few_shot_curve`.
    augmentation : dict, optional
        ``{"images": uint8 (n, h, w, 3), "augment": option dict or "default", "titles": [...]}``.
    plots : sequence of str
        Names from :data:`PLOTS`; a plot whose input is missing is left out.
    extra : dict, optional
        More keys for ``report.json`` (``config``, ``timings``, ``advice``, ...).
    """
    unknown = [p for p in plots if p not in PLOTS]
    if unknown:
        raise ValueError(f"plots has unknown name(s) {unknown}; allowed: {list(PLOTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted((dict(r) for r in rows),
                  key=lambda r: -np.nan_to_num(_metric_value(r, "accuracy"), nan=-1))
    best = rows[0] if rows else None
    made: dict[str, Path] = {}
    inputs = {
        "comparison": (bool(rows), lambda p: plot_comparison(rows, p)),
        "confusion": (confusion is not None, lambda p: plot_confusion(
            confusion["matrix"], confusion["class_names"], p,
            title=f"Confusion matrix: {confusion.get('model', '')}")),
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
    }
    for name in plots:
        ready, draw = inputs[name]
        if ready:
            made[name] = draw(out / PLOTS[name][0])
    payload = {
        "title": title, "featx_version": _version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": dict(data or {}), "results": rows, "best": best,
        "confusion": dict(confusion) if confusion else None,
        "histories": dict(histories or {}), "few_shot": dict(few_shot) if few_shot else None,
        "plots": {k: v.name for k, v in made.items()}, **dict(extra or {}),
    }
    payload = _jsonable(payload)
    (out / "report.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(payload, made))
    files = {"report.md": out / "report.md", "report.json": out / "report.json", **made}
    return Report(out, rows, best, files, payload)


def _version() -> str:
    from featx._version import __version__

    return __version__
