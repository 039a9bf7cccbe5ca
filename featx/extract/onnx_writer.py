"""featx's own writer of a Keras functional model as an ONNX graph, for the layer kinds featx's
backbones hold (EfficientNet-Lite, MobileNet v1/v2, ResNet v1/v2, VGG, DenseNet, InceptionV3).

Keras' exporter (tf2onnx) traces the model in TensorFlow, then rewrites the trace: about 13 s
for EfficientNet-Lite2, most of a cold extraction's fixed cost. These models are plain chains of
a few layer kinds, so the graph is written here from the layers themselves in well under a
second: one ``Transpose`` from the NHWC image to NCHW, then one ONNX node per layer, with each
BatchNormalization folded (in float64) into the convolution before it, each ZeroPadding2D into
the convolution after it, and Keras' ``"same"`` padding written as explicit pads (TensorFlow's
rule: the odd pixel at the end). Outputs are named and shaped as Keras' exporter names and shapes
them (``Identity:0``; spatial maps back in NHWC).

A model holding anything else (another layer kind or option, a dtype policy other than float32,
a subclassed model) raises :class:`UnsupportedGraphError` before anything is written; the caller
(:mod:`featx.extract.graphs`) then runs Keras' exporter.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.errors import UnsupportedGraphError

__all__ = ["WRITER", "WRITER_VERSION", "UnsupportedGraphError", "model_to_onnx", "write_onnx"]

#: Bump when a change here changes the graphs written: their cache key (``exporter``) changes.
WRITER_VERSION = 1
#: The ``exporter`` field of the key of the graphs this module writes.
WRITER = f"featx-{WRITER_VERSION}"


# ----------------------------------------------------------------- walking the Keras graph
def _producer(tensor) -> tuple[object, list, list]:
    """``(operation, input tensors, output tensors)`` of the call that produced ``tensor``.

    Keras 3 has no public walk of a functional graph, so this reads two private attributes,
    here only: ``KerasTensor._keras_history`` (operation, node index, tensor index) and
    ``Operation._inbound_nodes`` (each call's ``Node``). A Keras release without them makes the
    writer decline (the caller falls back to Keras' exporter), never fail.
    """
    try:
        op, node_index, _ = tensor._keras_history
        node = op._inbound_nodes[node_index]
        inputs, outputs = list(node.input_tensors), list(node.output_tensors)
        kwargs = dict(node.arguments.kwargs)
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise UnsupportedGraphError(f"cannot walk the Keras graph ({exc})") from exc
    if any(v is not None for v in kwargs.values()):
        raise UnsupportedGraphError(f"{op.name} is called with options {sorted(kwargs)}")
    return op, inputs, outputs


def _is_functional(op) -> bool:
    import keras

    return isinstance(op, keras.Model) and type(op).__name__ == "Functional"


@dataclass
class _Step:
    layer: object
    ins: list[str]
    outs: list[str]
    in_shapes: list[tuple]
    out_shapes: list[tuple]


def _steps(model, in_names: Sequence[str], prefix: str, steps: list, taken: set) -> list[str]:
    """Append the layer calls of functional ``model`` (nested models inlined) to ``steps`` in
    an order where each comes after its inputs; returns the value names of its outputs."""
    if not _is_functional(model):
        raise UnsupportedGraphError(f"{model.name} is a {type(model).__name__}, not a "
                                    "functional model")
    names = {id(t): n for t, n in zip(model.inputs, in_names, strict=True)}
    stack = [(t, False) for t in reversed(model.outputs)]
    while stack:
        tensor, ready = stack.pop()
        if id(tensor) in names:
            continue
        op, inputs, outputs = _producer(tensor)
        if not ready:
            stack.append((tensor, True))
            stack.extend((t, False) for t in inputs if id(t) not in names)
            continue
        ins = [names[id(t)] for t in inputs]
        if _is_functional(op):
            outs = _steps(op, ins, f"{prefix}{op.name}/", steps, taken)
        else:
            outs = []
            for i in range(len(outputs)):
                name = f"{prefix}{op.name}" + (f":{i}" if i else "")
                while name in taken:
                    name += "_"
                taken.add(name)
                outs.append(name)
            steps.append(_Step(op, ins, outs, [tuple(t.shape) for t in inputs],
                               [tuple(t.shape) for t in outputs]))
        names.update((id(t), n) for t, n in zip(outputs, outs, strict=True))
    return [names[id(t)] for t in model.outputs]


# ----------------------------------------------------------------- the ONNX graph
def _numpy(variable) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(variable))


def _same_pads(size: int | None, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``"same"`` padding of one spatial axis: ``(before, after)``, the odd pixel
    after."""
    if size is None:
        raise UnsupportedGraphError("a spatial size unknown when the graph is written")
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(padding: str, shape: tuple, kernel: Sequence[int], strides: Sequence[int]) -> list:
    """ONNX ``pads`` ``[top, left, bottom, right]`` of a Keras ``padding`` on an NHWC
    ``shape``."""
    if padding == "valid":
        return [0, 0, 0, 0]
    if padding != "same":
        raise UnsupportedGraphError(f"padding={padding!r}")
    (t, b), (left, r) = (_same_pads(shape[1 + i], kernel[i], strides[i]) for i in range(2))
    return [t, left, b, r]


def _axis(axis: int, rank: int) -> int:
    """The NCHW axis of a Keras (NHWC) ``axis`` of a rank-``rank`` tensor."""
    axis = axis % rank
    return {0: 0, 1: 2, 2: 3, 3: 1}[axis] if rank == 4 else axis


class _Graph:
    """The ONNX nodes and constants, written step by step; every 4-d value is NCHW."""

    def __init__(self, steps: list[_Step], outputs: Sequence[str]) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list = []
        self.consts: dict[str, np.ndarray] = {}
        self.alias: dict[str, str] = {}  # a Keras value -> the ONNX value that holds it
        self.convs: dict[str, tuple[str, str]] = {}  # a conv's output -> its weight and bias
        self.pads: dict[str, tuple[str, list]] = {}  # a ZeroPadding2D folded into its conv
        self.uses = Counter(name for step in steps for name in step.ins)
        self.uses.update(outputs)
        self.consumer = {name: step for step in steps for name in step.ins}

    def value(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def const(self, name: str, array) -> str:
        self.consts[name] = np.asarray(array)
        return name

    def node(self, op: str, ins: Sequence[str], out: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op, list(ins), [out], name=out, **attrs))
        return out

    def activation(self, kind: str, x: str, out: str) -> None:
        if kind == "linear":
            self.alias[out] = x
        elif kind == "relu":
            self.node("Relu", [x], out)
        elif kind == "relu6":
            self.clip(x, out, 6.0)
        elif kind == "sigmoid":
            self.node("Sigmoid", [x], out)
        else:
            raise UnsupportedGraphError(f"activation {kind!r}")

    def clip(self, x: str, out: str, top: float) -> None:
        lo = self.const("writer/zero", np.float32(0.0))
        hi = self.const(f"writer/clip_{top:g}", np.float32(top))
        self.node("Clip", [x, lo, hi], out)


def _conv(g: _Graph, layer, step: _Step) -> None:
    import keras

    config = layer.get_config()
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    if config.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedGraphError(f"{layer.name}: data_format={config['data_format']!r}")
    if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
        raise UnsupportedGraphError(f"{layer.name}: dilation_rate={config['dilation_rate']}")
    if config.get("groups", 1) != 1 or config.get("lora_rank"):
        raise UnsupportedGraphError(f"{layer.name}: groups or LoRA")
    kernel = _numpy(layer.kernel).astype(np.float64)
    kh, kw = kernel.shape[:2]
    if depthwise:  # (kh, kw, C, m) -> (C*m, 1, kh, kw): output channel c*m + j, as TF
        c, m = kernel.shape[2:]
        weight = kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
        group = c
    else:  # (kh, kw, in, out) -> (out, in, kh, kw)
        weight, group = kernel.transpose(3, 2, 0, 1), 1
    bias = (_numpy(layer.bias).astype(np.float64) if config.get("use_bias", True)
            else np.zeros(weight.shape[0]))
    x, strides = step.ins[0], list(config["strides"])
    pads = _pads(config["padding"], step.in_shapes[0], (kh, kw), strides)
    if x in g.pads:  # a ZeroPadding2D before it: its pads join the conv's
        x, extra = g.pads[x]
        pads = [a + b for a, b in zip(pads, extra, strict=True)]
    activation = config.get("activation", "linear")
    out = step.outs[0] if activation == "linear" else f"{step.outs[0]}/conv"
    w, b = g.const(f"{out}/W", weight), g.const(f"{out}/B", bias)
    g.node("Conv", [g.value(x), w, b], out, kernel_shape=[kh, kw], strides=strides, pads=pads,
           group=group, dilations=[1, 1])
    if activation == "linear":
        g.convs[out] = (w, b)
    else:
        g.activation(activation, out, step.outs[0])


def _batch_norm(g: _Graph, layer, step: _Step) -> None:
    rank = len(step.in_shapes[0])
    axes = layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]
    if [a % rank for a in axes] != [rank - 1]:
        raise UnsupportedGraphError(f"{layer.name}: axis={layer.axis}")
    mean = _numpy(layer.moving_mean).astype(np.float64)
    gamma = _numpy(layer.gamma).astype(np.float64) if layer.scale else np.ones_like(mean)
    beta = _numpy(layer.beta).astype(np.float64) if layer.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(_numpy(layer.moving_variance).astype(np.float64) + layer.epsilon)
    shift = beta - mean * scale
    x, out = step.ins[0], step.outs[0]
    if x in g.convs and g.uses[x] == 1:  # folded into the conv that alone feeds it
        w, b = g.convs.pop(x)
        g.consts[w] = g.consts[w] * scale.reshape(-1, 1, 1, 1)
        g.consts[b] = g.consts[b] * scale + shift
        g.alias[out] = x
        return
    shape = (1, -1, 1, 1) if rank == 4 else (1, -1)
    s = g.const(f"{out}/scale", scale.reshape(shape))
    t = g.const(f"{out}/shift", shift.reshape(shape))
    g.node("Add", [g.node("Mul", [g.value(x), s], f"{out}/mul"), t], out)


def _zero_padding(g: _Graph, layer, step: _Step) -> None:
    import keras

    if layer.data_format != "channels_last":
        raise UnsupportedGraphError(f"{layer.name}: data_format={layer.data_format!r}")
    (t, b), (left, r) = layer.padding
    x, out = step.ins[0], step.outs[0]
    after = g.consumer.get(out)
    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    if g.uses[out] == 1 and after is not None and type(after.layer) in convs:
        g.pads[out] = (x, [t, left, b, r])  # the conv zero-pads the same way
        return
    pads = g.const(f"{out}/pads", np.array([0, 0, t, left, 0, 0, b, r], np.int64))
    g.node("Pad", [g.value(x), pads], out, mode="constant")


def _pool(g: _Graph, layer, step: _Step) -> None:
    import keras

    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedGraphError(f"{layer.name}: data_format={config['data_format']!r}")
    size = list(config["pool_size"])
    strides = list(config["strides"] or size)
    pads = _pads(config["padding"], step.in_shapes[0], size, strides)
    if isinstance(layer, keras.layers.MaxPooling2D):  # ONNX's pads never win a max, as TF's
        g.node("MaxPool", [g.value(step.ins[0])], step.outs[0], kernel_shape=size,
               strides=strides, pads=pads)
    else:  # TF averages over the pixels inside the image only
        g.node("AveragePool", [g.value(step.ins[0])], step.outs[0], kernel_shape=size,
               strides=strides, pads=pads, count_include_pad=0)


def _global_pool(g: _Graph, layer, step: _Step) -> None:
    import keras

    if layer.data_format != "channels_last":
        raise UnsupportedGraphError(f"{layer.name}: data_format={layer.data_format!r}")
    op = ("GlobalMaxPool" if isinstance(layer, keras.layers.GlobalMaxPooling2D)
          else "GlobalAveragePool")
    out = step.outs[0]
    if layer.keepdims:  # (N, C, 1, 1): Keras' (N, 1, 1, C) in this graph's NCHW
        g.node(op, [g.value(step.ins[0])], out)
    else:
        g.node("Flatten", [g.node(op, [g.value(step.ins[0])], f"{out}/pool")], out, axis=1)


def _activation(g: _Graph, layer, step: _Step) -> None:
    g.activation(layer.get_config()["activation"], g.value(step.ins[0]), step.outs[0])


def _relu(g: _Graph, layer, step: _Step) -> None:
    config = layer.get_config()
    if config.get("negative_slope") or config.get("threshold"):
        raise UnsupportedGraphError(f"{layer.name}: a leaky or thresholded ReLU")
    x, top = g.value(step.ins[0]), config.get("max_value")
    if top is None:
        g.node("Relu", [x], step.outs[0])
    else:
        g.clip(x, step.outs[0], float(top))


def _add(g: _Graph, layer, step: _Step) -> None:
    if len(set(step.in_shapes)) != 1:
        raise UnsupportedGraphError(f"{layer.name}: adds tensors of shapes {step.in_shapes}")
    total = g.value(step.ins[0])
    for i, name in enumerate(step.ins[1:], 1):
        last = i == len(step.ins) - 1
        total = g.node("Add", [total, g.value(name)], step.outs[0] if last else
                       f"{step.outs[0]}/{i}")


def _concatenate(g: _Graph, layer, step: _Step) -> None:
    rank = len(step.out_shapes[0])
    g.node("Concat", [g.value(n) for n in step.ins], step.outs[0],
           axis=_axis(layer.axis, rank))


def _preprocess(g: _Graph, layer, step: _Step) -> None:
    from featx.backbones import PREPROCESSING

    spec = PREPROCESSING[layer.mode]
    x, out = g.value(step.ins[0]), step.outs[0]
    if spec.is_identity:
        g.alias[out] = x
        return
    if spec.bgr:
        order = g.const(f"{out}/bgr", np.array([2, 1, 0], np.int64))
        x = g.node("Gather", [x, order], f"{out}/flip", axis=1)
    # as the layer computes it: (x - mean) * float32(1 / std), in float32
    mean = g.const(f"{out}/mean", np.array(spec.mean, np.float32).reshape(1, 3, 1, 1))
    inv = g.const(f"{out}/inv_std",
                  np.array([1.0 / s for s in spec.std], np.float32).reshape(1, 3, 1, 1))
    g.node("Mul", [g.node("Sub", [x, mean], f"{out}/sub"), inv], out)


def _handlers() -> dict[type, Callable[[_Graph, object, _Step], None]]:
    import keras
    from keras import layers

    from featx.backbones import Preprocess

    return {layers.Conv2D: _conv, layers.DepthwiseConv2D: _conv,
            layers.BatchNormalization: _batch_norm, layers.ZeroPadding2D: _zero_padding,
            layers.MaxPooling2D: _pool, layers.AveragePooling2D: _pool,
            layers.GlobalAveragePooling2D: _global_pool, layers.GlobalMaxPooling2D: _global_pool,
            layers.Activation: _activation, layers.ReLU: _relu, layers.Add: _add,
            layers.Concatenate: _concatenate, Preprocess: _preprocess,
            keras.layers.InputLayer: lambda g, layer, step: None}


def _check_dtype(layer) -> None:
    policy = getattr(getattr(layer, "dtype_policy", None), "name", None)
    if policy != "float32":
        raise UnsupportedGraphError(f"{layer.name}: dtype policy {policy!r}, not float32")


def model_to_onnx(model, opset: int):
    """``model`` (a Keras functional model taking one NHWC float32 image) as an ONNX
    ``ModelProto`` of opset ``opset``.

    Raises
    ------
    UnsupportedGraphError
        When ``model`` holds a layer kind, option or dtype the writer does not translate.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not _is_functional(model) or len(model.inputs) != 1:
        raise UnsupportedGraphError("not a functional model with one input")
    image = model.inputs[0]
    if len(image.shape) != 4 or image.shape[-1] != 3 or str(image.dtype) != "float32":
        raise UnsupportedGraphError(f"input {image.shape} {image.dtype}, not (N, h, w, 3) "
                                    "float32")
    steps: list[_Step] = []
    outputs = _steps(model, ["writer/nchw"], "", steps, {"writer/nchw"})
    handlers = _handlers()
    g = _Graph(steps, outputs)
    g.node("Transpose", [image.name], "writer/nchw", perm=[0, 3, 1, 2])
    for step in steps:
        handler = handlers.get(type(step.layer))
        if handler is None:
            raise UnsupportedGraphError(f"layer {step.layer.name} ({type(step.layer).__name__})")
        if len(step.outs) != 1 or any(len(s) not in (2, 4) for s in step.out_shapes):
            raise UnsupportedGraphError(f"{step.layer.name}: outputs {step.out_shapes}")
        _check_dtype(step.layer)
        handler(g, step.layer, step)
    out_infos = []
    for i, name in enumerate(outputs):
        keras_shape = tuple(model.outputs[i].shape)
        out = f"Identity_{i}:0" if i else "Identity:0"
        if len(keras_shape) == 4:  # back to Keras' NHWC
            g.node("Transpose", [g.value(name)], out, perm=[0, 2, 3, 1])
        else:
            g.node("Identity", [g.value(name)], out)
        out_infos.append(helper.make_tensor_value_info(
            out, TensorProto.FLOAT, ["N", *keras_shape[1:]]))
    used = {name for node in g.nodes for name in node.input}
    inits = [numpy_helper.from_array(np.asarray(a, np.float32) if a.dtype.kind == "f" else a,
                                     name) for name, a in g.consts.items() if name in used]
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info(image.name, TensorProto.FLOAT, ["N", *image.shape[1:]])],
        out_infos, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="featx", producer_version=WRITER)
    proto.ir_version = 8  # what ONNX Runtime and tf2onnx's graphs (merged by featx export) use
    onnx.checker.check_model(proto)
    return proto


def write_onnx(model, target: str | os.PathLike, opset: int) -> Path:
    """Write :func:`model_to_onnx` of ``model`` to ``target`` (the caller makes it atomic)."""
    import onnx

    target = Path(target)
    onnx.save(model_to_onnx(model, opset), str(target))
    return target
