"""Fine-tuning: the whole Keras network trained as a scikit-learn classifier.

:class:`FineTunedClassifier` (:mod:`~featx.finetune.estimator`) trains in phases given by an
unfreeze strategy, a row of :data:`STRATEGIES` (:mod:`~featx.finetune.strategies`), warm-started
from the linear probe on cached features; :mod:`~featx.finetune.augment` holds the augmentation
table, :mod:`~featx.finetune.data` the image batches, :mod:`~featx.finetune.train` the model,
schedules and precision, :mod:`~featx.finetune.persist` the Keras half of ``featx.save``.
"""

from featx.finetune.augment import AUGMENTATIONS, DEFAULT_AUGMENT, resolve_augment
from featx.finetune.estimator import FineTunedClassifier
from featx.finetune.strategies import STRATEGIES

__all__ = ["AUGMENTATIONS", "DEFAULT_AUGMENT", "STRATEGIES", "FineTunedClassifier",
           "resolve_augment"]
