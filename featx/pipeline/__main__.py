"""``python -m featx.pipeline --schema``: print the pipeline schema as markdown (docs/cli.md)."""

import sys

from featx.pipeline.schema import schema_markdown

if sys.argv[1:] != ["--schema"]:
    sys.exit("usage: python -m featx.pipeline --schema   (prints the schema as markdown)")
print(schema_markdown())
