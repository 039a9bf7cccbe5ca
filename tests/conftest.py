"""Session-wide test settings (offline guard, temporary cache, the slow marker) and the shared
fixtures: ``make_images`` (image files), ``image_bytes`` (one encoded image), ``make_dataset``
(an ImageDataset over paths) and ``fresh_cache`` (an empty feature cache that shares the
session's converted weights and ONNX graphs). Constants and plain helpers are in ``helpers.py``.

The suite runs the runtime users get (``"auto"``: ONNX Runtime on a CPU). Each backbone
configuration's graph is exported once per run: every worker process, test and subprocess reads
the same ``weights`` folder (``$FEATX_TEST_WEIGHTS``), linked into each cache folder.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _share_the_cores() -> None:
    """Under pytest-xdist, give each worker its share of the cores for every thread pool
    (ONNX Runtime, TensorFlow, BLAS), so N workers do not run N times each pool's threads on
    the same cores (measured: docs/testing.md). Results do not depend on thread counts beyond
    the tolerances of helpers.py. Set before NumPy or TensorFlow is imported; a value already in
    the environment wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if not os.environ.get("PYTEST_XDIST_WORKER") or workers < 2:
        return
    from featx.utils.threads import usable_cores  # featx's own count; loads no NumPy

    share = str(max(1, usable_cores() // workers))
    for name in ("FEATX_COMPUTE_THREADS", "TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, share)


_share_the_cores()

import numpy as np  # noqa: E402 - after the thread settings, which NumPy reads when imported
from helpers import link_weights, make_cache  # noqa: E402


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
    test module is imported, so collection-time code cannot write there either), its
    ``weights`` shared with every other process of the run.

    The first process (pytest itself, or xdist's controller) makes the shared folder; its
    workers inherit ``$FEATX_TEST_WEIGHTS`` and only link it."""
    if os.environ.get("FEATX_TEST_KEEP_CACHE"):
        return
    if not os.environ.get("FEATX_TEST_WEIGHTS"):
        os.environ["FEATX_TEST_WEIGHTS"] = tempfile.mkdtemp(prefix="featx-test-weights-")
        config._featx_made = [os.environ["FEATX_TEST_WEIGHTS"]]
    else:
        config._featx_made = []
    os.environ["FEATX_CACHE_DIR"] = tempfile.mkdtemp(prefix="featx-test-cache-")
    config._featx_made.append(os.environ["FEATX_CACHE_DIR"])
    # the per-user cache too (a test that unsets FEATX_CACHE_DIR): never the real ~/.cache/featx;
    # matplotlib keeps its own font cache where it was, so no process rebuilds it
    real = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(real, "matplotlib"))
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="featx-test-xdg-")
    config._featx_made.append(os.environ["XDG_CACHE_HOME"])
    link_weights(os.environ["FEATX_CACHE_DIR"])


def pytest_unconfigure(config):
    """Remove the folders this process made (a worker's cache; the controller's weights too)."""
    for folder in getattr(config, "_featx_made", ()):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_cache(tmp_path) -> Path:
    """``helpers.make_cache(tmp_path / "cache")``: an empty feature cache that shares the
    session's converted weights and ONNX graphs."""
    return make_cache(tmp_path / "cache")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FEATX_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow test: set FEATX_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- factories
#: Colours of labelled images whose classes are given by name only, in this order.
PALETTE = ((220, 30, 30), (30, 200, 40), (30, 40, 220), (220, 200, 40), (200, 40, 220),
           (40, 200, 220))
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}


class ImageFiles(list):
    """The paths ``make_images`` wrote (``str``), in order; ``labels``: the class name of each
    (``None`` for unlabelled images)."""

    def __init__(self, paths, labels=None):
        super().__init__(paths)
        self.labels = labels


def _format(fmt: str) -> str:
    try:
        return _FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"fmt must be one of {sorted(_FORMATS)}, got {fmt!r}") from None


def _encode(pixels=None, *, size=(64, 48), colour=(200, 30, 30), fmt="jpeg", mode=None,
            quality=90, **save) -> bytes:
    """One encoded image: ``pixels`` (a uint8 array, any mode Pillow reads from an array) or a
    solid ``colour`` (RGB, or a grey level) of ``size`` (an int for a square, or Pillow's
    ``(width, height)``); converted to ``mode`` (e.g. ``"CMYK"``) when given; ``save`` goes to
    ``Image.save`` (e.g. ``exif=``)."""
    from PIL import Image

    if pixels is None:
        width, height = (size, size) if isinstance(size, int) else size
        rgb = (colour,) * 3 if isinstance(colour, int) else tuple(colour)
        image = Image.new("RGB", (width, height), rgb)
    else:
        image = Image.fromarray(np.asarray(pixels))
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    fmt = _format(fmt)
    if fmt == "JPEG":
        save.setdefault("quality", quality)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


def _distinct_pixels(k: int, size: int) -> np.ndarray:
    """Random noise with a drawn square, seeded by ``k``: one image per ``k``, all different."""
    rng = np.random.default_rng(k)
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    a, b = sorted(rng.integers(0, size, 2))
    arr[a:b, a:b] = rng.integers(0, 256, 3, dtype=np.uint8)
    return arr


def _make_images(folder, n: int = 1, *, classes: Sequence[str] | Mapping | None = None,
                 size: int = 48, noise: int = 25, folders: bool = False, fmt: str = "jpg",
                 quality: int = 90, start: int = 0, seed: int = 0) -> ImageFiles:
    """Write real image files under ``folder`` (created) and return their paths.

    Without ``classes``: ``n`` distinct images ``img<k>.<fmt>``, ``k`` from ``start``: random
    noise with a drawn square, seeded by ``k``, so the same ``k`` always gives the same bytes and
    another ``start`` gives new content (a content-keyed cache sees new images).

    With ``classes`` (names, coloured from :data:`PALETTE` in order, or a mapping of name to an
    RGB colour or grey level): ``n`` images of each class, the class colour plus integer noise
    drawn uniformly from ``[-noise, noise)`` (``noise=0``: solid) by one generator seeded by
    ``seed``, so the colour is the class, learnable even from random-weight features. Named
    ``<class>_<i>.<fmt>``, or ``<class>/<i>.<fmt>`` (a class-folder tree) with ``folders=True``,
    ``i`` from ``start``; written and returned class after class, with their class names in
    ``.labels``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ext = "jpg" if _format(fmt) == "JPEG" else fmt.lower()
    if classes is None:
        paths = []
        for k in range(start, start + n):
            path = folder / f"img{k:05d}.{ext}"
            path.write_bytes(_encode(_distinct_pixels(k, size), fmt=fmt, quality=quality))
            paths.append(str(path))
        return ImageFiles(paths)
    if isinstance(classes, Mapping):
        colours = dict(classes)
    else:
        if len(classes) > len(PALETTE):
            raise ValueError(f"at most {len(PALETTE)} classes without colours, got {classes!r}")
        colours = dict(zip(classes, PALETTE, strict=False))
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for name, colour in colours.items():
        for i in range(start, start + n):
            pixels = np.broadcast_to(np.asarray(colour, np.int64), (size, size, 3))
            if noise:
                pixels = pixels + rng.integers(-noise, noise, (size, size, 3))
            path = folder / name / f"{i}.{ext}" if folders else folder / f"{name}_{i}.{ext}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(_encode(np.clip(pixels, 0, 255).astype(np.uint8), fmt=fmt,
                                     quality=quality))
            paths.append(str(path))
            labels.append(name)
    return ImageFiles(paths, labels)


def _make_dataset(paths, name: str = "ds"):
    """``paths`` as an ImageDataset named ``name``, labelled a, b, c in turn, files unchecked."""
    from featx.data import ImageDataset

    return ImageDataset.from_paths(paths, [i % 3 for i in range(len(paths))],
                                   class_names=["a", "b", "c"], name=name, verify="none")


@pytest.fixture(scope="session")
def make_images():
    """Factory: ``make_images(folder, n, *, classes=None, size=48, noise=25, folders=False,
    fmt="jpg", quality=90, start=0, seed=0)`` writes real image files and returns their paths
    (see ``_make_images``)."""
    return _make_images


@pytest.fixture(scope="session")
def image_bytes():
    """Factory: ``image_bytes(pixels=None, *, size=(64, 48), colour=(200, 30, 30), fmt="jpeg",
    mode=None, quality=90, **save)``: one encoded image, as bytes (see ``_encode``)."""
    return _encode


@pytest.fixture(scope="session")
def make_dataset():
    """Factory: ``make_dataset(paths, name="ds")``: an ImageDataset over ``paths`` labelled a, b, c
    in turn, the files not checked."""
    return _make_dataset
