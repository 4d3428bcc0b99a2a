"""Firing and silent cases over constructed facts for the GPU health checks and the failure modes
of issue 11; :mod:`tests.doctor.test_checks` merges them into its FIRES/SILENT tables, so the
catalogue-wide tests (every id fires and stays silent, docs list every id) cover them.

The helpers of test_checks are looked up when a case runs, not at import, so this module can be
imported while test_checks itself is still being imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlsetup.checks.context import DoctorFacts
from dlsetup.facts import Missing

Case = Callable[[], DoctorFacts]


def _tc() -> Any:
    from tests.doctor import test_checks

    return test_checks


def one_gpu(**kw: Any) -> DoctorFacts:
    """The healthy H100 of test_checks with some NVML fields replaced."""
    tc = _tc()
    return tc.facts(nvidia=tc.nvidia(gpus=(tc.gpu(**kw),)))


def gpus(count: int, **kw: Any) -> DoctorFacts:
    tc = _tc()
    return tc.facts(nvidia=tc.nvidia(gpus=tuple(tc.gpu(i, **kw) for i in range(count))))


BUSY = {"utilization_gpu_percent": 97, "clocks_event_reasons": 0}
IDLE = {"utilization_gpu_percent": 0, "clocks_event_reasons": 0x1}
LINK = {"pcie_gen_max": 5, "pcie_width_max": 16, "pcie_gen_gpu_max": 5}

HEALTH_FIRES: dict[str, Case] = {
    "gpu.pcie_link_degraded": lambda: one_gpu(
        **LINK, **BUSY, pcie_gen_current=5, pcie_width_current=8
    ),
    "gpu.pcie_slot_limits_gpu": lambda: one_gpu(
        pcie_gen_current=3, pcie_gen_max=3, pcie_gen_gpu_max=5
    ),
    "gpu.clocks_slowdown": lambda: one_gpu(utilization_gpu_percent=99, clocks_event_reasons=0x88),
    "gpu.temperature_near_slowdown": lambda: one_gpu(temperature_c=85, temperature_slowdown_c=87),
    "gpu.power_limit_below_default": lambda: one_gpu(
        power_limit_w=450.0, power_limit_default_w=700.0
    ),
    "gpu.ecc_errors_aggregate": lambda: one_gpu(ecc_errors_uncorrected_aggregate=2),
    "gpu.reset_pending": lambda: one_gpu(remapped_rows_pending=True),
    "gpu.row_remap_failed": lambda: one_gpu(remapped_rows_failed=True),
    "gpu.persistence_off": lambda: gpus(2, persistence_mode=False),
    "gpu.unreachable": lambda: unreachable_case(1),
}

#: The nearest healthy variant of each: the thing that would look alike but is normal.
HEALTH_SILENT: dict[str, Case] = {
    # Gen1 at idle is power saving, not a fault.
    "gpu.pcie_link_degraded": lambda: one_gpu(
        **LINK, **IDLE, pcie_gen_current=1, pcie_width_current=16
    ),
    "gpu.pcie_slot_limits_gpu": lambda: one_gpu(pcie_gen_current=1, **LINK),
    # At the power limit under load: sw_power_cap is the limit doing its job.
    "gpu.clocks_slowdown": lambda: one_gpu(utilization_gpu_percent=99, clocks_event_reasons=0x4),
    "gpu.temperature_near_slowdown": lambda: one_gpu(temperature_c=70, temperature_slowdown_c=87),
    "gpu.power_limit_below_default": lambda: one_gpu(
        power_limit_w=700.0, power_limit_default_w=700.0
    ),
    # Errors since the driver loaded are gpu.ecc_errors' job; this one stays quiet then.
    "gpu.ecc_errors_aggregate": lambda: one_gpu(
        ecc_errors_uncorrected=2, ecc_errors_uncorrected_aggregate=2
    ),
    "gpu.reset_pending": lambda: one_gpu(remapped_rows_pending=False, retired_pages_pending=False),
    "gpu.row_remap_failed": lambda: one_gpu(remapped_rows_failed=False),
    # One desktop GPU: persistence off is the normal default there.
    "gpu.persistence_off": lambda: one_gpu(name="NVIDIA GeForce RTX 4090", persistence_mode=False),
    # Every GPU answers NVML (persistence off on a desktop board: not this check's business).
    "gpu.unreachable": lambda: gpus(4),
}


def unreachable_case(index: int, count: int = 4) -> DoctorFacts:
    """``count`` A100s, GPU ``index`` answering nvmlDeviceGetHandleByIndex with error 999."""
    from dlsetup.probes.nvidia import GpuFacts

    tc = _tc()
    error = Missing("error", "NVMLError_Unknown: Unknown Error")
    no_handle = GpuFacts(
        index,
        handle_error_code=999,
        **{
            f: error
            for f in GpuFacts.__dataclass_fields__
            if f not in ("index", "lost", "handle_error_code")
        },
    )
    rest = [
        tc.gpu(i, name="NVIDIA A100-SXM4-80GB", compute_capability=(8, 0)) for i in range(count)
    ]
    rest[index] = no_handle
    return tc.facts(nvidia=tc.nvidia(gpus=tuple(rest)))


# ---------------------------------------------------------------------------- failure modes ----

#: torch's UserWarning when CUDA init fails on an NVSwitch box without Fabric Manager.
ERROR_802 = (
    "UserWarning: CUDA initialization: Unexpected error from cudaGetDeviceCount(). Did you run "
    "some cuda functions before calling NumCudaDevices() that might have already set an error? "
    "Error 802: system not yet initialized (Triggered internally at "
    "../c10/cuda/CUDAFunctions.cpp:108.)"
)
#: torch's import error when an old CUDA toolkit's libcublasLt on LD_LIBRARY_PATH wins.
CUBLAS_SHADOWED = (
    "OSError: /env/lib/python3.11/site-packages/torch/lib/../../nvidia/cublas/lib/"
    "libcublas.so.12: undefined symbol: cublasLtGetStatusString, version libcublasLt.so.12"
)
#: Exact pins read from the real wheels' METADATA (PyPI, linux x86_64, cp311).
TORCH_2_5_1_CUDNN = "9.1.0.70"
TF_2_19_0_CUDNN = "9.3.0.75"
TORCH_2_3_1_CUDNN = "8.9.2.26"


def with_libs(**kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(_tc().cuda_libs(), **kw)


def access(**kw: Any) -> Any:
    from dlsetup.probes.cuda_libs import GpuAccessFacts

    return GpuAccessFacts(**kw)


def container_case(
    visible: str | None, status: str = "no_library", *, torch_cuda: str | None = None
) -> DoctorFacts:
    """A docker container without /dev/nvidia*; ``torch_cuda``: torch is that CUDA build (PyPI's
    Linux torch), else the CPU build."""
    tc = _tc()
    version = f"2.14.1+cu{torch_cuda.replace('.', '')}" if torch_cuda else "2.13.0+cpu"
    return tc.facts(
        system=tc.system(container="docker"),
        nvidia=tc.nvidia(status),
        cuda_libs=with_libs(
            gpu_access=access(nvidia_visible_devices=visible if visible else Missing("unset"))
        ),
        frameworks=tc.frameworks(
            torch_probe=tc.torch(version, cuda=torch_cuda, cuda_available=False),
            tf_probe=tc.tensorflow("2.21.0", cuda=None),
        ),
    )


def shadowed(entries: tuple[tuple[str, tuple[str, ...]], ...]) -> DoctorFacts:
    from dlsetup.probes.cuda_libs import LdPathEntry

    tc = _tc()
    failed = tc.torch(
        status="import_failed", detail=CUBLAS_SHADOWED, torch=Missing("import_failed")
    )
    return tc.facts(
        cuda_libs=with_libs(ld_library_path=tuple(LdPathEntry(d, libs) for d, libs in entries)),
        frameworks=tc.frameworks(torch_probe=failed),
    )


def nvcc_case(release: str) -> DoctorFacts:
    from dlsetup.probes.cuda_libs import NvccFacts

    nvcc = NvccFacts(path="/usr/local/cuda/bin/nvcc", on_path=True, release=release)
    return _tc().facts(cuda_libs=with_libs(nvcc=nvcc))


def pins_case(installed: str, *pins: tuple[str, str, str]) -> DoctorFacts:
    from dlsetup.probes.cuda_wheels import CudaWheelsFacts, WheelPin

    wheels = CudaWheelsFacts(
        python="/env/bin/python",
        installed={"nvidia-cudnn-cu12": installed},
        pins=tuple(WheelPin(f, v, "nvidia-cudnn-cu12", pin) for f, v, pin in pins),
    )
    return _tc().facts(cuda_libs=with_libs(wheels=wheels))


def fabric_case(state: str, messages: tuple[str, ...] = (), switches: int = 0) -> DoctorFacts:
    tc = _tc()
    return tc.facts(
        nvidia=tc.nvidia(
            gpus=tuple(tc.gpu(i, fabric_state=state, fabric_status=0) for i in range(8))
        ),
        cuda_libs=with_libs(gpu_access=access(nvswitch_count=switches)),
        frameworks=tc.frameworks(torch_probe=tc.torch(cuda_available=False, messages=messages)),
    )


CUDA_LIB_DIR = "/usr/local/cuda-12.0/lib64"
FAULT_FIRES: dict[str, Case] = {
    "container.no_gpu_access": lambda: container_case("all"),
    "fabric.manager_not_running": lambda: fabric_case("not_started", (ERROR_802,), switches=4),
    "ld_library_path.shadows_framework_libs": lambda: shadowed(
        (("/opt/other/lib", ()), (CUDA_LIB_DIR, ("libcublas.so.12", "libcublasLt.so.12")))
    ),
    "nvcc.older_than_framework": lambda: nvcc_case("11.8"),
    "cuda_wheels.pin_conflict": lambda: pins_case(
        TORCH_2_5_1_CUDNN,
        ("torch", "2.5.1", TORCH_2_5_1_CUDNN),
        ("tensorflow", "2.19.0", TF_2_19_0_CUDNN),
    ),
}

FAULT_SILENT: dict[str, Case] = {
    # A CPU-only container: nothing asks for a GPU there.
    "container.no_gpu_access": lambda: container_case(None),
    # Fabric Manager has registered the GPUs.
    "fabric.manager_not_running": lambda: fabric_case("completed", switches=4),
    # The import failed, but no LD_LIBRARY_PATH entry holds the library it names.
    "ld_library_path.shadows_framework_libs": lambda: shadowed((("/opt/other/lib", ()),)),
    "nvcc.older_than_framework": lambda: nvcc_case("12.4"),
    # Installed the newer pin: torch built with 9.1 loads 9.3 (same major, newer minor).
    "cuda_wheels.pin_conflict": lambda: pins_case(
        TF_2_19_0_CUDNN,
        ("torch", "2.5.1", TORCH_2_5_1_CUDNN),
        ("tensorflow", "2.19.0", TF_2_19_0_CUDNN),
    ),
}


def register(fires: dict[str, Case], silent: dict[str, Case]) -> None:
    """Add this module's cases to test_checks' tables."""
    fires.update(HEALTH_FIRES)
    silent.update(HEALTH_SILENT)
    fires.update(FAULT_FIRES)
    silent.update(FAULT_SILENT)
