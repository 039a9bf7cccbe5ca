"""The extraction engine: skipped images, in-memory mode, batching, flat memory, decode pool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import MODEL, ROOT, assert_same, counted

from featx.data import ImageDataset, SkippedImagesWarning
from featx.extract import FeatureSet, extract_features, forward_pass_count
from featx.images import DecodePool


@pytest.fixture(scope="module")
def imgs(tmp_path_factory, make_images) -> list[str]:
    return make_images(tmp_path_factory.mktemp("ximgs"), 13)


def test_corrupt_file_in_the_middle_is_skipped_labels_aligned(tmp_path, imgs, make_dataset):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    missing = str(tmp_path / "gone.jpg")
    paths = imgs[:5] + [str(bad)] + imgs[5:9] + [missing] + imgs[9:]
    ds = make_dataset(paths)
    fs, n = counted(ds, tmp_path / "c")
    assert n == len(imgs) and len(fs) == len(imgs)
    assert [p for p, _ in fs.skipped] == [str(bad), missing]
    assert "gone.jpg" not in fs.paths[0] and all(r for _, r in fs.skipped)
    expect = {p: y for p, y in zip(ds.paths, ds.labels.tolist(), strict=True)}
    assert fs.labels.tolist() == [expect[p] for p in fs.paths]
    clean = extract_features(make_dataset(imgs), cache=False, **MODEL)
    assert_same(fs.features, clean.features)
    again, n = counted(ds, tmp_path / "c")  # the skip list is cached with the file
    assert n == 0 and again.skipped == fs.skipped and again.labels.tolist() == fs.labels.tolist()


def test_skipped_starts_with_what_the_dataset_left_out(tmp_path, imgs, capfd):
    root = tmp_path / "photos"
    for k, p in enumerate(imgs[:6]):
        (root / "ab"[k % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / "ab"[k % 2] / Path(p).name)
    zero = root / "a" / "zero.jpg"
    zero.write_bytes(b"")
    with pytest.warns(SkippedImagesWarning, match="zero.jpg: empty file"):
        ds = ImageDataset.from_directory(root, name="photos")
    assert ds.skipped == [(str(zero), "empty file")] and len(ds) == 6
    broken = ds.paths[3]  # fine when the dataset was read, garbage by extraction time
    Path(broken).write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    fs, n = counted(ds, tmp_path / "c", verbose=1)
    assert n == 5 and len(fs) == 5 and broken not in fs.paths
    assert [p for p, _ in fs.skipped] == [str(zero), broken]
    assert fs.skipped[0] == (str(zero), "empty file") and fs.skipped[1][1]
    err = capfd.readouterr().err
    assert "skipped 2 file(s) (see FeatureSet.skipped):" in err
    assert f"{zero}: empty file" in err and f"{broken}: " in err
    assert FeatureSet.load(fs.path).skipped == fs.skipped  # stored in the dataset file
    again, n = counted(ds, tmp_path / "c")
    assert n == 0 and again.skipped == fs.skipped
    memory = extract_features(ds, cache=False, **MODEL)
    assert memory.skipped == fs.skipped
    shutil.copy(imgs[int(Path(broken).stem[3:])], broken)  # repaired: a dataset-level skip only
    with pytest.warns(SkippedImagesWarning, match="zero.jpg"):
        ds = ImageDataset.from_directory(root, name="photos")
    assert counted(ds, tmp_path / "c")[0].skipped == [(str(zero), "empty file")]
    zero.unlink()  # same images, nothing skipped: the stored list must not outlive the file
    fixed, n = counted(ImageDataset.from_directory(root, name="photos"), tmp_path / "c")
    assert n == 0 and fixed.path == fs.path and fixed.paths == ds.paths and fixed.skipped == []
    assert FeatureSet.load(fixed.path).skipped == []


def test_cache_false_touches_no_disk(tmp_path, imgs, monkeypatch, make_dataset):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "never"))
    monkeypatch.chdir(tmp_path)
    fs, n = counted(make_dataset(imgs), False)
    assert n == len(imgs) and fs.path is None and os.listdir(tmp_path) == []


def test_duplicates_run_once_and_batching_is_not_in_the_key(tmp_path, imgs, make_dataset):
    paths = imgs + imgs[:3]
    fs, n = counted(make_dataset(paths), tmp_path, batch_size=4)
    assert n == len(imgs) and len(fs) == len(paths)
    assert_same(fs.features[-3:], fs.features[:3])
    other = extract_features(make_dataset(paths), cache=False, batch_size=7, n_workers=0, **MODEL)
    assert_same(other.features, fs.features)  # partial, padded batches give the same rows


class Reads:
    """Count, per image path, the files opened (``os.open``: every featx read of a local file)
    and the images decoded (:func:`featx.images.pool.decode_bytes`) while installed."""

    def __init__(self, monkeypatch, paths) -> None:
        import featx.images.pool as pool

        self.paths, self.opened, self.decoded = set(map(str, paths)), [], []
        real_open, real_decode = os.open, pool.decode_bytes

        def counting_open(path, *args, **kw):
            if os.fspath(path) in self.paths:
                self.opened.append(os.fspath(path))
            return real_open(path, *args, **kw)

        def counting_decode(data, *args, source=None, **kw):
            self.decoded.append(source)
            return real_decode(data, *args, source=source, **kw)

        monkeypatch.setattr(os, "open", counting_open)
        monkeypatch.setattr(pool, "decode_bytes", counting_decode)

    def take(self) -> tuple[dict[str, int], int]:
        """``({path: times opened}, images decoded)`` since the last call."""
        opened = {p: self.opened.count(p) for p in sorted(set(self.opened))}
        out = (opened, len(self.decoded))
        self.opened.clear(), self.decoded.clear()
        return out


def test_a_cold_extraction_reads_each_image_once(tmp_path, make_images, make_dataset,
                                                 monkeypatch):
    imgs = make_images(tmp_path / "imgs", 12, size=32)
    twin = tmp_path / "imgs" / "twin.jpg"  # the content of imgs[0] under another name
    shutil.copy(imgs[0], twin)
    first = [*imgs[:8], str(twin)]
    reads = Reads(monkeypatch, [*imgs, twin])
    cache = tmp_path / "c"

    # cold: no dataset file, an empty store. In-thread decoding (n_workers=0) takes one chunk of
    # 8 paths at a time, so the twin is hashed after imgs[0] is queued and is not decoded; with
    # decode threads a twin in flight with its original may be decoded too, but runs once.
    fs, n = counted(make_dataset(first, "first"), cache, n_workers=0)
    assert reads.take() == ({p: 1 for p in sorted(first)}, 8) and n == 8 and len(fs) == 9
    np.testing.assert_array_equal(fs.features[-1], fs.features[0])  # the twin: one row, once

    # another dataset sharing 4 images: read once each, only its 4 new contents decoded and run
    second = [*imgs[4:12]]
    fs2, n = counted(make_dataset(second, "second"), cache)
    assert reads.take() == ({p: 1 for p in sorted(second)}, 4) and n == 4
    np.testing.assert_array_equal(fs2.features[:4], fs.features[4:8])

    again, n = counted(make_dataset(first, "first"), cache)  # warm: one hash pass, no decode
    assert reads.take() == ({p: 1 for p in sorted(first)}, 0) and n == 0
    np.testing.assert_array_equal(again.features, fs.features)

    # a stale dataset file: the hash pass decides; only the missing row is read again, decoded
    grown = [*first, *make_images(tmp_path / "imgs", 1, size=32, start=100)]
    reads.paths.add(grown[-1])
    fs3, n = counted(make_dataset(grown, "first"), cache)
    assert fs3.path == fs.path and n == 1
    assert reads.take() == ({p: 1 + (p == grown[-1]) for p in sorted(grown)}, 1)


def test_an_extraction_without_cache_reads_each_image_once(tmp_path, make_images, make_dataset,
                                                           monkeypatch):
    """``cache=False`` is always cold: the same one pass (a twin hashed after its original is
    queued, the next chunk of 8, is not decoded; as for a cold cache above)."""
    imgs = make_images(tmp_path / "imgs", 8, size=32)
    twin = tmp_path / "imgs" / "twin.jpg"
    shutil.copy(imgs[0], twin)
    paths = [*imgs, str(twin)]
    reads = Reads(monkeypatch, paths)
    fs, n = counted(make_dataset(paths, "nocache"), False, n_workers=0)
    assert reads.take() == ({p: 1 for p in sorted(paths)}, 8) and n == 8 and len(fs) == 9
    np.testing.assert_array_equal(fs.features[-1], fs.features[0])


def test_featureset_load_subset_and_default_cache(imgs, make_dataset):
    fs, _ = counted(make_dataset(imgs, name="dflt"), None)
    assert fs.path.parent == Path(os.environ["FEATX_CACHE_DIR"])
    loaded = FeatureSet.load(fs.path)
    assert len(loaded) == len(fs) and loaded.attrs["backbone"] == "mobilenet_v2"
    sub = loaded.subset([1, 3])
    assert sub.paths == [fs.paths[1], fs.paths[3]] and sub.features.shape == (2, 1280)
    assert "FeatureSet(n=13" in repr(loaded)


def test_verbose_zero_is_silent_and_errors_name_the_parameter(tmp_path, imgs, capfd, make_dataset):
    extract_features(make_dataset(imgs[:2]), cache=tmp_path, **MODEL)
    assert capfd.readouterr().err == ""
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(make_dataset(imgs[:2]), cache=False, **{**MODEL, "verbose": 0},
                         batch_size=0)
    with pytest.raises(ValueError, match="pooling"):
        extract_features(make_dataset(imgs[:2]), cache=False, **{**MODEL, "pooling": "median"})


def test_decode_pool_processes_and_threads_agree(imgs):
    with DecodePool((16, 16), n_workers=2, kind="thread") as pool:
        a = list(pool.imap(imgs))
    with DecodePool((16, 16), n_workers=1, kind="process", chunk=5, window=2) as pool:
        b = list(pool.imap(imgs))
    assert sum(len(ids) for ids, _, _ in a) == len(imgs)
    stack = lambda parts: np.concatenate([x for _, x, _ in parts])  # noqa: E731
    assert np.array_equal(stack(a), stack(b))
    with pytest.raises(ValueError, match="kind"):
        DecodePool((16, 16), kind="fiber")


_RSS_CHILD = textwrap.dedent("""
    import json, os, resource, sys
    from featx.data import ImageDataset
    from featx.extract import extract_features
    paths = json.loads(open(sys.argv[2]).read())[: int(sys.argv[3])]
    ds = ImageDataset.from_paths(paths, [0] * len(paths), class_names=["a"], name="rss",
                                 verify="none")
    fs = extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=sys.argv[1],
                          verbose=0)
    print(json.dumps({"n": len(fs), "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def test_peak_memory_is_flat_in_n(tmp_path, make_images):
    paths = make_images(tmp_path / "many", 2000, size=40)
    (tmp_path / "paths.json").write_text(json.dumps(paths))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    rss = {}
    for n in (200, 2000):
        out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(tmp_path / f"c{n}"),
                              str(tmp_path / "paths.json"), str(n)],
                             env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert got["n"] == n
        rss[n] = got["rss_kb"]
    assert rss[2000] <= 1.2 * rss[200], rss


def test_forward_pass_counter_is_monotonic():
    assert isinstance(forward_pass_count(), int) and forward_pass_count() >= 0


@pytest.mark.smoke
def test_batch_runner_sends_uint8_pads_and_matches_float_input():
    """The runner hands the backend uint8 batches (a quarter of float32's bytes to a GPU; the
    model casts on the device), pads to a fixed batch shape, and drops the padding rows."""
    from featx.backbones import load_backbone
    from featx.extract.forward import BatchRunner

    model = load_backbone("efficientnet_lite0", weights="imagenet", input_size=32)
    x = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    runner = BatchRunner(model, batch_size=4)
    before = forward_pass_count()
    got = runner(x)  # one full batch, then 3 rows + 1 padding row
    assert forward_pass_count() - before == 7
    assert runner._buf.dtype == np.uint8 and runner._buf.shape == (4, 32, 32, 3)
    want = np.asarray(model.predict_on_batch(x.astype("float32")))
    assert got.shape == want.shape == (7, 1280) and got.dtype == np.float32
    assert np.abs(want).max() > 1e-3  # real weights: a signal worth comparing
    # the same numbers up to float rounding (XLA may fuse the on-device cast differently)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert_same(runner(x[5:6]), got[5:6])  # a lone row after a full batch: stale padding ignored


def test_opencv_decoder_is_its_own_cache_entry_close_to_pillow(tmp_path, make_dataset):
    """decoder="opencv": real photos, real Lite0 weights; close to Pillow's features but keyed
    apart (so neither reuses the other's rows), cached, and verifiable."""
    pytest.importorskip("cv2")
    from featx.extract import cache_verify

    photos = sorted(str(p) for p in (ROOT / "featx/datasets/clothing_mini/test").rglob("*.jpg"))
    ds = make_dataset(photos[:12])
    kw = dict(backbone="efficientnet_lite0", weights="imagenet", input_size=128)
    pil, n_pil = counted(ds, tmp_path, **kw)
    cv, n_cv = counted(ds, tmp_path, decoder="opencv", **kw)
    assert n_pil == n_cv == 12 and cv.attrs["decoder"] == "opencv"
    assert pil.path != cv.path and pil.attrs["key"] != cv.attrs["key"]
    a, b = pil.features, cv.features
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9 and not np.allclose(a, b), cos
    again, n = counted(ds, tmp_path, decoder="opencv", **kw)
    assert n == 0 and np.array_equal(again.features, b)
    assert cache_verify(cv.path, n=3)


# -- every argument is checked up front, with a message naming it ---------------------------------
NOT_A_SIZE = r"input_size must be None, an int or an \(h, w\) pair of ints; got input_size="
NOT_A_COUNT = r" must be None or an int >= {}, got {} of type {}"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"input_size": "32"}, ValueError, NOT_A_SIZE + "'32'"),
    ({"input_size": 32.0}, ValueError, NOT_A_SIZE + r"32\.0"),
    ({"input_size": (32, 32, 3)}, ValueError, NOT_A_SIZE + r"\(32, 32, 3\)"),
    ({"input_size": (32, "32")}, ValueError, NOT_A_SIZE + r"\(32, '32'\)"),
    ({"input_size": True}, ValueError, NOT_A_SIZE + "True"),
    ({"input_size": -3}, ValueError, r"input_size=-3 is too small for backbone='mobilenet_v2': "
                                     r"the mobilenet_v2 family needs at least 32x32 pixels"),
    ({"input_size": (32, 0)}, ValueError, r"input_size=\(32, 0\) is too small"),
    ({"layers": "block_3_add"}, TypeError, r"layers must be a list of layer names, got the string "
                                           r"'block_3_add'; use layers=\['block_3_add'\]"),
    ({"layers": -1}, TypeError, r"layers must be None or a list of .* got layers=-1 of type int; "
                                r"use layers=\[-1\]"),
    ({"layers": []}, ValueError, r"layers must be None or a non-empty list .* got layers=\[\]"),
    ({"layers": ["block_3_add", None]}, ValueError, r"got layers=\['block_3_add', None\]"),
    ({"batch_size": "8"}, ValueError, "batch_size" + NOT_A_COUNT.format(1, "'8'", "str")),
    ({"batch_size": 8.0}, ValueError, "batch_size" + NOT_A_COUNT.format(1, r"8\.0", "float")),
    ({"batch_size": 0}, ValueError, "batch_size" + NOT_A_COUNT.format(1, "0", "int")),
    ({"batch_size": True}, ValueError, "batch_size" + NOT_A_COUNT.format(1, "True", "bool")),
    ({"n_workers": -2}, ValueError, "n_workers" + NOT_A_COUNT.format(0, "-2", "int")),
    ({"n_workers": 1.5}, ValueError, "n_workers" + NOT_A_COUNT.format(0, r"1\.5", "float")),
    ({"n_workers": "2"}, ValueError, "n_workers" + NOT_A_COUNT.format(0, "'2'", "str")),
    ({"cache": 3}, TypeError, r"cache must be None \(the featx cache dir\), False \(no disk\) or "
                              r"a folder path \(str or os.PathLike\), got 3 of type int"),
    ({"cache": b"dir"}, TypeError, r"cache must be None .* got b'dir' of type bytes"),
    ({"pooling": "median"}, ValueError, r"pooling must be one of \['avg', 'max', None\], got "
                                        r"'median'"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, imgs, make_dataset, kwargs, error,
                                                   match):
    before = forward_pass_count()
    with pytest.raises(error, match=match):
        extract_features(make_dataset(imgs[:2]), **{**MODEL, "cache": tmp_path, **kwargs})
    assert forward_pass_count() == before and os.listdir(tmp_path) == []


@pytest.mark.parametrize("engine", ["local", "ray"])
@pytest.mark.parametrize("value, hint", [
    ("some/folder", r"got str 'some/folder' \(a folder path: use "
                    r"featx\.ImageDataset\.from_directory\(\.\.\.\)\)"),
    (Path("some/folder"), r"got PosixPath.*from_directory"),
    (["a.jpg", "b.jpg"], r"got list \['a.jpg', 'b.jpg'\] \(a list of paths: use "
                         r"featx\.ImageDataset\.from_paths\(paths, labels\)\)"),
    (np.zeros((2, 8, 8, 3), "uint8"), r"got ndarray .*ImageDataset\.from_paths\(\.\.\.\) or "
                                      r"\.from_directory\(\.\.\.\)"),
])
def test_dataset_must_be_an_image_dataset(tmp_path, engine, value, hint):
    """Both engines (Ray's is checked before Ray is needed) name `dataset` and the fix."""
    with pytest.raises(TypeError, match=r"dataset must be a featx\.ImageDataset, " + hint):
        extract_features(value, **MODEL, cache=tmp_path, engine=engine)
    assert os.listdir(tmp_path) == []


def test_the_ray_engine_shares_the_checks(tmp_path, imgs, make_dataset):
    from featx.extract import extract_on_ray as on_ray

    ds = make_dataset(imgs[:2])
    for kwargs, error, match in (
        ({"n_workers": 0}, ValueError, r"n_workers \(the embedded Ray instance's CPUs with "
                                       r"engine='ray'\) must be None or an int >= 1, got 0"),
        ({"n_workers": "4"}, ValueError, r"n_workers .* got '4' of type str"),
        ({"batch_size": "8"}, ValueError, r"batch_size must be None or an int >= 1, got '8'"),
        ({"cache": 3}, TypeError, r"cache must be None .* got 3 of type int"),
        ({"layers": "block_3_add"}, TypeError, r"use layers=\['block_3_add'\]"),
        ({"input_size": "32"}, ValueError, NOT_A_SIZE + "'32'"),
    ):
        if "layers" in kwargs or "input_size" in kwargs:
            pytest.importorskip("ray")  # checked by ExtractorConfig, after require_ray()
        with pytest.raises(error, match=match):
            on_ray(ds, **{**MODEL, "cache": tmp_path, **kwargs})
    assert os.listdir(tmp_path) == []
