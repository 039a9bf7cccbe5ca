"""Hostile inputs: one bad file never sinks a run, and nothing is left out silently.

A decompression bomb, a dangling symlink, a symlink loop, a FIFO, a nested folder, a file
outside any class folder and a file name that is not UTF-8 each become one entry of
``skipped`` (with its reason) in ``ImageDataset.from_directory``, ``featx extract`` and
``featx predict``; CSV rows without a usable label are refused with their line numbers by both
CSV readers (``ImageDataset.from_csv`` and the DATA argument's CSV with a ``split`` column).
All on real files made here; the model is MobileNetV2 with random weights at 32 px.
"""

from __future__ import annotations

import csv
import os
import struct
import threading
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from featx import ImageDataset, ImageError, read_image
from featx.cli import main
from featx.data import SkippedImagesWarning, display_path, read_csv
from featx.images import hash_file, load_chunk
from featx.sources import resolve_data

BACKBONE = ["--backbone", "mobilenet_v2", "--weights", "none", "--input-size", "32"]
ODD_NAME = b"caf\xe9.jpg"  # Latin-1 "café.jpg": not UTF-8


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_bomb_png(path: Path, side: int = 20000) -> None:
    """A complete, valid greyscale PNG of ``side`` x ``side`` black pixels (400 Mpx for 20000:
    over twice Pillow's limit), compressed to a few hundred KB row by row."""
    z = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + one byte per pixel
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
                     + _chunk(b"IEND", b""))


def odd_name_path(folder: Path, name: bytes = ODD_NAME) -> str:
    """``folder/name`` as a ``str`` path (name bytes that are not UTF-8 kept as surrogates); skips
    the test on a file system that refuses such names."""
    path = os.fsdecode(os.path.join(os.fsencode(folder), name))
    try:
        with open(path, "wb"):
            pass
    except OSError as exc:  # e.g. APFS: names must be UTF-8
        pytest.skip(f"this file system refuses a non-UTF-8 file name ({exc})")
    return path


def relative(paths, root: Path) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tree(tmp_path_factory, make_images) -> Path:
    """``pets/<cat|dog>/<0-3>.jpg`` plus one entry of every awkward kind."""
    root = tmp_path_factory.mktemp("hostile") / "pets"
    make_images(root, 4, classes=("cat", "dog"), size=32, folders=True)
    cat, dog = root / "cat", root / "dog"
    write_bomb_png(cat / "huge.png")
    (cat / "dangling.jpg").symlink_to("nowhere.jpg")
    (cat / "loop_a.jpg").symlink_to("loop_b.jpg")
    (cat / "loop_b.jpg").symlink_to("loop_a.jpg")
    os.mkfifo(cat / "pipe.jpg")  # reading it would wait for a writer forever
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: passed over by design
    (dog / "more").mkdir()
    (dog / "more" / "5.jpg").write_bytes((dog / "0.jpg").read_bytes())
    (dog / "up").symlink_to("..")  # a folder link back up: a loop for a recursive walk
    (root / "notes.txt").write_text("labels are the folder names\n")  # documentation: passed over
    (root / "stray.jpg").write_bytes((cat / "0.jpg").read_bytes())  # an image in no class
    return root


#: What from_directory must say about each awkward entry of ``tree`` (relative path -> reason).
TREE_SKIPPED = {
    "stray.jpg": "not in a class folder: not read",
    "cat/huge.png": "refused as a possible decompression bomb",
    "cat/dangling.jpg": "cannot read file (dangling symlink to 'nowhere.jpg')",
    "cat/loop_a.jpg": "cannot read file (symlink loop",
    "cat/loop_b.jpg": "cannot read file (symlink loop",
    "cat/pipe.jpg": "cannot read file (a FIFO, not a regular file)",
    "dog/more": "nested folder: not read",
    "dog/up": "nested folder: not read",
}
TREE_KEPT = [f"{c}/{i}.jpg" for c in ("cat", "dog") for i in range(4)]


@pytest.fixture(scope="module")
def model(tmp_path_factory, make_images) -> Path:
    """A fitted ``featx fit`` model (logreg on random-weight MobileNetV2 features)."""
    base = tmp_path_factory.mktemp("trust-model")
    make_images(base / "data", 6, classes=("cat", "dog"), size=32, folders=True)
    path = base / "model.featx"
    code = main(["fit", str(base / "data"), *BACKBONE, "--cache", str(base / "cache"),
                 "--head", "logreg", "--out", str(path), "-q"])
    assert code == 0 and path.is_file()
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trust-cache")


def check_skipped(skipped, root: Path, expected: dict[str, str]) -> None:
    got = {os.path.relpath(p, root): reason for p, reason in skipped}
    assert sorted(got) == sorted(expected)
    for name, reason in expected.items():
        assert reason in got[name], (name, got[name])


# --------------------------------------------------------------------------- from_directory
@pytest.mark.parametrize("verify", ["header", "decode", "none"])
def test_every_awkward_entry_is_skipped_with_its_reason(tree, verify):
    with pytest.warns(SkippedImagesWarning) as record:
        ds = ImageDataset.from_directory(tree, verify=verify)
    kept, expected = list(TREE_KEPT), dict(TREE_SKIPPED)
    if verify == "none":  # the listing's own findings only: file contents are not read
        del expected["cat/huge.png"]
        kept.insert(4, "cat/huge.png")  # sorted after cat/3.jpg
    assert relative(ds.paths, tree) == kept
    assert ds.label_names.tolist() == ["cat"] * (len(kept) - 4) + ["dog"] * 4
    check_skipped(ds.skipped, tree, expected)
    assert f"{len(expected)} file(s) skipped" in str(record[0].message)


def test_a_bomb_is_refused_from_its_header_alone(tmp_path, monkeypatch, image_bytes):
    """Between 1x and 2x Pillow's limit Pillow only warns when it reads the header; the header
    check refuses the file, as the decode would."""
    (tmp_path / "a.png").write_bytes(image_bytes(size=64, fmt="png"))  # 4096 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.warns(SkippedImagesWarning, match="decompression bomb"):
            ds = ImageDataset.from_paths([tmp_path / "a.png"], ["x"])
    assert ds.paths == [] and "decompression bomb" in ds.skipped[0][1]


def test_split_folders_report_what_they_do_not_read(tmp_path, make_images):
    for split in ("train", "val", "validation", "test"):
        make_images(tmp_path / split, 1, classes=("cat", "dog"), size=16, folders=True)
    make_images(tmp_path / "unsorted", 1, classes=("cat",), size=16, folders=True)
    (tmp_path / "README.md").write_text("x")  # documentation: passed over
    (tmp_path / "stray.png").write_bytes(b"x")
    (tmp_path / "test" / "stray.jpg").write_bytes((tmp_path / "test" / "cat" / "0.jpg")
                                                  .read_bytes())
    with pytest.warns(SkippedImagesWarning):
        splits = ImageDataset.from_directory(tmp_path)
    assert {s: len(d) for s, d in splits.items()} == {"train": 2, "validation": 2, "test": 2}
    assert relative(splits["validation"].paths, tmp_path)[0] == "validation/cat/0.jpg"
    check_skipped(splits["train"].skipped, tmp_path, {  # the top level: with the first split
        "stray.png": "not in a class folder", "unsorted": "not a split folder",
        "val": f"a second validation folder: not read ({tmp_path / 'validation'} is used)"})
    check_skipped(splits["test"].skipped, tmp_path, {"test/stray.jpg": "not in a class folder"})
    assert splits["validation"].skipped == []


# --------------------------------------------------------------------------- non-UTF-8 names
def test_non_utf8_names_are_read_and_printed_safely(tmp_path, image_bytes):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "0.jpg").write_bytes(image_bytes())
    good = odd_name_path(tmp_path / "a")
    Path(good).write_bytes(image_bytes(colour=(0, 0, 250)))
    bad = odd_name_path(tmp_path / "b", b"bad\xff.jpg")
    Path(bad).write_bytes(b"not an image at all")
    with pytest.warns(SkippedImagesWarning) as record:
        ds = ImageDataset.from_directory(tmp_path)
    assert good in ds.paths and read_image(good).shape[-1] == 3
    assert ds.skipped == [(bad, "not an image file Pillow can identify")]
    message = str(record[0].message)
    message.encode("utf-8")  # printable anywhere: no lone surrogates
    assert "bad\\xff.jpg" in message
    assert display_path(good) == str(tmp_path / "a" / "caf\\xe9.jpg")
    # bytes paths are decoded as os.fsdecode does, so they name the same file
    by_bytes = ImageDataset.from_paths([os.fsencode(good)], ["a"])
    assert by_bytes.paths == [good]
    # a CSV (written by a tool that copies name bytes as they are) names the same file
    csv_file = tmp_path / "list.csv"
    csv_file.write_bytes(b"path,label\na/" + ODD_NAME + b",a\na/0.jpg,a\n")
    assert ImageDataset.from_csv(csv_file).paths == [good, str(tmp_path / "a" / "0.jpg")]
    csv_file.write_bytes(b"path,label\na/0.jpg,caf\xe9\n")  # a label must be text
    with pytest.raises(ValueError, match=r"line 2: label 'caf\\xe9' is not UTF-8 text"):
        ImageDataset.from_csv(csv_file)


# --------------------------------------------------------------------------- CSV labels
BAD_CSV = ("path,label{split}\n"
           "cat/0.jpg,cat{train}\n"        # line 2: fine
           "cat/1.jpg,{train}\n"           # line 3: empty label
           "cat/2.jpg,NaN{train}\n"        # line 4: a missing value written out
           "cat/3.jpg\n"                   # line 5: short row
           "dog/0.jpg,dog,x,y\n"           # line 6: extra fields
           "\n"                            # line 7: blank: passed over
           ",,\n"                          # line 8: all blank: passed over
           "dog/1.jpg, dog {test}\n"       # line 9: fine, label stripped
           "dog/2.jpg,None{test}\n")       # line 10: short row's old class, written out
BAD_LINES = ("5 row(s) cannot be used: line 3: empty label; line 4: label 'NaN' reads as a "
             "missing value; line 5: a short row: 1 field(s), the header has {n}; line 6: 4 "
             "fields, the header has {n} (a comma in an unquoted path or label?); line 10: "
             "label 'None' reads as a missing value.")


@pytest.mark.parametrize("reader", ["from_csv", "resolve_data", "featx extract"])
def test_csv_rows_without_a_label_are_refused_with_their_lines(tree, tmp_path, capsys, reader):
    with_split = reader != "from_csv"
    text = BAD_CSV.format(split=",split" if with_split else "",
                          train=",train" if with_split else "",
                          test=",test" if with_split else "")
    file = tmp_path / "labels.csv"
    file.write_text(text)
    expected = BAD_LINES.format(n=3 if with_split else 2)
    if reader == "featx extract":
        code, _, err = run(capsys, "extract", file, *BACKBONE)
        assert code == 1 and expected in err and "Traceback" not in err
        return
    with pytest.raises(ValueError) as info:
        if reader == "from_csv":
            ImageDataset.from_csv(file, root=tree)
        else:
            resolve_data(file)
    assert str(file) in str(info.value) and expected in str(info.value)


def test_csv_labels_and_splits_are_read_strictly_and_consistently(tree, tmp_path):
    file = tmp_path / "ok.csv"
    file.write_text(f"path,label,split\n{tree}/cat/0.jpg, cat ,Train\n{tree}/cat/1.jpg,cat,VAL\n"
                    f"{tree}/dog/0.jpg,dog,train\n\n{tree}/dog/1.jpg,dog,val\n"
                    f"{tree}/cat/2.jpg,cat,test\n{tree}/dog/2.jpg,dog,test\n")
    rows = read_csv(file, split_column="split")
    assert [r["label"] for r in rows] == ["cat", "cat", "dog", "dog", "cat", "dog"]
    assert [r["split"] for r in rows] == ["train", "validation", "train", "validation", "test",
                                          "test"]
    splits = resolve_data(file)
    assert {s: d.class_names for s, d in splits.items()} == {
        s: ["cat", "dog"] for s in ("train", "validation", "test")}
    file.write_text(f"path,label,split\n{tree}/cat/0.jpg,cat,train\n{tree}/cat/1.jpg,cat,\n"
                    f"{tree}/dog/0.jpg,dog,holdout\n")
    with pytest.raises(ValueError, match="2 row.*line 3: split '' is not one of train, "
                                         "validation .or val., test; line 4: split 'holdout'"):
        resolve_data(file)


def test_missing_labels_in_python_lists_are_refused():
    with pytest.raises(ValueError, match=r"3 label\(s\) are missing: labels\[1\]=None, "
                                         r"labels\[2\]=nan, labels\[3\]=' '"):
        ImageDataset.from_paths(["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
                                ["cat", None, float("nan"), " "], verify="none")


# --------------------------------------------------------------------------- the readers
def test_fifo_and_folder_are_refused_at_once(tree):
    """Reading a FIFO would block forever: every reader refuses it without waiting."""
    fifo = str(tree / "cat" / "pipe.jpg")
    results = {}

    def read_all():
        results["hash"] = hash_file(fifo)
        results["chunk"] = load_chunk([fifo, str(tree / "dog")], (8, 8), "bilinear")[2]
        try:
            read_image(fifo)
        except ImageError as exc:
            results["read_image"] = str(exc)

    worker = threading.Thread(target=read_all, daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("a reader waited on a FIFO")
    assert results["hash"] == (None, "cannot read file (a FIFO, not a regular file)")
    assert results["chunk"] == ["cannot read file (a FIFO, not a regular file)",
                                "cannot read file (a folder, not a regular file)"]
    assert results["read_image"] == f"{fifo}: cannot read file (a FIFO, not a regular file)"


# --------------------------------------------------------------------------- the commands
def test_extract_skips_the_awkward_entries_and_extracts_the_rest(tree, cache, capsys):
    code, out, err = run(capsys, "extract", tree, *BACKBONE, "--cache", cache, "-q")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    assert rows["train"][1:4] == ["6", "1280", str(len(TREE_SKIPPED))]  # images, dim, skipped
    assert rows["test"][1:4] == ["2", "1280", "0"]
    assert f"{len(TREE_SKIPPED)} file(s) skipped" in err and "Traceback" not in err


def test_predict_lists_every_unreadable_entry_and_predicts_the_rest(tree, model, capsys,
                                                                    tmp_path):
    out_csv = tmp_path / "pred.csv"
    code, _, err = run(capsys, "predict", model, tree, tree / "cat" / "pipe.jpg", "--trust",
                       "--out", out_csv)
    assert code == 0, err
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert relative([r["path"] for r in rows], tree) == ["stray.jpg", *TREE_KEPT,
                                                         "dog/more/5.jpg"]
    assert {r["label"] for r in rows} <= {"cat", "dog"}
    listed = dict(line.strip().split(": ", 1) for line in err.splitlines()
                  if line.startswith("  "))
    expected = {k: v for k, v in TREE_SKIPPED.items()  # nested folders are walked, though
                if not k.startswith("dog/") and k != "stray.jpg"}
    expected["dog/up"] = "folder already read (a symlink loop"
    check_skipped(listed.items(), tree, expected)
    assert f"skipped {len(expected)} file(s)" in err  # the FIFO named twice is listed once
    assert "passed over 1 file(s) without an image extension (.txt 1)" in err


def test_predict_and_extract_non_utf8_names(tmp_path, make_images, model, cache, capsys):
    root = tmp_path / "odd"
    make_images(root, 3, classes=("cat", "dog"), size=32, folders=True)
    odd = odd_name_path(root / "cat")
    Path(odd).write_bytes((root / "cat" / "0.jpg").read_bytes())
    code, out, err = run(capsys, "predict", model, root, "--trust")
    assert code == 0, err
    out.encode("utf-8")
    names = [r.split(",")[0] for r in out.splitlines()[1:]]
    assert len(names) == 7 and display_path(odd) in names
    code, out, err = run(capsys, "extract", root, *BACKBONE, "--cache", cache, "-q")
    assert code == 0, err
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    assert sum(int(r[1]) for r in rows) == 7 and all(r[3] == "0" for r in rows)  # none skipped
