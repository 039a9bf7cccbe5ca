"""evaluate_heads over the head table, and the HeadTable it returns."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from featx.data import ImageDataset
from featx.evaluate import COLUMNS, HeadTable, evaluate_heads
from featx.extract import FeatureSet, extract_features
from featx.heads import list_heads, make_head

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

NAMES = ["boot", "coat", "shirt"]


def feature_set(n, seed, d=48, k=3):
    """A FeatureSet look-alike: ReLU6-like features, int labels indexing class_names."""
    rng = np.random.default_rng(0)
    means, proj = rng.normal(size=(k, 6)) * 0.6, rng.normal(size=(6, d))
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    h = (means[y] + rng.normal(size=(n, 6))) @ proj - 0.5 + rng.normal(size=(n, d))
    X = np.clip(h, 0, 6).astype(np.float32)
    return SimpleNamespace(features=X, labels=y.astype(np.int64), class_names=list(NAMES))


@pytest.fixture(scope="module")
def table():
    return evaluate_heads(feature_set(120, 1), feature_set(60, 2))


def test_every_head_gets_a_full_row(table):
    assert table.names == list_heads(default_only=True)
    for row in table:
        # backbone and input_size come with compare (images), epochs with a fine-tune
        assert set(COLUMNS) - {"limited_params", "backbone", "input_size", "epochs"} <= set(row)
        assert "limited_params" not in row  # 120 samples: every default fits
        assert row["kind"] == "head" and row["backbone_forward_passes"] == 0
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0
        assert row["train_seconds"] > 0 and row["predict_seconds"] > 0
        assert row["best_params"] == {} and row["cv_score"] is None
        assert row["n_train"] == 120 and row["n_test"] == 60 and row["n_features"] == 48
        assert row["estimator"].predict(feature_set(5, 3).features).shape == (5,)
    assert table.class_names == NAMES


def test_best_row_and_renderings(table):
    best = table.best()
    assert best["accuracy"] == max(r["accuracy"] for r in table) > 0.5
    assert table.best("macro_f1")["macro_f1"] == max(r["macro_f1"] for r in table)
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| name | kind | accuracy |")
    assert all(f"| {name} | head |" in md for name in list_heads(default_only=True))
    assert "logreg" in str(table)
    assert repr(table).startswith(f"HeadTable({len(list_heads(default_only=True))} rows, best=")
    assert table["knn"] is table[list_heads(default_only=True).index("knn")]


def test_json_round_trip_drops_estimators(table):
    data = json.loads(table.to_json())
    assert [r["name"] for r in data["rows"]] == list_heads(default_only=True)
    assert all("estimator" not in r for r in data["rows"])
    again = HeadTable.from_dict(data)
    assert again.to_markdown() == table.to_markdown()


def test_to_json_replaces_its_own_file_and_refuses_yours(table, tmp_path):
    from featx.errors import OutputExistsError

    path = tmp_path / "heads.json"
    for _ in range(2):  # featx's own file: replaced
        text = table.to_json(path)
    assert path.read_text() == text + "\n"
    mine = tmp_path / "mine.json"
    mine.write_text('{"mine": true}')
    with pytest.raises(OutputExistsError, match=r"path='.*mine\.json' is a file featx did not "
                                                "write"):
        table.to_json(mine)
    assert mine.read_text() == '{"mine": true}'


def test_grid_search_with_tuples_and_custom_heads():
    train, test = feature_set(90, 1), feature_set(30, 2)
    heads = {"logreg": "logreg", "strong_C": make_head("logreg", C=100.0)}
    table = evaluate_heads((train.features, train.labels), (test.features, test.labels),
                           heads=heads, cv=2, n_jobs=1)
    assert table.names == ["logreg", "strong_C"]
    assert set(table["logreg"]["best_params"]) == {"clf__C"}
    assert isinstance(table["logreg"]["cv_score"], float)
    assert table["strong_C"]["best_params"] == {}
    assert table.class_names is None


@pytest.mark.parametrize("cv", [None, 3])
def test_tiny_training_set_scores_every_head(cv):
    """12 samples (folds of 8 with cv=3): knn and mlp are sized, not NaN or an error."""
    train, test = feature_set(12, 1), feature_set(30, 2)
    table = evaluate_heads(train, test, cv=cv)
    assert table.names == list_heads(default_only=True)
    for row in table:
        assert np.isfinite(row["accuracy"]) and row["n_train"] == 12, row["name"]
    assert table["mlp"]["limited_params"] == {"clf__early_stopping": False}
    assert table["mlp"]["estimator"].get_params()["clf__early_stopping"] is False
    if cv is None:  # 12 samples of 3 classes: k <= 4
        assert table["knn"]["limited_params"] == {"clf__n_neighbors": 4}
        assert table["knn"]["estimator"].get_params()["clf__n_neighbors"] == 4
    else:  # grid (5, 15, 30) cut to the smallest training fold's class size, 8 // 3
        assert table["knn"]["limited_params"] == {"clf__n_neighbors": [2]}
        assert table["knn"]["best_params"]["clf__n_neighbors"] == 2
    assert "limited_params" not in table["logreg"]
    assert "limited_params" in table.columns
    assert "n_neighbors=" in table.to_markdown()


def test_fold_size_follows_the_splitter():
    from sklearn.model_selection import KFold

    train, test = feature_set(12, 1), feature_set(9, 2)
    table = evaluate_heads(train, test, heads=["knn"], cv=KFold(2))  # folds of 6, 3 classes
    assert table["knn"]["limited_params"] == {"clf__n_neighbors": [2]}
    folds = (f for f in KFold(4).split(train.features))  # a generator is read once
    table = evaluate_heads(train, test, heads=["knn"], cv=folds)  # folds of 9, 3 classes
    assert table["knn"]["limited_params"] == {"clf__n_neighbors": [3]}
    assert np.isfinite(table["knn"]["cv_score"])


@pytest.mark.parametrize("norm", ["sqrt_l2", "whiten"])
def test_a_feature_norm_reaches_every_named_head(norm):
    """``head_options=norm_options(name)``: the rows of FEATURE_NORMS pass through evaluate_heads
    (and its grid search) to every named head's pipeline."""
    from featx.heads import norm_options

    options = {**norm_options(norm), **({"pca": 8} if norm == "whiten" else {})}
    out = evaluate_heads(feature_set(120, 1), feature_set(60, 2), heads=["logreg", "knn"], cv=2,
                         head_options=options)
    for row in out:
        steps = row["estimator"].named_steps
        assert ("power" in steps) == ("power" in options)
        if "power" in options:
            assert steps["power"].power == 0.5 and "normalize" in steps
        if options.get("whiten"):
            assert steps["pca"].whiten and steps["pca"].n_components == 8
        assert row["accuracy"] > 0.5


def test_user_estimators_are_used_as_given():
    train, test = feature_set(12, 1), feature_set(9, 2)
    with pytest.raises(ValueError, match=r"n_neighbors <= n_samples_fit"):  # default k=15 > 12
        evaluate_heads(train, test, heads={"mine": make_head("knn")})


def test_finetune_row_can_be_appended(table):
    extended = HeadTable(table, class_names=table.class_names)
    extended.append({"name": "ft", "kind": "finetune", "accuracy": 1.0, "train_seconds": 60.0,
                     "backbone_forward_passes": 3600})
    assert extended.best()["name"] == "ft"
    assert extended.to_markdown().splitlines()[-1].startswith("| ft | finetune | 1.000 |  |")
    with pytest.raises(ValueError, match=r"kind='fine'"):
        extended.append({"name": "x", "kind": "fine"})


def test_input_errors_name_the_parameter():
    good = feature_set(30, 1)
    with pytest.raises(TypeError, match=r"train must be a FeatureSet.*got train=list"):
        evaluate_heads([1, 2], good)
    with pytest.raises(ValueError, match=r"test needs features of shape"):
        evaluate_heads(good, (good.features, good.labels[:-1]))
    other = SimpleNamespace(**{**vars(good), "class_names": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"test.class_names must equal"):
        evaluate_heads(good, other)
    with pytest.raises(ValueError, match=r"head must be one of .*got 'nope'"):
        evaluate_heads(good, good, heads=["logreg", "nope"])
    with pytest.raises(ValueError, match=r"by='loss'"):
        HeadTable().best("loss")
    with pytest.raises(ValueError, match=r"no row has a value"):
        HeadTable().best()



@pytest.fixture(scope="module")
def extracted(tmp_path_factory, make_images):
    """Real JPEGs through a real (random-weight) backbone under three configurations, all of
    1,280 columns: (input_size, pooling) -> (train FeatureSet, test FeatureSet)."""
    root = tmp_path_factory.mktemp("evaluate-images")
    files = make_images(root, 6, classes={"red": (220, 30, 30), "blue": (30, 40, 220)}, size=40)
    train, test = ImageDataset.from_paths(files, files.labels, name="colours").split(test_size=0.5)
    tiny = {"backbone": "mobilenet_v2", "weights": None, "cache": root / "cache", "verbose": 0}
    return {(size, pooling): tuple(extract_features(ds, input_size=size, pooling=pooling, **tiny)
                                   for ds in (train, test))
            for size, pooling in [(32, "avg"), (48, "avg"), (32, "max")]}


def test_features_of_different_extractor_configurations_are_refused(extracted):
    train, test = extracted[32, "avg"]
    assert evaluate_heads(train, FeatureSet.load(test.path), heads="logreg").names == ["logreg"]
    other_size, other_pooling = extracted[48, "avg"][1], extracted[32, "max"][1]
    assert other_size.features.shape == other_pooling.features.shape == test.features.shape
    with pytest.raises(ValueError, match=(
            r"^train and test features must come from the same extractor configuration; got "
            r"train=mobilenet_v2 at 32x32 \(key \w{8}\) and test=mobilenet_v2 at 48x48 "
            r"\(key \w{8}\)\. Features of different configurations are not comparable")):
        evaluate_heads(train, other_size, heads="logreg")
    with pytest.raises(ValueError, match=r"test=mobilenet_v2 at 32x32 \(key \w{8}\); they also "
                                         r"differ in pooling 'avg' vs 'max'\. "):
        evaluate_heads(train, other_pooling, heads="logreg")
    # Plain (X, y) pairs carry no configuration: only the shapes are checked.
    table = evaluate_heads((train.features, train.labels), other_size, heads="logreg")
    assert table["logreg"]["n_test"] == len(other_size)
