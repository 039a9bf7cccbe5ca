"""Parameter constraints as data: what each public parameter accepts, declared once.

scikit-learn declares its estimators' parameters in ``_parameter_constraints`` and validates them
at the public entry; featx does the same with a small, public vocabulary of constraints:

- :class:`Interval`: a number in a range (``batch_size``: an int >= 1 or None);
- :class:`Options`: one of a fixed set, or of a table's names (``pooling``, ``head``, ``view``);
- :class:`Flag`: a bool;
- :class:`Rule`: a stage's own check function (``weights``, ``input_size``, ``layers``).

A table of them (``{"batch_size": Interval(int, 1, none=True), ...}``) is shared by every API that
takes the parameter: :func:`featx.extract_features`, the estimators and the pipeline schema read
the same rows (:data:`featx.extract.config.EXTRACTOR_PARAMS`, ...). :func:`validate_params`
checks the values of a call against it, once, at the public entry, with the one message shape of
:mod:`featx.utils.checks`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from featx.utils.checks import check_choice, type_name

__all__ = ["Constraint", "Flag", "Interval", "Options", "Rule", "validate_params"]


class Constraint:
    """What one parameter accepts: ``check(name, value)`` returns the value (normalised) or
    raises; ``describe()`` says what is allowed (docs, help, the pipeline schema)."""

    def check(self, name: str, value: Any) -> Any:  # pragma: no cover - every row overrides it
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - every row overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of ``kind`` (``int`` or ``float``) in ``[low, high]`` (``None``: unbounded;
    ``high_open``: ``[low, high)``, ``low_open``: ``(low, high]``).

    Examples
    --------
    >>> Interval(int, 1, none=True).check("batch_size", 8)
    8
    >>> Interval(int, 1).check("batch_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an int >= 1, got 0 of type int
    >>> Interval(float, 0, low_open=True).check("power", 0)
    Traceback (most recent call last):
    ...
    ValueError: power must be a number > 0, got 0 of type int
    """

    kind: type = int
    low: float | None = None
    high: float | None = None
    none: bool = False
    high_open: bool = False  # ``value < high`` rather than ``<=``
    low_open: bool = False  # ``value > low`` rather than ``>=``

    def describe(self) -> str:
        what = "an int" if self.kind is int else "a number"
        bounds = [f"{'>' if self.low_open else '>='} {self.low}" if self.low is not None else "",
                  f"{'<' if self.high_open else '<='} {self.high}" if self.high is not None
                  else ""]
        text = " and ".join(b for b in bounds if b)
        text = f"{what} {text}" if text else what
        return f"None or {text}" if self.none else text

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.none:
            return None
        base = numbers.Integral if self.kind is int else numbers.Real
        ok = (isinstance(value, base) and not isinstance(value, bool)
              and (self.low is None or value > self.low
                   or not self.low_open and value == self.low)
              and (self.high is None or value < self.high
                   or not self.high_open and value == self.high))
        if not ok:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r} of type "
                             f"{type_name(value)}")
        return int(value) if self.kind is int else float(value)


@dataclass(frozen=True)
class Options(Constraint):
    """One of ``values``: a tuple, or a callable returning the names of a table (read when a
    value is checked, so a table is imported only then).

    Examples
    --------
    >>> Options(("avg", "max")).check("pooling", "mox")
    Traceback (most recent call last):
    ...
    ValueError: pooling must be one of ['avg', 'max'], got 'mox' (did you mean 'max'?)
    """

    values: tuple | Callable[[], Iterable] = ()

    def choices(self) -> list:
        return list(self.values() if callable(self.values) else self.values)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.choices())

    def check(self, name: str, value: Any) -> Any:
        return check_choice(name, value, self.choices())


@dataclass(frozen=True)
class Flag(Constraint):
    """A bool (a NumPy bool too; not 0 or 1)."""

    def describe(self) -> str:
        return "a bool"

    def check(self, name: str, value: Any) -> bool:
        numpy_bool = getattr(getattr(value, "dtype", None), "kind", "") == "b" \
            and getattr(value, "ndim", 1) == 0  # NumPy is not imported: the start stays light
        if not isinstance(value, bool) and not numpy_bool:
            raise TypeError(f"{name} must be a bool, got {value!r} of type {type_name(value)}")
        return bool(value)


@dataclass(frozen=True)
class Rule(Constraint):
    """A stage's own check: ``fn(name, value)`` returns the value or raises; ``what`` says what
    it accepts."""

    fn: Callable[[str, Any], Any]
    what: str

    def describe(self) -> str:
        return self.what

    def check(self, name: str, value: Any) -> Any:
        return self.fn(name, value)


def validate_params(constraints: Mapping[str, Constraint], values: Mapping[str, Any]) -> dict:
    """Every value of ``values`` with a row in ``constraints``, checked (in the table's order)
    and normalised; the first mistake raises, naming its parameter.

    Examples
    --------
    >>> rows = {"n": Interval(int, 1), "how": Options(("a", "b"))}
    >>> validate_params(rows, {"n": 3, "how": "a", "other": object}) == {"n": 3, "how": "a"}
    True
    """
    return {name: rule.check(name, values[name]) for name, rule in constraints.items()
            if name in values}
