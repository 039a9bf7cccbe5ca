"""The extractor's settings (featx.extract.config.ExtractorConfig) and the process-wide settings
(featx.config_context): one place each, checked once, and the environment never written."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from helpers import MODEL

import featx
from featx.extract.config import (
    LATER_FIELDS,
    SETTINGS,
    ExtractorConfig,
    feature_widths,
    key_of,
)

BASE = {"backbone": "mobilenet_v2", "weights": None, "input_size": 32}


def config(**changes) -> ExtractorConfig:
    return ExtractorConfig(**{**BASE, **changes})


def test_the_key_hashes_what_changes_a_feature_and_nothing_else():
    c = config()
    assert key_of({**c, "batch_size": 7, "n_workers": 3}) == c.key
    for change in ({"pooling": "max"}, {"input_size": 48}, {"resize": "crop"},
                   {"dtype": "float16"}, {"decoder": "opencv"}, {"view": "flip"},
                   {"layers": [-1, -2]}, {"mixed_precision": True}):
        assert config(**change).key != c.key, change
    for stored in ({"weights_sha256": "x"}, {"feature_code_version": 99}):
        assert key_of({**c, **stored}) != c.key, stored


@pytest.mark.parametrize("field", sorted(LATER_FIELDS))
def test_a_field_added_later_keeps_older_keys_at_its_default(field):
    c = config()
    assert c.get(field, LATER_FIELDS[field]) == LATER_FIELDS[field]
    older = {k: v for k, v in c.items() if k not in (field, "key")}
    assert key_of(older) == c.key


@pytest.mark.parametrize("size", [np.int64(32), (32, 32), [32, 32], (np.int32(32), 32)])
def test_every_spelling_of_a_setting_is_one_key(size):
    assert config(input_size=size).key == config().key
    assert config(input_size=size)["input_size"] == [32, 32]
    assert config(weights="none").key == config(weights="None").key == config().key
    as_tuple = config(layers=("block_3_add", -1))
    assert as_tuple.key == config(layers=["block_3_add", -1]).key
    assert as_tuple["layers"] == '["block_3_add", -1]'


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"decoder": "nvjpeg"}, ValueError, "decoder must be one of"),
    ({"resize": "nearest"}, ValueError, "resize must be one of"),
    ({"dtype": "int8"}, ValueError, "dtype must be one of"),
    ({"pooling": "median"}, ValueError, "pooling must be one of"),
    ({"view": "sideways"}, ValueError, "view must be one of"),
    ({"layers": "block_3_add"}, TypeError, r"use layers=\['block_3_add'\]"),
    ({"backbone": "resnet5"}, ValueError, "resnet5"),
    ({"mixed_precision": "yes"}, TypeError, "mixed_precision must be a bool"),
])
def test_each_setting_is_checked_with_its_name(change, error, match):
    with pytest.raises(error, match=match):
        config(**change)


def test_a_config_is_frozen_hashable_picklable_and_rebuilt_from_its_attrs():
    c = config(pooling="max", view="flip")
    with pytest.raises(AttributeError, match="frozen"):
        c.pooling = "avg"
    with pytest.raises(TypeError):
        c["pooling"] = "avg"
    assert pickle.loads(pickle.dumps(c)) == c and len({c, config(pooling="max", view="flip")}) == 1
    stored = ExtractorConfig.from_attrs({**c.attrs(), "n_rows": 4, "created": "today"})
    assert stored == c and dict(stored) == c.attrs() and "n_rows" not in stored
    assert ExtractorConfig(**c.settings()) == c and set(c.settings()) == set(SETTINGS)
    assert c.replace(pooling="avg") == config(view="flip")
    assert "view" not in config()  # older files lack the field: "none" stays unstored


def test_description_and_diff_say_what_differs():
    a, b = config(), config(pooling="max", input_size=48)
    assert a.describe() == f"mobilenet_v2 at 32x32 (key {a.key[:8]})"
    assert a.diff(b) == "; they also differ in pooling 'avg' vs 'max'"
    assert a.diff(a) == "" and a.slug == f"mobilenet_v2-32-avg__{a.key[:8]}"


def test_feature_widths_come_from_one_function():
    assert config().widths == (1280,) and config().feature_dim == 1280
    assert feature_widths(config(layers=[-1, -2])) == (1280, 320)
    fx = featx.FeatureExtractor(**MODEL, layers=[-1, -2]).fit()
    assert fx.n_features_out_ == 1600


def test_settings_come_from_the_context_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv("FEATX_RUNTIME", raising=False)
    assert featx.get_config("runtime") == "auto"
    monkeypatch.setenv("FEATX_RUNTIME", "keras")
    assert featx.get_config("runtime") == "keras"
    with featx.config_context(runtime="onnxruntime", cache_dir="/tmp/elsewhere"):
        assert featx.get_config("runtime") == "onnxruntime"
        with featx.config_context(runtime="auto"):
            assert featx.get_config("runtime") == "auto"
        assert featx.get_config("cache_dir") == "/tmp/elsewhere"
    assert featx.get_config("runtime") == "keras"
    with pytest.raises(ValueError, match="runtime must be one of"):
        featx.set_config(runtime="tpu")
    with pytest.raises(TypeError, match="did you mean 'runtime'"):
        featx.config_context(runtim="keras").__enter__()


def test_featx_never_writes_the_environment(tmp_path, make_images, make_dataset):
    """Extraction on both runtimes, a fit and a command-line style runtime choice leave
    os.environ exactly as they found it."""
    before = dict(os.environ)
    ds = make_dataset(make_images(tmp_path / "imgs", 4))
    with featx.config_context(runtime="keras"):
        featx.extract_features(ds, cache=tmp_path / "c", **MODEL)
    featx.extract_features(ds, cache=tmp_path / "c2", runtime="onnxruntime", **MODEL)
    featx.TransferClassifier(head="logreg", cache=tmp_path / "c", **MODEL).fit(ds)
    assert dict(os.environ) == before


_FRESH = """
import json, os, sys
before = dict(os.environ)
import featx
from featx.data import ImageDataset
paths = sys.argv[2:]
ds = ImageDataset.from_paths(paths, [0, 1] * (len(paths) // 2), verify="none")
with featx.config_context(runtime="keras"):   # imports TensorFlow through featx's quiet import
    featx.extract_features(ds, "mobilenet_v2", weights=None, input_size=32, cache=sys.argv[1],
                           verbose=0)
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps(changed))  # TensorFlow's and OpenCV's own imports add variables of theirs
"""


def test_a_fresh_process_keeps_its_environment(tmp_path, make_images):
    """TensorFlow's first import (featx quiets it) happens in this fresh interpreter: featx sets
    none of the variables it reads or quiets with, there or in the extraction after it (the
    libraries' own imports add theirs, such as KMP_DUPLICATE_LIB_OK)."""
    import json
    import subprocess
    import sys

    paths = make_images(tmp_path / "imgs", 4)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    cache = tmp_path / "c"
    cache.mkdir()
    os.symlink(os.environ["FEATX_TEST_WEIGHTS"], cache / "weights")
    proc = subprocess.run([sys.executable, "-c", _FRESH, str(cache), *map(str, paths)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    changed = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = [k for k in changed if k.startswith("FEATX_")
            or k in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "RAY_USAGE_STATS_ENABLED")]
    assert ours == [], changed
