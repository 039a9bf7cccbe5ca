"""The one image reader: any Pillow format to RGB uint8, resized for a backbone.

Every stage of featx that touches pixels goes through :func:`decode_bytes`, so a photo is decoded
the same way at extraction, fine-tuning and prediction time. ``decoder`` picks who decodes: Pillow
(:mod:`featx.images.pillow`) or OpenCV (:mod:`featx.images.opencv`, ``featx[opencv]``).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from PIL import Image

from featx.images.files import unreadable_reason
from featx.images.locations import read_bytes
from featx.images.opencv import decode_opencv, require_cv2
from featx.images.pillow import (
    RESIZE_MODES,
    ImageError,
    ResizeMode,
    crop_box,
    decode_pillow,
    ends_with_marker,
    open_image,
    to_size,
)
from featx.utils.registry import Registry

__all__ = ["DECODERS", "check_decoder", "check_image_bytes", "decode_bytes", "read_image"]

#: Who decodes and resizes an image: each row says how (``featx.read_image(decoder=...)``).
DECODERS: Registry[str] = Registry("decoder", {
    "pillow": "Pillow: every format it reads, antialiased bilinear resize",
    "opencv": "OpenCV (featx[opencv]) for plain JPEGs, reduced while decoding, then bilinear; "
              "Pillow for the header and every other format",
})
Decoder = Literal["pillow", "opencv"]


def check_decoder(decoder: str) -> str:
    """Validate ``decoder`` (a name of :data:`DECODERS`) and, for ``"opencv"``, that OpenCV
    imports: callers check before the first image, not as one decode failure per image."""
    DECODERS.check(decoder)
    if decoder == "opencv":
        require_cv2()
    return decoder


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
    RESIZE_MODES.check(resize)
    check_decoder(decoder)
    hw = to_size(size)
    if decoder == "opencv":
        return decode_opencv(data, hw, resize, source)
    img = decode_pillow(data, hw, source)
    if hw is not None and img.size != (hw[1], hw[0]):
        h, w = hw
        box = crop_box(*img.size, h, w) if resize == "crop" else None
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
        data = read_bytes(path)
    except OSError as exc:
        raise ImageError(f"{os.fspath(path)}: {unreadable_reason(path, exc)}") from None
    return decode_bytes(data, size, resize, decoder=decoder, source=os.fspath(path))


def check_image_bytes(data: bytes, *, source: str = "<bytes>", full: bool = False) -> None:
    """Cheaply check that bytes hold a complete image; raise :class:`ImageError` if not.

    The default check parses the header and looks for the format's end marker (JPEG's EOI, PNG's
    IEND) near the end of the file, which catches truncated downloads without decoding pixels;
    an image over the decompression-bomb limit is refused from its header alone.
    A file without it there is decoded in full before it is called truncated, so an image with
    data appended after it (a Motion Photo's video) is kept. ``full=True`` always decodes.
    """
    if full:
        decode_bytes(data, source=source)
        return
    if not data:
        raise ImageError(f"{source}: empty file")
    with open_image(data, source, failure="cannot read image header") as img:
        fmt = img.format
    if ends_with_marker(data, fmt):
        return
    try:
        decode_bytes(data, source=source)
    except ImageError as exc:
        raise ImageError(f"{source}: truncated {fmt} file (no end marker; "
                         f"{str(exc).removeprefix(f'{source}: ')})") from None
