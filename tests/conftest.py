"""Session-wide test settings: offline guard, temporary cache, the slow marker, image factories."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _is_loopback(address: tuple) -> bool:
    host = address[0]
    return isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost"))


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Fail any non-loopback connection: an accidental download must fail loudly."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(address):
        if isinstance(address, tuple) and not _is_loopback(address):
            raise RuntimeError(f"tests must not use the network; attempted connection to {address}")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            guard(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            guard(address)
        return real_connect_ex(self, address)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    yield
    socket.socket.connect = real_connect
    socket.socket.connect_ex = real_connect_ex


def pytest_configure(config):
    """Point the default feature cache at a fresh temporary folder, never at ./cache (before any
    test module is imported, so collection-time code cannot write there either)."""
    if not os.environ.get("FEATX_TEST_KEEP_CACHE"):
        os.environ["FEATX_CACHE_DIR"] = tempfile.mkdtemp(prefix="featx-test-cache-")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FEATX_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow test: set FEATX_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
