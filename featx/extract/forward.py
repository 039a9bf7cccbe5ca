"""Backbone forward passes at a fixed batch shape, with the process-wide forward-pass counter.

Every batch is padded to ``batch_size`` rows so the compiled predict function is traced once per
configuration; the padding rows are dropped from the output. Keras' ``predict_on_batch`` is the
default on every backend (it runs the backend's compiled predict step: ``tf.function`` on
TensorFlow, ``jax.jit`` on JAX); ``docs/benchmarks.md`` has the measurements behind that choice.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

import numpy as np

from featx.backbones import check_weights
from featx.utils.runtime import dtype_policy, has_gpu, resolve_precision, seeded

__all__ = ["MODELS", "BatchRunner", "ModelCache", "add_count", "forward_pass_count", "get_model",
           "has_gpu"]


class _PassCounter:
    """Images sent through a backbone in this process (thread-safe)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.count += int(n)


# The one piece of process state extraction keeps besides MODELS: what tests and benchmarks read
# through forward_pass_count() to prove a step ran no backbone.
_PASSES = _PassCounter()


def forward_pass_count() -> int:
    """Images sent through a backbone in this process so far (padding rows not counted)."""
    return _PASSES.count


def add_count(n: int) -> None:
    """Count ``n`` images sent through a backbone (every engine reports its batches here)."""
    _PASSES.add(n)


class ModelCache:
    """The backbones built in this process, most recently used last, at most ``max_models``.

    Building a backbone costs seconds; every extraction of the same configuration in a process
    reuses it. :data:`MODELS` is the process's cache: ``MODELS.clear()`` frees the models (a
    benchmark timing cold starts does), ``MODELS.max_models`` bounds the memory they hold.
    """

    def __init__(self, max_models: int = 2) -> None:
        self.max_models = max_models
        self._models: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> None:
        self._models.clear()

    def get(self, config: dict):
        """Build (or reuse) the backbone described by an extractor ``config``."""
        # load_backbone imports Keras: only when a model is built, so a cache hit never does.
        from featx.backbones import load_backbone

        key = config["key"]
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        weights = check_weights(config["weights"])
        pooling = None if config["pooling"] == "none" else config["pooling"]
        # Random weights (weights=None) are drawn under a fixed seed, so the same configuration
        # gives the same features in every process (its cache key says "random").
        precision = resolve_precision(bool(config.get("mixed_precision", False)))
        with dtype_policy(precision), seeded(0 if weights is None else None):
            model = load_backbone(config["backbone"], weights=weights,
                                  input_size=tuple(config["input_size"]), pooling=pooling,
                                  layers=json.loads(config["layers"]))
        self._models[key] = model
        while len(self._models) > self.max_models:
            self._models.popitem(last=False)
        return model


#: The process's backbone cache (see :class:`ModelCache`).
MODELS = ModelCache()


def get_model(config: dict):
    """Build (or reuse, per process) the backbone described by an extractor ``config``."""
    return MODELS.get(config)


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
