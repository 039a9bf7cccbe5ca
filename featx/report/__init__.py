"""Reports: the folder a comparison run leaves (``report.md``, ``report.json``, PNG plots).

:mod:`~featx.report.writer` writes it; :mod:`~featx.report.details` computes the per-class
metrics and library versions, and :mod:`~featx.report.plots` draws the pictures (matplotlib,
``featx[plots]``, imported when a plot is drawn). The few-shot curve a report draws is computed by
:func:`featx.evaluate.few_shot_curve` (re-exported here, as is its module under its old name
``featx.report.few_shot``).
"""

from featx.evaluate import (
    few_shot,  # noqa: F401 (the module's old home: featx.report.few_shot)
    few_shot_curve,
)
from featx.report.details import library_versions, per_class_metrics
from featx.report.plots import (
    PLOTS_EXTRA,
    PlotsSkippedWarning,
    augment_images,
    cost_rows,
    plot_augmentation,
    plot_comparison,
    plot_confusion,
    plot_cost,
    plot_few_shot,
    plot_learning_curves,
    plot_misclassified,
    plots_available,
    worst_confusions,
)
from featx.report.writer import (
    PLOTS,
    Report,
    check_report_folder,
    rows_to_markdown,
    write_report,
)

__all__ = [
    "PLOTS", "PLOTS_EXTRA", "PlotsSkippedWarning", "Report", "augment_images",
    "check_report_folder", "cost_rows",
    "few_shot_curve", "library_versions", "per_class_metrics", "plot_augmentation",
    "plot_comparison", "plot_confusion", "plot_cost", "plot_few_shot", "plot_learning_curves",
    "plot_misclassified", "plots_available", "rows_to_markdown", "worst_confusions",
    "write_report",
]
