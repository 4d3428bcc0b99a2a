"""Build an expensive fixture once per test run, however many pytest-xdist workers ask for it.

pytest-xdist runs a session fixture once per *worker*. :func:`built_once` makes it once per
*run*: the first worker builds under a file lock in the directory all workers of this run share
(``getbasetemp().parent``, pytest-xdist's own recipe), writes the result down, and the others
read it. Without xdist it is a plain ``mktemp`` build.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from filelock import FileLock

T = TypeVar("T")


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]
) -> tuple[Path, T]:
    """``build(directory)`` once for the whole run; returns ``(directory, its result)``.

    The result must survive JSON (a str, a dict of str...): the other workers read it back.
    A build that raised is tried again by the next worker that asks (and fails the same way).
    """
    root = _run_dir(tmp_path_factory)
    if root is None:
        directory = tmp_path_factory.mktemp(name)
        return directory, build(directory)
    root.mkdir(exist_ok=True)
    directory = root / name
    done = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if done.is_file():
            return directory, json.loads(done.read_text(encoding="utf-8"))
        if directory.exists():  # a worker's build that failed half-way
            shutil.rmtree(directory)
        directory.mkdir()
        result = build(directory)
        done.write_text(json.dumps(result), encoding="utf-8")
        return directory, result


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory every worker of this run sees (a ``mktemp`` one without xdist), for builders
    that are already safe to run at once into one directory (atomic renames, content names)."""
    root = _run_dir(tmp_path_factory)
    if root is None:
        return tmp_path_factory.mktemp(name)
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """``BASETEMP/built-once`` of this xdist run, or None outside xdist (a pytest started by a
    test inherits ``PYTEST_XDIST_WORKER`` but has a base directory of its own)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    basetemp = tmp_path_factory.getbasetemp()
    if not worker or basetemp.name != f"popen-{worker}":
        return None
    return basetemp.parent / "built-once"
