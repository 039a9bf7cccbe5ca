"""featx beyond one machine, on Ray (``pip install 'featx[ray]'``).

- :func:`ensure_ray` / :func:`require_ray`: the Ray instance featx runs on (embedded, or a
  cluster's), and the friendly error when Ray is missing. The Ray *extraction* engine lives with
  the other engine: :func:`featx.extract.extract_on_ray` (``featx.extract_features(...,
  engine="ray")``).
- :func:`joblib_backend`: a context manager sending scikit-learn's grid searches to Ray.

Nothing here imports Ray until it is used; without it the calls raise ``ImportError`` with the pip
command. ``docs/ray.md`` covers the embedded instance, clusters and the shared storage they need.
"""

from __future__ import annotations

from featx.distributed.joblib import joblib_backend
from featx.distributed.ray import ENGINES, INSTALL_HINT, check_engine, ensure_ray, require_ray

__all__ = ["ENGINES", "INSTALL_HINT", "check_engine", "ensure_ray", "joblib_backend",
           "require_ray"]
