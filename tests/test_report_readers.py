"""Reports a reader trusts, ``featx predict --proba``, PIL images.

Real files and real Keras models (random weights, 32 px); the report's plots are checked on the
matplotlib figures themselves (axis limits, ticks, colours, labels), not only on the PNG files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import not_blank
from PIL import Image

from featx import report as rp
from featx.images import to_rgb
from featx.report import plots

ONE_EPOCH = {"loss": [0.9], "accuracy": [0.6], "val_loss": [1.0], "val_accuracy": [0.55],
             "warm_start": {"accuracy": 0.7, "val_accuracy": 0.5, "val_loss": 1.2}}
THREE_EPOCHS = {"loss": [1.2, 0.8, 0.5], "accuracy": [0.4, 0.6, 0.8],
                "val_loss": [1.3, 0.9, 0.7], "val_accuracy": [0.4, 0.5, 0.7]}
CLASSES = ["c0", "c1", "c2"]
TINY = dict(backbone="mobilenet_v2", weights=None, input_size=32, cache=False)


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plots save, by file name."""
    saved = {}
    real = plots._save

    def spy(fig, path, **kw):
        saved[Path(path).name] = fig
        return real(fig, path, **kw)

    monkeypatch.setattr(plots, "_save", spy)
    return saved


def _thumbnails(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- item 7: the report
def test_learning_curves_integer_epochs_warm_start_and_distinct_runs(tmp_path, figures):
    plots.plot_learning_curves({"one": ONE_EPOCH, "three": THREE_EPOCHS}, tmp_path / "lc.png")
    fig = figures["lc.png"]
    ax_loss, ax_acc = fig.axes[:2]
    assert ax_acc.get_xlim() == (-0.5, 3.5)  # epoch 0 (the warm start) to 3, not 0.945-1.05
    ticks = ax_acc.get_xticks()
    assert list(ticks) == [0, 1, 2, 3]
    assert ax_acc.get_xticklabels()[0].get_text().startswith("0\nwarm start")
    lines = {ln.get_label(): ln for ln in ax_acc.get_lines()}
    one, three = lines["one validation"], lines["three validation"]
    assert list(one.get_xdata()) == [0, 1] and list(one.get_ydata()) == [0.5, 0.55]
    assert list(lines["one train"].get_xdata()) == [0, 1]  # the probe's train accuracy too
    assert list(three.get_xdata()) == [1, 2, 3]  # no warm start recorded: starts at epoch 1
    assert one.get_color() != three.get_color() and one.get_marker() != three.get_marker()
    assert list(ax_loss.get_lines()[0].get_xdata()) == [1]  # no train loss at the warm start
    assert "warm start" in fig._suptitle.get_text()


def test_single_epoch_without_warm_start_has_one_integer_tick(tmp_path, figures):
    plots.plot_learning_curves({"a": {"loss": [1.0], "val_loss": [1.1]}}, tmp_path / "lc.png")
    ax = figures["lc.png"].axes[0]
    assert ax.get_xlim() == (0.5, 1.5) and list(ax.get_xticks()) == [1]


def test_confusion_colour_bar_is_labelled(tmp_path, figures):
    plots.plot_confusion(np.eye(3, dtype=int) * 4, CLASSES, tmp_path / "cm.png")
    colour_bar = figures["cm.png"].axes[-1]
    assert "fraction of the true class" in colour_bar.get_ylabel()


def test_per_class_metrics_match_scikit_learn():
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(1)
    true, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    pred[:3] = 3  # class 3 predicted more; and no image predicted as class 2 below
    pred[pred == 2] = 0
    rows = rp.per_class_metrics(confusion_matrix(true, pred), list("abcd"))
    p, r, f, s = precision_recall_fscore_support(true, pred, zero_division=0)
    np.testing.assert_allclose([x["precision"] for x in rows], p)
    np.testing.assert_allclose([x["recall"] for x in rows], r)
    np.testing.assert_allclose([x["f1"] for x in rows], f)
    assert [x["support"] for x in rows] == list(s) and rows[2]["precision"] == 0.0


def test_worst_confusions_most_frequent_pairs_first():
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    pred = np.array([1, 1, 0, 2, 1, 0, 0, 0, 0, 0, 1])
    #                            pairs: (2->0) x5, (0->1) x2, (1->2), (2->1)
    picks = plots.worst_confusions(true, pred, limit=8)
    assert picks[:4] == [5, 6, 7, 8]  # 4 of the biggest confusion first
    assert picks[4:6] == [0, 1] and set(picks[6:8]) == {3, 10}
    assert plots.worst_confusions(true, pred, limit=20)[-1] == 9  # then the rest of it
    assert plots.worst_confusions(true, true) == []


def test_report_explains_itself(tmp_path, figures):
    paths = _thumbnails(tmp_path / "images", 6)
    true, pred = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 0, 2, 1])
    train = test = type("F", (), {"features": np.eye(6) * 3, "labels": true})()
    curve = rp.few_shot_curve(train, test, ["logreg"], shots=[1, 0], repeats=2)
    run = {"seed": 7, "backbones": [{"backbone": "b0", "weights": "imagenet",
                                     "cache_key": "abc123", "cache_file": None}]}
    report = rp.write_report(
        tmp_path / "out", rows=[{"name": "logreg", "kind": "head", "accuracy": 0.5,
                                 "input_size": [32, 32]}],
        confusion={"name": "logreg", "class_names": CLASSES,
                   "matrix": [[1, 1, 0], [1, 1, 0], [0, 1, 1]]},
        histories={"finetune:blocks": ONE_EPOCH}, few_shot=curve,
        misclassified={"name": "logreg", "paths": paths, "true": true, "pred": pred,
                       "class_names": CLASSES},
        plots=["confusion", "learning_curves", "few_shot", "misclassified"], extra={"run": run})
    data = json.loads(report.files["report.json"].read_text())
    md = report.files["report.md"].read_text()

    # per-class metrics of the best model, in both files
    assert [r["class"] for r in data["per_class"]["rows"]] == CLASSES
    assert data["per_class"]["rows"][0] == {"class": "c0", "precision": 0.5, "recall": 0.5,
                                            "f1": 0.5, "support": 2}
    assert "| class | precision | recall | f1 | support |" in md and "| c2 | 1.0000 | 0.5000" in md
    # the gallery: worst confusions with true/predicted labels
    assert not_blank(report.files["misclassified"]) and "![misclassified]" in md
    assert data["misclassified"]["n_wrong"] == 3
    assert {(s["true"], s["predicted"]) for s in data["misclassified"]["shown"]} == {
        ("c0", "c1"), ("c1", "c0"), ("c2", "c1")}
    titles = [ax.get_title() for ax in figures["misclassified.png"].axes]
    assert "true: c0\npredicted: c1" in titles and len(titles) == 3
    # versions, seed, backbone and cache key
    for lib in ("featx", "keras", "keras_backend", "tensorflow", "scikit-learn", "numpy"):
        assert data["versions"][lib], lib
        assert f"{lib} {data['versions'][lib]}" in md
    assert data["run"]["seed"] == 7 and "- seed: `7`" in md
    assert "backbone `b0` (weights `imagenet`): cache key `abc123`" in md
    # the warm start is epoch 0 of the per-epoch table; the few-shot band is explained
    assert "| 0 (warm start) |  | 0.7000 | 1.2000 | 0.5000 |" in md  # no train loss
    assert "| 1 | 0.9000 | 0.6000 | 1.0000 | 0.5500 |" in md
    assert "shaded band: ±1 standard deviation across those draws" in md
    assert "over 2 random draws" in md and data["few_shot"]["repeats"] == 2
    footnote = [t.get_text() for t in figures["few_shot.png"].texts]
    assert any("shaded band" in t for t in footnote)


def test_pipeline_report_has_warm_start_gallery_and_keys(tmp_path):
    from featx.pipeline import run_pipeline

    cfg = {"data": {"name": "clothing-mini", "limit": 40, "seed": 3},
           "extract": {"backbone": "mobilenet_v2", "weights": "none", "input_size": 32,
                       "cache": str(tmp_path / "cache")},
           "heads": {"names": ["logreg"]},
           "finetune": {"strategies": ["blocks"], "blocks": ["top"], "epochs": 1,
                        "batch_size": 16, "augment": False, "input_size": 32},
           "report": {"plots": ["learning_curves", "misclassified"], "few_shot": []}}
    report = run_pipeline(cfg, out=tmp_path / "report", verbose=0, echo=None)
    data = report.data
    assert all(r["input_size"] == [32, 32] for r in data["results"])  # heads' rows too
    warm = data["histories"]["finetune:blocks"]["warm_start"]
    assert 0 <= warm["val_accuracy"] <= 1 and "val_loss" in warm
    assert len(data["histories"]["finetune:blocks"]["val_accuracy"]) == 1
    assert set(report.files) == {"report.md", "report.json", "learning_curves",
                                 "misclassified"}
    (b,) = data["run"]["backbones"]
    assert b["backbone"] == "mobilenet_v2" and len(b["cache_key"]) >= 8
    assert Path(b["cache_file"]).is_file() and data["run"]["seed"] == 3
    n_wrong = data["misclassified"]["n_wrong"]
    assert n_wrong == round((1 - data["best"]["accuracy"]) * data["misclassified"]["n_test"])
    assert data["per_class"]["name"] == data["best"]["name"]


# --------------------------------------------------------------------------- item 10: PIL
def _pil(n=6, size=(40, 36), seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
            for _ in range(n)]


def test_pil_images_are_accepted_like_their_uint8_array():
    from featx import FeatureExtractor, TransferClassifier

    images = _pil()
    images[1] = images[1].convert("L")  # any mode: converted to RGB
    images[2] = images[2].convert("RGBA")
    array = np.stack([np.asarray(to_rgb(im)) for im in images])  # as their files would read
    y = ["a", "b"] * 3
    clf = TransferClassifier(**TINY).fit(images, y)
    np.testing.assert_allclose(clf.predict_proba(images), clf.predict_proba(array), atol=1e-6)
    fx = FeatureExtractor(**TINY).fit(tuple(images))
    np.testing.assert_allclose(fx.transform(images), fx.transform(array), atol=1e-6)


def test_pil_images_of_different_sizes_or_alone_are_refused_clearly():
    from featx import TransferClassifier
    from featx.data import check_image_input

    mixed = _pil(2) + _pil(1, size=(20, 30))
    with pytest.raises(TypeError, match=r"X is a list of 3 PIL images of 2 different sizes "
                                        r"\(width x height: 40x36, 20x30\).*resize them"):
        check_image_input(mixed)
    with pytest.raises(TypeError, match=r"different sizes"):
        TransferClassifier(**TINY).fit(mixed, [0, 1, 0])
    with pytest.raises(TypeError, match=r"^X must be a list, .*; got a single PIL image "
                                        r"\(RGB, 40x36\); wrap it in a list$"):
        TransferClassifier(**TINY).fit(_pil(1)[0], [0])


def test_finetuned_classifier_input_takes_pil_images():
    from featx.finetune.data import as_images  # FineTunedClassifier's reading of X

    images = _pil(3)
    items, y = as_images(images, [0, 1, 0])
    assert items.dtype == np.uint8 and items.shape == (3, 36, 40, 3) and y == [0, 1, 0]
    np.testing.assert_array_equal(items[1], np.asarray(images[1]))
    with pytest.raises(TypeError, match="different sizes"):
        as_images(images + _pil(1, size=(8, 8)))


# --------------------------------------------------------------------------- item 8: predict
@pytest.fixture(scope="module")
def folder(tmp_path_factory, make_images) -> Path:
    root = tmp_path_factory.mktemp("predict") / "shapes"
    make_images(root, 6, classes=("red", "green", "blue"), size=40, folders=True)
    return root


def _fit(folder: Path, head: str, tmp: Path) -> Path:
    from featx.cli import main

    model = tmp / f"{head}.featx"
    assert main(["fit", str(folder), "--backbone", "mobilenet_v2", "--weights", "none",
                 "--input-size", "32", "--cache", str(tmp / "cache"), "--head", head,
                 "--out", str(model), "-q"]) == 0
    return model


def test_predict_probabilities_per_class_and_lf_endings(folder, tmp_path, capsys):
    import csv

    from featx.cli import main

    model = _fit(folder, "logreg", tmp_path)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(folder / "red"), "--out", str(out), "--trust",
                 "--cache", str(tmp_path / "cache")]) == 0
    raw = out.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0]) == ["path", "label", "probability", "proba_blue", "proba_green",
                             "proba_red"]
    for r in rows:
        p = [float(r[f"proba_{c}"]) for c in ("blue", "green", "red")]
        assert sum(p) == pytest.approx(1, abs=1e-4)
        assert float(r["probability"]) == max(p)
        assert r["label"] == ["blue", "green", "red"][int(np.argmax(p))]
    capsys.readouterr()
    assert main(["predict", str(model), str(folder / "red" / "0.jpg"), "--no-proba",
                 "--trust", "--cache", str(tmp_path / "cache")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "path,label"


def test_predict_svm_model_labels_only_and_proba_refused(folder, tmp_path, capsys):
    from featx.cli import main

    model = _fit(folder, "svm", tmp_path)
    capsys.readouterr()
    common = [str(model), str(folder / "blue"), "--trust", "--cache", str(tmp_path / "cache")]
    assert main(["predict", *common]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "path,label" and "\r" not in out
    assert main(["predict", *common, "--proba"]) != 0
    err = capsys.readouterr().err
    assert "--proba: the model (head 'svm') has no predict_proba" in err
    assert "--head logreg" in err
