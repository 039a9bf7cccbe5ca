"""scikit-learn estimators over the feature cache: FeatureExtractor and TransferClassifier.

Both take images as a list, 1-D array (str, bytes or object dtype) or pandas Series of paths, an
:class:`~featx.data.ImageDataset`, or ``uint8`` arrays (N×H×W or N×H×W×C). Features go through the
HDF5 cache, so a second fit (another head, another grid) performs no backbone forward pass.
:class:`TransferClassifier` also accepts a :class:`~featx.extract.FeatureSet` or a 2-D float array
of precomputed features, and refuses features of another extractor configuration than the ones it
was fitted on (``feature_config_``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from featx.data import (
    ImageDataset,
    as_image_dataset,
    check_image_input,
    image_input_error,
    is_image_input,
    labelled_targets,
    looks_like_images,
)
from featx.extract import FeatureSet, extract_features
from featx.extract.config import (
    EXTRACTOR_PARAMS,
    LATER_FIELDS,
    SETTINGS,
    ExtractorConfig,
    describe,
    diff,
    feature_config,
    feature_widths,
    same_config,
)
from featx.extract.options import EXECUTION_PARAMS
from featx.extract.views import check_views
from featx.heads import fit_size, get_head_spec, head_param_grid, make_head
from featx.utils.params import Constraint, Interval, Options, Rule, validate_params
from featx.utils.threads import blas_limit

__all__ = ["FeatureExtractor", "TransferClassifier"]


_FEATURE_INPUTS = ", a FeatureSet, or a 2-D feature matrix (n_samples, n_features)"
#: Configuration fields the extractor parameters set (the settings of ``ExtractorConfig``).
_PARAM_FIELDS = tuple(SETTINGS)


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """Images -> pooled features of a frozen pretrained backbone, through the feature cache.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from :func:`featx.list_backbones`.
    weights : {"imagenet"} or None or path, default="imagenet"
        Backbone weights; ``None`` gives random init (for tests).
    pooling : {"avg", "max"}, default="avg"
        Global pooling of the last feature map (or of each tapped layer).
    input_size : int or (height, width), optional
        Input size; default: the backbone's own.
    layers : list of str, optional
        Intermediate layers to tap, pool and concatenate (multi-scale features).
    candidate_layers : list, optional
        Extract these layers (a superset of ``layers``) once, in one cache entry, and take
        ``layers`` from them as a column slice (:meth:`FeatureSet.select_layers`): trying
        several ``layers`` then costs one backbone pass per image in all.
    view : str, default="none"
        A deterministic view of every image (a row of :data:`featx.extract.views.VIEWS`:
        ``"flip"``, ``"crop90"``...), cached under its own key.
    resize : {"bilinear", "crop"}, default="bilinear"
        How images are brought to ``input_size``.
    decoder : {"pillow", "opencv"}, default="pillow"
        Image decoder (see :func:`featx.read_image`); ``"opencv"`` needs ``featx[opencv]``.
    cache : path or False, optional
        Feature-cache folder (default :func:`featx.utils.config.cache_dir`: ``$FEATX_CACHE_DIR``,
        a featx checkout's ``./cache``, else the per-user cache); ``False`` disables it.
    batch_size : int or None, default=32
        Backbone batch size (does not change the features); ``None``: 32 on a CPU, 256 on a
        GPU, as in :func:`featx.extract_features`.
    runtime : {"auto", "onnxruntime", "keras"}, optional
        What runs the frozen backbone, as in :func:`featx.extract_features` (``None``:
        ``$FEATX_RUNTIME``, else ``"auto"``: ONNX Runtime on a CPU, Keras on a GPU). Features
        agree within ~2e-6 across runtimes and share the cache.
    verbose : int, default=1
        Progress of each extraction on stderr (a live bar on a terminal, a plain line every
        few seconds in a log; :class:`featx.utils.progress.Progress`); ``0`` silent.

    Attributes
    ----------
    n_features_out_ : int
        Feature dimension.
    feature_set_ : FeatureSet
        Features of the last ``transform`` call (paths, ids, ``skipped``...). Data, not model
        state: left out when the extractor is pickled, copied or saved with
        :func:`featx.save`.

    Examples
    --------
    >>> import featx
    >>> data = featx.load_clothing_mini()
    >>> fx = featx.FeatureExtractor("mobilenet_v2", weights=None, input_size=32)
    >>> fx.fit_transform(data["test"].paths[:4]).shape
    (4, 1280)
    """

    # Parameters added later: a FeatureExtractor saved before them loads with these values.
    candidate_layers = None
    view = "none"
    runtime = None  # models saved before the parameter existed

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        weights: str | None = "imagenet",
        pooling: str = "avg",
        input_size: int | tuple[int, int] | None = None,
        layers: list[str] | None = None,
        candidate_layers: list | None = None,
        view: str = "none",
        resize: str = "bilinear",
        decoder: str = "pillow",
        cache: str | os.PathLike | bool | None = None,
        batch_size: int = 32,
        runtime: str | None = None,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.pooling = pooling
        self.input_size = input_size
        self.layers = layers
        self.candidate_layers = candidate_layers
        self.view = view
        self.resize = resize
        self.decoder = decoder
        self.cache = cache
        self.batch_size = batch_size
        self.runtime = runtime
        self.verbose = verbose

    #: What each parameter accepts: the extractor's and the execution's rows are
    #: :data:`featx.extract.config.EXTRACTOR_PARAMS` / ``EXECUTION_PARAMS``, shared with
    #: :func:`featx.extract_features` and the pipeline schema.
    _parameter_constraints: dict[str, Constraint] = {
        **{k: EXTRACTOR_PARAMS[k] for k in ("backbone", "weights", "input_size", "layers",
                                            "resize", "decoder", "view")},
        "pooling": Options(("avg", "max")),  # a transformer returns rows: no spatial maps
        "candidate_layers": EXTRACTOR_PARAMS["layers"],
        **{k: EXECUTION_PARAMS[k] for k in ("cache", "batch_size", "runtime")},
    }

    def _validate(self) -> None:
        validate_params(self._parameter_constraints, self.get_params(deep=False))
        if self.candidate_layers is not None:
            missing = [e for e in (self.layers or [-1]) if e not in self.candidate_layers]
            if missing:
                raise ValueError(f"candidate_layers must hold every entry of layers (or -1 "
                                 f"without layers), got layers={self.layers!r}, "
                                 f"candidate_layers={self.candidate_layers!r}")

    def fit(self, X: Any = None, y: Any = None) -> FeatureExtractor:
        """Validate the parameters (and the type of ``X``) and record the feature dimension.

        No image is read: features are computed, through the cache, by ``transform``.
        """
        if X is not None:
            check_image_input(X)
        self._validate()
        self.n_features_out_ = self._feature_dim()
        return self

    def _feature_dim(self) -> int:
        # widths need neither the weights nor the input size: no weights file is read here
        layers = json.dumps(None if self.layers is None else list(self.layers))
        return int(sum(feature_widths({"backbone": self.backbone, "layers": layers,
                                       "pooling": self.pooling})))

    def _config(self) -> ExtractorConfig:
        """The extractor configuration (with its cache ``key``) these parameters give."""
        return ExtractorConfig(self.backbone, weights=self.weights, input_size=self.input_size,
                               pooling=self.pooling, layers=self.layers, resize=self.resize,
                               decoder=self.decoder, view=self.view)

    def _extract(self, dataset: ImageDataset) -> Any:
        fs = extract_features(
            dataset, backbone=self.backbone, weights=self.weights, input_size=self.input_size,
            pooling=self.pooling, layers=self.candidate_layers or self.layers,
            resize=self.resize, decoder=self.decoder, cache=self.cache,
            batch_size=self.batch_size, verbose=self.verbose, view=self.view,
            runtime=self.runtime,
        )
        if self.candidate_layers is None:
            return fs
        return fs.select_layers(list(self.layers or [-1]))

    def extract(self, X: Any) -> Any:
        """Features of ``X`` as a :class:`~featx.extract.FeatureSet` (paths, ids, labels...).

        With ``cache=False`` and a ``uint8`` array, ``paths`` name temporary files that are
        already removed.
        """
        check_is_fitted(self, "n_features_out_")
        with as_image_dataset(X, self.cache) as dataset:
            return self._extract(dataset)

    def transform(self, X: Any) -> np.ndarray:
        """Return a ``(n_images, n_features_out_)`` float array, one row per input image.

        Raises
        ------
        ValueError
            If some images cannot be decoded (they are named); build an ImageDataset first to
            drop them with a report instead.
        TypeError
            If ``X`` is not an accepted image input; the message lists those.
        """
        check_is_fitted(self, "n_features_out_")
        with as_image_dataset(X, self.cache) as dataset:
            fs = self._extract(dataset)
        self.feature_set_ = fs
        if len(fs) != len(dataset):
            bad = sorted(set(dataset.paths) - set(fs.paths))
            raise ValueError(
                f"{len(bad)} of {len(dataset)} images could not be decoded: {bad[:5]}. Use "
                "featx.ImageDataset.from_paths(...) to drop them with a report."
            )
        return np.asarray(fs.features)

    def __getstate__(self) -> dict:
        # feature_set_ is the data of the last transform, not model state: never pickled/saved.
        state = dict(super().__getstate__())
        state.pop("feature_set_", None)
        return state

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names ``<backbone>_<pooling>_<i>``."""
        check_is_fitted(self, "n_features_out_")
        prefix = f"{self.backbone}_{self.pooling}"
        return np.asarray([f"{prefix}_{i}" for i in range(self.n_features_out_)], dtype=object)



def _head_has(method: str):
    def check(self: TransferClassifier) -> bool:
        if hasattr(self, "head_"):
            return hasattr(self.head_, method)
        return hasattr(make_head(self.head, **(self.head_params or {})), method)

    return check


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """A frozen pretrained backbone's cached features + a scikit-learn head.

    ``fit`` extracts features (cached: a later fit with another head runs no backbone pass) and
    fits the head, with a grid search over the head's default grid when ``cv`` is given.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from :func:`featx.list_backbones`.
    head : str, default="logreg"
        A name from :func:`featx.list_heads`.
    head_params : dict, optional
        Parameters for :func:`featx.make_head` (e.g. ``{"C": 0.5, "pca": 128}``, or a feature
        normalisation: ``featx.heads.norm_options("sqrt")``, ``{"power": 0.5}``). They are used
        as given, ``random_state`` included (it wins over the estimator's ``random_state``);
        the head's other defaults are sized for the training set (``n_samples``, or with ``cv``
        the smallest training fold), so ``knn`` and ``mlp`` fit a few images:
        ``head_.get_params()`` shows the values used.
    weights, pooling, input_size, layers, candidate_layers, resize, decoder, cache, batch_size
        As for :class:`FeatureExtractor` (``verbose`` and ``runtime`` too).
    views : list of str, optional
        Several deterministic views of every image (rows of
        :data:`featx.extract.views.VIEWS`, e.g. ``["none", "flip"]``): the head trains on every
        view's rows and predictions average the views' probabilities (test-time augmentation).
        Each view is cached on its own; it costs one backbone pass per image per view.
        Image inputs only (a FeatureSet or a matrix is one view). ``None``: ``["none"]``.
    cv : int or CV splitter, optional
        When given, ``GridSearchCV`` over the head's default grid picks its parameters.
    n_jobs : int, optional
        Parallel jobs for the grid search.
    random_state : int, optional
        Seed for heads with randomness (random forest, MLP), unless ``head_params`` has one.

    Attributes
    ----------
    classes_ : ndarray
        Class labels, in the user's own values (strings are fine).
    head_ : sklearn estimator
        The fitted head (the best one when ``cv`` is given).
    cv_results_ : dict
        ``GridSearchCV.cv_results_`` when ``cv`` is given.
    n_features_in_ : int
        Feature dimension the head was fitted on.
    feature_config_ : dict or None
        Extractor configuration of the features the head was fitted on (``backbone``,
        ``input_size``, ``pooling``... and the cache ``key``), from the images' extraction or
        the FeatureSet's ``attrs``; ``None`` when fitted on a plain matrix. ``predict``,
        ``predict_proba``, ``decision_function`` and ``score`` raise a ``ValueError`` for a
        FeatureSet of another key, and for images when the extractor parameters (backbone,
        weights, input size, pooling, layers, resize, decoder) no longer match it (before
        reading any); plain matrices are checked for shape only.

    Examples
    --------
    >>> import featx
    >>> data = featx.load_clothing_mini()
    >>> clf = featx.TransferClassifier("mobilenet_v2", weights=None, input_size=32)
    >>> clf = clf.fit(data["train"])
    >>> clf.predict(data["test"].paths[:2]).shape
    (2,)
    """

    # Parameters added later: a TransferClassifier saved before them loads with these values.
    candidate_layers = None
    views = None
    runtime = None  # models saved before the parameter existed

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        head: str = "logreg",
        head_params: dict | None = None,
        weights: str | None = "imagenet",
        pooling: str = "avg",
        input_size: int | tuple[int, int] | None = None,
        layers: list[str] | None = None,
        candidate_layers: list | None = None,
        views: list[str] | None = None,
        resize: str = "bilinear",
        decoder: str = "pillow",
        cache: str | os.PathLike | bool | None = None,
        cv: Any = None,
        n_jobs: int | None = None,
        random_state: int | None = None,
        batch_size: int = 32,
        runtime: str | None = None,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
        self.head = head
        self.head_params = head_params
        self.weights = weights
        self.pooling = pooling
        self.input_size = input_size
        self.layers = layers
        self.candidate_layers = candidate_layers
        self.views = views
        self.resize = resize
        self.decoder = decoder
        self.cache = cache
        self.cv = cv
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.batch_size = batch_size
        self.runtime = runtime
        self.verbose = verbose

    #: What each parameter accepts (the extractor's rows as :class:`FeatureExtractor`'s).
    _parameter_constraints: dict[str, Constraint] = {
        **{k: v for k, v in FeatureExtractor._parameter_constraints.items() if k != "view"},
        "views": Rule(lambda name, v: check_views(v), "None or a list of view names"),
        "head": Rule(lambda name, h: get_head_spec(h).name, "a name of featx.list_heads()"),
        "n_jobs": Interval(int, none=True),
    }

    def _extractor(self, view: str = "none") -> FeatureExtractor:
        return FeatureExtractor(
            self.backbone, weights=self.weights, pooling=self.pooling, input_size=self.input_size,
            layers=self.layers, candidate_layers=self.candidate_layers, view=view,
            resize=self.resize, decoder=self.decoder, cache=self.cache,
            batch_size=self.batch_size, runtime=self.runtime, verbose=self.verbose,
        )

    def _more_views(self, X: Any) -> list[np.ndarray]:
        """The features of ``X``'s other views (after the first), for image inputs."""
        views = check_views(self.views)
        if len(views) == 1 or not is_image_input(X):
            return []
        return [self._extractor(v).fit().transform(X) for v in views[1:]]

    def _features(self, X: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """Any accepted X -> (features, labels or None, extractor configuration or None).

        Image inputs (paths, ImageDataset, uint8 image arrays) go through the cached extractor;
        a FeatureSet gives its stored features; image-like inputs that are not accepted (float
        image arrays, lists of arrays, lists mixing paths with other values) raise a TypeError
        listing the accepted inputs; anything else is taken as a numeric feature matrix and
        validated by ``check_array`` (so sparse, 1-D or NaN input fail as in scikit-learn). The
        configuration (see :attr:`feature_config_`) is None for a plain matrix.
        """
        from sklearn.utils.validation import check_array

        labels = None if y is None else np.asarray(y)
        if isinstance(X, FeatureSet):
            if labels is None:
                labels = np.asarray(X.class_names, dtype=object)[X.labels]
            return np.asarray(X.features), labels, feature_config(X.attrs)
        if is_image_input(X):
            if labels is None and isinstance(X, ImageDataset):
                labels = X.label_names
            extractor = self._extractor(check_views(self.views)[0]).fit()
            features = extractor.transform(X)
            return features, labels, feature_config(extractor.feature_set_.attrs)
        if looks_like_images(X):
            raise image_input_error(X, also=_FEATURE_INPUTS)
        return check_array(X, dtype=[np.float64, np.float32]), labels, None

    def _check_config(self, config: Any, what: str, fix: str, *, fields=None) -> None:
        """Raise when ``config`` is not the configuration the head was fitted on: another key,
        or with ``fields`` another value of one of those fields."""
        fitted = getattr(self, "feature_config_", None)  # None: fitted on a plain matrix
        if fields is None:
            same = same_config(fitted, config)
        else:  # a field older feature files lack has its default (LATER_FIELDS)
            same = fitted is None or all(
                config.get(k, LATER_FIELDS.get(k)) == fitted.get(k, LATER_FIELDS.get(k))
                for k in fields)
        if not same:
            raise ValueError(
                f"{what} {describe(config)}, but this {type(self).__name__} was fitted "
                f"on features of {describe(fitted)}{diff(fitted, config)}: "
                f"{fix}"
            )

    def fit(self, X: Any, y: Any = None) -> TransferClassifier:
        """Extract (cached) features of ``X`` and fit the head.

        Parameters
        ----------
        X : paths (list, 1-D array, Series), ImageDataset, uint8 array, FeatureSet or 2-D array
            Training images (or their features).
        y : array-like, optional
            Labels; taken from ``X`` when it is an ImageDataset or FeatureSet.
        """
        from sklearn.model_selection import GridSearchCV
        from sklearn.utils.multiclass import check_classification_targets

        validate_params(self._parameter_constraints, self.get_params(deep=False))
        for attr in ("best_params_", "cv_results_"):
            self.__dict__.pop(attr, None)
        features, labels, config = self._features(X, y)
        if labels is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None (y may "
                "be omitted only when X is an ImageDataset or FeatureSet)"
            )
        if len(labels) != len(features):
            raise ValueError(
                f"X and y have inconsistent lengths: {len(features)} images, {len(labels)} labels"
            )
        check_classification_targets(labels)
        encoder = LabelEncoder().fit(labels)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has {len(self.classes_)} class ({self.classes_.tolist()}); at least 2 classes "
                "are needed to fit a classifier"
            )
        codes = encoder.transform(labels)
        more = self._more_views(X)
        if more:  # every view of an image is a training row with its label
            features = np.concatenate([features, *more])
            codes = np.concatenate([codes] * (1 + len(more)))
        cv, n_fit, n_classes = fit_size(features, codes, self.cv)
        sizes = {"n_samples": n_fit, "n_classes": n_classes}
        head = make_head(self.head, **{"random_state": self.random_state, **sizes,
                                       **(self.head_params or {})})
        with blas_limit():  # the thread budget: one BLAS thread per fit (featx.utils.threads)
            if cv is not None:
                search = GridSearchCV(head, head_param_grid(self.head, **sizes), cv=cv,
                                      n_jobs=self.n_jobs)
                search.fit(features, codes)
                self.head_ = search.best_estimator_
                self.best_params_ = search.best_params_
                self.cv_results_ = search.cv_results_
            else:
                self.head_ = head.fit(features, codes)
        self.n_features_in_ = features.shape[1]
        self.feature_config_ = config
        return self

    def _head_features(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "head_")
        if getattr(self, "feature_config_", None) is not None and is_image_input(X):
            # Parameters changed since fit? Checked before any image is read, on the fields the
            # parameters set (not the full key: the key of keras' "imagenet" weights also
            # names the Keras version, which a saved model may outlive).
            self._check_config(
                feature_config(self._extractor(check_views(self.views)[0])._config()),
                "with its current parameters the extractor gives features of",
                "set backbone, input_size, weights, pooling, layers, resize and decoder back to "
                "that configuration, or refit", fields=_PARAM_FIELDS,
            )
        features, _, config = self._features(X)
        if isinstance(X, FeatureSet):
            self._check_config(config, "X holds features of",
                               "pass features extracted with the configuration it was fitted on")
        if features.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {features.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return features

    def _view_scores(self, method: str, X: Any) -> np.ndarray:
        """``head_.<method>`` averaged over the views of ``X`` (one view: as is)."""
        features = self._head_features(X)
        return np.mean([getattr(self.head_, method)(f)
                        for f in [features, *self._more_views(X)]], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, in the user's label values (with several ``views``: the class of
        the highest view-averaged probability, or decision score)."""
        check_is_fitted(self, "head_")
        if len(check_views(self.views)) == 1 or not is_image_input(X):
            return self.classes_[self.head_.predict(self._head_features(X))]
        method = "predict_proba" if hasattr(self.head_, "predict_proba") else "decision_function"
        scores = self._view_scores(method, X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[scores.argmax(axis=1)]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean accuracy on ``X``; ``y`` may be left out when ``X`` is an ImageDataset or a
        FeatureSet (their labels), as in :meth:`fit`."""
        y = labelled_targets(X, y, f"{type(self).__name__}.score")
        return super().score(X, y, sample_weight=sample_weight)

    @available_if(_head_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order (heads that support it),
        averaged over the ``views``."""
        return self._view_scores("predict_proba", X)

    @available_if(_head_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """Decision scores of the head (heads that support it), averaged over the ``views``."""
        return self._view_scores("decision_function", X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
