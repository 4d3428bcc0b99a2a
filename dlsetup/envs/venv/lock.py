"""``--backend venv``: lock PyTorch/TensorFlow into a PEP 751 ``pylock.toml`` with uv, and build a
virtual environment from it with uv, atomically.

Which PyTorch build: the variant is chosen as for conda locks (:func:`dlsetup.envs.variant.
choose_variant`: the driver's CUDA version and every GPU's compute capability from NVML, or
``--cuda`` / ``--gpu-arch`` for another machine), then the wheel variant comes from
:func:`dlsetup.compat.recommend.recommend_torch`, the same function whose pip command
``dlsetup doctor`` prints as a fix: the newest CUDA variant the driver runs and whose arch list
every GPU runs. Its index (``https://download.pytorch.org/whl/<variant>``, ``--torch-index-url``
overrides) is searched before the default index, and the release is pinned to the one whose arch
list was checked (``torch==2.14.*``): a newer release on the same index may have dropped a GPU.
No usable GPU: the cpu index. TensorFlow: ``tensorflow[and-cuda]`` on Linux x86_64 with a CUDA
variant (:func:`dlsetup.compat.recommend.recommend_tensorflow`), plain ``tensorflow`` elsewhere.

Platforms: uv resolves one at a time (``uv pip compile --python-platform``); the locks are merged
into one file (:mod:`dlsetup.envs.venv.pylock`). The CUDA wheel index applies where PyTorch publishes
CUDA wheels whose arch lists the knowledge base has (linux-64, win-64); other platforms get the
cpu index (on macOS that wheel has the MPS backend).

Build: ``uv venv --relocatable`` in ``.dlsetup-partial-NAME-PID/env`` beside the target, then
``uv pip sync --require-hashes`` of the lock (every package a wheel with a sha256, checked
first by :func:`dlsetup.envs.venv.pylock.parse_pylock`; uv compares each wheel with it), then the same
rename into place, target lock, prefix rules and clean-up of a killed build as conda
environments (:mod:`dlsetup.envs.conda.install`, :mod:`dlsetup.envs.safety`). A relocatable venv's
scripts find their interpreter relative to themselves, so the renamed venv's ``python``,
``activate`` and console scripts work at the final path.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.envs.credentials import strip_auth
from dlsetup.envs.pypi.install import run_uv_step
from dlsetup.envs.pypi.uv import index_args, uv_cache
from dlsetup.errors import DlsetupError, InputError, SolveError

if TYPE_CHECKING:
    from dlsetup.compat.recommend import TorchPick
    from dlsetup.envs.reachability import VenvSources
    from dlsetup.envs.variant import VariantChoice
    from dlsetup.envs.venv.resolved import ResolvedBuild
    from dlsetup.probes.nvidia import NvidiaFacts

#: the default PyTorch index pattern; the knowledge base's (``torch.index_url``) is used when set
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"
#: the default index for everything else
DEFAULT_INDEX = "https://pypi.org/simple"
#: what a venv lock locks
TARGETS: tuple[str, ...] = ("pytorch", "tensorflow", "both")


@dataclass(frozen=True)
class VenvPlatform:
    """A platform a venv lock is resolved for, and the PEP 508 marker environment and wheel tags
    that stand for it when a lock is read for it elsewhere (:mod:`dlsetup.envs.venv.read`).

    Attributes:
        name: dlsetup's (conda's) name, as ``--platform`` takes it: ``linux-64``.
        python_platform: uv's ``--python-platform``.
        sys_platform: its ``sys_platform`` marker value.
        platform_machine: its ``platform_machine`` marker value.
        cuda_wheels: PyTorch publishes CUDA wheels here whose arch lists the knowledge base has.
        and_cuda: TensorFlow's ``and-cuda`` extra (CUDA libraries as wheels) applies here.
        os_name: its ``os_name`` marker value.
        platform_system: its ``platform_system`` marker value.
        wheel_platforms: the wheel platform tags ``python_platform`` accepts, best first.
    """

    name: str
    python_platform: str
    sys_platform: str
    platform_machine: str
    cuda_wheels: bool
    and_cuda: bool
    os_name: str
    platform_system: str
    wheel_platforms: tuple[str, ...]

    @property
    def marker(self) -> str:
        """The PEP 508 marker that selects it in the merged lock."""
        return (
            f"sys_platform == '{self.sys_platform}' and "
            f"platform_machine == '{self.platform_machine}'"
        )


def _manylinux(arch: str) -> tuple[str, ...]:
    """The wheel platforms of ``ARCH-manylinux_2_28`` (uv's name): glibc 2.28 and older."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux_2_{minor}_{arch}" for minor in range(16, 4, -1)]
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return (*tags, f"linux_{arch}")


def _macos_arm64() -> tuple[str, ...]:
    """The wheel platforms of ``aarch64-apple-darwin``: macOS 13.0 (uv's default) and older."""
    from packaging.tags import mac_platforms

    return tuple(mac_platforms((13, 0), "arm64"))


VENV_PLATFORMS: dict[str, VenvPlatform] = {
    p.name: p
    for p in (
        VenvPlatform(
            "linux-64",
            "x86_64-manylinux_2_28",
            "linux",
            "x86_64",
            cuda_wheels=True,
            and_cuda=True,
            os_name="posix",
            platform_system="Linux",
            wheel_platforms=_manylinux("x86_64"),
        ),
        VenvPlatform(
            "linux-aarch64",
            "aarch64-manylinux_2_28",
            "linux",
            "aarch64",
            cuda_wheels=False,
            and_cuda=False,
            os_name="posix",
            platform_system="Linux",
            wheel_platforms=_manylinux("aarch64"),
        ),
        VenvPlatform(
            "osx-arm64",
            "aarch64-apple-darwin",
            "darwin",
            "arm64",
            cuda_wheels=False,
            and_cuda=False,
            os_name="posix",
            platform_system="Darwin",
            wheel_platforms=_macos_arm64(),
        ),
        VenvPlatform(
            "win-64",
            "x86_64-pc-windows-msvc",
            "win32",
            "AMD64",
            cuda_wheels=True,
            and_cuda=False,
            os_name="nt",
            platform_system="Windows",
            wheel_platforms=("win_amd64",),
        ),
    )
}


@dataclass(frozen=True)
class VenvLockRequest:
    """What ``dlsetup lock/create TARGET --backend venv`` was asked for.

    Attributes:
        target: ``pytorch``, ``tensorflow`` or ``both``.
        variant: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        cuda: ``--cuda X.Y``, else ``None``.
        platforms: ``--platform`` values (empty: this machine's).
        all_platforms: ``--all-platforms``.
        python_version: ``X.Y`` (default: the Python running dlsetup).
        gpu_arch: ``--gpu-arch`` values.
        torch_index_url: the PyTorch index pattern (``{variant}`` is replaced) or one URL.
        index_url: the index for everything else.
        torch_version: ``--torch-version X.Y``: the PyTorch release to lock (None: chosen).
        accept_variant: ``--accept-variant``: the wheel variant the user takes where the one
            chosen is not on the sources (``cu130``; ``any``: whichever one is); None: refuse.
    """

    target: str
    variant: str = "auto"
    cuda: str | None = None
    platforms: tuple[str, ...] = ()
    all_platforms: bool = False
    python_version: str | None = None
    gpu_arch: tuple[str, ...] = ()
    torch_index_url: str | None = None
    index_url: str | None = None
    torch_version: str | None = None
    accept_variant: str | None = None


@dataclass(frozen=True)
class TorchIndexChoice:
    """The PyTorch wheel variant chosen, and why.

    Attributes:
        variant: ``cpu``, ``cu126``, ``cu130``, ...
        release: the PyTorch release pinned (``2.14``).
        reason: why, in one line (the hardware, then the recommendation's note).
        passed_over: each newer variant of the release left out, and why.
        pick: the recommendation (``None`` for cpu).
        release_note: why this release, where the data alone does not say it (the newest
            release known has no CUDA facts; ``--torch-version`` newer than the data); empty
            otherwise.
    """

    variant: str
    release: str
    reason: str
    passed_over: tuple[str, ...] = ()
    pick: TorchPick | None = None
    release_note: str = ""


@dataclass(frozen=True)
class PlatformLock:
    """One platform's resolution.

    Attributes:
        platform: the platform.
        torch_index: the PyTorch index searched (empty without PyTorch).
        requirements: what was resolved.
        packages: ``(name, version)`` resolved.
        resolve_ms: uv's wall time, milliseconds.
        build: the PyTorch build resolved, read from the resolution (None without PyTorch).
        expected_variant: the wheel variant planned here (``cpu`` where PyTorch publishes no
            CUDA wheels); empty without PyTorch.
        download_bytes: the wheels' size, bytes (None: not known).
        origins: ``(name, source)`` of each package: the index or directory it comes from.
    """

    platform: VenvPlatform
    torch_index: str
    requirements: tuple[str, ...]
    packages: tuple[tuple[str, str], ...]
    resolve_ms: float
    build: ResolvedBuild | None = None
    expected_variant: str = ""
    download_bytes: int | None = None
    origins: tuple[tuple[str, str], ...] = ()

    @property
    def variant_differs(self) -> bool:
        """The build resolved is not the variant planned (a cpu plan holding CUDA libraries)."""
        from dlsetup.envs.venv.resolved import fits_label

        return self.build is not None and not fits_label(self.build, self.expected_variant)

    def origin_groups(self) -> list[tuple[str, str]]:
        """``(source, "torch, torchvision, ...")``: where each package comes from."""
        return origin_groups(self)


@dataclass(frozen=True)
class VenvLockResult:
    """A venv lock written.

    Attributes:
        name: ``pytorch-cu126``.
        target: the target.
        choice: the hardware choice (cpu/cuda/mps, the driver's CUDA, the GPUs).
        torch: the PyTorch variant and release.
        tensorflow: the TensorFlow requirement on a CUDA platform and why, if any.
        python: the Python version locked for.
        index_url: the default index.
        lock_path: the ``pylock.NAME.toml`` written.
        platforms: per platform.
        request: what was asked for (recorded in the lock so ``lock --check`` can replay it).
        companion_notes: a companion left out, and why (torchaudio where no release matching
            the torch release is on the sources).
        accepted_variant: the variant locked in place of the planned one (``--accept-variant``),
            else None.
        sources: each source searched and where it was configured, and the fallback taken
            when PyTorch's index was out of reach (:mod:`dlsetup.envs.reachability`).
    """

    name: str
    target: str
    choice: VariantChoice
    torch: TorchIndexChoice | None
    tensorflow: tuple[str, str] | None
    python: str
    index_url: str
    lock_path: Path
    platforms: tuple[PlatformLock, ...] = field(default_factory=tuple)
    request: VenvLockRequest | None = None
    companion_notes: tuple[str, ...] = ()
    accepted_variant: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def torch_variant(self) -> str | None:
        """The wheel variant the lock holds: the accepted one, else the planned one."""
        if self.torch is None:
            return None
        return self.accepted_variant or self.torch.variant

    def accepted_lines(self) -> list[str]:
        """The lines on a variant taken in place of the planned one (empty: none was)."""
        return accepted_lines(self)


def request_table(request: VenvLockRequest) -> dict[str, Any]:
    """``[tool.dlsetup] request``: the options of the lock (those given; TOML has no null)."""
    table: dict[str, Any] = {
        "target": request.target,
        "variant": request.variant,
        "platforms": list(request.platforms),
        "all_platforms": request.all_platforms,
        "gpu_arch": list(request.gpu_arch),
    }
    for key in (
        "cuda", "python_version", "torch_index_url", "index_url", "torch_version", "accept_variant",
    ):  # fmt: skip
        value = getattr(request, key)
        if value is not None:
            table[key] = value
    return table


def request_from_table(table: Mapping[str, Any]) -> VenvLockRequest:
    """The request recorded by :func:`request_table`.

    Raises:
        InputError: the table is not one dlsetup wrote.
    """

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"request.{key} is not a string", fix="lock again")
        return value

    def texts(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"request.{key} is not a list of strings", fix="lock again")
        return tuple(value)

    target, variant = text("target"), text("variant")
    if target is None or variant is None:
        raise InputError("request has no target or variant", fix="lock again")
    return VenvLockRequest(
        target=target,
        variant=variant,
        cuda=text("cuda"),
        platforms=texts("platforms"),
        all_platforms=bool(table.get("all_platforms", False)),
        python_version=text("python_version"),
        gpu_arch=texts("gpu_arch"),
        torch_index_url=text("torch_index_url"),
        index_url=text("index_url"),
        torch_version=text("torch_version"),
        accept_variant=text("accept_variant"),
    )


# --- choosing --------------------------------------------------------------------------------


def torch_index_pattern(given: str | None) -> str:
    """The PyTorch index pattern: ``given``, else the knowledge base's, else the default."""
    if given:
        return given
    try:
        from dlsetup.compat import knowledge_base

        return str(knowledge_base().torch.index_url)
    except (DlsetupError, AttributeError):
        return DEFAULT_TORCH_INDEX


def index_of(pattern: str, variant: str) -> str:
    """``pattern`` with ``{variant}`` replaced (a URL without it is used for every variant)."""
    return pattern.replace("{variant}", variant)


def _python(request: VenvLockRequest) -> str:
    if request.python_version is None:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    text = request.python_version.strip()
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InputError(
            f"--python-version {request.python_version!r} is not X.Y", fix="for example 3.11"
        )
    return text


def _newest_supporting(releases: list[str], framework: str, python: str) -> str:
    from dlsetup.compat.frameworks import python_support

    for release in reversed(releases):
        support = python_support(framework, release)
        if support is None or support.supports(python):
            return release
    raise InputError(
        f"no {framework} release in dlsetup's knowledge base supports Python {python}",
        fix="use --python-version 3.12",
    )


def _passed_over(pick: TorchPick, choice: VariantChoice) -> tuple[str, ...]:
    """Why each variant of the release newer than the pick was left out (for the header)."""
    from packaging.version import Version

    from dlsetup.compat.arch import gpu_runs_build, parse_arch_list
    from dlsetup.compat.cuda import driver_supports_cuda
    from dlsetup.compat.frameworks import torch_variants, variant_cuda

    reasons = []
    cuda = choice.cuda or "0.0"
    for variant, arch_text in sorted(
        torch_variants(pick.release).items(), key=lambda kv: Version(variant_cuda(kv[0]))
    ):
        if Version(variant_cuda(variant)) <= Version(variant_cuda(pick.variant)):
            continue
        if arch_text is None:
            reasons.append(f"{variant}: its arch list is not known")
            continue
        verdict = driver_supports_cuda(cuda, variant_cuda(variant), choice.driver_version)
        if verdict.support not in ("full", "minor_version_compat"):
            reasons.append(f"{variant}: needs CUDA {variant_cuda(variant)}, the driver has {cuda}")
            continue
        arch = parse_arch_list(arch_text)
        misfits = [g for g in choice.gpus if not gpu_runs_build(g.cc, arch).runs]
        if misfits:
            reasons.append(f"{variant}: {misfits[0].label} is not in its arch list {arch_text}")
        elif verdict.support == "minor_version_compat":
            reasons.append(
                f"{variant}: only through minor-version compatibility (CUDA "
                f"{variant_cuda(variant)} on a {cuda} driver); a fully supported one ranks first"
            )
    return tuple(reasons)


def _release_key(text: str) -> str:
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InputError(f"--torch-version {text!r} is not X.Y", fix="for example 2.14")
    return f"{int(parts[0])}.{int(parts[1])}"


def _supports(release: str, python: str) -> bool:
    from dlsetup.compat.frameworks import python_support

    support = python_support("torch", release)
    return support is None or support.supports(python)


def _rules_release(python: str) -> str | None:
    """The newest release whose CUDA builds' arch lists are known and that supports ``python``."""
    from packaging.version import Version

    from dlsetup.compat.frameworks import torch_releases, torch_variant_facts

    known = [r for r in torch_releases() if torch_variant_facts(r) and _supports(r, python)]
    return max(known, key=Version) if known else None


def _newest_without_facts_note(python: str, locked: str) -> str:
    """Why a lock has ``locked`` and not the newest release the data knows, when that newest
    release has no CUDA facts (torch 2.15 today); empty when there is nothing to explain."""
    from packaging.version import Version

    from dlsetup.compat.frameworks import torch_releases, torch_variant_facts

    newest = next((r for r in reversed(torch_releases()) if _supports(r, python)), None)
    rules = _rules_release(python)
    if newest is None or rules is None or torch_variant_facts(newest):
        return ""
    if Version(newest) <= Version(rules):
        return ""
    return (
        f"torch {newest} is the newest release the data knows; its CUDA builds are not in the "
        f"data yet, so a CUDA lock takes {rules}, the newest whose builds' arch lists are known"
        + ("" if locked in (newest, rules) else f" (this lock: {locked})")
    )


def _fitting_cuda_releases(choice: VariantChoice, python: str) -> list[str]:
    """The releases with a CUDA wheel that runs on ``choice``'s driver and every GPU."""
    from dlsetup.compat.frameworks import torch_releases
    from dlsetup.compat.recommend import recommend_torch

    assert choice.cuda is not None
    ccs = [g.cc for g in choice.gpus]
    return [
        r
        for r in torch_releases()
        if recommend_torch(choice.cuda, ccs, python, choice.driver_version, releases=(r,))
    ]


def _refuse_release(release: str, why: str, choices: list[str]) -> InputError:
    from dlsetup.errors import NoFittingBuildError

    listed = ", ".join(choices) if choices else "none"
    return NoFittingBuildError(
        f"--torch-version {release}: {why}",
        fix=f"choose one of: {listed} (or leave --torch-version out)",
    )


def choose_torch_index(
    choice: VariantChoice, python: str, torch_version: str | None = None
) -> TorchIndexChoice:
    """The PyTorch wheel variant and release for ``choice`` (doctor's recommendation for CUDA).

    Args:
        choice: the hardware choice.
        python: the target Python.
        torch_version: ``--torch-version X.Y``; None picks the release.

    Raises:
        NoFittingBuildError: a CUDA choice and no known wheel runs on the driver and every GPU;
            ``torch_version`` that the data shows has no build for the variant, the GPUs or the
            Python (the message lists the releases that have one).
        InputError: no release supports ``python``; ``torch_version`` not ``X.Y``.
    """
    from dlsetup.compat.frameworks import torch_releases
    from dlsetup.compat.recommend import recommend_torch
    from dlsetup.errors import NoFittingBuildError

    if torch_version is not None:
        return _choose_asked_release(choice, python, _release_key(torch_version))
    if choice.variant != "cuda" or choice.cuda is None:
        release = _newest_supporting(torch_releases(), "torch", python)
        why = "the Metal (MPS) backend is in the macOS wheel" if choice.variant == "mps" else ""
        return TorchIndexChoice(
            "cpu",
            release,
            "; ".join(r for r in (choice.reason, why) if r),
            release_note=_newest_without_facts_note(python, release),
        )
    ccs = [g.cc for g in choice.gpus]
    pick = recommend_torch(choice.cuda, ccs, python, choice.driver_version)
    if pick is None:
        from dlsetup.compat.lines import last_pypi_torch_for

        gpus = ", ".join(g.label for g in choice.gpus) or "no GPU named"
        # a GPU no current wheel has kernels for is not helped by a newer driver: name it, and
        # the newest release that still ran on it (from the data), beside the driver advice
        current = last_pypi_torch_for((9, 0), python)
        fixes = ["lock the cpu variant (--variant cpu)"]
        why = ""
        for gpu in choice.gpus:
            last = last_pypi_torch_for(gpu.cc, python)
            if last is None:
                why = f": no PyTorch wheel dlsetup knows has kernels for {gpu.label}"
            elif current is None or last[0] != current[0]:
                fixes.append(
                    f"--torch-version {last[0]} ({last[1]}), the newest release with kernels "
                    f"for {gpu.label}"
                )
        if len(fixes) == 1 and not why:
            fixes.append("update the NVIDIA driver")
        raise NoFittingBuildError(
            f"no PyTorch CUDA wheel known to dlsetup runs on CUDA {choice.cuda} with {gpus}{why}",
            fix="; or ".join(fixes),
        )
    unchecked = "" if ccs else "; no GPU known (--gpu-arch names them): no arch list was checked"
    return TorchIndexChoice(
        pick.variant,
        pick.release,
        f"{choice.reason}; {pick.note}{unchecked}",
        _passed_over(pick, choice),
        pick,
        release_note=_newest_without_facts_note(python, pick.release),
    )


def _unverified_older(choice: VariantChoice, python: str, release: str) -> TorchIndexChoice:
    """An older release whose CUDA wheels the data names without their arch lists: the newest
    variant the driver runs, the GPUs not checked (said so); refused when none runs."""
    from packaging.version import Version

    from dlsetup.compat.cuda import driver_supports_cuda
    from dlsetup.compat.frameworks import torch_variants, variant_cuda

    assert choice.cuda is not None
    support = {
        v: driver_supports_cuda(choice.cuda, variant_cuda(v), choice.driver_version).support
        for v in torch_variants(release)
    }
    runs = [v for v, s in support.items() if s in ("full", "minor_version_compat")]
    if not runs:
        listed = ", ".join(torch_variants(release)) or "none"
        raise _refuse_release(
            release,
            f"dlsetup's data lists no CUDA wheel of PyTorch {release} that runs on CUDA "
            f"{choice.cuda} (its variants: {listed})",
            _fitting_cuda_releases(choice, python),
        )
    # full driver support first: under minor-version compatibility PTX cannot be JIT-compiled,
    # and whether these wheels reach the GPUs through SASS is not known
    variant = max(runs, key=lambda v: (support[v] == "full", Version(variant_cuda(v))))
    return TorchIndexChoice(
        variant,
        release,
        f"{choice.reason}; PyTorch {release} has a wheel built for CUDA {variant_cuda(variant)}",
        (),
        None,
        release_note=(
            f"--torch-version {release}; the arch lists of {release}'s CUDA wheels are not in "
            "dlsetup's data: the GPUs were not checked against them (dlsetup doctor reads the "
            "list from the installed build)"
        ),
    )


def _choose_asked_release(choice: VariantChoice, python: str, release: str) -> TorchIndexChoice:
    """``--torch-version``: the release asked for, refused where the data shows it cannot be."""
    from packaging.version import Version

    from dlsetup.compat.frameworks import (
        newer_than_data,
        python_support,
        torch_releases,
        torch_variant_facts,
    )
    from dlsetup.compat.recommend import recommend_torch

    known = torch_releases()
    supporting = [r for r in known if _supports(r, python)]
    newer = newer_than_data("torch", release)
    if release not in known and newer is None:
        raise _refuse_release(release, "dlsetup's data knows no such PyTorch release", supporting)
    support = python_support("torch", release)
    if support is not None and not support.supports(python):
        raise _refuse_release(
            release,
            f"PyTorch {release} supports Python {support.minimum}-{support.maximum}, not {python}",
            supporting,
        )
    notes: list[str] = []
    if newer is not None:
        notes.append(
            f"{newer.note}; its Python range is not checked, and uv finds whether the index has it"
        )
    cuda = choice.variant == "cuda" and choice.cuda is not None
    if cuda and release in known and torch_variant_facts(release):
        assert choice.cuda is not None
        ccs = [g.cc for g in choice.gpus]
        pick = recommend_torch(choice.cuda, ccs, python, choice.driver_version, releases=(release,))
        if pick is None:
            gpus = ", ".join(g.label for g in choice.gpus) or "no GPU named"
            raise _refuse_release(
                release,
                f"no CUDA wheel of PyTorch {release} in dlsetup's data runs on CUDA {choice.cuda} "
                f"with {gpus}",
                _fitting_cuda_releases(choice, python),
            )
        unchecked = (
            "" if ccs else "; no GPU known (--gpu-arch names them): no arch list was checked"
        )
        return TorchIndexChoice(
            pick.variant,
            release,
            f"{choice.reason}; {pick.note}{unchecked}",
            _passed_over(pick, choice),
            pick,
            release_note=f"--torch-version {release}",
        )
    if (
        cuda
        and release in known
        and (rules_of := _rules_release(python)) is not None
        and (Version(release) < Version(rules_of))
    ):
        assert choice.cuda is not None
        return _unverified_older(choice, python, release)
    if cuda:
        assert choice.cuda is not None
        rules = _rules_release(python)
        ccs = [g.cc for g in choice.gpus]
        pick = (
            None
            if rules is None
            else recommend_torch(choice.cuda, ccs, python, choice.driver_version, releases=(rules,))
        )
        if pick is None:
            raise _refuse_release(
                release,
                f"its CUDA builds are not in dlsetup's data, and by the rules of "
                f"{rules or 'no known release'} no CUDA wheel runs on CUDA {choice.cuda} with "
                f"{', '.join(g.label for g in choice.gpus) or 'no GPU named'}",
                _fitting_cuda_releases(choice, python),
            )
        notes.append(
            f"PyTorch {release}'s CUDA builds are not in dlsetup's data: wheel variant "
            f"{pick.variant} is chosen by the rules of {pick.release} (whose arch list every GPU "
            f"runs); {release}'s own arch list is not checked: dlsetup doctor reads it from the "
            "installed build"
        )
        return TorchIndexChoice(
            pick.variant,
            release,
            f"{choice.reason}; {pick.note}",
            (),
            pick,
            release_note=f"--torch-version {release}; " + "; ".join(notes),
        )
    why = "the Metal (MPS) backend is in the macOS wheel" if choice.variant == "mps" else ""
    if release in known and Version(release) < Version(known[-1]) and not notes:
        notes.append(f"newest known: {known[-1]}")
    return TorchIndexChoice(
        "cpu",
        release,
        "; ".join(r for r in (choice.reason, why) if r),
        release_note="; ".join([f"--torch-version {release}", *notes]),
    )


def _tensorflow_cuda(choice: VariantChoice, python: str) -> tuple[str, str] | None:
    from dlsetup.compat.recommend import recommend_tensorflow

    if choice.variant != "cuda" or choice.cuda is None:
        return None
    pick = recommend_tensorflow(choice.cuda, python, choice.driver_version)
    return None if pick is None else (pick.requirement, pick.note)


def companion_pins(release: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The companions locked beside torch ``release`` (``torchvision==0.29.*``) from the
    knowledge base's pairs, and a note for each companion no release goes with."""
    from dlsetup.compat.companions import COMPANIONS, companion_release

    pins: list[str] = []
    notes: list[str] = []
    for companion in COMPANIONS:
        pair = companion_release(companion, release)
        if pair is None:
            notes.append(
                f"{companion} left out: no {companion} release is known to go with torch {release}"
            )
        else:
            pins.append(f"{companion}=={pair.pin}")
    return tuple(pins), tuple(notes)


def requirements_for(
    target: str,
    platform: VenvPlatform,
    torch: TorchIndexChoice | None,
    tensorflow_cuda: tuple[str, str] | None,
    tf_release: str | None,
    *,
    without: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """The requirements resolved for ``target`` on ``platform``: torch with its companions of
    the same release pairing (``without`` names companions left out), TensorFlow, numpy and
    ipykernel."""
    reqs: list[str] = []
    if torch is not None:
        reqs.append(f"torch=={torch.release}.*")
        pins, _ = companion_pins(torch.release)
        reqs += [p for p in pins if p.partition("==")[0] not in without]
    if target in ("tensorflow", "both"):
        if tensorflow_cuda is not None and platform.and_cuda:
            reqs.append(tensorflow_cuda[0])
        elif tf_release is not None:
            reqs.append(f"tensorflow=={tf_release}.*")
    return (*reqs, "numpy", "ipykernel")


def _platforms(request: VenvLockRequest) -> tuple[VenvPlatform, ...]:
    from dlsetup.envs.location import host_platform

    if request.all_platforms:
        return tuple(VENV_PLATFORMS.values())
    names = request.platforms or (host_platform(),)
    unknown = [n for n in names if n not in VENV_PLATFORMS]
    if unknown:
        raise InputError(
            f"--backend venv has no platform {', '.join(unknown)}",
            fix=f"use one of {', '.join(VENV_PLATFORMS)}",
        )
    return tuple(VENV_PLATFORMS[n] for n in dict.fromkeys(names))


def lock_name(target: str, torch: TorchIndexChoice | None, cuda_tf: bool) -> str:
    """``pytorch-cu126``, ``tensorflow-cuda``, ``both-cpu``."""
    if torch is not None:
        return f"{target}-{torch.variant}"
    return f"{target}-{'cuda' if cuda_tf else 'cpu'}"


def lock_file_name(name: str) -> str:
    """PEP 751's ``pylock.NAME.toml`` (no dots in NAME)."""
    return f"pylock.{name.replace('.', '-')}.toml"


def name_of_lock(path: Path) -> str:
    """The environment name of a venv lock: its ``[tool.dlsetup] name``, else from the file name."""
    from dlsetup.envs.venv.pylock import parse_pylock

    tool = parse_pylock(path).tool
    if isinstance(tool.get("name"), str):
        return str(tool["name"])
    middle = path.name.removeprefix("pylock").removesuffix(".toml").strip(".")
    return middle or "venv"


# --- resolving -------------------------------------------------------------------------------


def _resolve(
    reqs: tuple[str, ...],
    platform: VenvPlatform,
    python: str,
    *,
    torch_index: str,
    index_url: str,
    workdir: Path,
    cache_dir: Path | None = None,
    extra: tuple[str, ...] = (),
    find_links: tuple[str, ...] = (),
    first_index: bool = False,
) -> tuple[dict[str, Any], float]:
    """uv's resolution of ``reqs`` for ``platform``, and its wall time (ms); ``first_index``: each
    package only from the first index that lists it (uv's default), even with configured
    extra indexes."""
    from dlsetup.envs.venv.pylock import load_toml

    source = workdir / f"{platform.name}.in"
    source.write_text("\n".join(reqs) + "\n", encoding="utf-8")
    out = workdir / f"pylock.{platform.name}.toml"
    args = [
        "pip", "compile", str(source), "--format", "pylock.toml", "--generate-hashes",
        "--python-version", python, "--python-platform", platform.python_platform,
        "--only-binary", ":all:", "--no-header", "--quiet", "-o", str(out),
    ]  # fmt: skip
    # torch's index first, then the configured ones; credentials in a private config file
    args += index_args(index_url, [torch_index, *extra], find_links, workdir=workdir)
    if (extra or find_links) and not first_index:
        # pip, whose settings these are, takes a package from any of its indexes; uv's default
        # takes it only from the first that lists it, so a mirror holding one package without a
        # wheel for the platform (debugpy for manylinux_2_34 only) failed the whole lock. Each
        # index is still exhausted in order (torch's first): a build of another variant taken
        # from a later one is caught by the label check (dlsetup.envs.venv.resolved)
        args += ["--index-strategy", "unsafe-first-match"]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    start = time.perf_counter()
    run_uv_step(args, "resolve")
    seconds = time.perf_counter() - start
    return load_toml(out.read_text(encoding="utf-8")), seconds * 1000


@dataclass(frozen=True)
class VenvPlan:
    """What a venv lock of ``request`` takes, before anything is resolved.

    Attributes:
        python: the Python version.
        platforms: the platforms.
        choice: the hardware choice.
        torch: the PyTorch variant and release (None without PyTorch).
        tensorflow: ``tensorflow[and-cuda]`` and why, on a CUDA choice.
        tf_release: the TensorFlow release pinned elsewhere.
        name: the lock's name.
    """

    python: str
    platforms: tuple[VenvPlatform, ...]
    choice: VariantChoice
    torch: TorchIndexChoice | None
    tensorflow: tuple[str, str] | None
    tf_release: str | None
    name: str


def plan_venv(request: VenvLockRequest, probe: Callable[[], NvidiaFacts] | None = None) -> VenvPlan:
    """Choose the variant, the PyTorch index and release, TensorFlow's requirement and the name.

    Args:
        request: what to lock.
        probe: this machine's NVIDIA facts (default: NVML); called only when needed.

    Raises:
        InputError: a bad option, an unknown platform, an impossible combination.
        NoFittingBuildError: no PyTorch wheel runs on the driver and every GPU.
    """
    from dlsetup.compat.frameworks import tf_releases
    from dlsetup.envs.variant import choose_variant

    if request.target not in TARGETS:
        raise InputError(
            f"--backend venv locks {', '.join(TARGETS)}, not {request.target!r}",
            fix="an environment .yml file is a conda environment: use --backend conda",
        )
    python = _python(request)
    platforms = _platforms(request)
    has_torch = request.target in ("pytorch", "both")
    choice = choose_variant(
        request.variant,
        cuda=request.cuda,
        platforms=tuple(p.name for p in platforms),
        has_variant=lambda v: v == "cuda" or (v == "mps" and has_torch),
        gpu_arch=request.gpu_arch,
        **({} if probe is None else {"probe": probe}),
    )
    if request.torch_version is not None and not has_torch:
        raise InputError(
            f"--torch-version applies to pytorch and both, not {request.target}",
            fix="drop --torch-version",
        )
    torch = choose_torch_index(choice, python, request.torch_version) if has_torch else None
    tf_cuda = _tensorflow_cuda(choice, python) if request.target != "pytorch" else None
    tf_release = (
        _newest_supporting(tf_releases(), "tensorflow", python)
        if request.target != "pytorch"
        else None
    )
    name = lock_name(request.target, torch, tf_cuda is not None)
    return VenvPlan(python, platforms, choice, torch, tf_cuda, tf_release, name)


@dataclass(frozen=True)
class _Sources:
    """Where one lock resolves from, and uv's working directory and cache."""

    index_url: str
    python: str
    workdir: Path
    cache: Path | None
    #: the configured extra indexes and find-links that answered (:mod:`dlsetup.envs.sources`)
    indexes: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def resolve(
        self,
        reqs: tuple[str, ...],
        platform: VenvPlatform,
        torch_index: str,
        *,
        first_index: bool = False,
    ) -> tuple[dict[str, Any], float]:
        """uv's resolution of ``reqs`` for ``platform`` from these sources (:func:`_resolve`)."""
        return _resolve(
            reqs,
            platform,
            self.python,
            torch_index=torch_index,
            index_url=self.index_url,
            extra=self.indexes,
            find_links=self.find_links,
            workdir=self.workdir,
            cache_dir=self.cache,
            first_index=first_index,
        )


def _lock_platform(
    plan: VenvPlan,
    request: VenvLockRequest,
    platform: VenvPlatform,
    torch_index: str,
    sources: _Sources,
    without: tuple[str, ...] = (),
) -> tuple[dict[str, Any], PlatformLock]:
    """Resolve one platform and read what was resolved (nothing is downloaded)."""
    from dlsetup.envs.venv.resolved import download_bytes, origins, resolved_build

    reqs = requirements_for(
        request.target, platform, plan.torch, plan.tensorflow, plan.tf_release, without=without
    )
    resolved, ms = sources.resolve(reqs, platform, torch_index)
    listed = resolved.get("packages", [])
    packages = tuple((str(p["name"]), str(p.get("version", ""))) for p in listed)
    build = resolved_build(dict(packages)) if plan.torch is not None else None
    expected = ""
    if plan.torch is not None:
        expected = plan.torch.variant if platform.cuda_wheels else "cpu"
    locked = PlatformLock(
        platform,
        strip_auth(torch_index),
        reqs,
        packages,
        ms,
        build,
        expected,
        download_bytes(listed),
        origins(
            listed,
            [u for u in (torch_index, sources.index_url, *sources.indexes) if u],
        ),
    )
    return resolved, locked


def _companion_problem(locked: PlatformLock, companion: str) -> str | None:
    if locked.build is None:
        return None
    return next((p for p in locked.build.problems if p.startswith(f"{companion} ")), None)


def _lock_with_companions(
    plan: VenvPlan,
    request: VenvLockRequest,
    platform: VenvPlatform,
    torch_index: str,
    sources: _Sources,
) -> tuple[dict[str, Any], PlatformLock, str | None]:
    """Resolve torch with its companions: torchaudio is left out (and said) where the sources
    hold no torchaudio that goes with torch; torchvision must go with it, or nothing is locked.

    Returns:
        The resolution, what it holds, and the note on torchaudio when it was left out.

    Raises:
        NoFittingBuildError: the torchvision resolved does not go with torch (another variant,
            another release), with what would match on these sources.
        SolveError: no resolution, with torchvision's part of it named where that is the cause.
    """
    assert plan.torch is not None
    release = plan.torch.release
    note: str | None = None
    try:
        resolved, locked = _lock_platform(plan, request, platform, torch_index, sources)
        problem = _companion_problem(locked, "torchaudio")
    except SolveError as error:
        problem = f"uv finds no torchaudio on the sources that installs beside torch {release}"
        first_error: SolveError | None = error
    else:
        first_error = None
    if problem is not None:
        note = f"torchaudio left out on {platform.name}: {problem}"
        try:
            resolved, locked = _lock_platform(
                plan, request, platform, torch_index, sources, without=("torchaudio",)
            )
        except SolveError as second:
            from dlsetup.compat.companions import COMPANIONS

            try:  # torch alone: where it fails too, uv's message about torch is the one to read
                _lock_platform(plan, request, platform, torch_index, sources, without=COMPANIONS)
            except SolveError:
                raise second from first_error
            raise _torchvision_unmatched(plan, request, platform, torch_index, sources) from second
    vision = _companion_problem(locked, "torchvision")
    if vision is not None:
        raise _torchvision_unmatched(plan, request, platform, torch_index, sources, vision)
    return resolved, locked, note


def _torchvision_unmatched(
    plan: VenvPlan,
    request: VenvLockRequest,
    platform: VenvPlatform,
    torch_index: str,
    sources: _Sources,
    problem: str | None = None,
) -> DlsetupError:
    """The error for a torch release whose torchvision is not on the sources: what is there
    instead (torch alone resolved), and a torch/torchvision pair that would match (resolved
    without the release pin), if any."""
    from dlsetup.errors import NoFittingBuildError

    assert plan.torch is not None
    release, variant = plan.torch.release, plan.torch.variant
    where = ", ".join(u for u in (strip_auth(torch_index), strip_auth(sources.index_url)) if u)
    why = problem or (
        f"no torchvision on the sources ({where}) installs beside torch {release} "
        f"({variant if platform.cuda_wheels else 'cpu'})"
    )
    match = _would_match(plan, request, platform, torch_index, sources)
    fix = (
        f"{match}; or name an index that has both (--torch-index-url, a mirror of "
        f"{DEFAULT_TORCH_INDEX})"
    )
    return NoFittingBuildError(
        f"{platform.name}: torch and torchvision do not pair on these sources: {why}; nothing "
        "was downloaded",
        fix=fix,
    )


def _would_match(
    plan: VenvPlan,
    request: VenvLockRequest,
    platform: VenvPlatform,
    torch_index: str,
    sources: _Sources,
) -> str:
    """A torch and torchvision pair that goes together (torch up to the planned release, the
    companion of its variant and release), on these sources, else on the default index alone;
    in words, with the options that lock it."""
    for index, alone in ((torch_index, False), (sources.index_url, True)):
        found = _pair_on(plan, platform, index, sources)
        if found is not None:
            where = f"on {strip_auth(index)} alone" if alone else "there"
            options = f" --torch-index-url {strip_auth(index)}" if alone else ""
            return f"{found[0]} go together {where}: --torch-version {found[1]}{options}{found[2]}"
    return "no pair of torch and torchvision that goes together was found on them"


def _pair_on(
    plan: VenvPlan, platform: VenvPlatform, torch_index: str, sources: _Sources
) -> tuple[str, str, str] | None:
    """``(what, release, " --accept-variant X" or "")`` of a pair resolved from ``torch_index``
    first, or None."""
    from packaging.version import Version

    from dlsetup.envs.venv.resolved import fits_label, resolved_build

    assert plan.torch is not None
    ceiling = Version(plan.torch.release)
    reqs = (f"torch<{ceiling.major}.{ceiling.minor + 1}", "torchvision")
    expected = plan.torch.variant if platform.cuda_wheels else "cpu"
    try:
        resolved, _ = sources.resolve(reqs, platform, torch_index, first_index=True)
    except SolveError:
        return None
    versions = {str(p["name"]): str(p.get("version", "")) for p in resolved.get("packages", [])}
    build = resolved_build(versions)
    if build is None or build.problems or "torchvision" not in versions:
        return None
    torch = Version(build.torch_version)
    accept = "" if fits_label(build, expected) else f" --accept-variant {build.variant}"
    what = f"torch {build.torch_version} and torchvision {versions['torchvision']} ({build.describe()})"
    return what, f"{torch.major}.{torch.minor}", accept


def variant_to_lock(request: VenvLockRequest, platforms: tuple[PlatformLock, ...]) -> str | None:
    """The variant locked in place of the planned one where the sources hold only another one:
    the one ``--accept-variant`` names (or ``any``); None when every platform holds the plan.

    Raises:
        NoFittingBuildError: another variant was resolved and not accepted, naming it, its
            download size when over 1 GB, and the option that accepts it.
    """
    from dlsetup.envs.venv.resolved import LARGE_DOWNLOAD, human_size
    from dlsetup.errors import NoFittingBuildError

    differing = [p for p in platforms if p.variant_differs]
    if not differing:
        return None
    first = differing[0]
    assert first.build is not None
    found = first.build.variant
    if request.accept_variant in ("any", found) and all(
        p.build is not None and p.build.variant == found for p in differing
    ):
        return found
    size = first.download_bytes
    weight = f"; up to {human_size(size)} of wheels" if size and size > LARGE_DOWNLOAD else ""
    asked = (
        f" (--accept-variant {request.accept_variant} names another)"
        if request.accept_variant
        else ""
    )
    came = dict(first.origins).get("torch", first.torch_index or "the default index")
    raise NoFittingBuildError(
        f"{first.platform.name}: the {first.expected_variant} build of PyTorch is not on the "
        f"sources; they have {first.build.describe()}, from {came}{weight}{asked}; nothing was "
        "downloaded",
        fix=f"lock it, labelled {found}: --accept-variant {found}; or name an index with "
        f"{first.expected_variant} builds: --torch-index-url (a mirror of "
        f"{DEFAULT_TORCH_INDEX})",
    )


def _routes(request: VenvLockRequest, plan: VenvPlan, pattern: str) -> VenvSources:
    """Every source of this lock, probed once with a short timeout before anything is resolved
    (:func:`dlsetup.envs.reachability.plan_venv_sources`): PyTorch's index per variant, the
    sources configured for pip and uv (unless ``--index-url`` is given), the default index."""
    from dlsetup.envs.reachability import plan_venv_sources, pypi_torch_misfit

    variants: set[str] = set()
    if plan.torch is not None:
        variants = {plan.torch.variant if p.cuda_wheels else "cpu" for p in plan.platforms}
    return plan_venv_sources(
        index_url=request.index_url,
        torch_indexes={v: index_of(pattern, v) for v in sorted(variants)},
        torch_given=request.torch_index_url is not None,
        pypi_misfit=pypi_torch_misfit(plan.choice, plan.torch.release) if plan.torch else None,
    )


def _resolve_on_sources(
    plan: VenvPlan, request: VenvLockRequest, routes: VenvSources, sources: _Sources
) -> tuple[VenvPlan, list[tuple[str, Mapping[str, Any]]], list[PlatformLock], list[str]]:
    """Resolve every platform: with a mirror the user configured, torch's release is the newest
    the first source listing torch has (where older than the one chosen), read from it, not
    downloaded; a release uv cannot resolve there is tried once more at the older one."""
    if sources.indexes or sources.find_links:
        plan = _release_on_sources(plan, request, routes, sources) or plan
    try:
        return (plan, *_resolve_platforms(plan, request, routes, sources))
    except SolveError:
        older = _release_on_sources(plan, request, routes, sources)
        if older is None:
            raise
        return (older, *_resolve_platforms(older, request, routes, sources))


def _resolve_platforms(
    plan: VenvPlan, request: VenvLockRequest, routes: VenvSources, sources: _Sources
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[PlatformLock], list[str]]:
    """Resolve every platform of ``plan``: (marker and resolution, what each holds, notes)."""
    parts: list[tuple[str, Mapping[str, Any]]] = []
    results: list[PlatformLock] = []
    notes: list[str] = []
    for platform in plan.platforms:
        if plan.torch is None:
            resolved, locked = _lock_platform(plan, request, platform, "", sources)
        else:
            variant = plan.torch.variant if platform.cuda_wheels else "cpu"
            resolved, locked, note = _lock_with_companions(
                plan, request, platform, routes.torch_index(variant), sources
            )
            notes += [note] if note else []
        parts.append((platform.marker, resolved))
        results.append(locked)
    return parts, results, notes


def _release_on_sources(
    plan: VenvPlan, request: VenvLockRequest, routes: VenvSources, sources: _Sources
) -> VenvPlan | None:
    """Where the release dlsetup chose (not ``--torch-version``) is not on the sources: the plan
    for the newest older release they hold with a torchvision that goes with it, checked
    against the hardware as ``--torch-version`` would be and said in the release note; None
    where there is none, or it needs another variant."""
    if plan.torch is None or request.torch_version is not None:
        return None
    platform = plan.platforms[0]
    variant = plan.torch.variant if platform.cuda_wheels else "cpu"
    found = _pair_on(plan, platform, routes.torch_index(variant), sources)
    if found is None or found[1] == plan.torch.release:
        return None
    try:
        older = choose_torch_index(plan.choice, plan.python, found[1])
    except DlsetupError:
        return None
    if older.variant != plan.torch.variant:
        return None
    note = (
        f"torch {plan.torch.release} (chosen for this machine) is not on the sources; "
        f"{found[1]} is the newest release there with a torchvision that goes with it"
    )
    return dataclasses.replace(plan, torch=dataclasses.replace(older, release_note=note))


def lock_venv(request: VenvLockRequest, output: Path, *, force: bool) -> VenvLockResult:
    """Choose the PyTorch index for this machine (or the one described), resolve, check what was
    resolved against the plan, write the lock.

    Args:
        request: what to lock.
        output: the directory for ``pylock.NAME.toml``.
        force: replace an existing lock file.

    Raises:
        InputError: a bad option, an unknown platform, an impossible combination.
        NoFittingBuildError: no PyTorch wheel runs on the driver and every GPU; the sources
            hold only another variant (not accepted) or no torchvision that goes with torch.
        ExistsError: the lock exists and ``force`` is false.
        SolveError: uv could not resolve.
        MissingToolError: no uv.
    """
    from dlsetup.envs.venv.pylock import merge_locks, write_pylock
    from dlsetup.errors import ExistsError

    plan = plan_venv(request)
    lock_path = output / lock_file_name(plan.name)
    if lock_path.exists() and not force:
        raise ExistsError(f"{lock_path} exists", fix="pass --force to replace it")
    pattern = torch_index_pattern(request.torch_index_url)
    routes = _routes(request, plan, pattern)  # every source probed once; the fallback stated
    index_url = routes.default_index.url
    # credentials: ${VAR} filled in for uv only, a private uv cache; files and output get none
    with (
        tempfile.TemporaryDirectory(prefix="dlsetup-venv-lock-") as tmp,
        uv_cache((pattern, *routes.urls())) as cache,
    ):
        sources = _Sources(
            index_url,
            plan.python,
            Path(tmp),
            cache,
            tuple(s.url for s in routes.indexes),
            tuple(s.url for s in routes.find_links),
        )
        try:
            plan, parts, results, notes = _resolve_on_sources(plan, request, routes, sources)
        except SolveError as exc:
            raise routes.explain_failure(exc) from exc
    accepted = variant_to_lock(request, tuple(results))
    name = plan.name if accepted is None else f"{request.target}-{accepted}"
    if accepted is not None:
        lock_path = output / lock_file_name(name)
        if lock_path.exists() and not force:
            raise ExistsError(f"{lock_path} exists", fix="pass --force to replace it")
    result = VenvLockResult(
        name=name,
        target=request.target,
        choice=plan.choice,
        torch=plan.torch,
        tensorflow=plan.tensorflow,
        python=plan.python,
        index_url=strip_auth(index_url),
        lock_path=lock_path,
        platforms=tuple(results),
        request=dataclasses.replace(
            request,
            torch_index_url=request.torch_index_url and strip_auth(request.torch_index_url),
            index_url=request.index_url and strip_auth(request.index_url),
        ),
        companion_notes=tuple(notes),
        accepted_variant=accepted,
        sources=tuple(routes.lines()),
    )
    output.mkdir(parents=True, exist_ok=True)
    write_pylock(lock_path, merge_locks(parts, tool_table(result)), header_lines(result))
    return result


def tool_table(result: VenvLockResult) -> dict[str, Any]:
    """The lock's ``[tool.dlsetup]`` table: what was chosen and why."""
    choice = result.choice
    table: dict[str, Any] = {
        "name": result.name,
        "target": result.target,
        "backend": "venv",
        "variant": choice.variant,
        "variant_reason": variant_reason(result),
        "python": result.python,
        "platforms": [p.platform.name for p in result.platforms],
        "index_url": result.index_url,
        "torch_index": {p.platform.name: p.torch_index for p in result.platforms if p.torch_index},
        "gpu_source": choice.gpu_source,
        "gpus": [f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in choice.gpus],
        "sources": list(result.sources),
    }
    if choice.cuda:
        table["cuda"] = choice.cuda
    if result.torch is not None:
        table["torch_variant"] = result.torch_variant
        if result.accepted_variant is not None:
            table["planned_variant"] = result.torch.variant
        table["torch_release"] = result.torch.release
        table["companion_notes"] = list(result.companion_notes)
        table["builds"] = {
            p.platform.name: p.build.describe() for p in result.platforms if p.build is not None
        }
        table["passed_over"] = list(result.torch.passed_over)
        if result.torch.release_note:
            table["torch_release_note"] = result.torch.release_note
    if result.tensorflow is not None:
        table["tensorflow"] = result.tensorflow[0]
    if result.request is not None:
        table["request"] = request_table(result.request)
    return table


def variant_reason(result: VenvLockResult) -> str:
    """Why this build, in one line (PyTorch's reason, else TensorFlow's, else the hardware's)."""
    if result.torch is not None:
        return result.torch.reason
    if result.tensorflow is not None:
        return f"{result.choice.reason}; {result.tensorflow[1]}"
    return result.choice.reason


def header_lines(result: VenvLockResult) -> list[str]:
    """The comment at the top of the lock: what, for what, and why."""
    from dlsetup import __version__

    lines = [
        f"dlsetup lock {result.target} --backend venv (dlsetup {__version__}; resolved by uv).",
        f"Python {result.python}; install: dlsetup create --from-lock {result.lock_path.name}",
        f"  (or: uv pip sync {result.lock_path.name}, pip install -r {result.lock_path.name})",
    ]
    if result.torch is not None:
        lines.append(f"PyTorch {result.torch.release}, wheel variant {result.torch_variant}.")
        lines += accepted_lines(result)
        lines.append(f"  Why: {result.torch.reason}.")
        if result.torch.release_note:
            lines.append(f"  Release: {result.torch.release_note}.")
        lines += [f"  Passed over: {why}." for why in result.torch.passed_over]
    if result.tensorflow is not None:
        lines.append(f"TensorFlow: {result.tensorflow[0]} ({result.tensorflow[1]}).")
    elif result.target != "pytorch":
        lines.append(f"TensorFlow: without CUDA ({result.choice.reason}).")
    if result.choice.gpus:
        gpus = ", ".join(f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in result.choice.gpus)
        lines.append(f"GPUs ({result.choice.gpu_source}): {gpus}")
    for p in result.platforms:
        index = f", PyTorch index {p.torch_index}" if p.torch_index else ""
        lines.append(f"{p.platform.name} ({p.platform.python_platform}){index}")
        if p.build is not None:
            lines.append(f"  Build: {p.build.describe()}.")
            if p.build.companions:
                pairs = ", ".join(f"{n} {v}" for n, v in p.build.companions)
                lines.append(f"  Companions: {pairs} (the variant and release of torch's).")
            lines += [f"  Unchecked: {why}." for why in p.build.unchecked]
        lines += [f"  From {where}: {names}" for where, names in origin_groups(p)]
    lines += [f"Companions: {note}." for note in result.companion_notes]
    lines += [f"Source: {line}." for line in result.sources]
    return lines


def plan_notes(result: VenvLockResult) -> tuple[str, ...]:
    """What ``create`` says before it builds from this lock, beside the sources: a variant taken
    in place of the planned one (with its download size over 1 GB), a companion left out."""
    from dlsetup.envs.venv.resolved import LARGE_DOWNLOAD, human_size

    notes: list[str] = []
    for p in result.platforms:
        if p.build is None or not p.variant_differs:
            continue
        came = dict(p.origins).get("torch", p.torch_index or "the default index")
        size = p.download_bytes
        weight = f"; up to {human_size(size)} of wheels" if size and size > LARGE_DOWNLOAD else ""
        notes.append(
            f"{p.platform.name}: no {p.expected_variant} build of PyTorch on the sources; "
            f"{p.build.describe()}, from {came}, is locked as {p.build.variant} "
            f"(--accept-variant){weight}"
        )
    return (*notes, *result.companion_notes)


def accepted_lines(result: VenvLockResult) -> list[str]:
    """The header's lines on a variant taken in place of the planned one (``--accept-variant``)."""
    from dlsetup.envs.venv.resolved import LARGE_DOWNLOAD, human_size

    if result.torch is None or result.accepted_variant is None:
        return []
    lines = [
        f"  Not the variant planned: {result.torch.variant} was planned; the sources hold no "
        f"such build, and {result.accepted_variant} was accepted (--accept-variant)."
    ]
    for p in result.platforms:
        if p.variant_differs and p.download_bytes and p.download_bytes > LARGE_DOWNLOAD:
            lines.append(
                f"  Download ({p.platform.name}): up to {human_size(p.download_bytes)} of wheels."
            )
    return lines


def origin_groups(locked: PlatformLock) -> list[tuple[str, str]]:
    """``(source, "torch, torchvision, ...")`` of one platform: where each package comes from."""
    groups: dict[str, list[str]] = {}
    first = ("torch", "torchvision", "torchaudio", "tensorflow")
    for name, where in sorted(
        locked.origins, key=lambda o: (o[0] not in first, first.index(o[0]) if o[0] in first else 0)
    ):
        groups.setdefault(where, []).append(name)
    out = []
    for where, names in groups.items():
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        out.append((where, shown))
    return out


def lock_for_create(request: VenvLockRequest, directory: Path) -> tuple[Path, str, str]:
    """Lock for ``dlsetup create TARGET --backend venv``: (lock path, why, environment name)."""
    result = lock_venv(request, directory, force=True)
    return result.lock_path, variant_reason(result), result.name
