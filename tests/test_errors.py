"""``featx.errors``: every exception and warning of featx, in one module.

Each exception derives from :class:`~featx.errors.FeatxError` and keeps the builtin bases it had
before the module existed (so ``except ValueError`` and friends catch what they always caught);
each warning derives from :class:`~featx.errors.FeatxWarning`; no other module defines one; the
old import paths give the same class objects.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
from pathlib import Path

import pytest

import featx
import featx.errors as errors
from featx.errors import FeatxError, FeatxWarning

ROOT = Path(featx.__file__).parent

CLASSES = {name: obj for name, obj in vars(errors).items()
           if inspect.isclass(obj) and obj.__module__ == errors.__name__}
EXCEPTIONS = sorted(n for n, c in CLASSES.items() if not issubclass(c, Warning))
WARNINGS = sorted(n for n, c in CLASSES.items() if issubclass(c, Warning))

#: The builtin (and stdlib) bases each exception had before featx had one errors module: what
#: ``except <builtin>`` catches must not change. ``CommandError`` had none (only ``Exception``).
BUILTIN_BASES = {
    "WeightsDownloadError": (RuntimeError,),
    "WeightsFileNotFoundError": (FileNotFoundError, ValueError),
    "DamagedWeightsError": (OSError, ValueError),
    "CheckpointError": (pickle.UnpicklingError, ValueError),
    "CacheWriteError": (OSError,),
    "DamagedCacheError": (ValueError,),
    "ExportError": (ValueError,),
    "ImageError": (ValueError,),
    "GraphExportError": (RuntimeError,),
    "UntrustedModelError": (ValueError,),
    "ModelFileError": (ValueError,),
    "ConfigError": (ValueError,),
    "DataNotFoundError": (FileNotFoundError,),
    "OutputExistsError": (FileExistsError,),
    "MissingRowsError": (ValueError,),
    "ItemTooLargeError": (OSError,),
    "ItemTimeoutError": (TimeoutError,),
    "CommandError": (),
}
#: Exceptions with no builtin base but ``Exception``: the base itself, and one whose callers
#: never caught it as anything narrower.
NO_BUILTIN = {"FeatxError", "CommandError"}

#: Where each class lived (and is still importable from) before featx.errors.
OLD_PATHS = {
    "WeightsDownloadError": ["featx.backbones", "featx.backbones._weights"],
    "WeightsFileNotFoundError": ["featx.backbones", "featx.backbones._weights"],
    "DamagedWeightsError": ["featx.backbones", "featx.backbones._weights"],
    "WeightsCacheWarning": ["featx.backbones", "featx.backbones._weights"],
    "CheckpointError": ["featx.backbones", "featx.backbones._pth"],
    "CacheWriteError": ["featx.cache", "featx.trust.store"],
    "DamagedCacheError": ["featx.cache", "featx.trust.store"],
    "DamagedCacheWarning": ["featx.cache", "featx.trust.store"],
    "ExportError": ["featx.deploy", "featx.deploy.formats"],
    "ImageError": ["featx", "featx.images", "featx.images.pillow"],
    "GraphExportError": ["featx.extract.graphs"],
    "UnsupportedGraphError": ["featx.extract.onnx_writer"],
    "PlotsSkippedWarning": ["featx.report", "featx.report.plots"],
    "UntrustedModelError": ["featx.persist", "featx.persist.errors"],
    "ModelFileError": ["featx.persist", "featx.persist.errors"],
    "ConfigError": ["featx.pipeline", "featx.pipeline.schema"],
    "DataNotFoundError": ["featx.sources"],
    "CommandError": ["featx.cli.common"],
    "SkippedImagesWarning": ["featx.data", "featx.data.files"],
}


def _builtin_bases(cls) -> set[type]:
    """The builtin exception classes (and stdlib ones like ``pickle.UnpicklingError``) in the
    MRO of ``cls`` that are narrower than ``Exception``."""
    return {c for c in cls.__mro__
            if c.__module__ in ("builtins", "_pickle", "pickle") and issubclass(c, Exception)
            and c not in (Exception, BaseException)}


def test_the_module_has_both_kinds():
    assert len(EXCEPTIONS) >= 15 and len(WARNINGS) >= 4, (EXCEPTIONS, WARNINGS)
    assert set(errors.__all__) == set(CLASSES)


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_every_exception_is_a_featx_error_and_a_builtin(name):
    cls = CLASSES[name]
    assert issubclass(cls, FeatxError)
    assert not issubclass(cls, Warning)
    if name in NO_BUILTIN:
        assert _builtin_bases(cls) == set()
    else:
        assert _builtin_bases(cls), f"{name} derives from no builtin exception but Exception"
    if name in BUILTIN_BASES:  # exactly the builtins it had: except X catches what it caught
        expected = set()
        for base in BUILTIN_BASES[name]:
            expected |= _builtin_bases(base) | {base}
        assert _builtin_bases(cls) == expected, name


@pytest.mark.parametrize("name", WARNINGS)
def test_every_warning_is_a_featx_warning(name):
    assert issubclass(CLASSES[name], FeatxWarning)
    assert issubclass(CLASSES[name], UserWarning)
    assert not issubclass(CLASSES[name], FeatxError)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_class_says_when_it_is_raised(name):
    assert (CLASSES[name].__doc__ or "").strip(), f"{name} has no docstring"


def test_errors_imports_nothing_of_featx():
    tree = ast.parse((ROOT / "errors.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and (m == "featx" or m.startswith("featx."))]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _class_defs():
    """``(module, class name, top level?, base names)`` of every public class featx defines."""
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield (_module_name(path), node.name, id(node) in top,
                       [ast.unparse(b) for b in node.bases])


def test_no_exception_or_warning_is_defined_outside_featx_errors():
    """Read with ``ast``, checked on the imported classes (private control-flow exceptions such
    as the row store's ``_BadSegment`` may stay where they are used)."""
    strays = []
    for module, name, top, bases in _class_defs():
        if module == "featx.errors":
            continue
        if not top:  # defined inside a function or class: judged by its bases' names
            if any(b.rsplit(".", 1)[-1].endswith(("Error", "Exception", "Warning")) for b in bases):
                strays.append(f"{module}.{name}")
            continue
        obj = getattr(importlib.import_module(module), name, None)
        if inspect.isclass(obj) and issubclass(obj, (BaseException, Warning)):
            if obj.__module__ != "featx.errors":
                strays.append(f"{module}.{name}")
    assert not strays, f"define these in featx/errors.py and import them from there: {strays}"


@pytest.mark.parametrize("name", sorted(OLD_PATHS))
def test_old_import_paths_give_the_same_class(name):
    for module in OLD_PATHS[name]:
        assert getattr(importlib.import_module(module), name) is CLASSES[name], (module, name)


def test_the_command_prints_every_featx_error_plainly():
    from featx.cli.main import _one_line

    assert _one_line(errors.GraphExportError("no ONNX")) == "no ONNX"
    assert _one_line(errors.CommandError("nothing matches")) == "nothing matches"


def test_custom_fields_are_kept(tmp_path):
    damaged = errors.DamagedCacheError(tmp_path / "x.h5", "bad digest", "moved aside")
    assert damaged.path == tmp_path / "x.h5" and damaged.why == "bad digest"
    assert str(damaged).endswith("is damaged (bad digest); moved aside")
    config = errors.ConfigError("2 errors", ["a", "b"])
    assert config.errors == ["a", "b"]
    with pytest.raises(ValueError, match="damaged"):
        raise damaged
    with pytest.raises(OSError):
        raise errors.DamagedWeightsError("weights.h5 is damaged")
