"""Every conda-lock file dlsetup writes during the tests is read by both parsers its users have
(issue 21, item 7): conda-lock's own (``conda_lock.lockfile.parse_conda_lock_file``, what
``conda-lock install`` and ``render`` use) and rattler's (``rattler.LockFile.from_path``, what
pixi uses).

The check sits where locks are written: ``dlsetup lock`` writes its models with conda-lock's
``write_conda_lock_file``, which :func:`checking_writer` wraps (the real writer runs; then the
file it wrote is read back with both parsers). Only locks carrying dlsetup's ``dlsetup_*``
metadata are judged: locks a test writes by hand (deliberately odd, or conda-lock's own shape)
are the test's business. The autouse fixture of ``tests/envs/conftest.py`` installs it for every
environment test that locks in-process (``CliRunner``, the library) and fails the test at teardown
naming the lock and the parser that refused it: the 106-package ``pip:`` lock rattler refused
(``ParseCondaLockError ... MapOrVec``, the ``'*'`` PyPI dependency specs) is the bug it guards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any


def unreadable(path: Path) -> list[str]:
    """One line per parser that refuses the lock at ``path`` (empty: both read it)."""
    import rattler
    from conda_lock.lockfile import parse_conda_lock_file

    out: list[str] = []
    readers: tuple[tuple[str, Callable[[Path], object]], ...] = (
        ("conda-lock", parse_conda_lock_file),
        ("rattler", rattler.LockFile.from_path),
    )
    for who, read in readers:
        try:
            read(path)
        except Exception as exc:  # pydantic, YAML, rattler's ParseCondaLockError alike
            out.append(
                f"{path}: {who} cannot read the lock dlsetup wrote: {type(exc).__name__}: {exc}"
            )
    return out


def _made_by_dlsetup(lockfile: Any) -> bool:
    custom = getattr(getattr(lockfile, "metadata", None), "custom_metadata", None) or {}
    return any(str(key).startswith("dlsetup_") for key in custom)


def checking_writer(write: Callable[..., Any], problems: list[str]) -> Callable[..., Any]:
    """``write`` (conda-lock's ``write_conda_lock_file``), then the lock it wrote read back with
    both parsers when dlsetup made it; every refusal is appended to ``problems``."""

    @functools.wraps(write)  # __wrapped__: the real writer, for a test of this check itself
    def write_and_read_back(lockfile: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        result = write(lockfile, path, *args, **kwargs)
        if _made_by_dlsetup(lockfile):
            problems.extend(unreadable(Path(path)))
        return result

    return write_and_read_back
