"""The one label check: every source (a CSV row, a TFRecord feature, a Parquet cell, a WebDataset
``.cls`` member, an in-memory list) refuses the same missing labels, with the same words."""

from __future__ import annotations

from typing import Any

from featx.data.files import display_path

__all__ = ["MISSING_LABELS", "is_missing_label", "label_problem", "stored_label"]

#: Label values read as "no label": the spellings pandas reads as missing by default (a CSV
#: written from a DataFrame with a missing label holds one of them), and blank.
MISSING_LABELS = frozenset({"", "nan", "NaN", "NAN", "-nan", "-NaN", "NA", "N/A", "n/a", "#N/A",
                            "#NA", "<NA>", "NULL", "null", "None"})


def is_missing_label(label: Any) -> bool:
    """``None``, NaN (float, ``pd.NA``, ``NaT``) or a blank string.

    Examples
    --------
    >>> [is_missing_label(y) for y in (None, float("nan"), " ", "cat", 0)]
    [True, True, True, False, False]
    """
    if label is None:
        return True
    if isinstance(label, str):
        return not label.strip()
    try:
        return bool(label != label)
    except (TypeError, ValueError):  # pd.NA: its comparisons are NA, which has no truth value
        return True


def label_problem(label: Any) -> str | None:
    """Why a stored label cannot name a class (``None`` when it can).

    Missing (``None``, NaN, blank or whitespace), a spelling of a missing value
    (:data:`MISSING_LABELS`: ``"nan"``, ``"None"``, ``"NA"``, ...), or text that is not UTF-8.
    Text is judged without its surrounding whitespace (``"cat "`` is ``"cat"``).

    Examples
    --------
    >>> label_problem("cat"), label_problem(3)
    (None, None)
    >>> label_problem(""), label_problem(None), label_problem(float("nan"))
    ('empty label', 'no label (None)', 'no label (NaN)')
    >>> label_problem(b" nan\\n")
    "label 'nan' reads as a missing value"
    """
    if isinstance(label, bytes | bytearray):
        try:
            label = bytes(label).decode("utf-8")
        except UnicodeDecodeError:
            return f"label {bytes(label)[:40]!r} is not UTF-8 text"
    if isinstance(label, str):
        label = label.strip()
        if label in MISSING_LABELS:
            return "empty label" if not label else f"label {label!r} reads as a missing value"
        try:
            label.encode("utf-8")
        except UnicodeEncodeError:
            return f"label '{display_path(label)}' is not UTF-8 text (save the file as UTF-8)"
        return None
    if is_missing_label(label):
        return "no label (None)" if label is None else "no label (NaN)"
    return None


def stored_label(label: Any) -> Any:
    """A label that passed :func:`label_problem` as featx keeps it: text (``str`` or UTF-8
    ``bytes``) without its surrounding whitespace, integers (numpy's too) as ``int``, anything
    else as it is.

    Examples
    --------
    >>> import numpy as np
    >>> stored_label(b"cat\\n"), stored_label(np.int64(2)), stored_label(" dog ")
    ('cat', 2, 'dog')
    """
    if isinstance(label, bytes | bytearray):
        label = bytes(label).decode("utf-8")
    if isinstance(label, str):
        return label.strip()
    if hasattr(label, "__index__") and not isinstance(label, bool):
        return int(label)
    return label
