"""ImageDataset constructors for images inside other files or on stores: TFRecord shards, Parquet
files, WebDataset tar shards, and class-folder trees behind a URL (an archive ``zip://`` or
``tar://``, a bucket, a web server).

Each function takes the class first and is bound to :class:`~featx.data.ImageDataset` as a
classmethod (``ImageDataset.from_tfrecords(...)``, ``from_parquet``, ``from_webdataset``; a URL
given to ``from_directory`` goes to :func:`from_url_tree`). The containers themselves are read by
:mod:`featx.data.containers`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from featx.data.containers import (
    expand_pattern,
    label_codes,
    list_parquet,
    list_tfrecords,
    list_url_tree,
    list_webdataset,
)
from featx.data.files import (
    IMAGE_EXTENSIONS,
    NESTED_FOLDER,
    SPLIT_NAMES,
    Verify,
    check_files,
    loose_images,
    warn_skipped,
)

if TYPE_CHECKING:  # the class these construct; it imports this module
    from featx.data.dataset import ImageDataset

__all__ = ["from_parquet", "from_tfrecords", "from_url_tree", "from_webdataset"]


def from_tfrecords(
    cls: type[ImageDataset],
    pattern: str | os.PathLike,
    *,
    image_key: str = "image/encoded",
    label_key: str = "image/class/label",
    label_names: Sequence[str] | None = None,
    verify: Verify = "header",
    name: str | None = None,
) -> ImageDataset:
    """Read ``tf.train.Example`` records from TFRecord shards (a file, a glob pattern, local
    or any fsspec URL).

    Each shard is read once, front to back, one record at a time: each image's location
    (``tfrecord://<shard>#<record>@<offset>+<size>``) names the byte range of its encoded
    bytes in the shard, so extraction later reads only those bytes (on a Ray worker, from
    the store itself). Records without the keys, or whose image is not usable, are listed
    in ``skipped``.

    Parameters
    ----------
    pattern : str or path
        ``"data/train-*.tfrecord"``, ``"gs://bucket/flowers/train-*"``, ...
    image_key : str
        The feature holding the encoded image (a ``bytes_list``).
    label_key : str
        The feature holding the label: an ``int64_list`` (an index into ``label_names``) or
        a ``bytes_list`` (the class name).
    label_names : sequence of str, optional
        Class names; default: ``"0"``, ``"1"``, ... for int labels, sorted names otherwise.
    verify, name
        As in :meth:`from_directory` (``name`` default: the shard's name).

    Examples
    --------
    >>> import io, os, tempfile
    >>> from featx.data import ImageDataset
    >>> import tensorflow as tf
    >>> from PIL import Image
    >>> def example(colour, label):
    ...     buf = io.BytesIO(); Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    ...     feats = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(
    ...                  value=[buf.getvalue()])),
    ...              "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    ...     return tf.train.Example(features=tf.train.Features(feature=feats))
    >>> shard = os.path.join(tempfile.mkdtemp(), "train-0.tfrecord")
    >>> with tf.io.TFRecordWriter(shard) as w:
    ...     for colour, label in [("red", 0), ("blue", 1), ("red", 0)]:
    ...         w.write(example(colour, label).SerializeToString())
    >>> ds = ImageDataset.from_tfrecords(shard, image_key="image", label_key="label",
    ...                                  label_names=["red", "blue"])
    >>> len(ds), ds.class_counts()
    (3, {'red': 2, 'blue': 1})
    """
    files = expand_pattern(pattern)
    locs, labels, skipped = list_tfrecords(files, image_key, label_key, verify)
    return _from_listing(cls, locs, labels, skipped, label_names,
                             name or _stem(pattern, "tfrecord"))


def from_parquet(
    cls: type[ImageDataset],
    path_or_url: str | os.PathLike,
    *,
    image_column: str = "image",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    verify: Verify = "header",
    name: str | None = None,
    allow_local: bool = False,
) -> ImageDataset:
    """Read images stored in a Parquet column (a file, a glob pattern, local or a URL).

    The column holds the encoded bytes, either as ``binary`` or as the ``{bytes, path}``
    struct Hugging Face ``datasets`` writes (a cell with only a ``path`` is read from that
    path, relative to the Parquet file's folder; a path that leaves the folder, absolute or
    ``../``, or a local one in a remote file, is skipped with the reason unless
    ``allow_local=True``). Read with pyarrow one row group at a time. Labels are ints (indexing
    ``label_names``; default: the ``ClassLabel`` names a Hugging Face file stores, else
    ``"0"``, ``"1"``, ...) or class names. Each image's location is
    ``parquet://<file>#<column>@<row group>/<row>``.

    Examples
    --------
    >>> import io, os, tempfile
    >>> from featx.data import ImageDataset
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> from PIL import Image
    >>> def png(colour):
    ...     buf = io.BytesIO(); Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    ...     return buf.getvalue()
    >>> table = pa.table({"image": [{"bytes": png(c), "path": None} for c in ("red", "blue")],
    ...                   "label": ["red", "blue"]})
    >>> file = os.path.join(tempfile.mkdtemp(), "train.parquet")
    >>> pq.write_table(table, file)
    >>> ImageDataset.from_parquet(file).class_names
    ['blue', 'red']
    """
    files = expand_pattern(path_or_url, "path_or_url")
    locs, labels, skipped, names = list_parquet(files, image_column, label_column, verify,
                                                allow_local=allow_local)
    return _from_listing(cls, locs, labels, skipped, label_names or names,
                             name or _stem(path_or_url, "parquet"))


def from_webdataset(
    cls: type[ImageDataset],
    pattern: str | os.PathLike,
    *,
    label_extension: str = "cls",
    label_names: Sequence[str] | None = None,
    verify: Verify = "header",
    name: str | None = None,
) -> ImageDataset:
    """Read WebDataset tar shards: members ``<key>.jpg`` (any image extension) labelled by
    ``<key>.cls`` (an int indexing ``label_names``, or a class name).

    Shards must be plain (uncompressed) tar files, local or a URL; each is streamed once to
    list its members. Each image's location is ``webdataset://<shard>#<member>@<offset>
    +<size>``: its byte range in the shard.

    Examples
    --------
    >>> import io, os, tarfile, tempfile
    >>> from featx.data import ImageDataset
    >>> from PIL import Image
    >>> shard = os.path.join(tempfile.mkdtemp(), "shard-000.tar")
    >>> with tarfile.open(shard, "w") as tar:
    ...     for key, colour, label in [("a", "red", b"0"), ("b", "blue", b"1")]:
    ...         buf = io.BytesIO(); Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    ...         for ext, data in (("png", buf.getvalue()), ("cls", label)):
    ...             info = tarfile.TarInfo(f"{key}.{ext}"); info.size = len(data)
    ...             tar.addfile(info, io.BytesIO(data))
    >>> ImageDataset.from_webdataset(shard, label_names=["red", "blue"]).labels.tolist()
    [0, 1]
    """
    files = expand_pattern(pattern)
    locs, labels, skipped = list_webdataset(files, IMAGE_EXTENSIONS, label_extension,
                                            verify)
    return _from_listing(cls, locs, labels, skipped, label_names,
                             name or _stem(pattern, "webdataset"))


def from_url_tree(cls: type[ImageDataset], root: str, verify: Verify, name: str | None):
    """:meth:`ImageDataset.from_directory` for a class-folder tree behind an fsspec URL (an
    archive ``zip://::photos.zip``, a bucket, a web server; listed with ``fs.ls``)."""
    ls, root = list_url_tree(root)
    entries = ls(root)
    dirs = {n[:-1]: u for n, u in entries if n.endswith("/")}
    loose = loose_images([u for n, u in entries if not n.endswith("/")])
    splits: dict[str, str] = {}
    for d, url in sorted(dirs.items(), key=lambda kv: SPLIT_NAMES.get(kv[0]) != kv[0]):
        if d in SPLIT_NAMES and SPLIT_NAMES[d] not in splits:
            splits[SPLIT_NAMES[d]] = url
    target = root.rsplit("::", 1)[-1].rstrip("/")
    base = name or (target.rsplit("/", 1)[-1].split(".", 1)[0] or "data")
    if not splits:
        return _from_url_classes(cls, dirs, sorted(dirs), ls, verify, base, loose)
    loose += [(u, "not a split folder (train, validation, val, test): not read")
              for d, u in dirs.items() if d not in SPLIT_NAMES]
    scans = {s: {n[:-1]: u for n, u in ls(splits[s]) if n.endswith("/")}
             for s in ("train", "validation", "test") if s in splits}
    class_names = sorted({c for found in scans.values() for c in found})
    out = {}
    for split, found in scans.items():
        out[split] = _from_url_classes(cls, found, class_names, ls, verify,
                                           f"{base}-{split}", [] if out else loose)
    return out


def _from_url_classes(cls, folders: dict[str, str], class_names: list[str], ls,
                      verify: Verify, name: str, loose: list) -> ImageDataset:
    if not class_names:
        raise ValueError(f"{name!r} has no class sub-folders; expected "
                         "root/<class>/<image files>")
    candidates, skipped = [], list(loose)
    for label, cls_name in enumerate(class_names):
        if cls_name not in folders:
            continue
        for n, url in ls(folders[cls_name]):
            if n.endswith("/"):
                skipped.append((url, NESTED_FOLDER))
            else:
                candidates.append((url, label))
    reasons = check_files([p for p, _ in candidates], verify)
    keep = [(p, y) for (p, y), r in zip(candidates, reasons, strict=True) if r is None]
    skipped += [(p, r) for (p, _), r in zip(candidates, reasons, strict=True) if r is not None]
    counts = np.bincount([y for _, y in keep], minlength=len(class_names))
    skipped += [(folders.get(c, c), "class folder has no readable images")
                for c, n in zip(class_names, counts, strict=True) if n == 0]
    warn_skipped(skipped, name)
    return cls([p for p, _ in keep], [y for _, y in keep], class_names, skipped, name)


def _from_listing(cls, locations, labels, skipped, label_names, name) -> ImageDataset:
    codes, class_names = label_codes(labels, label_names)
    warn_skipped(skipped, name)
    return cls(locations, codes, class_names, skipped, name)


def _stem(pattern: str | os.PathLike, default: str) -> str:
    """A dataset name from a file or pattern: ``"gs://b/train-*.tfrecord"`` -> ``"train"``."""
    last = os.fspath(pattern).rsplit("::", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
    return last.split(".", 1)[0].replace("*", "").replace("?", "").strip("-_") or default
