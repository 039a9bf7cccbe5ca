"""Parameters that name a place on disk: those a model writes to (:data:`PATH_PARAMS`) are reset
to their defaults in a loaded model unless ``trust=True``, so that it writes where you choose, not
where the file says; those it reads (:data:`READ_PATH_PARAMS`) are refused unless ``trust=True``,
as hook classes are, so that a file never makes featx read (or print the digest of) a file of
this machine."""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

from featx.backbones import random_weights
from featx.errors import UntrustedModelError

#: Parameters of featx's estimators that name a place on disk the model writes to: parameter ->
#: what it is. :func:`load` resets them to their defaults unless ``trust=True``, so a loaded
#: model writes where you choose, not where the file's author chose. ``weights`` is kept: it
#: names a file that is only read, and it defines the features (another value would change them).
PATH_PARAMS: dict[str, str] = {
    "cache": "the feature cache a model reads and fills (FeatureExtractor, TransferClassifier, "
             "FineTunedClassifier)",
    "checkpoint_dir": "where FineTunedClassifier.fit writes its checkpoints",
}

#: Parameters that name a file a loaded model reads: parameter -> what it is. A value that is a
#: path makes :func:`featx.persist.load` refuse the file (:class:`UntrustedModelError`) unless
#: ``trust=True``: a reset would silently change the features, and keeping it would let the
#: file's author choose a file of this machine to read (and its digest to show in messages).
#: ``"imagenet"`` and random weights (``None``, ``"none"``, ``"random"``) name no file.
READ_PATH_PARAMS: dict[str, str] = {
    "weights": "the backbone's weights file (FeatureExtractor, TransferClassifier, "
               "FineTunedClassifier)",
}


def estimators_in(model: Any):
    """Yield every estimator in ``model`` (pipeline steps, fitted parts, ...), ``model`` first."""
    yield from _estimators(model, set())


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


def reset_path_params(model: Any, path, path_params: dict[str, str]) -> None:
    """Set the ``path_params`` (:func:`featx.persist.load` passes ``featx.persist.PATH_PARAMS``)
    of every featx estimator in ``model`` that the file set to a place on disk back to its
    default; one warning (for the caller's caller) names them all."""
    reset = []
    for est in estimators_in(model):
        cls = type(est)
        if not cls.__module__.startswith("featx."):
            continue
        try:
            signature = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            continue
        for name in [n for n in path_params if n in signature]:
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


def refuse_read_paths(model: Any, path, read_params: dict[str, str]) -> None:
    """Raise :class:`UntrustedModelError` when a featx estimator in ``model`` has a
    ``read_params`` value (:func:`featx.persist.load` passes :data:`READ_PATH_PARAMS`) that
    names a file; nothing is read before."""
    named = []
    for est in estimators_in(model):
        # featx's estimators of a backbone (a head's own "weights", e.g. SoftVoteHead's, is
        # something else)
        if not type(est).__module__.startswith("featx.") or "backbone" not in vars(est):
            continue
        for name in read_params:
            value = vars(est).get(name)
            if isinstance(value, str | os.PathLike) and not random_weights(value) \
                    and value != "imagenet":
                named.append(f"{type(est).__name__}.{name}={os.fspath(value)!r}")
    if named:
        raise UntrustedModelError(
            f"Refusing path={os.fspath(path)!r}: it names a file on this machine to read "
            f"({', '.join(named)}); featx reads a file a model file names only when the model "
            "file is trusted: load(path, trust=True) if it comes from a source you trust."
        )
