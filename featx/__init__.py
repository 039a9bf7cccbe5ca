"""featx: a frozen pretrained CNN runs once, its features are cached in HDF5, and scikit-learn heads
fit on them in seconds; an optional stage fine-tunes the network and is compared side by side.

Public names are imported lazily, so ``import featx`` (and ``featx --version``) stays fast and does
not start Keras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from featx.utils.version import __version__

# public name -> module that defines it
_EXPORTS = {
    "ImageDataset": "featx.data",
    "ImageError": "featx.images",
    "read_image": "featx.images",
    "load_clothing_mini": "featx.datasets",
    "list_backbones": "featx.backbones",
    "load_backbone": "featx.backbones",
    "get_backbone_spec": "featx.backbones",
    "extract_features": "featx.extract",
    "FeatureSet": "featx.extract",
    "make_head": "featx.heads",
    "list_heads": "featx.heads",
    "evaluate_heads": "featx.evaluate",
    "inspect": "featx.audit",
    "FeatureExtractor": "featx.estimators",
    "TransferClassifier": "featx.estimators",
    "FineTunedClassifier": "featx.finetune",
    "compare": "featx.comparison",
    "save": "featx.persist",
    "load": "featx.persist",
    "export": "featx.deploy",
    "config_context": "featx.utils.config",
    "get_config": "featx.utils.config",
    "set_config": "featx.utils.config",
    "ExtractorConfig": "featx.extract.config",
}

__all__ = ["__version__", *_EXPORTS]

#: The stages of the data's way, in order: each package (or module) ``featx.<stage>`` imports
#: only from the stages before it (``tests/test_layout.py`` checks every import, function-level
#: ones included). ``docs/design.md``'s table is :func:`stages_markdown`.
STAGES: tuple[tuple[str, str], ...] = (
    ("errors", "exceptions and warnings"),
    ("utils", "shared plumbing"),
    ("trust", "sealed store, bounded reads, owned outputs"),
    ("images", "disk -> RGB uint8"),
    ("data", "labelled image lists"),
    ("datasets", "bundled and installable data"),
    ("sources", "DATA argument -> splits"),
    ("backbones", "uint8 batch -> features"),
    ("cache", "HDF5 keys, files, row store"),
    ("distributed", "Ray runtime"),
    ("extract", "dataset -> FeatureSet, cached"),
    ("heads", "sklearn heads on features"),
    ("evaluate", "heads scored side by side"),
    ("audit", "know your data: duplicates, leaks, label errors"),
    ("estimators", "sklearn estimators on images"),
    ("finetune", "the whole network trained"),
    ("persist", "save / load"),
    ("deploy", "one file for other runtimes"),
    ("comparison", "frozen heads vs fine-tuning"),
    ("report", "report folder, plots"),
    ("advise", "which strategy fits"),
    ("pipeline", "TOML-declared runs"),
    ("cli", "the featx command"),
)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None and name in dict(STAGES):  # a stage, as ``import featx.<stage>`` gives
        module, name = f"featx.{name}", None
    if module is None:
        raise AttributeError(f"module 'featx' has no attribute {name!r}")
    # The API imports Keras: quiet TensorFlow's start-up lines (oneDNN, cuInit) through its own
    # settings unless the user asked for them (FEATX_TF_LOGS=1, or TF_CPP_MIN_LOG_LEVEL set
    # already); the host's stderr is never touched.
    from featx.utils.progress import quiet_tensorflow

    quiet_tensorflow()
    if name is None:  # the stage module itself (``featx.advise.advise(...)``)
        return importlib.import_module(module)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def stages_markdown() -> str:
    """The stage table of ``docs/design.md``: each stage, where it lives, and the first line of
    its docstring (read from the source, so nothing heavy is imported)."""
    import ast
    from pathlib import Path

    here = Path(__file__).parent
    lines = ["| # | stage | where | role | what |", "| ---: | --- | --- | --- | --- |"]
    for i, (name, role) in enumerate(STAGES, 1):
        package = (here / name).is_dir()
        source = here / name / "__init__.py" if package else here / f"{name}.py"
        doc = " ".join((ast.get_docstring(ast.parse(source.read_text())) or "").split())
        first = doc.split(". ")[0].rstrip(".") + "."  # the docstring's first sentence
        where = f"`featx/{name}/`" if package else f"`featx/{name}.py`"
        lines.append(f"| {i} | {name} | {where} | {role} | {first} |")
    return "\n".join(lines) + "\n"


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from featx.audit import inspect
    from featx.backbones import get_backbone_spec, list_backbones, load_backbone
    from featx.comparison import compare
    from featx.data import ImageDataset
    from featx.datasets import load_clothing_mini
    from featx.deploy import export
    from featx.estimators import FeatureExtractor, TransferClassifier
    from featx.evaluate import evaluate_heads
    from featx.extract import FeatureSet, extract_features
    from featx.extract.config import ExtractorConfig
    from featx.finetune import FineTunedClassifier
    from featx.heads import list_heads, make_head
    from featx.images import ImageError, read_image
    from featx.persist import load, save
    from featx.utils.config import config_context, get_config, set_config
