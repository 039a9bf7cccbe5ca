"""The report's plots by name, readable without numpy or matplotlib (a pipeline's
``report.plots`` is checked against them before anything heavy loads)."""

from __future__ import annotations

__all__ = ["PLOTS"]

#: Plot name -> (file name, what it shows). ``[report] plots`` takes these names.
PLOTS: dict[str, tuple[str, str]] = {
    "comparison": ("comparison.png", "test accuracy of every model"),
    "confusion": ("confusion.png", "confusion matrix of the best model on the test split"),
    "learning_curves": ("learning_curves.png", "fine-tuning loss and accuracy per epoch"),
    "few_shot": ("few_shot.png", "accuracy vs training examples per class (frozen heads)"),
    "augmentation": ("augmentation.png", "training images and augmented variants"),
    "misclassified": ("misclassified.png",
                      "misclassified test images of the best model, most frequent confusions "
                      "first"),
    "cost": ("cost.png", "cross-validated score against forward cost per image of every "
                         "feature candidate, the choice starred (a feature choice only)"),
}
