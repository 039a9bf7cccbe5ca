"""featx.audit (``featx.inspect``): duplicates, leaks, label errors, outliers and class health on
cached features, on real JPEG files with known problems planted, a random-weight MobileNetV2 at
32 px."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import MODEL

import featx
from featx.audit import (
    COLUMNS,
    KINDS,
    RECIPES,
    Findings,
    inspect,
    label_scores,
    nearest,
    out_of_fold_proba,
    reencode,
    threshold_from,
    unit_rows,
)
from featx.errors import OutputExistsError

pytestmark = pytest.mark.filterwarnings("ignore::featx.errors.SkippedImagesWarning")
CLASSES = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}
SETTINGS = {k: v for k, v in MODEL.items() if k != "verbose"}


def _photo(k: int, tint, size: int = 64) -> np.ndarray:
    """A smooth, distinct picture (a random 4x4 grid blown up) tinted by its class: JPEG and a
    0.9x resize keep it recognisable, as they keep a photo."""
    from PIL import Image

    rng = np.random.default_rng(1000 + k)
    grid = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float64)
    return np.clip(0.8 * base + 0.2 * np.asarray(tint, np.float64), 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray, quality: int = 92) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """``data/{train,test}/<class>/`` with known problems: one test image an exact copy of a
    training image, one a re-encoded (0.9x, JPEG 70) copy, one unreadable training file."""
    root = tmp_path_factory.mktemp("audit") / "data"
    k = 0
    for split, n in (("train", 14), ("test", 4)):
        for name, tint in CLASSES.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                (root / split / name / f"{i}.jpg").write_bytes(_jpeg(_photo(k, tint)))
                k += 1
    exact = root / "test" / "blue" / "copy.jpg"
    exact.write_bytes((root / "train" / "blue" / "3.jpg").read_bytes())
    near = root / "test" / "red" / "reencoded.jpg"
    near.write_bytes(reencode(_photo(5, CLASSES["red"]), "resize0.9_jpeg70"))  # train/red/5
    (root / "train" / "red" / "broken.jpg").write_bytes(b"\xff\xd8 not a picture")
    return {"root": root, "exact": str(exact), "near": str(near),
            "near_twin": str(root / "train" / "red" / "5.jpg"),
            "exact_twin": str(root / "train" / "blue" / "3.jpg"),
            "broken": str(root / "train" / "red" / "broken.jpg")}


@pytest.fixture(scope="module")
def found(planted, tmp_path_factory):
    """One inspection of the planted data (threshold calibrated), with the backbone passes of
    the extraction and of the inspection counted apart, and the data's bytes before."""
    from featx.extract import extract_features, forward_pass_count
    from featx.sources import resolve_data

    cache = tmp_path_factory.mktemp("audit-cache")
    before = _digests(planted["root"])
    splits = resolve_data(str(planted["root"]))
    for ds in splits.values():
        extract_features(ds, cache=cache, **MODEL)
    start = forward_pass_count()
    result = inspect(str(planted["root"]), cache=cache, folds=4, calibration_images=8,
                     **SETTINGS)
    first = forward_pass_count() - start
    start = forward_pass_count()
    again = inspect(str(planted["root"]), cache=cache, folds=4, calibration_images=8,
                    **SETTINGS)
    return {"result": result, "first_passes": first, "again": again,
            "again_passes": forward_pass_count() - start, "before": before, "cache": cache}


def _row(findings, kind, path):
    rows = [r for r in findings if r["kind"] == kind and r["path"] == path]
    assert rows, f"no {kind} finding for {path}: {findings.counts()}"
    return rows[0]


# --------------------------------------------------------------------------- what is found
def test_exact_copy_is_a_duplicate_and_a_leak(found, planted):
    findings = found["result"].findings
    dup = _row(findings, "exact_duplicate", planted["exact"])
    assert dup["other_path"] == planted["exact_twin"] and dup["score"] == 1.0
    assert (dup["split"], dup["other_split"]) == ("test", "train")
    leak = _row(findings, "leak", planted["exact"])
    assert leak["other_path"] == planted["exact_twin"]


def test_reencoded_copy_is_a_leak_and_untouched_test_images_are_not(found, planted):
    result = found["result"]
    leak = _row(result.findings, "leak", planted["near"])
    assert leak["other_path"] == planted["near_twin"]
    assert leak["score"] >= result.calibration.threshold
    assert result.leaked("test") == {planted["near"], planted["exact"]}


def test_flipped_label_is_flagged_with_its_true_class(make_images, tmp_path):
    """Noisy images tinted by class (separable even on random-weight features), one red image
    filed under green."""
    root = tmp_path / "tinted"
    make_images(root, 10, classes=("red", "green", "blue"), size=40, folders=True)
    flipped = root / "green" / "from-red.jpg"
    (root / "red" / "9.jpg").rename(flipped)
    result = inspect({"train": featx.ImageDataset.from_directory(root)}, threshold=0.9999,
                     folds=3, cache=tmp_path / "cache", **SETTINGS)
    row = _row(result.findings, "label_error", str(flipped))
    assert (row["given_label"], row["suggested_label"]) == ("green", "red")
    ranked = sorted(result.rows["train"], key=lambda r: -r["label_score"])
    assert ranked[0]["path"] == str(flipped)
    assert len(result.findings.of_kind("label_error")) <= 3


def test_unreadable_file_is_listed_with_its_reason(found, planted):
    row = _row(found["result"].findings, "skipped", planted["broken"])
    assert row["split"] == "train" and row["reason"]


def test_class_health_counts_every_split(found):
    health = {r["class"]: r for r in found["result"].class_health}
    assert health["red"]["train"] == 14 and health["green"]["train"] == 14
    assert (health["blue"]["test"], health["red"]["test"], health["green"]["test"]) == (5, 5, 4)
    assert not any("note" in r for r in health.values())  # 14 or more each: enough
    assert not found["result"].notes  # balanced too


def test_no_backbone_pass_but_the_calibration_sample_and_none_when_cached(found):
    assert found["first_passes"] == 8 * len(RECIPES)  # the re-encodes only
    assert found["again_passes"] == 0
    assert found["again"].backbone_passes == 0
    assert found["again"].findings == found["result"].findings


def test_a_given_threshold_runs_no_backbone(found, planted):
    from featx.extract import forward_pass_count

    start = forward_pass_count()
    result = inspect(str(planted["root"]), cache=found["cache"], folds=4, threshold=0.9999,
                     **SETTINGS)
    assert forward_pass_count() - start == 0
    assert result.calibration.method == "given"
    assert result.leaked("test") == {planted["exact"]}  # the re-encode is below 0.9999


def test_featx_inspect_is_the_function_and_a_featureset_dict_works(found, planted):
    from featx.extract import extract_features
    from featx.sources import resolve_data

    assert featx.inspect is inspect
    splits = {s: extract_features(ds, cache=found["cache"], **MODEL)
              for s, ds in resolve_data(str(planted["root"])).items()}
    result = featx.inspect(splits, folds=4, calibration_images=8, cache=found["cache"])
    assert result.leaked("test") == found["result"].leaked("test")


# --------------------------------------------------------------------------- what is written
@pytest.fixture(scope="module")
def written(found, tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect-out") / "findings"
    clean = out.parent / "clean.csv"
    files = found["result"].write(out, clean_list=clean, gallery=5)
    return {"out": out, "files": files, "clean": clean}


def test_findings_csv_has_one_row_per_finding(found, written):
    with open(written["out"] / "findings.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == COLUMNS
    assert len(rows) == len(found["result"].findings)
    assert {r["kind"] for r in rows} <= set(KINDS)
    assert {r["kind"] for r in rows} >= {"exact_duplicate", "leak", "label_error", "skipped"}


def test_every_gallery_image_links_to_its_file(found, written):
    out = written["out"]
    text = (out / "report.md").read_text()
    links = re.findall(r"\]\(<([^>]+)>\)", text)
    assert links
    for link in links:
        assert (out / link).resolve().is_file(), link
    thumbs = re.findall(r"\]\((thumbs/[^)]+)\)", text)
    assert thumbs and all((out / t).is_file() for t in thumbs)
    assert "## Leak: 2" in text and "Label error" in text


def test_clean_list_leaves_out_the_copies_and_reads_back(found, written, planted):
    from featx.sources import resolve_data

    with open(written["clean"], newline="") as f:
        rows = list(csv.DictReader(f))
    paths = {r["path"] for r in rows}
    assert planted["exact"] not in paths and planted["near"] not in paths
    labels = {r["path"] for r in found["result"].findings if r["kind"] == "label_error"}
    assert labels and labels <= paths  # labels are for a person to judge: kept by default
    splits = resolve_data(str(written["clean"]))
    assert len(splits["test"]) == len([r for r in rows if r["split"] == "test"])


def test_the_users_files_are_never_changed(found, written, planted):
    assert _digests(planted["root"]) == found["before"]


def test_a_file_featx_did_not_write_is_refused_before_anything(found, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my notes")
    with pytest.raises(OutputExistsError, match="report.md"):
        found["result"].write(out)
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    assert (out / "report.md").read_text() == "my notes"


# --------------------------------------------------------------------------- the parts
def test_nearest_matches_a_full_similarity_matrix():
    rng = np.random.default_rng(0)
    x = unit_rows(np.abs(rng.normal(size=(300, 200))))
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :3]
    for pca_above in (10**9, 0):  # exact search; PCA candidates re-scored exactly
        sim, idx = nearest(x, x, 3, same=True, pca_above=pca_above)
        assert (idx[:, 0] == want[:, 0]).mean() > (0.999 if pca_above else 0.95)
        np.testing.assert_allclose(sim, np.take_along_axis(x @ x.T, idx, 1), rtol=1e-5)


def test_label_scores_rank_flipped_labels_first():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 60)
    X = rng.normal(size=(240, 20)) + np.eye(4, 20)[y] * 3
    noisy = y.copy()
    flip = rng.choice(240, 24, replace=False)
    noisy[flip] = (y[flip] + 1 + rng.integers(0, 3, 24)) % 4
    proba, _ = out_of_fold_proba(X, noisy, folds=5)
    score, suggested, flagged = label_scores(proba, noisy)
    wrong = noisy != y
    assert roc_auc_score(wrong, score) > 0.95
    assert (suggested[flagged & wrong] == y[flagged & wrong]).mean() > 0.9
    assert wrong[flagged].mean() > 0.7


def test_threshold_is_raised_when_distinct_images_are_as_close_as_copies():
    assert threshold_from([0.98, 0.99], [0.5, 0.6]) == 0.9802
    assert threshold_from([0.90, 0.99], np.r_[np.full(999, 0.5), 0.97]) > 0.9
    assert threshold_from([0.98], []) == 0.98


def test_findings_table_checks_its_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        Findings().of_kind("dupe")


@pytest.mark.parametrize("kw, match", [
    ({"folds": 1}, "folds"), ({"threshold": 1.5}, "threshold"), ({"outlier_k": 0}, "outlier_k"),
    ({"head": "lgoreg"}, "logreg"),
])
def test_wrong_parameters_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        inspect({"train": None}, **kw)


def test_data_without_train_is_refused():
    with pytest.raises(ValueError, match="'train' split"):
        inspect({"test": None}, threshold=0.9)


def test_writing_again_replaces_featx_own_files(found, written):
    before = set((written["out"] / "thumbs").iterdir())
    files = found["result"].write(written["out"], gallery=1)
    shown = set(re.findall(r"\(thumbs/([^)]+)\)", files["report.md"].read_text()))
    assert shown == {p.name for p in (written["out"] / "thumbs").iterdir()}
    assert len(shown) < len(before)  # the folder was replaced, not added to
    assert (written["out"] / "findings.csv").read_text() == found["result"].findings.to_csv()
