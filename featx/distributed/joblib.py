"""Model selection on Ray: scikit-learn's joblib parallelism (``GridSearchCV(n_jobs=...)``) sent to
Ray's joblib backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from featx.distributed.ray import check_engine, ensure_ray

__all__ = ["joblib_backend"]


@contextlib.contextmanager
def joblib_backend(engine: str | None = "ray", *, address: str | None = None,
                   n_jobs: int = -1) -> Iterator[None]:
    """Run the joblib work started inside the block on ``engine``.

    Everything scikit-learn parallelises with joblib inside the block (the fits of a grid search,
    ``cross_val_score``...) runs as Ray tasks: ``TransferClassifier(cv=...)``,
    :func:`featx.evaluate_heads` with ``cv=`` and plain ``GridSearchCV`` alike. Leave their
    ``n_jobs`` at ``None`` (the block's ``n_jobs`` then applies) or set it above 1; ``n_jobs=1``
    keeps a search sequential whatever the backend.

    Parameters
    ----------
    engine : {"ray", "local"} or None
        ``"ray"``: joblib's ``"ray"`` backend; ``"local"``/``None``: change nothing.
    address : str, optional
        Ray cluster to join; ``None``: a running Ray, ``$RAY_ADDRESS``, or an embedded instance.
    n_jobs : int
        Parallel jobs for calls that leave ``n_jobs=None``; ``-1``: every CPU of the cluster.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> X, y = make_classification(60, 5, random_state=0)
    >>> with joblib_backend("local"):
    ...     GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X, y).best_params_
    {'C': 0.1}
    """
    name = check_engine(engine, address)
    if name == "local":
        yield
        return
    import joblib

    ensure_ray(address)
    from ray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_backend("ray", n_jobs=n_jobs):
        yield
