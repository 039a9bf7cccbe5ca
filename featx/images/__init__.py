"""Images: the one reader (Pillow, or OpenCV with ``featx[opencv]``) and the decode pool.

Disk or bytes -> RGB ``uint8`` ``(H, W, 3)``, resized for a backbone, the same way at extraction,
fine-tuning and prediction time. Imports nothing else of featx.
"""

from featx.images.decode import (
    DECODERS,
    check_decoder,
    check_image_bytes,
    decode_bytes,
    read_image,
)
from featx.images.files import entry_problem, open_regular, read_bytes, unreadable_reason
from featx.images.pillow import RESIZE_MODES, ImageError, to_rgb
from featx.images.pool import DecodePool, default_workers, hash_file, hash_files, load_chunk

__all__ = ["DECODERS", "RESIZE_MODES", "DecodePool", "ImageError", "check_decoder",
           "check_image_bytes", "decode_bytes", "default_workers", "entry_problem", "hash_file",
           "hash_files", "load_chunk", "open_regular", "read_bytes", "read_image", "to_rgb",
           "unreadable_reason"]
