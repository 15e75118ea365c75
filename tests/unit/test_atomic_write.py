"""Outputs are written whole or not at all, with the mode any file written here would get."""

from __future__ import annotations

import os
import stat

import pytest

from selectit.core.io import atomic_write, write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_output_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    out = tmp_path / "out.txt"
    write_text(out, "kept\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives under this process's umask
    assert _mode(out) == _mode(plain)
    assert out.read_text() == "kept\n"


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    out = tmp_path / "out.txt"

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(out, fail)
    assert list(tmp_path.iterdir()) == []
