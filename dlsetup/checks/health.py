"""GPU health: the NVML fields ``nvidia-smi -q``, DCGM's health watches and cluster node checkers
(NHC, aznhc, gcm) judge — PCIe link, clock slowdowns, temperature, power limit, ECC history, pending
memory repairs, persistence mode.

Each check groups the GPUs it fired for into one finding whose ``details["gpus"]`` holds the raw
NVML facts of each. A field the GPU does not support (``Missing``) never fires anything.

Rules that avoid false alarms (documented in docs/doctor.md):

* A PCIe link that runs below its generation or width is judged only while the GPU is busy:
  idle GPUs drop the link to Gen1 (and some lower the width) to save power, and that is healthy.
  "Busy" means NVML's utilization is at least :data:`BUSY_UTILIZATION` percent and the clock event
  reasons do not include ``gpu_idle``. A slot that caps the GPU (``pcie_gen_max`` below
  ``pcie_gen_gpu_max``) is judged at any load: it does not change with power states.
* Clock event reasons: ``gpu_idle``, ``applications_clocks_setting``, ``sync_boost``,
  ``display_clock_setting`` and ``sw_power_cap`` are normal (a GPU at its power limit under load
  reports ``sw_power_cap``; a lowered limit is its own check). Thermal slowdowns, hardware slowdown
  and the power brake mean the GPU is being held back by its environment.
"""

from __future__ import annotations

from typing import Any

from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import Finding, Severity
from dlsetup.checks.nvidia import memory_repair, repair_failed
from dlsetup.facts import Missing
from dlsetup.probes.nvidia import GpuFacts, clock_event_reason_names

#: Utilization (percent) from which a GPU counts as busy for the PCIe link rule.
BUSY_UTILIZATION = 20

#: Degrees below the slowdown threshold at which the temperature check fires.
TEMPERATURE_MARGIN_C = 5

#: An enforced power limit below this share of the default limit fires.
POWER_LIMIT_SHARE = 0.95

#: Clock event reason bits that mean trouble (thermal, hardware slowdown, power brake).
SLOWDOWN_BITS = 0x8 | 0x20 | 0x40 | 0x80
_IDLE_BIT = 0x1
_THERMAL_BITS = 0x20 | 0x40
_POWER_BRAKE_BIT = 0x80

#: Words in a GPU name that mark a desktop/workstation board (not a shared server GPU).
_DESKTOP_WORDS = ("geforce", "titan", "quadro", "rtx")

CHECK_IDS: dict[str, Severity] = {
    "gpu.pcie_link_degraded": "warning",
    "gpu.pcie_slot_limits_gpu": "info",
    "gpu.clocks_slowdown": "warning",
    "gpu.temperature_near_slowdown": "warning",
    "gpu.power_limit_below_default": "warning",
    "gpu.ecc_errors_aggregate": "info",
    "gpu.reset_pending": "warning",
    "gpu.row_remap_failed": "error",
    "gpu.persistence_off": "info",
}


def _value(value: object) -> Any:
    return None if isinstance(value, Missing) else value


def _raw(gpu: GpuFacts, *names: str) -> dict[str, Any]:
    """The GPU's index, name and the named NVML fields (Missing as null) for ``details``."""
    out: dict[str, Any] = {"index": gpu.index, "name": _value(gpu.name)}
    for name in names:
        out[name] = _value(getattr(gpu, name))
    return out


def _ids(gpus: list[GpuFacts]) -> str:
    return ", ".join(str(g.index) for g in gpus)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _healthy(facts: DoctorFacts) -> list[GpuFacts]:
    """The GPUs NVML can read: a lost or unreachable one has its own finding and no facts."""
    return [g for g in facts.gpus if not g.unreachable]


def is_busy(gpu: GpuFacts) -> bool:
    """True when NVML shows the GPU working (utilization high, clocks not at idle).

    Unknown utilization counts as busy only when the clock event reasons are known and lack
    ``gpu_idle``; with neither known the GPU is treated as idle (no judgement, no false alarm).
    """
    reasons = gpu.clocks_event_reasons
    idle_flag = isinstance(reasons, int) and bool(reasons & _IDLE_BIT)
    util = gpu.utilization_gpu_percent
    if isinstance(util, int):
        return util >= BUSY_UTILIZATION and not idle_flag
    return isinstance(reasons, int) and not idle_flag


def check_pcie(facts: DoctorFacts) -> list[Finding]:
    """``gpu.pcie_link_degraded`` (under load) and ``gpu.pcie_slot_limits_gpu``."""
    found: list[Finding] = []
    degraded: list[GpuFacts] = []
    for g in _healthy(facts):
        gen_low = (
            isinstance(g.pcie_gen_current, int)
            and isinstance(g.pcie_gen_max, int)
            and g.pcie_gen_current < g.pcie_gen_max
        )
        width_low = (
            isinstance(g.pcie_width_current, int)
            and isinstance(g.pcie_width_max, int)
            and g.pcie_width_current < g.pcie_width_max
        )
        if (gen_low or width_low) and is_busy(g):
            degraded.append(g)
    if degraded:
        g = degraded[0]
        found.append(
            Finding(
                "gpu.pcie_link_degraded",
                "warning",
                f"GPU {_ids(degraded)}: PCIe link below its maximum while busy",
                f"GPU {g.index} runs its PCIe link at Gen{g.pcie_gen_current} x"
                f"{g.pcie_width_current} although it can reach Gen{g.pcie_gen_max} x"
                f"{g.pcie_width_max}, at {g.utilization_gpu_percent}% utilization (not the idle "
                "power saving): host-to-GPU copies and data loading run slower than they should.",
                "Reseat the GPU (and any riser cable) in a CPU-attached x16 slot and check the "
                "slot's PCIe setting in the BIOS; if it stays degraded, contact the vendor. "
                "nvidia-smi -q -d PCIE shows the link.",
                {
                    "gpus": [
                        _raw(
                            x,
                            "pcie_gen_current",
                            "pcie_gen_max",
                            "pcie_width_current",
                            "pcie_width_max",
                            "utilization_gpu_percent",
                            "clocks_event_reasons",
                        )
                        for x in degraded
                    ]
                },
                command=f"nvidia-smi -i {g.index} -q -d PCIE",
            )
        )
    capped = [
        g
        for g in _healthy(facts)
        if isinstance(g.pcie_gen_max, int)
        and isinstance(g.pcie_gen_gpu_max, int)
        and g.pcie_gen_max < g.pcie_gen_gpu_max
    ]
    if capped:
        found.append(_slot_cap_finding(facts, capped))
    return found


def _slot_cap_finding(facts: DoctorFacts, capped: list[GpuFacts]) -> Finding:
    """``gpu.pcie_slot_limits_gpu``. A BIOS setting can lower a slot, never raise it above the
    platform's generation: a faster slot is offered only when another GPU of this machine shows
    one exists (its link reaches the capped GPU's generation)."""
    g = capped[0]
    want = int(_value(g.pcie_gen_gpu_max) or 0)
    have = int(_value(g.pcie_gen_max) or 0)
    faster = [
        x
        for x in _healthy(facts)
        if x.index != g.index and isinstance(x.pcie_gen_max, int) and x.pcie_gen_max >= want
    ]
    if faster:
        other = faster[0]
        fix = (
            f"GPU {other.index}'s slot reaches Gen{other.pcie_gen_max}, so this machine has such "
            f"slots: move GPU {g.index} to one like it (CPU-attached, not through the chipset or "
            f"an older riser), or check in the BIOS that GPU {g.index}'s slot is set to Auto, not "
            f"Gen{have}."
        )
    else:
        fix = (
            f"Nothing to change if this server's platform is PCIe Gen{have} (its specification "
            "says): a BIOS setting cannot raise a slot above the platform's generation. Only a "
            f"platform with Gen{want} slots gives GPU {g.index} its full link."
        )
    return Finding(
        "gpu.pcie_slot_limits_gpu",
        "info",
        f"GPU {_ids(capped)}: the slot caps the PCIe link below the GPU's generation",
        f"GPU {g.index} supports PCIe Gen{want}, but with this slot/system the link can reach "
        f"only Gen{have}: host-to-GPU bandwidth is about {2 ** (want - have)}x lower than the card "
        "allows. Often the platform's design (a Gen4 server) rather than a fault.",
        fix,
        {
            "gpus": [_raw(x, "pcie_gen_max", "pcie_gen_gpu_max") for x in capped],
            "faster_slot_gpu": faster[0].index if faster else None,
        },
        command=f"nvidia-smi -i {g.index} -q -d PCIE",
    )


def check_clocks(facts: DoctorFacts) -> list[Finding]:
    """``gpu.clocks_slowdown``: thermal, hardware slowdown or power brake holds the clocks down."""
    slowed = [
        g
        for g in _healthy(facts)
        if isinstance(g.clocks_event_reasons, int) and g.clocks_event_reasons & SLOWDOWN_BITS
    ]
    if not slowed:
        return []
    g = slowed[0]
    mask = g.clocks_event_reasons if isinstance(g.clocks_event_reasons, int) else 0
    names = clock_event_reason_names(mask & SLOWDOWN_BITS)
    fixes = []
    if mask & _THERMAL_BITS:
        fixes.append("check the cooling (fans, airflow, dust, room or rack inlet temperature)")
    if mask & _POWER_BRAKE_BIT:
        fixes.append(
            "the power brake is an external signal: check the power supply and the GPU's power "
            "cables"
        )
    if mask & 0x8 and not fixes:
        fixes.append("check the power supply, the power cables and the cooling")
    return [
        Finding(
            "gpu.clocks_slowdown",
            "warning",
            f"GPU {_ids(slowed)}: clocks held down ({', '.join(names)})",
            f"NVML reports GPU {g.index}'s clocks reduced by {', '.join(names)} (SM clock "
            f"{_value(g.sm_clock_mhz)} of {_value(g.sm_clock_max_mhz)} MHz, "
            f"{_value(g.temperature_c)} °C): it computes slower than it can.",
            _sentence("; ".join(fixes)) + "; if it persists, contact the vendor. "
            "nvidia-smi -q -d PERFORMANCE shows the reasons.",
            {
                "gpus": [
                    {
                        **_raw(
                            x,
                            "clocks_event_reasons",
                            "sm_clock_mhz",
                            "sm_clock_max_mhz",
                            "temperature_c",
                            "power_draw_w",
                            "power_limit_w",
                        ),
                        "reasons": clock_event_reason_names(
                            x.clocks_event_reasons if isinstance(x.clocks_event_reasons, int) else 0
                        ),
                    }
                    for x in slowed
                ]
            },
            command=f"nvidia-smi -i {g.index} -q -d PERFORMANCE",
        )
    ]


def check_temperature(facts: DoctorFacts) -> list[Finding]:
    """``gpu.temperature_near_slowdown``: within a few degrees of the slowdown threshold."""
    hot = [
        g
        for g in _healthy(facts)
        if isinstance(g.temperature_c, int)
        and isinstance(g.temperature_slowdown_c, int)
        and g.temperature_slowdown_c > 0
        and g.temperature_c >= g.temperature_slowdown_c - TEMPERATURE_MARGIN_C
    ]
    if not hot:
        return []
    g = hot[0]
    return [
        Finding(
            "gpu.temperature_near_slowdown",
            "warning",
            f"GPU {_ids(hot)}: temperature near the slowdown threshold",
            f"GPU {g.index} is at {g.temperature_c} °C; at {g.temperature_slowdown_c} °C it slows "
            "itself down to cool off.",
            "Improve the cooling: fans, airflow, dust filters, the gap between cards, the room or "
            "rack inlet temperature.",
            {"gpus": [_raw(x, "temperature_c", "temperature_slowdown_c") for x in hot]},
        )
    ]


def check_power_limit(facts: DoctorFacts) -> list[Finding]:
    """``gpu.power_limit_below_default``: someone lowered the power limit."""
    low = [
        g
        for g in _healthy(facts)
        if isinstance(g.power_limit_w, float)
        and isinstance(g.power_limit_default_w, float)
        and g.power_limit_w < POWER_LIMIT_SHARE * g.power_limit_default_w
    ]
    if not low:
        return []
    g = low[0]
    default = g.power_limit_default_w if isinstance(g.power_limit_default_w, float) else 0.0
    return [
        Finding(
            "gpu.power_limit_below_default",
            "warning",
            f"GPU {_ids(low)}: power limit below the default",
            f"GPU {g.index} may draw at most {g.power_limit_w:g} W, below its default "
            f"{default:g} W: under load its clocks drop earlier (if this was set on purpose, "
            "--skip gpu.power_limit_below_default).",
            f"Restore the default limit: sudo nvidia-smi -i {g.index} -pl {default:g}",
            {"gpus": [_raw(x, "power_limit_w", "power_limit_default_w") for x in low]},
            command=f"sudo nvidia-smi -i {g.index} -pl {default:g}",
        )
    ]


def check_ecc_aggregate(facts: DoctorFacts) -> list[Finding]:
    """``gpu.ecc_errors_aggregate``: uncorrected errors in the GPU's lifetime, none since load."""
    past = [
        g
        for g in _healthy(facts)
        if isinstance(g.ecc_errors_uncorrected_aggregate, int)
        and g.ecc_errors_uncorrected_aggregate > 0
        and not (isinstance(g.ecc_errors_uncorrected, int) and g.ecc_errors_uncorrected > 0)
        and not repair_failed(g)  # gpu.row_remap_failed speaks for that GPU
    ]
    if not past:
        return []
    g = past[0]
    repair, section = memory_repair(g)
    command = f"nvidia-smi -i {g.index} -q -d ECC,{section}"
    return [
        Finding(
            "gpu.ecc_errors_aggregate",
            "info",
            f"GPU {_ids(past)}: uncorrected ECC errors in the past",
            f"GPU {g.index} has had {g.ecc_errors_uncorrected_aggregate} uncorrected ECC errors "
            f"over its lifetime (none since the driver loaded). Its memory repair ({repair}) "
            "has taken the bad memory out of use; nothing is pending or failed.",
            f"If the count grows, collect {command} and contact the vendor.",
            {
                "gpus": [
                    _raw(x, "ecc_errors_uncorrected", "ecc_errors_uncorrected_aggregate")
                    for x in past
                ]
            },
            command=command,
        )
    ]


def check_memory_repair(facts: DoctorFacts) -> list[Finding]:
    """``gpu.reset_pending`` (a retired page or remapped row waits for a reset) and
    ``gpu.row_remap_failed``."""
    found: list[Finding] = []
    failed = [g for g in _healthy(facts) if g.remapped_rows_failed is True]
    if failed:
        g = failed[0]
        found.append(
            Finding(
                "gpu.row_remap_failed",
                "error",
                f"GPU {_ids(failed)}: a memory row remap failed",
                f"GPU {g.index} could not remap a bad memory row (it has "
                f"{_value(g.remapped_rows_uncorrectable)} rows remapped for uncorrectable "
                "errors): its memory can no longer be repaired in the field. Its ECC error "
                "counts are in this finding's details; no reset or reboot fixes it.",
                "Take the GPU out of service and contact the vendor (RMA), with the output of "
                "nvidia-smi -q -d ROW_REMAPPER attached.",
                {
                    "gpus": [
                        _raw(
                            x,
                            "remapped_rows_uncorrectable",
                            "remapped_rows_failed",
                            "ecc_errors_uncorrected",
                            "ecc_errors_uncorrected_aggregate",
                        )
                        for x in failed
                    ]
                },
                command=f"nvidia-smi -i {g.index} -q -d ROW_REMAPPER",
            )
        )
    pending = [
        g
        for g in _healthy(facts)
        if (g.retired_pages_pending is True or g.remapped_rows_pending is True)
        and not repair_failed(g)  # a reset cannot help a GPU whose repair failed
    ]
    if pending:
        g = pending[0]
        what = "row remap" if g.remapped_rows_pending is True else "page retirement"
        found.append(
            Finding(
                "gpu.reset_pending",
                "warning",
                f"GPU {_ids(pending)}: a memory repair waits for a GPU reset",
                f"GPU {g.index} has a pending {what} after memory errors: the bad memory stays "
                "in use until the GPU is reset.",
                f"Stop the GPU's processes, then reset it: sudo nvidia-smi -i {g.index} -r "
                "(or reboot).",
                {
                    "gpus": [
                        _raw(x, "retired_pages_pending", "remapped_rows_pending") for x in pending
                    ]
                },
                command=f"sudo nvidia-smi -i {g.index} -r",
            )
        )
    return found


def _shared_server(facts: DoctorFacts) -> bool:
    """A Linux machine whose GPUs are all data-centre boards (no desktop board names): two
    GeForce cards make a desktop, not a shared server."""
    gpus = _healthy(facts)
    if facts.os_name != "linux" or not gpus:
        return False
    return all(
        isinstance(g.name, str) and not any(w in g.name.lower() for w in _DESKTOP_WORDS)
        for g in gpus
    )


def check_persistence(facts: DoctorFacts) -> list[Finding]:
    """``gpu.persistence_off``: persistence mode off on a shared Linux server."""
    off = [g for g in _healthy(facts) if g.persistence_mode is False]
    if not off or not _shared_server(facts):
        return []
    every = len(off) == len(facts.gpus)  # an unreachable GPU would make "-pm 1" fail
    command = "sudo nvidia-smi -pm 1" if every else f"sudo nvidia-smi -i {_ids(off)} -pm 1"
    command = command.replace(", ", ",")
    return [
        Finding(
            "gpu.persistence_off",
            "info",
            f"GPU {_ids(off)}: persistence mode off",
            "Without persistence mode the driver tears the GPU state down whenever no process "
            "uses it: each job's first CUDA call waits seconds for re-initialisation, and "
            "settings such as clocks and power limits can reset between users' jobs.",
            f"Turn it on (until reboot): {command}; for good, enable the nvidia-persistenced "
            "service: sudo systemctl enable --now nvidia-persistenced.",
            {"gpus": [_raw(x, "persistence_mode") for x in off]},
            command=command,
        )
    ]


CHECKS = (
    check_pcie,
    check_clocks,
    check_temperature,
    check_power_limit,
    check_ecc_aggregate,
    check_memory_repair,
    check_persistence,
)
