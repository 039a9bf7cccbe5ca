"""Images: the one reader (Pillow, or OpenCV with ``featx[opencv]``) and the decode pool.

A location (a local path, a URL, a record of a TFRecord, tar or Parquet file: see
:func:`read_bytes`) or bytes -> RGB ``uint8`` ``(H, W, 3)``, resized for a backbone, the same way
at extraction, fine-tuning and prediction time. Imports nothing else of featx.
"""

from featx.images.decode import (
    DECODERS,
    check_decoder,
    check_image_bytes,
    decode_bytes,
    read_image,
)
from featx.images.files import entry_problem, open_regular, unreadable_reason
from featx.images.locations import (
    IO_WORKERS,
    READERS,
    RETRIES,
    check_stores,
    container_location,
    image_cell,
    io_executor,
    is_remote,
    is_url,
    location_suffix,
    parse_container,
    process_local,
    read_bytes,
    read_many,
    require_fsspec,
    require_pyarrow,
    url_to_fs,
)
from featx.images.pillow import RESIZE_MODES, ImageError, to_rgb
from featx.images.pool import (
    SKIPPED,
    DecodePool,
    default_workers,
    hash_file,
    hash_files,
    load_chunk,
)

__all__ = ["DECODERS", "IO_WORKERS", "READERS", "RESIZE_MODES", "RETRIES", "SKIPPED",
           "DecodePool",
           "ImageError", "check_decoder", "check_stores", "check_image_bytes", "container_location",
           "decode_bytes", "default_workers", "entry_problem", "hash_file", "hash_files",
           "image_cell", "io_executor", "is_remote", "is_url", "load_chunk", "location_suffix",
           "open_regular", "parse_container", "process_local", "read_bytes", "read_image",
           "read_many", "require_fsspec", "require_pyarrow", "to_rgb", "unreadable_reason",
           "url_to_fs"]
