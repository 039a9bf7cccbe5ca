"""The checks of a backbone's ``weights`` argument: no Keras, numpy or HDF5, so the command line
checks its arguments before anything heavy is imported."""

from __future__ import annotations

import os
from pathlib import Path

from featx.errors import WeightsFileNotFoundError

__all__ = ["RANDOM_SPELLINGS", "check_weights", "random_weights"]

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
