"""Save and load fitted models without pickle.

Format: one zip file (any name; ``.featx`` by convention) holding

- ``manifest.json``: ``format``, ``format_version``, ``featx_version``,
  ``sklearn_version``, ``skops_version``, ``class`` (``module.QualName``),
  ``storage`` (``"skops"`` or ``"hook"``), ``params`` (``get_params(deep=False)``,
  informational) and, for hooks, ``hook`` (the dict the object returned);
- ``model.skops`` for scikit-learn estimators and pipelines (``skops.io.dump``), or
- ``payload/`` for objects with a ``_featx_save(dirpath) -> dict`` method (e.g. a
  ``.keras`` file plus a ``.skops`` head); they are restored with the classmethod
  ``_featx_load(dirpath, manifest, trust)``, which must read everything it needs
  before returning (the directory is temporary). Keras parts are loaded with
  ``safe_mode=True``; sklearn parts with :func:`load_skops`.

Loading never runs code from the file unless ``trust=True``: skops types outside
:data:`SAFE_TYPES` (and outside skops' own defaults) are refused, hook classes must
live in the ``featx`` package, and zip members may not escape the extraction directory.
An archive may unpack to at most ``max_size`` bytes (:data:`MAX_SIZE` by default), counting
the archives inside it (``.skops``, ``.keras``) by what they unpack to, so a zip bomb is
refused before it fills the disk or memory.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
import warnings
import zipfile
from contextvars import ContextVar
from numbers import Real
from pathlib import Path, PurePosixPath
from typing import IO, Any

import sklearn
import skops
import skops.io as sio

from featx.utils.version import __version__

__all__ = ["MAX_SIZE", "SAFE_TYPES", "UntrustedModelError", "load", "load_skops", "save",
           "save_skops"]

FORMAT = "featx.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SKOPS_FILE = "model.skops"
PAYLOAD = "payload"

#: Default ``max_size`` of :func:`load`, in bytes (4 GiB): the largest model featx saves, a
#: fine-tuned ``convnext_xlarge`` (~350M float32 weights), unpacks to about 1.4 GB.
MAX_SIZE = 4 * 1024**3
_CHUNK = 1024**2

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
}


class UntrustedModelError(ValueError):
    """A saved model needs code or types outside the allow-list; pass ``trust=True``."""


# While load() reads an archive: (the temporary folder it unpacked to, the user's path), so
# that messages about a part name the user's file rather than the temporary copy.
_UNPACKED: ContextVar[tuple[Path, Path] | None] = ContextVar("featx_unpacked", default=None)


def _display(path: str | os.PathLike) -> str:
    """``path`` for a message: the user's file (and member) when it lies in an unpacked archive."""
    unpacked = _UNPACKED.get()
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
    """
    untrusted = sio.get_untrusted_types(file=path)
    unknown = [t for t in untrusted if t not in SAFE_TYPES]
    if unknown and not trust:
        raise UntrustedModelError(
            f"Refusing to load {_display(path)}: it contains types that are not known to "
            f"be safe: {unknown}. Loading them may run arbitrary code. If you trust the "
            "file's source, call load(..., trust=True)."
        )
    return sio.load(path, trusted=untrusted)


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _params(obj: Any) -> dict[str, Any]:
    try:
        params = obj.get_params(deep=False)
    except Exception:  # noqa: BLE001 - params are informational only
        return {}
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in params.items()}


def save(model: Any, path: str | os.PathLike) -> Path:
    """Save a fitted model to the single-file featx format at ``path``.

    Parameters
    ----------
    model : estimator
        A scikit-learn estimator or pipeline (stored with skops), or an object with a
        ``_featx_save(dirpath) -> dict`` method.
    path : str or path-like
        Destination file, replaced atomically if it exists.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from featx.heads import make_head
    >>> from featx.persist import load, save
    >>> X, y = np.eye(4).repeat(5, axis=0), np.repeat(list("abcd"), 5)
    >>> head = make_head("logreg").fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = load(save(head, f"{tmp}/head.featx"))
    >>> loaded.predict(X[:2]).tolist()
    ['a', 'a']
    """
    path = Path(path)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "featx_version": __version__,
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
        "class": _qualname(model),
        "params": _params(model),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if hasattr(type(model), "_featx_save"):
            (tmp / PAYLOAD).mkdir()
            manifest["storage"] = "hook"
            manifest["hook"] = model._featx_save(tmp / PAYLOAD) or {}
        elif hasattr(model, "get_params"):
            manifest["storage"] = "skops"
            unknown = save_skops(model, tmp / SKOPS_FILE)
            if unknown:
                warnings.warn(
                    f"{_qualname(model)} contains types outside featx.persist.SAFE_TYPES "
                    f"({unknown}); loading it will need trust=True.",
                    UserWarning, stacklevel=2,
                )
        else:
            raise TypeError(
                "model must be a scikit-learn estimator or implement _featx_save; "
                f"got model of type {_qualname(model)}."
            )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=repr))
        partial = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
                zf.write(file, file.relative_to(tmp).as_posix())
        os.replace(partial, path)
    return path


def _check_max_size(max_size) -> int | None:
    if max_size is None:
        return None
    if (isinstance(max_size, bool) or not isinstance(max_size, Real)
            or not math.isfinite(max_size) or max_size <= 0):
        raise ValueError(
            "max_size must be a positive number of bytes, or None for no limit; got "
            f"max_size={max_size!r}. The default is featx.persist.MAX_SIZE={MAX_SIZE} (4 GiB)."
        )
    return int(max_size)


def _too_big(path, what: str, max_size: int) -> ValueError:
    return ValueError(
        f"Refusing to unpack path={os.fspath(path)!r}: {what}, over max_size={max_size:,} "
        "bytes. If you trust the file and expect it to be this large, raise the limit: "
        "featx.load(path, max_size=<bytes>), or max_size=None for no limit."
    )


def _copy(src: IO[bytes], dst: IO[bytes], budget: int | None) -> int:
    """Copy ``src`` to ``dst`` in chunks; stop as soon as more than ``budget`` bytes came.

    Returns the number of bytes copied; raises ``OverflowError`` once over ``budget``.
    """
    copied = 0
    while chunk := src.read(_CHUNK):
        copied += len(chunk)
        if budget is not None and copied > budget:
            raise OverflowError(copied)
        dst.write(chunk)
    return copied


def _unpacked_size(file: Path) -> int:
    """What ``file`` unpacks to if it is itself a zip archive (a .skops or .keras part), else 0."""
    try:
        with zipfile.ZipFile(file) as inner:
            return sum(info.file_size for info in inner.infolist())
    except (zipfile.BadZipFile, OSError):  # not an archive (a JSON file, weights, ...)
        return 0


def _extract(zf: zipfile.ZipFile, dest: Path, path, max_size: int | None) -> None:
    """Unpack ``zf`` into ``dest``, refusing unsafe names and more than ``max_size`` bytes.

    The members' declared sizes are checked before anything is written; the bytes actually
    written are counted too (headers can lie), and so are the declared contents of archives
    inside the archive (a ``.skops`` or ``.keras`` part is itself a zip, read by skops/Keras).
    """
    infos = zf.infolist()
    for info in infos:
        name = PurePosixPath(info.filename)
        if (not name.parts or name.is_absolute() or ".." in name.parts
                or "\\" in info.filename):
            raise UntrustedModelError(f"Refusing zip member {info.filename!r}: unsafe path.")
    declared = sum(info.file_size for info in infos)
    if max_size is not None and declared > max_size:
        raise _too_big(path, f"its members declare {declared:,} bytes in all", max_size)
    total = 0
    for info in infos:
        target = dest.joinpath(*PurePosixPath(info.filename).parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        budget = None if max_size is None else max_size - total
        with zf.open(info) as src, open(target, "wb") as dst:
            try:
                written = _copy(src, dst, budget)
            except OverflowError:
                raise _too_big(
                    path, f"member {info.filename!r} declares {info.file_size:,} bytes but "
                    f"unpacks to more than the {budget:,} bytes left (its header lies)",
                    max_size) from None
        inner = _unpacked_size(target)
        total += max(written, inner)
        if max_size is not None and total > max_size:
            raise _too_big(
                path, f"member {info.filename!r} is an archive that unpacks to {inner:,} "
                f"bytes, {total:,} bytes in all so far", max_size)


def _read_manifest(folder: Path, path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"path={os.fspath(path)!r} is not a featx model: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"path={os.fspath(path)!r} has format={manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; this featx reads {FORMAT!r} up to "
            f"version {FORMAT_VERSION}."
        )
    if manifest.get("sklearn_version") != sklearn.__version__:
        warnings.warn(
            f"Model saved with scikit-learn {manifest.get('sklearn_version')}, loading with "
            f"{sklearn.__version__}; predictions may differ.", UserWarning, stacklevel=3,
        )
    return manifest


def _hook_class(manifest: dict[str, Any], trust: bool):
    qualname = str(manifest.get("class", ""))
    module, _, name = qualname.rpartition(".")
    if not trust and not (module == "featx" or module.startswith("featx.")):
        raise UntrustedModelError(
            f"Refusing to import class={qualname!r} named by the file: only featx classes "
            "are loaded without trust=True."
        )
    cls = getattr(importlib.import_module(module), name, None)
    if cls is None or not hasattr(cls, "_featx_load"):
        raise ValueError(f"class={qualname!r} does not exist or has no _featx_load.")
    return cls


def load(path: str | os.PathLike, *, trust: bool = False,
         max_size: int | None = MAX_SIZE) -> Any:
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save` (or a directory holding the same members).
    trust : bool, default=False
        Allow types outside :data:`SAFE_TYPES` and hook classes outside ``featx``. Only
        for files from a source you trust: it lets the file run code.
    max_size : int or None, default=MAX_SIZE (4 GiB)
        The most bytes the file may unpack to, counting an archive inside it (the
        ``.skops`` or ``.keras`` part) by what it unpacks to. The members' declared sizes
        are checked before anything is written and the bytes actually written are counted,
        so a zip bomb (or a lying header) stops at the limit and leaves nothing behind.
        ``None`` for no limit. Not applied when ``path`` is a directory.

    Returns
    -------
    object
        The model, ready to predict.

    Raises
    ------
    UntrustedModelError
        If the file needs ``trust=True``; the message lists what was refused.
    ValueError
        If the file is not a featx model (or not a valid zip archive), or unpacks to more
        than ``max_size`` bytes; the message names the file, the size and the limit.
    """
    max_size = _check_max_size(max_size)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        if path.is_dir():
            folder = path
        else:
            folder = Path(tmp)
            try:
                with zipfile.ZipFile(path) as zf:
                    _extract(zf, folder, path, max_size)
            except zipfile.BadZipFile as exc:
                raise ValueError(
                    f"path={os.fspath(path)!r} is not a featx model: not a valid zip archive "
                    f"({exc})."
                ) from None
        manifest = _read_manifest(folder, path)
        token = _UNPACKED.set((folder, path)) if folder != path else None
        try:
            if manifest.get("storage") == "hook":
                cls = _hook_class(manifest, trust)
                return cls._featx_load(folder / PAYLOAD, manifest, trust)
            return load_skops(folder / SKOPS_FILE, trust=trust)
        finally:
            if token is not None:
                _UNPACKED.reset(token)
