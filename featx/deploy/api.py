"""``featx.export``: a fitted classifier as one file for a runtime without featx."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from featx.deploy.formats import (
    FORMATS,
    ExportError,
    check_format,
    labels_text,
    output_paths,
    require_modules,
)
from featx.trust.outputs import check_outputs, staged, write_output
from featx.trust.store import artifacts_under

__all__ = ["export", "formats_for"]


def formats_for(exp) -> list[str]:
    """The formats an :class:`~featx.deploy.graphs.Exportable` can be written in."""
    return [name for name, spec in FORMATS.items() if not spec.keras_graph or exp.head is None]


def export(model: Any, path: str | os.PathLike, format: str = "onnx") -> Path:
    """Write a fitted featx classifier as one file that runs without featx.

    The file takes ``uint8`` RGB images ``(N, H, W, 3)`` already resized to the model's input
    size (``H, W``: the backbone's input size; resize as featx does, e.g.
    ``featx.read_image(path, (H, W))``) and returns class probabilities (``scores``:
    ``decision_function`` for heads without ``predict_proba``); the ONNX graph also returns
    ``label``, the class values ``predict`` returns. See ``docs/export.md``.

    Parameters
    ----------
    model : TransferClassifier or FineTunedClassifier
        A fitted model (e.g. from :func:`featx.load`).
    path : path-like
        The file to write (a directory for ``saved_model``). An earlier export featx wrote
        there is replaced atomically; anything else there (a user's file or folder, or an
        export edited since) is refused before any work and left as it is (see "What featx
        writes" in ``docs/export.md``). Its suffix is not checked (``.onnx``, ``.tflite``,
        ``.keras`` by convention; Keras needs ``.keras`` for the ``keras`` format).
    format : {"onnx", "litert", "keras", "saved_model"}, default="onnx"
        A row of :data:`featx.deploy.FORMATS`. A :class:`~featx.estimators.TransferClassifier`
        exports to every format when its head is linear (``logreg``, ``linear_svm``: folded
        into one Dense layer), to ``onnx`` only otherwise (the head through skl2onnx).

    Returns
    -------
    pathlib.Path
        ``path``. Formats other than ONNX also write the class names, one per line in output
        column order, to ``<path>.labels.txt`` (``<path>/labels.txt`` for ``saved_model``).

    Raises
    ------
    OutputExistsError
        If ``path`` (or its labels file) holds something featx did not write; the message
        names it. A :class:`FileExistsError`.
    ExportError
        If the model cannot be written in ``format``; the message names the formats that work.
    ValueError
        For an unknown ``format``, or extractor parameters changed since the model was fitted.
    ModuleNotFoundError
        If the format needs a package that is not installed (the message says what to install).

    Examples
    --------
    The formats (``docs/export.md`` runs a whole round trip):

    >>> from featx.deploy import FORMATS
    >>> [(name, spec.suffix) for name, spec in FORMATS.items()]
    [('onnx', '.onnx'), ('litert', '.tflite'), ('keras', '.keras'), ('saved_model', '')]

    A fitted model to ONNX, then onnxruntime alone:

    >>> import featx, numpy as np, onnxruntime  # doctest: +SKIP
    >>> clf = featx.TransferClassifier("mobilenet_v2", weights=None, input_size=32)
    ... # doctest: +SKIP
    >>> clf = clf.fit(featx.load_clothing_mini()["train"])  # doctest: +SKIP
    >>> path = featx.export(clf, "clothing.onnx")  # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession(path)  # doctest: +SKIP
    >>> label, proba = session.run(None, {"image": np.zeros((1, 32, 32, 3), np.uint8)})
    ... # doctest: +SKIP
    """
    from featx.deploy.graphs import exportable

    spec = check_format(format)
    require_modules(spec)
    path = Path(path)
    paths = output_paths(spec, path)  # the model, and its labels file beside it if any
    check_outputs(paths, param="path")  # before any export work
    # the backbone's cached graph and weights are the model's own cache's (none: cache=False)
    with artifacts_under(_cache_of(model)):
        exp = exportable(model)
        if spec.keras_graph and exp.head is not None:
            raise ExportError(
                f"format={format!r} needs the whole model as one Keras graph, but "
                f"{exp.why_not_keras}; formats that work for this model: "
                f"{', '.join(formats_for(exp))} (or refit with a linear head: logreg, "
                "linear_svm)")
        with staged(path, param="path") as tmp:
            spec.write(exp, tmp)
    for labels in paths[1:]:
        write_output(labels, labels_text(exp.classes), param="path")
    return path


def _cache_of(model: Any):
    """The feature cache a featx estimator names (``None``: the ``cache_dir`` setting)."""
    cache = getattr(model, "cache", None)
    return cache if cache is None or isinstance(cache, bool | str | os.PathLike) else None
