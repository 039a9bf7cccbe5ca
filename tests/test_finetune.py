"""FineTunedClassifier: BatchNorm rule, strategy table, phases, warm start, persistence, compare.

A tiny real model (featx's ``mobilenet_v2`` row, random weights, 32 px) on 20 real JPEGs whose
colour is their class. Fits are module-scoped and shared by several tests.
"""

from __future__ import annotations

import json
import pickle
import warnings

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from featx.backbones import build_base, get_backbone_spec
from featx.data import ImageDataset
from featx.finetune import FineTunedClassifier
from featx.finetune.strategies import (
    STRATEGIES,
    DiscriminativeAdam,
    layer_blocks,
    resolve_phases,
    set_trainable,
    unit_layers,
)
from featx.finetune.train import LR_SCHEDULES, fold_scaler_into_linear
from featx.heads import make_head
from featx.utils.runtime import dtype_policy, resolve_precision

# Eager Keras: on 20 images, tracing the training graph costs more than training (graph mode is
# covered by the DiscriminativeAdam test).
TINY = {"weights": None, "input_size": (32, 32), "batch_size": 10, "random_state": 0,
        "run_eagerly": True}
BACKBONE = "mobilenet_v2"
COLOURS = {"red": (210, 40, 40), "green": (40, 190, 50)}


@pytest.fixture(scope="module")
def images(tmp_path_factory, make_images):
    """20 JPEGs, 48 px, noisy solid colours: learnable signal (colour = class). Noise of +-40
    (a standard deviation of 23, near the 25 of the normal noise these images once had)."""
    files = make_images(tmp_path_factory.mktemp("ft-images"), 10, classes=COLOURS, size=48,
                        noise=40)
    return list(files), np.array(files.labels)


@pytest.fixture(scope="module")
def staged(images, tmp_path_factory):
    """The default strategy, two stages of one epoch, validation split, checkpoints."""
    paths, y = images
    ckpt = tmp_path_factory.mktemp("ckpt")
    clf = FineTunedClassifier(BACKBONE, strategy="staged", epochs=2, validation_split=0.2,
                              strategy_params={"lr_decay": 0.5}, checkpoint_dir=str(ckpt),
                              **TINY)
    return clf.fit(paths, y), ckpt


# Random weights never learn here: with BatchNorm in inference mode (moving mean 0, variance 1)
# a randomly initialised trunk shrinks every image to ~1e-15. Tests that need a learnable signal
# use EfficientNet-Lite0's ImageNet weights, which ship in an installed package (offline).
PRETRAINED = {**TINY, "weights": "imagenet"}


@pytest.fixture(scope="module")
def from_scratch(images):
    """Head warm-up from a random Dense (3 epochs), then the top blocks train (3 epochs)."""
    paths, y = images
    # No dropout and no augmentation: with one step per epoch the loss must go down on any
    # backend, rather than depend on which units one backend's RNG happens to drop.
    clf = FineTunedClassifier("efficientnet_lite0", strategy="blocks", warm_start=False,
                              epochs=3, augment=None, dropout=0.0, validation_split=0.0,
                              early_stopping=False, **PRETRAINED)
    return clf.fit(paths, y)


@pytest.fixture(scope="module")
def tiny_base():
    return build_base(BACKBONE, weights=None, input_size=(32, 32))


def _base(model):
    return next(lyr for lyr in model.layers if isinstance(lyr, keras.Model))


def _bn_stats(base):
    """Every BatchNorm weight (gamma, beta, moving mean and variance) by path."""
    return {w.path: keras.ops.convert_to_numpy(w) for lyr in base._flatten_layers()
            if isinstance(lyr, keras.layers.BatchNormalization) for w in lyr.weights}


# ----------------------------------------------------------------------------- BatchNorm rule
def test_batchnorm_statistics_unchanged_by_full_fine_tuning(images):
    """The classic pitfall: fine-tuning must not update moving mean/variance."""
    paths, y = images
    clf = FineTunedClassifier(BACKBONE, strategy="full", epochs=1, learning_rate=1e-3,
                              augment=None, **TINY).fit(paths, y)
    # Rebuild the starting base: fit seeds Keras the same way before building it.
    keras.utils.set_random_seed(int(np.random.RandomState(0).randint(2**31 - 1)))
    start = build_base(BACKBONE, weights=None, input_size=(32, 32))
    stats0, stats1 = _bn_stats(start), _bn_stats(_base(clf.model_))
    assert stats0 and set(stats0) == set(stats1)
    for path in stats0:
        np.testing.assert_array_equal(stats1[path], stats0[path], err_msg=path)
    # ... while the convolution kernels did train.
    kernel0 = start.get_layer("Conv1").kernel
    kernel1 = _base(clf.model_).get_layer("Conv1").kernel
    assert not np.allclose(keras.ops.convert_to_numpy(kernel0), keras.ops.convert_to_numpy(kernel1))
    assert all(not lyr.trainable for lyr in _base(clf.model_)._flatten_layers()
               if isinstance(lyr, keras.layers.BatchNormalization))
    assert [r["phase"] for r in clf.history_] == ["warm_start", "full"]


# ----------------------------------------------------------------------------- strategy table
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_trainable_weights(name, tiny_base):
    spec = get_backbone_spec(BACKBONE)
    phases = resolve_phases(name, tiny_base, spec, epochs=2, learning_rate=None, schedule=None,
                            strategy_params=None)
    assert phases and all(p.epochs >= 1 for p in phases)
    units = {u.name: u for u in unit_layers(tiny_base)}
    for phase in phases:
        set_trainable(tiny_base, phase.layers)
        chosen = list(units) if phase.layers is None else list(phase.layers)
        expected = sum(len(units[n].weights) for n in chosen
                       if not isinstance(units[n], keras.layers.BatchNormalization))
        assert len(tiny_base.trainable_weights) == expected
        assert not any("moving" in w.path for w in tiny_base.trainable_weights)
        assert not any(isinstance(u, keras.layers.BatchNormalization) and u.trainable
                       for u in units.values())
        if name == "frozen":
            assert tiny_base.trainable_weights == []
        if name == "full":
            non_bn = [u for u in units.values()
                      if not isinstance(u, keras.layers.BatchNormalization)]
            assert len(tiny_base.trainable_weights) == sum(len(u.weights) for u in non_bn)


def test_strategy_phase_shapes(tiny_base):
    spec = get_backbone_spec(BACKBONE)
    blocks = layer_blocks(tiny_base, spec)
    assert list(blocks)[0] == "stem" and list(blocks)[-1] == "top"

    def phases(name, **kw):
        return resolve_phases(name, tiny_base, spec, epochs=4, learning_rate=None,
                              schedule=kw.pop("schedule", None), strategy_params=kw or None)

    assert len(phases("last_n", n=5)[0].layers) == 5
    assert set(phases("blocks", blocks=["block_16", "top"])[0].layers) == set(
        blocks["block_16"] + blocks["top"])
    staged = phases("staged", schedule=[("top", 1), ("block_16", 2, 1e-5)])
    assert [p.epochs for p in staged] == [1, 2] and staged[1].learning_rate == 1e-5
    assert set(staged[0].layers) < set(staged[1].layers)  # cumulative
    assert [len(p.layers) for p in phases("staged", schedule=[(3, 1), (9, 1)])] == [3, 9]
    assert phases("full")[0].learning_rate == 1e-5
    decayed = phases("blocks", blocks=["block_15", "block_16", "top"], lr_decay=0.5)[0]
    mult = decayed.lr_multipliers
    assert mult[blocks["top"][0]] == 1.0 and mult[blocks["block_15"][0]] == 0.25


def test_unknown_strategy_and_params_list_allowed(images, tiny_base):
    paths, y = images
    with pytest.raises(ValueError, match=r"strategy must be one of \['frozen', 'full'"):
        FineTunedClassifier(BACKBONE, strategy="bogus", **TINY).fit(paths, y)
    spec = get_backbone_spec(BACKBONE)
    allowed = r"not used by strategy 'last_n'; allowed: \['lr_decay', 'n'\]"
    with pytest.raises(ValueError, match=allowed):
        resolve_phases("last_n", tiny_base, spec, epochs=1, learning_rate=None, schedule=None,
                       strategy_params={"blocks": ["top"]})
    with pytest.raises(ValueError, match=r"unknown block\(s\) \['block7'\]; allowed: \['stem'"):
        resolve_phases("blocks", tiny_base, spec, epochs=1, learning_rate=None, schedule=None,
                       strategy_params={"blocks": ["block7"]})
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        FineTunedClassifier(BACKBONE, lr_schedule="step", **TINY).fit(paths, y)
    with pytest.raises(ValueError, match=r"augment has unknown option\(s\) \['blur'\]"):
        FineTunedClassifier(BACKBONE, augment={"blur": 1}, **TINY).fit(paths, y)


def test_augment_spellings():
    """The pipeline's ``augment = true/false`` spelling works in Python too."""
    from featx.finetune.augment import DEFAULT_AUGMENT, resolve_augment

    assert resolve_augment(True) == resolve_augment("default") == dict(DEFAULT_AUGMENT)
    assert resolve_augment(False) == resolve_augment(None) == {}
    assert resolve_augment({"zoom": None}) == {k: v for k, v in DEFAULT_AUGMENT.items()
                                               if k != "zoom"}
    for bad in ("strong", 1, ["flip"]):
        with pytest.raises(ValueError, match=r"augment must be 'default' \(or True\), None"):
            resolve_augment(bad)


# ----------------------------------------------------------------------------- phases, compile
def test_staged_moves_through_phases_and_recompiles_each(staged):
    clf, _ = staged
    names = [r["phase"] for r in clf.history_]
    assert names == ["warm_start", "stage1", "stage2"]
    counts = [r["trainable_weights"] for r in clf.history_]
    assert counts[0] == 2 and counts[0] < counts[1] < counts[2]  # head only, then more each stage
    assert clf.compile_count_ == len(clf.history_)
    assert [r["compile_count"] for r in clf.history_] == [1, 2, 3]
    assert all(r["compiled"] for r in clf.history_)
    # The optimizer was built for the last phase's trainable set: it was recompiled after it.
    assert len(clf.model_.optimizer._trainable_variables) == counts[-1]
    for r in clf.history_[1:]:
        assert r["epochs"] == 1 and len(r["loss"]) == len(r["val_accuracy"]) == 1
        assert r["learning_rate"] == [pytest.approx(1e-4)]
    assert clf.backbone_forward_passes_ == sum(r["forward_passes"] for r in clf.history_)


@pytest.mark.smoke
def test_short_run_lowers_training_loss(from_scratch, images):
    clf = from_scratch
    warmup, blocks = clf.history_
    assert warmup["phase"] == "warmup" and warmup["epochs"] == 3
    assert warmup["trainable_weights"] == 2
    assert warmup["loss"][-1] < warmup["loss"][0]
    assert blocks["phase"] == "blocks:block7+top" and blocks["trainable_layers"] > 0
    assert blocks["loss"][-1] < warmup["loss"][0]
    assert clf.score(*images) >= 0.9


def test_warm_start_equals_linear_probe(images, tmp_path):
    """Before any epoch, the model predicts what logreg predicts on the same pooled features."""
    paths, y = images
    clf = FineTunedClassifier("efficientnet_lite0", strategy="frozen", epochs=1,
                              validation_split=0.0, checkpoint_dir=str(tmp_path),
                              **PRETRAINED).fit(paths, y)
    with warnings.catch_warnings():  # the checkpoint's optimizer is the warm start's, unused here
        warnings.simplefilter("ignore", UserWarning)
        clf.model_.load_weights(str(tmp_path / "phase0.weights.h5"))  # the state after warm start
    pool = keras.Model(clf.model_.inputs, clf.model_.get_layer("pool").output)
    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.BILINEAR))
                  for p in paths]).astype("float32")
    feats = pool.predict(x, verbose=0)
    probe = make_head("logreg").fit(feats, y)
    np.testing.assert_array_equal(clf.predict(paths), probe.predict(feats))
    np.testing.assert_allclose(clf.predict_proba(paths), probe.predict_proba(feats), atol=1e-4)
    assert clf.history_[0]["phase"] == "warm_start" and clf.history_[0]["epochs"] == 0
    assert clf.history_[0]["feature_source"] == "model"


def test_fold_scaler_into_linear_is_exact():
    rng = np.random.default_rng(0)
    x, coef, b = rng.normal(size=(5, 4)), rng.normal(size=(3, 4)), rng.normal(size=3)
    mean, scale = rng.normal(size=4), rng.uniform(0.5, 2, size=4)
    kernel, bias = fold_scaler_into_linear(coef, b, mean, scale)
    np.testing.assert_allclose(x @ kernel + bias, ((x - mean) / scale) @ coef.T + b)


# ----------------------------------------------------------------------------- persistence
def test_pickle_round_trip_predicts_identically(staged, images):
    clf, _ = staged
    paths, _ = images
    state = clf.__getstate__()
    assert "model_" not in state and isinstance(state["_model_keras"], bytes)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(paths), clf.predict_proba(paths))
    assert again.history_ == clf.history_


def test_keras_export_loads_in_safe_mode(staged, images, tmp_path):
    clf, _ = staged
    paths, _ = images
    path = clf.export(tmp_path / "model.keras")
    model = keras.saving.load_model(path, safe_mode=True)
    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.BILINEAR))
                  for p in paths]).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), clf.predict_proba(paths), atol=1e-6)
    assert not any(isinstance(lyr, keras.layers.Lambda) for lyr in model.layers)
    assert clf.export(path) == path  # featx's own file: replaced
    from featx.errors import OutputExistsError

    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"my model")
    with pytest.raises(OutputExistsError, match="mine.keras' is a file featx did not write"):
        clf.export(mine)
    assert mine.read_bytes() == b"my model"


def test_featx_persist_hooks(staged, images, tmp_path):
    from featx.persist import load, save

    clf, _ = staged
    paths, _ = images
    with pytest.warns(UserWarning, match=r"checkpoint_dir"):  # the file's folder is not used
        again = load(save(clf, tmp_path / "ft.featx"))
    assert isinstance(again, FineTunedClassifier)
    assert again.checkpoint_dir is None and clf.checkpoint_dir is not None
    np.testing.assert_array_equal(again.predict(paths), clf.predict(paths))
    assert again.classes_.tolist() == clf.classes_.tolist()


def test_clone_and_params(staged):
    clf, _ = staged
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params()
    assert not hasattr(fresh, "model_") and not hasattr(fresh, "classes_")


def test_resume_from_checkpoint(staged, images):
    """A fit interrupted after stage1's first epoch picks up from there; a finished one redoes
    nothing."""
    clf, ckpt = staged
    paths, y = images
    state = json.loads((ckpt / "progress.json").read_text())
    assert state["phase"] == 2 and state["done"]
    again = clone(clf).fit(paths, y)  # same params, same data: nothing left to do
    assert again.compile_count_ == 0
    np.testing.assert_allclose(again.predict_proba(paths), clf.predict_proba(paths), atol=1e-6)
    # Pretend the run died after stage2's first (of two) epochs.
    again = clone(clf).set_params(schedule=[("top", 1), ("block_16", 2)])
    again.fit(paths, y)
    progress = json.loads((ckpt / "progress.json").read_text())
    progress.update(phase=2, epoch=1, done=False, history=progress["history"][:2],
                    partial=[{"loss": 9.0}])
    (ckpt / "progress.json").write_text(json.dumps(progress))
    resumed = clone(again).fit(paths, y)
    assert [r["phase"] for r in resumed.history_] == ["warm_start", "stage1", "stage2"]
    assert resumed.compile_count_ == 1  # only stage2 ran
    assert resumed.history_[2]["epochs"] == 2 and resumed.history_[2]["loss"][0] == 9.0


# ----------------------------------------------------------------------------- small parts
def test_discriminative_adam_scales_learning_rate_per_variable():
    a = keras.Variable(np.ones(3, "float32"), name="a")
    b = keras.Variable(np.ones(3, "float32"), name="b")
    opt = DiscriminativeAdam(0.1, lr_multipliers={a.path: 0.0, b.path: 0.5})
    opt.apply([np.ones(3, "float32"), np.ones(3, "float32")], [a, b])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(b), 1.0 - 0.05, rtol=1e-4)


def test_discriminative_adam_in_compiled_training():
    """Inside a traced train step (graph mode), a factor-0 layer stays put, a factor-1 one moves."""
    inputs = keras.Input((4,))
    frozen_by_lr = keras.layers.Dense(4, name="low")
    outputs = keras.layers.Dense(2, activation="softmax", name="high")(frozen_by_lr(inputs))
    model = keras.Model(inputs, outputs)
    low0 = keras.ops.convert_to_numpy(frozen_by_lr.kernel)
    high0 = keras.ops.convert_to_numpy(model.get_layer("high").kernel)
    mult = {v.path: 0.0 for v in frozen_by_lr.trainable_weights}
    model.compile(DiscriminativeAdam(1e-2, lr_multipliers=mult),
                  "sparse_categorical_crossentropy", run_eagerly=False)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model.fit(x, (x[:, 0] > 0).astype(int), epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(frozen_by_lr.kernel), low0)
    assert not np.allclose(keras.ops.convert_to_numpy(model.get_layer("high").kernel), high0)


def test_lr_schedules_and_precision_scope():
    assert LR_SCHEDULES["constant"](5, 10, 1e-3) == 1e-3
    assert LR_SCHEDULES["exp_decay"](1, 10, 1e-3, after=2) == 1e-3
    assert LR_SCHEDULES["exp_decay"](4, 10, 1e-3, after=2) < 1e-3
    assert LR_SCHEDULES["cosine"](0, 10, 1e-3) == pytest.approx(1e-3)
    assert LR_SCHEDULES["cosine"](10, 10, 1e-3) == pytest.approx(0.0)
    before = keras.config.dtype_policy().name
    with dtype_policy("mixed_float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == before
    assert resolve_precision("float32") == "float32"


def test_fit_accepts_dataset_and_arrays(images):
    paths, y = images
    ds = ImageDataset.from_paths(paths, list(y))
    arrays = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    clf = FineTunedClassifier(BACKBONE, strategy="frozen", epochs=1, validation_split=0.0,
                              augment={"rotation": None, "zoom": 0.05}, **TINY)
    clf.set_params(weights=None).fit(arrays, y)
    assert set(clf.predict(ds)) <= set(COLOURS)
    assert clf.score(ds.paths, y) >= 0.9
    assert [lyr.name for lyr in clf.model_.layers if lyr.name.startswith("aug_")] == [
        "aug_flip", "aug_zoom", "aug_brightness", "aug_contrast"]


@pytest.mark.parametrize("ft_size, source", [((32, 32), "given"), (40, "cache")])
def test_compare_fine_tunes_at_its_own_input_size(images, tmp_path, ft_size, source):
    """compare(): heads at ``input_size``, fine-tuning at ``finetune_params["input_size"]``; the
    warm start reuses the heads' features only when the sizes agree (32 == (32, 32) here)."""
    from featx.comparison import compare

    paths, y = images
    ds = ImageDataset.from_paths(paths, list(y))
    train, test = ds.split(test_size=0.3, random_state=0)
    table = compare(train, test, backbone="efficientnet_lite0", input_size=32,
                    heads=["logreg"], finetune=["frozen"], cache=tmp_path,
                    finetune_params={"epochs": 1, "batch_size": 10, "validation_split": 0.0,
                                     "input_size": ft_size, "run_eagerly": True})
    assert table.names == ["logreg", "finetune:frozen"]
    est = table["finetune:frozen"]["estimator"]
    assert est.input_size_ == ((32, 32) if source == "given" else (40, 40))
    assert est.history_[0]["feature_source"] == source
    assert est.cache == tmp_path  # the warm start read (and filled) compare's cache
    assert est.decoder == "pillow"
    assert (len(list(tmp_path.rglob("*.h5"))) > 0) and table["logreg"]["accuracy"] >= 0.5
    assert est.predict(test.paths).shape == (len(test),)


def test_same_seed_same_numbers_whatever_the_cache_held(images, tmp_path):
    """One seed, one dataset: the same history whether the warm start's features had to be
    extracted first (a cold cache: the extraction builds a backbone, which draws from Python's
    and Keras' global generators) or were read from the cache."""
    from featx.extract import forward_pass_count
    from featx.utils.config import config_context

    paths, y = images
    ds = ImageDataset.from_paths(paths, list(y))
    params = {**PRETRAINED, "batch_size": 4, "strategy": "frozen", "epochs": 1,
              "validation_split": 0.2, "cache": tmp_path}
    runs = []
    with config_context(runtime="keras"):  # the extraction builds its backbone in this process
        for _ in range(2):
            before = forward_pass_count()
            clf = FineTunedClassifier("efficientnet_lite0", **params).fit(ds)
            runs.append((forward_pass_count() - before,
                         [(r["phase"], r["loss"], r["val_loss"], r["val_accuracy"])
                          for r in clf.history_]))
    (cold, cold_history), (warm, warm_history) = runs
    assert cold > 0 and warm == 0  # the first fit extracted, the second read the cache
    assert clf.history_[0]["feature_source"] == "cache"
    assert cold_history == warm_history
    assert not hasattr(clf, "_seed")


def test_opencv_decoder_fits_and_rejects_unknown(images):
    """The fine-tuner decodes paths with its ``decoder`` (OpenCV here) and validates the name."""
    pytest.importorskip("cv2")
    paths, y = images
    clf = FineTunedClassifier(BACKBONE, strategy="frozen", epochs=1, validation_split=0.0,
                              decoder="opencv", **TINY).fit(paths, y)
    assert clf.predict(paths).shape == (20,)
    with pytest.raises(ValueError, match=r"decoder must be one of .*'opencv'.*, got 'cv2'"):
        FineTunedClassifier(BACKBONE, decoder="cv2", **TINY).fit(paths, y)


def test_random_weights_spelled_none_warm_start_from_the_model_itself(images):
    """weights="none" is random initialisation: the warm start must read the model's own pooled
    features, not the cache's (seeded) random network, exactly as with weights=None."""
    paths, y = images
    ds = ImageDataset.from_paths(paths, list(y))
    clf = FineTunedClassifier(BACKBONE, strategy="frozen", epochs=1, validation_split=0.0,
                              **{**TINY, "weights": "none"}).fit(ds)
    assert clf.history_[0]["feature_source"] == "model"
