"""Build and script the fake NVIDIA driver library (``fake_nvml.c``) that the tests load through
the real ``pynvml``.

How it is used::

    libdir = build_fake_nvml(tmp_dir)                     # holds libnvidia-ml.so.1
    env = nvml_env(libdir, **SCENARIOS["mig_on"])        # LD_LIBRARY_PATH + FAKE_NVML_*
    run_cli("doctor", "--json", env=env)                  # a fresh process loads the fake

pynvml dlopens ``libnvidia-ml.so.1`` once per process, so every scenario runs in its own
subprocess. :func:`subprocess_env` gives a whole environment (this process's, minus any stray
``FAKE_NVML_*``, plus the scenario) for ``subprocess.run(..., env=...)``.

Environment-variable contract (the C library reads these at each call; keyword names for
:func:`nvml_env` are the lower-case suffix, e.g. ``gpu_count="8"`` -> ``FAKE_NVML_GPU_COUNT=8``).
"Per GPU" values are comma lists whose last item repeats for the remaining GPUs.

=============================  ======================  ===============================================
variable                       default                 meaning
=============================  ======================  ===============================================
FAKE_NVML_INIT_ERROR           0                       code nvmlInit* returns (9 driver not loaded,
                                                       18 library/driver mismatch, 4 no permission)
FAKE_NVML_DRIVER               535.104.05              nvmlSystemGetDriverVersion
FAKE_NVML_CUDA                 12020                   nvmlSystemGetCudaDriverVersion(_v2), 1000*major+10*minor
FAKE_NVML_NVML_VERSION         <cuda major>.<driver>   nvmlSystemGetNVMLVersion ("12.535.104.05")
FAKE_NVML_GPU_COUNT            1                       nvmlDeviceGetCount(_v2), at most 64
FAKE_NVML_GPU_NAMES            NVIDIA H100 80GB HBM3   per GPU, nvmlDeviceGetName
FAKE_NVML_UUIDS                GPU-fa4e0000-0000-      per GPU, nvmlDeviceGetUUID; the default ends
                               4000-8000-<index>       in the index as 12 digits
FAKE_NVML_CC                   9.0                     per GPU, nvmlDeviceGetCudaComputeCapability
FAKE_NVML_MEM_TOTAL_MIB        81559                   per GPU, memory total (MiB)
FAKE_NVML_MEM_USED_MIB         0                       per GPU, memory used (MiB; v1 adds reserved)
FAKE_NVML_MEM_RESERVED_MIB     0                       per GPU, driver-reserved memory (MiB, v2 only)
FAKE_NVML_TEMP_C               34                      per GPU, nvmlDeviceGetTemperature(V) (°C)
FAKE_NVML_POWER_W              71.5                    per GPU, nvmlDeviceGetPowerUsage (W, sent in mW)
FAKE_NVML_POWER_LIMIT_W        700                     per GPU, enforced / management limit (W)
FAKE_NVML_PCIE_GEN             5,5                     current,max PCIe generation (every GPU)
FAKE_NVML_PCIE_WIDTH           16,16                   current,max PCIe link width (every GPU)
FAKE_NVML_MIG                  0,0                     current,pending MIG mode (every GPU)
FAKE_NVML_ECC                  1,1                     current,pending ECC mode (every GPU); with
                                                       ECC off, nvmlDeviceGetTotalEccErrors is
                                                       NOT_SUPPORTED like on real hardware
FAKE_NVML_ECC_UNCORRECTED      0                       per GPU, total uncorrected ECC errors
FAKE_NVML_PERSISTENCE          1                       per GPU, persistence mode (0/1)
FAKE_NVML_PROCS                (none)                  ``<gpu>:<pid>:<name>:<usedMiB>[;...]`` compute
                                                       processes; usedMiB ``-`` = not available;
                                                       the name is what nvmlSystemGetProcessName
                                                       returns for that pid (others: NOT_FOUND)
FAKE_NVML_NOT_SUPPORTED        (none)                  ``<fn>[,<fn>...]`` return NOT_SUPPORTED (3)
FAKE_NVML_NO_PERMISSION        (none)                  ``<fn>[,<fn>...]`` return NO_PERMISSION (4)
FAKE_NVML_LOST_GPUS            (none)                  ``<index>[,...]``: every device call on these
                                                       GPUs returns GPU_IS_LOST (15); getting the
                                                       handle still works
FAKE_NVML_ERRORS               (none)                  ``<fn>[@<gpu>]:<code>[,...]`` any return code
                                                       for one function (optionally one GPU), e.g.
                                                       ``nvmlDeviceGetHandleByIndex_v2@1:15``
FAKE_NVML_CALL_LOG             (none)                  a file path: each call appends its symbol name
FAKE_NVML_PCIE_GPU_MAX_GEN     max of PCIE_GEN         nvmlDeviceGetGpuMaxPcieLinkGeneration (the
                                                       GPU's own max, every GPU)
FAKE_NVML_UTIL_GPU             0                       per GPU, utilization.gpu (%)
FAKE_NVML_CLOCK_REASONS        0x1 (idle)              per GPU, clock event (throttle) reason mask
FAKE_NVML_SM_CLOCK             345,1980                current,max SM clock in MHz (every GPU)
FAKE_NVML_TEMP_SLOWDOWN_C      87                      per GPU, slowdown temperature threshold (°C)
FAKE_NVML_POWER_DEFAULT_LIMIT_W  POWER_LIMIT_W         per GPU, default power limit (W)
FAKE_NVML_ECC_UNCORRECTED_AGGREGATE  ECC_UNCORRECTED   per GPU, lifetime uncorrected ECC errors
FAKE_NVML_RETIRED_PENDING      0                       per GPU, retired pages pending (0/1)
FAKE_NVML_REMAPPED_ROWS        0,0,0,0                 corrected,uncorrected,pending,failure rows
FAKE_NVML_FABRIC               0,0                     fabric state (0 not supported, 1 not
                                                       started, 2 in progress, 3 completed),
                                                       status (an NVML return code)
FAKE_NVML_NVLINKS              0,0                     NVLinks per GPU, NVSwitches: 0 links answers
                                                       NOT_SUPPORTED (PCIe board); link l reaches
                                                       NVSwitch l % switches (PCI bus 0xC0 + it),
                                                       or a peer GPU when switches is 0
FAKE_NVML_NVLINKS_DOWN         0                       per GPU, how many of its last NVLinks are
                                                       down (nvmlDeviceGetNvLinkState 0)
FAKE_NVML_PCI_BUS              0x10 x (index + 1)      per GPU, its PCI bus number in hex
                                                       (nvmlDeviceGetPciInfo_v3)
=============================  ======================  ===============================================

A function name in NOT_SUPPORTED / NO_PERMISSION / ERRORS also matches its versioned symbols
(``_v2``, ``_v3``, ``V``): ``nvmlDeviceGetMemoryInfo`` covers ``nvmlDeviceGetMemoryInfo_v2``.
Every call made before nvmlInit (or after the last nvmlShutdown) returns UNINITIALIZED (1).

A function the driver *lacks* (pynvml's ``NVMLError_FunctionNotFound``) cannot be scripted at run
time: build a variant with ``build_fake_nvml(dest, omit=("nvmlDeviceGetMigMode",))``.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIBRARY_NAME = "libnvidia-ml.so.1"

#: Every symbol the fake exports (and so every name ``omit`` accepts).
SYMBOLS: tuple[str, ...] = (
    "nvmlInitWithFlags",
    "nvmlInit_v2",
    "nvmlInit",
    "nvmlShutdown",
    "nvmlErrorString",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetCudaDriverVersion",
    "nvmlSystemGetCudaDriverVersion_v2",
    "nvmlSystemGetNVMLVersion",
    "nvmlSystemGetProcessName",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetEccMode",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetPersistenceMode",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetGpuMaxPcieLinkGeneration",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetPowerManagementDefaultLimit",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetGpuFabricInfo",
    "nvmlDeviceGetNvLinkRemoteDeviceType",
    "nvmlDeviceGetNvLinkRemotePciInfo_v2",
    "nvmlDeviceGetPciInfo_v3",
    "nvmlDeviceGetNvLinkState",
)

#: Keyword names :func:`nvml_env` accepts (``FAKE_NVML_`` + upper case).
SETTINGS: frozenset[str] = frozenset(
    {
        "init_error",
        "driver",
        "cuda",
        "nvml_version",
        "gpu_count",
        "gpu_names",
        "uuids",
        "cc",
        "mem_total_mib",
        "mem_used_mib",
        "mem_reserved_mib",
        "temp_c",
        "power_w",
        "power_limit_w",
        "pcie_gen",
        "pcie_width",
        "mig",
        "ecc",
        "ecc_uncorrected",
        "persistence",
        "procs",
        "not_supported",
        "no_permission",
        "lost_gpus",
        "errors",
        "call_log",
        "pcie_gpu_max_gen",
        "util_gpu",
        "clock_reasons",
        "sm_clock",
        "temp_slowdown_c",
        "power_default_limit_w",
        "ecc_uncorrected_aggregate",
        "retired_pending",
        "remapped_rows",
        "fabric",
        "nvlinks",
        "nvlinks_down",
        "pci_bus",
    }
)

_H100 = {
    "driver": "535.104.05",
    "cuda": "12020",
    "gpu_count": "1",
    "gpu_names": "NVIDIA H100 80GB HBM3",
    "cc": "9.0",
    "mem_total_mib": "81559",
    "mem_used_mib": "0",
    "power_limit_w": "700",
}
_A100 = {
    "driver": "550.54.15",
    "cuda": "12040",
    "gpu_names": "NVIDIA A100-SXM4-80GB",
    "cc": "8.0",
    "mem_total_mib": "81920",
    "power_limit_w": "400",
    "pcie_gen": "4,4",
}

#: Named machines. Use as ``nvml_env(libdir, **SCENARIOS[name])``.
SCENARIOS: dict[str, dict[str, str]] = {
    "driver_535_cuda_12_2_one_h100": dict(_H100),
    "driver_470_cuda_11_4": {
        "driver": "470.82.01",
        "cuda": "11040",
        "gpu_count": "1",
        "gpu_names": "Tesla V100-SXM2-16GB",
        "cc": "7.0",
        "mem_total_mib": "16160",
        "power_limit_w": "300",
        "pcie_gen": "3,3",
    },
    "eight_gpus": {**_A100, "gpu_count": "8"},
    "cc_12_0_rtx_5090": {
        "driver": "570.124.04",
        "cuda": "12080",
        "gpu_count": "1",
        "gpu_names": "NVIDIA GeForce RTX 5090",
        "cc": "12.0",
        "mem_total_mib": "32607",
        "mem_used_mib": "412",
        "power_limit_w": "575",
        "ecc": "0,0",
        "persistence": "0",
        # GeForce boards have neither MIG nor ECC.
        "not_supported": "nvmlDeviceGetMigMode,nvmlDeviceGetEccMode,nvmlDeviceGetTotalEccErrors,"
        "nvmlDeviceGetRetiredPagesPendingStatus,nvmlDeviceGetRemappedRows",
    },
    "mig_on": {**_A100, "gpu_count": "1", "mig": "1,1"},
    "mig_pending": {**_A100, "gpu_count": "1", "mig": "0,1"},
    "memory_held_by_other_process": {
        **_H100,
        "mem_used_mib": "40962",
        "procs": "0:4242:/usr/bin/python3:40960",
    },
    "two_gpus_second_lost": {**_H100, "gpu_count": "2", "lost_gpus": "1"},
    "ecc_uncorrected_errors": {**_H100, "ecc_uncorrected": "3"},
    # Health (issue 11): each a sick variant of the healthy H100 above.
    "pcie_x8_under_load": {**_H100, "pcie_width": "8,16", "util_gpu": "97", "clock_reasons": "0"},
    "pcie_gen1_at_idle": {**_H100, "pcie_gen": "1,5"},  # power saving: healthy
    "pcie_gen1_under_load": {**_H100, "pcie_gen": "1,5", "util_gpu": "95", "clock_reasons": "0"},
    "gen5_gpu_in_gen3_slot": {**_H100, "pcie_gen": "3,3", "pcie_gpu_max_gen": "5"},
    "hw_power_brake": {**_H100, "util_gpu": "99", "clock_reasons": "0x88"},
    "sw_power_cap_under_load": {**_H100, "util_gpu": "99", "clock_reasons": "0x4"},  # normal
    "hot_near_slowdown": {**_H100, "temp_c": "85", "temp_slowdown_c": "87"},
    "power_limit_lowered": {**_H100, "power_limit_w": "450", "power_default_limit_w": "700"},
    "ecc_aggregate_only": {**_H100, "ecc_uncorrected_aggregate": "2"},
    "row_remap_pending": {**_H100, "remapped_rows": "0,1,1,0"},
    "row_remap_failed": {**_H100, "remapped_rows": "0,512,0,1"},
    "retired_pages_pending_v100": {
        "driver": "470.82.01",
        "cuda": "11040",
        "gpu_names": "Tesla V100-SXM2-16GB",
        "cc": "7.0",
        "pcie_gen": "3,3",
        "power_limit_w": "300",
        "retired_pending": "1",
    },
    "persistence_off_eight_gpus": {**_A100, "gpu_count": "8", "persistence": "0"},
    "nvswitch_fabric_not_started": {**_H100, "gpu_count": "8", "fabric": "1,0"},
    "nvswitch_fabric_completed": {**_H100, "gpu_count": "8", "fabric": "3,0"},
    # Issue 25: an 8-GPU A100 HGX board: 12 NVLinks per GPU to 6 NVSwitches; A100's NVML has no
    # fabric state (NOT_SUPPORTED), so only the links tell the switches are there.
    "a100_hgx_eight_gpus": {
        **_A100,
        "gpu_count": "8",
        "nvlinks": "12,6",
        "not_supported": "nvmlDeviceGetGpuFabricInfo",
    },
    # A 4-GPU A100 board: NVLinks straight between GPUs, no NVSwitch.
    "a100_four_gpus_direct_nvlink": {
        **_A100,
        "gpu_count": "4",
        "nvlinks": "4,0",
        "not_supported": "nvmlDeviceGetGpuFabricInfo",
    },
    # One of four GPUs answers nvmlDeviceGetHandleByIndex with NVML_ERROR_UNKNOWN (after an XID 79).
    "four_gpus_one_handle_unknown_error": {
        **_A100,
        "gpu_count": "4",
        "persistence": "0",
        "errors": "nvmlDeviceGetHandleByIndex@1:999",
    },
    "driver_not_loaded": {"init_error": "9"},
    "driver_mismatch": {"init_error": "18"},
    "no_permission": {"init_error": "4"},
}

#: Symbols a variant library leaves out, for "the driver lacks this function" scenarios.
#: Build with ``build_fake_nvml(dest, omit=OMIT_SCENARIOS[name])``.
OMIT_SCENARIOS: dict[str, tuple[str, ...]] = {
    # Drivers before R450 have no MIG API at all.
    "driver_without_mig_api": ("nvmlDeviceGetMigMode",),
    # Neither process-list version: the process list cannot be read.
    "driver_without_process_list": (
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
    ),
    # Drivers before R510 have only the _v2 process list (read through the fallback).
    "driver_without_process_list_v3": ("nvmlDeviceGetComputeRunningProcesses_v3",),
}

_built: dict[tuple[Path, tuple[str, ...]], Path] = {}


def build_fake_nvml(dest_dir: Path, omit: tuple[str, ...] = ()) -> Path:
    """Compile the fake library once per ``omit`` set and return the directory holding it.

    Args:
        dest_dir: a directory for build outputs (created if needed); each variant gets its own
            subdirectory named after a hash of the source and the omitted symbols.
        omit: symbols to leave out of this variant (each must be in :data:`SYMBOLS`).

    Returns:
        The directory that contains ``libnvidia-ml.so.1``: put it on ``LD_LIBRARY_PATH``.

    Raises:
        ValueError: an ``omit`` name is not a symbol of the fake.
        FileNotFoundError: no ``gcc`` on PATH.
        subprocess.CalledProcessError: the compiler failed (its output is in the exception).
    """
    unknown = sorted(set(omit) - set(SYMBOLS))
    if unknown:
        raise ValueError(f"not a symbol of the fake NVML library: {', '.join(unknown)}")
    key_omit = tuple(sorted(set(omit)))
    cache_key = (Path(dest_dir).resolve(), key_omit)
    if cache_key in _built and (_built[cache_key] / LIBRARY_NAME).is_file():
        return _built[cache_key]
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError("gcc is needed to build the fake libnvidia-ml.so.1")
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + "\0".join(key_omit).encode()).hexdigest()[:12]
    name = "fake-nvml-" + ("-".join(key_omit) + "-" if key_omit else "") + digest
    libdir = Path(dest_dir) / name[:200]
    target = libdir / LIBRARY_NAME
    if not target.is_file():
        libdir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=libdir, suffix=".so.tmp")
        os.close(fd)
        command = [
            gcc,
            "-shared",
            "-fPIC",
            "-O1",
            "-Wall",
            "-Wl,-soname," + LIBRARY_NAME,
            *(f"-DOMIT_{symbol}" for symbol in key_omit),
            "-o",
            tmp_name,
            str(SOURCE),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
            os.replace(tmp_name, target)  # atomic: a parallel build never sees half a file
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    _built[cache_key] = libdir
    return libdir


def nvml_env(libdir: Path, **scenario: str) -> dict[str, str]:
    """The variables that make a fresh process load the fake library with ``scenario``.

    Args:
        libdir: the directory :func:`build_fake_nvml` returned.
        **scenario: settings by keyword (see the table in this module's docstring), for example
            ``driver="470.82.01", cuda="11040", gpu_count="8"``. Values are strings.

    Returns:
        ``LD_LIBRARY_PATH`` (the fake first, then any inherited path) and ``FAKE_NVML_*``.

    Raises:
        TypeError: an unknown setting name (a typo would otherwise be silently ignored).
    """
    unknown = sorted(set(scenario) - SETTINGS)
    if unknown:
        raise TypeError(f"unknown fake NVML setting(s): {', '.join(unknown)}")
    inherited = os.environ.get("LD_LIBRARY_PATH", "")
    env = {"LD_LIBRARY_PATH": str(libdir) + (os.pathsep + inherited if inherited else "")}
    for key, value in scenario.items():
        env["FAKE_NVML_" + key.upper()] = str(value)
    return env


def no_library_env(empty_dir: Path) -> dict[str, str]:
    """Variables for the "no driver library" case: ``LD_LIBRARY_PATH`` names only an empty dir.

    This hides the fake library, not a real driver installed system-wide: guard such tests with
    :func:`system_has_nvml`.
    """
    empty_dir.mkdir(parents=True, exist_ok=True)
    return {"LD_LIBRARY_PATH": str(empty_dir)}


def system_has_nvml() -> bool:
    """True when a real NVML library is installed where the loader finds it without help."""
    return ctypes.util.find_library("nvidia-ml") is not None


def subprocess_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``FAKE_NVML_*`` or ``LD_LIBRARY_PATH``, plus ``extra``.

    Args:
        extra: what :func:`nvml_env` or :func:`no_library_env` returned.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FAKE_NVML_") and k != "LD_LIBRARY_PATH"
    }
    env.update(extra)
    return env
