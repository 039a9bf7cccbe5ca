"""The HDF5 feature cache: keys, layout, hits and misses, crash safety, concurrent writers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from featx import cache as fc
from featx.data import ImageDataset
from featx.extract import FeatureSet, extract_features, forward_pass_count

REPO = Path(__file__).resolve().parents[1]
MODEL = dict(backbone="mobilenet_v2", weights=None, input_size=32, verbose=0)


def make_images(folder: Path, n: int, start: int = 0, size: int = 48) -> list[str]:
    """``n`` distinct random-noise JPEGs (with a drawn square) named ``img<k>.jpg``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(start, start + n):
        rng = np.random.default_rng(k)
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        a, b = sorted(rng.integers(0, size, 2))
        arr[a:b, a:b] = rng.integers(0, 256, 3, dtype=np.uint8)
        p = folder / f"img{k:05d}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        paths.append(str(p))
    return paths


def dataset(paths, name="ds") -> ImageDataset:
    return ImageDataset.from_paths(paths, [i % 3 for i in range(len(paths))],
                                   class_names=["a", "b", "c"], name=name, verify="none")


def assert_same(a, b):
    """allclose relative to the features' scale (random-weight nets give tiny activations)."""
    b = np.asarray(b, np.float64)
    scale = float(np.abs(b).max())
    assert scale > 0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


def counted(ds, cache, **kw):
    before = forward_pass_count()
    fs = extract_features(ds, cache=cache, **{**MODEL, **kw})
    return fs, forward_pass_count() - before


@pytest.fixture(scope="module")
def imgs(tmp_path_factory) -> list[str]:
    return make_images(tmp_path_factory.mktemp("imgs"), 24)


@pytest.fixture(scope="module")
def reference(imgs) -> FeatureSet:
    return extract_features(dataset(imgs), cache=False, **MODEL)


def test_key_hashes_what_changes_output_only():
    cfg = fc.extractor_config("mobilenet_v2", None, 32)
    assert fc.config_key(cfg) == fc.config_key({**cfg, "batch_size": 7, "n_workers": 3})
    for change in ({"pooling": "max"}, {"input_size": [48, 48]}, {"resize": "crop"},
                   {"dtype": "float16"}, {"weights_sha256": "x"}, {"feature_code_version": 99},
                   {"decoder": "opencv"}):
        assert fc.config_key({**cfg, **change}) != cfg["key"], change
    # A field added later is hashed only away from its default: older caches keep their keys.
    before_decoder = {k: v for k, v in cfg.items() if k != "decoder"}
    assert cfg["decoder"] == "pillow" and fc.config_key(before_decoder) == cfg["key"]
    with pytest.raises(ValueError, match="decoder must be one of"):
        fc.extractor_config("mobilenet_v2", None, 32, decoder="nvjpeg")
    with pytest.raises(ValueError, match="resize"):
        fc.extractor_config("mobilenet_v2", None, 32, resize="nearest")
    with pytest.raises(ValueError, match="dtype"):
        fc.extractor_config("mobilenet_v2", None, 32, dtype="int8")


def test_layout_readable_with_plain_h5py(tmp_path, imgs, reference):
    fs, n = counted(dataset(imgs, "clothing-small-train"), tmp_path)
    assert n == len(imgs)
    assert fs.path.name.startswith("clothing-small-train__mobilenet_v2-32-avg__")
    with h5py.File(fs.path, "r") as f:
        assert f["features"].shape == (24, 1280) and f["features"].chunks is not None
        assert f["labels"][:].tolist() == [i % 3 for i in range(24)]
        assert f["paths"].asstr()[0] == imgs[0]
        assert len(f["ids"][0]) == 64
        for attr in ("class_names", "backbone", "weights_sha256", "input_size", "pooling", "layers",
                     "preprocessing", "resize", "dtype", "featx_version", "keras_backend",
                     "created", "complete"):
            assert attr in f.attrs, attr
        assert bool(f.attrs["complete"]) and list(f.attrs["input_size"]) == [32, 32]
    assert_same(fs.features, reference.features)
    loaded = FeatureSet.load(fs.path)
    assert loaded.class_names == ["a", "b", "c"] and loaded.ids == fs.ids


@pytest.mark.smoke
def test_rename_and_move_hit(tmp_path, imgs, reference):
    counted(dataset(imgs), tmp_path / "c")
    moved = tmp_path / "moved"
    moved.mkdir()
    new = [str(moved / f"renamed_{i}.jpg") for i in range(len(imgs))]
    for a, b in zip(imgs, new, strict=True):
        shutil.copy(a, b)
    fs, n = counted(dataset(new, "other-name"), tmp_path / "c")
    assert n == 0 and fs.paths == new
    assert_same(fs.features, reference.features)


@pytest.mark.smoke
def test_incremental_add_extracts_only_new(tmp_path, imgs):
    counted(dataset(imgs), tmp_path)
    extra = make_images(tmp_path / "extra", 10, start=1000)
    fs, n = counted(dataset(imgs + extra), tmp_path)
    assert n == 10 and len(fs) == 34
    fs2, n2 = counted(dataset(imgs + extra), tmp_path)
    assert n2 == 0 and np.array_equal(fs.features, fs2.features)


def test_settings_change_misses(tmp_path, imgs, reference):
    a, _ = counted(dataset(imgs), tmp_path)
    b, n = counted(dataset(imgs), tmp_path, pooling="max")
    assert n == len(imgs) and a.path != b.path and a.attrs["key"] != b.attrs["key"]
    assert_same(b.features, extract_features(dataset(imgs), cache=False, pooling="max",
                                             **MODEL).features)
    c, n = counted(dataset(imgs), tmp_path, batch_size=5)  # not part of the key: a hit
    assert n == 0 and c.path == a.path


def test_cache_verify_good_and_tampered(tmp_path, imgs):
    fs, _ = counted(dataset(imgs), tmp_path)
    report = fc.cache_verify(fs.path, n=4)
    assert report and report.n_checked == 4
    with h5py.File(fs.path, "r+") as f:
        f["features"][:] = f["features"][:] + 0.5
    bad = fc.cache_verify(fs.path, n=4)
    assert not bad and bad.failures


def test_ls_info_rm(tmp_path, imgs):
    fs, _ = counted(dataset(imgs), tmp_path)
    listed = fc.cache_ls(tmp_path)
    kinds = sorted(e["kind"] for e in listed)
    assert kinds == ["dataset", "store"]
    info = fc.cache_info(fs.path)
    assert info["shape"] == [24, 1280] and info["backbone"] == "mobilenet_v2"
    assert fc.cache_info(next((tmp_path / "rows").iterdir()))["n_rows"] == 24
    removed = fc.cache_rm("ds__*", cache_dir=tmp_path)
    assert removed == [str(fs.path)] and not fs.path.exists()
    assert len(fc.cache_rm("mobilenet_v2-*", cache_dir=tmp_path)) == 1
    assert fc.cache_ls(tmp_path) == []


def test_half_written_files_are_never_trusted(tmp_path, imgs, reference):
    fs, _ = counted(dataset(imgs), tmp_path)
    store = next((tmp_path / "rows").iterdir())
    (store / ".tmp-deadbeef-seg-0.h5").write_bytes(b"\x89HDF half written")
    fs.path.write_bytes(fs.path.read_bytes()[:2000])  # a truncated dataset file
    again, n = counted(dataset(imgs), tmp_path)
    assert n == 0 and len(again) == 24
    assert_same(again.features, reference.features)
    assert not list(store.glob(".tmp-*"))


_CHILD = textwrap.dedent("""
    import os, sys, time, json
    import featx._forward as fwd
    import featx.extract as ex
    from featx.data import ImageDataset
    paths = json.loads(os.environ["FEATX_TEST_PATHS"])
    ex._COMMIT_SECONDS = 0.0
    delay = float(os.environ.get("FEATX_TEST_DELAY", "0"))
    if delay:
        call = fwd.BatchRunner.__call__
        fwd.BatchRunner.__call__ = lambda self, x: (time.sleep(delay), call(self, x))[1]
    ds = ImageDataset.from_paths(paths, [i % 3 for i in range(len(paths))],
                                 class_names=["a", "b", "c"], name="ds", verify="none")
    fs = ex.extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=sys.argv[1],
                             batch_size=int(os.environ.get("FEATX_TEST_BATCH", "2")), verbose=0)
    print(json.dumps({"n": len(fs), "forward": ex.forward_pass_count()}))
""")


def _child(cache, paths, **env) -> subprocess.Popen:
    full = {**os.environ, "FEATX_TEST_PATHS": __import__("json").dumps(paths),
            "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(cache)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_resume(tmp_path, imgs, reference):
    proc = _child(tmp_path, imgs, FEATX_TEST_DELAY="0.3")
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("rows/*/seg-*.h5")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    store = fc.row_store(tmp_path, fc.extractor_config("mobilenet_v2", None, 32))
    with store.lock():
        done = len(store.index())
    assert 0 < done < len(imgs)
    fs, n = counted(dataset(imgs), tmp_path)
    assert n == len(imgs) - done and len(fs) == len(imgs)
    assert_same(fs.features, reference.features)
    assert fs.labels.tolist() == reference.labels.tolist()


def test_two_concurrent_writers(tmp_path, imgs, reference):
    procs = [_child(tmp_path, imgs, FEATX_TEST_BATCH="4") for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    import json

    results = []
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["n"] == len(imgs) for r in results)
    assert sum(r["forward"] for r in results) == len(imgs)  # the second waited, then hit
    fs = FeatureSet.load(next(tmp_path.glob("ds__*.h5")))
    assert_same(fs.features, reference.features)
    assert fc.cache_verify(fs.path, n=3)
