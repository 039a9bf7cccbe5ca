"""A newcomer's install: the built-in pipelines ship inside the wheel and run by name from any
folder; `featx pipelines` / `featx init`; cache pruning; featx importable without POSIX-only
modules (``fcntl``, ``resource``) and its lock's fallback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from featx.cache import RowStore
from featx.cache import rowstore as rowstore_module
from featx.cache.maintenance import cache_check, cache_ls, cache_prune, cache_rm, parse_size
from featx.cli import build_parser, main
from featx.errors import OutputExistsError
from featx.pipeline import (
    copy_pipeline,
    list_pipelines,
    load_config,
    parse_config,
    pipeline_path,
)
from featx.pipeline.config import BUILTIN_DIR

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))
# the quickstart, shrunk to seconds: 2 images per class, random weights at 32 px, one head
TINY = ["data.limit=2", "extract.weights=none", "extract.input_size=32",
        'heads.names=["logreg"]', "finetune.strategies=[]", "report.plots=[]",
        "report.few_shot=[]"]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- built-in pipelines
def test_the_checkout_folder_is_the_package_data():
    """``pipelines/`` (the README's spelling) holds exactly the shipped files, byte for byte."""
    assert NAMES and "quickstart" in NAMES
    repo = {p.name: p.read_bytes() for p in (ROOT / "pipelines").glob("*.toml")}
    assert repo == {p.name: p.read_bytes() for p in BUILTIN_DIR.glob("*.toml")}


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_parses_and_describes_itself(name):
    path, builtin = pipeline_path(name)
    assert builtin == name and path.parent == BUILTIN_DIR
    cfg = load_config(name)
    assert cfg["_builtin"] == name and cfg["_file"] == str(path)
    assert parse_config(path.read_text(), source=name)["data"] == cfg["data"]
    (row,) = [r for r in list_pipelines() if r["name"] == name]
    assert 20 < len(row["description"]) <= 100 and not row["description"].startswith("#")
    data = tomllib.loads(path.read_text())["data"]
    assert row["data"] == (data.get("name") or data["path"])


def test_names_and_the_readme_spelling_resolve_from_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = BUILTIN_DIR / "quickstart.toml"
    for spelling in ("quickstart", "quickstart.toml", "pipelines/quickstart.toml"):
        assert pipeline_path(spelling) == (quick, "quickstart"), spelling
    (tmp_path / "quickstart.toml").write_text("[data]\nname = 'clothing-mini'\n")
    assert pipeline_path("quickstart.toml") == (Path("quickstart.toml"), None)  # a file wins
    assert pipeline_path("quickstart") == (quick, "quickstart")  # a name is a name
    with pytest.raises(FileNotFoundError, match=r"'quickstrat' is neither a file nor a built-in"
                                                r" pipeline \(did you mean 'quickstart'\?\)\..*"
                                                r"Built-in: .*quickstart.*featx pipelines"):
        pipeline_path("quickstrat")
    with pytest.raises(FileNotFoundError, match=r"'elsewhere/quickstart.toml' does not exist"):
        pipeline_path("elsewhere/quickstart.toml")  # only the checkout's folder name is special


def test_featx_pipelines_lists_names_data_and_descriptions(capsys):
    code, out, _ = run(capsys, "pipelines")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "data", "description"]
    for row in list_pipelines():
        (line,) = [x for x in lines if x.startswith(row["name"] + " ")]
        assert row["data"] in line and row["description"] in line
    assert "featx init NAME" in out


@pytest.mark.parametrize("row", list_pipelines(), ids=lambda r: r["name"])
def test_a_pipelines_description_is_a_whole_sentence_for_users(row):
    """Shipped text speaks to users: a whole first sentence, no issue numbers anywhere in the
    file (before: "measured on clothing-small (issue #17), chosen by" cut mid-sentence)."""
    assert row["description"].endswith((".", "!", "?")), row["description"]
    assert not re.search(r"issue\s*#?\d+|#\d+\b", Path(row["path"]).read_text()), row["path"]


def test_featx_init_writes_a_copy_to_edit(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "flowers")
    assert code == 0 and "wrote flowers.toml" in out and "featx run flowers.toml" in out
    assert (tmp_path / "flowers.toml").read_bytes() == (BUILTIN_DIR / "flowers.toml").read_bytes()
    code, out, _ = run(capsys, "init", "flowers")  # its own unedited copy: written again
    assert code == 0 and "wrote flowers.toml" in out
    (tmp_path / "flowers.toml").write_text("# mine\n")
    code, _, err = run(capsys, "init", "flowers")  # never overwrites an edited copy
    assert code == 1 and ("--out='flowers.toml' is a file featx wrote that was changed since; "
                          "featx leaves it as it is: choose another --out (e.g. "
                          "'flowers-1.toml')") in err
    assert (tmp_path / "flowers.toml").read_text() == "# mine\n"
    code, _, _ = run(capsys, "init", "quickstart", "--out", tmp_path / "q.toml")
    assert code == 0 and load_config(tmp_path / "q.toml")["data"]["name"] == "clothing-mini"
    code, _, err = run(capsys, "init", "flower")
    assert code == 1 and "NAME 'flower' is not a built-in pipeline (did you mean 'flowers'" in err
    code, _, err = run(capsys, "init", "fer", "--out", tmp_path / "no" / "fer.toml")
    assert code == 1 and "does not exist" in err and not (tmp_path / "no").exists()
    with pytest.raises(ValueError, match="Built-in: cats_vs_dogs"):
        copy_pipeline("nope")


def test_featx_init_under_another_name_reports_to_its_own_folder(capsys, tmp_path,
                                                                  monkeypatch):
    """`featx init quickstart --out mine.toml`: the copy's report goes to reports/mine, not over
    the built-in's reports/quickstart; the rest of the file (comments included) is the
    built-in's. Under the built-in's own name the file is the built-in's, byte for byte."""
    import tomllib

    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "init", "quickstart", "--out", "mine.toml")
    assert code == 0
    original = (BUILTIN_DIR / "quickstart.toml").read_text()
    mine = (tmp_path / "mine.toml").read_text()
    assert tomllib.loads(original)["report"]["out"] == "reports/quickstart"
    assert tomllib.loads(mine)["report"]["out"] == "reports/mine"
    assert load_config("mine.toml")["report"]["out"] == "reports/mine"
    changed = [(a, b) for a, b in zip(original.splitlines(), mine.splitlines(), strict=True)
               if a != b]
    assert changed == [('out = "reports/quickstart"', 'out = "reports/mine"')]
    code, _, _ = run(capsys, "init", "quickstart")
    assert code == 0 and (tmp_path / "quickstart.toml").read_text() == original


def test_featx_init_out_never_replaces_a_users_file(capsys, tmp_path):
    """A file featx did not write at --out is refused and kept; so is any existing file when
    the library is asked not to overwrite, featx's own copy included."""
    mine = tmp_path / "pipeline.toml"
    mine.write_text("[data]\n# my own pipeline\n")
    code, _, err = run(capsys, "init", "flowers", "--out", mine)
    assert code == 1 and f"--out={str(mine)!r} is a file featx did not write" in err
    assert mine.read_text() == "[data]\n# my own pipeline\n"
    with pytest.raises(OutputExistsError, match=r"--out '.*pipeline\.toml' exists already; "
                                                "featx leaves it as it is"):
        copy_pipeline("flowers", mine)
    ours = copy_pipeline("flowers", tmp_path / "ours.toml")
    with pytest.raises(OutputExistsError, match="exists already"):
        copy_pipeline("flowers", ours)
    assert copy_pipeline("quickstart", ours, overwrite=True) == ours
    assert load_config(ours)["data"]["name"] == "clothing-mini"


@pytest.mark.parametrize("argv", [["pipelines"], ["init"], ["cache", "prune"],
                                  ["cache", "rm"]])
def test_new_commands_document_every_option(capsys, argv):
    assert main([*argv, "--help"]) == 0
    assert f"usage: featx {' '.join(argv)}" in capsys.readouterr().out
    parser = build_parser()
    for word in argv:
        sub = next(a for a in parser._actions if a.choices and word in a.choices)
        parser = sub.choices[word]
    assert all(action.help for action in parser._actions), argv


def test_run_help_names_the_default_report_folder(capsys):
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "report.out" not in out and "reports/<pipeline name>" in out and "quickstart" in out


# the quickstart's report as pip install featx (no matplotlib) writes it: every plot requested
WITH_PLOTS = [s for s in TINY if not s.startswith("report.plots")]
NOT_DRAWN = ("report plots not drawn (comparison, confusion, learning_curves, few_shot, "
             "augmentation, misclassified): matplotlib is not installed; "
             "`pip install 'featx[plots]'` draws them")


def _no_plots_report(folder: Path) -> None:
    """The report in ``folder`` was written without plots and says which and why."""
    md = (folder / "report.md").read_text()
    assert "Plots not drawn: comparison, confusion" in md and "pip install 'featx[plots]'" in md
    assert "## Comparison" in md and not list(folder.glob("*.png"))
    import json

    data = json.loads((folder / "report.json").read_text())
    assert data["plots"] == {} and data["plots_not_drawn"][:2] == ["comparison", "confusion"]


def test_run_without_matplotlib_writes_the_report_without_plots(capsys, monkeypatch, tmp_path):
    """A bare ``pip install featx`` has no matplotlib: the quickstart still runs and writes its
    report, with one line saying how to get the plots."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code, out, err = run(capsys, "run", "quickstart", *[a for s in WITH_PLOTS
                                                        for a in ("--set", s)])
    assert code == 0, err
    assert [line for line in err.splitlines() if "plots" in line] == [
        f"featx: warning: {NOT_DRAWN}"]
    assert "report: reports/quickstart/report.md" in out
    _no_plots_report(tmp_path / "reports" / "quickstart")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """featx built as a wheel from a copy of the package (setuptools of this environment: no
    download, and no build/ folder left in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    import shutil

    shutil.copytree(ROOT / "featx", src / "featx",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp / "dist")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (whl,) = (tmp / "dist").glob("featx-*.whl")
    return whl


def test_the_wheel_ships_the_pipelines_and_py_typed(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        for name in NAMES:
            shipped = z.read(f"featx/pipeline/builtin/{name}.toml")
            assert shipped == (BUILTIN_DIR / f"{name}.toml").read_bytes()
    assert "featx/py.typed" in names and "featx/cache/rowstore.py" in names
    assert "Requires-Dist: filelock" in meta and "Classifier: Typing :: Typed" in meta


def test_run_quickstart_by_name_from_an_empty_folder(tmp_path, fresh_cache):
    """The installed ``featx`` (not the checkout's folder) runs the shipped quickstart by name
    in an empty folder; the report lands under ./reports/quickstart as --help says."""
    featx = Path(sys.executable).with_name("featx")
    cmd = [str(featx)] if featx.exists() else [sys.executable, "-m", "featx.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["FEATX_CACHE_DIR"] = str(fresh_cache)
    work = tmp_path / "empty"
    work.mkdir()
    sets = [a for s in TINY for a in ("--set", s)]
    proc = subprocess.run([*cmd, "run", "quickstart", *sets], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "running the built-in pipeline 'quickstart'" in proc.stderr
    assert "data: clothing-mini (train 20, test 20, 10 classes)" in proc.stdout
    assert "report: reports/quickstart/report.md" in proc.stdout
    assert (work / "reports" / "quickstart" / "report.md").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["reports"]  # nothing else written here


def test_the_wheel_runs_the_quickstart_without_matplotlib(wheel, tmp_path, fresh_cache):
    """``pip install featx`` (the wheel; its dependencies are this environment's, matplotlib
    hidden as on a base install) then ``featx run quickstart`` from an empty folder."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--no-index", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "empty"
    work.mkdir()
    main_code = ("import sys; sys.modules['matplotlib'] = None\n"
                 "import featx; assert featx.__file__.startswith(sys.argv[1]), featx.__file__\n"
                 "from featx.cli import main; sys.exit(main(sys.argv[2:]))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), FEATX_CACHE_DIR=str(fresh_cache))
    sets = [a for s in WITH_PLOTS for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-c", main_code, str(site), "run", "quickstart",
                           *sets], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"featx: warning: {NOT_DRAWN}" in proc.stderr
    _no_plots_report(work / "reports" / "quickstart")
    assert sorted(p.name for p in work.iterdir()) == ["reports"]


# --------------------------------------------------------------------------- cache prune / rm
def _dataset(root: Path, name: str, n: int = 4, dim: int = 2000) -> Path:
    from featx.cache import PlainKey
    from featx.cache.files import write_dataset_file

    path = root / f"{name}-abcdef__mobilenet_v2-32-avg__0123abcd.h5"
    rng = np.random.default_rng(len(name))
    key = PlainKey("0123abcd" + "0" * 56, "mobilenet_v2-32-avg__0123abcd")
    write_dataset_file(path, key, features=rng.random((n, dim),
                       np.float32), labels=np.zeros(n), paths=[f"{name}{i}.jpg" for i in range(n)],
                       ids=[f"{i:064x}" for i in range(n)], class_names=["a"], extra={})
    return path


def _age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(path, (t, t))


@pytest.fixture
def cache(tmp_path) -> dict:
    """Two dataset files (40 and 1 days old), a row store of two segments (30 and 2 days old),
    and a user's files that no pruning may touch."""
    root = tmp_path / "cache"
    root.mkdir()
    old, new = _dataset(root, "old"), _dataset(root, "new")
    _age(old, 40)
    _age(new, 1)
    store = RowStore(root / "rows" / "mobilenet_v2-32-avg__0123abcd", {"key": "0123abcd"})
    with store.lock():
        segs = [store.commit([f"{k}{i:063x}" for i in range(3)],
                             np.full((3, 2000), k, np.float32)) for k in (1, 2)]
    _age(segs[0], 30)
    _age(segs[1], 2)
    mine = [root / "notes.txt", root / "foreign.h5", root / "rows" / "my-folder" / "x.txt"]
    mine[-1].parent.mkdir()
    for p in mine:
        p.write_text("not featx's")
        _age(p, 400)
    return {"root": root, "old": old, "new": new, "store": store.directory, "segs": segs,
            "mine": mine}


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_prune_older_than_removes_only_old_featx_files(cache):
    root = cache["root"]
    before = _tree(root)
    assert len(cache_ls(root)) == 3 and cache_check(cache=root)  # these reads are not uses
    dry = cache_prune(root, older_than=10, dry_run=True)
    assert [u["path"] for u in dry] == [str(cache["old"]), str(cache["segs"][0])]  # oldest first
    assert [u["kind"] for u in dry] == ["dataset", "segment"]
    assert _tree(root) == before  # a dry run changes nothing (no lock file either)
    assert cache_prune(root, older_than=10) == dry
    assert not cache["old"].exists() and not cache["segs"][0].exists()
    assert cache["new"].exists() and cache["segs"][1].exists()
    with RowStore(cache["store"]).lock(exclusive=False) as store:  # the rest still reads
        assert len(store.index()) == 3
    assert all(p.read_text() == "not featx's" for p in cache["mine"])


def test_prune_max_size_removes_least_recently_used_until_it_fits(cache):
    root = cache["root"]
    sizes = {p: p.stat().st_size for p in (cache["old"], cache["new"], *cache["segs"])}
    limit = sizes[cache["new"]] + sizes[cache["segs"][1]]  # the two most recent fit exactly
    gone = cache_prune(root, max_size=limit)
    assert [u["path"] for u in gone] == [str(cache["old"]), str(cache["segs"][0])]
    gone = cache_prune(root, max_size="1k")  # the rest: the store left empty goes whole
    assert {u["path"] for u in gone} == {str(cache["new"]), str(cache["segs"][1])}
    assert not cache["store"].exists()
    assert _tree(root) == ["foreign.h5", "notes.txt", "rows", "rows/my-folder",
                           "rows/my-folder/x.txt"]


def test_prune_and_rm_from_the_command_line(capsys, cache):
    root = cache["root"]
    before = _tree(root)
    code, out, _ = run(capsys, "cache", "prune", "--older-than", "10", "--dry-run", "--cache",
                       root)
    assert code == 0 and out.count("would remove") == 2 and str(cache["old"]) in out
    assert "--dry-run: nothing removed; 2 file(s)" in out and _tree(root) == before
    code, out, _ = run(capsys, "cache", "rm", "*0123abcd*", "--dry-run", "--cache", root)
    assert code == 0 and _tree(root) == before
    assert sorted(line.split(" ", 2)[2] for line in out.splitlines()[:-1]) == sorted(
        map(str, (cache["new"], cache["old"], cache["store"])))
    assert out.splitlines()[-1] == "--dry-run: nothing removed; 3 cache entry(ies) would go"
    code, out, _ = run(capsys, "cache", "prune", "--max-size", "0", "--cache", root)
    assert code == 0 and out.count("removed ") == 4 and "4 file(s)" in out
    assert all(p.exists() for p in cache["mine"])
    code, _, err = run(capsys, "cache", "prune", "--cache", root)
    assert code == 1 and "--older-than DAYS and/or --max-size SIZE" in err
    code, _, err = run(capsys, "cache", "prune", "--max-size", "2X", "--cache", root)
    assert code == 1 and "--max-size must be bytes or a size like 500M" in err and "'2X'" in err
    code, _, err = run(capsys, "cache", "prune", "--older-than", "-3", "--cache", root)
    assert code == 2 and "--older-than: must be a number of days >= 0, got '-3'" in err


def test_rm_dry_run_refuses_what_rm_refuses(cache):
    with pytest.raises(ValueError, match="removed nothing"):
        cache_rm("*.h5", cache["root"], dry_run=True)  # foreign.h5 is not featx's
    assert cache["old"].exists()


@pytest.mark.parametrize("size, expected", [("500M", 500 * 10**6), ("1.5GB", 15 * 10**8),
                                            ("800k", 800_000), ("2048", 2048), (0, 0)])
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["-1", "2X", "M", -5, True, None])
def test_parse_size_names_the_parameter(size):
    with pytest.raises(ValueError, match=rf"max_size must be a size >= 0 .*got {size!r}"):
        parse_size(size)


def test_prune_needs_a_rule_and_checks_it(tmp_path):
    with pytest.raises(ValueError, match="needs older_than .* and/or max_size"):
        cache_prune(tmp_path)
    with pytest.raises(ValueError, match="older_than must be a number of days >= 0, got '3'"):
        cache_prune(tmp_path, older_than="3")


# --------------------------------------------------------------------------- portability
def test_importable_without_fcntl_and_resource(tmp_path):
    """As on Windows: ``fcntl`` and ``resource`` cannot be imported; featx, its command line
    and a sealed cache write still work."""
    code = f"""
import sys
sys.modules["fcntl"] = None
sys.modules["resource"] = None
import featx.trust.store as atomic, featx.cache.rowstore as rowstore
from featx.cli import build_parser
from pathlib import Path
assert atomic.resource is None and rowstore.fcntl is None
build_parser()
final = Path({str(tmp_path)!r}) / "x.h5"
atomic.write_h5_atomic(final, lambda f: f.create_dataset("a", data=[1, 2]), 4096)
assert atomic.check_seal(final)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def _second_waits(directory: Path, exclusive: bool):
    """Whether a second holder (another open of ``.lock``, in a thread) waits for the lock the
    caller holds; it gets the lock once the caller lets go."""
    waited, done = threading.Event(), threading.Event()

    def second():
        with RowStore(directory).lock(exclusive=exclusive, on_wait=lambda _: waited.set()):
            done.set()

    t = threading.Thread(target=second)
    t.start()
    deadline = time.monotonic() + 5
    while not (waited.is_set() or done.is_set()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return t, waited.is_set(), done


@pytest.mark.parametrize("fallback", [False, True], ids=["fcntl", "filelock"])
def test_lock_semantics(tmp_path, monkeypatch, fallback):
    """Writers exclude everyone with either lock; readers share ``flock``'s lock, and wait for
    each other under filelock's (which has no shared mode)."""
    if fallback:
        monkeypatch.setattr(rowstore_module, "fcntl", None)
    directory = tmp_path / "rows" / "mobilenet_v2-32-avg__0123abcd"
    for held, asked, must_wait in [(True, False, True), (False, True, True),
                                   (False, False, fallback)]:
        with RowStore(directory).lock(exclusive=held):
            t, waited, done = _second_waits(directory, asked)
            assert waited == must_wait, (held, asked)
            if must_wait:
                time.sleep(0.1)
                assert not done.is_set()  # still waiting while this lock is held
        t.join(5)
        assert done.is_set() and not t.is_alive()
