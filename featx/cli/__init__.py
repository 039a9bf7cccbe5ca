"""The ``featx`` command. :mod:`~featx.cli.main` holds the parser and :func:`main`,
:mod:`~featx.cli.commands` the ``cmd_*`` commands (the ``featx cache ...`` ones in
:mod:`~featx.cli.cache_commands`), :mod:`~featx.cli.common` their helpers."""

from featx.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
