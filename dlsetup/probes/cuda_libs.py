"""CUDA toolkit and library facts: ``nvcc``, ``CUDA_HOME``/``CUDA_PATH``, the CUDA libraries the
dynamic loader would find, ``CUDA_VISIBLE_DEVICES`` and the WSL ``libcuda.so.1`` layout.

Everything here is read-only and cheap: one ``nvcc --version`` and one ``ldconfig -p`` (each with a
timeout, argument lists, no shell), a few ``stat`` calls. The loader cache is parsed from
``ldconfig -p`` directly rather than through ``ctypes.util.find_library``, which returns only a
file name (no path) and may compile a C program with gcc per lookup when the cache misses. The environment and the filesystem root
are parameters, so tests can point the probe at a temporary tree and a scripted environment.

This reports what the *loader* sees from this process. A framework wheel that bundles its own CUDA
runtime (``nvidia-*-cu12`` packages) is probed by the framework probe, not here.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dlsetup import children
from dlsetup.facts import Maybe, Missing
from dlsetup.probes.cuda_wheels import CudaWheelsFacts

#: Seconds allowed for ``nvcc --version`` and ``ldconfig -p``.
TOOL_TIMEOUT_S = 10.0

#: Where WSL 2 mounts the Windows driver's Linux libraries (libcuda.so*, libnvidia-ml.so.1).
WSL_LIB_DIR = "usr/lib/wsl/lib"

_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V(\d+(?:\.\d+)*)")
_LDCONFIG_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S.*?)\s*$")


@dataclass(frozen=True)
class NvccFacts:
    """The CUDA compiler, if one is installed.

    Attributes:
        path: the ``nvcc`` that was run: the one on ``PATH``, else ``$CUDA_HOME/bin/nvcc``,
            ``$CUDA_PATH/bin/nvcc`` or ``/usr/local/cuda/bin/nvcc``.
        on_path: True when ``path`` came from ``PATH`` (what a build script would run).
        release: the toolkit release, ``"12.4"``.
        version: the full version, ``"12.4.131"``.
    """

    path: Maybe[str]
    on_path: bool = False
    release: Maybe[str] = Missing("not_found")
    version: Maybe[str] = Missing("not_found")


@dataclass(frozen=True)
class LibraryFacts:
    """One shared library as the dynamic loader would find it.

    Attributes:
        name: the short name, ``"cudart"``, ``"cudnn"``, ``"cuda"`` (the driver's libcuda).
        path: the first match in loader order: ``LD_LIBRARY_PATH`` directories, then the
            ``ldconfig`` cache.
        resolved: ``path`` with symlinks resolved (the file that would be loaded).
        version: from the resolved file name: ``libcudart.so.12.4.127`` -> ``"12.4.127"``,
            ``libcudnn.so.9`` -> ``"9"``, ``libcuda.so.550.54.15`` -> ``"550.54.15"`` (the driver
            version). Missing when the name carries none (``libcuda.so.1`` is only the SONAME).
        found_by: ``LD_LIBRARY_PATH`` | ``ldconfig``, or empty when not found.
        all_paths: every distinct file found for this name, loader order (several cuDNN
            versions side by side show up here).
    """

    name: str
    path: Maybe[str] = Missing("not_found")
    resolved: Maybe[str] = Missing("not_found")
    version: Maybe[str] = Missing("not_found")
    found_by: str = ""
    all_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class VisibleDevices:
    """``CUDA_VISIBLE_DEVICES`` as the CUDA runtime reads it.

    CUDA takes a comma-separated list of GPU indices or UUIDs (``GPU-...``, ``MIG-...``, unique
    prefixes allowed) and stops at the first entry it cannot parse: ``"0,2,-1,1"`` shows GPUs 0 and
    2. An empty value hides every GPU.

    Attributes:
        raw: the value, or ``Missing("unset")``.
        entries: the comma-separated items, whitespace stripped.
        visible: the entries CUDA honours (those before the first invalid one).
        indices: the integer indices among ``visible``.
        uuids: the UUID entries among ``visible``.
        invalid: entries that are neither an index nor a UUID.
        ignored: the entries CUDA does not honour: the first invalid one and all after it.
        hides_all: set, and nothing is visible.
    """

    raw: Maybe[str]
    entries: tuple[str, ...] = ()
    visible: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()
    uuids: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    hides_all: bool = False


@dataclass(frozen=True)
class WslLibcudaFacts:
    """The layout of ``/usr/lib/wsl/lib``, where WSL 2 puts the driver's ``libcuda``.

    The known problem: the files there are copies, not symlinks, so ``ldconfig`` warns
    ``/usr/lib/wsl/lib/libcuda.so.1 is not a symbolic link`` (and some tools fail to find
    ``libcuda.so``).

    Attributes:
        lib_dir: ``/usr/lib/wsl/lib`` when it exists, else ``Missing("not_found")``.
        libcuda_so_1_exists: ``libcuda.so.1`` is there.
        libcuda_so_1_is_symlink: whether it is a symlink (Missing when absent).
        libcuda_so_exists: ``libcuda.so`` is there.
        libcuda_so_is_symlink: whether it is a symlink (Missing when absent).
        libcuda_so_1_1_exists: the real file ``libcuda.so.1.1`` is there.
        symlink_problem: the WSL directory holds ``libcuda.so.1`` or ``libcuda.so`` as a regular
            file (what makes ``ldconfig`` warn).
    """

    lib_dir: Maybe[str]
    libcuda_so_1_exists: bool = False
    libcuda_so_1_is_symlink: Maybe[bool] = Missing("not_found")
    libcuda_so_exists: bool = False
    libcuda_so_is_symlink: Maybe[bool] = Missing("not_found")
    libcuda_so_1_1_exists: bool = False
    symlink_problem: bool = False


@dataclass(frozen=True)
class LdPathEntry:
    """One ``LD_LIBRARY_PATH`` directory and the CUDA libraries in it.

    Attributes:
        directory: the entry as written in ``LD_LIBRARY_PATH``.
        libraries: file names of CUDA libraries there (``libcublasLt.so.12``, ``libcudnn.so.8``),
            sorted; these shadow the copies a framework wheel ships with.
    """

    directory: str
    libraries: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuAccessFacts:
    """Whether this (possibly containerised) system can reach an NVIDIA GPU at all.

    Attributes:
        dev_nodes: ``/dev/nvidia*`` device files (``nvidiactl``, ``nvidia0``, ``nvidia-uvm``):
            a container started without GPU access has none.
        nvidia_visible_devices: ``$NVIDIA_VISIBLE_DEVICES`` (set by NVIDIA's CUDA images and the
            container toolkit), or ``Missing("unset")``.
        nvswitch_count: NVIDIA PCI bridges of class 0x0680 under ``/sys/bus/pci/devices`` (the
            NVSwitches of an HGX/DGX board).
        fabric_manager_running: whether an ``nv-fabricmanager`` process runs (looked for only
            when NVSwitches are present; ``Missing("not_checked")`` otherwise). Inside a container
            the host's processes are invisible, so checks do not trust a False there.
    """

    dev_nodes: tuple[str, ...] = ()
    nvidia_visible_devices: Maybe[str] = Missing("unset")
    nvswitch_count: int = 0
    fabric_manager_running: Maybe[bool] = Missing("not_checked")


@dataclass(frozen=True)
class CudaLibsFacts:
    """CUDA as seen from outside any framework.

    Attributes:
        nvcc: the compiler, if any.
        cuda_home: ``$CUDA_HOME``, or ``Missing("unset")``.
        cuda_path: ``$CUDA_PATH``, or ``Missing("unset")``.
        cudart: the CUDA runtime library.
        cudnn: the cuDNN library.
        libcuda: the driver library ``libcuda.so`` (comes with the NVIDIA driver).
        visible_devices: ``CUDA_VISIBLE_DEVICES``.
        wsl: the ``/usr/lib/wsl/lib`` layout (``lib_dir`` Missing when not WSL 2).
        ldconfig: the ``ldconfig`` run for the cache, or why the cache could not be read.
        ld_library_path: each ``LD_LIBRARY_PATH`` directory with the CUDA libraries it holds.
        gpu_access: device nodes, NVSwitches and Fabric Manager.
        wheels: the cuDNN/cuBLAS wheels of the target environment and the frameworks' pins on
            them (filled in by doctor when it probes frameworks; ``Missing("not_probed")`` else).
    """

    nvcc: NvccFacts
    cuda_home: Maybe[str]
    cuda_path: Maybe[str]
    cudart: LibraryFacts
    cudnn: LibraryFacts
    libcuda: LibraryFacts
    visible_devices: VisibleDevices
    wsl: WslLibcudaFacts
    ldconfig: Maybe[str] = Missing("not_read")
    ld_library_path: tuple[LdPathEntry, ...] = ()
    gpu_access: GpuAccessFacts = GpuAccessFacts()
    wheels: Maybe[CudaWheelsFacts] = Missing("not_probed")


# --------------------------------------------------------------------- CUDA_VISIBLE_DEVICES ----


def _is_uuid_entry(entry: str) -> bool:
    return entry.startswith(("GPU-", "MIG-")) and len(entry) > 4


def parse_visible_devices(value: str | None) -> VisibleDevices:
    """Read ``CUDA_VISIBLE_DEVICES`` the way the CUDA runtime does.

    Args:
        value: the variable's value, or None when unset.
    """
    if value is None:
        return VisibleDevices(raw=Missing("unset"))
    entries = tuple(part.strip() for part in value.split(",")) if value.strip() else ()
    valid = [entry.isdigit() or _is_uuid_entry(entry) for entry in entries]
    first_invalid = valid.index(False) if False in valid else len(entries)
    visible = entries[:first_invalid]
    return VisibleDevices(
        raw=value,
        entries=entries,
        visible=visible,
        indices=tuple(int(e) for e in visible if e.isdigit()),
        uuids=tuple(e for e in visible if not e.isdigit()),
        invalid=tuple(e for e, ok in zip(entries, valid, strict=True) if not ok),
        ignored=entries[first_invalid:],
        hides_all=not visible,
    )


@dataclass(frozen=True)
class VisibleResolution:
    """``CUDA_VISIBLE_DEVICES`` matched against the GPUs NVML reports.

    Attributes:
        gpu_indices: NVML indices of the GPUs CUDA will see, in CUDA's order.
        mig_entries: ``MIG-...`` entries CUDA honours (MIG devices are not in NVML's GPU list;
            an entry passes when a GPU has MIG mode on, or its mode is unknown).
        unmatched: the first entry that names no GPU here (an index past the last GPU, a UUID
            prefix that matches none or several, a MIG entry with no GPU in MIG mode, an
            unparsable entry) and every entry after it: CUDA ignores them all.
        reason: why ``unmatched[0]`` names no GPU: ``index_out_of_range``, ``uuid_not_found``,
            ``uuid_ambiguous``, ``mig_not_enabled``, ``not_a_device``; empty when nothing is
            unmatched.
        hidden_gpus: NVML indices of GPUs that entries after ``unmatched[0]`` name: the user
            listed them, but CUDA never reads that far.
        hides_all: the variable is set and CUDA will see no device at all.
    """

    gpu_indices: tuple[int, ...]
    mig_entries: tuple[str, ...] = ()
    unmatched: tuple[str, ...] = ()
    reason: str = ""
    hidden_gpus: tuple[int, ...] = ()
    hides_all: bool = False


def _match_entry(
    entry: str, gpu_uuids: Sequence[str], mig_modes: Sequence[bool | None]
) -> tuple[list[int], str]:
    """The GPUs one entry names and, when it names no single GPU, why (see VisibleResolution)."""
    if entry.startswith("MIG-"):
        # Old form MIG-GPU-<gpu uuid>/<gi>/<ci> names its parent GPU; new form MIG-<uuid> does not.
        parent = entry[4:].split("/", 1)[0] if entry.startswith("MIG-GPU-") else ""
        candidates = [
            i for i, uuid in enumerate(gpu_uuids) if not parent or (uuid and uuid == parent)
        ]
        modes = [mig_modes[i] if i < len(mig_modes) else None for i in candidates]
        if parent and not candidates:
            return [], "uuid_not_found"
        if candidates and all(mode is False for mode in modes):
            return [], "mig_not_enabled"
        return [-1], ""
    if entry.isdigit():
        return ([int(entry)], "") if int(entry) < len(gpu_uuids) else ([], "index_out_of_range")
    if not _is_uuid_entry(entry):
        return [], "not_a_device"
    match = [i for i, uuid in enumerate(gpu_uuids) if uuid and uuid.startswith(entry)]
    if len(match) > 1:
        return match, "uuid_ambiguous"
    return match, "" if match else "uuid_not_found"


def resolve_visible_devices(
    devices: VisibleDevices,
    gpu_uuids: Sequence[str],
    mig_modes: Sequence[bool | None] = (),
) -> VisibleResolution:
    """Which of this machine's GPUs CUDA will use under ``devices``.

    CUDA reads the list left to right and stops at the first entry it cannot use: an index past
    the last GPU, a UUID prefix that names no GPU or several, ``-1``, ``none``. That entry and
    every entry after it are ignored, so ``0,7,1`` on a two-GPU machine shows GPU 0 only. A UUID
    may be abbreviated to a prefix that names exactly one GPU.

    Args:
        devices: :func:`parse_visible_devices` of the variable.
        gpu_uuids: the UUID of each GPU in NVML index order (``GpuFacts.uuid``; ``""`` where it
            could not be read).
        mig_modes: each GPU's current MIG mode in the same order, ``None`` where unknown; a
            ``MIG-`` entry is unusable when every GPU it could belong to has MIG mode off.

    Note:
        Indices are compared with NVML's numbering (PCI bus order). CUDA numbers GPUs fastest
        first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; on a machine of identical GPUs the two
        agree.
    """
    if isinstance(devices.raw, Missing):
        return VisibleResolution(gpu_indices=tuple(range(len(gpu_uuids))))
    indices: list[int] = []
    mig: list[str] = []
    for position, entry in enumerate(devices.entries):
        match, reason = _match_entry(entry, gpu_uuids, mig_modes)
        if reason:
            rest = devices.entries[position + 1 :]
            later = [_match_entry(entry, gpu_uuids, mig_modes) for entry in rest]
            hidden = [m[0] for m, why in later if not why and m[0] >= 0 and m[0] not in indices]
            return VisibleResolution(
                gpu_indices=tuple(indices),
                mig_entries=tuple(mig),
                unmatched=devices.entries[position:],
                reason=reason,
                hidden_gpus=tuple(dict.fromkeys(hidden)),
                hides_all=not indices and not mig,
            )
        if match == [-1]:
            mig.append(entry)
        else:
            indices.append(match[0])
    return VisibleResolution(
        gpu_indices=tuple(indices), mig_entries=tuple(mig), hides_all=not indices and not mig
    )


# ------------------------------------------------------------------------------------ nvcc ----


def parse_nvcc_version(text: str) -> tuple[str, str] | None:
    """``(release, version)`` from ``nvcc --version`` output, e.g. ``("12.4", "12.4.131")``."""
    match = _NVCC_RELEASE.search(text)
    return (match.group(1), match.group(2)) if match else None


def _find_nvcc(environ: Mapping[str, str], root: Path) -> tuple[str | None, bool]:
    on_path = shutil.which("nvcc", path=environ.get("PATH", ""))
    if on_path is not None:
        return on_path, True
    homes = [
        environ.get("CUDA_HOME", ""),
        environ.get("CUDA_PATH", ""),
        str(root / "usr/local/cuda"),
    ]
    for home in homes:
        if home:
            candidate = Path(home) / "bin" / "nvcc"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate), False
    return None, False


def probe_nvcc(environ: Mapping[str, str] | None = None, root: Path = Path("/")) -> NvccFacts:
    """Find ``nvcc`` and run ``nvcc --version`` (with a timeout).

    Args:
        environ: the environment to read ``PATH``/``CUDA_HOME``/``CUDA_PATH`` from (default: this
            process's).
        root: the filesystem root under which ``/usr/local/cuda`` is looked for.
    """
    env = dict(os.environ if environ is None else environ)
    path, on_path = _find_nvcc(env, root)
    if path is None:
        return NvccFacts(path=Missing("not_found"))
    try:
        proc = children.run([path, "--version"], timeout=TOOL_TIMEOUT_S, grace=1.0, env=env)
    except OSError as error:
        failed = Missing("error", f"{path} --version: {error}")
        return NvccFacts(path=path, on_path=on_path, release=failed, version=failed)
    if proc.timed_out:
        gone = Missing("timeout", f"{path} --version took over {TOOL_TIMEOUT_S:g} s")
        return NvccFacts(path=path, on_path=on_path, release=gone, version=gone)
    parsed = parse_nvcc_version(proc.stdout)
    if proc.returncode != 0 or parsed is None:
        text = (proc.stderr or proc.stdout).strip().splitlines()
        detail = f"{path} --version exited {proc.returncode}: {text[-1] if text else ''}".strip()
        reason = "error" if proc.returncode != 0 else "unparsable"
        bad = Missing(reason, detail)
        return NvccFacts(path=path, on_path=on_path, release=bad, version=bad)
    return NvccFacts(path=path, on_path=on_path, release=parsed[0], version=parsed[1])


# ------------------------------------------------------------------------------- libraries ----


def parse_ldconfig_cache(text: str, *, only_64bit: bool | None = None) -> list[tuple[str, str]]:
    """``(file name, path)`` pairs from ``ldconfig -p`` output, in cache order.

    Args:
        text: the output of ``ldconfig -p``.
        only_64bit: keep only entries built for a 64-bit ABI (``x86-64``, ``AArch64``, ...); by
            default, when this Python is 64-bit.
    """
    keep_64 = sys.maxsize > 2**32 if only_64bit is None else only_64bit
    entries: list[tuple[str, str]] = []
    for line in text.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match is None:
            continue
        name, flags, path = match.groups()
        if keep_64 and "64" not in flags:
            continue
        entries.append((name, path))
    return entries


def _read_ldconfig_cache(
    environ: Mapping[str, str], root: Path
) -> tuple[list[tuple[str, str]], Maybe[str]]:
    search = os.pathsep.join([environ.get("PATH", ""), str(root / "sbin"), str(root / "usr/sbin")])
    ldconfig = shutil.which("ldconfig", path=search)
    if ldconfig is None:
        return [], Missing("not_found", "no ldconfig on PATH, /sbin or /usr/sbin")
    try:
        proc = children.run([ldconfig, "-p"], timeout=TOOL_TIMEOUT_S, grace=1.0)
    except OSError as error:
        return [], Missing("error", f"{ldconfig} -p: {error}")
    if proc.timed_out:
        return [], Missing("timeout", f"{ldconfig} -p took over {TOOL_TIMEOUT_S:g} s")
    if proc.returncode != 0:
        return [], Missing(
            "error", f"{ldconfig} -p exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return parse_ldconfig_cache(proc.stdout), ldconfig


def _matches(file_name: str, name: str) -> bool:
    prefix = f"lib{name}.so"
    return file_name == prefix or (
        file_name.startswith(prefix + ".") and file_name[len(prefix) + 1 :][:1].isdigit()
    )


def _version_from_file_name(file_name: str, name: str) -> Maybe[str]:
    suffix = file_name[len(f"lib{name}.so.") :] if file_name.startswith(f"lib{name}.so.") else ""
    if not suffix or (name == "cuda" and suffix in {"1", "1.1"}):
        return Missing("not_in_filename", file_name)
    return suffix


def _loader_order(file_name: str) -> tuple[int, int]:
    """Sort key within one directory: the SONAME-like ``libx.so.N`` first, the dev link last."""
    parts = file_name.split(".so", 1)[1].strip(".")
    count = len(parts.split(".")) if parts else 0
    return (0 if count == 1 else 1 if count > 1 else 2, len(file_name))


def find_library(name: str, search_dirs: list[str], cache: list[tuple[str, str]]) -> LibraryFacts:
    """Find ``lib<name>.so*`` the way the loader would: ``search_dirs`` first, then the cache.

    Args:
        name: the short name (``"cudart"``).
        search_dirs: ``LD_LIBRARY_PATH`` directories, in order.
        cache: :func:`parse_ldconfig_cache` entries.
    """
    found: list[tuple[str, str]] = []  # (path, found_by)
    for directory in search_dirs:
        try:
            names = sorted(
                (n for n in os.listdir(directory) if _matches(n, name)), key=_loader_order
            )
        except OSError:
            continue
        found.extend((os.path.join(directory, n), "LD_LIBRARY_PATH") for n in names)
    cached = sorted(
        ((file_name, path) for file_name, path in cache if _matches(file_name, name)),
        key=lambda entry: _loader_order(entry[0]),
    )
    found.extend((path, "ldconfig") for _, path in cached)
    if not found:
        return LibraryFacts(name=name)
    distinct: list[str] = []
    for path, _ in found:
        real = os.path.realpath(path)
        if real not in distinct:
            distinct.append(real)
    first, found_by = found[0]
    resolved = os.path.realpath(first)
    return LibraryFacts(
        name=name,
        path=first,
        resolved=resolved,
        version=_version_from_file_name(os.path.basename(resolved), name),
        found_by=found_by,
        all_paths=tuple(distinct),
    )


# ------------------------------------------------------------------------------------- WSL ----


def probe_wsl_libcuda(root: Path = Path("/")) -> WslLibcudaFacts:
    """Inspect ``<root>/usr/lib/wsl/lib`` for the ``libcuda.so.1`` symlink problem.

    Args:
        root: the filesystem root (a temporary tree in tests).
    """
    lib_dir = root / WSL_LIB_DIR
    if not lib_dir.is_dir():
        return WslLibcudaFacts(lib_dir=Missing("not_found", str(lib_dir)))
    so_1 = lib_dir / "libcuda.so.1"
    so = lib_dir / "libcuda.so"
    so_1_exists = os.path.lexists(so_1)
    so_exists = os.path.lexists(so)
    so_1_link: Maybe[bool] = so_1.is_symlink() if so_1_exists else Missing("not_found")
    so_link: Maybe[bool] = so.is_symlink() if so_exists else Missing("not_found")
    return WslLibcudaFacts(
        lib_dir=str(lib_dir),
        libcuda_so_1_exists=so_1_exists,
        libcuda_so_1_is_symlink=so_1_link,
        libcuda_so_exists=so_exists,
        libcuda_so_is_symlink=so_link,
        libcuda_so_1_1_exists=(lib_dir / "libcuda.so.1.1").is_file(),
        symlink_problem=so_1_link is False or so_link is False,
    )


# ----------------------------------------------------------------------------------- probe ----


#: CUDA libraries a framework wheel ships (``nvidia-*-cu12``) that an old toolkit can shadow.
_CUDA_LIBRARY_FILE = re.compile(
    r"^lib(cublasLt|cublas|cudnn\w*|cudart|cufft|curand|cusolver|cusparse|nvJitLink|nvrtc|nccl"
    r"|cupti)\.so(\.\d+)*$"
)


def probe_ld_library_path(environ: Mapping[str, str]) -> tuple[LdPathEntry, ...]:
    """Each ``LD_LIBRARY_PATH`` entry with the CUDA libraries in it (one directory listing each)."""
    entries: list[LdPathEntry] = []
    for directory in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if not directory:
            continue
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        entries.append(
            LdPathEntry(directory, tuple(sorted(n for n in names if _CUDA_LIBRARY_FILE.match(n))))
        )
    return tuple(entries)


def _count_nvswitches(root: Path) -> int:
    """NVIDIA (0x10de) PCI devices of class 0x0680 (bridge, other): NVSwitch chips."""
    count = 0
    try:
        devices = list((root / "sys/bus/pci/devices").iterdir())
    except OSError:
        return 0
    for device in devices:
        try:
            if (device / "vendor").read_text().strip().lower() != "0x10de":
                continue
            if (device / "class").read_text().strip().lower().startswith("0x0680"):
                count += 1
        except OSError:
            continue
    return count


def _fabric_manager_running(root: Path) -> Maybe[bool]:
    """Whether a process named ``nv-fabricmanager`` (comm cut to 15 characters) runs."""
    try:
        pids = [p for p in (root / "proc").iterdir() if p.name.isdigit()]
    except OSError as error:
        return Missing("error", str(error))
    for pid in pids:
        try:
            if (pid / "comm").read_text().strip().startswith("nv-fabricmanage"):
                return True
        except OSError:
            continue
    return False


def probe_gpu_access(environ: Mapping[str, str], root: Path = Path("/")) -> GpuAccessFacts:
    """Device nodes, ``NVIDIA_VISIBLE_DEVICES``, NVSwitches and Fabric Manager (a few stats)."""
    try:
        nodes = tuple(sorted(p.name for p in (root / "dev").glob("nvidia*")))
    except OSError:
        nodes = ()
    switches = _count_nvswitches(root)
    return GpuAccessFacts(
        dev_nodes=nodes,
        nvidia_visible_devices=_env_value(environ, "NVIDIA_VISIBLE_DEVICES"),
        nvswitch_count=switches,
        fabric_manager_running=_fabric_manager_running(root)
        if switches
        else Missing("not_checked"),
    )


def _env_value(environ: Mapping[str, str], key: str) -> Maybe[str]:
    value = environ.get(key)
    return Missing("unset") if value is None else value


def probe_cuda_libs(
    environ: Mapping[str, str] | None = None, root: Path = Path("/")
) -> CudaLibsFacts:
    """Read every CUDA fact that does not need a framework.

    Args:
        environ: the environment to read (``PATH``, ``LD_LIBRARY_PATH``, ``CUDA_HOME``,
            ``CUDA_PATH``, ``CUDA_VISIBLE_DEVICES``); this process's by default.
        root: the filesystem root for ``/usr/lib/wsl/lib``, ``/usr/local/cuda`` and
            ``/sbin/ldconfig``; ``/`` except in tests.
    """
    env = dict(os.environ if environ is None else environ)
    search_dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    cache, ldconfig = _read_ldconfig_cache(env, root)
    return CudaLibsFacts(
        nvcc=probe_nvcc(env, root),
        cuda_home=_env_value(env, "CUDA_HOME"),
        cuda_path=_env_value(env, "CUDA_PATH"),
        cudart=find_library("cudart", search_dirs, cache),
        cudnn=find_library("cudnn", search_dirs, cache),
        libcuda=find_library("cuda", search_dirs, cache),
        visible_devices=parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES")),
        wsl=probe_wsl_libcuda(root),
        ldconfig=ldconfig,
        ld_library_path=probe_ld_library_path(env),
        gpu_access=probe_gpu_access(env, root),
    )
