"""Images in: the reader and every ImageDataset constructor, on real files made here."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from featx import ImageDataset, ImageError, read_image
from featx.data import SkippedImagesWarning
from featx.images import decode_bytes

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory, image_bytes):
    """A class-folder tree holding every kind of awkward file, and what should come of it."""
    root = tmp_path_factory.mktemp("messy")
    for c in ("alpha", "beta", "empty", "gamma"):
        (root / c).mkdir()
    good = image_bytes()
    (root / "alpha" / "a1.jpg").write_bytes(good)
    (root / "alpha" / "a2_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "alpha" / "a3_truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "alpha" / "a4_cmyk.jpg").write_bytes(image_bytes(mode="CMYK"))
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 2] = 255  # fully transparent blue
    (root / "beta" / "b1_alpha.png").write_bytes(image_bytes(rgba, fmt="png"))
    sixteen = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60
    (root / "beta" / "b2_16bit.png").write_bytes(image_bytes(sixteen, fmt="png"))
    (root / "beta" / "b3_notes.txt").write_text("not an image")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    (root / "gamma" / "g1_rotated.jpg").write_bytes(image_bytes(size=(80, 40), exif=exif))
    expected = {
        "kept": {
            "a1.jpg": "alpha", "a4_cmyk.jpg": "alpha", "b1_alpha.png": "beta",
            "b2_16bit.png": "beta", "g1_rotated.jpg": "gamma",
        },
        "skipped": {"a2_corrupt.jpg", "a3_truncated.jpg", "b3_notes.txt", "empty"},
    }
    return root, expected


def test_from_directory_labels_and_skipped(messy_folder):
    root, expected = messy_folder
    with pytest.warns(SkippedImagesWarning, match="4 file"):
        ds = ImageDataset.from_directory(root)
    assert ds.class_names == ["alpha", "beta", "empty", "gamma"]
    got = {p.rsplit("/", 1)[1]: name for p, name in zip(ds.paths, ds.label_names, strict=True)}
    assert got == expected["kept"]
    skipped = {p.rsplit("/", 1)[1]: reason for p, reason in ds.skipped}
    assert set(skipped) == expected["skipped"]
    assert "truncated" in skipped["a3_truncated.jpg"].lower()
    assert "cannot read image header" in skipped["a2_corrupt.jpg"]
    assert "extension" in skipped["b3_notes.txt"]
    assert "empty" in skipped["empty"]


def test_every_kept_file_decodes_to_rgb(messy_folder):
    root, _ = messy_folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImagesWarning)
        ds = ImageDataset.from_directory(root)
    for path in ds.paths:
        arr = read_image(path, size=(16, 16))
        assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8


def test_reader_modes(messy_folder):
    root, _ = messy_folder
    alpha = read_image(root / "beta" / "b1_alpha.png")
    assert (alpha == 255).all()  # fully transparent blue composites onto white
    sixteen = read_image(root / "beta" / "b2_16bit.png")
    assert sixteen.max() > 200 and sixteen.min() == 0  # scaled from 16 bits, not clipped
    assert len(np.unique(sixteen)) > 100
    rotated = read_image(root / "gamma" / "g1_rotated.jpg")
    assert rotated.shape == (80, 40, 3)  # EXIF orientation 6 turns 80x40 into 40 wide, 80 high
    cmyk = read_image(root / "alpha" / "a4_cmyk.jpg")
    assert cmyk[..., 0].mean() > 150 and cmyk[..., 1].mean() < 90


def test_resize_modes_and_draft(image_bytes):
    data = image_bytes(size=(800, 400))
    out = decode_bytes(data, size=(100, 100))
    assert out.shape == (100, 100, 3)
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # a white centre band on black sides
    png = image_bytes(img, fmt="png")
    cropped = decode_bytes(png, size=(20, 20), resize="crop")
    assert cropped.min() > 200  # the centre square is all white: the sides were cropped away
    stretched = decode_bytes(png, size=(20, 20), resize="bilinear")
    assert stretched[:, 0].max() < 60
    with pytest.raises(ValueError, match="resize must be one of"):
        decode_bytes(data, size=8, resize="nearest")


def test_decompression_bomb_is_a_clear_error(monkeypatch, image_bytes):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_bytes(image_bytes(size=200))


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="cannot read file"):
        read_image(tmp_path / "nope.jpg")


def test_from_directory_with_splits(tmp_path, image_bytes):
    for split in ("train", "val", "test"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            (tmp_path / split / c / f"{c}.jpg").write_bytes(image_bytes())
    (tmp_path / "train" / "bird").mkdir()
    (tmp_path / "train" / "bird" / "b.jpg").write_bytes(image_bytes())
    with pytest.warns(SkippedImagesWarning):
        splits = ImageDataset.from_directory(tmp_path, name="pets")
    assert list(splits) == ["train", "validation", "test"]
    assert all(s.class_names == ["bird", "cat", "dog"] for s in splits.values())
    assert splits["validation"].name == "pets-validation"
    assert splits["test"].label_names.tolist() == ["cat", "dog"]


def test_missing_root_names_parameter(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"root=.*imagse.* \(did you mean 'images'\?\)"):
        ImageDataset.from_directory(tmp_path / "imagse")


def test_from_csv(tmp_path, image_bytes):
    (tmp_path / "img").mkdir()
    for i in range(4):
        (tmp_path / "img" / f"{i}.jpg").write_bytes(image_bytes())
    csv_file = tmp_path / "labels.csv"
    rows = ["file,kind"] + [f"img/{i}.jpg,{'odd' if i % 2 else 'even'}" for i in range(4)]
    rows.append("img/missing.jpg,odd")
    csv_file.write_text("\n".join(rows) + "\n")
    with pytest.warns(SkippedImagesWarning, match="missing.jpg"):
        ds = ImageDataset.from_csv(csv_file, path_column="file", label_column="kind")
    assert ds.class_names == ["even", "odd"]
    assert ds.labels.tolist() == [0, 1, 0, 1]
    assert ds.skipped[0][1] == "file not found"
    with pytest.raises(KeyError, match=r"path_column='path'.*columns are \['file', 'kind'\]"):
        ImageDataset.from_csv(csv_file)
    with pytest.raises(FileNotFoundError, match="file="):
        ImageDataset.from_csv(tmp_path / "nope.csv")


def test_from_paths_keeps_pairs_aligned(tmp_path, image_bytes):
    paths, labels = [], []
    for i, label in enumerate(["x", "y", "x", "y", "x"]):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(image_bytes() if i != 2 else b"garbage")
        paths.append(p)
        labels.append(label)
    with pytest.warns(SkippedImagesWarning):
        ds = ImageDataset.from_paths(paths, labels)
    assert [p.rsplit("/", 1)[1] for p in ds.paths] == ["0.jpg", "1.jpg", "3.jpg", "4.jpg"]
    assert ds.label_names.tolist() == ["x", "y", "y", "x"]
    with pytest.raises(ValueError, match="same length"):
        ImageDataset.from_paths(paths, labels[:2])
    with pytest.raises(ValueError, match="label 'z' is not in class_names"):
        ImageDataset.from_paths(paths[:1], ["z"], class_names=["x", "y"], verify="none")


def test_paths_are_stored_absolute(tmp_path, monkeypatch, image_bytes):
    for cls in ("cap", "hat"):
        (tmp_path / "small" / cls).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "small" / cls / f"{i}.jpg").write_bytes(image_bytes())
    (tmp_path / "small" / "hat" / "notes.txt").write_text("not an image")
    (tmp_path / "link").symlink_to(tmp_path / "small")
    (tmp_path / "data" / "img").mkdir(parents=True)
    (tmp_path / "data" / "img" / "0.jpg").write_bytes(image_bytes())
    (tmp_path / "data" / "labels.csv").write_text(
        f"path,label\nimg/0.jpg,a\n{tmp_path / 'small' / 'cap' / '0.jpg'},b\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    base = os.getcwd()  # tmp_path as the process sees it
    with pytest.warns(SkippedImagesWarning, match="notes.txt"):
        by_folder = ImageDataset.from_directory("small")
    with pytest.warns(SkippedImagesWarning):
        by_link = ImageDataset.from_directory("link")
    by_csv = ImageDataset.from_csv("data/labels.csv")
    by_root = ImageDataset.from_csv("data/labels.csv", root="small/hat", verify="none")
    by_paths = ImageDataset.from_paths(["small/hat/1.jpg", "./small/x/../cap/1.jpg"], ["h", "c"])

    monkeypatch.chdir(tmp_path / "elsewhere")  # the stored paths still name the files
    expected = [os.path.join(base, "small", c, f"{i}.jpg") for c in ("cap", "hat") for i in (0, 1)]
    assert by_folder.paths == expected
    assert by_folder.skipped == [(os.path.join(base, "small", "hat", "notes.txt"),
                                  "not an image file extension '.txt'")]
    assert by_link.paths == [p.replace(os.sep + "small", os.sep + "link") for p in expected]
    assert by_csv.paths == [os.path.join(base, "data", "img", "0.jpg"), expected[0]]
    assert by_root.paths == [os.path.join(base, "small", "hat", "img", "0.jpg"), expected[0]]
    assert by_paths.paths == [expected[3], expected[1]]
    for ds in (by_folder, by_link, by_csv, by_paths):
        assert all(read_image(p).shape[-1] == 3 for p in ds.paths)


@pytest.mark.parametrize("shape", [(6, 28, 28), (6, 28, 28, 1), (6, 20, 30, 3)])
def test_from_arrays(tmp_path, shape):
    images = RNG.integers(0, 256, size=shape, dtype=np.uint8)
    ds = ImageDataset.from_arrays(images, [0, 1, 2, 0, 1, 2], class_names=["a", "b", "c"])
    assert len(ds) == 6 and ds.class_counts() == {"a": 2, "b": 2, "c": 2}
    back = read_image(ds.paths[3])
    grey = images[3].reshape(shape[1], shape[2], -1)
    np.testing.assert_array_equal(back, np.broadcast_to(grey, back.shape))
    again = ImageDataset.from_arrays(images, [0, 1, 2, 0, 1, 2], class_names=["a", "b", "c"])
    assert again.paths == ds.paths  # same content, same files: written once
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset.from_arrays(images.astype(np.float32), [0] * 6)


def test_split_is_stratified_and_reproducible():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    ds = ImageDataset.from_paths(
        [f"{i}.jpg" for i in range(100)], labels, class_names=["a", "b", "c"], verify="none"
    )
    train, val, test = ds.split(test_size=0.2, val_size=0.1, random_state=3)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert test.class_counts() == {"a": 12, "b": 6, "c": 2}
    assert val.class_counts() == {"a": 6, "b": 3, "c": 1}
    assert not set(train.paths) & set(test.paths) and not set(val.paths) & set(test.paths)
    train2, _, test2 = ds.split(test_size=0.2, val_size=0.1, random_state=3)
    assert test2.paths == test.paths and train2.paths == train.paths
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        ds.split(test_size=1.5)


def test_split_reports_skipped_once_and_names_single_image_classes(messy_folder):
    root, expected = messy_folder
    with pytest.warns(UserWarning):
        ds = ImageDataset.from_directory(root)  # alpha 2, beta 2, gamma 1 (and "empty" 0)
    with pytest.raises(ValueError, match=r"class\(es\) \['gamma'\] have a single image.*"
                                         r"stratify=False"):
        ds.split(test_size=0.4)
    train, test = ds.split(test_size=0.4, stratify=False)
    assert {os.path.basename(p) for p, _ in train.skipped} == expected["skipped"]
    assert test.skipped == [] and len(train) + len(test) == len(ds)


def test_subset_gets_its_own_name():
    ds = ImageDataset.from_paths([f"{i}.jpg" for i in range(6)], [0, 1] * 3, class_names=["a", "b"],
                                 verify="none", name="shapes")
    a, b, again = ds.subset([0, 1, 2]), ds.subset([3, 4, 5]), ds.subset([0, 1, 2])
    assert a.name.startswith("shapes-sub") and a.name != b.name and a.name == again.name
    assert ds.subset([0, 1], name="mine").name == "mine"
