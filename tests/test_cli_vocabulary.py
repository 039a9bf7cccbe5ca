"""One vocabulary: the command line, the API and the pipeline schema share defaults and
option names; a warm comparison reports the backbone passes it ran; CSV columns are options;
backbone patterns match words; a pipeline's mistakes are reported all at once.

Real files and real (random-weight, 32 px) MobileNetV2 backbones throughout."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import numpy as np
import pytest

from featx.backbones import get_backbone_spec, list_backbones
from featx.cli import build_parser, main
from featx.pipeline import SECTIONS, ConfigError, parse_config, run_pipeline
from featx.sources import resolve_data

BACKBONE = ["--backbone", "mobilenet_v2", "--weights", "none", "--input-size", "32"]
MINIMAL = '[data]\nname = "clothing-mini"\n'


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def columns_csv(tmp_path_factory, make_images) -> Path:
    """A CSV whose columns are ``file`` and ``y`` (not ``path``/``label``), 6 images per class."""
    root = tmp_path_factory.mktemp("columns")
    files = make_images(root / "img", 6, classes=("red", "blue"), size=40)
    path = root / "list.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "y"])
        for p, label in zip(files, files.labels, strict=True):
            w.writerow([Path(p).relative_to(root).as_posix(), label])
    return path


# --------------------------------------------------------------------------- item 5: defaults
def _option(parser, command, dest):
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
    return next(a for a in sub.choices[command]._actions if a.dest == dest)


def test_one_set_of_fine_tuning_defaults():
    from featx.comparison import compare
    from featx.finetune import FineTunedClassifier

    api = FineTunedClassifier()
    parser = build_parser()
    ft = parser.parse_args(["finetune", "clothing-mini"])
    cmp = parser.parse_args(["compare", "clothing-mini"])
    schema = SECTIONS["finetune"]
    # the strategy: the API's, in the command line
    assert ft.strategy == api.strategy == "staged"
    # a comparison fine-tunes nothing unless asked, everywhere
    assert inspect.signature(compare).parameters["finetune"].default == ()
    assert cmp.finetune == "" and schema["strategies"].default == []
    # epochs: one default, the API's; the command line passes it on, pipelines say the same
    assert ft.epochs is None and cmp.epochs is None
    assert schema["epochs"].default == api.epochs == 10
    assert "default: 10" in _option(parser, "finetune", "epochs").help
    # heads: one set, the head table's defaults, in the API, the command line and pipelines
    from featx.comparison import DEFAULT_HEADS
    from featx.heads import list_heads

    assert cmp.heads is None  # the command passes the API's default on
    assert list(DEFAULT_HEADS) == SECTIONS["heads"]["names"].default_value() \
        == list_heads(default_only=True)
    assert inspect.signature(compare).parameters["heads"].default == DEFAULT_HEADS
    from featx.evaluate import evaluate_heads

    assert evaluate_heads((np.eye(4), [0, 1, 0, 1]), (np.eye(4), [0, 1, 0, 1])).names \
        == list_heads(default_only=True)


def _every_option(parser):
    """``(command, flag, action)`` for every option of every command (`cache`'s actions too),
    hidden aliases left out."""
    import argparse

    def walk(name, command):
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(f"{name} {sub_name}", sub)
            elif action.option_strings and action.help != argparse.SUPPRESS:
                yield name, next(s for s in action.option_strings if s.startswith("--")), action

    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
    for name, command in sub.choices.items():
        yield from walk(name, command)


def test_every_option_is_in_the_vocabulary_with_the_apis_default():
    """Every option of every command is a row of featx.cli.vocabulary.TERMS (or command-line
    only, with the reason), and its default, read from the parser, is the API's (read from its
    signature) or None (the API's passed on); the pipeline key's default, read from the schema,
    is the API's too. A new option, or a default changed in one place only, fails here."""
    from featx.cli.vocabulary import COMMAND_LINE_ONLY, TERMS, same_default, term_for

    parser = build_parser()
    seen, unknown, drift = set(), [], []
    for command, flag, action in _every_option(parser):
        term = term_for(command.split()[0], flag)
        if term is None:
            if flag not in COMMAND_LINE_ONLY:
                unknown.append(f"{command} {flag}")
            continue
        seen.add(term.concept)
        api = term.api_default()
        if term.negated:
            ok = action.default is False and api not in (False, None)
        else:
            ok = action.default is None or same_default(term, action.default, api)
        if not ok:
            drift.append(f"{command} {flag}={action.default!r}, API {term.api}:{term.param}="
                         f"{api!r}")
        if action.default is None and action.help and "default" in action.help \
                and api is not None and not term.negated:  # the help says the API's number
            shown = api if not isinstance(api, tuple | list) else None
            if shown is not None and f"default: {shown}" not in action.help:
                drift.append(f"{command} {flag}: help does not say the default {shown!r}")
    for term in TERMS:
        if term.key:
            section, _, name = term.key.partition(".")
            value = SECTIONS[section][name].default_value()
            if not same_default(term, value, term.api_default()):
                drift.append(f"{term.key}={value!r}, API {term.param}={term.api_default()!r}")
    assert not unknown, f"options missing from featx.cli.vocabulary: {unknown}"
    assert not drift, drift
    assert seen == {t.concept for t in TERMS}  # every row is an option somewhere


def test_docs_defaults_table_is_generated_from_the_vocabulary():
    from featx.cli.vocabulary import vocabulary_markdown

    docs = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    block = docs.split("<!-- vocabulary:begin -->\n")[1].split("<!-- vocabulary:end -->")[0]
    assert block.strip() == vocabulary_markdown(), \
        "docs/cli.md is stale: regenerate its vocabulary block (see featx.cli.vocabulary)"


def test_fine_tune_options_are_named_as_the_api_and_old_spellings_still_work():
    parser = build_parser()
    ft = parser.parse_args(["finetune", "x", "--batch-size", "8", "--input-size", "96"])
    old = parser.parse_args(["finetune", "x", "--ft-batch-size", "8", "--ft-input-size", "96"])
    assert (ft.batch_size, ft.input_size) == (old.batch_size, old.input_size) == (8, 96)
    cmp = parser.parse_args(["compare", "x", "--finetune-batch-size", "8",
                             "--finetune-input-size", "96", "--batch-size", "64"])
    old = parser.parse_args(["compare", "x", "--ft-batch-size", "8", "--ft-input-size", "96"])
    assert (cmp.ft_batch_size, cmp.ft_input_size, cmp.batch_size) == (8, 96, 64)
    assert (old.ft_batch_size, old.ft_input_size) == (8, 96)
    for command in ("finetune", "compare"):
        sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
        text = sub.choices[command].format_help()
        assert "--ft-" not in text, command


def test_one_column_vocabulary_for_every_table():
    """`featx compare`, `featx run`, report.md and evaluate_heads' HeadTable show the same
    columns (featx.evaluate.COLUMNS), each when some row has a value for it."""
    from featx.evaluate import COLUMNS, comparison_markdown, evaluate_heads

    X, y = np.random.default_rng(0).normal(size=(40, 6)), np.arange(40) % 2
    heads = evaluate_heads((X[:30], y[:30]), (X[30:], y[30:]), heads=["logreg", "knn"])
    assert heads.columns == ["name", "kind", "accuracy", "macro_f1", "balanced_accuracy",
                             "train_seconds", "predict_seconds", "backbone_forward_passes"]
    header = comparison_markdown(heads).splitlines()[0]
    assert header == heads.to_markdown().splitlines()[0] == "| " + " | ".join(heads.columns) + " |"
    searched = evaluate_heads((X[:30], y[:30]), (X[30:], y[30:]), heads=["logreg"], cv=2)
    assert {"cv_score", "best_params"} <= set(searched.columns)
    rows = [{**r, "backbone": "b", "input_size": [32, 32]} for r in heads.to_dict()["rows"]]
    assert comparison_markdown(rows).splitlines()[0].split(" | ")[2:4] == ["backbone",
                                                                             "input_size"]
    assert all(c in COLUMNS for c in heads.columns)


def test_cache_option_is_one_name_everywhere(capsys, tmp_path):
    parser = build_parser()
    for argv in (["extract", "x"], ["fit", "x", "--out", "m"], ["finetune", "x"],
                 ["compare", "x"], ["advise", "x"], ["predict", "m", "img"]):
        assert parser.parse_args([*argv, "--cache", "D"]).cache == "D"
    assert parser.parse_args(["cache", "ls", "--cache", "D"]).cache_dir == "D"
    assert parser.parse_args(["cache", "ls", "--cache-dir", "D"]).cache_dir == "D"  # old name
    code, out, _ = run(capsys, "cache", "ls", "--cache", tmp_path)
    assert code == 0 and str(tmp_path) in out
    code = main(["cache", "ls", "--help"])
    help_text = capsys.readouterr().out
    assert code == 0 and "--cache DIR" in help_text and "--cache-dir" not in help_text


def test_unknown_backbone_names_the_command(capsys, tmp_path):
    with pytest.raises(ValueError, match="`featx backbones`"):
        get_backbone_spec("resnet5")
    code, _, err = run(capsys, "extract", "clothing-mini", "--limit", "1", "--backbone",
                       "resnet5", "--weights", "none", "--cache", tmp_path)
    assert code == 1
    assert "'resnet50'" in err and "`featx backbones`" in err


# --------------------------------------------------------------------------- item 6: passes
def test_warm_compare_reports_zero_passes_for_heads(capsys, tmp_path):
    argv = ["compare", "clothing-mini", "--limit", "2", *BACKBONE, "--heads", "logreg,knn",
            "--cache", tmp_path, "--out", tmp_path / "t.json"]
    import json

    passes = []
    for _ in range(2):
        code, _, err = run(capsys, *argv)
        assert code == 0, err
        rows = json.loads((tmp_path / "t.json").read_text())
        rows = rows["rows"] if isinstance(rows, dict) else rows
        passes.append([r["backbone_forward_passes"] for r in rows if r["kind"] == "head"])
    n = 20 + 20  # 2 per class, 10 classes, train and test
    assert passes == [[n, n], [0, 0]]


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_compare_counts_what_its_extraction_ran(tmp_path):
    import featx
    from featx.comparison import compare

    data = featx.load_clothing_mini()
    train, test = (data[s].subset(range(0, len(data[s]), 10)) for s in ("train", "test"))
    kw = dict(backbone="mobilenet_v2", weights=None, input_size=32, heads=["knn"],
              cache=tmp_path)
    cold, warm = compare(train, test, **kw), compare(train, test, **kw)
    assert [r["name"] for r in cold] == ["knn"]  # no fine-tune unless asked
    assert cold["knn"]["backbone_forward_passes"] == len(train) + len(test)
    assert warm["knn"]["backbone_forward_passes"] == 0
    half = compare(train.subset(range(len(train) // 2)), test.subset(range(3)), **kw)
    assert half["knn"]["backbone_forward_passes"] == 0  # every image already cached
    more = compare(train, test, **{**kw, "cache": False})
    assert more["knn"]["backbone_forward_passes"] == len(train) + len(test)


# --------------------------------------------------------------------------- item 9: columns
def test_csv_columns_in_resolve_data(columns_csv):
    with pytest.raises(KeyError, match=r"path_column='path' is not a column.*'file', 'y'"):
        resolve_data(columns_csv)
    splits = resolve_data(columns_csv, path_column="file", label_column="y", test_size=0.5)
    assert splits["train"].class_names == ["blue", "red"]
    assert len(splits["train"]) + len(splits["test"]) == 12
    assert all(Path(p).is_file() for p in splits["train"].paths)


def test_csv_columns_from_the_command_line(capsys, columns_csv, tmp_path):
    code, _, err = run(capsys, "extract", columns_csv, *BACKBONE, "--cache", tmp_path)
    assert code == 1 and "path_column='path'" in err and "--path-column" in err
    code, out, err = run(capsys, "extract", columns_csv, "--path-column", "file",
                         "--label-column", "y", *BACKBONE, "--cache", tmp_path, "-q")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split()[:2] == ["train", "9"] for line in lines), out
    assert any(line.split()[:2] == ["test", "3"] for line in lines), out


def test_csv_columns_in_a_pipeline(columns_csv, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(f'[data]\npath = "{columns_csv.as_posix()}"\npath_column = "file"\n'
                    'label_column = "y"\ntest_size = 0.5\n'
                    '[extract]\nbackbone = "mobilenet_v2"\nweights = "none"\ninput_size = 32\n'
                    f'cache = "{(tmp_path / "cache").as_posix()}"\n'
                    '[heads]\nnames = ["knn"]\n[report]\nplots = []\nfew_shot = []\n')
    report = run_pipeline(toml, out=tmp_path / "report", verbose=0, echo=None)
    assert [r["name"] for r in report.rows] == ["knn"]
    assert report.rows[0]["n_train"] + report.rows[0]["n_test"] == 12
    with pytest.raises(ConfigError, match=r"data\.label_column must be a column name"):
        parse_config(MINIMAL + 'label_column = " "\n')


# --------------------------------------------------------------------------- item 11: patterns
def test_backbone_pattern_is_a_word_or_a_glob():
    resnets = list_backbones("resnet")
    assert {"resnet50", "resnet152_v2", "inception_resnet_v2"} <= set(resnets)
    assert list_backbones("ResNet") == resnets  # case ignored
    assert list_backbones("resnet*") == [n for n in resnets if n.startswith("resnet")]
    assert list_backbones("RESNET*_V2") == ["resnet50_v2", "resnet101_v2", "resnet152_v2"]
    assert list_backbones("nothing") == list_backbones("nothing*") == []


def test_backbones_command_finds_words_and_suggests(capsys):
    code, out, _ = run(capsys, "backbones", "resnet")
    assert code == 0 and "resnet50 " in out and "inception_resnet_v2" in out
    code, _, err = run(capsys, "backbones", "resnt")
    assert code == 1
    assert "did you mean 'resnet50'" in err and "'resnet*'" in err


# --------------------------------------------------------------------------- item 12: all errors
THREE_MISTAKES = ('[data]\nname = "clothing-mini"\nlimit = "5"\n'
                  '[extract]\npooling = "mean"\n'
                  '[heads]\nnames = ["logreg", "svn"]\n')


def test_every_config_error_at_once():
    with pytest.raises(ConfigError) as info:
        parse_config(THREE_MISTAKES, source="p.toml")
    exc = info.value
    assert len(exc.errors) == 3
    lines = str(exc).splitlines()
    assert lines[0] == "p.toml: 3 errors:"
    assert lines[1].strip().startswith("data.limit must be int, got '5'")
    assert lines[2].strip().startswith("extract.pooling = 'mean' is not allowed")
    assert lines[3].strip().startswith("heads.names[1] = 'svn' is not allowed (did you mean 'svm'")
    # one mistake reads as before: one line, no count
    with pytest.raises(ConfigError, match=r"^p\.toml: data\.limit must be int") as one:
        parse_config(MINIMAL + 'limit = "5"\n', source="p.toml")
    assert one.value.errors == [str(one.value)]
    # a wrong value does not cause follow-on errors (data.name wrong is not also "missing")
    with pytest.raises(ConfigError) as info:
        parse_config('[data]\nname = "fashion_mnist"\n[heads]\nnames = "knn"\n')
    assert len(info.value.errors) == 2, info.value.errors


def test_run_prints_every_error_one_per_line(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(THREE_MISTAKES)
    code, _, err = run(capsys, "run", bad)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("featx: error: ") and lines[0].endswith("bad.toml: 3 errors:")
    assert [line.split()[0] for line in lines[1:]] == ["data.limit", "extract.pooling",
                                                       "heads.names[1]"]
    assert all(line.startswith("  ") for line in lines[1:])
