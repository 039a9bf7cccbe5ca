"""Fine-tuning a pretrained backbone end to end, as a scikit-learn classifier.

:class:`FineTunedClassifier` builds ``raw RGB 0-255 -> augmentation -> preprocessing -> base
(inference mode) -> GlobalAveragePooling -> Dropout -> Dense softmax`` and trains it in phases given
by an unfreeze strategy (a row of :data:`featx.finetune.strategies.STRATEGIES`). The head starts
from the linear probe: a logistic regression fitted on the cached pooled features and folded into
the Dense layer, so warm-up costs no backbone epochs. See ``docs/finetune.md``.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from featx.backbones import build_base, check_weights, get_backbone_spec, preprocessing_layer
from featx.data import labelled_targets
from featx.extract import extract_features, forward_pass_count
from featx.extract.config import EXTRACTOR_PARAMS
from featx.finetune.augment import resolve_augment
from featx.finetune.data import Batches, ImageSource, as_images
from featx.finetune.optim import DiscriminativeAdam
from featx.finetune.persist import KerasModelPersistence
from featx.finetune.strategies import (
    STRATEGIES,
    Phase,
    resolve_phases,
    set_trainable,
    unit_layers,
    variable_multipliers,
)
from featx.finetune.train import (
    CheckpointState,
    build_model,
    epoch_lines,
    fingerprint,
    linear_probe_dense,
    lr_callback,
    parse_lr_schedule,
)
from featx.utils.params import Constraint, Interval, Options, Rule, validate_params
from featx.utils.runtime import dtype_policy, resolve_precision, seeded

__all__ = ["FineTunedClassifier"]

WARMUP_LR = 1e-3  # head-only warm-up when warm_start=False
#: ``monitor`` choices -> whether higher is better.
_MONITORS = {"val_loss": False, "val_accuracy": True}


def _checked(parse):
    """A constraint's check from a parser that raises on a bad value: the value, unchanged."""
    def check(name: str, value):
        parse(value)
        return value

    return check


def _check_class_weight(name: str, value):
    if value not in ("balanced", None) and not isinstance(value, dict):
        raise ValueError(f"{name} must be 'balanced', a dict or None, got {value!r}")
    return value


class FineTunedClassifier(KerasModelPersistence, ClassifierMixin, BaseEstimator):
    """Fine-tune a featx backbone on images; a scikit-learn classifier.

    Parameters
    ----------
    backbone : str, default="efficientnet_lite0"
        A name from ``featx.backbones.list_backbones()`` (``featx backbones`` lists them).
    weights : str or None
        ``"imagenet"`` or ``None`` (random initialisation, for tests).
    input_size : (int, int) or None
        Model input ``(h, w)``; ``None`` uses the backbone's own.
    strategy : str, default="staged"
        A row of the strategy table: ``frozen``, ``full``, ``last_n``, ``blocks``, ``staged``,
        ``top_blocks``. ``featx finetune --strategy`` has the same default.
    strategy_params : dict or None
        The row's own parameters: ``n`` (last_n), ``blocks`` (blocks), ``n_blocks``
        (top_blocks), ``lr_decay`` (every row but frozen: discriminative learning rates, each
        lower block ``lr_decay`` times the one above).
    schedule : list of (layers, epochs[, lr]) or None
        For ``staged``: ``layers`` an int (top N layers) or block name(s), cumulative.
    epochs : int, default=10
        Epochs per phase (the warm-up when ``warm_start=False``, the strategy's phase otherwise;
        ``staged``'s default schedule splits them over its two phases). A pipeline's
        ``finetune.epochs`` has the same default; the ``featx finetune`` and ``featx compare``
        commands default to ``--epochs 3`` on purpose (CPU-sized runs), as their ``--help`` says.
    learning_rate : float or None
        Overrides every phase's default learning rate.
    batch_size : int
    augment : "default", None or dict
        Training-time augmentation (see ``featx.finetune.augment.AUGMENTATIONS``); inactive at
        inference.
    dropout, l2 : float
        Dropout rate before the Dense layer; L2 factor on its kernel.
    warm_start : bool
        Initialise the Dense layer from ``make_head("logreg")`` fitted on pooled features instead of
        training it for a warm-up phase.
    class_weight : "balanced", dict or None
    validation_split : float
        Stratified fraction of the training data held out for early stopping (ignored when
        ``validation_data`` is given).
    validation_data : ImageDataset, (X, y) or None
    early_stopping : bool
        Per phase, on ``monitor``, restoring the best epoch's weights at the phase's end; a
        phase whose best is worse than the previous phase's (the warm start's included) is
        rolled back.
    patience : int
    monitor : "val_loss" or "val_accuracy", default="val_loss"
        What early stopping and the roll-back watch (``loss`` / ``accuracy`` of the training
        data when there is no validation data).
    lr_schedule : "constant", "exp_decay", "cosine" or (name, params)
    checkpoint_dir : str or None
        Weights per phase and ``progress.json``; an interrupted fit with the same parameters and
        data resumes from the last completed epoch.
    cache : None, False or path
        Feature cache the warm start reads its pooled features from (and fills), as in
        :func:`featx.extract.extract_features`: ``None`` is the featx cache dir, ``False`` computes
        them with the model instead. Used only with pretrained weights and an ``ImageDataset``.
    decoder : "pillow" or "opencv"
        Image decoder for training, validation and prediction images given as paths (see
        :func:`featx.read_image`); ``"opencv"`` needs ``featx[opencv]``.
    mixed_precision : "auto", True, "mixed_float16", "mixed_bfloat16", "float32" or None
        ``"auto"`` uses ``mixed_float16`` only when a GPU is visible; ``True`` is mixed on any
        device (float16 on a GPU, bfloat16 on a CPU), as in :func:`featx.extract_features`.
        Scoped to model building (:func:`featx.utils.runtime.resolve_precision`).
    random_state : int or None
        Seeds Keras (``keras.utils.set_random_seed``), the split and the shuffling during
        ``fit``; Python's and NumPy's global random states are restored when ``fit`` returns.
        Each training phase starts from its own seed (``random_state``'s seed plus the phase's
        index), so the numbers do not depend on what ran before it, e.g. whether the warm
        start's features came from the cache or had to be extracted.
    verbose : int, default=1
        ``1`` (default) one plain line per epoch with its metrics (on stderr, or the
        ``"featx"`` logger when it has a handler), and the progress of the features its warm
        start extracts; ``0`` silent; ``2`` also Keras's own per-step bar.
    run_eagerly : bool, default=False
        Run Keras eagerly (no graph tracing). Tracing a backbone's training step costs seconds
        per phase, more than a few steps on a handful of images take (tests, smoke runs); real
        datasets want it False. Not part of the checkpoint fingerprint: it changes no result.

    Attributes
    ----------
    classes_ : ndarray
    model_ : keras.Model
    history_ : list of dict
        One record per phase: ``phase``, ``epochs``, ``loss``, ``val_loss``, ``accuracy``,
        ``val_accuracy``, ``learning_rate`` (lists per epoch), ``monitor``, ``best`` (its best
        value), ``trainable_weights``, ``trainable_params``, ``trainable_layers``, ``compiled``,
        ``compile_count``, ``reverted``, ``forward_passes``, ``seconds`` (wall time of the
        phase).
    fit_seconds_ : float
        Wall time of ``fit`` (model building, warm start and every phase).
    compile_count_ : int
        Compilations during fit: one per phase, after its ``trainable`` change.
    backbone_forward_passes_ : int
        Images sent through the backbone during fit (train and validation, every epoch, plus the
        warm-start features unless they came from the cache).
    input_size_ : (int, int)
    """

    # Saved models and pickles name the class by its public path, which stays put when the
    # modules inside featx.finetune move.
    __module__ = "featx.finetune"

    def __init__(self, backbone: str = "efficientnet_lite0", *, weights: str | None = "imagenet",
                 input_size=None, strategy: str = "staged", strategy_params=None, schedule=None,
                 epochs: int = 10, learning_rate: float | None = None, batch_size: int = 32,
                 augment="default", dropout: float = 0.2, l2: float = 0.0,
                 warm_start: bool = True, class_weight="balanced", validation_split: float = 0.1,
                 validation_data=None, early_stopping: bool = True, patience: int = 3,
                 monitor: str = "val_loss", lr_schedule="constant", checkpoint_dir=None,
                 cache=None, decoder="pillow",
                 mixed_precision="auto",
                 random_state=None, verbose: int = 1, run_eagerly: bool = False):
        self.backbone = backbone
        self.weights = weights
        self.input_size = input_size
        self.strategy = strategy
        self.strategy_params = strategy_params
        self.schedule = schedule
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.augment = augment
        self.dropout = dropout
        self.l2 = l2
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.validation_split = validation_split
        self.validation_data = validation_data
        self.early_stopping = early_stopping
        self.patience = patience
        self.monitor = monitor
        self.lr_schedule = lr_schedule
        self.checkpoint_dir = checkpoint_dir
        self.cache = cache
        self.decoder = decoder
        self.mixed_precision = mixed_precision
        self.random_state = random_state
        self.verbose = verbose
        self.run_eagerly = run_eagerly

    # ------------------------------------------------------------------ validation
    #: What each parameter accepts, declared once (the extractor's rows are
    #: :data:`featx.extract.config.EXTRACTOR_PARAMS`, shared with the frozen-feature side).
    _parameter_constraints: dict[str, Constraint] = {
        **{k: EXTRACTOR_PARAMS[k] for k in ("backbone", "weights", "input_size", "decoder")},
        "strategy": Options(lambda: list(STRATEGIES)),
        "epochs": Interval(int, 1),
        "batch_size": Interval(int, 1),
        "learning_rate": Interval(float, 0, none=True),
        "dropout": Interval(float, 0, 1, high_open=True),
        "l2": Interval(float, 0),
        "validation_split": Interval(float, 0, 1, high_open=True),
        "patience": Interval(int, 0),
        "class_weight": Rule(_check_class_weight, "'balanced', a dict or None"),
        "monitor": Options(tuple(_MONITORS)),
        "lr_schedule": Rule(_checked(parse_lr_schedule), "a learning-rate schedule (see "
                            "featx.finetune.train.parse_lr_schedule)"),
        "augment": Rule(_checked(resolve_augment), "'default', True, False, None or a dict of "
                        "augmentation settings"),
        "mixed_precision": Rule(_checked(resolve_precision), "'auto', True or False"),
    }

    def _check_params(self) -> None:
        validate_params(self._parameter_constraints, self.get_params(deep=False))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, warm_start_features=None) -> FineTunedClassifier:
        """Fit on images.

        Parameters
        ----------
        X : list of paths, ImageDataset, or uint8 array (N, H, W, 3)
        y : array-like of labels; optional when ``X`` is an ImageDataset.
        warm_start_features : array (N, D), optional
            Pooled backbone features aligned with ``X`` (e.g. ``FeatureSet.features`` from the
            cache), used for the warm start instead of a forward pass.
        """
        self._check_params()
        start = time.perf_counter()
        items, labels = as_images(X, y)
        if labels is None:
            raise ValueError("y is required unless X is an ImageDataset")
        labels = np.asarray(labels)
        if len(labels) != len(items):
            raise ValueError(f"X has {len(items)} images but y has {len(labels)} labels")
        self.classes_, y_idx = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes, got {self.classes_.tolist()}")
        seed = None
        if self.random_state is not None:
            seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        try:
            with seeded(seed):  # the caller's Python and NumPy random states come back afterwards
                self._fit_seeded(X, items, y_idx, seed, warm_start_features)
        finally:
            self.__dict__.pop("_seed", None)  # fit's own: not a fitted attribute
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _fit_seeded(self, X, items, y_idx, seed, warm_start_features) -> None:
        self._seed = seed  # each training phase re-seeds from it (_train_phase)
        spec = get_backbone_spec(self.backbone)
        size = self.input_size or spec.input_size
        size = (size, size) if isinstance(size, int | np.integer) else size
        self.input_size_ = (int(size[0]), int(size[1]))
        source = ImageSource(items, self.input_size_, self.decoder)
        train_idx, val = self._validation_batches(source, y_idx, seed)
        train = Batches(source, train_idx, y_idx[train_idx], self._sample_weight(y_idx[train_idx]),
                        batch_size=self.batch_size, shuffle=True, seed=seed)

        with dtype_policy(resolve_precision(self.mixed_precision)):
            base = build_base(self.backbone, weights=self.weights, input_size=self.input_size_)
            self.model_ = build_model(
                base, preprocessing_layer(self.backbone), len(self.classes_), self.input_size_,
                augment=resolve_augment(self.augment), dropout=self.dropout, l2=self.l2, seed=seed)
        phases = resolve_phases(self.strategy, base, spec, epochs=int(self.epochs),
                                learning_rate=self.learning_rate, schedule=self.schedule,
                                strategy_params=self.strategy_params)
        if self.warm_start:
            phases = [Phase("warm_start", (), 0, WARMUP_LR), *phases]
        elif phases[0].layers != ():  # a head-only first phase is its own warm-up
            phases = [Phase("warmup", (), int(self.epochs), self.learning_rate or WARMUP_LR),
                      *phases]
        self._run_phases(base, phases, source, X, train, val, y_idx, train_idx,
                         warm_start_features)

    def _validation_batches(self, source, y_idx, seed):
        n = len(source)
        if self.validation_data is not None:
            vd = self.validation_data
            vx, vy = vd if isinstance(vd, tuple) else (vd, None)
            v_items, v_labels = as_images(vx, vy)
            v_labels = np.asarray(v_labels)
            unknown = sorted(set(v_labels.tolist()) - set(self.classes_.tolist()))
            if unknown:
                raise ValueError(f"validation_data has labels {unknown} not in y's classes "
                                 f"{self.classes_.tolist()}")
            v_y = np.searchsorted(self.classes_, v_labels)
            v_source = ImageSource(v_items, self.input_size_, self.decoder)
            return np.arange(n), Batches(v_source, np.arange(len(v_source)), v_y,
                                         batch_size=self.batch_size)
        if not self.validation_split:
            return np.arange(n), None
        counts = np.bincount(y_idx)
        n_val = int(np.ceil(self.validation_split * n)) if self.validation_split < 1 else int(
            self.validation_split)
        # Stratify when every class can give one image and the held-out set can hold every class.
        stratify = y_idx if counts.min() >= 2 and n_val >= len(counts) else None
        train_idx, val_idx = train_test_split(np.arange(n), test_size=self.validation_split,
                                              stratify=stratify, random_state=seed)
        return np.sort(train_idx), Batches(source, np.sort(val_idx), y_idx[np.sort(val_idx)],
                                           batch_size=self.batch_size)

    def _sample_weight(self, y):
        if self.class_weight is None:
            return None
        k = len(self.classes_)
        if self.class_weight == "balanced":
            present = np.unique(y)
            w = np.ones(k)
            w[present] = compute_class_weight("balanced", classes=present, y=y)
        else:
            w = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        return w[y]

    # ------------------------------------------------------------------ phases
    def _run_phases(self, base, phases, source, X, train, val, y_idx, train_idx, features):
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("verbose", "checkpoint_dir", "validation_data", "run_eagerly")}
        progress = CheckpointState(self.checkpoint_dir,
                                   fingerprint(params, self.classes_, len(source)))
        self.history_, self.compile_count_, self.backbone_forward_passes_ = [], 0, 0
        self._best = None
        start, initial_epoch, partial = 0, 0, []
        state = progress.state
        if state["phase"] is not None:  # resume
            self.model_.load_weights(progress.weights_path(state["phase"]))
            self.history_ = list(state["history"])
            start = state["phase"] + 1 if state["done"] else state["phase"]
            initial_epoch = 0 if state["done"] else state["epoch"]
            partial = [] if state["done"] else list(state.get("partial", []))
            self.backbone_forward_passes_ = sum(r["forward_passes"] for r in self.history_)
            bests = [r["best"] for r in self.history_ if r.get("best") is not None]
            self._best = (max if self._higher_is_better else min)(bests, default=None)
        for i, phase in enumerate(phases):
            if i < start:
                continue
            t0 = time.perf_counter()
            set_trainable(base, phase.layers)
            self._compile(base, phase)
            if phase.name == "warm_start":
                record = self._warm_start(base, source, X, val, y_idx, train_idx, features)
            else:
                record = self._train_phase(i, phase, train, val, progress, initial_epoch, partial)
                initial_epoch, partial = 0, []
            record.update(self._trainable_summary(base), compiled=True,
                          compile_count=self.compile_count_,
                          seconds=time.perf_counter() - t0)
            self.history_.append(record)
            self.backbone_forward_passes_ += record["forward_passes"]
            if progress.dir is not None:
                self.model_.save_weights(progress.weights_path(i))
                progress.write(phase=i, epoch=record["epochs"], done=True, history=self.history_,
                               partial=[])

    @property
    def _higher_is_better(self) -> bool:
        return _MONITORS[self.monitor]

    def _compile(self, base, phase: Phase) -> None:
        """Recompile after every ``trainable`` change: Keras fixes the trainable set at compile."""
        mult = variable_multipliers(base, phase.lr_multipliers)
        self.model_.compile(optimizer=DiscriminativeAdam(phase.learning_rate, lr_multipliers=mult),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                            run_eagerly=bool(self.run_eagerly))
        self.compile_count_ += 1

    def _trainable_summary(self, base) -> dict:
        weights = self.model_.trainable_weights
        return {"trainable_weights": len(weights),
                "trainable_params": int(sum(np.prod(w.shape) for w in weights)),
                "trainable_layers": sum(bool(u.trainable_weights) for u in unit_layers(base))}

    def _train_phase(self, i, phase, train, val, progress, initial_epoch, partial) -> dict:
        if getattr(self, "_seed", None) is not None:
            # The phase's own random streams (dropout, augmentation, Keras' global generator),
            # whatever drew from them before: a cold cache's extraction in the warm start
            # builds a backbone, which draws from Python's and Keras' global generators.
            keras.utils.set_random_seed(self._seed + i)
        monitor = self.monitor if val is not None else self.monitor.removeprefix("val_")
        callbacks = [lr_callback(self.lr_schedule, phase.learning_rate, phase.epochs)]
        if self.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, patience=self.patience, restore_best_weights=True))
        callbacks += progress.callbacks(i, self.history_)
        if self.verbose:  # one line per epoch, anywhere; Keras's own bar only with verbose >= 2
            callbacks.append(epoch_lines(f"fine-tune {self.backbone} phase {i} {phase.name!r}",
                                         phase.epochs))
        before = self.model_.get_weights() if self.early_stopping else None
        # shuffle=False: Batches shuffles itself with its own seeded generator (Keras would
        # reorder the batches again with Python's global one).
        h = self.model_.fit(train, validation_data=val, epochs=phase.epochs, shuffle=False,
                            initial_epoch=initial_epoch, callbacks=callbacks,
                            verbose=1 if self.verbose >= 2 else 0)
        logs = {k: [e[k] for e in partial if k in e] + [float(v) for v in h.history.get(k, [])]
                for k in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate")}
        ran = len(h.epoch)
        pick = max if self._higher_is_better else min
        best = pick(logs[monitor]) if logs[monitor] else None
        reverted = False
        if self.early_stopping and best is not None and self._best is not None \
                and pick(best, self._best) != best:
            self.model_.set_weights(before)  # this phase only made things worse: roll it back
            reverted = True
        elif best is not None:
            self._best = best
        n_val = 0 if val is None else len(val.indices)
        return {"phase": phase.name, "epochs": len(partial) + ran, **logs, "monitor": monitor,
                "best": best, "reverted": reverted,
                "forward_passes": ran * (len(train.indices) + n_val)}

    def _warm_start(self, base, source, X, val, y_idx, train_idx, features) -> dict:
        """Fit make_head("logreg") on pooled features; fold its scaler into the Dense layer."""
        feats, passes = self._pooled_features(source, X, train_idx, features)
        kernel, bias, head = linear_probe_dense(feats, y_idx[train_idx], len(self.classes_))
        self.model_.get_layer("classifier").set_weights([kernel, bias])
        record = {"phase": "warm_start", "epochs": 0, "loss": [], "val_loss": [],
                  "accuracy": [float(head.score(feats, y_idx[train_idx]))], "val_accuracy": [],
                  "learning_rate": [], "monitor": None, "best": None, "reverted": False}
        if val is not None:
            loss, acc = self.model_.evaluate(val, verbose=0)
            value = float(acc if self._higher_is_better else loss)
            record.update(val_loss=[float(loss)], val_accuracy=[float(acc)],
                          monitor=self.monitor, best=value)
            self._best = value
            passes += len(val.indices)
        record["forward_passes"] = passes
        record["feature_source"] = self._feature_source
        return record

    def _pooled_features(self, source, X, train_idx, features) -> tuple[np.ndarray, int]:
        """Train-set pooled features: given, from the extraction cache, or from the model itself."""
        if features is not None:
            feats = np.asarray(features, dtype=np.float64)
            if feats.shape[0] != len(source):
                raise ValueError(f"warm_start_features has {feats.shape[0]} rows for "
                                 f"{len(source)} images")
            self._feature_source = "given"
            return feats[train_idx], 0
        pretrained = check_weights(self.weights) is not None  # "none" is random weights too
        if pretrained and self.cache is not False and hasattr(X, "class_names"):
            before = forward_pass_count()
            fs = extract_features(X, backbone=self.backbone, weights=self.weights,
                                  input_size=self.input_size_, cache=self.cache,
                                  decoder=self.decoder, verbose=0)
            if source.paths is not None and list(fs.paths) == source.paths:
                self._feature_source = "cache"
                return np.asarray(fs.features, np.float64)[train_idx], forward_pass_count() - before
        pool = keras.Model(self.model_.inputs, self.model_.get_layer("pool").output)
        batches = Batches(source, train_idx, batch_size=self.batch_size)
        self._feature_source = "model"
        return np.asarray(pool.predict(batches, verbose=0), np.float64), len(train_idx)

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` in ``classes_`` order."""
        check_is_fitted(self, "model_")
        items, _ = as_images(X)
        source = ImageSource(items, self.input_size_, self.decoder)
        batches = Batches(source, np.arange(len(source)), batch_size=self.batch_size)
        return np.asarray(self.model_.predict(batches, verbose=0), dtype=np.float64)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean accuracy on ``X``; ``y`` may be left out when ``X`` is an ImageDataset (its
        labels), as in :meth:`fit`."""
        y = labelled_targets(X, y, f"{type(self).__name__}.score")
        return super().score(X, y, sample_weight=sample_weight)
