"""Every row of the head table builds, fits, predicts, searches, clones and pickles."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from featx.heads import (
    FEATURE_NORMS,
    STEP_NAMES,
    SignedPower,
    check_norm,
    describe,
    describe_norms,
    get_head_spec,
    head_param_grid,
    limited_params,
    list_heads,
    make_head,
    norm_options,
)

HEADS = list_heads()
CLASSES = np.array(["boot", "coat", "shirt"])
FAST = {"rf": {"n_estimators": 10}, "mlp": {"hidden_layer_sizes": (16,), "max_iter": 50}}


def cnn_like(n=90, d=64, k=3, seed=0):
    """Non-negative, sparse-ish, ReLU6-clipped features with class structure; string labels."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, 8)) * 1.5
    y = np.arange(n) % k
    h = (means[y] + rng.normal(size=(n, 8))) @ rng.normal(size=(8, d)) - 0.5
    return np.clip(h + 0.3 * rng.normal(size=(n, d)), 0, 6).astype(np.float32), CLASSES[y]


@pytest.fixture(scope="module")
def data():
    return cnn_like()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", HEADS)
def test_head_fits_and_predicts_string_labels(name, data):
    X, y = data
    head = make_head(name, random_state=0, **FAST.get(name, {})).fit(X, y)
    pred = head.predict(X)
    assert set(pred) <= set(CLASSES)
    assert (pred == y).mean() > 0.6
    assert list(head.classes_) == sorted(CLASSES)
    assert hasattr(head, "predict_proba") == get_head_spec(name).predict_proba


@pytest.mark.parametrize("name", HEADS)
def test_steps_follow_the_row_and_options(name):
    spec = get_head_spec(name)
    plain = [s for s, _ in make_head(name).steps]
    assert plain == [s for s, on in [("normalize", spec.normalize), ("scale", spec.scale),
                                     ("clf", True)] if on]
    full = [s for s, _ in make_head(name, power=0.5, pca=8, whiten=True, normalize=True).steps]
    assert full == [s for s in STEP_NAMES if s in full]
    assert STEP_NAMES == ("power", "normalize", "scale", "pca", "clf")
    assert {"power", "normalize", "pca", "clf"} <= set(full)
    assert make_head(name, pca=8, whiten=True).named_steps["pca"].whiten is True
    assert make_head(name, pca=8).named_steps["pca"].whiten is False
    assert "power" not in dict(make_head(name).steps)
    assert "normalize" not in dict(make_head(name, normalize=False).steps)
    assert make_head(name, pca=0.9).named_steps["pca"].n_components == 0.9


@pytest.mark.parametrize("name", HEADS)
def test_class_weight_balanced_where_supported(name):
    params = make_head(name).get_params()
    if get_head_spec(name).class_weight:
        assert params["clf__class_weight"] == "balanced"
    else:
        assert "clf__class_weight" not in params


@pytest.mark.parametrize("proba", [False, True])
@pytest.mark.parametrize("name", HEADS)
def test_grid_keys_are_valid_and_small(name, proba):
    grid = head_param_grid(name, proba=proba)
    head = make_head(name, proba=proba)
    assert 3 <= get_head_spec(name).n_candidates <= 6
    for key, values in grid.items():
        head.set_params(**{key: values[0]})
        assert head.get_params()[key] == values[0]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", HEADS)
def test_grid_search_parallel(name, data):
    X, y = data
    search = GridSearchCV(make_head(name, random_state=0, **FAST.get(name, {})),
                          head_param_grid(name), cv=2, n_jobs=2).fit(X, y)
    assert set(search.best_params_) == set(head_param_grid(name))
    assert search.predict(X[:3]).shape == (3,)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", HEADS)
def test_clone_and_pickle(name, data):
    X, y = data
    head = make_head(name, pca=4, random_state=0, **FAST.get(name, {}))
    assert clone(head).get_params().keys() == head.get_params().keys()
    head.fit(X, y)
    again = pickle.loads(pickle.dumps(head))
    np.testing.assert_array_equal(again.predict(X), head.predict(X))


@pytest.mark.parametrize("name", ["linear_svm", "svm"])
def test_proba_option_adds_predict_proba(name, data):
    X, y = data
    head = make_head(name, proba=True).fit(X, y)
    proba = head.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)



@pytest.mark.parametrize("name", ["linear_svm", "svm"])
def test_proba_calibration_folds_fit_small_training_sets(name):
    """Calibration's held-out folds shrink with the class size: 20 images of 10 classes fit with
    2 folds (scikit-learn's default 5 would need 5 per class); 1 image per class cannot."""
    y = np.arange(20) % 10
    X = np.random.default_rng(0).normal(size=(20, 16)) + 3 * np.eye(16)[y]
    head = make_head(name, proba=True, n_samples=20, n_classes=10)
    assert head.named_steps["clf"].cv == 2
    np.testing.assert_allclose(head.fit(X, y).predict_proba(X).sum(axis=1), 1.0)
    assert make_head(name, proba=True).named_steps["clf"].cv == 5
    with pytest.raises(ValueError, match=r"needs at least 2 training images per class; got "
                                         r"n_samples=10, n_classes=10"):
        make_head(name, proba=True, n_samples=10, n_classes=10)


def test_params_override_defaults_and_random_state():
    head = make_head("rf", random_state=3, n_estimators=7)
    assert head.get_params()["clf__n_estimators"] == 7
    assert head.get_params()["clf__random_state"] == 3
    assert make_head("logreg", random_state=1, C=5).get_params()["clf__C"] == 5


def test_unknown_head_names_parameter_and_suggests():
    with pytest.raises(ValueError, match=r"head must be one of \['logreg', 'linear_svm', .*\], "
                                         r"got 'logrg' \(did you mean 'logreg'\?\)"):
        make_head("logrg")
    with pytest.raises(ValueError, match=r"head must be one of \['logreg', 'linear_svm'"):
        head_param_grid("nope")


def test_unknown_param_lists_valid_params():
    with pytest.raises(ValueError, match=r"'c' for head='logreg'.*did you mean 'C'.*max_iter"):
        make_head("logreg", c=1.0)


@pytest.mark.parametrize("pca", [0, -1, 1.5, 0.0, True, "half"])
def test_bad_pca_is_refused(pca):
    with pytest.raises(ValueError, match=re.escape(f"pca={pca!r}")):
        make_head("logreg", pca=pca)


@pytest.mark.parametrize("power", [0, -0.5, True, "0.5", float("inf"), float("nan"), None])
def test_bad_power_is_refused(power):
    if power is None:  # None is make_head's "no power step", not a SignedPower value
        with pytest.raises(ValueError, match=r"power must be a number > 0 and < inf, got None"):
            SignedPower(power=None).fit(np.ones((2, 2)))
        return
    message = f"power must be a number > 0 and < inf, got {power!r} of type {type(power).__name__}"
    with pytest.raises(ValueError, match=re.escape(message)):
        make_head("logreg", power=power)
    with pytest.raises(ValueError, match=re.escape(message)):
        SignedPower(power=power).fit(np.ones((2, 2)))


def test_whiten_needs_pca_and_a_bool():
    with pytest.raises(ValueError, match=r"whiten=True .* needs pca= .*got whiten=True with "
                                         r"pca=None"):
        make_head("logreg", whiten=True)
    with pytest.raises(TypeError, match=r"whiten must be a bool, got 1 of type int"):
        make_head("logreg", pca=8, whiten=1)


def test_spec_is_frozen():
    spec = get_head_spec("logreg")
    with pytest.raises(AttributeError):
        spec.name = "x"
    with pytest.raises(TypeError):
        spec.defaults["C"] = 1


# --------------------------------------------------------------------------- tiny training sets
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", HEADS)
def test_every_head_fits_six_samples_of_three_classes(name):
    X, y = cnn_like(n=6)
    head = make_head(name, random_state=0, n_samples=6, n_classes=3).fit(X, y)
    assert head.predict(X).shape == (6,)
    assert list(head.classes_) == sorted(CLASSES)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["knn", "mlp"])
def test_unsized_defaults_fail_on_six_samples(name):
    """The rows the size rules exist for: without n_samples the defaults cannot fit 6 samples."""
    X, y = cnn_like(n=6)
    with pytest.raises(ValueError, match=r"n_neighbors|validation"):
        make_head(name, random_state=0).fit(X, y).predict(X)  # k-NN fails at the query


def test_explicit_params_are_never_limited():
    X, y = cnn_like(n=6)
    head = make_head("knn", n_samples=6, n_classes=3, n_neighbors=30)
    assert head.get_params()["clf__n_neighbors"] == 30
    with pytest.raises(ValueError, match=r"n_neighbors <= n_samples_fit"):
        head.fit(X, y).predict(X)
    mlp = make_head("mlp", n_samples=6, n_classes=3, early_stopping=True)
    assert mlp.get_params()["clf__early_stopping"] is True
    assert limited_params("knn", n_samples=6, n_neighbors=30) == {}


@pytest.mark.parametrize("n_samples, n_classes, expected", [
    (91, 10, {}),  # ceil(0.1 * 91) = 10 validation samples: one per class
    (90, 10, {"early_stopping": False}),
    (11, 2, {}),
    (10, 2, {"early_stopping": False}),  # 1 validation sample
    (20, None, {}),  # n_classes unknown counts as 2
    (3, 3, {"early_stopping": False}),
])
def test_mlp_early_stopping_needs_a_validation_sample_per_class(n_samples, n_classes, expected):
    assert limited_params("mlp", n_samples=n_samples, n_classes=n_classes) == expected


def test_mlp_rule_reads_the_users_validation_fraction():
    assert limited_params("mlp", n_samples=20, n_classes=10) == {"early_stopping": False}
    assert limited_params("mlp", n_samples=20, n_classes=10, validation_fraction=0.5) == {}


def test_limits_leave_large_training_sets_alone():
    for name in HEADS:
        assert limited_params(name, n_samples=5000, n_classes=10) == {}
        sized = make_head(name, n_samples=5000, n_classes=10).named_steps["clf"]
        assert sized.get_params() == make_head(name).named_steps["clf"].get_params()
        assert head_param_grid(name, n_samples=5000, n_classes=10) == head_param_grid(name)


def test_grid_is_clipped_and_deduplicated():
    # capped at the mean class size (n_classes unknown counts as 2), then de-duplicated
    assert head_param_grid("knn", n_samples=8)["clf__n_neighbors"] == [4]
    assert head_param_grid("knn", n_samples=20)["clf__n_neighbors"] == [5, 10]
    assert head_param_grid("knn", n_samples=60, n_classes=2)["clf__n_neighbors"] == [5, 15, 30]
    assert head_param_grid("knn", n_samples=40, n_classes=2)["clf__n_neighbors"] == [5, 15, 20]
    assert head_param_grid("knn", n_samples=3)["clf__n_neighbors"] == [1]
    assert head_param_grid("knn", n_samples=3)["clf__weights"] == ["uniform", "distance"]
    assert head_param_grid("logreg", n_samples=3) == head_param_grid("logreg")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", HEADS)
def test_sized_grid_search_on_twelve_samples(name):
    """cv=3 on 12 samples trains on folds of 8: sized heads and grids fit every candidate."""
    X, y = cnn_like(n=12)
    search = GridSearchCV(make_head(name, random_state=0, n_samples=8, n_classes=3),
                          head_param_grid(name, n_samples=8, n_classes=3), cv=3,
                          error_score="raise").fit(X, y)
    assert search.predict(X).shape == (12,)


@pytest.mark.parametrize("param, value", [("n_samples", 0), ("n_samples", 2.5),
                                          ("n_classes", True), ("n_classes", "3")])
def test_bad_sizes_are_refused(param, value):
    message = f"{param} must be None or an int >= 1, got {value!r} of type {type(value).__name__}"
    with pytest.raises(ValueError, match=re.escape(message)):
        make_head("knn", **{param: value})
    with pytest.raises(ValueError, match=re.escape(message)):
        head_param_grid("logreg", **{param: value})


def test_describe_lists_the_size_rules():
    text = describe()
    assert "`knn`" in text and "`n_neighbors` is capped at the mean class size" in text
    assert "`early_stopping` is turned off" in text
    assert sum("Small training sets" in line for line in text.splitlines()) == sum(
        get_head_spec(name).fit_limits is not None for name in HEADS)


def test_docs_match_the_table():
    text = (Path(__file__).parents[1] / "docs" / "heads.md").read_text()
    assert describe() in text, "docs/heads.md is stale: paste featx.heads.describe() into it"



# --------------------------------------------------------------------------- feature norms
@parametrize_with_checks([SignedPower(), SignedPower(power=2.0)])
def test_signed_power_follows_sklearn_conventions(estimator, check):
    check(estimator)


def test_signed_power_values_dtype_and_names():
    X = np.array([[4.0, -9.0, 0.0, -0.25]])
    np.testing.assert_allclose(SignedPower().fit_transform(X), [[2.0, -3.0, 0.0, -0.5]])
    np.testing.assert_array_equal(SignedPower(power=1).fit_transform(X), X)
    np.testing.assert_allclose(SignedPower(power=2).fit_transform(X), np.sign(X) * X ** 2)
    x32 = X.astype(np.float32)
    assert SignedPower().fit_transform(x32).dtype == np.float32
    assert SignedPower().fit_transform(X.astype(int)).dtype == np.float64
    np.testing.assert_array_equal(x32, X.astype(np.float32))  # the input is left as it was
    names = SignedPower().fit(X).get_feature_names_out()
    assert list(names) == ["x0", "x1", "x2", "x3"]
    with pytest.raises(ValueError, match=r"X has 3 features, but SignedPower is expecting 4"):
        SignedPower().fit(X).transform(X[:, :3])


@pytest.fixture(scope="module")
def wide():
    """Enough images and features for the whiten row's 256 components."""
    return cnn_like(n=300, d=272)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("head", ["logreg", "knn"])
@pytest.mark.parametrize("norm", list(FEATURE_NORMS))
def test_every_norm_builds_fits_pickles_and_clones(norm, head, wide):
    X, y = wide
    options = norm_options(norm)
    model = make_head(head, random_state=0, **options)
    steps = [s for s, _ in model.steps]
    assert steps == [s for s in STEP_NAMES if s in steps]
    assert ("power" in steps) == ("power" in options)
    assert ("pca" in steps) == ("pca" in options)
    if options.get("normalize"):
        assert "normalize" in steps
    assert clone(model).get_params().keys() == model.get_params().keys()
    model.fit(X, y)
    pred = model.predict(X)
    assert (pred == y).mean() > 0.6
    proba = model.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)  # float32 features
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), pred)
    refit = clone(model).fit(X, y)
    np.testing.assert_array_equal(refit.predict(X), pred)


def test_norm_rows_and_names():
    assert list(FEATURE_NORMS) == ["none", "l2", "sqrt", "sqrt_l2", "whiten"]
    assert norm_options("none") == {}
    assert norm_options("sqrt") == {"power": 0.5}
    assert norm_options("whiten") == {"pca": 256, "whiten": True}
    norm_options("sqrt")["power"] = 2.0  # a copy: the table keeps its value
    assert norm_options("sqrt") == {"power": 0.5}
    with pytest.raises(TypeError):
        FEATURE_NORMS["sqrt"].options["power"] = 2.0
    assert all(row.description for row in FEATURE_NORMS.values())
    assert check_norm("l2") == "l2"
    for wrong, hint in (("sqr", " (did you mean 'sqrt' or 'sqrt_l2'?)"),
                        ("L2", " (did you mean 'l2'?)"),
                        (None, "")):
        message = (f"norm must be one of ['none', 'l2', 'sqrt', 'sqrt_l2', 'whiten'], got "
                   f"{wrong!r}{hint}")
        with pytest.raises(ValueError, match=re.escape(message)):
            check_norm(wrong)
        with pytest.raises(ValueError, match=re.escape(message)):
            norm_options(wrong)


def test_norm_names_load_without_scikit_learn():
    """The command line may check a norm's name before it imports anything heavy."""
    import subprocess
    import sys

    code = ("import sys; from featx.heads import FEATURE_NORMS, check_norm; check_norm('sqrt'); "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_docs_list_the_norms():
    text = (Path(__file__).parents[1] / "docs" / "heads.md").read_text()
    assert describe_norms() in text, ("docs/heads.md is stale: paste "
                                      "featx.heads.describe_norms() into it")


def test_the_light_name_list_is_the_table():
    # the command line checks names from featx.heads.names (no scikit-learn); it must be the table
    from featx.heads import DEFAULT_HEAD_NAMES, HEAD_NAMES, check_head_name, get_head_spec

    assert HEAD_NAMES == tuple(list_heads())
    assert DEFAULT_HEAD_NAMES == tuple(list_heads(default_only=True))
    for wrong in ("svmm", "LOGREG", "", None):
        with pytest.raises(ValueError) as light:
            check_head_name(wrong)
        with pytest.raises(ValueError) as table:
            get_head_spec(wrong)
        assert str(light.value) == str(table.value)
