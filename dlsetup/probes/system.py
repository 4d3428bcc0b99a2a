"""Facts about the host: OS, kernel, glibc, Python, CPU and its instruction sets, memory, disk,
containers and WSL. Cheap: psutil and a few files under /proc, no subprocess on Linux.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from dlsetup import children
from dlsetup.facts import Maybe, Missing

#: Instruction-set features frameworks care about, as Linux /proc/cpuinfo spells them.
CPU_FEATURES: tuple[str, ...] = (
    "sse4_2",
    "fma",
    "avx",
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

#: macOS sysctl feature names -> our names (Intel Macs; Apple silicon has none of these).
_MAC_FEATURES = {
    "SSE4.2": "sse4_2",
    "FMA": "fma",
    "AVX1.0": "avx",
    "AVX2": "avx2",
    "AVX512F": "avx512f",
    "AVX512VNNI": "avx512_vnni",
}


@dataclass(frozen=True)
class SystemFacts:
    """The host. Sizes in bytes.

    Attributes:
        os_name: ``linux`` | ``darwin`` | ``windows`` (``platform.system()`` lower-cased).
        distribution: ``"Debian GNU/Linux 12 (bookworm)"``, ``"macOS 14.5"``, ``"Windows 11"``.
        kernel: the kernel release (``platform.release()``).
        machine: ``x86_64``, ``arm64``, ``AMD64``, ...
        glibc: ``"2.36"``; Missing on musl, macOS and Windows.
        python_version: of the process running doctor, ``"3.11.7"``.
        python_executable: its path.
        cpu_model: ``"AMD EPYC 7763 64-Core Processor"``.
        cpu_physical_cores / cpu_logical_cores: core counts.
        cpu_features: the :data:`CPU_FEATURES` this CPU has; Missing where they cannot be read.
        ram_total_bytes / ram_available_bytes / swap_total_bytes / swap_used_bytes: memory.
        disk_path: the directory whose file system was measured (where environments go).
        disk_free_bytes / disk_total_bytes: that file system's space.
        container: ``none`` | ``docker`` | ``podman`` | ``kubernetes`` | ``lxc`` | ``container``.
        wsl: ``none`` | ``wsl1`` | ``wsl2``.
        hostname: the node's name (``socket.gethostname()``): what a fleet report names it by.
    """

    os_name: str
    distribution: Maybe[str]
    kernel: str
    machine: str
    glibc: Maybe[str]
    python_version: str
    python_executable: str
    cpu_model: Maybe[str]
    cpu_physical_cores: Maybe[int]
    cpu_logical_cores: Maybe[int]
    cpu_features: Maybe[tuple[str, ...]]
    ram_total_bytes: int
    ram_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    disk_path: str
    disk_free_bytes: Maybe[int]
    disk_total_bytes: Maybe[int]
    container: str
    wsl: str
    hostname: str

    @property
    def is_x86(self) -> bool:
        """True on x86-64 CPUs (where AVX matters)."""
        return self.machine.lower() in ("x86_64", "amd64", "i686", "i386")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _distribution(os_name: str) -> Maybe[str]:
    if os_name == "linux":
        try:
            info = platform.freedesktop_os_release()
        except OSError as exc:
            return Missing("not_found", str(exc))
        return info.get("PRETTY_NAME") or info.get("NAME") or Missing("not_found")
    if os_name == "darwin":
        release = platform.mac_ver()[0]
        return f"macOS {release}" if release else Missing("not_found")
    if os_name == "windows":
        return f"Windows {platform.release()} ({platform.version()})"
    return Missing("not_supported", f"unknown OS {os_name}")


def _glibc() -> Maybe[str]:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        value = None
    if value and value.startswith("glibc "):
        return value.split()[1]
    lib, version = platform.libc_ver()
    if lib == "glibc" and version:
        return version
    return Missing("not_supported", "not a glibc system")


def _sysctl(*names: str) -> list[str] | None:
    try:
        out = children.run(["/usr/sbin/sysctl", "-n", *names], timeout=2, grace=1.0)
    except OSError:
        return None
    return out.stdout.splitlines() if out.ok else None


def _cpu(os_name: str) -> tuple[Maybe[str], Maybe[tuple[str, ...]]]:
    if os_name == "linux":
        text = _read("/proc/cpuinfo")
        if text is None:
            return Missing("not_found", "/proc/cpuinfo"), Missing("not_found", "/proc/cpuinfo")
        model: Maybe[str] = Missing("not_found", "no 'model name' in /proc/cpuinfo")
        flags: set[str] | None = None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "cpu model") and isinstance(model, Missing):
                model = value.strip()
            elif key in ("flags", "Features") and flags is None:
                flags = set(value.split())
            if flags is not None and not isinstance(model, Missing):
                break
        if flags is None:
            return model, Missing("not_found", "no 'flags' in /proc/cpuinfo")
        return model, tuple(f for f in CPU_FEATURES if f in flags)
    if os_name == "darwin":
        lines = _sysctl("machdep.cpu.brand_string")
        model = (
            lines[0].strip() if lines else Missing("not_found", "sysctl machdep.cpu.brand_string")
        )
        if platform.machine() == "arm64":
            return model, ()
        feats = _sysctl("machdep.cpu.features", "machdep.cpu.leaf7_features")
        if feats is None:
            return model, Missing("not_found", "sysctl machdep.cpu.features")
        names = {w.upper() for line in feats for w in line.split()}
        return model, tuple(ours for mac, ours in _MAC_FEATURES.items() if mac in names)
    model_text = platform.processor()
    return (model_text or Missing("not_found")), Missing(
        "not_supported", f"CPU features are not read on {os_name}"
    )


def _container() -> str:
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/run/.containerenv").exists():
        return "podman"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    cgroup = _read("/proc/1/cgroup") or ""
    for marker, name in (
        ("kubepods", "kubernetes"),
        ("docker", "docker"),
        ("libpod", "podman"),
        ("lxc", "lxc"),
    ):
        if marker in cgroup:
            return name
    if os.environ.get("container"):  # noqa: SIM112 - systemd/podman set it lower-case
        return "container"
    return "none"


def _wsl(os_name: str) -> str:
    if os_name != "linux":
        return "none"
    release = (_read("/proc/sys/kernel/osrelease") or platform.release()).lower()
    if "microsoft" not in release and "wsl" not in release:
        return "none"
    return "wsl2" if "wsl2" in release or Path("/run/WSL").exists() else "wsl1"


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)


def probe_system(env_dir: Path | None = None) -> SystemFacts:
    """Read the host facts.

    Args:
        env_dir: where environments will be created; its file system's free space is measured
            (the nearest existing parent if it does not exist yet). Default: the home directory.
    """
    os_name = platform.system().lower()
    model, features = _cpu(os_name)
    import psutil  # the one source of memory, core and disk figures on every OS

    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    physical = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True)
    target = _existing_parent((env_dir or Path.home()).expanduser())
    disk_free: Maybe[int]
    disk_total: Maybe[int]
    try:
        usage = psutil.disk_usage(str(target))
        disk_free, disk_total = int(usage.free), int(usage.total)
    except OSError as exc:
        disk_free = disk_total = Missing("error", str(exc))
    return SystemFacts(
        os_name=os_name,
        distribution=_distribution(os_name),
        kernel=platform.release(),
        machine=platform.machine(),
        glibc=_glibc()
        if os_name == "linux"
        else Missing("not_supported", f"no glibc on {os_name}"),
        python_version=platform.python_version(),
        python_executable=sys.executable,
        cpu_model=model,
        cpu_physical_cores=physical if physical else Missing("not_found"),
        cpu_logical_cores=logical if logical else Missing("not_found"),
        cpu_features=features,
        ram_total_bytes=int(vm.total),
        ram_available_bytes=int(vm.available),
        swap_total_bytes=int(swap.total),
        swap_used_bytes=int(swap.used),
        disk_path=str(target),
        disk_free_bytes=disk_free,
        disk_total_bytes=disk_total,
        container=_container(),
        wsl=_wsl(os_name),
        hostname=socket.gethostname(),
    )
