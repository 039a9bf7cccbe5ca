"""The frozen forward's runtimes (Keras, ONNX Runtime) and the thread budget.

Features from both runtimes must agree within rtol 1e-4 on real photos, for every backbone row
Keras exports (one row per family in the default run; every row with ``FEATX_SLOW=1``); the
runtime is not part of the cache key; the exported graph is cached and rebuilt when damaged.
The rest of the suite runs the users' default (``"auto"``: ONNX Runtime here), each graph
exported once per run (conftest.py); every test here names its runtime.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from helpers import ROOT

from featx.backbones import get_backbone_spec, list_backbones
from featx.datasets import load_clothing_mini
from featx.extract import extract_features, forward_pass_count, graphs
from featx.extract import forward as fw
from featx.extract.config import ExtractorConfig
from featx.utils.threads import blas_limit, blas_threads, compute_threads


def _slow():
    skip = pytest.mark.skipif(not os.environ.get("FEATX_SLOW"),
                              reason="slow: set FEATX_SLOW=1 to run")
    return [pytest.mark.slow, skip]


# Rows Keras exports a graph for that cannot run, with the reason (ONNX Runtime refuses them and
# runtime="auto" runs them on Keras: test_unexportable_rows_fall_back_to_keras).
UNEXPORTABLE = {
    **{f"efficientnet_b{i}": "tf2onnx leaves Normalization constants as graph inputs"
       for i in range(8)},
    **{f"efficientnet_v2_b{i}": "tf2onnx leaves Normalization constants as graph inputs"
       for i in range(4)},
    **{f"convnext_{size}": "tf2onnx cannot convert GELU's Erfc op"
       for size in ("tiny", "small", "base", "large", "xlarge")},
}
# The default run: a Keras-table row, the Lite rows' first with its real weights; every other
# row with FEATX_SLOW=1 (a graph export costs 5-60 s per row on 2 cores).
DEFAULT_ROWS = {"mobilenet_v2", "efficientnet_lite0"}


def _row_params():
    for name in list_backbones():
        if name in UNEXPORTABLE:
            continue
        marks = () if name in DEFAULT_ROWS else _slow()
        yield pytest.param(name, id=name, marks=marks)


def _unexportable_params():
    for name in list_backbones():
        if name in UNEXPORTABLE:
            first = name == "efficientnet_b0"
            yield pytest.param(name, id=name, marks=() if first else _slow())


@pytest.fixture(scope="module")
def photos():
    """Eight real photos of the bundled set, two per class of the first four classes."""
    train = load_clothing_mini()["train"]
    return train.subset(np.concatenate([np.flatnonzero(train.labels == k)[:2] for k in range(4)]))


@pytest.mark.parametrize("name", list(_row_params()))
def test_runtimes_agree_on_real_photos(name, photos, tmp_path):
    spec = get_backbone_spec(name)
    weights = "imagenet" if spec.offline else None  # the Lite rows: real weights, native size
    size = None if spec.offline else max(spec.min_size, 32)
    common = dict(weights=weights, input_size=size, cache=False, verbose=0, batch_size=8)
    keras_fs = extract_features(photos, name, runtime="keras", **common)
    onnx_fs = extract_features(photos, name, runtime="onnxruntime", **common)
    assert onnx_fs.features.shape == keras_fs.features.shape == (8, spec.feature_dim)
    a, b = keras_fs.features, onnx_fs.features
    scale = np.abs(a).max()
    assert scale > 0
    # rtol 1e-4 of the feature scale: random-weight rows have features near 0 where a purely
    # element-wise rtol would compare float noise
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * scale)


def test_multi_layer_taps_keep_their_order(photos):
    common = dict(weights=None, input_size=32, cache=False, verbose=0,
                  layers=[-1, -3, -5])
    a = extract_features(photos, "mobilenet_v2", runtime="keras", **common).features
    b = extract_features(photos, "mobilenet_v2", runtime="onnxruntime", **common).features
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_runtime_is_not_in_the_cache_key(photos, tmp_path):
    common = dict(weights=None, input_size=32, cache=tmp_path, verbose=0)
    first = extract_features(photos, "mobilenet_v2", runtime="keras", **common)
    before = forward_pass_count()
    again = extract_features(photos, "mobilenet_v2", runtime="onnxruntime", **common)
    assert forward_pass_count() == before  # the Keras rows serve the ONNX Runtime request
    np.testing.assert_array_equal(again.features, first.features)


def test_graph_is_exported_once_and_reused(photos):
    config = ExtractorConfig("mobilenet_v2", weights=None, input_size=40)
    fw.MODELS.clear()
    model = fw.get_model(config, "onnxruntime")
    assert isinstance(model, graphs.OnnxBackbone)
    path = graphs.graph_path(config)
    assert model.path == path and path.exists()
    assert onnx.load(str(path), load_external_data=False).producer_name == "featx"  # the writer's
    stamp = path.stat().st_mtime_ns
    fw.MODELS.clear()
    again = fw.get_model(config, "onnxruntime")
    assert again is not model and again.path == path
    assert path.stat().st_mtime_ns == stamp  # read, not exported again
    assert fw.get_model(config, "onnxruntime") is again  # the process keeps it


@pytest.mark.parametrize("name", list(_unexportable_params()))
def test_unexportable_rows_fall_back_to_keras(name, photos, monkeypatch):
    spec = get_backbone_spec(name)
    config = ExtractorConfig(name, weights=None, input_size=max(spec.min_size, 32))
    fw.MODELS.clear()
    with pytest.raises(graphs.GraphExportError, match=rf"{name}.*(not just the image|cannot "
                                                      r"load).*runtime='keras'"):
        fw.get_model(config, "onnxruntime")
    # featx's writer declines these rows (Keras' exporter ran); nothing half-written is kept
    assert not any(graphs.graph_path(config, exporter=e).exists() for e in graphs.EXPORTERS)

    def again(*args):
        raise AssertionError("a failed export was tried again in the same process")

    monkeypatch.setattr(graphs, "build_keras", again)  # what every graph write starts with
    with pytest.raises(graphs.GraphExportError, match=rf"{name}.*runtime='keras'"):
        fw.get_model(config, "onnxruntime")  # the same refusal, not a second export
    monkeypatch.setattr(fw, "has_gpu", lambda: False)
    with pytest.warns(RuntimeWarning, match="running it on Keras"):
        model = fw.get_model(config, "auto")
    assert not isinstance(model, graphs.OnnxBackbone)
    assert fw.get_model(config, "auto") is model  # warned once, then reused
    assert fw.MODELS.keys()[-1] == (config["key"], "keras")


@pytest.mark.parametrize("runtime, gpu, mixed, expected", [
    ("auto", False, False, "onnxruntime"),
    ("auto", True, False, "keras"),
    ("auto", False, True, "keras"),
    ("keras", False, False, "keras"),
    ("onnxruntime", False, False, "onnxruntime"),
])
def test_resolve_runtime_table(runtime, gpu, mixed, expected, monkeypatch):
    monkeypatch.setattr(fw, "has_gpu", lambda: gpu)
    monkeypatch.setattr(fw, "resolve_precision", lambda m: "mixed_bfloat16" if m else "float32")
    assert fw.resolve_runtime(runtime, {"mixed_precision": mixed}) == expected


def test_runtime_errors_name_the_parameter(monkeypatch, photos):
    with pytest.raises(ValueError, match=r"runtime must be one of \['auto', 'keras', "
                                         r"'onnxruntime'\], got 'onnx'"):
        extract_features(photos, "mobilenet_v2", weights=None, input_size=32, cache=False,
                         runtime="onnx")
    monkeypatch.setattr(fw, "resolve_precision", lambda m: "mixed_bfloat16")
    with pytest.raises(ValueError, match="mixed_precision=True needs runtime='keras'"):
        fw.resolve_runtime("onnxruntime", {"mixed_precision": True})
    monkeypatch.setenv("FEATX_RUNTIME", "tpu")
    with pytest.raises(ValueError, match="runtime must be one of"):
        fw.check_runtime(None)
    monkeypatch.setenv("FEATX_RUNTIME", "onnxruntime")
    assert fw.check_runtime(None) == "onnxruntime"


def test_thread_budget_from_environment(monkeypatch):
    monkeypatch.setenv("FEATX_COMPUTE_THREADS", "3")
    assert compute_threads() == 3
    monkeypatch.setenv("FEATX_COMPUTE_THREADS", "0")
    with pytest.raises(ValueError, match=r"FEATX_COMPUTE_THREADS must be a whole number >= 1, "
                                         r"got '0'"):
        compute_threads()
    monkeypatch.delenv("FEATX_BLAS_THREADS", raising=False)
    assert blas_threads() == 1


def test_onnx_session_uses_the_compute_budget(monkeypatch):
    monkeypatch.setenv("FEATX_COMPUTE_THREADS", "1")
    fw.MODELS.clear()
    config = ExtractorConfig("mobilenet_v2", weights=None, input_size=32)
    model = fw.get_model(config, "onnxruntime")
    assert model.threads == 1
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_blas_limit_limits_and_restores():
    from threadpoolctl import threadpool_info

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library loaded")
    before = {p["filepath"]: p["num_threads"] for p in blas}
    with blas_limit(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    after = {p["filepath"]: p["num_threads"]
             for p in threadpool_info() if p["user_api"] == "blas"}
    assert after == before


def test_auto_runs_onnxruntime_end_to_end_in_a_fresh_process(tmp_path):
    """The user's default (no FEATX_RUNTIME): ONNX Runtime on this CPU, features cached."""
    code = (
        "import numpy as np\n"
        "from featx.datasets import load_clothing_mini\n"
        "from featx.extract import extract_features, forward\n"
        "ds = load_clothing_mini()['test'].subset(np.arange(6))\n"
        "fs = extract_features(ds, 'mobilenet_v2', weights=None, input_size=32, verbose=0)\n"
        "print(len(fs), fs.features.shape[1], [r for _, r in forward.MODELS.keys()])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FEATX_RUNTIME"}
    env["FEATX_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "6 1280 ['onnxruntime']"
    assert list((tmp_path / "weights" / "onnx").glob("mobilenet_v2-32-*.onnx"))
