"""The HDF5 feature cache: keys, file layout, and the ``cache_*`` maintenance functions.

Two kinds of file live under the cache folder (``featx._config.cache_dir()`` by default)::

    <cache>/<dataset>-<where6>__<backbone>-<size>-<pooling>__<key8>.h5   one per dataset and config
    <cache>/rows/<backbone>-<size>-<pooling>__<key8>/seg-*.h5          the config's row store

``<where6>`` hashes the folder the dataset's images live in, so two datasets of the same name in
different folders get different files.

The *key* hashes everything that changes a feature (backbone, weights fingerprint, input size,
resize mode, decoder, pooling, layers, dtype, mixed precision, :data:`FEATURE_CODE_VERSION`) and
nothing that does not (batch size, workers, verbosity), as ``joblib.Memory`` does. Rows are keyed
by the SHA-256 of the image bytes, so renamed or moved files hit and only new content is extracted.
``docs/cache.md`` describes the layout and why a crash or a second writer cannot corrupt it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from featx._config import cache_dir as _default_cache_dir
from featx._image import check_decoder
from featx._rowstore import _TMP_PREFIX, SEGMENT_GLOB, RowStore, chunk_rows, write_h5_atomic
from featx._version import __version__

__all__ = [
    "FEATURE_CODE_VERSION", "cache_info", "cache_ls", "cache_rm", "cache_verify", "config_key",
    "extractor_config", "resolve_entry",
]

#: Bump when a change in featx's decode/forward code changes feature values: every key changes.
FEATURE_CODE_VERSION = 1

_KEY_FIELDS = ("backbone", "weights_sha256", "input_size", "resize", "pooling", "layers",
               "preprocessing", "dtype", "mixed_precision", "feature_code_version", "decoder")
# Key fields added after the first release, hashed only away from their default, so the caches
# written before they existed keep their keys.
_LATER_FIELDS = {"decoder": "pillow"}
_DATASETS = ("features", "labels", "paths", "ids")


def config_key(config: dict) -> str:
    """SHA-256 of the output-changing fields of ``config`` (canonical JSON).

    Examples
    --------
    >>> a = {"backbone": "b", "input_size": [32, 32], "pooling": "avg"}
    >>> config_key(a) == config_key(dict(a, batch_size=64))  # not a key field
    True
    >>> config_key(a) == config_key(dict(a, pooling="max"))
    False
    """
    material = {k: config.get(k) for k in _KEY_FIELDS
                if k not in _LATER_FIELDS or config.get(k, _LATER_FIELDS[k]) != _LATER_FIELDS[k]}
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def extractor_config(backbone: str, weights="imagenet", input_size=None, pooling="avg",
                     layers=None, resize="bilinear", dtype="float32",
                     mixed_precision: bool = False, decoder: str = "pillow") -> dict:
    """Resolve an extractor's settings into the attribute dict stored with its features.

    Every argument is checked here, before any file is hashed or model built: ``input_size``
    (None, an int or an ``(h, w)`` pair of ints, at least the backbone family's minimum),
    ``layers`` (None or a list of layer names / block names / negative block indices),
    ``pooling``, ``resize``, ``dtype`` and ``decoder``.

    Examples
    --------
    >>> extractor_config("mobilenet_v2", None, 32)["input_size"]
    [32, 32]
    >>> extractor_config("mobilenet_v2", None, layers="block_3_add")
    Traceback (most recent call last):
    ...
    TypeError: layers must be a list of layer names, got the string 'block_3_add'; use ...
    """
    from featx.backbones import get_backbone_spec, weights_fingerprint
    from featx.backbones._load import _POOLINGS, _input_size
    from featx.backbones._weights import check_weights

    spec = get_backbone_spec(backbone)
    weights = check_weights(weights)  # "none"/"None" -> None: the seeded random weights
    input_size = _input_size(spec, input_size)
    layers = _check_layers(layers)
    if pooling not in _POOLINGS:  # now, not after a store folder was made for it
        raise ValueError(f"pooling must be one of {list(_POOLINGS)}; got pooling={pooling!r}")
    if resize not in ("bilinear", "crop"):
        raise ValueError(f"resize must be one of ('bilinear', 'crop'), got {resize!r}")
    if str(np.dtype(dtype)) not in ("float32", "float16"):
        raise ValueError(f"dtype must be one of ('float32', 'float16'), got {dtype!r}")
    check_decoder(decoder)
    config = {
        "backbone": spec.name,
        "weights": "none" if weights is None else os.fspath(weights),
        "weights_sha256": weights_fingerprint(spec.name, weights),
        "input_size": [int(s) for s in input_size],
        "pooling": "none" if pooling is None else str(pooling),
        "layers": json.dumps(layers),
        "preprocessing": str(spec.preprocessing),
        "resize": resize,
        "decoder": decoder,
        "dtype": str(np.dtype(dtype)),
        "mixed_precision": bool(mixed_precision),
        "feature_code_version": FEATURE_CODE_VERSION,
    }
    config["key"] = config_key(config)
    return config


def _check_layers(layers) -> list | None:
    """``layers`` as a list (or None); a lone string or a non-sequence is refused, not iterated."""
    if layers is None:
        return None
    if isinstance(layers, str | bytes):
        raise TypeError(f"layers must be a list of layer names, got the string {layers!r}; use "
                        f"layers=[{layers!r}]")
    if not isinstance(layers, list | tuple):
        hint = (f"; use layers=[{layers!r}]" if isinstance(layers, int | np.integer)
                and not isinstance(layers, bool) else "")
        raise TypeError("layers must be None or a list of layer names, block names or negative "
                        f"block indices, got layers={layers!r} of type "
                        f"{type(layers).__name__}{hint}")
    bad = [e for e in layers if isinstance(e, bool) or not isinstance(e, str | int | np.integer)]
    if bad or not layers:
        raise ValueError("layers must be None or a non-empty list of layer names, block names or "
                         f"negative block indices, got layers={list(layers)!r}")
    return [e if isinstance(e, str) else int(e) for e in layers]


def config_slug(config: dict) -> str:
    """Readable part of a file name, e.g. ``efficientnet_lite0-224-avg__1a2b3c4d``."""
    h, w = config["input_size"]
    size = f"{h}" if h == w else f"{h}x{w}"
    return f"{config['backbone']}-{size}-{config['pooling']}__{config['key'][:8]}"


def _safe(name: str) -> str:
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
    return Path(root) / f"{_safe(dataset_name)}-{where}__{config_slug(config)}.h5"


def row_store(root: str | os.PathLike, config: dict) -> RowStore:
    """The configuration's :class:`~featx._rowstore.RowStore`."""
    return RowStore(Path(root) / "rows" / config_slug(config), attrs=config)


def resolve_root(cache) -> Path:
    return _default_cache_dir() if cache is None or cache is True else Path(cache)


# -- dataset files ---------------------------------------------------------------------------------
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


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [_attr(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


_FEATX_ATTRS = ("key", "featx_version")  # written into every dataset file, and only there


def _not_featx(path, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a featx cache file ({why})")


@contextlib.contextmanager
def _open_h5(path: str | os.PathLike):
    """``h5py.File(path, "r")``, with a clear error for a missing path, a folder or a non-HDF5 file.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` ("<path> is not a featx
    cache file (...)") for a folder, a file without the HDF5 signature, or one h5py cannot open.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (see cache_ls() for the cache's entries)")
    if path.is_dir():
        why = ("it is a row-store folder; dataset files are the <name>-<where>__<config>.h5 files "
               "listed by cache_ls()" if _store_problem(path) is None else "it is a folder")
        raise _not_featx(path, why)
    if not h5py.is_hdf5(path):
        raise _not_featx(path, "not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise _not_featx(path, f"h5py cannot open it, truncated or damaged? {exc}") from exc
    with f:
        yield f


def _featx_attrs(f: h5py.File, path) -> dict:
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if missing := [k for k in _FEATX_ATTRS if k not in attrs]:
        raise _not_featx(path, f"an HDF5 file without featx's attribute(s) {', '.join(missing)}")
    return attrs


def read_attrs(path: str | os.PathLike) -> dict:
    """The attributes of a featx dataset file (``ValueError`` for any other file)."""
    with _open_h5(path) as f:
        return _featx_attrs(f, path)


def read_dataset_file(path: str | os.PathLike) -> dict:
    """All arrays and attributes of a dataset file; raises ``ValueError`` if it is not complete."""
    with _open_h5(path) as f:
        attrs = _featx_attrs(f, path)
        if not attrs.get("complete") or any(k not in f for k in _DATASETS):
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


# -- maintenance ----------------------------------------------------------------------------------
_STORE_NAME = re.compile(r".+__[0-9a-f]{8}")  # <backbone>-<size>-<pooling>__<key8>
_STORE_FILES = (".lock", "config.json")


def _store_problem(path: Path) -> str | None:
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
        or c.name.startswith(_TMP_PREFIX)))
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


def _entry_problem(path: Path) -> str | None:
    """Why ``path`` is neither a featx dataset file nor a featx row store (``None``: it is one)."""
    if path.is_dir() and not path.is_symlink():
        why = _store_problem(path)
        return None if why is None else f"{path} is not a featx row store ({why})"
    try:
        read_attrs(path)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def resolve_entry(target: str | os.PathLike, cache_dir=None) -> Path:
    """The path of the cache entry ``target`` names.

    ``target`` is a path as given if it exists, else a name under the cache folder: a dataset
    file (``<cache>/<name>``) or a row store as :func:`cache_ls` and ``featx cache ls`` show it,
    without its ``rows/`` prefix (``<cache>/rows/<name>``). Raises ``FileNotFoundError`` otherwise.

    Examples
    --------
    >>> import tempfile
    >>> resolve_entry("nope.h5", tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    FileNotFoundError: cache entry 'nope.h5' does not exist (also looked in ...); see cache_ls()
    """
    path = Path(target)
    if path.exists() or path.is_symlink():
        return path
    if path.is_absolute():
        raise FileNotFoundError(f"{path} does not exist (see cache_ls() for the cache's entries)")
    root = resolve_root(cache_dir)
    for alt in (root / path, root / "rows" / path):
        if alt.exists() or alt.is_symlink():
            return alt
    raise FileNotFoundError(f"cache entry {os.fspath(target)!r} does not exist (also looked in "
                            f"{str(root)!r} and {str(root / 'rows')!r}); see cache_ls()")


def cache_info(path: str | os.PathLike, cache_dir=None) -> dict:
    """Describe one dataset file or row store: attributes, row count, shape, size on disk.

    ``path`` is resolved by :func:`resolve_entry` (a path, or a name under ``cache_dir``).
    Raises ``ValueError`` for anything that is not a featx dataset file or row store.

    Examples
    --------
    >>> import tempfile
    >>> cache_ls(tempfile.mkdtemp())
    []
    """
    path = resolve_entry(path, cache_dir)
    if path.is_dir() and not path.is_symlink() and _store_problem(path) is None:
        store = RowStore(path)
        with store.lock(exclusive=False):
            segs = store.segments()
            n = len(store.index())
        cfg = path / "config.json"
        attrs = json.loads(cfg.read_text()) if cfg.exists() else {}
        size = sum(s.stat().st_size for s in segs)
        return {"path": str(path), "kind": "store", "n_rows": n, "segments": len(segs),
                "bytes": size, **attrs}
    with _open_h5(path) as f:
        attrs = _featx_attrs(f, path)
        shape = list(f["features"].shape) if "features" in f else None
    return {"path": str(path), "kind": "dataset", "shape": shape,
            "bytes": path.stat().st_size, **attrs}


def _candidates(root: Path) -> list[Path]:
    """What a pattern is matched against: ``<root>/*.h5`` and ``<root>/rows/*`` (not dotfiles)."""
    files = sorted(p for p in root.glob("*.h5") if not p.name.startswith(".")) \
        if root.is_dir() else []
    rows = root / "rows"
    stores = sorted(p for p in rows.iterdir() if not p.name.startswith(".")) \
        if rows.is_dir() else []
    return files + stores


def cache_ls(cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """List the featx dataset files and row stores under ``cache_dir`` (default: the featx cache
    dir); other files there are not listed."""
    root = resolve_root(cache_dir)
    out = []
    for p in _candidates(root):
        if _entry_problem(p) is None:
            with contextlib.suppress(OSError, KeyError, ValueError):
                out.append(cache_info(p))
    return out


def cache_rm(path_or_pattern: str | os.PathLike, cache_dir=None) -> list[str]:
    """Remove featx dataset files and row stores, given by path, name or glob pattern.

    Only featx's own entries are ever removed: a dataset file (an HDF5 file with featx's ``key``
    and ``featx_version`` attributes) or a row store (a ``<cache>/rows/<config>`` folder holding
    only featx's files). A row store is removed under its exclusive lock, so a running extraction
    finishes first.

    Parameters
    ----------
    path_or_pattern : str or path-like
        A path; a name as :func:`cache_ls` shows it (see :func:`resolve_entry`); or a glob
        pattern (``"clothing-small-*"``) matched against the names and paths of the ``*.h5``
        files under the cache folder and the folders under its ``rows/``.
    cache_dir : path, optional
        The cache folder (default: the featx cache dir).

    Returns
    -------
    list of str
        The removed paths (empty when the pattern matches nothing).

    Raises
    ------
    ValueError
        If the path, or anything the pattern matches, is not a featx dataset file or row store;
        nothing at all is removed then.
    """
    root = resolve_root(cache_dir)
    target = os.fspath(path_or_pattern)
    try:
        targets = [resolve_entry(target, root)]
    except FileNotFoundError:
        targets = [p for p in _candidates(root)
                   if any(fnmatch.fnmatch(name, target)
                          for name in (p.name, p.relative_to(root).as_posix(), str(p)))]
    refused = [why for p in targets if (why := _entry_problem(p)) is not None]
    if refused:
        raise ValueError(
            f"cache_rm({target!r}) removed nothing: {'; '.join(refused)}. It only removes featx "
            "dataset files and row stores (see cache_ls())"
        )
    removed = []
    for p in targets:
        if p.is_dir() and not p.is_symlink():
            with RowStore(p).lock(exclusive=True):
                for child in p.iterdir():
                    if child.name != ".lock":
                        child.unlink()
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(str(p))
    return removed


def cache_verify(path: str | os.PathLike, n: int = 8, *, seed: int = 0, rtol: float = 1e-3,
                 atol: float = 1e-4, cache_dir=None) -> VerifyReport:
    """Re-extract ``n`` random rows of a dataset file and compare them with the stored features.

    Returns a :class:`VerifyReport`, true when every checked row matches: ``allclose`` with
    ``rtol`` and ``atol`` times the row's largest magnitude (so the test means the same for features
    of any scale). Rows whose image changed or vanished since extraction are reported as
    unverifiable, not as failures; a file none of whose sampled rows can be checked fails.
    ``path`` is resolved by :func:`resolve_entry` (a path, or a file name under ``cache_dir``);
    anything but a featx dataset file raises ``ValueError``.
    """
    from featx._forward import extract_in_memory

    data = read_dataset_file(resolve_entry(path, cache_dir))
    a = data["attrs"]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data["ids"]), size=min(n, len(data["ids"])), replace=False))
    if a["dtype"] == "float16":
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-2)
    config = extractor_config(a["backbone"], None if a["weights"] == "none" else a["weights"],
                              a["input_size"], None if a["pooling"] == "none" else a["pooling"],
                              json.loads(a["layers"]), a["resize"], a["dtype"],
                              a["mixed_precision"], a.get("decoder", "pillow"))
    failures, unverifiable, max_diff = [], [], 0.0
    if config["weights_sha256"] != a["weights_sha256"]:
        failures.append(("<weights>", "weights fingerprint differs from the file's"))
    paths = [data["paths"][i] for i in rows]
    got = extract_in_memory(paths, config, batch_size=max(1, len(rows)))
    for r, p in zip(rows, paths, strict=True):
        feats, content_id = got.get(p, (None, None))
        if feats is None or content_id != data["ids"][r]:
            unverifiable.append((p, "image missing, unreadable or changed since extraction"))
            continue
        stored = data["features"][r].astype(np.float32)
        diff = float(np.max(np.abs(feats.astype(np.float32) - stored)))
        max_diff = max(max_diff, diff)
        scale = max(float(np.max(np.abs(data["features"][r]))), np.finfo(np.float32).tiny)
        if not np.allclose(feats, data["features"][r], rtol=rtol, atol=atol * scale):
            failures.append((p, f"features differ (max abs diff {diff:.3g})"))
    n_checked = len(rows) - len(unverifiable)
    return VerifyReport(ok=not failures and (n_checked > 0 or len(rows) == 0),
                        n_checked=n_checked, failures=failures,
                        unverifiable=unverifiable, max_abs_diff=max_diff)


class VerifyReport:
    """Result of :func:`cache_verify`; truthy when the file verified."""

    def __init__(self, ok, n_checked, failures, unverifiable, max_abs_diff):
        self.ok, self.n_checked, self.failures = bool(ok), n_checked, failures
        self.unverifiable, self.max_abs_diff = unverifiable, max_abs_diff

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return (f"VerifyReport(ok={self.ok}, n_checked={self.n_checked}, "
                f"failures={len(self.failures)}, unverifiable={len(self.unverifiable)}, "
                f"max_abs_diff={self.max_abs_diff:.3g})")
