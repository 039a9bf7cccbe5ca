"""Plots of a comparison run: each ``plot_*(..., path) -> Path`` draws one PNG.

matplotlib is imported lazily and figures are drawn with the Agg canvas (no pyplot, no global
backend switch); when it is missing, a plot fails with the ``pip install featx[plots]`` line.
:func:`featx.report.write_report` picks which of these to draw (its ``PLOTS`` table), and skips
them all with one :class:`PlotsSkippedWarning` when :func:`plots_available` is false.
"""

from __future__ import annotations

import importlib.util
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featx.errors import PlotsSkippedWarning
from featx.trust.outputs import staged

__all__ = [
    "PLOTS_EXTRA", "PlotsSkippedWarning", "augment_images", "cost_rows", "plot_augmentation",
    "plot_comparison", "plot_confusion", "plot_cost", "plot_few_shot", "plot_learning_curves",
    "plot_misclassified", "plots_available", "worst_confusions",
]

_DPI = 100


# --------------------------------------------------------------------------- matplotlib, lazily
#: How a user gets the plots: the install line every "no matplotlib" message gives.
PLOTS_EXTRA = "pip install 'featx[plots]'"


def plots_available() -> bool:
    """Whether matplotlib can be imported here (checked without importing it).

    Examples
    --------
    >>> isinstance(plots_available(), bool)
    True
    """
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # a module without a spec (e.g. one set to None in sys.modules)
        return False


def _figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg canvas (no pyplot state, no GUI)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "featx's report plots need matplotlib, which is not installed; run "
            f"`{PLOTS_EXTRA}` (or `pip install matplotlib`), or pass plots=[] "
            "(`[report] plots = []`) to write the report without them"
        ) from None
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike, *, rect=None) -> Path:
    """Every plot is written here, through featx's output writer: a file featx did not write
    at ``path`` is refused (:class:`~featx.errors.OutputExistsError`), featx's own replaced."""
    fig.tight_layout(rect=rect)
    with staged(path, param="path") as tmp:
        fig.savefig(tmp, facecolor="white")
    return Path(path)


def metric_value(row: Mapping, metric: str) -> float:
    """``row[metric]`` as a float, NaN when missing (the key rows are ranked by, best first)."""
    v = row.get(metric)
    return float("nan") if v is None else float(v)


# --------------------------------------------------------------------------- plots
def plot_comparison(rows: Sequence[Mapping], path, *, metric: str = "accuracy",
                    label: str = "name", title: str | None = None) -> Path:
    """Horizontal bars of ``row[metric]`` per ``row[label]``, best on top; fine-tunes
    (``kind="finetune"``) red, frozen heads blue. Rows: :data:`featx.evaluate.ROW_KEYS`."""
    rows = sorted(rows, key=lambda r: -np.nan_to_num(metric_value(r, metric), nan=-1))
    fig = _figure(7, 0.9 + 0.38 * max(1, len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    values = [metric_value(r, metric) for r in rows]
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


def cost_rows(rows: Sequence[Mapping]) -> list[Mapping]:
    """The feature candidates among comparison rows: those with a cross-validated score and a
    measured forward cost (:func:`featx.comparison.select_features`' probe rows, not the other
    heads on the chosen features: ``candidate`` False)."""
    return [r for r in rows if r.get("cv_score") is not None
            and r.get("seconds_per_image") is not None and r.get("candidate", True)]


def plot_cost(rows: Sequence[Mapping], path, *, best: str | None = None) -> Path:
    """Each feature candidate's cross-validated score against its forward milliseconds per
    image at prediction, the Pareto front (no candidate both cheaper and better) as a
    line, the candidates the folds cannot tell from the best ringed
    (:func:`featx.comparison.near_best`) and the chosen features
    (those of ``best``, a row name) starred. Rows: :func:`cost_rows`."""
    features = next((r.get("features") for r in rows if r.get("name") == best), None)
    rows = cost_rows(rows)
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    x = np.array([1e3 * r["seconds_per_image"] for r in rows])
    y = np.array([r["cv_score"] for r in rows])
    passes = np.array([r.get("passes_per_image") or 1 for r in rows])
    for k in sorted(set(passes.tolist())):
        on = passes == k
        ax.scatter(x[on], y[on], s=28, marker=_MARKERS[(k - 1) % len(_MARKERS)],
                   color=_COLORS[(k - 1) % len(_COLORS)], label=f"{k} pass(es) per image")
    order = np.lexsort((-y, x))
    front, top = [], -np.inf
    for i in order:
        if y[i] > top:
            front.append(i)
            top = y[i]
    ax.plot(x[front], y[front], color="#444444", linewidth=1, label="Pareto front")
    from featx.comparison import near_best

    near = near_best(rows)
    ax.scatter(x[near], y[near], s=110, facecolors="none", edgecolors="#2ca02c", linewidths=1.2,
               label="within one standard error of the best (paired folds)")
    chosen = [i for i, r in enumerate(rows)  # the chosen head's features
              if r.get("name") == best or (features and r.get("features") == features)][:1]
    for i in chosen:
        ax.scatter([x[i]], [y[i]], s=220, marker="*", color="#d62728", zorder=3,
                   label="chosen")
        label = textwrap.fill(str(rows[i].get("features") or rows[i].get("name")), 36,
                              break_on_hyphens=False)
        right = x[i] > x.mean()  # the label on the side with room, inside the axes
        ax.annotate(label, (x[i], y[i]), textcoords="offset points", fontsize=7,
                    xytext=(-10 if right else 10, -14), ha="right" if right else "left",
                    va="top")
    ax.set_xlim(0, 1.15 * float(x.max()))
    ax.set_xlabel("forward milliseconds per image at prediction (measured in this run)")
    metric = rows[0].get("cv_metric") or "accuracy" if rows else "accuracy"
    ax.set_ylabel(f"cross-validated {metric} on train")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Feature candidates: score against cost", fontsize=10)
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
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the true class (row-normalised); cells: image counts", fontsize=8)
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


_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def plot_learning_curves(histories: Mapping[str, Mapping[str, Any]], path) -> Path:
    """Loss (left) and accuracy (right) per epoch for every fine-tune; validation dashed.

    Each fine-tune gets its own colour and marker. A history's ``"warm_start"`` entry (a dict
    with ``accuracy``, ``val_accuracy``, ``val_loss``: the linear probe on frozen features the
    network starts from) is drawn as epoch 0, so the curves show whether fine-tuning improved on
    the probe. The x axis has integer epochs, also for a single epoch.
    """
    fig = _figure(10, 4.2)
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    last, has_warm = 1, False
    for i, (name, hist) in enumerate(histories.items()):
        c, m = _COLORS[i % len(_COLORS)], _MARKERS[i % len(_MARKERS)]
        warm = hist.get("warm_start") or {}
        for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = list(hist.get(prefix + key) or [])
                epochs = list(range(1, len(values) + 1))
                if warm.get(prefix + key) is not None:
                    values, epochs, has_warm = [warm[prefix + key], *values], [0, *epochs], True
                if values:
                    last = max(last, epochs[-1])
                    ax.plot(epochs, values, style, color=c, marker=m, markersize=5,
                            markerfacecolor=c if prefix else "white",
                            label=f"{name} {'validation' if prefix else 'train'}")
    first = 0 if has_warm else 1
    ticks = list(range(first, last + 1))
    step = max(1, math.ceil(len(ticks) / 15))
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlim(first - 0.5, last + 0.5)
        ax.set_xticks(ticks[::step], [("0\nwarm start" if t == 0 else str(t))
                                      for t in ticks[::step]])
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax_acc.set_ylim(0, 1.02)
    title = "Fine-tuning learning curves (solid: train, dashed: validation)"
    if has_warm:
        title += "; epoch 0: the warm start, a linear probe on frozen features"
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_few_shot(curve: Mapping, path) -> Path:
    """Accuracy vs examples per class (log x), a line per head, a ±1 std band; chance dotted."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    x = np.asarray(curve["n_per_class"], dtype=float)
    for head, values in curve["scores"].items():
        mean = np.asarray(values, dtype=float)
        std = np.asarray(curve.get("std", {}).get(head, np.zeros_like(mean)), dtype=float)
        (line,) = ax.plot(x, mean, marker="o", label=head)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=line.get_color())
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
    fig.text(0.01, 0.01, few_shot_band_text(curve), fontsize=7, color="#444444", wrap=True)
    return _save(fig, path, rect=(0, 0.06, 1, 1))


def few_shot_band_text(curve: Mapping, *, plotted: bool = True) -> str:
    """What the few-shot numbers are: with ``plotted``, the plot's line and shaded band (the
    plot's footnote and report.md's beside it); without, the table's numbers (report.md when
    the plot was not drawn), so the text never describes a band nobody drew.

    Examples
    --------
    >>> few_shot_band_text({"repeats": 2}, plotted=False)[:55]
    'Mean test accuracy over 2 random draws of k training ex'
    >>> "shaded band" in few_shot_band_text({"repeats": 2})
    True
    """
    repeats = curve.get("repeats")
    draws = f"{repeats} random draws" if repeats else "the random draws"
    if not plotted:
        return (f"Mean test accuracy over {draws} of k training examples per class (the last "
                "row uses every example, once); report.json has each point's standard "
                "deviation.")
    return (f"Line: mean test accuracy over {draws} of k training examples per class; shaded "
            "band: \u00b11 standard deviation across those draws (none at the last point, "
            "which uses every example).")


def augment_images(images: np.ndarray, n_variants: int = 5, *, augment: Any = "default",
                   seed: int = 0) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 -> ``(n, n_variants, h, w, 3)`` uint8 augmented copies.

    The layers are the fine-tuning augmentation table's (:mod:`featx.finetune.augment`), so the
    picture shows what training sees.
    """
    # Keras and the augmentation table are imported when a picture is drawn, not with featx.report.
    import keras

    from featx.finetune.augment import build_augmentation, resolve_augment

    layers = build_augmentation(resolve_augment(augment), seed=seed)
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


def worst_confusions(true, pred, *, limit: int = 16) -> list[int]:
    """Indices of misclassified images, the most frequent (true, predicted) pairs first, at
    most ``limit`` and at most 4 per pair (so one confusion does not fill the gallery)."""
    true, pred = np.asarray(true), np.asarray(pred)
    wrong = np.flatnonzero(true != pred)
    pairs: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        pairs.setdefault((int(true[i]), int(pred[i])), []).append(int(i))
    ranked = sorted(pairs.values(), key=lambda idx: (-len(idx), idx[0]))
    out: list[int] = []
    for per in (4, None):  # up to 4 per pair, then fill up from the largest pairs
        for idx in ranked:
            out += [i for i in idx[:per] if i not in out]
    return out[:limit]


def plot_misclassified(paths: Sequence[str], true, pred, class_names: Sequence[str], path, *,
                       title: str = "", limit: int = 16, thumb: int = 96) -> Path:
    """A gallery of misclassified test images, the worst confusions first
    (:func:`worst_confusions`): each thumbnail titled with its true and predicted label."""
    from featx.images import read_image

    true, pred = np.asarray(true), np.asarray(pred)
    picks = worst_confusions(true, pred, limit=limit)
    cols = max(1, min(4, len(picks)))
    rows = max(1, math.ceil(len(picks) / cols))
    fig = _figure(2.3 * cols, 2.5 * rows + 0.6)
    for n, i in enumerate(picks):
        ax = fig.add_subplot(rows, cols, n + 1)
        try:
            ax.imshow(read_image(paths[i], size=(thumb, thumb)))
        except Exception:  # noqa: BLE001 - a file gone since the run: an empty tile
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"true: {class_names[true[i]]}\npredicted: {class_names[pred[i]]}",
                     fontsize=8, color="#b22222")
    if not picks:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified test image", ha="center", va="center")
    n_wrong = int(np.sum(true != pred))
    fig.suptitle(f"{title or 'Misclassified test images'}: {n_wrong} of {len(true)} wrong; "
                 f"{len(picks)} shown, most frequent confusions first", fontsize=10)
    return _save(fig, path)
