"""save/load: identical predictions in a fresh process, and nothing untrusted runs."""

import doctest
import importlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator
from sklearn.preprocessing import FunctionTransformer

import featx.persist
from featx.heads import list_heads, make_head
from featx.persist import UntrustedModelError, load, save

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = Path(__file__).resolve().parents[1]
FAST = {"rf": {"n_estimators": 10}, "mlp": {"hidden_layer_sizes": (16,), "max_iter": 50}}
# name -> (head, make_head keywords): every row, plus the optional steps and calibration.
MODELS = {name: (name, {"random_state": 0, **FAST.get(name, {})}) for name in list_heads()}
MODELS["svm_proba_pca"] = ("svm", {"proba": True, "pca": 5, "normalize": True})
MODELS["knn_pca"] = ("knn", {"pca": 0.9})

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


def test_docstring_examples():
    assert doctest.testmod(featx.persist).failed == 0
