"""Atomic writes: all or nothing, and the permissions a user expects."""

from __future__ import annotations

import os

import pytest

from iwae_cli.core.atomic import atomic_write, atomic_write_text, update_json
from iwae_cli.errors import IwaeError


def test_new_files_get_the_umask_permissions_not_mkstemps_private_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(umask)
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == 0o644


def test_replacing_keeps_the_files_permissions(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o640


def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def explode(f):
        f.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(IwaeError, match="cannot write to"):
        atomic_write_text(blocker / "out" / "a.txt", "x")


def test_update_json_keeps_other_fields(tmp_path):
    path = tmp_path / "m.json"
    update_json(path, {"a": 1, "b": 2})
    assert update_json(path, {"b": 3}) == {"a": 1, "b": 3}
