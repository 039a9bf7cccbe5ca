"""The Ray engine reads images from their locations on the workers: a loopback HTTP server and
TFRecord shards, one module-scoped Ray instance (slow to start on small machines)."""

from __future__ import annotations

import os

import fsspec
import numpy as np
import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # tests never reach the network
ray = pytest.importorskip("ray")

from helpers import MODEL, assert_same  # noqa: E402
from sources_server import LoopbackServer  # noqa: E402
from test_sources_containers import write_tfrecords  # noqa: E402

from featx import ImageDataset  # noqa: E402
from featx.extract import extract_features, forward_pass_count  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
                 log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_ray_workers_read_urls_and_shards_themselves(tmp_path, make_images):
    files = make_images(tmp_path / "photos", 3, classes=("red", "blue"), folders=True, size=40)
    pairs = [(open(p, "rb").read(), ("red", "blue").index(c))
             for p, c in zip(files, files.labels, strict=True)]
    shard = write_tfrecords(tmp_path, pairs, n_shards=1)[0]
    server = LoopbackServer(tmp_path / "photos")
    with server as url:
        http = ImageDataset.from_directory(f"{url}/", verify="none")
        tfr = ImageDataset.from_tfrecords(shard, label_names=["red", "blue"], verify="none")
        missing = f"{url}/red/missing.jpg"
        ds = ImageDataset([*http.paths, *tfr.paths[:2], missing],
                          [*http.labels, *tfr.labels[:2], 0], http.class_names, name="mixed")
        before = forward_pass_count()
        fs = extract_features(ds, engine="ray", cache=tmp_path / "c", **MODEL, batch_size=4)
        n = forward_pass_count() - before
        counts = dict(server.counts)
        local = extract_features(ds, cache=False, **MODEL)
    # 6 distinct photos (the two records repeat two of them); the 404 is skipped, not fatal
    assert n == 6 and len(fs) == 8 and fs.skipped == [(missing, "cannot read file (not found)")]
    # each photo read twice over HTTP: hashed by the driver, decoded by a Ray worker (the
    # driver never sends image bytes)
    assert {counts[f"/{p.split('/', 3)[3]}"] for p in http.paths} == {2}
    assert fs.ids == local.ids
    assert_same(fs.features, local.features)
    # memory:// is this process's own: refused up front, with what to do
    with fsspec.open("memory://featx-ray/a.jpg", "wb") as f:
        f.write(pairs[0][0])
    with pytest.raises(ValueError, match="memory.*engine='local'"):
        extract_features(ImageDataset(["memory://featx-ray/a.jpg"], [0], ["a"]), engine="ray",
                         **MODEL)
    assert np.isfinite(fs.features).all()
