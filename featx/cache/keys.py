"""Cache keys: what the cache knows of a configuration (:class:`StoreKey`: a key, a slug and the
attributes to store) and the row digests stored next to every row-store row.

The key itself is computed above the cache, by the extraction stage's
:class:`featx.extract.config.ExtractorConfig`, which hashes everything that changes a feature and
nothing that does not (as ``joblib.Memory`` does). A *row digest* (:func:`row_digests`) is the
SHA-256 of one stored row's content id and feature bytes, so a changed row, or one moved to
another id, is caught when it is read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["DIGEST_SIZE", "ROW_DIGEST", "PlainKey", "StoreKey", "path_bytes", "row_digests"]

class StoreKey(Protocol):
    """What the cache needs to know of a configuration, and all it reads of it: its ``key``
    (the hex SHA-256 of what changes a feature), its ``slug`` (the readable part of file
    names) and the attributes stored with its rows. The extraction stage's
    :class:`featx.extract.config.ExtractorConfig` is one; the cache never reads a setting by
    name."""

    @property
    def key(self) -> str: ...

    @property
    def slug(self) -> str: ...

    def attrs(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PlainKey:
    """A :class:`StoreKey` made of given parts (a tool writing cache files of its own, a test).

    Examples
    --------
    >>> k = PlainKey("ab" * 32, "mine-32-avg__abababab", {"backbone": "mine"})
    >>> k.attrs() == {"backbone": "mine", "key": "ab" * 32}
    True
    """

    key: str
    slug: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def attrs(self) -> dict[str, Any]:
        return {**self.attributes, "key": self.key}


# -- row digests ----------------------------------------------------------------------------------
#: The algorithm of the ``digests`` stored with every row (the ``row_digest`` attribute names it).
ROW_DIGEST = "sha256"
DIGEST_SIZE = 32  # bytes per row digest


def path_bytes(path) -> bytes:
    """``path`` as the bytes it names on disk (UTF-8; undecodable bytes kept by surrogateescape).

    Examples
    --------
    >>> path_bytes("caf\\u00e9.jpg"), path_bytes(b"x\\xff.jpg".decode("utf-8", "surrogateescape"))
    (b'caf\\xc3\\xa9.jpg', b'x\\xff.jpg')
    """
    return os.fsdecode(path).encode("utf-8", "surrogateescape")


def row_digests(features, ids) -> np.ndarray:
    """The SHA-256 of each row's content id and feature bytes (as stored), ``(n, 32)`` ``uint8``.

    Stored with every row-store row, so a changed row, or a row moved to another id, is caught
    when it is read.

    Examples
    --------
    >>> x = np.arange(6, dtype="float32").reshape(2, 3)
    >>> d = row_digests(x, ["a" * 64, "b" * 64])
    >>> d.shape, bool((d == row_digests(x, [b"a" * 64, b"b" * 64])).all())
    ((2, 32), True)
    >>> bool((row_digests(x[::-1], ["a" * 64, "b" * 64]) == d).all())
    False
    """
    feats = np.ascontiguousarray(features)
    if feats.ndim < 2 or len(feats) != len(ids):
        raise ValueError(f"row_digests() needs one feature row per id, got features of shape "
                         f"{feats.shape} for {len(ids)} ids")
    out = bytearray(len(feats) * DIGEST_SIZE)
    for i, content_id in enumerate(ids):
        raw = content_id if isinstance(content_id, bytes) else str(content_id).encode()
        h = hashlib.sha256(raw)
        h.update(feats[i])  # the row's bytes, without a copy
        out[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] = h.digest()
    return np.frombuffer(bytes(out), np.uint8).reshape(len(feats), DIGEST_SIZE)
