"""The owned-output writer: every file (or folder) featx writes outside its cache goes through it.

The rule: a path that holds something featx did not write (a user's file or folder, a link, a
file featx wrote that was edited since) is refused with :class:`~featx.errors.OutputExistsError`
naming it, and is left exactly as it is; featx's own earlier output is replaced atomically (written
to a temporary name in the same folder, flushed to disk, then ``os.replace``); nothing is ever
removed recursively but featx's own staging folder.

How featx knows a file is its own: each folder it writes outputs into holds a small ledger,
:data:`LEDGER`, recording ``name -> digest`` of what featx wrote there. A path is featx's when
the ledger names it *and* its bytes still have that digest.

Why a ledger (and not a marker inside each file, as ONNX metadata could hold): featx writes CSV,
Markdown, JSON, PNG, ``.featx``, ``.tflite``, ``.keras`` and SavedModel folders, and most of those
have no place for a marker; a marker also survives a user's edit or a copy made by hand, so it
cannot tell "featx wrote this" from "this was featx's once". A digest can: a file the user
edited, or replaced by another with the same name, is not featx's any more and is refused.
The ledger lives beside the outputs, so a report folder copied or moved keeps knowing its files.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from featx.trust.outputs import owned, write_output
>>> with tempfile.TemporaryDirectory() as folder:
...     path = write_output(Path(folder) / "table.md", "| a |\\n")
...     ours = owned(path)  # featx wrote it, nobody changed it: re-running replaces it
...     _ = path.write_text("| mine |\\n")  # edited: featx leaves it alone from now on
...     write_output(path, "| a |\\n")
Traceback (most recent call last):
...
featx.errors.OutputExistsError: path=... is a file featx wrote that was changed since; ...
>>> ours
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from featx.errors import OutputExistsError

try:  # POSIX: the ledger's read-modify-write is serialised per folder
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LEDGER", "check_outputs", "owned", "remove_output", "staged", "write_output"]

#: The file, in each folder featx writes outputs into, that records what featx wrote there.
LEDGER = ".featx-outputs.json"
_FORMAT = "featx.outputs/1"
_STAGING = ".featx-staging-"
_CHUNK = 1 << 20
# a link is never followed, and a FIFO opened to be digested never blocks (it is no output)
_NO_FOLLOW, _NON_BLOCKING = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_NONBLOCK", 0)


# --------------------------------------------------------------------------- digests
def _file_digest(path: Path) -> str | None:
    """sha256 of a regular file's bytes (``None`` for anything else: a FIFO is never opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW | _NON_BLOCKING)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        h = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _digest(path: Path) -> str | None:
    """``file:<sha256>`` or ``folder:<sha256 of its sorted listing and file digests>``; ``None``
    when ``path`` is missing, a link, or holds anything but plain files and folders."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        digest = _file_digest(path)
        return None if digest is None else f"file:{digest}"
    if not stat.S_ISDIR(mode):
        return None
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):  # links are not followed: they end the digest
        if any(os.path.islink(Path(root) / d) for d in dirs):
            return None
        dirs.sort()
        rel = Path(root).relative_to(path).as_posix()
        h.update(f"d {rel}\n".encode("utf-8", "surrogateescape"))
        for name in sorted(files):
            digest = _file_digest(Path(root) / name)  # None for a link or a special file
            if digest is None:
                return None
            h.update(f"f {rel}/{name} {digest}\n".encode("utf-8", "surrogateescape"))
    return f"folder:{h.hexdigest()}"


# --------------------------------------------------------------------------- the ledger
def _read_ledger(folder: Path) -> dict[str, str] | None:
    """The ledger's ``name -> digest`` (``{}`` when there is none); ``None`` when a file of
    that name exists but is not a featx ledger (then it is not featx's to rewrite either)."""
    path = folder / LEDGER
    if not os.path.lexists(path):
        return {}
    digest = _file_digest(path)  # regular files only
    if digest is None:
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("format") == _FORMAT \
        else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    return files


def _write_ledger(folder: Path, files: dict[str, str]) -> None:
    text = json.dumps({"format": _FORMAT, "files": dict(sorted(files.items()))}, indent=1)
    fd, tmp = tempfile.mkstemp(prefix=_STAGING, dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / LEDGER)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock (``flock`` on the folder itself: no lock file) while its ledger
    is read, outputs are moved in and the ledger is rewritten."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder and everything in it) to disk."""
    for root, _dirs, files in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if path.is_dir():
            _fsync_folder(Path(root))


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- public
def owned(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file or folder featx wrote and nobody has changed since.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     mine = Path(folder) / "notes.txt"
    ...     _ = mine.write_text("a user's file")
    ...     print(owned(mine), owned(Path(folder) / "absent.txt"))
    False False
    """
    path = Path(path)
    ledger = _read_ledger(path.parent) or {}
    recorded = ledger.get(path.name)
    return recorded is not None and recorded == _digest(path)


def _why_not_ours(path: Path) -> str | None:
    """``None`` when featx may write ``path`` (absent, or its own); else what it is."""
    if not os.path.lexists(path):
        return None
    if owned(path):
        return None
    if path.is_symlink():
        return "a symbolic link"
    if path.is_dir():
        recorded = (_read_ledger(path.parent) or {}).get(path.name)
        return ("a folder featx wrote that was changed since" if recorded
                else "a folder featx did not write")
    if not path.is_file():
        return "not a regular file"
    recorded = (_read_ledger(path.parent) or {}).get(path.name)
    return "a file featx wrote that was changed since" if recorded else \
        "a file featx did not write"


def _free_name(path: Path) -> Path:
    """A name beside ``path`` that nothing holds: ``<stem>-1<suffix>``, ``-2`` ..."""
    for i in range(1, 1000):
        other = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not os.path.lexists(other):
            return other
    return path.with_name(f"{path.stem}-new{path.suffix}")  # pragma: no cover


def check_outputs(paths: Iterable[str | os.PathLike], *, param: str = "path",
                  hint: str | None = None) -> None:
    """Raise :class:`~featx.errors.OutputExistsError` naming every path of ``paths`` that holds
    something featx did not write (or that was changed since); nothing is touched.

    Call it before the work whose result goes there, so a refusal costs nothing.

    Parameters
    ----------
    paths : iterable of path-like
        Where outputs are about to be written.
    param : str
        The parameter (or option) the paths came from, named in the message.
    hint : str, optional
        What to do instead; by default, a free name beside the first refused path.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = (Path(folder) / "predictions.csv").write_text("a user's file")
    ...     check_outputs([Path(folder) / "predictions.csv"], param="--out")
    Traceback (most recent call last):
    ...
    featx.errors.OutputExistsError: --out=... is a file featx did not write; featx leaves it as ...
    """
    refused = [(Path(p), why) for p in paths if (why := _why_not_ours(Path(p))) is not None]
    if not refused:
        return
    lines = [f"{param}={os.fspath(p)!r} is {why}" for p, why in refused]
    hint = hint or (f"choose another {param} (e.g. {os.fspath(_free_name(refused[0][0]))!r}) "
                    "or move it away yourself")
    raise OutputExistsError(f"{'; '.join(lines)}; featx leaves "
                            f"{'it' if len(lines) == 1 else 'them'} as "
                            f"{'it is' if len(lines) == 1 else 'they are'}: {hint}")


@contextlib.contextmanager
def staged(path: str | os.PathLike, *, param: str = "path") -> Iterator[Path]:
    """Write an output through a temporary path, then move it to ``path`` atomically.

    ``path`` is checked first (:func:`check_outputs`): something featx did not write there is
    refused before the block runs. The block writes a file (or a folder) at the path it is
    given, in a private staging folder beside ``path``; on success it is flushed to disk, moved
    to ``path`` with ``os.replace`` (featx's own earlier output there is swapped out, never a
    user's: ``path`` is checked again under the folder's lock) and recorded in the folder's
    :data:`LEDGER`. On failure nothing at ``path`` changes. The staging folder is removed in
    every case: featx made it and nothing but the block wrote into it.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = Path(folder) / "scores.txt"
    ...     with staged(out) as tmp:  # tmp: a path in a staging folder beside out
    ...         _ = tmp.write_text("0.91\\n")
    ...     print(out.read_text().strip(), owned(out))
    0.91 True
    """
    path = Path(path)
    check_outputs([path], param=param)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=path.parent))
    try:
        target = staging / path.name
        yield target
        if not os.path.lexists(target):
            raise FileNotFoundError(f"the writer of {os.fspath(path)!r} wrote nothing")
        digest = _digest(target)  # first: it never opens a link or a special file
        if digest is None:
            raise OSError(f"the writer of {os.fspath(path)!r} left a link or a special file")
        _fsync(target)
        folder = path.parent
        with _locked(folder):
            check_outputs([path], param=param)  # nobody put anything there meanwhile
            ledger = _read_ledger(folder)
            if ledger is None:
                raise OutputExistsError(
                    f"{os.fspath(folder / LEDGER)!r} is not featx's record of its outputs (a "
                    f"file of that name that featx did not write); featx leaves it as it is: "
                    f"choose another folder for {param} or move it away yourself")
            if os.path.lexists(path) and (path.is_dir() or target.is_dir()):
                # featx's own (checked) folder, or a file where a folder goes: os.replace swaps
                # only file for file, so the old one goes aside into the staging folder first
                os.replace(path, staging / ".replaced")
            os.replace(target, path)
            _fsync_folder(folder)
            ledger = {k: v for k, v in ledger.items() if os.path.lexists(folder / k)}
            _write_ledger(folder, {**ledger, path.name: digest})
    finally:
        # featx's own staging folder: created empty above, holding only what the block wrote
        # (and featx's replaced output): the one folder removed recursively
        shutil.rmtree(staging, ignore_errors=True)


def write_output(path: str | os.PathLike, data: str | bytes, *, param: str = "path",
                 encoding: str = "utf-8") -> Path:
    """Write ``data`` (text as ``encoding``, or bytes) to ``path`` through :func:`staged`.

    Returns ``path``; raises :class:`~featx.errors.OutputExistsError` when ``path`` holds
    something featx did not write (left as it is).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = Path(folder) / "p.csv"
    ...     for run in range(2):  # re-running replaces featx's own file
    ...         _ = write_output(out, f"path,label\\nx.jpg,{run}\\n", param="--out")
    ...     print(out.read_text().splitlines()[-1])
    x.jpg,1
    """
    with staged(path, param=param) as tmp:
        if isinstance(data, str):
            tmp.write_bytes(data.encode(encoding))
        else:
            tmp.write_bytes(data)
    return Path(path)


def remove_output(path: str | os.PathLike) -> bool:
    """Remove ``path`` if it is a file featx wrote and nobody changed; leave anything else.

    Returns whether it was removed (a folder is never removed).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = write_output(Path(folder) / "old.png", b"featx's plot")
    ...     print(remove_output(out), out.exists())
    True False
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        return False
    with _locked(folder):
        if not (owned(path) and path.is_file() and not path.is_symlink()):
            return False
        path.unlink()
        ledger = _read_ledger(folder) or {}
        ledger.pop(path.name, None)
        _write_ledger(folder, ledger)
    return True
