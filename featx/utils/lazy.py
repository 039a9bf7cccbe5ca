"""Lazy names for packages whose heavy half (Keras) should load only when it is used.

``featx.backbones`` and ``featx.finetune`` keep their tables importable without Keras, so the
command line can check a name in well under a second; their Keras-backed names load on first
access through :func:`lazy_names`, with TensorFlow's start-up lines quieted by its own settings.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping

from featx.utils.progress import quiet_tensorflow

__all__ = ["lazy_names"]


def lazy_names(package: str, table: Mapping[str, str],
               public: Iterable[str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: each name of ``table`` (name ->
    submodule) is imported from ``package.<submodule>`` on first access and kept.

    Examples
    --------
    >>> getattr_, dir_ = lazy_names("featx.finetune", {"FineTunedClassifier": "estimator"}, [])
    >>> "FineTunedClassifier" in dir_()
    True
    """
    public = set(public)

    def __getattr__(name: str):
        module = table.get(name)
        if module is None:  # AttributeError lets `from package import submodule` import it
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        quiet_tensorflow()
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | public | set(table))

    return __getattr__, __dir__
