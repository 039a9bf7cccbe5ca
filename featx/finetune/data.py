"""Feeding images to Keras during fine-tuning, backend-neutral (a ``keras.utils.PyDataset``).

Inputs arrive as paths, an ``ImageDataset`` or a uint8 array. Paths are decoded with
:func:`featx.images.read_image` (and its ``decoder``) at the model's input size; when the decoded
set fits the memory budget it is decoded once and kept, since small datasets are the use case and
every epoch re-reads them. Batches stay ``uint8``: the model casts on the device.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
from PIL import Image

from featx.images import read_image

__all__ = ["ImageSource", "Batches", "as_images"]

MEMORY_BUDGET = int(os.environ.get("FEATX_FINETUNE_MEMORY", 2 << 30))  # bytes of decoded images


class ImageSource:
    """Images at a fixed ``(h, w)``: ``take(indices) -> uint8 (n, h, w, 3)``."""

    def __init__(self, items, size: tuple[int, int], decoder: str = "pillow"):
        self.size = (int(size[0]), int(size[1]))
        self.decoder = decoder
        self.paths = None
        self.array = None
        if isinstance(items, np.ndarray):
            self.array = self._resize_array(items)
        else:
            self.paths = [os.fspath(p) for p in items]
            h, w = self.size
            if len(self.paths) * h * w * 3 <= MEMORY_BUDGET:
                self.array = self._read(range(len(self.paths)))

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self.paths)

    def _resize_array(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"X as an array must be (N, H, W, 3) RGB, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        h, w = self.size
        if arr.shape[1:3] == (h, w):
            return arr
        return np.stack([
            np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR)) for a in arr
        ])

    def _read(self, indices) -> np.ndarray:
        indices = list(indices)
        out = np.empty((len(indices), *self.size, 3), np.uint8)

        def one(j):
            out[j] = read_image(self.paths[indices[j]], self.size, decoder=self.decoder)

        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            list(pool.map(one, range(len(indices))))
        return out

    def take(self, indices) -> np.ndarray:
        if self.array is not None:
            return self.array[np.asarray(indices, dtype=np.int64)]
        return self._read(indices)


class Batches(keras.utils.PyDataset):
    """Batches of ``(x uint8 0-255, y, sample_weight)``, or ``(x,)`` when ``y`` is None.

    ``shuffle`` reorders the items every epoch with a seeded generator.
    """

    def __init__(self, source: ImageSource, indices, y=None, sample_weight=None, *,
                 batch_size: int = 32, shuffle: bool = False, seed: int | None = None):
        super().__init__()
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight, "float32")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.indices))
        if shuffle:
            self._rng.shuffle(self._order)

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, i: int):
        sel = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        x = self.source.take(self.indices[sel])
        if self.y is None:
            return (x,)
        y = self.y[sel]
        if self.sample_weight is None:
            return x, y
        return x, y, self.sample_weight[sel]

    def on_epoch_end(self):
        if self.shuffle:
            self._rng.shuffle(self._order)


def as_images(X, y=None):
    """``(items, labels)`` from paths, an ``ImageDataset`` (labels from it when ``y`` is None) or an
    array. ``items`` is a list of paths or a uint8 array; ``labels`` may be None."""
    if hasattr(X, "paths") and hasattr(X, "labels") and hasattr(X, "class_names"):
        if y is None:
            names = np.asarray(X.class_names, dtype=object)
            y = names[np.asarray(X.labels, dtype=np.int64)]
        return list(X.paths), y
    if isinstance(X, np.ndarray) and X.ndim == 4:
        return X, y
    if isinstance(X, (str, os.PathLike)):
        raise ValueError(f"X must be a list of image paths, an ImageDataset or an (N, H, W, 3) "
                         f"array, got a single path {X!r}")
    try:
        items = [os.fspath(p) for p in X]
    except TypeError:
        raise ValueError(f"X must be a list of image paths, an ImageDataset or an (N, H, W, 3) "
                         f"array, got {type(X).__name__}") from None
    return items, y
