"""TOML pipelines: schema errors, missing data, the bundled files, and one full tiny run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import not_blank

from featx.pipeline import (
    SCHEMA,
    ConfigError,
    load_config,
    parse_config,
    run_pipeline,
    schema_markdown,
)
from featx.sources import DataNotFoundError

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "pipelines").glob("*.toml"))
MINIMAL = '[data]\nname = "clothing-mini"\n'


ANIMALS = ("cat", "dog", "owl")  # class folders of noisy images tinted by class


# --------------------------------------------------------------------------- schema errors
def test_defaults_fill_every_key():
    cfg = parse_config(MINIMAL)
    for key in SCHEMA:
        assert key.name in cfg[key.section]
    assert cfg["extract"]["backbone"] == ["efficientnet_lite0"]
    assert cfg["finetune"]["strategies"] == []


@pytest.mark.parametrize("text, match", [
    # unknown key, close match in its section
    (MINIMAL + "[heads]\nname = ['logreg']\n",
     r"unknown key heads\.name \(did you mean 'names'\?\)\."),
    # a key put in the wrong section
    (MINIMAL + "[heads]\nbackbone = 'resnet50'\n", r"\(did you mean 'extract\.backbone'\?\)"),
    # unknown section
    (MINIMAL + "[head]\nnames = ['logreg']\n", r"unknown section or key 'head'.*'heads'"),
    # bad list element: names the index, suggests, lists the allowed values
    (MINIMAL + "[heads]\nnames = ['logreg', 'knn', 'svn']\n",
     r"heads\.names\[2\] = 'svn' is not allowed \(did you mean 'svm'\?\)\. Allowed: 'logreg'"),
    (MINIMAL + "[extract]\nbackbone = 'resnet5'\n", r"extract\.backbone = 'resnet5'.*'resnet50'"),
    (MINIMAL + "[extract]\npooling = 'mean'\n", r"extract\.pooling.*Allowed: 'avg', 'max'"),
    (MINIMAL + "[finetune]\nstrategies = ['block']\n", r"finetune\.strategies\[0\].*'blocks'"),
    (MINIMAL + "[report]\nplots = ['confusion', 'few-shot']\n", r"report\.plots\[1\].*'few_shot'"),
    (MINIMAL + "[finetune]\naugment = { flip = 'horizontal', zooom = 0.1 }\n",
     r"finetune\.augment\.zooom.*'zoom'"),
    # types and ranges
    (MINIMAL + "[data]\n", r"invalid TOML"),
    ('[data]\nname = "clothing-mini"\nlimit = "5"\n', r"data\.limit must be int, got '5'"),
    ('[data]\nname = "clothing-mini"\ntest_size = 1.5\n',
     r"data\.test_size must be a number >= 0 and < 1, got 1.5"),
    ('[data]\nname = "clothing-mini"\n[extract]\nbatch_size = 0\n',
     r"extract\.batch_size must be an int >= 1, got 0 of type int"),
    (MINIMAL + "[heads]\ncv = 1\n", r"heads\.cv"),
    (MINIMAL + "[heads]\nnames = []\n", r"nothing to compare: heads\.names and finetune"),
    ('[data]\nname = "fashion_mnist"\n', r"data\.name = 'fashion_mnist'.*'fashion-mnist'"),
    ("[extract]\nbackbone = 'mobilenet_v2'\n", r"needs exactly one of data\.name"),
    ('[data]\nname = "clothing-mini"\npath = "x"\n', r"needs exactly one of data\.name"),
])
def test_config_errors_name_the_key(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(text, source="p.toml")


def test_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "[heads]\nnames = 'logreg'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: heads\.names must be list\[str\]"):
        load_config(bad)


def test_missing_pipeline_file_suggests(tmp_path):
    (tmp_path / "quickstart.toml").write_text(MINIMAL)
    with pytest.raises(FileNotFoundError, match="did you mean 'quickstart.toml'"):
        load_config(tmp_path / "quickstrat.toml")


def test_overrides():
    cfg = parse_config(MINIMAL, overrides=["data.limit=3", "heads.names=['knn']",
                                           "extract.weights=none"])
    assert cfg["data"]["limit"] == 3 and cfg["heads"]["names"] == ["knn"]
    assert cfg["extract"]["weights"] == "none"  # a bare word is a string
    with pytest.raises(ConfigError, match="section.key"):
        parse_config(MINIMAL, overrides=["limit=3"])


def test_missing_data_says_what_to_fetch_and_where(tmp_path):
    toml = tmp_path / "cats.toml"
    toml.write_text('[data]\npath = "data/PetImages"\nfetch = "unzip the archive to data/"\n')
    with pytest.raises(DataNotFoundError) as info:
        run_pipeline(toml, echo=None)
    msg = str(info.value)
    assert "data/PetImages" in msg and str(Path("data/PetImages").resolve()) in msg
    assert "To get it: unzip the archive to data/" in msg


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_bundled_pipelines_are_valid(path):
    cfg = load_config(path)
    assert cfg["report"]["out"].startswith("reports/")
    assert path.read_text().lstrip().startswith("#"), "each pipeline starts with a comment"
    if cfg["data"]["path"]:
        assert cfg["data"]["fetch"], f"{path.name}: data.path without a fetch hint"


def test_bundled_set_is_complete():
    names = {p.stem for p in PIPELINES}
    assert {"quickstart", "clothing", "fashion_mnist", "cats_vs_dogs", "flowers", "fer"} <= names
    quick = load_config(ROOT / "pipelines" / "quickstart.toml")
    assert quick["data"]["name"] == "clothing-mini"
    assert quick["extract"]["backbone"] == ["efficientnet_lite0"]
    assert set(quick["heads"]["names"]) == {"logreg", "svm", "rf", "mlp", "knn"}
    assert quick["finetune"]["strategies"] and quick["finetune"]["epochs"] <= 3


def test_docs_schema_is_generated_from_the_table():
    docs = (ROOT / "docs" / "cli.md").read_text()
    assert schema_markdown().strip() in docs, \
        "docs/cli.md is stale: regenerate with `python -m featx.pipeline --schema`"


# --------------------------------------------------------------------------- a full tiny run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, make_images):
    from featx.extract import forward_pass_count

    base = tmp_path_factory.mktemp("pipeline")
    data = base / "animals"
    make_images(data, 8, classes=ANIMALS, size=44, folders=True, seed=1)
    toml = base / "tiny.toml"
    toml.write_text(textwrap.dedent(f"""\
        # a tiny pipeline: 3 classes x 8 images, random-weight MobileNetV2 at 32 px
        [data]
        path = "{data.as_posix()}"
        test_size = 0.25
        [extract]
        backbone = "mobilenet_v2"
        weights = "none"
        input_size = 32
        cache = "{(base / 'cache').as_posix()}"
        [heads]
        names = ["logreg", "knn"]
        [finetune]
        strategies = ["blocks"]
        epochs = 1
        batch_size = 8
        validation_split = 0.3
        [report]
        few_shot = [1, 2, 0]
        few_shot_repeats = 1
        augment_images = 2
        """))
    lines: list[str] = []
    report = run_pipeline(toml, out=base / "report", verbose=0, echo=lines.append)
    return {"report": report, "lines": lines, "toml": toml, "base": base,
            "passes": forward_pass_count()}


def test_run_writes_the_report_folder(tiny_run):
    report = tiny_run["report"]
    names = {p.name for p in report.out_dir.iterdir()}
    assert {"report.md", "report.json", "comparison.png", "confusion.png", "learning_curves.png",
            "few_shot.png", "augmentation.png"} <= names
    for png in report.out_dir.glob("*.png"):
        assert not_blank(png), png.name


def test_run_compares_heads_and_finetune(tiny_run):
    report = tiny_run["report"]
    models = {r["name"]: r for r in report.rows}
    assert set(models) == {"logreg", "knn", "finetune:blocks"}
    assert models["finetune:blocks"]["kind"] == "finetune"
    assert {r["backbone"] for r in report.rows} == {"mobilenet_v2"}
    assert all(r["input_size"] == [32, 32] for r in report.rows)
    assert all(0 <= r["accuracy"] <= 1 for r in report.rows)
    assert report.best == report.rows[0]
    data = json.loads((report.out_dir / "report.json").read_text())
    assert data["data"]["splits"] == {"train": 18, "test": 6}
    assert data["confusion"]["name"] == report.best["name"]
    assert np.asarray(data["confusion"]["matrix"]).sum() == 6
    assert data["histories"]["finetune:blocks"]["loss"]
    assert data["few_shot"]["n_per_class"] == [1, 2, 6]
    assert data["config"]["heads"]["names"] == ["logreg", "knn"]
    md = (report.out_dir / "report.md").read_text()
    assert "## Comparison" in md and "![comparison](comparison.png)" in md


def test_run_prints_table_and_folder(tiny_run):
    text = "\n".join(tiny_run["lines"])
    assert "| logreg | head | mobilenet_v2 | 32x32 |" in text
    assert f"report: {tiny_run['report'].out_dir}/report.md" in text


def test_second_run_reuses_the_cache(tiny_run):
    from featx.extract import forward_pass_count

    before = forward_pass_count()
    report = run_pipeline(tiny_run["toml"], out=tiny_run["base"] / "again", verbose=0, echo=None,
                          overrides={"finetune.strategies": [], "report.plots": [],
                                     "report.few_shot": []})
    assert forward_pass_count() == before  # features came from the HDF5 cache
    assert [r["kind"] for r in report.rows] == ["head", "head"]
    assert not list(report.out_dir.glob("*.png"))


def test_the_report_describes_what_ran_and_what_was_drawn(tiny_run):
    """report.md's configuration is the text the run followed (overrides written in, the rest
    of the file as it was), and its few-shot text describes a shaded band only when the plot
    that has one was drawn."""
    import tomllib

    drawn = (tiny_run["report"].out_dir / "report.md").read_text()
    assert "shaded band" in drawn and "![few_shot](few_shot.png)" in drawn
    report = run_pipeline(tiny_run["toml"], out=tiny_run["base"] / "described", verbose=0,
                          echo=None, overrides=["finetune.strategies=[]", "report.plots=[]",
                                                "report.few_shot=[1, 0]"])
    md = (report.out_dir / "report.md").read_text()
    toml = md.split("## Configuration")[1].split("```toml\n")[1].split("```")[0]
    ran = tomllib.loads(toml)
    assert ran["report"]["plots"] == [] and ran["report"]["few_shot"] == [1, 0]
    assert ran["finetune"]["strategies"] == [] and ran["finetune"]["epochs"] == 1
    assert "plots = []  # overridden for this run" in toml
    assert "# a tiny pipeline" in toml  # the file's own comments stay
    assert "## Few-shot" in md and "shaded band" not in md and ".png" not in md


def test_a_rerun_replaces_its_report_and_a_users_file_is_refused_first(tiny_run):
    """Re-running into the same folder just works (featx's files replaced); a user's file named
    like one of the report's is refused before any work (no image read, no forward pass) and
    left as it is, with everything else in the folder."""
    from featx.errors import OutputExistsError
    from featx.extract import forward_pass_count

    cheap = {"finetune.strategies": [], "report.plots": ["comparison"], "report.few_shot": []}
    out = tiny_run["base"] / "rerun"
    for _ in range(2):
        report = run_pipeline(tiny_run["toml"], out=out, verbose=0, echo=None, overrides=cheap)
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "comparison.png",
                                               ".featx-outputs.json"}
    mine = tiny_run["base"] / "mine"
    mine.mkdir()
    (mine / "comparison.png").write_bytes(b"my own chart")
    (mine / "notes.txt").write_text("mine")
    before = forward_pass_count()
    with pytest.raises(OutputExistsError, match=r"out_dir='.*comparison\.png' is a file featx "
                                                r"did not write; .*choose another report folder"):
        run_pipeline(tiny_run["toml"], out=mine, verbose=0, echo=None,
                     overrides={**cheap, "data.path": str(tiny_run["base"] / "absent")})
    assert forward_pass_count() == before
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == {
        "comparison.png": b"my own chart", "notes.txt": b"mine"}
    assert report.files["report.md"].exists()


# --------------------------------------------------------------------------- DATA resolution
def test_resolve_folder_csv_and_limit(tmp_path, make_images):
    from featx.sources import resolve_data

    root = tmp_path / "imgs"
    make_images(root, 6, classes=ANIMALS, size=44, folders=True, seed=1)
    splits = resolve_data(root, test_size=0.5, val_size=None)
    assert sorted(splits) == ["test", "train"] and len(splits["test"]) == 9
    assert resolve_data(root, limit=2)["train"].class_counts() == {"cat": 2, "dog": 2, "owl": 2}
    with_val = resolve_data(root, test_size=0.34, val_size=0.33)
    assert sorted(with_val) == ["test", "train", "validation"]

    rows = ["path,label,split"] + [f"{c}/{i}.jpg,{c},{'test' if i < 2 else 'train'}"
                                   for c in ("cat", "dog", "owl") for i in range(6)]
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    splits = resolve_data(root / "index.csv")
    assert {s: len(d) for s, d in splits.items()} == {"train": 12, "test": 6}
    assert splits["test"].class_names == ["cat", "dog", "owl"]

    (root / "plain.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    assert len(resolve_data(root / "plain.csv", test_size=0.5)["test"]) == 9


def test_inspect_section_warns_of_leaks_and_scores_without_them(tmp_path, make_images):
    """``[inspect]``: the findings folder, the report's section, and the comparison's accuracy
    without the test image that is a copy of a training image."""
    data = tmp_path / "animals"
    for split, n in (("train", 6), ("test", 3)):
        make_images(data / split, n, classes=ANIMALS, size=44, folders=True, seed=len(split))
    leaked = data / "test" / "owl" / "copy.jpg"
    leaked.write_bytes((data / "train" / "owl" / "2.jpg").read_bytes())
    config = {"data": {"path": str(data)},
              "extract": {"backbone": "mobilenet_v2", "weights": "none", "input_size": 32,
                          "cache": str(tmp_path / "cache")},
              "heads": {"names": ["logreg"]},
              "inspect": {"enabled": True, "threshold": 0.9999, "folds": 3},
              "report": {"plots": [], "few_shot": []}}
    lines: list[str] = []
    report = run_pipeline(config, out=tmp_path / "report", verbose=0, echo=lines.append)
    assert (report.out_dir / "inspect" / "findings.csv").is_file()
    assert any(line.startswith("inspect: ") for line in lines)
    summary = report.data["inspection"]
    assert summary["leaked"] == {"test": 1}
    (row,) = summary["without_leaks"]
    assert row["name"] == "logreg" and row["test_images"] == 9
    md = (report.out_dir / "report.md").read_text()
    assert "**Warning:** 1 test image(s) have a twin in the training split" in md
    assert "accuracy_without_leaks" in md and "## Know your data" in md
    assert "(<inspect/report.md>)" in md
    inspect_md = (report.out_dir / "inspect" / "report.md").read_text()
    assert "copy.jpg" in inspect_md
