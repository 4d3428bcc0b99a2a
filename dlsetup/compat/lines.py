"""Which conda-forge CUDA line fits a machine: every GPU must run the build, and the driver too.

conda-forge builds each framework in a few CUDA *lines* per platform (``data/compat.yaml``,
``conda_forge``): PyTorch 2.13 has CUDA 12.9 and 13.0 on linux-64, TensorFlow only 12.8. The lines
ship different GPU code: the CUDA 13.0 PyTorch builds start at compute capability 7.5, so a Pascal
or Volta card needs the 12.9 line even when its driver reports CUDA 13. The ``cuda-version``
package constrains only ``__cuda >=MAJOR``, so the solver would take the newest line and nothing
but this choice stops it.

:func:`choose_cuda_line` picks the newest line that

* runs on every GPU: SASS of the GPU's major at or below its minor, or PTX at or below its
  capability that the driver JIT-compiles (:mod:`dlsetup.compat.arch`);
* the driver runs: its CUDA version at least the line's, or the same major through minor-version
  compatibility, where every GPU must then have SASS (PTX newer than the driver cannot be
  JIT-compiled; :mod:`dlsetup.compat.cuda`);
* the target's glibc can load (``__glibc`` floor), and whose toolkit drives the GPU kind
  (linux-aarch64: sbsa builds drive discrete GPUs, tegra builds Jetson; CUDA 13 both).

For ``both``, the line is a pair with one CUDA major (one ``cuda-version`` serves both
frameworks): PyTorch 12.9 with TensorFlow 12.8 gives ``cuda-version >=12.9,<13``.

When no line runs on some GPU (a Kepler card, compute capability 3.x), the choice is refused with
:class:`dlsetup.errors.NoFittingBuildError` naming the GPU and the choices: the CPU variant, and
the last PyPI release whose wheels still ship that architecture, on the last driver branch the
GPU can take.

Everything here is a pure function of its arguments and the knowledge base.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Literal, NamedTuple

from dlsetup.compat import knowledge_base
from dlsetup.compat.arch import CC, ArchVerdict, fmt_cc, gpu_runs_build, parse_arch_list
from dlsetup.compat.cuda import driver_supports_cuda, parse_cuda
from dlsetup.errors import InputError, NoFittingBuildError

if TYPE_CHECKING:
    from dlsetup.compat.model import CondaForgeLine, DriverBranchLimit, KnowledgeBase

#: ``both`` expands to these knowledge-base frameworks.
TARGET_FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "pytorch": ("pytorch",),
    "tensorflow": ("tensorflow",),
    "both": ("pytorch", "tensorflow"),
}

LineSupport = Literal["full", "minor_version_compat", "not_checked"]

#: ``--gpu-arch`` forms; compiled on first use (through ``re``'s cache), not at import: a lock
#: with NVML's GPUs never parses one.
_GPU_ARCH = r"^(?:(\d{1,2})\.(\d)|sm_?(\d{1,2})(\d)[af]?)$"


@dataclass(frozen=True)
class Gpu:
    """A GPU the environment must serve.

    Attributes:
        index: NVML's index (``--gpu-arch`` values are numbered in the order given).
        name: ``"NVIDIA GeForce GTX 1080"``, or ``"--gpu-arch 6.1"``.
        cc: compute capability ``(major, minor)``.
    """

    index: int
    name: str
    cc: CC

    @property
    def label(self) -> str:
        """``GPU 0 NVIDIA GeForce GTX 1080 (6.1)``."""
        return f"GPU {self.index} {self.name} ({fmt_cc(self.cc)})"


def parse_gpu_arch(value: str) -> CC:
    """Parse one ``--gpu-arch`` value: ``"6.1"``, ``"8.6"``, ``"12.0"``, ``"sm_61"``, ``"sm_90a"``.

    Raises:
        InputError: not a compute capability (names the value and the accepted forms).
    """
    text = value.strip()
    m = re.match(_GPU_ARCH, text, re.IGNORECASE)
    if m is None:
        raise InputError(
            f"--gpu-arch {value!r} is not a GPU compute capability",
            fix="give it as nvidia-smi --query-gpu=compute_cap prints it (6.1, 8.6, 12.0) or "
            "as sm_61 / sm_86 / sm_120; several GPUs: --gpu-arch 8.6,6.1",
        )
    major, minor = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    cc = (int(major), int(minor))
    if not (1, 0) <= cc <= (15, 9):
        raise InputError(
            f"--gpu-arch {value!r}: compute capability {fmt_cc(cc)} is outside the known range",
            fix="use the value nvidia-smi --query-gpu=compute_cap prints for the target GPU "
            "(6.1, 8.6, 12.0)",
        )
    return cc


def gpus_from_arch(values: Sequence[str]) -> tuple[Gpu, ...]:
    """``--gpu-arch`` values (each may hold several, comma-separated) as :class:`Gpu` records.

    Lets a machine without a GPU lock for one that has them: ``("8.6,6.1",)`` gives GPU 0 (8.6)
    and GPU 1 (6.1).

    Raises:
        InputError: a value is not a compute capability.
    """
    ccs = [parse_gpu_arch(v) for value in values for v in value.split(",") if v.strip()]
    return tuple(Gpu(i, f"--gpu-arch {fmt_cc(cc)}", cc) for i, cc in enumerate(ccs))


@dataclass(frozen=True)
class FrameworkBuild:
    """The build of one framework on the chosen line.

    Attributes:
        framework: ``pytorch`` / ``tensorflow``.
        package: the conda package (``pytorch``).
        cuda: the line's CUDA version (``"12.9"``).
        build_glob: the build-string glob (``"cuda129_*"``).
        arch: the line's arch list as the recipe writes it.
        glibc: its ``__glibc`` floor, or None.
        arm_variant: ``sbsa`` / ``tegra`` on linux-aarch64, else None.
        sources: where the line's facts come from (citations).
    """

    framework: str
    package: str
    cuda: str
    build_glob: str
    arch: str
    glibc: str | None
    arm_variant: str | None
    sources: str

    @property
    def spec(self) -> str:
        """The match spec, in rattler's form: ``pytorch * cuda129_*``."""
        return f"{self.package} * {self.build_glob}"


@dataclass(frozen=True)
class CompanionBuild:
    """A companion of PyTorch (torchvision) on PyTorch's chosen line.

    Attributes:
        package: the conda package (``torchvision``).
        build_glob: PyTorch's build glob on the line (``"cuda129_*"``): conda-forge's companion
            builds carry the same prefix, and their recipes pin only ``pytorch * cuda*``, so the
            line is pinned here.
        sources: where the companion's build facts come from (citations).
    """

    package: str
    build_glob: str
    sources: str

    @property
    def spec(self) -> str:
        """``torchvision * cuda129_*``."""
        return f"{self.package} * {self.build_glob}"


@dataclass(frozen=True)
class LineChoice:
    """The CUDA line chosen for a target on a platform, and why.

    Attributes:
        target: ``pytorch``, ``tensorflow`` or ``both``.
        platform: the conda platform (``linux-64``).
        line: the CUDA version the environment gets (``"12.9"``; for ``both`` the higher line).
        cuda_version_spec: the ``cuda-version`` match spec to pin (``cuda-version >=12.9,<13``).
        builds: one :class:`FrameworkBuild` per framework of the target.
        specs: every match spec the environment needs for this line: the framework builds,
            ``cuda-version``, and ``arm-variant * tegra|sbsa`` on linux-aarch64.
        glibc: the highest ``__glibc`` floor of the builds, or None.
        support: ``full`` / ``minor_version_compat`` (driver older than the line, same major) /
            ``not_checked`` (no driver CUDA given).
        reason: one sentence; names the GPU or the driver that ruled out a newer line.
        passed_over: one sentence per newer line that was ruled out, newest first.
        companions: PyTorch's companions conda-forge builds on this line for this platform, for
            its pytorch release (:func:`companion_builds`); an environment that lists one gets
            this build. Not in :attr:`specs`: a companion is added only where it is asked for.
        missing_companions: one sentence per companion left out here, and why.
    """

    target: str
    platform: str
    line: str
    cuda_version_spec: str
    builds: tuple[FrameworkBuild, ...]
    specs: tuple[str, ...]
    glibc: str | None
    support: LineSupport
    reason: str
    passed_over: tuple[str, ...] = ()
    companions: tuple[CompanionBuild, ...] = ()
    missing_companions: tuple[str, ...] = ()

    @property
    def build_glob(self) -> str:
        """The build-string glob of a one-framework target (``cuda129_*``); for ``both`` the
        PyTorch one (see :attr:`builds` for each)."""
        return self.builds[0].build_glob


def _cuda_key(cuda: str) -> tuple[int, int]:
    return parse_cuda(cuda)


def _os(platform: str) -> str:
    return "windows" if platform.startswith("win") else "linux"


def _is_tegra(kb: KnowledgeBase, gpu: Gpu) -> bool:
    return gpu.cc in kb.conda_forge.tegra_ccs


def _arch_reason(line: CondaForgeLine, gpu: Gpu, verdict: ArchVerdict) -> str:
    arch = parse_arch_list(line.arch or "")
    lowest = min(arch.sass | arch.ptx, default=None)
    if lowest is not None and gpu.cc < lowest:
        return f"{gpu.label}: CUDA {line.cuda} builds start at {fmt_cc(lowest)}"
    return f"{gpu.label}: CUDA {line.cuda} builds have no code for it ({verdict.reason})"


def _devices_reason(kb: KnowledgeBase, line: CondaForgeLine, gpus: Sequence[Gpu]) -> str | None:
    for gpu in gpus:
        tegra = _is_tegra(kb, gpu)
        if line.devices == "discrete" and tegra:
            return (
                f"{gpu.label} is a Jetson (tegra) GPU, which the {line.arm_variant} CUDA "
                f"{line.cuda} build does not drive"
            )
        if line.devices == "tegra" and not tegra:
            return (
                f"{gpu.label} is not a Jetson GPU, and the tegra CUDA {line.cuda} build drives "
                "Jetson only"
            )
    return None


def _glibc_key(value: str) -> tuple[int, ...]:
    return tuple(int(p) for p in value.split("."))


class _Request(NamedTuple):
    """The arguments of one :func:`choose_cuda_line` call."""

    target: str
    platform: str
    driver_cuda: str | None
    driver_version: str | None
    gpus: tuple[Gpu, ...]
    glibc: str | None
    python: str | None


class _Verdict(NamedTuple):
    """One candidate combination judged: ``reason`` is None when it fits."""

    lines: tuple[CondaForgeLine, ...]
    env_cuda: str
    support: LineSupport
    reason: str | None
    arch_ok: bool  # every GPU runs every build (ignoring the driver and glibc)


def _judge(kb: KnowledgeBase, req: _Request, lines: tuple[CondaForgeLine, ...]) -> _Verdict:
    gpus, glibc, driver_cuda = req.gpus, req.glibc, req.driver_cuda
    env_cuda = max((line.cuda or "0.0" for line in lines), key=_cuda_key)
    sass_only = True
    for line in lines:
        why = _devices_reason(kb, line, gpus)
        if why is not None:
            return _Verdict(lines, env_cuda, "not_checked", why, False)
        arch = parse_arch_list(line.arch or "")
        for gpu in gpus:
            verdict = gpu_runs_build(gpu.cc, arch)
            if not verdict.runs:
                return _Verdict(
                    lines, env_cuda, "not_checked", _arch_reason(line, gpu, verdict), False
                )
            sass_only = sass_only and verdict.how == "sass"
    floors = [line.glibc for line in lines if line.glibc is not None]
    if glibc is not None and floors:
        need = max(floors, key=_glibc_key)
        if _glibc_key(glibc) < _glibc_key(need):
            return _Verdict(
                lines,
                env_cuda,
                "not_checked",
                f"CUDA {env_cuda} builds need glibc {need} and the target has glibc {glibc}",
                True,
            )
    if driver_cuda is None:
        return _Verdict(lines, env_cuda, "not_checked", None, True)
    cuda = driver_supports_cuda(driver_cuda, env_cuda, req.driver_version, _os(req.platform))
    if cuda.support == "full":
        return _Verdict(lines, env_cuda, "full", None, True)
    if cuda.support == "minor_version_compat":
        if sass_only:
            return _Verdict(lines, env_cuda, "minor_version_compat", None, True)
        return _Verdict(
            lines,
            env_cuda,
            "minor_version_compat",
            f"the driver supports CUDA {driver_cuda}, and a GPU would need the CUDA {env_cuda} "
            "build's PTX, which an older driver cannot JIT-compile",
            True,
        )
    need_major = _cuda_key(env_cuda)[0]
    if _cuda_key(driver_cuda)[0] < need_major:
        why = (
            f"the driver supports CUDA {driver_cuda}, and CUDA {env_cuda} builds need a CUDA "
            f"{need_major} driver"
        )
    else:
        why = f"CUDA {env_cuda} builds do not run on this driver: {cuda.reason}"
    return _Verdict(lines, env_cuda, "not_checked", why, True)


def _candidates(
    kb: KnowledgeBase, frameworks: tuple[str, ...], platform: str
) -> list[tuple[CondaForgeLine, ...]]:
    """Every combination of one CUDA line per framework with one CUDA major and one ARM
    variant, newest environment CUDA first (data order breaks ties: sbsa before tegra)."""
    per_framework: list[list[CondaForgeLine]] = []
    for name in frameworks:
        fw = kb.conda_forge.frameworks.get(name)
        lines = [] if fw is None else [x for x in fw.platforms.get(platform, ()) if x.cuda]
        per_framework.append(lines)
    combos: list[tuple[CondaForgeLine, ...]] = []
    for combo in product(*per_framework):
        majors = {_cuda_key(line.cuda or "0")[0] for line in combo}
        variants = {line.arm_variant for line in combo}
        if len(majors) == 1 and len(variants) == 1:
            combos.append(combo)
    combos.sort(
        key=lambda c: max(_cuda_key(line.cuda or "0") for line in c), reverse=True
    )  # stable: keeps data order among equals
    return combos


def companion_builds(
    platform: str, build_glob: str, *, cuda: str | None = None, kb: KnowledgeBase | None = None
) -> tuple[tuple[CompanionBuild, ...], tuple[str, ...]]:
    """PyTorch's companions conda-forge builds for PyTorch's ``build_glob`` on ``platform``.

    A companion counts when its builds were made with conda-forge's pytorch release (pytorch's
    run_exports pin the release, so others do not install beside it) and one of them carries
    ``build_glob`` (``"cuda129_*"``, ``"cpu_*"``) on ``platform``.

    Args:
        platform: the conda platform.
        build_glob: PyTorch's build glob there.
        cuda: the line's CUDA version, for the sentences (None: the CPU build).
        kb: the knowledge base (default: the shipped one).

    Returns:
        ``(builds, missing)``: the companion builds, and one sentence per companion left out.
    """
    kb = kb or knowledge_base()
    pytorch = kb.conda_forge.frameworks["pytorch"]
    torch_key = ".".join(pytorch.release.split(".")[:2])
    kind = f"CUDA {cuda}" if cuda else "CPU"
    builds: list[CompanionBuild] = []
    missing: list[str] = []
    for comp in kb.conda_forge_companions.values():
        if comp.pytorch != torch_key:
            missing.append(
                f"{comp.package} left out: conda-forge's newest {comp.package}, {comp.release}, "
                f"is built for pytorch {comp.pytorch} (pytorch's run_exports pin that release), "
                f"not for conda-forge's pytorch {pytorch.release}"
                + (f"; {comp.note}" if comp.note else "")
            )
        elif not comp.has_build(platform, build_glob):
            missing.append(
                f"{comp.package} left out on {platform}: conda-forge builds no {kind} "
                f"{comp.package} there"
            )
        else:
            builds.append(CompanionBuild(comp.package, build_glob, kb.cite(comp.sources)))
    return tuple(builds), tuple(missing)


def newer_than_data_notes(
    packages: Iterable[tuple[str, str]], kb: KnowledgeBase | None = None
) -> tuple[str, ...]:
    """One note per framework a lock resolved to a release newer than the one conda-forge's lines
    were read at (``conda_forge.frameworks.*.release``): its CUDA line was chosen by that
    release's rules (build globs, arch lists), which the data cannot vouch for.

    Args:
        packages: ``(conda package name, version)`` of every locked package, any platform.
        kb: the knowledge base (default: the shipped one).

    Returns:
        ``"dlsetup's compatibility data ends at conda-forge pytorch 2.13, 2026-11-27; verdicts for
        2.15 use the rules of 2.13"``, at most once per framework.
    """
    from packaging.version import InvalidVersion, Version

    kb = kb or knowledge_base()
    by_package = {fw.package: fw for fw in kb.conda_forge.frameworks.values()}
    notes: dict[str, str] = {}
    for name, version in packages:
        fw = by_package.get(name)
        if fw is None or name in notes:
            continue
        try:
            have, known = Version(version).release[:2], Version(fw.release).release[:2]
        except InvalidVersion:
            continue
        if have <= known:
            continue
        when = f", {kb.refreshed}" if kb.refreshed else ""
        notes[name] = (
            f"dlsetup's compatibility data ends at conda-forge {name} "
            f"{known[0]}.{known[1]}{when}; verdicts for {have[0]}.{have[1]} use the rules of "
            f"{known[0]}.{known[1]}"
        )
    return tuple(notes.values())


def _limit_for(kb: KnowledgeBase, cc: CC) -> DriverBranchLimit | None:
    return next((limit for limit in kb.driver_limits if limit.covers(cc)), None)


def last_pypi_torch_for(cc: CC, python: str | None = None) -> tuple[str, str, str] | None:
    """The newest PyTorch release whose PyPI wheels run on compute capability ``cc``, on the
    newest driver the GPU can take.

    Args:
        cc: the GPU's compute capability.
        python: the target Python, to skip releases that do not support it.

    Returns:
        ``(release, variant, pip command)`` (``("2.7", "cu118", "pip install torch==2.7.*
        --index-url https://download.pytorch.org/whl/cu118")``), or None when no wheel in the
        knowledge base ships that architecture.
    """
    from dlsetup.compat.recommend import recommend_torch

    kb = knowledge_base()
    limit = _limit_for(kb, cc)
    if limit is not None:
        pick = recommend_torch(limit.last_cuda, [cc], python, limit.last_driver)
    else:
        newest = kb.toolkit_drivers[-1]
        pick = recommend_torch(newest.cuda, [cc], python, newest.linux)
    return None if pick is None else (pick.release, pick.variant, pick.command)


def _no_gpu_fit(kb: KnowledgeBase, req: _Request, gpu: Gpu, why: list[str]) -> NoFittingBuildError:
    target, platform = req.target, req.platform
    limit = _limit_for(kb, gpu.cc)
    choices = [f"--variant cpu (dlsetup lock {target} --variant cpu)"]
    if "pytorch" in TARGET_FRAMEWORKS[target]:
        last = last_pypi_torch_for(gpu.cc, req.python)
        if last is not None:
            release, _, command = last
            driver = (
                f" with the NVIDIA driver of its last branch, {limit.last_branch} (CUDA "
                f"{limit.last_cuda})"
                if limit is not None
                else ""
            )
            choices.append(
                f"PyTorch {release} is the newest release whose PyPI wheels run on "
                f"compute capability {fmt_cc(gpu.cc)}: in a venv, {command}{driver}"
            )
    branch = (
        f"; its last NVIDIA driver branch is {limit.last_branch} (CUDA {limit.last_cuda})"
        if limit is not None
        else ""
    )
    return NoFittingBuildError(
        f"no conda-forge {target} CUDA build for {platform} runs on {gpu.label}: "
        f"{'; '.join(why)}{branch}",
        fix="choose: " + "; or ".join(choices),
        gpu_index=gpu.index,
        choices=tuple(choices),
    )


def choose_cuda_line(
    target: str,
    platform: str,
    driver_cuda: str | None,
    gpus: Sequence[Gpu],
    *,
    driver_version: str | None = None,
    glibc: str | None = None,
    python: str | None = None,
) -> LineChoice:
    """Pick the newest conda-forge CUDA line that every GPU and the driver can run.

    Args:
        target: ``pytorch``, ``tensorflow`` or ``both``.
        platform: the conda platform locked for (``linux-64``, ``linux-aarch64``, ``win-64``).
        driver_cuda: the driver's CUDA version (NVML, ``"13.0"``; ``--cuda``), or None to choose
            without a driver (the reason says so).
        gpus: the GPUs to serve (NVML's, or :func:`gpus_from_arch`); empty: no GPU constraint.
        driver_version: the driver version (``"580.65.06"``), for the minor-version floor.
        glibc: the target's glibc (``"2.28"``), to skip lines built for a newer one.
        python: the target Python ``X.Y``, checked against the Pythons conda-forge builds.

    Returns:
        A :class:`LineChoice`.

    Raises:
        InputError: unknown target, no CUDA build of the target on ``platform``, or a Python
            conda-forge does not build for.
        NoFittingBuildError: no line runs on some GPU (names it, with the choices), or the
            driver or glibc is too old for every line the GPUs run.
    """
    kb = knowledge_base()
    if target not in TARGET_FRAMEWORKS:
        raise InputError(
            f"unknown target {target!r} for a CUDA line",
            fix=f"use one of {', '.join(TARGET_FRAMEWORKS)}",
        )
    frameworks = TARGET_FRAMEWORKS[target]
    for name in frameworks:
        fw = kb.conda_forge.frameworks[name]
        if not any(line.cuda for line in fw.platforms.get(platform, ())):
            where = ", ".join(p for p, ls in fw.platforms.items() if any(x.cuda for x in ls))
            raise InputError(
                f"conda-forge builds no CUDA {fw.package} for {platform} (CUDA builds: {where})",
                fix=f"lock {platform} with --variant cpu, or lock the CUDA variant for {where}",
            )
        if python is not None and ".".join(python.split(".")[:2]) not in fw.python:
            raise InputError(
                f"conda-forge builds {fw.package} {fw.release} for Python "
                f"{', '.join(fw.python)}, not {python}",
                fix=f"use --python-version {fw.python[-1]}",
            )
    req = _Request(target, platform, driver_cuda, driver_version, tuple(gpus), glibc, python)
    verdicts = [_judge(kb, req, combo) for combo in _candidates(kb, frameworks, platform)]
    chosen = next((v for v in verdicts if v.reason is None), None)
    if chosen is None:
        raise _refusal(kb, req, verdicts)
    passed = []
    for v in verdicts:
        if v is chosen:
            break
        if v.reason is not None and v.reason not in passed:
            passed.append(v.reason)
    return _choice(kb, req, chosen, tuple(passed))


def _choice(
    kb: KnowledgeBase, req: _Request, chosen: _Verdict, passed: tuple[str, ...]
) -> LineChoice:
    target, platform, driver_cuda, gpus = req.target, req.platform, req.driver_cuda, req.gpus
    major, minor = _cuda_key(chosen.env_cuda)
    cuda_version = f"cuda-version >={major}.{minor},<{major + 1}"
    builds = tuple(
        FrameworkBuild(
            line.framework,
            line.package,
            line.cuda or "",
            line.build,
            line.arch or "",
            line.glibc,
            line.arm_variant,
            kb.cite(line.sources),
        )
        for line in chosen.lines
    )
    specs = [b.spec for b in builds] + [cuda_version]
    variant = chosen.lines[0].arm_variant
    if variant is not None:
        specs.append(f"arm-variant * {variant}")
    floors = [b.glibc for b in builds if b.glibc is not None]
    glibc = max(floors, key=_glibc_key) if floors else None
    pair = ""
    if len(builds) > 1:
        pair = " (" + ", ".join(f"{b.framework} CUDA {b.cuda}" for b in builds) + ")"
    if passed:
        reason = f"{passed[0]}, so CUDA {chosen.env_cuda}{pair}"
    else:
        if gpus:
            who = "every GPU (" + ", ".join(g.label for g in gpus) + ") runs it"
        else:
            who = "no GPU compute capability was given"
        driver = (
            "no driver CUDA version was given"
            if driver_cuda is None
            else f"the driver supports CUDA {driver_cuda}"
        )
        newest = (
            f"the newest CUDA line {' and '.join(b.framework for b in builds)} share on {platform}"
            if len(builds) > 1
            else f"the newest line conda-forge builds for {platform}"
        )
        reason = f"CUDA {chosen.env_cuda}{pair}, {newest}: {who}, and {driver}"
    if chosen.support == "minor_version_compat":
        reason += " (through minor-version compatibility)"
    torch_build = next((b for b in builds if b.framework == "pytorch"), None)
    companions, missing = (
        companion_builds(platform, torch_build.build_glob, cuda=torch_build.cuda, kb=kb)
        if torch_build is not None
        else ((), ())
    )
    return LineChoice(
        target,
        platform,
        chosen.env_cuda,
        cuda_version,
        builds,
        tuple(specs),
        glibc,
        chosen.support,
        reason,
        passed,
        companions,
        missing,
    )


def _refusal(kb: KnowledgeBase, req: _Request, verdicts: list[_Verdict]) -> NoFittingBuildError:
    target, platform, driver_cuda, gpus = req.target, req.platform, req.driver_cuda, req.gpus
    # 1. A GPU that no line of some framework runs on, whatever the driver: name it.
    for gpu in gpus:
        for name in TARGET_FRAMEWORKS[target]:
            lines = [x for x in kb.conda_forge.frameworks[name].platforms[platform] if x.cuda]
            why: list[str] = []
            for line in lines:
                devices = _devices_reason(kb, line, [gpu])
                verdict = gpu_runs_build(gpu.cc, parse_arch_list(line.arch or ""))
                if devices is None and verdict.runs:
                    why = []
                    break
                reason = devices or _arch_reason(line, gpu, verdict)
                why.append(reason.removeprefix(f"{gpu.label}: "))
            if why:
                return _no_gpu_fit(kb, req, gpu, why)
    # 2. Each GPU has a line, but no one line serves them all.
    if not any(v.arch_ok for v in verdicts):
        labels = ", ".join(g.label for g in gpus)
        return NoFittingBuildError(
            f"no single conda-forge {target} CUDA line for {platform} runs on all of {labels}: "
            f"{verdicts[-1].reason if verdicts else 'no CUDA line'}",
            fix=f"lock one environment per GPU kind with --gpu-arch, or use --variant cpu "
            f"(dlsetup lock {target} --variant cpu)",
            choices=(f"--variant cpu (dlsetup lock {target} --variant cpu)",),
        )
    # 3. The driver (or glibc) is too old for every line the GPUs run.
    fitting = [v for v in verdicts if v.arch_ok]
    oldest = fitting[-1]
    reasons = "; ".join(dict.fromkeys(v.reason or "" for v in fitting))
    choices = [f"--variant cpu (dlsetup lock {target} --variant cpu)"]
    if driver_cuda is not None and oldest.reason and oldest.reason.startswith("the driver"):
        need_major = _cuda_key(oldest.env_cuda)[0]
        capped = [
            lim
            for g in gpus
            if (lim := _limit_for(kb, g.cc)) is not None
            and _cuda_key(lim.last_cuda)[0] < need_major
        ]
        if capped:
            lim = capped[0]
            gpu = next(g for g in gpus if lim.covers(g.cc))
            return _no_gpu_fit(
                kb,
                req,
                gpu,
                [f"its builds need a CUDA {need_major} driver and the GPU cannot take one"],
            )
        floor = kb.mvc.get(need_major)
        floor_driver = (
            None
            if floor is None
            else (floor.windows if _os(platform) == "windows" else floor.linux)
        )
        full = next((r for r in kb.toolkit_drivers if r.cuda == oldest.env_cuda), None)
        full_driver = (
            None if full is None else (full.windows if _os(platform) == "windows" else full.linux)
        )
        if floor_driver or full_driver:
            wanted = full_driver or floor_driver
            choices.insert(
                0,
                f"update the NVIDIA driver to {wanted} or newer (CUDA {oldest.env_cuda})"
                + (
                    f"; any driver >= {floor_driver} runs CUDA {need_major}.x builds whose GPUs "
                    "have SASS"
                    if floor_driver and floor_driver != wanted
                    else ""
                ),
            )
    return NoFittingBuildError(
        f"no conda-forge {target} CUDA line for {platform} fits: {reasons}",
        fix="choose: " + "; or ".join(choices),
        choices=tuple(choices),
    )
