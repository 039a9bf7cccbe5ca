"""The export formats: one row per format, with its writer (the table imports no Keras).

Each :class:`FormatSpec` row says what the file is, what runs it, which Python modules writing it
needs (and the pip command that installs them), and whether it needs the whole model as one Keras
graph (every format but ONNX: a head scikit-learn cannot express as Keras layers exports to ONNX
only, through skl2onnx).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featx.errors import ExportError
from featx.utils.registry import Registry

__all__ = ["FORMATS", "ExportError", "FormatSpec", "check_format", "labels_file",
           "labels_text", "output_paths", "require_modules"]


@dataclass(frozen=True)
class FormatSpec:
    """One export format.

    Attributes
    ----------
    name : str
        The ``format=`` value (and ``featx export --format``).
    suffix : str
        Conventional file suffix (``""``: a directory).
    runs_in : str
        What runs the file, with neither featx nor Keras imported where possible.
    outputs : str
        What the file returns.
    modules : tuple of str
        Python modules writing it needs.
    install : str
        The pip command that installs them.
    keras_graph : bool
        The whole model must be one Keras graph (a linear head or a fine-tuned network).
    write : callable
        ``write(exportable, path)``: writes the file (importing what it needs then); a
        folder format writes its class names inside. :func:`featx.export` gives it a path in
        a staging folder (:mod:`featx.trust.outputs`), never the user's path itself.
    """

    name: str
    suffix: str
    runs_in: str
    outputs: str
    modules: tuple[str, ...]
    install: str
    keras_graph: bool
    write: Callable[[Any, Path], None] = field(repr=False, compare=False)


def labels_file(path: Path, fmt: str) -> Path:
    """Where the class names of an exported file go (formats without a place for them inside)."""
    return path / "labels.txt" if fmt == "saved_model" else path.with_name(path.name +
                                                                           ".labels.txt")


def output_paths(spec: FormatSpec, path: str | os.PathLike) -> list[Path]:
    """Every path an export in ``spec``'s format writes: the file (or folder) and, for the Keras
    file formats, which hold no class names, the labels file beside it (a folder holds its
    own; ONNX holds them in the graph).

    Examples
    --------
    >>> [p.name for p in output_paths(FORMATS["keras"], "out/m.keras")]
    ['m.keras', 'm.keras.labels.txt']
    >>> [p.name for p in output_paths(FORMATS["onnx"], "m.onnx")]
    ['m.onnx']
    """
    path = Path(path)
    beside = spec.keras_graph and spec.suffix != ""
    return [path, *([labels_file(path, spec.name)] if beside else [])]


def labels_text(classes) -> str:
    """The class names, one per line in output column order (the labels file's text)."""
    import numpy as np

    return "".join(f"{c}\n" for c in np.asarray(classes).tolist())


# -- the writers: each imports what it needs when it runs (the table itself imports no Keras) --

def _write_onnx(exp, path: Path) -> None:
    import onnx

    from featx.deploy.onnx_graph import build_onnx

    onnx.save(build_onnx(exp), os.fspath(path))


def _check_litert(path: Path, exp) -> None:
    """Open the written file in LiteRT and run one blank image: the file must run."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=os.fspath(path)).get_signature_runner()
    out = next(iter(runner(image=np.zeros((1, *exp.input_size, 3), np.uint8)).values()))
    if out.shape[0] != 1:
        raise RuntimeError(f"the LiteRT file {path} gave output shape {out.shape} for one image")


def _write_keras_export(fmt: str) -> Callable:
    keras_format = {"litert": "litert", "saved_model": "tf_saved_model"}[fmt]

    def write(exp, path: Path) -> None:
        exp.backbone.export(os.fspath(path), format=keras_format, verbose=False)
        if fmt == "litert":
            _check_litert(path, exp)
        else:  # a folder: its class names inside it (beside a file: featx.export writes them)
            labels_file(path, fmt).write_text(labels_text(exp.classes), encoding="utf-8")

    return write


def _write_keras(exp, path: Path) -> None:
    exp.backbone.save(os.fspath(path))




_INSTALL = "pip install featx"
_ROWS = (
    FormatSpec("onnx", ".onnx", "onnxruntime (or any ONNX runtime with the ai.onnx.ml domain)",
               "`label` (class values) and `probabilities` (or `scores`)",
               ("onnx", "tf2onnx", "skl2onnx"), _INSTALL, keras_graph=False, write=_write_onnx),
    FormatSpec("litert", ".tflite", "LiteRT (`ai_edge_litert.interpreter.Interpreter`)",
               "`probabilities` (or `scores`); class names in `<file>.labels.txt`",
               ("tensorflow", "ai_edge_litert"), "pip install 'featx[litert]'", keras_graph=True,
               write=_write_keras_export("litert")),
    FormatSpec("keras", ".keras", "Keras 3 (`keras.saving.load_model`)",
               "`probabilities` (or `scores`); class names in `<file>.labels.txt`",
               ("keras",), _INSTALL, keras_graph=True, write=_write_keras),
    FormatSpec("saved_model", "", "TensorFlow (`tf.saved_model.load(dir).serve`)",
               "`probabilities` (or `scores`); class names in `<dir>/labels.txt`",
               ("tensorflow",), _INSTALL, keras_graph=True,
               write=_write_keras_export("saved_model")),
)

#: The formats, by name (``featx export --format``), each with its writer.
FORMATS: Registry[FormatSpec] = Registry("format", {row.name: row for row in _ROWS})


def check_format(format: str) -> FormatSpec:
    """The row of ``format``; ``ValueError`` listing the formats otherwise.

    Examples
    --------
    >>> check_format("onnx").suffix
    '.onnx'
    >>> check_format("tf")
    Traceback (most recent call last):
    ...
    ValueError: format must be one of ['onnx', 'litert', 'keras', 'saved_model'], got 'tf'
    """
    return FORMATS.get(format)


def require_modules(spec: FormatSpec) -> None:
    """Raise ``ModuleNotFoundError`` naming the pip command when a module ``spec`` needs is
    missing (checked without importing it)."""
    missing = [m for m in spec.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(
            f"format={spec.name!r} needs {', '.join(missing)}, which is not installed: "
            f"{spec.install}"
        )
