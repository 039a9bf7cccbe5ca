"""Weights files never silently change features.

* The converted ImageNet weights (``<cache>/weights/...weights.h5``) carry the digest recorded
  when they were written; an edited, truncated or unrecorded file is converted again from the
  ``.pth`` with a warning naming it, or refused with an error naming it.
* The torch-free ``.pth`` reader refuses hostile files (written here opcode by opcode) before
  they allocate, mutate featx or crash: every failure is one :class:`CheckpointError` naming
  the file.
* Two fuzz tests: 200 corruptions of a converted weights file (a tiny real Keras model, through
  the same helpers as EfficientNet-Lite) and 200 of small ``.pth`` files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from helpers import PICKLE_ODICT as _ODICT
from helpers import pickle_global as _global
from helpers import pickle_int as _int
from helpers import pickle_str as _str
from helpers import pickle_tuple as _tuple
from keras import layers

from featx.backbones import _pth
from featx.backbones import efficientnet_lite as lite
from featx.backbones._pth import CheckpointError, load_pth
from featx.backbones._weights import (
    DamagedWeightsError,
    WeightsCacheWarning,
    load_converted,
    record_path,
    save_converted,
)

VARIANT = "efficientnet_lite0"
SHAPE = (32, 32, 3)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ================================================================ converted EfficientNet-Lite0


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    """A cache holding lite0's converted weights, and the weights a fresh conversion gives."""
    pytest.importorskip(lite.LITE_VARIANTS[VARIANT].module)
    expected = lite._build_full(VARIANT, SHAPE)
    lite._assign_state_dict(expected, load_pth(lite.pth_path(VARIANT)))
    cache = tmp_path_factory.mktemp("pristine")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATX_CACHE_DIR", str(cache))
        lite.build_efficientnet_lite(VARIANT, input_shape=SHAPE)
        name = lite._converted_path(VARIANT).name
    return {"cache": cache, "name": name, "weights": expected.get_weights()}


@pytest.fixture
def cache(lite0, tmp_path, monkeypatch):
    """A copy of the pristine cache as FEATX_CACHE_DIR; returns the converted file's path."""
    shutil.copytree(lite0["cache"], tmp_path / "cache")
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights" / lite0["name"]


def _build_full():
    return lite.build_efficientnet_lite(VARIANT, input_shape=SHAPE, include_top=True)


def test_conversion_records_size_and_digest(cache):
    record = json.loads(record_path(cache).read_text())
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name, cache.name + ".seal"]
    assert record["file"] == cache.name
    assert record["size"] == cache.stat().st_size
    assert record["sha256"] == _sha256(cache)
    assert record["source_sha256"] == lite.pth_sha256(VARIANT)
    assert record["converter_version"] == lite.CONVERTER_VERSION


def test_valid_file_is_loaded_without_converting(cache, lite0, monkeypatch):
    def no_pth(*args):
        raise AssertionError("converted again although the cached file matches its record")

    monkeypatch.setattr(lite, "load_pth", no_pth)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightsCacheWarning)
        assert _same(_build_full().get_weights(), lite0["weights"])


def _scale_first_kernel(path: Path, factor: float) -> None:
    """The issue's edit: the stem conv kernel (the only 3x3x3x32 array) times ``factor``."""
    with h5py.File(path, "r+") as f:
        found = []
        f.visititems(lambda n, o: found.append(o) if getattr(o, "shape", None) == (3, 3, 3, 32)
                     else None)
        (kernel,) = found
        kernel[...] = kernel[...] * factor


def _check_repaired(cache: Path, lite0, model, *, kept: bool) -> None:
    assert _same(model.get_weights(), lite0["weights"])
    assert _sha256(cache) == json.loads(record_path(cache).read_text())["sha256"]
    rejected = cache.parents[1] / "damaged" / "weights" / cache.name
    assert rejected.exists() == kept
    with warnings.catch_warnings():  # repaired for good: the next load is quiet
        warnings.simplefilter("error", WeightsCacheWarning)
        assert _same(_build_full().get_weights(), lite0["weights"])


def test_edited_kernel_is_converted_again(cache, lite0):
    """Before: features off by up to 6.0 under the unchanged cache key, no word."""
    _scale_first_kernel(cache, 1.5)
    with pytest.warns(WeightsCacheWarning, match=re.escape(str(cache)) + ".*differ from the "
                      r"digest.*Converted again from .*\.pth"):
        model = _build_full()
    _check_repaired(cache, lite0, model, kept=True)
    with h5py.File(cache.parents[1] / "damaged" / "weights" / cache.name) as f:  # kept
        kernels = []
        f.visititems(lambda n, o: kernels.append(o[...]) if getattr(o, "shape", None)
                     == (3, 3, 3, 32) else None)
    stem = lite0["weights"][0]
    assert stem.shape == (3, 3, 3, 32)
    np.testing.assert_allclose(kernels[0], stem * 1.5, rtol=1e-6)


def test_truncated_file_is_converted_again(cache, lite0):
    """Before: ``OSError ... truncated file`` on every extraction, naming no file."""
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    with pytest.warns(WeightsCacheWarning, match=re.escape(str(cache)) + ".* bytes where "):
        model = _build_full()
    _check_repaired(cache, lite0, model, kept=True)


def test_file_without_record_is_converted_again(cache, lite0):
    """A file written before records existed (or whose record is lost) is not trusted."""
    record_path(cache).unlink()
    with pytest.warns(WeightsCacheWarning, match=re.escape(str(cache)) + ".*no seal"):
        model = _build_full()
    _check_repaired(cache, lite0, model, kept=True)


def test_damaged_pth_is_refused(lite0, tmp_path, monkeypatch):
    """A ``.pth`` that no longer matches the digest its published name carries is refused, and
    nothing is converted from it (before: converted silently, under a new cache key)."""
    spec = lite.LITE_VARIANTS[VARIANT]
    package = tmp_path / "featx_test_damaged_lite0"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    damaged = bytearray(lite.pth_path(VARIANT).read_bytes())
    damaged[-1] ^= 0x01  # the last byte of the last tensor: still a loadable checkpoint
    (package / "models" / spec.filename).write_bytes(damaged)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(lite.LITE_VARIANTS, VARIANT,
                        dataclasses.replace(spec, module=package.name))
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "cache"))
    pth = lite.pth_path(VARIANT)
    assert pth.parent.parent == package
    with pytest.raises(DamagedWeightsError, match=re.escape(str(pth)) + ".*force-reinstall "
                       + spec.package):
        lite.build_efficientnet_lite(VARIANT, input_shape=SHAPE)
    assert not (tmp_path / "cache" / "weights").exists()


def test_truncated_user_weights_file_is_named(tmp_path):
    """Before: h5py's ``OSError ... truncated file`` without the path."""
    path = tmp_path / "trunk.weights.h5"
    lite.build_efficientnet_lite(VARIANT, weights=None, input_shape=SHAPE).save_weights(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DamagedWeightsError, match=re.escape(str(path))) as info:
        lite.build_efficientnet_lite(VARIANT, weights=path, input_shape=SHAPE)
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


_RACE = textwrap.dedent("""
    import hashlib, sys, time, warnings
    from pathlib import Path
    import numpy as np
    from featx.backbones import efficientnet_lite as lite
    from featx.backbones._weights import WeightsCacheWarning, save_converted
    warnings.simplefilter("error", WeightsCacheWarning)
    v, me, other, expected = "efficientnet_lite0", Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    model = lite._build_full(v, (32, 32, 3))
    zeros = [np.zeros_like(w) for w in model.get_weights()]
    me.touch()
    while not other.exists():
        time.sleep(0.01)
    for round in range(3):
        model.set_weights(zeros)
        lite._load_imagenet(model, v)  # the first round converts, in both processes at once
        digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
        assert digest == expected, round
        save_converted(model, lite._converted_path(v), {"round": round})  # as the other reads
    print("ok")
""")


def test_two_processes_converting_at_once(lite0, tmp_path):
    """Two processes convert into an empty cache at once, then rewrite the file while the other
    loads it: each ends with the right weights, and neither meets a torn file (that would warn,
    and warnings are errors there)."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FEATX_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "numpy"}  # the file protocol is the same; numpy starts fastest
    expected = hashlib.sha256(b"".join(w.tobytes() for w in lite0["weights"])).hexdigest()
    a, b = tmp_path / "a.ready", tmp_path / "b.ready"
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, str(me), str(other), expected],
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for me, other in ((a, b), (b, a))]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err[-3000:]
    target = cache / "weights" / lite0["name"]
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, target.name + ".seal"]
    assert json.loads(record_path(target).read_text())["sha256"] == _sha256(target)
    assert _sha256(target) == _sha256(lite0["cache"] / "weights" / lite0["name"])


# ================================================================ the generic helpers, tiny model


def _tiny() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x), name="tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model, its 'converted' weights (seeded), and a pristine file + record of them."""
    model = _tiny()
    rng = np.random.default_rng(14)
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    target = tmp_path_factory.mktemp("tiny") / "tiny.weights.h5"
    save_converted(model, target, {"source": "tiny"})
    return {"model": model, "weights": weights, "h5": target.read_bytes(),
            "record": record_path(target).read_bytes()}


def _place(tiny, folder: Path) -> Path:
    target = folder / "tiny.weights.h5"
    target.write_bytes(tiny["h5"])
    record_path(target).write_bytes(tiny["record"])
    return target


def _blank(model) -> None:
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])


def test_failed_conversion_of_a_damaged_file_names_it(tiny, tmp_path):
    target = _place(tiny, tmp_path)
    target.write_bytes(tiny["h5"][:-1])

    def unavailable(model):
        raise CheckpointError("cannot read the .pth checkpoint 'gone.pth': truncated")

    with pytest.raises(DamagedWeightsError, match=re.escape(str(target)) + r".*gone\.pth"):
        load_converted(tiny["model"], target, unavailable, source="gone.pth")
    # nothing cached: the conversion's own error, unchanged
    with pytest.raises(CheckpointError, match="gone.pth"):
        load_converted(tiny["model"], tmp_path / "new.weights.h5", unavailable, source="gone.pth")


def test_unwritable_cache_keeps_the_right_weights(tiny, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the weights folder should be")
    model = tiny["model"]
    _blank(model)
    with pytest.warns(WeightsCacheWarning, match="could not write converted weights file .*"
                      + re.escape(str(blocker))):
        load_converted(model, blocker / "w.weights.h5", lambda m: m.set_weights(tiny["weights"]),
                       source="tiny")
    assert _same(model.get_weights(), tiny["weights"])


def _corrupt(data: bytes, rng: np.random.Generator) -> bytes:
    """One random byte-range corruption of ``data``."""
    kind = rng.choice(["random", "zeros", "flip", "truncate", "append", "delete", "duplicate"])
    start = int(rng.integers(0, len(data)))
    length = int(rng.integers(1, 65)) if rng.random() < 0.8 else int(rng.integers(1, len(data)))
    end = min(len(data), start + length)
    if kind == "random":
        return data[:start] + rng.bytes(end - start) + data[end:]
    if kind == "zeros":
        return data[:start] + bytes(end - start) + data[end:]
    if kind == "flip":
        return data[:start] + bytes([data[start] ^ (1 << int(rng.integers(8)))]) + data[start + 1:]
    if kind == "truncate":
        return data[:start]
    if kind == "append":
        return data + rng.bytes(length)
    if kind == "delete":
        return data[:start] + data[end:]
    return data[:end] + data[start:end] + data[end:]  # a range written twice


def test_fuzz_converted_weights_file(tiny, tmp_path):
    """200 seeded corruptions of a converted file (or of its record): every trial ends in the
    right weights, or (source gone too) in DamagedWeightsError naming the file; a changed file
    is never loaded without a warning, and the repair holds."""
    rng = np.random.default_rng(20240614)
    model, expected = tiny["model"], tiny["weights"]
    outcomes = {"intact": 0, "repaired": 0, "refused": 0}
    for trial in range(200):
        folder = tmp_path / str(trial)
        folder.mkdir()
        target = _place(tiny, folder)
        if rng.random() < 0.85:
            target.write_bytes(_corrupt(tiny["h5"], rng))
        else:
            record_path(target).write_bytes(_corrupt(tiny["record"], rng))
        changed = target.read_bytes() != tiny["h5"]
        source_gone = rng.random() < 0.15
        calls = []

        def convert(m, calls=calls, source_gone=source_gone):
            calls.append(1)
            if source_gone:
                raise OSError("tiny.pth: no such file")
            m.set_weights(expected)

        _blank(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", WeightsCacheWarning)
            try:
                load_converted(model, target, convert, source="tiny.pth")
            except DamagedWeightsError as exc:
                assert source_gone and str(target) in str(exc), (trial, exc)
                outcomes["refused"] += 1
                continue
        mine = [w for w in caught if issubclass(w.category, WeightsCacheWarning)]
        assert _same(model.get_weights(), expected), trial
        if calls:  # converted again: said so, naming the file, and the repair holds
            assert len(mine) == 1 and str(target) in str(mine[0].message), trial
            assert _sha256(target) == json.loads(record_path(target).read_text())["sha256"]
            outcomes["repaired"] += 1
        else:  # loaded as it was: only possible when its bytes are the recorded ones
            assert not changed and not mine, trial
            outcomes["intact"] += 1
    assert outcomes["repaired"] > 120 and outcomes["refused"] > 10, outcomes


# ================================================================ hostile .pth files
# Written opcode by opcode (pickle protocol 2), as torch.save lays them out.


_REBUILD = _global("torch._utils", "_rebuild_tensor_v2")


def _tensor(key: str, numel: int, shape, stride, *, legacy=True, pid_key: bytes | None = None,
            shape_items: bytes | None = None) -> bytes:
    pid = [_str("storage"), _global("torch", "FloatStorage"),
           pid_key if pid_key is not None else _str(key), _str("cpu"), _int(numel)]
    if legacy:
        pid.append(b"N")
    return _REBUILD + _tuple(
        _tuple(*pid) + b"Q", _int(0),
        shape_items if shape_items is not None else _tuple(*map(_int, shape)),
        _tuple(*map(_int, stride)), b"\x89", _ODICT,
    ) + b"R"


def _state(items: bytes) -> bytes:
    """A main pickle: an OrderedDict of ``items`` (key/value opcodes)."""
    return b"\x80\x02" + _ODICT + b"(" + items + b"u."


_HEADER = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
           + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                           "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
STORAGES = {"0": np.arange(6, dtype="<f4"), "1": np.array([2.5], "<f4")}
GOOD = _state(_str("w") + _tensor("0", 6, (2, 3), (3, 1)) + _str("b") + _tensor("1", 1, (), ()))


def _legacy(main: bytes, storages=STORAGES, keys: bytes | None = None) -> bytes:
    body = _HEADER + main + (keys if keys is not None else pickle.dumps(list(storages), 2))
    for flat in storages.values():
        body += struct.pack("<q", flat.size) + flat.tobytes()
    return body


def _zip(main: bytes, storages=STORAGES, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        zf.writestr("archive/data.pkl", main)
        zf.writestr("archive/byteorder", "little")
        for key, flat in storages.items():
            zf.writestr(f"archive/data/{key}", flat.tobytes())
    return buf.getvalue()


def _write(tmp_path, data: bytes, name="hostile.pth") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path, match: str) -> CheckpointError:
    with pytest.raises(CheckpointError, match=re.escape(repr(str(path))) + ".*" + match) as info:
        load_pth(path)
    assert isinstance(info.value, pickle.UnpicklingError) and isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("layout", [_legacy, _zip])
def test_hand_written_checkpoint_reads(tmp_path, layout):
    state = load_pth(_write(tmp_path, layout(GOOD)))
    np.testing.assert_array_equal(state["w"], np.arange(6, dtype="f4").reshape(2, 3))
    np.testing.assert_array_equal(state["b"], np.float32(2.5))


@pytest.mark.parametrize("side", [20000, 60000])
def test_stride_zero_view_is_bounded_by_its_storage(tmp_path, side):
    """Before: a 354-byte file made the reader allocate side^2 x 4 bytes (1.55 GB, 13 GiB)."""
    path = _write(tmp_path, _legacy(_state(_str("w") + _tensor("0", 1, (side, side), (0, 0))),
                                    {"0": np.ones(1, "<f4")}))
    assert path.stat().st_size < 400
    tracemalloc.start()
    try:
        _refused(path, f"{side * side} elements but its storage only 1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_tensors_together_are_bounded_by_the_file(tmp_path):
    """Each a valid full view of one storage, but 400 of them: 400 x the storage."""
    flat = np.zeros(2000, "<f4")
    items = b"".join(_str(f"t{i}") + _tensor("0", 2000, (2000,), (1,)) for i in range(400))
    path = _write(tmp_path, _legacy(_state(items), {"0": flat}))
    _refused(path, "past 2x the file's size")


def test_storage_is_bounded_by_the_file(tmp_path):
    data = _legacy(_state(_str("w") + _tensor("0", 1, (1,), (1,))), {"0": np.ones(1, "<f4")})
    count_at = len(data) - 4 - 8
    data = data[:count_at] + struct.pack("<q", 2**60) + data[count_at + 8:]
    _refused(_write(tmp_path, data), "truncated inside storage '0': 1152921504606846976")


def test_zip_member_is_bounded_by_the_file(tmp_path):
    big = {"0": np.zeros(2**18, "<f4")}  # 1 MiB of zeros deflates to about 1 KiB
    main = _state(_str("w") + _tensor("0", 2**18, (2**18,), (1,), legacy=False))
    data = _zip(main, big, zipfile.ZIP_DEFLATED)
    assert len(data) < 2**14
    _refused(_write(tmp_path, data), "(claims 1048576 bytes, more than the file's|would take "
                                     "the storages past 2x the file's size)")


_FN_STATE = (b"N}" + _str("__name__") + _str("pwned") + b"s" + _str("__defaults__")
             + _tuple(_int(1)) + b"s")


def test_build_on_an_allowed_function_is_refused(tmp_path):
    """Before: BUILD renamed featx's own _rebuild_tensor_v2 and replaced its defaults."""
    before = (_pth._rebuild_tensor_v2.__name__, _pth._rebuild_tensor_v2.__defaults__)
    main = _state(_str("w") + _REBUILD + b"(" + _FN_STATE + b"tb")
    _refused(_write(tmp_path, _legacy(main)),
             "refusing BUILD on a global torch._utils._rebuild_tensor_v2")
    # the unpickler alone (without the opcode check) refuses too
    with pytest.raises(pickle.UnpicklingError, match="refusing BUILD on Callable"):
        _pth._RestrictedUnpickler(io.BytesIO(main), _pth._refuse_persistent).load()
    assert (_pth._rebuild_tensor_v2.__name__, _pth._rebuild_tensor_v2.__defaults__) == before


def test_build_on_a_tensor_is_refused(tmp_path):
    tensor = _tensor("0", 6, (2, 3), (3, 1)) + b"}" + _str("offset") + _int(-5) + b"sb"
    _refused(_write(tmp_path, _legacy(_state(_str("w") + tensor))), "refusing BUILD on a tensor")


def test_build_on_the_state_dict_keeps_torch_metadata_out(tmp_path):
    """torch's own BUILD (the OrderedDict's ``_metadata``) reads; a slot state is refused."""
    meta = b"}" + _str("_metadata") + _ODICT + b"s"
    main = b"\x80\x02" + _ODICT + b"(" + _str("w") + _tensor("0", 6, (2, 3), (3, 1)) + b"u"
    state = load_pth(_write(tmp_path, _legacy(main + meta + b"b.", {"0": STORAGES["0"]})))
    assert list(state) == ["w"]
    slots = b"N}" + _str("keys") + b"Ns" + b"\x86"
    _refused(_write(tmp_path, _legacy(main + slots + b"b.", {"0": STORAGES["0"]}), "s.pth"),
             "refusing BUILD .* only an OrderedDict with a dict state")


@pytest.mark.parametrize("where", ["value", "key"])
def test_deep_nesting_is_refused(tmp_path, where):
    """Before: RecursionError (and deeper keys crash CPython while hashing)."""
    deep = b"N" + b"\x85" * 100_000  # a 1-tuple in a 1-tuple ... 100000 deep
    items = _str("w") + deep if where == "value" else deep + b"N"
    _refused(_write(tmp_path, _legacy(_state(items), {})),
             f"nests deeper than {_pth.MAX_DEPTH} levels")


def test_cycle_is_refused(tmp_path):
    """A list appended to itself (before: RecursionError)."""
    items = _str("w") + b"]q\x00h\x00a"
    _refused(_write(tmp_path, _legacy(_state(items), {})), "puts a list inside itself")


def test_container_changed_after_use_is_refused(tmp_path):
    """Depth grown through a memo alias after the container went into another one."""
    items = _str("w") + b"]q\x00\x85" + b"h\x00N\x85\x85\x85a" + b"\x86"
    _refused(_write(tmp_path, _legacy(_state(items), {})), "already inside another value")


def test_huge_memo_index_is_refused(tmp_path):
    """Before: MemoryError (the unpickler sizes its memo by the index), naming no file."""
    _refused(_write(tmp_path, b"\x80\x02N" + b"r" + struct.pack("<I", 0x7FFFFFF0) + b"."),
             "memo index 2147483632 is out of range")


MALFORMED = {
    "empty file": (b"", "pickle exhausted"),
    "junk": (bytes((7 + 37 * i) % 256 for i in range(300)), "malformed"),
    "magic only": (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), "malformed"),
    "cut inside the main pickle": (_legacy(GOOD)[:200], "malformed"),
    "key list not a list": (_legacy(GOOD, keys=pickle.dumps(5, 2)), "not a list of strings"),
    "tuple storage key": (_legacy(_state(_str("w") + _tensor(
        "0", 6, (6,), (1,), pid_key=_tuple(_str("0"))))), "storage key must be a string"),
    "float shape": (_legacy(_state(_str("w") + _tensor(
        "0", 6, (), (1,), shape_items=_tuple(b"G" + struct.pack(">d", 6.0)))),
        {"0": STORAGES["0"]}), "TypeError"),
    "not a state dict": (_legacy(b"\x80\x02].", {}), "does not hold a state dict"),
    "empty data.pkl": (_zip(b""), "pickle exhausted"),
    "newobj": (_legacy(b"\x80\x02" + _global("collections", "OrderedDict") + b")\x81."),
               "opcode NEWOBJ is not allowed"),
    "two values left": (_legacy(b"\x80\x02NN."), "does not hold one value"),
    "storage never listed": (_legacy(GOOD, {"0": STORAGES["0"]}), "holds no data"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_one_clear_error(tmp_path, case):
    """Before: raw KeyError, TypeError, RecursionError, MemoryError, naming no file."""
    data, match = MALFORMED[case]
    _refused(_write(tmp_path, data), match)


def test_zip_with_bad_crc(tmp_path):
    data = bytearray(_zip(GOOD))
    at = bytes(data).index(STORAGES["0"].tobytes())
    data[at + 5] ^= 0xFF
    _refused(_write(tmp_path, bytes(data)), "Bad CRC-32")


def test_zip_without_data_pkl(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/version", "3")
    _refused(_write(tmp_path, buf.getvalue()), "without exactly one <root>/data.pkl")


@pytest.mark.parametrize("layout", [_legacy, _zip])
def test_fuzz_pth(tmp_path, layout):
    """200 corruptions of a small checkpoint: a state dict or a CheckpointError naming the file,
    never another exception."""
    rng = np.random.default_rng(14)
    good = layout(GOOD)
    path = tmp_path / "fuzz.pth"
    errors = 0
    for trial in range(200):
        path.write_bytes(_corrupt(good, rng))
        try:
            state = load_pth(path)
        except CheckpointError as exc:
            assert repr(str(path)) in str(exc), (trial, exc)
            errors += 1
        else:
            assert isinstance(state, dict), trial
    assert errors > 50
