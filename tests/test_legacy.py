"""What featx wrote before its modules moved (tests/data/legacy, made at commit 24c83d5 by
``make_legacy.py`` there) still works: the feature cache is reused with 0 backbone passes, and
saved models load and predict as they did (within the tolerances of tests/helpers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_same, assert_same_proba

import featx
from featx.extract import forward_pass_count

LEGACY = Path(__file__).parent / "data" / "legacy"
EXTRACTOR = {"backbone": "efficientnet_lite0", "weights": None, "input_size": 64}


@pytest.fixture(scope="module")
def expected():
    return np.load(LEGACY / "expected.npz")


@pytest.fixture(scope="module")
def photos(expected):
    """The same 16 bundled photos, in the same order, found by their relative names."""
    test = featx.load_clothing_mini()["test"]
    root = Path(test.paths[0]).parents[2]
    paths = [str(root / name) for name in expected["names"]]
    index = {p: i for i, p in enumerate(test.paths)}
    return test.subset([index[p] for p in paths])


def test_old_cache_is_reused_without_a_backbone_pass(photos, expected, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(LEGACY / "cache", cache)
    before = forward_pass_count()
    fs = featx.extract_features(photos, **EXTRACTOR, cache=str(cache), verbose=0)
    assert forward_pass_count() == before, "the old row store was not reused"
    assert list(fs.ids) == list(expected["ids"])
    np.testing.assert_array_equal(fs.features, expected["features"])


def test_old_cache_holds_what_the_backbone_computes_today(photos, expected):
    """The reused rows are right, not merely present: a fresh pass (today's releases, the
    default runtime) agrees with them."""
    fresh = featx.extract_features(photos, **EXTRACTOR, cache=False, verbose=0)
    assert_same(fresh.features, expected["features"])


@pytest.mark.parametrize("name", ["transfer", "finetuned"])
def test_old_saved_model_predicts_as_it_did(name, photos, expected):
    """The same probabilities, up to what today's releases and runtime change (PROBA_ATOL);
    the predicted classes are identical."""
    model = featx.load(LEGACY / f"{name}.featx")
    proba = model.predict_proba(photos.paths)
    assert_same_proba(proba, expected[name])
    np.testing.assert_array_equal(proba.argmax(axis=1), expected[name].argmax(axis=1))
