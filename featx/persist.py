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
live in the ``featx`` package, and zip members (and the members a manifest names) may not
escape the extraction directory. An archive may hold at most :data:`MAX_MEMBERS` members and
unpack to at most ``max_size`` bytes (:data:`MAX_SIZE` by default), counting the archives
inside it (``.skops``, ``.keras``) by what they unpack to, so a zip bomb is refused before it
fills the disk or memory. Parameters that name a place on disk (:data:`PATH_PARAMS`) are reset
to their defaults unless ``trust=True``. Whatever is wrong with a file, the error is one
:class:`ModelFileError` (or :class:`UntrustedModelError`) naming it.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import json
import math
import os
import re
import struct
import tempfile
import warnings
import zipfile
import zlib
from contextvars import ContextVar
from numbers import Real
from pathlib import Path, PurePosixPath
from typing import IO, Any

import sklearn
import skops
import skops.io as sio

from featx.utils.version import __version__

__all__ = ["MAX_MEMBERS", "MAX_SIZE", "PATH_PARAMS", "SAFE_TYPES", "ModelFileError",
           "UntrustedModelError", "load", "load_skops", "save", "save_skops"]

FORMAT = "featx.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SKOPS_FILE = "model.skops"
PAYLOAD = "payload"

#: Default ``max_size`` of :func:`load`, in bytes (4 GiB): the largest model featx saves, a
#: fine-tuned ``convnext_xlarge`` (~350M float32 weights), unpacks to about 1.4 GB.
MAX_SIZE = 4 * 1024**3
_CHUNK = 1024**2

#: The most members (files and folders) a file given to :func:`load` may hold; read when
#: ``load`` runs. featx writes two or three (``manifest.json`` and the model's parts), so a
#: file with more is refused before anything is unpacked, naming the file and its count: an
#: archive of tens of thousands of empty members would otherwise take minutes to unpack. For
#: a file you trust that really holds more, raise it (``featx.persist.MAX_MEMBERS = 10_000``).
MAX_MEMBERS = 256
# Bytes of central directory allowed per member: zipfile parses (and keeps in memory) the whole
# directory before anything can be counted, so its size is checked first. featx's members
# have short names (~100 bytes of directory each).
_DIRECTORY_BYTES_PER_MEMBER = 1024

#: Parameters of featx's estimators that name a place on disk the model writes to: parameter ->
#: what it is. :func:`load` resets them to their defaults unless ``trust=True``, so a loaded
#: model writes where you choose, not where the file's author chose. ``weights`` is kept: it
#: names a file that is only read, and it defines the features (another value would change them).
PATH_PARAMS: dict[str, str] = {
    "cache": "the feature cache a model reads and fills (FeatureExtractor, TransferClassifier, "
             "FineTunedClassifier)",
    "checkpoint_dir": "where FineTunedClassifier.fit writes its checkpoints",
}

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


class ModelFileError(ValueError):
    """A file given to :func:`load` cannot be loaded as a featx model (not a zip archive, a
    truncated one, a missing or malformed manifest or member, too big, too many members); the
    message names the file and what is wrong with it."""


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


# What reading a damaged or crafted part raises inside zipfile, json, skops or Keras: turned
# into one ModelFileError naming the user's file (the original stays chained as its cause).
_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, EOFError,
                 RecursionError, OSError, zipfile.BadZipFile, zlib.error)


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
    if _UNPACKED.get() is not None and not Path(path).is_file():
        raise ModelFileError(f"path={_display(path)} is not a featx model: its skops part is "
                             "missing.")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except FileNotFoundError:
        raise  # a path of the caller's own, outside any archive
    except _PARSE_ERRORS as exc:
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
    except _PARSE_ERRORS as exc:
        raise _unreadable_skops(path, exc) from exc


def _unreadable_skops(path, exc: BaseException) -> ModelFileError:
    return ModelFileError(f"path={_display(path)} is not a featx model: its skops part cannot be "
                          f"read ({_reason(exc)}).")


def _reason(exc: BaseException) -> str:
    """``exc`` for a message, without the temporary folder an archive was unpacked to."""
    return _scrub(f"{type(exc).__name__}: {exc}")


def _scrub(text: str) -> str:
    """``text`` without the temporary folder an archive was unpacked to."""
    unpacked = _UNPACKED.get()
    if unpacked is None:
        return text
    folder = os.fspath(unpacked[0])
    return text.replace(folder + os.sep, "").replace(folder, "<unpacked>")


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


def _too_big(path, what: str, max_size: int) -> ModelFileError:
    return ModelFileError(
        f"Refusing to unpack path={os.fspath(path)!r}: {what}, over max_size={max_size:,} "
        "bytes. If you trust the file and expect it to be this large, raise the limit: "
        "featx.load(path, max_size=<bytes>), or max_size=None for no limit."
    )


def _not_a_model(path, why: str) -> ModelFileError:
    return ModelFileError(f"path={os.fspath(path)!r} is not a featx model: {why}")


def _not_a_zip(path, exc: BaseException) -> ModelFileError:
    return _not_a_model(path, f"not a valid zip archive ({exc}).")


def _too_many(path, count: int, what: str) -> ModelFileError:
    return ModelFileError(
        f"Refusing to unpack path={os.fspath(path)!r}: {what} {count:,} members, over "
        f"featx.persist.MAX_MEMBERS={MAX_MEMBERS:,} (a featx model holds 2 or 3). If you trust "
        "the file, raise featx.persist.MAX_MEMBERS."
    )


def _end_record(file: Path) -> tuple[int, int] | None:
    """(members, central directory bytes) that ``file``'s end-of-central-directory record
    declares (its zip64 record when there is one), or None where there is no such record."""
    with open(file, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (22 + 0xFFFF))  # the record, then a comment of up to 64 KiB
        f.seek(start)
        tail = f.read(22 + 0xFFFF)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        count, directory = struct.unpack_from("<xxxxxxxxxxHI", tail, at)
        locator = at - 20
        if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            (offset,) = struct.unpack_from("<Q", tail, locator + 8)
            f.seek(offset)
            record = f.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                count, directory = struct.unpack_from("<QQ", record, 32)
    return count, directory


def _check_count(path: Path) -> None:
    """Refuse more than MAX_MEMBERS members from the end record, before zipfile reads (and
    holds in memory) the central directory."""
    declared = _end_record(path)
    if declared is None:
        return  # zipfile says what is wrong
    count, directory = declared
    if count > MAX_MEMBERS:
        raise _too_many(path, count, "its directory declares")
    if directory > MAX_MEMBERS * _DIRECTORY_BYTES_PER_MEMBER:
        raise ModelFileError(
            f"Refusing to unpack path={os.fspath(path)!r}: its central directory takes "
            f"{directory:,} bytes, room for more than featx.persist.MAX_MEMBERS={MAX_MEMBERS:,} "
            "members (a featx model holds 2 or 3). If you trust the file, raise "
            "featx.persist.MAX_MEMBERS."
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


def _member_parts(filename: str) -> tuple[str, ...] | None:
    """The parts of a member name that stays inside the archive, or None."""
    name = PurePosixPath(filename)
    if not name.parts or name.is_absolute() or ".." in name.parts or "\\" in filename:
        return None
    return name.parts


def _check_names(infos: list[zipfile.ZipInfo], path) -> None:
    """Refuse a member that would land outside the folder, twice in it, or under a file."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _member_parts(info.filename)
        if parts is None:
            raise UntrustedModelError(
                f"Refusing to unpack path={os.fspath(path)!r}: zip member "
                f"{info.filename!r}: unsafe path (absolute, '..' or '\\').")
        if not info.is_dir() and parts in files:
            raise _not_a_model(path, f"zip member {info.filename!r} appears twice.")
        (folders if info.is_dir() else files).add(parts)
        folders.update(parts[:i] for i in range(1, len(parts)))
    clash = files & folders
    if clash:
        raise _not_a_model(path, f"zip member {'/'.join(min(clash))!r} is both a file and a "
                                 "folder.")


def _extract(zf: zipfile.ZipFile, dest: Path, path, max_size: int | None) -> None:
    """Unpack ``zf`` into ``dest``, refusing unsafe names and more than ``max_size`` bytes.

    The members' declared sizes are checked before anything is written; the bytes actually
    written are counted too (headers can lie), and so are the declared contents of archives
    inside the archive (a ``.skops`` or ``.keras`` part is itself a zip, read by skops/Keras).
    """
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _too_many(path, len(infos), "it holds")
    _check_names(infos, path)
    declared = sum(info.file_size for info in infos)
    if max_size is not None and declared > max_size:
        raise _too_big(path, f"its members declare {declared:,} bytes in all", max_size)
    total = 0
    for info in infos:
        target = dest.joinpath(*_member_parts(info.filename))
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            dst = open(target, "wb")
        except OSError as exc:  # disk full, name too long for this file system, ...
            raise _not_a_model(path, f"zip member {info.filename!r} cannot be unpacked "
                                     f"({exc.strerror or exc}).") from None
        budget = None if max_size is None else max_size - total
        with dst:
            try:
                with zf.open(info) as src:
                    written = _copy(src, dst, budget)
            except OverflowError:
                raise _too_big(
                    path, f"member {info.filename!r} declares {info.file_size:,} bytes but "
                    f"unpacks to more than the {budget:,} bytes left (its header lies)",
                    max_size) from None
            except (EOFError, zlib.error, NotImplementedError, RuntimeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno != errno.EINVAL:  # disk full, ...
                    raise _not_a_model(path, f"zip member {info.filename!r} cannot be unpacked "
                                             f"({exc.strerror or exc}).") from None
                # truncated or corrupt data (EINVAL: a seek to a negative offset), an
                # unsupported compression or version, an encrypted member
                raise _not_a_zip(path, f"{type(exc).__name__} in member {info.filename!r}: "
                                       f"{exc}") from None
        inner = _unpacked_size(target)
        total += max(written, inner)
        if max_size is not None and total > max_size:
            raise _too_big(
                path, f"member {info.filename!r} is an archive that unpacks to {inner:,} "
                f"bytes, {total:,} bytes in all so far", max_size)


# manifest key -> (the types it may have, what a message says it should be)
_MANIFEST_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "format": ((str,), f"{FORMAT!r}"),
    "format_version": ((int,), "an integer"),
    "class": ((str,), "a qualified class name"),
    "storage": ((str,), "'skops' or 'hook'"),
}


def _read_manifest(folder: Path, path) -> dict[str, Any]:
    file = folder / MANIFEST
    if not file.is_file():
        raise _not_a_model(path, f"it has no {MANIFEST}.")
    try:
        manifest = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise _not_a_model(path, f"its {MANIFEST} is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict):
        raise _not_a_model(path, f"its {MANIFEST} holds a JSON {type(manifest).__name__}, not "
                                 "an object.")
    if manifest.get("format") != FORMAT:
        raise _not_a_model(path, f"its {MANIFEST} has format={manifest.get('format')!r}; "
                                 f"featx models have format={FORMAT!r}.")
    for key, (types, what) in _MANIFEST_KEYS.items():
        if key not in manifest:
            raise _not_a_model(path, f"its {MANIFEST} lacks {key!r} (expected {what}).")
        value = manifest[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise _not_a_model(path, f"its {MANIFEST} has {key}={value!r}; expected {what}.")
    if manifest["format_version"] > FORMAT_VERSION:
        raise _not_a_model(
            path, f"it has format version {manifest['format_version']}; this featx reads "
                  f"{FORMAT!r} up to version {FORMAT_VERSION} (a newer featx wrote it).")
    if manifest["storage"] not in ("skops", "hook"):
        raise _not_a_model(path, f"its {MANIFEST} has storage={manifest['storage']!r}; "
                                 "expected 'skops' or 'hook'.")
    if manifest.get("sklearn_version") != sklearn.__version__:
        warnings.warn(
            f"Model saved with scikit-learn {manifest.get('sklearn_version')}, loading with "
            f"{sklearn.__version__}; predictions may differ.", UserWarning, stacklevel=3,
        )
    return manifest


_QUALNAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _hook_class(manifest: dict[str, Any], trust: bool, path):
    qualname = manifest["class"]
    if not _QUALNAME.fullmatch(qualname):
        raise _not_a_model(path, f"its {MANIFEST} has class={qualname!r}, not a qualified "
                                 "class name.")
    module, _, name = qualname.rpartition(".")
    # Importing a module runs it: without trust, only featx's public modules (not
    # featx.cli.__main__, which runs the command, nor a private one).
    public = not any(part.startswith("_") for part in qualname.split("."))
    if not trust and not ((module == "featx" or module.startswith("featx.")) and public):
        raise UntrustedModelError(
            f"Refusing to import class={qualname!r} named by path={os.fspath(path)!r}: only "
            "public featx classes are loaded without trust=True."
        )
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        cls = None
    if not isinstance(cls, type) or not hasattr(cls, "_featx_load"):
        raise _not_a_model(path, f"class={qualname!r} named by its {MANIFEST} does not exist "
                                 "or has no _featx_load.")
    return cls


def _load_hook(cls, folder: Path, manifest: dict[str, Any], trust: bool, path) -> Any:
    """``cls._featx_load``: what it raises about a malformed payload names the user's file."""
    try:
        return cls._featx_load(folder / PAYLOAD, manifest, trust)
    except (UntrustedModelError, ModelFileError):
        raise
    except _PARSE_ERRORS as exc:
        detail = str(exc) if isinstance(exc, ValueError) else _reason(exc)
        raise _not_a_model(path, _scrub(detail)) from exc


def _estimators(obj: Any, seen: set[int], depth: int = 0):
    """Yield every estimator in ``obj`` (pipeline steps, fitted parts, ...), ``obj`` first."""
    if id(obj) in seen or depth > 64:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "get_params") and hasattr(obj, "__dict__"):
        yield obj
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        yield from _estimators(child, seen, depth + 1)


def _reset_path_params(model: Any, path) -> None:
    """Set the :data:`PATH_PARAMS` of every featx estimator in ``model`` that the file set
    to a place on disk back to its default; one warning names them all."""
    reset = []
    for est in _estimators(model, set()):
        cls = type(est)
        if not cls.__module__.startswith("featx."):
            continue
        try:
            signature = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            continue
        for name in [n for n in PATH_PARAMS if n in signature]:
            value = vars(est).get(name)
            default = signature[name].default
            default = None if default is inspect.Parameter.empty else default
            if value is None or isinstance(value, bool):
                continue  # cache=False / None: no place named
            setattr(est, name, default)
            reset.append(f"{cls.__name__}.{name}={value!r} -> {default!r}")
    if reset:
        warnings.warn(
            f"Loading path={os.fspath(path)!r}: reset {', '.join(reset)}: a loaded model "
            "reads and writes where you choose, not where the file says. Set them again with "
            "set_params(...), or load(path, trust=True) to keep the file's values.",
            UserWarning, stacklevel=3,
        )


def load(path: str | os.PathLike, *, trust: bool = False,
         max_size: int | None = MAX_SIZE) -> Any:
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save` (or a directory holding the same members).
    trust : bool, default=False
        Allow types outside :data:`SAFE_TYPES` and hook classes outside ``featx``, and keep
        the parameters that name a place on disk as the file has them (see below). Only for
        files from a source you trust: it lets the file run code.
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
        If the file needs ``trust=True`` (the message lists what was refused), or a member's
        name would unpack outside the archive's folder.
    ModelFileError
        If the file is not a featx model: not a zip archive or a truncated one, a manifest
        missing, not JSON, not an object, or with a missing key or a value of the wrong
        type, a member the manifest names missing or outside the archive, a part that
        cannot be read, more than :data:`MAX_MEMBERS` members, or more than ``max_size``
        bytes unpacked. The message names the file (never a temporary copy) and what is
        wrong. A ``ValueError``, as is ``UntrustedModelError``.
    FileNotFoundError
        If ``path`` does not exist.

    Warns
    -----
    UserWarning
        When parameters that name a place on disk were reset. A saved featx estimator
        keeps its parameters, but without ``trust=True`` those in :data:`PATH_PARAMS`
        (``cache``, ``checkpoint_dir``) are set back to their defaults, so the loaded model
        writes features and checkpoints where you choose (the featx cache dir), not where
        the file's author chose. One warning names every parameter reset, with the file's
        value; ``set_params`` sets them again. ``cache=False`` and ``None`` are kept (they
        name no place), and so is ``weights`` (a file that is only read, and that defines
        the features).
    """
    max_size = _check_max_size(max_size)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        if path.is_dir():
            folder = path
        elif path.exists() and not path.is_file():  # a device or a pipe: zipfile reads it all
            raise _not_a_model(path, "not a regular file.")
        else:
            folder = Path(tmp)
            try:
                _check_count(path)
                with zipfile.ZipFile(path) as zf:
                    _extract(zf, folder, path, max_size)
            except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
                raise _not_a_zip(path, exc) from None
            except OSError as exc:  # EINVAL: the directory sends a seek to a negative offset
                if exc.errno != errno.EINVAL:
                    raise
                raise _not_a_zip(path, exc) from None
        manifest = _read_manifest(folder, path)
        token = _UNPACKED.set((folder, path)) if folder != path else None
        try:
            if manifest["storage"] == "hook":
                cls = _hook_class(manifest, trust, path)
                if not isinstance(manifest.get("hook"), dict):
                    raise _not_a_model(path, f"its {MANIFEST} has hook="
                                             f"{manifest.get('hook')!r}; expected an object "
                                             "(storage 'hook').")
                model = _load_hook(cls, folder, manifest, trust, path)
            else:
                if not (folder / SKOPS_FILE).is_file():
                    raise _not_a_model(path, f"it has no {SKOPS_FILE} (storage 'skops').")
                model = load_skops(folder / SKOPS_FILE, trust=trust)
        finally:
            if token is not None:
                _UNPACKED.reset(token)
    if not trust:
        _reset_path_params(model, path)
    return model
