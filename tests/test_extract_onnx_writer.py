"""featx's own Keras -> ONNX writer (featx/extract/onnx_writer.py) and its place in the graph
cache (featx/extract/graphs.py).

Every backbone row the writer translates gives, on ONNX Runtime, the features the Keras model
predicts (random weights at 32 px, BatchNorm statistics and conv biases drawn away from their
identity defaults so a wrong fold shows); a model holding anything else is declined and goes
through Keras' exporter; the graph's key names its exporter. The real-photo comparison of both
runtimes (Lite0 with its ImageNet weights, mobilenet_v2) is in test_extract_runtime.py.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import assert_same

from featx.backbones import get_backbone_spec, load_backbone
from featx.extract import graphs
from featx.extract.config import ExtractorConfig
from featx.extract.onnx_writer import WRITER, UnsupportedGraphError, model_to_onnx
from featx.utils.runtime import seeded

OPSET = graphs.ONNX_OPSET

# (row, load_backbone options): every kind of layer and option the rows hold; one row per
# Keras family (the deeper rows of a family repeat the same layers)
ROWS = [
    ("efficientnet_lite0", dict(layers=[-1, -2, -3, -4])),
    ("efficientnet_lite1", dict(pooling="max", layers=[-1, -3])),
    ("efficientnet_lite2", dict(layers=["block3", -1])),
    ("mobilenet_v2", {}),
    ("mobilenet_v2", dict(pooling=None)),
    ("mobilenet", dict(pooling="max")),
    ("resnet50", {}),
    ("resnet50_v2", {}),
    ("vgg16", {}),
    ("densenet121", {}),
    ("inception_v3", {}),
]


def _layers(model):
    for layer in model.layers:
        yield from _layers(layer) if isinstance(layer, keras.Model) else (layer,)


def _perturbed(model, seed=0):
    """``model`` with BatchNorm statistics and conv biases drawn at random (a fresh model has
    mean 0, variance 1, scale 1, offset 0 and zero biases: a fold that ignores them passes)."""
    rng = np.random.default_rng(seed)
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape) if "variance" in v.path
                               else rng.normal(0, 0.3, w.shape) + ("gamma" in v.path)
                               for v, w in zip(layer.weights, layer.get_weights(), strict=True)])
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D) \
                and layer.use_bias:
            layer.set_weights([layer.get_weights()[0],
                               rng.normal(0, 0.1, layer.get_weights()[1].shape)])
    return model


def _run(proto, images):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.parametrize("name, options", ROWS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ROWS)])
def test_writer_graph_computes_what_keras_predicts(name, options):
    size = max(get_backbone_spec(name).min_size, 32)
    images = np.random.default_rng(1).uniform(0, 255, (3, size, size, 3)).astype(np.float32)
    with seeded(0):
        model = _perturbed(load_backbone(name, weights=None, input_size=size, **options))
    proto = model_to_onnx(model, OPSET)
    assert [n.op_type for n in proto.graph.node].count("Transpose") == \
        1 + (options.get("pooling", "avg") is None)  # NHWC in once (and out for a map)
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
    expected = model.predict(images, verbose=0)
    got = _run(proto, images)
    assert got.shape == expected.shape
    assert_same(got, expected)


def _tiny(*body, size=9):
    """A small functional model: an NHWC image through ``body``'s layers, then average
    pooling (an odd size: "same" padding at stride 2 pads one side more)."""
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for layer in body:
        x = layer(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


@pytest.mark.parametrize("body, what", [
    ((keras.layers.Conv2D(4, 3, dilation_rate=2),), "dilation_rate"),
    ((keras.layers.Conv2D(6, 3, groups=3),), "groups"),
    ((keras.layers.Conv2D(4, 3, activation="swish"),), "silu|swish"),
    ((keras.layers.LayerNormalization(),), "LayerNormalization"),
    ((keras.layers.ReLU(negative_slope=0.1),), "leaky"),
    ((keras.layers.Conv2D(4, 3, dtype="mixed_float16"),), "dtype policy"),
    ((keras.layers.Lambda(lambda t: t * 2),), "Lambda"),
], ids=["dilation", "groups", "swish", "layernorm", "leaky-relu", "mixed", "lambda"])
def test_writer_declines_what_it_does_not_translate(body, what):
    with pytest.raises(UnsupportedGraphError, match=what):
        model_to_onnx(_tiny(*body), OPSET)


def _signature(path):
    graph = onnx.load(str(path)).graph
    constants = {t.name for t in graph.initializer}
    dims = [[d.dim_value or None for d in v.type.tensor_type.shape.dim]
            for v in [*graph.input, *graph.output] if v.name not in constants]
    return [v.name for v in [*graph.input, *graph.output] if v.name not in constants], dims


def test_declined_model_falls_back_to_keras_export(tmp_path):
    """A model with a layer the writer declines gets Keras' graph; a model it translates gets
    featx's, with the inputs and outputs (names, shapes) Keras' exporter gives it."""
    images = np.random.default_rng(2).uniform(-1, 1, (2, 9, 9, 3)).astype(np.float32)
    with seeded(0):
        declined = _tiny(keras.layers.Conv2D(4, 3, strides=2, padding="same"),
                         keras.layers.LayerNormalization())
        written = _perturbed(_tiny(keras.layers.Conv2D(4, 3, strides=2, padding="same"),
                                   keras.layers.BatchNormalization(),
                                   keras.layers.Activation("relu6")))
    exporter, write = graphs._writer(declined)
    assert exporter == "keras"
    write(tmp_path / "declined.onnx")
    assert onnx.load(str(tmp_path / "declined.onnx")).producer_name == "tf2onnx"
    proto = onnx.load(str(tmp_path / "declined.onnx"))
    assert_same(_run(proto, images), declined.predict(images, verbose=0))

    exporter, write = graphs._writer(written)
    assert exporter == WRITER
    write(tmp_path / "featx.onnx")
    assert onnx.load(str(tmp_path / "featx.onnx")).producer_name == "featx"
    assert_same(_run(onnx.load(str(tmp_path / "featx.onnx")), images),
                written.predict(images, verbose=0))
    graphs.export_onnx(written, tmp_path / "keras.onnx")
    assert _signature(tmp_path / "featx.onnx") == _signature(tmp_path / "keras.onnx")


def test_the_graph_key_names_its_exporter(tmp_path):
    config = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    assert graphs.EXPORTERS == (WRITER, "keras")
    assert graphs.graph_key(config) == graphs.graph_key(config, WRITER)
    assert graphs.graph_key(config, WRITER) != graphs.graph_key(config, "keras")
    assert graphs.graph_path(config, tmp_path) != graphs.graph_path(config, tmp_path, "keras")
    path = graphs.onnx_graph(config, tmp_path)  # the rows the writer covers: featx's graph
    assert path == graphs.graph_path(config, tmp_path)
    assert onnx.load(str(path)).producer_name == "featx"
    assert not graphs.graph_path(config, tmp_path, "keras").exists()
    # a graph sealed for the other exporter is not taken for this one: moved aside, rewritten
    os.replace(path, graphs.graph_path(config, tmp_path, "keras"))
    os.replace(f"{path}.seal", f"{graphs.graph_path(config, tmp_path, 'keras')}.seal")
    with pytest.warns(Warning, match="cannot be used"):
        again = graphs.onnx_graph(config, tmp_path)
    assert again == path and onnx.load(str(again)).producer_name == "featx"
