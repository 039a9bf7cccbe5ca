"""The extractor's settings: :class:`ExtractorConfig`, the one place they are named and checked.

An extractor is what turns an image into a feature row: a backbone with its weights, an input
size, a resize mode, a decoder, a pooling (or tapped layers), a view, a storage dtype and a
precision. :class:`ExtractorConfig` checks them once, resolves them (the backbone's own input
size, the weights' fingerprint) and gives everything the other stages need from them:

- :attr:`~ExtractorConfig.key`: the SHA-256 of every field that changes a feature (and of nothing
  that does not: batch size, workers, runtime), the cache's row key;
- :attr:`~ExtractorConfig.slug`: the readable part of cache file names;
- :meth:`~ExtractorConfig.attrs`: the attributes stored with the features (a plain dict);
- :meth:`~ExtractorConfig.describe` and :meth:`~ExtractorConfig.diff`: what error messages say;
- :attr:`~ExtractorConfig.widths`: the feature width of each tapped output.

The cache stage receives only the key, the slug and the attributes; it never reads a field by
name. A configuration is also a read-only mapping of its stored attributes, so
``config["input_size"]`` reads what the feature file stores.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from featx.backbones import (
    POOLINGS,
    check_weights,
    get_backbone_spec,
    resolve_input_size,
    weights_fingerprint,
)
from featx.extract.views import check_view
from featx.images import RESIZE_MODES, check_decoder
from featx.utils.checks import check_choice
from featx.utils.jsonable import jsonable
from featx.utils.params import Constraint, Flag, Options, Rule, validate_params

__all__ = ["EXTRACTOR_PARAMS", "FEATURE_CODE_VERSION", "FIELDS",
           "GRAPH_FIELDS", "KEY_FIELDS", "LATER_FIELDS", "SETTINGS",
           "ExtractorConfig", "describe", "diff", "feature_config", "feature_widths", "key_of",
           "same_config"]

#: Bump when a change in featx's decode/forward code changes feature values: every key changes.
FEATURE_CODE_VERSION = 1

#: The settings a user gives, with their defaults: the parameters of :class:`ExtractorConfig`,
#: and of every API that builds one (``extract_features``, ``FeatureExtractor``,
#: ``TransferClassifier``, a pipeline's ``[extract]`` table).
SETTINGS: dict[str, Any] = {
    "backbone": "efficientnet_lite0",
    "weights": "imagenet",
    "input_size": None,
    "pooling": "avg",
    "layers": None,
    "resize": "bilinear",
    "decoder": "pillow",
    "dtype": "float32",
    "mixed_precision": False,
    "view": "none",
}

#: The stored fields the key hashes: everything that changes a feature.
KEY_FIELDS = ("backbone", "weights_sha256", "input_size", "resize", "pooling", "layers",
              "preprocessing", "dtype", "mixed_precision", "feature_code_version", "decoder",
              "view")
#: Key fields added after the first release, hashed only away from their default, so the caches
#: written before they existed keep their keys.
LATER_FIELDS = {"decoder": "pillow", "view": "none"}
#: The stored fields that tell two extractors apart (the key's, and the weights as given).
FIELDS = ("weights", *KEY_FIELDS)
#: The fields an exported backbone graph depends on: not resize, decoder, view or storage
#: dtype, which act before or after the network.
GRAPH_FIELDS = ("backbone", "weights_sha256", "input_size", "pooling", "layers", "preprocessing",
                "feature_code_version")


def _digest(material: Mapping[str, Any]) -> str:
    blob = json.dumps(dict(material), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _key(attrs: Mapping[str, Any]) -> str:
    material = {k: attrs.get(k) for k in KEY_FIELDS
                if k not in LATER_FIELDS or attrs.get(k, LATER_FIELDS[k]) != LATER_FIELDS[k]}
    return _digest(material)


def _check_dtype(name: str, dtype) -> str:
    try:
        dtype = str(np.dtype(dtype))
    except TypeError:
        pass
    return check_choice(name, dtype, ("float32", "float16"))


def _check_view(name: str, view) -> str:
    if not isinstance(view, str) or not view:
        raise TypeError(f"{name} must be a view name (str), got {name}={view!r}")
    return check_view(view)


def _check_layers(name: str, layers) -> list | None:
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


def _check_pooling(name: str, pooling) -> str | None:
    pooling = None if pooling == "none" else pooling  # the stored spelling of None
    return POOLINGS.check(pooling)


#: The extractor's parameters, declared once: :class:`ExtractorConfig` validates with them, and
#: the estimators and the pipeline schema read the same rows.
EXTRACTOR_PARAMS: dict[str, Constraint] = {
    "backbone": Rule(lambda name, b: get_backbone_spec(b).name, "a name of featx.list_backbones()"),
    "weights": Rule(lambda name, w: check_weights(w),
                    "'imagenet', None (random weights, for tests) or a weights file"),
    "input_size": Rule(lambda name, s: s, "None (the backbone's own), an int or (height, width)"),
    "pooling": Rule(_check_pooling, "one of 'avg', 'max', None"),
    "layers": Rule(_check_layers, "None or a list of layer names, block names or negative "
                                  "block indices"),
    "resize": Options(lambda: list(RESIZE_MODES)),
    "decoder": Rule(lambda name, d: check_decoder(d), "one of 'pillow', 'opencv' "
                                                     "(featx.images.DECODERS)"),
    "dtype": Rule(_check_dtype, "'float32' or 'float16'"),
    "mixed_precision": Flag(),
    "view": Rule(_check_view, "a view name (featx.extract.views.VIEWS)"),
}


class ExtractorConfig(Mapping):
    """An extractor's settings, checked and resolved: frozen, hashable, one key.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from :func:`featx.list_backbones`.
    weights : {"imagenet"} or None or path, default="imagenet"
        ``None`` (or ``"none"``/``"random"``): random weights drawn under seed 0.
    input_size : int or (int, int), optional
        The backbone's own when ``None``; at least its family's minimum.
    pooling : {"avg", "max", None}, default="avg"
        ``None`` keeps the spatial map.
    layers : list of str or int, optional
        Layers (names, block names or negative block indices) to tap, pool and concatenate.
    resize : {"bilinear", "crop"}, default="bilinear"
    decoder : {"pillow", "opencv"}, default="pillow"
    dtype : {"float32", "float16"}, default="float32"
        Storage dtype of the features.
    mixed_precision : bool, default=False
    view : str, default="none"
        A row of :data:`featx.extract.views.VIEWS`.

    Raises
    ------
    ValueError, TypeError
        A setting out of range, named in the message, before any file is read or model built.

    Examples
    --------
    >>> from featx.extract.config import ExtractorConfig
    >>> c = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    >>> c.input_size, c.slug.startswith("mobilenet_v2-32-avg__"), c["weights"]
    ((32, 32), True, 'none')
    >>> c == ExtractorConfig("mobilenet_v2", weights="none", input_size=(32, 32))
    True
    >>> c.diff(c.replace(pooling="max"))
    "; they also differ in pooling 'avg' vs 'max'"
    >>> ExtractorConfig("mobilenet_v2", layers="block_3_add")
    Traceback (most recent call last):
    ...
    TypeError: layers must be a list of layer names, got the string 'block_3_add'; use ...
    """

    __slots__ = ("_attrs",)

    def __init__(self, backbone: str = "efficientnet_lite0", *,
                 weights: str | os.PathLike | None = "imagenet",
                 input_size: int | tuple[int, int] | None = None, pooling: str | None = "avg",
                 layers: Sequence[str | int] | None = None, resize: str = "bilinear",
                 decoder: str = "pillow", dtype: str = "float32", mixed_precision: bool = False,
                 view: str = "none") -> None:
        v = validate_params(EXTRACTOR_PARAMS, {
            "backbone": backbone, "weights": weights, "input_size": input_size,
            "pooling": pooling, "layers": layers, "resize": resize, "decoder": decoder,
            "dtype": dtype, "mixed_precision": mixed_precision, "view": view})
        spec = get_backbone_spec(v["backbone"])
        weights, pooling, layers = v["weights"], v["pooling"], v["layers"]
        size = resolve_input_size(spec, v["input_size"])  # the backbone's own, or checked
        resize, decoder, dtype, view = v["resize"], v["decoder"], v["dtype"], v["view"]
        mixed_precision = v["mixed_precision"]
        attrs = {
            "backbone": spec.name,
            "weights": "none" if weights is None else os.fspath(weights),
            "weights_sha256": weights_fingerprint(spec.name, weights),
            "input_size": [int(s) for s in size],
            "pooling": "none" if pooling is None else str(pooling),
            "layers": json.dumps(layers),
            "preprocessing": str(spec.preprocessing),
            "resize": resize,
            "decoder": decoder,
            "dtype": str(np.dtype(dtype)),
            "mixed_precision": bool(mixed_precision),
            "feature_code_version": FEATURE_CODE_VERSION,
        }
        if view != "none":  # older files lack the field; "none" is its LATER_FIELDS default
            attrs["view"] = view
        attrs["key"] = _key(attrs)
        object.__setattr__(self, "_attrs", attrs)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any] | None) -> ExtractorConfig | None:
        """The configuration stored in a feature file's (or FeatureSet's) ``attrs``, as stored
        (nothing re-hashed), or ``None`` when they hold no key (an in-memory FeatureSet, a plain
        matrix).

        Examples
        --------
        >>> c = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
        >>> ExtractorConfig.from_attrs({**c.attrs(), "batch_size": 8}) == c
        True
        >>> ExtractorConfig.from_attrs({}) is None
        True
        """
        if not attrs or not attrs.get("key"):
            return None
        self = cls.__new__(cls)
        object.__setattr__(self, "_attrs",
                           {k: jsonable(attrs[k]) for k in (*FIELDS, "key") if k in attrs})
        return self

    # -- the mapping of stored attributes --------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        return self._attrs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._attrs)

    def __len__(self) -> int:
        return len(self._attrs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExtractorConfig):
            return self.key == other.key
        return NotImplemented if not isinstance(other, Mapping) else dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(self.key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ExtractorConfig is frozen: use .replace({name}=...)")

    def __reduce__(self):
        return (_from_attrs, (self._attrs,))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings().items()
                          if k == "backbone" or v != SETTINGS[k])
        return f"ExtractorConfig({shown})"

    # -- what other stages read -------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        """The attributes stored with the features (a new dict, ``key`` included)."""
        return dict(self._attrs)

    @property
    def key(self) -> str:
        """SHA-256 hex of the fields that change a feature (:data:`KEY_FIELDS`)."""
        return self._attrs["key"]

    @property
    def slug(self) -> str:
        """Readable part of a file name, e.g. ``efficientnet_lite0-224-avg__1a2b3c4d``."""
        h, w = self._attrs["input_size"]
        size = f"{h}" if h == w else f"{h}x{w}"
        return f"{self._attrs['backbone']}-{size}-{self._attrs['pooling']}__{self.key[:8]}"

    @property
    def graph_key(self) -> str:
        """SHA-256 hex of the fields the backbone's graph depends on (:data:`GRAPH_FIELDS`)."""
        return _digest({k: self._attrs.get(k) for k in GRAPH_FIELDS})

    @property
    def backbone(self) -> str:
        return self._attrs["backbone"]

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self._attrs["input_size"]
        return int(h), int(w)

    @property
    def view(self) -> str:
        return self._attrs.get("view", "none")

    @property
    def dtype(self) -> str:
        return self._attrs.get("dtype", "float32")

    def settings(self) -> dict[str, Any]:
        """The user settings (:data:`SETTINGS`' names) that build this configuration again:
        ``ExtractorConfig(**c.settings()) == c`` for a configuration made here."""
        a = self._attrs
        return {
            "backbone": a["backbone"],
            "weights": None if a.get("weights") in (None, "none") else a.get("weights"),
            "input_size": tuple(a["input_size"]),
            "pooling": None if a.get("pooling") == "none" else a.get("pooling"),
            "layers": json.loads(a.get("layers") or "null"),
            "resize": a.get("resize", "bilinear"),
            "decoder": a.get("decoder", "pillow"),
            "dtype": a.get("dtype", "float32"),
            "mixed_precision": bool(a.get("mixed_precision", False)),
            "view": a.get("view", "none"),
        }

    def replace(self, **changes: Any) -> ExtractorConfig:
        """A new configuration with some settings changed (checked as in the constructor)."""
        unknown = sorted(set(changes) - set(SETTINGS))
        if unknown:
            raise TypeError(f"ExtractorConfig has no setting {unknown[0]!r}; the settings are "
                            f"{list(SETTINGS)}")
        return ExtractorConfig(**{**self.settings(), **changes})

    def describe(self) -> str:
        """``efficientnet_lite0 at 224x224 (key 1a2b3c4d)``."""
        return describe(self)

    def diff(self, other: Mapping[str, Any]) -> str:
        """``"; they also differ in pooling 'avg' vs 'max'"``: the stored fields other than
        backbone and input size (which :meth:`describe` shows) that differ, or ``""``."""
        return diff(self, other)

    def same_as(self, other: Mapping[str, Any] | None) -> bool:
        """False only when ``other`` is known and its key differs."""
        return not other or other.get("key") == self.key

    @property
    def widths(self) -> tuple[int, ...]:
        """The feature width of each tapped output (one entry without ``layers``)."""
        return feature_widths(self)

    @property
    def feature_dim(self) -> int:
        """The width of a feature row: the sum of :attr:`widths`."""
        return int(sum(self.widths))


def key_of(attrs: Mapping[str, Any]) -> str:
    """The key of stored attributes, computed again (after a field changed, as
    :meth:`FeatureSet.select_layers` changes ``layers``).

    Examples
    --------
    >>> c = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    >>> key_of(c) == c.key
    True
    """
    return _key(attrs)


def _from_attrs(attrs):
    return ExtractorConfig.from_attrs(attrs)


def feature_config(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The stored configuration in a FeatureSet's ``attrs`` as a plain dict (``key`` included),
    what a fitted estimator keeps in ``feature_config_``; ``None`` without a key.

    Examples
    --------
    >>> c = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    >>> feature_config({**c, "n_rows": 3}) == dict(c), feature_config({"n_rows": 3})
    (True, None)
    """
    config = ExtractorConfig.from_attrs(attrs)
    return None if config is None else config.attrs()


def same_config(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """False only when both configurations are known and their keys differ."""
    return not a or not b or a["key"] == b["key"]


def describe(config: Mapping[str, Any]) -> str:
    """``efficientnet_lite0 at 224x224 (key 1a2b3c4d)``, for any stored configuration.

    Examples
    --------
    >>> describe({"backbone": "resnet50", "input_size": [224, 224], "key": "1a2b3c4d5e"})
    'resnet50 at 224x224 (key 1a2b3c4d)'
    """
    size = config.get("input_size")
    if isinstance(size, list | tuple) and len(size) == 2:
        size = f"{size[0]}x{size[1]}"
    return f"{config.get('backbone')} at {size} (key {str(config['key'])[:8]})"


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The stored fields other than backbone and input size that differ between two
    configurations, as a clause for an error message, or ``""``."""

    def short(v):
        return f"{v[:12]}..." if isinstance(v, str) and len(v) > 16 else v

    other = [f"{k} {short(a.get(k))!r} vs {short(b.get(k))!r}" for k in FIELDS
             if k not in ("backbone", "input_size")
             and a.get(k, LATER_FIELDS.get(k)) != b.get(k, LATER_FIELDS.get(k))]
    return f"; they also differ in {', '.join(other)}" if other else ""


def feature_widths(config: Mapping[str, Any]) -> tuple[int, ...]:
    """The pooled feature width of each output of an extractor configuration, in ``layers``
    order (one entry without ``layers``): the backbone table's ``feature_dim``, or, for tapped
    layers, what a random-weight model at a small input size reports (widths depend on neither
    the weights nor the input size; built once per process and configuration). The one place
    featx computes a feature width.

    Examples
    --------
    >>> feature_widths(ExtractorConfig("mobilenet_v2", weights=None, input_size=32))
    (1280,)
    >>> feature_widths(ExtractorConfig("mobilenet_v2", weights=None, layers=[-1, -2]))
    (1280, 320)
    """
    layers = config.get("layers") or "null"
    layers = layers if isinstance(layers, str) else json.dumps(list(layers))
    if json.loads(layers) is None:
        return (int(get_backbone_spec(config["backbone"]).feature_dim),)
    return _tap_widths(config["backbone"], layers, str(config.get("pooling") or "avg"))


@functools.lru_cache(maxsize=64)
def _tap_widths(backbone: str, layers_json: str, pooling: str) -> tuple[int, ...]:
    from featx.backbones import load_backbone  # Keras: only for tapped layers

    layers = json.loads(layers_json)
    spec = get_backbone_spec(backbone)
    model = load_backbone(spec.name, weights=None, input_size=max(spec.min_size, 64),
                          pooling=pooling, layers=layers)
    if len(layers) == 1:
        return (int(model.output_shape[-1]),)
    return tuple(int(t.shape[-1]) for t in model.get_layer("features").input)
