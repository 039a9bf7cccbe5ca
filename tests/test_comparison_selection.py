"""Feature selection: layer taps from one pass, concatenation across
backbones, multi-view features with TTA, and feature choice by cross-validation on train only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import MODEL, assert_same, counted
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

import featx
from featx.comparison import (
    FeatureChoice,
    cv_fold_scores,
    cv_fold_scores_many,
    feature_choices,
    fit_views,
    halving_subsets,
    near_best,
    predict_views,
    select_features,
)
from featx.extract import FeatureSet, extract_features, forward_pass_count
from featx.extract.config import ExtractorConfig
from featx.extract.views import VIEWS, apply_view, check_views
from featx.heads import make_head

TAPS = [-1, -2, -3]


@pytest.fixture(scope="module")
def mini():
    data = featx.load_clothing_mini()
    return {s: data[s].subset(range(0, len(data[s]), 3)) for s in ("train", "test")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("quality-cache")


@pytest.fixture(scope="module")
def tapped(mini, cache):
    return counted(mini["train"], cache, layers=TAPS)


# -- taps ------------------------------------------------------------------------------------------
def test_every_tap_subset_is_a_slice_of_one_pass(mini, cache, tapped):
    fs, passes = tapped
    assert passes == len(mini["train"])  # one pass for all three taps
    spans = fs.tap_spans()
    assert [s[0] for s in spans] == TAPS and spans[0][1] == 0
    assert spans[-1][2] == fs.features.shape[1]
    assert json.loads(fs.attrs["tap_spans"]) == [list(s) for s in spans]
    for subset in ([-1], [-2, -3], [-3, -1]):
        before = forward_pass_count()
        sliced = fs.select_layers(subset)
        assert forward_pass_count() == before  # a slice, no backbone pass
        # the reference, a separate pass of that tap set: on Keras, which builds it in a second
        # where ONNX Runtime would first export one graph per tap set
        direct, _ = counted(mini["train"], False, layers=subset, runtime="keras")
        assert_same(sliced.features, direct.features)
        assert sliced.attrs["key"] == ExtractorConfig(
            "mobilenet_v2", weights=None, input_size=32, layers=subset).key


def test_the_last_tap_is_the_plain_pooled_output(mini, tapped):
    plain, _ = counted(mini["train"], False)
    assert_same(tapped[0].select_layers([-1]).features, plain.features)


def test_an_untapped_layer_is_named(tapped):
    with pytest.raises(ValueError, match=r"layers entry -4 was not tapped; .* \[-1, -2, -3\]"):
        tapped[0].select_layers([-4])


def test_candidate_layers_share_one_cache_entry(mini, cache, tapped):
    a = featx.FeatureExtractor(**{**MODEL, "verbose": 0}, layers=[-2], candidate_layers=TAPS,
                               cache=cache).fit()
    before = forward_pass_count()
    x = a.transform(mini["train"])
    assert forward_pass_count() == before  # the tapped fixture already extracted them
    assert_same(x, tapped[0].select_layers([-2]).features)
    with pytest.raises(ValueError, match="candidate_layers must hold every entry of layers"):
        featx.FeatureExtractor(**MODEL, layers=[-4], candidate_layers=TAPS).fit()


# -- concatenation ---------------------------------------------------------------------------------
def test_concat_aligns_rows_by_content_id_without_a_pass(mini, cache, tapped):
    a = tapped[0].select_layers([-1])
    b, _ = counted(mini["train"], cache, input_size=48)
    order = np.arange(len(b))[::-1]
    before = forward_pass_count()
    ab = FeatureSet.concat([a, b.subset(order)])
    assert forward_pass_count() == before
    np.testing.assert_array_equal(ab.features[:, : a.features.shape[1]], a.features)
    np.testing.assert_array_equal(ab.features[:, a.features.shape[1]:], b.features)
    assert ab.ids == a.ids and ab.labels.tolist() == a.labels.tolist()
    parts = json.loads(ab.attrs["parts"])
    assert [p["key"] for p in parts] == [a.attrs["key"], b.attrs["key"]]
    assert ab.attrs["key"] not in (a.attrs["key"], b.attrs["key"])
    clf = featx.TransferClassifier(head="logreg").fit(ab)
    assert clf.score(ab, np.asarray(ab.class_names)[ab.labels]) > 0.5
    with pytest.raises(ValueError, match="X holds features of"):
        clf.predict(FeatureSet.concat([b, a]))


def test_concat_drops_rows_a_part_lacks(tapped):
    a = tapped[0]
    ab = FeatureSet.concat([a, a.subset(range(1, len(a)))])
    assert len(ab) == len(a) - 1 and a.paths[0] in dict(ab.skipped)


# -- views -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("view", list(VIEWS))
def test_every_view_keeps_shape_and_dtype_and_is_deterministic(view):
    batch = np.random.default_rng(0).integers(0, 255, (3, 20, 24, 3), dtype=np.uint8)
    out = apply_view(view, batch)
    assert out.shape == batch.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, apply_view(view, batch.copy()))
    assert (view == "none") == bool(np.array_equal(out, batch))


def test_a_flip_view_is_the_flipped_image_cached_apart(tmp_path, make_dataset):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    paths, flipped = [], []
    for i, img in enumerate(images):
        for name, arr, out in (("p", img, paths), ("f", img[:, ::-1], flipped)):
            p = tmp_path / f"{name}{i}.png"
            Image.fromarray(np.ascontiguousarray(arr)).save(p)
            out.append(str(p))
    ds, ds_flipped = make_dataset(paths, name="plain"), make_dataset(flipped, name="flipped")
    fs, passes = counted(ds, tmp_path / "c", view="flip")
    assert passes == 4 and fs.attrs["view"] == "flip"
    assert_same(fs.features, counted(ds_flipped, False)[0].features)
    assert counted(ds, tmp_path / "c", view="flip")[1] == 0  # cached under its own key
    assert counted(ds, tmp_path / "c")[1] == 4  # the plain view is another entry
    with pytest.raises(ValueError, match="view must be one of"):
        extract_features(ds, view="mirror", **MODEL)


def test_a_classifier_trains_on_every_view_and_averages_them(mini, cache):
    clf = featx.TransferClassifier(**MODEL, views=["none", "flip"], cache=cache)
    clf.fit(mini["train"])
    assert clf.n_features_in_ == 1280
    proba = clf.predict_proba(mini["test"])
    single = featx.TransferClassifier(**MODEL, cache=cache).set_params(views=["flip"])
    assert proba.shape == (len(mini["test"]), len(clf.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert clf.predict(mini["test"]).tolist() == \
        clf.classes_[proba.argmax(axis=1)].tolist()
    assert single.fit(mini["train"]).predict_proba(mini["test"]).shape == proba.shape
    assert check_views(None) == ["none"]


# -- feature choice --------------------------------------------------------------------------------
def test_feature_choices_cross_backbones_taps_and_views():
    names = [c.name for c in feature_choices(["a", "b"], taps=[[-1], [-2, -3]],
                                             views=["none", "flip"], concat=True)]
    assert len(names) == 3 * 2 * 2 and "a+b taps[-2,-3] views[none,flip]" in names
    assert FeatureChoice(("a", "b"), None, ("none", "flip")).passes_per_image == 4


@pytest.fixture(scope="module")
def selection(mini, cache):
    choices = feature_choices(["mobilenet_v2"], taps=[[-1], [-2, -3]], views=["none", "flip"])
    kw = dict(folds=2, cache=cache, heads=["logreg", "knn"], halving=False,
              extract_params={"weights": None, "input_size": 32})
    return choices, kw, select_features(mini["train"], mini["test"], choices, **kw)


def test_selection_chooses_by_the_one_se_rule_and_reports_every_candidate(selection):
    choices, _, result = selection
    rows = list(result.table)
    probe = [r for r in rows if r["name"].endswith("/logreg")]
    assert len(probe) == len(choices)
    top = max(probe, key=lambda r: r["cv_score"])
    lead = np.asarray(top["cv_folds"])
    assert len(lead) == 2 and top["cv_score"] == pytest.approx(lead.mean())
    near = [r for r in probe  # paired: the standard error of the fold-by-fold differences
            if r["cv_score"] >= top["cv_score"] - np.std(lead - r["cv_folds"], ddof=1)
            / np.sqrt(2) - 1e-12]
    chosen = min(near, key=lambda r: (r["seconds_per_image"], -r["cv_score"]))
    # the others the folds cannot rank are named: each as good a choice by cross-validation
    assert sorted(result.tied) == sorted(r["features"] for r in near if r is not chosen)
    # on the chosen features the probe's C grid and every head are cross-validated too: the
    # best CV score is the choice
    on_chosen = [r for r in rows if r["features"] == chosen["features"]]
    assert {r["name"] for r in on_chosen} == {chosen["name"], f"{chosen['features']}/knn",
                                              f"{chosen['features']}/logreg C=0.01",
                                              f"{chosen['features']}/logreg C=1.0"}
    tuned = {r["name"].rsplit(" ", 1)[-1]: r for r in on_chosen if " C=" in r["name"]}
    assert tuned["C=0.01"]["best_params"] == {"clf__C": 0.01}
    assert tuned["C=0.01"]["estimator"].get_params()["clf__C"] == 0.01
    assert not tuned["C=0.01"]["candidate"]
    # in table order, a row replaces the choice so far only when better by more than the
    # standard error of the paired fold differences
    winner = chosen
    for r in [r for r in rows if not r["candidate"]]:
        diff = np.subtract(r["cv_folds"], winner["cv_folds"])
        if diff.mean() > np.std(diff, ddof=1) / np.sqrt(len(diff)) + 1e-12:
            winner = r
    assert result.selected == winner["name"] == rows[0]["name"] and rows[0]["selected"]
    assert [r["name"] for r in rows if r["selected"]] == [winner["name"]]
    assert all(r["cv_se"] is not None for r in on_chosen)
    assert all(r["backbone_forward_passes"] >= 0 and r["passes_per_image"] in (1, 2)
               for r in rows)


def test_every_candidate_row_carries_its_cost(selection):
    _, _, result = selection
    probe = [r for r in result.table if r["name"].endswith("/logreg")]
    speed = result.bank.speed[("mobilenet_v2", None)]
    assert speed > 0
    for r in probe:
        assert r["predict_passes_per_image"] == r["passes_per_image"] == len(r["views"])
        assert r["seconds_per_image"] == pytest.approx(speed * len(r["views"]))
        assert r["n_features"] > 0 and r["cv_se"] >= 0
    # flipping doubles the cost; the taps are free
    assert len({r["seconds_per_image"] for r in probe}) == 2


def test_a_budget_in_passes_or_seconds_keeps_only_candidates_within_it(mini, selection):
    choices, kw, result = selection
    before = forward_pass_count()
    one_pass = select_features(mini["train"], mini["test"], choices, budget=1, rule="best", **kw)
    assert forward_pass_count() == before
    chosen = next(r for r in one_pass.table if r["selected"])
    assert chosen["passes_per_image"] == 1
    candidate = next(r for r in one_pass.table
                     if r["candidate"] and r["features"] == chosen["features"])
    assert candidate["cv_score"] == max(r["cv_score"] for r in one_pass.table
                                        if r["candidate"] and r["passes_per_image"] == 1)
    with pytest.raises(ValueError, match=r"budget='0.001ms' leaves no candidate: the cheapest "
                                         r"costs 1 pass\(es\) per image, [\d.]+ ms per image"):
        select_features(mini["train"], mini["test"], choices, budget="0.001ms", **kw)
    lines = []
    with pytest.raises(ValueError, match=r"budget=0.5 leaves no candidate: the cheapest costs 1 "
                                         r"pass\(es\) per image; raise the budget"):
        select_features(mini["train"], mini["test"], choices, budget=0.5, echo=lines.append,
                        **kw)
    assert lines == []  # refused before any extraction


def test_successive_halving_rules_out_candidates_on_part_of_train(cache):
    data = featx.load_clothing_mini()  # 30 training images per class: rounds of 70, 150, 300
    train, test = data["train"], data["test"]
    choices = feature_choices(["mobilenet_v2"], taps=[[-1], [-2], [-3], [-2, -3]],
                              views=["none", "flip"])
    lines = []
    before = forward_pass_count()
    result = select_features(train, test, choices, folds=2, cache=cache, heads=["logreg"],
                             extract_params={"weights": None, "input_size": 32}, verbose=0,
                             echo=lines.append)
    passes = forward_pass_count() - before
    probe = [r for r in result.table if r["candidate"]]
    assert len(probe) + len(result.eliminated) == len(choices) and result.eliminated
    assert [line.split(":")[1].strip() for line in lines if " round " in line] == \
        ["round 1 on 70 of 300 training images", "round 2 on 150 of 300 training images"]
    assert {row["n_train"] for row in result.eliminated} <= {70, 150}
    # the others the folds cannot rank with the best are named, in the log too
    near = [probe[i]["features"] for i in near_best(probe)]
    assert sorted(result.tied) == sorted(f for f in near if f != probe[0]["features"])
    assert any(f"{len(result.tied)} other candidate(s) score within" in line
               for line in lines) == bool(result.tied)
    assert not {row["features"] for row in result.eliminated} & {r["features"] for r in probe}
    assert all(r["n_train"] == 300 for r in probe)
    # a row extracted in an early round is not extracted again: at most every image once per view
    assert 0 < passes <= result.cold_passes <= (len(train) + len(test)) * 2
    assert sum(result.bank.passes.values()) == passes
    assert min(result.timings.values()) >= 0 and result.timings["select_s"] > 0
    # a row ruled out in round 1 has the probe's folds on that round's rows (cached: no pass):
    # each image in the fold a stratified split of the whole training split gives it
    first = next(row for row in result.eliminated if row["n_train"] == 70)
    choice = next(c for c in choices if c.name == first["features"])
    rows = halving_subsets(train.labels, folds=2)[0]
    before = forward_pass_count()
    views = [extract_features(train.subset(rows), "mobilenet_v2", layers=[-1, -2, -3], view=v,
                              cache=cache, weights=None, input_size=32,
                              verbose=0).select_layers(list(choice.taps)) for v in choice.views]
    assert forward_pass_count() == before
    fold_of = {}
    for k, (_, held) in enumerate(StratifiedKFold(2, shuffle=True, random_state=0).split(
            np.zeros(len(train)), train.labels)):
        fold_of.update((train.paths[i], k) for i in held)
    at, y = np.array([fold_of[p] for p in views[0].paths]), views[0].labels
    head = make_head("logreg", random_state=0, n_samples=len(rows), n_classes=10)
    expected = []
    for k in range(2):
        fitted = fit_views(clone(head), [np.asarray(v.features)[at != k] for v in views],
                           y[at != k])
        held = predict_views(fitted, [np.asarray(v.features)[at == k] for v in views])
        expected.append(np.mean(held == y[at == k]))
    assert first["cv_folds"] == pytest.approx(expected)
    again = select_features(train, test, choices, folds=2, cache=cache, heads=["logreg"],
                            extract_params={"weights": None, "input_size": 32}, verbose=0,
                            halving=False)
    assert len([r for r in again.table if r["candidate"]]) == len(choices)
    assert not again.eliminated and again.cold_passes == (len(train) + len(test)) * 2


def test_halving_starts_each_probe_from_its_fit_of_the_round_before(cache, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    data = featx.load_clothing_mini()
    train, test = data["train"], data["test"]
    choices = feature_choices(["mobilenet_v2"], taps=[[-1], [-2], [-3], [-2, -3]])
    fits, fit = [], LogisticRegression.fit

    def spy(self, X, y, sample_weight=None):  # the real fit; its start, rows, iterations, C
        out = fit(self, X, y, sample_weight)
        fits.append((self.warm_start, len(X), int(self.n_iter_.max()), self.C))
        return out

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    result = select_features(train, test, choices, folds=2, cache=cache, heads=["logreg"],
                             extract_params={"weights": None, "input_size": 32}, verbose=0)
    # round 1 (70 images, about 35 per fold) starts cold; rounds 2 (150) and 3 (300), and the
    # probe's other values of C on the chosen features, start from the fits before
    warm = [f for f in fits if f[0]]
    assert all(n < 40 for start, n, _, _ in fits if not start and n < 150)
    assert {n for _, n, _, _ in warm} >= {150} and all(40 < n <= 150 for _, n, _, _ in warm)
    assert {c for _, _, _, c in warm} == {0.01, 0.1, 1.0}
    # the same folds fitted cold: the same scores within a few images (fewer iterations is a
    # measurement on real features: benchmarks/halving_rounds.py --warm)
    for row in (r for r in result.table if r["candidate"]):
        choice = next(c for c in choices if c.name == row["features"])
        views = result.bank.features(choice, "train")
        head = make_head("logreg", random_state=0, n_samples=len(views[0]), n_classes=10)
        again = cv_fold_scores(head, [np.asarray(v.features) for v in views], views[0].labels,
                               folds=2)
        assert np.abs(np.subtract(row["cv_folds"], again)).max() <= 3 / 150


def test_one_pool_scores_several_candidates_as_one_at_a_time():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(90, 6)), np.repeat([0, 1, 2], 30)
    X[:, 0] += y
    heads = [(LogisticRegression(C=c), [X, X[:, ::-1]]) for c in (0.01, 1.0)]
    pooled = cv_fold_scores_many(heads, y, folds=3, n_jobs=2)
    alone = [cv_fold_scores(h, v, y, folds=3, n_jobs=1) for h, v in heads]
    assert [list(p) for p in pooled] == [list(a) for a in alone]
    assert len({tuple(p) for p in pooled}) == 2  # two candidates, two sets of scores


def test_the_one_se_rule_compares_candidates_fold_by_fold():
    from featx.comparison import choose_candidate, near_best

    # the cheap candidate is 0.01 below the best on every fold: the folds tell them apart,
    # though its score is within the best's own standard error (0.011)
    rows = [dict(cv_score=0.90, cv_se=0.0115, cv_folds=[0.92, 0.90, 0.88],
                 passes_per_image=3, seconds_per_image=0.06),
            dict(cv_score=0.89, cv_se=0.0115, cv_folds=[0.91, 0.89, 0.87],
                 passes_per_image=1, seconds_per_image=0.02)]
    assert near_best(rows) == [0] and choose_candidate(rows) == 0
    # the same scores, unevenly spread over the folds: the difference is noise
    rows[1]["cv_folds"] = [0.93, 0.86, 0.88]
    assert near_best(rows) == [0, 1] and choose_candidate(rows) == 1
    # rows without fold scores fall back on the best row's standard error
    assert near_best([{k: v for k, v in r.items() if k != "cv_folds"} for r in rows]) == [0, 1]


def test_normalisations_are_candidates_that_reach_every_head(mini, selection):
    choices, kw, _ = selection
    norms = feature_choices(["mobilenet_v2"], taps=[[-1], [-2, -3]],
                            norms=["none", "sqrt", "l2"])
    assert [c.norm for c in norms] == ["none", "none", "sqrt", "sqrt", "l2", "l2"]
    assert {c.passes_per_image for c in norms} == {1}  # free: no backbone pass
    before = forward_pass_count()
    result = select_features(mini["train"], mini["test"], norms, **kw)
    assert forward_pass_count() == before  # the same cache entry as the plain candidates
    rows = {r["name"]: r for r in result.table}
    sqrt = rows["mobilenet_v2 taps[-1] norm[sqrt]/logreg"]
    assert sqrt["norm"] == "sqrt" and "power" in sqrt["estimator"].named_steps
    assert "normalize" in rows["mobilenet_v2 taps[-1] norm[l2]/logreg"]["estimator"].named_steps
    plain = rows["mobilenet_v2 taps[-1]/logreg"]["estimator"].named_steps
    assert "power" not in plain and "normalize" not in plain
    chosen = next(r for r in result.table if r["selected"])
    assert all(r["norm"] == chosen["norm"] for r in result.table if not r["candidate"])
    with pytest.raises(ValueError, match=r"norm.*'sqrtt'.*sqrt"):
        feature_choices(["mobilenet_v2"], norms=["sqrtt"])
    with pytest.raises(ValueError, match=r"norms must be a non-empty list"):
        feature_choices(["mobilenet_v2"], norms="sqrt")


def test_input_sizes_are_candidates_cached_and_timed_per_size(mini, tmp_path):
    choices = feature_choices(["mobilenet_v2"], sizes=[32, 48])
    assert [c.name for c in choices] == ["mobilenet_v2 32px", "mobilenet_v2 48px"]
    assert {c.passes_per_image for c in choices} == {1}
    kw = dict(folds=2, cache=tmp_path, heads=["logreg"], halving=False, tune=False, verbose=0,
              extract_params={"weights": None})
    before = forward_pass_count()
    result = select_features(mini["train"], mini["test"], choices, **kw)
    n = len(mini["train"]) + len(mini["test"])
    assert forward_pass_count() - before == 2 * n  # one extraction per size
    rows = {r["features"]: r for r in result.table}
    assert rows["mobilenet_v2 32px"]["input_size"] == [32, 32]
    assert rows["mobilenet_v2 48px"]["input_size"] == [48, 48]
    assert set(result.bank.speed) == {("mobilenet_v2", 32), ("mobilenet_v2", 48)}
    assert result.cold_passes == 2 * n
    before = forward_pass_count()
    select_features(mini["train"], mini["test"], choices, **kw)
    assert forward_pass_count() == before  # each size its own cache entry
    for bad in ([], [4], ["big"], 224, [True]):
        with pytest.raises(ValueError, match=r"sizes must be a non-empty list of input sizes"):
            feature_choices(["mobilenet_v2"], sizes=bad)


def test_tune_false_fits_the_probe_at_its_defaults_only(mini, selection):
    choices, kw, _ = selection
    result = select_features(mini["train"], mini["test"], choices, **{**kw, "tune": False})
    assert not [r for r in result.table if " C=" in r["name"]]


ROWS = [dict(cv_score=0.90, cv_se=0.02, passes_per_image=6, seconds_per_image=0.12),
        dict(cv_score=0.89, cv_se=0.02, passes_per_image=2, seconds_per_image=0.03),
        dict(cv_score=0.88, cv_se=0.02, passes_per_image=1, seconds_per_image=0.04),
        dict(cv_score=0.80, cv_se=0.02, passes_per_image=1, seconds_per_image=0.01)]


@pytest.mark.parametrize(("rule", "budget", "chosen"), [
    ("best", None, 0),
    ("one_se", None, 1),       # within 0.02 of 0.90, and the fastest of those
    ("one_se", 1, 2),          # one pass: 0.88 beats 0.80 by more than a standard error
    ("best", "35ms", 1),
    ("one_se", "0.01s", 3),
    ("one_se", 6, 1),
    ("auto", None, 1),         # no budget: one_se
    ("auto", 6, 0),            # within a budget: the best it buys
    ("auto", "35ms", 1),
])
def test_choose_candidate_rules_and_budgets(rule, budget, chosen):
    from featx.comparison import choose_candidate

    assert choose_candidate(ROWS, rule=rule, budget=budget) == chosen


def test_of_equal_cost_the_better_score_is_chosen():
    from featx.comparison import choose_candidate

    rows = [dict(cv_score=0.87, cv_se=0.02, passes_per_image=3, seconds_per_image=0.06),
            dict(cv_score=0.855, cv_se=0.01, passes_per_image=3, seconds_per_image=0.02),
            dict(cv_score=0.86, cv_se=0.01, passes_per_image=3, seconds_per_image=0.02)]
    assert choose_candidate(rows) == 2


@pytest.mark.parametrize("budget", [0, -1, "fast", True, "0ms"])
def test_a_bad_budget_is_named(budget):
    from featx.comparison import check_budget

    with pytest.raises(ValueError, match=r"budget must be backbone passes per image .* got "
                                         rf"budget={budget!r}".replace("(", r"\(")):
        check_budget(budget)


def test_head_options_reach_the_probe_and_the_heads_after_selection(mini, selection):
    from featx.heads import ClassBiasClassifier

    choices, kw, _ = selection
    lines = []
    result = select_features(mini["train"], mini["test"], choices,
                             head_options={"imbalance": "prior"}, echo=lines.append, **kw)
    for row in result.table:
        assert isinstance(row["estimator"].named_steps["clf"], ClassBiasClassifier), row["name"]
    assert any(line.startswith("heads: knn on ") for line in lines)
    assert any(line.startswith("select: chose ") for line in lines)
    with pytest.raises(ValueError, match=r"head_options \['bogus'\] are not make_head options"):
        select_features(mini["train"], mini["test"], choices, head_options={"bogus": 1}, **kw)


def test_selection_never_looks_at_the_test_labels(mini, selection):
    choices, kw, result = selection
    test = mini["test"]
    shuffled = featx.ImageDataset(test.paths, np.random.default_rng(0).permutation(test.labels),
                                  test.class_names)
    before = forward_pass_count()
    again = select_features(mini["train"], shuffled, choices, **kw)
    assert forward_pass_count() == before  # everything from the cache
    assert again.selected == result.selected
    assert [r["cv_score"] for r in again.table if r["name"].endswith("/logreg")] == \
        [r["cv_score"] for r in result.table if r["name"].endswith("/logreg")]


# -- the pipeline's feature-choice step ------------------------------------------------------------
def _pipeline(cache, **extract):
    return {"data": {"name": "clothing-mini", "limit": 9},
            "extract": {"backbone": "mobilenet_v2", "weights": "none", "input_size": 32,
                        "cache": str(cache), **extract},
            "heads": {"names": ["logreg", "knn"]}, "select": {"folds": 2},
            "report": {"plots": [], "few_shot": []}}


def test_a_pipeline_reports_every_candidate_and_the_cv_choice_as_best(cache, tmp_path):
    from featx.pipeline import run_pipeline

    cfg = _pipeline(cache, taps=[[-1], [-2, -1]], views=["none", "flip"])
    cfg["report"]["plots"] = ["cost"]
    report = run_pipeline(cfg, out=tmp_path / "r", echo=None, verbose=0)
    payload = json.loads((tmp_path / "r" / "report.json").read_text())
    assert payload["plots"] == {"cost": "cost.png"} and (tmp_path / "r" / "cost.png").stat().st_size
    text = (tmp_path / "r" / "report.md").read_text()
    assert "## Feature choice" in text and "4 candidates, scored by 2-fold" in text
    assert f"What choosing cost: {payload['selection']['passes']} backbone passes" in text
    assert f"{payload['selection']['cold_passes']} on an empty cache" in text
    assert "the cheapest candidate (forward seconds per image)" in text
    out = payload["selection"]["eliminated"]
    assert len([r for r in report.rows if r["name"].endswith("/logreg")]) + len(out) == 4
    assert payload["selection"]["candidates"] == 4
    tied = payload["selection"]["tied"]
    assert isinstance(tied, list) and payload["best"]["features"] not in tied
    assert ("other candidate(s) score within the standard error" in text) == bool(tied)
    assert all(f"`{name}`" in text for name in tied)
    if out:  # halving ruled some out on part of train: the report lists them
        assert f"Ruled out early by successive halving ({len(out)};" in \
            (tmp_path / "r" / "report.md").read_text()
    from featx.comparison import choose_candidate

    probe = [r for r in payload["results"] if r.get("candidate")]
    features = probe[choose_candidate(probe)]["features"]
    best = payload["best"]
    assert best["selected"] and best["features"] == features
    assert best["cv_score"] == max(r["cv_score"] for r in payload["results"]
                                   if r["features"] == features)
    assert "chosen by accuracy in cross-validation on the training split" in \
        (tmp_path / "r" / "report.md").read_text()


def test_old_pipelines_keep_their_meaning_and_bad_taps_are_named():
    from featx.pipeline import ConfigError, validate_config

    cfg = validate_config({"data": {"name": "clothing-mini"}})
    assert cfg["extract"]["taps"] == [] and cfg["extract"]["views"] == ["none"]
    assert not cfg["extract"]["concat"] and cfg["select"]["folds"] == 5
    with pytest.raises(ConfigError, match=r"extract.taps\[0\] must be a non-empty list"):
        validate_config({"data": {"name": "clothing-mini"}, "extract": {"taps": [[1]]}})
    with pytest.raises(ConfigError, match="extract.views.* 'mirror' is not allowed"):
        validate_config({"data": {"name": "clothing-mini"}, "extract": {"views": ["mirror"]}})


def test_advise_measures_the_feature_choice_on_training_images_only(mini, cache):
    from featx.advise import advise

    advice = advise(mini, backbone="mobilenet_v2", weights=None, input_size=32, cache=cache,
                    taps=[[-1], [-2, -1]], folds=2)
    f = advice.features
    assert set(f["scores"]) == {"mobilenet_v2 taps[-1]", "mobilenet_v2 taps[-2,-1]"}
    assert f["scores"][f["choice"]] == max(f["scores"].values())
    assert "Features: " in str(advice) and f["pipeline"].startswith("[extract] taps = ")
    assert advise(mini, backbone="mobilenet_v2", weights=None, input_size=32,
                  cache=cache).features is None


def test_a_feature_choice_runs_next_to_fine_tuning_and_the_few_shot_curve(cache, tmp_path):
    from featx.pipeline import run_pipeline

    cfg = _pipeline(cache, taps=[[-1], [-2, -3]], layers=[-1, -2, -3])
    cfg["finetune"] = {"strategies": ["blocks"], "epochs": 1, "batch_size": 16}
    cfg["report"] = {"plots": [], "few_shot": [1, 0], "few_shot_repeats": 1}
    report = run_pipeline(cfg, out=tmp_path / "r", echo=None, verbose=0)
    names = [r["name"] for r in report.rows]
    assert "mobilenet_v2/finetune:blocks" in names
    assert report.best["selected"] and report.best["taps"] in ([-1], [-2, -3])
    payload = json.loads((tmp_path / "r" / "report.json").read_text())
    assert payload["few_shot"]["scores"] and payload["best"]["name"] == report.best["name"]
