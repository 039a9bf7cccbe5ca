"""Fitted models as Keras graphs that take ``uint8`` RGB images ``(N, H, W, 3)``.

A :class:`~featx.estimators.TransferClassifier` is its backbone (built as its ``predict`` builds
it: the same weights, seeded random weights included) plus its head. A head that is an affine map
followed by a softmax or nothing (``logreg``, ``linear_svm``, with or without ``scale`` and ``pca``
steps) folds into one Dense layer; the fold is a table (:data:`FOLDS`: one function per step
class, :data:`LINEAR_HEADS`: one row per final estimator). Any other head is left to skl2onnx
(:mod:`featx.deploy.onnx_graph`). A :class:`~featx.finetune.FineTunedClassifier` is its own
Keras model behind a ``uint8`` input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from featx.backbones import PREPROCESSING, Preprocess
from featx.errors import ExportError
from featx.extract.config import GRAPH_FIELDS, ExtractorConfig
from featx.extract.graphs import build_keras
from featx.extract.views import check_views
from featx.finetune.train import fold_scaler_into_linear

__all__ = ["FOLDS", "LINEAR_HEADS", "Exportable", "LinearHead", "exportable", "fold_linear_head",
           "standard_preprocess"]

@dataclass
class Exportable:
    """What a fitted model exports as.

    Attributes
    ----------
    backbone : keras.Model
        ``uint8 (N, H, W, 3) -> features``, or the whole model when ``head`` is None.
    head : sklearn estimator or None
        The part skl2onnx converts (None: ``backbone`` is the whole model).
    output : str
        ``"probabilities"`` or ``"scores"`` (heads without ``predict_proba``).
    classes : ndarray
        Class values, in output-column order.
    input_size : (int, int)
    metadata : dict of str to str
        Stored in the exported file where the format has a place for it.
    why_not_keras : str
        Why the model is not one Keras graph ("" when it is).
    config : ExtractorConfig or None
        The extractor configuration a TransferClassifier's backbone was built from: its ONNX
        export reuses the graph extraction runs (one export per configuration).
    linear : (kernel, bias, activation) or None
        The folded linear head when ``backbone`` ends in it (``activation``: ``"softmax"`` or
        ``"linear"``).
    """

    backbone: keras.Model
    head: Any
    output: str
    classes: np.ndarray
    input_size: tuple[int, int]
    metadata: dict[str, str] = field(default_factory=dict)
    why_not_keras: str = ""
    config: ExtractorConfig | None = None
    linear: tuple[np.ndarray, np.ndarray, str] | None = None


# --------------------------------------------------------------------------- linear heads
def _fold_scaler(step: StandardScaler, kernel: np.ndarray, bias: np.ndarray):
    d = kernel.shape[0]
    mean = step.mean_ if step.with_mean else np.zeros(d)
    scale = step.scale_ if step.with_std else np.ones(d)
    return fold_scaler_into_linear(kernel.T, bias, mean, scale)


def _fold_pca(step: PCA, kernel: np.ndarray, bias: np.ndarray):
    components = step.components_  # (k, D)
    if step.whiten:
        components = components / np.sqrt(step.explained_variance_)[:, None]
    kernel_in = components.T @ kernel  # (D, K)
    return kernel_in, bias - step.mean_ @ kernel_in


#: Step class -> fold(step, kernel (out, K), bias (K,)) -> kernel (in, K), bias: the affine map of
#: the step composed into the Dense layer after it.
FOLDS: Mapping[type, Callable] = {StandardScaler: _fold_scaler, PCA: _fold_pca}


@dataclass(frozen=True)
class LinearHead:
    """A final estimator that is ``x @ coef_.T + intercept_`` then ``activation``.

    ``binary`` says how a two-class fit's single column becomes the output: ``"softmax"``
    (``[0, z]`` through a softmax, i.e. ``[1 - sigmoid(z), sigmoid(z)]``: ``predict_proba``) or
    ``"score"`` (``z`` itself: ``decision_function``).
    """

    output: str
    activation: str
    binary: str


#: Final estimator class -> how it becomes one Dense layer.
LINEAR_HEADS: Mapping[type, LinearHead] = {
    LogisticRegression: LinearHead("probabilities", "softmax", binary="softmax"),
    LinearSVC: LinearHead("scores", "linear", binary="score"),
}


def _steps(head) -> list:
    return list(head.named_steps.values()) if hasattr(head, "named_steps") else [head]


def fold_linear_head(head) -> tuple[np.ndarray, np.ndarray, LinearHead] | str:
    """``(kernel (D, K), bias (K,), row)`` of the one Dense layer equal to ``head``, or a string
    saying why there is none.

    Examples
    --------
    >>> import numpy as np
    >>> from featx.heads import make_head
    >>> X, y = np.random.RandomState(0).rand(30, 4), np.arange(30) % 3
    >>> head = make_head("logreg").fit(X, y)
    >>> kernel, bias, row = fold_linear_head(head)
    >>> z = X @ kernel + bias
    >>> p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    >>> bool(np.allclose(p, head.predict_proba(X)))
    True
    >>> fold_linear_head(make_head("rf").fit(X, y))
    'RandomForestClassifier is not a linear model (linear: LinearSVC, LogisticRegression)'
    """
    *transforms, clf = _steps(head)
    row = LINEAR_HEADS.get(type(clf))
    if row is None:
        allowed = ", ".join(sorted(c.__name__ for c in LINEAR_HEADS))
        return f"{type(clf).__name__} is not a linear model (linear: {allowed})"
    for step in transforms:
        if type(step) not in FOLDS:
            allowed = ", ".join(sorted(c.__name__ for c in FOLDS))
            return (f"its {type(step).__name__} step is not an affine map (affine steps: "
                    f"{allowed})")
    kernel = np.asarray(clf.coef_, np.float64).T
    bias = np.asarray(clf.intercept_, np.float64).reshape(-1) * np.ones(kernel.shape[1])
    if kernel.shape[1] == 1 and row.binary == "softmax":
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
        bias = np.concatenate([[0.0], bias])
    for step in reversed(transforms):
        kernel, bias = FOLDS[type(step)](step, kernel, bias)
    return kernel, bias, row


# --------------------------------------------------------------------------- the models
def standard_preprocess(layer: keras.layers.Layer) -> keras.layers.Layer:
    """featx's :class:`~featx.backbones.Preprocess` as standard Keras layers, so a saved
    ``.keras`` file loads without featx: ``Rescaling`` (the per-channel affine map
    ``x / std - mean / std``; it casts to float32) and, for BGR rows, a ``Dense`` permutation
    of the channels (exact). Any other layer is returned as it is (sharing its weights)."""
    if not isinstance(layer, Preprocess):
        return layer
    spec = PREPROCESSING[layer.mode]
    order = slice(None, None, -1) if spec.bgr else slice(None)
    mean, std = np.asarray(spec.mean)[order], np.asarray(spec.std)[order]
    steps = [keras.layers.Rescaling(scale=(1.0 / std).tolist(), offset=(-mean / std).tolist(),
                                    dtype="float32")]
    if spec.bgr:
        flip = np.eye(3, dtype=np.float32)[::-1].tolist()
        steps.append(keras.layers.Dense(3, use_bias=False, dtype="float32",
                                        kernel_initializer=keras.initializers.Constant(flip)))
    return keras.Sequential(steps, name=f"{layer.name}_{layer.mode}")


def _uint8_model(inner: keras.Model, size: tuple[int, int], outputs=None,
                 name: str = "featx_export") -> keras.Model:
    """``inner`` (with standard layers for featx's own) behind a ``uint8`` input named
    ``image``, called once (Keras exports only built models)."""
    inner = keras.models.clone_model(inner, clone_function=standard_preprocess)
    image = keras.Input((*size, 3), dtype="uint8", name="image")
    x = inner(image)
    for layer in outputs or ():
        x = layer(x)
    model = keras.Model(image, x, name=name)
    model(np.zeros((1, *size, 3), np.uint8))
    return model


def _transfer_config(clf) -> ExtractorConfig:
    config = ExtractorConfig(clf.backbone, weights=clf.weights, input_size=clf.input_size,
                             pooling=clf.pooling, layers=clf.layers, resize=clf.resize,
                             decoder=clf.decoder)
    fitted = getattr(clf, "feature_config_", None)
    if fitted is not None:
        changed = [f"{k}: {fitted.get(k)!r} -> {config.get(k)!r}" for k in GRAPH_FIELDS
                   if fitted.get(k, config.get(k)) != config.get(k)]
        if changed:
            raise ValueError(
                "model's extractor parameters changed since fit (" + "; ".join(changed) + "): "
                "set them back or refit before exporting")
    return config


def _transfer(clf) -> Exportable:
    check_is_fitted(clf, "head_")
    views = check_views(getattr(clf, "views", None))
    if views != ["none"]:  # the graph runs the plain image once: it would disagree with predict
        raise ExportError(f"a TransferClassifier with views={views!r} averages the views' "
                          "probabilities at predict time, which the exported graph does not do; "
                          "export a model fitted with views=None")
    config = _transfer_config(clf)
    size = tuple(config["input_size"])
    backbone = build_keras(config)  # as extraction builds it: random weights under seed 0
    if backbone.output_shape[-1] != clf.n_features_in_:
        raise ValueError(
            f"the backbone gives {backbone.output_shape[-1]} features, but the head was fitted "
            f"on {clf.n_features_in_}: refit the model on images of this backbone")
    metadata = {"featx.model": "TransferClassifier", "featx.backbone": config["backbone"],
                "featx.weights": config["weights"], "featx.head": str(clf.head),
                "featx.resize": config["resize"], "featx.decoder": config["decoder"]}
    folded = fold_linear_head(clf.head_)
    has_proba = hasattr(clf.head_, "predict_proba")
    output = "probabilities" if has_proba else "scores"
    if isinstance(folded, str):
        model = _uint8_model(backbone, size, name="featx_backbone")
        return Exportable(model, clf.head_, output, clf.classes_, size, metadata,
                          why_not_keras=f"head={clf.head!r}: {folded}", config=config)
    kernel, bias, row = folded
    dense = keras.layers.Dense(kernel.shape[1], activation=row.activation, dtype="float32",
                               name=row.output)
    dense.build((None, kernel.shape[0]))
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    model = _uint8_model(backbone, size, [dense])
    return Exportable(model, None, row.output, clf.classes_, size, metadata, config=config,
                      linear=(kernel, bias, row.activation))


def _finetuned(clf) -> Exportable:
    check_is_fitted(clf, "model_")
    size = tuple(int(s) for s in clf.input_size_)
    model = _uint8_model(clf.model_, size)
    metadata = {"featx.model": "FineTunedClassifier", "featx.backbone": str(clf.backbone),
                "featx.weights": str(clf.weights), "featx.resize": "bilinear",
                "featx.decoder": str(clf.decoder)}
    return Exportable(model, None, "probabilities", clf.classes_, size, metadata)


def _model_table() -> dict[type, Callable[[Any], Exportable]]:
    from featx.estimators import TransferClassifier
    from featx.finetune import FineTunedClassifier

    return {TransferClassifier: _transfer, FineTunedClassifier: _finetuned}


def exportable(model) -> Exportable:
    """The :class:`Exportable` of a fitted featx classifier.

    Raises
    ------
    TypeError
        If ``model`` is not a TransferClassifier or FineTunedClassifier.
    sklearn.exceptions.NotFittedError
        If it is not fitted.
    """
    table = _model_table()
    build = next((fn for cls, fn in table.items() if isinstance(model, cls)), None)
    if build is None:
        names = ", ".join(cls.__name__ for cls in table)
        raise TypeError(f"model must be a fitted {names}; got {type(model).__name__}")
    return build(model)
