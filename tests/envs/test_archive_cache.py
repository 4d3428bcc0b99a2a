"""The archive cache of ``dlsetup create`` is content-addressed and never trusted by name.

``install._fetch_one`` keeps verified archives as ``<sha256>-<file name>``. A cache entry whose
name is right but whose bytes are not (a disk error, a tampered cache, a half-written copy from an
older dlsetup) must be re-hashed and replaced, never handed to rattler because of its name.
These tests fail when the re-hash is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from dlsetup.envs.conda import install
from dlsetup.errors import IntegrityError

GOOD = b"the real package archive\n" * 64
FILE_NAME = "numpy-2.1.0-py311_0.conda"


def _record(source: Path, data: bytes, *, md5: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        sha256=hashlib.sha256(data).digest(),
        md5=hashlib.md5(data, usedforsecurity=False).digest() if md5 else None,
        file_name=FILE_NAME,
        url=source.as_uri(),
    )


def _contents(tmp_path: Path) -> install.LockContents:
    return install.LockContents(tmp_path / "env.conda-lock.yml", "linux-64", (), [])


def _fetch(rec: SimpleNamespace, tmp_path: Path, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    return asyncio.run(install._fetch_one(rec, _contents(tmp_path), cache))


def _cached_name(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()}-{FILE_NAME}"


@pytest.mark.parametrize("md5", [False, True], ids=["sha256_only", "sha256_and_md5"])
def test_a_cache_entry_with_the_right_name_and_wrong_bytes_is_rehashed_and_replaced(
    tmp_path: Path, md5: bool
) -> None:
    source = tmp_path / "channel" / FILE_NAME
    source.parent.mkdir()
    source.write_bytes(GOOD)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / _cached_name(GOOD)).write_bytes(b"corrupted bytes under the right name")
    local = _fetch(_record(source, GOOD, md5=md5), tmp_path, cache)
    assert local == cache / _cached_name(GOOD)
    assert local.read_bytes() == GOOD  # fetched again, not trusted because of its name


def test_a_bad_cache_entry_and_a_bad_source_are_refused_not_installed(tmp_path: Path) -> None:
    source = tmp_path / "channel" / FILE_NAME
    source.parent.mkdir()
    source.write_bytes(b"tampered at the source too")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / _cached_name(GOOD)).write_bytes(b"tampered in the cache")
    with pytest.raises(IntegrityError, match=f"sha256 mismatch for {FILE_NAME}"):
        _fetch(_record(source, GOOD), tmp_path, cache)


def test_a_good_cache_entry_is_reused_without_fetching(tmp_path: Path) -> None:
    gone = tmp_path / "channel" / FILE_NAME  # the source no longer exists: a fetch would fail
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / _cached_name(GOOD)).write_bytes(GOOD)
    local = _fetch(_record(gone, GOOD), tmp_path, cache)
    assert local.read_bytes() == GOOD
