"""Backbone forward passes at a fixed batch shape, with the process-wide forward-pass counter.

Every batch is padded to ``batch_size`` rows so the compiled predict function is traced once per
configuration; the padding rows are dropped from the output. Keras' ``predict_on_batch`` is the
default on every backend (it runs the backend's compiled predict step: ``tf.function`` on
TensorFlow, ``jax.jit`` on JAX); ``docs/benchmarks.md`` has the measurements behind that choice.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["BatchRunner", "add_count", "forward_pass_count", "get_model", "has_gpu"]

_COUNT = 0
_COUNT_LOCK = threading.Lock()
_MODELS: OrderedDict = OrderedDict()
_MODELS_MAX = 2


def forward_pass_count() -> int:
    """Images sent through a backbone in this process so far (padding rows not counted)."""
    return _COUNT


def add_count(n: int) -> None:
    global _COUNT
    with _COUNT_LOCK:
        _COUNT += int(n)


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


@contextlib.contextmanager
def _dtype_policy(mixed: bool):
    import keras

    if not mixed:
        yield
        return
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if has_gpu() else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


@contextlib.contextmanager
def _seeded(active: bool, seed: int = 0):
    """Random weights (``weights=None``) are drawn under a fixed seed, so the same configuration
    gives the same features in every process (its cache key says ``"random"``). Python's and
    NumPy's global random states are restored afterwards; Keras' global seed is left reset."""
    if not active:
        yield
        return
    import random

    import keras

    py_state, np_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def get_model(config: dict):
    """Build (or reuse, per process) the backbone described by an extractor ``config``."""
    from featx.backbones import load_backbone

    key = config["key"]
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    weights = None if config["weights"] == "none" else config["weights"]
    pooling = None if config["pooling"] == "none" else config["pooling"]
    with _dtype_policy(config.get("mixed_precision", False)), _seeded(weights is None):
        model = load_backbone(config["backbone"], weights=weights,
                              input_size=tuple(config["input_size"]), pooling=pooling,
                              layers=json.loads(config["layers"]))
    _MODELS[key] = model
    while len(_MODELS) > _MODELS_MAX:
        _MODELS.popitem(last=False)
    return model


class BatchRunner:
    """Run ``model`` on ``uint8`` image batches, always at ``batch_size`` rows.

    Batches go to the backend in their own dtype (``uint8`` from the decoder): the model's input
    layer casts to float on the device, so a GPU receives a quarter of the bytes a float32 batch
    would need and the host does no conversion pass.

    Parameters
    ----------
    model : keras.Model
        Takes RGB 0-255 ``(N, h, w, 3)`` of any numeric dtype (featx backbones cast inside).
    batch_size : int
    out_dtype : str
        Dtype of the returned features.
    """

    def __init__(self, model, batch_size: int, out_dtype: str = "float32") -> None:
        self.model, self.batch_size, self.out_dtype = model, int(batch_size), out_dtype
        self._buf: np.ndarray | None = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        if n == 0:
            raise ValueError("BatchRunner needs at least one image")
        if n > self.batch_size:
            return np.concatenate([self(images[i : i + self.batch_size])
                                   for i in range(0, n, self.batch_size)])
        images = np.asarray(images)
        if (self._buf is None or self._buf.shape[1:] != images.shape[1:]
                or self._buf.dtype != images.dtype):
            self._buf = np.zeros((self.batch_size, *images.shape[1:]), images.dtype)
        self._buf[:n] = images  # rows past n keep an earlier batch's data; their output is dropped
        out = self.model.predict_on_batch(self._buf)
        if isinstance(out, list | tuple):  # several layers: concatenate their pooled features
            out = np.concatenate([np.asarray(o).reshape(len(o), -1) for o in out], axis=1)
        add_count(n)
        return np.asarray(out[:n], dtype=self.out_dtype)
