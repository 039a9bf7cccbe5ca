"""Parameters that name a place on disk (:data:`PATH_PARAMS`), reset to their defaults in a
loaded model unless ``trust=True``, so that it writes where you choose, not where the file says."""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

#: Parameters of featx's estimators that name a place on disk the model writes to: parameter ->
#: what it is. :func:`load` resets them to their defaults unless ``trust=True``, so a loaded
#: model writes where you choose, not where the file's author chose. ``weights`` is kept: it
#: names a file that is only read, and it defines the features (another value would change them).
PATH_PARAMS: dict[str, str] = {
    "cache": "the feature cache a model reads and fills (FeatureExtractor, TransferClassifier, "
             "FineTunedClassifier)",
    "checkpoint_dir": "where FineTunedClassifier.fit writes its checkpoints",
}


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
    for est in _estimators(model, set()):
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
