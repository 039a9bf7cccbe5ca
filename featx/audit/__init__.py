"""Know your data: duplicates, leaks, label errors and outliers, found on the cached features.

:func:`inspect` (``featx.inspect``, ``featx inspect DATA``) reads one cached feature row per image
and runs no backbone on the data itself: exact duplicates by content id, near-duplicates and
train/test leaks by nearest neighbours (:mod:`~featx.audit.neighbours`) with a threshold
calibrated on re-encodes of the user's own images (:mod:`~featx.audit.calibrate`), likely label
errors from out-of-fold probabilities and a confident-learning score (:mod:`~featx.audit.labels`),
outliers by k-nearest-neighbour distance, the images the data set skipped, and class health.
:mod:`~featx.audit.write` writes ``findings.csv``, ``scores.csv`` and ``report.md`` with
galleries; the user's files are only read. See ``docs/inspect.md``.
"""

from featx.audit.api import CLEAN_DROP, MIN_PER_CLASS, Inspection, inspect
from featx.audit.calibrate import RECIPES, Calibration, calibrate, reencode, threshold_from
from featx.audit.findings import COLUMNS, KINDS, Findings
from featx.audit.labels import label_scores, out_of_fold_proba
from featx.audit.neighbours import nearest, unit_rows
from featx.audit.write import FILES, summary_markdown, write_inspection

__all__ = ["CLEAN_DROP", "COLUMNS", "FILES", "KINDS", "MIN_PER_CLASS", "RECIPES", "Calibration",
           "Findings", "Inspection", "calibrate", "inspect", "label_scores", "nearest",
           "out_of_fold_proba", "reencode", "summary_markdown", "threshold_from", "unit_rows",
           "write_inspection"]
