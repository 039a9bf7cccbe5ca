"""Pillow's part of the image reader: headers, EXIF orientation, the decompression-bomb limit,
any format to RGB ``uint8``, and the crop geometry both decoders share.

:mod:`featx.images.decode` puts it together with :mod:`featx.images.opencv` behind
:func:`~featx.images.decode_bytes`.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from featx.errors import ImageError
from featx.utils.registry import Registry

__all__ = ["ImageError", "RESIZE_MODES", "crop_box", "decode_pillow", "ends_with_marker",
           "exif_orientation", "open_image", "to_rgb", "to_size"]

#: How an image is brought to a backbone's input size.
RESIZE_MODES: Registry[str] = Registry("resize", {
    "bilinear": "stretch to the size (antialiased bilinear)",
    "crop": "keep the aspect: resize the short side, then crop the centre",
})
ResizeMode = Literal["bilinear", "crop"]

# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


def to_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def _sixteen_bit_to_rgb(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float images to 8 bits instead of clipping them at 255."""
    arr = np.asarray(img)
    if img.mode == "F":
        hi = float(arr.max()) if arr.size else 1.0
        scaled = arr * (255.0 / hi) if hi > 1.0 else arr * 255.0
    else:
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        scaled = arr.astype(np.float32) * (255.0 / hi)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _sixteen_bit_to_rgb(img)
    if mode == "P" and "transparency" in img.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def crop_box(src_w: int, src_h: int, h: int, w: int) -> tuple[float, float, float, float]:
    """Centred source box with the target's aspect ratio (for aspect-preserving resize)."""
    target = w / h
    if src_w / src_h > target:  # too wide: trim the sides
        new_w = src_h * target
        left = (src_w - new_w) / 2
        return left, 0.0, left + new_w, float(src_h)
    new_h = src_w / target
    top = (src_h - new_h) / 2
    return 0.0, top, float(src_w), top + new_h


def open_image(data: bytes, source: str = "<bytes>", *,
               failure: str = "cannot decode image") -> Image.Image:
    """Pillow's lazy open (header only), with featx's errors: :class:`ImageError` for a file
    Pillow cannot identify, for a decompression bomb (``PIL.Image.MAX_IMAGE_PIXELS``; above it,
    not only above twice it as Pillow's own check) and, starting with ``failure``, for any other
    error Pillow raises while reading the header."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(source, exc) from None
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not an image file Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{source}: {failure} ({exc})") from None


def _bomb(source: str, exc: Exception) -> ImageError:
    return ImageError(
        f"{source}: refused as a possible decompression bomb ({exc}). Raise "
        "PIL.Image.MAX_IMAGE_PIXELS if this image is genuine."
    )


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of a JPEG opened by :func:`open_image`; 1 otherwise."""
    return img.getexif().get(_ORIENTATION_TAG, 1) if img.format == "JPEG" else 1


def decode_pillow(data: bytes, hw: tuple[int, int] | None, source: str,
                   img: Image.Image | None = None) -> Image.Image:
    """Decode to an upright RGB Pillow image, at least ``hw`` when JPEG draft mode can shrink.

    ``img``: ``data`` already opened by :func:`open_image` (its header is not parsed twice)."""
    img = open_image(data, source) if img is None else img
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            orientation = exif_orientation(img)
            if hw is not None and img.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result stays >= the target:
                # the same pixels for a fraction of the work.
                h, w = hw
                want = (h, w) if orientation in _SWAPS_AXES else (w, h)
                img.draft("RGB", want)
            img.load()
            img = ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(source, exc) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{source}: cannot decode image ({exc})") from None
    return to_rgb(img)


# Structural end markers: a file that lacks them near its end was cut short, or carries data after
# the image (a phone's Motion Photo appends a video to the JPEG); a full decode tells the two apart.
_TRAILERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL = 4096


def ends_with_marker(data: bytes, fmt: str | None) -> bool:
    """Whether ``data`` has its format's end marker in its last few KiB (True for formats
    without one)."""
    trailer = _TRAILERS.get(fmt or "")
    return trailer is None or trailer in data[-_TAIL:]
