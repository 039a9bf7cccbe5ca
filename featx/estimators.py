"""scikit-learn estimators over the feature cache: FeatureExtractor and TransferClassifier.

Both take images as a list of paths, an :class:`~featx.data.ImageDataset`, or ``uint8`` arrays
(N×H×W or N×H×W×C). Features go through the HDF5 cache, so a second fit (another head, another
grid) performs no backbone forward pass. :class:`TransferClassifier` also accepts a
:class:`~featx.extract.FeatureSet` or a 2-D float array of precomputed features.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from featx._image import DECODERS
from featx.data import ImageDataset

__all__ = ["FeatureExtractor", "TransferClassifier"]


def _check_images(X: Any) -> None:
    """Cheap validation of an image input, without reading any file."""
    if isinstance(X, ImageDataset) or _is_image_input(X) and isinstance(X, np.ndarray):
        n = len(X)
    elif isinstance(X, str | os.PathLike) or not isinstance(X, list | tuple | np.ndarray):
        _as_dataset(X)  # raises the TypeError that names the accepted inputs
        return
    elif all(isinstance(p, str | os.PathLike) for p in X):
        n = len(X)
    else:
        raise TypeError(
            "X must be a list of image paths, an ImageDataset or a uint8 image array "
            f"(N, H, W[, C]); got a {type(X).__name__} of {np.asarray(X).dtype} values"
        )
    if n == 0:
        raise ValueError("X holds 0 images; at least one image is required")


def _is_image_input(X: Any) -> bool:
    """True for the inputs a FeatureExtractor reads: paths, ImageDataset, uint8 image arrays."""
    if isinstance(X, ImageDataset | str | os.PathLike):
        return True
    if isinstance(X, np.ndarray):
        if X.dtype == np.uint8 and X.ndim in (3, 4):
            return True
        return X.dtype == object and X.ndim == 1 and all(isinstance(p, str) for p in X)
    return isinstance(X, list | tuple) and len(X) > 0 and all(
        isinstance(p, str | os.PathLike) for p in X
    )


def _as_dataset(X: Any, y: Any = None) -> tuple[ImageDataset, np.ndarray | None]:
    """Images in any accepted form -> (dataset, labels or None); labels stay the user's values."""
    if isinstance(X, ImageDataset):
        return X, (X.label_names if y is None else np.asarray(y))
    if isinstance(X, np.ndarray) and X.dtype == np.uint8 and X.ndim in (3, 4):
        ds = ImageDataset.from_arrays(X, np.zeros(len(X), np.int64), class_names=["?"])
        return ds, None if y is None else np.asarray(y)
    if isinstance(X, str | os.PathLike):
        raise TypeError(
            f"X must be a list of image paths, an ImageDataset or a uint8 image array, got the "
            f"single path {os.fspath(X)!r}; wrap it in a list"
        )
    try:
        paths = [os.fspath(p) for p in X]
    except TypeError:
        raise TypeError(
            "X must be a list of image paths, an ImageDataset, a uint8 image array (N, H, W[, C])"
            f", a FeatureSet or a 2-D feature array; got {type(X).__name__}"
        ) from None
    ds = ImageDataset(paths, np.zeros(len(paths), np.int64), ["?"], name=None)
    return ds, None if y is None else np.asarray(y)


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
    resize : {"bilinear", "crop"}, default="bilinear"
        How images are brought to ``input_size``.
    decoder : {"pillow", "opencv"}, default="pillow"
        Image decoder (see :func:`featx.read_image`); ``"opencv"`` needs ``featx[opencv]``.
    cache : path or False, optional
        Feature-cache folder (default ``$FEATX_CACHE_DIR`` or ``./cache``); ``False`` disables it.
    batch_size : int, default=32
        Backbone batch size (does not change the features).
    verbose : int, default=0
        Progress output.

    Attributes
    ----------
    n_features_out_ : int
        Feature dimension.
    feature_set_ : FeatureSet
        Features of the last ``transform`` call.

    Examples
    --------
    >>> import featx
    >>> data = featx.load_clothing_mini()
    >>> fx = featx.FeatureExtractor("mobilenet_v2", weights=None, input_size=32)
    >>> fx.fit_transform(data["test"].paths[:4]).shape
    (4, 1280)
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        weights: str | None = "imagenet",
        pooling: str = "avg",
        input_size: int | tuple[int, int] | None = None,
        layers: list[str] | None = None,
        resize: str = "bilinear",
        decoder: str = "pillow",
        cache: str | os.PathLike | bool | None = None,
        batch_size: int = 32,
        verbose: int = 0,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.pooling = pooling
        self.input_size = input_size
        self.layers = layers
        self.resize = resize
        self.decoder = decoder
        self.cache = cache
        self.batch_size = batch_size
        self.verbose = verbose

    def _validate(self) -> None:
        from featx.backbones import get_backbone_spec

        get_backbone_spec(self.backbone)  # raises with close matches
        if self.pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {self.pooling!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.decoder == "opencv":
            from featx._opencv import require_cv2

            require_cv2()
        if not isinstance(self.batch_size, int | np.integer) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")

    def fit(self, X: Any = None, y: Any = None) -> FeatureExtractor:
        """Validate the parameters (and the type of ``X``) and record the feature dimension.

        No image is read: features are computed, through the cache, by ``transform``.
        """
        if X is not None:
            _check_images(X)
        self._validate()
        self.n_features_out_ = self._feature_dim()
        return self

    def _feature_dim(self) -> int:
        from featx.backbones import get_backbone_spec, load_backbone

        if not self.layers:
            return int(get_backbone_spec(self.backbone).feature_dim)

        model = load_backbone(
            self.backbone, weights=None, input_size=self.input_size, pooling=self.pooling,
            layers=self.layers,
        )
        return int(model.output_shape[-1])

    def extract(self, X: Any) -> Any:
        """Features of ``X`` as a :class:`~featx.extract.FeatureSet` (paths, ids, labels...)."""
        from featx.extract import extract_features

        check_is_fitted(self, "n_features_out_")
        dataset, _ = _as_dataset(X)
        return extract_features(
            dataset, backbone=self.backbone, weights=self.weights, input_size=self.input_size,
            pooling=self.pooling, layers=self.layers, resize=self.resize, decoder=self.decoder,
            cache=self.cache, batch_size=self.batch_size, verbose=self.verbose,
        )

    def transform(self, X: Any) -> np.ndarray:
        """Return a ``(n_images, n_features_out_)`` float array, one row per input image.

        Raises
        ------
        ValueError
            If some images cannot be decoded (they are named); build an ImageDataset first to
            drop them with a report instead.
        """
        check_is_fitted(self, "n_features_out_")
        dataset, _ = _as_dataset(X)
        fs = self.extract(dataset)
        self.feature_set_ = fs
        if len(fs) != len(dataset):
            bad = sorted(set(dataset.paths) - set(fs.paths))
            raise ValueError(
                f"{len(bad)} of {len(dataset)} images could not be decoded: {bad[:5]}. Use "
                "featx.ImageDataset.from_paths(...) to drop them with a report."
            )
        return np.asarray(fs.features)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names ``<backbone>_<pooling>_<i>``."""
        check_is_fitted(self, "n_features_out_")
        prefix = f"{self.backbone}_{self.pooling}"
        return np.asarray([f"{prefix}_{i}" for i in range(self.n_features_out_)], dtype=object)



def _head_has(method: str):
    def check(self: TransferClassifier) -> bool:
        if hasattr(self, "head_"):
            return hasattr(self.head_, method)
        from featx.heads import make_head

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
        Parameters for :func:`featx.make_head` (e.g. ``{"C": 0.5, "pca": 128}``). They are used
        as given; the head's other defaults are sized for the training set (``n_samples``, or
        with ``cv`` the smallest training fold), so ``knn`` and ``mlp`` fit a few images:
        ``head_.get_params()`` shows the values used.
    weights, pooling, input_size, layers, resize, decoder, cache, batch_size, verbose
        As for :class:`FeatureExtractor`.
    cv : int or CV splitter, optional
        When given, ``GridSearchCV`` over the head's default grid picks its parameters.
    n_jobs : int, optional
        Parallel jobs for the grid search.
    random_state : int, optional
        Seed for heads with randomness (random forest, MLP).

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

    Examples
    --------
    >>> import featx
    >>> data = featx.load_clothing_mini()
    >>> clf = featx.TransferClassifier("mobilenet_v2", weights=None, input_size=32)
    >>> clf = clf.fit(data["train"])
    >>> clf.predict(data["test"].paths[:2]).shape
    (2,)
    """

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
        resize: str = "bilinear",
        decoder: str = "pillow",
        cache: str | os.PathLike | bool | None = None,
        cv: Any = None,
        n_jobs: int | None = None,
        random_state: int | None = None,
        batch_size: int = 32,
        verbose: int = 0,
    ) -> None:
        self.backbone = backbone
        self.head = head
        self.head_params = head_params
        self.weights = weights
        self.pooling = pooling
        self.input_size = input_size
        self.layers = layers
        self.resize = resize
        self.decoder = decoder
        self.cache = cache
        self.cv = cv
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.batch_size = batch_size
        self.verbose = verbose

    def _extractor(self) -> FeatureExtractor:
        return FeatureExtractor(
            self.backbone, weights=self.weights, pooling=self.pooling, input_size=self.input_size,
            layers=self.layers, resize=self.resize, decoder=self.decoder, cache=self.cache,
            batch_size=self.batch_size, verbose=self.verbose,
        )

    def _features(self, X: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Any accepted X -> (features, labels or None).

        Image inputs (paths, ImageDataset, uint8 image arrays) go through the cached extractor;
        a FeatureSet gives its stored features; anything else is taken as a numeric feature matrix
        and validated by ``check_array`` (so sparse, 1-D or NaN input fail as in scikit-learn).
        """
        from sklearn.utils.validation import check_array

        from featx.extract import FeatureSet

        labels = None if y is None else np.asarray(y)
        if isinstance(X, FeatureSet):
            if labels is None:
                labels = np.asarray(X.class_names, dtype=object)[X.labels]
            return np.asarray(X.features), labels
        if _is_image_input(X):
            dataset, labels = _as_dataset(X, y)
            return self._extractor().fit().transform(dataset), labels
        return check_array(X, dtype=[np.float64, np.float32]), labels

    def fit(self, X: Any, y: Any = None) -> TransferClassifier:
        """Extract (cached) features of ``X`` and fit the head.

        Parameters
        ----------
        X : list of paths, ImageDataset, uint8 array, FeatureSet or 2-D feature array
            Training images (or their features).
        y : array-like, optional
            Labels; taken from ``X`` when it is an ImageDataset or FeatureSet.
        """
        from sklearn.model_selection import GridSearchCV
        from sklearn.utils.multiclass import check_classification_targets

        from featx._head_limits import _fit_size
        from featx.heads import head_param_grid, make_head

        for attr in ("best_params_", "cv_results_"):
            self.__dict__.pop(attr, None)
        features, labels = self._features(X, y)
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
        cv, n_fit, n_classes = _fit_size(features, codes, self.cv)
        sizes = {"n_samples": n_fit, "n_classes": n_classes}
        head = make_head(self.head, random_state=self.random_state,
                         **{**sizes, **(self.head_params or {})})
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
        return self

    def _head_features(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "head_")
        features, _ = self._features(X)
        if features.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {features.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return features

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, in the user's label values."""
        features = self._head_features(X)
        return self.classes_[self.head_.predict(features)]

    @available_if(_head_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order (heads that support it)."""
        features = self._head_features(X)
        return self.head_.predict_proba(features)

    @available_if(_head_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """Decision scores of the head (heads that support it)."""
        features = self._head_features(X)
        return self.head_.decision_function(features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
