"""Constants and plain functions shared by several test modules.

Not a test module (pytest collects ``test_*.py`` only): test modules import from here, never from
each other. Test data, such as image files and datasets, comes from the factory fixtures in
``conftest.py`` (``make_images``, ``image_bytes``, ``make_dataset``).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: The cheapest real extractor: MobileNetV2 with (seeded) random weights at 32 px, silent.
MODEL = dict(backbone="mobilenet_v2", weights=None, input_size=32, verbose=0)


# --------------------------------------------------------------------------- tolerances
# What varies between two computations of the same numbers, and how much the suite allows. Each
# figure below was measured (docs/testing.md: how); each tolerance leaves a margin of 15x or more
# over it, so a library release or runtime that changes rounding passes and a wrong row (another
# image, weight or layer: differences of the order of the values themselves) fails.
#
# Bitwise equality (np.testing.assert_array_equal) stays where bitwise is the contract: rows read
# back from the file or row store that holds them, in the same process or a later one; the same
# estimator asked twice; a saved model's parameters after a round trip.

#: Features of one configuration computed by another runtime (Keras vs ONNX Runtime), another
#: batch size or another release of TensorFlow / Keras / ONNX Runtime, relative to the largest
#: feature: measured up to 1.7e-6 (ONNX Runtime vs Keras, Lite0 ImageNet 224) and 6.2e-7
#: (releases: the legacy cache against today's forward), by benchmarks/tolerance_spread.py.
FEATURE_RTOL = 1e-4

#: Class probabilities of one model computed on features that differ as above (a probe's
#: logits magnify feature differences by its weights' norm): measured up to 6.7e-6 absolute
#: (the legacy saved models, on today's releases and either runtime).
PROBA_ATOL = 1e-4


def assert_same(a, b, rtol: float = FEATURE_RTOL) -> None:
    """``a`` equals the features ``b`` up to what a runtime or release may change:
    :data:`FEATURE_RTOL` of the largest feature, absolute (random-weight nets give tiny
    activations, so the bound scales with ``b``)."""
    b = np.asarray(b, np.float64)
    scale = float(np.abs(b).max())
    assert scale > 0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def assert_same_proba(a, b) -> None:
    """``a`` equals the probabilities ``b`` up to :data:`PROBA_ATOL`, and both are
    probabilities (rows sum to 1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, rtol=0, atol=PROBA_ATOL)


def printed_number(text: str, label: str) -> float:
    """The number printed after ``label`` in ``text`` (CLI output compared as a number, not as
    text: ``0``, ``1.08e-18`` and ``0.0`` are all the number zero)."""
    match = re.search(re.escape(label) + r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan)",
                      text)
    assert match, f"{label!r} followed by a number not found in {text!r}"
    return float(match.group(1))


def link_weights(cache: str | os.PathLike) -> None:
    """Make ``cache/weights`` the session's shared folder of converted weights and ONNX graphs
    (``$FEATX_TEST_WEIGHTS``, made by conftest.py)."""
    os.symlink(os.environ["FEATX_TEST_WEIGHTS"], os.path.join(cache, "weights"))


def make_cache(folder: str | os.PathLike) -> Path:
    """Create ``folder`` as an empty feature cache whose converted weights and ONNX graphs are
    the session's, and return it: a test (or a subprocess given it as ``$FEATX_CACHE_DIR``)
    starts with no features cached but exports no graph again. Tests of the weights or graph
    files themselves use a plain folder instead."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    link_weights(folder)
    return folder


def counted(ds, cache, **kw):
    """``extract_features(ds, cache=cache)`` with :data:`MODEL` (``kw`` overrides it), and the
    number of images the backbone ran on for it."""
    from featx.extract import extract_features, forward_pass_count

    before = forward_pass_count()
    fs = extract_features(ds, cache=cache, **{**MODEL, **kw})
    return fs, forward_pass_count() - before


def not_blank(path) -> bool:
    """The image file at ``path`` has content: more than one colour."""
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"))
    return bool(pixels.std() > 0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1)


# --------------------------------------------------------------------------- pickle opcodes
# Checkpoints written opcode by opcode (protocol 2), as torch.save lays them out, so the .pth
# reader's tests need no torch.
def pickle_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def pickle_str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def pickle_int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def pickle_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


PICKLE_ODICT = pickle_global("collections", "OrderedDict") + b")R"
