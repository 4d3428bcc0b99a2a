"""Issue 8: ``dlsetup lock`` picks the CUDA line every GPU runs, through the real pynvml code path.

Each scenario runs ``dlsetup lock`` in a subprocess against the fake NVIDIA driver library
(per-GPU compute capabilities in ``FAKE_NVML_CC``) and the local test channel, where cuda129 and
cuda130 builds of the same PyTorch stand side by side and the solver takes cuda130 when nothing
stops it (the last test shows that).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dlsetup.output import load_schema
from dlsetup.platforms import PLATFORM_TABLE
from tests.envs.lock_builders import lock_args
from tests.support.fake_nvml import no_library_env, nvml_env, system_has_nvml
from tests.support.proc import run_cli

#: an R580 driver: CUDA 13.0
CUDA_13_DRIVER = {"driver": "580.65.06", "cuda": "13000"}


def lock_json(env: dict[str, str], channel_url: str, out: Path, *args: str) -> dict[str, Any]:
    proc = run_cli("lock", *args, "--channel", channel_url, "--output", str(out), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("dlsetup.lock"))
    return dict(doc["data"])


def builds(data: dict[str, Any], platform: str = "linux-64") -> dict[str, str]:
    [entry] = [p for p in data["platforms"] if p["platform"] == platform]
    return {p["name"]: p["build"] for p in entry["packages"]}


@pytest.mark.slow
def test_pascal_gpu_on_a_cuda_13_driver_locks_the_cuda_12_9_build_and_names_the_gpu(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {
        **nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, cc="6.1", gpu_names="NVIDIA GeForce GTX 1080"),
        **isolated_dirs,
    }
    data = lock_json(env, channel_url, tmp_path, "pytorch", "--platform", "linux-64")
    assert builds(data)["pytorch"] == "cuda129_mkl_py312h0_300"
    reason = "GPU 0 NVIDIA GeForce GTX 1080 (6.1): CUDA 13.0 builds start at 7.5, so CUDA 12.9"
    [line] = data["cuda_lines"]
    assert (line["platform"], line["line"], line["reason"]) == ("linux-64", "12.9", reason)
    assert line["specs"] == ["pytorch * cuda129_*", "cuda-version >=12.9,<13"]
    assert data["gpus"] == [
        {"index": 0, "name": "NVIDIA GeForce GTX 1080", "compute_capability": "6.1"}
    ]
    assert data["gpu_source"] == "driver:nvml"
    assert data["variant_reason"].endswith(f"; {reason}")
    assert builds(data)["torchvision"] == "cuda129_py312_h0_1"  # it follows the line (issue 14)
    lock = (tmp_path / "pytorch-cuda.conda-lock.yml").read_text()
    assert "# CUDA line for linux-64: 12.9 (pytorch * cuda129_* cuda-version >=12.9,<13).\n" in lock
    assert f"#   Why: {reason}.\n" in lock
    assert "# GPUs (seen by the NVIDIA driver (NVML)): 0:6.1 NVIDIA GeForce GTX 1080\n" in lock
    from conda_lock.lockfile import parse_conda_lock_file

    meta = parse_conda_lock_file(tmp_path / "pytorch-cuda.conda-lock.yml").metadata
    assert meta.custom_metadata is not None
    assert meta.custom_metadata["dlsetup_cuda_line_reason_linux-64"] == reason
    assert meta.custom_metadata["dlsetup_cuda_line_linux-64"] == "12.9"
    assert meta.custom_metadata["dlsetup_gpus"] == "0:6.1 NVIDIA GeForce GTX 1080"
    env_file = (tmp_path / "pytorch-cuda.environment.yml").read_text()
    assert (
        "  - pytorch * cuda129_*\n  - torchvision * cuda129_*\n  - cuda-version >=12.9,<13\n"
        in env_file
    )


@pytest.mark.slow
def test_a_mixed_ampere_and_pascal_box_locks_the_line_both_run(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {
        **nvml_env(
            fake_nvml_dir,
            **CUDA_13_DRIVER,
            gpu_count="2",
            cc="8.6,6.1",
            gpu_names="NVIDIA GeForce RTX 3090,NVIDIA GeForce GTX 1080",
        ),
        **isolated_dirs,
    }
    data = lock_json(env, channel_url, tmp_path, "pytorch", "--platform", "linux-64")
    assert builds(data)["pytorch"] == "cuda129_mkl_py312h0_300"
    assert data["cuda_lines"][0]["reason"] == (
        "GPU 1 NVIDIA GeForce GTX 1080 (6.1): CUDA 13.0 builds start at 7.5, so CUDA 12.9"
    )
    assert [g["compute_capability"] for g in data["gpus"]] == ["8.6", "6.1"]


@pytest.mark.slow
def test_a_blackwell_gpu_gets_the_cuda_13_build_with_sm_120(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {
        **nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, cc="12.0", gpu_names="NVIDIA GeForce RTX 5090"),
        **isolated_dirs,
    }
    data = lock_json(env, channel_url, tmp_path, "pytorch", "--platform", "linux-64")
    assert builds(data)["pytorch"] == "cuda130_mkl_py312h0_300"
    [line] = data["cuda_lines"]
    assert line["line"] == "13.0"
    assert "12.0" in line["builds"][0]["arch"].split(";")[-1]  # "12.0+PTX": sm_120 SASS
    assert line["support"] == "full"


@pytest.mark.slow
def test_a_kepler_gpu_is_refused_before_any_solve_and_nothing_is_written(
    fake_nvml_dir: Path, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {
        **nvml_env(
            fake_nvml_dir, driver="470.82.01", cuda="11040", cc="3.7", gpu_names="Tesla K80"
        ),
        **isolated_dirs,
    }
    out = tmp_path / "out"
    # a channel that does not exist: a solve would fail with exit 4, the refusal comes first
    proc = run_cli(
        *lock_args("pytorch", (tmp_path / "nothing").as_uri(), out, variant=None), env=env
    )
    assert proc.returncode == 2, proc.stderr
    first, fix = proc.stderr.splitlines()[:2]
    assert first == (
        "Error: no conda-forge pytorch CUDA build for linux-64 runs on GPU 0 Tesla K80 (3.7): "
        "CUDA 13.0 builds start at 7.5; CUDA 12.9 builds start at 5.0; its last NVIDIA driver "
        "branch is R470 (CUDA 11.4)"
    )
    assert fix.startswith("Fix: choose: --variant cpu (dlsetup lock pytorch --variant cpu); or ")
    assert not out.exists()


@pytest.mark.slow
def test_gpu_arch_and_cuda_on_a_machine_without_a_gpu_lock_the_cuda_12_line(
    channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    if system_has_nvml():
        pytest.skip("a real NVIDIA driver library is installed system-wide")
    env = {**no_library_env(tmp_path / "no-nvml"), **isolated_dirs}
    out = tmp_path / "out"
    args = ("pytorch", "--cuda", "13.0", "--gpu-arch", "6.1", "--platform", "linux-64")
    data = lock_json(env, channel_url, out, *args)
    assert (data["variant"], data["cuda"], data["gpu_source"]) == (
        "cuda",
        "13.0",
        "option:--gpu-arch",
    )
    assert builds(data)["pytorch"] == "cuda129_mkl_py312h0_300"
    assert data["cuda_lines"][0]["reason"] == (
        "GPU 0 --gpu-arch 6.1 (6.1): CUDA 13.0 builds start at 7.5, so CUDA 12.9"
    )
    lock = (out / "pytorch-cuda.conda-lock.yml").read_text()
    assert "  dlsetup_gpu_source: option:--gpu-arch\n" in lock


@pytest.mark.slow
def test_without_gpu_facts_the_solver_takes_cuda130(
    channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    """The channel's own preference, which the GPU check above overrides."""
    args = ("pytorch", "--cuda", "13.0", "--platform", "linux-64")
    data = lock_json(dict(isolated_dirs), channel_url, tmp_path, *args)
    assert builds(data)["pytorch"] == "cuda130_mkl_py312h0_300"
    assert data["cuda_lines"][0]["reason"].endswith(
        "no GPU compute capability was given, and the driver supports CUDA 13.0"
    )


@pytest.mark.slow
def test_all_platforms_cuda_lock_pins_each_platforms_line_with_selectors(
    channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    args = (
        "pytorch",
        "--variant",
        "cuda",
        "--cuda",
        "12.8",
        "--gpu-arch",
        "8.6",
        "--all-platforms",
    )
    data = lock_json(dict(isolated_dirs), channel_url, tmp_path, *args)
    lines = {x["platform"]: x["line"] for x in data["cuda_lines"]}
    assert lines == {"linux-64": "12.9", "linux-aarch64": "12.9", "win-64": "12.8"}
    assert builds(data, "win-64")["pytorch"] == "cuda128_mkl_py312h0_300"
    assert builds(data, "linux-aarch64")["arm-variant"] == "sbsa"
    text = (tmp_path / "pytorch-cuda.environment.yml").read_text()
    assert "  - pytorch * cuda129_*  # [linux64]\n" in text
    assert "  - pytorch * cuda128_*  # [win64]\n" in text
    assert "  - arm-variant * sbsa  # [aarch64]\n" in text


@pytest.mark.slow
def test_a_jetson_lock_gets_the_tegra_build_and_the_glibc_it_needs(
    channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    args = ("pytorch", "--cuda", "12.6", "--gpu-arch", "8.7", "--platform", "linux-aarch64")
    data = lock_json(dict(isolated_dirs), channel_url, tmp_path, *args)
    if data["platforms"][0]["virtual_package_sources"].get("__glibc") == "detected":
        pytest.skip("this machine is linux-aarch64: its own glibc decides")
    assert builds(data, "linux-aarch64")["pytorch"] == "cuda129_generic_py312h1_200"
    assert builds(data, "linux-aarch64")["arm-variant"] == "tegra"
    [aarch64] = data["platforms"]
    assert "__glibc=2.34" in aarch64["virtual_packages"]
    assert aarch64["virtual_package_sources"]["__glibc"] == "build"


def test_osx_64_locks_the_cpu_build(
    channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    data = lock_json(dict(isolated_dirs), channel_url, tmp_path, "pytorch", "--platform", "osx-64")
    assert (data["variant"], data["cuda"], data["cuda_lines"]) == ("cpu", None, [])
    assert builds(data, "osx-64")["pytorch"] == "cpu_generic_py312h0_0"
    [osx] = data["platforms"]
    assert "__osx=11.0" in osx["virtual_packages"]


def test_tensorflow_for_python_3_13_is_explained_before_the_solve(tmp_path: Path) -> None:
    out = tmp_path / "out"
    nothing = (tmp_path / "nothing").as_uri()
    proc = run_cli(*lock_args("tensorflow", nothing, out, "--python-version", "3.13"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "Error: conda-forge builds tensorflow 2.19.1 for Python 3.10, 3.11, 3.12, not 3.13\n"
        "Fix: use --python-version 3.12 (or drop tensorflow)\n"
    )
    assert not out.exists()


@pytest.mark.slow
def test_a_users_file_without_a_cuda_package_gets_no_cuda_pins_on_a_gpu_machine(
    fake_nvml_dir: Path, channel_url: str, tmp_path: Path, isolated_dirs: dict[str, str]
) -> None:
    env = {**nvml_env(fake_nvml_dir, **CUDA_13_DRIVER, cc="8.6"), **isolated_dirs}
    mine = tmp_path / "mine.yml"
    mine.write_text("name: mine\ndependencies:\n  - python 3.12.*\n  - numpy\n")
    data = lock_json(env, channel_url, tmp_path / "out", str(mine), "--platform", "linux-64")
    assert (data["variant"], data["cuda"], data["cuda_lines"]) == ("cpu", None, [])
    text = (tmp_path / "out" / "mine.environment.yml").read_text()
    assert "cuda" not in text.split("dependencies:")[1]


def test_the_platform_table_agrees_with_rattler() -> None:
    """(The schemas' platform enums are held to the table in test_platform_table.)"""
    import rattler

    for info in PLATFORM_TABLE:
        platform = rattler.Subdir(info.name)
        assert (platform.is_linux, platform.is_osx, platform.is_windows) == (
            info.os == "linux",
            info.os == "osx",
            info.os == "win",
        ), info.name
        assert str(platform.arch) == info.arch, info.name
