"""The thread budget: decode threads, backbone compute threads and the BLAS threads of head fits,
sized together for the cores this process may use, so that none of them oversubscribes the others.

- **Decode** (:func:`decode_threads`): one thread per core. Decoders sleep while the prefetch
  window is full, so they cost nothing once they are ahead of the backbone.
- **Compute** (:func:`compute_threads`): ONNX Runtime's intra-op threads, one per core, and told
  not to spin-wait, so its idle threads hand their core to a decoder at once
  (``docs/runtime.md`` has the measurement behind both choices).
- **BLAS** (:func:`blas_limit`): a scikit-learn head fit on cached features runs with one BLAS /
  OpenMP thread unless told otherwise. Such fits take about a second; with a thread per core they
  take several times longer as soon as another process (an extraction, a ``GridSearchCV``
  worker) wants the cores, and parallelism across fits belongs to ``n_jobs``.

Each has an environment variable that overrides it: ``FEATX_DECODE_THREADS``,
``FEATX_COMPUTE_THREADS``, ``FEATX_BLAS_THREADS`` (and ``FEATX_ORT_SPIN=1`` lets ONNX Runtime's
threads spin-wait).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from featx.utils.config import get_config

__all__ = ["blas_limit", "blas_threads", "compute_threads", "decode_threads", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _from_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {raw!r}")
    return value


def decode_threads() -> int:
    """Decode threads of a local extraction: ``$FEATX_DECODE_THREADS``, else one per core.

    Examples
    --------
    >>> decode_threads() >= 1
    True
    """
    return _from_env("FEATX_DECODE_THREADS", usable_cores())


def compute_threads() -> int:
    """Threads of the backbone's forward on ONNX Runtime: the ``threads`` setting
    (:func:`featx.config_context`), else ``$FEATX_COMPUTE_THREADS``, else one per core.

    Examples
    --------
    >>> compute_threads() >= 1
    True
    """
    value = get_config("threads")
    if isinstance(value, int):  # set with config_context (checked there)
        return value
    return _from_env("FEATX_COMPUTE_THREADS", usable_cores())


def blas_threads() -> int:
    """BLAS / OpenMP threads of one head fit: ``$FEATX_BLAS_THREADS``, else 1.

    Examples
    --------
    >>> import os
    >>> os.environ["FEATX_BLAS_THREADS"] = "2"
    >>> blas_threads()
    2
    >>> del os.environ["FEATX_BLAS_THREADS"]
    >>> blas_threads()
    1
    """
    return _from_env("FEATX_BLAS_THREADS", 1)


@contextlib.contextmanager
def blas_limit(threads: int | None = None) -> Iterator[None]:
    """Limit BLAS and OpenMP to ``threads`` (default :func:`blas_threads`) for the block.

    Uses threadpoolctl, which finds the BLAS (OpenBLAS, MKL, BLIS) and OpenMP libraries NumPy,
    SciPy and scikit-learn loaded and restores their settings afterwards.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_limit(1):
    ...     float(np.ones((64, 64)) @ np.ones(64) @ np.ones(64))
    4096.0
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=blas_threads() if threads is None else int(threads)):
        yield
