"""Images kept inside other files or on stores: TFRecord shards, Parquet files, WebDataset tar
shards, and class-folder trees behind a URL.

Each lister reads its container once, front to back (one record, one row group or one tar
member in memory at a time), and returns ``(locations, labels, skipped)``: one location per image
(:func:`featx.images.container_location`: the file plus the byte range or row of the image, so a
decode thread or a Ray worker reads just that image later) and its label as stored.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from featx.images import (
    ImageError,
    check_image_bytes,
    container_location,
    image_cell,
    is_url,
    location_suffix,
    open_regular,
    require_pyarrow,
    url_to_fs,
)
from featx.trust.reader import confine

__all__ = ["CONTAINER_FORMATS", "expand_pattern", "label_codes", "list_parquet",
           "list_tfrecords", "list_url_tree", "list_webdataset", "open_location"]

Listing = tuple[list[str], list, list[tuple[str, str]]]


@contextmanager
def open_location(location: str) -> Iterator[BinaryIO]:
    """A binary file object for a local path (regular files only) or an fsspec URL."""
    if not is_url(location):
        with open_regular(location) as f:
            yield f
        return
    fs, path = url_to_fs(location)
    with fs.open(path, "rb") as f:
        yield f


def expand_pattern(pattern: str | os.PathLike, param: str = "pattern") -> list[str]:
    """The files a glob pattern, a folder (the files in it) or a single file names, local or a
    URL, sorted; a ``FileNotFoundError`` naming ``param`` when there are none."""
    pattern = os.fspath(pattern)
    if is_url(pattern):
        fs, path = url_to_fs(pattern)
        found = sorted(fs.glob(path)) if glob.has_magic(path) else (
            sorted(fs.find(path)) if fs.isdir(path) else [path] if fs.exists(path) else [])
        files = [fs.unstrip_protocol(p) for p in found]
    else:
        pattern = os.path.abspath(os.path.expanduser(pattern))
        files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else (
            sorted(os.path.join(pattern, n) for n in os.listdir(pattern) if not n.startswith("."))
            if os.path.isdir(pattern) else [pattern] if os.path.exists(pattern) else [])
    if not files:
        raise FileNotFoundError(f"{param}={pattern!r} matches no file")
    return files


def _checked(data: bytes, where: str, verify: str) -> str | None:
    if verify == "none":
        return None
    try:
        check_image_bytes(data, source=where, full=verify == "decode")
    except ImageError as exc:
        return str(exc).removeprefix(f"{where}: ")
    return None


# -- TFRecord ---------------------------------------------------------------------------------
def _tfrecords(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(offset of the data, data)`` of each record of a TFRecord file, read front to back.

    Hand-written because tf.data's TFRecordDataset yields records but not where they are; the
    framing is ``uint64 length, uint32 CRC of it, data, uint32 CRC of the data``. The CRCs are
    not checked: each image's SHA-256 is its cache key, so a changed byte is a new image."""
    pos = 0
    while header := f.read(12):
        if len(header) < 12:
            raise ValueError(f"truncated TFRecord header at byte {pos}")
        (length,) = struct.unpack("<Q", header[:8])
        data = f.read(length)
        if len(data) < length or len(f.read(4)) < 4:
            raise ValueError(f"truncated TFRecord record at byte {pos}")
        yield pos + 12, data
        pos += 16 + length


def _feature_value(feature):
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return values[0] if len(values) else None


def list_tfrecords(files: Sequence[str], image_key: str, label_key: str,
                   verify: str = "header") -> Listing:
    """The images of ``tf.train.Example`` records: the location of the bytes under
    ``image_key`` inside the shard, and the label under ``label_key`` (an int or a name)."""
    import tensorflow as tf

    locations, labels, skipped = [], [], []
    for file in files:
        with open_location(file) as f:
            try:
                for i, (offset, data) in enumerate(_tfrecords(f)):
                    where = f"tfrecord://{file}#{i}"
                    feats = tf.train.Example.FromString(data).features.feature
                    missing = [k for k in (image_key, label_key) if k not in feats]
                    if missing:
                        skipped.append((where, f"record has no feature {missing[0]!r} (it has "
                                               f"{sorted(feats)[:8]})"))
                        continue
                    image = _feature_value(feats[image_key])
                    label = _feature_value(feats[label_key])
                    if not isinstance(image, bytes) or label is None:
                        skipped.append((where, f"{image_key!r} holds no image bytes"
                                        if label is not None else f"{label_key!r} is empty"))
                        continue
                    if reason := _checked(image, where, verify):
                        skipped.append((where, reason))
                        continue
                    # the image's own bytes, wherever they sit in the serialised Example
                    start = offset + data.find(image)
                    locations.append(container_location("tfrecord", file, str(i), start,
                                                        len(image)))
                    labels.append(label.decode("utf-8", "replace") if isinstance(label, bytes)
                                  else int(label))
            except ValueError as exc:
                skipped.append((f"tfrecord://{file}", f"cannot read shard ({exc})"))
    return locations, labels, skipped


# -- Parquet ----------------------------------------------------------------------------------
def _hf_label_names(schema, label_column: str) -> list[str] | None:
    """The class names a Hugging Face ``ClassLabel`` column stores in the schema metadata."""
    meta = (schema.metadata or {}).get(b"huggingface")
    try:
        feature = json.loads(meta)["info"]["features"][label_column]
        names = feature.get("names") if isinstance(feature, dict) else None
    except (TypeError, ValueError, KeyError):
        return None
    return [str(n) for n in names] if names else None


def list_parquet(files: Sequence[str], image_column: str, label_column: str,
                 verify: str = "header", *, allow_local: bool = False,
                 ) -> tuple[list[str], list, list, list[str] | None]:
    """The images of a Parquet image-bytes column (plain ``binary`` or the ``{bytes, path}``
    struct), one row group at a time, with the labels and the class names a Hugging Face
    dataset stores with them (or ``None``). A cell without bytes but with a ``path`` is read
    from that path (relative to the Parquet file's folder; one that leaves it is skipped
    unless ``allow_local``: :func:`featx.trust.reader.confine`)."""
    pq = require_pyarrow()
    locations, labels, skipped, names = [], [], [], None
    for file in files:
        with open_location(file) as f:
            pf = pq.ParquetFile(f)
            columns = pf.schema_arrow.names
            for param, col in (("image_column", image_column), ("label_column", label_column)):
                if col not in columns:
                    raise KeyError(f"{param}={col!r} is not a column of {file!r}; its columns "
                                   f"are {columns}")
            names = names or _hf_label_names(pf.schema_arrow, label_column)
            for rg in range(pf.num_row_groups):
                table = pf.read_row_group(rg, columns=[image_column, label_column])
                cells = table.column(image_column).to_pylist()
                for row, (cell, label) in enumerate(zip(
                        cells, table.column(label_column).to_pylist(), strict=True)):
                    where = container_location("parquet", file, image_column, rg, row)
                    data = image_cell(cell)
                    if label is None:
                        skipped.append((where, f"{label_column!r} is empty"))
                        continue
                    if data is None:
                        path = cell.get("path") if isinstance(cell, dict) else None
                        if not path:
                            skipped.append((where, "the image cell holds no bytes and no path"))
                            continue
                        if reason := confine(path, file, allow_local=allow_local,
                                             contained=True):
                            skipped.append((where, reason))
                            continue
                        where = path if is_url(path) or os.path.isabs(path) else (
                            _sibling(file, path))
                    elif reason := _checked(data, where, verify):
                        skipped.append((where, reason))
                        continue
                    locations.append(where)
                    labels.append(label)
    return locations, labels, skipped, names


def _sibling(file: str, name: str) -> str:
    """``name`` (relative, inside the folder: :func:`featx.trust.reader.confine` checked it) in
    the folder of ``file``: a path, a URL, or a member of a chain (``zip://d/x.parquet::a.zip``
    -> ``zip://d/<name>::a.zip``)."""
    if is_url(file):
        head, sep, tail = file.partition("::")
        return head.rsplit("/", 1)[0] + "/" + name + sep + tail
    return os.path.join(os.path.dirname(os.path.abspath(file)), name)


# -- WebDataset -------------------------------------------------------------------------------
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"(\xb5/\xfd": "zstd"}


def list_webdataset(files: Sequence[str], image_extensions: Sequence[str],
                    label_extension: str = "cls", verify: str = "header") -> Listing:
    """The images of WebDataset tar shards: members ``<key>.<image extension>`` labelled by the
    text of ``<key>.<label_extension>``, each shard streamed once."""
    locations, labels, skipped = [], [], []
    label_ext = "." + label_extension.lstrip(".")
    for file in files:
        with open_location(file) as f:
            magic = f.read(6)
            kind = next((k for m, k in _COMPRESSED.items() if magic.startswith(m)), None)
            if kind:
                raise ValueError(f"{file!r} is a {kind}-compressed tar: featx reads each image "
                                 "by its byte range, so WebDataset shards must be plain .tar "
                                 "(decompress it once: the images inside are compressed anyway)")
            f.seek(0)
            images: dict[str, tuple[str, bytes | None]] = {}
            found: dict[str, object] = {}
            with tarfile.open(fileobj=f, mode="r|") as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    key = m.name[: len(m.name) - len(base)] + base.split(".", 1)[0]
                    suffix = location_suffix(m.name)
                    if suffix in image_extensions:
                        data = tar.extractfile(m).read() if verify != "none" else None
                        loc = container_location("webdataset", file, m.name, m.offset_data,
                                                 m.size)
                        images[key] = (loc, data)
                    elif m.name.endswith(label_ext):
                        text = tar.extractfile(m).read().decode("utf-8", "replace").strip()
                        found[key] = int(text) if text.lstrip("-").isdigit() else text
            for key, (loc, data) in images.items():
                if key not in found or found[key] == "":
                    skipped.append((loc, f"no label: {key}{label_ext} is missing or empty"))
                elif data is not None and (reason := _checked(data, loc, verify)):
                    skipped.append((loc, reason))
                else:
                    locations.append(loc)
                    labels.append(found[key])
    return locations, labels, skipped


# -- class folders behind a URL ----------------------------------------------------------------
def _child(root: str, fs, path: str) -> str:
    """The URL of ``path`` (as ``fs`` names it) in the spelling of ``root`` (chains kept)."""
    if "::" in root:
        scheme, _, _ = root.partition("://")
        return f"{scheme}://{path}::{root.split('::', 1)[1]}"
    return path if "://" in path else fs.unstrip_protocol(path)


def list_url_tree(root: str) -> tuple[Callable[[str], list[tuple[str, str]]], str]:
    """``(ls, root)``: ``ls(url) -> [(name, url of each folder or file)]`` split into folders
    (``name`` ending in ``/``) and files, for a class-folder tree behind an fsspec URL."""
    fs, path = url_to_fs(root)

    def ls(url: str) -> list[tuple[str, str]]:
        _, p = url_to_fs(url)
        out = []
        for info in fs.ls(p, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if not name or name.startswith(".") or info["name"].rstrip("/") == p.rstrip("/"):
                continue
            child = _child(root, fs, info["name"].rstrip("/"))
            out.append((name + "/" if info["type"] == "directory" else name, child))
        return sorted(out)

    if not fs.isdir(path):
        raise FileNotFoundError(f"root={root!r} is not a folder")
    return ls, root.rstrip("/") if "::" not in root else root


CONTAINER_FORMATS = ("tfrecord", "parquet", "webdataset")


def label_codes(labels: Sequence, label_names: Sequence[str] | None) -> tuple[list[int],
                                                                               list[str]]:
    """Labels as stored (ints or names) -> ``(codes, class names)``: ints index ``label_names``
    (default: ``"0"``, ``"1"``, ...), names are looked up in it (default: sorted).

    Examples
    --------
    >>> label_codes([2, 0, 2], None)
    ([2, 0, 2], ['0', '1', '2'])
    >>> label_codes(["dog", "cat"], None)
    ([1, 0], ['cat', 'dog'])
    """
    ints = all(isinstance(y, int) for y in labels)
    if label_names is None:
        if ints:
            label_names = [str(k) for k in range(max(labels, default=-1) + 1)]
        else:
            label_names = sorted({str(y) for y in labels})
    names = [str(n) for n in label_names]
    index = {n: i for i, n in enumerate(names)}
    codes = []
    for y in labels:
        if isinstance(y, int) and 0 <= y < len(names):
            codes.append(y)
        elif str(y) in index:
            codes.append(index[str(y)])
        else:
            raise ValueError(f"label {y!r} is not in label_names={names}")
    return codes, names
