"""Image files on disk: which names are images, what a folder holds, and why a file is not read."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from featx.errors import SkippedImagesWarning
from featx.images import (
    IO_WORKERS,
    ImageError,
    check_image_bytes,
    entry_problem,
    is_remote,
    location_suffix,
    read_bytes,
    unreadable_reason,
)
from featx.utils.checks import close_matches

__all__ = [
    "IMAGE_EXTENSIONS", "LOOSE_FILE", "NESTED_FOLDER", "SPLIT_NAMES", "SkippedImagesWarning",
    "Verify", "array_digest", "check_file", "check_files", "display_path", "loose_images",
    "missing_path_error", "scan_folder", "warn_skipped",
]

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
Verify = Literal["header", "decode", "none"]
NESTED_FOLDER = "nested folder: not read (images must be directly in their class folder)"
LOOSE_FILE = "not in a class folder: not read"


def display_path(path: str | os.PathLike) -> str:
    r"""``path`` as text any UTF-8 output takes: the bytes of a file name that are not UTF-8
    (kept in ``str`` paths as lone surrogates, as :func:`os.fsdecode` does) are shown as
    ``\xNN``, the way Python shows bytes; every other path is returned unchanged.

    Examples
    --------
    >>> display_path(os.fsdecode(b"photos/caf\xe9.jpg"))
    'photos/caf\\xe9.jpg'
    >>> display_path("photos/café.jpg")
    'photos/café.jpg'
    """
    path = os.fsdecode(path)
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeError:  # a surrogate that is not an escaped byte
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


def check_file(path: str, verify: Verify) -> str | None:
    """Return ``None`` when ``path`` (a location: see :func:`featx.images.read_bytes`) holds a
    usable image, else the reason it does not. Never raises: whatever goes wrong with one file
    is that file's reason."""
    suffix = location_suffix(path)
    if suffix is not None and suffix not in IMAGE_EXTENSIONS:
        return f"not an image file extension {suffix!r}"
    if verify == "none":
        return None
    try:
        check_image_bytes(read_bytes(path), source=path, full=verify == "decode")
    except FileNotFoundError as exc:
        return unreadable_reason(path, exc) if os.path.islink(path) else "file not found"
    except OSError as exc:
        return unreadable_reason(path, exc)
    except ImageError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # noqa: BLE001 - a reader bug must not sink the whole dataset
        return f"cannot check file ({type(exc).__name__}: {exc})"
    return None


def check_files(paths: Sequence[str], verify: Verify) -> list[str | None]:
    remote = verify != "none" and any(is_remote(p) for p in paths)
    if verify == "none" or len(paths) < 64 and not remote:
        return [check_file(p, verify) for p in paths]
    workers = IO_WORKERS if remote else min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check_file, paths, [verify] * len(paths),
                             chunksize=4 if remote else 64))


def warn_skipped(skipped: list[tuple[str, str]], where: str) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{display_path(p)}: {r}" for p, r in skipped[:5])
    more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
    warnings.warn(
        f"{len(skipped)} file(s) skipped in {where}: {shown}{more}. See dataset.skipped.",
        SkippedImagesWarning,
        stacklevel=3,
    )


def array_digest(images: np.ndarray) -> str:
    """16 hex digits identifying an image array by its bytes and shape (the folder name
    :meth:`ImageDataset.from_arrays` writes it to).

    Examples
    --------
    >>> x = np.zeros((2, 4, 4), dtype=np.uint8)
    >>> array_digest(x) == array_digest(x.copy()), array_digest(x) == array_digest(x[:1])
    (True, False)
    """
    return hashlib.sha256(images.tobytes() + str(images.shape).encode()).hexdigest()[:16]


def missing_path_error(param: str, path: Path) -> FileNotFoundError:
    parent = path.parent if str(path.parent) else Path(".")
    if parent.is_dir():
        names = sorted(os.listdir(parent))
        hint = close_matches(path.name, names) or f"; {parent} holds: {names[:10]}"
    else:
        hint = f" (its folder {parent} does not exist either)"
    return FileNotFoundError(f"{param}={str(path)!r} does not exist{hint}")


def loose_images(files: list[str]) -> list[tuple[str, str]]:
    """The images among files found outside any class folder (other files there are
    documentation: a README, a LICENSE, a CSV)."""
    return [(p, LOOSE_FILE) for p in files if Path(p).suffix.lower() in IMAGE_EXTENSIONS]


def scan_folder(folder: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """A folder's entries, by name: sub-folder names, regular-file paths, and every other entry
    (dangling symlink, symlink loop, FIFO, device) with why it is not read. Names starting with
    ``"."`` are left out. ``OSError`` when the folder cannot be listed."""
    folders, files, other = [], [], []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith("."):
            continue
        path = str(folder / entry)
        problem = entry_problem(path)
        if problem is None:
            files.append(path)
        elif problem == "folder":
            folders.append(entry)
        else:
            other.append((path, problem))
    return folders, files, other
