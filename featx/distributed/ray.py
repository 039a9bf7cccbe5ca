"""Ray, imported lazily: the friendly error when it is missing, and the instance featx runs on.

With no address featx starts Ray *inside this process* (an embedded single-node instance, no
dashboard) the first time it needs one and keeps it for later calls; with an address (or
``$RAY_ADDRESS``) it joins that cluster. A Ray instance the caller already started is used as is.
"""

from __future__ import annotations

import os
from unittest import mock

from featx.images import default_workers
from featx.utils.checks import check_int
from featx.utils.registry import Registry

__all__ = ["ENGINES", "INSTALL_HINT", "check_engine", "ensure_ray", "require_ray"]

INSTALL_HINT = "pip install 'featx[ray]'"
#: Where work runs: this process, or a Ray cluster (``featx[ray]``).
ENGINES: Registry[str] = Registry("engine", {
    "local": "this process: decode threads and the backbone here",
    "ray": "Ray: decode tasks and model actors on a cluster or an embedded instance",
})


def require_ray():
    """Return the ``ray`` module, or raise ``ImportError`` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            f"engine='ray' needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from exc
    return ray


def check_engine(engine, address=None) -> str:
    """Validate ``engine`` (and that ``address`` is only given with Ray); return it normalised."""
    name = "local" if engine is None else engine
    ENGINES.check(name)
    if name == "local" and address is not None:
        raise ValueError(f"address is only used with engine='ray'; got address={address!r} "
                         f"with engine={engine!r}")
    return name


def ensure_ray(address: str | None = None, num_cpus: int | None = None, verbose: int = 1):
    """Connect to Ray: reuse a running instance, join ``address``, or start an embedded one.

    Parameters
    ----------
    address : str, optional
        A cluster address (``"ray://head:10001"``, ``"head:6379"`` or ``"auto"``). ``None``: the
        ``$RAY_ADDRESS`` cluster if set, else a new local instance inside this process.
    num_cpus : int, optional
        CPUs of the embedded instance (default: the cores this process may use). Ignored when
        joining a cluster, whose size is its own.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        ray.init(address=address, log_to_driver=verbose >= 2)
        return ray
    if num_cpus is None:
        num_cpus = default_workers()
    check_int("num_cpus", num_cpus, 1)
    # An embedded single-machine instance reports nothing home unless the user opted in. Ray
    # reads the variable while it starts (its processes inherit it then); featx sets it for
    # that moment only and gives the caller back the environment it had.
    opt_in = {"RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "0")}
    with mock.patch.dict(os.environ, opt_in):
        ray.init(num_cpus=int(num_cpus), include_dashboard=False, log_to_driver=verbose >= 2,
                 configure_logging=verbose >= 2)
    return ray
