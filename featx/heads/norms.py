"""Feature normalisations as head options: the table :data:`FEATURE_NORMS`.

Each row names a set of :func:`~featx.heads.make_head` options that change how the features are
transformed before the head's classifier (``power``, ``normalize``, ``pca`` + ``whiten``), on top
of the head's own preprocessing (``StandardScaler`` for most rows, L2 for ``knn``). A selection
tries rows by name and passes :func:`norm_options` to every head (``make_head(name,
**norm_options(norm))``, ``evaluate_heads(..., head_options=norm_options(norm))``).
Readable without scikit-learn, like the heads' names (:mod:`featx.heads.names`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from featx.utils.checks import check_choice
from featx.utils.registry import Registry
from featx.utils.tables import format_cell

__all__ = ["FEATURE_NORMS", "FeatureNorm", "check_norm", "describe_norms", "norm_options"]


@dataclass(frozen=True)
class FeatureNorm:
    """One row of :data:`FEATURE_NORMS`.

    Parameters
    ----------
    options : mapping of str to object
        Keyword arguments of :func:`~featx.heads.make_head` (empty: the head as its row
        builds it).
    description : str
        One line for users: what the features go through.
    """

    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


#: Feature normalisations by name: ``make_head`` options and what they do. Which one helps
#: depends on the data (``docs/heads.md`` has measurements): a selection's CV decides.
FEATURE_NORMS: Registry[FeatureNorm] = Registry("norm", {
    "none": FeatureNorm({}, "the head's own preprocessing (StandardScaler for logreg, L2 for "
                            "knn)"),
    "l2": FeatureNorm({"normalize": True}, "each image's feature vector scaled to unit L2 "
                                           "norm, then the head's own preprocessing"),
    "sqrt": FeatureNorm({"power": 0.5}, "signed square root of each feature, "
                                        "sign(x) * abs(x) ** 0.5 (power normalisation), then the "
                                        "head's own preprocessing"),
    "sqrt_l2": FeatureNorm({"power": 0.5, "normalize": True},
                           "signed square root, then unit L2 norm per image, then the head's "
                           "own preprocessing"),
    "whiten": FeatureNorm({"pca": 256, "whiten": True},
                          "the head's own preprocessing, then PCA to 256 components scaled to "
                          "unit variance (needs 256 training images and features)"),
})


def check_norm(name: Any) -> str:
    """``name`` when it names a row of :data:`FEATURE_NORMS`; else a ``ValueError`` listing them.

    Examples
    --------
    >>> from featx.heads import check_norm
    >>> check_norm("sqrt")
    'sqrt'
    >>> check_norm("sqrtl2")
    Traceback (most recent call last):
    ...
    ValueError: norm must be one of ['none', 'l2', 'sqrt', 'sqrt_l2', 'whiten'], got 'sqrtl2' \
(did you mean 'sqrt_l2' or 'sqrt'?)
    """
    return check_choice("norm", name, list(FEATURE_NORMS))


def norm_options(name: str) -> dict[str, Any]:
    """The :func:`~featx.heads.make_head` keyword arguments of normalisation ``name`` (a new
    dict each call).

    Raises
    ------
    ValueError
        If ``name`` is not a row of :data:`FEATURE_NORMS` (the message lists them).

    Examples
    --------
    >>> from featx.heads import make_head, norm_options
    >>> norm_options("sqrt_l2")
    {'power': 0.5, 'normalize': True}
    >>> [step for step, _ in make_head("logreg", **norm_options("sqrt_l2")).steps]
    ['power', 'normalize', 'scale', 'clf']
    """
    return dict(FEATURE_NORMS[check_norm(name)].options)


def describe_norms() -> str:
    """:data:`FEATURE_NORMS` as Markdown (the table in ``docs/heads.md``).

    Examples
    --------
    >>> from featx.heads import describe_norms
    >>> print(describe_norms().splitlines()[2])
    | `none` | `{}` | the head's own preprocessing (StandardScaler for logreg, L2 for knn) |
    """
    lines = ["| norm | make_head options | what the features go through |", "|---|---|---|"]
    for name, row in FEATURE_NORMS.items():
        options = format_cell(dict(row.options)) if row.options else "{}"
        lines.append(f"| `{name}` | `{options}` | {row.description} |")
    return "\n".join(lines) + "\n"
