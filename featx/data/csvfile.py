"""The one CSV reader of image lists: paths made absolute, every row's label checked."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from featx.data.files import SPLIT_NAMES, display_path, missing_path_error
from featx.data.labels import MISSING_LABELS, is_missing_label, label_problem
from featx.images import is_url, read_bytes

__all__ = [
    "MISSING_LABELS", "is_missing_label", "read_csv",
]

def row_problem(fields: list[str], n_columns: int, at: dict[str, int]) -> str | None:
    """Why a CSV row cannot be used (``at``: column name -> index, for path, label, split)."""
    if len(fields) < n_columns:
        return f"a short row: {len(fields)} field(s), the header has {n_columns}"
    if any(v.strip() for v in fields[n_columns:]):
        return (f"{len(fields)} fields, the header has {n_columns} (a comma in an unquoted "
                "path or label?)")
    if not fields[at["path"]].strip():
        return "empty path"
    if problem := label_problem(fields[at["label"]].strip()):
        return problem
    if "split" in at:
        split = fields[at["split"]].strip().lower()
        if split not in SPLIT_NAMES:
            return (f"split {fields[at['split']].strip()!r} is not one of train, "
                    "validation (or val), test")
    return None


def read_csv(file: str | os.PathLike, *, path_column: str = "path", label_column: str = "label",
             root: str | os.PathLike | None = None,
             split_column: str | None = None) -> list[dict[str, str]]:
    r"""The rows of an image CSV, each a dict of its columns with ``"path"`` made absolute
    (relative entries resolve against ``root``, default the CSV's folder) and ``"label"``.

    The one CSV reader: :meth:`ImageDataset.from_csv` and the DATA argument's CSV with a
    ``split`` column (:func:`featx.sources.resolve_data`) both read through it, so both refuse
    the same rows.

    Parameters
    ----------
    file : path
        The CSV (UTF-8, with a header row).
    path_column, label_column : str
        The columns holding each image's path and class name.
    root : path, optional
        The folder relative paths start from (default: the CSV's folder).
    split_column : str, optional
        When given and the CSV has this column, each row's ``"split"`` is its value made one of
        ``"train"``, ``"validation"`` (``val`` too, any case) or ``"test"``.

    Returns
    -------
    list of dict
        One per row, in file order. Rows whose fields are all blank are passed over.

    Raises
    ------
    ValueError
        When any row cannot be used, naming the file and each such row's line number (the
        header is line 1) with why: fewer fields than the header (a short row), extra non-blank
        fields, an empty path, a label that is blank or reads as missing (:data:`MISSING_LABELS`:
        ``NaN``, ``NA``, ``None``, ``null``, ...), a label that is not UTF-8 text, or (with
        ``split_column``) a split value that is not one of the allowed ones. Such rows are
        refused rather than skipped: a missing label is a mistake in the file, and a class
        named ``'NaN'`` would be a silently wrong result. A class genuinely named like a
        missing value must be renamed. Labels lose surrounding whitespace (``"cat "`` is
        ``"cat"``). Path bytes that are not UTF-8 are kept (as :func:`os.fsdecode` keeps them),
        so such a path still names its file.
    KeyError
        When ``path_column`` or ``label_column`` is not a column.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "x.csv"), "w") as f:
    ...     _ = f.write("file,y,split\na.jpg,cat,train\nb.jpg,dog,Val\n")
    >>> rows = read_csv(os.path.join(d, "x.csv"), path_column="file", label_column="y",
    ...                 split_column="split")
    >>> rows[0]["path"] == os.path.join(d, "a.jpg"), rows[0]["label"], rows[1]["split"]
    (True, 'cat', 'validation')
    >>> with open(os.path.join(d, "bad.csv"), "w") as f:
    ...     _ = f.write("path,label\na.jpg,cat\nb.jpg,\nc.jpg,NaN\nd.jpg\n")
    >>> read_csv(os.path.join(d, "bad.csv"))
    Traceback (most recent call last):
    ...
    ValueError: file=...bad.csv': 3 row(s) cannot be used: line 3: empty label; line 4: ...
    """
    url = os.fspath(file) if is_url(os.fspath(file)) else None
    file = Path(file)
    if url is None and not file.is_file():
        raise missing_path_error("file", file)
    rows, problems = [], []
    with _open_text(url or file) as f:
        reader = csv.reader(f)
        try:
            columns = next(reader, [])
            at = {}
            for key, param, col in (("path", "path_column", path_column),
                                    ("label", "label_column", label_column)):
                if col not in columns:
                    raise KeyError(f"{param}={col!r} is not a column of "
                                   f"{display_path(file)!r}; its columns are "
                                   f"{[display_path(c) for c in columns]}")
                at[key] = columns.index(col)
            if split_column is not None and split_column in columns:
                at["split"] = columns.index(split_column)
            for fields in reader:
                if not any(v.strip() for v in fields):
                    continue
                if problem := row_problem(fields, len(columns), at):
                    problems.append((reader.line_num, problem))
                elif not problems:
                    rows.append(dict(zip(columns, fields, strict=False)))
        except csv.Error as exc:
            raise ValueError(f"file={display_path(file)!r}, line {reader.line_num}: not a "
                             f"readable CSV ({exc})") from None
    if problems:
        shown = "; ".join(f"line {n}: {why}" for n, why in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(
            f"file={display_path(file)!r}: {len(problems)} row(s) cannot be used: {shown}{more}."
            f" Every row needs a path ({path_column!r}) and a class name ({label_column!r}); "
            "fix or remove these rows")
    base = os.fspath(root) if root is not None else _folder(url) if url else file.parent
    for r in rows:
        p = r[path_column]
        label, split = r[label_column].strip(), r.get(split_column or "")
        r["path"] = p if is_url(p) else _join(base, p)
        r["label"] = label
        if "split" in at:
            r["split"] = SPLIT_NAMES[split.strip().lower()]
    return rows


def _open_text(file):
    """The CSV as text: a local file, or any fsspec URL, read by the bounded reader (at most
    ``max_item_bytes``, within ``item_timeout``, transient failures retried: an endless or
    trickling answer ends as an ``OSError`` naming the URL)."""
    if isinstance(file, str) and is_url(file):
        return io.TextIOWrapper(io.BytesIO(read_bytes(file)), newline="", encoding="utf-8-sig",
                                errors="surrogateescape")
    return open(file, newline="", encoding="utf-8-sig", errors="surrogateescape")


def _folder(url: str) -> str:
    """The folder of a file URL (a chain keeps its target: ``zip://a/x.csv::z.zip``)."""
    head, sep, tail = url.partition("::")
    return head.rsplit("/", 1)[0] + sep + tail


def _join(base, p: str) -> str:
    """``p`` made absolute: as is when absolute, else against ``base`` (a folder or URL)."""
    if os.path.isabs(p):
        return os.path.abspath(p)
    base = os.fspath(base)
    if is_url(base):
        head, sep, tail = base.partition("::")
        return f"{head.rstrip('/')}/{p}{sep}{tail}"
    return os.path.abspath(os.path.join(base, p))
