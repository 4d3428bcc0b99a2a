"""doctor's fixes speak the probed environment's language: conda-forge builds (for the CUDA line
every GPU runs) in a conda prefix, pip from the matching index in a venv; and no fix asks for a
driver a GPU cannot take."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dlsetup.checks import evaluate
from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import Finding
from dlsetup.checks.fix_language import target_env
from tests.doctor.test_checks import facts, frameworks, gpu, nvidia, tensorflow, torch

GTX_1080 = {"name": "NVIDIA GeForce GTX 1080", "compute_capability": (6, 1)}
K80 = {"name": "Tesla K80", "compute_capability": (3, 7)}
PASCAL_ON_CUDA_13 = {"driver_version": "580.65.06", "cuda_driver_version": "13.0"}


def _prefix(tmp_path: Path, kind: str) -> str:
    """A prefix with ``bin/python`` and the marker of a conda env or a venv; its python path."""
    prefix = tmp_path / kind
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").write_text("", encoding="utf-8")
    if kind == "conda":
        (prefix / "conda-meta").mkdir()
    elif kind == "venv":
        (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
        # a venv with pip (python -m venv's kind): its fixes are pip's own (tests/doctor/
        # test_installer.py covers the venvs without pip)
        (prefix / "lib/python3.11/site-packages/pip-24.0.dist-info").mkdir(parents=True)
    return str(prefix / "bin" / "python")


def _facts(python: str, *, torch_probe: Any = None, tf_probe: Any = None, **nv: Any) -> DoctorFacts:
    gpus = nv.pop("gpus", (gpu(**GTX_1080),))
    fw = replace(frameworks(torch_probe=torch_probe, tf_probe=tf_probe), python_executable=python)
    return facts(nvidia=nvidia(gpus=gpus, **{**PASCAL_ON_CUDA_13, **nv}), frameworks=fw)


def _finding(f: DoctorFacts, check_id: str) -> Finding:
    return next(x for x in evaluate(f) if x.id == check_id)


def test_environment_kind_from_the_interpreter_path(tmp_path: Path) -> None:
    assert target_env(_prefix(tmp_path, "conda")).kind == "conda"
    assert target_env(_prefix(tmp_path, "venv")).kind == "venv"
    assert target_env(_prefix(tmp_path, "plain")).kind == "other"
    # a venv made from a conda Python: pyvenv.cfg wins over a conda-meta in the same prefix
    both = tmp_path / "venv-from-conda"
    (both / "bin").mkdir(parents=True)
    (both / "conda-meta").mkdir()
    (both / "pyvenv.cfg").write_text("", encoding="utf-8")
    assert target_env(str(both / "bin" / "python")).kind == "venv"
    # Windows conda layout: <prefix>/python.exe
    win = tmp_path / "win"
    (win / "conda-meta").mkdir(parents=True)
    assert target_env(str(win / "python.exe")).kind == "conda"


def test_cpu_torch_in_a_conda_env_gets_the_conda_forge_line_its_pascal_gpu_runs(
    tmp_path: Path,
) -> None:
    python = _prefix(tmp_path, "conda")
    prefix = str(Path(python).parent.parent)
    f = _finding(
        _facts(python, torch_probe=torch("2.13.0", cuda=None)), "torch.cpu_build_on_gpu_machine"
    )
    assert f.command == (
        f'conda install --prefix {prefix} -c conda-forge "pytorch=*=cuda129_*" '
        '"cuda-version>=12.9,<13"'
    )
    assert f.fix == (
        "This is a conda environment: install conda-forge's CUDA 12.9 build (GPU 0 NVIDIA GeForce "
        f"GTX 1080 (6.1): CUDA 13.0 builds start at 7.5, so CUDA 12.9): {f.command}"
    )


def test_the_same_machine_in_a_venv_gets_pip_from_the_matching_index(tmp_path: Path) -> None:
    python = _prefix(tmp_path, "venv")
    f = _finding(
        _facts(python, torch_probe=torch("2.13.0", cuda=None)), "torch.cpu_build_on_gpu_machine"
    )
    # PyPI's cu130 wheels start at 7.5 too; cu126 is the newest index with sm_60 (SASS for 6.1)
    assert f.command == (
        f"{python} -m pip install 'torch==2.14.*' --index-url https://download.pytorch.org/whl/cu126"
    )
    assert "conda" not in f.fix


def test_an_ampere_card_in_a_conda_env_gets_cuda_13(tmp_path: Path) -> None:
    python = _prefix(tmp_path, "conda")
    ampere = (gpu(name="NVIDIA GeForce RTX 3090", compute_capability=(8, 6)),)
    f = _finding(
        _facts(python, torch_probe=torch("2.13.0", cuda=None), gpus=ampere),
        "torch.cpu_build_on_gpu_machine",
    )
    assert '"pytorch=*=cuda130_*" "cuda-version>=13.0,<14"' in f.command


def test_arch_not_in_build_in_a_conda_env(tmp_path: Path) -> None:
    # a cuda130 build (sm_75+) installed on a Pascal card: the conda fix is the 12.9 line
    cu130 = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_110", "sm_120", "compute_120")
    probe = torch("2.13.0", cuda="13.0", arch=cu130)
    python = _prefix(tmp_path, "conda")
    f = _finding(_facts(python, torch_probe=probe), "gpu.arch_not_in_build")
    assert '"pytorch=*=cuda129_*"' in f.command
    venv = _finding(_facts(_prefix(tmp_path, "venv"), torch_probe=probe), "gpu.arch_not_in_build")
    assert "pip install 'torch==" in venv.command and "cu126" in venv.command


def test_cpu_tensorflow_in_a_conda_env_gets_the_12_8_build(tmp_path: Path) -> None:
    python = _prefix(tmp_path, "conda")
    f = _finding(
        _facts(python, tf_probe=tensorflow("2.19.1", cuda=None)),
        "tensorflow.cpu_build_on_gpu_machine",
    )
    assert f.command.endswith('-c conda-forge "tensorflow=*=cuda128*" "cuda-version>=12.8,<13"')
    venv = _prefix(tmp_path, "venv")
    g = _finding(
        _facts(venv, tf_probe=tensorflow("2.19.1", cuda=None)),
        "tensorflow.cpu_build_on_gpu_machine",
    )
    assert "pip install 'tensorflow[and-cuda]==" in g.command


def test_tf_missing_cuda_libraries_in_a_conda_env(tmp_path: Path) -> None:
    probe = tensorflow("2.19.1", failed_libraries=("libcudnn.so.9",))
    f = _finding(_facts(_prefix(tmp_path, "conda"), tf_probe=probe), "framework.cuda_libs_failed")
    assert '"tensorflow=*=cuda128*"' in f.command
    g = _finding(_facts(_prefix(tmp_path, "venv"), tf_probe=probe), "framework.cuda_libs_failed")
    assert g.command.endswith("pip install 'tensorflow[and-cuda]==2.19.1'")


def test_driver_too_old_in_a_conda_env_offers_the_line_this_driver_runs(tmp_path: Path) -> None:
    probe = torch("2.13.0", cuda="13.0", arch=("sm_75", "sm_80", "sm_86", "sm_90", "compute_90"))
    turing = (gpu(name="Tesla T4", compute_capability=(7, 5)),)
    old = {"driver_version": "550.54.15", "cuda_driver_version": "12.4", "gpus": turing}
    f = _finding(
        _facts(_prefix(tmp_path, "conda"), torch_probe=probe, **old), "driver.too_old_for_build"
    )
    assert '"pytorch=*=cuda129_*"' in f.command
    assert f.fix.startswith("Update the NVIDIA driver to 580.65.06 or newer")


def test_kepler_in_a_conda_env_is_told_no_conda_forge_build_runs(tmp_path: Path) -> None:
    kepler = {"driver_version": "470.82.01", "cuda_driver_version": "11.4", "gpus": (gpu(**K80),)}
    python = _prefix(tmp_path, "conda")
    f = _finding(
        _facts(python, torch_probe=torch("2.13.0", cuda=None), **kepler),
        "torch.cpu_build_on_gpu_machine",
    )
    assert f.command == ""
    assert f.fix.startswith(
        "no conda-forge pytorch CUDA build for linux-64 runs on GPU 0 Tesla K80 (3.7)"
    )
    assert "--variant cpu" in f.fix and "R470" in f.fix


@pytest.mark.parametrize("kind", ["venv", "conda"])
def test_no_fix_asks_kepler_for_a_driver_newer_than_r470(tmp_path: Path, kind: str) -> None:
    kepler = {"driver_version": "470.82.01", "cuda_driver_version": "11.4", "gpus": (gpu(**K80),)}
    probe = torch("2.13.0", cuda="13.0", arch=("sm_75", "sm_80", "compute_80"))
    found = evaluate(_facts(_prefix(tmp_path, kind), torch_probe=probe, **kepler))
    too_old = next(x for x in found if x.id == "driver.too_old_for_build")
    assert too_old.fix.startswith(
        "GPU 0 Tesla K80 (3.7) cannot take a driver newer than its last branch, R470 (CUDA 11.4)"
    )
    for finding in found:
        for newer in ("580.", "575.", "525.", "560."):
            assert newer not in finding.fix, (finding.id, finding.fix)
    # twin: a Pascal card on the same old driver is told to update
    pascal = {**kepler, "gpus": (gpu(**GTX_1080),)}
    f = _finding(
        _facts(_prefix(tmp_path / "p", kind), torch_probe=probe, **pascal),
        "driver.too_old_for_build",
    )
    assert f.fix.startswith("Update the NVIDIA driver to 580.65.06 or newer")


def test_kepler_cpu_torch_in_a_venv_gets_the_last_wheel_on_r470(tmp_path: Path) -> None:
    kepler = {"driver_version": "470.82.01", "cuda_driver_version": "11.4", "gpus": (gpu(**K80),)}
    python = _prefix(tmp_path, "venv")
    f = _finding(
        _facts(python, torch_probe=torch("2.13.0", cuda=None), **kepler),
        "torch.cpu_build_on_gpu_machine",
    )
    assert f.command == (
        f"{python} -m pip install 'torch==2.7.*' --index-url https://download.pytorch.org/whl/cu118"
    )
