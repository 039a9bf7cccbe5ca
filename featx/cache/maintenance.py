"""Cache maintenance behind ``featx cache``: list, describe, and remove featx's own files (never a
user's folder or CSV: every target is checked before anything is touched)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
from pathlib import Path

from featx.cache.files import featx_attrs, open_h5, read_attrs, store_problem
from featx.cache.rowstore import RowStore
from featx.utils.config import cache_root

__all__ = ["cache_info", "cache_ls", "cache_rm", "resolve_entry"]


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
    with open_h5(path) as f:
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
