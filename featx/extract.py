"""The streaming extraction engine: images -> backbone features -> :class:`FeatureSet` (+ cache).

One call of :func:`extract_features` hashes every file (SHA-256 of the bytes, the row key), returns
the dataset file at once when it already matches, and otherwise runs only the images whose content
the configuration's row store lacks: worker threads read + decode + resize into ``uint8`` chunks
through a bounded prefetch window, the main thread fills fixed-size batches and runs the backbone,
and finished rows are committed to the row store every couple of seconds. The dataset file is then
assembled from the store. Memory stays flat in the number of images apart from the returned arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featx import cache as _cache
from featx._decode_pool import DecodePool, hash_files
from featx._forward import BatchRunner, forward_pass_count, get_model, has_gpu
from featx._progress import Progress
from featx.data import ImageDataset

__all__ = ["FeatureSet", "extract_features", "forward_pass_count"]

_COMMIT_SECONDS = 2.0  # commit finished rows to the row store at least this often
_COMMIT_ROWS = 4096  # ... or when this many are pending
_CPU_BATCH, _GPU_BATCH = 32, 256


class FeatureSet:
    """Features of a dataset's images, aligned with their labels.

    Attributes
    ----------
    features : ndarray (N, D)
    labels : ndarray of int64 (N,)
    paths : list of str
    ids : list of str
        SHA-256 hex of each image file's bytes.
    class_names : list of str
    path : pathlib.Path or None
        The dataset ``.h5`` file (``None`` when extracted with ``cache=False``).
    attrs : dict
        The extractor configuration and provenance (see ``docs/cache.md``).
    skipped : list of (path, reason)
        Everything of the dataset that has no row: first what the dataset itself left out when
        it was built (``dataset.skipped``: unreadable files, empty class folders), then the
        images that could not be read or decoded during extraction; each path once.

    Examples
    --------
    >>> fs = FeatureSet(np.eye(3, dtype="float32"), [0, 1, 1], ["a", "b", "c"], ["x", "y", "z"],
    ...                 ["cat", "dog"])
    >>> len(fs), fs.subset([2]).paths, fs.features.shape
    (3, ['c'], (3, 3))
    """

    def __init__(self, features, labels, paths, ids, class_names, path=None, attrs=None,
                 skipped=()) -> None:
        self.features = np.asarray(features)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.paths = list(paths)
        self.ids = list(ids)
        self.class_names = list(class_names)
        self.path = None if path is None else Path(path)
        self.attrs = dict(attrs or {})
        self.skipped = [tuple(s) for s in skipped]

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureSet:
        """Read a dataset file written by :func:`extract_features`.

        Raises ``FileNotFoundError`` for a missing path and ``ValueError`` ("<path> is not a
        featx cache file (...)") for anything else than a complete featx dataset file: another
        HDF5 or text file, a row-store folder.
        """
        d = _cache.read_dataset_file(path)
        skipped = json.loads(d["attrs"].get("skipped", "[]"))
        return cls(d["features"], d["labels"], d["paths"], d["ids"], d["attrs"]["class_names"],
                   path, d["attrs"], skipped)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> FeatureSet:
        """Rows ``indices`` (ints or a boolean mask) as a new in-memory FeatureSet."""
        idx = np.arange(len(self))[np.asarray(indices)]
        return FeatureSet(self.features[idx], self.labels[idx], [self.paths[i] for i in idx],
                          [self.ids[i] for i in idx], self.class_names, None, self.attrs)

    def __repr__(self) -> str:
        return (f"FeatureSet(n={len(self)}, shape={tuple(self.features.shape)}, "
                f"backbone={self.attrs.get('backbone')!r}, path={self.path})")


def _type_name(value) -> str:
    return type(value).__name__


def _check_count(name: str, value, minimum: int, meaning: str = "") -> None:
    """``value`` must be None or an int (not a bool) >= ``minimum``; the error names ``name``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}{meaning} must be None or an int >= {minimum}, got {value!r} "
                         f"of type {_type_name(value)}")


def _check_request(dataset, cache, batch_size) -> None:
    """Checks shared by every engine, before any file is hashed: ``dataset``, ``cache``,
    ``batch_size`` (``n_workers`` means something else per engine: see ``_check_count``)."""
    if not isinstance(dataset, ImageDataset):
        hint = ("a folder path: use featx.ImageDataset.from_directory(...)"
                if isinstance(dataset, str | os.PathLike) else
                "a list of paths: use featx.ImageDataset.from_paths(paths, labels)"
                if isinstance(dataset, list | tuple) else
                "build one with featx.ImageDataset.from_paths(...) or .from_directory(...)")
        shown = (f" {reprlib.repr(dataset)}"
                 if isinstance(dataset, str | os.PathLike | list | tuple) else "")
        raise TypeError(f"dataset must be a featx.ImageDataset, got {_type_name(dataset)}{shown} "
                        f"({hint})")
    if not (cache is None or isinstance(cache, bool) or isinstance(cache, str | os.PathLike)):
        raise TypeError("cache must be None (the featx cache dir), False (no disk) or a folder "
                        f"path (str or os.PathLike), got {cache!r} of type {_type_name(cache)}")
    _check_count("batch_size", batch_size, 1)


def _request_digest(dataset, ids: Sequence[str | None]) -> str:
    h = hashlib.sha256(json.dumps(list(dataset.class_names)).encode())
    for p, cid, y in zip(dataset.paths, ids, dataset.labels.tolist(), strict=True):
        h.update(f"{p}\0{cid}\0{y}\n".encode())
    if skipped := _dataset_skipped(dataset):  # the file stores them; only when there are any,
        h.update(b"skipped\0" + json.dumps(skipped).encode())  # so other digests stay as they were
    return h.hexdigest()


def _dataset_skipped(dataset) -> list[tuple[str, str]]:
    """What the dataset left out when it was built (``ImageDataset.skipped``)."""
    return [(str(p), str(r)) for p, r in getattr(dataset, "skipped", ())]


def _merge_skipped(*lists) -> list[tuple[str, str]]:
    """The lists one after the other, keeping the first entry of each path."""
    seen: set[str] = set()
    merged = []
    for p, r in (entry for entries in lists for entry in entries):
        if p not in seen:
            seen.add(p)
            merged.append((p, r))
    return merged


def _load_if_current(path: Path, digest: str) -> FeatureSet | None:
    try:
        if _cache.read_attrs(path).get("request_digest") != digest:
            return None
        return FeatureSet.load(path)
    except (OSError, KeyError, ValueError):
        return None


def _stream(paths, config, batch_size, n_workers, sink, progress) -> dict[str, str]:
    """Decode ``paths`` and run the backbone; rows go to ``sink(ids, feats)`` in commit-sized
    groups. Returns ``{content id or path: reason}`` for images that could not be decoded."""
    h, w = config["input_size"]
    runner = None  # built at the first decodable image: a run of unreadable files needs no model
    batch = np.empty((batch_size, h, w, 3), np.uint8)
    batch_ids: list[str] = []
    done_ids, done_feats, failed = [], [], {}
    last = time.monotonic()

    def forward() -> None:
        nonlocal runner
        if runner is None:
            runner = BatchRunner(get_model(config), batch_size, config["dtype"])
        done_feats.append(runner(batch[: len(batch_ids)]))
        done_ids.extend(batch_ids)
        progress.update(len(batch_ids))
        batch_ids.clear()

    def commit() -> None:
        nonlocal last
        if done_ids:
            sink(list(done_ids), np.concatenate(done_feats))
            done_ids.clear(), done_feats.clear()
        last = time.monotonic()

    with DecodePool((h, w), config["resize"], n_workers, chunk=min(8, batch_size),
                    window=max(4, 2 * batch_size // min(8, batch_size)),
                    decoder=config["decoder"]) as pool:
        start = 0
        for ids, images, reasons in pool.imap(paths):
            k = 0
            for j, (cid, reason) in enumerate(zip(ids, reasons, strict=True)):
                if reason is not None:
                    failed[cid or paths[start + j]] = reason
                    progress.update(1)
                    continue
                batch[len(batch_ids)] = images[k]
                batch_ids.append(cid)
                k += 1
                if len(batch_ids) == batch_size:
                    forward()
                    if time.monotonic() - last >= _COMMIT_SECONDS or len(done_ids) >= _COMMIT_ROWS:
                        commit()
            start += len(ids)
        if batch_ids:
            forward()
        commit()
    return failed


def extract_features(
    dataset,
    backbone: str = "efficientnet_lite0",
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_size: int | tuple[int, int] | None = None,
    pooling: str | None = "avg",
    layers: Sequence[str] | None = None,
    resize: str = "bilinear",
    decoder: str = "pillow",
    cache: bool | str | os.PathLike | None = None,
    batch_size: int | None = 32,
    n_workers: int | None = None,
    dtype: str = "float32",
    mixed_precision: bool = False,
    verbose: int = 1,
    engine: str = "local",
    address: str | None = None,
) -> FeatureSet:
    """Extract (or load cached) backbone features for every image of ``dataset``.

    Parameters
    ----------
    dataset : featx.ImageDataset
        Build one with ``ImageDataset.from_paths(paths, labels)`` or ``.from_directory(folder)``.
    backbone, weights, input_size, pooling, layers
        Passed to :func:`featx.backbones.load_backbone`; ``input_size=None`` is the backbone's own,
        else an int or an ``(h, w)`` pair of ints; ``layers`` is a list (``["block_3_add"]``).
    resize : {"bilinear", "crop"}
        How images are brought to ``input_size`` (see :func:`featx.read_image`).
    decoder : {"pillow", "opencv"}
        Who decodes and resizes (see :func:`featx.read_image`): ``"opencv"`` (``pip install
        'featx[opencv]'``) is about twice as fast per core, which matters when a GPU waits for
        the decoders. Part of the cache key.
    cache : None, False, or path
        ``None`` (or ``True``): the featx cache dir (``$FEATX_CACHE_DIR`` or ``./cache``); a path
        (str or ``os.PathLike``): that folder; ``False``: nothing touches the disk.
    batch_size : int >= 1 or None
        Images per forward pass (``None``: 32 on CPU, 256 on GPU). Not part of the cache key.
    n_workers : int >= 0, optional
        Decode threads (default: one per core). ``0`` decodes in the calling thread.
    dtype : {"float32", "float16"}
        Storage dtype of the features.
    mixed_precision : bool
        Build the backbone under a mixed float16 (GPU) / bfloat16 (CPU) policy. Changes the key.
    verbose : int
        ``0`` silent; ``1`` a progress bar on a terminal and a line about skipped images.
    engine : {"local", "ray"}
        ``"ray"`` runs decoding and the backbone on Ray (``pip install 'featx[ray]'``), with the
        same cache and result; see :func:`featx.distributed.extract_features` and ``docs/ray.md``.
    address : str, optional
        With ``engine="ray"``: the Ray cluster to join (default: an embedded local instance).

    Returns
    -------
    FeatureSet
        One row per decodable image, in dataset order; ``skipped`` lists the others with reasons,
        starting with the dataset's own ``skipped`` entries.

    Raises
    ------
    TypeError
        If ``dataset`` is not an ImageDataset, ``cache`` not None/False/a path, or ``layers`` a
        string instead of a list.
    ValueError
        If a setting is out of range (``input_size``, ``batch_size``, ``n_workers``, ...); every
        argument is checked before any image is read.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from PIL import Image
    >>> from featx.data import ImageDataset
    >>> d = tempfile.mkdtemp()
    >>> paths = [os.path.join(d, f"{i}.png") for i in range(3)]
    >>> for i, p in enumerate(paths):
    ...     Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(p)
    >>> ds = ImageDataset.from_paths(paths, ["a", "b", "a"], name="doc")
    >>> fs = extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=d, verbose=0)
    >>> len(fs), fs.labels.tolist()
    (3, [0, 1, 0])
    >>> before = forward_pass_count()
    >>> fs2 = extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=d, verbose=0)
    >>> forward_pass_count() - before, np.allclose(fs.features, fs2.features)
    (0, True)
    """
    _check_request(dataset, cache, batch_size)
    if engine != "local" or address is not None:
        from featx.distributed import run_engine

        return run_engine(engine, dataset, backbone, address=address, weights=weights,
                          input_size=input_size, pooling=pooling, layers=layers, resize=resize,
                          decoder=decoder, cache=cache, batch_size=batch_size,
                          n_workers=n_workers, dtype=dtype, mixed_precision=mixed_precision,
                          verbose=verbose)
    _check_count("n_workers", n_workers, 0)
    config = _cache.extractor_config(backbone, weights, input_size, pooling, layers, resize, dtype,
                                     mixed_precision, decoder)
    if batch_size is None:
        batch_size = _GPU_BATCH if has_gpu() else _CPU_BATCH
    batch_size = int(batch_size)
    progress = Progress(f"featx {config['backbone']}", verbose)
    return _run_extraction(
        dataset, config, cache, progress,
        lambda todo, sink: _stream(todo, config, batch_size, n_workers, sink, progress),
    )


def _missing(paths: Sequence[str], ids: Sequence[str | None], have) -> list[str]:
    """One path per content id that ``have`` lacks (duplicates run once)."""
    first: dict[str, str] = {}
    for p, cid in zip(paths, ids, strict=True):
        if cid is not None and cid not in have and cid not in first:
            first[cid] = p
    return list(first.values())


def _run_extraction(dataset, config: dict, cache, progress: Progress, compute) -> FeatureSet:
    """Everything around the forward pass, shared by every engine.

    Hash the files, return a current dataset file as is, else take the row store's lock, have
    ``compute(todo_paths, sink) -> {id or path: reason}`` extract the rows the store lacks (each
    engine brings its own: local threads, or Ray), and assemble the dataset's rows in order.
    """
    paths = list(dataset.paths)
    hashed = hash_files(paths)
    ids = [cid for cid, _ in hashed]
    unreadable = {p: r for p, (cid, r) in zip(paths, hashed, strict=True) if cid is None}
    name = dataset.name or f"dataset-{_request_digest(dataset, ids)[:8]}"

    if cache is False:
        rows: dict[str, np.ndarray] = {}
        todo = _missing(paths, ids, rows)
        progress.start(len(todo))
        failed = compute(todo, lambda i, f: rows.update(zip(i, f, strict=True))) if todo else {}
        get = lambda keep_ids: np.stack([rows[i] for i in keep_ids])  # noqa: E731
        fs = _assemble(dataset, ids, unreadable, failed, set(rows), get, config, None, name)
        progress.close(fs.skipped)
        return fs

    root = _cache.resolve_root(cache)
    dfile = _cache.dataset_file(root, name, config,
                                [*paths, *(p for p, _ in _dataset_skipped(dataset))])
    digest = _request_digest(dataset, ids)
    if (hit := _load_if_current(dfile, digest)) is not None:
        return hit
    store = _cache.row_store(root, config)
    with store.lock(exclusive=True, on_wait=progress.waiting):
        if (hit := _load_if_current(dfile, digest)) is not None:  # another process built it
            return hit
        todo = _missing(paths, ids, store.index())
        progress.start(len(todo))
        failed = compute(todo, store.commit) if todo else {}
        store.compact()
        fs = _assemble(dataset, ids, unreadable, failed, store.index(), store.gather, config,
                       dfile, name, digest)
    progress.close(fs.skipped)
    return fs


def _assemble(dataset, ids, unreadable, failed, have, gather, config, dfile, name, digest=None):
    """Rows of the dataset that have features, in order; write the dataset file when asked."""
    keep, skipped = [], []
    for i, (p, cid) in enumerate(zip(dataset.paths, ids, strict=True)):
        if cid is None:
            skipped.append((p, unreadable[p]))
        elif cid in have:
            keep.append(i)
        else:
            reason = failed.get(cid) or failed.get(p) or "file changed during extraction"
            skipped.append((p, reason))
    skipped = _merge_skipped(_dataset_skipped(dataset), skipped)
    keep_ids = [ids[i] for i in keep]
    if keep_ids:
        features = gather(keep_ids)
    else:
        d = 1  # nothing decodable: an empty (0, 1) array keeps the layout valid
        features = np.zeros((0, d), config["dtype"])
    labels = dataset.labels[keep]
    paths = [dataset.paths[i] for i in keep]
    extra = {"skipped": json.dumps(skipped), "dataset_name": name,
             "request_digest": digest or ""}
    if dfile is not None:
        _cache.write_dataset_file(dfile, config, features=features, labels=labels, paths=paths,
                                  ids=keep_ids, class_names=dataset.class_names, extra=extra)
    attrs = {**config, **extra, "complete": True}
    return FeatureSet(features, labels, paths, keep_ids, dataset.class_names, dfile, attrs, skipped)
