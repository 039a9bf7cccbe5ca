"""The HDF5 feature cache: keys, layout, hits and misses, crash safety, concurrent writers."""

from __future__ import annotations

import os
import re
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
from helpers import MODEL, ROOT, assert_same, counted

from featx import cache as fc
from featx.data import ImageDataset
from featx.extract import FeatureSet, cache_verify, extract_features
from featx.extract.config import ExtractorConfig


@pytest.fixture(scope="module")
def imgs(tmp_path_factory, make_images) -> list[str]:
    return make_images(tmp_path_factory.mktemp("imgs"), 24)


@pytest.fixture(scope="module")
def reference(imgs, make_dataset) -> FeatureSet:
    return extract_features(make_dataset(imgs), cache=False, **MODEL)


def test_layout_readable_with_plain_h5py(tmp_path, imgs, reference, make_dataset):
    fs, n = counted(make_dataset(imgs, "clothing-small-train"), tmp_path)
    assert n == len(imgs)
    assert re.fullmatch(r"clothing-small-train-[0-9a-f]{6}__mobilenet_v2-32-avg__[0-9a-f]{8}\.h5",
                        fs.path.name), fs.path.name
    with h5py.File(fs.path, "r") as f:
        assert "features" not in f  # the rows live once, in the row store
        assert f.attrs["row_store"] == ExtractorConfig.from_attrs(fs.attrs).slug
        assert list(f.attrs["row_shape"]) == [1280] and f.attrs["row_dtype"] == "float32"
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
    np.testing.assert_array_equal(loaded.features, fs.features)


def test_each_row_is_stored_once(tmp_path, imgs, make_dataset):
    """The rows live in the row store only: the dataset file holds ids, labels and paths, so
    the cache's feature files are about one copy of the rows."""
    fs, _ = counted(make_dataset(imgs), tmp_path)
    (seg,) = tmp_path.glob("rows/*/seg-*.h5")
    rows = fs.features.nbytes  # 24 x 1280 float32: 122,880 bytes
    assert rows <= seg.stat().st_size < rows + 16_000  # + ids, digests and HDF5's structure
    assert fs.path.stat().st_size < 16_000
    with h5py.File(fs.path, "r") as f:
        assert sorted(f) == ["ids", "labels", "paths"]
    # a second dataset of the same images adds a dataset file, not a row
    other, n = counted(make_dataset(imgs[::-1], "reversed"), tmp_path)
    assert n == 0 and list(tmp_path.glob("rows/*/seg-*.h5")) == [seg]
    np.testing.assert_array_equal(other.features, fs.features[::-1])


def test_dataset_files_survive_compaction(tmp_path, imgs, make_dataset, monkeypatch):
    """Dataset files reference rows by content id, not by segment or position: merging every
    segment into one leaves them loading the same rows."""
    from featx.cache import rowstore

    parts = [counted(make_dataset(imgs[k : k + 6], f"part{k}"), tmp_path)[0]
             for k in range(0, 24, 6)]
    store = fc.row_store(tmp_path, ExtractorConfig.from_attrs(parts[0].attrs))
    assert len(store.segments()) == 4
    monkeypatch.setattr(rowstore, "_MAX_SEGMENTS", 1)
    with store.lock():
        store.compact()
    assert len(store.segments()) == 1
    for fs in parts:
        loaded = FeatureSet.load(fs.path)
        assert loaded.ids == fs.ids
        np.testing.assert_array_equal(loaded.features, fs.features)


@pytest.mark.smoke
def test_rename_and_move_hit(tmp_path, imgs, reference, make_dataset):
    counted(make_dataset(imgs), tmp_path / "c")
    moved = tmp_path / "moved"
    moved.mkdir()
    new = [str(moved / f"renamed_{i}.jpg") for i in range(len(imgs))]
    for a, b in zip(imgs, new, strict=True):
        shutil.copy(a, b)
    fs, n = counted(make_dataset(new, "other-name"), tmp_path / "c")
    assert n == 0 and fs.paths == new
    assert_same(fs.features, reference.features)


def test_incremental_add_extracts_only_new(tmp_path, imgs, make_dataset, make_images):
    counted(make_dataset(imgs), tmp_path)
    extra = make_images(tmp_path / "extra", 10, start=1000)
    fs, n = counted(make_dataset(imgs + extra), tmp_path)
    assert n == 10 and len(fs) == 34
    fs2, n2 = counted(make_dataset(imgs + extra), tmp_path)
    assert n2 == 0 and np.array_equal(fs.features, fs2.features)


def test_settings_change_misses(tmp_path, imgs, reference, make_dataset):
    a, _ = counted(make_dataset(imgs), tmp_path)
    b, n = counted(make_dataset(imgs), tmp_path, pooling="max")
    assert n == len(imgs) and a.path != b.path and a.attrs["key"] != b.attrs["key"]
    assert_same(b.features, extract_features(make_dataset(imgs), cache=False, pooling="max",
                                             **MODEL).features)
    c, n = counted(make_dataset(imgs), tmp_path, batch_size=5)  # not part of the key: a hit
    assert n == 0 and c.path == a.path


def test_cache_verify_good_and_tampered(tmp_path, imgs, make_dataset):
    fs, _ = counted(make_dataset(imgs), tmp_path)
    report = cache_verify(fs.path, n=4)
    assert report and report.n_checked == 4
    (seg,) = tmp_path.glob("rows/*/seg-*.h5")  # the file's rows live in its row store
    with h5py.File(seg, "r+") as f:
        f["features"][:] = f["features"][:] + 0.5
    bad = cache_verify(fs.path, n=4)
    assert not bad and bad.failures == [(str(fs.path), f"its rows in row-store segment {seg} are "
                                                       f"damaged ({len(imgs)} of its rows fail "
                                                       "their checksums)")]


def test_ls_info_rm(tmp_path, imgs, make_dataset):
    fs, _ = counted(make_dataset(imgs), tmp_path)
    listed = fc.cache_ls(tmp_path)
    kinds = sorted(e["kind"] for e in listed)
    assert kinds == ["dataset", "store"]
    info = fc.cache_info(fs.path)
    assert info["shape"] == [24, 1280] and info["backbone"] == "mobilenet_v2"
    assert fc.cache_info(next((tmp_path / "rows").iterdir()))["n_rows"] == 24
    removed = fc.cache_rm("ds-*", cache=tmp_path)
    assert removed == [str(fs.path)] and not fs.path.exists()
    assert len(fc.cache_rm("mobilenet_v2-*", cache=tmp_path)) == 1
    assert fc.cache_ls(tmp_path) == []


def test_rm_and_prune_leave_no_dataset_file_pointing_at_nothing(tmp_path, imgs, make_dataset):
    cache = tmp_path / "c"
    a, _ = counted(make_dataset(imgs[:8], "a"), cache)
    b, _ = counted(make_dataset(imgs[8:16], "b"), cache)
    c, n = counted(make_dataset(imgs[4:12], "c"), cache)  # rows of both a's and b's segment
    assert n == 0
    store = fc.row_store(cache, ExtractorConfig.from_attrs(a.attrs)).directory
    seg_a, seg_b = sorted(store.glob("seg-*.h5"))
    old = time.time() - 10 * 86400
    os.utime(seg_a, (old, old))
    # pruning a's segment takes the dataset files that need one of its rows with it
    plan = fc.cache_prune(cache, older_than=5, dry_run=True)
    assert [(u["path"], u["kind"]) for u in plan] == [
        (str(seg_a), "segment"), (str(a.path), "dataset"), (str(c.path), "dataset")]
    assert all(Path(u["path"]).exists() for u in plan)
    assert fc.cache_prune(cache, older_than=5) == plan
    assert not any(Path(u["path"]).exists() for u in plan) and seg_b.exists()
    np.testing.assert_array_equal(FeatureSet.load(b.path).features, b.features)
    assert fc.cache_check(cache=cache)  # nothing dangling, nothing damaged
    # a file that carries its own rows (as featx wrote them before) does not need the store
    embedded = cache / f"old-000000__{store.name}.h5"
    fc.write_dataset_file(embedded, ExtractorConfig.from_attrs(b.attrs), features=b.features,
                          labels=b.labels,
                          paths=b.paths, ids=b.ids, class_names=b.class_names,
                          extra={"request_digest": "", "skipped": "[]"}, embed_rows=True)
    # removing the store removes the dataset files whose rows live in it, after the targets
    assert fc.cache_rm(store.name, cache=cache, dry_run=True) == [str(store), str(b.path)]
    assert b.path.exists() and store.exists()
    assert fc.cache_rm(store.name, cache=cache) == [str(store), str(b.path)]
    assert not b.path.exists() and not store.exists()
    np.testing.assert_array_equal(FeatureSet.load(embedded).features, b.features)
    assert fc.cache_check(cache=cache)


def test_half_written_files_are_never_trusted(tmp_path, imgs, reference, make_dataset):
    fs, _ = counted(make_dataset(imgs), tmp_path)
    store = next((tmp_path / "rows").iterdir())
    (store / ".tmp-deadbeef-seg-0.h5").write_bytes(b"\x89HDF half written")
    fs.path.write_bytes(fs.path.read_bytes()[:2000])  # a truncated dataset file
    again, n = counted(make_dataset(imgs), tmp_path)
    assert n == 0 and len(again) == 24
    assert_same(again.features, reference.features)
    assert not list(store.glob(".tmp-*"))


_CHILD = textwrap.dedent("""
    import os, sys, time, json
    import featx.extract.forward as fwd
    import featx.extract.local as local
    import featx.extract as ex
    from featx.data import ImageDataset
    paths = json.loads(os.environ["FEATX_TEST_PATHS"])
    local._COMMIT_SECONDS = 0.0  # commit the rows of every batch at once
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
            "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(cache)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_resume(tmp_path, imgs, reference, make_dataset):
    proc = _child(tmp_path, imgs, FEATX_TEST_DELAY="0.3")
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("rows/*/seg-*.h5")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    store = fc.row_store(tmp_path, ExtractorConfig("mobilenet_v2", weights=None, input_size=32))
    with store.lock():
        done = len(store.index())
    assert 0 < done < len(imgs)
    fs, n = counted(make_dataset(imgs), tmp_path)
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
    fs = FeatureSet.load(next(tmp_path.glob("ds-*.h5")))
    assert_same(fs.features, reference.features)
    assert cache_verify(fs.path, n=3)


# -- cache_rm, cache_info, cache_verify, FeatureSet.load: featx's own entries only ------------
def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder``, with the bytes of each file."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def scene(tmp_path, imgs, make_dataset, make_images) -> dict:
    """A real cache (one dataset file, one row store) with foreign things in and next to it."""
    cache = tmp_path / "cache"
    fs, _ = counted(make_dataset(imgs[:6], "ds"), cache)
    photos = tmp_path / "photos"  # a user's folder of JPEGs, and a CSV next to the cache
    make_images(photos / "cats", 2, start=500)
    (photos / "labels.csv").write_text("path,label\ncats/img00500.jpg,cat\n")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    (cache / "notes.csv").write_text("a,b\n1,2\n")
    (cache / "junk.h5").write_bytes(b"not an hdf5 file at all\n" * 10)
    with h5py.File(cache / "mine.h5", "w") as f:  # a real HDF5 file that featx did not write
        f["features"] = np.zeros((2, 3), "float32")
        f.attrs["key"] = "someone else's"
    (cache / "rows" / "mine__0123abcd").mkdir()  # a user folder shaped like a row store
    shutil.copy(imgs[0], cache / "rows" / "mine__0123abcd" / "photo.jpg")
    store = next(p for p in (cache / "rows").iterdir() if p.name != "mine__0123abcd")
    return {"root": tmp_path, "cache": cache, "dataset": fs.path, "store": store,
            "segment": next(store.glob("seg-*.h5")), "photos": photos}


@pytest.mark.parametrize("target, why", [
    ("photos", r"photos is not a featx row store \(a folder outside a cache's rows/ folder\)"),
    ("photos/cats/img00500.jpg", r"img00500.jpg is not a featx cache file \(not an HDF5 file\)"),
    ("photos/labels.csv", r"labels.csv is not a featx cache file \(not an HDF5 file\)"),
    ("notes.csv", r"notes.csv is not a featx cache file \(not an HDF5 file\)"),
    ("cache/notes.csv", r"notes.csv is not a featx cache file \(not an HDF5 file\)"),
    ("cache/junk.h5", r"junk.h5 is not a featx cache file \(not an HDF5 file\)"),
    ("cache/mine.h5", r"mine.h5 is not a featx cache file \(an HDF5 file without featx's "
                      r"attribute\(s\) featx_version\)"),
    ("cache/rows/mine__0123abcd", r"mine__0123abcd is not a featx row store \(a folder holding 1 "
                                  r"entries featx does not write: photo.jpg\)"),
    ("cache/rows", r"rows is not a featx row store \(a folder outside a cache's rows/ folder\)"),
    ("cache", r"cache is not a featx row store"),
    ("{segment}", r"seg-.*\.h5 is not a featx cache file \(an HDF5 file without featx's "),
    ("mine__0123abcd", r"mine__0123abcd is not a featx row store"),  # a name as `ls` would show
    ("*", r"junk.h5 is not a featx cache file .*mine.h5 is not a featx cache file .*"
          r"mine__0123abcd is not a featx row store"),
    ("mine*", r"mine.h5 is not a featx cache file .*mine__0123abcd is not a featx row store"),
])
def test_rm_refuses_anything_featx_did_not_write(scene, monkeypatch, target, why):
    monkeypatch.chdir(scene["root"])
    before = snapshot(scene["root"])
    target = target.format(segment=scene["segment"])
    with pytest.raises(ValueError, match=rf"cache_rm\(.*\) removed nothing: .*{why}.*It only "
                                         r"removes featx dataset files and row stores"):
        fc.cache_rm(target, cache=scene["cache"])
    assert snapshot(scene["root"]) == before  # nothing removed, nothing created (no .lock)


def test_rm_removes_featx_entries_by_path_name_and_pattern(scene, monkeypatch, make_dataset):
    monkeypatch.chdir(scene["root"])
    foreign = {k: v for k, v in snapshot(scene["root"]).items()
               if not k.startswith(("cache/ds-", f"cache/rows/{scene['store'].name}"))}
    listed = {os.path.basename(e["path"]) for e in fc.cache_ls(scene["cache"])}
    assert listed == {scene["dataset"].name, scene["store"].name}  # only featx's entries
    assert fc.cache_rm("nothing-like-this-*", cache=scene["cache"]) == []
    # a dataset file by its path; a row store by the name `cache ls` shows (no rows/ prefix)
    assert fc.cache_rm(str(scene["dataset"])) == [str(scene["dataset"])]
    assert fc.cache_info(scene["store"].name, cache=scene["cache"])["kind"] == "store"
    assert fc.cache_rm(scene["store"].name, cache=scene["cache"]) == [str(scene["store"])]
    assert fc.cache_ls(scene["cache"]) == [] and snapshot(scene["root"]) == foreign
    # by pattern, and a row store by its path
    fs, _ = counted(make_dataset(scene_imgs(scene), "ds"), scene["cache"])
    assert fc.cache_rm("ds-*", cache=scene["cache"]) == [str(fs.path)]
    store = next(p for p in (scene["cache"] / "rows").iterdir() if p.name.startswith("mobile"))
    assert fc.cache_rm(store) == [str(store)] and not store.exists()
    assert snapshot(scene["root"]) == foreign


def scene_imgs(scene) -> list[str]:
    return sorted(str(p) for p in (scene["photos"] / "cats").glob("*.jpg"))


def _text(path: Path) -> Path:
    path.write_text("path,label\na.jpg,cat\n")
    return path


def _not_hdf5(path: Path) -> Path:
    path.write_bytes(b"\x00\x01 junk that ends in .h5\n" * 20)
    return path


def _foreign_hdf5(path: Path) -> Path:
    with h5py.File(path, "w") as f:
        f["features"] = np.zeros((2, 3), "float32")
    return path


@pytest.mark.parametrize("make, error, why", [
    (lambda d: _text(d / "notes.csv"), ValueError, r"not an HDF5 file"),
    (lambda d: _not_hdf5(d / "junk.h5"), ValueError, r"not an HDF5 file"),
    (lambda d: _foreign_hdf5(d / "other.h5"), ValueError,
     r"an HDF5 file without featx's attribute\(s\) key, featx_version"),
    (lambda d: d, ValueError, r"it is a folder"),
    (lambda d: d / "gone.h5", FileNotFoundError, r"gone.h5 does not exist"),
])
@pytest.mark.parametrize("call", [fc.cache_info, cache_verify, FeatureSet.load])
def test_non_featx_files_get_a_clear_error(tmp_path, make, error, why, call):
    path = make(tmp_path)
    match = why
    if error is ValueError:
        match = rf"{re.escape(str(path))} is not a featx cache file \({why}"
    with pytest.raises(error, match=match):
        call(path)


def test_a_row_store_is_not_a_dataset_file(tmp_path, imgs, make_dataset):
    counted(make_dataset(imgs[:3]), tmp_path)
    store = next((tmp_path / "rows").iterdir())
    before = snapshot(tmp_path)
    for call in (FeatureSet.load, cache_verify):
        with pytest.raises(ValueError, match=rf"{re.escape(str(store))} is not a featx cache file "
                                             r"\(it is a row-store folder; dataset files are"):
            call(store)
    assert fc.cache_info(store)["n_rows"] == 3 and snapshot(tmp_path) == before


# -- one dataset file per (dataset name, folder, configuration) ------------------------------------
def class_tree(make_images, root: Path, start: int) -> Path:
    for k, cls in enumerate(("a", "b")):
        make_images(root / cls, 3, start=start + 10 * k)
    return root


def test_same_name_in_two_folders_gets_two_files(tmp_path, make_images):
    x = ImageDataset.from_directory(class_tree(make_images, tmp_path / "x" / "data", 0))
    y = ImageDataset.from_directory(class_tree(make_images, tmp_path / "y" / "data", 100))
    assert x.name == y.name == "data"
    fx, nx = counted(x, tmp_path / "c")
    fy, ny = counted(y, tmp_path / "c")
    assert nx == ny == 6 and fx.path != fy.path
    for f in (fx, fy):
        assert re.fullmatch(r"data-[0-9a-f]{6}__mobilenet_v2-32-avg__[0-9a-f]{8}\.h5", f.path.name)
    assert FeatureSet.load(fx.path).paths == fx.paths  # y did not overwrite x's file
    inode = fx.path.stat().st_ino
    again, n = counted(x, tmp_path / "c")  # alternating x, y, x: a hit, not a rebuild
    assert n == 0 and again.path == fx.path and fx.path.stat().st_ino == inode
    assert np.array_equal(again.features, fx.features)
    # more images in the same folder: the same file, only the new image extracted
    make_images(tmp_path / "x" / "data" / "a", 1, start=50)
    grown, n = counted(ImageDataset.from_directory(tmp_path / "x" / "data"), tmp_path / "c")
    assert n == 1 and grown.path == fx.path and len(grown) == 7


def test_a_cache_written_under_the_old_file_names_is_reused(tmp_path, imgs, reference,
                                                            make_dataset):
    fs, n = counted(make_dataset(imgs), tmp_path)
    slug = ExtractorConfig.from_attrs(fs.attrs).slug
    old = tmp_path / f"ds__{slug}.h5"  # the name before the folder digest was added
    fs.path.rename(old)
    again, n = counted(make_dataset(imgs), tmp_path)
    assert n == 0 and again.path == fs.path and again.path != old
    assert_same(again.features, reference.features)


def test_none_spelled_as_a_string_is_the_same_seeded_random_backbone(tmp_path, imgs, make_dataset):
    """weights="None"/"none" means weights=None everywhere: same config, same (seeded) features."""
    cfg = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    for spelling in ("none", "None"):
        assert ExtractorConfig("mobilenet_v2", weights=spelling, input_size=32) == cfg
    a = extract_features(make_dataset(imgs[:4]), cache=False, **{**MODEL, "weights": "None"})
    b = extract_features(make_dataset(imgs[:4]), cache=False, **MODEL)
    assert_same(a.features, b.features)


def test_the_cache_folder_is_cache_everywhere_and_cache_dir_still_works(tmp_path):
    """Every maintenance function names the cache folder ``cache=``, as extract_features and the
    estimators do (and ``--cache`` on the command line); ``cache_dir=``, the old name, still
    works with a FutureWarning, and both at once is a mistake."""
    import inspect
    import warnings

    from featx.extract import cache_verify

    for fn in (fc.cache_ls, fc.cache_info, fc.cache_rm, fc.cache_prune, fc.cache_check,
               fc.check_entries, fc.resolve_entry, cache_verify):
        assert "cache" in inspect.signature(fn).parameters, fn.__name__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fc.cache_ls(cache=tmp_path) == fc.cache_ls(tmp_path) == []
    with pytest.warns(FutureWarning, match=r"cache_ls\(cache_dir=\.\.\.\) is now "
                                           r"cache_ls\(cache=\.\.\.\)"):
        assert fc.cache_ls(cache_dir=tmp_path) == []
    with pytest.raises(TypeError, match="give cache only"):
        fc.cache_check(cache=tmp_path, cache_dir=tmp_path)
