"""Every exception and warning featx raises, in one module that imports nothing else of featx.

Each exception derives from :class:`FeatxError` and from the builtin it specialises (``except
ValueError``, ``except OSError`` ... catch what they always caught); each warning derives from
:class:`FeatxWarning` (a :class:`UserWarning`). So ``except featx.errors.FeatxError`` catches
every featx error and ``warnings.simplefilter("ignore", featx.errors.FeatxWarning)`` silences every
featx warning. The stages re-export the names they raise (``featx.images.ImageError``,
``featx.cache.DamagedCacheWarning``, ``featx.persist.ModelFileError`` ...): the same classes.

Examples
--------
>>> from featx.errors import FeatxError, ImageError
>>> issubclass(ImageError, FeatxError) and issubclass(ImageError, ValueError)
True
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CacheWriteError", "CheckpointError", "CommandError", "ConfigError", "DamagedCacheError",
    "DamagedCacheWarning", "DamagedWeightsError", "DataNotFoundError", "ExportError", "FeatxError",
    "FeatxWarning", "GraphExportError", "ImageError", "ItemTimeoutError", "ItemTooLargeError",
    "MissingRowsError", "ModelFileError",
    "OutputExistsError", "PlotsSkippedWarning", "SkippedImagesWarning", "UnsupportedGraphError",
    "UntrustedModelError",
    "WeightsCacheWarning", "WeightsDownloadError", "WeightsFileNotFoundError",
]


# --------------------------------------------------------------------------- the two bases
class FeatxError(Exception):
    """Base of every featx error: raised with a message that names what failed and what to do.

    The ``featx`` command prints any ``FeatxError`` as one plain line (no traceback)."""


class FeatxWarning(UserWarning):
    """Base of every featx warning: something was left out, skipped or rebuilt, and said so."""


# --------------------------------------------------------------------------- images, data, sources
class ImageError(FeatxError, ValueError):
    """An image file could not be decoded; the message names the file and the reason."""


class SkippedImagesWarning(FeatxWarning):
    """Some files were left out of a dataset; ``dataset.skipped`` says which and why."""


class DataNotFoundError(FeatxError, FileNotFoundError):
    """The data a command or pipeline needs is not on disk; the message says what to fetch."""


class ItemTooLargeError(FeatxError, OSError):
    """One item (an image file, a URL's body, an archive member, a container record) has more
    bytes than the ``max_item_bytes`` setting allows; it was not read (or not read past the
    limit). Its ``strerror`` is the reason a dataset's ``skipped`` shows."""


class ItemTimeoutError(FeatxError, TimeoutError):
    """One item could not be read, retries included, within the ``item_timeout`` setting (a
    store that answers too slowly, or a body that never ends). An ``OSError`` too."""


# --------------------------------------------------------------------------- backbones
class WeightsDownloadError(FeatxError, RuntimeError):
    """The ImageNet weights could not be downloaded (no network, blocked, corrupted file)."""


class WeightsFileNotFoundError(FeatxError, FileNotFoundError, ValueError):
    """``weights`` names a file that does not exist (both an ``OSError`` and a ``ValueError``)."""


class DamagedWeightsError(FeatxError, OSError, ValueError):
    """A weights file is damaged (unreadable, or not the bytes recorded when it was written) and
    cannot be rebuilt; the message names it (both an ``OSError`` and a ``ValueError``)."""


class WeightsCacheWarning(FeatxWarning):
    """A cached converted weights file failed its check and was converted again, or a
    conversion could not be written to the cache."""


class CheckpointError(FeatxError, pickle.UnpicklingError, ValueError):
    """A ``.pth`` file that is malformed, hostile or holds no state dict; the message names it.

    Both a :class:`pickle.UnpicklingError` and a :class:`ValueError`.
    """


# --------------------------------------------------------------------------- cache, extraction
class CacheWriteError(FeatxError, OSError):
    """The disk refused a cache write (full, file-size limit, read-only, no permission).

    Raised before HDF5 writes into the file, so nothing half-written is left: the cache stays as
    it was before the write. ``errno`` is the cause's; the message names the cache folder."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


class DamagedCacheError(FeatxError, ValueError):
    """A featx cache file whose structure or rows fail their checks; ``path`` and ``why`` say
    which file and what is wrong."""

    def __init__(self, path, why: str, action: str = "") -> None:
        self.path, self.why = Path(path), why
        super().__init__(f"{os.fspath(path)} is damaged ({why})" + (f"; {action}" if action
                                                                    else ""))


class OutputExistsError(FeatxError, FileExistsError):
    """An output path holds something featx did not write (a user's file or folder): featx
    refuses to replace it rather than delete it."""


class MissingRowsError(DamagedCacheError):
    """A sound dataset file whose rows its row store no longer holds (removed, pruned, or found
    damaged and moved aside): nothing wrong is ever returned; extracting the dataset again
    restores just those rows. ``path`` is the dataset file, ``why`` names the store."""

    def __init__(self, path, why: str) -> None:
        ValueError.__init__(self, f"{os.fspath(path)}: {why}; extract the dataset again to "
                                  "restore them")
        self.path, self.why = Path(path), why


class DamagedCacheWarning(FeatxWarning):
    """A damaged cache file was moved aside and rebuilt; the message names both places."""


class GraphExportError(FeatxError, RuntimeError):
    """Keras could not export this backbone to ONNX (``runtime="onnxruntime"`` cannot run it)."""


class UnsupportedGraphError(FeatxError, ValueError):
    """featx's ONNX writer does not translate something in this model (the message says what);
    the graph is then Keras' export (:mod:`featx.extract.onnx_writer`)."""


# --------------------------------------------------------------------------- persist, deploy
class UntrustedModelError(FeatxError, ValueError):
    """A saved model needs code or types outside the allow-list; pass ``trust=True``."""


class ModelFileError(FeatxError, ValueError):
    """A file given to :func:`featx.persist.load` cannot be loaded as a featx model (not a zip
    archive, a truncated one, a missing or malformed manifest or member, too big, too many
    members); the message names the file and what is wrong with it."""


class ExportError(FeatxError, ValueError):
    """A model that cannot be written in the asked format; the message names the formats that
    work for it."""


# --------------------------------------------------------------------------- report, pipeline, cli
class PlotsSkippedWarning(FeatxWarning):
    """A report was written without its plots because matplotlib is not installed."""


class ConfigError(FeatxError, ValueError):
    """A pipeline file is invalid; the message names the key and what is allowed.

    Every mistake of a file is reported at once: ``errors`` lists them (one line each), and the
    message is that list, one per line, under a ``N errors`` heading when there are several.
    """

    def __init__(self, message: str, errors: Sequence[str] | None = None):
        super().__init__(message)
        self.errors = list(errors) if errors else [message]


class CommandError(FeatxError):
    """A ``featx`` command cannot do what was asked; the message is shown as is.

    Its only bases are :class:`FeatxError` and ``Exception``, as before featx had one errors
    module: giving it a builtin base would widen what ``except ValueError`` (or another) catches."""
