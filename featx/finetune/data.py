"""Feeding images to Keras during fine-tuning, backend-neutral (a ``keras.utils.PyDataset``).

Inputs follow the estimators' one image-input contract (:func:`featx.data.check_image_input`):
paths, an ``ImageDataset`` or a ``uint8`` array. Paths are decoded with
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

from featx.data import (
    ImageDataset,
    check_image_input,
    image_paths,
    is_pil_images,
    is_uint8_images,
    pil_images_array,
)
from featx.images import read_image, to_rgb

__all__ = ["Batches", "ImageSource", "as_images", "memory_budget", "rgb_array"]

DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of decoded images kept in memory for a fine-tune


def memory_budget() -> int:
    """Bytes of decoded images a fine-tune keeps in memory: ``$FEATX_FINETUNE_MEMORY`` when set
    (read at every call, so it can change within a process), else 2 GiB."""
    return int(os.environ.get("FEATX_FINETUNE_MEMORY") or DEFAULT_MEMORY_BUDGET)


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
            if len(self.paths) * h * w * 3 <= memory_budget():
                self.array = self._read(range(len(self.paths)))

    def __len__(self) -> int:
        return len(self.array) if self.array is not None else len(self.paths)

    def _resize_array(self, arr: np.ndarray) -> np.ndarray:
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


def rgb_array(images: np.ndarray) -> np.ndarray:
    """A ``uint8`` image array ``(N, H, W)`` or ``(N, H, W, C)`` as RGB ``(N, H, W, 3)``, converted
    the way a file of it would be read (grey repeated, alpha composited onto white)."""
    if images.ndim == 4 and images.shape[-1] == 3:
        return images
    if images.ndim == 4 and images.shape[-1] not in (1, 4):
        raise ValueError(f"X must have 1, 3 or 4 channels, got shape {images.shape}")
    squeeze = images.ndim == 4 and images.shape[-1] == 1
    return np.stack([np.asarray(to_rgb(Image.fromarray(a[..., 0] if squeeze else a)))
                     for a in images])


def as_images(X, y=None):
    """``(items, labels)`` from any accepted image input (:func:`featx.data.check_image_input`:
    ``TypeError`` naming ``X`` for anything else). ``items`` is a list of absolute paths or an RGB
    ``uint8`` array; an ``ImageDataset`` gives its labels when ``y`` is None."""
    check_image_input(X)
    if is_pil_images(X):  # a list of same-size PIL images: their RGB uint8 array
        X = pil_images_array(X)
    if isinstance(X, ImageDataset):
        if y is None:
            names = np.asarray(X.class_names, dtype=object)
            y = names[np.asarray(X.labels, dtype=np.int64)]
        return list(X.paths), y
    if is_uint8_images(X):
        return rgb_array(X), y
    return [os.path.abspath(p) for p in image_paths(X)], y
