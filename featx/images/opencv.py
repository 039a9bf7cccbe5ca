"""The ``decoder="opencv"`` path of :func:`featx.images.decode_bytes` (optional: ``featx[opencv]``).

OpenCV's JPEG decoder can shrink by 1/2, 1/4 or 1/8 while it decodes (like Pillow's draft mode),
and both its decode and its plain bilinear resize are cheaper than Pillow's (per image on one
core, about half and a sixth: ``python benchmarks/decode_bench.py --breakdown``). Everything
else keeps featx's conventions: Pillow reads the header (format, size, EXIF orientation, the
decompression-bomb limit), the orientation is applied here, and a JPEG without its end marker
near its end goes to Pillow (OpenCV would turn a truncated file into grey rows; Pillow refuses
it, and decodes one with data appended), as does anything that is not a plain RGB or greyscale
JPEG (PNG with alpha, CMYK, 16-bit, GIF, ...); every image is then resized the same way. One
difference remains: libjpeg inside OpenCV decodes some corrupt entropy data (with a warning on
stderr) that Pillow refuses.
"""

from __future__ import annotations

import numpy as np

from featx.images.pillow import (
    ImageError,
    crop_box,
    decode_pillow,
    ends_with_marker,
    exif_orientation,
    open_image,
    to_size,
)

__all__ = ["decode_opencv", "require_cv2"]

_REDUCE = (8, 4, 2)


def require_cv2():
    """Import OpenCV, or explain how to install it."""
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "decoder='opencv' needs OpenCV: pip install 'featx[opencv]' (or "
            "opencv-python-headless); decoder='pillow' needs nothing extra"
        ) from None
    return cv2


def _upright(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` (1-8) to an ``(H, W, C)`` array as ``exif_transpose`` does."""
    if orientation in (2, 4, 5, 7):  # the mirrored ones: flip left-right first
        arr = arr[::-1] if orientation == 4 else arr[:, ::-1]
    turns = {3: 2, 5: 1, 6: -1, 7: -1, 8: 1}.get(orientation, 0)  # counter-clockwise quarter turns
    return np.rot90(arr, turns) if turns else arr


def _scale(src_w: int, src_h: int, hw: tuple[int, int] | None, swapped: bool) -> int:
    """The largest libjpeg reduction that keeps the decoded image at least ``hw``."""
    if hw is None:
        return 1
    h, w = (hw[1], hw[0]) if swapped else hw
    for k in _REDUCE:
        if -(-src_w // k) >= w and -(-src_h // k) >= h:
            return k
    return 1


def decode_opencv(data: bytes, size, resize: str = "bilinear",
                  source: str = "<bytes>") -> np.ndarray:
    """RGB ``uint8`` ``(H, W, 3)``; see :func:`featx.images.decode_bytes` (``decoder="opencv"``)."""
    cv2 = require_cv2()
    hw = to_size(size)
    img = open_image(data, source)
    if img.format == "JPEG" and img.mode in ("RGB", "L") and ends_with_marker(data, "JPEG"):
        orientation = exif_orientation(img)
        k = _scale(*img.size, hw, swapped=orientation in (5, 6, 7, 8))
        flags = cv2.IMREAD_IGNORE_ORIENTATION | {
            1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[k]
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if bgr is None:
            raise ImageError(f"{source}: cannot decode image (OpenCV could not read the JPEG)")
        arr = _upright(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), orientation)
    else:
        arr = np.asarray(decode_pillow(data, hw, source, img), dtype=np.uint8)
    if hw is None or arr.shape[:2] == hw:
        return np.ascontiguousarray(arr)
    h, w = hw
    if resize == "crop":
        left, top, right, bottom = crop_box(arr.shape[1], arr.shape[0], h, w)
        arr = arr[round(top):round(bottom), round(left):round(right)]
    return cv2.resize(np.ascontiguousarray(arr), (w, h), interpolation=cv2.INTER_LINEAR)
