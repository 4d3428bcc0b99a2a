"""Issue 20: ``--force`` never replaces the environment dlsetup runs from (``sys.prefix``,
``sys.base_prefix``, the one holding the interpreter that builds the venv) nor a directory that
holds it, for both backends, as conda refuses to remove the active environment.

The running environment is a real venv made with ``python -m venv`` whose ``site-packages`` finds
dlsetup and its dependencies through a ``.pth`` file (nothing installed into it), and dlsetup is
run with that venv's ``python -m dlsetup``: its ``sys.prefix`` is the venv.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from dlsetup.envs.safety import check_prefix
from dlsetup.errors import InputError
from tests.envs.lock_builders import build_fixture, write_conda_lock
from tests.security.locks import HOST_PYTHON, wheel_package, write_pylock
from tests.support.proc import REPO


def running_venv(path: Path) -> Path:
    """A venv whose ``python -m dlsetup`` runs this checkout, with this venv's dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = path / "lib" / f"python{HOST_PYTHON}" / "site-packages"
    (site / "dlsetup-checkout.pth").write_text(f"{REPO}\n{sysconfig.get_paths()['purelib']}\n")
    return path


def listing(root: Path) -> list[tuple[str, int]]:
    """Every path under ``root`` with its size (symbolic links as such)."""
    return sorted((str(p.relative_to(root)), p.lstat().st_size) for p in [root, *root.rglob("*")])


def create_with(python: Path, lock: Path, prefix: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        [str(python), "-m", "dlsetup", "create", "--from-lock", str(lock), "--prefix",
         str(prefix), "--force", "--no-smoke"],
        env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, cwd=REPO,
        timeout=300, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def pylock(tmp_path: Path) -> Path:
    return write_pylock(
        tmp_path / "pylock.toml", [wheel_package(tmp_path / "w")], python=HOST_PYTHON
    )


@pytest.fixture
def conda_lock(tmp_path: Path) -> Path:
    return write_conda_lock(
        build_fixture(tmp_path / "fixture"), tmp_path / "small.conda-lock.yml", pip=False
    )


@pytest.mark.parametrize("backend", ["venv", "conda"])
@pytest.mark.parametrize("target", ["itself", "a directory holding it"])
def test_force_refuses_the_environment_dlsetup_runs_from(
    backend: str,
    target: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    isolated_dirs: dict[str, str],
) -> None:
    lock = request.getfixturevalue("pylock" if backend == "venv" else "conda_lock")
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "conda-meta").mkdir()  # an environment, so --force alone would replace it
    venv = running_venv(outer / "running")
    prefix = venv if target == "itself" else outer
    before = listing(outer)
    code, output = create_with(venv / "bin" / "python", lock, prefix, isolated_dirs)
    assert listing(outer) == before, output
    assert code == 2, output
    assert "running" in output
    assert "Fix:" in output
    assert "Traceback" not in output


def test_the_base_prefix_and_the_interpreters_own_environment_are_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sys.base_prefix`` (the environment a venv was made from) and the directory of the
    interpreter itself (the one ``uv venv`` links the new venv to)."""
    base = tmp_path / "base-env"
    (base / "conda-meta").mkdir(parents=True)
    monkeypatch.setattr(sys, "base_prefix", str(base))
    with pytest.raises(InputError, match="running"):
        check_prefix(base, force=True)
    interpreter_env = tmp_path / "interp-env"
    (interpreter_env / "bin").mkdir(parents=True)
    (interpreter_env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    monkeypatch.setattr(sys, "executable", str(interpreter_env / "bin" / "python"))
    with pytest.raises(InputError, match="running"):
        check_prefix(interpreter_env, force=True)
    other = tmp_path / "other-env"
    (other / "conda-meta").mkdir(parents=True)
    assert check_prefix(other, force=True) is True
