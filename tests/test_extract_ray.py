"""The Ray engine and Ray model selection, on a local 2-CPU Ray started once for the module.

The ``dev`` extra installs Ray, so the README's test command runs these; elsewhere the module is
skipped when Ray is missing. Random-weight backbones are built under a fixed seed, so Ray's actor
processes and this process hold the same weights and must produce the same features.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

# Keep the test instance on 127.0.0.1 (Ray otherwise binds its services to the host's address);
# read when ray is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # tests never reach the network
ray = pytest.importorskip("ray")

from helpers import MODEL, assert_same  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

import featx  # noqa: E402
from featx.distributed import joblib_backend  # noqa: E402
from featx.evaluate import evaluate_heads  # noqa: E402
from featx.extract import extract_features, extract_on_ray, forward_pass_count  # noqa: E402
from featx.extract import ray as ray_engine  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
                 log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def imgs(tmp_path_factory, make_images) -> list[str]:
    return make_images(tmp_path_factory.mktemp("rimgs"), 12)


@pytest.fixture(scope="module")
def reference(imgs, make_dataset):
    return extract_features(make_dataset(imgs), cache=False, **MODEL)


def on_ray(ds, cache, extract=extract_on_ray, **kw):
    """Features of ``ds`` from the Ray engine and the forward passes run for them."""
    before = forward_pass_count()
    fs = extract(ds, cache=cache, **{**MODEL, "batch_size": 4, **kw})
    return fs, forward_pass_count() - before


def by_id(fs) -> dict:
    return dict(zip(fs.ids, fs.features, strict=True))


def test_ray_matches_local_and_local_reuses_its_cache(tmp_path, imgs, reference, make_dataset):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    paths = imgs[:3] + [str(bad)] + imgs[3:] + imgs[:2]  # a corrupt file and two duplicates
    fs, n = on_ray(make_dataset(paths), tmp_path / "c", featx.extract_features, engine="ray")
    local = extract_features(make_dataset(paths), cache=False, **MODEL)
    assert n == len(imgs) and fs.ids == local.ids and fs.paths == local.paths
    assert fs.skipped == local.skipped and [p for p, _ in fs.skipped] == [str(bad)]
    assert fs.labels.tolist() == local.labels.tolist()
    assert_same(fs.features, local.features)
    # Same content keys and layout: a local run over another ordering (a new dataset file)
    # finds every row in the store the Ray run filled, and a Ray rerun hits the dataset file.
    before = forward_pass_count()
    again = extract_features(make_dataset(imgs[::-1], name="other"), cache=tmp_path / "c", **MODEL)
    assert forward_pass_count() - before == 0
    assert_same(again.features, np.stack([by_id(fs)[i] for i in again.ids]))
    assert on_ray(make_dataset(paths), tmp_path / "c")[1] == 0


def test_only_rows_missing_from_the_store_go_to_ray(tmp_path, imgs, reference, make_dataset):
    extract_features(make_dataset(imgs[:5], name="first"), cache=tmp_path, **MODEL)
    fs, n = on_ray(make_dataset(imgs), tmp_path, shard_size=3, concurrency=(1, 1))
    assert n == len(imgs) - 5
    assert fs.ids == reference.ids
    assert_same(fs.features, reference.features)


def test_killed_model_actor_is_restarted_and_the_result_is_complete(tmp_path, imgs, reference,
                                                                    monkeypatch, make_dataset):
    marker = str(tmp_path / "crashed-once")

    class CrashOnce(ray_engine._Embed):
        """Kills its process on its first batch, once per test (the marker file remembers)."""

        def __call__(self, batch):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return super().__call__(batch)

    monkeypatch.setattr(ray_engine, "_Embed", CrashOnce)
    fs, n = on_ray(make_dataset(imgs), tmp_path / "c", shard_size=4)
    assert os.path.exists(marker)  # the actor did die
    assert n == len(imgs) and fs.ids == reference.ids and not fs.skipped
    assert_same(fs.features, reference.features)


def test_ray_joblib_backend_picks_the_same_parameters(tmp_path, imgs, make_dataset):
    import joblib

    X, y = make_classification(120, 10, n_informative=5, n_classes=3, random_state=0)
    train, test = (X[:90], y[:90]), (X[90:], y[90:])
    local = evaluate_heads(train, test, heads=["logreg"], cv=3)
    fs = extract_features(make_dataset(imgs * 2), cache=tmp_path, **MODEL)
    clf_local = featx.TransferClassifier(head="logreg", cv=2).fit(fs)
    with joblib_backend("ray"):
        assert type(joblib.parallel.get_active_backend()[0]).__name__ == "RayBackend"
        remote = evaluate_heads(train, test, heads=["logreg"], cv=3)
        clf_ray = featx.TransferClassifier(head="logreg", cv=2).fit(fs)
    for a, b in zip(local, remote, strict=True):
        assert a["best_params"] == b["best_params"]
        assert a["cv_score"] == pytest.approx(b["cv_score"])
    assert clf_ray.best_params_ == clf_local.best_params_
