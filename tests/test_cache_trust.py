"""The feature cache never returns wrong or misaligned rows.

Every row-store row carries a digest and every HDF5 file featx writes is sealed with the digest of
its bytes; a damaged dataset file or segment is moved to ``<cache>/damaged/`` and rebuilt (from
the row store, or by re-extracting just the lost images) with a warning naming it; ``cache
verify`` reports malformed files instead of crashing; a disk that refuses a write gives one clear
error naming the cache folder; file names that are not UTF-8 go through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from helpers import FEATURE_RTOL, ROOT, assert_same, counted, printed_number

from featx import cache as fc
from featx.cli.main import main as cli
from featx.data import ImageDataset
from featx.extract import FeatureSet, cache_verify
from featx.extract.config import ExtractorConfig
from featx.trust import store as atomic

N = 12  # images of the shared dataset (tiny: 32 px, MobileNetV2 with random weights)
LEGACY = Path(__file__).parent / "data" / "legacy"


@pytest.fixture(scope="module")
def imgs(tmp_path_factory, make_images) -> list[str]:
    return make_images(tmp_path_factory.mktemp("imgs"), N, size=32)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, imgs, make_dataset) -> FeatureSet:
    """A clean cache (one dataset file, one segment) of the dataset; tests copy it."""
    fs, n = counted(make_dataset(imgs), tmp_path_factory.mktemp("clean"))
    assert n == N
    return fs


@pytest.fixture
def cache(clean, tmp_path) -> SimpleNamespace:
    """A fresh copy of the clean cache: ``root``, ``dfile`` (the dataset file), ``seg``."""
    root = tmp_path / "cache"
    shutil.copytree(clean.path.parent, root)
    (seg,) = root.glob("rows/*/seg-*.h5")
    return SimpleNamespace(root=root, dfile=root / clean.path.name, seg=seg, store=seg.parent)


def extract(ds, root, **kw):
    """``extract_features`` with :data:`MODEL`: (FeatureSet, backbone passes, warning texts)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fs, n = counted(ds, root, **kw)
    return fs, n, [str(w.message) for w in caught if issubclass(w.category, fc.DamagedCacheWarning)]


def same_rows(fs: FeatureSet, ref: FeatureSet, exact: bool = True) -> None:
    """The same rows, aligned: ids, paths, labels, and features (bit for bit, or allclose)."""
    assert fs.ids == ref.ids and fs.paths == ref.paths
    assert fs.labels.tolist() == ref.labels.tolist()
    assert fs.features.shape == ref.features.shape
    if exact:
        np.testing.assert_array_equal(fs.features, ref.features)
    else:
        assert_same(fs.features, ref.features)


def features_offset(path: Path, name: str = "features") -> int:
    """Where the first feature row's (or ``name``'s first) bytes lie in an HDF5 file featx
    wrote."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        return ds.id.get_offset() if ds.chunks is None else ds.id.get_chunk_info(0).byte_offset


def poke(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def moved(root: Path, path: Path) -> Path:
    """Where a damaged file went, checked against ``damaged/log.jsonl``."""
    dest = root / "damaged" / path.relative_to(root)
    log = [json.loads(line) for line in (root / "damaged" / "log.jsonl").read_text().splitlines()]
    assert any(e["file"] == str(path) and e["moved_to"] == str(dest) for e in log), log
    return dest


# -- digests ---------------------------------------------------------------------------------------
def test_rows_and_files_carry_digests(cache, clean):
    with h5py.File(cache.seg, "r") as f:
        assert f["digests"].shape == (N, 32) and f["digests"].dtype == np.uint8
        assert f.attrs["row_digest"] == "sha256" and f["features"].chunks is None
        np.testing.assert_array_equal(f["digests"][:], fc.row_digests(f["features"][:],
                                                                      f["ids"][:]))
    with h5py.File(cache.dfile, "r") as f:
        assert "features" not in f and f.attrs["row_store"] == cache.store.name  # rows: once
    for path in (cache.seg, cache.dfile):
        assert path.read_bytes().startswith(b"featx-digest\n")  # the HDF5 user block
        assert atomic.check_seal(path) is True
    report = fc.cache_check(cache=cache.root)
    assert report and report.n_checksums == 2 * N and report.n_legacy == 0
    assert sorted(report.files) == sorted([str(cache.dfile), str(cache.store)])


# -- a damaged dataset file: reported, moved aside, rebuilt from the store -------------------------
def _rewrite(name, value):
    def change(f):
        del f[name]
        f[name] = value
    return change


def _h5(change):
    def tamper(path):
        with h5py.File(path, "r+") as f:
            change(f)
    return tamper


def _set(name, index, value):
    def change(f):
        data = f[name][:]
        data[index] = value
        f[name][:] = data
    return change


TAMPER = {  # the cases, and a few more (the rows live in the store: ids point at them)
    "fewer ids than labels": _h5(lambda f: _rewrite("ids", f["ids"][: N - 3])(f)),
    "one id changed": _h5(_set("ids", 3, f"{3:064x}".encode())),
    "two ids swapped": _h5(lambda f: _rewrite("ids", f["ids"][:][[1, 0, *range(2, N)]])(f)),
    "shifted labels": _h5(lambda f: _rewrite("labels", np.roll(f["labels"][:], 1))(f)),
    "swapped paths": _h5(lambda f: _rewrite("paths", f["paths"][:][[1, 0, *range(2, N)]])(f)),
    "class names changed": _h5(lambda f: f.attrs.__setitem__("class_names", ["c", "b", "a"])),
    "random bytes mid-file": lambda p: poke(p, features_offset(p, "ids") + 300,
                                            np.random.default_rng(0).bytes(40)),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "junk": lambda p: p.write_bytes(b"not HDF5 at all\n" * 100),
}


@pytest.mark.parametrize("case", TAMPER)
def test_a_damaged_dataset_file_is_reported_moved_aside_and_rebuilt(case, cache, clean, imgs,
                                                                    make_dataset):
    TAMPER[case](cache.dfile)
    damaged = cache.dfile.read_bytes()
    with pytest.raises(ValueError, match=re.escape(str(cache.dfile))):
        FeatureSet.load(cache.dfile)
    report = fc.cache_check(cache=cache.root)  # the whole cache: reported, never raised
    assert not report and [p for p, _ in report.failures] == [str(cache.dfile)]

    fs, n, said = extract(make_dataset(imgs), cache.root)
    same_rows(fs, clean)
    assert n == 0  # rebuilt from the row store
    dest = moved(cache.root, cache.dfile)
    assert said == [f"featx: cache file {cache.dfile} is damaged ({report.failures[0][1]}); moved "
                    f"to {dest} and rebuilt from the row store"] or case == "junk"
    assert dest.read_bytes() == damaged and str(cache.dfile) in said[0]
    assert fc.cache_check(cache=cache.root)  # sound again


def _legacy_copy(src: Path, dst: Path, change=None) -> Path:
    """``src`` rewritten as featx wrote dataset files before they were sealed (plain h5py), its
    rows in the file (gathered from its row store)."""
    features = FeatureSet.load(src).features
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        g["features"] = features
        for k in ("labels", "paths", "ids"):
            g[k] = f[k][:]
        for k, v in f.attrs.items():
            if k not in ("row_store", "row_shape", "row_dtype"):
                g.attrs[k] = v
        if change is not None:
            change(g)
    return dst


def test_files_written_before_digests_are_reused_and_shape_checked(cache, clean, imgs,
                                                                   make_dataset):
    legacy = _legacy_copy(cache.dfile, cache.root / "legacy.h5")
    os.replace(legacy, cache.dfile)
    fs, n, said = extract(make_dataset(imgs), cache.root)
    assert n == 0 and not said
    same_rows(fs, clean)
    report = fc.cache_check(cache.dfile)
    assert report and report.n_legacy == N and report.n_checksums == 0
    # the case in a file without digests: 150 feature rows and 200 labels
    _legacy_copy(clean.path, cache.dfile, _rewrite("features", clean.features[: N - 3]))
    with pytest.raises(fc.DamagedCacheError, match=rf"{re.escape(str(cache.dfile))} is damaged "
                       rf"\(its datasets disagree on the number of rows: features {N - 3}, "
                       rf"labels {N}, paths {N}, ids {N} \(n_rows {N}\)\)"):
        FeatureSet.load(cache.dfile)
    fs, n, said = extract(make_dataset(imgs), cache.root)
    assert n == 0 and len(said) == 1 and str(cache.dfile) in said[0]
    same_rows(fs, clean)


def test_the_committed_legacy_cache_checks_as_legacy(tmp_path):
    """Its dataset file (rows inside, no seal) checks as legacy; its unsealed segment is a
    problem: nothing can vouch for its rows (an extraction moves it aside and re-extracts)."""
    shutil.copytree(LEGACY / "cache", tmp_path / "cache")
    report = fc.cache_check(cache=tmp_path / "cache")
    assert not report and len(report.failures) == 1 and report.n_legacy == 16
    assert report.n_checksums == 0 and len(report.files) == 2


# -- cache_verify: every checksum, and re-extraction that never crashes ----------------------------
def test_cache_verify_reextracts_and_reports_shape_changes(cache, clean):
    good = cache_verify(cache.dfile, n="all")
    assert good and good.n_checked == N and good.n_checksums == N and not good.failures
    with pytest.raises(ValueError, match=r"n \(rows to re-extract per file; or 'all'\) must be "
                                         r"an int >= 0, got -1"):
        cache_verify(cache.dfile, n=-1)
    # A file without digests whose rows changed width: re-extraction reports, never broadcasts.
    for width in (1279, 1281):
        wide = np.zeros((N, width), "float32")
        wide[:, : min(width, 1280)] = clean.features[:, : min(width, 1280)]
        _legacy_copy(clean.path, cache.dfile, _rewrite("features", wide))
        report = cache_verify(cache.dfile, n=3)
        assert not report and report.n_checked == 3
        assert all(why == f"the stored row has shape ({width},), the backbone gives (1280,)"
                   for _, why in report.failures)
    for case in ("fewer ids than labels", "shifted labels", "one id changed"):
        shutil.copy(clean.path, cache.dfile)
        TAMPER[case](cache.dfile)
        report = cache_verify(cache.dfile, n=8)  # was: ok, or IndexError / broadcast errors
        assert not report and report.failures == [
            (str(cache.dfile), "its bytes differ from the digest written with them")]


# -- a damaged segment: moved aside, its intact rows kept, the lost ones re-extracted --------------
def test_a_changed_segment_row_is_re_extracted_alone(cache, clean, imgs, make_dataset):
    poke(cache.seg, features_offset(cache.seg) + 5 * 1280 * 4 + 17, b"\xff")  # row 5
    cache.dfile.unlink()  # assemble from the store
    fs, n, said = extract(make_dataset(imgs), cache.root)
    same_rows(fs, clean, exact=False)
    assert n == 1
    dest = moved(cache.root, cache.seg)
    assert said == [f"featx: row-store segment {cache.seg} is damaged (1 of its rows fails its "
                    f"checksum); moved to {dest}; 11 intact rows kept in "
                    f"{said[0].split(' kept in ')[1].split(';')[0]}; 1 of its 12 rows will be "
                    "extracted again when needed"]
    assert fc.cache_check(cache=cache.root)


@pytest.mark.parametrize("damage", ["row changed", "segment removed"])
def test_a_dataset_file_whose_rows_are_lost_gets_them_extracted_again(damage, cache, clean,
                                                                      imgs, make_dataset):
    """The dataset file references its rows in the store by content id: a damaged or vanished
    segment is never wrong features, only rows extracted again, with a warning."""
    if damage == "row changed":
        poke(cache.seg, features_offset(cache.seg) + 5 * 1280 * 4 + 17, b"\xff")  # row 5
        why = f"its rows in row-store segment {cache.seg} are damaged (1 of its rows fails"
    else:
        cache.seg.unlink()
        why = f"{N} of its {N} rows are missing from its row store {cache.store}"
    with pytest.raises(fc.MissingRowsError, match=re.escape(f"{cache.dfile}: {why}")):
        FeatureSet.load(cache.dfile)
    report = fc.cache_check(cache=cache.root)
    assert not report and any(p == str(cache.dfile) and w.startswith(why)
                              for p, w in report.failures)
    fs, n, said = extract(make_dataset(imgs), cache.root)
    same_rows(fs, clean, exact=False)
    assert n == (1 if damage == "row changed" else N) and len(said) == 1
    if damage == "row changed":  # the store's warning: the segment moved aside, 11 rows kept
        assert said[0].startswith(f"featx: row-store segment {cache.seg} is damaged (1 of its "
                                  f"rows fails its checksum); moved to "
                                  f"{moved(cache.root, cache.seg)}")
    else:
        assert said == [f"featx: cache file {cache.dfile}: {why}; extracting them again"]
    assert fs.path == cache.dfile and fc.cache_check(cache=cache.root)
    same_rows(FeatureSet.load(cache.dfile), fs)


@pytest.mark.parametrize("damage, lost", [
    ("junk", 0),  # today: every later extraction fails, "file signature not found"
    ("truncated", N),
    ("ids changed", N),  # metadata: the whole segment is moved aside, nothing parsed
])
def test_a_damaged_segment_is_moved_aside(damage, lost, cache, clean, imgs, make_dataset,
                                          capsys):
    target = cache.seg
    if damage == "junk":
        target = cache.store / "seg-00000000000000000000-1-abcdef.h5"
        target.write_bytes(b"junk" * 100)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:3000])
    else:
        with h5py.File(target, "r") as f:
            where = f["ids"].id.get_offset() + 70
        poke(target, where, b"0")
    code = cli(["cache", "verify", "--cache-dir", str(cache.root)])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("FAILED") and f"  {target}: " in out
    cache.dfile.unlink()
    fs, n, said = extract(make_dataset(imgs), cache.root)
    same_rows(fs, clean, exact=False)
    assert n == lost and len(said) == 1 and said[0].startswith(
        f"featx: row-store segment {target} is damaged (")
    assert f"moved to {moved(cache.root, target)}" in said[0]
    assert fc.cache_check(cache=cache.root)


def test_compaction_checks_every_row_it_copies(tmp_path):
    store = fc.RowStore(tmp_path / "rows" / "x-32-avg__0123abcd", attrs={"key": "0123abcd"})
    rng = np.random.default_rng(0)
    ids = [f"{i:064x}" for i in range(34)]
    feats = rng.random((34, 8), dtype=np.float32)
    with store.lock():
        segs = [store.commit(ids[i : i + 2], feats[i : i + 2]) for i in range(0, 34, 2)]
    poke(segs[3], features_offset(segs[3]) + 8 * 4 + 2, b"\x7f")  # the row of ids[7]
    with store.lock(), pytest.warns(fc.DamagedCacheWarning, match=re.escape(str(segs[3]))):
        store.compact()  # 17 segments: all are merged, after their rows are checked
    with store.lock():
        assert ids[7] not in store.index() and len(store.index()) == 33
        store.compact()
        assert len(store.segments()) == 1
        keep = [i for i in range(34) if i != 7]
        np.testing.assert_array_equal(store.gather([ids[i] for i in keep]), feats[keep])


# -- featx cache verify ----------------------------------------------------------------------------
def test_cache_verify_command(cache, capsys, tmp_path):
    def run(*argv):
        code = cli(["cache", "verify", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("--cache-dir", cache.root)
    assert code == 0 and out.startswith(f"ok: checksums of {2 * N} rows in 2 file(s) checked")
    code, out, _ = run(cache.dfile, "--sample", 2)
    assert code == 0 and out.startswith("ok: 2 rows checked, max abs diff ")
    assert f"; checksums of {N} " in out.splitlines()[0]
    scale = float(np.abs(FeatureSet.load(cache.dfile).features).max())
    assert 0 <= printed_number(out, "max abs diff") <= FEATURE_RTOL * scale  # re-extracted
    code, out, _ = run(cache.dfile.name, "--all", "--cache-dir", cache.root)
    assert code == 0 and out.startswith(f"ok: {N} rows checked")
    code, out, _ = run(cache.store, "-n", 2)  # a row store: its checksums
    assert code == 0 and out.startswith(f"ok: checksums of {N} rows in 1 file(s)")
    TAMPER["shifted labels"](cache.dfile)
    code, out, _ = run("--cache-dir", cache.root, "--sample", 3)
    assert code == 1 and out.splitlines()[1:] == [
        f"  {cache.dfile}: its bytes differ from the digest written with them"]
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00junk" * 50)
    code, out, err = run(junk)
    assert code == 1 and not out
    assert err == f"featx: error: {junk} is not a featx cache file (not an HDF5 file)\n"


# -- a disk that refuses a write ----------------------------------------------------------------
def _class_tree(make_images, root: Path, n: int) -> Path:
    for k, name in enumerate(("a", "b")):
        make_images(root / name, n, size=32, start=1000 + 100 * k)
    return root


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_a_file_size_limit_is_one_clear_error(tmp_path, make_images):
    data = _class_tree(make_images, tmp_path / "data", 48)
    root = tmp_path / "cache"
    command = (f"ulimit -f 200; exec {sys.executable} -c 'from featx.cli.main import main; "
               f"raise SystemExit(main())' extract {data} --backbone mobilenet_v2 --weights none "
               f"--input-size 32 --cache {root} -q")
    proc = subprocess.run(["bash", "-c", command], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])  # was 139: a segfault
    error = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"featx: error: (CacheWriteError: )?cannot write to the feature cache "
                        rf"'{re.escape(str(root))}' \((rows/mobilenet_v2-32-avg__\w+/seg-.*\.h5|"
                        r"weights/onnx/mobilenet_v2-32-\w+\.onnx)\): "
                        r"File too large: the process's file-size limit \(`ulimit -f`\) is 0\.2 "
                        r"MB and this file needs about .* MB; the cache is left as it was before "
                        r"this write.*", error), error
    (store,) = (root / "rows").iterdir()
    assert sorted(p.name for p in store.iterdir()) == [".lock", "config.json",
                                                       "config.json.seal"]  # intact, no .tmp
    assert not [p for p in root.rglob("*") if p.name.startswith(".tmp")]
    fs, n = counted(ImageDataset.from_directory(data), root)  # the next run goes through
    assert n == 96 and len(fs) == 96 and fc.cache_check(cache=root)


_UNSHARE = shutil.which("unshare")


def _can_unshare() -> bool:
    if not _UNSHARE or sys.platform != "linux":
        return False
    probe = subprocess.run([_UNSHARE, "-Urm", "true"], capture_output=True)
    return probe.returncode == 0


_IN_NAMESPACE = textwrap.dedent("""
    import json, os, sys, warnings
    from featx.cache import CacheWriteError
    from featx.data import ImageDataset
    from featx.extract import extract_features, forward_pass_count
    paths, full, ro = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    ds = ImageDataset.from_paths(paths, [i % 3 for i in range(len(paths))],
                                 class_names=["a", "b", "c"], name="ds", verify="none")
    kw = dict(backbone="mobilenet_v2", weights=None, input_size=32, verbose=0)
    out = {}
    for name, cache, data in (("full", full, ds), ("ro-hit", ro, ds),
                              ("ro-miss", ro, ds.subset(range(3)))):
        before = forward_pass_count()
        try:
            fs = extract_features(data, cache=cache, **kw)
            out[name] = {"rows": len(fs), "passes": forward_pass_count() - before}
        except CacheWriteError as exc:
            out[name] = {"errno": exc.errno, "error": str(exc)}
    print(json.dumps(out))
""")


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -Urm` (a user namespace) to mount "
                                               "a full tmpfs and a read-only folder")
def test_a_full_disk_and_a_read_only_cache(cache, imgs, tmp_path):
    import errno

    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    shutil.copytree(cache.root, ro, dirs_exist_ok=True)
    script = tmp_path / "run.py"
    script.write_text(_IN_NAMESPACE)
    mounts = (f"mount -t tmpfs -o size=64k tmpfs {full} && mount --bind {ro} {ro} && "
              f"mount -o remount,bind,ro {ro} && exec {sys.executable} {script} "
              f"'{json.dumps(list(imgs))}' {full} {ro}")
    proc = subprocess.run([_UNSHARE, "-Urm", "bash", "-c", mounts], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["full"]["errno"] == errno.ENOSPC
    assert re.match(rf"cannot write to the feature cache '{re.escape(str(full))}' "
                    r"\((rows|weights)/.*\): No space left on device: .* free, this file needs "
                    r"about .*; the cache is left as it was before this write",
                    out["full"]["error"]), out
    assert out["ro-hit"] == {"rows": N, "passes": 0}  # a read-only cache is still read
    assert out["ro-miss"]["errno"] == errno.EROFS
    assert re.match(rf"cannot write to the feature cache '{re.escape(str(ro))}' \(.*\): "
                    r"Read-only file system: the folder is read-only", out["ro-miss"]["error"])


def test_the_size_reserved_before_a_write_covers_the_file(tmp_path, monkeypatch):
    reserved = {}
    real = atomic._reserve

    def spy(tmp, size):
        reserved[tmp.name.split("-", 2)[2]] = size
        return real(tmp, size)

    monkeypatch.setattr(atomic, "_reserve", spy)
    store = fc.RowStore(tmp_path / "rows" / "x-32-avg__0123abcd", attrs={"key": "0123abcd"})
    rng = np.random.default_rng(0)
    with store.lock():
        for n, shape, dtype in ((1, (1280,), "float32"), (300, (1280,), "float32"),
                                (7, (2, 2, 64), "float16"), (0, (16,), "float32")):
            store.commit([f"{i:064x}" for i in range(n)], rng.random((n, *shape)).astype(dtype))
    for n in (1, 500):
        path = tmp_path / f"ds{n}.h5"
        fc.write_dataset_file(path, ExtractorConfig("mobilenet_v2", weights=None, input_size=32),
                              features=np.ones((n, 1280), "float32"), embed_rows=n == 500,
                              labels=np.zeros(n, int), paths=[f"/{'x' * 300}/{i}.jpg"
                                                              for i in range(n)],
                              ids=[f"{i:064x}" for i in range(n)], class_names=["a"],
                              extra={"skipped": json.dumps([["/y" * 100, "bad"]] * 50)})
    files = [*store.segments(), store.directory / "config.json", tmp_path / "ds1.h5",
             tmp_path / "ds500.h5"]
    assert len(reserved) == len(files) == 7
    for path in files:
        assert path.stat().st_size <= reserved[path.name], path.name


# -- file names that are not UTF-8 ----------------------------------------------------------------
def test_a_file_name_that_is_not_utf8_goes_through(tmp_path, imgs, make_dataset):
    odd = tmp_path / os.fsdecode(b"odd-\xff\xfe.jpg")
    try:
        shutil.copy(imgs[0], odd)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this filesystem refuses file names that are not UTF-8")
    paths = [str(odd), *imgs[1:4]]
    fs, n = counted(make_dataset(paths), tmp_path / "c")  # was: UnicodeEncodeError
    assert n == 4 and fs.paths == paths and not fs.skipped
    assert FeatureSet.load(fs.path).paths == paths
    again, n = counted(make_dataset(paths), tmp_path / "c")
    assert n == 0 and again.paths == paths


# -- fuzz: random byte ranges of a dataset file and of a segment ----------------------------------
def _corrupt(data: bytearray, rng) -> None:
    kind = int(rng.integers(0, 4))
    if kind == 3:  # cut short
        del data[int(rng.integers(0, len(data))):]
        return
    n = int(rng.integers(1, 65))
    off = int(rng.integers(0, len(data) - n))
    if kind == 0:
        data[off : off + n] = rng.bytes(n)
    elif kind == 1:
        data[off : off + n] = bytes(n)
    else:
        data[off] ^= 1 << int(rng.integers(0, 8))


@pytest.mark.parametrize("which", ["dataset file", "segment"])
def test_fuzz_corruptions_end_in_the_right_rows_or_an_error_naming_the_file(which, cache, clean,
                                                                            imgs, make_dataset):
    ds = make_dataset(imgs)
    target = cache.dfile if which == "dataset file" else cache.seg
    pristine = {p: p.read_bytes() for p in (cache.dfile, cache.seg)}
    rng = np.random.default_rng(14 if which == "segment" else 41)
    seen = {"right": 0, "named error": 0, "detected": 0}
    for _trial in range(100):
        shutil.rmtree(cache.root / "damaged", ignore_errors=True)
        for seg in cache.store.glob("seg-*.h5"):
            seg.unlink()
        for path, data in pristine.items():
            path.write_bytes(data)
        if which == "segment":
            cache.dfile.unlink()  # assemble from the store
        data = bytearray(pristine[target])
        _corrupt(data, rng)
        target.write_bytes(bytes(data))
        try:
            fs, _, said = extract(ds, cache.root)
        except Exception as exc:  # noqa: BLE001 - any error is allowed if it names the file
            assert str(target) in str(exc), exc
            seen["named error"] += 1
            continue
        same_rows(fs, clean, exact=which == "dataset file")
        seen["right"] += 1
        seen["detected"] += bool(said)
    assert seen["right"] + seen["named error"] == 100
    assert seen["detected"] >= 70, seen  # most byte changes land where they matter
