"""Per-feature preprocessing a head may put before its scaler: :class:`SignedPower`.

The signed power ``sign(x) * |x| ** power`` is the "power normalisation" of Fisher-vector and
bilinear-pooling features: with ``power=0.5`` (a signed square root) it shrinks the few large
activations of pooled CNN features towards the many small ones, so a linear head on standardised
features is less dominated by them. ``make_head(..., power=0.5)`` puts it first in the pipeline
(step ``power``).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.utils.params import Constraint, Interval, validate_params

__all__ = ["POWER", "SignedPower"]

#: What ``power`` accepts (``SignedPower(power=...)``; ``make_head(power=...)`` also takes None).
POWER = Interval(float, 0, math.inf, low_open=True, high_open=True)


class SignedPower(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """``sign(X) * |X| ** power``, element-wise: the signed power normalisation of features.

    Stateless: ``fit`` checks ``X`` and ``power`` and learns nothing else. The sign is kept, so
    negative features (whitened or centred ones) keep their side of zero; ``power=1`` is the
    identity, ``power < 1`` compresses large magnitudes. float32 input stays float32 (other input
    becomes float64).

    Parameters
    ----------
    power : float, default=0.5
        The exponent, a finite number > 0 (0.5: the signed square root).

    Attributes
    ----------
    n_features_in_ : int
        Features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when ``X`` had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from featx.heads import SignedPower
    >>> SignedPower().fit_transform(np.array([[4.0, -9.0, 0.0]]))
    array([[ 2., -3.,  0.]])
    >>> SignedPower(power=2).fit_transform(np.array([[-3.0]], np.float32)).dtype
    dtype('float32')
    >>> SignedPower(power=0).fit(np.ones((2, 2)))
    Traceback (most recent call last):
    ...
    ValueError: power must be a number > 0 and < inf, got 0 of type int
    """

    _parameter_constraints: dict[str, Constraint] = {"power": POWER}

    def __init__(self, power: float = 0.5):
        self.power = power

    def fit(self, X, y=None):
        """Check ``power`` and ``X`` (a 2-D array of finite numbers); nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        validate_params(self._parameter_constraints, self.get_params(deep=False))
        validate_data(self, X, dtype=[np.float64, np.float32])
        return self

    def transform(self, X):
        """``sign(X) * |X| ** power``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            float32 for float32 input, float64 otherwise.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        power = validate_params(self._parameter_constraints, self.get_params(deep=False))["power"]
        out = np.abs(X)
        out **= X.dtype.type(power)
        return np.copysign(out, X, out=out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
