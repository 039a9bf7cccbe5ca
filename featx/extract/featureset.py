"""FeatureSet: a dataset's backbone features, aligned with its labels, paths and content ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from featx.cache import read_dataset_file

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
        HDF5 or text file, a row-store folder; and :class:`featx.cache.DamagedCacheError` (a
        ``ValueError``: "<path> is damaged (...)") for a file whose bytes differ from its digest
        or whose datasets disagree on the number of rows. A FeatureSet is never misaligned.
        """
        d = read_dataset_file(path)
        skipped = json.loads(d["attrs"].get("skipped", "[]"))
        return cls(d["features"], d["labels"], d["paths"], d["ids"], d["attrs"]["class_names"],
                   path, d["attrs"], skipped)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> FeatureSet:
        """Rows ``indices`` (ints or a boolean mask) as a new in-memory FeatureSet."""
        idx = np.arange(len(self))[np.asarray(indices)]
        return FeatureSet(self.features[idx], self.labels[idx], [self.paths[i] for i in idx],
                          [self.ids[i] for i in idx], self.class_names, None, self.attrs)

    def __repr__(self) -> str:
        return (f"FeatureSet(n={len(self)}, shape={tuple(self.features.shape)}, "
                f"backbone={self.attrs.get('backbone')!r}, path={self.path})")
