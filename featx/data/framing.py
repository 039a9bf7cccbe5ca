"""The byte framing of container shards, checked: TFRecord records and tar members.

Each walker reads a shard front to back and yields its units: for a unit whose framing checks,
where its bytes are; for a damaged stretch, where it starts, how long it is and what is wrong.
After damage the walker resynchronises at the next place whose header checks, so one bad
record or header costs what it holds and nothing after it. No walker allocates from a length it
has not checked: a unit larger than :func:`featx.trust.reader.max_item_bytes`, or one that would
run past the end of the file, is never read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import lru_cache
from typing import BinaryIO, NamedTuple

import google_crc32c
import numpy as np

from featx.trust.reader import max_item_bytes

__all__ = ["Unit", "masked_crc", "tar_members", "tfrecords"]

#: How much of a shard one resynchronisation step reads at a time.
_SCAN_BYTES = 2**20


class Unit(NamedTuple):
    """One unit of a shard: ``problem`` is ``None`` for a good unit (``offset`` and ``size``
    give its payload, ``name`` its member name in a tar or its number in a TFRecord file), else
    why the stretch ``offset .. offset + size`` of the file is skipped (``name`` set when a
    header that checks named it)."""

    offset: int
    size: int
    name: str | None = None
    problem: str | None = None
    data: bytes | None = None


def file_size(f: BinaryIO) -> int:
    """The size of an open, seekable file (its position is left at the start)."""
    size = f.seek(0, 2)
    f.seek(0)
    return size


# -- TFRecord ---------------------------------------------------------------------------------
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C of ``data``, rotated right by 15 bits plus a constant.

    CRC-32C comes from ``google-crc32c`` (C, hardware-accelerated): checking each record's data
    this way costs microseconds per 100 KB, where a pure-Python loop costs about 13 ms.

    Examples
    --------
    >>> hex(masked_crc(b"123456789"))
    '0xc78ab0e5'
    """
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@lru_cache(maxsize=1)
def _crc_table() -> np.ndarray:
    """The byte table of reflected CRC-32C (polynomial 0x82F63B78)."""
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return np.array(table, np.uint32)


def _header_offsets(buf: bytes, base: int, size: int, cap: int) -> np.ndarray:
    """The offsets (in the file) of every place in ``buf`` (read at ``base``) where a TFRecord
    header checks: a length at most ``cap`` that ends inside the file, and its masked CRC.

    Hand-written in numpy rather than a loop of :func:`masked_crc` calls: a resynchronisation
    tests every byte offset, and a damaged stretch can be megabytes long (a zeroed hole makes
    every offset a candidate)."""
    a = np.frombuffer(buf, np.uint8)
    n = len(a) - 11
    if n <= 0:
        return np.empty(0, np.int64)
    win = np.lib.stride_tricks.sliding_window_view(a, 12)[:n]
    # a length of at most 2**32 - 1 has its four high bytes zero: a cheap first cut
    cand = (np.flatnonzero(~win[:, 4:8].any(axis=1)) if cap < 2**32
            else np.arange(n))
    length = np.ascontiguousarray(win[cand, :8]).view("<u8").ravel()
    fits = (length <= cap) & (length <= np.maximum(size - (base + cand) - 16, 0))
    cand, rows = cand[fits], np.ascontiguousarray(win[cand[fits]])
    table = _crc_table()
    crc = np.full(len(cand), 0xFFFFFFFF, np.uint32)
    for j in range(8):
        crc = table[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    crc ^= np.uint32(0xFFFFFFFF)
    masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)
    stored = rows[:, 8:12].copy().view("<u4").ravel()
    return base + cand[masked == stored]


def _next_record(f: BinaryIO, start: int, size: int, cap: int) -> int:
    """The first offset at or after ``start`` where a TFRecord header checks (``size``: none)."""
    pos = start
    while pos + 12 <= size:
        f.seek(pos)
        buf = f.read(min(_SCAN_BYTES, size - pos))
        found = _header_offsets(buf, pos, size, cap)
        if len(found):
            return int(found[0])
        if len(buf) < _SCAN_BYTES:
            break
        pos += len(buf) - 11
    return size


def tfrecords(f: BinaryIO) -> Iterator[Unit]:
    """The records of a TFRecord file: for each, the offset and size of its data, and the data.

    The framing is ``uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked
    CRC-32C of the data``; both checksums are checked. A record whose data fails its checksum,
    or over the size limit, is a unit with its problem (the walker moves on by its checked
    length); a header that does not check starts a damaged stretch that ends at the next
    offset whose header checks. Hand-written because tf.data's TFRecordDataset yields records
    but not where they are, and stops at the first damaged one.
    """
    size, cap, pos, n = file_size(f), max_item_bytes(), 0, 0
    while pos < size:
        f.seek(pos)
        header = f.read(12)
        if len(header) < 12:
            yield Unit(pos, size - pos, problem=f"{size - pos} trailing byte(s): too few for a "
                                                "record")
            return
        length, crc = struct.unpack("<QI", header)
        end = pos + 16 + length
        if masked_crc(header[:8]) != crc:
            problem = "damaged: no record header checks here"
        elif end > size:
            problem = (f"a record header says {length} bytes, past the end of the file "
                       f"({max(size - pos - 16, 0)} bytes left)")
        elif length > cap:
            yield Unit(pos, end - pos, str(n), f"a record of {length} bytes, over the limit of "
                                               f"{cap} bytes per item (max_item_bytes)")
            pos, n = end, n + 1
            continue
        else:
            data, tail = f.read(length), f.read(4)
            n += 1
            if len(data) == length and len(tail) == 4 and masked_crc(data) == struct.unpack(
                    "<I", tail)[0]:
                yield Unit(pos + 12, length, str(n - 1), data=data)
                pos = end
                continue
            # the length checked, so the next record most likely starts at `end`; but a
            # length forged with its checksum would hide records behind it: look from here
            nxt = _next_record(f, pos + 12, size, cap)
            yield Unit(pos, nxt - pos, str(n - 1), "damaged: the record's data fails its "
                       "checksum" + ("" if nxt == end else f"; bytes {pos}-{nxt} skipped to the "
                                     "next record header that checks"))
            pos = nxt
            continue
        nxt = _next_record(f, pos + 1, size, cap)
        yield Unit(pos, nxt - pos, problem=f"{problem}; bytes {pos}-{nxt} skipped to the next "
                                           "record header that checks")
        pos = nxt


# -- tar --------------------------------------------------------------------------------------
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
#: The most bytes of a pax or GNU long-name header read (metadata for the next member).
_MAX_META_BYTES = 2**20
_REGULAR = (b"0", b"\0", b"7")


def _tar_number(field: bytes) -> int:
    """A tar numeric field: octal text, or GNU base-256 (high bit set) for large values."""
    if field[:1] and field[0] & 0x80:
        if field[0] != 0x80:
            raise ValueError("negative number")
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _tar_header(block: bytes) -> tuple[str, bytes, int] | None:
    """``(name, type flag, size)`` of a 512-byte tar header whose checksum checks, else None.

    The checksum is the sum of the header's bytes with its own field read as spaces; old
    writers summed signed bytes, so either sum is accepted (as tarfile does)."""
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"-", 8)
        size = _tar_number(block[124:136])
    except ValueError:
        return None
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored != unsigned:
        high = sum(1 for b in block[:148] + block[156:] if b & 0x80)
        if stored != unsigned - 256 * high:
            return None
    name = block[:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\x00" and prefix:  # POSIX ustar splits long names
        name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape"), block[156:157], size


def _next_tar_header(f: BinaryIO, start: int, size: int) -> int | None:
    """The first offset at or after ``start`` of a tar header that checks, found by its
    ``ustar`` magic (every tar writer of the last 30 years writes it), or None."""
    pos = start
    while pos + _BLOCK <= size:
        f.seek(pos)
        buf = f.read(min(_SCAN_BYTES, size - pos))
        i = buf.find(b"ustar", 257)
        while i != -1 and i - 257 + _BLOCK <= len(buf):
            if _tar_header(buf[i - 257: i - 257 + _BLOCK]) is not None:
                return pos + i - 257
            i = buf.find(b"ustar", i + 1)
        if len(buf) < _SCAN_BYTES:
            break
        pos += len(buf) - _BLOCK
    return None


def _pax_records(data: bytes) -> dict[str, str]:
    """The ``"<length> <key>=<value>\\n"`` records of a pax extended header."""
    out, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        if not space < pos + length <= len(data) or data[pos + length - 1] != 0x0A:
            raise ValueError("malformed pax record")
        key, _, value = data[space + 1: pos + length - 1].partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def tar_members(f: BinaryIO) -> Iterator[Unit]:
    """The regular-file members of a plain tar: for each, the offset and size of its data and
    its name (a pax ``path`` or GNU long name applied).

    Hand-written because Python's tarfile stops at the first header whose checksum fails (or
    at a zeroed block), silently dropping the rest of the shard. Here a damaged header, or a
    zeroed stretch followed by more members, is a unit with its problem and the walk resumes at
    the next header that checks; a member that would run past the end of the file is one too.
    """
    size, pos, meta = file_size(f), 0, {}
    while pos + _BLOCK <= size:
        f.seek(pos)
        block = f.read(_BLOCK)
        head = None if block == _ZERO_BLOCK else _tar_header(block)
        if head is None:
            nxt = _next_tar_header(f, pos + (_BLOCK if block == _ZERO_BLOCK else 1), size)
            if nxt is None and block == _ZERO_BLOCK:
                return  # the end-of-archive blocks and their padding
            nxt = size if nxt is None else nxt
            what = "zeroed blocks" if block == _ZERO_BLOCK else "a damaged tar header"
            yield Unit(pos, nxt - pos, problem=f"{what}; bytes {pos}-{nxt} skipped to the next "
                                               "header that checks (members there are lost)")
            pos, meta = nxt, {}
            continue
        name, kind, length = head
        try:
            length = int(meta.get("size", length))
        except ValueError:
            length = -1
        name = meta.get("path", name)
        data_at = pos + _BLOCK
        end = data_at + -(-length // _BLOCK) * _BLOCK
        if length < 0 or data_at + length > size or (
                kind in (b"x", b"L") and length > _MAX_META_BYTES):
            nxt = _next_tar_header(f, data_at, size)
            nxt = size if nxt is None else nxt
            yield Unit(pos, nxt - pos, name, (
                f"member {name!r}: its header says {length} bytes, "
                + ("past the end of the file" if length >= 0 and data_at + length > size
                   else "not a usable size")
                + f"; bytes {pos}-{nxt} skipped to the next header that checks"))
            pos, meta = nxt, {}
            continue
        pos = end
        if kind in (b"x", b"L"):  # a pax header or a GNU long name: about the next member
            f.seek(data_at)
            data = f.read(length)
            try:
                meta = (_pax_records(data) if kind == b"x" else
                        {"path": data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")})
            except ValueError:
                yield Unit(data_at - _BLOCK, end - data_at + _BLOCK, name,
                           "a damaged pax header: the member after it is read by its own "
                           "header")
                meta = {}
            continue
        meta = {}
        if kind in _REGULAR:
            yield Unit(data_at, length, name)
    if pos < size and f.seek(pos) == pos and f.read(size - pos).strip(b"\0"):
        yield Unit(pos, size - pos, problem=f"{size - pos} trailing byte(s): too few for a tar "
                                            "header (a truncated shard?)")
