"""Backbone forward passes at a fixed batch shape, on a runtime, with the process-wide pass counter.

The frozen forward runs on one of :data:`RUNTIMES`: ONNX Runtime (the Keras model's ONNX graph,
see :mod:`featx.extract.graphs`) on a CPU, Keras elsewhere; ``"auto"`` picks
(:func:`resolve_runtime`).
Every batch is padded to ``batch_size`` rows so a compiled predict function is traced once per
configuration; the padding rows are dropped from the output. On Keras, ``predict_on_batch`` runs
the backend's compiled predict step (``tf.function`` on TensorFlow, ``jax.jit`` on JAX);
``docs/runtime.md`` and ``docs/benchmarks.md`` have the measurements behind these choices.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from featx.extract.graphs import GraphExportError, OnnxBackbone, build_keras, graph_file
from featx.trust.store import persistent, set_aside
from featx.utils.checks import check_choice
from featx.utils.config import get_config
from featx.utils.registry import Registry
from featx.utils.runtime import has_gpu, resolve_precision
from featx.utils.threads import compute_threads

__all__ = ["MODELS", "RUNTIMES", "RUNTIME_CHOICES", "BatchRunner", "ModelCache", "Runtime",
           "add_count", "check_runtime", "forward_pass_count", "get_model", "has_gpu",
           "resolve_runtime", "uncounted"]


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
    if not _UNCOUNTED.get():
        _PASSES.add(n)


_UNCOUNTED: contextvars.ContextVar[bool] = contextvars.ContextVar("featx_uncounted",
                                                                  default=False)


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Passes in this block are not images of a dataset (a speed measurement on random pixels):
    :func:`forward_pass_count` leaves them out."""
    token = _UNCOUNTED.set(True)
    try:
        yield
    finally:
        _UNCOUNTED.reset(token)


class Runtime(NamedTuple):
    """One row of :data:`RUNTIMES`: what runs the frozen forward."""

    build: Callable[[dict], object]  # extractor config -> object with predict_on_batch
    available: Callable[[], bool]
    doc: str


def _build_onnx(config: dict) -> OnnxBackbone:
    """The config's graph on ONNX Runtime (written the first time). A sealed graph
    ONNX Runtime still cannot load is moved aside and exported once more."""
    with graph_file(config) as path:
        try:
            return OnnxBackbone(path, compute_threads())
        except Exception as exc:  # ONNX Runtime's own error types
            if not persistent():
                raise
            set_aside(path, f"ONNX Runtime cannot load it: {str(exc).splitlines()[0][:200]}")
    with graph_file(config) as path:
        return OnnxBackbone(path, compute_threads())


def _onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


#: Runtime name -> how it builds the forward. ``"auto"`` (see :func:`resolve_runtime`) picks one.
RUNTIMES: Registry[Runtime] = Registry("runtime", {
    "keras": Runtime(build_keras, lambda: True,
                     "Keras on its backend (TensorFlow or JAX), on a GPU when there is one"),
    "onnxruntime": Runtime(_build_onnx, _onnxruntime_installed,
                           "the Keras model's ONNX graph, on ONNX Runtime's CPU provider: "
                           "about 1.5-2.7x the Keras forward on a CPU"),
})
RUNTIME_CHOICES = ("auto", *RUNTIMES)


def check_runtime(runtime: str | None) -> str:
    """``runtime``, or the ``runtime`` setting for ``None`` (:func:`featx.config_context`, else
    ``$FEATX_RUNTIME``, else ``"auto"``), checked against :data:`RUNTIME_CHOICES` (without
    looking for a GPU: this loads no backend).

    Examples
    --------
    >>> from featx.utils.config import config_context
    >>> with config_context(runtime="keras"):
    ...     check_runtime(None)
    'keras'
    """
    if runtime is None:
        runtime = get_config("runtime")
    return check_choice("runtime", runtime, RUNTIME_CHOICES)


def resolve_runtime(runtime: str | None = None, config: dict | None = None) -> str:
    """The runtime a ``runtime`` argument means here.

    ``None`` reads the ``runtime`` setting (:func:`featx.config_context`, else
    ``$FEATX_RUNTIME``, else ``"auto"``). ``"auto"`` is ONNX Runtime on a CPU
    when it is installed and the configuration is plain float32, else Keras (a GPU, or mixed
    precision). Features agree across runtimes within ~2e-6 relative (as across batch sizes), so
    the runtime is not part of the cache key.

    Examples
    --------
    >>> resolve_runtime("keras")
    'keras'
    >>> resolve_runtime("tpu")
    Traceback (most recent call last):
    ...
    ValueError: runtime must be one of ['auto', 'keras', 'onnxruntime'], got 'tpu'
    """
    runtime = check_runtime(runtime)
    mixed = config is not None and resolve_precision(
        bool(config.get("mixed_precision", False))) != "float32"
    if runtime == "auto":
        fast = RUNTIMES["onnxruntime"].available() and not mixed
        return "onnxruntime" if fast and not has_gpu() else "keras"
    if runtime == "onnxruntime":
        if not RUNTIMES["onnxruntime"].available():
            raise ImportError("runtime='onnxruntime' needs ONNX Runtime: pip install onnxruntime")
        if mixed:
            raise ValueError("runtime='onnxruntime' runs float32 graphs; mixed_precision=True "
                             "needs runtime='keras' (or 'auto')")
    return runtime


class ModelCache:
    """The backbones built in this process, most recently used last, at most ``max_models``.

    Building a backbone costs seconds; every extraction of the same configuration in a process
    reuses it. :data:`MODELS` is the process's cache: ``MODELS.clear()`` frees the models (a
    benchmark timing cold starts does), ``MODELS.max_models`` bounds the memory they hold.
    """

    def __init__(self, max_models: int = 2) -> None:
        self.max_models = max_models
        self._models: OrderedDict = OrderedDict()
        # configuration key -> why Keras could not export it: a failed export (a model build and
        # a trace, 10-30 s on 2 cores) is not tried again in this process
        self._unexportable: dict[str, str] = {}
        self._warned: set[str] = set()  # keys whose fall-back to Keras was announced

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> None:
        self._models.clear()
        self._unexportable.clear()
        self._warned.clear()

    def keys(self) -> list[tuple[str, str]]:
        """``(configuration key, runtime)`` of the models held, least recently used first."""
        return list(self._models)

    def get(self, config: dict, runtime: str | None = None):
        """Build (or reuse) the backbone described by an extractor ``config`` on ``runtime``
        (see :func:`resolve_runtime`). Under ``"auto"``, a backbone Keras cannot export to ONNX
        runs on Keras, after one :class:`RuntimeWarning`; asked for ``"onnxruntime"``, it raises
        :class:`~featx.extract.graphs.GraphExportError` (without exporting again)."""
        name = resolve_runtime(runtime, config)
        auto = check_runtime(runtime) == "auto"
        failed = self._unexportable.get(config["key"])
        if name == "onnxruntime" and failed is not None:
            if not auto:
                raise GraphExportError(failed)
            return self._on_keras(config, failed)
        key = (config["key"], name)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        try:
            model = RUNTIMES[name].build(config)
        except GraphExportError as exc:
            self._unexportable[config["key"]] = str(exc)
            if not auto:
                raise
            return self._on_keras(config, str(exc))
        self._models[key] = model
        while len(self._models) > self.max_models:
            self._models.popitem(last=False)
        return model

    def _on_keras(self, config: dict, why: str):
        """The Keras model of ``config``, which ONNX Runtime cannot run; announced once."""
        if config["key"] not in self._warned:
            self._warned.add(config["key"])
            warnings.warn(f"featx: {why}; running it on Keras", RuntimeWarning, stacklevel=4)
        return self.get(config, "keras")


#: The process's backbone cache (see :class:`ModelCache`).
MODELS = ModelCache()


def get_model(config: dict, runtime: str | None = None):
    """Build (or reuse, per process) the backbone described by an extractor ``config``, on
    ``runtime`` (see :func:`resolve_runtime`)."""
    return MODELS.get(config, runtime)


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
