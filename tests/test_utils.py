"""Shared plumbing: the table type, declared parameter constraints, the one close-match hint,
process-wide settings and the seeded block every stage uses."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import featx
from featx.backbones import POOLINGS
from featx.extract.config import EXTRACTOR_PARAMS
from featx.extract.forward import RUNTIMES
from featx.extract.views import VIEWS
from featx.images import DECODERS, READERS, RESIZE_MODES
from featx.utils.checks import check_choice, close_matches
from featx.utils.params import Flag, Interval, Options, Rule, validate_params
from featx.utils.registry import Registry
from featx.utils.runtime import seeded


def _tables() -> dict[str, Registry]:
    from featx.backbones._registry import REGISTRY
    from featx.deploy import FORMATS
    from featx.distributed import ENGINES as PLACES
    from featx.extract import ENGINES
    from featx.finetune import AUGMENTATIONS, STRATEGIES
    from featx.heads.table import HEADS
    from featx.sources import BUILTIN_DATA, DATA_FORMATS

    return {"backbones": REGISTRY, "heads": HEADS, "views": VIEWS, "runtimes": RUNTIMES,
            "engines": ENGINES, "places": PLACES, "formats": FORMATS, "decoders": DECODERS,
            "poolings": POOLINGS, "resize": RESIZE_MODES, "readers": READERS,
            "data formats": DATA_FORMATS, "built-in data": BUILTIN_DATA,
            "strategies": STRATEGIES, "augmentations": AUGMENTATIONS}


@pytest.mark.parametrize("name", sorted(_tables()))
def test_every_table_is_a_registry_with_one_unknown_name_message(name):
    table = _tables()[name]
    assert isinstance(table, Registry) and len(table) >= 2
    first = next(iter(table))
    assert table.get(first) is table[first] and table.check(first) == first
    assert table.names(default_only=True) and table.get("no-such-row", None) is None
    with pytest.raises(ValueError, match=rf"^{table.param} must be one of .*got 'no-such-row'$"):
        table.get("no-such-row")


def test_a_registry_lists_matches_and_describes_its_rows():
    t = Registry("colour", {"red": 1, "green": 2, "dark_red": 3}, default=lambda v: v < 3)
    assert t.names("red") == ["red", "dark_red"] and t.names("*RED") == ["red", "dark_red"]
    assert t.names(default_only=True) == ["red", "green"]
    assert t.markdown({"name": lambda n, v: n, "value": lambda n, v: v}).splitlines()[2] \
        == "| red | 1 |"
    with pytest.raises(ValueError, match=r"got 'gren' \(did you mean 'green'\?\)"):
        t.get("gren")
    assert [] not in t  # an unhashable name is simply not a row
    with pytest.raises(ValueError, match="registered already"):
        t.register("red", 9)
    t.register("blue", 4)
    assert t.names()[-1] == "blue"


def test_a_long_table_says_where_its_names_are_listed():
    rows = {f"row{i}": i for i in range(20)}
    message = Registry("row", rows, listing="`featx rows`").unknown("row99")
    assert message.startswith("row must be one of the 20 row names that `featx rows` lists")
    assert "(did you mean" in message


def test_one_close_match_hint():
    assert close_matches("mox", ["avg", "max"]) == " (did you mean 'max'?)"
    assert close_matches("LOGREG", ["logreg"]) == " (did you mean 'logreg'?)"  # any case
    assert close_matches(3, ["avg"]) == "" and close_matches("zzz", ["avg"]) == ""
    with pytest.raises(ValueError, match=r"^pooling must be one of \['avg', 'max'\], got 'mox' "
                                         r"\(did you mean 'max'\?\)$"):
        check_choice("pooling", "mox", ["avg", "max"])


@pytest.mark.parametrize(("rule", "good", "bad", "message"), [
    (Interval(int, 1, none=True), [1, np.int64(5), None], [0, 1.5, True, "8"],
     "n must be None or an int >= 1, got"),
    (Interval(float, 0, 1, high_open=True), [0, 0.5], [1, -0.1, "x"],
     "n must be a number >= 0 and < 1, got"),
    (Options(("a", "b")), ["a"], ["c", None], "n must be one of ['a', 'b'], got"),
    (Options(lambda: ["late"]), ["late"], ["early"], "n must be one of ['late'], got"),
    (Flag(), [True, np.bool_(False)], [1, "yes"], "n must be a bool, got"),
])
def test_each_constraint_accepts_and_refuses_with_one_message(rule, good, bad, message):
    for value in good:
        rule.check("n", value)
    for value in bad:
        with pytest.raises((ValueError, TypeError)) as info:
            rule.check("n", value)
        assert str(info.value).startswith(message), str(info.value)
    assert rule.describe()


def test_validate_params_checks_declared_rows_only_in_order():
    rows = {"a": Interval(int, 0), "b": Rule(lambda name, v: v.upper(), "a string")}
    assert validate_params(rows, {"b": "x", "a": 2, "other": object()}) == {"a": 2, "b": "X"}
    with pytest.raises(ValueError, match="^a must be an int >= 0"):
        validate_params(rows, {"a": -1, "b": 1})  # the first row's mistake, before b's


def test_the_extractor_rows_are_shared_by_every_api():
    from featx.estimators import FeatureExtractor, TransferClassifier
    from featx.finetune import FineTunedClassifier

    for cls in (FeatureExtractor, TransferClassifier, FineTunedClassifier):
        for name in ("backbone", "weights", "input_size", "decoder"):
            assert cls._parameter_constraints[name] is EXTRACTOR_PARAMS[name], (cls, name)
        assert set(cls._parameter_constraints) <= set(cls().get_params()), cls
    for bad in ({"backbone": "resnet5"}, {"decoder": "pilow"}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be one of"):
            FeatureExtractor(**bad).fit()
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be one of"):
            FineTunedClassifier(**bad)._check_params()


def test_settings_are_process_wide_and_picklable_values():
    with featx.config_context(cache_dir=os.path.join("a", "b"), threads=2):
        assert featx.get_config()["cache_dir"] == os.path.join("a", "b")
        assert featx.get_config("threads") == 2
        from featx.utils.threads import compute_threads

        assert compute_threads() == 2
    assert pickle.loads(pickle.dumps(featx.get_config())) == featx.get_config()
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        featx.set_config(threads=0)


def test_seeded_restores_even_on_error():
    np.random.seed(5)
    expected = np.random.get_state()[1].copy()
    with pytest.raises(RuntimeError), seeded(0):
        np.random.rand(3)
        raise RuntimeError
    assert (np.random.get_state()[1] == expected).all()


def test_the_cache_folder_setting_env_checkout_then_the_per_user_cache(tmp_path, monkeypatch):
    from featx.utils.config import cache_dir, cache_origin, config_context

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEATX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # nothing set, not a checkout: the per-user cache, the same from every folder
    assert cache_origin() == (tmp_path / "xdg" / "featx", "the per-user cache")
    (tmp_path / "cache").mkdir()  # a folder named cache that is not featx's: not used
    (tmp_path / "cache" / "README.md").write_text("my photos\n")
    assert cache_dir() == tmp_path / "xdg" / "featx"
    # a featx checkout's own cache/ (its README names it) is used from its folder
    (tmp_path / "cache" / "README.md").write_text((featx_root() / "cache/README.md").read_text())
    assert cache_origin() == (Path("cache"), "this featx checkout's cache/")
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "env"))
    assert cache_origin() == (tmp_path / "env", "$FEATX_CACHE_DIR")
    with config_context(cache_dir=tmp_path / "set"):
        assert cache_origin() == (tmp_path / "set", "cache_dir setting")


def featx_root() -> Path:
    return Path(featx.__file__).resolve().parents[1]


def test_cache_ls_first_line_names_the_folder(tmp_path, monkeypatch, capsys):
    from featx.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEATX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["cache", "ls"]) == 0
    first, *rest = capsys.readouterr().out.splitlines()
    assert first == f"cache: {tmp_path / 'xdg' / 'featx'} (the per-user cache)"
    assert rest == ["(no cache files)"]
    assert main(["cache", "ls", "--cache", "elsewhere"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"cache: {tmp_path / 'elsewhere'} (--cache)"
    assert not (tmp_path / "xdg").exists()  # listing creates nothing
