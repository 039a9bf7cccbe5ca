"""Persistence for :class:`featx.finetune.FineTunedClassifier`: ``.keras`` export, pickling (the
model travels as ``.keras`` bytes and is rebuilt), and the ``featx.persist`` hooks."""

from __future__ import annotations

import inspect
import os
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import keras
import numpy as np
from sklearn.utils.validation import check_is_fitted

import featx.backbones  # noqa: F401  (registers the featx layers a .keras file names)
from featx.trust.outputs import staged
from featx.utils.jsonable import jsonable

__all__ = ["KerasModelPersistence"]

HOOK_FORMAT = "featx.finetune/1"


class KerasModelPersistence:
    """Mixin for an estimator whose fitted Keras model is ``model_``."""

    def export(self, path: str | os.PathLike) -> Path:
        """Write the model as a ``.keras`` file: raw RGB 0-255 in, probabilities out.

        Loads with ``keras.saving.load_model(path, safe_mode=True)`` once ``featx`` is imported.
        """
        check_is_fitted(self, "model_")
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"path must end in .keras, got {str(path)!r}")
        with staged(path, param="path") as tmp:  # never over a file featx did not write
            self.model_.save(tmp, include_optimizer=False)
        return path

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ is the live __dict__
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                model.save(path, include_optimizer=False)
                state["_model_keras"] = path.read_bytes()
        return state

    def __setstate__(self, state):
        data = state.pop("_model_keras", None)
        super().__setstate__(state)
        if data is not None:
            self.model_ = _load_keras_bytes(data)

    def _featx_save(self, dirpath) -> dict:
        """featx.persist hook: the model as ``model.keras``, the rest as JSON in the manifest."""
        check_is_fitted(self, "model_")  # into featx.persist's own temporary folder
        self.model_.save(Path(dirpath) / "model.keras", include_optimizer=False)
        params = self.get_params()
        params["validation_data"] = None  # data, not configuration
        return {"format": HOOK_FORMAT, "params": jsonable(params),
                "classes": self.classes_.tolist(), "input_size": list(self.input_size_),
                "history": jsonable(self.history_), "compile_count": self.compile_count_,
                "backbone_forward_passes": self.backbone_forward_passes_, "model": "model.keras"}

    @classmethod
    def _featx_load(cls, dirpath, manifest: dict, trust=None):
        """featx.persist hook; the model loads with ``safe_mode=True`` whatever ``trust`` says.

        ``manifest`` is persist's manifest, holding this class's dict under ``"hook"``. Raises
        ``ValueError`` naming the field for a malformed dict, a ``model`` member outside
        ``dirpath`` or missing, or a model that does not fit ``classes`` and ``input_size``.
        """
        hook = manifest.get("hook", manifest)
        _check_hook(hook, cls)
        est = cls(**hook["params"])
        est.classes_ = np.asarray(hook["classes"])
        est.input_size_ = tuple(hook["input_size"])
        est.history_ = hook["history"]
        est.compile_count_ = hook["compile_count"]
        est.backbone_forward_passes_ = hook["backbone_forward_passes"]
        model = _payload_member(dirpath, hook["model"])
        if not zipfile.is_zipfile(model):  # Keras would say "File not found"
            raise ValueError(f"its member {hook['model']!r} is not a .keras file (not a zip "
                             "archive)")
        try:
            est.model_ = keras.saving.load_model(model, safe_mode=True, compile=False)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError, EOFError,
                zipfile.BadZipFile) as exc:
            raise ValueError(f"its member {hook['model']!r} is not a loadable .keras model "
                             f"({type(exc).__name__}: {exc})") from exc
        _check_model(est.model_, est.classes_, est.input_size_)
        return est


# hook field -> (types, what a message says it should be); bool is refused where int is asked
_HOOK_FIELDS = {
    "params": (dict, "an object of FineTunedClassifier parameters"),
    "classes": (list, "a list of class labels"),
    "input_size": (list, "[height, width]"),
    "history": (list, "a list of per-phase records"),
    "compile_count": (int, "a count"),
    "backbone_forward_passes": (int, "a count"),
    "model": (str, "the name of the .keras member"),
}


def _check_hook(hook, cls) -> None:
    """Raise ``ValueError`` naming the field when ``hook`` is not what ``_featx_save`` writes."""
    if not isinstance(hook, dict):
        raise ValueError(f"its hook is a {type(hook).__name__}, not an object")
    if hook.get("format", HOOK_FORMAT) != HOOK_FORMAT:
        raise ValueError(f"its hook has format={hook['format']!r}; this featx reads "
                         f"{HOOK_FORMAT!r} (a newer featx wrote it?)")
    for field, (kind, what) in _HOOK_FIELDS.items():
        if field not in hook:
            raise ValueError(f"its hook lacks {field!r} (expected {what})")
        value = hook[field]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"its hook has {field}={value!r}; expected {what}")
    allowed = inspect.signature(cls).parameters
    unknown = sorted(set(hook["params"]) - set(allowed))
    if unknown:
        raise ValueError(f"its hook has params {unknown} that {cls.__name__} does not take "
                         f"(a newer featx wrote it?); it takes {sorted(allowed)}")
    classes = hook["classes"]
    if not classes or not all(isinstance(c, str | int | float) for c in classes) \
            or len({type(c) for c in classes}) > 1:
        raise ValueError(f"its hook has classes={classes!r}; expected a non-empty list of "
                         "labels of one type (strings or numbers)")
    size = hook["input_size"]
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in size):
        raise ValueError(f"its hook has input_size={size!r}; expected [height, width], two "
                         "positive integers")
    for field in ("compile_count", "backbone_forward_passes"):
        if hook[field] < 0:
            raise ValueError(f"its hook has {field}={hook[field]!r}; expected a count >= 0")


def _payload_member(dirpath, name: str) -> Path:
    """``dirpath / name``, refused unless it is a file inside ``dirpath`` (no absolute path,
    no ``..``, no link leading out): a file's manifest names only its own members."""
    pure = PurePosixPath(name)
    if not pure.parts or pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise ValueError(f"its hook has model={name!r}, a path outside the archive; expected "
                         "the name of one of its members, such as 'model.keras'")
    root = Path(dirpath).resolve()
    target = root.joinpath(*pure.parts)
    if not target.resolve().is_relative_to(root):
        raise ValueError(f"its hook has model={name!r}, which leads outside the archive")
    if not target.is_file():
        raise ValueError(f"its hook names the member model={name!r}, which the archive lacks")
    return target


def _check_model(model: keras.Model, classes: np.ndarray, size: tuple) -> None:
    """The .keras model must give one probability per class, from images of ``size``."""
    outputs, inputs = model.output_shape[-1], tuple(model.input_shape[1:3])
    if outputs != len(classes) or inputs != tuple(size):
        raise ValueError(
            f"its model takes {inputs} images and gives {outputs} outputs, but its hook has "
            f"input_size={list(size)} and {len(classes)} classes {classes.tolist()}")


def _load_keras_bytes(data: bytes) -> keras.Model:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, safe_mode=True, compile=False)
