"""``featx cache verify``: check every row's digest of a dataset file (or of the whole cache) and
re-extract a sample of rows, or all of them, to compare them with what the file stores."""

from __future__ import annotations

import os

import numpy as np

from featx.cache import (
    VerifyReport,
    check_entries,
    inspect_dataset_file,
    resolve_entry,
)
from featx.extract.config import ExtractorConfig
from featx.extract.local import stream
from featx.utils.checks import check_int, renamed
from featx.utils.progress import Progress

__all__ = ["VerifyReport", "cache_verify"]


def cache_verify(path: str | os.PathLike | None = None, n: int | str = 8, *, seed: int = 0,
                 rtol: float = 1e-3, atol: float = 1e-4, cache=None,
                 cache_dir=None) -> VerifyReport:
    """Check a dataset file's digests and shapes, then re-extract ``n`` random rows (or all) and
    compare them with the stored features.

    Parameters
    ----------
    path : path, optional
        A dataset file (a path, or a file name under ``cache``: :func:`resolve_entry`).
        ``None``: every dataset file and row store of the cache (``cache``, default the featx
        cache dir); files named like dataset files that cannot be read are failures.
    n : int >= 0 or "all"
        Rows of each dataset file to re-extract and compare; ``0`` checks the digests only,
        ``"all"`` re-extracts every row.
    seed : int
        Which rows are sampled.
    rtol, atol : float
        A re-extracted row matches when ``allclose`` with ``rtol`` and ``atol`` times the row's
        largest magnitude (so the test means the same for features of any scale); looser for
        float16 files.
    cache : path, optional
        Where names and ``path=None`` are looked up; ``cache_dir=``, its old name, still works
        (with a ``FutureWarning``).

    Returns
    -------
    VerifyReport
        Truthy when every digest matched, every shape agreed and every re-extracted row matched.
        A malformed file is a failure in it, never an exception. Rows whose image changed or
        vanished since extraction are unverifiable, not failures; but a file none of whose
        sampled rows can be re-extracted fails.

    Raises
    ------
    ValueError
        If ``path`` is not a featx dataset file, or ``n`` is neither an int >= 0 nor ``"all"``.
    """
    if n != "all":
        check_int("n", n, 0, meaning=" (rows to re-extract per file; or 'all')")
    cache = renamed(cache, cache_dir, name="cache", old_name="cache_dir", where="cache_verify")
    report = VerifyReport(True, 0, [], [], 0.0)
    if path is not None:
        target = resolve_entry(path, cache)
        info = inspect_dataset_file(target)  # ValueError for anything but a dataset file
        n_rows = info["n_rows"] or 0
        entries = [{"path": target, "kind": "dataset", "info": info, "n_checksums":
                    0 if info["legacy"] else n_rows, "n_legacy": n_rows if info["legacy"] else 0,
                    "problems": [(target, p) for p in info["problems"]]}]
    else:
        entries = check_entries(None, cache)
    sampled = 0
    for entry in entries:
        report.add_entry(entry)
        data = (entry.get("info") or {}).get("data")
        if data is not None and n != 0 and len(data["ids"]):
            sampled += 1
            _reextract(entry["path"], data, n, seed, rtol, atol, report)
    if sampled and report.n_checked == 0:
        report.ok = False
    return report


def _reextract(path, data: dict, n, seed, rtol, atol, report: VerifyReport) -> None:
    """Re-extract ``n`` rows of one dataset file and compare them, adding to ``report``."""
    a = data["attrs"]
    total = len(data["ids"])
    if n == "all" or n >= total:
        rows = np.arange(total)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    if a.get("dtype") == "float16":
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-2)
    try:
        config = ExtractorConfig(**ExtractorConfig.from_attrs(a).settings())
    except Exception as exc:  # noqa: BLE001 - the file's settings no longer build an extractor
        report.unverifiable.append((str(path), f"its extractor cannot be rebuilt here ({exc})"))
        return
    if config["weights_sha256"] != a.get("weights_sha256"):
        report.failures.append((f"{path}: <weights>",
                                "weights fingerprint differs from the file's"))
        report.ok = False
    paths = [data["paths"][i] for i in rows]
    # The same decode-and-forward loop as extraction, which hashes each file as it reads it: the
    # new rows are keyed by content id, so a row is checked only when an image read now still
    # has the content id the file stores (a changed file gives another id: unverifiable).
    fresh: dict[str, np.ndarray] = {}
    stream(paths, config, max(1, min(len(rows), 32)), 0,
           lambda ids, feats: fresh.update(zip(ids, feats, strict=True)), Progress("verify", 0))
    for r, p in zip(rows, paths, strict=True):
        feats = fresh.get(data["ids"][r])
        if feats is None:
            report.unverifiable.append((p, "image missing, unreadable or changed since "
                                           "extraction"))
            continue
        report.n_checked += 1
        stored = data["features"][r]
        if feats.shape != stored.shape:
            report.failures.append((p, f"the stored row has shape {stored.shape}, the backbone "
                                       f"gives {feats.shape}"))
            report.ok = False
            continue
        diff = float(np.max(np.abs(feats.astype(np.float32) - stored.astype(np.float32))))
        if np.isnan(diff):
            diff = float("inf")
        report.max_abs_diff = max(report.max_abs_diff, diff)
        scale = max(float(np.nanmax(np.abs(feats.astype(np.float32)))),
                    np.finfo(np.float32).tiny)
        if not np.allclose(stored, feats, rtol=rtol, atol=atol * scale):  # stored vs trusted
            report.failures.append((p, f"features differ (max abs diff {diff:.3g})"))
            report.ok = False
