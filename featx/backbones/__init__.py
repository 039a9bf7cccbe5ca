"""Backbones: a registry table of frozen ImageNet CNNs and the code that builds them.

Each registered backbone is a :class:`BackboneSpec` row (see ``docs/backbones.md``, generated from
the table by :func:`describe`). :func:`load_backbone` returns a Keras model mapping RGB images in
[0, 255] to feature vectors; :func:`build_base` and :func:`preprocessing_layer` are its two halves.
"""

from featx.backbones._describe import describe
from featx.backbones._load import block_outputs, build_base, load_backbone, preprocessing_layer
from featx.backbones._preprocess import PREPROCESSING, Preprocess
from featx.backbones._pth import CheckpointError
from featx.backbones._registry import (
    POOLINGS,
    BackboneSpec,
    get_backbone_spec,
    list_backbones,
    resolve_input_size,
)
from featx.backbones._weights import (
    DamagedWeightsError,
    WeightsCacheWarning,
    WeightsDownloadError,
    WeightsFileNotFoundError,
    check_weights,
    weights_fingerprint,
)

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
    "resolve_input_size",
    "weights_fingerprint",
]
