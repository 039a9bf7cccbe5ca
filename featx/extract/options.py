"""How an extraction runs, as opposed to what it computes: :class:`ExecutionOptions` and the
declared constraints of its parameters (:data:`EXECUTION_PARAMS`). Nothing here changes a feature,
so nothing here is in the cache key."""

from __future__ import annotations

import os
from dataclasses import dataclass

from featx.extract.forward import check_runtime
from featx.utils.params import Constraint, Interval, Rule

__all__ = ["EXECUTION_PARAMS", "ExecutionOptions"]


@dataclass(frozen=True)
class ExecutionOptions:
    """How an extraction runs, as opposed to what it computes: nothing here changes a feature
    (none of it is in the cache key). Checked by :func:`featx.extract_features`.

    Attributes
    ----------
    cache : None, bool or path
        ``None``/``True``: the cache folder setting; a path: that folder; ``False``: no disk.
    batch_size : int >= 1 or None
        Images per forward pass (``None``: 32 on a CPU, 256 on a GPU).
    n_workers : int or None
        Decode threads (local engine) or the embedded Ray instance's CPUs (Ray engine).
    verbose : int
        ``0`` silent, ``1`` progress, ``2`` also the engine's own logs.
    runtime : str or None
        What runs the forward (``None``: the ``runtime`` setting).
    address : str or None
        The Ray cluster to join (Ray engine).
    concurrency, num_gpus, shard_size
        Ray engine only: model actors, GPUs per actor, rows per committed segment.
    """

    cache: bool | str | os.PathLike | None = None
    batch_size: int | None = 32
    n_workers: int | None = None
    verbose: int = 1
    runtime: str | None = None
    address: str | None = None
    concurrency: int | tuple[int, int] | None = None
    num_gpus: float | None = None
    shard_size: int = 1024




def _check_cache(name: str, cache):
    if not (cache is None or isinstance(cache, bool) or isinstance(cache, str | os.PathLike)):
        raise TypeError(f"{name} must be None (the featx cache dir), False (no disk) or a folder "
                        f"path (str or os.PathLike), got {cache!r} of type "
                        f"{type(cache).__name__}")
    return cache


#: How an extraction runs (nothing here changes a feature), declared once.
EXECUTION_PARAMS: dict[str, Constraint] = {
    "cache": Rule(_check_cache, "None (the cache folder setting), False (no disk) or a folder"),
    "batch_size": Interval(int, 1, none=True),
    "n_workers": Interval(int, 0, none=True),
    "runtime": Rule(lambda name, r: r if r is None else check_runtime(r),
                    "None (the runtime setting), 'auto', 'onnxruntime' or 'keras'"),
}
