"""Images in: :class:`ImageDataset` and its constructors.

An :class:`ImageDataset` is a list of image files with integer labels into ``class_names``. Files
that cannot be used are listed in ``skipped`` with the reason, never silently dropped and never
allowed to shift a label onto another image: one bad file (a decompression bomb, a symlink loop,
a FIFO, a name that is not UTF-8) is one entry of ``skipped``, never an error for the whole
dataset. A CSV row without a usable label is refused, with its line number.
"""

from featx.data.csvfile import MISSING_LABELS, read_csv
from featx.data.dataset import ImageDataset
from featx.data.files import (
    IMAGE_EXTENSIONS,
    SkippedImagesWarning,
    array_digest,
    check_files,
    display_path,
)
from featx.data.inputs import (
    IMAGE_INPUTS,
    as_image_dataset,
    check_image_input,
    image_input_error,
    image_paths,
    is_image_input,
    is_pil_images,
    is_uint8_images,
    labelled_targets,
    looks_like_images,
    pil_images_array,
)

__all__ = ["IMAGE_EXTENSIONS", "IMAGE_INPUTS", "MISSING_LABELS", "ImageDataset",
           "SkippedImagesWarning", "array_digest", "as_image_dataset", "check_files",
           "check_image_input", "display_path", "image_input_error", "image_paths",
           "is_image_input", "is_pil_images", "is_uint8_images", "labelled_targets",
           "looks_like_images", "pil_images_array", "read_csv"]
