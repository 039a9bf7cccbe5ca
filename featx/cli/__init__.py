"""The ``featx`` command: the parser and :func:`main` (:mod:`~featx.cli.main`), the ``cmd_*``
commands (:mod:`~featx.cli.commands`) and their shared helpers (:mod:`~featx.cli.common`)."""

from featx.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
