"""Contracts shared across stages: one image-input contract for the three estimators, one message
per parameter mistake, and no state left behind in the caller's process."""

from __future__ import annotations

import random

import numpy as np
import pytest

from featx import FeatureExtractor, FineTunedClassifier, TransferClassifier, extract_features
from featx.data import IMAGE_INPUTS, ImageDataset
from featx.finetune.data import memory_budget
from featx.images import read_image

ESTIMATORS = {
    "FeatureExtractor": lambda: FeatureExtractor("mobilenet_v2", weights=None, input_size=32),
    "TransferClassifier": lambda: TransferClassifier("mobilenet_v2", weights=None,
                                                     input_size=32, cache=False),
    "FineTunedClassifier": lambda: FineTunedClassifier("mobilenet_v2", weights=None,
                                                       input_size=32, epochs=1, random_state=0,
                                                       run_eagerly=True),
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory, make_images):
    """Four real JPEG files of two colours."""
    files = make_images(tmp_path_factory.mktemp("contract-photos"), 2, size=40, noise=0,
                        classes={"red": (200, 30, 30), "green": (30, 200, 30)})
    return list(files), np.array(files.labels)


def _fit(name, X, y):
    est = ESTIMATORS[name]()
    return est.fit(X) if name == "FeatureExtractor" else est.fit(X, y)


BAD_INPUTS = {
    "single path": ("a.jpg", "got the single path 'a.jpg'; wrap it in a list"),
    "float images": (np.zeros((4, 8, 8, 3), "float32"), "image arrays must be uint8"),
    "list of arrays": ([np.zeros((8, 8, 3), "uint8")] * 4, "stack same-size uint8 images"),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
def test_every_estimator_refuses_the_same_inputs_with_the_same_type_error(name, bad, photos):
    """``docs/design.md``'s promise: anything else than the accepted inputs is a TypeError that
    names X and lists them; FineTunedClassifier used to clip float arrays silently and to raise
    ValueError for a single path."""
    X, why = BAD_INPUTS[bad]
    y = photos[1]
    with pytest.raises(TypeError) as info:
        _fit(name, X, y)
    message = str(info.value)
    assert message.startswith(f"X must be {IMAGE_INPUTS}"), message
    assert why in message


@pytest.mark.parametrize("name", ["TransferClassifier", "FineTunedClassifier"])
def test_paths_datasets_and_uint8_arrays_are_accepted_alike(name, photos):
    paths, y = photos
    arrays = np.stack([read_image(p) for p in paths])
    by_paths = _fit(name, paths, y).predict(paths)
    ds = ImageDataset.from_paths(paths, list(y))
    on_ds = _fit(name, ds, None)
    assert list(on_ds.predict(paths)) == list(by_paths)
    # score takes a dataset without y, as fit does
    assert on_ds.score(ds) == on_ds.score(paths, y)
    with pytest.raises(TypeError, match=r"score needs y .* unless X is an ImageDataset"):
        on_ds.score(paths)
    assert len(_fit(name, arrays, y).predict(arrays)) == len(paths)


def _message(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


def test_the_same_decoder_mistake_gets_the_same_message_everywhere(photos):
    paths, y = photos
    ds = ImageDataset.from_paths(paths, list(y))
    messages = {
        "read_image": _message(lambda: read_image(paths[0], decoder="cv")),
        "extract_features": _message(lambda: extract_features(
            ds, "mobilenet_v2", weights=None, input_size=32, decoder="cv", cache=False)),
        "FeatureExtractor": _message(lambda: FeatureExtractor(
            "mobilenet_v2", weights=None, decoder="cv").fit(paths)),
        "FineTunedClassifier": _message(lambda: FineTunedClassifier(
            "mobilenet_v2", weights=None, decoder="cv").fit(paths, y)),
    }
    assert set(messages.values()) == {
        "decoder must be one of ['pillow', 'opencv'], got 'cv'"}, \
        messages


def test_the_same_batch_size_mistake_gets_the_same_message_everywhere(photos):
    paths, y = photos
    ds = ImageDataset.from_paths(paths, list(y))
    messages = {
        "extract_features": _message(lambda: extract_features(
            ds, "mobilenet_v2", weights=None, input_size=32, batch_size=0, cache=False)),
        "FeatureExtractor": _message(lambda: FeatureExtractor(
            "mobilenet_v2", weights=None, batch_size=0).fit(paths)),
    }
    assert set(messages.values()) == {
        "batch_size must be None or an int >= 1, got 0 of type int"}, messages


def test_fine_tuning_leaves_the_callers_random_state_as_it_was(photos):
    """random_state seeds Keras, Python and NumPy during fit only."""
    paths, y = photos
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    FineTunedClassifier("mobilenet_v2", weights=None, input_size=32, epochs=1,
                        validation_split=0.0, random_state=7, run_eagerly=True).fit(paths, y)
    assert (random.random(), np.random.rand()) == expected


def test_memory_budget_is_read_at_call_time(monkeypatch):
    monkeypatch.delenv("FEATX_FINETUNE_MEMORY", raising=False)
    assert memory_budget() == 2 << 30
    monkeypatch.setenv("FEATX_FINETUNE_MEMORY", "1000")
    assert memory_budget() == 1000
