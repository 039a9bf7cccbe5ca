"""One table type for every table featx keeps: :class:`Registry`.

Backbones, heads, views, runtimes, engines, export formats, decoders, poolings, readers, data
formats and fine-tune strategies are each a :class:`Registry` of rows: a name and a value (a
frozen dataclass row, or the function that does the job). Every table answers the same way:
``get(name)`` with one unknown-name message and close-match hint, ``names(pattern,
default_only=...)`` for listings and the command's choices, and ``markdown(columns)`` for the
docs. Adding a backbone, a head or a view is adding a row (``register``), as in timm's and
keras.applications' tables.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from featx.utils.checks import close_matches
from featx.utils.tables import markdown_table

__all__ = ["Registry"]

T = TypeVar("T")

_MISSING = object()
_LISTED = 12  # an unknown-name message lists the names of a table up to this size


class Registry(Mapping[str, T], Generic[T]):
    """A read-mostly table of named rows, in registration order.

    Parameters
    ----------
    kind : str
        What a row is, for messages and docs (``"backbone"``, ``"head"``, ``"view"``).
    rows : mapping of str to row, optional
        The rows, in order.
    param : str, optional
        The parameter users pass a name to (default ``kind``): messages name it.
    listing : str, optional
        Where users see every name, said when the table is too long to list in a message
        (``"featx backbones (or featx.list_backbones())"``).
    default : callable, optional
        ``row -> bool``: whether a row is in the default selection (``names(default_only=True)``);
        default: every row.

    Examples
    --------
    >>> from featx.utils.registry import Registry
    >>> colours = Registry("colour", {"red": (255, 0, 0), "green": (0, 255, 0)})
    >>> colours.get("red"), colours.names("g*")
    ((255, 0, 0), ['green'])
    >>> colours.get("rde")
    Traceback (most recent call last):
    ...
    ValueError: colour must be one of ['red', 'green'], got 'rde' (did you mean 'red'?)
    """

    def __init__(self, kind: str, rows: Mapping[str, T] | None = None, *,
                 param: str | None = None, listing: str = "",
                 default: Callable[[T], bool] | None = None) -> None:
        self.kind = kind
        self.param = param or kind
        self.listing = listing
        self._default = default
        self._rows: dict[Any, T] = {}
        for name, row in (rows or {}).items():
            self.register(name, row)

    # -- the mapping ---------------------------------------------------------------------------
    def __getitem__(self, name: Any) -> T:
        return self._rows[name]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._rows
        except TypeError:  # an unhashable name is simply not a row
            return False

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._rows)})"

    # -- the one way to look a name up ---------------------------------------------------------
    def register(self, name: Any, row: T, *, replace: bool = False) -> T:
        """Add a row (a plugin's backbone, head or view); an existing name needs
        ``replace=True``. Returns ``row``."""
        if not replace and name in self._rows:
            raise ValueError(f"{self.kind} {name!r} is registered already; pass replace=True "
                             "to replace it")
        self._rows[name] = row
        return row

    def get(self, name: Any, default: Any = _MISSING) -> T:
        """The row named ``name``; an unknown name raises :class:`ValueError` (naming the
        parameter, echoing the value, listing the names or saying where they are listed, and
        suggesting close matches), unless a ``default`` is given, which is returned then."""
        if name in self:
            return self._rows[name]
        if default is not _MISSING:
            return default
        raise ValueError(self.unknown(name))

    def check(self, name: Any) -> Any:
        """``name`` when it is a row's name, else the :meth:`get` error."""
        self.get(name)
        return name

    def unknown(self, name: Any) -> str:
        """The message for a name that is not a row's."""
        names = list(self._rows)
        hint = close_matches(name, [n for n in names if isinstance(n, str)])
        if len(names) <= _LISTED or not self.listing:
            return f"{self.param} must be one of {names}, got {name!r}{hint}"
        return (f"{self.param} must be one of the {len(names)} {self.kind} names that "
                f"{self.listing} lists, got {name!r}{hint}")

    def names(self, pattern: str = "*", *, default_only: bool = False) -> list:
        """The names matching ``pattern``, in table order.

        ``pattern`` is a shell-style glob (``"efficientnet_lite*"``) or, without any of
        ``*?[``, a word matched anywhere in the name (``"resnet"``); both ignore case.
        ``default_only`` keeps the rows of the default selection.
        """
        pattern = str(pattern).lower()
        glob = any(c in pattern for c in "*?[")
        out = []
        for name, row in self._rows.items():
            if default_only and self._default is not None and not self._default(row):
                continue
            text = str(name).lower()
            if fnmatch.fnmatchcase(text, pattern) if glob else pattern in text:
                out.append(name)
        return out

    def markdown(self, columns: Mapping[str, Callable[[str, T], Any]], **cell) -> str:
        """A Markdown table of the rows: one column per ``header -> fn(name, row)``.

        Examples
        --------
        >>> table = Registry("colour", {"red": (255, 0, 0)})
        >>> print(table.markdown({"name": lambda n, r: n, "red": lambda n, r: r[0]}))
        | name | red |
        |---|---|
        | red | 255 |
        """
        rows = [{h: fn(name, row) for h, fn in columns.items()}
                for name, row in self._rows.items()]
        return markdown_table(rows, list(columns), **cell)
