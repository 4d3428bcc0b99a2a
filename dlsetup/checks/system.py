"""Checks over the host and CUDA environment: CPU features, RAM, disk, CUDA_VISIBLE_DEVICES, WSL."""

from __future__ import annotations

from collections.abc import Sequence

from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import Finding, Severity
from dlsetup.facts import Missing

GIB = 1024**3

#: Below this much RAM (bytes) a framework install and a small model get tight.
LOW_RAM_TOTAL = 8 * GIB
#: Below this much available RAM (bytes) importing both frameworks can swap or be killed.
LOW_RAM_AVAILABLE = 2 * GIB
#: Free disk (bytes) a CUDA PyTorch/TensorFlow environment needs with its package cache.
DISK_WARN = 10 * GIB
#: Below this, creating an environment will fail.
DISK_ERROR = 3 * GIB


def check_cpu_avx(facts: DoctorFacts) -> list[Finding]:
    """``cpu.no_avx``: an x86-64 CPU without AVX (TensorFlow wheels need it; so do most others)."""
    sysf = facts.system
    if isinstance(sysf, Missing) or not sysf.is_x86 or isinstance(sysf.cpu_features, Missing):
        return []
    if "avx" in sysf.cpu_features:
        return []
    fw = facts.frameworks
    tf_installed = not isinstance(fw, Missing) and not isinstance(fw.tensorflow, Missing)
    severity: Severity = "error" if tf_installed else "warning"
    return [
        Finding(
            "cpu.no_avx",
            severity,
            "The CPU has no AVX instructions",
            f"{sysf.cpu_model if not isinstance(sysf.cpu_model, Missing) else 'This CPU'} lacks "
            "AVX; TensorFlow's official wheels are built with AVX and crash with 'Illegal "
            "instruction' on import.",
            "Use conda-forge's tensorflow (its microarch level 1 build runs without AVX) or build "
            "TensorFlow from source; PyTorch CPU wheels pick their kernels at run time.",
            {"cpu_features": list(sysf.cpu_features)},
        )
    ]


def check_ram(facts: DoctorFacts) -> list[Finding]:
    """``memory.low_ram``: little RAM in total, or little available now."""
    sysf = facts.system
    if isinstance(sysf, Missing):
        return []
    total, avail = sysf.ram_total_bytes, sysf.ram_available_bytes
    if total >= LOW_RAM_TOTAL and avail >= LOW_RAM_AVAILABLE:
        return []
    return [
        Finding(
            "memory.low_ram",
            "warning",
            f"Low memory: {avail / GIB:.1f} GiB available of {total / GIB:.1f} GiB",
            f"Deep-learning work wants at least {LOW_RAM_TOTAL // GIB} GiB of RAM and "
            f"{LOW_RAM_AVAILABLE // GIB} GiB free; importing both frameworks alone takes about "
            "1 GiB, and data loading more.",
            "Close memory-hungry programs, add swap (sudo fallocate -l 8G /swapfile && sudo "
            "mkswap /swapfile && sudo swapon /swapfile), or use a machine with more RAM.",
            {"ram_total_bytes": total, "ram_available_bytes": avail},
        )
    ]


def check_disk(facts: DoctorFacts) -> list[Finding]:
    """``disk.low_free``: little free space where environments will be created."""
    sysf = facts.system
    if isinstance(sysf, Missing) or isinstance(sysf.disk_free_bytes, Missing):
        return []
    free = sysf.disk_free_bytes
    if free >= DISK_WARN:
        return []
    severity: Severity = "error" if free < DISK_ERROR else "warning"
    return [
        Finding(
            "disk.low_free",
            severity,
            f"Only {free / GIB:.1f} GiB free at {sysf.disk_path}",
            f"A CUDA build of PyTorch or TensorFlow with its package cache takes up to "
            f"{DISK_WARN // GIB} GiB; environment creation may fail part-way.",
            "Free space (pip cache purge; conda clean --all; remove old environments) or create "
            "environments on a larger disk (dlsetup create --prefix /big/disk/env).",
            {"path": sysf.disk_path, "free_bytes": free},
        )
    ]


#: How many characters of an environment variable's value a message shows.
ECHO_LIMIT = 64


def echo_value(value: str, *, limit: int = ECHO_LIMIT, quote: bool = True) -> str:
    """``value`` as a message shows it: quoted, and cut after ``limit`` characters.

    A 100 KB ``CUDA_VISIBLE_DEVICES`` must not fill the terminal:
    ``'0,1,2,...'… (102400 characters)``.
    """
    if len(value) <= limit:
        return repr(value) if quote else value
    head = repr(value[:limit]) if quote else value[:limit]
    return f"{head}… ({len(value)} characters)"


#: Why an entry of CUDA_VISIBLE_DEVICES names no GPU, as a sentence part (see VisibleResolution).
_UNMATCHED = {
    "index_out_of_range": "GPU {entry} does not exist (this machine has {valid})",
    "uuid_not_found": "no GPU's UUID starts with {entry} (nvidia-smi -L lists them)",
    "uuid_ambiguous": "{entry} is the start of several GPUs' UUIDs, so CUDA cannot pick one",
    "mig_not_enabled": "{entry} names a MIG instance, but MIG mode is off on the GPU(s)",
    "not_a_device": "{entry} is neither a GPU index nor a GPU/MIG UUID",
}


def _gpu_list(indices: Sequence[int]) -> str:
    """``GPU 0`` / ``GPUs 0 and 1`` / ``GPUs 0, 1 and 3`` (each GPU once)."""
    names = [str(i) for i in dict.fromkeys(indices)]
    if len(names) == 1:
        return f"GPU {names[0]}"
    return "GPUs " + ", ".join(names[:-1]) + " and " + names[-1]


def check_visible_devices(facts: DoctorFacts) -> list[Finding]:
    """``cuda_visible_devices.hides_all`` and ``cuda_visible_devices.unknown_device``.

    The variable is read the way CUDA reads it (:func:`resolve_visible_devices`): the first entry
    that names no GPU ends the list, so every GPU listed after it is hidden too.
    """
    resolved = facts.visible
    if resolved is None or isinstance(facts.cuda_libs, Missing):
        return []
    vd = facts.cuda_libs.visible_devices
    if isinstance(vd.raw, Missing):
        return []
    gpus = facts.gpus
    first = echo_value(resolved.unmatched[0], quote=False) if resolved.unmatched else ""
    # An empty value, or a first entry that is no device at all (-1, none, NoDevFiles), is the
    # usual way to hide every GPU on purpose.
    if resolved.hides_all and resolved.reason in ("", "not_a_device"):
        return [
            Finding(
                "cuda_visible_devices.hides_all",
                "warning",
                "CUDA_VISIBLE_DEVICES hides every GPU",
                f"CUDA_VISIBLE_DEVICES={echo_value(vd.raw)} makes all {len(gpus)} GPU(s) invisible "
                "to CUDA: frameworks run on the CPU.",
                "unset CUDA_VISIBLE_DEVICES (or set it to the GPUs to use, e.g. "
                "export CUDA_VISIBLE_DEVICES=0); check your shell profile and job script.",
                {"value": vd.raw, "gpu_count": len(gpus)},
                command="unset CUDA_VISIBLE_DEVICES",
            )
        ]
    if not resolved.reason:
        return []
    all_indices = [g.index for g in gpus]
    why = _UNMATCHED[resolved.reason].format(entry=first, valid=_gpu_list(all_indices))
    if resolved.hidden_gpus:
        hidden = _gpu_list(resolved.hidden_gpus)
        ignored = (
            f"CUDA stops reading the list at the first entry it cannot use, so {hidden} "
            f"listed after it {'is' if len(resolved.hidden_gpus) == 1 else 'are'} hidden too."
        )
    else:
        ignored = "CUDA stops reading the list at the first entry it cannot use."
    if resolved.hides_all:
        sees = " CUDA sees no GPU: frameworks run on the CPU."
    elif resolved.gpu_indices:
        sees = f" CUDA sees {_gpu_list(resolved.gpu_indices)} only."
    else:
        sees = f" CUDA sees {len(resolved.mig_entries)} MIG instance(s) only."
    meant = list(dict.fromkeys([*resolved.gpu_indices, *resolved.hidden_gpus])) or all_indices
    severity: Severity = "error" if resolved.hides_all else "warning"
    return [
        Finding(
            "cuda_visible_devices.unknown_device",
            severity,
            f"CUDA_VISIBLE_DEVICES names a GPU that does not exist: {first}",
            f"CUDA_VISIBLE_DEVICES={echo_value(vd.raw)}: {why}. {ignored}{sees}",
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, meant))} (indices or UUIDs from "
            "nvidia-smi -L), or unset CUDA_VISIBLE_DEVICES.",
            {
                "value": vd.raw,
                "unknown": resolved.unmatched[0] if resolved.unmatched else "",
                "reason": resolved.reason,
                "ignored": list(resolved.unmatched),
                "visible_gpus": list(resolved.gpu_indices),
                "hidden_gpus": list(resolved.hidden_gpus),
                "gpu_count": len(gpus),
            },
            command=f"export CUDA_VISIBLE_DEVICES={','.join(map(str, meant))}",
        )
    ]


def check_wsl_libcuda(facts: DoctorFacts) -> list[Finding]:
    """``wsl.libcuda_not_symlink``: WSL 2's libcuda.so.1 is a copy, not a symlink."""
    libs = facts.cuda_libs
    if isinstance(libs, Missing) or not libs.wsl.symlink_problem:
        return []
    lib_dir = libs.wsl.lib_dir if isinstance(libs.wsl.lib_dir, str) else "/usr/lib/wsl/lib"
    return [
        Finding(
            "wsl.libcuda_not_symlink",
            "warning",
            f"{lib_dir}/libcuda.so.1 is not a symbolic link",
            "WSL 2 installs libcuda.so and libcuda.so.1 as copies of libcuda.so.1.1; ldconfig "
            "then warns 'libcuda.so.1 is not a symbolic link' and some programs cannot find "
            "libcuda.so.",
            f"cd {lib_dir} && sudo rm libcuda.so libcuda.so.1 && sudo ln -s libcuda.so.1.1 "
            "libcuda.so.1 && sudo ln -s libcuda.so.1 libcuda.so && sudo ldconfig (Windows may "
            "restore the copies after a driver update; run it again then).",
            {
                "lib_dir": lib_dir,
                "libcuda_so_1_is_symlink": libs.wsl.libcuda_so_1_is_symlink
                if isinstance(libs.wsl.libcuda_so_1_is_symlink, bool)
                else None,
            },
            command=f"cd {lib_dir} && sudo rm libcuda.so libcuda.so.1 && sudo ln -s "
            "libcuda.so.1.1 libcuda.so.1 && sudo ln -s libcuda.so.1 libcuda.so && sudo ldconfig",
        )
    ]
