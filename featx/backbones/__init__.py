"""Backbones: a registry table of frozen ImageNet CNNs and the code that builds them.

Each registered backbone is a :class:`BackboneSpec` row (see ``docs/backbones.md``, generated from
the table by :func:`describe`). :func:`load_backbone` returns a Keras model mapping RGB images in
[0, 255] to feature vectors; :func:`build_base` and :func:`preprocessing_layer` are its two halves.

The table half (the registry, :func:`describe`, the weights checks, the ``.pth`` reader's errors)
imports no Keras, numpy or HDF5, so the command line checks a backbone name at once. The Keras
half (:func:`load_backbone`, :func:`build_base`, :func:`preprocessing_layer`, :func:`block_outputs`,
:class:`Preprocess`, :data:`PREPROCESSING`) is imported on first use, through
:func:`featx.utils.progress.quiet_tensorflow` so TensorFlow's start-up lines stay quiet; when
Keras is already imported, it is imported at once (its layers are registered for
``keras.saving``).
"""

import sys
from typing import TYPE_CHECKING

from featx.backbones._check import check_weights, random_weights
from featx.backbones._describe import describe
from featx.backbones._registry import (
    POOLINGS,
    BackboneSpec,
    get_backbone_spec,
    list_backbones,
    resolve_input_size,
)
from featx.errors import (
    CheckpointError,
    DamagedWeightsError,
    WeightsCacheWarning,
    WeightsDownloadError,
    WeightsFileNotFoundError,
)
from featx.utils.lazy import lazy_names

# name -> the private module that defines it, imported on first use: the weights' fingerprint
# reads files through the sealed store (numpy, HDF5); the others import Keras
_KERAS_PARTS = {
    "weights_fingerprint": "_weights",
    "block_outputs": "_load",
    "build_base": "_load",
    "load_backbone": "_load",
    "preprocessing_layer": "_load",
    "PREPROCESSING": "_preprocess",
    "Preprocess": "_preprocess",
}

__all__ = [
    "POOLINGS",
    "PREPROCESSING",
    "BackboneSpec",
    "CheckpointError",
    "DamagedWeightsError",
    "Preprocess",
    "WeightsCacheWarning",
    "WeightsDownloadError",
    "WeightsFileNotFoundError",
    "block_outputs",
    "build_base",
    "check_weights",
    "describe",
    "get_backbone_spec",
    "list_backbones",
    "load_backbone",
    "preprocessing_layer",
    "random_weights",
    "resolve_input_size",
    "weights_fingerprint",
]

__getattr__, __dir__ = lazy_names(__name__, _KERAS_PARTS, __all__)


if "keras" in sys.modules:  # Keras is here already: register featx's layers with it now
    __getattr__("Preprocess")

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from featx.backbones._describe import describe
    from featx.backbones._load import (
        block_outputs,
        build_base,
        load_backbone,
        preprocessing_layer,
    )
    from featx.backbones._preprocess import PREPROCESSING, Preprocess
    from featx.backbones._weights import weights_fingerprint
