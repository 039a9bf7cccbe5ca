"""Report folder, plots and the few-shot curve, on synthetic inputs (fast)."""

from __future__ import annotations

import json
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import not_blank

from featx import report as rp
from featx.report import few_shot, plots


def features(n_per_class=12, k=3, d=16, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    X = rng.normal(size=(len(y), d))
    X[np.arange(len(y)), y] += sep
    return SimpleNamespace(features=X, labels=y, class_names=[f"c{i}" for i in range(k)])


ROWS = [
    {"name": "b + logreg", "kind": "head", "accuracy": 0.81, "macro_f1": 0.8},
    {"name": "b + knn", "kind": "head", "accuracy": float("nan")},
    {"name": "b fine-tuned (blocks)", "kind": "finetune", "accuracy": 0.9, "epochs": 3,
     "input_size": [160, 160]},
    # two feature candidates of a feature choice: the cost plot draws them
    {"name": "c taps[-1]/logreg", "kind": "head", "accuracy": 0.7, "cv_score": 0.72,
     "cv_se": 0.02, "passes_per_image": 1, "seconds_per_image": 0.01, "features": "c taps[-1]"},
    {"name": "c views[none,flip]/logreg", "kind": "head", "accuracy": 0.75, "cv_score": 0.78,
     "cv_se": 0.02, "passes_per_image": 2, "seconds_per_image": 0.02,
     "features": "c views[none,flip]"},
]
HISTORY = {"loss": [1.2, 0.8, 0.5], "accuracy": [0.4, 0.6, 0.8], "val_loss": [1.3, 0.9, 0.7],
           "val_accuracy": [0.4, 0.5, 0.7]}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    train, test = features(seed=0), features(n_per_class=5, seed=1)
    curve = few_shot.few_shot_curve(train, test, ["logreg", "knn", "mlp"], shots=[1, 2, 5, 0],
                                    repeats=2)
    images = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3)).astype(np.uint8)
    from PIL import Image

    paths = [str(out / f"test-{i}.png") for i in range(2)]  # the misclassified gallery's
    for path, image in zip(paths, images, strict=True):
        Image.fromarray(image).save(path)
    report = rp.write_report(
        out, rows=ROWS, title="Synthetic", data={"source": "synthetic", "splits": {"train": 36},
                                                 "class_names": ["c0", "c1", "c2"]},
        confusion={"name": "b fine-tuned (blocks)", "class_names": ["c0", "c1", "c2"],
                   "matrix": np.array([[4, 1, 0], [0, 5, 0], [1, 0, 4]])},
        histories={"b fine-tuned (blocks)": HISTORY, "empty": {}}, few_shot=curve,
        augmentation={"images": images, "titles": ["c0", "c1"]},
        misclassified={"name": "b fine-tuned (blocks)", "paths": paths, "true": [0, 1],
                       "pred": [1, 1], "class_names": ["c0", "c1", "c2"]},
        extra={"timings": {"total_s": 1.5}, "config_toml": "[data]\nname = 'x'\n"})
    return report, curve


def test_report_files_exist_and_plots_are_not_blank(written):
    report, _ = written
    assert set(report.files) == {"report.md", "report.json", *rp.PLOTS}
    for name in rp.PLOTS:
        path = report.files[name]
        assert path.name == rp.PLOTS[name][0] and path.stat().st_size > 1000
        assert not_blank(path), name


def test_report_json_and_markdown(written):
    report, _ = written
    data = json.loads(report.files["report.json"].read_text())  # strict JSON: NaN -> null
    assert data["best"]["name"] == "b fine-tuned (blocks)" == report.best["name"]
    assert [r["name"] for r in data["results"]][0] == "b fine-tuned (blocks)"
    assert data["results"][-1]["accuracy"] is None
    assert data["plots"]["comparison"] == "comparison.png"
    md = report.files["report.md"].read_text()
    assert md.startswith("# Synthetic")
    assert "| b fine-tuned (blocks) | finetune | 160x160 | 0.900 |" in md
    assert "![confusion](confusion.png)" in md and "```toml" in md
    assert "## Few-shot" in md and "| 1 |" in md
    assert "b fine-tuned (blocks) 0.900" in repr(report)


def test_few_shot_curve(written):
    _, curve = written
    assert curve["n_per_class"] == [1, 2, 5, 12]
    assert set(curve["scores"]) == {"logreg", "knn", "mlp"}
    for head in ("knn", "mlp"):  # sized per point: 3 samples < 15 neighbours, no room to stop early
        assert np.isfinite(curve["scores"][head]).all(), curve["failed"][head]
        assert curve["failed"][head] == [None] * 4
    assert curve["scores"]["knn"][-1] > 0.8
    assert curve["scores"]["logreg"][-1] > 0.8  # separable features, all examples
    assert curve["chance"] == pytest.approx(1 / 3)


def test_few_shot_curve_custom_make_and_failures():
    from sklearn.neighbors import KNeighborsClassifier

    train, test = features(seed=0), features(n_per_class=5, seed=1)
    curve = few_shot.few_shot_curve(train, test, ["k5"], shots=[1, 0], repeats=1,
                                    make=lambda name: KNeighborsClassifier(5))  # used as given
    assert np.isnan(curve["scores"]["k5"][0]) and "n_neighbors" in curve["failed"]["k5"][0]
    assert curve["scores"]["k5"][1] > 0.8
    with pytest.raises(ValueError, match=r"head must be one of .*got 'nope'"):
        few_shot.few_shot_curve(train, test, ["nope"], shots=[1])


def test_plots_subset_and_missing_inputs(tmp_path):
    report = rp.write_report(tmp_path, rows=ROWS, plots=["comparison", "learning_curves"])
    assert set(report.files) == {"report.md", "report.json", "comparison"}  # no histories given
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['bars'\].*'comparison'"):
        rp.write_report(tmp_path, rows=ROWS, plots=["bars"])
    # rerun into the same folder without the comparison: its old PNG goes, nothing stale stays
    (tmp_path / "notes.png").write_bytes(b"the user's own file")
    rp.write_report(tmp_path, rows=ROWS, plots=[])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["notes.png"]


def test_a_users_file_named_like_a_plot_is_never_replaced(tmp_path):
    """Before: a plot's file name in the report folder was unlinked or overwritten whoever
    wrote it. Now a user's file of that name is refused before anything is written and left
    as it is; featx's own plot of an earlier report is replaced, or removed when not drawn."""
    from featx.errors import OutputExistsError

    (tmp_path / "confusion.png").write_bytes(b"the user's own chart")
    with pytest.raises(OutputExistsError, match=r"out_dir='.*confusion\.png' is a file featx "
                                                r"did not write; featx leaves it as it is: "
                                                r"choose another report folder"):
        rp.write_report(tmp_path, rows=ROWS, plots=["comparison", "confusion"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png"]  # nothing written
    report = rp.write_report(tmp_path, rows=ROWS, plots=["comparison"])  # not drawn: kept
    first = report.files["comparison"].stat().st_ino
    again = rp.write_report(tmp_path, rows=ROWS, plots=["comparison"])
    assert again.files["comparison"].stat().st_ino != first  # featx's own: replaced
    assert (tmp_path / "confusion.png").read_bytes() == b"the user's own chart"
    (tmp_path / "report.md").write_text("my edits to the report")
    with pytest.raises(OutputExistsError, match="report.md' is a file featx wrote that was "
                                                "changed since"):
        rp.write_report(tmp_path, rows=ROWS, plots=[])
    assert (tmp_path / "comparison.png").exists()  # refused before featx's plot was removed


def test_missing_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install 'featx\[plots\]'"):
        plots.plot_comparison(ROWS, tmp_path / "x.png")
    report = rp.write_report(tmp_path, rows=ROWS, plots=[])  # still fine without plots
    assert report.files["report.md"].exists()


def test_a_report_without_matplotlib_lists_the_plots_it_did_not_draw(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on a base install
    assert not plots.plots_available()
    with pytest.warns(plots.PlotsSkippedWarning) as record:
        report = rp.write_report(tmp_path, rows=ROWS, plots=["comparison", "confusion"])
    assert len(record) == 1 and str(record[0].message) == (
        "report plots not drawn (comparison, confusion): matplotlib is not installed; "
        "`pip install 'featx[plots]'` draws them")
    assert set(report.files) == {"report.md", "report.json"}
    assert report.data["plots_not_drawn"] == ["comparison", "confusion"]
    assert "_Plots not drawn: comparison, confusion (matplotlib is not installed; " \
           "`pip install 'featx[plots]'` draws them)._" in report.files["report.md"].read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing asked, nothing to say
        assert rp.write_report(tmp_path, rows=ROWS, plots=[]).data["plots_not_drawn"] == []


def test_report_reexports_the_moved_names():
    # the plots and the few-shot curve moved out of featx.report; old imports keep working
    for module in (plots, few_shot):
        for name in module.__all__:
            assert getattr(rp, name) is getattr(module, name) and name in rp.__all__, name


def test_augment_images_vary():
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype(np.uint8)
    out = plots.augment_images(images, n_variants=3, seed=1)
    assert out.shape == (2, 3, 32, 32, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[:, 0], out[:, 1])


@pytest.mark.parametrize("tied", [[], ["c taps[-1]"]])
def test_the_feature_choice_names_the_candidates_the_folds_cannot_rank(tmp_path, tied):
    selection = {"candidates": 2, "folds": 3, "probe": "logreg", "metric": "accuracy",
                 "rule": "best", "passes": 10, "cold_passes": 10, "extract_s": 1.0,
                 "select_s": 0.5, "tied": tied}
    report = rp.write_report(tmp_path, rows=ROWS[3:], plots=[], best=ROWS[4]["name"],
                             extra={"selection": selection})
    md = report.files["report.md"].read_text()
    assert "## Feature choice" in md
    line = [s for s in md.splitlines() if "score within the standard error" in s]
    assert len(line) == len(tied)
    if tied:
        assert line[0].startswith("1 other candidate(s)") and line[0].endswith("`c taps[-1]`.")
