"""The export formats: one row per format, data only (no Keras import).

Each :class:`FormatSpec` row says what the file is, what runs it, which Python modules writing it
needs (and the pip command that installs them), and whether it needs the whole model as one Keras
graph (every format but ONNX: a head scikit-learn cannot express as Keras layers exports to ONNX
only, through skl2onnx).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from featx.errors import ExportError
from featx.utils.checks import check_choice

__all__ = ["FORMATS", "ExportError", "FormatSpec", "check_format", "require_modules"]


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
    """

    name: str
    suffix: str
    runs_in: str
    outputs: str
    modules: tuple[str, ...]
    install: str
    keras_graph: bool


_INSTALL = "pip install featx"
_ROWS = (
    FormatSpec("onnx", ".onnx", "onnxruntime (or any ONNX runtime with the ai.onnx.ml domain)",
               "`label` (class values) and `probabilities` (or `scores`)",
               ("onnx", "tf2onnx", "skl2onnx"), _INSTALL, keras_graph=False),
    FormatSpec("litert", ".tflite", "LiteRT (`ai_edge_litert.interpreter.Interpreter`)",
               "`probabilities` (or `scores`); class names in `<file>.labels.txt`",
               ("tensorflow", "ai_edge_litert"), "pip install 'featx[litert]'", keras_graph=True),
    FormatSpec("keras", ".keras", "Keras 3 (`keras.saving.load_model`)",
               "`probabilities` (or `scores`); class names in `<file>.labels.txt`",
               ("keras",), _INSTALL, keras_graph=True),
    FormatSpec("saved_model", "", "TensorFlow (`tf.saved_model.load(dir).serve`)",
               "`probabilities` (or `scores`); class names in `<dir>/labels.txt`",
               ("tensorflow",), _INSTALL, keras_graph=True),
)

#: The formats, by name (``featx export --format``).
FORMATS: Mapping[str, FormatSpec] = MappingProxyType({row.name: row for row in _ROWS})


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
    return FORMATS[check_choice("format", format, FORMATS)]


def require_modules(spec: FormatSpec) -> None:
    """Raise ``ModuleNotFoundError`` naming the pip command when a module ``spec`` needs is
    missing (checked without importing it)."""
    missing = [m for m in spec.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(
            f"format={spec.name!r} needs {', '.join(missing)}, which is not installed: "
            f"{spec.install}"
        )
