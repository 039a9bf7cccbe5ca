"""Cache maintenance behind ``featx cache``: list, describe, check and remove featx's own files
(never a user's folder or CSV: every target is checked before anything is touched)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
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
from featx.cache.rowstore import RowStore
from featx.utils.config import cache_root

__all__ = ["VerifyReport", "cache_check", "cache_info", "cache_ls", "cache_rm", "check_entries",
           "resolve_entry"]


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
    root = cache_root(cache_dir)
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
    root = cache_root(cache_dir)
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
    root = cache_root(cache_dir)
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


# -- checking every row's digest ----------------------------------------------------------------
# <name>[-<where6>]__<backbone>-<size>-<pooling>__<key8>.h5: how featx names a dataset file
_DATASET_NAME = re.compile(r".+__.+-\d+(?:x\d+)?-\w+__[0-9a-f]{8}\.h5")


def check_entries(target: str | os.PathLike | None = None, cache_dir=None) -> Iterator[dict]:
    """Check the shapes and every row's digest of a dataset file, a row store, or (``target``
    None) every featx entry under ``cache_dir``; reads only, changes nothing, runs no backbone.

    Yields one dict per entry: ``path``, ``kind`` (``"dataset"`` or ``"store"``), ``problems``
    (a list of ``(path, why)``; empty when sound), ``n_checksums`` (rows whose digest was checked)
    and ``n_legacy`` (rows written before digests existed: shape-checked only), and for a dataset
    file ``info`` (:func:`~featx.cache.files.inspect_dataset_file`). Scanning the whole cache, a
    file named like a dataset file that cannot be read is a problem; other files are not
    featx's and are left out. A ``target`` that is not featx's raises ``ValueError``.
    """
    if target is not None:
        entries = [resolve_entry(target, cache_dir)]
    else:
        entries = _candidates(cache_root(cache_dir))
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


def cache_check(target: str | os.PathLike | None = None, cache_dir=None) -> VerifyReport:
    """Check every row's digest and every file's shapes (:func:`check_entries`), fast: nothing
    is re-extracted (:func:`featx.extract.cache_verify` does that) and nothing is changed.

    Examples
    --------
    >>> import tempfile
    >>> cache_check(cache_dir=tempfile.mkdtemp())
    VerifyReport(ok=True, files=0, checksums=0, legacy=0, n_checked=0, failures=0, ...)
    """
    report = VerifyReport(True, 0, [], [], 0.0)
    for entry in check_entries(target, cache_dir):
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
