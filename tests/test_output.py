"""Output files of the command line (frontends/output.py): written atomically, nothing
half-written on a full disk or a failing write (issue 18)."""

from __future__ import annotations

import errno
import os
import sys
import tempfile

import pytest

from glmm_binomial.frontends import output


class FullDisk:
    """A temporary file that takes ``budget`` bytes and then fails as a full disk does (the
    bytes before the failure really are written: a half-written temporary file)."""

    def __init__(self, real, budget: int, where: str = "write") -> None:
        self.real, self.budget, self.where = real, budget, where
        self.written = 0

    def write(self, data: bytes) -> int:
        allowed = max(0, self.budget - self.written)
        self.real.write(data[:allowed])
        self.written += min(allowed, len(data))
        if self.where == "write" and allowed < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def flush(self) -> None:
        self.real.flush()
        if self.where == "flush":
            raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.real.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Make every temporary file fail after ``budget`` bytes (at write or at flush)."""
    made: list[FullDisk] = []
    real_factory = tempfile.NamedTemporaryFile

    def install(budget: int = 100, where: str = "write") -> list[FullDisk]:
        def factory(*args, **kwargs):
            handle = FullDisk(real_factory(*args, **kwargs), budget, where)
            made.append(handle)
            return handle

        monkeypatch.setattr(output.tempfile, "NamedTemporaryFile", factory)
        return made

    return install


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("where", ["write", "flush"])
def test_a_failing_write_leaves_the_old_file_and_no_temporary_one(tmp_path, full_disk, where):
    target = tmp_path / "fit.json"
    target.write_text("the previous result\n")
    made = full_disk(budget=10, where=where)
    with pytest.raises(ValueError, match=r"cannot write .*fit.json: No space left on device"):
        output.write_text(str(target), "x" * 10_000)
    assert made and made[0].written == 10  # the failure came after a partial write
    assert target.read_text() == "the previous result\n"
    assert leftovers(tmp_path) == []


def test_a_failing_write_of_a_new_file_leaves_nothing(tmp_path, full_disk):
    full_disk(budget=0)
    with pytest.raises(ValueError, match="No space left"):
        output.write_text(str(tmp_path / "new.csv"), "a,b\n1,2\n")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_rename_leaves_nothing(tmp_path, monkeypatch):
    def refuse(*_):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(output.os, "replace", refuse)
    with pytest.raises(ValueError, match="cross-device"):
        output.write_text(str(tmp_path / "a.txt"), "text")
    assert list(tmp_path.iterdir()) == []


def test_an_error_inside_the_writer_is_raised_and_cleaned_up(tmp_path):
    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError, match="the writer failed"):
        output.atomic_write(str(tmp_path / "b.txt"), broken)
    assert list(tmp_path.iterdir()) == []


def test_xlsx_on_a_full_disk_no_zipfile_traceback(tmp_path, full_disk, monkeypatch):
    pytest.importorskip("openpyxl")
    import gc

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    full_disk(budget=200)
    target = tmp_path / "fit.xlsx"
    with pytest.raises(ValueError, match="No space left"):
        output.write_xlsx(str(target), {"fit": (["a", "b"], [[1, 2.5], [None, "x"]])})
    gc.collect()
    assert unraisable == []  # no "Exception ignored in: <function ZipFile.__del__ ...>"
    assert list(tmp_path.iterdir()) == []


def test_a_written_file_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        output.write_text(str(tmp_path / "c.txt"), "text")
    finally:
        os.umask(umask)
    assert (tmp_path / "c.txt").stat().st_mode & 0o777 == 0o644


def test_check_writable_names_the_problem(tmp_path):
    output.check_writable(str(tmp_path / "fine.json"))
    with pytest.raises(ValueError, match="no folder"):
        output.check_writable(str(tmp_path / "missing" / "fit.json"))
    with pytest.raises(ValueError, match="is a folder"):
        output.check_writable(str(tmp_path))
