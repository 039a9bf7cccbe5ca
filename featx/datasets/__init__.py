"""Datasets that need no download: the bundled clothing demo and, when installed, Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from featx.data import ImageDataset

__all__ = ["load_clothing_mini", "load_fashion_mnist", "FASHION_MNIST_CLASSES"]

_MINI = Path(__file__).parent / "clothing_mini"

FASHION_MNIST_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
]
_FASHION_DIRS = (
    "/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
    "/usr/share/fashion-mnist",
    "/usr/share/dataset-fashion-mnist",
    "~/.keras/datasets/fashion-mnist",
)


def load_clothing_mini() -> dict[str, ImageDataset]:
    """The bundled demo: real clothing photos, 10 classes, 30 train + 10 test images per class.

    Returns
    -------
    dict
        ``{"train": ImageDataset, "test": ImageDataset}`` sharing one list of class names.

    Examples
    --------
    >>> data = load_clothing_mini()
    >>> len(data["train"]), len(data["test"]), data["train"].class_names[:3]
    (300, 100, ['dress', 'hat', 'longsleeve'])
    """
    return ImageDataset.from_directory(_MINI, name="clothing-mini")


def _find_fashion_dir(directory: str | os.PathLike | None) -> Path:
    candidates = [Path(directory)] if directory else []
    candidates += [Path(d).expanduser() for d in _FASHION_DIRS]
    for d in candidates:
        if (d / "train-images-idx3-ubyte.gz").exists() or (d / "train-images-idx3-ubyte").exists():
            return d
    raise FileNotFoundError(
        "Fashion-MNIST was not found in "
        f"{[str(c) for c in candidates]}. Install it offline with "
        "`apt-get install -y dataset-fashion-mnist` (then `dpkg -L dataset-fashion-mnist` shows "
        "the folder; pass it as directory=...), or with a network run "
        "`keras.datasets.fashion_mnist.load_data()` once."
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(
    directory: str | os.PathLike | None = None, *, limit: int | None = None
) -> dict[str, ImageDataset]:
    """Fashion-MNIST from its IDX files (Debian's ``dataset-fashion-mnist`` or Keras' download).

    Parameters
    ----------
    directory : path, optional
        Folder holding ``train-images-idx3-ubyte(.gz)`` etc. Searched by default:
        ``/usr/share/fashion-mnist``, ``~/.keras/datasets/fashion-mnist``.
    limit : int, optional
        Keep only the first ``limit`` images of each split (for quick runs).

    Returns
    -------
    dict
        ``{"train": ImageDataset, "test": ImageDataset}``; images are written once as PNG files
        in the cache (see :meth:`ImageDataset.from_arrays`).
    """
    folder = _find_fashion_dir(directory)
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        files = {}
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            path = folder / f"{prefix}-{kind}.gz"
            files[kind] = path if path.exists() else folder / f"{prefix}-{kind}"
        x = _read_idx(files["images-idx3-ubyte"])[:limit]
        y = _read_idx(files["labels-idx1-ubyte"])[:limit]
        out[split] = ImageDataset.from_arrays(
            x, y.astype(np.int64), class_names=FASHION_MNIST_CLASSES, name=f"fashion-mnist-{split}"
        )
    return out
