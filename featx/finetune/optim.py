"""The fine-tuning optimizer: :class:`DiscriminativeAdam`, Adam with a learning-rate factor per
variable (discriminative learning rates, built by :mod:`featx.finetune.strategies`).

Kept apart from the strategy table so that the table (which pipeline validation reads) imports no
Keras. Registered with ``keras.saving`` as ``featx>DiscriminativeAdam``.
"""

from __future__ import annotations

import keras

__all__ = ["DiscriminativeAdam"]


@keras.saving.register_keras_serializable(package="featx")
class DiscriminativeAdam(keras.optimizers.Adam):
    """Adam with a fixed learning-rate factor per variable (keyed by ``variable.path``).

    Scaling gradients would not do this for Adam (its step is invariant to gradient scale), so the
    factor multiplies the learning rate inside ``update_step``, which every backend calls once per
    variable.
    """

    def __init__(self, learning_rate=1e-3, lr_multipliers=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})

    def build(self, var_list):
        super().build(var_list)
        self._factors = [float(self.lr_multipliers.get(v.path, 1.0)) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}
