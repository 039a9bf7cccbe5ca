"""The HDF5 feature cache: keys, file layout, and the ``cache_*`` maintenance functions.

Two kinds of file live under the cache folder (``featx._config.cache_dir()`` by default)::

    <cache>/<dataset>__<backbone>-<size>-<pooling>__<key8>.h5      one per (dataset, configuration)
    <cache>/rows/<backbone>-<size>-<pooling>__<key8>/seg-*.h5     the configuration's row store

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
from featx._image import DECODERS
from featx._rowstore import RowStore, chunk_rows, write_h5_atomic
from featx._version import __version__

__all__ = [
    "FEATURE_CODE_VERSION", "cache_info", "cache_ls", "cache_rm", "cache_verify", "config_key",
    "extractor_config",
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
    """Resolve an extractor's settings into the attribute dict stored with its features."""
    from featx.backbones import get_backbone_spec, weights_fingerprint

    spec = get_backbone_spec(backbone)
    if input_size is None:
        input_size = spec.input_size
    if isinstance(input_size, int | np.integer):
        input_size = (int(input_size), int(input_size))
    if resize not in ("bilinear", "crop"):
        raise ValueError(f"resize must be one of ('bilinear', 'crop'), got {resize!r}")
    if str(np.dtype(dtype)) not in ("float32", "float16"):
        raise ValueError(f"dtype must be one of ('float32', 'float16'), got {dtype!r}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if decoder == "opencv":
        from featx._opencv import require_cv2

        require_cv2()  # now, not as one decode failure per image
    config = {
        "backbone": spec.name,
        "weights": "none" if weights is None else os.fspath(weights),
        "weights_sha256": weights_fingerprint(spec.name, weights),
        "input_size": [int(s) for s in input_size],
        "pooling": "none" if pooling is None else str(pooling),
        "layers": json.dumps(list(layers) if layers is not None else None),
        "preprocessing": str(spec.preprocessing),
        "resize": resize,
        "decoder": decoder,
        "dtype": str(np.dtype(dtype)),
        "mixed_precision": bool(mixed_precision),
        "feature_code_version": FEATURE_CODE_VERSION,
    }
    config["key"] = config_key(config)
    return config


def config_slug(config: dict) -> str:
    """Readable part of a file name, e.g. ``efficientnet_lite0-224-avg__1a2b3c4d``."""
    h, w = config["input_size"]
    size = f"{h}" if h == w else f"{h}x{w}"
    return f"{config['backbone']}-{size}-{config['pooling']}__{config['key'][:8]}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("._") or "dataset"


def dataset_file(root: str | os.PathLike, dataset_name: str, config: dict) -> Path:
    """Path of the dataset file for (dataset, configuration)."""
    return Path(root) / f"{_safe(dataset_name)}__{config_slug(config)}.h5"


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


def read_attrs(path: str | os.PathLike) -> dict:
    with h5py.File(path, "r") as f:
        return {k: _attr(v) for k, v in f.attrs.items()}


def read_dataset_file(path: str | os.PathLike) -> dict:
    """All arrays and attributes of a dataset file; raises ``ValueError`` if it is not complete."""
    with h5py.File(path, "r") as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
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
def cache_info(path: str | os.PathLike) -> dict:
    """Describe one dataset file or row store: attributes, row count, shape, size on disk.

    Examples
    --------
    >>> import tempfile
    >>> cache_ls(tempfile.mkdtemp())
    []
    """
    path = Path(path)
    if path.is_dir():
        store = RowStore(path)
        with store.lock(exclusive=False):
            segs = store.segments()
            n = len(store.index())
        cfg = path / "config.json"
        attrs = json.loads(cfg.read_text()) if cfg.exists() else {}
        size = sum(s.stat().st_size for s in segs)
        return {"path": str(path), "kind": "store", "n_rows": n, "segments": len(segs),
                "bytes": size, **attrs}
    attrs = read_attrs(path)
    with h5py.File(path, "r") as f:
        shape = list(f["features"].shape) if "features" in f else None
    return {"path": str(path), "kind": "dataset", "shape": shape,
            "bytes": path.stat().st_size, **attrs}


def cache_ls(cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """List dataset files and row stores under ``cache_dir`` (default: the featx cache dir)."""
    root = resolve_root(cache_dir)
    out = []
    for p in sorted(root.glob("*.h5")) if root.is_dir() else []:
        with contextlib.suppress(OSError, KeyError, ValueError):
            out.append(cache_info(p))
    for p in sorted((root / "rows").glob("*__*")) if (root / "rows").is_dir() else []:
        with contextlib.suppress(OSError, KeyError, ValueError):
            out.append(cache_info(p))
    return out


def cache_rm(path_or_pattern: str | os.PathLike, cache_dir=None) -> list[str]:
    """Remove dataset files / row stores given by path or glob pattern (relative to the cache dir).

    A row store is removed under its exclusive lock, so a running extraction finishes first.
    Returns the removed paths.
    """
    root = resolve_root(cache_dir)
    pattern = os.fspath(path_or_pattern)
    if os.path.exists(pattern):
        targets = [Path(pattern)]
    else:
        names = [p for p in root.glob("*.h5")]
        names += list((root / "rows").glob("*__*")) if (root / "rows").is_dir() else []
        targets = [p for p in names if fnmatch.fnmatch(p.name, pattern)
                   or fnmatch.fnmatch(str(p), pattern)]
    removed = []
    for p in targets:
        if p.is_dir():
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
                 atol: float = 1e-4) -> VerifyReport:
    """Re-extract ``n`` random rows of a dataset file and compare them with the stored features.

    Returns a :class:`VerifyReport`, true when every checked row matches: ``allclose`` with
    ``rtol`` and ``atol`` times the row's largest magnitude (so the test means the same for features
    of any scale). Rows whose image changed or vanished since extraction are reported as
    unverifiable, not as failures; a file none of whose sampled rows can be checked fails.
    """
    from featx._forward import extract_in_memory

    data = read_dataset_file(path)
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
