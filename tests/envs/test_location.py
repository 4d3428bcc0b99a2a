"""Where ``dlsetup create --name`` puts environments, and which platform this is: cheap to import
(``dlsetup doctor --no-frameworks`` uses it), and the same answers as conda's and rattler's rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlsetup.envs.location import default_envs_dir, host_platform
from tests.support.proc import REPO

HEAVY = ("asyncio", "rattler", "conda_lock", "yaml", "rich", "numpy", "torch", "tensorflow")


def test_importing_location_pulls_in_no_heavy_module() -> None:
    code = (
        "import sys, json; import dlsetup.envs.location; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert json.loads(proc.stdout) == []


def test_dlsetup_envs_dir_wins_over_conda_envs_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLSETUP_ENVS_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("CONDA_ENVS_PATH", os.pathsep.join([str(tmp_path / "a"), str(tmp_path)]))
    assert default_envs_dir() == tmp_path / "mine"
    monkeypatch.delenv("DLSETUP_ENVS_DIR")
    assert default_envs_dir() == tmp_path / "a"


def test_without_any_conda_the_envs_dir_is_in_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DLSETUP_ENVS_DIR", "CONDA_ENVS_PATH", "MAMBA_ROOT_PREFIX", "CONDA_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no conda, mamba or micromamba on it
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    assert default_envs_dir() == tmp_path / "home" / ".dlsetup" / "envs"


def test_a_conda_on_path_puts_environments_in_its_own_envs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.platform == "win32":
        pytest.skip("a POSIX executable script stands in for conda")
    for var in ("DLSETUP_ENVS_DIR", "CONDA_ENVS_PATH", "MAMBA_ROOT_PREFIX", "CONDA_ROOT"):
        monkeypatch.delenv(var, raising=False)
    conda = tmp_path / "miniforge3" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    conda.write_text("#!/bin/sh\nexit 0\n")
    conda.chmod(0o755)
    monkeypatch.setenv("PATH", str(conda.parent))
    assert default_envs_dir() == tmp_path / "miniforge3" / "envs"


def test_host_platform_is_rattlers_current_subdir() -> None:
    import rattler

    assert host_platform() == str(rattler.Subdir.current())
