"""What featx wrote before its modules moved (tests/data/legacy, made at commit 24c83d5 by
``make_legacy.py`` there) still works: the feature cache is reused with 0 backbone passes, and
saved models load and predict as they did (within the tolerances of tests/helpers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import assert_same, assert_same_proba

import featx
from featx.cache import DamagedCacheWarning, dataset_file
from featx.extract import forward_pass_count
from featx.extract.config import ExtractorConfig
from featx.extract.driver import request_digest

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


def _old_cache(photos, tmp_path) -> tuple[Path, Path]:
    """A copy of the old cache as if it had been made in this checkout: its dataset file (which
    records where the photos were, and is named after that folder) names the photos where they
    are now. Returns the cache and that file."""
    cache = tmp_path / "cache"
    shutil.copytree(LEGACY / "cache", cache)
    (old,) = cache.glob("*.h5")
    here = dataset_file(cache, photos.name, ExtractorConfig(**EXTRACTOR), photos.paths)
    old.rename(here)
    with h5py.File(here, "r+") as f:  # unsealed: written before featx sealed its files
        names = [Path(p.decode()).name for p in f["paths"][()]]
        assert names == [Path(p).name for p in photos.paths]
        del f["paths"]
        f.create_dataset("paths", data=[p.encode() for p in photos.paths],
                         dtype=h5py.string_dtype("utf-8"))
        ids = [i.decode() for i in f["ids"][()]]
        f.attrs["request_digest"] = request_digest(photos, ids)
    return cache, here


def test_old_cache_is_reused_without_a_backbone_pass(photos, expected, tmp_path):
    """Its dataset file (unsealed, rows inside) agrees with the request: served as it is."""
    cache, _ = _old_cache(photos, tmp_path)
    before = forward_pass_count()
    fs = featx.extract_features(photos, **EXTRACTOR, cache=str(cache), verbose=0)
    assert forward_pass_count() == before, "the old dataset file was not reused"
    assert list(fs.ids) == list(expected["ids"])
    np.testing.assert_array_equal(fs.features, expected["features"])


def test_an_old_unsealed_segment_alone_is_extracted_again(photos, expected, tmp_path):
    """Without its dataset file, the old segment (no seal, no row digests) cannot be vouched
    for: it is moved aside and its rows computed again, equal to the old ones."""
    cache, dfile = _old_cache(photos, tmp_path)
    dfile.unlink()
    before = forward_pass_count()
    with pytest.warns(DamagedCacheWarning, match="has no seal"):
        fs = featx.extract_features(photos, **EXTRACTOR, cache=str(cache), verbose=0)
    assert forward_pass_count() - before == len(photos)
    assert list(fs.ids) == list(expected["ids"])
    assert_same(fs.features, expected["features"])
    assert any((cache / "damaged" / "rows").rglob("seg-*.h5"))


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
