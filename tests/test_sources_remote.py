"""Images from URLs (offline: a loopback HTTP server, fsspec's memory://, a zip and a tar): the same
features as the same photos from a folder, 0 backbone passes after the folder's extraction, and a
failing store costs only its own files."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import warnings
import zipfile

import fsspec
import numpy as np
import pytest
from helpers import assert_same, counted
from sources_server import LoopbackServer

from featx import ImageDataset
from featx.data import SkippedImagesWarning
from featx.images import DecodePool, is_remote, location_suffix, read_bytes
from featx.sources import resolve_data

CLASSES = ("red", "green")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, make_images):
    """A class-folder tree of real JPEGs, and its extraction from disk (the reference)."""
    root = tmp_path_factory.mktemp("tree") / "photos"
    make_images(root, 3, classes=CLASSES, folders=True, size=40)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference(tree, cache):
    with no_skipped_warning():
        ds = ImageDataset.from_directory(tree)
    fs, passes = counted(ds, cache)
    assert passes == len(ds) == 6
    return fs


@contextlib.contextmanager
def no_skipped_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedImagesWarning)
        yield


def by_id(fs) -> dict:
    return dict(zip(fs.ids, fs.features, strict=True))


def same_as_reference(fs, reference, n=6) -> None:
    assert len(fs) == n and set(fs.ids) <= set(reference.ids)
    ref = by_id(reference)
    assert_same(fs.features, np.stack([ref[i] for i in fs.ids]))
    assert [fs.class_names[y] for y in fs.labels] == [
        reference.class_names[reference.labels[reference.ids.index(i)]] for i in fs.ids]


@pytest.fixture(scope="module")
def served(tree):
    extra = tree.parent / "extra"
    extra.mkdir(exist_ok=True)
    shutil.copy(tree / "red" / "0.jpg", extra / "flaky.jpg")
    srv = LoopbackServer(tree.parent)
    with srv:
        yield srv


@pytest.fixture(scope="module")
def server(served):
    return served.url


def test_locations_are_told_apart():
    assert is_remote("https://h/a.jpg") and is_remote("zip://a.jpg::b.zip")
    assert not is_remote("/x/a.jpg") and not is_remote("tfrecord:///x/t.tfrecord#0@12+5")
    assert is_remote("tfrecord://s3://b/t.tfrecord#0@12+5")
    assert location_suffix("tfrecord:///x/t.tfrecord#0@12+5") is None
    assert location_suffix("https://h/a/B.JPEG?sig=x") == ".jpeg"


def test_http_folder_matches_disk_with_no_backbone_pass(server, tree, reference, cache):
    splits = ImageDataset.from_directory(f"{server}/photos/")
    assert splits.class_names == sorted(CLASSES) and len(splits) == 6
    assert all(p.startswith("http://127.0.0.1:") for p in splits.paths)
    fs, passes = counted(splits, cache)
    assert passes == 0
    same_as_reference(fs, reference)


def test_http_retries_transient_errors_and_skips_a_404(served, server, tree, reference, cache):
    flaky, missing = f"{server}/extra/flaky.jpg", f"{server}/extra/missing.jpg"
    urls = [f"{server}/photos/red/1.jpg", flaky, missing]
    ds = ImageDataset.from_paths(urls, ["red", "red", "red"], verify="none")
    fs, passes = counted(ds, cache)
    assert passes == 0  # the flaky file is a copy of red/0.jpg: its content is cached
    assert fs.paths == urls[:2]
    assert fs.skipped == [(missing, "cannot read file (not found)")]
    assert served.counts["/extra/flaky.jpg"] == 3  # two 500s, then the photo (hashed)
    same_as_reference(fs, reference, 2)


def test_http_500_forever_is_one_skipped_file(tmp_path, image_bytes, monkeypatch):
    from featx.trust import reader

    monkeypatch.setattr(reader, "_BACKOFF", 0.0)
    (tmp_path / "flaky-always.jpg").write_bytes(image_bytes())
    (tmp_path / "ok.jpg").write_bytes(image_bytes(colour=(0, 0, 200)))
    server = LoopbackServer(tmp_path)
    server.counts["/flaky-always.jpg"] = -100  # 500 for the next hundred GETs
    with server as url:
        with pytest.warns(SkippedImagesWarning, match="HTTP 500"):
            ds = ImageDataset.from_paths([f"{url}/flaky-always.jpg", f"{url}/ok.jpg"], [0, 1],
                                         class_names=["a", "b"])
    assert ds.paths == [f"{url}/ok.jpg"]
    assert ds.skipped[0][1] == "cannot read file (HTTP 500 flaky on purpose (after 4 attempts))"
    assert server.counts["/flaky-always.jpg"] == -100 + 4


def test_memory_csv_of_urls(tree, reference, cache):
    rows = ["path,label"]
    for cls in CLASSES:
        for i in range(3):
            with fsspec.open(f"memory://featx-test/{cls}-{i}.jpg", "wb") as f:
                f.write((tree / cls / f"{i}.jpg").read_bytes())
            rows.append(f"{cls}-{i}.jpg,{cls}")  # relative to the CSV's URL
    with fsspec.open("memory://featx-test/list.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    ds = ImageDataset.from_csv("memory://featx-test/list.csv")
    assert ds.paths[0] == "memory://featx-test/red-0.jpg" and ds.name == "list"
    fs, passes = counted(ds, cache)
    assert passes == 0
    same_as_reference(fs, reference)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_folder_matches_disk(kind, tree, reference, cache, tmp_path):
    archive = tmp_path / f"photos.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as z:
            for p in sorted(tree.rglob("*.jpg")):
                z.write(p, p.relative_to(tree).as_posix())
    else:
        with tarfile.open(archive, "w") as t:
            for p in sorted(tree.rglob("*.jpg")):
                t.add(p, p.relative_to(tree).as_posix())
    ds = ImageDataset.from_directory(f"{kind}://::{archive}")
    assert ds.paths[0] == f"{kind}://green/0.jpg::{archive}" and ds.name == "photos"
    with DecodePool((8, 8), n_workers=2, chunk=1) as pool:  # threads share the archive
        assert sum(len(ids) for ids, _, _ in pool.imap(ds.paths * 4)) == 24
    fs, passes = counted(ds, cache)
    assert passes == 0
    same_as_reference(fs, reference)


def test_read_bytes_of_every_kind_is_the_file(tree, server):
    data = (tree / "red" / "2.jpg").read_bytes()
    with fsspec.open("memory://featx-test/r2.jpg", "wb") as f:
        f.write(data)
    for loc in (str(tree / "red" / "2.jpg"), f"{server}/photos/red/2.jpg",
                "memory://featx-test/r2.jpg", f"file://{tree}/red/2.jpg"):
        assert read_bytes(loc) == data, loc


def test_data_argument_accepts_a_url(server, tree):
    splits = resolve_data(f"{server}/photos/", test_size=0.5)
    assert sorted(splits) == ["test", "train"]
    assert sum(len(s) for s in splits.values()) == 6
    assert os.path.commonprefix([p for s in splits.values() for p in s.paths]).startswith(
        server)


def test_cli_extract_reads_a_url(server, cache, capsys):
    from featx.cli import main

    code = main(["extract", f"{server}/photos/", "--backbone", "mobilenet_v2", "--weights",
                 "none", "--input-size", "32", "--test-size", "0.5", "--cache", str(cache),
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split()[:2] for line in out.splitlines()]
    assert ["train", "3"] in rows and ["test", "3"] in rows


def test_a_store_without_its_package_names_the_extra():
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401
        pytest.skip("s3fs is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match=r"pip install 'featx\[s3\]'"):
        ImageDataset.from_paths(["s3://bucket/a.jpg"], ["a"])
    with pytest.raises(ImportError, match=r"pip install 'featx\[s3\]'"):
        read_bytes("tfrecord://s3://bucket/train.tfrecord#0@12+100")


def test_cache_file_of_a_url_dataset_does_not_depend_on_the_working_directory(tmp_path,
                                                                              monkeypatch):
    from featx.cache import location_digest

    urls = ["https://h/photos/red/1.jpg", "https://h/photos/blue/2.jpg"]
    here = location_digest(urls)
    monkeypatch.chdir(tmp_path)
    assert location_digest(urls) == here != location_digest(["https://h/other/red/1.jpg"])


def test_estimators_take_a_list_of_urls(server, reference):
    from featx import FeatureExtractor

    urls = [f"{server}/photos/red/0.jpg", f"{server}/photos/green/2.jpg"]
    fx = FeatureExtractor("mobilenet_v2", weights=None, input_size=32, verbose=0).fit()
    ref = dict(zip(reference.paths, reference.features, strict=True))
    local = [next(p for p in ref if p.endswith(u.split("/photos")[1])) for u in urls]
    assert_same(fx.transform(urls), np.stack([ref[p] for p in local]))
