"""NVIDIA facts through NVML (nvidia-ml-py, module ``pynvml``). The only module that imports pynvml.

Contract (used by doctor's checks and by ``dlsetup lock --variant auto``):

* :func:`probe_nvidia` never raises for a driver problem: the result's ``status`` says what
  happened (``ok``, ``no_library``, ``driver_not_loaded``, ``driver_mismatch``, ``no_permission``,
  ``error``) and ``status_detail`` carries the NVML error text.
* Every per-GPU field degrades on its own to :class:`dlsetup.facts.Missing` (NotSupported,
  FunctionNotFound, NoPermission, ...); a GPU that is lost becomes a :class:`GpuFacts` whose
  ``lost`` is True, and the probe goes on with the next one.
* NVML needs no GPU memory and creates no CUDA context, so this runs safely while every GPU is busy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dlsetup.facts import Maybe, Missing


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on a GPU."""

    pid: int
    name: Maybe[str]
    used_memory_bytes: Maybe[int]


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as NVML sees it. Memory in bytes, temperature in °C, power in watts."""

    index: int
    lost: bool = False
    name: Maybe[str] = Missing("not_read")
    uuid: Maybe[str] = Missing("not_read")
    compute_capability: Maybe[tuple[int, int]] = Missing("not_read")
    memory_total_bytes: Maybe[int] = Missing("not_read")
    memory_used_bytes: Maybe[int] = Missing("not_read")
    temperature_c: Maybe[int] = Missing("not_read")
    power_draw_w: Maybe[float] = Missing("not_read")
    power_limit_w: Maybe[float] = Missing("not_read")
    pcie_gen_current: Maybe[int] = Missing("not_read")
    pcie_gen_max: Maybe[int] = Missing("not_read")
    pcie_width_current: Maybe[int] = Missing("not_read")
    pcie_width_max: Maybe[int] = Missing("not_read")
    mig_mode_current: Maybe[bool] = Missing("not_read")
    mig_mode_pending: Maybe[bool] = Missing("not_read")
    ecc_mode_current: Maybe[bool] = Missing("not_read")
    ecc_errors_uncorrected: Maybe[int] = Missing("not_read")
    persistence_mode: Maybe[bool] = Missing("not_read")
    processes: Maybe[tuple[GpuProcess, ...]] = Missing("not_read")


@dataclass(frozen=True)
class NvidiaFacts:
    """What NVML says about this machine.

    Attributes:
        status: ``ok`` | ``no_library`` | ``driver_not_loaded`` | ``driver_mismatch`` |
            ``no_permission`` | ``error``.
        status_detail: the NVML error name and message when ``status`` is not ``ok``.
        nvml_error_code: the NVML return code of the failed init (9, 12, 18, ...), else None.
        driver_version: for example ``"535.104.05"``.
        cuda_driver_version: the newest CUDA the driver supports, decoded: 12040 -> ``"12.4"``.
        nvml_version: for example ``"12.535.104.05"``.
        gpus: one entry per GPU NVML counts (regardless of ``CUDA_VISIBLE_DEVICES``).
        functions_not_found: NVML functions this driver lacks (recorded once each).
    """

    status: str
    status_detail: str = ""
    nvml_error_code: int | None = None
    driver_version: Maybe[str] = Missing("no_driver")
    cuda_driver_version: Maybe[str] = Missing("no_driver")
    nvml_version: Maybe[str] = Missing("no_driver")
    gpus: tuple[GpuFacts, ...] = ()
    functions_not_found: tuple[str, ...] = field(default_factory=tuple)


def decode_cuda_driver_version(value: int) -> str:
    """Decode NVML's ``1000*major + 10*minor`` encoding: ``12040 -> "12.4"``, ``11040 -> "11.4"``."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def probe_nvidia() -> NvidiaFacts:
    """Read every NVIDIA fact NVML offers; never raises for a driver or GPU problem."""
    raise NotImplementedError("being written: see the NVML helper's task")
