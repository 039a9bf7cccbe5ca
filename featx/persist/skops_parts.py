"""scikit-learn parts, stored with skops: the allow-list :data:`SAFE_TYPES`, :func:`save_skops`
and :func:`load_skops`, which refuses types outside skops' defaults and that list."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import skops.io as sio

from featx.persist.errors import (
    PARSE_ERRORS,
    UNPACKED,
    ModelFileError,
    UntrustedModelError,
    reason,
)

#: The member a model stored with skops lives in (``storage: "skops"``).
SKOPS_FILE = "model.skops"

#: Types skops does not trust by default but whose state is plain arrays and numbers,
#: rebuilt by scikit-learn's own constructors: type name -> where featx meets it.
SAFE_TYPES: dict[str, str] = {
    "sklearn.tree._tree.Tree": "rf: the fitted trees",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer": "mlp: solver state",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer": "mlp(solver='sgd')",
    "sklearn.calibration._CalibratedClassifier": "proba=True: calibrated svm heads",
    "sklearn.calibration._SigmoidCalibration": "proba=True: calibrated svm heads",
    "sklearn.neighbors._kd_tree.KDTree": "knn with pca (low dimension)",
    "sklearn.neighbors._ball_tree.BallTree": "knn(algorithm='ball_tree')",
    "sklearn.metrics._dist_metrics.EuclideanDistance64": "knn trees",
    "sklearn.metrics._dist_metrics.EuclideanDistance32": "knn trees, float32",
    # Paths (TransferClassifier(cache=Path(...))): skops rebuilds them by calling the class with
    # the saved parts (PurePath.__reduce__), which does no I/O. A file naming one of their
    # methods (pathlib.PosixPath.unlink) lists that name instead, which stays refused.
    "pathlib.PosixPath": "cache=pathlib.Path(...) on Linux/macOS",
    "pathlib.WindowsPath": "cache=pathlib.Path(...) on Windows",
    "pathlib.PurePosixPath": "cache=pathlib.PurePosixPath(...)",
    "pathlib.PureWindowsPath": "cache=pathlib.PureWindowsPath(...)",
    # featx's own estimators: skops restores them with BaseEstimator.__setstate__, which only
    # sets attributes (tests/test_persist.py fails if a class here overrides it).
    "featx.estimators.TransferClassifier": "featx fit --out: a head on cached features",
    "featx.estimators.FeatureExtractor": "a fitted extractor (parameters only: feature_set_ "
                                         "is left out by its __getstate__)",
    "featx.heads.ensemble.SoftVoteHead": "the soft_vote head",
    "featx.heads.ensemble.StackHead": "the stack head",
    "featx.heads.imbalance.ClassBiasClassifier": "make_head(..., imbalance=...)",
    "featx.heads.preprocess.SignedPower": "make_head(..., power=...): the signed power step",
    # VotingClassifier.named_estimators_: a dict with attribute access, rebuilt as a dict
    "sklearn.utils._bunch.Bunch": "soft_vote / stack: the named member estimators",
    "sklearn.model_selection._split.StratifiedKFold": "stack: the folds of its final fit",
}


def _display(path: str | os.PathLike) -> str:
    """``path`` for a message: the user's file (and member) when it lies in an unpacked archive."""
    unpacked = UNPACKED.get()
    if unpacked is not None:
        folder, source = unpacked
        try:
            member = Path(path).relative_to(folder).as_posix()
        except ValueError:
            pass
        else:
            where = "" if member == SKOPS_FILE else f" (member {member!r})"
            return f"{os.fspath(source)!r}{where}"
    return repr(os.fspath(path))


def save_skops(obj: Any, path: str | os.PathLike) -> list[str]:
    """Write a scikit-learn object with skops; return its types outside the allow-list."""
    sio.dump(obj, path)
    return [t for t in sio.get_untrusted_types(file=path) if t not in SAFE_TYPES]


def load_skops(path: str | os.PathLike, *, trust: bool = False) -> Any:
    """Read a skops file, refusing types outside skops' defaults and :data:`SAFE_TYPES`.

    Raises
    ------
    UntrustedModelError
        If the file holds other types and ``trust`` is False; the message lists them.
    ModelFileError
        If the file is not a readable skops file (missing, truncated, malformed).
    """
    if UNPACKED.get() is not None and not Path(path).is_file():
        raise ModelFileError(f"path={_display(path)} is not a featx model: its skops part is "
                             "missing.")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except FileNotFoundError:
        raise  # a path of the caller's own, outside any archive
    except PARSE_ERRORS as exc:
        raise _unreadable_skops(path, exc) from exc
    unknown = [t for t in untrusted if t not in SAFE_TYPES]
    if unknown and not trust:
        raise UntrustedModelError(
            f"Refusing to load {_display(path)}: it contains types that are not known to "
            f"be safe: {unknown}. Loading them may run arbitrary code. If you trust the "
            "file's source, call load(..., trust=True)."
        )
    try:
        return sio.load(path, trusted=untrusted)
    except UntrustedModelError:
        raise
    except PARSE_ERRORS as exc:
        raise _unreadable_skops(path, exc) from exc


def _unreadable_skops(path, exc: BaseException) -> ModelFileError:
    return ModelFileError(f"path={_display(path)} is not a featx model: its skops part cannot be "
                          f"read ({reason(exc)}).")
