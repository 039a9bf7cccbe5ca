"""The one image-input contract of featx's estimators (FeatureExtractor, TransferClassifier,
FineTunedClassifier): what ``X`` may be, the error for anything else, ``X`` as an ImageDataset."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy.sparse import issparse

from featx.data.dataset import ImageDataset
from featx.data.files import array_digest
from featx.images import is_url, to_rgb
from featx.utils.config import cache_root

__all__ = [
    "IMAGE_INPUTS", "PATH_TYPES", "as_image_dataset", "check_image_input", "image_input_error",
    "image_paths", "is_image_input", "is_pil_images", "is_uint8_images", "labelled_targets",
    "looks_like_images", "pil_images_array",
]

# --------------------------------------------------------------------------- estimator inputs
# The one image-input contract of featx's estimators (FeatureExtractor, TransferClassifier,
# FineTunedClassifier): what X may be, the error for anything else, and X as an ImageDataset.
#: What an estimator's ``X`` may be when it holds images (the text of their ``TypeError``).
IMAGE_INPUTS = (
    "a list, 1-D array or pandas Series of image paths, an ImageDataset, or a uint8 image "
    "array (N, H, W) or (N, H, W, C)"
)
#: Types a single path may have.
PATH_TYPES = (str, bytes, os.PathLike)


def image_paths(X: Any) -> list[str] | None:
    """The paths in ``X`` when it is a non-empty 1-D sequence of paths, else None.

    A list or tuple of str/bytes/path-likes, or anything ``np.asarray`` makes a 1-D array of
    str, bytes or object dtype holding them (``np.array(paths)``, a pandas Series).
    """
    if isinstance(X, (*PATH_TYPES, ImageDataset)) or issparse(X):
        return None
    if isinstance(X, list | tuple):
        items = X
    else:
        try:
            array = np.asarray(X)
        except (TypeError, ValueError):
            return None
        if array.ndim != 1 or array.dtype.kind not in "USO":
            return None
        items = array.tolist()
    if len(items) == 0 or not all(isinstance(p, PATH_TYPES) for p in items):
        return None
    return [os.fsdecode(p) for p in items]


def is_uint8_images(X: Any) -> bool:
    return isinstance(X, np.ndarray) and X.dtype == np.uint8 and X.ndim in (3, 4)


def _pil_image_type():
    """``PIL.Image.Image`` when Pillow is imported (no object can be one before), else None."""
    module = sys.modules.get("PIL.Image")
    return getattr(module, "Image", None)


def is_pil_images(X: Any) -> bool:
    """True for a non-empty list or tuple of PIL images (any mode; sizes are checked by
    :func:`pil_images_array`)."""
    image = _pil_image_type()
    return (image is not None and isinstance(X, list | tuple) and len(X) > 0
            and all(isinstance(x, image) for x in X))


def pil_images_array(X: Any) -> np.ndarray:
    """A list of PIL images -> an RGB ``uint8`` array ``(N, H, W, 3)``, converted as a file of
    each would be read (:func:`featx.images.to_rgb`: grey repeated, transparency composited
    onto white, 16-bit scaled), then used like that array.

    Raises
    ------
    TypeError
        When the images differ in size: featx stacks them like a ``uint8`` array and does not
        resize behind the user's back.
    """
    sizes = list(dict.fromkeys(im.size for im in X))
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sizes[:4]) + (", ..." if len(sizes) > 4 else "")
        raise TypeError(
            f"X is a {type(X).__name__} of {len(X)} PIL images of {len(sizes)} different sizes "
            f"(width x height: {shown}); PIL images are stacked into one uint8 array, so they "
            "must share one size: resize them first (e.g. [im.resize((224, 224)) for im in X]) "
            "or save them and pass the file paths")
    return np.stack([np.asarray(to_rgb(im), dtype=np.uint8) for im in X])


def is_image_input(X: Any) -> bool:
    """True for the inputs a FeatureExtractor reads: paths, ImageDataset, uint8 image arrays,
    lists of PIL images."""
    return (isinstance(X, ImageDataset) or is_uint8_images(X) or image_paths(X) is not None
            or is_pil_images(X))


def looks_like_images(X: Any) -> bool:
    """Inputs meant as images that :func:`is_image_input` refuses (a single path, a list
    mixing paths with other values or holding image arrays, a non-uint8 image array)."""
    pil = _pil_image_type()
    if isinstance(X, PATH_TYPES) or pil is not None and isinstance(X, pil):
        return True
    if isinstance(X, list | tuple) and any(
        isinstance(x, PATH_TYPES) or isinstance(x, np.ndarray) and x.ndim >= 2 for x in X
    ):
        return True
    if issparse(X):
        return False
    try:
        return np.ndim(X) >= 3
    except (TypeError, ValueError):  # ragged nested lists: check_array reports them
        return False


def image_input_error(X: Any, *, also: str = "") -> TypeError:
    """The TypeError for an input that is not accepted: what was received, what is allowed
    (:data:`IMAGE_INPUTS`, then ``also``: the other inputs the caller takes)."""
    accepted = IMAGE_INPUTS + also
    pil = _pil_image_type()
    if isinstance(X, PATH_TYPES):
        got = f"the single path {os.fsdecode(X)!r}; wrap it in a list"
    elif pil is not None and isinstance(X, pil):
        got = f"a single PIL image ({X.mode}, {X.size[0]}x{X.size[1]}); wrap it in a list"
    elif isinstance(X, list | tuple) and len(X) == 0:
        got = f"an empty {type(X).__name__}"
    elif isinstance(X, list | tuple):
        kinds = sorted({type(x).__name__ for x in X})
        arrays = [x for x in X if isinstance(x, np.ndarray)]
        if arrays and len(arrays) == len(X):
            got = (f"a {type(X).__name__} of {len(X)} arrays (the first {arrays[0].dtype}, shape "
                   f"{arrays[0].shape}); stack same-size uint8 images into one array with "
                   "np.stack(X)")
        elif any(isinstance(x, PATH_TYPES) for x in X):
            i, bad = next((i, x) for i, x in enumerate(X) if not isinstance(x, PATH_TYPES))
            got = (f"a {type(X).__name__} mixing paths with other values ({', '.join(kinds)}); "
                   f"X[{i}] is {bad!r:.60}")
        else:
            got = f"a {type(X).__name__} of {', '.join(kinds)} values"
    else:
        dtype, shape = getattr(X, "dtype", None), getattr(X, "shape", None)
        got = type(X).__name__ + (f" of dtype {dtype} and shape {shape}" if shape else "")
        if dtype is not None and np.ndim(X) in (3, 4) and dtype != np.uint8:
            got += ("; image arrays must be uint8 (0-255): for floats in [0, 1] pass "
                    "(X * 255).round().astype(np.uint8)")
    return TypeError(f"X must be {accepted}; got {got}")


def check_image_input(X: Any) -> None:
    """Check that ``X`` is an image input featx's estimators accept, without reading any file.

    Accepted (:data:`IMAGE_INPUTS`): a non-empty list, tuple, 1-D array (str, bytes or object
    dtype) or pandas Series of paths, an :class:`ImageDataset`, or a ``uint8`` array
    ``(N, H, W)`` or ``(N, H, W, C)``; also a list of PIL images of one size (converted to
    RGB ``uint8``, see :func:`pil_images_array`). Anything else is a ``TypeError`` naming
    ``X``, saying what was received and listing these; no image at all is a ``ValueError``.

    Examples
    --------
    >>> check_image_input(["a.jpg", "b.jpg"])
    >>> check_image_input("a.jpg")
    Traceback (most recent call last):
    ...
    TypeError: X must be ...; got the single path 'a.jpg'; wrap it in a list
    """
    try:
        empty = not isinstance(X, PATH_TYPES) and len(X) == 0
    except TypeError:  # no length: refused below
        empty = False
    if empty:
        raise ValueError("X holds 0 images; at least one image is required")
    if not is_image_input(X):
        raise image_input_error(X)
    if is_pil_images(X) and len({im.size for im in X}) > 1:
        pil_images_array(X)  # raises: the sizes differ


@contextmanager
def as_image_dataset(X: Any, cache: Any = None) -> Iterator[ImageDataset]:
    """Images in any accepted form as an ImageDataset, valid inside the ``with`` block.

    Paths are made absolute (URLs are kept as they are). ``uint8`` arrays (and lists of PIL
    images, converted by :func:`pil_images_array`) are written as PNG files, once, under
    ``<cache>/arrays/<content hash>/`` (reused by later calls); with ``cache=False`` into a
    temporary folder that is removed when the block ends, so nothing is left on disk.
    """
    if is_pil_images(X):
        X = pil_images_array(X)
    if isinstance(X, ImageDataset):
        yield X
    elif is_uint8_images(X):
        labels, names = np.zeros(len(X), np.int64), ["?"]
        if cache is False:
            with tempfile.TemporaryDirectory(prefix="featx-arrays-") as tmp:
                yield ImageDataset.from_arrays(X, labels, class_names=names, directory=tmp)
        else:
            folder = cache_root(cache) / "arrays" / array_digest(X)
            yield ImageDataset.from_arrays(X, labels, class_names=names, directory=folder)
    elif (paths := image_paths(X)) is not None:
        paths = [p if is_url(p) else os.path.abspath(p) for p in map(os.fsdecode, paths)]
        yield ImageDataset(paths, np.zeros(len(paths), np.int64), ["?"], name=None)
    else:
        raise image_input_error(X)


def labelled_targets(X: Any, y: Any, caller: str) -> Any:
    """``y``, or when it is ``None`` the class name of every item of a labelled ``X`` (an
    :class:`ImageDataset`, or anything with ``labels`` and ``class_names`` such as a
    ``FeatureSet``), as ``fit(dataset)`` takes them; else a ``TypeError`` naming ``caller``.

    Examples
    --------
    >>> ds = ImageDataset(["a.jpg", "b.jpg"], [1, 0], ["cat", "dog"])
    >>> labelled_targets(ds, None, "score").tolist()
    ['dog', 'cat']
    """
    if y is not None:
        return y
    if hasattr(X, "labels") and hasattr(X, "class_names"):
        return np.asarray(X.class_names, dtype=object)[np.asarray(X.labels, dtype=np.int64)]
    raise TypeError(f"{caller} needs y (the true labels) unless X is an ImageDataset or a "
                    f"FeatureSet, which carry their labels; got X of type {type(X).__name__}")
