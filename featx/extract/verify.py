"""``featx cache verify``: re-extract a sample of a dataset file's rows and compare them with what
the file stores."""

from __future__ import annotations

import json
import os

import numpy as np

from featx.cache import extractor_config, read_dataset_file, resolve_entry
from featx.extract.local import stream
from featx.images import hash_files
from featx.utils.progress import Progress

__all__ = ["VerifyReport", "cache_verify"]


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
    data = read_dataset_file(resolve_entry(path, cache_dir))
    a = data["attrs"]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data["ids"]), size=min(n, len(data["ids"])), replace=False))
    if a["dtype"] == "float16":
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-2)
    config = extractor_config(a["backbone"], a["weights"],
                              a["input_size"], None if a["pooling"] == "none" else a["pooling"],
                              json.loads(a["layers"]), a["resize"], a["dtype"],
                              a["mixed_precision"], a.get("decoder", "pillow"))
    failures, unverifiable, max_diff = [], [], 0.0
    if config["weights_sha256"] != a["weights_sha256"]:
        failures.append(("<weights>", "weights fingerprint differs from the file's"))
    paths = [data["paths"][i] for i in rows]
    # The same decode-and-forward loop as extraction; a row is checked only when the image read
    # now still has the content id the file stores.
    fresh: dict[str, np.ndarray] = {}
    stream(paths, config, max(1, len(rows)), 0,
           lambda ids, feats: fresh.update(zip(ids, feats, strict=True)), Progress("verify", 0))
    for r, p, (content_id, _) in zip(rows, paths, hash_files(paths), strict=True):
        feats = fresh.get(content_id) if content_id == data["ids"][r] else None
        if feats is None:
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
