"""Reading a pipeline: TOML text or file -> a validated config dict, with ``--set`` overrides."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from featx.pipeline.schema import ConfigError, close_matches, source_label, validate_config

__all__ = ["load_config", "parse_config", "parse_override", "set_dotted"]


def set_dotted(doc: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    if len(parts) != 2:
        raise ConfigError(f"override {dotted!r} must be section.key (e.g. data.limit)")
    doc.setdefault(parts[0], {})[parts[1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"data.limit=5"`` -> ``("data.limit", 5)``; the value is TOML (bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, _, value = text.partition("=")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def parse_config(text: str, *, source: str | None = None,
                 overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """Parse and validate TOML ``text``; ``overrides``: ``section.key=value`` strings or a dict."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source_label(source)}invalid TOML: {exc}") from None
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    for key, value in items:
        set_dotted(doc, key, value)
    return validate_config(doc, source)


def load_config(path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """Read, parse and validate a pipeline file; ``cfg["_file"]`` records where it came from."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            names = sorted(p.name for p in path.parent.glob("*.toml"))
            hint = close_matches(path.name, names) or (f" {path.parent} holds: {', '.join(names)}"
                                                if names else "")
        raise FileNotFoundError(f"pipeline file {str(path)!r} does not exist.{hint}")
    cfg = parse_config(path.read_text(encoding="utf-8"), source=str(path), overrides=overrides)
    cfg["_file"] = str(path)
    cfg["_text"] = path.read_text(encoding="utf-8")
    return cfg
