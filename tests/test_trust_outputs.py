"""The owned-output writer (featx.trust.outputs): what featx did not write is refused and left
exactly as it is (a user's file or folder, a link, a FIFO, a file featx wrote and the user edited
since); featx's own outputs are replaced atomically; no folder is removed recursively."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from featx.errors import OutputExistsError
from featx.trust.outputs import LEDGER, check_outputs, owned, remove_output, staged, write_output


def tree(folder: Path) -> dict[str, bytes | None]:
    """Everything under ``folder``: relative path -> bytes (``None`` for a folder)."""
    return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


def no_staging_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".featx-staging-")]


# --------------------------------------------------------------------------- refused, untouched
def test_a_users_file_is_refused_and_untouched(tmp_path):
    mine = tmp_path / "predictions.csv"
    mine.write_text("my own notes\n")
    before = mine.stat()
    with pytest.raises(OutputExistsError, match=(
            r"--out='.*predictions\.csv' is a file featx did not write; featx leaves it as it "
            r"is: choose another --out \(e\.g\. '.*predictions-1\.csv'\) or move it away")):
        write_output(mine, "path,label\n", param="--out")
    assert mine.read_text() == "my own notes\n" and mine.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]  # no ledger either


def test_a_users_folder_is_refused_and_untouched_with_its_contents(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "photo.jpg").write_bytes(b"\xff\xd8mine")
    (folder / "notes.txt").write_text("mine")
    before = tree(folder)
    for write in (lambda: write_output(folder, b"x"),
                  lambda: staged(folder).__enter__()):
        with pytest.raises(OutputExistsError, match=r"path='.*model' is a folder featx did not "
                                                    r"write; featx leaves it as it is"):
            write()
    assert tree(folder) == before and no_staging_left(tmp_path)


def test_featx_own_file_is_replaced_atomically(tmp_path):
    """Re-running replaces featx's file: a new inode moved in whole (a reader of the old one
    keeps reading it to the end), no staging left; a writer that fails leaves the old file."""
    out = tmp_path / "report.md"
    write_output(out, "first\n" * 1000)
    first = out.stat().st_ino
    with open(out, "rb") as reader:  # opened before the replacement
        write_output(out, "second\n")
        assert reader.read() == b"first\n" * 1000
    assert out.read_text() == "second\n" and out.stat().st_ino != first and owned(out)
    with pytest.raises(RuntimeError, match="the writer broke"), staged(out) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("the writer broke")
    assert out.read_text() == "second\n" and owned(out) and no_staging_left(tmp_path)
    ledger = json.loads((tmp_path / LEDGER).read_text())
    assert list(ledger["files"]) == ["report.md"]
    assert ledger["files"]["report.md"].startswith("file:")


def test_an_edited_own_file_is_refused(tmp_path):
    out = write_output(tmp_path / "table.json", "{}\n")
    out.write_text('{"my": "edit"}\n')
    assert not owned(out)
    with pytest.raises(OutputExistsError, match="is a file featx wrote that was changed since"):
        write_output(out, "{}\n")
    assert out.read_text() == '{"my": "edit"}\n'
    assert not remove_output(out) and out.exists()


@pytest.mark.parametrize("target", ["a user's file", "nowhere"])
def test_a_link_at_the_path_is_refused(tmp_path, target):
    """Never written through, whether it points at a user's file or nowhere (where writing
    through it would create a file); a link to featx's own file is not featx's either."""
    victim = tmp_path / "victim.txt"
    if target == "a user's file":
        victim.write_text("mine")
    link = tmp_path / "out.csv"
    link.symlink_to(victim)
    with pytest.raises(OutputExistsError, match="is a symbolic link"):
        write_output(link, "path,label\n")
    assert link.is_symlink()
    assert (victim.read_text() == "mine") if target == "a user's file" else not victim.exists()
    ours = write_output(tmp_path / "ours.csv", "x\n")
    (tmp_path / "to-ours.csv").symlink_to(ours)
    assert owned(ours) and not owned(tmp_path / "to-ours.csv")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    done = []
    worker = threading.Thread(target=lambda: done.append(
        pytest.raises(OutputExistsError, write_output, fifo, "{}")), daemon=True)
    worker.start()
    worker.join(timeout=30)  # generous: refused at once, never opened for writing
    assert done and "is not a regular file" in str(done[0].value)


def test_no_folder_is_removed_recursively_but_featx_own_staging(tmp_path, monkeypatch):
    """``shutil.rmtree`` only ever sees featx's staging folders: never a user's folder, never
    an output folder (featx's own earlier folder is moved aside into the staging folder)."""
    removed = []
    real = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", lambda p, *a, **k: (removed.append(Path(p)),
                                                               real(p, *a, **k)))
    user = tmp_path / "photos"
    user.mkdir()
    (user / "a.jpg").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        with staged(user) as tmp:
            tmp.mkdir()
    for content in (b"one", b"two"):  # featx's own folder, written then replaced
        with staged(tmp_path / "saved_model") as tmp:
            tmp.mkdir()
            (tmp / "saved_model.pb").write_bytes(content)
    assert (tmp_path / "saved_model" / "saved_model.pb").read_bytes() == b"two"
    assert (user / "a.jpg").read_bytes() == b"mine"
    assert removed and all(p.name.startswith(".featx-staging-") for p in removed), removed


def test_an_own_folder_changed_since_is_refused(tmp_path):
    with staged(tmp_path / "export") as tmp:
        tmp.mkdir()
        (tmp / "labels.txt").write_text("a\nb\n")
    assert owned(tmp_path / "export")
    (tmp_path / "export" / "mine.txt").write_text("added by the user")
    with pytest.raises(OutputExistsError, match="is a folder featx wrote that was changed since"):
        with staged(tmp_path / "export") as tmp:
            tmp.mkdir()
    assert (tmp_path / "export" / "mine.txt").read_text() == "added by the user"


# --------------------------------------------------------------------------- the ledger
def test_a_users_file_named_like_the_ledger_is_never_rewritten(tmp_path):
    (tmp_path / LEDGER).write_text("my notes, not featx's\n")
    with pytest.raises(OutputExistsError, match=r"is not featx's record of its outputs"):
        write_output(tmp_path / "p.csv", "x\n")
    assert (tmp_path / LEDGER).read_text() == "my notes, not featx's\n"
    assert not (tmp_path / "p.csv").exists() and no_staging_left(tmp_path)


def test_a_copied_folder_keeps_knowing_its_files(tmp_path):
    """The ledger travels with the folder: a report copied elsewhere is re-run in place."""
    write_output(tmp_path / "run" / "report.md", "# one\n")
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    assert owned(tmp_path / "copy" / "report.md")
    write_output(tmp_path / "copy" / "report.md", "# two\n")
    assert (tmp_path / "run" / "report.md").read_text() == "# one\n"


def test_check_outputs_names_every_refused_path_and_touches_nothing(tmp_path):
    (tmp_path / "report.md").write_text("mine")
    (tmp_path / "comparison.png").write_bytes(b"mine")
    write_output(tmp_path / "report.json", "{}")
    with pytest.raises(OutputExistsError) as info:
        check_outputs([tmp_path / n for n in ("report.md", "report.json", "comparison.png",
                                               "absent.png")], param="out_dir", hint="elsewhere")
    message = str(info.value)
    assert "report.md' is a file" in message and "comparison.png' is a file" in message
    assert "report.json" not in message and message.endswith("featx leaves them as they are: "
                                                             "elsewhere")


def test_remove_output_removes_only_featx_own_files(tmp_path):
    ours = write_output(tmp_path / "few_shot.png", b"featx")
    (tmp_path / "confusion.png").write_bytes(b"mine")
    assert remove_output(ours) and not ours.exists()
    assert not remove_output(tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes() == b"mine"
    assert json.loads((tmp_path / LEDGER).read_text())["files"] == {}
    assert not remove_output(tmp_path / "absent" / "x.png")
