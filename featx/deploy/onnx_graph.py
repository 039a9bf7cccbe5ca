"""One ONNX graph per model: Keras' own export of the Keras part, skl2onnx for a head Keras cannot
express, joined with :func:`onnx.compose.merge_models`, then the label outputs.

The graph takes ``image``: ``uint8`` RGB ``(N, H, W, 3)`` at the model's input size, and returns
``label`` (the class values, as ``predict`` returns them: strings as strings, integers as int64)
and ``probabilities`` (``(N, n_classes)`` float32, columns in class order) or, for a head without
``predict_proba`` (``linear_svm``, ``svm``), ``scores`` (``decision_function``'s values and
shape). The class values are also in the metadata (``featx.classes``, JSON).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Mapping

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer

from featx.deploy.graphs import Exportable
from featx.errors import ExportError
from featx.extract.graphs import ONNX_OPSET, GraphExportError, export_onnx, graph_file
from featx.heads import SignedPower

__all__ = ["DELEGATES", "OPSET", "SKL2ONNX_OPTIONS", "backbone_graph", "build_onnx",
           "keras_to_onnx", "sklearn_to_onnx"]

#: Opsets of the whole graph (the backbone's and the head's must agree to be merged).
OPSET = {"": ONNX_OPSET, "ai.onnx.ml": 3}

#: skl2onnx options by final-estimator class name (others: ``{}``): probabilities as one tensor,
#: not a list of per-row dicts.
SKL2ONNX_OPTIONS: Mapping[str, dict] = {
    name: {"zipmap": False}
    for name in ("CalibratedClassifierCV", "KNeighborsClassifier", "LogisticRegression",
                 "MLPClassifier", "RandomForestClassifier", "SVC", "StackingClassifier",
                 "VotingClassifier")
}


def keras_to_onnx(model) -> onnx.ModelProto:
    """A built Keras ``model`` as ONNX, through featx's one exporter
    (:func:`featx.extract.graphs.export_onnx`), read back."""
    with tempfile.TemporaryDirectory(prefix="featx-export-") as tmp:
        return onnx.load(export_onnx(model, os.path.join(tmp, "model.onnx"), OPSET[""]))


def backbone_graph(exp: Exportable) -> onnx.ModelProto | None:
    """The backbone graph the forward runs on ONNX Runtime (:func:`featx.extract.graphs.
    graph_file`: exported once per configuration and cached beside the weights), behind a
    ``uint8`` input named ``image``; ``None`` when there is none (Keras cannot export this
    backbone, or it has several outputs): the caller exports ``exp.backbone`` then."""
    if exp.config is None:
        return None
    try:
        with graph_file(exp.config) as path:
            model = onnx.load(str(path))
    except GraphExportError:
        return None
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        return None
    h, w = exp.input_size
    floats = "featx_image_float"  # the graph's own input (a float32 image), fed by a Cast
    for node in graph.node:
        node.input[:] = [floats if name == inputs[0].name else name for name in node.input]
    graph.node.insert(0, helper.make_node("Cast", ["image"], [floats], to=TensorProto.FLOAT,
                                          name="featx_image_to_float"))
    graph.input.remove(inputs[0])
    graph.input.insert(0, helper.make_tensor_value_info("image", TensorProto.UINT8,
                                                        ["N", h, w, 3]))
    return model


def _linear_nodes(exp: Exportable, features: str) -> tuple[list, list, str]:
    """Nodes and constants of the folded linear head (``features @ kernel + bias``, then its
    activation): the Dense layer of the Keras graph, as ONNX ops."""
    kernel, bias, activation = exp.linear
    consts = [numpy_helper.from_array(np.asarray(kernel, np.float32), "featx_head_kernel"),
              numpy_helper.from_array(np.asarray(bias, np.float32), "featx_head_bias")]
    nodes = [helper.make_node("MatMul", [features, "featx_head_kernel"], ["featx_head_z0"]),
             helper.make_node("Add", ["featx_head_z0", "featx_head_bias"], ["featx_head_z"])]
    out = "featx_head_z"
    if activation == "softmax":
        nodes.append(helper.make_node("Softmax", [out], ["featx_head_p"], axis=1))
        out = "featx_head_p"
    return nodes, consts, out


# ----------------------------------------------------------------- skl2onnx, custom steps
def _signed_power(scope, operator, container):
    """featx's :class:`~featx.heads.SignedPower`, ``sign(x) * |x| ** power``: Sign, Abs, Pow
    and Mul."""
    from skl2onnx.algebra.onnx_ops import OnnxAbs, OnnxMul, OnnxPow, OnnxSign
    from skl2onnx.common.data_types import guess_numpy_type

    opv = container.target_opset
    x = operator.inputs[0]
    power = np.array([operator.raw_operator.power], guess_numpy_type(x.type))
    magnitude = OnnxPow(OnnxAbs(x, op_version=opv), power, op_version=opv)
    out = OnnxMul(OnnxSign(x, op_version=opv), magnitude, op_version=opv,
                  output_names=operator.outputs[:1])
    out.add_to(scope, container)


def _same_shape(operator):
    """skl2onnx shape calculator of an element-wise step: the output's type is the input's."""
    kind = operator.inputs[0].type
    operator.outputs[0].type = type(kind)(kind.shape)


def _normalizer(scope, operator, container):
    """sklearn's ``Normalizer`` with standard ops, as sklearn computes it on featx's float32
    features: a norm below ``10 * eps`` of float32 is taken as 1 (the ``ai.onnx.ml`` Normalizer
    divides by it)."""
    from skl2onnx.algebra.onnx_ops import (
        OnnxAbs,
        OnnxDiv,
        OnnxLess,
        OnnxReduceL2,
        OnnxReduceMax,
        OnnxReduceSum,
        OnnxWhere,
    )
    from skl2onnx.common.data_types import guess_numpy_type

    opv = container.target_opset
    x = operator.inputs[0]
    dtype = guess_numpy_type(x.type)
    norms = {
        "l2": lambda: OnnxReduceL2(x, axes=[1], keepdims=1, op_version=opv),
        "l1": lambda: OnnxReduceSum(OnnxAbs(x, op_version=opv), np.array([1], np.int64),
                                    keepdims=1, op_version=opv),
        "max": lambda: OnnxReduceMax(OnnxAbs(x, op_version=opv), axes=[1], keepdims=1,
                                     op_version=opv),
    }[operator.raw_operator.norm]()
    tiny = OnnxLess(norms, np.array([10 * np.finfo(np.float32).eps], dtype), op_version=opv)
    safe = OnnxWhere(tiny, np.array([1], dtype), norms, op_version=opv)
    out = OnnxDiv(x, safe, op_version=opv, output_names=operator.outputs[:1])
    out.add_to(scope, container)


def _knn(scope, operator, container):
    """``KNeighborsClassifier`` (euclidean; uniform or 1 / distance weights) with standard ops.

    skl2onnx 1.20's own converter returns the neighbours' distances negated for opset >= 11,
    so its ``weights="distance"`` clamps them to 1e-6 and weighs every neighbour equally. Here:
    squared distances ``|x|^2 - 2 x.t + |t|^2`` (as scikit-learn computes them), the k smallest
    (TopK), weights ``1 / d`` (neighbours at distance 0, when there are any, weigh 1 and the
    others 0, as in scikit-learn), votes summed per class and normalised.
    """
    from skl2onnx.algebra.onnx_ops import (
        OnnxAdd,
        OnnxArgMax,
        OnnxCast,
        OnnxDiv,
        OnnxEqual,
        OnnxGather,
        OnnxMatMul,
        OnnxMax,
        OnnxMul,
        OnnxReciprocal,
        OnnxReduceMax,
        OnnxReduceSum,
        OnnxReduceSumSquare,
        OnnxSqrt,
        OnnxSub,
        OnnxTopK,
        OnnxUnsqueeze,
        OnnxWhere,
    )
    from skl2onnx.common.data_types import guess_numpy_type

    knn, opv = operator.raw_operator, container.target_opset
    if knn.weights not in ("uniform", "distance") or knn.effective_metric_ != "euclidean":
        raise ExportError(f"kNN head with weights={knn.weights!r}, "
                          f"metric={knn.effective_metric_!r}: only uniform or distance weights "
                          "on euclidean distances export")
    x = operator.inputs[0]
    dtype = guess_numpy_type(x.type)
    fit = np.asarray(knn._fit_X, dtype)
    near = OnnxSub(OnnxReduceSumSquare(x, axes=[1], keepdims=1, op_version=opv),
                   OnnxMul(OnnxMatMul(x, fit.T, op_version=opv), np.array([2], dtype),
                           op_version=opv), op_version=opv)
    d2 = OnnxMax(OnnxAdd(near, (fit ** 2).sum(1)[None], op_version=opv),
                 np.array([0], dtype), op_version=opv)
    top = OnnxTopK(OnnxSqrt(d2, op_version=opv), np.array([knn.n_neighbors], np.int64),
                   axis=1, largest=0, sorted=1, op_version=opv)
    onehot = np.eye(len(knn.classes_), dtype=dtype)[knn._y]  # (n_train, n_classes)
    votes = OnnxGather(onehot, top[1], axis=0, op_version=opv)  # (N, k, n_classes)
    if knn.weights == "distance":
        zero = OnnxEqual(top[0], np.array([0], dtype), op_version=opv)
        exact = OnnxCast(zero, to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                         op_version=opv)
        any_exact = OnnxReduceMax(exact, axes=[1], keepdims=1, op_version=opv)
        inverse = OnnxReciprocal(OnnxWhere(zero, np.array([1], dtype), top[0], op_version=opv),
                                 op_version=opv)
        weight = OnnxWhere(OnnxCast(any_exact, to=TensorProto.BOOL, op_version=opv), exact,
                           inverse, op_version=opv)
        votes = OnnxMul(votes, OnnxUnsqueeze(weight, np.array([2], np.int64), op_version=opv),
                        op_version=opv)
    totals = OnnxReduceSum(votes, np.array([1], np.int64), keepdims=0, op_version=opv)
    proba = OnnxDiv(totals, OnnxReduceSum(totals, np.array([1], np.int64), keepdims=1,
                                          op_version=opv),
                    op_version=opv, output_names=operator.outputs[1:2])
    index = OnnxArgMax(proba, axis=1, keepdims=0, op_version=opv)
    label = OnnxGather(np.asarray(knn.classes_, np.int64), index, axis=0, op_version=opv,
                       output_names=operator.outputs[:1])
    proba.add_to(scope, container)
    label.add_to(scope, container)


#: Estimator class -> a skl2onnx converter used instead of skl2onnx's own (or where skl2onnx has
#: none: featx's own steps), for this call only.
_CONVERTERS: Mapping[type, Callable] = {Normalizer: _normalizer, KNeighborsClassifier: _knn,
                                        SignedPower: _signed_power}

#: Shape calculators of the classes skl2onnx does not know (featx's own steps), for this call.
_SHAPES: Mapping[type, Callable] = {SignedPower: _same_shape}


#: featx head classes (by name) whose predictions are those of a fitted scikit-learn attribute,
#: which skl2onnx converts: the ensembles' ``VotingClassifier`` / ``StackingClassifier``.
DELEGATES: Mapping[str, str] = {"SoftVoteHead": "ensemble_", "StackHead": "ensemble_"}


def _plain(head):
    """``head`` with featx's delegating estimators replaced by what they delegate to."""
    if hasattr(head, "steps"):
        return Pipeline([(name, _plain(step)) for name, step in head.steps])
    attr = DELEGATES.get(type(head).__name__)
    if attr:
        return _plain(getattr(head, attr))
    if isinstance(head, VotingClassifier):
        # skl2onnx 1.20 needs the weights as an array (weights.sum()) and refuses
        # flatten_transform, which only shapes transform(), not predictions.
        head = copy.copy(head)
        head.flatten_transform = False
        if head.weights is not None:
            head.weights = np.asarray(head.weights, np.float64)
    if hasattr(head, "estimators_") and isinstance(head, VotingClassifier | StackingClassifier):
        head = copy.copy(head)
        head.estimators_ = [_plain(est) for est in head.estimators_]
    return head


def sklearn_to_onnx(head, n_features: int) -> onnx.ModelProto:
    """skl2onnx's graph of a fitted head: ``features`` float32 ``(N, n_features)`` -> ``label``
    (int64 codes) and ``probabilities`` (float64; scores for heads without ``predict_proba``).

    The head computes in float64, as scikit-learn does (its distances, kernels and sums
    upcast float32 features): in float32, kNN's distances lose the neighbours' order.

    Raises
    ------
    ExportError
        If skl2onnx has no converter for a part of the head (the message names it).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

    head = _plain(head)
    final = head.steps[-1][1] if hasattr(head, "steps") else head
    options = {id(final): dict(SKL2ONNX_OPTIONS.get(type(final).__name__, {}))}
    try:
        model = convert_sklearn(
            head, initial_types=[("features64", DoubleTensorType([None, n_features]))],
            options=options, target_opset=dict(OPSET),
            custom_conversion_functions=dict(_CONVERTERS),
            custom_shape_calculators=dict(_SHAPES))
    except (MissingConverter, MissingShapeCalculator) as exc:
        kind = str(exc).split("type '")[-1].split("'")[0] if "type '" in str(exc) else "a part"
        raise ExportError(
            f"the head holds {kind}, which skl2onnx cannot convert, so it exports to no format; "
            "refit with a head of featx.list_heads() (without imbalance=)") from exc
    graph = model.graph
    graph.node.insert(0, helper.make_node("Cast", ["features"], ["features64"],
                                          to=TensorProto.DOUBLE))
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                                     [None, n_features]))
    return model


# ----------------------------------------------------------------- assembly
def _classes_tensor(classes: np.ndarray) -> onnx.TensorProto:
    values = np.asarray(classes)
    if values.dtype.kind in "UO":
        values = values.astype(str).astype(object)
    elif values.dtype.kind in "iub":
        values = values.astype(np.int64)
    return numpy_helper.from_array(values, name="featx_classes")


def _label_nodes(exp: Exportable, scores: str, index: str | None) -> list:
    """Nodes making ``label`` (and the final score output) from the score tensor ``scores`` and,
    when the head computed it (skl2onnx's ``predict``), the class index ``index``."""
    nodes = []
    binary_scores = exp.output == "scores" and len(exp.classes) == 2
    if binary_scores:  # decision_function of a two-class head is (N,): the first column
        # (a Dense layer's only one; skl2onnx's SVC gives [d, -d])
        nodes.append(helper.make_node("Gather", [scores, "featx_first"], ["featx_scores_1d"],
                                      axis=1))
        scores = "featx_scores_1d"
    if index is None:
        if binary_scores:
            nodes += [helper.make_node("Greater", [scores, "featx_zero"], ["featx_positive"]),
                      helper.make_node("Cast", ["featx_positive"], ["featx_index"],
                                       to=TensorProto.INT64)]
        else:
            nodes.append(helper.make_node("ArgMax", [scores], ["featx_index"], axis=1,
                                          keepdims=0))
        index = "featx_index"
    nodes += [helper.make_node("Gather", ["featx_classes", index], ["label"], axis=0),
              helper.make_node("Cast", [scores], [exp.output], to=TensorProto.FLOAT)]
    return nodes


def _finish(model: onnx.ModelProto, exp: Exportable, scores: str, index: str | None):
    graph = model.graph
    graph.node.extend(_label_nodes(exp, scores, index))
    classes = _classes_tensor(exp.classes)
    constants = [classes, numpy_helper.from_array(np.array(0, np.int64), "featx_first"),
                 numpy_helper.from_array(np.array(0.0, np.float32), "featx_zero")]
    used = {name for node in graph.node for name in node.input}
    graph.initializer.extend(c for c in constants if c.name in used)
    n = len(exp.classes)
    score_shape = ["N"] if exp.output == "scores" and n == 2 else ["N", n]
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("label", classes.data_type, ["N"]),
        helper.make_tensor_value_info(exp.output, TensorProto.FLOAT, score_shape),
    ])
    graph.name = "featx"
    h, w = exp.input_size
    model.doc_string = (
        f"featx export: image uint8 RGB (N, {h}, {w}, 3), resized by the caller -> label, "
        f"{exp.output}")
    props = {**exp.metadata, "featx.classes": json.dumps(np.asarray(exp.classes).tolist()),
             "featx.input": f"image: uint8 RGB (N, {h}, {w}, 3), resized by the caller",
             "featx.outputs": f"label, {exp.output}"}
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def _same_opsets(*models: onnx.ModelProto) -> None:
    """Declare each domain at the highest version any of ``models`` uses, in all of them
    (``merge_models`` needs equal imports; tf2onnx and skl2onnx each declare the least they
    need, and the ops they emit did not change between those versions and :data:`OPSET`)."""
    versions: dict[str, int] = {}
    for model in models:
        for entry in model.opset_import:
            versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    for model in models:
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
        model.ir_version = max(m.ir_version for m in models)


def build_onnx(exp: Exportable) -> onnx.ModelProto:
    """The one ONNX graph of ``exp`` (see the module docstring for its inputs and outputs).

    A TransferClassifier's backbone is the graph its extraction ran on ONNX Runtime, read from
    the cache (no second Keras export); its head is the folded linear map or skl2onnx's graph.
    """
    keras_part = backbone_graph(exp)
    if keras_part is not None and exp.linear is not None:
        nodes, consts, out = _linear_nodes(exp, keras_part.graph.output[0].name)
        keras_part.graph.node.extend(nodes)
        keras_part.graph.initializer.extend(consts)
        return _finish(keras_part, exp, out, None)
    if keras_part is None:  # a fine-tuned model, or a backbone without a forward graph
        keras_part = keras_to_onnx(exp.backbone)
    keras_out = keras_part.graph.output[0].name
    if exp.head is None:
        return _finish(keras_part, exp, keras_out, None)
    n_features = int(exp.backbone.output_shape[-1])
    head = sklearn_to_onnx(exp.head, n_features)
    head = compose.add_prefix(head, "head/")
    _same_opsets(keras_part, head)
    merged = compose.merge_models(
        keras_part, head, io_map=[(keras_out, "head/features")],
        outputs=["head/label", "head/probabilities"])
    return _finish(merged, exp, "head/probabilities", "head/label")
