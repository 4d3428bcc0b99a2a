"""The shared all-or-nothing file writer."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dlsetup.atomic_write import write_text_atomically


def test_new_file_gets_umask_permissions_not_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "x.conda-lock.yml", "version: 1\n")
    finally:
        os.umask(old)
    path = tmp_path / "x.conda-lock.yml"
    assert path.read_text(encoding="utf-8") == "version: 1\n"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text("old\n", encoding="utf-8")
    write_text_atomically(path, "new ü\n")
    assert path.read_text(encoding="utf-8") == "new ü\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomically(path, "half \udcff")  # a lone surrogate cannot be UTF-8
    assert path.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]
