"""Issue 20: nothing in a pylock.toml is executed by ``dlsetup create --from-lock``.

* ``[tool.dlsetup] python`` was passed to ``uv venv --python``, which runs whatever file it
  names: the interpreter now comes from a validated ``X.Y`` (and the lock's ``requires-python``),
  never from a path or a name written in a file.
* A package whose wheel fits nowhere but which has an ``sdist`` was built by uv (its
  ``setup.py`` ran): a package without a wheel for this machine is refused before uv runs
  (exit 4, naming it), and uv is told ``--no-build``.

Real uv, real wheels and sdists built at test time, the CLI in a subprocess.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.security.locks import HOST_PYTHON, sdist_package, wheel_package, write_pylock
from tests.support.proc import run_cli


def evil_interpreter(directory: Path, marker: Path) -> Path:
    """A script that writes ``marker`` when run (as uv runs an interpreter to query it)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "evil-python"
    script.write_text(f"#!/bin/sh\necho ran > {marker}\nexit 1\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def create(lock: Path, prefix: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = run_cli("create", "--from-lock", str(lock), "--prefix", str(prefix), "--no-smoke",
                   env=env)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def test_the_hand_written_lock_builds_when_it_names_a_python_version(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """The control for the tests below: the same lock with ``python = "X.Y"`` builds."""
    lock = write_pylock(
        tmp_path / "pylock.toml", [wheel_package(tmp_path / "w")], python=HOST_PYTHON
    )
    code, output = create(lock, tmp_path / "env", isolated_dirs)
    assert code == 0, output
    assert (tmp_path / "env" / "pyvenv.cfg").is_file()


@pytest.mark.parametrize("how", ["path", "name on PATH", "path in a version"])
def test_an_interpreter_named_by_a_lock_is_never_run(
    how: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    marker = tmp_path / "interpreter-ran"
    script = evil_interpreter(tmp_path / "bin", marker)
    env = dict(isolated_dirs)
    python = {
        "path": str(script),
        "name on PATH": script.name,
        "path in a version": f"{HOST_PYTHON}/../../{script}",
    }[how]
    if how == "name on PATH":
        env["PATH"] = f"{script.parent}{os.pathsep}{os.environ['PATH']}"
    lock = write_pylock(tmp_path / "pylock.toml", [wheel_package(tmp_path / "w")], python=python)
    prefix = tmp_path / "env"
    code, output = create(lock, prefix, env)
    assert not marker.exists(), f"the lock's interpreter ran: {output}"
    assert code == 2, output
    assert "python" in output.lower()
    assert not prefix.exists()
    assert "Traceback" not in output


def test_a_python_the_locks_requires_python_excludes_is_refused(
    tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    lock = write_pylock(tmp_path / "pylock.toml", [wheel_package(tmp_path / "w")], python="3.8")
    code, output = create(lock, tmp_path / "env", isolated_dirs)
    assert code == 2, output
    assert "3.8" in output
    assert not (tmp_path / "env").exists()


def test_an_sdist_in_a_lock_is_never_built(tmp_path: Path, isolated_dirs: dict[str, str]) -> None:
    marker = tmp_path / "setup-py-ran"
    packages = [wheel_package(tmp_path / "w"), sdist_package(tmp_path / "w", "evilsdist", marker)]
    lock = write_pylock(tmp_path / "pylock.toml", packages, python=HOST_PYTHON)
    prefix = tmp_path / "env"
    code, output = create(lock, prefix, isolated_dirs)
    assert not marker.exists(), f"the sdist's setup.py ran: {output}"
    assert code == 4, output
    assert "evilsdist" in output
    assert "hashes verified" not in output
    assert not prefix.exists()
