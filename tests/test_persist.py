"""save/load: identical predictions in a fresh process, and nothing untrusted runs."""

import importlib
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator
from sklearn.preprocessing import FunctionTransformer

import featx.persist
from featx import FeatureExtractor, TransferClassifier
from featx.heads import list_heads, make_head
from featx.persist import UntrustedModelError, load, save

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = Path(__file__).resolve().parents[1]
FAST = {"rf": {"n_estimators": 10}, "mlp": {"hidden_layer_sizes": (16,), "max_iter": 50}}
# name -> (head, make_head keywords): every row, plus the optional steps and calibration.
MODELS = {name: (name, {"random_state": 0, **FAST.get(name, {})}) for name in list_heads()}
MODELS["svm_proba_pca"] = ("svm", {"proba": True, "pca": 5, "normalize": True})
MODELS["knn_pca"] = ("knn", {"pca": 0.9})
MODELS["logreg_sqrt_whiten"] = ("logreg", {"power": 0.5, "pca": 5, "whiten": True})

FRESH = """
import sys, numpy as np
from pathlib import Path
from featx.persist import load
folder = Path(sys.argv[1])
X = np.load(folder / "X.npy")
for file in sorted(folder.glob("*.featx")):
    model = load(file)
    np.save(folder / (file.stem + ".pred.npy"), model.predict(X))
    if hasattr(model, "predict_proba"):
        np.save(folder / (file.stem + ".proba.npy"), model.predict_proba(X))
"""


def cnn_like(n=60, d=32, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    h = (rng.normal(size=(3, 6))[y] + rng.normal(size=(n, 6))) @ rng.normal(size=(6, d))
    return np.clip(h - 0.5, 0, 6).astype(np.float32), np.array(["boot", "coat", "shirt"])[y]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Every model fitted and saved, then reloaded by one fresh interpreter."""
    folder = tmp_path_factory.mktemp("models")
    X, y = cnn_like()
    np.save(folder / "X.npy", X)
    models = {}
    for key, (head, kwargs) in MODELS.items():
        models[key] = make_head(head, **kwargs).fit(X, y)
        save(models[key], folder / f"{key}.featx")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", FRESH, str(folder)], check=True, env=env, timeout=120)
    return folder, X, models


@pytest.mark.parametrize("key", list(MODELS))
def test_fresh_process_predicts_identically(key, fitted):
    folder, X, models = fitted
    np.testing.assert_array_equal(np.load(folder / f"{key}.pred.npy"), models[key].predict(X))
    if hasattr(models[key], "predict_proba"):
        np.testing.assert_array_equal(np.load(folder / f"{key}.proba.npy"),
                                      models[key].predict_proba(X))


def test_file_is_a_zip_with_a_manifest(fitted):
    folder, _, _ = fitted
    with zipfile.ZipFile(folder / "rf.featx") as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.skops"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["class"] == "sklearn.pipeline.Pipeline"
    assert manifest["storage"] == "skops" and manifest["format_version"] == 1
    assert {"featx_version", "sklearn_version", "skops_version", "params"} <= set(manifest)


def test_joblib_pickling_still_works(fitted, tmp_path):
    _, X, models = fitted
    joblib.dump(models["logreg"], tmp_path / "head.joblib")
    again = joblib.load(tmp_path / "head.joblib")
    np.testing.assert_array_equal(again.predict(X), models["logreg"].predict(X))


def test_untrusted_type_is_refused_without_trust(tmp_path):
    crafted = FunctionTransformer(func=eval)
    with pytest.warns(UserWarning, match=r"will need trust=True"):
        save(crafted, tmp_path / "evil.featx")
    with pytest.raises(UntrustedModelError, match=r"not known to be safe: \['builtins.eval'\]"):
        load(tmp_path / "evil.featx")
    assert load(tmp_path / "evil.featx", trust=True).func is eval


class _Hooked:
    """An object saved through the hook protocol (stands in for a fine-tuned model)."""

    def __init__(self, value):
        self.value = value

    def _featx_save(self, dirpath):
        (dirpath / "value.txt").write_text(str(self.value))
        return {"files": ["value.txt"]}

    @classmethod
    def _featx_load(cls, dirpath, manifest, trust):
        assert manifest["hook"] == {"files": ["value.txt"]} and trust
        return cls(int((dirpath / "value.txt").read_text()))


def test_hook_classes_outside_featx_need_trust(tmp_path):
    save(_Hooked(7), tmp_path / "hook.featx")
    with pytest.raises(UntrustedModelError, match=r"class='[\w.]*_Hooked'"):
        load(tmp_path / "hook.featx")
    assert load(tmp_path / "hook.featx", trust=True).value == 7


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_crafted_archives_are_refused(tmp_path):
    hook = {"format": "featx.model", "format_version": 1, "class": "os.system",
            "storage": "hook", "sklearn_version": sklearn.__version__}
    _write_zip(tmp_path / "hook.featx", {"manifest.json": json.dumps(hook)})
    with pytest.raises(UntrustedModelError, match=r"class='os.system'"):
        load(tmp_path / "hook.featx")
    _write_zip(tmp_path / "slip.featx", {"../escape.txt": "x", "manifest.json": "{}"})
    with pytest.raises(UntrustedModelError, match=r"'../escape.txt': unsafe path"):
        load(tmp_path / "slip.featx")
    _write_zip(tmp_path / "other.zip", {"readme.txt": "hello"})
    with pytest.raises(ValueError, match=r"is not a featx model"):
        load(tmp_path / "other.zip")


MiB = 1024**2
BOMB = 50 * MiB  # zeros: ~50 kB deflated, so the archive is tiny and the test fast


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """load()'s temporary directories go here, so a test can see nothing was left behind."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _bomb(path, member="model.skops", size=BOMB):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr(member, bytes(size))
    return path


def test_zip_bomb_is_refused_before_extraction(tmp_path, scratch):
    path = _bomb(tmp_path / "bomb.featx")
    assert path.stat().st_size < MiB
    with pytest.raises(ValueError, match=(
            rf"path='{path}': its members declare 52,428,802 bytes in all, over "
            r"max_size=1,048,576 bytes\. .*max_size=<bytes>\), or max_size=None")):
        load(path, max_size=MiB)
    assert list(scratch.iterdir()) == []


def test_default_cap_is_max_size(tmp_path, scratch):
    with zipfile.ZipFile(tmp_path / "big.featx", "w") as zf:  # 5 GiB declared, nothing stored
        for i in range(5):
            zf.writestr(f"part{i}", b"")
        for info in zf.infolist():
            info.file_size = 1024**3
    with pytest.raises(ValueError, match=r"declare 5,368,709,120 bytes in all, over "
                                         r"max_size=4,294,967,296 bytes"):
        load(tmp_path / "big.featx")
    assert featx.persist.MAX_SIZE == 4 * 1024**3 and list(scratch.iterdir()) == []


def _lie_about_size(path, member, size):
    """Patch ``member``'s uncompressed size in its local and central zip headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(member).header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 22, size)
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def test_lying_header_stops_at_the_declared_size(tmp_path, scratch):
    path = _bomb(tmp_path / "liar.featx")
    _lie_about_size(path, "model.skops", 100)
    with zipfile.ZipFile(path) as zf:
        assert sum(i.file_size for i in zf.infolist()) == 102  # passes the declared check
    with pytest.raises(ValueError, match=r"liar.featx' is not a featx model: not a valid zip "
                                         r"archive \(Bad CRC-32 for file 'model.skops'\)"):
        load(path, max_size=MiB)
    assert list(scratch.iterdir()) == []


def test_streaming_copy_stops_at_the_budget(tmp_path):
    # zipfile itself never yields more than a header declares; the byte count in
    # _extract is the guard should it ever do (another zip reader, a future change).
    with open(tmp_path / "out", "wb") as dst:
        with pytest.raises(OverflowError):
            featx.persist.archive.copy_bounded(io.BytesIO(bytes(3 * MiB)), dst, MiB)
    assert (tmp_path / "out").stat().st_size <= MiB
    with open(tmp_path / "out", "wb") as dst:
        assert featx.persist.archive.copy_bounded(io.BytesIO(bytes(3 * MiB)), dst, None) == 3 * MiB


def test_archive_inside_the_archive_counts_by_what_it_unpacks_to(tmp_path, scratch):
    inner = _bomb(tmp_path / "model.skops")  # a bomb where skops would read it
    with zipfile.ZipFile(tmp_path / "nested.featx", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("manifest.json", "{}")
        zf.write(inner, "model.skops")
    assert (tmp_path / "nested.featx").stat().st_size < MiB
    with pytest.raises(ValueError, match=r"member 'model.skops' is an archive that unpacks to "
                                         r"52,428,802 bytes, .* over max_size=1,048,576"):
        load(tmp_path / "nested.featx", max_size=MiB)
    assert list(scratch.iterdir()) == []


def test_path_traversal_is_refused_before_anything_is_written(tmp_path, scratch):
    for name in ["../escape.txt", "/abs.txt", "a/../../up.txt", "dir\\..\\win.txt"]:
        _write_zip(tmp_path / "slip.featx", {"manifest.json": "{}", name: "x"})
        with pytest.raises(UntrustedModelError, match=rf"{re.escape(repr(name))}: unsafe path"):
            load(tmp_path / "slip.featx")
        assert list(scratch.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "up.txt").exists()


@pytest.mark.parametrize("bad", [0, -1, True, "4GB", float("inf"), [1]])
def test_max_size_is_validated(fitted, bad):
    folder, _, _ = fitted
    expected = f"max_size must be a positive number of bytes, or None for no limit; got " \
               f"max_size={bad!r}. The default is featx.persist.MAX_SIZE="
    with pytest.raises(ValueError, match=re.escape(expected)):
        load(folder / "logreg.featx", max_size=bad)


def test_roundtrip_within_a_tight_limit(fitted, tmp_path):
    folder, X, models = fitted
    path = folder / "rf.featx"
    with zipfile.ZipFile(path) as zf:
        size = sum(i.file_size for i in zf.infolist())
    for max_size in [size, 10 * MiB, None]:
        model = load(path, max_size=max_size)
        np.testing.assert_array_equal(model.predict(X), models["rf"].predict(X))
    with pytest.raises(ValueError, match=rf"declare {size:,} bytes in all, over max_size="):
        load(path, max_size=size - 1)


def test_directory_form_and_version_warning(fitted, tmp_path):
    folder, X, models = fitted
    with zipfile.ZipFile(folder / "knn.featx") as zf:
        zf.extractall(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "sklearn_version": "0.1"}))
    with pytest.warns(UserWarning, match=r"saved with scikit-learn 0.1"):
        model = load(tmp_path)
    np.testing.assert_array_equal(model.predict(X), models["knn"].predict(X))


FEATX_SAFE = [t for t in featx.persist.SAFE_TYPES if t.startswith("featx.")]


@pytest.mark.parametrize("qualname", FEATX_SAFE)
def test_safe_featx_types_restore_attributes_only(qualname):
    module, _, name = qualname.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls.__setstate__ is BaseEstimator.__setstate__, f"{qualname} overrides __setstate__"
    assert "__reduce__" not in vars(cls) and "__reduce_ex__" not in vars(cls)


def test_save_refuses_non_estimators(tmp_path):
    with pytest.raises(TypeError, match=r"got model of type builtins.dict"):
        save({}, tmp_path / "x.featx")



def test_save_replaces_its_own_file_and_refuses_yours(fitted, tmp_path):
    """Before: save() replaced whatever was at ``path``. Now featx's own earlier model file is
    replaced atomically; a user's file or folder there is refused and left as it is."""
    from featx.errors import OutputExistsError

    model = fitted[2]["logreg"]
    path = tmp_path / "model.featx"
    save(model, path)
    first = path.stat().st_ino
    assert save(model, path) == path and path.stat().st_ino != first
    mine = tmp_path / "mine.featx"
    mine.write_bytes(b"my own archive")
    (tmp_path / "folder.featx").mkdir()
    for target in (mine, tmp_path / "folder.featx"):
        with pytest.raises(OutputExistsError, match=r"path='.*' is a (file|folder) featx did "
                                                    "not write"):
            save(model, target)
    assert mine.read_bytes() == b"my own archive" and not any(
        (tmp_path / "folder.featx").iterdir())


def _save_quietly(model, path):
    """save(), failing on its 'will need trust=True' warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*will need trust=True", category=UserWarning)
        return save(model, path)


@pytest.mark.parametrize("cache", [Path("features"), PurePosixPath("/srv/featx-cache")])
def test_path_parameters_load_without_trust(tmp_path, cache):
    """Path types load without trust; the path itself is reset to the default (a file must not
    choose where a loaded model writes) unless the file is trusted."""
    X, y = cnn_like()
    clf = TransferClassifier(head="logreg", cache=cache).fit(X, y)
    path = _save_quietly(clf, tmp_path / "clf.featx")
    with pytest.warns(UserWarning, match=r"reset TransferClassifier\.cache="):
        model = load(path)
    assert model.cache is None
    trusted = load(path, trust=True)
    assert type(trusted.cache) is type(cache) and trusted.cache == cache
    for restored in (model, trusted):
        np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_path_methods_stay_refused(tmp_path):
    # Trusting the path types does not trust their methods: a file that would hand a head
    # ``Path(...).unlink`` names that method and is refused, and the file is untouched.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    with pytest.warns(UserWarning, match=r"will need trust=True"):
        save(FunctionTransformer(func=victim.unlink), tmp_path / "unlink.featx")
    with pytest.raises(UntrustedModelError, match=r"\['pathlib.PosixPath.unlink'\]"):
        load(tmp_path / "unlink.featx")
    assert victim.read_text() == "keep me"


@pytest.mark.smoke
def test_extractor_after_transform_saves_without_its_features(tmp_path, make_images):
    solid = make_images(tmp_path, 1, classes={"dark": 30, "light": 220}, size=40, noise=0)
    paths = [Path(p) for p in solid]
    fx = FeatureExtractor("mobilenet_v2", weights=None, input_size=32, cache=tmp_path / "cache")
    features = fx.fit().transform(paths)
    assert len(fx.feature_set_) == 2  # the last transform's FeatureSet, kept in memory only
    for restored in (load(_save_quietly(fx, tmp_path / "fx.featx"), trust=True),
                     pickle.loads(pickle.dumps(fx))):
        assert not hasattr(restored, "feature_set_")
        assert restored.get_params() == fx.get_params()
        assert restored.n_features_out_ == fx.n_features_out_ == 1280
        np.testing.assert_array_equal(restored.transform(paths), features)
    assert len(fx.feature_set_) == 2  # pickling did not touch the original


def test_refusal_names_the_users_file_not_a_temporary_copy(tmp_path, scratch):
    with pytest.warns(UserWarning, match=r"will need trust=True"):
        save(FunctionTransformer(func=eval), tmp_path / "evil.featx")
    with pytest.raises(UntrustedModelError) as info:
        load(tmp_path / "evil.featx")
    assert str(info.value).startswith(f"Refusing to load {str(tmp_path / 'evil.featx')!r}: ")
    assert str(scratch) not in str(info.value) and "model.skops" not in str(info.value)
    assert list(scratch.iterdir()) == []
