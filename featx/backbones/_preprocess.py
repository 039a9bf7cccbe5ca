"""The preprocessing table: key -> how float RGB in [0, 255] becomes a backbone's input.

Every key is one affine map per channel, ``y = (x[..., order] - mean) / std``, so the table is data
and one serialisable layer, :class:`Preprocess`, implements all of it with ``keras.ops`` only.

====== ============================================= ==============================================
key    formula                                       keras.applications families
====== ============================================= ==============================================
tf     ``x / 127.5 - 1``                             Xception, ResNetV2, Inception*, MobileNet,
                                                     MobileNetV2, NASNet
torch  ``(x / 255 - ImageNet mean) / ImageNet std``  DenseNet
caffe  RGB -> BGR, then ``x - BGR ImageNet mean``    VGG16/19, ResNet (v1)
lite   ``(x - 127) / 128``                           EfficientNet-Lite (TF-Lite / TF-Hub release)
none   identity                                      EfficientNet, EfficientNetV2, ConvNeXt,
                                                     MobileNetV3: the model rescales inside itself
====== ============================================= ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

__all__ = ["PREPROCESSING", "Preprocess", "PreprocessSpec", "make_preprocessing"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class PreprocessSpec:
    """One row of the preprocessing table: ``y = (x[..., ::-1 if bgr] - mean) / std``.

    ``mean`` and ``std`` are per output channel, in pixel units of the 0-255 input.
    """

    key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    formula: str

    @property
    def is_identity(self) -> bool:
        return not self.bgr and self.mean == (0.0, 0.0, 0.0) and self.std == (1.0, 1.0, 1.0)


def _rows(*rows: PreprocessSpec) -> dict[str, PreprocessSpec]:
    return {r.key: r for r in rows}


PREPROCESSING: dict[str, PreprocessSpec] = _rows(
    PreprocessSpec("tf", (127.5,) * 3, (127.5,) * 3, False, "x / 127.5 - 1"),
    PreprocessSpec(
        "torch",
        tuple(255.0 * m for m in _IMAGENET_MEAN),
        tuple(255.0 * s for s in _IMAGENET_STD),
        False,
        "(x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]",
    ),
    PreprocessSpec("caffe", _CAFFE_MEAN_BGR, (1.0,) * 3, True,
                   "RGB->BGR, x - [103.939, 116.779, 123.68]"),
    PreprocessSpec("lite", (127.0,) * 3, (128.0,) * 3, False, "(x - 127) / 128"),
    PreprocessSpec("none", (0.0,) * 3, (1.0,) * 3, False, "identity (the model rescales inside)"),
)


@keras.saving.register_keras_serializable(package="featx")
class Preprocess(keras.layers.Layer):
    """Map RGB in [0, 255] (any numeric dtype) to a backbone's input, by preprocessing key.

    Parameters
    ----------
    mode : str
        A key of :data:`PREPROCESSING`: ``"tf"``, ``"torch"``, ``"caffe"``, ``"lite"`` or
        ``"none"``.
    **kwargs
        Passed to :class:`keras.layers.Layer` (``name``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Preprocess("tf")
    >>> np.asarray(layer(np.array([[[[0, 127.5, 255]]]], "float32"))).tolist()
    [[[[-1.0, 0.0, 1.0]]]]
    """

    def __init__(self, mode: str = "none", **kwargs):
        if mode not in PREPROCESSING:
            raise ValueError(
                f"Unknown preprocessing mode={mode!r}; allowed: {sorted(PREPROCESSING)}"
            )
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mode = mode
        self._spec = PREPROCESSING[mode]

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        spec = self._spec
        if spec.is_identity:
            return x
        if spec.bgr:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(spec.mean, dtype="float32")
        inv_std = ops.convert_to_tensor([1.0 / s for s in spec.std], dtype="float32")
        return (x - mean) * inv_std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config["mode"] = self.mode
        return config


def make_preprocessing(mode: str, name: str | None = "featx_preprocess") -> Preprocess:
    """Return a fresh :class:`Preprocess` layer for the key ``mode``."""
    return Preprocess(mode, name=name)
