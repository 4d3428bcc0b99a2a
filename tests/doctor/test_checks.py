"""Every check id, over constructed facts: one case where it fires, one where it stays silent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from dlsetup.checks import CHECK_IDS, evaluate
from dlsetup.checks.context import DoctorFacts
from dlsetup.facts import Missing
from dlsetup.probes.cuda_libs import (
    CudaLibsFacts,
    LibraryFacts,
    NvccFacts,
    WslLibcudaFacts,
    parse_visible_devices,
)
from dlsetup.probes.envmanagers import ActiveEnv, EnvManagersFacts
from dlsetup.probes.frameworks import (
    CompanionBuild,
    FrameworkProbe,
    FrameworksFacts,
    TensorflowBuild,
    TorchBuild,
)
from dlsetup.probes.nvidia import GpuFacts, GpuProcess, NvidiaFacts
from dlsetup.probes.system import SystemFacts

GIB = 1024**3
MIB = 1024**2
H100_ARCH = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")


def system(**kw: Any) -> SystemFacts:
    base: dict[str, Any] = {
        "os_name": "linux",
        "distribution": "Ubuntu 24.04 LTS",
        "kernel": "6.8.0",
        "machine": "x86_64",
        "glibc": "2.39",
        "python_version": "3.11.7",
        "python_executable": "/env/bin/python",
        "cpu_model": "Intel Xeon",
        "cpu_physical_cores": 8,
        "cpu_logical_cores": 16,
        "cpu_features": ("sse4_2", "fma", "avx", "avx2"),
        "ram_total_bytes": 64 * GIB,
        "ram_available_bytes": 48 * GIB,
        "swap_total_bytes": 0,
        "swap_used_bytes": 0,
        "disk_path": "/home/me",
        "disk_free_bytes": 200 * GIB,
        "disk_total_bytes": 500 * GIB,
        "container": "none",
        "wsl": "none",
        "hostname": "node01",
    }
    base.update(kw)
    return SystemFacts(**base)


def gpu(index: int = 0, **kw: Any) -> GpuFacts:
    base: dict[str, Any] = {
        "index": index,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": f"GPU-fa4e0000-0000-4000-8000-{index:012d}",
        "compute_capability": (9, 0),
        "memory_total_bytes": 81559 * MIB,
        "memory_used_bytes": 0,
        "mig_mode_current": False,
        "mig_mode_pending": False,
        "ecc_errors_uncorrected": 0,
        "processes": (),
    }
    base.update(kw)
    return GpuFacts(**base)


def nvidia(status: str = "ok", gpus: tuple[GpuFacts, ...] | None = None, **kw: Any) -> NvidiaFacts:
    if status != "ok":
        return NvidiaFacts(status=status, status_detail="NVMLError: x", nvml_error_code=9)
    base: dict[str, Any] = {
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "nvml_version": "12.550.54.15",
        "gpus": (gpu(),) if gpus is None else gpus,
    }
    base.update(kw)
    base["gpu_count"] = len(base["gpus"])
    return NvidiaFacts(status="ok", **base)


def cuda_libs(cvd: str | None = None, wsl_problem: bool = False) -> CudaLibsFacts:
    wsl = (
        WslLibcudaFacts(
            lib_dir="/usr/lib/wsl/lib",
            libcuda_so_1_exists=True,
            libcuda_so_1_is_symlink=False,
            symlink_problem=True,
        )
        if wsl_problem
        else WslLibcudaFacts(lib_dir=Missing("not_found"))
    )
    return CudaLibsFacts(
        nvcc=NvccFacts(path=Missing("not_found")),
        cuda_home=Missing("unset"),
        cuda_path=Missing("unset"),
        cudart=LibraryFacts("cudart"),
        cudnn=LibraryFacts("cudnn"),
        libcuda=LibraryFacts("cuda"),
        visible_devices=parse_visible_devices(cvd),
        wsl=wsl,
    )


def torch(
    version: str = "2.6.0+cu124",
    cuda: str | None = "12.4",
    arch: tuple[str, ...] = H100_ARCH,
    cuda_available: bool = True,
    **kw: Any,
) -> FrameworkProbe:
    build = TorchBuild(
        cuda=cuda if cuda else Missing("cpu_build"),
        cudnn="90100" if cuda else Missing("not_built"),
        hip=Missing("not_rocm"),
        arch_list=arch if cuda else (),
        cuda_available=cuda_available if cuda else False,
        device_count=1 if cuda else 0,
        mps_built=False,
        mps_available=False,
    )
    base: dict[str, Any] = {
        "name": "torch",
        "status": "ok",
        "detail": "",
        "version": version,
        "elapsed_s": 1.0,
        "exit_code": 0,
        "torch": build,
    }
    base.update(kw)
    return FrameworkProbe(**base)


def tensorflow(version: str = "2.17.0", cuda: str | None = "12.3", **kw: Any) -> FrameworkProbe:
    build = TensorflowBuild(
        is_cuda_build=cuda is not None,
        cuda_version=cuda if cuda else Missing("cpu_build"),
        cudnn_version="8" if cuda else Missing("cpu_build"),
        compute_capabilities=("sm_60", "sm_70", "sm_80", "sm_89", "sm_90", "compute_90")
        if cuda
        else (),
        gpus=("/physical_device:GPU:0",) if cuda else (),
        build_info={},
    )
    base: dict[str, Any] = {
        "name": "tensorflow",
        "status": "ok",
        "detail": "",
        "version": version,
        "elapsed_s": 2.0,
        "exit_code": 0,
        "tensorflow": build,
    }
    base.update(kw)
    return FrameworkProbe(**base)


def frameworks(
    torch_probe: Any = None, tf_probe: Any = None, python: str = "3.11.7", plat: str = "linux"
) -> FrameworksFacts:
    return FrameworksFacts(
        python_executable="/env/bin/python",
        python_version=python,
        platform=plat,
        torch=torch() if torch_probe is None else torch_probe,
        tensorflow=tensorflow() if tf_probe is None else tf_probe,
        timeout_s=60.0,
    )


def facts(**kw: Any) -> DoctorFacts:
    base: dict[str, Any] = {
        "system": system(),
        "nvidia": nvidia(),
        "cuda_libs": cuda_libs(),
        "env_managers": EnvManagersFacts((), ActiveEnv("none", Missing("unset"), Missing("unset"))),
        "frameworks": frameworks(),
    }
    base.update(kw)
    return DoctorFacts(**base)


def beyond_data(framework: str) -> str:
    """The release one minor past the newest the knowledge base knows (``"2.16"``)."""
    from dlsetup.compat.frameworks import tf_releases, torch_releases

    major, minor = (torch_releases() if framework == "torch" else tf_releases())[-1].split(".")
    return f"{major}.{int(minor) + 1}"


def crashed(name: str, status: str) -> FrameworkProbe:
    return FrameworkProbe(name, status, "boom", Missing(status), 1.0, -6)


Case = Callable[[], DoctorFacts]

FIRES: dict[str, Case] = {
    "nvml.no_library": lambda: facts(nvidia=nvidia("no_library"), frameworks=Missing("skipped")),
    "nvml.driver_not_loaded": lambda: facts(nvidia=nvidia("driver_not_loaded")),
    "nvml.driver_mismatch": lambda: facts(nvidia=nvidia("driver_mismatch")),
    "nvml.no_permission": lambda: facts(nvidia=nvidia("no_permission")),
    "nvml.error": lambda: facts(nvidia=nvidia("error")),
    "nvml.function_not_found": lambda: facts(
        nvidia=nvidia(functions_not_found=("nvmlDeviceGetMigMode",))
    ),
    "gpu.lost": lambda: facts(nvidia=nvidia(gpus=(gpu(0), GpuFacts(index=1, lost=True)))),
    "cuda_visible_devices.hides_all": lambda: facts(cuda_libs=cuda_libs(cvd="")),
    "cuda_visible_devices.unknown_device": lambda: facts(cuda_libs=cuda_libs(cvd="3")),
    "gpu.mig_enabled": lambda: facts(
        nvidia=nvidia(gpus=(gpu(mig_mode_current=True, mig_mode_pending=True),))
    ),
    "gpu.mig_pending_reset": lambda: facts(
        nvidia=nvidia(gpus=(gpu(mig_mode_current=False, mig_mode_pending=True),))
    ),
    "gpu.memory_held": lambda: facts(
        nvidia=nvidia(
            gpus=(
                gpu(
                    memory_used_bytes=40 * GIB,
                    processes=(GpuProcess(4242, "python3", 40 * GIB),),
                ),
            )
        )
    ),
    "gpu.ecc_errors": lambda: facts(nvidia=nvidia(gpus=(gpu(ecc_errors_uncorrected=3),))),
    "framework.import_crashed": lambda: facts(
        frameworks=frameworks(torch_probe=crashed("torch", "crashed"))
    ),
    "framework.import_timeout": lambda: facts(
        frameworks=frameworks(tf_probe=crashed("tensorflow", "timeout"))
    ),
    "framework.import_failed": lambda: facts(
        frameworks=frameworks(torch_probe=crashed("torch", "import_failed"))
    ),
    "framework.cuda_libs_failed": lambda: facts(
        frameworks=frameworks(tf_probe=tensorflow(failed_libraries=("libcudnn.so.8",)))
    ),
    "torch.cpu_build_on_gpu_machine": lambda: facts(
        frameworks=frameworks(torch_probe=torch("2.13.0+cpu", cuda=None))
    ),
    "tensorflow.cpu_build_on_gpu_machine": lambda: facts(
        frameworks=frameworks(tf_probe=tensorflow("2.21.0", cuda=None))
    ),
    "driver.too_old_for_build": lambda: facts(
        nvidia=nvidia(driver_version="470.82.01", cuda_driver_version="11.4")
    ),
    "driver.minor_version_compat": lambda: facts(
        nvidia=nvidia(driver_version="535.104.05", cuda_driver_version="12.2")
    ),
    "gpu.arch_not_in_build": lambda: facts(
        nvidia=nvidia(cuda_driver_version="12.8", gpus=(gpu(compute_capability=(12, 0)),))
    ),
    "gpu.ptx_jit_only": lambda: facts(
        frameworks=frameworks(torch_probe=torch(arch=("sm_80", "compute_80")))
    ),
    "torch.cuda_unavailable": lambda: facts(
        frameworks=frameworks(torch_probe=torch(cuda_available=False))
    ),
    "tf.windows_native_gpu": lambda: facts(
        system=system(os_name="windows"), frameworks=frameworks(plat="win32")
    ),
    "python.unsupported_by_framework": lambda: facts(frameworks=frameworks(python="3.14.0")),
    "knowledge.newer_release": lambda: facts(
        frameworks=frameworks(torch_probe=torch(f"{beyond_data('torch')}.0+cu124"))
    ),
    "cpu.no_avx": lambda: facts(system=system(cpu_features=("sse4_2",))),
    "memory.low_ram": lambda: facts(
        system=system(ram_total_bytes=4 * GIB, ram_available_bytes=1 * GIB)
    ),
    "disk.low_free": lambda: facts(system=system(disk_free_bytes=2 * GIB)),
    "wsl.libcuda_not_symlink": lambda: facts(cuda_libs=cuda_libs(wsl_problem=True)),
    "probe.failed": lambda: DoctorFacts(
        system=Missing("error", "OSError: boom"),
        nvidia=nvidia(),
        cuda_libs=cuda_libs(),
        env_managers=Missing("error"),
        frameworks=frameworks(),
        probe_errors={"system": "OSError: boom"},
    ),
}

#: The nearest healthy variant of each firing case.
SILENT: dict[str, Case] = {
    "nvml.no_library": lambda: facts(),
    "nvml.driver_not_loaded": lambda: facts(),
    "nvml.driver_mismatch": lambda: facts(),
    "nvml.no_permission": lambda: facts(),
    "nvml.error": lambda: facts(),
    "nvml.function_not_found": lambda: facts(nvidia=nvidia(functions_not_found=())),
    "gpu.lost": lambda: facts(nvidia=nvidia(gpus=(gpu(0), gpu(1)))),
    "cuda_visible_devices.hides_all": lambda: facts(cuda_libs=cuda_libs(cvd="0")),
    "cuda_visible_devices.unknown_device": lambda: facts(
        nvidia=nvidia(gpus=(gpu(0), gpu(1))),
        cuda_libs=cuda_libs(cvd="1,GPU-fa4e0000-0000-4000-8000-000000000000"),
    ),
    "gpu.mig_enabled": lambda: facts(),
    "gpu.mig_pending_reset": lambda: facts(
        nvidia=nvidia(gpus=(gpu(mig_mode_current=True, mig_mode_pending=True),))
    ),
    "gpu.memory_held": lambda: facts(nvidia=nvidia(gpus=(gpu(memory_used_bytes=300 * MIB),))),
    "gpu.ecc_errors": lambda: facts(),
    "framework.import_crashed": lambda: facts(),
    "framework.import_timeout": lambda: facts(),
    "framework.import_failed": lambda: facts(),
    # A CPU-only machine: TF's CUDA build complaining about libraries is only a warning there,
    # and with no complaint at all there is no finding.
    "framework.cuda_libs_failed": lambda: facts(nvidia=nvidia("no_library")),
    "torch.cpu_build_on_gpu_machine": lambda: facts(
        nvidia=nvidia("no_library"),
        frameworks=frameworks(torch_probe=torch("2.13.0+cpu", cuda=None)),
    ),
    "tensorflow.cpu_build_on_gpu_machine": lambda: facts(
        nvidia=nvidia(gpus=()), frameworks=frameworks(tf_probe=tensorflow("2.21.0", cuda=None))
    ),
    "driver.too_old_for_build": lambda: facts(
        nvidia=nvidia(driver_version="550.54.15", cuda_driver_version="12.4")
    ),
    "driver.minor_version_compat": lambda: facts(),
    "gpu.arch_not_in_build": lambda: facts(
        nvidia=nvidia(cuda_driver_version="12.8", gpus=(gpu(compute_capability=(8, 9)),))
    ),
    "gpu.ptx_jit_only": lambda: facts(),
    "torch.cuda_unavailable": lambda: facts(
        frameworks=frameworks(torch_probe=torch(cuda_available=False)),
        cuda_libs=cuda_libs(cvd=""),
    ),
    "tf.windows_native_gpu": lambda: facts(
        system=system(os_name="windows"),
        frameworks=frameworks(tf_probe=tensorflow("2.10.1", cuda="11.2"), plat="win32"),
    ),
    "python.unsupported_by_framework": lambda: facts(frameworks=frameworks(python="3.12.4")),
    "knowledge.newer_release": lambda: facts(),
    "cpu.no_avx": lambda: facts(system=system(machine="aarch64", cpu_features=())),
    "memory.low_ram": lambda: facts(),
    "disk.low_free": lambda: facts(system=system(disk_free_bytes=Missing("error"))),
    "wsl.libcuda_not_symlink": lambda: facts(),
    "probe.failed": lambda: facts(),
}


def companion(
    name: str, version: str, status: str = "ok", error: str = "", **kw: Any
) -> CompanionBuild:
    """A companion's probe facts; ``cuda`` from the version's ``+cuXYZ`` / ``+cpu`` tag."""
    tag = version.partition("+")[2]
    cuda: Any = f"{int(tag[2:-1])}.{tag[-1]}" if tag.startswith("cu") else Missing("cpu_build")
    base: dict[str, Any] = {
        "name": name,
        "status": status,
        "detail": "",
        "version": version,
        "location": f"/env/lib/python3.11/site-packages/{name}",
        "torch_requirement": Missing("not_reported"),
        "imported": status != "import_failed",
        "import_error": error if status == "import_failed" else "",
        "extension_loaded": status == "ok",
        "extension_error": "" if status == "ok" else error,
        "extension_file": f"/env/lib/python3.11/site-packages/{name}/_C.so",
        "cuda": cuda,
    }
    base.update(kw)
    return CompanionBuild(**base)


def with_companions(
    torch_version: str = "2.6.0+cu124", cuda: str | None = "12.4", **found: CompanionBuild
) -> DoctorFacts:
    probe = torch(torch_version, cuda=cuda)
    assert isinstance(probe.torch, TorchBuild)
    build = dataclasses.replace(probe.torch, **found)
    return facts(frameworks=frameworks(torch_probe=dataclasses.replace(probe, torch=build)))


NMS_MISSING = "RuntimeError: operator torchvision::nms does not exist"
LOADER = "OSError: libc10_cuda.so: cannot open shared object file: No such file or directory"
#: (companion, release with torch 2.6, one release too old, release with torch 2.13)
_COMPANION_VERSIONS = (
    ("torchvision", "0.21.0", "0.20.0", "0.28.0"),
    ("torchaudio", "2.6.0", "2.5.0", "2.11.0"),
)
for _name, _ok, _old, _for_2_13 in _COMPANION_VERSIONS:
    FIRES.update({
        f"{_name}.release_mismatch": lambda n=_name, v=_old: with_companions(
            **{n: companion(n, f"{v}+cu124")}
        ),
        f"{_name}.cpu_build_with_cuda_torch": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cpu")}
        ),
        f"{_name}.cuda_build_with_cpu_torch": lambda n=_name, v=_for_2_13: with_companions(
            "2.13.0+cpu", None, **{n: companion(n, f"{v}+cu130", "import_failed", NMS_MISSING)}
        ),
        f"{_name}.cuda_mismatch": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cu118")}
        ),
        f"{_name}.extension_failed": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cu124", "extension_failed", LOADER)}
        ),
    })  # fmt: skip
    SILENT.update({
        f"{_name}.release_mismatch": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cu124")}
        ),
        f"{_name}.cpu_build_with_cuda_torch": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cu124")}
        ),
        f"{_name}.cuda_build_with_cpu_torch": lambda n=_name, v=_for_2_13: with_companions(
            "2.13.0+cpu", None, **{n: companion(n, f"{v}+cpu")}
        ),
        f"{_name}.cuda_mismatch": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cu124")}
        ),
        f"{_name}.extension_failed": lambda n=_name, v=_ok: with_companions(
            **{n: companion(n, f"{v}+cu124", "ok")}
        ),
    })  # fmt: skip


# The GPU health checks and failure modes of issue 11 keep their cases in their own module.
from tests.doctor import health_cases  # noqa: E402 - needs the helpers above

health_cases.register(FIRES, SILENT)


def ids_of(case: Case) -> list[str]:
    return [f.id for f in evaluate(case())]


def test_every_check_id_has_a_firing_and_a_silent_case() -> None:
    assert set(FIRES) == set(CHECK_IDS)
    assert set(SILENT) == set(CHECK_IDS)


def test_healthy_machine_has_no_findings() -> None:
    assert evaluate(facts()) == ()


@pytest.mark.parametrize("check_id", sorted(FIRES))
def test_check_fires(check_id: str) -> None:
    found = [f for f in evaluate(FIRES[check_id]()) if f.id == check_id]
    assert found, f"{check_id} did not fire"
    for f in found:
        assert f.title and f.message
        assert f.fix or f.severity == "info"


@pytest.mark.parametrize("check_id", sorted(SILENT))
def test_check_stays_silent(check_id: str) -> None:
    assert check_id not in ids_of(SILENT[check_id])


def test_findings_are_sorted_errors_first() -> None:
    severities = [
        f.severity
        for f in evaluate(
            facts(
                nvidia=nvidia(gpus=(gpu(mig_mode_current=True, mig_mode_pending=True),)),
                frameworks=frameworks(torch_probe=torch("2.13.0+cpu", cuda=None)),
                system=system(ram_total_bytes=4 * GIB),
            )
        )
    ]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_a_check_that_raises_becomes_a_probe_failed_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dlsetup.checks as checks

    def broken(_: DoctorFacts) -> list[Any]:
        raise KeyError("surprise")

    monkeypatch.setattr(checks, "CHECKS", (broken,))
    (only,) = checks.evaluate(facts())
    assert only.id == "probe.failed"
    assert only.message == "broken raised KeyError: 'surprise'."


def test_cpu_torch_fix_names_the_wheel_for_driver_and_gpu() -> None:
    f = next(
        f
        for f in evaluate(facts(frameworks=frameworks(torch_probe=torch("2.13.0+cpu", cuda=None))))
        if f.id == "torch.cpu_build_on_gpu_machine"
    )
    assert f.fix == (
        "/env/bin/python -m pip install 'torch==2.14.*' --index-url "
        "https://download.pytorch.org/whl/cu126  (PyTorch 2.14 built for CUDA 12.6, runs on this "
        "driver through minor-version compatibility; a driver >= 560.28.03 gives full CUDA 12.6 "
        "support)"
    )


def test_cpu_tensorflow_on_a_driver_470_gets_the_newest_release_it_runs() -> None:
    old_driver = facts(
        nvidia=nvidia(driver_version="470.82.01", cuda_driver_version="11.4"),
        frameworks=frameworks(tf_probe=tensorflow("2.21.0", cuda=None)),
    )
    (f,) = [f for f in evaluate(old_driver) if f.id == "tensorflow.cpu_build_on_gpu_machine"]
    assert f.command == (
        "/env/bin/python -m pip uninstall -y tensorflow tensorflow-cpu && "
        "/env/bin/python -m pip install 'tensorflow[and-cuda]==2.14.*'"
    )
    assert f.fix.endswith(
        "(TensorFlow 2.14 built for CUDA 11.8, runs on this driver through minor-version "
        "compatibility)."
    )


def test_cpu_tensorflow_on_a_cuda_10_driver_asks_for_a_driver_update_first() -> None:
    cuda_10 = facts(
        nvidia=nvidia(driver_version="440.33.01", cuda_driver_version="10.2"),
        frameworks=frameworks(tf_probe=tensorflow("2.21.0", cuda=None)),
    )
    (f,) = [f for f in evaluate(cuda_10) if f.id == "tensorflow.cpu_build_on_gpu_machine"]
    assert f.command == ""
    assert f.fix.startswith(
        "No TensorFlow release with CUDA wheels runs on this driver (CUDA 10.2) and Python: "
        "update the NVIDIA driver"
    )


def test_tf_missing_cuda_libraries_reinstalls_the_cuda_wheels_of_the_same_release() -> None:
    def libs_failed(version: str) -> Any:
        probe = tensorflow(version, failed_libraries=("libcudnn.so.8",))
        found = evaluate(facts(frameworks=frameworks(tf_probe=probe)))
        return next(f for f in found if f.id == "framework.cuda_libs_failed")

    assert libs_failed("2.17.0").command == (
        "/env/bin/python -m pip install 'tensorflow[and-cuda]==2.17.0'"
    )
    old = libs_failed("2.13.1")
    assert old.command == ""  # 2.13 has no and-cuda extra: pip would upgrade instead
    assert old.fix.startswith("tensorflow 2.13.1 predates the and-cuda extra")


def test_tf_windows_fix_says_wsl2_or_2_10() -> None:
    (f,) = [
        f for f in evaluate(FIRES["tf.windows_native_gpu"]()) if f.id == "tf.windows_native_gpu"
    ]
    assert f.message == (
        "TensorFlow 2.10 was the last release with GPU support on native Windows; 2.17.0 runs "
        "on the CPU only here."
    )
    assert f.fix.startswith("Use WSL2 (pip install tensorflow[and-cuda] inside it)")


def test_no_avx_is_an_error_only_when_tensorflow_is_installed() -> None:
    with_tf = [f for f in evaluate(FIRES["cpu.no_avx"]()) if f.id == "cpu.no_avx"]
    without = facts(
        system=system(cpu_features=("sse4_2",)),
        frameworks=dataclasses.replace(frameworks(), tensorflow=Missing("not_installed")),
    )
    assert with_tf[0].severity == "error"
    assert [f.severity for f in evaluate(without) if f.id == "cpu.no_avx"] == ["warning"]


def _cvd_findings(value: str, gpu_count: int = 2, **gpu_kw: Any) -> list[Any]:
    gpus = tuple(gpu(i, **gpu_kw) for i in range(gpu_count))
    found = evaluate(facts(nvidia=nvidia(gpus=gpus), cuda_libs=cuda_libs(cvd=value)))
    return [f for f in found if f.id.startswith("cuda_visible_devices.")]


def test_missing_gpu_in_the_middle_hides_the_gpus_after_it() -> None:
    (f,) = _cvd_findings("0,7,1")
    assert (f.id, f.severity) == ("cuda_visible_devices.unknown_device", "warning")
    assert f.title == "CUDA_VISIBLE_DEVICES names a GPU that does not exist: 7"
    assert f.message == (
        "CUDA_VISIBLE_DEVICES='0,7,1': GPU 7 does not exist (this machine has GPUs 0 and 1). "
        "CUDA stops reading the list at the first entry it cannot use, so GPU 1 listed after "
        "it is hidden too. CUDA sees GPU 0 only."
    )
    assert f.fix == (
        "export CUDA_VISIBLE_DEVICES=0,1 (indices or UUIDs from nvidia-smi -L), or unset "
        "CUDA_VISIBLE_DEVICES."
    )
    assert f.details["hidden_gpus"] == [1]
    assert f.details["visible_gpus"] == [0]


@pytest.mark.parametrize("value", ["", "-1", "none", "NoDevFiles", "-1,0"])
def test_usual_ways_to_hide_every_gpu_are_a_hides_all_warning(value: str) -> None:
    (f,) = _cvd_findings(value)
    assert (f.id, f.severity) == ("cuda_visible_devices.hides_all", "warning")
    assert f.message == (
        f"CUDA_VISIBLE_DEVICES={value!r} makes all 2 GPU(s) invisible to CUDA: frameworks run "
        "on the CPU."
    )


def test_uuid_prefix_matching_no_gpu_is_an_error() -> None:
    (f,) = _cvd_findings("GPU-dead,1")
    assert (f.id, f.severity) == ("cuda_visible_devices.unknown_device", "error")
    assert f.message == (
        "CUDA_VISIBLE_DEVICES='GPU-dead,1': no GPU's UUID starts with GPU-dead (nvidia-smi -L "
        "lists them). CUDA stops reading the list at the first entry it cannot use, so GPU 1 "
        "listed after it is hidden too. CUDA sees no GPU: frameworks run on the CPU."
    )
    assert f.fix.startswith("export CUDA_VISIBLE_DEVICES=1 ")


def test_mig_uuid_without_mig_mode_is_an_error_and_with_it_is_silent() -> None:
    mig = "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"
    (f,) = _cvd_findings(mig, mig_mode_current=False)
    assert (f.id, f.severity) == ("cuda_visible_devices.unknown_device", "error")
    assert f.message.startswith(
        f"CUDA_VISIBLE_DEVICES={mig!r}: {mig} names a MIG instance, but MIG mode is off on "
        "the GPU(s)."
    )
    assert _cvd_findings(mig, mig_mode_current=True) == []


def test_unknown_device_after_a_valid_one_is_only_a_warning() -> None:
    found = [
        f
        for f in evaluate(facts(cuda_libs=cuda_libs(cvd="0,5")))
        if f.id == "cuda_visible_devices.unknown_device"
    ]
    assert [f.severity for f in found] == ["warning"]


def test_no_wheel_for_the_driver_names_the_smallest_driver_update() -> None:
    old_driver = facts(
        nvidia=nvidia(driver_version="440.33.01", cuda_driver_version="10.2"),
        frameworks=frameworks(torch_probe=torch("2.13.0+cpu", cuda=None)),
    )
    (f,) = [f for f in evaluate(old_driver) if f.id == "torch.cpu_build_on_gpu_machine"]
    assert f.fix == (
        "No PyTorch wheel runs on this driver (CUDA 10.2) with this GPU: update the NVIDIA driver "
        "to 455.23 or newer (CUDA 11.1), then /env/bin/python -m pip install 'torch==2.7.*' "
        "--index-url https://download.pytorch.org/whl/cu118"
    )
