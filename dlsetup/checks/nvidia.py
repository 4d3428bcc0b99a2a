"""Checks over NVML's facts: driver state, lost or unreachable GPUs, MIG, memory held, ECC."""

from __future__ import annotations

from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.environment_faults import container_without_gpu
from dlsetup.checks.finding import Finding
from dlsetup.facts import Missing
from dlsetup.probes.nvidia import GpuFacts

MIB = 1024 * 1024

#: A GPU whose used memory exceeds this share of its total counts as held by others.
HELD_SHARE = 0.10


def check_nvml_status(facts: DoctorFacts) -> list[Finding]:
    """``nvml.no_library``, ``nvml.driver_not_loaded``, ``nvml.driver_mismatch``, ``nvml.no_permission``,
    ``nvml.error``: NVML could not start."""
    nv = facts.nvidia
    detail = {"nvml_error_code": nv.nvml_error_code, "nvml_error": nv.status_detail}
    if nv.status == "ok" or facts.os_name == "darwin":
        return []
    if container_without_gpu(facts):  # container.no_gpu_access says why, with the right fix
        return []
    if nv.status == "no_library":
        return [
            Finding(
                "nvml.no_library",
                "info",
                "No NVIDIA driver library (libnvidia-ml.so.1 / nvml.dll)",
                "NVML could not be loaded, so no NVIDIA driver is installed for this system: "
                "frameworks can only use the CPU (or another accelerator).",
                "If this machine has an NVIDIA GPU, install the NVIDIA driver (Ubuntu: "
                "sudo ubuntu-drivers install; others: https://www.nvidia.com/Download/index.aspx), "
                "then reboot.",
                detail,
            )
        ]
    if nv.status == "driver_not_loaded":
        return [
            Finding(
                "nvml.driver_not_loaded",
                "error",
                "The NVIDIA kernel driver is not loaded (NVML error 9)",
                "The driver's user-space library is installed but the kernel module is not "
                "running, so no framework can see a GPU.",
                "Load it with sudo modprobe nvidia (or reboot); if that fails, read "
                "sudo dmesg | grep -i nvidia — with Secure Boot on, the module must be signed or "
                "Secure Boot disabled.",
                detail,
                command="sudo modprobe nvidia",
            )
        ]
    if nv.status == "driver_mismatch":
        return [
            Finding(
                "nvml.driver_mismatch",
                "error",
                "NVIDIA driver library and kernel module versions differ (NVML error 18)",
                "The user-space driver library does not match the loaded kernel module, usually "
                "after a driver update without a reboot; CUDA cannot start.",
                "Reboot so the new kernel module loads (or reinstall one driver version so library "
                "and module match; cat /proc/driver/nvidia/version shows the loaded module).",
                detail,
            )
        ]
    if nv.status == "no_permission":
        return [
            Finding(
                "nvml.no_permission",
                "warning",
                "No permission to query the NVIDIA driver",
                "NVML refused to initialise for this user, so GPU facts are missing.",
                "Check the permissions of /dev/nvidia* (the user may need the 'video' group), "
                "or run doctor as a user that can run nvidia-smi.",
                detail,
            )
        ]
    return [
        Finding(
            "nvml.error",
            "warning",
            "NVML failed to initialise",
            f"The NVIDIA driver library answered with an error: {nv.status_detail or 'unknown'}.",
            "Run nvidia-smi to see the driver's own error message; reinstall the driver if it fails too.",
            detail,
        )
    ]


def check_functions_not_found(facts: DoctorFacts) -> list[Finding]:
    """``nvml.function_not_found``: the driver lacks NVML functions, so some fields are missing."""
    missing = facts.nvidia.functions_not_found
    if facts.nvidia.status != "ok" or not missing:
        return []
    return [
        Finding(
            "nvml.function_not_found",
            "info",
            "The driver lacks some NVML functions",
            f"This driver's NVML has no {', '.join(missing)}; the fields they read are shown as "
            "n/a. Everything else was read.",
            "Update the NVIDIA driver for complete reporting (optional).",
            {"functions": list(missing)},
        )
    ]


def check_gpu_lost(facts: DoctorFacts) -> list[Finding]:
    """``gpu.lost``: NVML says a GPU fell off the bus."""
    lost = [g.index for g in facts.gpus if g.lost]
    if not lost:
        return []
    return [
        Finding(
            "gpu.lost",
            "error",
            f"GPU {', '.join(map(str, lost))} is lost (NVML error 15)",
            "The driver lost contact with the GPU (fell off the bus); nothing can run on it "
            "until it is recovered.",
            "Look for Xid errors in sudo dmesg | grep -i xid; reboot the machine; if it comes "
            "back, check the GPU's power, cooling and seating.",
            {"gpus": lost},
        )
    ]


def _framework_device_counts(facts: DoctorFacts) -> dict[str, int]:
    """``{framework: GPUs it counts}`` for the probes that counted (torch's device_count)."""
    from dlsetup.probes.frameworks import FrameworkProbe, TorchBuild

    fw = facts.frameworks
    if isinstance(fw, Missing) or not isinstance(fw.torch, FrameworkProbe):
        return {}
    build = fw.torch.torch
    if isinstance(build, TorchBuild) and isinstance(build.device_count, int):
        return {"torch": build.device_count}
    return {}


def check_gpu_unreachable(facts: DoctorFacts) -> list[Finding]:
    """``gpu.unreachable``: NVML cannot open a GPU (``nvmlDeviceGetHandleByIndex`` fails).

    Seen as NVML_ERROR_UNKNOWN (999) after an XID 79 or a driver fault; ``gpu.lost`` covers
    NVML_ERROR_GPU_IS_LOST. No other GPU check judges such a GPU (every field is missing).
    """
    gone = [g for g in facts.gpus if g.handle_error_code is not None and not g.lost]
    if not gone:
        return []
    total = len(facts.gpus)
    usable = total - len([g for g in facts.gpus if g.unreachable])
    names = ", ".join(str(g.index) for g in gone)
    first = gone[0]
    error = first.name.detail if isinstance(first.name, Missing) else ""
    counted = _framework_device_counts(facts)
    seen = "".join(f"; {fw} counts {n} GPU{'s' * (n != 1)}" for fw, n in counted.items())
    return [
        Finding(
            "gpu.unreachable",
            "error",
            f"NVML cannot open GPU {names} (error {first.handle_error_code})",
            f"nvmlDeviceGetHandleByIndex fails for GPU {names} ({error or 'no detail'}), as after "
            "an XID 79 (GPU fallen off the bus) or a driver fault: no fact of it can be read and "
            f"no program can use it. Frameworks see at most {usable} of the {total} GPUs{seen}; "
            "the other GPUs' findings below leave it out.",
            f"Read the driver's log for the fault: sudo dmesg | grep -i xid. GPU {names} comes back "
            "only after a reboot (or a reset of every GPU by the host's administrator); if it "
            "fails again, have its power, cooling and seating checked.",
            {
                "gpus": [g.index for g in gone],
                "nvml_error_code": first.handle_error_code,
                "nvml_error": error,
                "usable_gpus": usable,
                "gpu_count": total,
                "framework_device_count": counted,
            },
            command="sudo dmesg | grep -i xid",
        )
    ]


def check_mig(facts: DoctorFacts) -> list[Finding]:
    """``gpu.mig_enabled`` and ``gpu.mig_pending_reset``."""
    found: list[Finding] = []
    enabled = [g.index for g in facts.gpus if g.mig_mode_current is True]
    pending = [
        g.index
        for g in facts.gpus
        if isinstance(g.mig_mode_current, bool)
        and isinstance(g.mig_mode_pending, bool)
        and g.mig_mode_current != g.mig_mode_pending
    ]
    if enabled:
        ids = ", ".join(map(str, enabled))
        found.append(
            Finding(
                "gpu.mig_enabled",
                "warning",
                f"MIG mode is on for GPU {ids}",
                "With Multi-Instance GPU on, CUDA programs run only on MIG instances: a framework "
                "sees no device unless CUDA_VISIBLE_DEVICES names a MIG instance (or the "
                "scheduler assigns one), and one process gets one instance's memory and cores.",
                "List the instances with nvidia-smi -L and export CUDA_VISIBLE_DEVICES=MIG-<uuid>; "
                f"or turn MIG off: sudo nvidia-smi -i {enabled[0]} -mig 0 (then reset the GPU).",
                {"gpus": enabled},
                command=f"sudo nvidia-smi -i {enabled[0]} -mig 0",
            )
        )
    if pending:
        ids = ", ".join(map(str, pending))
        found.append(
            Finding(
                "gpu.mig_pending_reset",
                "warning",
                f"A MIG mode change on GPU {ids} waits for a GPU reset",
                "The MIG mode was changed but takes effect only after the GPU is reset; until "
                "then the old mode applies.",
                f"Stop the GPU's processes, then sudo nvidia-smi -i {pending[0]} -r (or reboot).",
                {"gpus": pending},
                command=f"sudo nvidia-smi -i {pending[0]} -r",
            )
        )
    return found


def check_memory_held(facts: DoctorFacts) -> list[Finding]:
    """``gpu.memory_held``: other processes hold GPU memory."""
    found: list[Finding] = []
    for gpu in facts.gpus:
        procs = gpu.processes if not isinstance(gpu.processes, Missing) else ()
        used = gpu.memory_used_bytes
        total = gpu.memory_total_bytes
        heavy = (
            isinstance(used, int)
            and isinstance(total, int)
            and total > 0
            and used > HELD_SHARE * total
        )
        if not procs and not heavy:
            continue
        listed = [
            f"pid {p.pid} ({p.name if not isinstance(p.name, Missing) else 'unknown'}"
            + (
                f", {p.used_memory_bytes // MIB} MiB)"
                if isinstance(p.used_memory_bytes, int)
                else ")"
            )
            for p in procs
        ]
        used_text = f"{used // MIB} MiB" if isinstance(used, int) else "some memory"
        total_text = f" of {total // MIB} MiB" if isinstance(total, int) else ""
        who = "; ".join(listed) if listed else "processes this user cannot see (another container?)"
        pids = " ".join(str(p.pid) for p in procs)
        elsewhere = _elsewhere(facts, gpu.index)
        fix = (
            f"Stop them if they are yours (kill {pids}){elsewhere}."
            if pids
            else f"Find the owner with nvidia-smi on the host{elsewhere}."
        )
        found.append(
            Finding(
                "gpu.memory_held",
                "warning",
                f"GPU {gpu.index}: {used_text}{total_text} held by other processes",
                f"Memory on GPU {gpu.index} is in use by {who}; a new job gets only what is "
                "left and may fail with CUDA out-of-memory.",
                fix,
                {
                    "gpu": gpu.index,
                    "memory_used_bytes": used if isinstance(used, int) else None,
                    "processes": [
                        {
                            "pid": p.pid,
                            "name": None if isinstance(p.name, Missing) else p.name,
                            "used_memory_bytes": None
                            if isinstance(p.used_memory_bytes, Missing)
                            else p.used_memory_bytes,
                        }
                        for p in procs
                    ],
                },
                command=f"kill {pids}" if pids else "",
            )
        )
    return found


def _free_gpus(facts: DoctorFacts, busy: int) -> list[int]:
    """GPUs other than ``busy`` that are reachable and hold no process memory."""
    free = []
    for g in facts.gpus:
        if g.index == busy or g.unreachable:
            continue
        used, total = g.memory_used_bytes, g.memory_total_bytes
        procs = g.processes if isinstance(g.processes, tuple) else ()
        quiet = isinstance(used, int) and isinstance(total, int) and used <= HELD_SHARE * total
        if quiet and not procs:
            free.append(g.index)
    return free


def _elsewhere(facts: DoctorFacts, busy: int) -> str:
    """``", or run on GPU 1 instead: export CUDA_VISIBLE_DEVICES=1"``, or ``""`` when no other
    GPU of this machine is free."""
    free = _free_gpus(facts, busy)
    if not free:
        return ""
    return f", or run on GPU {free[0]} instead: export CUDA_VISIBLE_DEVICES={free[0]}"


def memory_repair(gpu: GpuFacts) -> tuple[str, str]:
    """(the memory repair this GPU's generation uses, its ``nvidia-smi -q -d`` section).

    Ampere (compute capability 8.0) and later remap rows; earlier data-centre GPUs retire pages.
    Unknown capability: both sections.
    """
    cc = gpu.compute_capability
    if isinstance(cc, tuple):
        return (
            ("row remapping", "ROW_REMAPPER")
            if cc >= (8, 0)
            else (
                "page retirement",
                "PAGE_RETIREMENT",
            )
        )
    return "page retirement or row remapping", "PAGE_RETIREMENT,ROW_REMAPPER"


def repair_failed(gpu: GpuFacts) -> bool:
    """True when the GPU's row remapper failed: ``gpu.row_remap_failed`` explains its memory
    errors, so the ECC and reset checks leave this GPU to it (one cause, one fix)."""
    return gpu.remapped_rows_failed is True


def check_ecc(facts: DoctorFacts) -> list[Finding]:
    """``gpu.ecc_errors``: uncorrected ECC errors since the driver loaded."""
    bad = [
        g
        for g in facts.gpus
        if isinstance(g.ecc_errors_uncorrected, int)
        and g.ecc_errors_uncorrected > 0
        and not repair_failed(g)
    ]
    if not bad:
        return []
    text = ", ".join(f"GPU {g.index}: {g.ecc_errors_uncorrected}" for g in bad)
    first = bad[0]
    _, section = memory_repair(first)
    others = "".join(f", then GPU {g.index} likewise" for g in bad[1:])
    return [
        Finding(
            "gpu.ecc_errors",
            "warning",
            "Uncorrected ECC memory errors",
            f"Uncorrected ECC errors since the driver loaded ({text}); results on that GPU may "
            "be wrong and jobs may crash.",
            f"Stop GPU {first.index}'s processes and reset it: sudo nvidia-smi -i {first.index} -r"
            f"{others} (or reboot); if "
            "errors come back, have the GPU checked with the output of "
            f"nvidia-smi -i {first.index} -q -d ECC,{section}.",
            {"gpus": {str(g.index): g.ecc_errors_uncorrected for g in bad}},
            command=f"sudo nvidia-smi -i {first.index} -r",
        )
    ]
