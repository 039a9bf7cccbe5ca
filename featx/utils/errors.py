"""The marker of featx's own errors whose message is complete for a user.

Most featx errors are ``ValueError``/``KeyError``/``FileNotFoundError`` subclasses, which the
``featx`` command already prints as one plain line. An error that must keep another base class
(``OSError`` for a failed cache write, ``RuntimeError`` for a failed download) also derives from
:class:`FeatxError`, so the command prints it plainly too instead of as an unexpected crash.
"""

from __future__ import annotations

__all__ = ["FeatxError"]


class FeatxError(Exception):
    """An error raised by featx with a message that names what failed and what to do."""
