"""featx.load on hostile and damaged files: members a manifest names stay inside the
archive, parameters naming a place on disk are reset unless trusted, every malformed file is one
ModelFileError naming the user's file, and the number of members is capped before unpacking."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sklearn
from helpers import MODEL
from sklearn.pipeline import Pipeline

import featx.persist
from featx import FeatureExtractor, TransferClassifier
from featx.heads import make_head
from featx.persist import (
    MAX_MEMBERS,
    PATH_PARAMS,
    ModelFileError,
    UntrustedModelError,
    load,
    save,
)
from featx.utils.config import cache_dir

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

LEGACY = Path(__file__).parent / "data" / "legacy"
FINETUNED = "featx.finetune.FineTunedClassifier"


# ----------------------------------------------------------------------------- real archives
@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A fitted logreg head, its saved file, and that file's two members."""
    X = np.eye(4).repeat(5, axis=0) + np.random.default_rng(0).normal(0, 0.1, (20, 4))
    y = np.repeat(list("abcd"), 5)
    model = make_head("logreg").fit(X, y)
    path = save(model, tmp_path_factory.mktemp("head") / "head.featx")
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    return model, X, path, json.loads(members["manifest.json"]), members["model.skops"]


@pytest.fixture(scope="module")
def finetuned():
    """The members of a fine-tuned model's file (tests/data/legacy/finetuned.featx, written by
    an earlier featx): its manifest and its .keras model's bytes."""
    with zipfile.ZipFile(LEGACY / "finetuned.featx") as zf:
        return json.loads(zf.read("manifest.json")), zf.read("payload/model.keras")


@pytest.fixture(scope="module")
def photos():
    """The legacy files' 16 photos, in the order of their expected predictions."""
    expected = np.load(LEGACY / "expected.npz")
    test = featx.load_clothing_mini()["test"]
    root = Path(test.paths[0]).parents[2]
    return [str(root / name) for name in expected["names"]], expected


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """load()'s temporary folders go here: a test sees what an archive unpacked to, and where
    a relative escape from it lands."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def write_zip(path: Path, members: dict) -> Path:
    """A zip of ``members`` (name -> str, bytes, or a dict written as JSON)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, json.dumps(data) if isinstance(data, dict) else data)
    return path


def hook_file(path: Path, finetuned, *, keras: bytes | None = None, **hook) -> Path:
    """The fine-tuned model's file with ``hook`` fields replaced (``None`` removes one);
    ``keras`` replaces the .keras member's bytes (``b""`` leaves the member out)."""
    manifest, keras_bytes = finetuned
    fields = {k: v for k, v in {**manifest["hook"], **hook}.items() if v is not None}
    members = {"manifest.json": {**manifest, "sklearn_version": sklearn.__version__,
                                 "hook": fields}}
    keras = keras_bytes if keras is None else keras
    if keras:
        members["payload/model.keras"] = keras
    return write_zip(path, members)


def refused(path: Path, match: str, scratch: Path, *, error=ModelFileError) -> str:
    """load(path) raises ``error`` matching ``match`` and naming ``path``, and leaves nothing
    in ``scratch`` (its temporary folders), which its message does not name either."""
    with pytest.raises(error, match=match) as info:
        load(path)
    message = str(info.value)
    assert repr(str(path)) in message and str(scratch) not in message, message
    assert [p for p in scratch.iterdir() if p.is_dir()] == []
    return message


# ----------------------------------------------------------------------------- 1. confinement
@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_hook_member_outside_the_archive_is_refused(where, finetuned, tmp_path, scratch):
    """Before: hook.model, absolute or ``../..``, was loaded from wherever it pointed (past the
    member-path check and the size cap): here a real model, so the file loaded. Now: refused,
    naming the user's file."""
    # a real model where each name leads: ../../ from <temporary folder>/payload is scratch/
    outside = (tmp_path if where == "absolute" else scratch) / "outside.keras"
    outside.write_bytes(finetuned[1])
    name = str(outside) if where == "absolute" else "../../outside.keras"
    path = hook_file(tmp_path / "escape.featx", finetuned, keras=b"", model=name)
    refused(path, re.escape(f"model={name!r}, a path outside the archive"), scratch)


def test_hook_member_linked_out_of_a_folder_is_refused(finetuned, tmp_path):
    outside = tmp_path / "outside.keras"
    outside.write_bytes(finetuned[1])
    folder = tmp_path / "model"
    with zipfile.ZipFile(hook_file(tmp_path / "m.featx", finetuned, keras=b"")) as zf:
        zf.extractall(folder)
    (folder / "payload").mkdir()
    (folder / "payload" / "model.keras").symlink_to(outside)
    with pytest.raises(ModelFileError, match=r"model='model.keras', which leads outside the "
                                             r"archive"):
        load(folder)
    (folder / "payload" / "model.keras").unlink()
    (folder / "payload" / "model.keras").write_bytes(finetuned[1])
    assert load(folder).classes_.tolist() == finetuned[0]["hook"]["classes"]


def test_hook_member_missing_is_named(finetuned, tmp_path, scratch):
    """Before: FileNotFoundError naming a temporary copy. Now: the user's file and the member."""
    refused(hook_file(tmp_path / "nomodel.featx", finetuned, keras=b""),
            r"is not a featx model: its hook names the member model='model.keras', which the "
            r"archive lacks", scratch)


# ----------------------------------------------------------------------------- 2. path params
def test_load_documents_the_reset():
    doc = " ".join(load.__doc__.split())
    assert all(f"``{name}``" in doc for name in PATH_PARAMS) and "trust=True" in doc
    assert set(PATH_PARAMS) == {"cache", "checkpoint_dir"}


def _matrix():
    X = np.random.default_rng(1).normal(size=(30, 8))
    return X, np.array(["cat", "dog", "owl"])[np.arange(30) % 3]


@pytest.mark.parametrize("nested", [False, True], ids=["classifier", "in_a_pipeline"])
def test_cache_from_the_file_is_reset_unless_trusted(tmp_path, nested):
    """Before: ``cache`` came back as saved, so the loaded model wrote features there."""
    X, y = _matrix()
    author = tmp_path / "authors-choice"
    clf = TransferClassifier(head="logreg", cache=str(author))
    model = Pipeline([("clf", clf)]) if nested else clf
    path = save(model.fit(X, y), tmp_path / "clf.featx")
    with pytest.warns(UserWarning, match=(
            rf"Loading path={re.escape(repr(str(path)))}: reset TransferClassifier.cache="
            rf"{re.escape(repr(str(author)))} -> None: .* set_params\(...\), or "
            r"load\(path, trust=True\)")) as record:
        loaded = load(path)
    assert len([w for w in record if "reset" in str(w.message)]) == 1
    inner = loaded.named_steps["clf"] if nested else loaded
    assert inner.cache is None
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*reset", category=UserWarning)
        trusted = load(path, trust=True)
    assert (trusted.named_steps["clf"] if nested else trusted).cache == str(author)


def test_loaded_extractor_writes_to_your_cache_not_the_files(tmp_path, make_images):
    author = tmp_path / "authors-choice"
    fx = FeatureExtractor(**{**MODEL, "cache": author}).fit()
    path = save(fx, tmp_path / "fx.featx")
    with pytest.warns(UserWarning, match=r"reset FeatureExtractor.cache=PosixPath\("):
        loaded = load(path)
    assert loaded.get_params() == {**fx.get_params(), "cache": None}
    images = make_images(tmp_path / "img", 2, start=1414)  # content no other test extracts
    before = set(cache_dir().rglob("*"))
    assert loaded.transform(images).shape == (2, loaded.n_features_out_)
    assert not author.exists() and set(cache_dir().rglob("*")) > before


def test_finetuned_paths_are_reset_and_predictions_kept(finetuned, photos, tmp_path):
    paths, expected = photos
    params = {**finetuned[0]["hook"]["params"], "cache": str(tmp_path / "c"),
              "checkpoint_dir": str(tmp_path / "ckpt")}
    path = hook_file(tmp_path / "ft.featx", finetuned, params=params)
    with pytest.warns(UserWarning) as record:
        model = load(path)
    resets = [str(w.message) for w in record if "reset" in str(w.message)]
    assert len(resets) == 1
    assert f"FineTunedClassifier.cache={str(tmp_path / 'c')!r} -> None" in resets[0]
    assert f"FineTunedClassifier.checkpoint_dir={str(tmp_path / 'ckpt')!r} -> None" in resets[0]
    assert model.cache is None and model.checkpoint_dir is None
    np.testing.assert_allclose(model.predict_proba(paths), expected["finetuned"], rtol=1e-5,
                               atol=1e-6)
    trusted = load(path, trust=True)
    assert (trusted.cache, trusted.checkpoint_dir) == (params["cache"], params["checkpoint_dir"])


@pytest.mark.parametrize("name", ["transfer", "finetuned"])
def test_previous_versions_files_load_without_a_reset(name):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*reset", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*saved with scikit-learn")
        model = load(LEGACY / f"{name}.featx")
    assert model.cache in (None, False)


# ----------------------------------------------------------------------------- loaded bounds
def test_runtime_parameters_are_bounded_unless_trusted(tmp_path):
    """Before: a stored ``batch_size=200000`` was used as is (9 GiB for 6 images) and a stored
    ``n_jobs`` started that many workers. Now each is brought within its bound, one warning
    names both with the file's values, and predicting six images works."""
    X = np.random.default_rng(0).normal(size=(12, 1280))
    y = np.array(["cat", "dog"])[np.arange(12) % 2]
    clf = TransferClassifier(head="logreg", batch_size=200_000, n_jobs=10**6, cache=False,
                             **MODEL).fit(X, y)
    path = save(clf, tmp_path / "clf.featx")
    with pytest.warns(UserWarning, match=(
            r"bounded TransferClassifier\.batch_size=200000 -> 1024 .*, "
            r"TransferClassifier\.n_jobs=1000000 -> \d+ .*load\(path, trust=True\)")) as rec:
        loaded = load(path)
    assert len([w for w in rec if "bounded" in str(w.message)]) == 1
    assert loaded.batch_size == featx.persist.MAX_BATCH_SIZE == 1024
    assert loaded.n_jobs == (os.cpu_count() or 1)
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), np.uint8)
    expected = loaded.predict_proba(images)
    # trusted, the file's 200000 is kept: the batch is still never larger than its 6 images
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*bounded", category=UserWarning)
        trusted = load(path, trust=True)
    assert trusted.batch_size == 200_000
    np.testing.assert_allclose(trusted.predict_proba(images), expected, atol=1e-6)


def test_a_weights_file_the_model_names_is_not_read_unless_trusted(tmp_path, finetuned):
    """Before: a stored ``weights="/etc/hostname"`` was read and its digest printed. Now the
    load is refused naming the parameter (no digest), as a hook class outside featx is; with
    ``trust=True`` the file's value is kept."""
    hostname = tmp_path / "hostname"
    hostname.write_text("a file of this machine\n")
    X, y = _matrix()
    clf = TransferClassifier(head="logreg", weights=str(hostname), backbone="mobilenet_v2",
                             input_size=32).fit(X, y)
    path = save(clf, tmp_path / "clf.featx")
    with pytest.raises(UntrustedModelError, match=(
            rf"Refusing path={re.escape(repr(str(path)))}: it names a file on this machine to "
            rf"read \(TransferClassifier\.weights={re.escape(repr(str(hostname)))}\).*"
            r"load\(path, trust=True\)")) as info:
        load(path)
    assert not re.search(r"[0-9a-f]{16}", str(info.value))
    assert load(path, trust=True).weights == str(hostname)
    params = {**finetuned[0]["hook"]["params"], "weights": str(hostname)}
    ft = hook_file(tmp_path / "ft.featx", finetuned, params=params)
    with pytest.raises(UntrustedModelError, match=r"FineTunedClassifier\.weights="):
        load(ft)
    for weights in ("imagenet", None, "none"):  # name no file: loaded as they are
        clf.set_params(weights=weights)
        other = save(clf, tmp_path / f"{weights}.featx")
        assert load(other).weights == weights


# ----------------------------------------------------------------------------- 3. malformed
def _skops_without_schema() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("x.npy", b"")
    return buffer.getvalue()


def _damaged(kind: str, tmp_path: Path, head, finetuned) -> tuple[Path, str]:
    """A damaged file of ``kind``, and what the error must say about it."""
    _, _, good, manifest, skops = head
    data = good.read_bytes()
    path = tmp_path / f"{kind}.featx"
    skops_ok = {"model.skops": skops}
    man = dict(manifest, sklearn_version=sklearn.__version__)

    def without(key):
        return {k: v for k, v in man.items() if k != key}

    def hook(**fields):
        return hook_file(path, finetuned, **fields)

    cases = {
        "not_a_zip": (lambda: path.write_text("hello"), r"not a valid zip archive \(File is "
                                                        r"not a zip file\)"),
        "empty_file": (lambda: path.write_bytes(b""), r"not a valid zip archive"),
        # before: zipfile opened the pipe and waited (a device such as /dev/zero: read to OOM)
        "a_pipe": (lambda: os.mkfifo(path), r"not a regular file"),
        "truncated_half": (lambda: path.write_bytes(data[:len(data) // 2]),
                           r"not a valid zip archive"),
        "truncated_tail": (lambda: path.write_bytes(data[:-1]), r"not a valid zip archive"),
        "no_manifest": ({**skops_ok}, r"it has no manifest.json"),
        "manifest_not_json": ({"manifest.json": "{'format': 1", **skops_ok},
                              r"its manifest.json is not valid JSON"),
        "manifest_too_deep": ({"manifest.json": "[" * 100_000, **skops_ok},
                              r"its manifest.json is not valid JSON"),
        "manifest_a_list": ({"manifest.json": "[1, 2]", **skops_ok},
                            r"its manifest.json holds a JSON list, not an object"),
        "manifest_other_format": ({"manifest.json": dict(man, format="x"), **skops_ok},
                                  r"has format='x'; featx models have format='featx.model'"),
        "version_a_string": ({"manifest.json": dict(man, format_version="1"), **skops_ok},
                             r"has format_version='1'; expected an integer"),
        "version_too_new": ({"manifest.json": dict(man, format_version=99), **skops_ok},
                            r"format version 99; this featx reads 'featx.model' up to version"),
        "no_class": ({"manifest.json": without("class"), **skops_ok},
                     r"lacks 'class' \(expected a qualified class name\)"),
        "class_a_list": ({"manifest.json": dict(man, **{"class": ["a"]}), **skops_ok},
                         r"has class=\['a'\]; expected a qualified class name"),
        "no_storage": ({"manifest.json": without("storage"), **skops_ok},
                       r"lacks 'storage'"),
        "storage_unknown": ({"manifest.json": dict(man, storage="pickle"), **skops_ok},
                            r"has storage='pickle'; expected 'skops' or 'hook'"),
        "no_skops_member": ({"manifest.json": man},
                            r"it has no model.skops \(storage 'skops'\)"),
        "skops_not_a_zip": ({"manifest.json": man, "model.skops": "junk"},
                            r"its skops part cannot be read \(BadZipFile"),
        "skops_without_schema": ({"manifest.json": man, "model.skops": _skops_without_schema()},
                                 r"its skops part cannot be read \(KeyError"),
        "duplicate_member": (lambda: _twice(path, {"manifest.json": man, **skops_ok}),
                             r"zip member 'manifest.json' appears twice"),
        "file_and_folder": ({"manifest.json": man, **skops_ok, "payload": b"x",
                             "payload/a": b"y"}, r"zip member 'payload' is both a file and"),
        "hook_a_list": ({"manifest.json": dict(man, storage="hook", hook=[],
                                               **{"class": FINETUNED})},
                        r"has hook=\[\]; expected an object"),
        "hook_class_missing": ({"manifest.json": dict(man, storage="hook", hook={},
                                                      **{"class": "featx.nope.Model"})},
                               r"class='featx.nope.Model' named by its manifest.json does not "
                               r"exist"),
        "hook_class_not_a_name": ({"manifest.json": dict(man, storage="hook", hook={},
                                                         **{"class": "featx..x"})},
                                  r"class='featx..x', not a qualified class name"),
        "hook_without_classes": (lambda: hook(classes=None), r"its hook lacks 'classes'"),
        "hook_params_a_list": (lambda: hook(params=[]), r"its hook has params=\[\]; expected"),
        "hook_unknown_param": (lambda: hook(params={"backbone": "x", "evil": 1}),
                               r"its hook has params \['evil'\] that FineTunedClassifier does "
                               r"not take"),
        "hook_bad_input_size": (lambda: hook(input_size=[32]), r"input_size=\[32\]; expected"),
        "hook_count_a_string": (lambda: hook(compile_count="2"),
                                r"compile_count='2'; expected a count"),
        "hook_model_a_number": (lambda: hook(model=3), r"model=3; expected the name of"),
        "hook_keras_junk": (lambda: hook(keras=b"not a keras file"),
                            r"its member 'model.keras' is not a .keras file \(not a zip"),
        "hook_classes_mismatch": (lambda: hook(classes=["a", "b"]),
                                  r"gives 4 outputs, but its hook has input_size=\[32, 32\] and "
                                  r"2 classes"),
        "hook_other_format": (lambda: hook(format="featx.finetune/9"),
                              r"its hook has format='featx.finetune/9'; this featx reads"),
    }
    assert list(cases) == MALFORMED  # every case is run
    build, match = cases[kind]
    if callable(build):
        build()
    else:
        write_zip(path, build)
    return path, match


def _twice(path: Path, members: dict) -> None:
    """``members``, then a second manifest.json (which one a reader takes is up to it)."""
    write_zip(path, members)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("manifest.json", json.dumps({**members["manifest.json"],
                                                     "storage": "hook"}))


MALFORMED = [
    "not_a_zip", "empty_file", "a_pipe", "truncated_half", "truncated_tail", "no_manifest",
    "manifest_not_json", "manifest_too_deep", "manifest_a_list", "manifest_other_format",
    "version_a_string", "version_too_new", "no_class", "class_a_list", "no_storage",
    "storage_unknown", "no_skops_member", "skops_not_a_zip", "skops_without_schema",
    "duplicate_member", "file_and_folder", "hook_a_list", "hook_class_missing",
    "hook_class_not_a_name", "hook_without_classes", "hook_params_a_list",
    "hook_unknown_param", "hook_bad_input_size", "hook_count_a_string", "hook_model_a_number",
    "hook_keras_junk", "hook_classes_mismatch", "hook_other_format",
]


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_file_is_one_error_naming_it(kind, head, finetuned, tmp_path, scratch):
    """Before: BadZipFile with no path, KeyError: 'classes', AttributeError: 'list' object has
    no attribute 'get', FileNotFoundError naming a temporary copy, TypeError. Now: one
    ModelFileError (a ValueError) naming the file; nothing unpacked is left behind."""
    path, match = _damaged(kind, tmp_path, head, finetuned)
    refused(path, rf"path={re.escape(repr(str(path)))}.* is not a featx model: .*{match}",
            scratch)


def test_random_damage_never_loads_a_different_model(head, tmp_path):
    """Truncations and flipped bytes of a real file: each loads the same model or raises one
    ModelFileError naming the file."""
    model, X, good, _, _ = head
    data = good.read_bytes()
    rng = np.random.default_rng(14)
    outcomes = set()
    for trial in range(150):
        damaged = bytearray(data)
        if trial % 3 == 0:
            damaged = damaged[:rng.integers(0, len(data))]
        else:
            for i in rng.integers(0, len(data), rng.integers(1, 4)):
                damaged[i] = rng.integers(0, 256)
        path = tmp_path / f"damaged{trial}.featx"
        path.write_bytes(bytes(damaged))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a flipped digit of sklearn_version
                loaded = load(path)
        except (ModelFileError, UntrustedModelError) as exc:
            assert repr(str(path)) in str(exc)
            outcomes.add("refused")
        else:
            np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
            outcomes.add("loaded")
    assert "refused" in outcomes


@pytest.mark.parametrize("qualname", ["featx.cli.__main__.Model", "featx.cli._private.Model"])
def test_hook_class_in_a_runnable_or_private_module_is_not_imported(qualname, head, tmp_path,
                                                                    scratch):
    """Importing featx.cli.__main__ runs the featx command (SystemExit) with the process's
    arguments: a file may not name it, nor a private module, without trust."""
    manifest = dict(head[3], storage="hook", hook={}, sklearn_version=sklearn.__version__,
                    **{"class": qualname})
    path = write_zip(tmp_path / "main.featx", {"manifest.json": manifest})
    refused(path, re.escape(f"class={qualname!r}"), scratch, error=UntrustedModelError)
    assert "featx.cli.__main__" not in sys.modules


def test_unsafe_member_names_the_file(tmp_path, scratch):
    path = write_zip(tmp_path / "slip.featx", {"manifest.json": "{}", "../escape.txt": "x"})
    refused(path, r"zip member '../escape.txt': unsafe path", scratch, error=UntrustedModelError)


# ----------------------------------------------------------------------------- 4. member cap
def _many(path: Path, n: int, head=None) -> Path:
    """A zip of ``n`` members: the head's two, then empty padding."""
    with zipfile.ZipFile(path, "w") as zf:
        if head is not None:
            zf.writestr("manifest.json", json.dumps(dict(head[3],
                                                         sklearn_version=sklearn.__version__)))
            zf.writestr("model.skops", head[4])
        for i in range(n - len(zf.infolist())):
            zf.writestr(f"pad/{i}", b"")
    return path


def test_member_cap_at_the_boundary(head, tmp_path, scratch):
    model, X, _, _, _ = head
    at_cap = load(_many(tmp_path / "full.featx", MAX_MEMBERS, head))
    np.testing.assert_array_equal(at_cap.predict(X), model.predict(X))
    refused(_many(tmp_path / "over.featx", MAX_MEMBERS + 1, head),
            rf"its directory declares {MAX_MEMBERS + 1} members, over "
            rf"featx.persist.MAX_MEMBERS={MAX_MEMBERS}", scratch)


def test_sixty_thousand_empty_members_are_refused_at_once(tmp_path, scratch):
    """Before: unpacked, in 29 s. Now: refused from the end record, before zipfile reads the
    directory."""
    path = _many(tmp_path / "many.featx", 60_000)
    start = time.perf_counter()
    refused(path, r"its directory declares 60,000 members, over featx.persist.MAX_MEMBERS=",
            scratch)
    assert time.perf_counter() - start < 1.0


def _declare(path: Path, count: int) -> Path:
    """Patch the member count of ``path``'s end-of-central-directory record (a lying one)."""
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, count, count)
    path.write_bytes(bytes(data))
    return path


def test_a_lying_member_count_is_caught(tmp_path, scratch):
    # Under-declared count, directory within the byte budget: zipfile reads it, then the cap.
    refused(_declare(_many(tmp_path / "liar.featx", 1000), 2),
            rf"it holds 1,000 members, over featx.persist.MAX_MEMBERS={MAX_MEMBERS}", scratch)
    # A directory too large for MAX_MEMBERS members is refused before zipfile parses it.
    refused(_declare(_many(tmp_path / "big.featx", 8000), 2),
            r"its central directory takes [\d,]+ bytes, room for more than "
            r"featx.persist.MAX_MEMBERS", scratch)


def test_member_cap_is_read_when_load_runs(head, tmp_path, monkeypatch):
    model, X, path, _, _ = head
    monkeypatch.setattr(featx.persist, "MAX_MEMBERS", 2)
    np.testing.assert_array_equal(load(path).predict(X), model.predict(X))
    monkeypatch.setattr(featx.persist, "MAX_MEMBERS", 1)
    with pytest.raises(ModelFileError, match=r"declares 2 members, over "
                                             r"featx.persist.MAX_MEMBERS=1 "):
        load(path)
