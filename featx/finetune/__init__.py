"""Fine-tuning: the whole Keras network trained as a scikit-learn classifier.

:class:`FineTunedClassifier` (:mod:`~featx.finetune.estimator`) trains in phases given by an
unfreeze strategy, a row of :data:`STRATEGIES` (:mod:`~featx.finetune.strategies`), warm-started
from the linear probe on cached features; :mod:`~featx.finetune.augment` holds the augmentation
table, :mod:`~featx.finetune.data` the image batches, :mod:`~featx.finetune.train` the model,
schedules and precision, :mod:`~featx.finetune.optim` the optimizer,
:mod:`~featx.finetune.persist` the Keras half of ``featx.save``.

The tables (:data:`STRATEGIES`, :data:`AUGMENTATIONS`) import no Keras, so a pipeline is validated
against them without starting TensorFlow; :class:`FineTunedClassifier` imports Keras on first use
(through :func:`featx.utils.progress.quiet_tensorflow`, as :mod:`featx.backbones` does).
"""

from typing import TYPE_CHECKING

from featx.finetune.augment import AUGMENTATIONS, DEFAULT_AUGMENT, resolve_augment
from featx.finetune.strategies import STRATEGIES
from featx.utils.lazy import lazy_names

# name -> the module that defines it; importing any of them imports Keras
_KERAS_PARTS = {"FineTunedClassifier": "estimator"}

__all__ = ["AUGMENTATIONS", "DEFAULT_AUGMENT", "STRATEGIES", "FineTunedClassifier",
           "resolve_augment"]

__getattr__, __dir__ = lazy_names(__name__, _KERAS_PARTS, __all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from featx.finetune.estimator import FineTunedClassifier
