"""The archive's ``manifest.json``: what :func:`featx.persist.save` writes there, and the checks
:func:`featx.persist.load` makes before it trusts a key (format, version, types of the values)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import sklearn
import skops

from featx.persist.errors import not_a_model
from featx.utils.version import __version__

FORMAT = "featx.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# manifest key -> (the types it may have, what a message says it should be)
_MANIFEST_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "format": ((str,), f"{FORMAT!r}"),
    "format_version": ((int,), "an integer"),
    "class": ((str,), "a qualified class name"),
    "storage": ((str,), "'skops' or 'hook'"),
}


def qualname(obj: Any) -> str:
    """``module.QualName`` of ``obj``'s class."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _params(obj: Any) -> dict[str, Any]:
    try:
        params = obj.get_params(deep=False)
    except Exception:  # noqa: BLE001 - params are informational only
        return {}
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in params.items()}


def new_manifest(model: Any) -> dict[str, Any]:
    """The manifest of ``model`` before its storage is chosen (``storage`` and ``hook`` are
    added by :func:`featx.persist.save`)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "featx_version": __version__,
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
        "class": qualname(model),
        "params": _params(model),
    }


def read_manifest(folder: Path, path) -> dict[str, Any]:
    """The manifest in ``folder`` (unpacked from ``path``), checked; warns (for the caller's
    caller) when the file was saved with another scikit-learn."""
    file = folder / MANIFEST
    if not file.is_file():
        raise not_a_model(path, f"it has no {MANIFEST}.")
    try:
        manifest = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise not_a_model(path, f"its {MANIFEST} is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict):
        raise not_a_model(path, f"its {MANIFEST} holds a JSON {type(manifest).__name__}, not "
                                "an object.")
    if manifest.get("format") != FORMAT:
        raise not_a_model(path, f"its {MANIFEST} has format={manifest.get('format')!r}; "
                                f"featx models have format={FORMAT!r}.")
    for key, (types, what) in _MANIFEST_KEYS.items():
        if key not in manifest:
            raise not_a_model(path, f"its {MANIFEST} lacks {key!r} (expected {what}).")
        value = manifest[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise not_a_model(path, f"its {MANIFEST} has {key}={value!r}; expected {what}.")
    if manifest["format_version"] > FORMAT_VERSION:
        raise not_a_model(
            path, f"it has format version {manifest['format_version']}; this featx reads "
                  f"{FORMAT!r} up to version {FORMAT_VERSION} (a newer featx wrote it).")
    if manifest["storage"] not in ("skops", "hook"):
        raise not_a_model(path, f"its {MANIFEST} has storage={manifest['storage']!r}; "
                                "expected 'skops' or 'hook'.")
    if manifest.get("sklearn_version") != sklearn.__version__:
        warnings.warn(
            f"Model saved with scikit-learn {manifest.get('sklearn_version')}, loading with "
            f"{sklearn.__version__}; predictions may differ.", UserWarning, stacklevel=3,
        )
    return manifest
