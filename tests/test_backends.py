"""Backend parity: the same images and weights give the same features on every Keras backend.

The suite runs under TensorFlow; this file re-runs extraction, and the tests marked ``smoke``, in
subprocesses under ``KERAS_BACKEND=jax`` (and torch when it is installed), because the GPU machines
have JAX and PyTorch but no TensorFlow. There the forward runs on Keras (``"auto"`` picks Keras on
a GPU), so these subprocesses run with ``FEATX_RUNTIME=keras``.

``smoke`` marks one test per backend code path, not every test that touches Keras: the
features of real photos against TensorFlow's (``test_features_match_tensorflow_on_this_backend``),
the forward pass (``test_batch_runner_sends_uint8_pads_and_matches_float_input``), extraction
through the cache against an in-memory pass (``test_rename_and_move_hit``), an estimator fit
(``test_second_fit_with_another_head_runs_no_backbone``), a fine-tune
(``test_short_run_lowers_training_loss``), a Keras model file with featx's layers
(``test_model_round_trips_through_keras_file``), ``featx.save``/``load`` of an extractor
(``test_extractor_after_transform_saves_without_its_features``), and a variable input shape
(``test_include_top_and_flexible_input``). Mark another test only for a path none of these takes:
each costs the JAX run its own time, and the run sits inside this 2-CPU suite's time budget.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_same

import featx
from featx.extract import extract_features

ROOT = Path(__file__).parents[1]
SIZE = 96
#: The test files that hold smoke tests: the JAX run collects only these.
SMOKE_FILES = sorted(p for p in (ROOT / "tests").glob("test_*.py")
                     if "@pytest.mark.smoke" in p.read_text())

_EXTRACT = """
import sys, numpy as np, keras
from featx.data import ImageDataset
from featx.extract import extract_features
paths = sys.argv[2:]
ds = ImageDataset.from_paths(paths, [0] * len(paths), class_names=["x"], verify="none")
fs = extract_features(ds, "efficientnet_lite0", input_size=SIZE, cache=False, verbose=0)
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
np.save(sys.stdout.buffer, np.asarray(fs.features))
""".replace("SIZE", str(SIZE))


def _available(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def _env(backend: str) -> dict:
    # The Keras backends are the subject: their forward runs (runtime="keras"), as "auto" runs it
    # on the GPU machines; on this CPU "auto" would run every backend's graph on ONNX Runtime.
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               FEATX_RUNTIME="keras")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def photos():
    return featx.load_clothing_mini()["test"].paths[::17][:6]


@pytest.fixture(scope="module")
def tf_features(photos):
    ds = featx.ImageDataset.from_paths(photos, [0] * len(photos), class_names=["x"], verify="none")
    return np.asarray(
        extract_features(ds, "efficientnet_lite0", input_size=SIZE, cache=False, verbose=0,
                         runtime="keras").features
    )


def _check_parity(other: np.ndarray, tf_features: np.ndarray) -> None:
    assert other.shape == tf_features.shape
    assert_same(other, tf_features)  # FEATURE_RTOL of the largest feature
    assert tf_features.std() > 0.05  # real features, not a constant


# JAX's parity runs inside the smoke run under JAX (test_smoke_suite_under_jax), which pays
# for JAX's start-up once: test_features_match_tensorflow_on_this_backend.
@pytest.mark.parametrize("backend", ["torch"])
def test_features_match_tensorflow(backend, photos, tf_features):
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    import io

    out = subprocess.run(
        [sys.executable, "-c", _EXTRACT, backend, *photos],
        env=_env(backend), capture_output=True, timeout=600, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    _check_parity(np.load(io.BytesIO(out.stdout)), tf_features)


@pytest.mark.smoke
@pytest.mark.skipif(not os.environ.get("FEATX_TEST_PARITY"),
                    reason="runs inside test_smoke_suite_under_jax, on the other backend")
def test_features_match_tensorflow_on_this_backend():
    """The TensorFlow run's features of the same photos (saved by the parent test) equal this
    backend's; a marker file tells the parent that this ran and passed."""
    import keras

    saved = Path(os.environ["FEATX_TEST_PARITY"])
    with np.load(saved) as data:
        photos, tf_features = data["photos"].tolist(), data["features"]
    assert keras.backend.backend() == os.environ["KERAS_BACKEND"] != "tensorflow"
    ds = featx.ImageDataset.from_paths(photos, [0] * len(photos), class_names=["x"], verify="none")
    other = extract_features(ds, "efficientnet_lite0", input_size=SIZE, cache=False, verbose=0,
                             runtime="keras").features
    _check_parity(np.asarray(other), tf_features)
    saved.with_suffix(".ok").write_text(keras.backend.backend())


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND") != "tensorflow", reason="runs from the TF suite"
)
def test_smoke_suite_under_jax(tmp_path, photos, tf_features):
    if not _available("jax"):
        pytest.skip("jax is not installed")
    parity = tmp_path / "parity.npz"
    np.savez(parity, photos=np.asarray(photos), features=tf_features)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "smoke", "-p", "no:cacheprovider",
         "--no-header", "-n", "0", *map(str, SMOKE_FILES)],  # one process: this is a worker
        env={**_env("jax"), "FEATX_TEST_PARITY": str(parity)}, capture_output=True, text=True,
        timeout=900, cwd=tmp_path,
    )
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail
    assert parity.with_suffix(".ok").read_text() == "jax"  # the parity test ran, and passed
