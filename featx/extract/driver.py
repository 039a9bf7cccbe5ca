"""The engine-neutral extraction driver: everything around the forward pass.

Hash every file (SHA-256 of the bytes, the row key), return the dataset file at once when it
already matches and passes its checks, else take the configuration's row-store lock, let the
engine's ``compute`` step extract only the rows the store lacks, and assemble the dataset's rows in
order. A damaged dataset file is moved aside and rebuilt; rows the store loses to damage are
extracted again. The local engine (:mod:`featx.extract.local`) and the Ray engine
(:mod:`featx.extract.ray`) differ only in ``compute``.
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featx.cache import (
    DamagedCacheError,
    DamagedCacheWarning,
    dataset_file,
    move_aside,
    path_bytes,
    row_store,
    write_dataset_file,
)
from featx.data import ImageDataset
from featx.extract.featureset import FeatureSet
from featx.images import hash_files
from featx.utils.checks import type_name
from featx.utils.config import cache_root
from featx.utils.progress import Progress

__all__ = ["check_dataset", "progress_label", "run_extraction"]


def check_dataset(dataset) -> None:
    """``dataset`` must be an :class:`~featx.data.ImageDataset` (checked before any file is
    hashed; the other arguments are declared in :data:`featx.extract.config.EXECUTION_PARAMS`)."""
    if not isinstance(dataset, ImageDataset):
        hint = ("a folder path: use featx.ImageDataset.from_directory(...)"
                if isinstance(dataset, str | os.PathLike) else
                "a list of paths: use featx.ImageDataset.from_paths(paths, labels)"
                if isinstance(dataset, list | tuple) else
                "build one with featx.ImageDataset.from_paths(...) or .from_directory(...)")
        shown = (f" {reprlib.repr(dataset)}"
                 if isinstance(dataset, str | os.PathLike | list | tuple) else "")
        raise TypeError(f"dataset must be a featx.ImageDataset, got {type_name(dataset)}{shown} "
                        f"({hint})")


def request_digest(dataset, ids: Sequence[str | None]) -> str:
    h = hashlib.sha256(json.dumps(list(dataset.class_names)).encode())
    for p, cid, y in zip(dataset.paths, ids, dataset.labels.tolist(), strict=True):
        # a file name's own bytes (UTF-8, or as on disk when it is not valid UTF-8)
        h.update(path_bytes(p) + f"\0{cid}\0{y}\n".encode())
    if skipped := dataset_skipped(dataset):  # the file stores them; only when there are any,
        h.update(b"skipped\0" + json.dumps(skipped).encode())  # so other digests stay as they were
    return h.hexdigest()


def dataset_skipped(dataset) -> list[tuple[str, str]]:
    """What the dataset left out when it was built (``ImageDataset.skipped``)."""
    return [(str(p), str(r)) for p, r in getattr(dataset, "skipped", ())]


def merge_skipped(*lists) -> list[tuple[str, str]]:
    """The lists one after the other, keeping the first entry of each path."""
    seen: set[str] = set()
    merged = []
    for p, r in (entry for entries in lists for entry in entries):
        if p not in seen:
            seen.add(p)
            merged.append((p, r))
    return merged


def load_if_current(path: Path, digest: str, repair: bool = False) -> FeatureSet | None:
    """The dataset file at ``path`` when it was built for this request and passes its checks.

    With ``repair`` (under the store's exclusive lock), a file there that cannot be read or fails
    its checks is moved to ``<cache>/damaged/`` with a :class:`~featx.cache.DamagedCacheWarning`;
    the caller rebuilds it. A file built for another request is simply replaced later.
    """
    try:
        fs = FeatureSet.load(path)  # one read: digest, shapes, then the arrays
        return fs if fs.attrs.get("request_digest") == digest else None
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError) as exc:
        if repair and path.exists():
            why = (exc.why if isinstance(exc, DamagedCacheError)
                   else str(exc).replace(os.fspath(path), "it"))
            dest = move_aside(path, why)
            warnings.warn(f"featx: cache file {path} is damaged ({why}); moved to {dest} and "
                          "rebuilt from the row store", DamagedCacheWarning, stacklevel=2)
        return None


def missing_rows(paths: Sequence[str], ids: Sequence[str | None], have) -> list[str]:
    """One path per content id that ``have`` lacks (duplicates run once)."""
    first: dict[str, str] = {}
    for p, cid in zip(paths, ids, strict=True):
        if cid is not None and cid not in have and cid not in first:
            first[cid] = p
    return list(first.values())


def run_extraction(dataset, config: dict, cache, progress: Progress, compute) -> FeatureSet:
    """Everything around the forward pass, shared by every engine.

    Hash the files, return a current dataset file as is, else take the row store's lock, have
    ``compute(todo_paths, sink) -> {id or path: reason}`` extract the rows the store lacks (each
    engine brings its own: local threads, or Ray), and assemble the dataset's rows in order.
    """
    paths = list(dataset.paths)
    hashed = hash_files(paths)
    ids = [cid for cid, _ in hashed]
    unreadable = {p: r for p, (cid, r) in zip(paths, hashed, strict=True) if cid is None}
    name = dataset.name or f"dataset-{request_digest(dataset, ids)[:8]}"

    if cache is False:
        rows: dict[str, np.ndarray] = {}
        todo = missing_rows(paths, ids, rows)
        progress.start(len(todo))
        failed = compute(todo, lambda i, f: rows.update(zip(i, f, strict=True))) if todo else {}
        get = lambda keep_ids: np.stack([rows[i] for i in keep_ids])  # noqa: E731
        fs = assemble(dataset, ids, unreadable, failed, set(rows), get, config, None, name)
        progress.close(fs.skipped)
        return fs

    root = cache_root(cache)
    dfile = dataset_file(root, name, config,
                                [*paths, *(p for p, _ in dataset_skipped(dataset))])
    digest = request_digest(dataset, ids)
    if (hit := load_if_current(dfile, digest)) is not None:
        return hit
    store = row_store(root, config)
    with store.lock(exclusive=True, on_wait=progress.waiting):
        # another process may have built it; a damaged file is moved aside now
        if (hit := load_if_current(dfile, digest, repair=True)) is not None:
            return hit
        todo = missing_rows(paths, ids, store.index())
        progress.start(len(todo))
        failed: dict[str, str] = {}
        for _ in range(_ROUNDS):
            if todo:
                failed.update(compute(todo, store.commit))
            repairs = store.repairs
            store.compact()
            if store.repairs == repairs:
                try:
                    fs = assemble(dataset, ids, unreadable, failed, store.index(), store.gather,
                                  config, dfile, name, digest)
                    break
                except DamagedCacheError:  # the store moved the segment aside: rows to redo
                    pass
            # rows the store lost to a damaged segment: extract just those again
            cid_of = dict(zip(paths, ids, strict=True))
            todo = [p for p in missing_rows(paths, ids, store.index())
                    if p not in failed and cid_of[p] not in failed]
        else:
            raise DamagedCacheError(store.directory, "its rows still fail their checksums after "
                                    f"being extracted again {_ROUNDS} times",
                                    "is the disk failing?")
    progress.close(fs.skipped)
    return fs


_ROUNDS = 3  # extract, then at most twice more the rows lost to damage found on the way


def assemble(dataset, ids, unreadable, failed, have, gather, config, dfile, name, digest=None):
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
    skipped = merge_skipped(dataset_skipped(dataset), skipped)
    keep_ids = [ids[i] for i in keep]
    if keep_ids:
        features = gather(keep_ids)
    else:
        d = 1  # nothing decodable: an empty (0, 1) array keeps the layout valid
        features = np.zeros((0, d), config["dtype"])
    labels = dataset.labels[keep]
    paths = [dataset.paths[i] for i in keep]
    extra = {"skipped": json.dumps(skipped), "dataset_name": name,
             "request_digest": digest or "", "keras_backend": keras_backend()}
    if dfile is not None:
        write_dataset_file(dfile, config, features=features, labels=labels, paths=paths,
                                  ids=keep_ids, class_names=dataset.class_names, extra=extra)
    attrs = {**config, **extra, "complete": True}
    return FeatureSet(features, labels, paths, keep_ids, dataset.class_names, dfile, attrs, skipped)


def keras_backend() -> str:
    """The Keras backend features are computed under, recorded in every dataset file (Keras
    is imported already: a forward ran, or the caller built a model)."""
    import keras

    return keras.backend.backend()


def progress_label(dataset, config: dict, engine: str = "") -> str:
    """What the progress bar or line names: ``extract clothing-mini-train (efficientnet_lite0)``
    (the dataset's name carries the split for DATA resolved by the command line)."""
    name = getattr(dataset, "name", None) or "dataset"
    view = config.get("view", "none")
    extra = "".join(f", {x}" for x in (view if view != "none" else "", engine) if x)
    return f"extract {name} ({config['backbone']}{extra})"
