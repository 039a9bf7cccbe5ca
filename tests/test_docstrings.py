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


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    env = dict(os.environ)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert dict(os.environ) == env, f"the examples of {name} leave the environment changed"
