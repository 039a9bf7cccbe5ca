"""featx.distributed without Ray: the friendly error, engine validation, the no-op local backend.

These always run (the default test install has no Ray); ``tests/test_extract_ray.py`` runs the
engine.
"""

from __future__ import annotations

import sys

import pytest
from helpers import MODEL
from sklearn.datasets import make_classification

import featx
from featx.distributed import check_engine, joblib_backend
from featx.evaluate import evaluate_heads
from featx.extract import extract_on_ray as extract_features

HINT = r"pip install 'featx\[ray\]'"


@pytest.fixture
def no_ray(monkeypatch):
    """Make ``import ray`` fail as it does where Ray is not installed."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_missing_ray_names_the_pip_command(tmp_path, no_ray, make_dataset, make_images):
    ds = make_dataset(make_images(tmp_path / "i", 2))
    with pytest.raises(ImportError, match=HINT):
        featx.extract_features(ds, engine="ray", cache=tmp_path, **MODEL)
    with pytest.raises(ImportError, match=HINT):
        extract_features(ds, cache=False, **MODEL)
    with pytest.raises(ImportError, match=HINT), joblib_backend("ray"):
        pass
    assert not list(tmp_path.glob("*.h5"))  # failed before doing any work


def test_engine_and_address_are_validated(tmp_path, make_dataset, make_images):
    ds = make_dataset(make_images(tmp_path / "i", 2))
    engine = r"engine must be one of \['local', 'ray'\], got 'spark'"
    with pytest.raises(ValueError, match=engine):
        featx.extract_features(ds, engine="spark", cache=False, **MODEL)
    with pytest.raises(ValueError, match="address is only used with engine='ray'"):
        featx.extract_features(ds, engine="local", address="head:6379", cache=False, **MODEL)
    with pytest.raises(ValueError, match="engine must be one of"), joblib_backend("dask"):
        pass
    assert check_engine(None) == "local"
    for bad, match in (({"shard_size": 0}, "shard_size must .* got 0"),
                       ({"concurrency": (3, 1)}, r"concurrency must .* got \(3, 1\)"),
                       ({"n_workers": 0}, "n_workers .* got 0")):
        with pytest.raises(ValueError, match=match):
            extract_features(ds, cache=False, **MODEL, **bad)


def test_local_joblib_backend_changes_nothing(no_ray):
    X, y = make_classification(90, 8, n_informative=4, n_classes=3, random_state=0)
    plain = evaluate_heads((X[:60], y[:60]), (X[60:], y[60:]), heads=["logreg"], cv=3)
    with joblib_backend("local"), joblib_backend(None):
        wrapped = evaluate_heads((X[:60], y[:60]), (X[60:], y[60:]), heads=["logreg"], cv=3)
    assert wrapped[0]["best_params"] == plain[0]["best_params"]
