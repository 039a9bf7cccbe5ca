"""Plots of a comparison run: each ``plot_*(..., path) -> Path`` draws one PNG.

matplotlib is imported lazily and figures are drawn with the Agg canvas (no pyplot, no global
backend switch); when it is missing, a plot fails with the ``pip install featx[plots]`` line.
:func:`featx.report.write_report` picks which of these to draw (its ``PLOTS`` table).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "augment_images", "plot_augmentation", "plot_comparison", "plot_confusion", "plot_few_shot",
    "plot_learning_curves",
]

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
