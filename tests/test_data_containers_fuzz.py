"""Fuzz: 100 seeded corrupted variants each of a TFRecord shard, a WebDataset shard and a Parquet
file, built here from 10 real JPEGs and their labels. Corruptions: random byte overwrites,
truncation, huge lengths (with and without a checksum made to agree), bad checksums, and junk
inserted at a unit boundary or anywhere.

What every trial asserts (``touched``: a unit's bytes or framing hold a changed byte, or bytes
were inserted inside it; ``cut``: truncation removed it whole, leaving no trace in the file):

* the listing returns (no exception) within a generous deadline, and its traced Python memory
  stays small (nothing is allocated from a damaged length);
* TFRecord and Parquet (their checksums checked; the Parquet file is written with page
  checksums): every listed item's bytes are exactly one original image, with its original
  label. WebDataset (tar has no checksum on member data, and its header checksum is a plain
  sum): every listed item is an original (bytes, label) pair, unless its own members or a
  header were touched;
* TFRecord and WebDataset (resynchronisation): every original item not touched and not cut is
  listed. Parquet (offsets are absolute, so nothing after an insertion or truncation can be
  found again): every row group is listed when neither it nor the file's footer and magic were
  touched and no byte was inserted or removed;
* every original item neither listed nor cut is accounted for in ``skipped``: an entry whose
  byte range overlaps the item (TFRecord, WebDataset), or names its row, its row group or its
  file (Parquet).

Rerun: ``.venv/bin/python -m pytest -n 0 -q tests/test_data_containers_fuzz.py``.
"""

from __future__ import annotations

import struct
import time
import tracemalloc

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_data_containers import (
    example,
    jpegs,
    write_parquet,
    write_tfrecord,
    write_webdataset,
)

from featx.data.containers import list_parquet, list_tfrecords, list_webdataset
from featx.data.files import IMAGE_EXTENSIONS
from featx.data.framing import masked_crc
from featx.images import parse_container, read_bytes

TRIALS = 100
DEADLINE_S = 10  # per trial; a trial takes milliseconds
MAX_TRACED_BYTES = 8 * 2**20  # the shards are ~20 KB
CLASSES = ["cat", "dog", "owl"]
KINDS = ("overwrite", "truncate", "huge", "checksum", "insert-boundary", "insert")


@pytest.fixture(scope="module")
def originals():
    """10 (JPEG, label) pairs."""
    return [(im, CLASSES[k % 3]) for k, im in enumerate(jpegs(10, seed=7))]


class Corruption:
    """Edits in the original file's coordinates: overwrites, one insertion or one cut."""

    def __init__(self, data: bytes):
        self.data, self.changed, self.inserts, self.cut = bytearray(data), set(), [], None

    def overwrite(self, pos: int, blob: bytes) -> None:
        for i, b in enumerate(blob[: len(self.data) - pos]):
            if self.data[pos + i] != b:
                self.data[pos + i] = b
                self.changed.add(pos + i)

    def result(self) -> bytes:
        out = bytes(self.data)
        for pos, junk in self.inserts:
            out = out[:pos] + junk + out[pos:]
        return out if self.cut is None else out[: self.cut]

    def touched(self, a: int, b: int) -> bool:
        return (any(a <= p < b for p in self.changed)
                or any(a < p < b for p, _ in self.inserts)
                or (self.cut is not None and a < self.cut < b))

    def gone(self, a: int) -> bool:
        """Whether truncation removed everything from ``a`` on."""
        return self.cut is not None and a >= self.cut

    def moved(self, a: int) -> int:
        """Where original offset ``a`` is in the corrupted file."""
        return a + sum(len(j) for p, j in self.inserts if p <= a)


def corrupt(data: bytes, kind: str, rng, boundaries: list[int], huge, checksum) -> Corruption:
    """One corruption of ``kind``; ``huge(c, rng)`` and ``checksum(c, rng)`` are the format's."""
    c = Corruption(data)
    n = len(data)
    if kind == "overwrite":
        for _ in range(rng.integers(1, 4)):
            c.overwrite(int(rng.integers(0, n)), rng.bytes(int(rng.integers(1, 17))))
    elif kind == "truncate":
        c.cut = int(rng.integers(0, n))
    elif kind == "huge":
        huge(c, rng)
    elif kind == "checksum":
        checksum(c, rng)
    else:
        pos = (int(rng.choice(boundaries)) if kind == "insert-boundary"
               else int(rng.integers(0, n)))
        c.inserts.append((pos, rng.bytes(int(rng.integers(1, 600)))))
    return c


def run_listing(fn):
    """``fn()`` under tracemalloc, with a generous deadline."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < DEADLINE_S
    assert peak < MAX_TRACED_BYTES, peak
    return out


def overlaps(skipped, a: int, b: int) -> bool:
    """Whether a skipped entry's byte range overlaps ``a .. b`` (corrupted coordinates)."""
    for where, _ in skipped:
        rec = parse_container(where)
        if rec.offset < b and a < rec.offset + rec.size:
            return True
    return False


# -- TFRecord ---------------------------------------------------------------------------------
def test_tfrecord_fuzz(originals, tmp_path):
    labels = {c: i for i, c in enumerate(CLASSES)}
    payloads = [example(im, labels[y]) for im, y in originals]
    spans = write_tfrecord(tmp_path / "clean.tfrecord", payloads)
    clean = (tmp_path / "clean.tfrecord").read_bytes()
    pairs = {(im, labels[y]): k for k, (im, y) in enumerate(originals)}

    def huge(c, rng):
        s = spans[rng.integers(len(spans))][0]
        length = struct.pack("<Q", int(rng.integers(2**32, 2**63)))
        c.overwrite(s, length)
        if rng.random() < 0.5:
            c.overwrite(s + 8, struct.pack("<I", masked_crc(length)))

    def checksum(c, rng):
        s, e = spans[rng.integers(len(spans))]
        at = s + 8 + int(rng.integers(4)) if rng.random() < 0.5 else e - 4 + int(rng.integers(4))
        c.overwrite(at, bytes([c.data[at] ^ int(rng.integers(1, 256))]))

    counts = dict.fromkeys(("listed", "skipped", "lost"), 0)
    for trial in range(TRIALS):
        rng = np.random.default_rng([1, trial])
        c = corrupt(clean, KINDS[trial % len(KINDS)], rng, [s for s, _ in spans], huge, checksum)
        path = tmp_path / f"t{trial}.tfrecord"
        path.write_bytes(data := c.result())
        locs, got, skipped = run_listing(
            lambda p=path: list_tfrecords([str(p)], "image/encoded", "image/class/label"))
        listed = []
        for loc, y in zip(locs, got, strict=True):
            rec = parse_container(loc)
            listed.append(pairs[(data[rec.offset: rec.offset + rec.size], y)])  # an original
        for k, (s, e) in enumerate(spans):
            if k in listed or c.gone(s):
                counts["lost" if k not in listed else "listed"] += 1
                continue
            assert c.touched(s, e), f"trial {trial}: record {k} untouched, not listed"
            assert overlaps(skipped, c.moved(s), c.moved(e)), f"trial {trial}: record {k}"
            counts["skipped"] += 1
        assert len(set(listed)) == len(listed)
    assert counts["listed"] > 5 * TRIALS and counts["skipped"] > TRIALS / 2, counts


# -- WebDataset -------------------------------------------------------------------------------
def test_webdataset_fuzz(originals, tmp_path):
    members = write_webdataset(tmp_path / "clean.tar", [(f"s{k}", im, y.encode())
                                                        for k, (im, y) in enumerate(originals)])
    clean = (tmp_path / "clean.tar").read_bytes()
    # each sample's bytes: its two members, header to padded end
    sample = {k: [(h, d + -(-n // 512) * 512) for h, d, n in
                  (members[f"s{k}.jpg"], members[f"s{k}.cls"])] for k in range(len(originals))}
    headers = [h for h, _, _ in members.values()]

    def fix_sum(c, h):
        block = bytearray(c.data[h:h + 512])
        block[148:156] = b"        "
        c.overwrite(h + 148, b"%06o\0 " % sum(block))

    def huge(c, rng):
        h = int(rng.choice(headers))
        c.overwrite(h + 124, b"%011o\0" % int(rng.integers(2**30, 8**11 - 1)))
        if rng.random() < 0.5:
            fix_sum(c, h)

    def checksum(c, rng):
        h = int(rng.choice(headers))
        c.overwrite(h + 148 + int(rng.integers(6)), bytes([int(rng.integers(48, 56))]))

    counts = dict.fromkeys(("listed", "skipped", "lost", "changed"), 0)
    for trial in range(TRIALS):
        rng = np.random.default_rng([2, trial])
        c = corrupt(clean, KINDS[trial % len(KINDS)], rng, headers, huge, checksum)
        path = tmp_path / f"t{trial}.tar"
        path.write_bytes(data := c.result())
        locs, got, skipped = run_listing(
            lambda p=path: list_webdataset([str(p)], IMAGE_EXTENSIONS))
        header_touched = any(c.touched(h, h + 512) for h in headers)
        listed = set()
        for loc, y in zip(locs, got, strict=True):
            rec = parse_container(loc)
            pair = (data[rec.offset: rec.offset + rec.size], y)
            if pair in originals:
                listed.add(originals.index(pair))
                continue
            # a changed item: tar cannot tell, but only its own bytes or a header changed
            k = int(rec.name[1:].split(".")[0]) if rec.name[1:].split(".")[0].isdigit() else -1
            assert header_touched or (k in sample and any(c.touched(a, b) for a, b in sample[k]))
            listed.add(k)
            counts["changed"] += 1
        for k, spans in sample.items():
            if k in listed or c.gone(spans[0][0]):
                counts["lost" if k not in listed else "listed"] += 1
                continue
            if not any(c.touched(a, b) for a, b in spans):
                assert header_touched, f"trial {trial}: sample {k} untouched, not listed"
            a, b = spans[0]  # the image member (its label lost: the image is skipped for it)
            assert overlaps(skipped, c.moved(a), c.moved(b)), f"trial {trial}: sample {k}"
            counts["skipped"] += 1
    assert counts["listed"] > 5 * TRIALS and counts["skipped"] > TRIALS / 2, counts


# -- Parquet ----------------------------------------------------------------------------------
def test_parquet_fuzz(originals, tmp_path):
    write_parquet(tmp_path / "clean.parquet", [im for im, _ in originals],
                  [y for _, y in originals], row_group_size=2)
    clean = (tmp_path / "clean.parquet").read_bytes()
    meta = pq.ParquetFile(tmp_path / "clean.parquet").metadata
    groups = []
    for g in range(meta.num_row_groups):
        cols = [meta.row_group(g).column(j) for j in range(meta.num_columns)]
        starts = [min(x for x in (col.dictionary_page_offset, col.data_page_offset) if x)
                  for col in cols]
        groups.append((min(starts), max(s + col.total_compressed_size
                                        for s, col in zip(starts, cols, strict=True))))
    footer = groups[-1][1]

    def huge(c, rng):
        c.overwrite(len(clean) - 8, struct.pack("<I", int(rng.integers(2**31, 2**32))))

    def checksum(c, rng):
        a, b = groups[rng.integers(len(groups))]
        at = int(rng.integers(a, b))
        c.overwrite(at, bytes([c.data[at] ^ int(rng.integers(1, 256))]))

    counts = dict.fromkeys(("listed", "skipped"), 0)
    for trial in range(TRIALS):
        rng = np.random.default_rng([3, trial])
        c = corrupt(clean, KINDS[trial % len(KINDS)], rng, [a for a, _ in groups], huge,
                    checksum)
        path = tmp_path / f"t{trial}.parquet"
        path.write_bytes(c.result())
        locs, got, skipped, _ = run_listing(
            lambda p=path: list_parquet([str(p)], "image", "label"))
        listed = {originals.index((read_bytes(loc), y)) for loc, y in zip(locs, got,
                                                                          strict=True)}
        assert len(listed) == len(locs)
        named = {w for w, _ in skipped}
        shifted = bool(c.inserts) or c.cut is not None
        for k in range(len(originals)):
            g = k // 2
            if k in listed:
                counts["listed"] += 1
                continue
            assert shifted or c.touched(0, 4) or c.touched(footer, len(clean)) or \
                c.touched(*groups[g]), f"trial {trial}: row {k} untouched, not listed"
            assert named & {str(path), f"parquet://{path}#image@{g}",
                            f"parquet://{path}#image@{g}/{k % 2}"}, f"trial {trial}: row {k}"
            counts["skipped"] += 1
    assert counts["listed"] > 3 * TRIALS and counts["skipped"] > TRIALS, counts
