"""The engine-neutral extraction driver: everything around the forward pass.

Each image is read and hashed once (SHA-256 of the bytes: the row key). When the dataset file
exists (the warm path), one hash pass decides whether it is current: then its rows are gathered
from the row store and returned, with no lock and no model. Otherwise (a cold run) the driver
takes the configuration's row-store lock and the engine's ``compute`` step reads, hashes and,
only for content the store lacks, decodes and runs each image, in one pass; the dataset's rows
are then assembled in order and its dataset file written (ids, labels, paths: the rows stay in
the store). A damaged dataset file is moved aside and rebuilt; rows the store loses to damage
are extracted again. The local engine (:mod:`featx.extract.local`) and the Ray engine
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
    dataset_rows,
    move_aside,
    path_bytes,
    read_dataset_file,
    row_store,
    write_dataset_file,
)
from featx.data import ImageDataset
from featx.extract.config import ExtractorConfig
from featx.extract.featureset import FeatureSet
from featx.images import hash_files
from featx.trust.store import artifacts_under
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


def name_digest(dataset) -> str:
    """SHA-256 of the dataset's class names, paths and labels: the name of a dataset that has
    none (``dataset-<8 hex>``), known before any image is read."""
    h = hashlib.sha256(json.dumps(list(dataset.class_names)).encode())
    for p, y in zip(dataset.paths, dataset.labels.tolist(), strict=True):
        h.update(path_bytes(p) + f"\0{y}\n".encode())
    return h.hexdigest()


def request_problem(data: dict, dataset, ids: Sequence[str | None], config: ExtractorConfig
                    ) -> str | None:
    """Why a dataset file's contents are not what this request builds, or ``None``.

    What the request knows is checked against what the file holds: the configuration's key,
    the class names, and each kept row's path, content id and label in order (the rows the file
    lists as skipped left out). A sealed file passes unless another file was put in its place;
    this is what stands between a file without a seal (an older featx's, or one rewritten by
    hand) and a misaligned result.
    """
    attrs = data["attrs"]
    if str(attrs.get("key")) != config.key:
        return f"it was built for another configuration (key {str(attrs.get('key'))[:8]})"
    if [str(c) for c in attrs.get("class_names") or []] != [str(c) for c in
                                                           dataset.class_names]:
        return "its class names are not the dataset's"
    try:
        skipped = {str(p) for p, _ in json.loads(attrs.get("skipped") or "[]")}
    except (TypeError, ValueError):
        return "its list of skipped images is unreadable"
    keep = [i for i, (p, cid) in enumerate(zip(dataset.paths, ids, strict=True))
            if cid is not None and p not in skipped]
    if len(keep) != len(data["ids"]):
        return f"it holds {len(data['ids'])} rows where the dataset has {len(keep)}"
    labels = dataset.labels.tolist()
    for k, i in enumerate(keep):
        if (data["paths"][k], data["ids"][k], int(data["labels"][k])) != (
                dataset.paths[i], ids[i], labels[i]):
            return (f"its row {k} names {data['paths'][k]!r} (label {int(data['labels'][k])}), "
                    f"the dataset {dataset.paths[i]!r} (label {labels[i]})")
    return None


def load_if_current(path: Path, dataset, ids: Sequence[str | None], config: ExtractorConfig,
                    store=None, repair: bool = False) -> FeatureSet | None:
    """The dataset file at ``path`` when it was built for this request (``dataset`` with content
    ``ids`` under ``config``), passes its checks and its rows are in its row store.

    With ``repair`` (under the store's exclusive lock, ``store`` the locked store), a file there
    that cannot be read, fails its checks or holds other rows than its request says
    (:func:`request_problem`) is moved to ``<cache>/damaged/`` with a
    :class:`~featx.cache.DamagedCacheWarning`; the caller rebuilds it. A file built for another
    request is simply replaced later; one whose rows the store lacks (pruned, or lost to a
    damaged segment, which the locked store moves aside) is current but incomplete: ``None``,
    and the caller extracts just those rows again.
    """
    try:  # one read: seal (bound to the configuration), shapes, then the arrays
        data = read_dataset_file(path, rows=False, key=config.key)
        if data["attrs"].get("request_digest") != request_digest(dataset, ids):
            return None
        why = request_problem(data, dataset, ids, config)
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError) as exc:
        why = (exc.why if isinstance(exc, DamagedCacheError)
               else str(exc).replace(os.fspath(path), "it"))
    if why is not None:
        if repair and path.exists():
            dest = move_aside(path, why)
            warnings.warn(f"featx: cache file {path} is damaged ({why}); moved to {dest} and "
                          "rebuilt from the row store", DamagedCacheWarning, stacklevel=2)
        return None
    if data["features"] is None:  # the rows live in the row store
        repairs = store.repairs if store is not None else 0
        try:
            data["features"] = dataset_rows(path, data, store)
        except DamagedCacheError as exc:
            if repair and store.repairs == repairs:  # no segment warning said it already
                warnings.warn(f"featx: cache file {path}: {exc.why}; extracting them again",
                              DamagedCacheWarning, stacklevel=2)
            return None
    return FeatureSet.from_file(path, data)


def missing_rows(paths: Sequence[str], ids: Sequence[str | None], have) -> list[str]:
    """One path per content id that ``have`` lacks (duplicates run once)."""
    first: dict[str, str] = {}
    for p, cid in zip(paths, ids, strict=True):
        if cid is not None and cid not in have and cid not in first:
            first[cid] = p
    return list(first.values())


def hash_all(paths: Sequence[str]) -> tuple[list[str | None], dict[str, str]]:
    """Content ids of ``paths`` (``None`` where unreadable) and ``{path: reason}`` of those."""
    hashed = hash_files(paths)
    unreadable = {p: r for p, (cid, r) in zip(paths, hashed, strict=True) if cid is None}
    return [cid for cid, _ in hashed], unreadable


def run_extraction(dataset, config: ExtractorConfig, cache, progress: Progress, compute, *,
                   one_pass: bool = False) -> FeatureSet:
    """Everything around the forward pass, shared by every engine.

    ``compute(todo_paths, sink) -> {id or path: reason}`` extracts rows (each engine brings its
    own: local threads, or Ray) and hands them to ``sink(ids, features)``. A current dataset
    file is returned as is (one hash pass decides); else, under the row store's lock, the rows
    the store lacks are extracted and the dataset's rows assembled in order.

    With ``one_pass``, ``compute`` also takes ``have`` and ``seen`` keywords: it then reads and
    hashes each image once, calls ``seen(paths, ids)`` with the content id of the bytes it read
    (``None``: unreadable), and decodes and runs only the images whose id ``have`` lacks (each
    content once). A cold run (no dataset file yet) then needs no separate hash pass.
    """
    # graphs and converted weights go under the same cache (nowhere with cache=False)
    with artifacts_under(cache_root(cache) if cache is not False else False):
        return _extract(dataset, config, cache, progress, compute, one_pass)


def _extract(dataset, config, cache, progress, compute, one_pass) -> FeatureSet:
    paths = list(dataset.paths)
    name = dataset.name or f"dataset-{name_digest(dataset)[:8]}"
    if cache is False:  # always cold: in one pass too when the engine can
        rows: dict[str, np.ndarray] = {}

        def keep(new_ids, feats) -> None:
            rows.update(zip(new_ids, feats, strict=True))

        if one_pass:
            ids, unreadable, failed = read_once(paths, keep, rows, compute, progress)
        else:
            ids, unreadable = hash_all(paths)
            todo = missing_rows(paths, ids, rows)
            progress.start(len(todo))
            failed = compute(todo, keep) if todo else {}
        get = lambda keep_ids: np.stack([rows[i] for i in keep_ids])  # noqa: E731
        fs = assemble(dataset, ids, unreadable, failed, set(rows), get, config, None, name)
        progress.close(fs.skipped)
        return fs

    root = cache_root(cache)
    dfile = dataset_file(root, name, config, [*paths, *(p for p, _ in dataset_skipped(dataset))])
    ids = unreadable = None
    if not one_pass or dfile.exists():  # the warm path: one hash pass says if it is current
        ids, unreadable = hash_all(paths)
        if (hit := load_if_current(dfile, dataset, ids, config)) is not None:
            return hit
    store = row_store(root, config)
    with store.lock(exclusive=True, on_wait=progress.waiting):
        if ids is None and dfile.exists():  # built by another process while this one waited
            ids, unreadable = hash_all(paths)
        if ids is not None:
            # another process may have built it; a damaged file is moved aside now
            if (hit := load_if_current(dfile, dataset, ids, config, store,
                                       repair=True)) is not None:
                return hit
            todo = missing_rows(paths, ids, store.index())
            progress.start(len(todo))
            failed = compute(todo, store.commit) if todo else {}
        else:
            ids, unreadable, failed = read_once(paths, store.commit, store.index(), compute,
                                                progress)
        fs = finish(dataset, ids, unreadable, failed, store, compute, config, dfile, name)
    progress.close(fs.skipped)
    return fs


def read_once(paths, sink, have, compute, progress):
    """A cold run's one pass: every image read and hashed once by ``compute``, decoded and run
    only when ``have`` (the store's ids) lacks its content, rows handed to ``sink``. Returns
    ``(ids, unreadable, failed)``."""
    todo = list(dict.fromkeys(paths))
    id_of: dict[str, str | None] = {}
    progress.start(len(todo))
    failed = compute(todo, sink, have=have,
                     seen=lambda ps, cids: id_of.update(zip(ps, cids, strict=True)))
    ids = [id_of.get(p) for p in paths]
    unreadable = {p: failed.get(p) or "not read" for p, cid in zip(paths, ids, strict=True)
                  if cid is None}
    return ids, unreadable, failed


def finish(dataset, ids, unreadable, failed, store, compute, config, dfile, name):
    """Compact the store and assemble the dataset file; rows the store loses to damage found on
    the way are extracted again (at most :data:`_ROUNDS` times)."""
    paths = list(dataset.paths)
    digest = request_digest(dataset, ids)
    for round_ in range(_ROUNDS):
        if round_:  # rows the store lost to a damaged segment: extract just those again
            cid_of = dict(zip(paths, ids, strict=True))
            todo = [p for p in missing_rows(paths, ids, store.index())
                    if p not in failed and cid_of[p] not in failed]
            if todo:
                failed.update(compute(todo, store.commit))
        repairs = store.repairs
        store.compact()
        if store.repairs == repairs:
            try:
                return assemble(dataset, ids, unreadable, failed, store.index(), store.gather,
                                config, dfile, name, digest)
            except DamagedCacheError:  # the store moved the segment aside: rows to redo
                pass
    raise DamagedCacheError(store.directory, "its rows still fail their checksums after "
                            f"being extracted again {_ROUNDS} times", "is the disk failing?")


_ROUNDS = 3  # assemble, and at most twice more after re-extracting rows lost to damage


def assemble(dataset, ids, unreadable, failed, have, gather, config, dfile, name, digest=None):
    """Rows of the dataset that have features, in order; write the dataset file when asked (its
    rows stay in the row store ``gather`` reads)."""
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
                           ids=keep_ids, class_names=dataset.class_names, extra=extra,
                           embed_rows=False)  # the rows stay in the store: each stored once
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
