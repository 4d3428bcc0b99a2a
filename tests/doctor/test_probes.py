"""The host, environment-manager and framework probes on this machine and on scripted tools."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import psutil
import pytest

from dlsetup.errors import MissingToolError
from dlsetup.facts import Missing
from dlsetup.probes.envmanagers import MANAGERS, probe_env_managers
from dlsetup.probes.frameworks import FrameworkRun, failed_libraries
from dlsetup.probes.system import probe_system


def test_system_probe_reads_this_machine(tmp_path: Path) -> None:
    facts = probe_system(tmp_path / "not" / "yet")
    assert facts.python_executable == sys.executable
    assert facts.ram_total_bytes == psutil.virtual_memory().total
    assert facts.cpu_logical_cores == psutil.cpu_count()
    assert facts.disk_path == str(tmp_path)  # nearest existing parent
    assert isinstance(facts.disk_free_bytes, int) and facts.disk_free_bytes > 0
    if sys.platform == "linux":
        assert isinstance(facts.glibc, str) and facts.glibc.startswith("2.")
        assert isinstance(facts.cpu_features, tuple)
        flags = Path("/proc/cpuinfo").read_text().split()
        assert ("avx" in facts.cpu_features) == ("avx" in flags)
    assert facts.wsl in ("none", "wsl1", "wsl2")


def _tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(os.name != "posix", reason="shell-script stand-ins for the tools")
def test_env_managers_versions_from_tools_and_conda_meta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "miniforge3"
    (root / "bin").mkdir(parents=True)
    (root / "conda-meta").mkdir()
    (root / "conda-meta" / "conda-24.7.1-py311h38be061_0.json").write_text("{}")
    _tool(root / "bin", "conda", "exit 99")  # never run: the version comes from conda-meta
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "uv", "echo 'uv 0.4.18 (7b55e9790 2024-10-01)'")
    _tool(bin_dir, "pixi", f"exec {shutil.which('sleep')} 30")
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{bin_dir}")
    monkeypatch.setenv("CONDA_PREFIX", str(root))
    monkeypatch.setenv("CONDA_DEFAULT_ENV", "base")
    facts = probe_env_managers(timeout=1.0)
    by_name = {m.name: m for m in facts.managers}
    assert tuple(by_name) == MANAGERS
    assert by_name["conda"].version == "24.7.1"
    assert by_name["uv"].version == "0.4.18"
    assert isinstance(by_name["pixi"].version, Missing)
    assert by_name["pixi"].version.reason == "timeout"
    assert by_name["mamba"].path == Missing("not_installed")
    assert by_name["pip"].present
    assert (facts.active.kind, facts.active.name) == ("conda", "base")


@pytest.mark.skipif(os.name != "posix", reason="a shell-script stand-in for the interpreter")
def test_pip_of_another_interpreter_is_read_from_its_site_packages(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "lib/python3.12/site-packages/pip-24.2.dist-info").mkdir(parents=True)
    ran = tmp_path / "ran"
    _tool(env / "bin", "python", f"touch {ran}; echo 'pip 1.0 from x'")
    facts = probe_env_managers(python=str(env / "bin" / "python"))
    pip = {m.name: m for m in facts.managers}["pip"]
    assert (pip.path, pip.version) == (str(env / "bin" / "python"), "24.2")
    assert not ran.exists()  # answered from the metadata, the interpreter never ran


@pytest.mark.skipif(os.name != "posix", reason="a shell-script stand-in for the interpreter")
def test_pip_of_another_interpreter_asks_it_when_the_metadata_is_ambiguous(
    tmp_path: Path,
) -> None:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "lib/python3.11/site-packages/pip-23.0.dist-info").mkdir(parents=True)
    (env / "lib/python3.12/site-packages/pip-24.2.dist-info").mkdir(parents=True)
    _tool(env / "bin", "python", "echo 'pip 24.3.1 from /env/lib/python3.12 (python 3.12)'")
    facts = probe_env_managers(python=str(env / "bin" / "python"))
    assert {m.name: m for m in facts.managers}["pip"].version == "24.3.1"


def test_failed_libraries_from_loader_messages() -> None:
    text = (
        "W dso_loader.cc:66] Could not load dynamic library 'libcudart.so.11.0'; dlerror: x\n"
        "OSError: libcudnn.so.9: cannot open shared object file: No such file or directory\n"
        'OSError: [WinError 126] Error loading "C:\\torch\\lib\\cudnn64_9.dll" or one of its\n'
    )
    assert failed_libraries(text) == ("libcudart.so.11.0", "libcudnn.so.9", "cudnn64_9.dll")


def test_missing_interpreter_is_a_missing_tool_error(tmp_path: Path) -> None:
    with pytest.raises(MissingToolError, match="no Python interpreter at"):
        FrameworkRun(str(tmp_path / "python")).start()


def test_not_installed_framework_is_missing() -> None:
    import subprocess

    base = getattr(sys, "_base_executable", sys.executable)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"}
    sees = subprocess.run(
        [base, "-c", "import importlib.util as u; print(u.find_spec('torch') is not None)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if sees.stdout.strip() != "False":
        pytest.skip(f"{base} can import torch")
    facts = FrameworkRun(base, timeout=60, env=env).start().collect()
    assert facts.torch == Missing("not_installed", f"torch is not importable by {base}")
    assert facts.tensorflow == Missing("not_installed", f"tensorflow is not importable by {base}")
    assert facts.python_version == ".".join(map(str, sys.version_info[:3]))
