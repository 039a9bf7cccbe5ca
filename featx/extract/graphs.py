"""The ONNX graph of a backbone configuration: written once, cached beside the converted
weights, run by ONNX Runtime.

featx writes the graph itself from the Keras layers (:mod:`featx.extract.onnx_writer`): Keras'
own ``model.export(format="onnx")`` (tf2onnx) took ~13 s per configuration for
EfficientNet-Lite2, most of a cold extraction's fixed cost, where the writer takes well under a
second. A model holding a layer the writer does not translate goes through Keras' exporter, as
before. Either graph computes what the Keras model computes (features agree within ~2e-6
relative; the ``runtime="onnxruntime"`` tests check rtol 1e-4 on real photos). It is keyed by
everything that changes it (:data:`GRAPH_FIELDS`, the Keras version and which exporter wrote it:
``featx-<version>`` or ``keras``) and kept in the sealed-artifact store
(:mod:`featx.trust.store`): written atomically under a lock, so concurrent processes export it
once, and sealed with that key, so a graph edited, truncated or copied from another
configuration is moved aside and exported again, never run. Once it exists, an extraction on
ONNX Runtime builds no Keras model at all. Under ``cache=False`` the graph lives in a temporary
folder removed once ONNX Runtime has loaded it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from unittest import mock

import numpy as np

from featx.backbones import check_weights
from featx.errors import CacheWriteError, GraphExportError
from featx.extract.config import GRAPH_FIELDS, ExtractorConfig
from featx.extract.onnx_writer import WRITER, UnsupportedGraphError, model_to_onnx
from featx.trust.store import artifact_root, open_artifact, persistent, write_artifact
from featx.utils.runtime import dtype_policy, seeded

__all__ = ["EXPORTERS", "ONNX_OPSET", "GraphExportError", "OnnxBackbone", "build_keras",
           "export_onnx", "graph_file", "graph_key", "graph_path", "onnx_graph"]

#: The ONNX opset of every graph featx exports from Keras (the forward's and ``featx export``'s,
#: which reuses the forward's backbone graph: they must agree to be merged with a head).
ONNX_OPSET = 17

#: What writes a graph, first tried first: featx's writer (:mod:`featx.extract.onnx_writer`),
#: then Keras' exporter for a model the writer declines. Part of the graph's key.
EXPORTERS = (WRITER, "keras")


def build_keras(config: ExtractorConfig):
    """The Keras backbone an extractor ``config`` describes (random weights drawn under seed 0,
    so the same configuration gives the same model in every process)."""
    # load_backbone imports Keras: only when a Keras model is needed
    from featx.backbones import load_backbone
    from featx.utils.runtime import resolve_precision

    weights = check_weights(config["weights"])
    pooling = None if config["pooling"] == "none" else config["pooling"]
    precision = resolve_precision(bool(config.get("mixed_precision", False)))
    with dtype_policy(precision), seeded(0 if weights is None else None):
        return load_backbone(config["backbone"], weights=weights,
                             input_size=tuple(config["input_size"]), pooling=pooling,
                             layers=json.loads(config["layers"]))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def graph_key(config: ExtractorConfig, exporter: str = WRITER) -> str:
    """The SHA-256 (hex) of everything that changes the graph of ``config``: its graph fields
    (:data:`featx.extract.config.GRAPH_FIELDS`), the opset, the Keras version and the
    ``exporter`` that writes it (one of :data:`EXPORTERS`). A cached graph's seal names it.

    Examples
    --------
    >>> c = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    >>> graph_key(c) == graph_key(c, "keras")
    False
    """
    material = {k: config.get(k) for k in GRAPH_FIELDS}
    material["keras"] = _version("keras")
    material["opset"] = ONNX_OPSET
    material["exporter"] = exporter
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def graph_path(config: ExtractorConfig, root: str | os.PathLike | None = None,
               exporter: str = WRITER) -> Path:
    """Where the graph of ``config`` written by ``exporter`` is cached:
    ``<cache>/weights/onnx/<backbone>-<key>.onnx`` (beside the converted weights), ``<key>`` the
    first 16 hex digits of :func:`graph_key`; ``<cache>`` is ``root``, else the extraction's
    cache (:func:`featx.trust.store.artifact_root`).

    Examples
    --------
    >>> c = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    >>> p = graph_path(c, "/tmp/c")
    >>> p.parent.as_posix(), p.name.startswith("mobilenet_v2-32-")
    ('/tmp/c/weights/onnx', True)
    >>> graph_path(c.replace(resize="crop"), "/tmp/c") == p  # not a graph field
    True
    """
    h, w = config["input_size"]
    size = f"{h}" if h == w else f"{h}x{w}"
    folder = (Path(root) if root is not None else artifact_root()) / "weights" / "onnx"
    return folder / f"{config['backbone']}-{size}-{graph_key(config, exporter)[:16]}.onnx"


def _check_graph(path: Path) -> None:
    """Refuse a graph ONNX Runtime cannot run on images alone: one with ops tf2onnx could not
    convert (ConvNeXt's GELU: ``Erfc``), or one that needs more inputs than the image (tf2onnx
    leaves some constants of Keras' ``Normalization`` layer as graph inputs, as in the
    keras.applications EfficientNet rows with random weights)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's own error types
        raise ValueError(f"ONNX Runtime cannot load the exported graph: "
                         f"{str(exc).splitlines()[0][:300]}") from exc
    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise ValueError(f"the exported graph needs {len(inputs)} inputs, not just the image: "
                         f"{inputs[1:3]}")


def export_onnx(model, target: str | os.PathLike, opset: int = ONNX_OPSET) -> Path:
    """Keras' own ``model.export(format="onnx")`` of a built ``model``, written to ``target``
    atomically (a temporary name, then ``os.replace``): the forward's backbone graphs for models
    featx's writer declines (:func:`onnx_graph`), and ``featx export``'s Keras parts that are no
    forward graph (a fine-tuned network), come from here.

    Raises whatever Keras' exporter (tf2onnx) raises; the caller names the model.
    """
    target = Path(target)
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    try:
        # tf2onnx sets TF_CPP_MIN_LOG_LEVEL when imported and when called, and Keras' shim
        # probes np.object: the export leaves the caller's environment and warnings as they were
        with warnings.catch_warnings(), mock.patch.dict(os.environ):
            warnings.simplefilter("ignore")
            model.export(str(tmp), format="onnx", opset_version=int(opset), verbose=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _call(model):
    """``model``, called once (Keras exports called models only)."""
    h, w = model.inputs[0].shape[1:3]
    model.predict_on_batch(np.zeros((1, h, w, 3), np.float32))
    return model


def _export_checked(model, target: Path) -> None:
    export_onnx(model, target)
    _check_graph(target)


def _writer(model) -> tuple[str, Callable[[Path], None]]:
    """``(exporter, write)``: which of :data:`EXPORTERS` writes ``model``'s graph, and
    ``write(target)``, which writes it and checks ONNX Runtime runs it. featx's writer when it
    translates every layer of ``model`` (the graph is built here, in memory), else Keras'."""
    try:
        proto = model_to_onnx(model, ONNX_OPSET)
    except UnsupportedGraphError:
        return "keras", lambda target: _export_checked(_call(model), target)

    def write(target: Path) -> None:
        import onnx

        onnx.save(proto, str(target))
        _check_graph(target)

    return WRITER, write


def _export_error(config: ExtractorConfig, exc: BaseException) -> GraphExportError:
    return GraphExportError(
        f"Keras could not export backbone {config['backbone']!r} to ONNX "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
        "use runtime='keras'")


def onnx_graph(config: ExtractorConfig, root: str | os.PathLike | None = None) -> Path:
    """The cached ONNX graph of ``config``, written the first time (under a lock, so concurrent
    processes write it once) by featx's writer, or by Keras' exporter for a model the writer
    declines, and sealed with :func:`graph_key` of that exporter. A cached graph that fails its
    seal (edited, truncated, another configuration's) is moved aside with a
    :class:`~featx.cache.DamagedCacheWarning` and written again.

    Raises
    ------
    GraphExportError
        When Keras cannot export this backbone (the message says why); the Keras runtime still
        runs it.
    featx.cache.CacheWriteError
        When the disk refuses the graph (full, file-size limit, read-only).
    """
    import filelock

    paths = {e: (graph_path(config, root, e), graph_key(config, e)) for e in EXPORTERS}
    first = paths[EXPORTERS[0]][0]
    first.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(first) + ".lock"):  # one lock per configuration
        for target, key in paths.values():
            if open_artifact(target, key) is not None:
                return target
        try:
            model = build_keras(config)
            exporter, write = _writer(model)
            target, key = paths[exporter]
            # the float32 weights plus room: reserved before the export writes a byte
            size = 2 * 4 * int(model.count_params()) + (4 << 20)
            write_artifact(target, key, write, size=size, kind="ONNX graph",
                           meta={"exporter": exporter})
        except CacheWriteError:
            raise
        except Exception as exc:  # tf2onnx raises many kinds: one error that names the backbone
            raise _export_error(config, exc) from exc
    return target


@contextlib.contextmanager
def graph_file(config: ExtractorConfig, root: str | os.PathLike | None = None
               ) -> Iterator[Path]:
    """The ONNX graph of ``config`` as a file for the duration of the block: the cached one
    (:func:`onnx_graph`), or, where nothing may stay on disk (``cache=False``:
    :func:`featx.trust.store.nothing_on_disk`), one written into a temporary folder (by the
    same exporter) that is removed after the block."""
    if persistent():
        yield onnx_graph(config, root)
        return
    with tempfile.TemporaryDirectory(prefix="featx-graph-") as tmp:
        try:
            exporter, write = _writer(build_keras(config))
            target = Path(tmp) / graph_path(config, tmp, exporter).name
            write(target)
        except Exception as exc:  # noqa: BLE001 - tf2onnx raises many kinds
            raise _export_error(config, exc) from exc
        yield target


class OnnxBackbone:
    """A backbone graph on ONNX Runtime with the one method :class:`BatchRunner` calls.

    Parameters
    ----------
    path : path
        The ``.onnx`` file (see :func:`onnx_graph`).
    threads : int
        ONNX Runtime's intra-op threads (the compute share of the thread budget).
    """

    def __init__(self, path: str | os.PathLike, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # no per-node placement warnings on stderr
        # Idle intra-op threads sleep instead of spin-waiting, handing their core to a decode
        # thread at once (docs/runtime.md measures both).
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         os.environ.get("FEATX_ORT_SPIN", "0"))
        self.path, self.threads = Path(path), int(threads)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.n_outputs = len(self.session.get_outputs())

    def predict_on_batch(self, images: np.ndarray):
        # the graph's input is float32 (Keras' input layer); the cast is a cheap host pass
        out = self.session.run(None, {self.input_name: np.asarray(images, np.float32)})
        return out[0] if self.n_outputs == 1 else out
