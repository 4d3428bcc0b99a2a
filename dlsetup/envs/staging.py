"""Staging and the atomic swap: the stage every backend builds through.

An environment is built in a sibling directory (``.dlsetup-partial-NAME-PID``) and renamed into
place in one step, the old one moved aside first and removed after, so the target is always
either the old environment or the new one. Leftovers of a killed run are recognised by their
process id and cleaned up (or, for an old environment orphaned mid-swap, put back) by the next
run. Backends differ in how they fill the staged directory, never in how it reaches its target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the name marks of a build in progress, of an environment being replaced and of a removal in
#: progress, each followed by the target's name and the owning process id
PARTIAL_MARK = ".dlsetup-partial-"
OLD_MARK = ".dlsetup-old-"
TRASH_MARK = ".dlsetup-trash-"


@dataclass(frozen=True)
class LockWarning:
    """A warning the lock records of what it holds, repeated by ``create`` (stderr, ``--json``).

    Attributes:
        message: what was found, in the words the lock was made with.
        fix: how to get rid of it.
        data: the ``--json`` entry (message and fix among its keys).
    """

    message: str
    fix: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstallResult:
    """What ``create`` built.

    Attributes:
        prefix: the environment's directory.
        platform: the lock platform installed.
        packages: number of packages installed.
        python: the environment's Python executable, or ``None`` when it has none.
        replaced: an existing environment was replaced (``--force``).
        seconds: wall time of verification and installation, in seconds.
        skipped_scripts: the link scripts conda would have run and dlsetup did not (it runs
            none), as ``"package: bin/.package-post-link.sh"``.
        pypi_packages: number of PyPI packages installed (with uv, after the conda ones).
        lock_format: the lock's format (:data:`dlsetup.envs.lockfiles.formats.FORMAT_NAMES`).
        environment: the lock environment installed (pixi.lock), else ``default``.
        categories: the conda-lock categories installed (empty for other formats).
        cuda_warnings: what the lock records of a CUDA build that loads but is not the pair
            PyTorch ships, on the platform installed (a venv lock's companion check).
    """

    prefix: Path
    platform: str
    packages: int
    python: Path | None
    replaced: bool
    seconds: float
    skipped_scripts: tuple[str, ...] = ()
    pypi_packages: int = 0
    lock_format: str = "conda-lock-v1"
    environment: str = "default"
    categories: tuple[str, ...] = ()
    cuda_warnings: tuple[LockWarning, ...] = ()


def _alive(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid)) and pid != 0


def _leftovers(target: Path, mark: str) -> list[tuple[Path, int]]:
    found: list[tuple[Path, int]] = []
    parent = target.parent
    if not parent.is_dir():
        return found
    prefix = f"{mark}{target.name}-"
    for entry in parent.iterdir():
        if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit():
            found.append((entry, int(entry.name[len(prefix) :])))
    return found


def clean_leftovers(target: Path) -> list[Path]:
    """Remove partial builds of ``target`` left by dead processes; restore an orphaned old env.

    Returns:
        the directories removed or restored.
    """
    touched = []
    for mark in (PARTIAL_MARK, TRASH_MARK):
        for path, pid in _leftovers(target, mark):
            if pid == os.getpid() or not _alive(pid):
                _remove_path(path)
                touched.append(path)
    for path, pid in _leftovers(target, OLD_MARK):
        if pid == os.getpid() or not _alive(pid):
            if not target.exists():
                os.replace(path, target)
            else:
                shutil.rmtree(path, ignore_errors=True)
            touched.append(path)
    return touched


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_BLOCKERS: set[Path] = set()


def trash_of(work: Path) -> Path:
    return work.with_name(work.name.replace(PARTIAL_MARK, TRASH_MARK, 1))


#: how long the blockers stay at exit, for rattler work still in flight in its own threads (a
#: package-cache lock taken after the install itself failed recreated a build without it)
BLOCKER_GRACE_SECONDS = 0.25


def _remove_blockers() -> None:
    if _BLOCKERS:
        time.sleep(BLOCKER_GRACE_SECONDS)
    for blocker in list(_BLOCKERS):
        with contextlib.suppress(OSError):
            _remove_path(blocker)  # a directory when rattler got past it: removed all the same
        shutil.rmtree(trash_of(blocker), ignore_errors=True)
        _BLOCKERS.discard(blocker)


def remove_partial(work: Path) -> None:
    """Remove a partial build for good, even while rattler's worker threads still write into it.

    py-rattler 0.28 cannot stop the package it is unpacking or linking: a cancelled install
    (Ctrl-C cancels the asyncio task) starts no new package, but the current one goes on in
    rattler's threads, creating directories and files by path under ``work`` (a plain
    ``rmtree`` raced them and left a half-removed build behind). So ``work`` is first renamed
    into a trash directory and an empty file is put at its path: every later path under ``work``
    fails (not a directory), which ends the in-flight unpack or link at its next file. Then the
    trash is removed. The blocker file stays until this process exits (a thread still writing
    one large file must not recreate the tree), and the next ``create`` of the same target
    removes it if the process was killed first.
    """
    if not os.path.lexists(work):
        return
    if work.is_file():
        work.unlink()
        return
    trash = trash_of(work)
    try:
        trash.mkdir(exist_ok=True)
        for attempt in range(5):
            with contextlib.suppress(FileNotFoundError):
                os.replace(work, trash / str(attempt))
            try:
                os.close(os.open(work, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue  # recreated in between by a worker thread: move that away too
            if not _BLOCKERS:
                import atexit

                atexit.register(_remove_blockers)
            _BLOCKERS.add(work)
            break
    except OSError:
        pass  # cannot rename (Windows with files in use): remove in place, as well as we can
    if work.is_dir():  # could not be moved away
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(trash, ignore_errors=True)


def _settle_swap(prefix: Path, old: Path, was_empty_dir: bool) -> None:
    """After the swap, or after it was interrupted: the target is the old or the new environment.

    Judged by what is on disk, not by flags (a signal can arrive between a rename and the line
    after it): the old one is put back when the target is missing, removed when the new one is
    in place; an empty directory that was removed to make way is recreated.
    """
    if os.path.lexists(old):
        if os.path.lexists(prefix):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, prefix)
    if was_empty_dir and not os.path.lexists(prefix):
        prefix.mkdir()


def swap_into_place(staged: Path, prefix: Path) -> None:
    """Rename ``staged`` to ``prefix``, the old environment first out of the way (then removed).

    Run under :func:`deferred_signals`: a Ctrl-C or SIGTERM takes effect after it, so the
    target is always either the old environment or the new one.
    """
    old = prefix.parent / f"{OLD_MARK}{prefix.name}-{os.getpid()}"
    was_empty_dir = prefix.is_dir() and not any(prefix.iterdir())
    try:
        if was_empty_dir:
            prefix.rmdir()
        elif os.path.lexists(prefix):
            os.replace(prefix, old)
        os.replace(staged, prefix)
    finally:
        _settle_swap(prefix, old, was_empty_dir)


def fresh_work_dir(prefix: Path) -> Path:
    """The staging directory of this process for ``prefix`` (``.dlsetup-partial-NAME-PID``
    beside it), emptied of what an earlier attempt of this process left there."""
    work = prefix.parent / f"{PARTIAL_MARK}{prefix.name}-{os.getpid()}"
    _remove_path(work)
    _BLOCKERS.discard(work)
    return work
