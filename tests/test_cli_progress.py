"""The command's output: progress that shows anywhere, mistakes reported
before TensorFlow starts, and TensorFlow's start-up chatter kept out of featx's output.

The command runs in a subprocess with stderr a pipe (what a log file, CI or ``nohup`` gives):
plain progress lines must appear, naming the split, and no TensorFlow/absl/CUDA line. Fail-fast
checks assert on what was imported (``sys.modules``), never on timings.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_cache

from featx.utils.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--backbone", "mobilenet_v2", "--weights", "none", "--input-size", "32"]
# absl's line format (I0000 00:00:..., E1130 ...) and the lines TensorFlow prints on start-up
CHATTER = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|cudart|oneDNN|cpu_feature_guard"
                     r"|TF_ENABLE_ONEDNN_OPTS|rebuild TensorFlow", re.MULTILINE)


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "FEATX_TF_LOGS")}
    cache = tmp_path / "cache"
    if not cache.exists():
        make_cache(cache)
    env.update(PYTHONPATH=str(ROOT), FEATX_CACHE_DIR=str(cache), **extra)
    return env


def _python(tmp_path, *argv, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=tmp_path, env=_env(tmp_path, **env),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, make_images) -> Path:
    root = tmp_path_factory.mktemp("newcomer") / "shapes"
    make_images(root, 5, classes=("red", "green"), size=40, folders=True)
    return root


# --------------------------------------------------------------------------- item 1: progress
def test_extract_to_a_pipe_prints_plain_lines_naming_each_split(shapes, tmp_path):
    r = _python(tmp_path, "-m", "featx.cli", "extract", str(shapes), *TINY, "--test-size", "0.4")
    assert r.returncode == 0, r.stderr
    for split in ("train", "test"):
        label = rf"extract shapes-{split}\S* \(mobilenet_v2\)"
        assert re.search(rf"^{label}: 0/\d+ images$", r.stderr, re.MULTILINE), r.stderr
        assert re.search(rf"^{label}: (\d+)/\1 images in \d+:\d\d:\d\d \(", r.stderr,
                         re.MULTILINE), r.stderr
    assert not CHATTER.search(r.stderr), r.stderr  # the forward pass ran: cuInit would show here
    assert "\r" not in r.stderr  # no terminal bar drawn into a file
    argv = ["extract", str(shapes), *TINY, "--test-size", "0.4"]
    again = _python(tmp_path, "-c", "import sys; from featx.cli import main; "
                    f"code = main({argv!r}); print(code, 'keras' in sys.modules)")
    assert again.stdout.split()[-2:] == ["0", "False"], again.stderr  # a cache hit: no Keras


def test_progress_plain_lines_off_a_terminal_and_a_rich_bar_on_one():
    out = io.StringIO()
    p = Progress("extract demo-train (mobilenet_v2)", verbose=1, stream=out)
    p.interval = 0.0  # a line at every update
    p.start(4)
    p.update(2)
    p.update(2)
    p.close([("a.jpg", "empty file")])
    lines = out.getvalue().splitlines()
    assert lines[0] == "extract demo-train (mobilenet_v2): 0/4 images"
    assert re.fullmatch(r"extract demo-train \(mobilenet_v2\): 2/4 \(50%\) [\d.]+ img/s ETA "
                        r"\d:\d\d:\d\d", lines[1])
    assert lines[2].startswith("extract demo-train (mobilenet_v2): 4/4 images in ")
    assert lines[3:] == ["extract demo-train (mobilenet_v2): skipped 1 file(s) "
                         "(see FeatureSet.skipped):", "  a.jpg: empty file"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    p = Progress("extract demo-test (mobilenet_v2)", verbose=1, stream=tty)
    p.start(3)
    p.update(3)
    p.close([])
    drawn = tty.getvalue()
    assert "extract demo-test (mobilenet_v2)" in drawn and "3/3" in drawn and "━" in drawn

    silent = io.StringIO()
    p = Progress("x", verbose=0, stream=silent)
    p.start(3), p.update(3), p.close([("a", "b")])
    assert silent.getvalue() == ""


def test_messages_go_to_the_featx_logger_when_it_has_a_handler():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("featx")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    out = io.StringIO()
    try:
        p = Progress("extract demo (mobilenet_v2)", verbose=1, stream=out)
        p.start(2), p.update(2), p.close([("a.jpg", "empty file")])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert out.getvalue() == ""  # the application's handler got them instead
    assert [r.levelname for r in records] == ["INFO", "INFO", "WARNING"]
    assert records[-1].getMessage().startswith("extract demo (mobilenet_v2): skipped 1 file(s)")


def test_fine_tuning_prints_one_line_per_epoch(make_images, tmp_path, capfd):
    from featx.finetune import FineTunedClassifier

    files = make_images(tmp_path, 4, classes=("red", "green"), size=32)
    clf = FineTunedClassifier("mobilenet_v2", weights=None, input_size=(32, 32), strategy="full",
                              epochs=2, batch_size=8, augment=None, random_state=0,
                              run_eagerly=True, early_stopping=False, verbose=1)
    clf.fit(list(files), np.array(files.labels))
    err = capfd.readouterr().err
    epochs = re.findall(r"^fine-tune mobilenet_v2 phase 1 'full': epoch (\d)/2 loss [\d.]+ "
                        r"accuracy [\d.]+ val_loss [\d.]+ val_accuracy [\d.]+ lr \S+ "
                        r"\([\d.]+ s\)$", err, re.MULTILINE)
    assert epochs == ["1", "2"], err
    assert "━" not in err and "step" not in err  # Keras's own bar only with verbose=2


# --------------------------------------------------------------------------- item 3: fail fast
_FAIL_FAST = """
import contextlib, io, sys
from featx.cli import main

runs = {argv!r}
for argv in runs:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    print(repr((argv[0], code, out.getvalue(), err.getvalue())))
print(sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules))
"""


def test_mistakes_and_static_commands_never_import_tensorflow(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nname = 'x'\n")
    runs = [
        ["extract", "clothing-mini", "--backbone", "efficientnet_lite9"],
        ["fit", "clothing-mini", "--backbone", "resnet5O", "--out", "m.featx"],
        ["extract", "clothing-mini", "--weights", str(tmp_path / "nope.weights.h5")],
        ["extract", str(tmp_path / "no-such-folder")],
        ["run", str(bad)],
        ["fit", "clothing-mini", "--head", "svn", "--out", "m.featx"],
        ["backbones"],
        ["backbones", "mobilenet*"],
        ["--help"],
        *[[cmd, "--help"] for cmd in ("extract", "fit", "finetune", "compare", "run")],
    ]
    r = _python(tmp_path, "-c", _FAIL_FAST.format(argv=runs))
    assert r.returncode == 0, r.stderr
    *results, imported = r.stdout.strip().splitlines()
    results = [eval(line) for line in results]  # noqa: S307 - our own repr() lines
    assert imported == "[]", r.stdout  # none of it started Keras or its backend (the backbone
    # table and the weights check come from featx.backbones without its Keras half)
    errors = {i: err for i, (_, code, _, err) in enumerate(results) if code == 1}
    assert sorted(errors) == [0, 1, 2, 3, 4, 5], results
    assert "efficientnet_lite9" in errors[0] and "efficientnet_lite0" in errors[0]
    assert "resnet5O" in errors[1]
    assert "nope.weights.h5" in errors[2] and "no-such-folder" in errors[3]
    assert "invalid TOML" in errors[4] and "bad.toml" in errors[4]
    assert "head must be one of" in errors[5] and "got 'svn'" in errors[5]
    assert "did you mean 'svm'" in errors[5]
    table = results[6][2]
    assert table.splitlines()[0].split()[:2] == ["name", "input"] and "mobilenet_v2" in table
    assert "efficientnet" not in results[7][2] and "mobilenet_v2" in results[7][2]
    assert all(code == 0 and "usage: featx" in out for _, code, out, _ in results[8:])


# --------------------------------------------------------------------------- item 4: no chatter
_BUILD = ("from featx.backbones import load_backbone; "
          "m = load_backbone('mobilenet_v2', weights=None, input_size=32); "
          "import numpy as np; print(m.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)")


def test_python_import_is_quiet_and_featx_tf_logs_brings_the_lines_back(tmp_path):
    # in Python featx quiets TensorFlow through its own settings only: what is left are the
    # lines absl writes before its logging starts, which no setting silences
    from featx.utils.progress import TF_STARTUP_LINES

    quiet = _python(tmp_path, "-c", _BUILD)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "(1, 1280)", quiet.stderr
    left = [line for line in quiet.stderr.splitlines() if not TF_STARTUP_LINES.search(line)]
    assert left == [], quiet.stderr
    loud = _python(tmp_path, "-c", _BUILD, FEATX_TF_LOGS="1")
    assert loud.returncode == 0, loud.stderr
    if len(loud.stderr.splitlines()) <= len(quiet.stderr.splitlines()):
        pytest.skip("this TensorFlow build prints no start-up lines a setting silences")
    assert CHATTER.search(loud.stderr)


_HOST = """
import os, sys, threading, time
started, stop, written = threading.Event(), threading.Event(), []

def host():  # the host program's own stderr, written while featx imports TensorFlow
    while not stop.is_set():
        os.write(2, b"host line %d\\n" % len(written))
        written.append(1)
        started.set()
        time.sleep(0.005)

thread = threading.Thread(target=host)
thread.start()
started.wait()
import featx
featx.load_backbone  # imports Keras and TensorFlow
stop.set()
thread.join()
os.write(2, b"after the import\\n")
print(len(written), "tensorflow" in sys.modules)
"""


def test_importing_featx_leaves_the_hosts_stderr_alone(tmp_path):
    r = _python(tmp_path, "-c", _HOST)
    assert r.returncode == 0, r.stderr
    written, imported = r.stdout.split()
    assert imported == "True"  # the import did happen while the host wrote
    lines = r.stderr.splitlines()
    assert "after the import" in lines  # fd 2 is still the host's
    host = [line for line in lines if line.startswith("host line ")]
    assert len(host) == int(written) > 1, r.stderr  # nothing written during the import lost
    assert host == [f"host line {i}" for i in range(int(written))]


def test_the_retracing_warning_alone_is_filtered(tmp_path):
    script = ("import logging; from featx.utils.progress import quiet_tensorflow; "
              "quiet_tensorflow(); tf = logging.getLogger('tensorflow'); "
              "tf.warning('5 out of the last 5 calls to <function f> triggered tf.function "
              "retracing. Tracing is expensive'); tf.warning('something else')")
    r = _python(tmp_path, "-c", script)
    assert r.returncode == 0 and r.stderr.splitlines() == ["something else"], r.stderr


# --------------------------------------------------------------------------- progress by default
def test_every_call_that_runs_the_backbone_shows_progress_by_default():
    import inspect

    import featx
    from featx.advise import advise
    from featx.comparison import run_comparison
    from featx.pipeline import run_pipeline

    for call in (featx.extract_features, featx.FeatureExtractor, featx.TransferClassifier,
                 featx.FineTunedClassifier, featx.compare, run_comparison, advise, run_pipeline):
        assert inspect.signature(call).parameters["verbose"].default == 1, call


def test_transfer_classifier_fit_prints_progress_unless_verbose_0(make_images, tmp_path, capfd):
    from featx.estimators import TransferClassifier

    files = make_images(tmp_path / "img", 3, classes=("red", "green"), size=32)
    kw = dict(weights=None, input_size=32, cache=tmp_path / "cache")
    TransferClassifier("mobilenet_v2", **kw).fit(list(files), files.labels)
    err = capfd.readouterr().err
    assert re.search(r"^extract .*\(mobilenet_v2\): 6/6 images in \d+:\d\d:\d\d", err,
                     re.MULTILINE), err  # stderr is not a terminal here: plain lines
    assert "\r" not in err
    TransferClassifier("mobilenet_v2", verbose=0, **kw).fit(list(files), files.labels)
    assert capfd.readouterr().err == ""


def test_featx_run_prints_a_line_per_phase(tmp_path):
    pipeline = tmp_path / "tiny.toml"
    pipeline.write_text(
        '[data]\nname = "clothing-mini"\nlimit = 2\n'
        '[extract]\nbackbone = "mobilenet_v2"\nweights = "none"\ninput_size = 32\n'
        '[heads]\nnames = ["logreg"]\n'
        f'[report]\nout = "{tmp_path / "report"}"\nplots = []\nfew_shot = [1]\n'
        'few_shot_repeats = 1\n')
    r = _python(tmp_path, "-m", "featx.cli", "run", str(pipeline))
    assert r.returncode == 0, r.stderr
    for phase in (r"^extract .*: 0/\d+ images$", r"^heads mobilenet_v2: fitting logreg on",
                  r"^few-shot: logreg at 1 images per class", r"^report: writing "):
        assert re.search(phase, r.stderr, re.MULTILINE), (phase, r.stderr)
    quiet = _python(tmp_path, "-m", "featx.cli", "run", str(pipeline), "-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
