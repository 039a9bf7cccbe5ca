"""Cache keys: an extractor's settings -> the configuration stored with its features, the key that
hashes what changes a feature, how two configurations are compared and described, and the row
digests stored next to every row-store row.

The *key* hashes everything that changes a feature (backbone, weights fingerprint, input size,
resize mode, decoder, pooling, layers, dtype, mixed precision, :data:`FEATURE_CODE_VERSION`) and
nothing that does not (batch size, workers, verbosity), as ``joblib.Memory`` does. A *row digest*
(:func:`row_digests`) is the SHA-256 of one stored row's content id and feature bytes, so a
changed row, or one moved to another id, is caught when it is read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from featx.backbones import (
    POOLINGS,
    check_weights,
    get_backbone_spec,
    resolve_input_size,
    weights_fingerprint,
)
from featx.images import RESIZE_MODES, check_decoder
from featx.utils.checks import check_choice
from featx.utils.jsonable import jsonable

__all__ = ["DIGEST_SIZE", "FEATURE_CODE_VERSION", "KEY_FIELDS", "LATER_FIELDS", "ROW_DIGEST",
           "config_diff", "config_fields", "config_key", "config_slug", "describe_config",
           "extractor_config", "feature_config", "path_bytes", "row_digests", "same_config"]

#: Bump when a change in featx's decode/forward code changes feature values: every key changes.
FEATURE_CODE_VERSION = 1

KEY_FIELDS = ("backbone", "weights_sha256", "input_size", "resize", "pooling", "layers",
               "preprocessing", "dtype", "mixed_precision", "feature_code_version", "decoder",
               "view")
# Key fields added after the first release, hashed only away from their default, so the caches
# written before they existed keep their keys. ``view``: the deterministic view of the decoded
# batch (``featx.extract.views``; "none" is the image as decoded).
LATER_FIELDS = {"decoder": "pillow", "view": "none"}


def config_key(config: dict) -> str:
    """SHA-256 of the output-changing fields of ``config`` (canonical JSON).

    Examples
    --------
    >>> a = {"backbone": "b", "input_size": [32, 32], "pooling": "avg"}
    >>> config_key(a) == config_key(dict(a, batch_size=64))  # not a key field
    True
    >>> config_key(a) == config_key(dict(a, pooling="max"))
    False
    """
    material = {k: config.get(k) for k in KEY_FIELDS
                if k not in LATER_FIELDS or config.get(k, LATER_FIELDS[k]) != LATER_FIELDS[k]}
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def extractor_config(backbone: str, weights="imagenet", input_size=None, pooling="avg",
                     layers=None, resize="bilinear", dtype="float32",
                     mixed_precision: bool = False, decoder: str = "pillow",
                     view: str = "none") -> dict:
    """Resolve an extractor's settings into the attribute dict stored with its features.

    Every argument is checked here, before any file is hashed or model built: ``input_size``
    (None, an int or an ``(h, w)`` pair of ints, at least the backbone family's minimum),
    ``layers`` (None or a list of layer names / block names / negative block indices),
    ``pooling``, ``resize``, ``dtype`` and ``decoder``. ``view`` names a row of
    :data:`featx.extract.views.VIEWS` (checked there: this stage sits below extraction); it is
    stored, and keyed only when it is not ``"none"``.

    Examples
    --------
    >>> extractor_config("mobilenet_v2", None, 32)["input_size"]
    [32, 32]
    >>> extractor_config("mobilenet_v2", None, layers="block_3_add")
    Traceback (most recent call last):
    ...
    TypeError: layers must be a list of layer names, got the string 'block_3_add'; use ...
    """
    spec = get_backbone_spec(backbone)
    weights = check_weights(weights)  # "none"/"None" -> None: the seeded random weights
    input_size = resolve_input_size(spec, input_size)
    layers = _check_layers(layers)
    check_choice("pooling", pooling, POOLINGS)  # now, not after a store folder was made for it
    check_choice("resize", resize, RESIZE_MODES)
    check_choice("dtype", str(np.dtype(dtype)) if _is_dtype(dtype) else dtype,
                 ("float32", "float16"))
    check_decoder(decoder)
    config = {
        "backbone": spec.name,
        "weights": "none" if weights is None else os.fspath(weights),
        "weights_sha256": weights_fingerprint(spec.name, weights),
        "input_size": [int(s) for s in input_size],
        "pooling": "none" if pooling is None else str(pooling),
        "layers": json.dumps(layers),
        "preprocessing": str(spec.preprocessing),
        "resize": resize,
        "decoder": decoder,
        "dtype": str(np.dtype(dtype)),
        "mixed_precision": bool(mixed_precision),
        "feature_code_version": FEATURE_CODE_VERSION,
    }
    if not isinstance(view, str) or not view:
        raise TypeError(f"view must be a view name (str), got view={view!r}")
    if view != "none":  # older files lack the field; "none" is its LATER_FIELDS default
        config["view"] = view
    config["key"] = config_key(config)
    return config


def _is_dtype(value) -> bool:
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


def _check_layers(layers) -> list | None:
    """``layers`` as a list (or None); a lone string or a non-sequence is refused, not iterated."""
    if layers is None:
        return None
    if isinstance(layers, str | bytes):
        raise TypeError(f"layers must be a list of layer names, got the string {layers!r}; use "
                        f"layers=[{layers!r}]")
    if not isinstance(layers, list | tuple):
        hint = (f"; use layers=[{layers!r}]" if isinstance(layers, int | np.integer)
                and not isinstance(layers, bool) else "")
        raise TypeError("layers must be None or a list of layer names, block names or negative "
                        f"block indices, got layers={layers!r} of type "
                        f"{type(layers).__name__}{hint}")
    bad = [e for e in layers if isinstance(e, bool) or not isinstance(e, str | int | np.integer)]
    if bad or not layers:
        raise ValueError("layers must be None or a non-empty list of layer names, block names or "
                         f"negative block indices, got layers={list(layers)!r}")
    return [e if isinstance(e, str) else int(e) for e in layers]


def config_slug(config: dict) -> str:
    """Readable part of a file name, e.g. ``efficientnet_lite0-224-avg__1a2b3c4d``."""
    h, w = config["input_size"]
    size = f"{h}" if h == w else f"{h}x{w}"
    return f"{config['backbone']}-{size}-{config['pooling']}__{config['key'][:8]}"


def config_fields() -> tuple[str, ...]:
    """The configuration fields that tell extractors apart: the cache key's, and ``weights``."""
    return ("weights", *KEY_FIELDS)


def feature_config(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The extractor configuration in a FeatureSet's ``attrs`` (with its ``key``), or None when
    the attrs hold no key (an in-memory FeatureSet, a plain matrix)."""
    if not attrs or not attrs.get("key"):
        return None
    return {k: jsonable(attrs[k]) for k in (*config_fields(), "key") if k in attrs}


def describe_config(config: Mapping[str, Any]) -> str:
    """``efficientnet_lite0 at 224x224 (key 1a2b3c4d)``."""
    size = config.get("input_size")
    if isinstance(size, list) and len(size) == 2:
        size = f"{size[0]}x{size[1]}"
    return f"{config.get('backbone')} at {size} (key {str(config['key'])[:8]})"


def same_config(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """False only when both configurations are known and their keys differ."""
    return not a or not b or a["key"] == b["key"]


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """``"; they also differ in pooling 'avg' vs 'max'"``: the fields other than backbone and
    input size (which :func:`describe_config` shows) that differ, or ``""``."""

    def short(v):
        return f"{v[:12]}..." if isinstance(v, str) and len(v) > 16 else v

    other = [f"{k} {short(a.get(k))!r} vs {short(b.get(k))!r}" for k in config_fields()
             if k not in ("backbone", "input_size") and a.get(k) != b.get(k)]
    return f"; they also differ in {', '.join(other)}" if other else ""


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
