"""FeatureSet: a dataset's backbone features, aligned with its labels, paths and content ids."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featx.cache import read_dataset_file
from featx.extract.config import feature_widths, key_of

__all__ = ["FeatureSet"]


class FeatureSet:
    """Features of a dataset's images, aligned with their labels.

    Attributes
    ----------
    features : ndarray (N, D)
    labels : ndarray of int64 (N,)
    paths : list of str
    ids : list of str
        SHA-256 hex of each image file's bytes.
    class_names : list of str
    path : pathlib.Path or None
        The dataset ``.h5`` file (``None`` when extracted with ``cache=False``).
    attrs : dict
        The extractor configuration and provenance (see ``docs/cache.md``).
    skipped : list of (path, reason)
        Everything of the dataset that has no row: first what the dataset itself left out when
        it was built (``dataset.skipped``: unreadable files, empty class folders), then the
        images that could not be read or decoded during extraction; each path once.

    Notes
    -----
    Features extracted with ``layers=[...]`` hold the pooled taps side by side; :meth:`tap_spans`
    gives each tap's columns and :meth:`select_layers` derives any subset of the taps as a
    column slice, with no backbone pass (extract every candidate tap once, then choose).
    :meth:`concat` joins the columns of several FeatureSets (backbones, taps) row-aligned by
    content id, again with no backbone pass.

    Examples
    --------
    >>> fs = FeatureSet(np.eye(3, dtype="float32"), [0, 1, 1], ["a", "b", "c"], ["x", "y", "z"],
    ...                 ["cat", "dog"])
    >>> len(fs), fs.subset([2]).paths, fs.features.shape
    (3, ['c'], (3, 3))
    """

    def __init__(self, features, labels, paths, ids, class_names, path=None, attrs=None,
                 skipped=()) -> None:
        self.features = np.asarray(features)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.paths = list(paths)
        self.ids = list(ids)
        self.class_names = list(class_names)
        self.path = None if path is None else Path(path)
        self.attrs = dict(attrs or {})
        self.skipped = [tuple(s) for s in skipped]

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureSet:
        """Read a dataset file written by :func:`extract_features`.

        Raises ``FileNotFoundError`` for a missing path, ``ValueError`` ("<path> is not a
        featx cache file (...)") for anything else than a complete featx dataset file: another
        HDF5 or text file, a row-store folder; :class:`featx.cache.DamagedCacheError` (a
        ``ValueError``: "<path> is damaged (...)") for a file whose bytes differ from its digest
        or whose datasets disagree on the number of rows; and
        :class:`featx.cache.MissingRowsError` (one) when the file's rows, which live in its
        row store (``<folder>/rows/<configuration>``), are no longer all there and sound. A
        FeatureSet is never misaligned.
        """
        return cls.from_file(path, read_dataset_file(path))

    @classmethod
    def from_file(cls, path: str | os.PathLike, data: dict) -> FeatureSet:
        """The FeatureSet of dataset file ``path`` from what
        :func:`featx.cache.read_dataset_file` read of it (its ``features`` gathered)."""
        skipped = json.loads(data["attrs"].get("skipped", "[]"))
        return cls(data["features"], data["labels"], data["paths"], data["ids"],
                   data["attrs"]["class_names"], path, data["attrs"], skipped)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> FeatureSet:
        """Rows ``indices`` (ints or a boolean mask) as a new in-memory FeatureSet."""
        idx = np.arange(len(self))[np.asarray(indices)]
        return FeatureSet(self.features[idx], self.labels[idx], [self.paths[i] for i in idx],
                          [self.ids[i] for i in idx], self.class_names, None, self.attrs)

    # -- layer taps -------------------------------------------------------------------------
    def tap_spans(self) -> list[tuple[str | int, int, int]]:
        """``[(layer, start, stop), ...]``: the columns of each tapped layer.

        Recorded in ``attrs["tap_spans"]`` (JSON) the first time it is asked; features
        extracted without ``layers`` are one span, named ``-1`` (the last block's output).

        Raises
        ------
        ValueError
            For a FeatureSet with no extractor configuration (built from a plain matrix).
        """
        if "tap_spans" in self.attrs:
            return [tuple(s) for s in json.loads(self.attrs["tap_spans"])]
        if "parts" in self.attrs:
            raise ValueError("a concatenated FeatureSet has no layer taps of its own; select "
                             "layers on its parts before FeatureSet.concat(...)")
        if not self.attrs.get("backbone"):
            raise ValueError("this FeatureSet has no extractor configuration in attrs "
                             "(backbone, layers, pooling), so its layer taps are unknown")
        layers = json.loads(self.attrs.get("layers") or "null")
        if layers is None:
            spans = [(-1, 0, int(self.features.shape[1]))]
        else:
            dims = feature_widths(self.attrs)
            if sum(dims) != self.features.shape[1]:
                raise ValueError(f"the taps {layers} of {self.attrs['backbone']} are "
                                 f"{sum(dims)} columns wide, but the features have "
                                 f"{self.features.shape[1]}")
            stops = np.cumsum(dims).tolist()
            spans = [(e, int(b - d), int(b)) for e, b, d in zip(layers, stops, dims, strict=True)]
        self.attrs["tap_spans"] = json.dumps(spans)
        return spans

    def select_layers(self, layers: Sequence[str | int]) -> FeatureSet:
        """The columns of the tapped ``layers`` (in that order): a slice, no backbone pass.

        ``layers`` must be entries of the extraction's ``layers`` (as given there: ``-2`` or
        ``"block7"``). The result's ``attrs`` name ``layers`` and carry the cache ``key`` that
        ``extract_features(..., layers=layers)`` would give, so heads fitted on either accept
        the other.

        Examples
        --------
        >>> fs = FeatureSet(np.arange(12.0).reshape(2, 6), [0, 1], ["a", "b"], ["x", "y"],
        ...                 ["c0", "c1"], attrs={"backbone": "m", "layers": "[-1, -2]",
        ...                                      "tap_spans": "[[-1, 0, 4], [-2, 4, 6]]"})
        >>> fs.select_layers([-2]).features.tolist()
        [[4.0, 5.0], [10.0, 11.0]]
        >>> fs.select_layers([-3])
        Traceback (most recent call last):
        ...
        ValueError: layers entry -3 was not tapped; this FeatureSet holds layers [-1, -2]
        """
        if isinstance(layers, str | int):
            layers = [layers]
        spans = {e: (a, b) for e, a, b in self.tap_spans()}
        for e in layers:
            if e not in spans:
                raise ValueError(f"layers entry {e!r} was not tapped; this FeatureSet holds "
                                 f"layers {list(spans)}")
        cols = np.concatenate([np.arange(*spans[e]) for e in layers])
        attrs = dict(self.attrs, layers=json.dumps(list(layers)))
        stops = np.cumsum([spans[e][1] - spans[e][0] for e in layers]).tolist()
        attrs["tap_spans"] = json.dumps([(e, int(b - (spans[e][1] - spans[e][0])), int(b))
                                         for e, b in zip(layers, stops, strict=True)])
        if attrs.get("key"):
            attrs["key"] = key_of(attrs)
        return FeatureSet(self.features[:, cols], self.labels, self.paths, self.ids,
                          self.class_names, None, attrs, self.skipped)

    # -- concatenation ----------------------------------------------------------------------
    @classmethod
    def concat(cls, parts: Sequence[FeatureSet]) -> FeatureSet:
        """The columns of every part side by side, rows aligned by content id.

        Each part keeps its own cache entry (no backbone pass here); the rows are the first
        part's, in its order, that every part holds (an image one extraction skipped is left
        out, and named in ``skipped``). ``attrs["parts"]`` lists each part's configuration and
        columns; ``attrs["key"]`` hashes the parts' keys in order, so a head fitted on a
        composite accepts only the same composite.

        Examples
        --------
        >>> a = FeatureSet(np.ones((2, 2)), [0, 1], ["p", "q"], ["x", "y"], ["c0", "c1"],
        ...                attrs={"backbone": "a", "key": "k1"})
        >>> b = FeatureSet(np.zeros((2, 3)), [1, 0], ["q", "p"], ["y", "x"], ["c0", "c1"],
        ...                attrs={"backbone": "b", "key": "k2"})
        >>> ab = FeatureSet.concat([a, b])
        >>> ab.features.shape, ab.attrs["backbone"], ab.labels.tolist()
        ((2, 5), 'a+b', [0, 1])
        """
        parts = list(parts)
        if not parts or not all(isinstance(p, FeatureSet) for p in parts):
            raise TypeError("FeatureSet.concat needs a non-empty list of FeatureSets, got "
                            f"{[type(p).__name__ for p in parts]}")
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        for p in parts[1:]:
            if p.class_names != first.class_names:
                raise ValueError(f"FeatureSet.concat: class names differ ({first.class_names} "
                                 f"vs {p.class_names})")
        rows_of = [{cid: i for i, cid in reversed(list(enumerate(p.ids)))} for p in parts]
        keep = [i for i, cid in enumerate(first.ids) if all(cid in r for r in rows_of)]
        blocks, labels = [], first.labels[keep]
        for p, rows in zip(parts, rows_of, strict=True):
            idx = [rows[first.ids[i]] for i in keep]
            if not np.array_equal(p.labels[idx], labels):
                raise ValueError("FeatureSet.concat: the parts label the same image differently")
            blocks.append(np.asarray(p.features)[idx])
        features = np.concatenate(blocks, axis=1)
        stops = np.cumsum([b.shape[1] for b in blocks]).tolist()
        described = [{**{k: p.attrs[k] for k in ("backbone", "key", "layers", "view",
                                                  "input_size", "pooling") if k in p.attrs},
                      "columns": [int(stop - b.shape[1]), int(stop)]}
                     for p, b, stop in zip(parts, blocks, stops, strict=True)]
        keys = [str(p.attrs.get("key") or "") for p in parts]
        attrs = {"backbone": "+".join(str(p.attrs.get("backbone")) for p in parts),
                 "parts": json.dumps(described, default=str),
                 "key": hashlib.sha256("+".join(keys).encode()).hexdigest() if all(keys) else ""}
        kept = set(keep)
        dropped = {first.paths[i] for i in range(len(first)) if i not in kept}
        skipped = [*{s[0]: s for p in parts for s in p.skipped}.values(),
                   *((path, "not in every concatenated part") for path in sorted(dropped))]
        return cls(features, labels, [first.paths[i] for i in keep],
                   [first.ids[i] for i in keep], first.class_names, None, attrs, skipped)

    def __repr__(self) -> str:
        return (f"FeatureSet(n={len(self)}, shape={tuple(self.features.shape)}, "
                f"backbone={self.attrs.get('backbone')!r}, path={self.path})")
