"""Every Examples section in featx runs as written (numpydoc examples are part of the API)."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import pytest

import featx

MODULES = sorted(m.name for m in pkgutil.walk_packages(featx.__path__, "featx.")
                 if not m.name.endswith("__main__"))


def test_the_package_has_examples_to_run():
    finder = doctest.DocTestFinder()
    examples = {name: sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
                for name in MODULES}
    stages = {name.split(".")[1] for name, n in examples.items() if n and "." in name}
    assert sum(examples.values()) > 100, examples
    assert {"images", "data", "backbones", "cache", "extract", "heads", "utils"} <= stages


def _settings() -> dict:
    """The environment variables featx reads or writes: its own, the Keras backend, and
    TensorFlow's log level. (A library's first import may set its own variables, e.g.
    TensorFlow's ``TF2_BEHAVIOR``: not featx's to keep, and present or not by test order.)"""
    return {k: v for k, v in os.environ.items()
            if k.startswith("FEATX_") or k in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    env = _settings()
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert _settings() == env, f"the examples of {name} leave the environment changed"
