"""Cache maintenance behind ``featx cache``: list, describe, check and remove featx's own files
(never a user's folder or CSV: every target is checked before anything is touched)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import h5py

from featx.cache.files import (
    featx_attrs,
    inspect_dataset_file,
    open_h5,
    read_attrs,
    reading,
    store_problem,
)
from featx.cache.rowstore import SEGMENT_GLOB, RowStore, segment_ids
from featx.trust.store import DamagedCacheError, check_seal
from featx.utils.checks import renamed, type_name
from featx.utils.config import cache_root

__all__ = ["VerifyReport", "cache_check", "cache_info", "cache_ls", "cache_prune", "cache_rm",
           "check_entries", "dataset_files_of", "parse_size", "resolve_entry"]


def _entry_problem(path: Path) -> str | None:
    """Why ``path`` is neither a featx dataset file nor a featx row store (``None``: it is one)."""
    if path.is_dir() and not path.is_symlink():
        why = store_problem(path)
        return None if why is None else f"{path} is not a featx row store ({why})"
    try:
        read_attrs(path)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def resolve_entry(target: str | os.PathLike, cache=None, *, cache_dir=None) -> Path:
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
    root = cache_root(renamed(cache, cache_dir, name="cache", old_name="cache_dir",
                              where="resolve_entry"))
    for alt in (root / path, root / "rows" / path):
        if alt.exists() or alt.is_symlink():
            return alt
    raise FileNotFoundError(f"cache entry {os.fspath(target)!r} does not exist (also looked in "
                            f"{str(root)!r} and {str(root / 'rows')!r}); see cache_ls()")


def cache_info(path: str | os.PathLike, cache=None, *, cache_dir=None) -> dict:
    """Describe one dataset file or row store: attributes, row count, shape, size on disk.

    ``path`` is resolved by :func:`resolve_entry` (a path, or a name under ``cache``).
    Raises ``ValueError`` for anything that is not a featx dataset file or row store.

    Examples
    --------
    >>> import tempfile
    >>> cache_ls(tempfile.mkdtemp())
    []
    """
    path = resolve_entry(path, renamed(cache, cache_dir, name="cache", old_name="cache_dir",
                                       where="cache_info"))
    with _times_kept(_files_of([path])):
        return _info(path)


def _info(path: Path) -> dict:
    if path.is_dir() and not path.is_symlink() and store_problem(path) is None:
        store = RowStore(path)
        with store.lock(exclusive=False):
            segs = store.segments()
            n = len(store.index())
        cfg = path / "config.json"
        attrs = json.loads(cfg.read_text()) if cfg.exists() else {}
        size = sum(s.stat().st_size for s in segs)
        return {"path": str(path), "kind": "store", "n_rows": n, "segments": len(segs),
                "bytes": size, **attrs}
    with open_h5(path) as f, reading(path):  # h5py's errors on a damaged file: ValueError
        attrs = featx_attrs(f, path)
        shape = list(f["features"].shape) if "features" in f else None
    if shape is None and "row_store" in attrs:  # its rows live in the row store: not counted here
        shape = [attrs.get("n_rows"), *attrs.get("row_shape", [])]
        attrs["rows_in"] = str(path.parent / "rows" / str(attrs["row_store"]))
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


def _files_of(entries) -> list[Path]:
    """The files of cache entries: a dataset file itself, a row store's segments."""
    out = []
    for p in entries:
        if p.is_dir() and not p.is_symlink():
            out.extend(sorted(p.glob(SEGMENT_GLOB)))
        elif p.is_file() and not p.is_symlink():
            out.append(p)
    return out


@contextlib.contextmanager
def _times_kept(files):
    """Maintenance reads are not uses: the files' access (and modification) times are put back
    afterwards, so :func:`cache_prune` sees when featx last *used* them."""
    times = {}
    for f in files:
        with contextlib.suppress(OSError):
            st = f.stat()
            times[f] = (st.st_atime_ns, st.st_mtime_ns)
    try:
        yield
    finally:
        for f, ns in times.items():
            with contextlib.suppress(OSError):
                if (st := f.stat()).st_mtime_ns == ns[1] and st.st_atime_ns != ns[0]:
                    os.utime(f, ns=ns)


def cache_ls(cache: str | os.PathLike | None = None, *, cache_dir=None) -> list[dict]:
    """List the featx dataset files and row stores under ``cache`` (default: the featx cache
    dir); other files there are not listed. (``cache_dir=`` is the old name of ``cache``.)"""
    root = cache_root(renamed(cache, cache_dir, name="cache", old_name="cache_dir",
                              where="cache_ls"))
    out = []
    candidates = _candidates(root)
    with _times_kept(_files_of(candidates)):
        for p in candidates:
            if _entry_problem(p) is None:
                with contextlib.suppress(OSError, KeyError, ValueError):
                    out.append(cache_info(p))
    return out


def cache_rm(path_or_pattern: str | os.PathLike, cache=None, *, dry_run: bool = False,
             cache_dir=None) -> list[str]:
    """Remove featx dataset files and row stores, given by path, name or glob pattern.

    Only featx's own entries are ever removed: a dataset file (an HDF5 file with featx's ``key``
    and ``featx_version`` attributes) or a row store (a ``<cache>/rows/<config>`` folder holding
    only featx's files). A row store is removed under its exclusive lock, so a running extraction
    finishes first, together with the dataset files whose rows live in it
    (:func:`dataset_files_of`): none is left pointing at rows that are gone.

    Parameters
    ----------
    path_or_pattern : str or path-like
        A path; a name as :func:`cache_ls` shows it (see :func:`resolve_entry`); or a glob
        pattern (``"clothing-small-*"``) matched against the names and paths of the ``*.h5``
        files under the cache folder and the folders under its ``rows/``.
    cache : path, optional
        The cache folder (default: the featx cache dir); ``cache_dir=``, its old name, still
        works (with a ``FutureWarning``).
    dry_run : bool
        Check and return what would be removed, and remove nothing.

    Returns
    -------
    list of str
        The removed paths (with ``dry_run``, those that would be; empty when the pattern
        matches nothing): the targets, then the dataset files removed with their row store.

    Raises
    ------
    ValueError
        If the path, or anything the pattern matches, is not a featx dataset file or row store;
        nothing at all is removed then.
    """
    root = cache_root(renamed(cache, cache_dir, name="cache", old_name="cache_dir",
                              where="cache_rm"))
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
    stores = [p for p in targets if p.is_dir() and not p.is_symlink()]
    if dry_run:
        with _times_kept(_files_of(targets)):
            extra = [f for s in stores for f in dataset_files_of(s) if f not in targets]
        return [str(p) for p in dict.fromkeys([*targets, *extra])]
    removed = []
    for p in targets:
        if p in stores:
            removed.extend(_remove_store(p))  # its dataset files first: none points at nothing
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return [str(p) for p in sorted(dict.fromkeys(removed), key=lambda p: p not in targets)]


def dataset_files_of(store: Path) -> list[Path]:
    """The featx dataset files whose rows live in the row store ``store`` (the sound files,
    named ``*__<store>.h5``, in the cache folder holding ``rows/``). A damaged file is left to
    the next extraction, which moves it aside, and to :func:`cache_check`, which reports it."""
    store = Path(store)
    out = []
    for p in sorted(store.parent.parent.glob("*.h5")):
        if not p.name.endswith(f"__{store.name}.h5") or p.is_symlink():
            continue
        try:
            check_seal(p)  # HDF5 never parses a damaged file
            if read_attrs(p).get("row_store") == store.name:
                out.append(p)
        except (OSError, ValueError):
            continue
    return out


def _remove_store(store: Path) -> list[Path]:
    """Remove a row store (checked to be featx's) and the dataset files whose rows live in it
    (:func:`dataset_files_of`, removed first), under the store's exclusive lock, so that an
    extraction running now finishes first and none writes a file into it meanwhile. Returns the
    dataset files removed."""
    with RowStore(store).lock(exclusive=True):
        files = dataset_files_of(store)
        for f in files:
            f.unlink(missing_ok=True)
        for child in store.iterdir():
            if child.name != ".lock":
                child.unlink()
    shutil.rmtree(store, ignore_errors=True)
    return files


# -- pruning by age and size ----------------------------------------------------------------------
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)b?\s*", re.IGNORECASE)


def parse_size(size: int | float | str) -> int:
    """A size in bytes: an int, or a string ``"500M"``, ``"2G"``, ``"1.5GB"``, ``"800k"``
    (decimal units, as ``featx cache ls`` shows MB).

    Examples
    --------
    >>> parse_size("1.5G"), parse_size("500MB"), parse_size(2048)
    (1500000000, 500000000, 2048)
    """
    if isinstance(size, (int, float)) and not isinstance(size, bool) and size >= 0:
        return int(size)
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        raise ValueError(f"max_size must be a size >= 0 in bytes or with a unit (500M, 2G, "
                         f"1.5GB), got {size!r} of type {type_name(size)}")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def _last_used(path: Path) -> float:
    """When a file was last read or written (its access time where the filesystem keeps one)."""
    st = path.stat()
    return max(st.st_atime, st.st_mtime)


def _prune_units(root: Path) -> list[dict]:
    """Every dataset file and row-store segment of the cache, each checked to be featx's."""
    units = []
    candidates = _candidates(root)
    with _times_kept(_files_of(candidates)):
        for p in candidates:
            if _entry_problem(p) is not None:
                continue  # not featx's: never touched
            if p.is_dir():
                files = [(f, "segment") for f in RowStore(p).segments()]
            else:
                files = [(p, "dataset")]
            for f, kind in files:
                with contextlib.suppress(OSError):
                    units.append({"path": str(f), "kind": kind, "bytes": f.stat().st_size,
                                  "store": str(p) if kind == "segment" else None})
    for u in units:  # the times from before the checks above read the files
        with contextlib.suppress(OSError):
            u["last_used"] = _last_used(Path(u["path"]))
    return [u for u in units if "last_used" in u]


def cache_prune(cache: str | os.PathLike | None = None, *, older_than: float | None = None,
                max_size: int | str | None = None, dry_run: bool = False,
                cache_dir=None) -> list[dict]:
    """Remove featx dataset files and row-store segments by last use, oldest first.

    First everything not used for ``older_than`` days, then, least recently used first, until
    the dataset files and segments together take at most ``max_size``. Only featx's own entries
    are touched (the checks of :func:`cache_rm`); segments are removed under their store's
    exclusive lock, and a store left without segments is removed whole. What is removed is
    only cache: it is extracted again when needed.

    Parameters
    ----------
    cache : path, optional
        The cache folder (default: the featx cache dir); ``cache_dir=``, its old name, still
        works (with a ``FutureWarning``).
    older_than : float, optional
        Days since a file was last read or written (its access time, where the filesystem
        keeps one, else its modification time). The reads of ``cache_ls``, ``cache_info`` and
        ``cache_check`` (``featx cache ls|info|verify``) put the times back: they are not uses.
    max_size : int or str, optional
        Bytes, or a size with a unit (:func:`parse_size`: ``"500M"``, ``"2G"``).
    dry_run : bool
        Return what would be removed, and remove nothing.

    Returns
    -------
    list of dict
        One per removed (with ``dry_run``: to be removed) file, oldest first: ``path``,
        ``kind`` (``"dataset"`` or ``"segment"``), ``bytes``, ``last_used`` (a POSIX time),
        ``store`` (a segment's row store, else None). Then the dataset files removed because
        some of their rows were only in the removed segments (their ``store``: that store): a
        dataset file's rows live in its row store, so none is left pointing at rows that are
        gone.

    Examples
    --------
    >>> import tempfile
    >>> cache_prune(tempfile.mkdtemp(), older_than=30)
    []
    """
    if older_than is None and max_size is None:
        raise ValueError("cache_prune needs older_than (days) and/or max_size (bytes or 500M, "
                         "2G), got neither")
    if older_than is not None and (isinstance(older_than, bool) or not isinstance(
            older_than, (int, float)) or not older_than >= 0):
        raise ValueError(f"older_than must be a number of days >= 0, got {older_than!r} of type "
                         f"{type_name(older_than)}")
    limit = None if max_size is None else parse_size(max_size)
    cache = renamed(cache, cache_dir, name="cache", old_name="cache_dir", where="cache_prune")
    units = sorted(_prune_units(cache_root(cache)), key=lambda u: u["last_used"])
    chosen = []
    if older_than is not None:
        cutoff = time.time() - older_than * 86400
        chosen = [u for u in units if u["last_used"] < cutoff]
    if limit is not None:
        kept = [u for u in units if u not in chosen]
        total = sum(u["bytes"] for u in kept)
        for u in kept:  # least recently used first
            if total <= limit:
                break
            chosen.append(u)
            total -= u["bytes"]
    chosen.sort(key=lambda u: u["last_used"])
    return chosen + _remove_units(chosen, dry_run)


def _remove_units(units: list[dict], dry_run: bool = False) -> list[dict]:
    """Remove the chosen files and, with a store's segments, the dataset files that referenced
    rows only those segments held (:func:`_pruned_dependents`): no dataset file is left
    pointing at rows that are gone. Returns those dataset files (as units; ``store``: the store
    their rows were pruned from). ``dry_run``: remove nothing, return the same."""
    stores: dict[str, list[Path]] = {}
    chosen = {u["path"] for u in units}
    for u in units:
        if u["kind"] == "dataset":
            if not dry_run:
                Path(u["path"]).unlink(missing_ok=True)
        else:
            stores.setdefault(u["store"], []).append(Path(u["path"]))
    extra = []
    for store, segs in stores.items():
        store_path = Path(store)
        # under the exclusive lock: no extraction writes a dataset file into these rows meanwhile
        with RowStore(store_path).lock(exclusive=not dry_run) as rs:
            deps = [d for d in _pruned_dependents(store_path, segs) if str(d) not in chosen]
            for d in deps:
                with contextlib.suppress(OSError):
                    extra.append({"path": str(d), "kind": "dataset", "bytes": d.stat().st_size,
                                  "last_used": _last_used(d), "store": store})
            if dry_run:
                continue
            for f in (*deps, *segs):
                f.unlink(missing_ok=True)
            empty = not rs.segments()
            if empty:  # nothing left: the whole store goes, as with cache_rm
                for child in store_path.iterdir():
                    if child.name != ".lock":
                        child.unlink()
        if not dry_run and empty:
            shutil.rmtree(store_path, ignore_errors=True)
    return extra


def _pruned_dependents(store: Path, segs: list[Path]) -> list[Path]:
    """The dataset files of ``store`` (:func:`dataset_files_of`) that reference a content id
    only the segments ``segs`` hold (call under the store's lock)."""
    others = [s for s in RowStore(store).segments() if s not in segs]
    gone: set[str] = set()
    out = []
    # reading is not using: the times cache_prune goes by stay as they were (dry runs too)
    with _times_kept([*segs, *others, *store.parent.parent.glob(f"*__{store.name}.h5")]):
        for seg in segs:
            with contextlib.suppress(DamagedCacheError, OSError):
                gone.update(segment_ids(seg))
        for seg in others:
            with contextlib.suppress(DamagedCacheError, OSError):
                gone.difference_update(segment_ids(seg))
        for f in dataset_files_of(store) if gone else ():
            with contextlib.suppress(OSError, ValueError):
                data = inspect_dataset_file(f, rows=False)["data"]
                if data is not None and gone.intersection(data["ids"]):
                    out.append(f)
    return out


# -- checking every row's digest ----------------------------------------------------------------
# <name>[-<where6>]__<backbone>-<size>-<pooling>__<key8>.h5: how featx names a dataset file
_DATASET_NAME = re.compile(r".+__.+-\d+(?:x\d+)?-\w+__[0-9a-f]{8}\.h5")


def check_entries(target: str | os.PathLike | None = None, cache=None, *,
                  cache_dir=None) -> Iterator[dict]:
    """Check the shapes and every row's digest of a dataset file, a row store, or (``target``
    None) every featx entry under ``cache``; reads only, changes nothing, runs no backbone.

    Yields one dict per entry: ``path``, ``kind`` (``"dataset"`` or ``"store"``), ``problems``
    (a list of ``(path, why)``; empty when sound), ``n_checksums`` (rows whose digest was checked)
    and ``n_legacy`` (rows written before digests existed: shape-checked only), and for a dataset
    file ``info`` (:func:`~featx.cache.files.inspect_dataset_file`). Scanning the whole cache, a
    file named like a dataset file that cannot be read is a problem; other files are not
    featx's and are left out. A ``target`` that is not featx's raises ``ValueError``.
    """
    cache = renamed(cache, cache_dir, name="cache", old_name="cache_dir", where="check_entries")
    if target is not None:
        entries = [resolve_entry(target, cache)]
    else:
        entries = _candidates(cache_root(cache))
    with _times_kept(_files_of(entries)):
        yield from _check(entries, target)


def _check(entries: list[Path], target) -> Iterator[dict]:
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            if (why := store_problem(path)) is not None:
                if target is not None:
                    raise ValueError(f"{path} is not a featx row store ({why})")
                continue
            store = RowStore(path)
            with store.lock(exclusive=False):
                res = store.check()
            yield {"path": path, "kind": "store", "problems": res["problems"],
                   "n_checksums": res["checked"], "n_legacy": res["legacy"]}
            continue
        try:
            info = inspect_dataset_file(path)
        except (OSError, ValueError) as exc:
            if target is not None:
                raise
            if _DATASET_NAME.fullmatch(path.name) and not _foreign_hdf5(path):
                yield {"path": path, "kind": "dataset", "problems": [(path, str(exc))],
                       "n_checksums": 0, "n_legacy": 0, "info": None}
            continue
        n = info["n_rows"] or 0
        yield {"path": path, "kind": "dataset", "problems": [(path, p) for p in info["problems"]],
               "n_checksums": 0 if info["legacy"] else n, "n_legacy": n if info["legacy"] else 0,
               "info": info}


def _foreign_hdf5(path: Path) -> bool:
    """A sound HDF5 file without featx's attributes: someone else's file, not a damaged one."""
    try:
        with h5py.File(path, "r") as f:
            return "featx_version" not in f.attrs
    except Exception:  # noqa: BLE001 - unreadable: not a sound foreign file
        return False


def cache_check(target: str | os.PathLike | None = None, cache=None, *,
                cache_dir=None) -> VerifyReport:
    """Check every row's digest and every file's shapes (:func:`check_entries`), fast: nothing
    is re-extracted (:func:`featx.extract.cache_verify` does that) and nothing is changed.

    Examples
    --------
    >>> import tempfile
    >>> cache_check(cache=tempfile.mkdtemp())
    VerifyReport(ok=True, files=0, checksums=0, legacy=0, n_checked=0, failures=0, ...)
    """
    report = VerifyReport(True, 0, [], [], 0.0)
    cache = renamed(cache, cache_dir, name="cache", old_name="cache_dir", where="cache_check")
    for entry in check_entries(target, cache):
        report.add_entry(entry)
    return report


class VerifyReport:
    """What :func:`cache_check` and :func:`featx.extract.cache_verify` found; truthy when sound.

    Attributes
    ----------
    ok : bool
        No problem found: every digest matched, every shape agreed, every re-extracted row
        matched (and at least one could be re-extracted when some were asked for).
    n_checked : int
        Rows re-extracted and compared with the stored ones.
    failures : list of (str, str)
        ``(file or image path, why)`` for every problem.
    unverifiable : list of (str, str)
        Rows that could not be re-extracted (image missing or changed since), with the reason.
    max_abs_diff : float
        The largest difference between a re-extracted row and its stored one.
    n_checksums : int
        Rows whose digest was checked.
    n_legacy : int
        Rows written before featx stored digests: their shapes were checked, not their values.
    files : list of str
        The dataset files and row stores checked.
    """

    def __init__(self, ok, n_checked, failures, unverifiable, max_abs_diff, *, n_checksums=0,
                 n_legacy=0, files=()) -> None:
        self.ok, self.n_checked, self.failures = bool(ok), n_checked, list(failures)
        self.unverifiable, self.max_abs_diff = list(unverifiable), max_abs_diff
        self.n_checksums, self.n_legacy, self.files = n_checksums, n_legacy, list(files)

    def add_entry(self, entry: dict) -> None:
        """Count one :func:`check_entries` result in."""
        self.files.append(str(entry["path"]))
        self.n_checksums += entry["n_checksums"]
        self.n_legacy += entry["n_legacy"]
        self.failures.extend((str(p), why) for p, why in entry["problems"])
        self.ok = self.ok and not entry["problems"]

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return (f"VerifyReport(ok={self.ok}, files={len(self.files)}, "
                f"checksums={self.n_checksums}, legacy={self.n_legacy}, "
                f"n_checked={self.n_checked}, failures={len(self.failures)}, "
                f"unverifiable={len(self.unverifiable)}, max_abs_diff={self.max_abs_diff:.3g})")
