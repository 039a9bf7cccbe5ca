"""The Keras runtime every stage builds models under: the device, the dtype policy, the seed.

One meaning of ``mixed_precision`` for extraction and fine-tuning alike (:func:`resolve_precision`),
one context manager that sets the dtype policy for a block and restores it (:func:`dtype_policy`),
and one that seeds Keras, Python and NumPy for a block and gives Python's and NumPy's global random
states back afterwards (:func:`seeded`): nothing a featx call does leaks into the caller's process.
Keras is imported when a function runs, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np

__all__ = ["PRECISIONS", "dtype_policy", "has_gpu", "resolve_precision", "seeded"]

#: Accepted ``mixed_precision`` values: a policy name, ``"auto"`` (mixed float16 on a GPU, else
#: float32), ``True`` (mixed: float16 on a GPU, bfloat16 on a CPU), or ``None``/``False``
#: (float32).
PRECISIONS = ("auto", "mixed_float16", "mixed_bfloat16", "float32", True, None, False)


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - a broken GPU runtime means no GPU
        return False
    return False


def resolve_precision(mixed_precision) -> str:
    """The Keras dtype policy name a ``mixed_precision`` value means on this machine.

    Examples
    --------
    >>> resolve_precision(False), resolve_precision("mixed_bfloat16")
    ('float32', 'mixed_bfloat16')
    """
    # Bools and None by identity: `1 in PRECISIONS` would hold (1 == True).
    if not (any(mixed_precision is p for p in (True, False, None))
            or isinstance(mixed_precision, str) and mixed_precision in PRECISIONS):
        raise ValueError(f"mixed_precision must be one of {list(PRECISIONS)}, "
                         f"got {mixed_precision!r}")
    if mixed_precision is True:
        return "mixed_float16" if has_gpu() else "mixed_bfloat16"
    if mixed_precision == "auto":
        return "mixed_float16" if has_gpu() else "float32"
    return mixed_precision or "float32"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Set the global Keras dtype policy for the block only (layers keep the one they were built
    with), restoring the previous policy even on error."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed Keras, Python and NumPy (``keras.utils.set_random_seed``) for the block, then restore
    Python's and NumPy's global random states; ``seed=None`` does nothing.

    Keras' own seed generator stays seeded (backends offer no way to read it back), so a later
    unseeded Keras initialiser is deterministic too; everything else is as the caller left it.

    Examples
    --------
    >>> state = np.random.get_state()[1][:3].copy()
    >>> with seeded(0):
    ...     _ = np.random.rand()
    >>> bool((np.random.get_state()[1][:3] == state).all())
    True
    """
    if seed is None:
        yield
        return
    import keras

    py_state, np_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(int(seed))
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
