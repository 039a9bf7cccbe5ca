"""Reading a pipeline: TOML text, a file or a built-in name -> a validated config dict, with
``--set`` overrides; the built-in pipelines that ship inside featx (``featx/pipeline/builtin/``,
the checkout's ``pipelines/``) listed and copied out to edit."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from featx.errors import OutputExistsError
from featx.pipeline.schema import ConfigError, source_label, validate_config
from featx.trust.outputs import write_output
from featx.utils.checks import close_matches

__all__ = ["BUILTIN_DIR", "copy_pipeline", "list_pipelines", "load_config", "parse_config",
           "parse_override", "pipeline_path", "set_dotted", "toml_value", "with_values"]

#: The built-in pipelines: ``<name>.toml`` files shipped inside the package (the checkout's
#: ``pipelines/`` folder links here). The first line of each is its one-line description.
BUILTIN_DIR = Path(__file__).parent / "builtin"


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


def toml_value(value) -> str:
    """``value`` written as TOML (the inverse of reading one value).

    Examples
    --------
    >>> toml_value(["comparison", 2, 0.5, True])
    '["comparison", 2, 0.5, true]'
    >>> toml_value({"flip": True, "zoom": 0.1})
    '{flip = true, zoom = 0.1}'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"value must be a TOML value (str, int, float, bool, list, table), got "
                    f"{value!r} of type {type(value).__name__}")


_HEADER = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")


def with_values(text: str, values: Mapping[str, Any] | Sequence[tuple[str, Any]],
                note: str = "") -> str:
    r"""The TOML ``text`` with each ``section.key`` of ``values`` set: its line (or lines, for a
    value written over several) replaced, or added at the top of its section (the section
    added at the end when missing); the rest of the text, comments included, as it was.
    ``note`` is written as a comment after each changed line.

    Examples
    --------
    >>> text = '[data]\nname = "clothing-mini"\n\n[report]\nplots = [\n  "confusion",\n]  # two\n'
    >>> print(with_values(text, {"report.plots": [], "data.limit": 5}, note="--set"), end="")
    [data]
    limit = 5  # --set
    name = "clothing-mini"
    <BLANKLINE>
    [report]
    plots = []  # --set
    """
    lines = text.splitlines()
    items = values.items() if isinstance(values, Mapping) else values
    comment = f"  # {note}" if note else ""
    for dotted, value in items:
        section, _, key = dotted.partition(".")
        new = f"{key} = {toml_value(value)}{comment}"
        current, start, found = None, None, False
        for i, line in enumerate(lines):
            header = _HEADER.match(line)
            if header:
                current = header.group(1)
                if current == section:
                    start = i
                continue
            if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                for j in range(i, len(lines)):  # the value may go on over several lines
                    try:
                        tomllib.loads("\n".join(lines[i:j + 1]))
                    except tomllib.TOMLDecodeError:
                        continue
                    lines[i:j + 1] = [new]
                    found = True
                    break
                break
        if not found:
            if start is None:
                lines += ["", f"[{section}]", new]
            else:
                lines.insert(start + 1, new)
    return "\n".join(lines) + ("\n" if text.endswith("\n") or not text else "")


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


def _builtins() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def _describe(text: str) -> str:
    r"""A pipeline's one-line description: the first sentence of its leading comment paragraph
    (which may wrap over several comment lines; never cut mid-sentence).

    Examples
    --------
    >>> _describe("# Photos of cats, chosen by\n# cross-validation. More here.\n#\n# x")
    'Photos of cats, chosen by cross-validation.'
    """
    words = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if words or stripped:
                break
            continue
        body = stripped.lstrip("#").strip()
        if not body:
            if words:
                break
            continue
        words.append(body)
    paragraph = " ".join(words)
    end = re.search(r"[.!?](\s|$)", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


def list_pipelines() -> list[dict]:
    """The built-in pipelines: ``name``, ``description`` (the file's first comment line),
    ``data`` (the built-in dataset name or the path it reads) and ``path``, sorted by name.

    Examples
    --------
    >>> [p["name"] for p in list_pipelines()][:2]
    ['cats_vs_dogs', 'clothing']
    """
    out = []
    for name, path in _builtins().items():
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text).get("data", {})
        out.append({"name": name, "description": _describe(text),
                    "data": data.get("name") or data.get("path") or "", "path": str(path)})
    return out


def pipeline_path(name_or_path: str | os.PathLike) -> tuple[Path, str | None]:
    """Where the pipeline ``name_or_path`` is: ``(file, built-in name or None)``.

    An existing file is taken as is. Otherwise a built-in name (``"quickstart"``, with or without
    ``.toml``), or the checkout's spelling of one (``"pipelines/quickstart.toml"``, so the
    README's command works from an installed package in any folder), is the built-in file.
    Anything else raises ``FileNotFoundError`` naming the close matches and the built-in names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path, None
    builtins = _builtins()
    text = os.fspath(name_or_path)
    stem = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    parent = path.parent.as_posix()
    if stem in builtins and (parent == "." or parent == "pipelines" and path.suffix == ".toml"):
        return builtins[stem], stem
    listing = (f". Built-in: {', '.join(builtins)} (`featx pipelines` describes them; "
               "`featx init NAME` writes one to edit)")
    if parent == "." and path.suffix != ".toml":  # a name, not a file
        raise FileNotFoundError(f"pipeline {text!r} is neither a file nor a built-in pipeline"
                                f"{close_matches(stem, list(builtins), cutoff=0.5)}{listing}")
    folder = ""
    if path.parent.is_dir():
        names = sorted(p.name for p in path.parent.glob("*.toml"))
        folder = close_matches(path.name, names, cutoff=0.5) or (
            f"; {path.parent} holds: {', '.join(names)}" if names and parent != "." else "")
    builtin = close_matches(stem, list(builtins), cutoff=0.5)
    builtin = builtin and builtin + listing
    hint = (builtin or folder) if parent == "." else (folder or builtin)
    raise FileNotFoundError(f"pipeline file {text!r} does not exist{hint}.")


def copy_pipeline(name: str, out: str | os.PathLike | None = None, *,
                  overwrite: bool = False) -> Path:
    """Write the built-in pipeline ``name`` to ``out`` (default ``<name>.toml`` here) to edit.

    Raises ``ValueError`` for an unknown name (with close matches) and
    :class:`~featx.errors.OutputExistsError` (a ``FileExistsError``) when ``out`` exists and
    ``overwrite`` is false. With ``overwrite=True`` a copy featx wrote there and nobody edited
    is replaced; a file featx did not write, or a copy edited since, is still refused: an
    edited pipeline is never lost. A copy under another name reports to a folder of its own:
    its ``[report] out`` is ``reports/<its file name>`` (``mine.toml``: ``reports/mine``).
    """
    builtins = _builtins()
    key = name[: -len(".toml")] if name.endswith(".toml") else name
    if key not in builtins:
        raise ValueError(f"NAME {name!r} is not a built-in pipeline"
                         f"{close_matches(key, builtins, cutoff=0.5)}. Built-in: "
                         f"{', '.join(builtins)}")
    out = Path(out if out is not None else f"{key}.toml")
    if os.path.lexists(out) and not overwrite:
        raise OutputExistsError(f"--out {os.fspath(out)!r} exists already; featx leaves it as "
                                "it is: choose another --out or move it away yourself")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {os.fspath(out)!r}: folder {os.fspath(out.parent)!r} "
                                "does not exist")
    text = builtins[key].read_text(encoding="utf-8")
    if out.stem != key and tomllib.loads(text).get("report", {}).get("out"):
        # the copy's report goes to a folder of its own, not over the built-in's
        text = with_values(text, {"report.out": f"reports/{out.stem}"})
    write_output(out, text.encode("utf-8"), param="--out")
    return out


def load_config(path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """Read, parse and validate a pipeline file or built-in pipeline (:func:`pipeline_path`);
    ``cfg["_file"]`` records the file it came from, ``cfg["_text"]`` its text with the
    ``overrides`` written in (:func:`with_values`: what the run follows, as the report shows
    it), ``cfg["_builtin"]`` the built-in name (or ``None``)."""
    path, builtin = pipeline_path(path)
    text = path.read_text(encoding="utf-8")
    cfg = parse_config(text, source=str(path), overrides=overrides)
    cfg["_file"] = str(path)
    # the text the run followed: the file's, with the overrides written in
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    cfg["_text"] = with_values(text, list(items), note="overridden for this run")
    cfg["_builtin"] = builtin
    return cfg
