"""Constants and plain functions shared by several test modules.

Not a test module (pytest collects ``test_*.py`` only): test modules import from here, never from
each other. Test data, such as image files and datasets, comes from the factory fixtures in
``conftest.py`` (``make_images``, ``image_bytes``, ``make_dataset``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: The cheapest real extractor: MobileNetV2 with (seeded) random weights at 32 px, silent.
MODEL = dict(backbone="mobilenet_v2", weights=None, input_size=32, verbose=0)


def assert_same(a, b) -> None:
    """allclose relative to the features' scale (random-weight nets give tiny activations)."""
    b = np.asarray(b, np.float64)
    scale = float(np.abs(b).max())
    assert scale > 0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


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
