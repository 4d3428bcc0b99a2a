"""An unsatisfiable solve, explained in plain words with what would work.

rattler's :class:`SolverError` text is a tree ("pytorch * cuda* cannot be installed because ...
cuda-version 12.9 would constrain __cuda >=12, which conflicts with ... __cuda 11.4"). The common
cases get one sentence naming the package and the constraint, and a fix:

* a CUDA build whose ``cuda-version`` needs a newer ``__cuda`` than the driver supports -> update the
  driver to the version the knowledge base names (:mod:`dlsetup.compat.cuda`), or ``--variant cpu``;
* a package that needs a newer system (``__glibc``, ``__osx``, ``__linux``) than the platform was
  solved with -> name both versions and where the platform's came from (detected here, or the
  floor of another platform), and ``CONDA_OVERRIDE_GLIBC``/``_OSX`` for the machines it is meant for;
* a spec for which the channels have no candidates on that platform -> name it and the channels
  (on the ``pytorch`` channel, that it stopped at PyTorch 2.5: the solver decided, see
  :func:`dlsetup.envs.conda.request.framework_rules_apply`);
  a companion of PyTorch (torchvision) with no build of PyTorch's CUDA line -> say so: a CPU
  companion is never taken beside a CUDA PyTorch;
* anything else -> the first line of rattler's explanation.

The solver's full text is kept at the end of the message, indented, for whoever needs the detail.
"""

from __future__ import annotations

import re

from dlsetup.envs.conda.virtual_packages import DETECTED, FLOOR, VirtualPackage
from dlsetup.errors import SolveError

_CUDA_VERSION_NEED = re.compile(r"cuda-version >=(\d+)\.(\d+)")
_CUDA_VP_NEED = re.compile(r"__cuda >=(\d+)")
_TOP_NO_CANDIDATES = re.compile(r"No candidates were found for ([^\n]+?)\.?\s*$", re.M)
#: "needs-glibc 1.0 would require\n   └─ __glibc >=2.34, for which no candidates were found."
_SYSTEM_NEED = re.compile(
    r"([A-Za-z0-9_.-]+) (\S+) would require\s*\n\s*\S*\s*(__glibc|__osx|__linux) ([^,\n]+), "
    r"for which no candidates were found"
)
_OVERRIDE = {"__glibc": "CONDA_OVERRIDE_GLIBC", "__osx": "CONDA_OVERRIDE_OSX"}
#: PyTorch's companions, whose CUDA builds follow PyTorch's line
_COMPANIONS = ("torchvision", "torchaudio")
_SYSTEM_NAME = {"__glibc": "glibc", "__osx": "macOS", "__linux": "Linux kernel"}


def _os_name(platform: str) -> str:
    return "windows" if platform.startswith("win") else "linux"


def _frameworks(specs: tuple[str, ...]) -> list[str]:
    return [s.split()[0] for s in specs if " cuda" in s and not s.startswith("cuda-version")]


def _explain_system_need(
    solver_text: str, platform: str, virtual_packages: tuple[VirtualPackage, ...], detail: str
) -> SolveError | None:
    match = _SYSTEM_NEED.search(solver_text)
    if match is None:
        return None
    package, version, vp_name, constraint = match.groups()
    system = _SYSTEM_NAME[vp_name]
    have = next((v for v in virtual_packages if v.name == vp_name), None)
    if have is None:
        solved = f"{platform} was solved without {vp_name}"
    else:
        origin = {
            DETECTED: "detected on this machine",
            FLOOR: f"the default floor for {platform}, which is not this machine's platform",
        }.get(have.source, f"from ${have.source.removeprefix('env:')}")
        solved = f"{platform} was solved with {system} {have.version} ({origin})"
    needed = constraint.strip().lstrip(">=").strip()
    var = _OVERRIDE.get(vp_name)
    fix = f"use an older {package} (pin it in the environment file)"
    if var:
        fix += (
            f", or, if the machines this environment is for have {system} {needed} or newer, "
            f"say so with {var}={needed}"
        )
    return SolveError(
        f"{package} {version} for {platform} needs {system} {constraint.strip()} "
        f"({vp_name}), but {solved}\n  solver:\n{detail}",
        fix=fix,
    )


def explain_unsatisfiable(
    solver_text: str,
    *,
    platform: str,
    specs: tuple[str, ...],
    channels: tuple[str, ...],
    variant: str,
    cuda: str | None,
    virtual_packages: tuple[VirtualPackage, ...] = (),
) -> SolveError:
    """Turn rattler's solver text into a :class:`SolveError` a beginner can act on.

    Args:
        solver_text: ``str()`` of rattler's ``SolverError``.
        platform: the platform being solved (``linux-64``).
        specs: the requested match specs.
        channels: the channels searched.
        variant: ``cpu`` | ``cuda`` | ``mps``.
        cuda: the ``__cuda`` version solved for (cuda variant), else ``None``.
        virtual_packages: what the platform was solved with (their sources name the origin).
    """
    from dlsetup.compat.cuda import min_driver_for_cuda, mvc_floor

    detail = "\n".join("    " + line for line in solver_text.strip().splitlines())
    if variant == "cuda" and cuda is not None:
        needs = sorted(
            {(int(a), int(b)) for a, b in _CUDA_VERSION_NEED.findall(solver_text)}
            | {(int(a), 0) for a in _CUDA_VP_NEED.findall(solver_text)}
        )
        cuda_major = int(cuda.split(".")[0])
        newer = [n for n in needs if n[0] > cuda_major]
        if newer:
            major, minor = newer[0]
            build_cuda = f"{major}.{minor}"
            # the lowest build of that major family decides the driver named
            family = [n for n in needs if n[0] == major]
            build_cuda = f"{family[0][0]}.{family[0][1]}" if family else build_cuda
            os_name = _os_name(platform)
            full = min_driver_for_cuda(build_cuda, os_name) or min_driver_for_cuda(
                f"{major}.0", os_name
            )
            floor = mvc_floor(major, os_name)
            failing = [n for n in _frameworks(specs) if f"{n} * cuda" in solver_text]
            names = " and ".join(failing or _frameworks(specs)) or "the requested packages"
            message = (
                f"no CUDA build of {names} for {platform} works with CUDA {cuda}, the newest CUDA "
                f"the NVIDIA driver supports: the CUDA builds on {', '.join(channels)} need "
                f"cuda-version >={build_cuda} (__cuda >={major})"
            )
            driver = full or floor or f"a CUDA {major}.x driver"
            fix = f"update the NVIDIA driver to at least {driver}"
            if floor:
                fix += f" (CUDA {major}.x needs driver >= {floor})"
            fix += ", or use --variant cpu"
            return SolveError(f"{message}\n  solver:\n{detail}", fix=fix)
    system = _explain_system_need(solver_text, platform, virtual_packages, detail)
    if system is not None:
        return system
    top = _TOP_NO_CANDIDATES.search(solver_text)
    if top:
        spec = re.sub(r"\s+\*$", "", top.group(1).strip())
        name = spec.split()[0]
        if variant == "cuda" and name in _COMPANIONS and " cuda" in f" {spec.partition(' ')[2]}":
            return SolveError(
                f"no {name} build of PyTorch's CUDA line ({spec}) on {', '.join(channels)} for "
                f"{platform}; a CPU {name} beside a CUDA PyTorch is not what the cuda variant "
                f"installs\n  solver:\n{detail}",
                fix=f"use --variant cpu, or a channel with {name}'s CUDA builds (conda-forge "
                "builds one per PyTorch CUDA line)",
            )
        fix = (
            f"check the spelling of {spec.split()[0]!r}, the channel (--channel), and the "
            "platform (--platform): not every package is built for every platform"
        )
        from dlsetup.envs.files.spec import spec_name

        asks_pytorch = any(spec_name(s) == "pytorch" for s in specs)
        if asks_pytorch and any(c.rstrip("/").rsplit("/", 1)[-1] == "pytorch" for c in channels):
            fix += (
                "; the pytorch conda channel published its last builds with PyTorch 2.5 (Python "
                "3.9-3.12): for newer releases use conda-forge (drop the pytorch channel and "
                "the pytorch pin) or dlsetup lock --backend venv"
            )
        return SolveError(
            f"no package on {', '.join(channels)} matches {spec} for {platform}\n  solver:\n{detail}",
            fix=fix,
        )
    first = solver_text.strip().splitlines()[0] if solver_text.strip() else "no solution"
    return SolveError(
        f"the environment cannot be solved for {platform}: {first}\n  solver:\n{detail}",
        fix="relax the conflicting pins named above (python, cuda-version), or try another --variant",
    )
