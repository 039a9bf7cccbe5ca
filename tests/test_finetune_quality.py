"""Fine-tuning that pays on a CPU: the ``top_blocks`` row (top blocks at once, discriminative
learning rates), early stopping on a chosen validation metric, and the time of every phase.

A tiny real model (``mobilenet_v2``, random weights, 32 px) on 20 real JPEGs; one module-scoped
fit shared by the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from featx.backbones import build_base, get_backbone_spec
from featx.finetune import FineTunedClassifier
from featx.finetune.strategies import STRATEGIES, layer_blocks, resolve_phases

BACKBONE = "mobilenet_v2"
TINY = {"weights": None, "input_size": (32, 32), "batch_size": 10, "random_state": 0,
        "run_eagerly": True, "augment": None}


@pytest.fixture(scope="module")
def tiny_base():
    return build_base(BACKBONE, weights=None, input_size=(32, 32))


@pytest.fixture(scope="module")
def images(tmp_path_factory, make_images):
    files = make_images(tmp_path_factory.mktemp("ftq-images"), 10,
                        classes={"red": (210, 40, 40), "green": (40, 190, 50)}, size=40)
    return list(files), np.array(files.labels)


@pytest.fixture(scope="module")
def fitted(images):
    paths, y = images
    clf = FineTunedClassifier(BACKBONE, strategy="top_blocks", epochs=2, validation_split=0.2,
                              monitor="val_accuracy", patience=1, **TINY)
    return clf.fit(paths, y)


def phases(base, name="top_blocks", **params):
    return resolve_phases(name, base, get_backbone_spec(BACKBONE), epochs=2, learning_rate=None,
                          schedule=None, strategy_params=params or None)


def test_top_blocks_trains_the_top_blocks_with_decaying_rates(tiny_base):
    assert {"staged", "top_blocks"} <= set(STRATEGIES)  # the staged schedule stays
    blocks = layer_blocks(tiny_base, get_backbone_spec(BACKBONE))
    top3 = list(blocks)[-3:]
    (phase,) = phases(tiny_base)
    assert phase.name == "top_blocks:3" and phase.learning_rate == 1e-4 and phase.epochs == 2
    assert set(phase.layers) == {u for b in top3 for u in blocks[b]}
    rates = [phase.lr_multipliers[blocks[b][0]] for b in top3]
    assert rates == [0.25, 0.5, 1.0]  # lr_decay 0.5: each block below half the one above
    (flat,) = phases(tiny_base, n_blocks=2, lr_decay=1.0)
    assert flat.lr_multipliers == {} and len(flat.layers) < len(phase.layers)
    with pytest.raises(ValueError, match=r"strategy_params\['n_blocks'\] must be an int >= 1, "
                                         r"got 0"):
        phases(tiny_base, n_blocks=0)


def test_fit_warm_starts_then_trains_and_times_every_phase(fitted):
    history = fitted.history_
    assert [r["phase"] for r in history] == ["warm_start", "top_blocks:3"]
    assert all(r["seconds"] > 0 for r in history)
    assert fitted.fit_seconds_ >= sum(r["seconds"] for r in history)
    trained = history[1]
    assert trained["monitor"] == "val_accuracy" and 1 <= trained["epochs"] <= 2
    assert trained["best"] == max(trained["val_accuracy"])
    assert history[0]["best"] == history[0]["val_accuracy"][0]  # the warm start's, to beat
    assert trained["reverted"] == (trained["best"] < history[0]["best"])
    # the trunk below the top 3 blocks stays frozen (MobileNetV2: they hold 53% of the weights)
    assert 0 < trained["trainable_params"] < 0.6 * fitted.model_.count_params()


def test_fitted_model_predicts(fitted, images):
    paths, y = images
    proba = fitted.predict_proba(paths[:4])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(fitted.predict(paths)) <= set(y)


def test_monitor_is_checked(images):
    paths, y = images
    with pytest.raises(ValueError, match=r"monitor must be one of \['val_loss', 'val_accuracy'\], "
                                         r"got 'val_acc' \(did you mean 'val_accuracy'\?\)"):
        FineTunedClassifier(BACKBONE, monitor="val_acc", **TINY).fit(paths, y)
