"""FeatureExtractor and TransferClassifier: sklearn conventions, cache reuse, real images."""

from __future__ import annotations

import os
import pickle
import re
import tempfile

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from featx import FeatureExtractor, ImageDataset, TransferClassifier, list_heads
from featx.extract import FeatureSet, forward_pass_count

TINY = {"backbone": "efficientnet_lite0", "input_size": 32}  # real weights, tiny input
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}

# FeatureExtractor reads images, never numeric matrices: each of these checks feeds it random
# float (or sparse, complex, object) arrays, which it refuses with a TypeError naming the accepted
# inputs. The checks that do not feed data (clone, get/set_params, init, unfitted transform) pass.
_IMAGES_ONLY = "reads images (paths, ImageDataset, uint8 arrays); numeric matrices raise TypeError"
FEATURE_EXTRACTOR_XFAIL = dict.fromkeys(
    [
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_complex_data",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimator_sparse_tag",
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit1d",
        "check_fit2d_predict1d",
    ],
    _IMAGES_ONLY,
)


def _expected_failures(estimator):
    # Heads need none: fit sizes knn/mlp for sklearn's 10-20 sample check data (make_head(...,
    # n_samples=, n_classes=)), where k=15 neighbours and early stopping used to fail.
    return FEATURE_EXTRACTOR_XFAIL if isinstance(estimator, FeatureExtractor) else {}


@parametrize_with_checks(
    [TransferClassifier(head=h) for h in list_heads()] + [FeatureExtractor(**TINY)],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_conventions(estimator, check):
    """TransferClassifier on precomputed 2-D features behaves like any sklearn classifier."""
    check(estimator)


@pytest.fixture(scope="module")
def colour_images(tmp_path_factory, make_images):
    """Real JPEGs whose class is their colour: learnable even from random-weight features."""
    files = make_images(tmp_path_factory.mktemp("colours"), 8, classes=COLOURS, size=40)
    return list(files), np.array(files.labels)


@pytest.mark.smoke
def test_second_fit_with_another_head_runs_no_backbone(colour_images):
    paths, labels = colour_images
    clf = TransferClassifier(head="logreg", random_state=0, **TINY).fit(paths, labels)
    assert set(clf.classes_) == set(COLOURS)
    assert clf.score(paths, labels) == 1.0
    before = forward_pass_count()
    for head in list_heads():
        clf.set_params(head=head).fit(paths, labels)
        assert clf.score(paths, labels) >= 0.7, head  # chance is 0.33
    assert forward_pass_count() == before  # every later fit/predict came from the cache


def test_fit_from_dataset_feature_set_and_arrays(colour_images):
    paths, labels = colour_images
    ds = ImageDataset.from_paths(paths, labels)
    by_dataset = TransferClassifier(**TINY).fit(ds)
    fx = FeatureExtractor(**TINY).fit()
    feature_set = fx.extract(ds)
    by_features = TransferClassifier(**TINY).fit(feature_set)
    np.testing.assert_allclose(
        by_dataset.predict_proba(ds), by_features.predict_proba(feature_set.features), atol=1e-6
    )
    arrays = np.stack([np.asarray(Image.open(p)) for p in paths[:6]])
    assert by_dataset.predict(arrays).tolist() == labels[:6].tolist()


def test_method_availability_follows_head():
    assert hasattr(TransferClassifier(head="logreg"), "predict_proba")
    assert not hasattr(TransferClassifier(head="linear_svm"), "predict_proba")
    assert hasattr(TransferClassifier(head="linear_svm"), "decision_function")


@pytest.mark.parametrize("head, cv, key, allowed", [
    ("knn", None, "clf__n_neighbors", {4}),  # default 15 > 12 samples // 3 classes
    ("knn", 3, "clf__n_neighbors", {2}),  # grid (5, 15, 30) cut to folds of 8 // 3
    ("mlp", None, "clf__early_stopping", {False}),
    ("mlp", 3, "clf__early_stopping", {False}),
])
def test_tiny_training_set_fits_sized_heads(head, cv, key, allowed):
    rng = np.random.default_rng(0)
    codes = np.arange(12) % 3
    X = rng.normal(size=(12, 16))
    X[np.arange(12), codes] += 3
    y = np.array(["a", "b", "c"])[codes]
    clf = TransferClassifier(head=head, cv=cv, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.5
    assert clf.head_.get_params()[key] in allowed


def test_explicit_head_params_are_not_sized():
    X = np.random.default_rng(0).normal(size=(12, 4))
    y = np.arange(12) % 3
    clf = TransferClassifier(head="knn", head_params={"n_neighbors": 30}).fit(X, y)
    assert clf.head_.get_params()["clf__n_neighbors"] == 30
    with pytest.raises(ValueError, match=r"n_neighbors <= n_samples_fit"):
        clf.predict(X)


def test_cv_grid_search_and_pickle(colour_images):
    paths, labels = colour_images
    clf = TransferClassifier(head="logreg", cv=2, **TINY).fit(paths, labels)
    assert clf.cv_results_["params"] and clf.best_params_
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(paths), clf.predict(paths))
    assert clone(clf).get_params() == clf.get_params()


def test_grid_search_over_heads_in_parallel(colour_images):
    paths, labels = colour_images
    search = GridSearchCV(
        TransferClassifier(**TINY), {"head": ["logreg", "svm"]}, cv=2, n_jobs=2
    ).fit(paths, labels)
    assert search.best_score_ == 1.0


def test_pipeline_and_cross_val_score(colour_images):
    paths, labels = colour_images
    pipe = Pipeline([("features", FeatureExtractor(**TINY)), ("clf", LogisticRegression())])
    scores = cross_val_score(pipe, np.array(paths, dtype=object), labels, cv=2)
    assert scores.mean() == 1.0
    names = pipe.fit(paths, labels)[:-1].get_feature_names_out()
    assert names[0] == "efficientnet_lite0_avg_0" and len(names) == 1280


def test_errors_name_the_parameter(colour_images):
    paths, labels = colour_images
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        TransferClassifier(backbone="efficientnet_lite", head="logreg").fit(paths, labels)
    with pytest.raises(ValueError, match="head"):
        TransferClassifier(head="svn", **TINY).fit(paths, labels)
    with pytest.raises(TypeError, match="wrap it in a list"):
        TransferClassifier(**TINY).fit(paths[0], labels[:1])
    with pytest.raises(ValueError, match="requires y to be passed"):
        TransferClassifier(**TINY).fit(paths)


class _ArrayLike:
    """A pandas-Series-like container: no list, no ndarray, only ``__array__`` and ``__len__``."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=object)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __len__(self):
        return len(self.values)


def _pandas_series(paths):
    pd = pytest.importorskip("pandas")
    return pd.Series(paths, index=np.arange(len(paths)) * 10)  # an index that is not 0..n-1


@pytest.mark.parametrize("wrap", [
    np.array,  # dtype <U...
    lambda p: np.array(p, dtype=object),
    lambda p: np.array([os.fsencode(x) for x in p]),  # dtype S...
    _pandas_series,
    _ArrayLike,
], ids=["str-array", "object-array", "bytes-array", "pandas-series", "array-like"])
def test_paths_as_arrays_and_series(colour_images, wrap):
    paths, labels = colour_images
    expected = TransferClassifier(**TINY).fit(paths, labels).predict_proba(paths)
    clf = TransferClassifier(**TINY).fit(wrap(paths), labels)
    np.testing.assert_allclose(clf.predict_proba(wrap(paths)), expected, atol=1e-6)
    assert clf.score(wrap(paths), labels) == 1.0
    fx = FeatureExtractor(**TINY).fit(wrap(paths))
    np.testing.assert_array_equal(fx.transform(wrap(paths)),
                                  FeatureExtractor(**TINY).fit().transform(paths))


_ACCEPTED = ("X must be a list, 1-D array or pandas Series of image paths, an ImageDataset, or a "
             "uint8 image array (N, H, W) or (N, H, W, C)")


@pytest.mark.parametrize("make_bad, got", [
    (lambda paths: np.zeros((3, 32, 32, 3), np.float32),
     r"got ndarray of dtype float32 and shape (3, 32, 32, 3); image arrays must be uint8 "
     r"(0-255): for floats in [0, 1] pass (X * 255).round().astype(np.uint8)"),
    (lambda paths: [np.zeros((32, 32, 3), np.uint8)] * 3,
     "got a list of 3 arrays (the first uint8, shape (32, 32, 3)); stack same-size uint8 images "
     "into one array with np.stack(X)"),
    (lambda paths: [paths[0], 7, paths[1]],
     "got a list mixing paths with other values (int, str); X[1] is 7"),
], ids=["float-images", "list-of-arrays", "mixed-list"])
def test_unaccepted_image_inputs_name_x_and_what_is_accepted(colour_images, make_bad, got):
    paths, labels = colour_images
    bad, y = make_bad(paths), np.array(["red", "green", "blue"])
    fitted = TransferClassifier().fit(np.eye(3), y)  # a plain feature matrix: no backbone
    classifier_calls = [lambda: TransferClassifier(**TINY).fit(bad, y), lambda: fitted.predict(bad)]
    for call in classifier_calls:
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == (f"{_ACCEPTED}, a FeatureSet, or a 2-D feature matrix "
                                   f"(n_samples, n_features); {got}")
    for call in [lambda: FeatureExtractor(**TINY).fit(bad),
                 lambda: FeatureExtractor(**TINY).fit().transform(bad)]:
        with pytest.raises(TypeError, match=re.escape(f"{_ACCEPTED}; {got}")):
            call()


def test_feature_sets_of_another_configuration_are_refused(colour_images):
    paths, labels = colour_images
    ds = ImageDataset.from_paths(paths, labels)
    fs32 = FeatureExtractor(**TINY).fit().extract(ds)
    fs48 = FeatureExtractor(**{**TINY, "input_size": 48}).fit().extract(ds)
    assert fs32.features.shape == fs48.features.shape  # only the key tells them apart
    refused = (r"X holds features of efficientnet_lite0 at 48x48 \(key \w{8}\), but this "
               r"TransferClassifier was fitted on features of efficientnet_lite0 at 32x32 "
               r"\(key \w{8}\): pass features extracted with the configuration it was fitted on")

    by_images = TransferClassifier(**TINY).fit(paths, labels)
    assert by_images.feature_config_["key"] == fs32.attrs["key"]
    assert by_images.score(FeatureSet.load(fs32.path), labels) == 1.0  # same, read from HDF5
    with pytest.raises(ValueError, match=refused):
        by_images.predict(fs48)

    by_features = TransferClassifier(**TINY).fit(fs32)
    assert by_features.feature_config_ == by_images.feature_config_
    for call in (by_features.predict, by_features.predict_proba,
                 lambda X: by_features.score(X, labels)):
        with pytest.raises(ValueError, match=refused):
            call(fs48)
    assert by_features.predict(fs48.features).shape == (len(paths),)  # plain matrix: shape only
    assert TransferClassifier().fit(fs32.features, labels).predict(fs48).shape == (len(paths),)

    before = forward_pass_count()  # parameters changed after fit: refused before any decode
    with pytest.raises(ValueError, match=(
            r"with its current parameters the extractor gives features of efficientnet_lite0 "
            r"at 40x40 \(key \w{8}\), but this TransferClassifier was fitted on features of "
            r"efficientnet_lite0 at 32x32 \(key \w{8}\): set backbone, input_size")):
        by_features.set_params(input_size=40).predict(paths)
    with pytest.raises(ValueError, match=r"at 32x32 \(key \w{8}\); they also differ in pooling "
                                         r"'avg' vs 'max'"):
        by_features.set_params(input_size=32, pooling="max").predict(paths)
    assert forward_pass_count() == before

    # Images are checked on the fields the parameters set, not on the full key: the key of
    # keras' "imagenet" weights names the Keras version, which a saved model may outlive.
    by_images.feature_config_ = {**by_images.feature_config_, "weights_sha256": "0" * 64,
                                 "key": "f" * 64}
    assert by_images.score(paths, labels) == 1.0


def _uint8_images(n_per_class=4):
    rng = np.random.default_rng(1)
    images = [np.clip(np.array(rgb) + rng.integers(-25, 25, (36, 36, 3)), 0, 255)
              for rgb in list(COLOURS.values())[:2] for _ in range(n_per_class)]
    return np.stack(images).astype(np.uint8), np.repeat(["red", "green"], n_per_class)


def test_cache_false_leaves_nothing_on_disk(tmp_path, monkeypatch):
    cwd, default_cache, scratch = (tmp_path / name for name in ("cwd", "cache", "tmp"))
    for folder in (cwd, default_cache, scratch):
        folder.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("FEATX_CACHE_DIR", str(default_cache))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where a temporary folder would go
    images, labels = _uint8_images()
    params = {"backbone": "mobilenet_v2", "weights": None, "input_size": 32, "cache": False}
    clf = TransferClassifier(**params).fit(images, labels)
    assert clf.score(images, labels) == 1.0
    fx = FeatureExtractor(**params).fit(images)
    np.testing.assert_allclose(fx.transform(images), fx.extract(images).features)
    # TensorFlow's autograph leaves the modules it generates while tracing in the temporary
    # folder (Keras' ONNX export traces the backbone): TensorFlow's files, not featx's
    left = [p for p in scratch.rglob("*") if not p.name.startswith("__autograph_generated")]
    assert [list(cwd.rglob("*")), list(default_cache.rglob("*")), left] == [[], [], []]


def test_arrays_are_written_under_the_given_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "default"))
    images, labels = _uint8_images()
    params = {"backbone": "mobilenet_v2", "weights": None, "input_size": 32}
    TransferClassifier(**params, cache=tmp_path / "mine").fit(images, labels)
    assert len(list((tmp_path / "mine" / "arrays").glob("*/*.png"))) == len(images)
    assert not (tmp_path / "default").exists()
    FeatureExtractor(**params).fit().transform(images)  # no cache given: the default folder
    assert len(list((tmp_path / "default" / "arrays").glob("*/*.png"))) == len(images)


@pytest.mark.parametrize("cv", [None, 2])
def test_head_params_random_state_wins_over_the_estimators(cv):
    X = np.random.default_rng(0).normal(size=(20, 4))
    y = np.arange(20) % 2
    fast = {"n_estimators": 5}
    clf = TransferClassifier(head="rf", head_params={**fast, "random_state": 1}, random_state=7,
                             cv=cv).fit(X, y)
    assert clf.head_.get_params()["clf__random_state"] == 1
    clf = TransferClassifier(head="rf", head_params=fast, random_state=7, cv=cv).fit(X, y)
    assert clf.head_.get_params()["clf__random_state"] == 7
