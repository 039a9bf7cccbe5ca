"""The heads' names, readable without scikit-learn.

The command line checks ``--head`` and ``--heads`` (and a pipeline its ``heads.names``) before it
imports anything heavy, so that a typo is answered at once; the table (:mod:`featx.heads.table`)
holds the rows themselves, and ``tests/test_heads.py`` fails when the two disagree.
"""

from __future__ import annotations

from featx.utils.checks import close_matches

__all__ = ["DEFAULT_HEAD_NAMES", "HEAD_NAMES", "check_head_name"]

#: Every row of the heads table, in table order (``featx.heads.list_heads()``).
HEAD_NAMES: tuple[str, ...] = ("logreg", "linear_svm", "svm", "rf", "mlp", "knn", "soft_vote",
                               "stack")
#: The rows a comparison fits by default (``featx.heads.list_heads(default_only=True)``).
DEFAULT_HEAD_NAMES: tuple[str, ...] = ("logreg", "linear_svm", "svm", "rf", "mlp", "knn")


def check_head_name(name: object) -> str:
    """``name`` when it names a head, else the table's own ``ValueError`` message.

    Examples
    --------
    >>> check_head_name("svm")
    'svm'
    >>> check_head_name("svmm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: head must be one of [...], got 'svmm' (did you mean 'svm'?)
    """
    if name in HEAD_NAMES:
        return str(name)
    hint = close_matches(name, list(HEAD_NAMES))
    raise ValueError(f"head must be one of {list(HEAD_NAMES)}, got {name!r}{hint}")
