"""One bad item in a container costs that item, never the listing: a junk or oversized TFRecord
record, a damaged Parquet footer or row group, a damaged tar header mid-shard, each is listed in
``skipped`` with its reason and the items after it are still read. Missing labels are refused by
item in every container, as the CSV reader refuses them by line. The shards are written here by
the real writers (tf.io.TFRecordWriter, pyarrow, tarfile) around real JPEGs."""

from __future__ import annotations

import io
import math
import struct
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import featx.data.containers
import featx.data.framing
from featx.data.containers import list_parquet, list_tfrecords, list_webdataset
from featx.data.files import IMAGE_EXTENSIONS
from featx.data.framing import masked_crc, tfrecords
from featx.images import parse_container, read_bytes

IMAGE_KEY, LABEL_KEY = "image/encoded", "image/class/label"


def jpegs(n: int, seed: int = 0, size: int = 24) -> list[bytes]:
    """``n`` distinct real JPEGs (noise, so each is different and a few KB)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(buf, "JPEG",
                                                                             quality=80)
        out.append(buf.getvalue())
    return out


def example(image: bytes | None, label) -> bytes:
    """A serialised tf.train.Example with the image and the label (an int or bytes; None: no
    label feature)."""
    import tensorflow as tf

    feats = {"image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"]))}
    if image is not None:
        feats[IMAGE_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    if isinstance(label, int):
        feats[LABEL_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    elif label is not None:
        feats[LABEL_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def write_tfrecord(path, payloads: list[bytes]) -> list[tuple[int, int]]:
    """The payloads as records of a TFRecord file (tf.io.TFRecordWriter); ``(start, end)`` of
    each record's 16 + n bytes."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as w:
        for p in payloads:
            w.write(p)
    spans, pos = [], 0
    for p in payloads:
        spans.append((pos, pos + 16 + len(p)))
        pos += 16 + len(p)
    return spans


def record(payload: bytes) -> bytes:
    """One TFRecord record, framed by hand (for inserting into a file)."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc(length)) + payload
            + struct.pack("<I", masked_crc(payload)))


def write_webdataset(path, samples: list[tuple[str, bytes, bytes | None]]) -> dict:
    """``(key, jpeg, label text or None)`` samples as ``key.jpg`` / ``key.cls`` members (tarfile);
    ``{member name: (header offset, data offset, size)}``."""
    with tarfile.open(path, "w") as tar:
        for key, jpeg, label in samples:
            for ext, blob in (("jpg", jpeg), ("cls", label)):
                if blob is not None:
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    with tarfile.open(path) as tar:
        return {m.name: (m.offset, m.offset_data, m.size) for m in tar}


def write_parquet(path, images: list[bytes], labels: list, row_group_size: int = 3,
                  checksums: bool = True) -> None:
    table = pa.table({"image": pa.array(images, pa.binary()), "label": labels})
    pq.write_table(table, path, row_group_size=row_group_size, write_page_checksum=checksums,
                   compression="none")


def listed_bytes(locations: list[str]) -> list[bytes]:
    return [read_bytes(loc) for loc in locations]


# -- TFRecord ---------------------------------------------------------------------------------
def test_tfrecord_junk_record_is_skipped_and_the_rest_listed(tmp_path):
    images = jpegs(5)
    path = tmp_path / "train.tfrecord"
    spans = write_tfrecord(path, [example(im, k) for k, im in enumerate(images)])
    data = path.read_bytes()
    # 300 junk bytes between records 1 and 2 (no header there checks)
    junk = np.random.default_rng(1).integers(0, 256, 300, np.uint8).tobytes()
    path.write_bytes(data[:spans[2][0]] + junk + data[spans[2][0]:])
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY)
    assert labels == [0, 1, 2, 3, 4] and listed_bytes(locs) == images
    (where, why), = skipped
    assert f"bytes {spans[2][0]}-{spans[2][0] + 300}" in why and "no record header" in why
    assert parse_container(where).offset == spans[2][0] and parse_container(where).size == 300


def test_tfrecord_record_that_is_not_an_example_is_skipped(tmp_path):
    images = jpegs(3)
    path = tmp_path / "train.tfrecord"
    write_tfrecord(path, [example(images[0], 0), b"\xff" * 40, example(images[1], 1)])
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY)
    assert labels == [0, 1] and listed_bytes(locs) == images[:2]
    assert skipped[0][0].startswith(f"tfrecord://{path}#1@") and \
        "not a tf.train.Example" in skipped[0][1]


@pytest.mark.parametrize("forged_crc", [False, True], ids=["bad-crc", "forged-crc"])
def test_tfrecord_length_of_2_62_is_skipped_and_the_rest_listed(tmp_path, forged_crc):
    images = jpegs(4)
    path = tmp_path / "train.tfrecord"
    spans = write_tfrecord(path, [example(im, k) for k, im in enumerate(images)])
    data = bytearray(path.read_bytes())
    huge = struct.pack("<Q", 2**62)
    at = spans[1][0]
    data[at:at + 8] = huge
    if forged_crc:  # a header that checks, claiming 4 EiB: never allocated
        data[at + 8:at + 12] = struct.pack("<I", masked_crc(huge))
    path.write_bytes(bytes(data))
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY)
    assert labels == [0, 2, 3] and listed_bytes(locs) == [images[0], *images[2:]]
    (where, why), = skipped
    assert f"bytes {spans[1][0]}-{spans[2][0]}" in why
    assert ("past the end of the file" if forged_crc else "no record header checks") in why


def test_tfrecord_data_checksum_and_size_limit(tmp_path, monkeypatch):
    images = jpegs(3, size=48)
    path = tmp_path / "train.tfrecord"
    spans = write_tfrecord(path, [example(im, k) for k, im in enumerate(images)])
    data = bytearray(path.read_bytes())
    data[spans[1][0] + 100] ^= 0x01  # one bit inside record 1's JPEG: its data CRC fails
    path.write_bytes(bytes(data))
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY, verify="none")
    assert labels == [0, 2] and listed_bytes(locs) == [images[0], images[2]]
    assert skipped == [(f"tfrecord://{path}#1@{spans[1][0]}+{spans[1][1] - spans[1][0]}",
                        "damaged: the record's data fails its checksum")]
    # records over the size limit are skipped without being read
    cap = len(example(images[2], 2)) - 1
    monkeypatch.setattr(featx.data.framing, "max_item_bytes", lambda: cap)
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY, verify="none")
    assert [r for _, r in skipped if "over the limit" in r]
    assert all(len(b) <= cap for b in listed_bytes(locs))


def test_tfrecord_truncated_shard_keeps_whole_records(tmp_path):
    images = jpegs(3)
    path = tmp_path / "train.tfrecord"
    spans = write_tfrecord(path, [example(im, k) for k, im in enumerate(images)])
    path.write_bytes(path.read_bytes()[:spans[2][0] + 30])
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY)
    assert labels == [0, 1] and len(skipped) == 1 and "past the end" in skipped[0][1]


def test_tfrecord_framing_agrees_with_tensorflow(tmp_path):
    """Every record tf.data reads is a unit here, at the same place."""
    import tensorflow as tf

    payloads = [example(im, k) for k, im in enumerate(jpegs(4))] + [b"", b"x" * 7]
    path = tmp_path / "t.tfrecord"
    write_tfrecord(path, payloads)
    with open(path, "rb") as f:
        units = list(tfrecords(f))
    assert [u.data for u in units] == [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    assert [u.name for u in units] == [str(k) for k in range(6)]


# -- Parquet ----------------------------------------------------------------------------------
def test_parquet_corrupt_row_group_is_skipped_and_the_rest_listed(tmp_path):
    images = jpegs(9)
    path = tmp_path / "train.parquet"
    write_parquet(path, images, [f"c{k % 3}" for k in range(9)], checksums=False)
    col = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    at = col.data_page_offset  # the page header: "Couldn't deserialize thrift" before
    data[at:at + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))
    locs, labels, skipped, _ = list_parquet([str(path)], "image", "label")
    assert listed_bytes(locs) == images[:3] + images[6:]
    assert labels == ["c0", "c1", "c2"] * 2
    (where, why), = skipped
    assert where == f"parquet://{path}#image@1" and why.startswith("row group 1 (3 rows)")


def test_parquet_page_checksums_are_verified(tmp_path):
    images = jpegs(6, size=48)
    path = tmp_path / "train.parquet"
    write_parquet(path, images, list(range(6)))
    at = path.read_bytes().index(images[4][-100:-60])
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01  # one bit in a JPEG's entropy data: a decoder may not notice, the CRC does
    path.write_bytes(bytes(data))
    locs, labels, skipped, _ = list_parquet([str(path)], "image", "label", verify="none")
    assert labels == [0, 1, 2] and listed_bytes(locs) == images[:3]
    assert skipped[0][0] == f"parquet://{path}#image@1" and "CRC" in skipped[0][1]


def test_parquet_unreadable_footer_skips_the_file(tmp_path):
    images = jpegs(4)
    good, bad = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_parquet(good, images[:2], ["x", "y"])
    write_parquet(bad, images[2:], ["x", "y"])
    data = bad.read_bytes()
    bad.write_bytes(data[:-40] + b"\x07" * 32 + data[-8:])  # thrift footer overwritten
    locs, labels, skipped = list_parquet([str(bad), str(good)], "image", "label")[:3]
    assert listed_bytes(locs) == images[:2] and labels == ["x", "y"]
    assert skipped[0][0] == str(bad) and "cannot read the Parquet footer" in skipped[0][1]
    # a column no file has is the user's mistake: an error, as before
    with pytest.raises(KeyError, match="label_column='cls' is not a column of"):
        list_parquet([str(good)], "image", "cls")


# -- WebDataset -------------------------------------------------------------------------------
def test_webdataset_corrupt_header_mid_shard_is_skipped_and_the_rest_listed(tmp_path):
    images = jpegs(6)
    path = tmp_path / "shard-000.tar"
    members = write_webdataset(path, [(f"s{k}", im, str(k % 3).encode())
                                      for k, im in enumerate(images)])
    data = bytearray(path.read_bytes())
    header = members["s2.jpg"][0]
    data[header + 10] ^= 0x55  # a byte of s2.jpg's name: its header checksum fails
    path.write_bytes(bytes(data))
    locs, labels, skipped = list_webdataset([str(path)], IMAGE_EXTENSIONS)
    assert listed_bytes(locs) == images[:2] + images[3:]  # was 3 of 6 listed, skipped=[]
    assert labels == [0, 1, 0, 1, 2]
    (where, why), = skipped
    assert "a damaged tar header" in why and parse_container(where).offset == header
    assert parse_container(where).size == members["s2.cls"][0] - header


def test_webdataset_member_past_the_end_or_over_the_limit(tmp_path, monkeypatch):
    images = jpegs(4, size=40)
    path = tmp_path / "shard.tar"
    members = write_webdataset(path, [(f"s{k}", im, b"a") for k, im in enumerate(images)])
    data = bytearray(path.read_bytes())
    header = bytearray(data[members["s1.jpg"][0]:][:512])
    header[124:136] = b"%011o\0" % 8**10  # 1 GiB, past the end: checksum made to agree
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    data[members["s1.jpg"][0]:members["s1.jpg"][0] + 512] = header
    path.write_bytes(bytes(data))
    locs, labels, skipped = list_webdataset([str(path)], IMAGE_EXTENSIONS)
    assert listed_bytes(locs) == [images[0], *images[2:]]
    assert "member 's1.jpg': its header says 1073741824 bytes, past the end" in skipped[0][1]
    cap = min(len(im) for im in images) - 1
    monkeypatch.setattr(featx.data.containers, "max_item_bytes", lambda: cap)
    locs, labels, skipped = list_webdataset([str(path)], IMAGE_EXTENSIONS)
    assert locs == [] and [r for _, r in skipped[1:]] == [
        f"{len(im)} bytes, over the limit of {cap} bytes per item (max_item_bytes)"
        for im in (images[0], *images[2:])]


# -- one label check --------------------------------------------------------------------------
MISSING = [None, b"", b"  ", b"nan", b"None", b"NA"]


def test_missing_labels_are_skipped_in_a_tfrecord(tmp_path):
    images = jpegs(len(MISSING) + 1)
    path = tmp_path / "t.tfrecord"
    write_tfrecord(path, [example(images[0], b"cat")]
                   + [example(im, y) for im, y in zip(images[1:], MISSING, strict=True)])
    locs, labels, skipped = list_tfrecords([str(path)], IMAGE_KEY, LABEL_KEY)
    assert labels == ["cat"] and len(skipped) == len(MISSING)
    assert [r for _, r in skipped] == [
        "record has no feature 'image/class/label' (it has ['image/encoded', 'image/format'])",
        "'image/class/label': empty label", "'image/class/label': empty label",
        "'image/class/label': label 'nan' reads as a missing value",
        "'image/class/label': label 'None' reads as a missing value",
        "'image/class/label': label 'NA' reads as a missing value"]


def test_missing_labels_are_skipped_in_parquet(tmp_path):
    images = jpegs(6)
    path = tmp_path / "p.parquet"
    for column, kept, reasons in [
        (["cat", None, "", " ", "nan", "None"], ["cat"],
         ["no label (None)", "empty label", "empty label", "label 'nan' reads as a missing value",
          "label 'None' reads as a missing value"]),
        ([1, None, 2, None, 3, None], [1, 2, 3], ["no label (None)"] * 3),
        ([1.0, math.nan, 2.0, None, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0],
         ["no label (NaN)", "no label (None)"]),
    ]:
        pq.write_table(pa.table({"image": images, "label": column}), path)
        locs, labels, skipped, _ = list_parquet([str(path)], "image", "label")
        assert labels == kept and [r for _, r in skipped] == [f"'label': {r}" for r in reasons]
        assert listed_bytes(locs) == [im for im, y in zip(images, column, strict=True)
                                      if y in kept]


def test_missing_labels_are_skipped_in_a_webdataset_shard(tmp_path):
    images = jpegs(len(MISSING) + 1)
    path = tmp_path / "shard.tar"
    write_webdataset(path, [("a", images[0], b"dog\n")]
                     + [(f"k{i}", im, y) for i, (im, y) in enumerate(zip(images[1:], MISSING,
                                                                         strict=True))])
    locs, labels, skipped = list_webdataset([str(path)], IMAGE_EXTENSIONS)
    assert labels == ["dog"] and listed_bytes(locs) == images[:1]
    assert [r for _, r in skipped] == [
        "no label: k0.cls is missing", "k1.cls: empty label", "k2.cls: empty label",
        "k3.cls: label 'nan' reads as a missing value",
        "k4.cls: label 'None' reads as a missing value",
        "k5.cls: label 'NA' reads as a missing value"]
