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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from featx.data.framing import Unit, tar_members, tfrecords
from featx.data.labels import label_problem, stored_label
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
from featx.trust.reader import confine, max_item_bytes

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
def _feature_value(feature):
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return values[0] if len(values) else None


def _example_image(data: bytes, image_key: str, label_key: str) -> tuple[bytes, object] | str:
    """``(image bytes, label)`` of a serialised ``tf.train.Example``, or why it has none."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        feats = tf.train.Example.FromString(data).features.feature
    except DecodeError as exc:
        return f"not a tf.train.Example ({exc})"
    missing = [k for k in (image_key, label_key) if k not in feats]
    if missing:
        return f"record has no feature {missing[0]!r} (it has {sorted(feats)[:8]})"
    image, label = _feature_value(feats[image_key]), _feature_value(feats[label_key])
    if not isinstance(image, bytes):
        return f"{image_key!r} holds no image bytes"
    if problem := label_problem(label):
        return f"{label_key!r}: {problem}"
    return image, label


def _find(data: bytes, image: bytes) -> int:
    """Where the image's own bytes sit in the serialised Example: found by their first 64
    bytes, then compared whole (``bytes.find`` of a whole 100 KB image costs ~0.15 ms)."""
    at = data.find(image[:64])
    while at != -1 and data[at: at + len(image)] != image:
        at = data.find(image[:64], at + 1)
    return at


def list_tfrecords(files: Sequence[str], image_key: str, label_key: str,
                   verify: str = "header") -> Listing:
    """The images of ``tf.train.Example`` records: the location of the bytes under
    ``image_key`` inside the shard, and the label under ``label_key`` (an int or a name).

    Each record's framing is checked (:func:`featx.data.framing.tfrecords`): a damaged record
    or stretch of the shard, a record over the size limit, one that is not an Example, or one
    without a usable image or label is listed in ``skipped`` with its reason, and the records
    after it are still read."""
    locations, labels, skipped = [], [], []
    for file in files:
        with open_location(file) as f:
            for unit in tfrecords(f):
                where = container_location("tfrecord", file, unit.name or "bytes", unit.offset,
                                           unit.size)
                found = unit.problem or _example_image(unit.data, image_key, label_key)
                if isinstance(found, str):
                    skipped.append((where, found))
                    continue
                image, label = found
                if reason := _checked(image, where, verify):
                    skipped.append((where, reason))
                    continue
                start = unit.offset + _find(unit.data, image)
                locations.append(container_location("tfrecord", file, unit.name, start,
                                                    len(image)))
                labels.append(stored_label(label))
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
    unless ``allow_local``: :func:`featx.trust.reader.confine`).

    Page checksums are verified where the file has them. A file whose footer cannot be read,
    or that lacks the columns, is listed in ``skipped`` and the next file is read; a row group
    that cannot be read or decoded is listed there (naming the file and the row group) and the
    next row group is read. ``KeyError`` when no file has the columns."""
    pq = require_pyarrow()
    import pyarrow as pa

    # what pyarrow raises for a damaged file: its own errors (a footer or page that does not
    # parse, a checksum that fails), and the builtins some of them are
    arrow_errors = (pa.ArrowException, OSError, ValueError, EOFError)
    locations, labels, skipped, names = [], [], [], None
    no_column = None
    cap = max_item_bytes()
    for file in files:
        with open_location(file) as f:
            try:
                pf = pq.ParquetFile(f, page_checksum_verification=True)
                columns = pf.schema_arrow.names
            except arrow_errors as exc:
                skipped.append((file, f"cannot read the Parquet footer ({_short(exc)}): the "
                                      "file is skipped"))
                continue
            missing = [(param, col) for param, col in (("image_column", image_column),
                                                       ("label_column", label_column))
                       if col not in columns]
            if missing:
                param, col = missing[0]
                no_column = no_column or (f"{param}={col!r} is not a column of {file!r}; its "
                                          f"columns are {columns}")
                skipped.append((file, f"{param}={col!r} is not a column (its columns are "
                                      f"{columns}): the file is skipped"))
                continue
            names = names or _hf_label_names(pf.schema_arrow, label_column)
            for rg in range(pf.num_row_groups):
                try:
                    table = pf.read_row_group(rg, columns=[image_column, label_column])
                    cells = table.column(image_column).to_pylist()
                    stored = table.column(label_column).to_pylist()
                except arrow_errors as exc:
                    rows = pf.metadata.row_group(rg).num_rows
                    skipped.append((container_location("parquet", file, image_column, rg, 0)
                                    .rsplit("/", 1)[0], f"row group {rg} ({rows} rows) cannot be "
                                    f"read ({_short(exc)}): its rows are skipped"))
                    continue
                for row, (cell, label) in enumerate(zip(cells, stored, strict=True)):
                    where = container_location("parquet", file, image_column, rg, row)
                    data = image_cell(cell)
                    if problem := label_problem(label):
                        skipped.append((where, f"{label_column!r}: {problem}"))
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
                    elif len(data) > cap:
                        skipped.append((where, f"{len(data)} bytes, over the limit of {cap} "
                                               "bytes per item (max_item_bytes)"))
                        continue
                    elif reason := _checked(data, where, verify):
                        skipped.append((where, reason))
                        continue
                    locations.append(where)
                    labels.append(stored_label(label))
    if no_column and not locations and all(r.endswith("the file is skipped")
                                           for _, r in skipped):
        raise KeyError(no_column)
    return locations, labels, skipped, names


def _short(exc: BaseException) -> str:
    """An exception's first line, at most 200 characters (pyarrow's can be long)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


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
    text of ``<key>.<label_extension>``, each shard read once, front to back.

    Each tar header's checksum is checked (:func:`featx.data.framing.tar_members`): a damaged
    header or stretch is listed in ``skipped`` and the members after it are still read; an
    image over the size limit, without a usable label, or not usable is skipped with its
    reason."""
    locations, labels, skipped = [], [], []
    label_ext = "." + label_extension.lstrip(".")
    cap = max_item_bytes()
    for file in files:
        with open_location(file) as f:
            magic = f.read(6)
            kind = next((k for m, k in _COMPRESSED.items() if magic.startswith(m)), None)
            if kind:
                raise ValueError(f"{file!r} is a {kind}-compressed tar: featx reads each image "
                                 "by its byte range, so WebDataset shards must be plain .tar "
                                 "(decompress it once: the images inside are compressed anyway)")
            images: list[tuple[str, str, str | None]] = []  # (key, location, why not usable)
            found: dict[str, bytes | str] = {}  # a label's bytes, or (str) why it is none
            for unit in tar_members(f):
                where = container_location("webdataset", file, unit.name or "bytes",
                                           unit.offset, unit.size)
                if unit.problem:
                    skipped.append((where, unit.problem))
                    continue
                base = unit.name.rsplit("/", 1)[-1]
                key = unit.name[: len(unit.name) - len(base)] + base.split(".", 1)[0]
                if location_suffix(unit.name) in image_extensions:
                    images.append((key, where, _member_problem(f, unit, where, cap, verify)))
                elif unit.name.endswith(label_ext):
                    found[key] = _member_label(f, unit)
            for key, loc, reason in images:
                label = found.get(key)
                if label is None:
                    reason = f"no label: {key}{label_ext} is missing"
                elif not reason and (problem := label if isinstance(label, str)
                                     else label_problem(label)):
                    reason = f"{key}{label_ext}: {problem}"
                if reason:
                    skipped.append((loc, reason))
                    continue
                text = stored_label(label)
                locations.append(loc)
                labels.append(int(text) if text.lstrip("-").isdigit() else text)
    return locations, labels, skipped


#: The most bytes a label member may have: a class name or number, never more.
_MAX_LABEL_BYTES = 2**16


def _read_member(f: BinaryIO, unit: Unit) -> bytes:
    f.seek(unit.offset)
    return f.read(unit.size)


def _member_problem(f: BinaryIO, unit: Unit, where: str, cap: int,
                    verify: str) -> str | None:
    """Why an image member cannot be used (read only when ``verify`` checks it)."""
    if unit.size > cap:
        return f"{unit.size} bytes, over the limit of {cap} bytes per item (max_item_bytes)"
    return None if verify == "none" else _checked(_read_member(f, unit), where, verify)


def _member_label(f: BinaryIO, unit: Unit) -> bytes | str:
    """A label member's bytes, or (text) why it is not read: far too big to be a label."""
    if unit.size > _MAX_LABEL_BYTES:
        return f"{unit.size} bytes, too big for a label (at most {_MAX_LABEL_BYTES})"
    return _read_member(f, unit)


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
