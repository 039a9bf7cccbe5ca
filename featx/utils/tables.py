"""Table cells and tables: one way to turn a row value into text, for every table featx prints or
writes (the comparison table, the report, the command's listings, the generated docs)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_cell", "markdown_table", "text_table"]


def format_cell(value: Any, digits: int = 4, *, missing: str = "", code: bool = False) -> str:
    """One table cell as text.

    Parameters
    ----------
    value : object
        ``None`` and NaN are ``missing``; booleans ``yes``/``no``; floats get ``digits``
        decimals below 10 and one decimal from 10 up (seconds, losses); a pair of integers is
        ``HxW`` (an input size) and other sequences are comma-separated cells; a mapping is
        ``key=repr(value)`` pairs, keys shortened to their last ``__`` part (``clf__C`` -> ``C``);
        anything else is ``str(value)``.
    digits : int, default=4
        Decimals of a float below 10.
    missing : str, default=""
        The text of ``None`` and NaN.
    code : bool, default=False
        Wrap strings in backticks (Markdown code), as the generated docs do.

    Returns
    -------
    str

    Examples
    --------
    >>> from featx.utils.tables import format_cell
    >>> format_cell(0.81234), format_cell(0.81234, 3), format_cell(277.31), format_cell(None)
    ('0.8123', '0.812', '277.3', '')
    >>> format_cell(float("nan"), missing="n/a"), format_cell(True), format_cell((224, 224))
    ('n/a', 'yes', '224x224')
    >>> format_cell({"clf__C": 1.0, "kernel": "rbf"}), format_cell(["warm_start", "blocks"])
    ("C=1.0, kernel='rbf'", 'warm_start, blocks')
    >>> format_cell("avg", code=True), format_cell(1280, code=True)
    ('`avg`', '1280')
    """
    if value is None:
        return missing
    if _is_bool(value):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if math.isnan(value):
            return missing
        return f"{value:.{digits if abs(value) < 10 else min(digits, 1)}f}"
    if isinstance(value, str):
        return f"`{value}`" if code else value
    if isinstance(value, Mapping):
        return ", ".join(f"{str(k).split('__')[-1]}={v!r}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(isinstance(x, numbers.Integral) and not _is_bool(x)
                                   for x in value):
            return "x".join(str(int(x)) for x in value)
        return ", ".join(format_cell(x, digits, missing=missing, code=code) for x in value)
    return str(value)


def _is_bool(value) -> bool:
    """A Python or NumPy boolean (NumPy is not imported: the command's start stays light)."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"


def _cells(rows: Sequence[Mapping], columns: Sequence[str], cell: Mapping) -> list[list[str]]:
    """Every row's cells; a key the row lacks is an empty cell."""
    return [[format_cell(r[c], **cell) if c in r else "" for c in columns] for r in rows]


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str], *,
                   headers: Sequence[str] | None = None, **cell) -> str:
    """A GitHub-Markdown table of dict rows, cells by :func:`format_cell`.

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str
        The keys shown, in order; a key a row lacks is an empty cell.
    headers : sequence of str, optional
        Header texts (default: ``columns``).
    **cell
        :func:`format_cell` options (``digits``, ``missing``, ``code``).

    Returns
    -------
    str
        The lines, without a final newline.

    Examples
    --------
    >>> from featx.utils.tables import markdown_table
    >>> print(markdown_table([{"name": "a", "accuracy": 0.5}, {"name": "b", "accuracy": None}],
    ...                      ["name", "accuracy"], digits=3, missing="n/a"))
    | name | accuracy |
    |---|---|
    | a | 0.500 |
    | b | n/a |
    """
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(rows, columns, cell)]
    return "\n".join(lines)


def text_table(rows: Sequence[Mapping], columns: Sequence[str], *,
               headers: Sequence[str] | None = None, **cell) -> str:
    """A plain-text table of dict rows: left-aligned columns two spaces apart, cells by
    :func:`format_cell`.

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str
        The keys shown, in order; a key a row lacks is an empty cell.
    headers : sequence of str, optional
        Header texts (default: ``columns``).
    **cell
        :func:`format_cell` options (``digits``, ``missing``, ``code``).

    Returns
    -------
    str
        The lines (trailing spaces stripped), without a final newline.

    Examples
    --------
    >>> from featx.utils.tables import text_table
    >>> rows = [{"name": "resnet50", "input_size": (224, 224), "offline": False}]
    >>> print(text_table(rows, ["name", "input_size", "offline"],
    ...                  headers=["name", "input size", "offline"]))
    name      input size  offline
    resnet50  224x224     no
    """
    headers = list(headers or columns)
    body = _cells(rows, columns, cell)
    widths = [max([len(h), *(len(cells[i]) for cells in body)]) for i, h in enumerate(headers)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
                     for cells in [headers, *body])
