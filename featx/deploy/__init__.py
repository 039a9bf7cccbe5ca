"""Deploy: a fitted classifier as one file that runs without featx (ONNX, LiteRT, Keras...).

:func:`export` (also ``featx.export`` and ``featx export MODEL --format ... --out FILE``) writes a
:class:`~featx.estimators.TransferClassifier` or :class:`~featx.finetune.FineTunedClassifier` as
one graph: ``uint8`` RGB images ``(N, H, W, 3)`` in, class probabilities (and, in ONNX, labels)
out. :data:`FORMATS` is the table of formats (:mod:`~featx.deploy.formats`, no Keras import);
:mod:`~featx.deploy.graphs` builds the Keras graphs (a linear head folded into one Dense layer),
:mod:`~featx.deploy.onnx_graph` the ONNX graph (Keras' own export, skl2onnx for other heads,
joined with ``onnx.compose``). See ``docs/export.md``.

The package is ``deploy``, not ``export``: a module named like the public function
``featx.export`` would replace it on the ``featx`` package once imported.
"""

from typing import TYPE_CHECKING

from featx.deploy.formats import FORMATS, ExportError, FormatSpec, check_format
from featx.utils.lazy import lazy_names

# name -> the module that defines it; importing any of them imports Keras (or ONNX)
_KERAS_PARTS = {"export": "api", "formats_for": "api", "exportable": "graphs"}

__all__ = ["FORMATS", "ExportError", "FormatSpec", "check_format", "export", "exportable",
           "formats_for"]

__getattr__, __dir__ = lazy_names(__name__, _KERAS_PARTS, __all__)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from featx.deploy.api import export, formats_for
    from featx.deploy.graphs import exportable
