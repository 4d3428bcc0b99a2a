"""Failure modes of the environment around a working driver: a container without GPU access, an
NVSwitch machine without Fabric Manager, an old CUDA directory on ``LD_LIBRARY_PATH`` shadowing a
framework's libraries, an ``nvcc`` older than the framework's CUDA, two frameworks pinning
different cuDNN/cuBLAS wheels.

Each fix names the real cause (the flag, the service, the directory, the package spec) instead of
"reinstall" or "install the driver".
"""

from __future__ import annotations

import os
import re
import shlex

from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import Finding, Severity
from dlsetup.facts import Missing
from dlsetup.installer import Installer, install_pypi_command
from dlsetup.probes.cuda_libs import CudaLibsFacts, GpuAccessFacts, LdPathEntry
from dlsetup.probes.cuda_wheels import WheelPin
from dlsetup.probes.frameworks import FrameworkProbe, TensorflowBuild, TorchBuild

CHECK_IDS: dict[str, Severity] = {
    "container.no_gpu_access": "error",
    "fabric.manager_not_running": "error",
    "ld_library_path.shadows_framework_libs": "error",
    "nvcc.older_than_framework": "warning",
    "cuda_wheels.pin_conflict": "error",
}

#: CUDA error 802 as the CUDA runtime words it (torch prints it in a UserWarning on
#: ``torch.cuda.is_available()``: "... Error 802: system not yet initialized").
_ERROR_802 = re.compile(r"(?:Error|error|code=) ?\(?802\)?|system not yet initialized")

#: The library named by a dynamic-loader symbol error, as glibc prints it:
#: "undefined symbol: cublasLtGetStatusString, version libcublasLt.so.12",
#: "symbol cublasLtHSHMatmulAlgoInit version libcublasLt.so.11 not defined in file ...",
#: "version `libcublasLt.so.12' not found (required by ...)".
_SYMBOL_LIBRARY = re.compile(
    r"(?:undefined symbol: \S+, version |symbol \S+,? version |version `)"
    r"(lib[A-Za-z_]+)\.so"
)
#: Symbol prefix -> library, for "undefined symbol: X" without a version tag.
_SYMBOL_PREFIX = (
    ("cublasLt", "libcublasLt"),
    ("cublas", "libcublas"),
    ("cudnn", "libcudnn"),
    ("__nvJitLink", "libnvJitLink"),
    ("nvJitLink", "libnvJitLink"),
    ("cusparse", "libcusparse"),
    ("cufft", "libcufft"),
    ("cusolver", "libcusolver"),
    ("ncclComm", "libnccl"),
)
_UNDEFINED = re.compile(r"undefined symbol: (\w+)")


# ---------------------------------------------------------------------------------- helpers ----


def _cuda_libs(facts: DoctorFacts) -> CudaLibsFacts | None:
    return None if isinstance(facts.cuda_libs, Missing) else facts.cuda_libs


def _access(facts: DoctorFacts) -> GpuAccessFacts | None:
    libs = _cuda_libs(facts)
    return None if libs is None else libs.gpu_access


def _probes(facts: DoctorFacts) -> list[FrameworkProbe]:
    fw = facts.frameworks
    if isinstance(fw, Missing):
        return []
    return [p for p in (fw.torch, fw.tensorflow) if isinstance(p, FrameworkProbe)]


def _framework_cuda(probe: FrameworkProbe) -> str | None:
    """The CUDA version a framework build was made for, or None for a CPU build."""
    if isinstance(probe.torch, TorchBuild) and isinstance(probe.torch.cuda, str):
        return probe.torch.cuda
    if (
        isinstance(probe.tensorflow, TensorflowBuild)
        and probe.tensorflow.is_cuda_build
        and isinstance(probe.tensorflow.cuda_version, str)
    ):
        return probe.tensorflow.cuda_version
    return None


def _framework_texts(facts: DoctorFacts) -> list[tuple[str, str]]:
    """``(framework, text)`` for every error detail and message the framework probes carry."""
    return [(p.name, text) for p in _probes(facts) for text in (p.detail, *p.messages) if text]


def _in_container(facts: DoctorFacts) -> bool:
    return not isinstance(facts.system, Missing) and facts.system.container not in ("none", "")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def container_without_gpu(facts: DoctorFacts) -> bool:
    """True inside a container that has no ``/dev/nvidia*`` and no working NVML while something
    says a GPU is wanted: ``NVIDIA_VISIBLE_DEVICES`` is set (NVIDIA's CUDA images set it) or a
    framework here is a CUDA build. Then "install the driver" is the wrong advice."""
    access = _access(facts)
    if access is None or not _in_container(facts) or access.dev_nodes:
        return False
    if facts.nvidia.status == "ok" or facts.os_name != "linux":
        return False
    wanted = isinstance(
        access.nvidia_visible_devices, str
    ) and access.nvidia_visible_devices not in (
        "",
        "void",
        "none",
    )
    return wanted or any(_framework_cuda(p) for p in _probes(facts))


# ----------------------------------------------------------------------------------- checks ----


def check_container_gpu_access(facts: DoctorFacts) -> list[Finding]:
    """``container.no_gpu_access``: a container started without the GPUs passed in."""
    if not container_without_gpu(facts):
        return []
    access = _access(facts)
    assert access is not None
    container = facts.system.container if not isinstance(facts.system, Missing) else "container"
    cuda_builds = [
        f"{p.name} (CUDA {_framework_cuda(p)})" for p in _probes(facts) if _framework_cuda(p)
    ]
    why = []
    asked = isinstance(access.nvidia_visible_devices, str)
    if asked:
        why.append(f"NVIDIA_VISIBLE_DEVICES={access.nvidia_visible_devices}")
    if cuda_builds:
        why.append("CUDA builds of " + ", ".join(cuda_builds))
    # NVIDIA_VISIBLE_DEVICES is set by whoever meant the container to have GPUs (NVIDIA's CUDA
    # images); a CUDA build alone is what pip installs from PyPI on any Linux machine, GPU or not
    cuda_names = {p.name for p in _probes(facts) if _framework_cuda(p)}
    target = (
        "both" if len(cuda_names) > 1 else "tensorflow" if "tensorflow" in cuda_names else "pytorch"
    )
    maybe_cpu_only = (
        ""
        if asked
        else " A CUDA build also runs on a CPU (PyPI's Linux torch is one): on a host without a "
        f"GPU nothing is wrong, and dlsetup lock {target} --variant cpu gives the smaller CPU "
        "build."
    )
    return [
        Finding(
            "container.no_gpu_access",
            "error" if asked else "warning",
            f"This {container} container was started without GPU access",
            "Inside a container the NVIDIA driver comes from the host: there is no /dev/nvidia* "
            f"here and NVML reports '{facts.nvidia.status}', although this environment expects a "
            f"GPU ({'; '.join(why)}). Installing a driver inside the container does not help."
            + maybe_cpu_only,
            "Start the container with the GPUs passed in: docker run --gpus all ... (or "
            "--runtime=nvidia); podman run --device nvidia.com/gpu=all ...; on Kubernetes request "
            "resources.limits nvidia.com/gpu. The host needs the NVIDIA driver and the NVIDIA "
            "Container Toolkit (nvidia-ctk runtime configure --runtime=docker, then restart "
            "docker). Check on the host with the command below.",
            {
                "container": container,
                "dev_nodes": list(access.dev_nodes),
                "nvidia_visible_devices": access.nvidia_visible_devices
                if isinstance(access.nvidia_visible_devices, str)
                else None,
                "nvml_status": facts.nvidia.status,
                "cuda_builds": cuda_builds,
            },
            command="docker run --rm --gpus all ubuntu nvidia-smi",
        )
    ]


def check_fabric_manager(facts: DoctorFacts) -> list[Finding]:
    """``fabric.manager_not_running``: an NVSwitch system whose GPUs wait for Fabric Manager."""
    access = _access(facts)
    pci_switches = access.nvswitch_count if access is not None else 0
    # NVML's NVLinks show the switches too where the PCI bus is not visible (or A100's NVML has no
    # fabric state): the larger count wins.
    switches = max(pci_switches, facts.nvidia.nvswitch_count if facts.gpus else 0)
    waiting = [
        g
        for g in facts.gpus
        if g.fabric_state in ("not_started", "in_progress")
        or (g.fabric_state == "completed" and isinstance(g.fabric_status, int) and g.fabric_status)
    ]
    texts = [(n, t) for n, t in _framework_texts(facts) if _ERROR_802.search(t)]
    fm_down = (
        access is not None
        and switches > 0
        and access.fabric_manager_running is False
        and not _in_container(facts)  # the host's processes are invisible in a container
    )
    if not (waiting or fm_down or (switches > 0 and texts)):
        return []
    states = {str(g.index): g.fabric_state for g in facts.gpus if isinstance(g.fabric_state, str)}
    seen = []
    if waiting:
        seen.append(
            f"NVML reports the GPU fabric of GPU {', '.join(str(g.index) for g in waiting)} as "
            f"'{waiting[0].fabric_state}'"
        )
    if switches:
        where = "on the PCI bus" if pci_switches == switches else "behind the GPUs' NVLinks"
        seen.append(f"{switches} NVSwitch devices {where}")
    if fm_down:
        seen.append("no nv-fabricmanager process runs")
    if texts:
        seen.append(f"{texts[0][0]} says: {texts[0][1].strip()[:300]}")
    return [
        Finding(
            "fabric.manager_not_running",
            "error",
            "NVSwitch system without a running Fabric Manager (CUDA error 802)",
            "On HGX/DGX machines the GPUs talk through NVSwitches that NVIDIA Fabric Manager "
            "sets up; until it has, CUDA fails with error 802 'system not yet initialized' and "
            f"no framework sees a GPU. Seen: {'; '.join(seen)}.",
            "Start it and enable it at boot: sudo systemctl enable --now nvidia-fabricmanager. "
            f"Its package must match the driver exactly ({_fabric_package(facts)}); "
            "journalctl -u nvidia-fabricmanager shows why it stopped. In a container, this is "
            "the host's service.",
            {
                "fabric_states": states,
                "nvswitch_count": switches,
                "fabric_manager_running": None
                if access is None or isinstance(access.fabric_manager_running, Missing)
                else access.fabric_manager_running,
                "error_802": [t for _, t in texts],
            },
            command="sudo systemctl start nvidia-fabricmanager",
        )
    ]


def _fabric_package(facts: DoctorFacts) -> str:
    """``nvidia-fabricmanager-550 version 550.54.15`` for this driver (Ubuntu's package name)."""
    driver = facts.nvidia.driver_version
    if not isinstance(driver, str):
        return "nvidia-fabricmanager-<driver branch>, the driver's exact version"
    return f"nvidia-fabricmanager-{driver.split('.')[0]}, version {driver} like the driver"


def _library_of(text: str) -> str | None:
    found = _SYMBOL_LIBRARY.search(text)
    if found:
        return found.group(1)
    undefined = _UNDEFINED.search(text)
    if undefined:
        symbol = undefined.group(1)
        for prefix, library in _SYMBOL_PREFIX:
            if symbol.startswith(prefix):
                return library
    return None


def check_ld_library_path(facts: DoctorFacts) -> list[Finding]:
    """``ld_library_path.shadows_framework_libs``: an old CUDA directory on ``LD_LIBRARY_PATH``
    is loaded instead of the framework's own CUDA libraries."""
    libs = _cuda_libs(facts)
    if libs is None or not libs.ld_library_path:
        return []
    hits: list[tuple[str, str, str, list[LdPathEntry]]] = []
    for framework, text in _framework_texts(facts):
        library = _library_of(text)
        if library is None:
            continue
        culprits = [
            e
            for e in libs.ld_library_path
            if any(n == library + ".so" or n.startswith(library + ".so.") for n in e.libraries)
        ]
        if culprits:
            hits.append((framework, text, library, culprits))
    found: list[Finding] = []
    # One finding: the same directory shadows every framework; "frameworks" lists each one whose
    # failure it explains (their generic import findings are superseded by this one).
    explained = sorted({framework for framework, *_ in hits})
    for framework, text, library, culprits in hits[:1]:
        bad = {e.directory for e in culprits}
        keep = [e.directory for e in libs.ld_library_path if e.directory not in bad]
        command = (
            f"export LD_LIBRARY_PATH={shlex.quote(os.pathsep.join(keep))}"
            if keep
            else "unset LD_LIBRARY_PATH"
        )
        dirs = ", ".join(sorted(bad))
        found.append(
            Finding(
                "ld_library_path.shadows_framework_libs",
                "error",
                f"LD_LIBRARY_PATH loads another {library} than {framework}'s own",
                f"{framework} failed to load: {text.strip()[:300]}. {library} is also in "
                f"{dirs} on LD_LIBRARY_PATH, which the loader searches first, so that copy "
                f"is loaded instead of the one {framework} ships with. Reinstalling {framework} "
                "does not help.",
                f"Remove {dirs} from LD_LIBRARY_PATH (look in ~/.bashrc, ~/.profile, the "
                "environment's activate.d scripts, module files): the command below keeps the "
                "other entries for this shell.",
                {
                    "framework": framework,
                    "frameworks": explained,
                    "library": library,
                    "error": text.strip()[:500],
                    "shadowing_directories": sorted(bad),
                    "ld_library_path": [e.directory for e in libs.ld_library_path],
                },
                command=command,
            )
        )
    return found


def check_nvcc(facts: DoctorFacts) -> list[Finding]:
    """``nvcc.older_than_framework``: extensions built with this nvcc fail against the framework."""
    libs = _cuda_libs(facts)
    if libs is None or not isinstance(libs.nvcc.release, str):
        return []
    nvcc = libs.nvcc.release
    older = [
        (p.name, cuda)
        for p in _probes(facts)
        if (cuda := _framework_cuda(p)) is not None
        and _version_tuple(nvcc)[:2] < _version_tuple(cuda)[:2]
    ]
    if not older:
        return []
    name, cuda = max(older, key=lambda pair: _version_tuple(pair[1]))
    major_differs = _version_tuple(nvcc)[:1] != _version_tuple(cuda)[:1]
    fix, command = _nvcc_fix(facts, cuda)
    return [
        Finding(
            "nvcc.older_than_framework",
            "warning",
            f"nvcc {nvcc} is older than {name}'s CUDA {cuda}",
            f"{libs.nvcc.path} is CUDA {nvcc}, but {name} was built with CUDA {cuda}: building "
            "CUDA extensions (flash-attention, apex, custom ops) "
            + (
                "fails (torch's build refuses a different CUDA major version)."
                if major_differs
                else "may fail on features newer than the compiler."
            ),
            fix,
            {
                "nvcc_path": libs.nvcc.path if isinstance(libs.nvcc.path, str) else None,
                "nvcc_release": nvcc,
                "framework": name,
                "framework_cuda": cuda,
                "frameworks": dict(older),
            },
            command=command,
        )
    ]


def _nvcc_fix(facts: DoctorFacts, cuda: str) -> tuple[str, str]:
    """(fix, command): conda-forge's ``cuda-nvcc`` in a conda prefix or pixi project, in its own
    installer; elsewhere NVIDIA's toolkit (a venv has no conda to run ``conda install``)."""
    from dlsetup.checks.fix_language import installer  # the knowledge base: only now
    from dlsetup.installer import install_command

    inst = installer(facts)
    toolkit = f"CUDA Toolkit {cuda} from NVIDIA (https://developer.nvidia.com/cuda-toolkit-archive)"
    if inst.kind in ("conda", "pixi"):
        command = install_command(inst, [f"cuda-nvcc=={cuda}.*"])
        return (
            f"Install the matching compiler in the environment: {command} (or {toolkit}), and "
            "point CUDA_HOME at it.",
            command,
        )
    return f"Install {toolkit} and point CUDA_HOME at it (export CUDA_HOME=...).", ""


def _loads_with(installed: str, pinned: str) -> bool:
    """cuDNN/cuBLAS rule: the same major version and at least the minor version built with."""
    have, want = _version_tuple(installed), _version_tuple(pinned)
    return have[:1] == want[:1] and have[:2] >= want[:2]


def check_wheel_pins(facts: DoctorFacts) -> list[Finding]:
    """``cuda_wheels.pin_conflict``: a framework runs with a cuDNN/cuBLAS wheel it was not built
    for, because another framework (or a manual install) pinned a different version."""
    libs = _cuda_libs(facts)
    if libs is None or isinstance(libs.wheels, Missing):
        return []
    wheels = libs.wheels
    found: list[Finding] = []
    for package, installed in sorted(wheels.installed.items()):
        pins = [p for p in wheels.pins if p.package == package]
        broken = [p for p in pins if not _loads_with(installed, p.version)]
        if not broken:
            continue
        from dlsetup.checks.fix_language import installer  # the knowledge base: only now

        inst = installer(facts, wheels.python)
        found.append(_pin_finding(package, installed, pins, broken, inst))
    return found


def _pin_finding(
    package: str, installed: str, pins: list[WheelPin], broken: list[WheelPin], inst: Installer
) -> Finding:
    lib = "cuDNN" if "cudnn" in package else "cuBLAS"
    pinned = "; ".join(
        f"{p.framework} {p.framework_version} pins {package}=={p.version}" for p in pins
    )
    victims = ", ".join(f"{p.framework} (built with {p.version})" for p in broken)
    newest = max(pins, key=lambda p: _version_tuple(p.version))
    alignable = all(_loads_with(newest.version, p.version) for p in pins)
    if alignable:
        command = install_pypi_command(inst, [f"{package}=={newest.version}"])  # PyPI's only
        fix = (
            f"Install the newest pin, which every framework here loads (same major version): "
            f"{command} (the installer warns about the other pin; that is expected). Or keep "
            "each framework in its own environment."
        )
    else:
        fix = (
            f"The pins need different {lib} major versions, so one environment cannot serve "
            "both: put each framework in its own environment (dlsetup create pytorch, then "
            "dlsetup create tensorflow), or choose releases that pin the same major version "
            "(torch 2.4-2.10 and TensorFlow 2.18-2.19 all pin cuDNN 9 for CUDA 12)."
        )
        command = ""
    return Finding(
        "cuda_wheels.pin_conflict",
        "error",
        f"{lib} wheel {package} {installed} is not the one {broken[0].framework} was built with",
        f"{pinned}; installed: {installed}. {lib} loads only with the same major version and an "
        f"equal or newer minor, so {victims} fails to load its kernels at run time (TensorFlow "
        f'says "Loaded runtime CuDNN library: {".".join(installed.split(".")[:3])} but source was '
        f'compiled with: {".".join(broken[0].version.split(".")[:3])}").',
        fix,
        {
            "package": package,
            "installed": installed,
            "pins": [
                {
                    "framework": p.framework,
                    "framework_version": p.framework_version,
                    "version": p.version,
                }
                for p in pins
            ],
            "broken": [p.framework for p in broken],
        },
        command=command,
    )


CHECKS = (
    check_container_gpu_access,
    check_fabric_manager,
    check_ld_library_path,
    check_nvcc,
    check_wheel_pins,
)
