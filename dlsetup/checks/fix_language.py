"""Fixes in the language of the probed environment: conda commands in a conda prefix, pip in a venv.

A conda environment (``<prefix>/conda-meta`` beside ``<prefix>/bin/python``) gets conda-forge's
build for the CUDA line :func:`dlsetup.compat.lines.choose_cuda_line` picks for every GPU of this
machine (``conda install --prefix P -c conda-forge "pytorch=*=cuda129_*" "cuda-version>=12.9,<13"``);
pip there would mix PyPI wheels into a conda solve. Anything else (a venv, a system Python) gets
the pip command from the matching PyTorch index (:mod:`dlsetup.compat.recommend`).

A venv made from a conda Python has ``pyvenv.cfg`` in its own prefix and no ``conda-meta``: it is
a venv. The interpreter path is not resolved (a venv's ``bin/python`` links to its base).

No fix asks for a driver a GPU cannot take: :func:`driver_ceiling` is the lowest last-driver-branch
ceiling among the machine's GPUs (Kepler: R470, CUDA 11.4).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dlsetup.checks.context import DoctorFacts
from dlsetup.compat import knowledge_base
from dlsetup.compat.cuda import parse_cuda
from dlsetup.errors import InputError
from dlsetup.facts import Missing
from dlsetup.installer import Installer, installer_for
from dlsetup.platforms import from_host

if TYPE_CHECKING:  # dlsetup.compat.lines is imported when a fix is first needed
    from dlsetup.compat.lines import Gpu, LineChoice
    from dlsetup.compat.model import DriverBranchLimit

EnvKind = Literal["conda", "venv", "other"]


@dataclass(frozen=True)
class TargetEnv:
    """What kind of environment the probed interpreter lives in.

    Attributes:
        kind: ``conda`` (``conda-meta`` in its prefix), ``venv`` (``pyvenv.cfg``) or ``other``.
        prefix: the environment's prefix, or ``""`` for ``other``.
    """

    kind: EnvKind
    prefix: str


def target_env(python_executable: str) -> TargetEnv:
    """Classify the environment of ``python_executable`` from the files beside it.

    ``<prefix>/bin/python`` (Unix) and ``<prefix>/python.exe`` (Windows conda) are both looked at;
    ``pyvenv.cfg`` wins over ``conda-meta`` in the same prefix.
    """
    exe = Path(python_executable)
    for prefix in (exe.parent.parent, exe.parent):
        try:
            if (prefix / "pyvenv.cfg").is_file():
                return TargetEnv("venv", str(prefix))
            if (prefix / "conda-meta").is_dir():
                return TargetEnv("conda", str(prefix))
        except OSError:
            continue
    return TargetEnv("other", "")


def probed_env(facts: DoctorFacts) -> TargetEnv:
    """The environment of the interpreter doctor probed (``other`` when none was probed)."""
    fw = facts.frameworks
    if isinstance(fw, Missing):
        return TargetEnv("other", "")
    return target_env(fw.python_executable)


def conda_platform(facts: DoctorFacts) -> str | None:
    """This machine's conda platform (``linux-64``, ``linux-aarch64``, ``win-64``, ``osx-arm64``):
    its row of :data:`dlsetup.platforms.PLATFORM_TABLE` (:func:`dlsetup.platforms.from_host`), or
    None when the probes cannot say or the table has no row for it (``linux-riscv64``,
    ``win-arm64``): the caller falls back to the pip command."""
    system = facts.system
    if isinstance(system, Missing):
        return None
    try:
        return from_host(system.os_name, system.machine).name
    except InputError:
        return None


def machine_gpus(facts: DoctorFacts) -> tuple[Gpu, ...]:
    """NVML's usable GPUs as :class:`Gpu` records."""
    from dlsetup.compat.lines import Gpu

    return tuple(
        Gpu(g.index, g.name if isinstance(g.name, str) else "NVIDIA GPU", g.compute_capability)
        for g in facts.gpus
        if not g.lost and isinstance(g.compute_capability, tuple)
    )


def driver_ceiling(facts: DoctorFacts) -> tuple[Gpu, DriverBranchLimit] | None:
    """The GPU with the lowest last-driver-branch ceiling, and that ceiling; None when no GPU of
    the machine belongs to a generation whose driver support has ended."""
    found: list[tuple[Gpu, DriverBranchLimit]] = []
    for gpu in machine_gpus(facts):
        limit = next((x for x in knowledge_base().driver_limits if x.covers(gpu.cc)), None)
        if limit is not None:
            found.append((gpu, limit))
    if not found:
        return None
    return min(found, key=lambda pair: parse_cuda(pair[1].last_cuda))


def driver_allowed(facts: DoctorFacts, cuda: str) -> bool:
    """True when every GPU of the machine can take a driver that supports CUDA ``cuda``."""
    ceiling = driver_ceiling(facts)
    return ceiling is None or parse_cuda(cuda) <= parse_cuda(ceiling[1].last_cuda)


def installer(facts: DoctorFacts, python: str | None = None) -> Installer:
    """How a fix installs into the probed environment (:mod:`dlsetup.installer`): pip where the
    environment has it, else ``uv pip install --python PY`` when uv is on ``PATH``, else pip
    installed first with ensurepip; conda's or pixi's command in theirs."""
    fw = facts.frameworks
    if python is None:
        python = "python" if isinstance(fw, Missing) else fw.python_executable
    pip: bool | None = None
    uv: str | None = None
    managers = facts.env_managers
    if not isinstance(managers, Missing):
        for m in managers.managers:
            if m.name == "pip" and m.path == python and isinstance(m.version, str):
                pip = True  # else the prefix's files decide (a failed --version proves little)
            if m.name == "uv" and isinstance(m.path, str):
                uv = "uv"
    return installer_for(python, uv=uv, conda=_manager(facts), pip=pip)


def _manager(facts: DoctorFacts) -> str:
    managers = facts.env_managers
    if not isinstance(managers, Missing):
        for wanted in ("conda", "mamba", "micromamba"):
            for m in managers.managers:
                if m.name == wanted and isinstance(m.path, str):
                    return wanted
    return "conda"


def conda_install_command(facts: DoctorFacts, prefix: str, choice: LineChoice) -> str:
    """``conda install --prefix P -c conda-forge "pytorch=*=cuda129_*" "cuda-version>=12.9,<13"``
    (conda's CLI spells a build match ``name=version=build``)."""
    specs = [f'"{b.package}=*={b.build_glob}"' for b in choice.builds]
    specs.append(f'"{choice.cuda_version_spec.replace(" ", "")}"')
    variant = choice.builds[0].arm_variant
    if variant is not None:
        specs.append(f'"arm-variant=*={variant}"')
    return conda_companion_command(facts, prefix, specs)


@dataclass(frozen=True)
class CondaFix:
    """A fix for a wrong framework build in a conda environment.

    Attributes:
        fix: the sentence for the finding's ``fix``.
        command: the one command line, or ``""`` when no conda-forge build fits.
    """

    fix: str
    command: str


def conda_build_fix(facts: DoctorFacts, target: str, env: TargetEnv) -> CondaFix | None:
    """The conda-forge build of ``target`` (``pytorch``/``tensorflow``) for every GPU here.

    Returns:
        A :class:`CondaFix`, or None when the platform is unknown (the caller falls back).
    """
    from dlsetup.compat.lines import choose_cuda_line

    platform = conda_platform(facts)
    if platform is None:
        return None
    nv = facts.nvidia
    driver_cuda = nv.cuda_driver_version if isinstance(nv.cuda_driver_version, str) else None
    driver = nv.driver_version if isinstance(nv.driver_version, str) else None
    system = facts.system
    glibc = (
        None if isinstance(system, Missing) or isinstance(system.glibc, Missing) else system.glibc
    )
    fw = facts.frameworks
    python = None
    if not isinstance(fw, Missing) and isinstance(fw.python_version, str):
        python = ".".join(fw.python_version.split(".")[:2])
    try:
        choice = choose_cuda_line(
            target,
            platform,
            driver_cuda,
            machine_gpus(facts),
            driver_version=driver,
            glibc=glibc,
            python=python,
        )
    except InputError as exc:  # NoFittingBuildError included: it names the GPU and the choices
        return CondaFix(f"{exc.message}: {exc.fix}" if exc.fix else exc.message, "")
    command = conda_install_command(facts, env.prefix, choice)
    return CondaFix(
        f"This is a conda environment: install conda-forge's CUDA {choice.line} build "
        f"({choice.reason}): {command}",
        command,
    )


def conda_companion_command(facts: DoctorFacts, prefix: str, specs: list[str]) -> str:
    """``conda install --prefix P -c conda-forge "torchvision=0.28.*=*cuda129*"`` (the specs come
    quoted); in a pixi project's environment ``pixi add --manifest-path M "..."``: pixi owns it,
    and a conda install there would be undone by its next ``pixi install``."""
    inst = installer(facts)
    if inst.kind == "pixi" and inst.prefix == prefix:
        return f"pixi add --manifest-path {shlex.quote(inst.manifest)} {' '.join(specs)}"
    return f"{_manager(facts)} install --prefix {prefix} -c conda-forge {' '.join(specs)}"
