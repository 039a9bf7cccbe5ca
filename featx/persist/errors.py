"""The errors :func:`featx.persist.load` raises, and how their messages name the user's file.

While ``load`` reads an unpacked archive, :data:`UNPACKED` holds the temporary folder and the
user's path, so that a message about a part names the user's file, never the temporary copy.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from contextvars import ContextVar
from pathlib import Path

from featx.errors import ModelFileError, UntrustedModelError

__all__ = ["PARSE_ERRORS", "UNPACKED", "ModelFileError", "UntrustedModelError", "not_a_model",
           "not_a_zip", "reason", "scrub"]

# While load() reads an archive: (the temporary folder it unpacked to, the user's path), so
# that messages about a part name the user's file rather than the temporary copy.
UNPACKED: ContextVar[tuple[Path, Path] | None] = ContextVar("featx_unpacked", default=None)

# What reading a damaged or crafted part raises inside zipfile, json, skops or Keras: turned
# into one ModelFileError naming the user's file (the original stays chained as its cause).
PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, EOFError,
                RecursionError, OSError, zipfile.BadZipFile, zlib.error)


def reason(exc: BaseException) -> str:
    """``exc`` for a message, without the temporary folder an archive was unpacked to."""
    return scrub(f"{type(exc).__name__}: {exc}")


def scrub(text: str) -> str:
    """``text`` without the temporary folder an archive was unpacked to."""
    unpacked = UNPACKED.get()
    if unpacked is None:
        return text
    folder = os.fspath(unpacked[0])
    return text.replace(folder + os.sep, "").replace(folder, "<unpacked>")


def not_a_model(path, why: str) -> ModelFileError:
    return ModelFileError(f"path={os.fspath(path)!r} is not a featx model: {why}")


def not_a_zip(path, exc: BaseException) -> ModelFileError:
    return not_a_model(path, f"not a valid zip archive ({exc}).")
