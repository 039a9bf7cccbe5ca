"""Training helpers for fine-tuning: model assembly, LR schedules, mixed precision, checkpoints.

Kept apart from :mod:`featx.finetune` so the estimator reads as the sequence of steps it runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from featx.finetune.augment import build_augmentation
from featx.heads import make_head
from featx.utils.progress import say

__all__ = [
    "LR_SCHEDULES",
    "CheckpointState",
    "build_model",
    "fold_scaler_into_linear",
    "linear_probe_dense",
    "epoch_lines",
    "lr_callback",
]


# --------------------------------------------------------------------------- the model
def build_model(base: keras.Model, preprocess: keras.layers.Layer, n_classes: int,
                size: tuple[int, int], *, augment: Mapping[str, Any], dropout: float,
                l2: float, seed: int | None, name: str = "featx_finetune") -> keras.Model:
    """Raw RGB 0-255 -> augmentation -> preprocessing -> base (inference mode) -> GAP -> Dropout ->
    Dense softmax (float32 even under mixed precision)."""
    inputs = keras.Input((*size, 3), name="rgb")
    x = inputs
    for layer in build_augmentation(augment, seed):
        x = layer(x)
    x = preprocess(x)
    # training=False: BatchNorm uses its moving statistics even while the base's weights train.
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    reg = keras.regularizers.L2(l2) if l2 else None
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg,
                                 dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def fold_scaler_into_linear(coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray,
                            scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``W((x - m) / s) + b == (W / s) x + (b - W (m / s))``: kernel ``(D, K)`` and bias ``(K,)``
    of one Dense layer equal to a StandardScaler followed by a linear model."""
    coef = np.asarray(coef, np.float64)
    w = coef / scale  # (K, D)
    b = np.asarray(intercept, np.float64) - coef @ (mean / scale)
    return w.T, b


_MISSING_CLASS_BIAS = -30.0  # a class absent from the warm-start fit starts with ~0 probability


def linear_probe_dense(feats: np.ndarray, y: np.ndarray, n_classes: int):
    """Fit ``make_head("logreg")`` on pooled features; return the equivalent Dense ``kernel``
    ``(D, K)`` and ``bias`` ``(K,)`` (float32) and the fitted head."""
    head = make_head("logreg").fit(feats, y)
    scaler, clf = head.named_steps["scale"], head.named_steps["clf"]
    d = feats.shape[1]
    coef = np.zeros((n_classes, d))
    intercept = np.full(n_classes, _MISSING_CLASS_BIAS)
    if clf.coef_.shape[0] == 1:  # binary: softmax([0, z]) == sigmoid(z)
        coef[clf.classes_[1]], intercept[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
        intercept[clf.classes_[0]] = 0.0
    else:
        coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
    mean = scaler.mean_ if getattr(scaler, "mean_", None) is not None else np.zeros(d)
    scale = scaler.scale_ if getattr(scaler, "scale_", None) is not None else np.ones(d)
    kernel, bias = fold_scaler_into_linear(coef, intercept, mean, scale)
    return kernel.astype("float32"), bias.astype("float32"), head


# --------------------------------------------------------------------------- LR schedules
def _exp_decay(epoch, epochs, lr, after=2, rate=0.3):
    return lr if epoch < after else lr * math.exp(-rate * (epoch - after + 1))


def _cosine(epoch, epochs, lr, min_lr=0.0):
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * epoch / max(1, epochs)))


LR_SCHEDULES = {
    "constant": lambda epoch, epochs, lr: lr,
    "exp_decay": _exp_decay,  # constant for `after` epochs, then lr * exp(-rate * k)
    "cosine": _cosine,  # from lr down towards min_lr over the phase
}


def parse_lr_schedule(value) -> tuple[str, dict]:
    """``"cosine"`` or ``("exp_decay", {"after": 3, "rate": 0.2})`` -> (name, params)."""
    name, params = (value, {}) if isinstance(value, str) else (value[0], dict(value[1]))
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {sorted(LR_SCHEDULES)} (or a (name, params) "
                         f"pair), got {value!r}")
    return name, params


def lr_callback(lr_schedule, base_lr: float, epochs: int) -> keras.callbacks.Callback:
    name, params = parse_lr_schedule(lr_schedule)
    fn = LR_SCHEDULES[name]
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _lr: float(fn(epoch, epochs, base_lr, **params)))


# --------------------------------------------------------------------------- progress
_EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def epoch_lines(label: str, epochs: int) -> keras.callbacks.Callback:
    """A callback writing one plain line per epoch (:func:`featx.utils.progress.say`: the
    ``"featx"`` logger when it has a handler, stderr otherwise), e.g. ``fine-tune phase 1
    'blocks': epoch 2/3 loss 0.4120 accuracy 0.8500 val_loss 0.5012 val_accuracy 0.8000 lr
    0.0001 (12.3 s)``; it reads the same in a terminal, a log file, CI or a notebook."""
    import time

    class _EpochLines(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = [f"{k} {float(logs[k]):.4f}" for k in _EPOCH_METRICS if k in logs]
            if "learning_rate" in logs:
                parts.append(f"lr {float(logs['learning_rate']):.3g}")
            seconds = time.monotonic() - getattr(self, "_t0", time.monotonic())
            say(f"{label}: epoch {epoch + 1}/{epochs} {' '.join(parts)} ({seconds:.1f} s)")

    return _EpochLines()


# --------------------------------------------------------------------------- checkpoints
def fingerprint(params: Mapping[str, Any], classes, n_items: int) -> str:
    payload = json.dumps([sorted(params.items()), [str(c) for c in classes], n_items],
                         default=repr)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class CheckpointState:
    """``checkpoint_dir`` state: ``progress.json`` plus one weights file per phase.

    The JSON says the last phase with saved weights (``-1`` is the warm start), how many of its
    epochs are done, whether it finished, and the history so far. A fit with the same parameters
    and data resumes from it; any other fit starts over.
    """

    def __init__(self, directory: str | os.PathLike | None, key: str):
        self.dir = None if directory is None else Path(directory)
        self.key = key
        self.state = {"key": key, "phase": None, "epoch": 0, "done": False, "history": []}
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / "progress.json"
            if path.exists():
                saved = json.loads(path.read_text())
                if saved.get("key") == key:
                    self.state = saved

    def weights_path(self, phase: int) -> str:
        return str(self.dir / f"phase{phase}.weights.h5")

    def write(self, **changes) -> None:
        self.state.update(changes)
        if self.dir is None:
            return
        tmp = self.dir / "progress.json.tmp"
        tmp.write_text(json.dumps(self.state, default=float))
        os.replace(tmp, self.dir / "progress.json")

    def callbacks(self, phase: int, history_so_far: list) -> list:
        """ModelCheckpoint of the weights each epoch, then the JSON that points at them."""
        if self.dir is None:
            return []
        progress = self

        partial = list(self.state.get("partial", [])) if self.state.get("phase") == phase else []

        class _Json(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                partial.append({k: float(v) for k, v in (logs or {}).items()})
                progress.write(phase=phase, epoch=epoch + 1, done=False, history=history_so_far,
                               partial=partial)

        return [keras.callbacks.ModelCheckpoint(self.weights_path(phase), save_weights_only=True),
                _Json()]
