"""The ``featx`` command end to end on a tiny generated dataset (random MobileNetV2, 32 px)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import not_blank

from featx.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
BACKBONE = ["--backbone", "mobilenet_v2", "--weights", "none", "--input-size", "32"]
COMMANDS = ["backbones", "extract", "fit", "predict", "finetune", "compare", "run", "pipelines",
            "init", "cache", "advise", "show-augment", "export", "inspect"]
# heads only: `featx compare` and `featx run` print the same columns (featx.evaluate.COLUMNS;
# then limited_params, as here, where a head's size rule changed a default)
COMPARISON_HEADER = ("| name | kind | backbone | input_size | accuracy | macro_f1 | "
                     "balanced_accuracy | train_seconds | predict_seconds | "
                     "backbone_forward_passes | limited_params |\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_images) -> Path:
    """``shapes/<class>/<i>.jpg``: 8 noisy images per class tinted by class (separable)."""
    root = tmp_path_factory.mktemp("tiny") / "shapes"
    make_images(root, 8, classes=("red", "green", "blue"), size=40, folders=True)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _featx(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "featx.cli", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**os.environ, **(env or {})})


# --------------------------------------------------------------------------- parser, --version
def test_version_and_help_do_not_import_keras():
    code = ("import sys; from featx.cli import main; rc = main(['--version']); "
            "main(['--help']); main(['fit', '--help']); "
            "print('HEAVY', rc, 'keras' in sys.modules, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "featx 0." in proc.stdout or "featx " in proc.stdout
    assert "HEAVY 0 False False" in proc.stdout


def test_console_version(capsys):
    from featx import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"featx {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: featx {command}" in out
    assert "--debug" in out


def test_every_option_has_help_text():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"featx {name} {action.option_strings or action.dest} has no help"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


# --------------------------------------------------------------------------- commands
def test_backbones_table(capsys):
    code, out, _ = run(capsys, "backbones", "mobilenet*")
    assert code == 0
    header, *rows = out.strip().splitlines()
    for column in ("name", "input size", "feature dim", "weights source", "offline"):
        assert column in header
    row = next(r for r in rows if r.startswith("mobilenet_v2 "))
    assert "224x224" in row and "1280" in row and "keras" in row


def test_extract_and_cache_commands(capsys, tiny, cache):
    code, out, _ = run(capsys, "extract", tiny, *BACKBONE, "--cache", cache, "-q")
    assert code == 0, out
    assert "train" in out and "test" in out and "1280" in out
    files = sorted(cache.glob("*.h5"))
    assert len(files) == 2

    code, out, _ = run(capsys, "cache", "ls", "--cache-dir", cache)
    assert code == 0 and files[0].name in out and "mobilenet_v2" in out

    code, out, _ = run(capsys, "cache", "info", files[0].name, "--cache-dir", cache)
    assert code == 0 and "backbone: mobilenet_v2" in out and "input_size: 32x32" in out

    code, out, _ = run(capsys, "cache", "verify", files[0], "-n", "2")
    assert code == 0 and out.startswith("ok: 2 rows checked")

    code, out, _ = run(capsys, "cache", "rm", "shapes-test-*", "--cache-dir", cache)
    assert code == 0 and "removed" in out
    assert not any(p.name.startswith("shapes-test-") for p in cache.glob("*.h5"))


def test_fit_then_predict_csv(capsys, tiny, cache, tmp_path):
    model = tmp_path / "model.featx"
    code, out, _ = run(capsys, "fit", tiny, *BACKBONE, "--cache", cache, "--head", "logreg",
                       "--out", model, "-q")
    assert code == 0
    assert "test accuracy" in out and model.exists()

    csv_path = tmp_path / "pred.csv"
    code, out, err = run(capsys, "predict", model, tiny / "red", tiny / "blue" / "0.jpg",
                         "--out", csv_path, "--trust")
    assert code == 0, err
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 9
    assert list(rows[0]) == ["path", "label", "probability", "proba_blue", "proba_green",
                             "proba_red"]
    assert {r["label"] for r in rows} <= {"red", "green", "blue"}
    assert all(0 <= float(r["probability"]) <= 1 for r in rows)

    code, out, _ = run(capsys, "predict", model, tiny / "green" / "1.jpg", "--trust")  # stdout
    assert code == 0
    assert out.splitlines()[0] == "path,label,probability,proba_blue,proba_green,proba_red"
    assert len(out.strip().splitlines()) == 2

    # Unreadable files are reported and left out; the rest is predicted.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    good = sorted((tiny / "red").glob("*.jpg"))[:2]
    for g in good:
        (mixed / g.name).write_bytes(g.read_bytes())
    data = good[0].read_bytes()
    (mixed / "fake.jpg").write_bytes(b"not a jpeg at all")
    (mixed / "cut.jpg").write_bytes(data[: len(data) // 2])
    broken = bytearray(data)
    start = len(broken) // 3
    broken[start:start + 200] = np.random.default_rng(0).integers(0, 256, 200, np.uint8).tobytes()
    (mixed / "broken.jpg").write_bytes(bytes(broken))  # header and end marker intact
    code, out, err = run(capsys, "predict", model, mixed, "--trust")
    assert code == 0, err
    assert sorted(Path(r.split(",")[0]).name for r in out.splitlines()[1:]) == sorted(
        g.name for g in good)
    assert "skipped 3 file(s)" in err and all(n in err for n in ("fake", "cut", "broken"))
    code, _, err = run(capsys, "predict", model, mixed, "--trust", "--out",
                       tmp_path / "no" / "such" / "pred.csv")
    assert code == 1 and "does not exist" in err and "no/such" in err


def test_predict_out_replaces_its_own_csv_and_refuses_yours(capsys, tiny, cache, tmp_path):
    """The same `featx predict --out p.csv` twice just works; a user's file (or featx's CSV
    edited since) at --out is refused before any work and left as it is; so is `fit --out`."""
    model = tmp_path / "model.featx"
    assert run(capsys, "fit", tiny, *BACKBONE, "--cache", cache, "--head", "logreg",
               "--out", model, "-q")[0] == 0
    image, csv_path = tiny / "red" / "0.jpg", tmp_path / "p.csv"
    for _ in range(2):
        code, _, err = run(capsys, "predict", model, image, "--out", csv_path, "--trust")
        assert code == 0, err
    assert len(csv_path.read_text().splitlines()) == 2
    csv_path.write_text("my edits\n")
    mine = tmp_path / "mine.csv"
    mine.write_text("mine\n")
    for target, what in ((csv_path, "featx wrote that was changed since"),
                         (mine, "featx did not write")):
        code, out, err = run(capsys, "predict", model, image, "--out", target, "--trust")
        assert code == 1 and out == "" and f"--out={str(target)!r} is a file {what}" in err
    assert csv_path.read_text() == "my edits\n" and mine.read_text() == "mine\n"
    code, out, err = run(capsys, "fit", "no-such-data", "--out", mine)  # before the data
    assert code == 1 and "is a file featx did not write" in err and mine.read_text() == "mine\n"


def test_predict_uses_the_cache_you_choose_not_the_files(capsys, tiny, cache, tmp_path):
    """A saved model's cache folder is the file author's choice: without --trust, predict says
    it was not used and how to choose one; --cache DIR is used, silently."""
    model = tmp_path / "model.featx"
    assert run(capsys, "fit", tiny, *BACKBONE, "--cache", cache, "--head", "logreg",
               "--out", model, "-q")[0] == 0
    image = tiny / "green" / "1.jpg"
    code, out, err = run(capsys, "predict", model, image)
    assert code == 0 and "--cache DIR, or --trust" in err and str(cache) in err
    mine = tmp_path / "my-cache"
    code, out, err = run(capsys, "predict", model, image, "--cache", mine)
    assert code == 0 and "reset" not in err, err
    assert len(out.strip().splitlines()) == 2
    assert any(mine.glob("*.h5")), "the features of the predicted image go to --cache"


def test_finetune_saves_a_model_that_predicts(capsys, tiny, cache, tmp_path):
    model = tmp_path / "ft.featx"
    # strategy "frozen" (head only) keeps this test short; test_pipeline fine-tunes blocks
    code, out, err = run(capsys, "finetune", tiny, *BACKBONE, "--strategy", "frozen",
                         "--epochs", "1", "--ft-batch-size", "8", "--validation-split", "0.3",
                         "--out", model, "-q")
    assert code == 0, err
    assert "warm_start" in out and "test accuracy" in out and model.exists()
    code, out, err = run(capsys, "predict", model, tiny / "red" / "0.jpg")
    assert code == 0, err
    assert out.splitlines()[1].split(",")[1] in {"red", "green", "blue"}


def test_compare_heads_only(capsys, tiny, cache, tmp_path):
    out_json = tmp_path / "table.json"
    code, out, _ = run(capsys, "compare", tiny, *BACKBONE, "--cache", cache,
                       "--heads", "logreg,knn", "--out", out_json, "-q")
    assert code == 0
    assert "| logreg | head | mobilenet_v2 | 32x32 |" in out and "best:" in out
    assert COMPARISON_HEADER in out  # the table `featx run` prints
    assert [r["name"] for r in json.loads(out_json.read_text())["rows"]] == ["logreg", "knn"]


def test_compare_out_never_replaces_a_users_file(capsys, tiny, cache, tmp_path):
    mine = tmp_path / "table.md"
    mine.write_text("# my notes\n")
    code, out, err = run(capsys, "compare", tiny, *BACKBONE, "--cache", cache,
                         "--heads", "logreg", "--out", mine, "-q")
    assert code == 1 and out == "", out  # refused before the comparison ran
    assert f"--out={str(mine)!r} is a file featx did not write" in err
    assert mine.read_text() == "# my notes\n"
    ours = tmp_path / "ours.md"
    for _ in range(2):  # the same command twice: its own table replaced
        code, _, err = run(capsys, "compare", tiny, *BACKBONE, "--cache", cache,
                           "--heads", "logreg", "--out", ours, "-q")
        assert code == 0, err
    assert ours.read_text().startswith("| name | kind |")


def test_run_pipeline_command(capsys, tiny, cache, tmp_path):
    toml = tmp_path / "tiny.toml"
    toml.write_text(f"""
[data]
path = "{tiny.as_posix()}"
[extract]
backbone = "mobilenet_v2"
weights = "none"
input_size = 32
cache = "{cache.as_posix()}"
[heads]
names = ["logreg", "knn"]
[report]
plots = ["comparison"]
few_shot = []
""")
    code, out, err = run(capsys, "run", toml, "--out", tmp_path / "report", "-q",
                         "--set", 'heads.names=["knn"]')
    assert code == 0, err
    assert "| knn | head | mobilenet_v2 | 32x32 |" in out and "logreg" not in out
    assert COMPARISON_HEADER in out  # the table `featx compare` prints
    assert f"report: {tmp_path / 'report'}" in out
    assert (tmp_path / "report" / "comparison.png").exists()


def test_advise_json(capsys, tiny, cache):
    code, out, _ = run(capsys, "advise", tiny, *BACKBONE, "--cache", cache, "--json", "-q")
    assert code == 0
    advice = json.loads(out)
    assert advice["size"] == "small"
    assert advice["strategy"] in {"frozen", "last_n"}
    assert sorted(advice["images_per_class"]) == ["blue", "green", "red"]
    assert advice["n_train"] == sum(advice["images_per_class"].values())
    assert 0 <= advice["probe_accuracy"] <= 1 and advice["thresholds"]
    assert advice["command"].startswith("featx ") and str(tiny) in advice["command"]


def test_show_augment(capsys, tiny, tmp_path):
    png = tmp_path / "grid.png"
    code, out, _ = run(capsys, "show-augment", tiny, "--out", png, "--images", "2",
                       "--variants", "3", "--size", "40")
    assert code == 0 and str(png) in out
    assert not_blank(png)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("argv, expected", [
    (["fit", "no-such-folder", "--out", "m.featx"], "was not found"),
    (["extract", "clothng-mini"], "(did you mean 'clothing-mini'?)"),
    (["extract", "{tiny}", "--backbone", "mobilenet_v9", "--weights", "none"],
     "did you mean 'mobilenet_v2'"),
    (["fit", "{tiny}", *BACKBONE, "--head", "svn", "--out", "{tmp}/m.featx"], "svm"),
    (["predict", "{tmp}/missing.featx", "{tiny}"], "does not exist"),
    (["run", "{tmp}/missing.toml"], "does not exist"),
    (["cache", "info", "nope.h5", "--cache-dir", "{tmp}"], "does not exist"),
    (["cache", "rm", "nope*", "--cache-dir", "{tmp}"], "nothing in the cache matches"),
    (["cache", "rm", "--cache-dir", "{tmp}", "nope*"], "nothing in the cache matches"),
    (["extract", "{tiny}", "--limit", "-1"], "--limit: must be an int >= 1, got '-1'"),
    (["extract", "{tiny}", "--batch-size", "0"], "--batch-size: must be an int >= 1"),
    (["fit", "{tiny}", "--cv", "1", "--out", "{tmp}/m.featx"], "--cv: must be 0 (no search)"),
    (["finetune", "{tiny}", "--epochs", "x"], "--epochs: must be an int >= 1, got 'x'"),
    (["fit", "{tiny}", "--input-size", "abc", "--out", "x"], "must be an int or HxW"),
    (["cache", "purge"], "invalid choice"),
    (["extarct", "{tiny}"], "invalid choice: 'extarct' (choose from 'backbones', 'extract'"),
    (["extarct", "{tiny}"], "(did you mean 'extract' or 'export'?)"),
    (["cache", "lss"], "(did you mean 'ls'?)"),
    (["export", "m.featx", "--format", "onnxx"], "(did you mean 'onnx'?)"),
])
def test_errors_are_one_line(capsys, tiny, tmp_path, argv, expected):
    argv = [a.format(tiny=tiny, tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("featx: error: ") and expected in lines[0]
    assert "Traceback" not in err


def test_debug_raises(tiny):
    from featx.sources import DataNotFoundError

    with pytest.raises(DataNotFoundError):
        main(["--debug", "fit", "no-such-folder", "--out", "m.featx"])
    with pytest.raises(DataNotFoundError):
        main(["fit", "no-such-folder", "--out", "m.featx", "--debug"])


def test_error_from_the_real_command_line(tmp_path):
    proc = _featx("fit", str(tmp_path / "no-such-folder"), "--out", "m.featx")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("featx: error: data ") and \
        "was not found" in lines[0], proc.stderr
    proc = _featx("run", str(tmp_path / "missing.toml"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"featx: error: pipeline file {str(tmp_path / 'missing.toml')!r} does not exist."]
