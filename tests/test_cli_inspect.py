"""``featx inspect DATA --out DIR`` end to end on a tiny class-folder tree (random MobileNetV2,
32 px): the files it writes, the options it checks before any work."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from featx.cli import main

BACKBONE = ["--backbone", "mobilenet_v2", "--weights", "none", "--input-size", "32"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_images) -> Path:
    """``shapes/{train,test}/<class>/<i>.jpg``, one test image a copy of a training image."""
    root = tmp_path_factory.mktemp("tiny") / "shapes"
    for split, n in (("train", 6), ("test", 2)):
        make_images(root / split, n, classes=("red", "green", "blue"), size=40, folders=True,
                    seed=len(split))
    (root / "test" / "red" / "copy.jpg").write_bytes((root / "train" / "red" / "1.jpg")
                                                     .read_bytes())
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_writes_findings_report_and_clean_list(capsys, tiny, tmp_path):
    out, clean = tmp_path / "inspect", tmp_path / "clean.csv"
    code, text, err = run(capsys, "inspect", tiny, *BACKBONE, "--cache", tmp_path / "cache",
                          "--threshold", "0.9999", "--folds", "3", "--out", out,
                          "--clean-list", clean, "-q")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} >= {"findings.csv", "scores.csv", "report.md",
                                              "thumbs"}
    with open(out / "findings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    copy = str(tiny / "test" / "red" / "copy.jpg")
    assert {r["kind"] for r in rows if r["path"] == copy} == {"exact_duplicate", "leak"}
    assert "warning: 1 test image(s) have a twin in train" in text
    assert f"report: {out / 'report.md'}" in text and "near-duplicate threshold 0.9999" in text
    with open(clean, newline="") as f:
        listed = {r["path"] for r in csv.DictReader(f)}
    assert copy not in listed and len(listed) == 6 * 3 + 2 * 3
    assert "# Know your data" in (out / "report.md").read_text()


def test_a_wrong_drop_kind_fails_before_any_work(capsys, tiny, tmp_path):
    code, _, err = run(capsys, "inspect", tiny, *BACKBONE, "--out", tmp_path / "o",
                       "--clean-list", tmp_path / "c.csv", "--drop", "leak,dupes")
    assert code == 1 and "--drop has unknown kind(s) ['dupes']" in err
    assert not (tmp_path / "o").exists()


def test_a_users_file_in_the_folder_is_refused(capsys, tiny, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "findings.csv").write_text("mine")
    code, _, err = run(capsys, "inspect", tiny, *BACKBONE, "--out", out)
    assert code == 1 and "featx did not write" in err
    assert (out / "findings.csv").read_text() == "mine"


@pytest.mark.parametrize("value", ["0", "1.5", "x"])
def test_threshold_must_be_a_cosine_similarity(capsys, tiny, tmp_path, value):
    code, _, err = run(capsys, "inspect", tiny, "--out", tmp_path, "--threshold", value)
    assert code == 2 and "must be a cosine similarity in (0, 1]" in err
