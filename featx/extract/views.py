"""Deterministic views of a decoded batch: the table behind multi-view features and TTA.

A *view* is a fixed transform of the decoded ``uint8`` batch (``(N, h, w, 3)``, already at the
backbone's input size) applied just before the forward pass: the identity, a horizontal flip, a
centre crop scaled back up to the input size, or their combinations. Each view's features are
cached under their own key (the ``view`` setting of
:class:`featx.extract.config.ExtractorConfig`; ``"none"``, the identity, leaves the keys of older
caches unchanged). Heads train on every training view's rows
and average the views' test probabilities (test-time augmentation); the cost is one backbone pass
per image per view.

Adding a view is adding a row to :data:`VIEWS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from featx.utils.registry import Registry

__all__ = ["VIEWS", "apply_view", "check_view", "check_views", "list_views"]


def _flip(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch[:, :, ::-1])


def _center_crop(fraction: float) -> Callable[[np.ndarray], np.ndarray]:
    """Keep the central ``fraction`` of each side, resized back (bilinear) to the input size."""

    def crop(batch: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
        top, left = (h - ch) // 2, (w - cw) // 2
        out = np.empty_like(batch)
        for i in range(n):
            part = Image.fromarray(batch[i, top: top + ch, left: left + cw])
            out[i] = np.asarray(part.resize((w, h), Image.BILINEAR))
        return out

    return crop


def _then(*steps: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def run(batch: np.ndarray) -> np.ndarray:
        for step in steps:
            batch = step(batch)
        return batch

    return run


#: View name -> the transform of a ``uint8`` ``(N, h, w, 3)`` batch (same shape and dtype out).
VIEWS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("view", {
    "none": lambda batch: batch,
    "flip": _flip,
    "crop90": _center_crop(0.9),
    "crop80": _center_crop(0.8),
    "crop90_flip": _then(_center_crop(0.9), _flip),
    "crop80_flip": _then(_center_crop(0.8), _flip),
})


def list_views() -> list[str]:
    """The view names (rows of :data:`VIEWS`).

    Examples
    --------
    >>> list_views()[:2]
    ['none', 'flip']
    """
    return list(VIEWS)


def check_view(view: str) -> str:
    """``view`` when it is a row of :data:`VIEWS`, else a ``ValueError`` naming the rows."""
    return VIEWS.check(view)


def check_views(views: Sequence[str] | str | None) -> list[str]:
    """A list of distinct view names (``None``: ``["none"]``; a lone string: that view).

    Examples
    --------
    >>> check_views(None), check_views("flip"), check_views(["none", "flip"])
    (['none'], ['flip'], ['none', 'flip'])
    """
    if views is None:
        return ["none"]
    if isinstance(views, str):
        views = [views]
    views = [check_view(v) for v in views]
    if not views or len(set(views)) != len(views):
        raise ValueError(f"views must be a non-empty list of distinct names from {list(VIEWS)}, "
                         f"got views={views!r}")
    return views


def apply_view(view: str, batch: np.ndarray) -> np.ndarray:
    """``batch`` (``uint8`` ``(N, h, w, 3)``) as seen through ``view``.

    Examples
    --------
    >>> b = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    >>> bool((apply_view("flip", b)[:, :, 0] == b[:, :, 2]).all()), apply_view("crop80", b).shape
    (True, (2, 2, 3, 3))
    """
    return VIEWS.get(view)(batch)
