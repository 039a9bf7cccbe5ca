"""Save and load fitted models without pickle.

Format: one zip file (any name; ``.featx`` by convention) holding

- ``manifest.json``: ``format``, ``format_version``, ``featx_version``,
  ``sklearn_version``, ``skops_version``, ``class`` (``module.QualName``),
  ``storage`` (``"skops"`` or ``"hook"``), ``params`` (``get_params(deep=False)``,
  informational) and, for hooks, ``hook`` (the dict the object returned);
- ``model.skops`` for scikit-learn estimators and pipelines (``skops.io.dump``), or
- ``payload/`` for objects with a ``_featx_save(dirpath) -> dict`` method (e.g. a
  ``.keras`` file plus a ``.skops`` head); they are restored with the classmethod
  ``_featx_load(dirpath, manifest, trust)``, which must read everything it needs
  before returning (the directory is temporary). Keras parts are loaded with
  ``safe_mode=True``; sklearn parts with :func:`load_skops`.

Loading never runs code from the file unless ``trust=True``: skops types outside
:data:`SAFE_TYPES` (and outside skops' own defaults) are refused, hook classes must
live in the ``featx`` package, and zip members (and the members a manifest names) may not
escape the extraction directory. An archive may hold at most :data:`MAX_MEMBERS` members and
unpack to at most ``max_size`` bytes (:data:`MAX_SIZE` by default), counting the archives
inside it (``.skops``, ``.keras``) by what they unpack to, so a zip bomb is refused before it
fills the disk or memory. Unless ``trust=True``, parameters that name a place a model writes to
(:data:`PATH_PARAMS`) are reset to their defaults, a file a model would read
(:data:`READ_PATH_PARAMS`: ``weights``) makes the load refused, and runtime parameters
(:data:`RUNTIME_PARAMS`: ``batch_size``, ``n_jobs``) are bounded. Whatever is wrong with a
file, the error is one :class:`ModelFileError` (or :class:`UntrustedModelError`) naming it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
import zipfile
from numbers import Real
from pathlib import Path
from typing import Any

from featx.persist.archive import unpack
from featx.persist.errors import UNPACKED, ModelFileError, UntrustedModelError, not_a_model
from featx.persist.hooks import PAYLOAD, hook_class, load_hook
from featx.persist.manifest import MANIFEST, new_manifest, qualname, read_manifest
from featx.persist.path_params import (
    PATH_PARAMS,
    READ_PATH_PARAMS,
    refuse_read_paths,
    reset_path_params,
)
from featx.persist.runtime_params import MAX_BATCH_SIZE, RUNTIME_PARAMS, bound_runtime_params
from featx.persist.skops_parts import SAFE_TYPES, SKOPS_FILE, load_skops, save_skops
from featx.trust.outputs import check_outputs, staged

__all__ = ["MAX_BATCH_SIZE", "MAX_MEMBERS", "MAX_SIZE", "PATH_PARAMS", "READ_PATH_PARAMS",
           "RUNTIME_PARAMS", "SAFE_TYPES", "ModelFileError", "UntrustedModelError", "load",
           "load_skops", "save", "save_skops"]

#: Default ``max_size`` of :func:`load`, in bytes (4 GiB): the largest model featx saves, a
#: fine-tuned ``convnext_xlarge`` (~350M float32 weights), unpacks to about 1.4 GB.
MAX_SIZE = 4 * 1024**3

#: The most members (files and folders) a file given to :func:`load` may hold; read when
#: ``load`` runs. featx writes two or three (``manifest.json`` and the model's parts), so a
#: file with more is refused before anything is unpacked, naming the file and its count: an
#: archive of tens of thousands of empty members would otherwise take minutes to unpack. For
#: a file you trust that really holds more, raise it (``featx.persist.MAX_MEMBERS = 10_000``).
MAX_MEMBERS = 256


def save(model: Any, path: str | os.PathLike) -> Path:
    """Save a fitted model to the single-file featx format at ``path``.

    Parameters
    ----------
    model : estimator
        A scikit-learn estimator or pipeline (stored with skops), or an object with a
        ``_featx_save(dirpath) -> dict`` method.
    path : str or path-like
        Destination file. A model file featx saved there before is replaced atomically;
        anything else there (a user's file or folder, a file edited since featx wrote it) is
        refused before the model is serialised, and left as it is.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` holds something featx did not write; the message names it. A
        :class:`FileExistsError`.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from featx.heads import make_head
    >>> from featx.persist import load, save
    >>> X, y = np.eye(4).repeat(5, axis=0), np.repeat(list("abcd"), 5)
    >>> head = make_head("logreg").fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = load(save(head, f"{tmp}/head.featx"))
    >>> loaded.predict(X[:2]).tolist()
    ['a', 'a']
    """
    path = Path(path)
    check_outputs([path], param="path")  # before the model is serialised
    manifest = new_manifest(model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if hasattr(type(model), "_featx_save"):
            (tmp / PAYLOAD).mkdir()
            manifest["storage"] = "hook"
            manifest["hook"] = model._featx_save(tmp / PAYLOAD) or {}
        elif hasattr(model, "get_params"):
            manifest["storage"] = "skops"
            unknown = save_skops(model, tmp / SKOPS_FILE)
            if unknown:
                warnings.warn(
                    f"{qualname(model)} contains types outside featx.persist.SAFE_TYPES "
                    f"({unknown}); loading it will need trust=True.",
                    UserWarning, stacklevel=2,
                )
        else:
            raise TypeError(
                "model must be a scikit-learn estimator or implement _featx_save; "
                f"got model of type {qualname(model)}."
            )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=repr))
        with staged(path, param="path") as partial, \
                zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
                zf.write(file, file.relative_to(tmp).as_posix())
    return path


def _check_max_size(max_size) -> int | None:
    if max_size is None:
        return None
    if (isinstance(max_size, bool) or not isinstance(max_size, Real)
            or not math.isfinite(max_size) or max_size <= 0):
        raise ValueError(
            "max_size must be a positive number of bytes, or None for no limit; got "
            f"max_size={max_size!r}. The default is featx.persist.MAX_SIZE={MAX_SIZE} (4 GiB)."
        )
    return int(max_size)


def load(path: str | os.PathLike, *, trust: bool = False,
         max_size: int | None = MAX_SIZE) -> Any:
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save` (or a directory holding the same members).
    trust : bool, default=False
        Allow types outside :data:`SAFE_TYPES` and hook classes outside ``featx``, and keep
        the parameters that name a place on disk and the runtime parameters as the file has
        them (see below). Only for files from a source you trust: it lets the file run code
        and choose what is read on this machine.
    max_size : int or None, default=MAX_SIZE (4 GiB)
        The most bytes the file may unpack to, counting an archive inside it (the
        ``.skops`` or ``.keras`` part) by what it unpacks to. The members' declared sizes
        are checked before anything is written and the bytes actually written are counted,
        so a zip bomb (or a lying header) stops at the limit and leaves nothing behind.
        ``None`` for no limit. Not applied when ``path`` is a directory.

    Returns
    -------
    object
        The model, ready to predict.

    Raises
    ------
    UntrustedModelError
        If the file needs ``trust=True`` (the message lists what was refused: types, a hook
        class, or a ``weights`` file it names, which is not read), or a member's name would
        unpack outside the archive's folder.
    ModelFileError
        If the file is not a featx model: not a zip archive or a truncated one, a manifest
        missing, not JSON, not an object, or with a missing key or a value of the wrong
        type, a member the manifest names missing or outside the archive, a part that
        cannot be read, more than :data:`MAX_MEMBERS` members, or more than ``max_size``
        bytes unpacked. The message names the file (never a temporary copy) and what is
        wrong. A ``ValueError``, as is ``UntrustedModelError``.
    FileNotFoundError
        If ``path`` does not exist.

    Warns
    -----
    UserWarning
        When parameters that name a place on disk were reset. A saved featx estimator
        keeps its parameters, but without ``trust=True`` those in :data:`PATH_PARAMS`
        (``cache``, ``checkpoint_dir``) are set back to their defaults, so the loaded model
        writes features and checkpoints where you choose (the featx cache dir), not where
        the file's author chose. One warning names every parameter reset, with the file's
        value; ``set_params`` sets them again. ``cache=False`` and ``None`` are kept (they
        name no place). ``weights`` is not reset (it defines the features): a ``weights``
        that names a file refuses the load instead (see Raises).
    UserWarning
        When runtime parameters (:data:`RUNTIME_PARAMS`) were out of bounds: a
        ``batch_size`` above :data:`MAX_BATCH_SIZE` (1024), an ``n_jobs`` beyond this
        machine's cores (in any estimator of the model, scikit-learn heads included). They
        are brought within the bound and one warning names each, with the file's value.
    """
    max_size = _check_max_size(max_size)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        if path.is_dir():
            folder = path
        elif path.exists() and not path.is_file():  # a device or a pipe: zipfile reads it all
            raise not_a_model(path, "not a regular file.")
        else:
            folder = Path(tmp)
            unpack(path, folder, max_size, MAX_MEMBERS)  # MAX_MEMBERS as it is now
        manifest = read_manifest(folder, path)
        token = UNPACKED.set((folder, path)) if folder != path else None
        try:
            if manifest["storage"] == "hook":
                cls = hook_class(manifest, trust, path)
                if not isinstance(manifest.get("hook"), dict):
                    raise not_a_model(path, f"its {MANIFEST} has hook="
                                            f"{manifest.get('hook')!r}; expected an object "
                                            "(storage 'hook').")
                model = load_hook(cls, folder, manifest, trust, path)
            else:
                if not (folder / SKOPS_FILE).is_file():
                    raise not_a_model(path, f"it has no {SKOPS_FILE} (storage 'skops').")
                model = load_skops(folder / SKOPS_FILE, trust=trust)
        finally:
            if token is not None:
                UNPACKED.reset(token)
    if not trust:
        refuse_read_paths(model, path, READ_PATH_PARAMS)
        reset_path_params(model, path, PATH_PARAMS)
        bound_runtime_params(model, path)
    return model
