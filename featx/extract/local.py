"""The local engine: decode threads feed fixed-size batches to the backbone in this process.

Worker threads read + decode + resize into ``uint8`` chunks through a bounded prefetch window, the
main thread fills fixed-size batches and runs the backbone, and finished rows are committed to the
row store every couple of seconds. Memory stays flat in the number of images apart from the
returned arrays.
"""

from __future__ import annotations

import time

import numpy as np

from featx.extract.config import ExtractorConfig
from featx.extract.driver import progress_label, run_extraction
from featx.extract.featureset import FeatureSet
from featx.extract.forward import BatchRunner, get_model, has_gpu
from featx.extract.options import ExecutionOptions
from featx.extract.views import apply_view
from featx.images import SKIPPED, DecodePool
from featx.utils.progress import Progress
from featx.utils.threads import decode_threads

__all__ = ["extract_local", "stream"]

_COMMIT_SECONDS = 2.0  # commit finished rows to the row store at least this often
_COMMIT_ROWS = 4096  # ... or when this many are pending
_CPU_BATCH, _GPU_BATCH = 32, 256


class _Known:
    """Content ids not to decode or run: ``have`` (the store's) and those queued in this run
    (a content that two paths share runs once). Thread workers test it as they hash."""

    def __init__(self, have) -> None:
        self.have, self.queued = have, set()

    def __contains__(self, cid) -> bool:
        return cid in self.queued or cid in self.have


def stream(paths, config, batch_size, n_workers, sink, progress,
           runtime: str | None = None, have=None, seen=None) -> dict[str, str]:
    """Decode ``paths`` and run the backbone; rows go to ``sink(ids, feats)`` in commit-sized
    groups. Returns ``{content id or path: reason}`` for images that could not be decoded.

    The one-pass mode of :func:`~featx.extract.driver.run_extraction`: with ``have`` (content ids
    whose rows exist), an image whose bytes hash to a known id is read and hashed but neither
    decoded nor run; ``seen(paths, ids)`` gets each chunk's content ids (``None``: unreadable)."""
    known = None if have is None else _Known(have)
    batch_size = max(1, min(batch_size, len(paths)))  # a batch never outgrows its images
    h, w = config["input_size"]
    runner = None  # built at the first decodable image: a run of unreadable files needs no model
    batch = np.empty((batch_size, h, w, 3), np.uint8)
    batch_ids: list[str] = []
    done_ids, done_feats, failed = [], [], {}
    last = time.monotonic()

    def forward() -> None:
        nonlocal runner
        if runner is None:
            runner = BatchRunner(get_model(config, runtime), batch_size, config["dtype"])
        done_feats.append(runner(apply_view(config.get("view", "none"), batch[: len(batch_ids)])))
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
        for ids, images, reasons in pool.imap(paths, skip=known):
            if seen is not None:
                seen(paths[start : start + len(ids)], ids)
            k = 0
            for j, (cid, reason) in enumerate(zip(ids, reasons, strict=True)):
                if reason is not None:
                    if reason != SKIPPED:
                        failed[cid or paths[start + j]] = reason
                    progress.update(1)
                    continue
                k += 1
                if known is not None:
                    if cid in known:  # decoded before its twin was queued: runs once
                        progress.update(1)
                        continue
                    known.queued.add(cid)
                batch[len(batch_ids)] = images[k - 1]
                batch_ids.append(cid)
                if len(batch_ids) == batch_size:
                    forward()
                    if time.monotonic() - last >= _COMMIT_SECONDS or len(done_ids) >= _COMMIT_ROWS:
                        commit()
            start += len(ids)
        if batch_ids:
            forward()
        commit()
    return failed


def extract_local(dataset, config: ExtractorConfig, options: ExecutionOptions) -> FeatureSet:
    """The ``engine="local"`` row of :data:`featx.extract.ENGINES` (``options.n_workers``:
    decode threads, ``0`` for none; default :func:`featx.utils.threads.decode_threads`)."""
    n_workers, batch_size = options.n_workers, options.batch_size
    if batch_size is None:
        batch_size = _GPU_BATCH if has_gpu() else _CPU_BATCH
    batch_size = int(batch_size)
    n_workers = decode_threads() if n_workers is None else n_workers
    progress = Progress(progress_label(dataset, config), options.verbose)
    return run_extraction(
        dataset, config, options.cache, progress,
        lambda todo, sink, **one_pass: stream(todo, config, batch_size, n_workers, sink, progress,
                                              options.runtime, **one_pass),
        one_pass=True,
    )
