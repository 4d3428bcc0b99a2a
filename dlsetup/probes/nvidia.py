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

import contextlib
import ctypes
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, cast

from dlsetup.facts import Maybe, Missing

T = TypeVar("T")


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on a GPU."""

    pid: int
    name: Maybe[str]
    used_memory_bytes: Maybe[int]


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as NVML sees it. Memory in bytes, temperature in °C, power in watts.

    ``memory_used_bytes`` is what processes hold (NVML's v2 memory info, which counts the driver's
    reserved memory apart; drivers without it report v1, where reserved counts as used).
    ``ecc_errors_uncorrected`` is the volatile count (since the driver last loaded), like the
    "Volatile Uncorr. ECC" column of ``nvidia-smi``. A GPU that NVML reports lost has
    ``lost=True``; fields read before it was lost keep their values, the rest are
    ``Missing("gpu_lost")``.

    Health fields (what ``nvidia-smi -q`` and DCGM's health watches read):
    ``pcie_gen_max``/``pcie_width_max`` are what this GPU *in this slot* can reach;
    ``pcie_gen_gpu_max`` is what the GPU itself supports (a Gen5 card in a Gen3 slot: 3 vs 5).
    ``clocks_event_reasons`` is NVML's bitmask of why clocks are below maximum
    (:data:`CLOCK_EVENT_REASONS`). ``temperature_slowdown_c`` is the temperature where the GPU
    starts slowing itself down. ``power_limit_default_w`` is the board's default power limit.
    ``ecc_errors_uncorrected_aggregate`` counts over the GPU's lifetime. ``retired_pages_pending``
    (pre-Ampere page retirement) and ``remapped_rows_pending`` (Ampere and later) mean a reset is
    needed to take a bad memory row out of use; ``remapped_rows_failed`` means a remap failed.
    ``fabric_state`` is ``not_supported`` | ``not_started`` | ``in_progress`` | ``completed``:
    an NVSwitch GPU (HGX/DGX, Hopper and later) becomes usable once Fabric Manager registered it;
    ``fabric_status`` is the NVML return code of that registration (0 = success).

    ``handle_error_code`` is the NVML return code of ``nvmlDeviceGetHandleByIndex`` when NVML could
    not open the GPU at all (NVML_ERROR_UNKNOWN 999 after an XID 79 or a driver fault; every other
    field is then Missing with that error), else None. ``nvswitch_links`` holds, per NVLink that
    reaches an NVSwitch, the switch's PCI bus id (``()`` when the links reach peer GPUs);
    ``Missing("not_supported")`` on a board without NVLink. A100 systems report no fabric state,
    so these links are how NVML shows an NVSwitch board there. ``pci_bus_id`` is the GPU's PCI
    address as sysfs writes it (``0000:3b:00.0``: fleet report matches it against the kernel's list
    of GPUs on the bus); ``nvlink_up`` holds, per NVLink, whether it is up
    (``Missing("not_supported")`` on a board without NVLink).
    """

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
    memory_free_bytes: Maybe[int] = Missing("not_read")
    ecc_mode_pending: Maybe[bool] = Missing("not_read")
    pcie_gen_gpu_max: Maybe[int] = Missing("not_read")
    utilization_gpu_percent: Maybe[int] = Missing("not_read")
    clocks_event_reasons: Maybe[int] = Missing("not_read")
    sm_clock_mhz: Maybe[int] = Missing("not_read")
    sm_clock_max_mhz: Maybe[int] = Missing("not_read")
    temperature_slowdown_c: Maybe[int] = Missing("not_read")
    power_limit_default_w: Maybe[float] = Missing("not_read")
    ecc_errors_uncorrected_aggregate: Maybe[int] = Missing("not_read")
    retired_pages_pending: Maybe[bool] = Missing("not_read")
    remapped_rows_uncorrectable: Maybe[int] = Missing("not_read")
    remapped_rows_pending: Maybe[bool] = Missing("not_read")
    remapped_rows_failed: Maybe[bool] = Missing("not_read")
    fabric_state: Maybe[str] = Missing("not_read")
    fabric_status: Maybe[int] = Missing("not_read")
    handle_error_code: int | None = None
    nvswitch_links: Maybe[tuple[str, ...]] = Missing("not_read")
    pci_bus_id: Maybe[str] = Missing("not_read")
    nvlink_up: Maybe[tuple[bool, ...]] = Missing("not_read")

    @property
    def unreachable(self) -> bool:
        """True when NVML could not open this GPU (no handle) or lost it: nothing runs on it."""
        return self.lost or self.handle_error_code is not None


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
        functions_not_found: NVML functions this driver lacks (recorded once each) where that
            cost a field; a versioned symbol whose older version answered instead is not listed.
        gpu_count: how many GPUs NVML counts (``gpus`` has one entry each), or why unknown.
    """

    status: str
    status_detail: str = ""
    nvml_error_code: int | None = None
    driver_version: Maybe[str] = Missing("no_driver")
    cuda_driver_version: Maybe[str] = Missing("no_driver")
    nvml_version: Maybe[str] = Missing("no_driver")
    gpus: tuple[GpuFacts, ...] = ()
    functions_not_found: tuple[str, ...] = field(default_factory=tuple)
    gpu_count: Maybe[int] = Missing("no_driver")

    @property
    def nvswitch_count(self) -> int:
        """Distinct NVSwitches the GPUs' NVLinks reach (0 when none, or no link was read)."""
        found = {
            bus
            for g in self.gpus
            if isinstance(g.nvswitch_links, tuple)
            for bus in g.nvswitch_links
        }
        return len(found)


#: NVML's clock event (throttle) reason bits and the names doctor reports.
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}

#: ``nvmlGpuFabricState_t`` values.
FABRIC_STATES: dict[int, str] = {
    0: "not_supported",
    1: "not_started",
    2: "in_progress",
    3: "completed",
}


def clock_event_reason_names(mask: int) -> list[str]:
    """The names of the bits set in an NVML clock event reason mask (unknown bits as hex)."""
    names = [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS)
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


def decode_cuda_driver_version(value: int) -> str:
    """Decode NVML's ``1000*major + 10*minor`` encoding: ``12040 -> "12.4"``, ``11040 -> "11.4"``."""
    return f"{value // 1000}.{(value % 1000) // 10}"


#: NVML return codes of a failed ``nvmlInit`` and the status each becomes.
_INIT_STATUS = {
    12: "no_library",  # NVML_ERROR_LIBRARY_NOT_FOUND
    9: "driver_not_loaded",  # NVML_ERROR_DRIVER_NOT_LOADED
    18: "driver_mismatch",  # NVML_ERROR_LIB_RM_VERSION_MISMATCH
    4: "no_permission",  # NVML_ERROR_NO_PERMISSION
}

#: NVML return codes a per-field query maps to a :class:`Missing` reason.
_FIELD_REASON = {
    3: "not_supported",  # NVML_ERROR_NOT_SUPPORTED
    4: "no_permission",  # NVML_ERROR_NO_PERMISSION
    6: "not_found",  # NVML_ERROR_NOT_FOUND
    13: "function_not_found",  # NVML_ERROR_FUNCTION_NOT_FOUND
    15: "gpu_lost",  # NVML_ERROR_GPU_IS_LOST
    25: "version_mismatch",  # NVML_ERROR_ARGUMENT_VERSION_MISMATCH (a versioned struct)
}

_GPU_LOST = 15


class _GpuLostError(Exception):
    """Raised inside the adapter when NVML says a GPU is lost; ends that GPU's reading."""


def _error_text(error: BaseException) -> str:
    """``"NVMLError_DriverNotLoaded: Driver Not Loaded"``; never raises."""
    try:
        message = str(error)
    except Exception:  # pynvml's __str__ calls back into the library
        message = ""
    name = type(error).__name__
    return f"{name}: {message}" if message else name


class _Nvml:
    """The one adapter over pynvml: every NVML call of dlsetup goes through :meth:`query`.

    Like nvitop's ``nvmlQuery``: an NVML error becomes a :class:`Missing` with a stable reason, a
    function the driver lacks is remembered (once) for :attr:`NvidiaFacts.functions_not_found`, and
    a lost GPU raises :class:`_GpuLostError` so the caller stops reading that GPU and moves on.
    """

    def __init__(self, pynvml: Any) -> None:
        self.nvml = pynvml
        self.functions_not_found: list[str] = []
        self.last_code: int | None = None  # NVML's return code of the last call that failed

    def _record(self, name: str) -> None:
        if name not in self.functions_not_found:
            self.functions_not_found.append(name)

    def query(
        self, func: Callable[..., Any], *args: Any, name: str = "", record: bool = True
    ) -> Any:
        """Call ``func(*args)``; return its value or the :class:`Missing` reason it failed.

        Args:
            func: a pynvml function.
            args: its arguments.
            name: the NVML symbol to record when the driver lacks it (default: ``func``'s name).
            record: False when a fallback will be tried, so only a real loss is recorded.

        Raises:
            _GpuLostError: NVML returned ``NVML_ERROR_GPU_IS_LOST``.
        """
        symbol = name or getattr(func, "__name__", repr(func))
        try:
            return func(*args)
        except self.nvml.NVMLError as error:
            code = getattr(error, "value", None)
            self.last_code = code if isinstance(code, int) else None
            if code == _GPU_LOST:
                raise _GpuLostError(_error_text(error)) from error
            reason = _FIELD_REASON.get(code, "error") if isinstance(code, int) else "error"
            if reason == "function_not_found" and record:
                self._record(symbol)
            return Missing(reason, _error_text(error))
        except Exception as error:  # a malformed answer (undecodable bytes, ...) costs one field
            return Missing("error", _error_text(error))

    def first(
        self,
        calls: Sequence[tuple[str, Callable[[], Any]]],
        *,
        fall_back_on: frozenset[str] = frozenset({"function_not_found", "version_mismatch"}),
    ) -> Any:
        """Try versioned variants newest first; the first real answer wins.

        Args:
            calls: ``(symbol, zero-argument call)`` pairs, newest API first.
            fall_back_on: the :class:`Missing` reasons that move on to the next variant.

        Returns:
            The first value, or the last :class:`Missing`. When every variant is absent from the
            driver, all their symbols are recorded as not found.
        """
        result: Any = Missing("function_not_found")
        absent: list[str] = []
        for symbol, call in calls:
            result = self.query(call, name=symbol, record=False)
            if not isinstance(result, Missing):
                return result
            if result.reason == "function_not_found":
                absent.append(symbol)
            if result.reason not in fall_back_on:
                break
        if isinstance(result, Missing) and len(absent) == len(calls):
            for symbol in absent:
                self._record(symbol)
        return result


def _convert(value: Any, kind: Callable[[Any], T]) -> Maybe[T]:
    """``kind(value)`` unless ``value`` is already a :class:`Missing`."""
    return value if isinstance(value, Missing) else kind(value)


def _milliwatts_to_watts(value: Any) -> float:
    return int(value) / 1000.0


#: pynvml's text for NVML_ERROR_LIBRARY_NOT_FOUND (as :func:`_error_text` words it).
_LIBRARY_NOT_FOUND = "NVMLError_LibraryNotFound: NVML Shared Library Not Found"


def _nvml_library_loads() -> bool:
    """False when ``libnvidia-ml.so.1`` cannot be loaded, the way pynvml loads it on Linux
    (``CDLL("libnvidia-ml.so.1")``: the loader's search, ``LD_LIBRARY_PATH`` first). Elsewhere
    (Windows' DLL locations) True: pynvml decides."""
    if sys.platform[:3] == "win" or sys.platform == "darwin":
        return True
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _init_failed(code: int | None, text: str) -> NvidiaFacts:
    """The facts when ``nvmlInit`` fails with NVML return ``code``."""
    status = _INIT_STATUS.get(code, "error") if code is not None else "error"
    reason = "no_driver" if status in {"no_library", "driver_not_loaded"} else status
    missing = Missing(reason, text)
    return NvidiaFacts(
        status=status,
        status_detail=text,
        nvml_error_code=code,
        driver_version=missing,
        cuda_driver_version=missing,
        nvml_version=missing,
        gpu_count=missing,
    )


def probe_nvidia() -> NvidiaFacts:
    """Read every NVIDIA fact NVML offers; never raises for a driver or GPU problem.

    Initialises NVML here (never at import), reads the system and then each GPU, and always shuts
    NVML down again. Uses no GPU memory and creates no CUDA context.
    """
    if not _nvml_library_loads():
        # What pynvml's nvmlInit reports, without importing the 5,000-line binding (~9 ms) on a
        # machine that has no driver: doctor --no-frameworks must stay within 0.3 s.
        return _init_failed(12, _LIBRARY_NOT_FOUND)
    try:
        import pynvml
    except ImportError as error:  # nvidia-ml-py is a dependency; a broken install still reports
        return NvidiaFacts(status="error", status_detail=f"cannot import pynvml: {error}")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        code = getattr(error, "value", None)
        return _init_failed(code if isinstance(code, int) else None, _error_text(error))
    except Exception as error:  # anything else from a broken library must not end the report
        return NvidiaFacts(status="error", status_detail=_error_text(error))
    try:
        return _read_initialised(_Nvml(pynvml))
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _read_initialised(nv: _Nvml) -> NvidiaFacts:
    """Read the system facts and every GPU, NVML being initialised."""
    nvml = nv.nvml
    try:
        driver = nv.query(nvml.nvmlSystemGetDriverVersion)
        cuda = nv.first(
            [
                ("nvmlSystemGetCudaDriverVersion_v2", nvml.nvmlSystemGetCudaDriverVersion_v2),
                ("nvmlSystemGetCudaDriverVersion", nvml.nvmlSystemGetCudaDriverVersion),
            ]
        )
        nvml_version = nv.query(nvml.nvmlSystemGetNVMLVersion)
        count = nv.query(nvml.nvmlDeviceGetCount, name="nvmlDeviceGetCount_v2")
    except _GpuLostError as error:  # a system call has no GPU; treat it as a plain error
        lost = Missing("error", str(error))
        driver = cuda = nvml_version = count = lost
    gpu_count = _convert(count, int)
    gpus = tuple(
        _read_gpu(nv, index) for index in range(gpu_count if isinstance(gpu_count, int) else 0)
    )
    return NvidiaFacts(
        status="ok",
        driver_version=_convert(driver, str),
        cuda_driver_version=_convert(cuda, lambda v: decode_cuda_driver_version(int(v))),
        nvml_version=_convert(nvml_version, str),
        gpus=gpus,
        functions_not_found=tuple(nv.functions_not_found),
        gpu_count=gpu_count,
    )


#: GpuFacts fields that are not NVML readings (never set to a Missing).
_NOT_NVML_FIELDS = frozenset({"index", "lost", "handle_error_code"})

#: NVML's NVLink link count ceiling (NVML_NVLINK_MAX_LINKS) and NVML_NVLINK_DEVICE_TYPE_SWITCH.
_NVLINK_MAX_LINKS = 18
_NVLINK_SWITCH = 2


def _read_nvswitch_links(nv: _Nvml, handle: Any) -> Maybe[tuple[str, ...]]:
    """The PCI bus id of the NVSwitch behind each NVLink of this GPU (peer-GPU links skipped).

    Links are asked in order until NVML says there are no more (INVALID_ARGUMENT); a board without
    NVLink answers NOT_SUPPORTED for link 0. The link state is not asked: without Fabric Manager
    an NVSwitch board's links are down, and that is the case this reading exists for.
    """
    kind_of = getattr(nv.nvml, "nvmlDeviceGetNvLinkRemoteDeviceType", None)
    pci_of = getattr(nv.nvml, "nvmlDeviceGetNvLinkRemotePciInfo", None)
    if kind_of is None or pci_of is None:
        return Missing("function_not_found")
    buses: list[str] = []
    for link in range(_NVLINK_MAX_LINKS):
        kind = nv.query(kind_of, handle, link, record=False)
        if isinstance(kind, Missing):
            return kind if link == 0 else tuple(buses)
        if int(kind) != _NVLINK_SWITCH:
            continue
        pci = nv.query(pci_of, handle, link, name="nvmlDeviceGetNvLinkRemotePciInfo_v2")
        if not isinstance(pci, Missing):
            buses.append(f"{int(pci.domain):08x}:{int(pci.bus):02x}")
    return tuple(buses)


def _read_pci_bus_id(nv: _Nvml, handle: Any) -> Maybe[str]:
    """The GPU's PCI address as sysfs writes it (``0000:3b:00.0``), to match the kernel's list."""
    func = getattr(nv.nvml, "nvmlDeviceGetPciInfo_v3", None)
    if func is None:
        nv._record("nvmlDeviceGetPciInfo_v3")
        return Missing("function_not_found")
    pci = nv.query(func, handle)
    if isinstance(pci, Missing):
        return pci
    return f"{int(pci.domain) & 0xFFFF:04x}:{int(pci.bus):02x}:{int(pci.device):02x}.0"


def _read_nvlink_up(nv: _Nvml, handle: Any) -> Maybe[tuple[bool, ...]]:
    """Per NVLink of the GPU, whether it is up (``nvmlDeviceGetNvLinkState``); links are asked in
    order until NVML says there are no more; ``Missing("not_supported")`` on a PCIe board."""
    func = getattr(nv.nvml, "nvmlDeviceGetNvLinkState", None)
    if func is None:
        return Missing("function_not_found")
    states: list[bool] = []
    for link in range(_NVLINK_MAX_LINKS):
        state = nv.query(func, handle, link, record=link == 0)
        if isinstance(state, Missing):
            return state if link == 0 else tuple(states)
        states.append(bool(state))
    return tuple(states)


def _read_gpu(nv: _Nvml, index: int) -> GpuFacts:
    """Read one GPU field by field; a lost GPU keeps what was read and marks the rest lost."""
    nvml = nv.nvml
    values: dict[str, Any] = {}
    try:
        handle = nv.query(
            nvml.nvmlDeviceGetHandleByIndex, index, name="nvmlDeviceGetHandleByIndex_v2"
        )
        if isinstance(handle, Missing):
            no_handle: dict[str, Any] = {
                f.name: handle for f in fields(GpuFacts) if f.name not in _NOT_NVML_FIELDS
            }
            code = nv.last_code if nv.last_code is not None else 999  # NVML_ERROR_UNKNOWN
            return GpuFacts(index=index, handle_error_code=code, **no_handle)
        _read_gpu_fields(nv, handle, values)
        values["nvswitch_links"] = _read_nvswitch_links(nv, handle)
        values["pci_bus_id"] = _read_pci_bus_id(nv, handle)
        values["nvlink_up"] = _read_nvlink_up(nv, handle)
    except _GpuLostError as error:
        lost = Missing("gpu_lost", str(error))
        rest: dict[str, Any] = {
            f.name: lost for f in fields(GpuFacts) if f.name not in {*_NOT_NVML_FIELDS, *values}
        }
        return GpuFacts(index=index, lost=True, **values, **rest)
    return GpuFacts(index=index, **values)


def _read_gpu_fields(nv: _Nvml, handle: Any, out: dict[str, Any]) -> None:
    """Fill ``out`` with :class:`GpuFacts` field values, in report order (stops when lost)."""
    nvml = nv.nvml
    out["name"] = _convert(nv.query(nvml.nvmlDeviceGetName, handle), str)
    out["uuid"] = _convert(nv.query(nvml.nvmlDeviceGetUUID, handle), str)
    out["compute_capability"] = _convert(
        nv.query(nvml.nvmlDeviceGetCudaComputeCapability, handle),
        lambda v: (int(v[0]), int(v[1])),
    )

    memory_calls: list[tuple[str, Callable[[], Any]]] = []
    version_2 = getattr(nvml, "nvmlMemory_v2", None)
    if version_2 is not None:
        memory_calls.append(
            (
                "nvmlDeviceGetMemoryInfo_v2",
                lambda: nvml.nvmlDeviceGetMemoryInfo(handle, version=version_2),
            )
        )
    memory_calls.append(("nvmlDeviceGetMemoryInfo", lambda: nvml.nvmlDeviceGetMemoryInfo(handle)))
    memory = nv.first(memory_calls)
    out["memory_total_bytes"] = _convert(memory, lambda m: int(m.total))
    out["memory_used_bytes"] = _convert(memory, lambda m: int(m.used))
    out["memory_free_bytes"] = _convert(memory, lambda m: int(m.free))

    temperature_calls: list[tuple[str, Callable[[], Any]]] = []
    if hasattr(nvml, "nvmlDeviceGetTemperatureV"):
        temperature_calls.append(
            (
                "nvmlDeviceGetTemperatureV",
                lambda: nvml.nvmlDeviceGetTemperatureV(handle, nvml.NVML_TEMPERATURE_GPU),
            )
        )
    temperature_calls.append(
        (
            "nvmlDeviceGetTemperature",
            lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
        )
    )
    out["temperature_c"] = _convert(nv.first(temperature_calls), int)

    out["power_draw_w"] = _convert(
        nv.query(nvml.nvmlDeviceGetPowerUsage, handle), _milliwatts_to_watts
    )
    out["power_limit_w"] = _convert(
        nv.first(
            [
                (
                    "nvmlDeviceGetEnforcedPowerLimit",
                    lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle),
                ),
                (
                    "nvmlDeviceGetPowerManagementLimit",
                    lambda: nvml.nvmlDeviceGetPowerManagementLimit(handle),
                ),
            ],
            fall_back_on=frozenset(
                {"function_not_found", "version_mismatch", "not_supported", "error"}
            ),
        ),
        _milliwatts_to_watts,
    )

    out["pcie_gen_current"] = _convert(
        nv.query(nvml.nvmlDeviceGetCurrPcieLinkGeneration, handle), int
    )
    out["pcie_gen_max"] = _convert(nv.query(nvml.nvmlDeviceGetMaxPcieLinkGeneration, handle), int)
    out["pcie_width_current"] = _convert(nv.query(nvml.nvmlDeviceGetCurrPcieLinkWidth, handle), int)
    out["pcie_width_max"] = _convert(nv.query(nvml.nvmlDeviceGetMaxPcieLinkWidth, handle), int)

    mig = nv.query(nvml.nvmlDeviceGetMigMode, handle)
    out["mig_mode_current"] = _convert(mig, lambda v: bool(v[0]))
    out["mig_mode_pending"] = _convert(mig, lambda v: bool(v[1]))

    ecc = nv.query(nvml.nvmlDeviceGetEccMode, handle)
    out["ecc_mode_current"] = _convert(ecc, lambda v: bool(v[0]))
    out["ecc_mode_pending"] = _convert(ecc, lambda v: bool(v[1]))
    out["ecc_errors_uncorrected"] = _convert(
        nv.query(
            nvml.nvmlDeviceGetTotalEccErrors,
            handle,
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_VOLATILE_ECC,
        ),
        int,
    )

    out["persistence_mode"] = _convert(nv.query(nvml.nvmlDeviceGetPersistenceMode, handle), bool)

    processes = nv.first(
        [
            (
                "nvmlDeviceGetComputeRunningProcesses_v3",
                lambda: nvml.nvmlDeviceGetComputeRunningProcesses_v3(handle),
            ),
            (
                "nvmlDeviceGetComputeRunningProcesses_v2",
                lambda: nvml.nvmlDeviceGetComputeRunningProcesses_v2(handle),
            ),
        ]
    )
    out["processes"] = _convert(processes, lambda procs: tuple(_process(nv, p) for p in procs))
    _read_health_fields(nv, handle, out)


def _optional(nv: _Nvml, symbol: str) -> Callable[..., Any] | None:
    """``pynvml.<symbol>``, or None (recorded as not found) when this pynvml lacks it."""
    func = getattr(nv.nvml, symbol, None)
    if func is None:
        nv._record(symbol)
    return cast("Callable[..., Any] | None", func)


def _query_optional(nv: _Nvml, symbol: str, *args: Any) -> Any:
    func = _optional(nv, symbol)
    return nv.query(func, *args, name=symbol) if func is not None else Missing("function_not_found")


def _read_health_fields(nv: _Nvml, handle: Any, out: dict[str, Any]) -> None:
    """The fields doctor's health checks judge: PCIe, clocks, thresholds, ECC history, fabric."""
    nvml = nv.nvml
    out["pcie_gen_gpu_max"] = _convert(
        _query_optional(nv, "nvmlDeviceGetGpuMaxPcieLinkGeneration", handle), int
    )
    out["utilization_gpu_percent"] = _convert(
        nv.query(nvml.nvmlDeviceGetUtilizationRates, handle), lambda u: int(u.gpu)
    )
    reason_calls: list[tuple[str, Callable[[], Any]]] = [
        (symbol, functools.partial(getattr(nvml, symbol), handle))
        for symbol in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        )
        if hasattr(nvml, symbol)
    ]
    out["clocks_event_reasons"] = _convert(
        nv.first(reason_calls) if reason_calls else Missing("function_not_found"), int
    )
    out["sm_clock_mhz"] = _convert(nv.query(nvml.nvmlDeviceGetClockInfo, handle, 1), int)
    out["sm_clock_max_mhz"] = _convert(nv.query(nvml.nvmlDeviceGetMaxClockInfo, handle, 1), int)
    out["temperature_slowdown_c"] = _convert(
        nv.query(nvml.nvmlDeviceGetTemperatureThreshold, handle, 1), int
    )
    out["power_limit_default_w"] = _convert(
        nv.query(nvml.nvmlDeviceGetPowerManagementDefaultLimit, handle), _milliwatts_to_watts
    )
    out["ecc_errors_uncorrected_aggregate"] = _convert(
        nv.query(
            nvml.nvmlDeviceGetTotalEccErrors,
            handle,
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_AGGREGATE_ECC,
        ),
        int,
    )
    out["retired_pages_pending"] = _convert(
        nv.query(nvml.nvmlDeviceGetRetiredPagesPendingStatus, handle), bool
    )
    rows = nv.query(nvml.nvmlDeviceGetRemappedRows, handle)
    out["remapped_rows_uncorrectable"] = _convert(rows, lambda r: int(r[1]))
    out["remapped_rows_pending"] = _convert(rows, lambda r: bool(r[2]))
    out["remapped_rows_failed"] = _convert(rows, lambda r: bool(r[3]))
    fabric = _read_fabric(nv, handle)
    out["fabric_state"] = _convert(
        fabric, lambda f: FABRIC_STATES.get(int(f.state) & 0xFF, "unknown")
    )
    out["fabric_status"] = _convert(fabric, lambda f: int(f.status))


def _read_fabric(nv: _Nvml, handle: Any) -> Any:
    """``nvmlDeviceGetGpuFabricInfo`` (v1 struct), or the Missing reason."""
    func = _optional(nv, "nvmlDeviceGetGpuFabricInfo")
    struct = getattr(nv.nvml, "c_nvmlGpuFabricInfo_t", None)
    if func is None or struct is None:
        return Missing("function_not_found")
    info = struct()
    done = nv.query(func, handle, ctypes.byref(info), name="nvmlDeviceGetGpuFabricInfo")
    return done if isinstance(done, Missing) else info


def _process(nv: _Nvml, info: Any) -> GpuProcess:
    """One compute process: pid, name (NVML, else psutil) and the GPU memory it holds."""
    pid = int(info.pid)
    used = info.usedGpuMemory  # pynvml turns NVML's "not available" (WDDM) into None
    used_bytes: Maybe[int] = Missing("not_available") if used is None else int(used)
    name = nv.query(nv.nvml.nvmlSystemGetProcessName, pid)
    if isinstance(name, Missing):
        name = _psutil_process_name(pid, name)
    return GpuProcess(pid=pid, name=_convert(name, str), used_memory_bytes=used_bytes)


def _psutil_process_name(pid: int, nvml_missing: Missing) -> Maybe[str]:
    """Fallback for a name NVML would not give (another container's pid, no permission)."""
    import psutil

    try:
        return psutil.Process(pid).name()
    except psutil.NoSuchProcess:
        return Missing("not_found", nvml_missing.detail)
    except psutil.AccessDenied:
        return Missing("no_permission", nvml_missing.detail)
    except psutil.Error as error:
        return Missing("error", f"{nvml_missing.detail}; psutil: {error}")
