"""featx: a frozen pretrained CNN runs once, its features are cached in HDF5, and scikit-learn heads
fit on them in seconds; an optional stage fine-tunes the network and is compared side by side.

Public names are imported lazily, so ``import featx`` (and ``featx --version``) stays fast and does
not start Keras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from featx._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "ImageDataset": "featx.data",
    "ImageError": "featx._image",
    "read_image": "featx._image",
    "load_clothing_mini": "featx.datasets",
    "list_backbones": "featx.backbones",
    "load_backbone": "featx.backbones",
    "get_backbone_spec": "featx.backbones",
    "extract_features": "featx.extract",
    "FeatureSet": "featx.extract",
    "make_head": "featx.heads",
    "list_heads": "featx.heads",
    "evaluate_heads": "featx.evaluate",
    "FeatureExtractor": "featx.estimators",
    "TransferClassifier": "featx.estimators",
    "FineTunedClassifier": "featx.finetune",
    "compare": "featx.compare",
    "save": "featx.persist",
    "load": "featx.persist",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'featx' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from featx._image import ImageError, read_image
    from featx.backbones import get_backbone_spec, list_backbones, load_backbone
    from featx.compare import compare
    from featx.data import ImageDataset
    from featx.datasets import load_clothing_mini
    from featx.estimators import FeatureExtractor, TransferClassifier
    from featx.evaluate import evaluate_heads
    from featx.extract import FeatureSet, extract_features
    from featx.finetune import FineTunedClassifier
    from featx.heads import list_heads, make_head
    from featx.persist import load, save
