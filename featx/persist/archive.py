"""Safe unpacking of a model archive: member names confined to the folder, a member cap read from
the zip's end record before zipfile parses the directory, a size cap counting archives inside the
archive by what they unpack to, and a bounded copy that stops at the bytes left.

The caps are arguments: :func:`featx.persist.load` passes ``featx.persist.MAX_MEMBERS`` as it is
when it runs (a documented run-time tunable), and its ``max_size``.
"""

from __future__ import annotations

import errno
import os
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from featx.persist.errors import (
    ModelFileError,
    UntrustedModelError,
    not_a_model,
    not_a_zip,
)

_CHUNK = 1024**2
# Bytes of central directory allowed per member: zipfile parses (and keeps in memory) the whole
# directory before anything can be counted, so its size is checked first. featx's members
# have short names (~100 bytes of directory each).
_DIRECTORY_BYTES_PER_MEMBER = 1024


def unpack(path: Path, dest: Path, max_size: int | None, max_members: int) -> None:
    """Unpack the zip file ``path`` into ``dest``, within ``max_size`` bytes and ``max_members``
    members; what is wrong with the file is a :class:`ModelFileError` (an unsafe member name an
    :class:`UntrustedModelError`) naming ``path``."""
    try:
        _check_count(path, max_members)
        with zipfile.ZipFile(path) as zf:
            _extract(zf, dest, path, max_size, max_members)
    except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
        raise not_a_zip(path, exc) from None
    except OSError as exc:  # EINVAL: the directory sends a seek to a negative offset
        if exc.errno != errno.EINVAL:
            raise
        raise not_a_zip(path, exc) from None


def _too_big(path, what: str, max_size: int) -> ModelFileError:
    return ModelFileError(
        f"Refusing to unpack path={os.fspath(path)!r}: {what}, over max_size={max_size:,} "
        "bytes. If you trust the file and expect it to be this large, raise the limit: "
        "featx.load(path, max_size=<bytes>), or max_size=None for no limit."
    )


def _too_many(path, count: int, what: str, max_members: int) -> ModelFileError:
    return ModelFileError(
        f"Refusing to unpack path={os.fspath(path)!r}: {what} {count:,} members, over "
        f"featx.persist.MAX_MEMBERS={max_members:,} (a featx model holds 2 or 3). If you trust "
        "the file, raise featx.persist.MAX_MEMBERS."
    )


def _end_record(file: Path) -> tuple[int, int] | None:
    """(members, central directory bytes) that ``file``'s end-of-central-directory record
    declares (its zip64 record when there is one), or None where there is no such record."""
    with open(file, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (22 + 0xFFFF))  # the record, then a comment of up to 64 KiB
        f.seek(start)
        tail = f.read(22 + 0xFFFF)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        count, directory = struct.unpack_from("<xxxxxxxxxxHI", tail, at)
        locator = at - 20
        if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            (offset,) = struct.unpack_from("<Q", tail, locator + 8)
            f.seek(offset)
            record = f.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                count, directory = struct.unpack_from("<QQ", record, 32)
    return count, directory


def _check_count(path: Path, max_members: int) -> None:
    """Refuse more than ``max_members`` members from the end record, before zipfile reads (and
    holds in memory) the central directory."""
    declared = _end_record(path)
    if declared is None:
        return  # zipfile says what is wrong
    count, directory = declared
    if count > max_members:
        raise _too_many(path, count, "its directory declares", max_members)
    if directory > max_members * _DIRECTORY_BYTES_PER_MEMBER:
        raise ModelFileError(
            f"Refusing to unpack path={os.fspath(path)!r}: its central directory takes "
            f"{directory:,} bytes, room for more than featx.persist.MAX_MEMBERS={max_members:,} "
            "members (a featx model holds 2 or 3). If you trust the file, raise "
            "featx.persist.MAX_MEMBERS."
        )


def copy_bounded(src: IO[bytes], dst: IO[bytes], budget: int | None) -> int:
    """Copy ``src`` to ``dst`` in chunks; stop as soon as more than ``budget`` bytes came.

    Returns the number of bytes copied; raises ``OverflowError`` once over ``budget``.
    """
    copied = 0
    while chunk := src.read(_CHUNK):
        copied += len(chunk)
        if budget is not None and copied > budget:
            raise OverflowError(copied)
        dst.write(chunk)
    return copied


def _unpacked_size(file: Path) -> int:
    """What ``file`` unpacks to if it is itself a zip archive (a .skops or .keras part), else 0."""
    try:
        with zipfile.ZipFile(file) as inner:
            return sum(info.file_size for info in inner.infolist())
    except (zipfile.BadZipFile, OSError):  # not an archive (a JSON file, weights, ...)
        return 0


def _member_parts(filename: str) -> tuple[str, ...] | None:
    """The parts of a member name that stays inside the archive, or None."""
    name = PurePosixPath(filename)
    if not name.parts or name.is_absolute() or ".." in name.parts or "\\" in filename:
        return None
    return name.parts


def _check_names(infos: list[zipfile.ZipInfo], path) -> None:
    """Refuse a member that would land outside the folder, twice in it, or under a file."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _member_parts(info.filename)
        if parts is None:
            raise UntrustedModelError(
                f"Refusing to unpack path={os.fspath(path)!r}: zip member "
                f"{info.filename!r}: unsafe path (absolute, '..' or '\\').")
        if not info.is_dir() and parts in files:
            raise not_a_model(path, f"zip member {info.filename!r} appears twice.")
        (folders if info.is_dir() else files).add(parts)
        folders.update(parts[:i] for i in range(1, len(parts)))
    clash = files & folders
    if clash:
        raise not_a_model(path, f"zip member {'/'.join(min(clash))!r} is both a file and a "
                                "folder.")


def _extract(zf: zipfile.ZipFile, dest: Path, path, max_size: int | None,
             max_members: int) -> None:
    """Unpack ``zf`` into ``dest``, refusing unsafe names, more than ``max_members`` members and
    more than ``max_size`` bytes.

    The members' declared sizes are checked before anything is written; the bytes actually
    written are counted too (headers can lie), and so are the declared contents of archives
    inside the archive (a ``.skops`` or ``.keras`` part is itself a zip, read by skops/Keras).
    """
    infos = zf.infolist()
    if len(infos) > max_members:
        raise _too_many(path, len(infos), "it holds", max_members)
    _check_names(infos, path)
    declared = sum(info.file_size for info in infos)
    if max_size is not None and declared > max_size:
        raise _too_big(path, f"its members declare {declared:,} bytes in all", max_size)
    total = 0
    for info in infos:
        target = dest.joinpath(*_member_parts(info.filename))
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            dst = open(target, "wb")
        except OSError as exc:  # disk full, name too long for this file system, ...
            raise not_a_model(path, f"zip member {info.filename!r} cannot be unpacked "
                                    f"({exc.strerror or exc}).") from None
        budget = None if max_size is None else max_size - total
        with dst:
            try:
                with zf.open(info) as src:
                    written = copy_bounded(src, dst, budget)
            except OverflowError:
                raise _too_big(
                    path, f"member {info.filename!r} declares {info.file_size:,} bytes but "
                    f"unpacks to more than the {budget:,} bytes left (its header lies)",
                    max_size) from None
            except (EOFError, zlib.error, NotImplementedError, RuntimeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno != errno.EINVAL:  # disk full, ...
                    raise not_a_model(path, f"zip member {info.filename!r} cannot be unpacked "
                                            f"({exc.strerror or exc}).") from None
                # truncated or corrupt data (EINVAL: a seek to a negative offset), an
                # unsupported compression or version, an encrypted member
                raise not_a_zip(path, f"{type(exc).__name__} in member {info.filename!r}: "
                                      f"{exc}") from None
        inner = _unpacked_size(target)
        total += max(written, inner)
        if max_size is not None and total > max_size:
            raise _too_big(
                path, f"member {info.filename!r} is an archive that unpacks to {inner:,} "
                f"bytes, {total:,} bytes in all so far", max_size)
