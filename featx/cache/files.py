"""The cache's files: where a dataset's file and a configuration's row store live, and the
dataset file itself (written atomically, sealed with the digest of its bytes, read back with its
digest, featx attributes and shapes checked).

A dataset file holds a dataset's ids, labels, paths and attributes; its feature rows live once,
in the configuration's row store, and are gathered from it by content id when the file is read
(:func:`dataset_rows`, each row checked against its digest). Files written before that layout
carry a ``features`` dataset of their own and are read as they are.

    <cache>/<dataset>-<where6>__<backbone>-<size>-<pooling>__<key8>.h5   one per dataset and config
    <cache>/rows/<backbone>-<size>-<pooling>__<key8>/seg-*.h5          the config's row store
    <cache>/damaged/...                                                damaged files, moved aside
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

from featx.cache.keys import StoreKey, path_bytes
from featx.cache.rowstore import SEGMENT_GLOB, RowStore
from featx.images import is_url
from featx.trust.store import (
    STORE_NAME,
    TMP_PREFIX,
    CacheWriteError,
    DamagedCacheError,
    MissingRowsError,
    check_seal,
    chunk_rows,
    h5_error,
    h5_size,
    regular_problem,
    write_h5_atomic,
)
from featx.utils.jsonable import jsonable
from featx.utils.version import __version__

__all__ = ["DATASETS", "INDEX_DATASETS", "dataset_file", "dataset_rows", "dataset_store",
           "inspect_dataset_file", "location_digest", "read_attrs", "read_dataset_file",
           "row_store", "safe_name", "store_problem", "write_dataset_file"]

DATASETS = ("features", "labels", "paths", "ids")  # a self-contained (older) dataset file
INDEX_DATASETS = ("labels", "paths", "ids")  # a dataset file whose rows live in its row store


_STORE_FILES = (".lock", "config.json", "config.json.seal")


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
    if not STORE_NAME.fullmatch(path.name):
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


def _folder(path: str) -> str:
    """A path's folder; a URL's (``s3://b/x/1.jpg`` -> ``s3://b/x``), not made absolute."""
    return path.rsplit("/", 1)[0] if is_url(path) else os.path.dirname(os.path.abspath(path))


def location_digest(paths) -> str:
    """6 hex digits of SHA-256 of the folder holding ``paths`` (their dirs' common path).

    Adding images to the same folder keeps the digest; the same file names in another folder
    change it. URLs (and container locations) count by their own folder, whatever the working
    directory.

    Examples
    --------
    >>> here = location_digest(["/x/data/a/1.jpg", "/x/data/b/2.jpg"])
    >>> here == location_digest(["/x/data/c.jpg"])
    True
    >>> location_digest(["/x/data/1.jpg"]) == location_digest(["/y/data/1.jpg"])
    False
    """
    dirs = sorted({_folder(os.fspath(p)) for p in paths})
    try:
        where = os.path.commonpath(dirs) if dirs else ""
    except ValueError:  # paths on different drives (Windows): no common folder
        where = "\n".join(dirs)
    return hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:6]


def dataset_file(root: str | os.PathLike, dataset_name: str, config: StoreKey, paths=()) -> Path:
    """Path of the dataset file for (dataset, configuration): ``<name>-<where6>__<slug>.h5``.

    ``paths`` are the dataset's image paths; :func:`location_digest` of them keeps two datasets
    of the same name in different folders (``x/data``, ``y/data``) in different files.
    """
    where = location_digest(paths)
    return Path(root) / f"{safe_name(dataset_name)}-{where}__{config.slug}.h5"


def row_store(root: str | os.PathLike, config: StoreKey) -> RowStore:
    """The configuration's :class:`~featx.cache.rowstore.RowStore`."""
    return RowStore(Path(root) / "rows" / config.slug, attrs=config.attrs())


def write_dataset_file(path: Path, config: StoreKey, *, features: np.ndarray, labels, paths, ids,
                       class_names, extra: dict, embed_rows: bool = True) -> None:
    """Write a complete dataset file atomically (temporary name, fsync, ``os.replace``), sealed
    with the SHA-256 of its bytes in its HDF5 user block (checked by every read:
    :func:`~featx.trust.store.check_seal`).

    With ``embed_rows=False`` (what extraction writes) the file keeps ``labels``, ``paths``,
    ``ids`` and the attributes, and the rows ``features`` stay in the configuration's row store
    (``<folder>/rows/<config.slug>``), which must hold every id: the file records their
    shape, dtype and the store's name (``row_store``), and :func:`read_dataset_file` gathers
    them by content id. With ``embed_rows=True`` the file carries its own ``features`` dataset,
    as featx wrote every dataset file before (readable without a store).

    Raises :class:`~featx.trust.store.CacheWriteError` naming the cache folder when the disk
    refuses the file (full, file-size limit, read-only); the old file, if any, is kept then.
    """
    features = np.asarray(features)
    labels = np.asarray(labels, dtype=np.int64)
    paths, ids = list(paths), list(ids)
    n = len(ids)
    if not len(features) == len(labels) == len(paths) == n:
        raise ValueError(f"write_dataset_file({os.fspath(path)!r}) got {len(features)} feature "
                         f"rows, {len(labels)} labels, {len(paths)} paths and {n} ids")
    attrs = config.attrs()
    attrs.update(extra)
    attrs.update(class_names=list(class_names) if len(class_names) else np.array([], "S1"),
                 featx_version=__version__,
                 created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), n_rows=n, complete=True)
    if not embed_rows:  # where the rows are, and what they must look like when gathered
        attrs.update(row_store=config.slug, row_shape=list(features.shape[1:]),
                     row_dtype=features.dtype.name)
    shape = features.shape[1:]
    rows = chunk_rows(n, shape, features.dtype.itemsize)
    chunks = -(-n // rows) if embed_rows else 0  # the last rows of each chunk may be padding
    data = features.nbytes + chunks * features[:1].nbytes if embed_rows else 0
    text = sum(len(path_bytes(p)) + 32 for p in paths) + len(json.dumps(jsonable(attrs)))
    size = h5_size(data + n * (64 + 8) + text, chunks + 1)

    def fill(f: h5py.File) -> None:
        if embed_rows:
            f.create_dataset("features", data=features, chunks=(rows, *shape) if n else None)
        f.create_dataset("labels", data=labels)
        # bytes, so a file name that is not valid UTF-8 is stored as it is on disk
        f.create_dataset("paths", data=[path_bytes(p) for p in paths],
                         dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("ids", data=np.asarray(ids, dtype="S64"))
        for k, v in attrs.items():
            f.attrs[k] = v

    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5_atomic(path, fill, size, key=config.key)


def dataset_store(path: str | os.PathLike, attrs: dict) -> RowStore | None:
    """The row store holding the rows of the dataset file ``path`` (``<folder>/rows/<row_store>``),
    or ``None`` for a file that carries its own ``features``."""
    name = attrs.get("row_store")
    if name is None:
        return None
    if not isinstance(name, str) or not STORE_NAME.fullmatch(name) or "/" in name \
            or "\\" in name:
        raise DamagedCacheError(path, f"its row_store attribute {name!r} is not a store's name")
    return RowStore(Path(path).parent / "rows" / name)


def dataset_rows(path: str | os.PathLike, data: dict, store: RowStore | None = None) -> np.ndarray:
    """The feature rows of a dataset file (as :func:`read_dataset_file` reads it with
    ``rows=False``) gathered from its row store by content id, each checked against its digest.

    ``store``: the store, held under its lock by the caller (an extraction under the exclusive
    lock, which moves a damaged segment aside: :meth:`RowStore.index`). Default: the file's own
    store, read without a lock (segments never change once named), then once more under its
    shared lock when that fails (a concurrent compaction may have just merged a segment away).

    Raises :class:`~featx.trust.store.MissingRowsError` (a ``ValueError``) naming the file and
    the store when the store lacks some of its rows, or holds them damaged or of another shape.
    """
    attrs = data["attrs"]
    store = store if store is not None else dataset_store(path, attrs)
    shape, dtype = tuple(int(d) for d in attrs["row_shape"]), np.dtype(attrs["row_dtype"])
    ids = list(data["ids"])
    if not ids:
        return np.zeros((0, *shape), dtype)
    if not store.directory.is_dir():
        raise MissingRowsError(path, f"its {len(ids)} rows live in the row store "
                                     f"{store.directory}, which does not exist")
    if store.locked:  # the caller's lock: its index, its repairs
        return _gather(path, store, ids, shape, dtype)
    try:
        return _gather(path, store, ids, shape, dtype)
    except MissingRowsError as first:
        try:
            with store.lock(exclusive=False):
                return _gather(path, store, ids, shape, dtype)
        except CacheWriteError:  # a read-only store without its .lock file: no lock to take
            raise first from None


def _gather(path, store: RowStore, ids: list[str], shape: tuple, dtype: np.dtype) -> np.ndarray:
    index = store.index()
    missing = sum(1 for i in dict.fromkeys(ids) if i not in index)
    if missing:
        why = (f"{missing} of its {len(ids)} rows are missing from its row store "
               f"{store.directory}")
        if store.problems:
            why += "".join(f" ({seg.name} there is damaged: {w})" for seg, w in store.problems[:2])
        raise MissingRowsError(path, why)
    try:
        rows = store.gather(ids)
    except DamagedCacheError as exc:  # under the exclusive lock, the segment is moved aside now
        raise MissingRowsError(path, f"its rows in row-store segment {exc.path} are damaged "
                                     f"({exc.why})") from None
    if rows.shape[1:] != shape or rows.dtype != dtype:
        raise MissingRowsError(path, f"its row store {store.directory} holds {rows.dtype}"
                                     f"{rows.shape[1:]} rows, the file's are {dtype}{shape}")
    return rows


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
    if why := regular_problem(path):  # a FIFO or a device would block or never end
        raise not_featx(path, f"it is {why}")
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


@contextlib.contextmanager
def reading(path):
    """Anything h5py raises while reading a featx file (``RuntimeError``, ``OSError``, ...) ->
    :class:`~featx.trust.store.DamagedCacheError` naming it; ``ValueError`` passes as is."""
    try:
        yield
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for a damaged file
        raise DamagedCacheError(path, h5_error(exc)) from None


def read_attrs(path: str | os.PathLike) -> dict:
    """The attributes of a featx dataset file (``ValueError`` for any other file, and
    :class:`~featx.trust.store.DamagedCacheError`, a ``ValueError``, for one h5py cannot
    read)."""
    with open_h5(path) as f, reading(path):
        return featx_attrs(f, path)


_HEX64 = re.compile(rb"[0-9a-f]{64}")


def inspect_dataset_file(path: str | os.PathLike, *, rows: bool = True,
                         key: str | None = None) -> dict:
    """Read a dataset file and check it; never raises for a damaged featx file.

    First its bytes against the digest sealed into it (before HDF5 parses anything: a damaged
    HDF5 file can crash or hang the library), then that ``labels``, ``paths``, ``ids`` (and
    ``features`` in a file that carries its own rows) agree with each other and with ``n_rows``
    on the number of rows, that labels index ``class_names`` and that ids are SHA-256 hex.
    Files written before featx sealed them (``legacy``) get the shape checks only: their
    reader checks them against what it knows (:func:`featx.extract` checks ids, labels and
    paths against the request). With ``key``, the seal must name that configuration. With
    ``rows``, the rows of a file whose rows live in its row store are gathered from it
    (:func:`dataset_rows`): rows missing there, or damaged, are a problem of this file.

    Returns ``{"path", "data", "problems", "bad_rows", "legacy", "n_rows", "in_store"}``:
    ``data`` as :func:`read_dataset_file` returns it (``None`` unless sound enough to align;
    its ``features`` ``None`` when the rows live in the store and ``rows`` is false),
    ``problems`` a list of sentences (empty: the file is sound), ``bad_rows`` rows found bad,
    ``in_store`` whether its rows live in its row store.
    Raises ``FileNotFoundError`` / ``ValueError`` for a missing path or a file that is not a
    featx dataset file (see :func:`open_h5`).
    """
    path = Path(path)
    out = {"path": path, "data": None, "problems": [], "bad_rows": [], "legacy": True,
           "n_rows": None, "in_store": False}
    if path.exists() and not path.is_dir():
        try:
            out["legacy"] = not check_seal(path, key)
        except DamagedCacheError as exc:
            out["problems"].append(exc.why)
            out["legacy"] = False
            return out
    with open_h5(path) as f:
        with reading(path):
            attrs = featx_attrs(f, path)
            out["in_store"] = "features" not in f and "row_store" in attrs
            wanted = INDEX_DATASETS if out["in_store"] else DATASETS
            if not attrs.get("complete") or any(k not in f for k in wanted):
                raise ValueError(f"{os.fspath(path)} is not a complete featx dataset file")
        try:
            _check_file(f, path, attrs, wanted, out)
        except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for a damaged file
            out["problems"].append(h5_error(exc))
            out["data"] = None
    if rows and out["in_store"] and out["data"] is not None:
        try:
            out["data"]["features"] = dataset_rows(path, out["data"])
        except DamagedCacheError as exc:
            out["problems"].append(exc.why)
            out["data"] = None
    return out


def _check_file(f: h5py.File, path: Path, attrs: dict, wanted: tuple, out: dict) -> None:
    problems = out["problems"]
    shapes = {k: f[k].shape for k in wanted}
    wrong = [f"{k} has shape {shapes[k]}, not {'(n, d, ...)' if k == 'features' else '(n,)'}"
             for k in wanted if (len(shapes[k]) < 2 if k == "features"
                                 else len(shapes[k]) != 1)]
    if out["in_store"] and (not isinstance(attrs.get("row_shape"), list)
                            or not isinstance(attrs.get("row_dtype"), str)):
        wrong.append("its row_shape or row_dtype attribute is missing")
    if wrong:
        problems.append("; ".join(wrong))
        return
    lengths = {k: shapes[k][0] for k in wanted}
    n_attr = attrs.get("n_rows")
    if len(set(lengths.values()) | ({n_attr} if isinstance(n_attr, int) else set())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in lengths.items())
        problems.append(f"its datasets disagree on the number of rows: {listed}"
                        + (f" (n_rows {n_attr})" if n_attr is not None else ""))
        return
    size = path.stat().st_size
    if any(f[k].size * f[k].dtype.itemsize > size for k in wanted):
        problems.append(f"its datasets claim more bytes than its {size} bytes")
        return
    n = lengths["ids"]
    out["n_rows"] = n
    features = f["features"][:] if "features" in wanted else None
    labels = f["labels"][:]
    raw_paths, raw_ids = f["paths"][:], f["ids"][:]
    if labels.dtype.kind not in "iu":
        problems.append(f"labels are {labels.dtype}, not integers")
        return
    labels = labels.astype(np.int64)
    classes = [str(c) for c in attrs.get("class_names") or []]
    if n and (labels.min() < 0 or labels.max() >= len(classes)):
        problems.append(f"labels range over {labels.min()}..{labels.max()} but there are "
                        f"{len(classes)} class names")
    bad = [i for i, raw in enumerate(raw_ids) if not _HEX64.fullmatch(bytes(raw))]
    if bad:
        out["bad_rows"] = bad
        problems.append(f"{len(bad)} of its {n} ids are not SHA-256 hex digests")
    attrs["class_names"] = classes
    out["data"] = {
        "features": features, "labels": labels, "ids": [i.decode("ascii", "replace")
                                                         for i in raw_ids],
        "paths": [p.decode("utf-8", "surrogateescape") if isinstance(p, bytes) else str(p)
                  for p in raw_paths],
        "attrs": attrs}


def read_dataset_file(path: str | os.PathLike, *, rows: bool = True,
                      key: str | None = None) -> dict:
    """All arrays and attributes of a dataset file, checked (:func:`inspect_dataset_file`), its
    ``features`` gathered from its row store when they live there (:func:`dataset_rows`).

    ``rows=False`` reads the file alone: ``features`` is then ``None`` for a file whose rows
    live in its row store. ``key``: the configuration the file's seal must name.

    Raises :class:`~featx.trust.store.DamagedCacheError` (a ``ValueError``) naming the file
    and what is wrong when its bytes differ from its digest or its shapes disagree,
    :class:`~featx.trust.store.MissingRowsError` (one) naming the file and its row store when
    the store no longer holds its rows sound, and ``ValueError`` if it is not a complete featx
    dataset file.
    """
    info = inspect_dataset_file(path, rows=False, key=key)
    if info["problems"]:
        raise DamagedCacheError(path, "; ".join(info["problems"]))
    data = info["data"]
    if rows and data["features"] is None:
        data["features"] = dataset_rows(path, data)
    return data
