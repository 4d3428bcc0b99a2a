"""Fixes in the environment's own installer (issue 22 item 5): :mod:`dlsetup.installer` decides per
environment kind, and each command it makes for a venv runs for real in a venv made by
``uv venv`` (which has no pip) against a local index of tiny wheels built here; conda's and pixi's
commands are checked as text (neither tool is on these machines). Then doctor's and smoke's fixes
are shown to come from it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlsetup.checks import evaluate
from dlsetup.compat.companions import companion_release, smoke_fix
from dlsetup.facts import Missing
from dlsetup.installer import (
    conda_spec,
    has_pip,
    install_command,
    install_pypi_command,
    installer_for,
    pip_owned,
    uninstall_command,
)
from dlsetup.probes.envmanagers import ActiveEnv, EnvManagersFacts, ManagerFacts
from tests.doctor import test_checks as tc
from tests.support.wheels import Wheel, build_index

UV = str(Path(sys.executable).with_name("uv"))


def _clean_env(tmp: Path) -> dict[str, str]:
    """No pip or uv configuration of this machine (its find-links, its indexes): only ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp / "uv-cache"))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _sh(command: str, env: dict[str, str], timeout: float = 240) -> None:
    proc = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"


def _uv_venv(path: Path, env: dict[str, str]) -> str:
    """A venv made by ``uv venv`` (no pip in it), on this interpreter; returns its python."""
    _sh(f"{UV} venv --quiet --python {sys.executable} {path}", env)
    return str(path / "bin" / "python")


def _version(python: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [python, "-c", "import tinypkg; print(tinypkg.VERSION)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("installer-index")
    return build_index(
        root,
        [
            Wheel("tinypkg", v, files={"tinypkg/__init__.py": f"VERSION = {v!r}\n".encode()})
            for v in ("1.0", "2.0")
        ],
    )


@pytest.mark.skipif(sys.platform == "win32", reason="bash and bin/python layout")
def test_a_uv_venv_without_pip_gets_uv_pip_install_and_it_runs(tmp_path: Path, index: str) -> None:
    env = _clean_env(tmp_path)
    python = _uv_venv(tmp_path / "venv", env)
    assert not has_pip(tmp_path / "venv")
    inst = installer_for(python, uv=UV)
    assert inst.kind == "uv"
    command = install_command(inst, ["tinypkg==1.0"], index_url=index)
    assert command == f"{UV} pip install --python {python} tinypkg==1.0 --index-url {index}"
    _sh(command, env)
    assert _version(python, env) == "1.0"
    # a companion-style fix: force a reinstall of another version, dependencies untouched
    again = install_command(inst, ["tinypkg==2.0"], reinstall=True, no_deps=True, index_url=index)
    assert "--reinstall --no-deps" in again
    _sh(again, env)
    assert _version(python, env) == "2.0"
    _sh(uninstall_command(inst, ["tinypkg"]), env)


@pytest.mark.skipif(sys.platform == "win32", reason="bash and bin/python layout")
def test_a_uv_venv_without_pip_and_no_uv_installs_pip_first_and_it_runs(
    tmp_path: Path, index: str
) -> None:
    env = _clean_env(tmp_path)
    python = _uv_venv(tmp_path / "venv", env)
    inst = installer_for(python, uv=None)
    assert inst.kind == "ensurepip"
    command = install_command(inst, ["tinypkg==1.0"], reinstall=True, index_url=index)
    assert command.startswith(f"{python} -m ensurepip && {python} -m pip install ")
    _sh(command, env)
    assert _version(python, env) == "1.0"
    assert has_pip(tmp_path / "venv")
    # pip is there now: the next fix is pip's own
    after = installer_for(python, uv=UV)
    assert after.kind == "pip"
    command = install_command(after, ["tinypkg==2.0"], reinstall=True, index_url=index)
    assert command.startswith(f"{python} -m pip install --force-reinstall ")
    _sh(command, env)
    assert _version(python, env) == "2.0"
    _sh(uninstall_command(after, ["tinypkg"]), env)


def test_a_conda_prefix_gets_a_conda_spec(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "bin").mkdir()
    inst = installer_for(str(prefix / "bin" / "python"), uv=UV, conda="mamba")
    assert inst.kind == "conda"
    assert install_command(inst, ["torchvision==0.28.*"], reinstall=True, no_deps=True) == (
        f"mamba install --prefix {prefix} -c conda-forge --force-reinstall torchvision=0.28"
    )
    assert install_command(inst, ["torch==2.13.*"], index_url="https://x") == (
        f"mamba install --prefix {prefix} -c conda-forge pytorch=2.13"
    )
    assert uninstall_command(inst, ["torch"]) == f"mamba remove --prefix {prefix} pytorch"
    # a PyPI-only wheel (conda-forge has no nvidia-cudnn-cu12) goes through the prefix's pip
    assert install_pypi_command(inst, ["nvidia-cudnn-cu12==9.3.0.75"]) == (
        f"{prefix}/bin/python -m pip install nvidia-cudnn-cu12==9.3.0.75"
    )


def test_a_package_pip_installed_into_a_conda_prefix_is_fixed_with_pip(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    site = prefix / "lib" / "python3.11" / "site-packages"
    (site / "torchvision-0.21.0.dist-info").mkdir(parents=True)  # pip put it there
    (prefix / "conda-meta" / "pytorch-2.6.0-cuda126_py311_0.json").write_text("{}")  # conda's
    python = str(prefix / "bin" / "python")
    inst = installer_for(python)
    assert pip_owned(inst, "torchvision==0.21.*") and not pip_owned(inst, "torch==2.6.*")
    assert install_command(inst, ["torchvision==0.21.*"], reinstall=True) == (
        f"{python} -m pip install --force-reinstall 'torchvision==0.21.*'"
    )  # not a second, conda copy beside pip's
    assert install_command(inst, ["torch==2.6.*"]).startswith(f"conda install --prefix {prefix}")
    # doctor's companion fix follows it
    case = tc.FIRES["torchvision.release_mismatch"]()
    fw = dataclasses.replace(case.frameworks, python_executable=python)
    found = evaluate(dataclasses.replace(case, frameworks=fw))
    f = next(x for x in found if x.id == "torchvision.release_mismatch")
    assert f.command.startswith(f"{python} -m pip install --force-reinstall --no-deps "), f.command


def test_a_pixi_environment_gets_a_pixi_command(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    prefix = project / ".pixi" / "envs" / "default"
    (prefix / "conda-meta").mkdir(parents=True)
    (project / "pixi.toml").write_text("[workspace]\n")
    inst = installer_for(str(prefix / "bin" / "python"), uv=UV)
    assert inst.kind == "pixi"
    manifest = project / "pixi.toml"
    assert install_command(inst, ["tensorflow[and-cuda]==2.18.0"]) == (
        f"pixi add --manifest-path {manifest} tensorflow==2.18.0"
    )
    assert install_command(inst, ["torch"], reinstall=True) == (
        f"pixi reinstall --manifest-path {manifest} pytorch"
    )
    assert install_pypi_command(inst, ["nvidia-cudnn-cu12==9.3.0.75"]) == (
        f"pixi add --pypi --manifest-path {manifest} nvidia-cudnn-cu12==9.3.0.75"
    )


def test_conda_specs_follow_condas_syntax() -> None:
    assert conda_spec("torchvision==0.28.*") == "torchvision=0.28"
    assert conda_spec("torch>=2.6,<2.7") == "pytorch>=2.6,<2.7"
    assert conda_spec("nvidia-cudnn-cu12==9.3.0.75") == "nvidia-cudnn-cu12==9.3.0.75"


def test_a_python_outside_any_environment_keeps_pip(tmp_path: Path) -> None:
    assert installer_for("python").kind == "pip"
    assert installer_for(str(tmp_path / "usr" / "bin" / "python3"), uv=UV).kind == "pip"


# --------------------------------------------------- doctor's and smoke's fixes come from it ----


def _managers(uv: bool) -> EnvManagersFacts:
    return EnvManagersFacts(
        (ManagerFacts("uv", "/usr/bin/uv" if uv else Missing("not_installed"), "0.9.0"),),
        ActiveEnv("none", Missing("unset"), Missing("unset")),
    )


@pytest.mark.parametrize(("uv", "start"), [(True, "uv pip install --python "), (False, "")])
def test_doctors_companion_fix_in_a_venv_without_pip(tmp_path: Path, uv: bool, start: str) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = str(venv / "bin" / "python")
    case = tc.FIRES["torchvision.release_mismatch"]()
    fw = dataclasses.replace(case.frameworks, python_executable=python)
    found = evaluate(dataclasses.replace(case, frameworks=fw, env_managers=_managers(uv)))
    f = next(x for x in found if x.id == "torchvision.release_mismatch")
    if uv:
        assert f.command.startswith(start + python), f.command
        assert "--reinstall --no-deps" in f.command and "-m pip" not in f.command
    else:
        assert f.command.startswith(f"{python} -m ensurepip && {python} -m pip install "), f.command


def test_doctors_cpu_torch_fix_in_a_venv_without_pip_uses_uv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = str(venv / "bin" / "python")
    case = tc.FIRES["torch.cpu_build_on_gpu_machine"]()
    fw = dataclasses.replace(case.frameworks, python_executable=python)
    found = evaluate(dataclasses.replace(case, frameworks=fw, env_managers=_managers(True)))
    f = next(x for x in found if x.id == "torch.cpu_build_on_gpu_machine")
    assert f.command.startswith(f"uv pip install --python {python} "), f.command


def test_nvcc_fix_is_condas_only_where_conda_owns_the_environment(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    case = tc.FIRES["nvcc.older_than_framework"]()
    for python, want in [
        (str(prefix / "bin" / "python"), f"conda install --prefix {prefix} -c conda-forge "),
        ("/env/bin/python", ""),  # no environment of conda's: NVIDIA's toolkit, no conda command
    ]:
        fw = dataclasses.replace(case.frameworks, python_executable=python)
        found = evaluate(dataclasses.replace(case, frameworks=fw))
        f = next(x for x in found if x.id == "nvcc.older_than_framework")
        assert f.command.startswith(want) and (f.command.endswith("cuda-nvcc=12.4") or not want)


def test_smokes_companion_fix_in_a_venv_without_pip(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = str(venv / "bin" / "python")
    pair = companion_release("torchvision", "2.13.0+cpu")
    assert pair is not None
    text = smoke_fix("torchvision", "2.13.0+cpu", installer_for(python, uv="uv"))
    assert f"`uv pip install --python {python} --reinstall --no-deps " in text
    assert "https://download.pytorch.org/whl/cpu" in text


def test_uv_is_on_hand_for_these_tests() -> None:
    assert Path(UV).exists() or shutil.which("uv"), "uv is a dependency of dlsetup"
