"""Images inside container files: TFRecord shards (written with tf.io.TFRecordWriter), Parquet (a
bytes column and the Hugging Face ``{bytes, path}`` struct) and WebDataset tar shards. Each gives
the same features as the same photos from a folder, with 0 backbone passes after the folder."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_same, counted
from sources_server import LoopbackServer

from featx import ImageDataset
from featx.data import SkippedImagesWarning
from featx.images import DecodePool, parse_container, read_bytes
from featx.sources import data_format, resolve_data

CLASSES = ("red", "green", "blue")


@pytest.fixture(scope="module")
def photos(tmp_path_factory, make_images):
    """``[(bytes, class index)]`` of 9 real JPEGs, their folder tree, and its extraction."""
    root = tmp_path_factory.mktemp("photos") / "tree"
    files = make_images(root, 3, classes=CLASSES, folders=True, size=40)
    pairs = [(open(p, "rb").read(), CLASSES.index(c))
             for p, c in zip(files, files.labels, strict=True)]
    return pairs, root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference(photos, cache):
    ds = ImageDataset.from_directory(photos[1])
    fs, passes = counted(ds, cache)
    assert passes == 9
    return fs


def same_as_reference(ds, reference, cache, n=9) -> None:
    fs, passes = counted(ds, cache)
    assert passes == 0 and len(fs) == n
    ref = dict(zip(reference.ids, reference.features, strict=True))
    assert_same(fs.features, np.stack([ref[i] for i in fs.ids]))
    names = lambda f: [f.class_names[y] for y in f.labels]  # noqa: E731
    ref_label = dict(zip(reference.ids, names(reference), strict=True))
    assert names(fs) == [ref_label[i] for i in fs.ids]


# -- TFRecord ---------------------------------------------------------------------------------
def write_tfrecords(folder, pairs, n_shards=2, image_key="image/encoded",
                    label_key="image/class/label"):
    import tensorflow as tf

    paths = []
    for s in range(n_shards):
        path = folder / f"train-{s:05d}-of-{n_shards:05d}"
        with tf.io.TFRecordWriter(str(path)) as w:
            for data, label in pairs[s::n_shards]:
                feats = {
                    "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpg"])),
                    image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                    label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                w.write(tf.train.Example(features=tf.train.Features(feature=feats))
                        .SerializeToString())
            # a record without an image: listed in skipped, never an error
            w.write(tf.train.Example().SerializeToString())
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def shards(photos, tmp_path_factory):
    return write_tfrecords(tmp_path_factory.mktemp("tfr"), photos[0])


def test_tfrecords_after_a_folder_run_no_backbone_pass(shards, reference, cache):
    with pytest.warns(SkippedImagesWarning, match="no feature 'image/encoded'"):
        ds = ImageDataset.from_tfrecords(str(shards[0].parent / "train-*"),
                                         label_names=list(CLASSES))
    assert len(ds) == 9 and len(ds.skipped) == 2 and ds.name == "train"
    rec = parse_container(ds.paths[0])
    assert rec.scheme == "tfrecord" and rec.file == str(shards[0]) and rec.name == "0"
    assert read_bytes(ds.paths[0])[:2] == b"\xff\xd8"  # just the JPEG, out of the Example
    same_as_reference(ds, reference, cache)


def test_tfrecords_over_http_are_read_by_range(shards, reference, cache):
    server = LoopbackServer(shards[0].parent)
    with server as url:
        with pytest.warns(SkippedImagesWarning):
            ds = ImageDataset.from_tfrecords(f"{url}/train-00000-of-00002",
                                             label_names=list(CLASSES), verify="none")
        with DecodePool((8, 8), n_workers=2) as pool:
            ids = [i for chunk, _, _ in pool.imap(ds.paths) for i in chunk]
    assert len(ds) == 5 and None not in ids
    assert set(ids) <= set(reference.ids)


def test_tfrecord_string_labels_and_wrong_keys(photos, tmp_path):
    import tensorflow as tf

    path = tmp_path / "named.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for data, label in photos[0][:4]:
            feats = {"jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                     "name": tf.train.Feature(bytes_list=tf.train.BytesList(
                         value=[CLASSES[label].encode()]))}
            w.write(tf.train.Example(features=tf.train.Features(feature=feats))
                    .SerializeToString())
    ds = ImageDataset.from_tfrecords(path, image_key="jpeg", label_key="name")
    assert ds.class_names == ["green", "red"] and ds.class_counts() == {"green": 1, "red": 3}
    with pytest.raises(FileNotFoundError, match="pattern=.*nothing-here.*matches no file"):
        ImageDataset.from_tfrecords(tmp_path / "nothing-here-*")


# -- Parquet ----------------------------------------------------------------------------------
def test_parquet_bytes_column(photos, reference, cache, tmp_path):
    pairs = photos[0]
    table = pa.table({"img": pa.array([d for d, _ in pairs], pa.binary()),
                      "cls": [CLASSES[y] for _, y in pairs]})
    pq.write_table(table, tmp_path / "photos.parquet", row_group_size=4)
    ds = ImageDataset.from_parquet(tmp_path / "photos.parquet", image_column="img",
                                   label_column="cls")
    assert ds.paths[5] == f"parquet://{tmp_path}/photos.parquet#img@1/1"
    assert read_bytes(ds.paths[5]) == pairs[5][0]
    same_as_reference(ds, reference, cache)
    with pytest.raises(KeyError, match="image_column='image' is not a column.*'img', 'cls'"):
        ImageDataset.from_parquet(tmp_path / "photos.parquet")


def test_parquet_hugging_face_struct_with_class_names(photos, reference, cache, tmp_path):
    pairs = photos[0]
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    cells = [{"bytes": d, "path": f"{i}.jpg"} for i, (d, _) in enumerate(pairs)]
    cells.append({"bytes": None, "path": None})  # an empty cell: skipped
    hf = {"info": {"features": {
        "image": {"_type": "Image"},
        "label": {"_type": "ClassLabel", "names": list(CLASSES)}}}}
    table = pa.table({"image": pa.array(cells, image),
                      "label": [y for _, y in pairs] + [0]})
    table = table.replace_schema_metadata({b"huggingface": json.dumps(hf).encode()})
    pq.write_table(table, tmp_path / "train-00000-of-00001.parquet", row_group_size=5)
    with pytest.warns(SkippedImagesWarning, match="holds no bytes and no path"):
        ds = ImageDataset.from_parquet(f"file://{tmp_path}/train-*.parquet")
    assert ds.class_names == list(CLASSES) and len(ds) == 9
    with DecodePool((8, 8), n_workers=2, chunk=2) as pool:  # row groups shared by threads
        assert sum(len(i) for i, _, _ in pool.imap(ds.paths[::-1])) == 9
    same_as_reference(ds, reference, cache)


# -- WebDataset -------------------------------------------------------------------------------
def test_webdataset_shards(photos, reference, cache, tmp_path):
    pairs = photos[0]
    for s in range(2):
        with tarfile.open(tmp_path / f"shard-{s:03d}.tar", "w") as tar:
            for k, (data, label) in enumerate(pairs[s::2]):
                key = f"sample{s}{k:03d}"
                for ext, blob in (("jpg", data), ("cls", str(label).encode()),
                                  ("json", b"{}")):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    ds = ImageDataset.from_webdataset(tmp_path / "shard-*.tar", label_names=list(CLASSES))
    assert len(ds) == 9 and ds.paths[0].startswith(f"webdataset://{tmp_path}/shard-000.tar#")
    same_as_reference(ds, reference, cache)
    gz = tmp_path / "c.tar.gz"
    with tarfile.open(gz, "w:gz"):
        pass
    with pytest.raises(ValueError, match="gzip-compressed tar.*plain .tar"):
        ImageDataset.from_webdataset(gz)


# -- the DATA argument ------------------------------------------------------------------------
@pytest.mark.parametrize("spec, fmt, expected", [
    ("x/train-*.tfrecord", None, "tfrecord"),
    ("s3://b/train.parquet", None, "parquet"),
    ("https://h/shards/train-{0..3}.tar", None, "webdataset"),
    ("s3://b/photos/", None, "folder"),
    ("gs://b/train-00000-of-00004", "tfrecord", "tfrecord"),
])
def test_data_format_from_suffix_or_format(spec, fmt, expected):
    assert data_format(spec, fmt) == expected


def test_data_format_is_checked():
    with pytest.raises(ValueError, match="format.*'tfrecords'.*tfrecord"):
        data_format("x", "tfrecords")


def test_resolve_data_reads_tfrecords_with_format(shards):
    with pytest.warns(SkippedImagesWarning):
        splits = resolve_data(str(shards[0].parent / "train-*"), format="tfrecord",
                              test_size=1 / 3)
    assert sorted(splits) == ["test", "train"] and len(splits["test"]) == 3
    assert sum(len(s) for s in splits.values()) == 9
