"""Atomic writes leave either the old or the new file, never a partial one."""

from __future__ import annotations

import pytest

from mri_harmonic.errors import UserInputError
from mri_harmonic.utils.io import atomic_dir, atomic_path, atomic_write_text, ensure_writable_dir


def test_failed_write_keeps_old_content(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "store"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError
    assert (target / "a").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_unwritable_dir_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserInputError, match=r"cannot write to output folder .*file/x"):
        ensure_writable_dir(blocker / "x")
