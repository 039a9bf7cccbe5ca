"""Images in: :class:`ImageDataset` and its constructors.

An :class:`ImageDataset` is a list of image files with integer labels into ``class_names``. Files
that cannot be used are listed in ``skipped`` with the reason, never silently dropped and never
allowed to shift a label onto another image.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.sparse import issparse

from featx.images import ImageError, check_image_bytes
from featx.utils.config import cache_dir, cache_root

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_INPUTS", "ImageDataset", "SkippedImagesWarning",
           "as_image_dataset", "read_csv", "check_image_input", "image_input_error", "image_paths",
           "is_image_input", "is_uint8_images", "looks_like_images"]

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
Verify = Literal["header", "decode", "none"]


class SkippedImagesWarning(UserWarning):
    """Some files were left out of a dataset; ``dataset.skipped`` says which and why."""


def _check_file(path: str, verify: Verify) -> str | None:
    """Return ``None`` when ``path`` holds a usable image, else the reason it does not."""
    if Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file extension {Path(path).suffix!r}"
    if verify == "none":
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
        check_image_bytes(data, source=path, full=verify == "decode")
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    except ImageError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def check_files(paths: Sequence[str], verify: Verify) -> list[str | None]:
    if verify == "none" or len(paths) < 64:
        return [_check_file(p, verify) for p in paths]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(_check_file, paths, [verify] * len(paths), chunksize=64))


def _warn_skipped(skipped: list[tuple[str, str]], where: str) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{p}: {r}" for p, r in skipped[:5])
    more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
    warnings.warn(
        f"{len(skipped)} file(s) skipped in {where}: {shown}{more}. See dataset.skipped.",
        SkippedImagesWarning,
        stacklevel=3,
    )


def array_digest(images: np.ndarray) -> str:
    """16 hex digits identifying an image array by its bytes and shape (the folder name
    :meth:`ImageDataset.from_arrays` writes it to).

    Examples
    --------
    >>> x = np.zeros((2, 4, 4), dtype=np.uint8)
    >>> array_digest(x) == array_digest(x.copy()), array_digest(x) == array_digest(x[:1])
    (True, False)
    """
    return hashlib.sha256(images.tobytes() + str(images.shape).encode()).hexdigest()[:16]


def _missing_path_error(param: str, path: Path) -> FileNotFoundError:
    parent = path.parent if str(path.parent) else Path(".")
    if parent.is_dir():
        names = sorted(os.listdir(parent))
        close = difflib.get_close_matches(path.name, names, n=3)
        hint = f" Did you mean {close}?" if close else f" {parent} holds: {names[:10]}"
    else:
        hint = f" (its folder {parent} does not exist either)"
    return FileNotFoundError(f"{param}={str(path)!r} does not exist.{hint}")


def read_csv(file: str | os.PathLike, *, path_column: str = "path", label_column: str = "label",
             root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    r"""The rows of an image CSV, each a dict of its columns with ``"path"`` made absolute
    (relative entries resolve against ``root``, default the CSV's folder) and ``"label"``.

    The one CSV reader: :meth:`ImageDataset.from_csv` and the DATA argument's CSV with a
    ``split`` column (:func:`featx.sources.resolve_data`) both read through it.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "x.csv"), "w") as f:
    ...     _ = f.write("file,y,split\na.jpg,cat,train\n")
    >>> row = read_csv(os.path.join(d, "x.csv"), path_column="file", label_column="y")[0]
    >>> row["path"] == os.path.join(d, "a.jpg"), row["label"], row["split"]
    (True, 'cat', 'train')
    """
    file = Path(file)
    if not file.is_file():
        raise _missing_path_error("file", file)
    with open(file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for param, col in (("path_column", path_column), ("label_column", label_column)):
            if col not in columns:
                raise KeyError(
                    f"{param}={col!r} is not a column of {str(file)!r}; its columns are "
                    f"{columns}"
                )
        rows = list(reader)
    base = Path(root) if root is not None else file.parent
    for r in rows:
        p = r[path_column]
        r["path"] = os.path.abspath(p if os.path.isabs(p) else base / p)
        r["label"] = r[label_column]
    return rows


class ImageDataset:
    """A labelled list of image files.

    Parameters
    ----------
    paths : sequence of str
        Image file paths, in a stable order.
    labels : array-like of int
        ``labels[i]`` indexes ``class_names`` for ``paths[i]``.
    class_names : sequence of str
        Class names; index ``k`` names label ``k``.
    skipped : list of (path, reason), optional
        Files left out when the dataset was built.
    name : str, optional
        A short name used in cache file names and reports.

    Examples
    --------
    >>> ds = ImageDataset.from_paths(["a.jpg", "b.jpg", "c.jpg"], ["cat", "dog", "cat"],
    ...                              verify="none")
    >>> ds.class_names, ds.labels.tolist()
    (['cat', 'dog'], [0, 1, 0])
    >>> len(ds.subset([0, 2]))
    2
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        class_names: Sequence[str],
        skipped: Sequence[tuple[str, str]] = (),
        name: str | None = None,
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.class_names = [str(c) for c in class_names]
        self.skipped = [(str(p), str(r)) for p, r in skipped]
        self.name = name
        if len(self.paths) != len(self.labels):
            raise ValueError(
                f"paths and labels must have the same length, got {len(self.paths)} paths and "
                f"{len(self.labels)} labels"
            )
        bad = self.labels[(self.labels < 0) | (self.labels >= len(self.class_names))]
        if bad.size:
            raise ValueError(
                f"labels must index class_names (0..{len(self.class_names) - 1}), got {bad[:5]}"
            )

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_directory(
        cls, root: str | os.PathLike, *, verify: Verify = "header", name: str | None = None
    ) -> ImageDataset | dict[str, ImageDataset]:
        """Read a class-folder tree (``root/<class>/<image>``); paths are stored absolute.

        When ``root`` holds ``train/``, ``validation/`` (or ``val/``) and/or ``test/`` folders, a
        dict of datasets keyed ``"train"``, ``"validation"``, ``"test"`` is returned, sharing one
        list of class names so labels mean the same in every split.

        Parameters
        ----------
        root : path
            The folder.
        verify : {"header", "decode", "none"}
            How hard to check each file: parse the header and look for the end marker (default,
            catches truncated files cheaply), decode it fully, or trust the listing (only the
            extension is checked; later stages still report files they cannot decode).
        name : str, optional
            Dataset name (default: the folder's name; splits get ``-train`` etc. appended).
        """
        root = Path(root)
        if not root.is_dir():
            raise _missing_path_error("root", root)
        root = Path(os.path.abspath(root))  # absolute paths, symlinks kept as given
        subdirs = sorted(
            d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        found = {SPLIT_NAMES[d]: root / d for d in subdirs if d in SPLIT_NAMES}
        splits = {s: found[s] for s in ("train", "validation", "test") if s in found}
        base = name or root.resolve().name
        if not splits:
            return cls._from_class_folders(root, subdirs, verify, base)
        class_names = sorted(
            {c.name for d in splits.values() for c in d.iterdir() if c.is_dir()
             and not c.name.startswith(".")}
        )
        return {
            split: cls._from_class_folders(folder, class_names, verify, f"{base}-{split}")
            for split, folder in splits.items()
        }

    @classmethod
    def _from_class_folders(
        cls, root: Path, class_names: list[str], verify: Verify, name: str
    ) -> ImageDataset:
        if not class_names:
            raise ValueError(
                f"root={str(root)!r} has no class sub-folders; expected root/<class>/<image files>"
            )
        candidates: list[tuple[str, int]] = []
        skipped: list[tuple[str, str]] = []
        for label, cls_name in enumerate(class_names):
            folder = root / cls_name
            files = sorted(
                str(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
            ) if folder.is_dir() else []
            if not files:
                skipped.append((str(folder), "empty class folder: no files"))
            candidates.extend((f, label) for f in files)
        reasons = check_files([p for p, _ in candidates], verify)
        keep = [(p, y) for (p, y), r in zip(candidates, reasons, strict=True) if r is None]
        skipped += [(p, r) for (p, _), r in zip(candidates, reasons, strict=True) if r is not None]
        counts = np.bincount([y for _, y in keep], minlength=len(class_names))
        skipped += [
            (str(root / c), "class folder has no readable images")
            for c, n in zip(class_names, counts, strict=True)
            if n == 0 and (str(root / c), "empty class folder: no files") not in skipped
        ]
        _warn_skipped(skipped, str(root))
        return cls([p for p, _ in keep], [y for _, y in keep], class_names, skipped, name)

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | os.PathLike],
        labels: Sequence,
        *,
        class_names: Sequence[str] | None = None,
        verify: Verify = "header",
        name: str | None = None,
    ) -> ImageDataset:
        """Build from parallel lists of paths and labels (strings, or ints with ``class_names``).

        Unusable files are moved to ``skipped`` together with their label, so the remaining
        pairs stay aligned. Relative paths are made absolute against the current directory
        (``os.path.abspath``: symlinks are kept, not resolved).
        """
        paths = [os.path.abspath(os.fspath(p)) for p in paths]
        labels = list(labels)
        if len(paths) != len(labels):
            raise ValueError(
                f"paths and labels must have the same length, got {len(paths)} and {len(labels)}"
            )
        if class_names is None:
            class_names = sorted({str(y) for y in labels})
            index = {c: i for i, c in enumerate(class_names)}
            codes = [index[str(y)] for y in labels]
        else:
            class_names = [str(c) for c in class_names]
            index = {c: i for i, c in enumerate(class_names)}
            codes = []
            for y in labels:
                if isinstance(y, int | np.integer) and 0 <= y < len(class_names):
                    codes.append(int(y))
                elif str(y) in index:
                    codes.append(index[str(y)])
                else:
                    raise ValueError(f"label {y!r} is not in class_names={class_names}")
        reasons = check_files(paths, verify)
        keep = [i for i, r in enumerate(reasons) if r is None]
        skipped = [(paths[i], r) for i, r in enumerate(reasons) if r is not None]
        _warn_skipped(skipped, name or "the given paths")
        return cls([paths[i] for i in keep], [codes[i] for i in keep], class_names, skipped, name)

    @classmethod
    def from_csv(
        cls,
        file: str | os.PathLike,
        *,
        path_column: str = "path",
        label_column: str = "label",
        root: str | os.PathLike | None = None,
        verify: Verify = "header",
        name: str | None = None,
    ) -> ImageDataset:
        """Read a CSV with one row per image; relative paths resolve against ``root`` (default:
        the CSV's folder) and are stored absolute."""
        rows = read_csv(file, path_column=path_column, label_column=label_column, root=root)
        return cls.from_paths([r["path"] for r in rows], [r["label"] for r in rows],
                              verify=verify, name=name or Path(file).stem)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: Sequence,
        *,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        directory: str | os.PathLike | None = None,
    ) -> ImageDataset:
        """Build from ``uint8`` arrays (N×H×W grey or N×H×W×C).

        The images are written once as PNG files under ``directory`` (default:
        ``<cache dir>/arrays/<content hash>/``), so every later stage sees files; a second call
        with the same arrays reuses them.

        Examples
        --------
        >>> import numpy as np, tempfile
        >>> x = np.zeros((4, 28, 28), dtype=np.uint8)
        >>> ds = ImageDataset.from_arrays(x, [0, 1, 0, 1], class_names=["a", "b"],
        ...                               directory=tempfile.mkdtemp())
        >>> len(ds), ds.class_names
        (4, ['a', 'b'])
        """
        from PIL import Image

        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                "images must be a uint8 array of shape (N, H, W) or (N, H, W, C), got "
                f"dtype={images.dtype} shape={images.shape}"
            )
        if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
            raise ValueError(f"images must have 1, 3 or 4 channels, got shape {images.shape}")
        digest = array_digest(images)
        folder = Path(directory) if directory is not None else cache_dir() / "arrays" / digest
        folder.mkdir(parents=True, exist_ok=True)
        width = max(5, len(str(len(images))))
        paths = [folder / f"{i:0{width}d}.png" for i in range(len(images))]
        for path, img in zip(paths, images, strict=True):
            if not path.exists():
                tmp = path.with_suffix(".tmp.png")
                Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img
                                ).save(tmp)
                os.replace(tmp, path)
        return cls.from_paths(
            [str(p) for p in paths], labels, class_names=class_names, verify="none",
            name=name or f"arrays-{digest[:8]}",
        )

    # -- container protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return zip(self.paths, self.labels.tolist(), strict=True)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (
            f"<ImageDataset{name}: {len(self)} images, {len(self.class_names)} classes{skipped}>"
        )

    @property
    def label_names(self) -> np.ndarray:
        """The class name of every image (``class_names[labels]``)."""
        return np.asarray(self.class_names, dtype=object)[self.labels]

    def class_counts(self) -> dict[str, int]:
        """Images per class, in ``class_names`` order."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return dict(zip(self.class_names, counts.tolist(), strict=True))

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ImageDataset:
        """A dataset of the given rows, with the same class names.

        Without a ``name`` it is named after this dataset and the rows it holds
        (``<name>-sub<6 hex>``), so it never shares a cache file with its parent or a sibling.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if name is None and self.name:
            digest = hashlib.sha256(idx.tobytes()).hexdigest()[:6]
            name = f"{self.name}-sub{digest}"
        return ImageDataset([self.paths[i] for i in idx], self.labels[idx], self.class_names,
                            name=name)

    def split(
        self,
        test_size: float = 0.2,
        val_size: float | None = None,
        *,
        stratify: bool = True,
        random_state: int | None = 0,
    ) -> tuple[ImageDataset, ...]:
        """Split into ``(train, test)``, or ``(train, validation, test)`` given ``val_size``.

        Sizes are fractions of the whole dataset. Stratified by class by default, and reproducible
        for a given ``random_state``. The files this dataset skipped when it was built stay listed
        in the train part's ``skipped``, so they are reported once.

        Examples
        --------
        >>> ds = ImageDataset.from_paths([f"{i}.jpg" for i in range(20)],
        ...                              [i % 2 for i in range(20)],
        ...                              class_names=["a", "b"], verify="none")
        >>> train, test = ds.split(test_size=0.25)
        >>> len(train), len(test), test.class_counts()
        (15, 5, {'a': 3, 'b': 2})
        """
        from sklearn.model_selection import train_test_split

        for param, value in (("test_size", test_size), ("val_size", val_size)):
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{param} must be a fraction in (0, 1), got {value!r}")
        if val_size is not None and test_size + val_size >= 1:
            raise ValueError(
                f"test_size + val_size must be < 1, got {test_size} + {val_size}"
            )
        if stratify:
            counts = np.bincount(self.labels, minlength=len(self.class_names))
            few = [self.class_names[k] for k in np.flatnonzero((counts > 0) & (counts < 2))]
            if few:
                raise ValueError(
                    f"cannot stratify the split: class(es) {few} have a single image (each class "
                    "needs at least 2, one on each side); add images, drop the class, or pass "
                    "stratify=False")
        idx = np.arange(len(self))
        strat = self.labels if stratify else None
        rest, test = train_test_split(
            idx, test_size=test_size, stratify=strat, random_state=random_state
        )
        base = self.name or "data"
        if val_size is None:
            return (
                self._with_skipped(self.subset(np.sort(rest), f"{base}-train")),
                self.subset(np.sort(test), f"{base}-test"),
            )
        strat = self.labels[rest] if stratify else None
        train, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), stratify=strat, random_state=random_state
        )
        return (
            self._with_skipped(self.subset(np.sort(train), f"{base}-train")),
            self.subset(np.sort(val), f"{base}-validation"),
            self.subset(np.sort(test), f"{base}-test"),
        )

    def _with_skipped(self, part: ImageDataset) -> ImageDataset:
        part.skipped = list(self.skipped)
        return part


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


def is_image_input(X: Any) -> bool:
    """True for the inputs a FeatureExtractor reads: paths, ImageDataset, uint8 image arrays."""
    return isinstance(X, ImageDataset) or is_uint8_images(X) or image_paths(X) is not None


def looks_like_images(X: Any) -> bool:
    """Inputs meant as images that :func:`is_image_input` refuses (a single path, a list
    mixing paths with other values or holding image arrays, a non-uint8 image array)."""
    if isinstance(X, PATH_TYPES):
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
    if isinstance(X, PATH_TYPES):
        got = f"the single path {os.fsdecode(X)!r}; wrap it in a list"
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
    ``(N, H, W)`` or ``(N, H, W, C)``. Anything else is a ``TypeError`` naming ``X``, saying
    what was received and listing these; no image at all is a ``ValueError``.

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


@contextmanager
def as_image_dataset(X: Any, cache: Any = None) -> Iterator[ImageDataset]:
    """Images in any accepted form as an ImageDataset, valid inside the ``with`` block.

    Paths are made absolute. ``uint8`` arrays are written as PNG files, once, under
    ``<cache>/arrays/<content hash>/`` (reused by later calls); with ``cache=False`` into a
    temporary folder that is removed when the block ends, so nothing is left on disk.
    """
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
        paths = [os.path.abspath(p) for p in paths]
        yield ImageDataset(paths, np.zeros(len(paths), np.int64), ["?"], name=None)
    else:
        raise image_input_error(X)
