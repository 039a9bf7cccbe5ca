"""featx beyond one machine, on Ray (``pip install 'featx[ray]'``).

- :func:`extract_features`: the Ray engine of :func:`featx.extract_features` (also reached as
  ``featx.extract_features(..., engine="ray", address=...)``); same cache, keys and result.
- :func:`joblib_backend`: a context manager sending scikit-learn's grid searches to Ray.

Nothing here imports Ray until it is used; without it the calls raise ``ImportError`` with the pip
command. ``docs/ray.md`` covers the embedded instance, clusters and the shared storage they need.
"""

from __future__ import annotations

from featx.distributed._joblib import joblib_backend
from featx.distributed._ray import ENGINES, check_engine
from featx.distributed._ray_extract import extract_features

__all__ = ["ENGINES", "check_engine", "extract_features", "joblib_backend", "run_engine"]


def run_engine(engine, dataset, backbone, *, address=None, **kwargs):
    """Dispatch of :func:`featx.extract_features` for ``engine`` other than ``"local"``."""
    if check_engine(engine, address) == "local":
        from featx.extract import extract_features as _local

        return _local(dataset, backbone, **kwargs)
    return extract_features(dataset, backbone, address=address, **kwargs)
