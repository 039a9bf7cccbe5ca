"""Declarative runs: a TOML file says what to compare; :func:`run_pipeline` runs it and reports.

A pipeline reads top to bottom like featx itself: ``[data]`` -> ``[extract]`` (features cached)
-> ``[heads]`` (scikit-learn heads on the cached features) -> ``[finetune]`` (optional) ->
``[report]``. Built-in pipelines ship inside featx (:func:`list_pipelines`; ``featx run
quickstart`` runs one by name, :func:`copy_pipeline` writes one to edit). Every key is a row of
:data:`SCHEMA` (type, default, allowed values, meaning); ``docs/cli.md``'s schema section is
generated from it by :func:`schema_markdown`. Errors name the key (``heads.names[2]``), echo the
value and list what is allowed, with close matches.

:func:`run_pipeline` (numpy, scikit-learn, Keras) is imported on first use; the rest imports
nothing heavy, so ``featx pipelines``, ``featx init`` and a pipeline's schema errors answer at
once.

Examples
--------
>>> cfg = parse_config('[data]\\nname = "clothing-mini"\\n[heads]\\nnames = ["logreg"]')
>>> cfg["extract"]["backbone"], cfg["heads"]["names"], cfg["finetune"]["strategies"]
(['efficientnet_lite0'], ['logreg'], [])
"""

from typing import TYPE_CHECKING

from featx.pipeline.config import (
    copy_pipeline,
    list_pipelines,
    load_config,
    parse_config,
    parse_override,
    pipeline_path,
)
from featx.pipeline.schema import (
    SCHEMA,
    SECTIONS,
    ConfigError,
    Key,
    schema_markdown,
    validate_config,
)
from featx.utils.lazy import lazy_names

# the run itself (features, heads, fine-tuning, report) is imported on first use: listing,
# copying and checking pipelines stays light
__getattr__, __dir__ = lazy_names(__name__, {"run_pipeline": "run"}, ["run_pipeline"])

__all__ = ["SCHEMA", "SECTIONS", "ConfigError", "Key", "copy_pipeline", "list_pipelines",
           "load_config", "parse_config", "parse_override", "pipeline_path", "run_pipeline",
           "schema_markdown", "validate_config"]


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from featx.pipeline.run import run_pipeline
