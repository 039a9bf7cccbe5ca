"""The one image reader: any Pillow format to RGB uint8, resized for a backbone.

Every stage of featx that touches pixels goes through :func:`decode_bytes`, so a photo is decoded
the same way at extraction, fine-tuning and prediction time.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["DECODERS", "ImageError", "RESIZE_MODES", "check_image_bytes", "decode_bytes",
           "read_image"]

RESIZE_MODES = ("bilinear", "crop")
ResizeMode = Literal["bilinear", "crop"]

# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """An image file could not be decoded; the message names the file and the reason."""


def _to_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
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


def _to_rgb(img: Image.Image) -> Image.Image:
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


def _crop_box(src_w: int, src_h: int, h: int, w: int) -> tuple[float, float, float, float]:
    """Centred source box with the target's aspect ratio (for aspect-preserving resize)."""
    target = w / h
    if src_w / src_h > target:  # too wide: trim the sides
        new_w = src_h * target
        left = (src_w - new_w) / 2
        return left, 0.0, left + new_w, float(src_h)
    new_h = src_w / target
    top = (src_h - new_h) / 2
    return 0.0, top, float(src_w), top + new_h


DECODERS = ("pillow", "opencv")
Decoder = Literal["pillow", "opencv"]


def check_decoder(decoder: str) -> str:
    """Validate ``decoder`` (a name of :data:`DECODERS`) and, for ``"opencv"``, that OpenCV
    imports: callers check before the first image, not as one decode failure per image."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if decoder == "opencv":
        from featx._opencv import require_cv2

        require_cv2()
    return decoder


def open_image(data: bytes, source: str = "<bytes>") -> Image.Image:
    """Pillow's lazy open (header only), with featx's errors: :class:`ImageError` for a file
    Pillow cannot identify and for a decompression bomb (``PIL.Image.MAX_IMAGE_PIXELS``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb(source, exc) from None
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not an image file Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{source}: cannot decode image ({exc})") from None


def _bomb(source: str, exc: Exception) -> ImageError:
    return ImageError(
        f"{source}: refused as a possible decompression bomb ({exc}). Raise "
        "PIL.Image.MAX_IMAGE_PIXELS if this image is genuine."
    )


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of a JPEG opened by :func:`open_image`; 1 otherwise."""
    return img.getexif().get(_ORIENTATION_TAG, 1) if img.format == "JPEG" else 1


def _decode_pillow(data: bytes, hw: tuple[int, int] | None, source: str,
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
    return _to_rgb(img)


def decode_bytes(
    data: bytes,
    size: int | tuple[int, int] | None = None,
    resize: ResizeMode = "bilinear",
    *,
    decoder: Decoder = "pillow",
    source: str = "<bytes>",
) -> np.ndarray:
    """Decode an encoded image to an RGB ``uint8`` array of shape ``(H, W, 3)``.

    Parameters
    ----------
    data : bytes
        The encoded file (any format Pillow reads: JPEG, PNG, WebP, TIFF, BMP, GIF, ...).
    size : int or (height, width), optional
        Target size. ``None`` keeps the original size.
    resize : {"bilinear", "crop"}
        ``"bilinear"`` stretches to ``size``; ``"crop"`` keeps the aspect ratio, taking the largest
        centred region of the target's shape.
    decoder : {"pillow", "opencv"}
        ``"pillow"``: Pillow, with JPEG draft mode and an antialiased bilinear resize.
        ``"opencv"`` (``pip install 'featx[opencv]'``): OpenCV decodes JPEGs (at 1/2, 1/4 or 1/8
        scale when that stays >= ``size``) and resizes with plain bilinear interpolation, about
        twice as fast per core; other formats are decoded by Pillow. Same conventions either way;
        pixels differ slightly, so the decoder is part of the feature-cache key.
    source : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array ``(H, W, 3)``. EXIF orientation is applied; grey, palette, CMYK and 16-bit
        images become RGB; transparency is composited onto white.

    Raises
    ------
    ImageError
        If the bytes are not a readable image, are truncated, or exceed Pillow's decompression-bomb
        limit (``PIL.Image.MAX_IMAGE_PIXELS``).

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("L", (40, 20), 128).save(buf, format="PNG")
    >>> decode_bytes(buf.getvalue(), size=(8, 8)).shape
    (8, 8, 3)
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    check_decoder(decoder)
    hw = _to_size(size)
    if decoder == "opencv":
        from featx._opencv import decode_opencv

        return decode_opencv(data, hw, resize, source)
    img = _decode_pillow(data, hw, source)
    if hw is not None and img.size != (hw[1], hw[0]):
        h, w = hw
        box = _crop_box(*img.size, h, w) if resize == "crop" else None
        img = img.resize((w, h), Image.Resampling.BILINEAR, box=box)
    return np.asarray(img, dtype=np.uint8)


def read_image(
    path: str | os.PathLike,
    size: int | tuple[int, int] | None = None,
    resize: ResizeMode = "bilinear",
    *,
    decoder: Decoder = "pillow",
) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)``; see :func:`decode_bytes`.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> Image.new("L", (30, 10), 200).save(path)
    >>> read_image(path, size=(224, 224)).shape
    (224, 224, 3)
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageError(f"{os.fspath(path)}: cannot read file ({exc.strerror or exc})") from None
    return decode_bytes(data, size, resize, decoder=decoder, source=os.fspath(path))


# Structural end markers: a file that lacks them near its end was cut short, or carries data after
# the image (a phone's Motion Photo appends a video to the JPEG); a full decode tells the two apart.
_TRAILERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL = 4096


def ends_with_marker(data: bytes, fmt: str | None) -> bool:
    """Whether ``data`` has its format's end marker in its last few KiB (True for formats
    without one)."""
    trailer = _TRAILERS.get(fmt or "")
    return trailer is None or trailer in data[-_TAIL:]


def check_image_bytes(data: bytes, *, source: str = "<bytes>", full: bool = False) -> None:
    """Cheaply check that bytes hold a complete image; raise :class:`ImageError` if not.

    The default check parses the header and looks for the format's end marker (JPEG's EOI, PNG's
    IEND) near the end of the file, which catches truncated downloads without decoding pixels.
    A file without it there is decoded in full before it is called truncated, so an image with
    data appended after it (a Motion Photo's video) is kept. ``full=True`` always decodes.
    """
    if full:
        decode_bytes(data, source=source)
        return
    if not data:
        raise ImageError(f"{source}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not an image file Pillow can identify") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{source}: cannot read image header ({exc})") from None
    if ends_with_marker(data, fmt):
        return
    try:
        decode_bytes(data, source=source)
    except ImageError as exc:
        raise ImageError(f"{source}: truncated {fmt} file (no end marker; "
                         f"{str(exc).removeprefix(f'{source}: ')})") from None
