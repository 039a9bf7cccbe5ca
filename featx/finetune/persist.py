"""Persistence for :class:`featx.finetune.FineTunedClassifier`: ``.keras`` export, pickling (the
model travels as ``.keras`` bytes and is rebuilt), and the ``featx.persist`` hooks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras
import numpy as np
from sklearn.utils.validation import check_is_fitted

import featx.backbones  # noqa: F401  (registers the featx layers a .keras file names)
from featx.utils.jsonable import jsonable

__all__ = ["KerasModelPersistence"]


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
        self.model_.save(path, include_optimizer=False)
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
        self.export(Path(dirpath) / "model.keras")
        params = self.get_params()
        params["validation_data"] = None  # data, not configuration
        return {"format": "featx.finetune/1", "params": jsonable(params),
                "classes": self.classes_.tolist(), "input_size": list(self.input_size_),
                "history": jsonable(self.history_), "compile_count": self.compile_count_,
                "backbone_forward_passes": self.backbone_forward_passes_, "model": "model.keras"}

    @classmethod
    def _featx_load(cls, dirpath, manifest: dict, trust=None):
        """featx.persist hook; the model loads with ``safe_mode=True`` whatever ``trust`` says.

        ``manifest`` is persist's manifest, holding this class's dict under ``"hook"``.
        """
        manifest = manifest.get("hook", manifest)
        est = cls(**manifest["params"])
        est.classes_ = np.asarray(manifest["classes"])
        est.input_size_ = tuple(manifest["input_size"])
        est.history_ = manifest["history"]
        est.compile_count_ = manifest["compile_count"]
        est.backbone_forward_passes_ = manifest["backbone_forward_passes"]
        est.model_ = keras.saving.load_model(Path(dirpath) / manifest["model"], safe_mode=True,
                                             compile=False)
        return est


def _load_keras_bytes(data: bytes) -> keras.Model:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, safe_mode=True, compile=False)
