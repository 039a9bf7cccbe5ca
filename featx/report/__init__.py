"""Reports: the folder a comparison run leaves (``report.md``, ``report.json``, PNG plots).

:mod:`~featx.report.writer` writes it; :mod:`~featx.report.details` computes the per-class
metrics and library versions, and :mod:`~featx.report.plots` draws the pictures (matplotlib,
``featx[plots]``, imported when a plot is drawn). The few-shot curve a report draws is computed by
:func:`featx.evaluate.few_shot_curve` (re-exported here, as is its module under its old name
``featx.report.few_shot``).
"""

import importlib

# A pipeline checks report.plots against PLOTS (featx.report.catalog) before any heavy import;
# the rest loads on first use (PEP 562).
_EXPORTS = {
    "few_shot": ("featx.evaluate", "few_shot"),  # the module's old home: featx.report.few_shot
    "few_shot_curve": ("featx.evaluate", "few_shot_curve"),
    "library_versions": ("featx.report.details", None), "per_class_metrics":
    ("featx.report.details", None), "PLOTS_EXTRA": ("featx.report.plots", None),
    "PlotsSkippedWarning": ("featx.report.plots", None),
    "augment_images": ("featx.report.plots", None), "cost_rows": ("featx.report.plots", None),
    "plot_augmentation": ("featx.report.plots", None),
    "plot_comparison": ("featx.report.plots", None), "plot_confusion": ("featx.report.plots", None),
    "plot_cost": ("featx.report.plots", None), "plot_few_shot": ("featx.report.plots", None),
    "plot_learning_curves": ("featx.report.plots", None),
    "plot_misclassified": ("featx.report.plots", None),
    "plots_available": ("featx.report.plots", None),
    "worst_confusions": ("featx.report.plots", None), "PLOTS": ("featx.report.catalog", None),
    "Report": ("featx.report.writer", None), "check_report_folder": ("featx.report.writer", None),
    "rows_to_markdown": ("featx.report.writer", None),
    "write_report": ("featx.report.writer", None),
}

__all__ = [
    "PLOTS", "PLOTS_EXTRA", "PlotsSkippedWarning", "Report", "augment_images",
    "check_report_folder", "cost_rows",
    "few_shot_curve", "library_versions", "per_class_metrics", "plot_augmentation",
    "plot_comparison", "plot_confusion", "plot_cost", "plot_few_shot", "plot_learning_curves",
    "plot_misclassified", "plots_available", "rows_to_markdown", "worst_confusions",
    "write_report",
]


def __getattr__(name: str):
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'featx.report' has no attribute {name!r}")
    module, attr = where
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
