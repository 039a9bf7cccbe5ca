"""The cache's files: where a dataset's file and a configuration's row store live, and the
dataset file itself (written atomically, read back with its featx attributes checked).

    <cache>/<dataset>-<where6>__<backbone>-<size>-<pooling>__<key8>.h5   one per dataset and config
    <cache>/rows/<backbone>-<size>-<pooling>__<key8>/seg-*.h5          the config's row store
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import time
from pathlib import Path

import h5py
import numpy as np

from featx.cache.keys import config_slug
from featx.cache.rowstore import SEGMENT_GLOB, TMP_PREFIX, RowStore, chunk_rows, write_h5_atomic
from featx.utils.jsonable import jsonable
from featx.utils.version import __version__

__all__ = ["DATASETS", "dataset_file", "location_digest", "read_attrs", "read_dataset_file",
           "row_store", "safe_name", "store_problem", "write_dataset_file"]

DATASETS = ("features", "labels", "paths", "ids")


_STORE_NAME = re.compile(r".+__[0-9a-f]{8}")  # <backbone>-<size>-<pooling>__<key8>
_STORE_FILES = (".lock", "config.json")


def store_problem(path: Path) -> str | None:
    """Why ``path`` is not a featx row-store folder, or ``None`` when it is one.

    A store is a folder ``<cache>/rows/<slug>__<key8>`` holding only what :class:`RowStore`
    writes (``.lock``, ``config.json``, ``seg-*.h5``, ``.tmp-*``), at least its ``.lock`` or
    ``config.json``, and a ``config.json`` (when there is one) whose key matches the name.
    """
    if path.is_symlink() or not path.is_dir():
        return "not a folder" if not path.is_symlink() else "a symbolic link"
    if path.parent.name != "rows":
        return "a folder outside a cache's rows/ folder"
    if not _STORE_NAME.fullmatch(path.name):
        return "a folder not named <backbone>-<size>-<pooling>__<key8>"
    children = list(path.iterdir())
    foreign = sorted(c.name for c in children if c.is_symlink() or not c.is_file() or not (
        c.name in _STORE_FILES or fnmatch.fnmatch(c.name, SEGMENT_GLOB)
        or c.name.startswith(TMP_PREFIX)))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return f"a folder holding {len(foreign)} entries featx does not write: {shown}"
    if not {c.name for c in children} & set(_STORE_FILES):
        return "a folder without featx's .lock or config.json"
    if (cfg := path / "config.json").exists():
        try:
            key = json.loads(cfg.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            return "a folder whose config.json is not featx's"
        if key is not None and not str(key).startswith(path.name[-8:]):
            return "a folder whose config.json holds another configuration's key"
    return None


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("._") or "dataset"


def location_digest(paths) -> str:
    """6 hex digits of SHA-256 of the folder holding ``paths`` (their dirs' common path).

    Adding images to the same folder keeps the digest; the same file names in another folder
    change it.

    Examples
    --------
    >>> here = location_digest(["/x/data/a/1.jpg", "/x/data/b/2.jpg"])
    >>> here == location_digest(["/x/data/c.jpg"])
    True
    >>> location_digest(["/x/data/1.jpg"]) == location_digest(["/y/data/1.jpg"])
    False
    """
    dirs = sorted({os.path.dirname(os.path.abspath(os.fspath(p))) for p in paths})
    try:
        where = os.path.commonpath(dirs) if dirs else ""
    except ValueError:  # paths on different drives (Windows): no common folder
        where = "\n".join(dirs)
    return hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:6]


def dataset_file(root: str | os.PathLike, dataset_name: str, config: dict, paths=()) -> Path:
    """Path of the dataset file for (dataset, configuration): ``<name>-<where6>__<slug>.h5``.

    ``paths`` are the dataset's image paths; :func:`location_digest` of them keeps two datasets
    of the same name in different folders (``x/data``, ``y/data``) in different files.
    """
    where = location_digest(paths)
    return Path(root) / f"{safe_name(dataset_name)}-{where}__{config_slug(config)}.h5"


def row_store(root: str | os.PathLike, config: dict) -> RowStore:
    """The configuration's :class:`~featx.cache.rowstore.RowStore`."""
    return RowStore(Path(root) / "rows" / config_slug(config), attrs=config)


def write_dataset_file(path: Path, config: dict, *, features: np.ndarray, labels, paths, ids,
                       class_names, extra: dict) -> None:
    """Write a complete dataset file atomically (temporary name, fsync, ``os.replace``)."""
    import keras

    def fill(f: h5py.File) -> None:
        n = len(ids)
        shape = features.shape[1:]
        rows = chunk_rows(n, shape, features.dtype.itemsize)
        f.create_dataset("features", data=features, chunks=(rows, *shape) if n else None)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        f.create_dataset("paths", data=list(paths), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("ids", data=np.asarray(ids, dtype="S64"))
        attrs = dict(config)
        attrs.update(extra)
        attrs.update(class_names=list(class_names) if len(class_names) else np.array([], "S1"),
                     featx_version=__version__, keras_backend=keras.backend.backend(),
                     created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), n_rows=n, complete=True)
        for k, v in attrs.items():
            f.attrs[k] = v

    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5_atomic(path, fill)


_FEATX_ATTRS = ("key", "featx_version")  # written into every dataset file, and only there


def not_featx(path, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a featx cache file ({why})")


@contextlib.contextmanager
def open_h5(path: str | os.PathLike):
    """``h5py.File(path, "r")``, with a clear error for a missing path, a folder or a non-HDF5 file.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` ("<path> is not a featx
    cache file (...)") for a folder, a file without the HDF5 signature, or one h5py cannot open.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (see cache_ls() for the cache's entries)")
    if path.is_dir():
        why = ("it is a row-store folder; dataset files are the <name>-<where>__<config>.h5 files "
               "listed by cache_ls()" if store_problem(path) is None else "it is a folder")
        raise not_featx(path, why)
    if not h5py.is_hdf5(path):
        raise not_featx(path, "not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise not_featx(path, f"h5py cannot open it, truncated or damaged? {exc}") from exc
    with f:
        yield f


def featx_attrs(f: h5py.File, path) -> dict:
    attrs = {k: jsonable(v) for k, v in f.attrs.items()}
    if missing := [k for k in _FEATX_ATTRS if k not in attrs]:
        raise not_featx(path, f"an HDF5 file without featx's attribute(s) {', '.join(missing)}")
    return attrs


def read_attrs(path: str | os.PathLike) -> dict:
    """The attributes of a featx dataset file (``ValueError`` for any other file)."""
    with open_h5(path) as f:
        return featx_attrs(f, path)


def read_dataset_file(path: str | os.PathLike) -> dict:
    """All arrays and attributes of a dataset file; raises ``ValueError`` if it is not complete."""
    with open_h5(path) as f:
        attrs = featx_attrs(f, path)
        if not attrs.get("complete") or any(k not in f for k in DATASETS):
            raise ValueError(f"{os.fspath(path)} is not a complete featx dataset file")
        out = {
            "features": f["features"][:],
            "labels": f["labels"][:],
            "paths": [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:]],
            "ids": [i.decode("ascii") for i in f["ids"][:]],
        }
    attrs["class_names"] = [str(c) for c in attrs.get("class_names") or []]
    out["attrs"] = attrs
    return out
