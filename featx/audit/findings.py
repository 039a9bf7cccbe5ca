"""The findings table: one row per finding, as ``findings.csv`` holds it."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ["COLUMNS", "KINDS", "Findings", "csv_text"]

#: What a finding can be, and what it means.
KINDS: dict[str, str] = {
    "exact_duplicate": "the same file content as another image (same content id)",
    "near_duplicate": "a re-encoded, resized or lightly cropped copy of another image of the "
                      "same split",
    "leak": "a validation or test image with a training twin (exact or near copy): its score "
            "measures memory, not generalisation",
    "label_error": "the given label is likely wrong: a head that never saw the image "
                   "confidently predicts another class",
    "outlier": "far from every training image (k-nearest-neighbour distance)",
    "skipped": "unreadable or odd: left out of the data set, with the reason",
}

#: The columns of ``findings.csv``, in order.
COLUMNS = ("path", "kind", "score", "other_path", "given_label", "suggested_label", "split",
           "other_split", "reason")


def csv_text(rows: Iterable[Mapping], columns: Iterable[str]) -> str:
    """CSV text (LF line endings) of dict ``rows`` with ``columns``; a missing key is empty.

    Examples
    --------
    >>> print(csv_text([{"path": "a.jpg", "score": 0.5}], ["path", "kind", "score"]), end="")
    path,kind,score
    a.jpg,,0.5
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else round(v, 6) if isinstance(v, float) else v)
                         for k, v in row.items()})
    return buf.getvalue()


class Findings(list):
    """A list of finding rows (dicts with :data:`COLUMNS`), most certain first within a kind.

    Examples
    --------
    >>> f = Findings([{"path": "a.jpg", "kind": "leak", "score": 0.99, "other_path": "b.jpg"}])
    >>> f.counts(), len(f.of_kind("leak"))
    ({'leak': 1}, 1)
    """

    def of_kind(self, kind: str) -> Findings:
        """The rows of ``kind`` (a key of :data:`KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        return Findings(r for r in self if r["kind"] == kind)

    def counts(self) -> dict[str, int]:
        """Findings per kind, in :data:`KINDS` order (kinds with none left out)."""
        c = Counter(r["kind"] for r in self)
        return {k: c[k] for k in KINDS if c[k]}

    def paths(self, kind: str) -> set[str]:
        """The paths flagged as ``kind``."""
        return {r["path"] for r in self.of_kind(kind)}

    def to_csv(self) -> str:
        """The rows as ``findings.csv`` holds them (:data:`COLUMNS`)."""
        return csv_text(self, COLUMNS)
