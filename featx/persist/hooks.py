"""Hook classes: objects saved by their own ``_featx_save(dirpath)`` into the archive's
``payload/`` folder, and restored by the class the manifest names (only a public featx class
without ``trust=True``) through its ``_featx_load(dirpath, manifest, trust)``."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

from featx.persist.errors import (
    PARSE_ERRORS,
    ModelFileError,
    UntrustedModelError,
    not_a_model,
    reason,
    scrub,
)
from featx.persist.manifest import MANIFEST

PAYLOAD = "payload"

_QUALNAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def hook_class(manifest: dict[str, Any], trust: bool, path):
    """The class ``manifest["class"]`` names, imported only if it is a public featx class (or
    ``trust`` is True), and only if it has ``_featx_load``."""
    qualname = manifest["class"]
    if not _QUALNAME.fullmatch(qualname):
        raise not_a_model(path, f"its {MANIFEST} has class={qualname!r}, not a qualified "
                                "class name.")
    module, _, name = qualname.rpartition(".")
    # Importing a module runs it: without trust, only featx's public modules (not
    # featx.cli.__main__, which runs the command, nor a private one).
    public = not any(part.startswith("_") for part in qualname.split("."))
    if not trust and not ((module == "featx" or module.startswith("featx.")) and public):
        raise UntrustedModelError(
            f"Refusing to import class={qualname!r} named by path={os.fspath(path)!r}: only "
            "public featx classes are loaded without trust=True."
        )
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        cls = None
    if not isinstance(cls, type) or not hasattr(cls, "_featx_load"):
        raise not_a_model(path, f"class={qualname!r} named by its {MANIFEST} does not exist "
                                "or has no _featx_load.")
    return cls


def load_hook(cls, folder: Path, manifest: dict[str, Any], trust: bool, path) -> Any:
    """``cls._featx_load``: what it raises about a malformed payload names the user's file."""
    try:
        return cls._featx_load(folder / PAYLOAD, manifest, trust)
    except (UntrustedModelError, ModelFileError):
        raise
    except PARSE_ERRORS as exc:
        detail = str(exc) if isinstance(exc, ValueError) else reason(exc)
        raise not_a_model(path, scrub(detail)) from exc
