"""Checks over the framework probes, against NVML and the knowledge base."""

from __future__ import annotations

from dlsetup.checks.context import DoctorFacts
from dlsetup.checks.finding import Finding, Severity
from dlsetup.checks.fix_language import (
    conda_build_fix,
    driver_allowed,
    driver_ceiling,
    installer,
    probed_env,
)
from dlsetup.compat.arch import CC, fmt_cc, gpu_runs_build, parse_arch_list
from dlsetup.compat.cuda import driver_supports_cuda, max_cuda_for_driver, toolkit_rows
from dlsetup.compat.frameworks import (
    newer_than_data,
    python_support,
    release_key,
    tf_and_cuda_first,
    tf_has_native_windows_gpu,
    tf_windows_fix,
    tf_windows_native_gpu_last,
    torch_index_url,
)
from dlsetup.compat.recommend import TorchPick, recommend_tensorflow, recommend_torch
from dlsetup.facts import Missing
from dlsetup.installer import install_command, pip_owned, uninstall_command
from dlsetup.probes.frameworks import FrameworkProbe, TensorflowBuild, TorchBuild


def _probes(facts: DoctorFacts) -> list[FrameworkProbe]:
    fw = facts.frameworks
    if isinstance(fw, Missing):
        return []
    return [p for p in (fw.torch, fw.tensorflow) if isinstance(p, FrameworkProbe)]


def _python(facts: DoctorFacts) -> str:
    fw = facts.frameworks
    if not isinstance(fw, Missing):
        return fw.python_executable
    return "python"


def _python_version(facts: DoctorFacts) -> str | None:
    fw = facts.frameworks
    if not isinstance(fw, Missing) and isinstance(fw.python_version, str):
        return fw.python_version
    if not isinstance(facts.system, Missing):
        return facts.system.python_version
    return None


def _torch(facts: DoctorFacts) -> tuple[FrameworkProbe, TorchBuild] | None:
    for probe in _probes(facts):
        if probe.status == "ok" and isinstance(probe.torch, TorchBuild):
            return probe, probe.torch
    return None


def _tf(facts: DoctorFacts) -> tuple[FrameworkProbe, TensorflowBuild] | None:
    for probe in _probes(facts):
        if probe.status == "ok" and isinstance(probe.tensorflow, TensorflowBuild):
            return probe, probe.tensorflow
    return None


def _usable_gpus(facts: DoctorFacts) -> list[tuple[int, CC]]:
    return [
        (g.index, g.compute_capability)
        for g in facts.gpus
        if not g.lost and isinstance(g.compute_capability, tuple)
    ]


def _driver_cuda(facts: DoctorFacts) -> str | None:
    nv = facts.nvidia
    if isinstance(nv.cuda_driver_version, str):
        return nv.cuda_driver_version
    if isinstance(nv.driver_version, str):
        return max_cuda_for_driver(nv.driver_version, facts.driver_os)
    return None


def _driver_version(facts: DoctorFacts) -> str | None:
    value = facts.nvidia.driver_version
    return value if isinstance(value, str) else None


def _installed(facts: DoctorFacts, name: str) -> str | None:
    """The installed version of ``torch``/``tensorflow`` (a fix never goes back a release only
    because the knowledge base ends before it)."""
    for probe in _probes(facts):
        if probe.name == name and probe.status == "ok" and isinstance(probe.version, str):
            return probe.version
    return None


def torch_pick(facts: DoctorFacts, ccs: list[CC] | None = None) -> TorchPick | None:
    """The PyTorch wheel recommended for this machine's driver and GPUs (None: none fits)."""
    driver_cuda = _driver_cuda(facts)
    if driver_cuda is None:
        return None
    if ccs is None:
        ccs = [cc for _, cc in _usable_gpus(facts)]
    return recommend_torch(
        driver_cuda,
        ccs,
        _python_version(facts),
        _driver_version(facts),
        installed=_installed(facts, "torch"),
    )


def _conda_fix(facts: DoctorFacts, target: str) -> tuple[str, str] | None:
    """``(fix, command)`` in conda's language when the probed interpreter is a conda env."""
    env = probed_env(facts)
    dist = "torch" if target == "pytorch" else target
    if env.kind != "conda" or pip_owned(installer(facts), dist):
        return None  # pip installed it into the conda env: pip's fix, not a second copy
    fix = conda_build_fix(facts, target, env)
    return None if fix is None else (fix.fix, fix.command)


def _install(
    facts: DoctorFacts, *requirements: str, reinstall: bool = False, index_url: str | None = None
) -> str:
    """The install command in the probed environment's own installer (:mod:`dlsetup.installer`)."""
    return install_command(
        installer(facts), list(requirements), reinstall=reinstall, index_url=index_url
    )


def _pick_command(facts: DoctorFacts, pick: TorchPick) -> str:
    """``PY -m pip install 'torch==2.14.*' --index-url URL`` (or uv's, or pip installed first)."""
    return _install(facts, f"torch=={pick.release}.*", index_url=torch_index_url(pick.variant))


def _torch_command(facts: DoctorFacts, ccs: list[CC] | None = None) -> str:
    """The install command of the torch build this driver and these GPUs run, or ``""``: conda's
    in a conda environment, pip's otherwise."""
    conda = _conda_fix(facts, "pytorch")
    if conda is not None:
        return conda[1]
    pick = torch_pick(facts, ccs)
    return _pick_command(facts, pick) if pick is not None else ""


def _torch_fix(facts: DoctorFacts, ccs: list[CC] | None = None) -> str:
    conda = _conda_fix(facts, "pytorch")
    if conda is not None:
        return conda[0]
    pick = torch_pick(facts, ccs)
    if pick is not None:
        return f"{_pick_command(facts, pick)}  ({pick.note})"
    driver_cuda = _driver_cuda(facts) or "unknown"
    if ccs is None:
        ccs = [cc for _, cc in _usable_gpus(facts)]
    column = 3 if facts.driver_os == "windows" else 2
    for row in toolkit_rows():  # oldest CUDA first: the smallest driver update that helps
        driver = row[column]
        if not driver_allowed(facts, row[0]):
            break  # a GPU here cannot take this driver (its last branch is older)
        later = (
            None
            if driver is None
            else recommend_torch(
                row[0], ccs, _python_version(facts), driver, installed=_installed(facts, "torch")
            )
        )
        if driver is not None and later is not None:
            return (
                f"No PyTorch wheel runs on this driver (CUDA {driver_cuda}) with this GPU: update "
                f"the NVIDIA driver to {driver} or newer (CUDA {row[0]}), then "
                f"{_pick_command(facts, later)}"
            )
    ceiling = driver_ceiling(facts)
    if ceiling is not None and not driver_allowed(facts, "99.0"):
        gpu, limit = ceiling
        return (
            f"No PyTorch wheel in the knowledge base runs on this driver (CUDA {driver_cuda}) with "
            f"this GPU, and {gpu.label} cannot take a driver newer than its last branch, "
            f"{limit.last_branch} (CUDA {limit.last_cuda}): use the CPU "
            f"({_install(facts, 'torch', index_url=torch_index_url('cpu'))})."
        )
    return (
        f"No PyTorch wheel in the knowledge base runs on this driver (CUDA {driver_cuda}) with "
        "this GPU; update the NVIDIA driver to the newest release for it."
    )


def check_import(facts: DoctorFacts) -> list[Finding]:
    """``framework.import_crashed``, ``framework.import_timeout``, ``framework.import_failed``."""
    found: list[Finding] = []
    python = _python(facts)
    for probe in _probes(facts):
        name = pkg = probe.name
        details = {
            "framework": name,
            "exit_code": probe.exit_code if isinstance(probe.exit_code, int) else None,
            "detail": probe.detail,
            "elapsed_s": probe.elapsed_s,
        }
        if probe.status == "crashed":
            found.append(
                Finding(
                    "framework.import_crashed",
                    "error",
                    f"import {name} crashed the Python interpreter",
                    f"{probe.detail}. Any program that imports {name} in this environment dies "
                    "the same way.",
                    f'Run {python} -c "import {name}" to see the crash, then reinstall: '
                    f"{_install(facts, pkg, reinstall=True)} (an 'Illegal instruction' "
                    "crash means the CPU lacks an instruction set the wheel needs; see cpu.no_avx).",
                    details,
                    command=_install(facts, pkg, reinstall=True),
                )
            )
        elif probe.status == "timeout":
            found.append(
                Finding(
                    "framework.import_timeout",
                    "error",
                    f"import {name} did not finish",
                    f"{probe.detail}. Something in its import hangs (a network file system, a "
                    "locked driver, a GPU busy in an uninterruptible state).",
                    f'Run {python} -X importtime -c "import {name}" to see where it stops; '
                    "raise --timeout if the machine is just slow.",
                    details,
                    command=f'{python} -X importtime -c "import {name}"',
                )
            )
        elif probe.status == "import_failed":
            found.append(
                Finding(
                    "framework.import_failed",
                    "error",
                    f"import {name} fails",
                    f"Importing {name} raised {probe.detail}",
                    f"Reinstall it: {_install(facts, pkg, reinstall=True)}",
                    details,
                    command=_install(facts, pkg, reinstall=True),
                )
            )
    return found


def _has_and_cuda(version: object) -> bool:
    """True when TensorFlow ``version`` (``"2.17.0"``) has the ``and-cuda`` extra."""
    from packaging.version import InvalidVersion, Version

    if not isinstance(version, str):
        return False
    try:
        return Version(version).release[:2] >= Version(tf_and_cuda_first()).release[:2]
    except InvalidVersion:
        return False


def check_cuda_libs_failed(facts: DoctorFacts) -> list[Finding]:
    """``framework.cuda_libs_failed``: the framework could not load CUDA libraries."""
    found: list[Finding] = []
    has_gpu = bool(_usable_gpus(facts))
    for probe in _probes(facts):
        dlopen = any("Cannot dlopen some GPU libraries" in m for m in probe.messages)
        if not probe.failed_libraries and not dlopen:
            continue
        libs = ", ".join(probe.failed_libraries) or "some GPU libraries"
        severity: Severity = "error" if has_gpu else "warning"
        conda = _conda_fix(facts, "pytorch" if probe.name == "torch" else "tensorflow")
        if conda is not None:
            fix, command = conda
            fix = f"{fix}; remove LD_LIBRARY_PATH entries that point at another CUDA/cuDNN"
        elif probe.name == "tensorflow":
            if _has_and_cuda(probe.version):
                # The CUDA wheels of the installed release, not an upgrade to another one.
                command = _install(facts, f"tensorflow[and-cuda]=={probe.version}")
                fix = (
                    f"{command} (brings CUDA and cuDNN as pip wheels; remove LD_LIBRARY_PATH "
                    "entries that point at another CUDA)"
                )
            else:
                command = ""
                fix = (
                    f"tensorflow {probe.version} predates the and-cuda extra: install the CUDA "
                    "and cuDNN versions it was built with system-wide (see TensorFlow's tested "
                    "build configurations), or upgrade: "
                    f"{_install(facts, 'tensorflow[and-cuda]')}"
                )
        else:
            command = _torch_command(facts)
            fix = (
                f"Reinstall torch with its CUDA library wheels: {_torch_fix(facts)}; remove "
                "LD_LIBRARY_PATH entries that point at another CUDA/cuDNN"
            )
        found.append(
            Finding(
                "framework.cuda_libs_failed",
                severity,
                f"{probe.name} could not load {libs}",
                f"{probe.name} could not load {libs}, so it runs without the GPU"
                + ("." if has_gpu else " (this machine has no usable NVIDIA GPU)."),
                fix,
                {"framework": probe.name, "libraries": list(probe.failed_libraries)},
                command=command,
            )
        )
    return found


def check_cpu_build(facts: DoctorFacts) -> list[Finding]:
    """``torch.cpu_build_on_gpu_machine``, ``tensorflow.cpu_build_on_gpu_machine``."""
    gpus = _usable_gpus(facts)
    if not gpus:
        return []
    found: list[Finding] = []
    names = ", ".join(
        f"GPU {g.index} ({'?' if isinstance(g.name, Missing) else g.name}, CC "
        f"{fmt_cc(g.compute_capability)})"
        for g in facts.gpus
        if not g.lost and isinstance(g.compute_capability, tuple)
    )
    torch = _torch(facts)
    if torch is not None:
        probe, build = torch
        if isinstance(build.cuda, Missing) and isinstance(build.hip, Missing):
            found.append(
                Finding(
                    "torch.cpu_build_on_gpu_machine",
                    "error",
                    "PyTorch is a CPU-only build, but this machine has an NVIDIA GPU",
                    f"torch {probe.version} has no CUDA support, so it cannot use {names}.",
                    _torch_fix(facts),
                    {"torch_version": probe.version, "driver_cuda": _driver_cuda(facts)},
                    command=_torch_command(facts),
                )
            )
    tf = _tf(facts)
    if tf is not None and facts.os_name != "windows":
        probe, tfb = tf
        if not tfb.is_cuda_build:
            driver_cuda = _driver_cuda(facts)
            pick = (
                None
                if driver_cuda is None
                else recommend_tensorflow(
                    driver_cuda,
                    _python_version(facts),
                    _driver_version(facts),
                    installed=_installed(facts, "tensorflow"),
                )
            )
            conda = _conda_fix(facts, "tensorflow")
            if conda is not None:
                fix, command = conda
            elif pick is not None:
                command = (
                    f"{uninstall_command(installer(facts), ['tensorflow', 'tensorflow-cpu'])} && "
                    f"{_install(facts, pick.requirement)}"
                )
                fix = f"Replace it with a CUDA build: {command} ({pick.note})."
            else:
                command = ""
                fix = (
                    f"No TensorFlow release with CUDA wheels runs on this driver (CUDA "
                    f"{driver_cuda or 'unknown'}) and Python: update the NVIDIA driver, then "
                    f"{_install(facts, 'tensorflow[and-cuda]')}."
                )
            found.append(
                Finding(
                    "tensorflow.cpu_build_on_gpu_machine",
                    "error",
                    "TensorFlow is a CPU-only build, but this machine has an NVIDIA GPU",
                    f"tensorflow {probe.version} was built without CUDA, so it cannot use {names}.",
                    fix,
                    {"tensorflow_version": probe.version, "driver_cuda": driver_cuda},
                    command=command,
                )
            )
    return found


def _build_cudas(facts: DoctorFacts) -> list[tuple[FrameworkProbe, str]]:
    out: list[tuple[FrameworkProbe, str]] = []
    torch = _torch(facts)
    if torch is not None and isinstance(torch[1].cuda, str):
        out.append((torch[0], torch[1].cuda))
    tf = _tf(facts)
    if tf is not None and tf[1].is_cuda_build and isinstance(tf[1].cuda_version, str):
        out.append((tf[0], tf[1].cuda_version))
    return out


def check_driver_vs_build(facts: DoctorFacts) -> list[Finding]:
    """``driver.too_old_for_build`` and ``driver.minor_version_compat``."""
    if facts.nvidia.status != "ok":
        return []
    driver_cuda = _driver_cuda(facts)
    driver = _driver_version(facts)
    if driver_cuda is None:
        return []
    found: list[Finding] = []
    for probe, build_cuda in _build_cudas(facts):
        verdict = driver_supports_cuda(driver_cuda, build_cuda, driver, facts.driver_os)
        details = {
            "framework": probe.name,
            "build_cuda": build_cuda,
            "driver_version": driver,
            "driver_cuda": driver_cuda,
            "full_support_driver": verdict.full_support_driver,
            "mvc_floor_driver": verdict.mvc_floor_driver,
        }
        head = (
            f"{probe.name} {probe.version} was built for CUDA {build_cuda}, but the NVIDIA driver "
            f"{driver or '(unknown version)'} supports CUDA {driver_cuda} at most"
        )
        if verdict.support == "too_old":
            need = verdict.full_support_driver
            floor = verdict.mvc_floor_driver
            ceiling = driver_ceiling(facts)
            conda = _conda_fix(facts, "pytorch" if probe.name == "torch" else "tensorflow")
            if not driver_allowed(facts, f"{build_cuda.split('.')[0]}.0") and ceiling is not None:
                gpu, limit = ceiling
                parts = [
                    f"{gpu.label} cannot take a driver newer than its last branch, "
                    f"{limit.last_branch} (CUDA {limit.last_cuda}), so no driver update helps: "
                    f"install a {probe.name} build for CUDA {limit.last_cuda} or older"
                ]
            else:
                parts = [
                    f"Update the NVIDIA driver to {need} or newer"
                    if need
                    else "Update the NVIDIA driver"
                ]
                if floor and floor != need:
                    parts.append(
                        f" (any driver >= {floor} runs CUDA {build_cuda.split('.')[0]}.x builds "
                        "through minor-version compatibility)"
                    )
            if conda is not None:
                parts.append(f", or: {conda[0]}")
            elif probe.name == "torch":
                pick = torch_pick(facts)
                if pick is not None:
                    parts.append(
                        f", or install a build this driver runs: {_pick_command(facts, pick)}"
                    )
            found.append(
                Finding(
                    "driver.too_old_for_build",
                    "error",
                    f"The NVIDIA driver is too old for {probe.name}'s CUDA {build_cuda} build",
                    head + f": {verdict.reason}. {probe.name} will not see the GPU.",
                    "".join(parts).rstrip(".") + ".",
                    details,
                    command=(
                        conda[1]
                        if conda is not None
                        else _torch_command(facts)
                        if probe.name == "torch"
                        else ""
                    ),
                )
            )
        elif verdict.support == "minor_version_compat":
            found.append(
                Finding(
                    "driver.minor_version_compat",
                    "info",
                    f"{probe.name} runs on this driver through CUDA minor-version compatibility",
                    head + f"; {verdict.reason}.",
                    f"Optional: update the NVIDIA driver to {verdict.full_support_driver} or newer "
                    f"for full CUDA {build_cuda} support (PTX JIT, newest features)."
                    if verdict.full_support_driver
                    else "Optional: update the NVIDIA driver for full support.",
                    details,
                )
            )
    return found


def check_arch(facts: DoctorFacts) -> list[Finding]:
    """``gpu.arch_not_in_build`` and ``gpu.ptx_jit_only``."""
    gpus = _usable_gpus(facts)
    if not gpus:
        return []
    builds: list[tuple[FrameworkProbe, tuple[str, ...]]] = []
    torch = _torch(facts)
    if torch is not None and isinstance(torch[1].cuda, str) and torch[1].arch_list:
        builds.append((torch[0], torch[1].arch_list))
    tf = _tf(facts)
    if tf is not None and tf[1].is_cuda_build and tf[1].compute_capabilities:
        builds.append((tf[0], tf[1].compute_capabilities))
    found: list[Finding] = []
    for probe, arch_items in builds:
        arch = parse_arch_list(arch_items)
        for index, cc in gpus:
            verdict = gpu_runs_build(cc, arch)
            details = {
                "framework": probe.name,
                "gpu": index,
                "compute_capability": fmt_cc(cc),
                "arch_list": list(arch_items),
            }
            if not verdict.runs:
                conda = None if probe.name == "torch" else _conda_fix(facts, "tensorflow")
                if probe.name == "torch":
                    fix = _torch_fix(facts, [cc])
                elif conda is not None:
                    fix = conda[0]
                else:
                    fix = (
                        f"Install a TensorFlow build that includes sm_{cc[0]}{cc[1]} or PTX "
                        "for it (a newer tensorflow[and-cuda], or build from source with "
                        f"HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_{cc[0]}{cc[1]})"
                    )
                found.append(
                    Finding(
                        "gpu.arch_not_in_build",
                        "error",
                        f"{probe.name} {probe.version} has no kernels for GPU {index} "
                        f"(compute capability {fmt_cc(cc)})",
                        f"{verdict.reason}; {probe.name} fails with 'no kernel image is "
                        "available for execution on the device' on this GPU.",
                        fix,
                        details,
                        command=_torch_command(facts, [cc])
                        if probe.name == "torch"
                        else (conda[1] if conda is not None else ""),
                    )
                )
            elif verdict.how == "ptx_jit":
                found.append(
                    Finding(
                        "gpu.ptx_jit_only",
                        "info",
                        f"{probe.name} runs on GPU {index} (CC {fmt_cc(cc)}) only through PTX JIT",
                        f"{verdict.reason}.",
                        "Expect a slow first run while kernels compile (cached afterwards); a build "
                        f"with sm_{cc[0]}{cc[1]} avoids it.",
                        details,
                    )
                )
    return found


def check_cuda_unavailable(facts: DoctorFacts) -> list[Finding]:
    """``torch.cuda_unavailable``: a CUDA build that reports no CUDA although the driver fits."""
    torch = _torch(facts)
    gpus = _usable_gpus(facts)
    if torch is None or not gpus or facts.nvidia.status != "ok":
        return []
    probe, build = torch
    if not isinstance(build.cuda, str) or build.cuda_available is not False:
        return []
    driver_cuda = _driver_cuda(facts)
    if driver_cuda is not None:
        verdict = driver_supports_cuda(driver_cuda, build.cuda, _driver_version(facts))
        if verdict.support == "too_old":
            return []  # driver.too_old_for_build explains it
    cvd = _cvd_hides_all(facts)
    if cvd:
        return []  # cuda_visible_devices.hides_all explains it
    return [
        Finding(
            "torch.cuda_unavailable",
            "error",
            "PyTorch is a CUDA build but torch.cuda.is_available() is False",
            f"torch {probe.version} (CUDA {build.cuda}) does not see the {len(gpus)} GPU(s) NVML "
            "lists, and the driver version is not the reason.",
            f'{_python(facts)} -c "import torch; torch.cuda.init()" prints CUDA\'s own error '
            "(a container without --gpus, a missing /dev/nvidia-uvm, or a MIG setup).",
            {"torch_version": probe.version, "build_cuda": build.cuda},
            command=f'{_python(facts)} -c "import torch; torch.cuda.init()"',
        )
    ]


def _cvd_hides_all(facts: DoctorFacts) -> bool:
    resolved = facts.visible
    return resolved is not None and resolved.hides_all


def check_tf_windows(facts: DoctorFacts) -> list[Finding]:
    """``tf.windows_native_gpu``: TensorFlow >= 2.11 has no GPU on native Windows."""
    tf = _tf(facts)
    fw = facts.frameworks
    on_windows = facts.os_name == "windows" or (
        not isinstance(fw, Missing) and fw.platform == "win32"
    )
    if tf is None or not on_windows or not _usable_gpus(facts):
        return []
    probe, _ = tf
    if not isinstance(probe.version, str) or tf_has_native_windows_gpu(probe.version):
        return []
    last = tf_windows_native_gpu_last()
    return [
        Finding(
            "tf.windows_native_gpu",
            "error",
            f"TensorFlow {probe.version} cannot use the GPU on native Windows",
            f"TensorFlow {last} was the last release with GPU support on native Windows; "
            f"{probe.version} runs on the CPU only here.",
            tf_windows_fix(),
            {"tensorflow_version": probe.version, "last_native_windows_gpu": last},
        )
    ]


def check_python_support(facts: DoctorFacts) -> list[Finding]:
    """``python.unsupported_by_framework``: the interpreter is outside the release's range."""
    python = _python_version(facts)
    if python is None:
        return []
    found: list[Finding] = []
    for probe in _probes(facts):
        if probe.status != "ok" or not isinstance(probe.version, str):
            continue
        support = python_support(probe.name, probe.version)
        if support is None or support.supports(python):
            continue
        key = release_key(probe.version)
        found.append(
            Finding(
                "python.unsupported_by_framework",
                "warning",
                f"{probe.name} {key} does not support Python {python}",
                f"{probe.name} {probe.version} supports Python {support.minimum} to "
                f"{support.maximum}; this interpreter is Python {python}, so wheels of "
                "dependencies may be missing and behaviour is untested.",
                f"Use Python {support.maximum} for {probe.name} {key} (for example: dlsetup "
                f"create {'pytorch' if probe.name == 'torch' else 'tensorflow'} --python-version "
                f"{support.maximum}), or install a {probe.name} release that supports "
                f"Python {'.'.join(python.split('.')[:2])}.",
                {
                    "framework": probe.name,
                    "version": probe.version,
                    "python": python,
                    "supported": f"{support.minimum}-{support.maximum}",
                    "source": support.source,
                },
            )
        )
    return found


def check_newer_release(facts: DoctorFacts) -> list[Finding]:
    """``knowledge.newer_release``: an installed framework release newer than the knowledge base.

    Said once per framework. The other checks then judge the build by the general rules (the
    driver against the build's own CUDA version, each GPU against the arch list the build
    reports) and skip the release facts the data lacks (its Python range); fixes keep the
    installed release rather than going back to the newest one the data knows.
    """
    found: list[Finding] = []
    for probe in _probes(facts):
        if probe.status != "ok" or not isinstance(probe.version, str):
            continue
        newer = newer_than_data(probe.name, probe.version)
        if newer is None:
            continue
        build = probe.torch if probe.name == "torch" else probe.tensorflow
        if isinstance(build, TorchBuild):
            cuda = build.cuda if isinstance(build.cuda, str) else None
            arch = ", ".join(build.arch_list)
        elif isinstance(build, TensorflowBuild):
            cuda = build.cuda_version if isinstance(build.cuda_version, str) else None
            arch = ", ".join(build.compute_capabilities)
        else:
            cuda, arch = None, ""
        judged = (
            f"the driver is checked against the build's own CUDA {cuda} and each GPU against the "
            f"arch list the build reports ({arch or 'empty'})"
            if cuda is not None
            else "it is a CPU build, so no driver or GPU verdict depends on the data"
        )
        found.append(
            Finding(
                "knowledge.newer_release",
                "info",
                f"{newer.label} {newer.release} is newer than dlsetup's compatibility data",
                f"{newer.note}. Nothing the data does not know is assumed: {judged}; the Python "
                f"range of {newer.release} is not checked, and no fix goes back to "
                f"{newer.rules_of} because the data ends there.",
                "Update dlsetup for newer compatibility data (maintainers: python -m "
                "tools.refresh_compat).",
                {
                    "framework": probe.name,
                    "version": probe.version,
                    "release": newer.release,
                    "data_ends_at": newer.last_known,
                    "rules_of": newer.rules_of,
                    "refreshed": newer.refreshed,
                },
            )
        )
    return found
