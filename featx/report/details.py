"""What a report reader needs to trust the numbers: per-class precision/recall/F1 of the best
model (from its confusion matrix) and the library versions the run used (no heavy import).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from featx.utils.version import __version__

__all__ = ["library_versions", "per_class_metrics"]

#: Distributions whose versions a report records (those installed).
VERSIONED = ("keras", "tensorflow", "jax", "torch", "scikit-learn", "numpy", "h5py", "pillow",
             "matplotlib")


def per_class_metrics(matrix, class_names: Sequence[str]) -> list[dict]:
    """Precision, recall, F1 and support of each class, from a confusion matrix (true class
    down, predicted across), as :func:`sklearn.metrics.classification_report` computes them
    (0.0 where a ratio has no denominator).

    Examples
    --------
    >>> rows = per_class_metrics([[3, 1], [0, 4]], ["cat", "dog"])
    >>> rows[0]
    {'class': 'cat', 'precision': 1.0, 'recall': 0.75, 'f1': 0.8571428571428571, 'support': 4}
    """
    cm = np.asarray(matrix, dtype=float)
    tp = np.diag(cm)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return [{"class": str(c), "precision": float(p), "recall": float(r), "f1": float(f),
             "support": int(s)}
            for c, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)]


def _keras_backend() -> str:
    keras = sys.modules.get("keras")
    if keras is not None:  # the backend the run used
        return str(keras.backend.backend())
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def library_versions() -> dict[str, str]:
    """``{"featx": ..., "python": ..., "keras_backend": ..., <distribution>: version}`` for the
    installed distributions of :data:`VERSIONED` (read from their metadata: nothing is
    imported)."""
    out = {"featx": __version__, "python": platform.python_version(),
           "keras_backend": _keras_backend()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
