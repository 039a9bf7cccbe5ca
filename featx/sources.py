"""Turn a DATA argument (a folder, a CSV or a built-in name) into a dict of dataset splits.

Shared by the ``featx`` command and :mod:`featx.pipeline`, so both accept exactly the same inputs::

    clothing-mini                       the bundled demo (train/test)
    fashion-mnist                       Fashion-MNIST, when its IDX files are installed
    path/to/folder                      class folders, with or without train/validation/test
    path/to/file.csv                    columns path,label (optional split column)
    data/train-*.tfrecord               tf.train.Example shards (format "tfrecord")
    data/train.parquet                  an image-bytes column (format "parquet")
    shards/train-*.tar                  WebDataset shards (format "webdataset")
    s3://bucket/photos/  https://...    any of the above behind an fsspec URL

The format follows from the suffix (:data:`SUFFIX_FORMATS`), a folder, or ``format=`` when the
name does not say (a shard named ``train-00000-of-00004``).

A dataset without a test split is split here (stratified, reproducible); ``limit`` keeps at most
that many images per class in every split, for quick runs.

The tables and the checks of a DATA argument import nothing heavy (numpy, Pillow, HDF5 come with
the readers, on first use), so the command line answers a mistyped DATA at once.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path

from featx.errors import DataNotFoundError
from featx.trust.reader import is_url
from featx.utils.checks import close_matches
from featx.utils.registry import Registry

__all__ = ["BUILTIN_DATA", "DATA_FORMATS", "SUFFIX_FORMATS", "DataNotFoundError", "data_format",
           "limit_per_class", "resolve_data"]


def _clothing_mini(limit):
    from featx.datasets import load_clothing_mini

    return load_clothing_mini()


def _fashion_mnist(limit):
    from featx.datasets import load_fashion_mnist

    try:
        # ``limit`` here is per class; the loader's is per split (10 balanced classes).
        return load_fashion_mnist(limit=None if limit is None else 10 * int(limit) * 2)
    except FileNotFoundError as exc:
        raise DataNotFoundError(str(exc)) from None


#: Built-in dataset names -> loader(limit) returning ``{"train": ..., "test": ...}``.
BUILTIN_DATA: Registry[Callable] = Registry("built-in dataset", {
    "clothing-mini": _clothing_mini,
    "fashion-mnist": _fashion_mnist,
}, param="data")


def _normalise_name(spec: str) -> str:
    return spec.strip().lower().replace("_", "-")


def limit_per_class(dataset, limit: int | None, seed: int = 0):
    """Keep at most ``limit`` images of each class (a reproducible random choice, order kept)."""
    if not limit:
        return dataset
    import numpy as np

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
              label_column: str = "label", allow_local: bool = False):
    """A CSV with ``path,label`` columns (or the ones named); a ``split`` column, when present,
    gives the splits.

    Read by :func:`featx.data.read_csv`, as :meth:`ImageDataset.from_csv` reads: a row without
    a usable label or split value is refused with its line number, never made a class of its
    own. A CSV at a remote location names only remote images unless ``allow_local``."""
    from featx.data import ImageDataset, read_csv

    columns = dict(path_column=path_column, label_column=label_column)
    try:
        rows = read_csv(path, split_column="split", **columns)
    except KeyError as exc:  # a column not there: say how to name the right ones
        raise KeyError(f"{exc.args[0]}; name the CSV's columns with path_column and "
                       "label_column (command line: --path-column, --label-column; pipeline: "
                       "data.path_column, data.label_column)") from None
    if not rows or "split" not in rows[0]:
        return ImageDataset.from_csv(path, name=name, allow_local=allow_local, **columns)
    class_names = sorted({r["label"] for r in rows})
    out = {}
    for split in ("train", "validation", "test"):
        picked = [r for r in rows if r["split"] == split]
        if picked:
            out[split] = ImageDataset.from_paths(
                [r["path"] for r in picked], [r["label"] for r in picked],
                class_names=class_names, name=f"{name or _stem(path)}-{split}",
                origin=path, allow_local=allow_local)
    if "train" not in out:
        raise ValueError(f"the CSV {str(path)!r} has no train rows (split values: "
                         f"{sorted(out)}); allowed: train, validation (or val), test")
    return out


def _folder(spec: str, name, path_column, label_column, allow_local):
    from featx.data import ImageDataset

    return ImageDataset.from_directory(spec, name=name)


def _csv(spec: str, name, path_column, label_column, allow_local):
    return _from_csv(spec if is_url(spec) else Path(spec), name, path_column, label_column,
                     allow_local)


def _column(given: str, default_given: str, default: str) -> str:
    return default if given == default_given else given


def _tfrecord(spec: str, name, path_column, label_column, allow_local):
    from featx.data import ImageDataset

    return ImageDataset.from_tfrecords(
        spec, image_key=_column(path_column, "path", "image/encoded"),
        label_key=_column(label_column, "label", "image/class/label"), name=name)


def _parquet(spec: str, name, path_column, label_column, allow_local):
    from featx.data import ImageDataset

    return ImageDataset.from_parquet(spec, image_column=_column(path_column, "path", "image"),
                                     label_column=label_column, name=name,
                                     allow_local=allow_local)


def _webdataset(spec: str, name, path_column, label_column, allow_local):
    from featx.data import ImageDataset

    return ImageDataset.from_webdataset(spec, name=name)


#: ``format`` -> loader(spec, name, path_column, label_column, allow_local) returning a dataset
#: or splits. ``path_column`` / ``label_column`` name a CSV's columns, a Parquet file's image and
#: label columns, or a TFRecord's image and label features (each format has its own default);
#: ``allow_local`` lets a list (a CSV, Parquet path cells) name local files it would not.
DATA_FORMATS: Registry[Callable] = Registry("data format", {
    "folder": _folder,
    "csv": _csv,
    "tfrecord": _tfrecord,
    "parquet": _parquet,
    "webdataset": _webdataset,
}, param="format")
#: File suffix -> format, when ``format`` is not given.
SUFFIX_FORMATS = {".csv": "csv", ".tfrecord": "tfrecord", ".tfrecords": "tfrecord",
                  ".tfrec": "tfrecord", ".parquet": "parquet", ".tar": "webdataset"}


def data_format(spec: str, format: str | None = None) -> str | None:
    """The format of DATA ``spec``: ``format`` when given, else from its suffix, else a folder
    (an existing one, or any URL without a known suffix); ``None`` when nothing fits.

    Examples
    --------
    >>> data_format("gs://bucket/train-*.tfrecord"), data_format("s3://bucket/photos/")
    ('tfrecord', 'folder')
    """
    if format is not None:
        return DATA_FORMATS.check(format)
    target = spec.split("::")[-1] if "::" in spec and not spec.startswith(("zip:", "tar:")) \
        else spec
    suffix = os.path.splitext(target.split("?", 1)[0].rstrip("/"))[1].lower()
    if suffix in SUFFIX_FORMATS and (is_url(spec) or glob.has_magic(spec)
                                     or Path(spec).expanduser().is_file()):
        return SUFFIX_FORMATS[suffix]
    if is_url(spec) or Path(spec).expanduser().is_dir():
        return "folder"
    if Path(spec).expanduser().is_file():
        return "csv"
    return None


def _stem(path) -> str:
    return os.fspath(path).rsplit("::", 1)[-1].rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _missing(spec: str, fetch: str | None) -> DataNotFoundError:
    path = Path(spec).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    names = sorted(os.listdir(parent)) if parent.is_dir() else []
    hint = (close_matches(path.name, names) if close_matches(path.name, names)
            else close_matches(_normalise_name(spec), list(BUILTIN_DATA)))
    msg = (f"data {spec!r} was not found{hint}: it is neither an existing folder or CSV file "
           f"(looked at {str(path.resolve())!r}) nor a built-in name ({', '.join(BUILTIN_DATA)}).")
    if fetch:
        msg += f" To get it: {fetch}"
    return DataNotFoundError(msg)


def resolve_data(spec: str | os.PathLike, *, test_size: float = 0.2, val_size: float | None = None,
                 limit: int | None = None, seed: int = 0, name: str | None = None,
                 fetch: str | None = None, path_column: str = "path",
                 label_column: str = "label", format: str | None = None,
                 allow_local: bool = False) -> dict:
    """Resolve ``spec`` into ``{"train": ImageDataset, ["validation": ...,] "test": ...}``.

    Parameters
    ----------
    spec : str or path
        A built-in name (see :data:`BUILTIN_DATA`), a class-folder directory (with or without
        ``train/``, ``validation/``, ``test/``), a CSV file, TFRecord shards, a Parquet file or
        WebDataset shards (a file or a glob pattern); local or any fsspec URL.
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
        :func:`featx.data.read_csv`); for Parquet the image and label columns (default
        ``image``, ``label``), for TFRecord the image and label features (default
        ``image/encoded``, ``image/class/label``); not used by folders and built-in names.
    format : {"folder", "csv", "tfrecord", "parquet", "webdataset"}, optional
        How to read ``spec`` when its name does not say (see :func:`data_format`).
    allow_local : bool, default=False
        Let a list read from a remote location (a CSV over HTTP) name local files, and a
        Parquet file's path cells name files outside its folder; without it such items are
        skipped with the reason (:func:`featx.trust.reader.confine`).

    Examples
    --------
    >>> splits = resolve_data("clothing-mini", limit=2)
    >>> sorted(splits), len(splits["train"]), len(splits["test"])
    (['test', 'train'], 20, 20)
    """
    spec_s = os.fspath(spec)
    path = Path(spec_s).expanduser()
    builtin = _normalise_name(spec_s)
    if builtin in BUILTIN_DATA and not path.exists() and format is None:
        try:
            data = BUILTIN_DATA[builtin](limit)
        except DataNotFoundError as exc:
            raise DataNotFoundError(f"{exc} {fetch}" if fetch else str(exc)) from None
    elif (kind := data_format(spec_s, format)) is not None:
        local = spec_s if is_url(spec_s) else str(path)
        try:
            data = DATA_FORMATS[kind](local, name, path_column, label_column, allow_local)
        except FileNotFoundError as exc:
            raise DataNotFoundError(f"{exc} {fetch}" if fetch else str(exc)) from None
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
