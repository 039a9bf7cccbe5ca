"""Turn a DATA argument (a folder, a CSV or a built-in name) into a dict of dataset splits.

Shared by the ``featx`` command and :mod:`featx.pipeline`, so both accept exactly the same inputs::

    clothing-mini                       the bundled demo (train/test)
    fashion-mnist                       Fashion-MNIST, when its IDX files are installed
    path/to/folder                      class folders, with or without train/validation/test
    path/to/file.csv                    columns path,label (optional split column)

A dataset without a test split is split here (stratified, reproducible); ``limit`` keeps at most
that many images per class in every split, for quick runs.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from featx.data import ImageDataset, read_csv
from featx.datasets import load_clothing_mini, load_fashion_mnist

__all__ = ["BUILTIN_DATA", "DataNotFoundError", "limit_per_class", "resolve_data"]


class DataNotFoundError(FileNotFoundError):
    """The data a command or pipeline needs is not on disk; the message says what to fetch."""


def _clothing_mini(limit):
    return load_clothing_mini()


def _fashion_mnist(limit):
    try:
        # ``limit`` here is per class; the loader's is per split (10 balanced classes).
        return load_fashion_mnist(limit=None if limit is None else 10 * int(limit) * 2)
    except FileNotFoundError as exc:
        raise DataNotFoundError(str(exc)) from None


#: Built-in dataset names -> loader(limit) returning ``{"train": ..., "test": ...}``.
BUILTIN_DATA: dict[str, Callable] = {
    "clothing-mini": _clothing_mini,
    "fashion-mnist": _fashion_mnist,
}


def _normalise_name(spec: str) -> str:
    return spec.strip().lower().replace("_", "-")


def limit_per_class(dataset, limit: int | None, seed: int = 0):
    """Keep at most ``limit`` images of each class (a reproducible random choice, order kept)."""
    if not limit:
        return dataset
    rng = np.random.default_rng(seed)
    keep = []
    for k in range(len(dataset.class_names)):
        idx = np.flatnonzero(dataset.labels == k)
        if len(idx) > limit:
            idx = rng.choice(idx, size=int(limit), replace=False)
        keep.extend(idx.tolist())
    if len(keep) == len(dataset):
        return dataset
    name = f"{dataset.name or 'data'}-lim{int(limit)}"
    return dataset.subset(np.sort(np.asarray(keep, dtype=np.int64)), name=name)


def _from_csv(path: Path, name: str | None, path_column: str = "path",
              label_column: str = "label"):
    """A CSV with ``path,label`` columns (or the ones named); a ``split`` column, when present,
    gives the splits.

    Read by :func:`featx.data.read_csv`, as :meth:`ImageDataset.from_csv` reads: a row without
    a usable label or split value is refused with its line number, never made a class of its
    own."""
    columns = dict(path_column=path_column, label_column=label_column)
    try:
        rows = read_csv(path, split_column="split", **columns)
    except KeyError as exc:  # a column not there: say how to name the right ones
        raise KeyError(f"{exc.args[0]}; name the CSV's columns with path_column and "
                       "label_column (command line: --path-column, --label-column; pipeline: "
                       "data.path_column, data.label_column)") from None
    if not rows or "split" not in rows[0]:
        return ImageDataset.from_csv(path, name=name, **columns)
    class_names = sorted({r["label"] for r in rows})
    out = {}
    for split in ("train", "validation", "test"):
        picked = [r for r in rows if r["split"] == split]
        if picked:
            out[split] = ImageDataset.from_paths(
                [r["path"] for r in picked], [r["label"] for r in picked],
                class_names=class_names, name=f"{name or path.stem}-{split}")
    if "train" not in out:
        raise ValueError(f"the CSV {str(path)!r} has no train rows (split values: "
                         f"{sorted(out)}); allowed: train, validation (or val), test")
    return out


def _missing(spec: str, fetch: str | None) -> DataNotFoundError:
    path = Path(spec).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    close = []
    if parent.is_dir():
        close = difflib.get_close_matches(path.name, sorted(os.listdir(parent)), n=3)
    close += difflib.get_close_matches(_normalise_name(spec), list(BUILTIN_DATA), n=2)
    msg = (f"data {spec!r} was not found: it is neither an existing folder or CSV file "
           f"(looked at {str(path.resolve())!r}) nor a built-in name ({', '.join(BUILTIN_DATA)}).")
    if close:
        msg += f" Did you mean {', '.join(repr(c) for c in close)}?"
    if fetch:
        msg += f" To get it: {fetch}"
    return DataNotFoundError(msg)


def resolve_data(spec: str | os.PathLike, *, test_size: float = 0.2, val_size: float | None = None,
                 limit: int | None = None, seed: int = 0, name: str | None = None,
                 fetch: str | None = None, path_column: str = "path",
                 label_column: str = "label") -> dict:
    """Resolve ``spec`` into ``{"train": ImageDataset, ["validation": ...,] "test": ...}``.

    Parameters
    ----------
    spec : str or path
        A built-in name (see :data:`BUILTIN_DATA`), a class-folder directory (with or without
        ``train/``, ``validation/``, ``test/``) or a CSV file.
    test_size, val_size : float
        Fractions used only when the data has no such split of its own (``val_size=None``: none).
    limit : int, optional
        At most this many images per class in every split.
    seed : int
        Seed of the split and of the ``limit`` subsample.
    name : str, optional
        Dataset name for cache files and reports (default: the folder's, CSV's or built-in name).
    fetch : str, optional
        What to tell the user when the data is missing (where to download it, where to put it).
    path_column, label_column : str, default="path", "label"
        A CSV's columns holding each image's path and class name (as in
        :func:`featx.data.read_csv`); not used by folders and built-in names.

    Examples
    --------
    >>> splits = resolve_data("clothing-mini", limit=2)
    >>> sorted(splits), len(splits["train"]), len(splits["test"])
    (['test', 'train'], 20, 20)
    """
    spec_s = os.fspath(spec)
    path = Path(spec_s).expanduser()
    builtin = _normalise_name(spec_s)
    if builtin in BUILTIN_DATA and not path.exists():
        try:
            data = BUILTIN_DATA[builtin](limit)
        except DataNotFoundError as exc:
            raise DataNotFoundError(f"{exc} {fetch}" if fetch else str(exc)) from None
    elif path.is_dir():
        data = ImageDataset.from_directory(path, name=name)
    elif path.is_file():
        data = _from_csv(path, name, path_column, label_column)
    else:
        raise _missing(spec_s, fetch)
    if not isinstance(data, dict):
        data = dict(zip(("train", "validation", "test") if val_size else ("train", "test"),
                        data.split(test_size=test_size, val_size=val_size or None,
                                   random_state=seed), strict=True))
    elif "test" not in data:
        parts = data["train"].split(test_size=test_size, random_state=seed)
        data = {**data, "train": parts[0], "test": parts[1]}
    if "train" not in data:
        raise ValueError(f"data {spec_s!r} has no train split; found {sorted(data)}")
    if val_size and "validation" not in data:
        frac = val_size / max(1e-9, 1 - test_size)
        train, val = data["train"].split(test_size=min(frac, 0.5), random_state=seed)
        data = {**data, "train": train, "validation": val}
    out = {s: limit_per_class(data[s], limit, seed) for s in ("train", "validation", "test")
           if s in data}
    for split, ds in out.items():
        if len(ds) == 0:
            raise ValueError(f"data {spec_s!r}: the {split} split has no images")
    return out


def describe_splits(splits: dict) -> str:
    """One line: ``train 300 · test 100 · 10 classes``."""
    parts = [f"{s} {len(d)}" for s, d in splits.items()]
    n = len(next(iter(splits.values())).class_names)
    return " · ".join(parts) + f" · {n} classes"
