"""One lock request, from options to files: pick the variant and platforms, render, lock.

This is what ``dlsetup lock`` and ``dlsetup create TARGET`` do before anything is solved:

* TARGET is a shipped target (``pytorch``, ``tensorflow``, ``both``) or the path of a user's own
  environment file (then ``target`` is recorded as ``file``);
* ``--variant auto`` is resolved by :func:`dlsetup.envs.variant.choose_variant` (with
  ``--all-platforms`` the variant is chosen for this machine, then locked wherever it exists);
* a platform where the variant does not exist is refused with the list of those where it does;
* a Python the target is not built for (TensorFlow 2.19 and 3.13) is refused with the fix;
* for a CUDA variant, the CUDA *line* of each platform is chosen from the driver and every GPU
  (:func:`dlsetup.compat.lines.choose_cuda_line`): a GPU that no build runs on (a Kepler card)
  is refused here, before anything is solved or written (:class:`NoFittingBuildError`, exit 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dlsetup.envs.conda.lock import LockResult, lock_environment
from dlsetup.envs.conda.virtual_packages import CUDA_DRIVER, CUDA_OPTION
from dlsetup.envs.credentials import redact_error
from dlsetup.envs.files import spec as spec_mod
from dlsetup.envs.files.spec import PLATFORMS, TARGETS, CompanionPlan
from dlsetup.envs.location import host_platform, known_host_platform
from dlsetup.envs.variant import VariantChoice, choose_variant
from dlsetup.errors import DlsetupError, InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dlsetup.compat.lines import LineChoice

#: conda packages of the frameworks whose CUDA line is chosen, by knowledge-base framework
FRAMEWORK_PACKAGES: dict[str, str] = {"pytorch": "pytorch", "tensorflow": "tensorflow"}


@dataclass(frozen=True)
class LockRequest:
    """What the user asked ``dlsetup lock`` for (empty ``platforms``: this machine's)."""

    target: str
    variant: str
    cuda: str | None
    platforms: tuple[str, ...]
    all_platforms: bool
    python_version: str | None
    channels: tuple[str, ...]
    engine: str
    gpu_arch: tuple[str, ...] = ()


def lock_target(
    opts: LockRequest, output: Path, *, force: bool
) -> tuple[LockResult, VariantChoice]:
    """Choose the variant and platforms, render the environment file and lock it.

    Args:
        opts: what the user asked for.
        output: directory for the three output files.
        force: replace existing output files.

    Raises:
        InputError: an impossible combination (variant not built for a platform, ...).
        ExistsError: an output file exists and ``force`` is false.
        SolveError: unsatisfiable, or the channels could not be read.
    """
    try:
        return _lock_target(opts, output, force=force)
    except DlsetupError as exc:  # a channel URL may be quoted in any message: mask credentials
        redact_error(exc)
        raise


def frameworks_in(deps: tuple[str, ...]) -> tuple[str, ...]:
    names = {spec_mod.spec_name(d) for d in deps}
    return tuple(fw for fw, pkg in FRAMEWORK_PACKAGES.items() if pkg in names)


def has_cuda_package(deps: tuple[str, ...]) -> bool:
    """Whether a user's environment file asks for anything CUDA could change."""
    for dep in deps:
        name = spec_mod.spec_name(dep)
        if name in FRAMEWORK_PACKAGES or name.startswith(("cuda", "cudnn", "nccl", "cupy")):
            return True
        if name in ("pytorch-gpu", "tensorflow-gpu", "jaxlib", "cudatoolkit"):
            return True
    return False


def _line_target(frameworks: tuple[str, ...]) -> str | None:
    if not frameworks:
        return None
    return "both" if len(frameworks) > 1 else frameworks[0]


def check_python(
    frameworks: tuple[str, ...],
    python: str | None,
    *,
    python_line: str | None = None,
    source: str | None = None,
) -> None:
    """Refuse, before any solve, a Python conda-forge builds none of ``frameworks`` for: a pin
    (``python``) it does not build, or a range (``allows``) that admits none it builds.

    Args:
        frameworks: the frameworks whose build dlsetup chooses (:func:`chosen_frameworks`).
        python: the Python ``X.Y`` pinned (``--python-version`` or the file's exact pin).
        python_line: the file's ``python`` line, when it pins nothing (a range is checked
            against the Pythons built: one must be allowed).
        source: the user's environment file (its path goes into the fix), or None.

    Raises:
        InputError: names the framework, its release, the Pythons it is built for, and the fix.
    """
    allows = spec_mod.python_allows(python_line) if python is None and python_line else None
    if not frameworks or (python is None and allows is None):
        return
    from dlsetup.compat import knowledge_base

    kb = knowledge_base()
    for name in frameworks:
        fw = kb.conda_forge.frameworks.get(name)
        if fw is None:
            continue
        if python is not None and python not in fw.python:
            fix = f"use --python-version {fw.python[-1]} (or drop {fw.package})"
            if source is not None:
                fix = (
                    f"change the python line of {source} to one of {', '.join(fw.python)} (or "
                    f"--python-version {fw.python[-1]}), or pin the {fw.package} release you "
                    "need in the file: the solver then decides"
                )
            raise InputError(
                f"conda-forge builds {fw.package} {fw.release} for Python {', '.join(fw.python)}, "
                f"not {python}",
                fix=fix,
            )
        if allows is not None and not any(allows(v) for v in fw.python):
            where = f"the python line of {source}" if source is not None else "the python line"
            raise InputError(
                f"conda-forge builds {fw.package} {fw.release} for Python {', '.join(fw.python)}, "
                f"none of which {python_line} allows",
                fix=f"widen {where} to allow one of {', '.join(fw.python)}, or pin the "
                f"{fw.package} release you need in the file: the solver then decides",
            )


def _host_glibc() -> str | None:
    """This machine's glibc ``X.Y`` (``CONDA_OVERRIDE_GLIBC`` wins, as for the solve)."""
    override = os.environ.get("CONDA_OVERRIDE_GLIBC")
    if override:
        return override
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    version = text.rpartition(" ")[2]
    return version if version[:1].isdigit() else None


def choose_lines(
    frameworks: tuple[str, ...],
    platforms: tuple[str, ...],
    choice: VariantChoice,
    *,
    python: str | None,
) -> dict[str, LineChoice]:
    """The CUDA line of each platform for ``frameworks`` (empty: nothing to choose).

    Raises:
        NoFittingBuildError: a GPU no build runs on, or a driver/glibc too old for every line.
        InputError: a Python the frameworks are not built for.
    """
    target = _line_target(frameworks)
    if target is None or choice.variant != "cuda" or choice.cuda is None:
        return {}
    from dlsetup.compat.lines import choose_cuda_line

    host = known_host_platform()
    return {
        p: choose_cuda_line(
            target,
            p,
            choice.cuda,
            choice.gpus,
            driver_version=choice.driver_version,
            glibc=_host_glibc() if p == host and p.startswith("linux") else None,
            python=python,
        )
        for p in platforms
    }


def _lock_target(
    opts: LockRequest, output: Path, *, force: bool
) -> tuple[LockResult, VariantChoice]:
    host = known_host_platform()  # None where the platform table has no row for this machine
    custom = opts.target not in TARGETS
    if opts.python_version is not None:
        spec_mod.validate_python_version(opts.python_version)
    if opts.all_platforms and opts.platforms:
        raise InputError("--all-platforms and --platform exclude each other", fix="use one of them")
    requested_platforms = opts.platforms or (
        () if opts.all_platforms else (host_platform(),)  # the table's answer where host is None
    )
    if not opts.all_platforms and any(p not in PLATFORMS for p in requested_platforms):
        bad = next(p for p in requested_platforms if p not in PLATFORMS)
        raise InputError(
            f"this machine's platform {bad} is not one dlsetup locks for; valid platforms: "
            f"{', '.join(PLATFORMS)}",
            fix="name one with --platform",
        )
    custom_source = spec_mod.load_environment_file(Path(opts.target)) if custom else None

    def has_variant(variant: str) -> bool:
        if custom_source is not None:
            if variant == "cuda":
                return has_cuda_package(custom_source.dependencies)
            return variant == "cpu"
        return bool(spec_mod.variant_platforms(opts.target, variant))

    choice = choose_variant(
        opts.variant,
        cuda=opts.cuda,
        # auto on a machine the table has no row for: "no CUDA on this machine", cpu
        platforms=(host or "this machine",) if opts.all_platforms else requested_platforms,
        has_variant=has_variant,
        gpu_arch=opts.gpu_arch,
    )
    if custom_source is not None:
        source = custom_source
        available = source.platforms or PLATFORMS
        target_label = "file"
    else:
        source = spec_mod.load_environment_file(
            spec_mod.environment_file(opts.target, choice.variant)
        )
        available = source.platforms
        target_label = opts.target
    if opts.all_platforms:
        platforms = tuple(p for p in PLATFORMS if p in available)
    else:
        platforms = requested_platforms
        missing = [p for p in platforms if p not in available]
        if missing:
            raise InputError(
                f"{opts.target} has no {choice.variant} variant for {', '.join(missing)}; "
                f"the {choice.variant} variant exists for: {', '.join(available)}",
                fix="pick one of those with --platform, or another --variant (cpu exists on more "
                "platforms)",
            )
    frameworks = chosen_frameworks(source.dependencies, opts.channels or source.channels)
    python = opts.python_version or pinned_python(source.dependencies)
    check_python(
        frameworks,
        python,
        python_line=next(
            (d for d in source.dependencies if spec_mod.spec_name(d) == "python"), None
        ),
        source=opts.target if custom and opts.python_version is None else None,
    )
    lines = choose_lines(frameworks, platforms, choice, python=python)
    plan = (
        CompanionPlan({}, ())
        if custom
        else plan_companions(source.dependencies, platforms, choice.variant, lines)
    )
    name = source.name if custom else f"{opts.target}-{choice.variant}"
    rendered = spec_mod.render(
        source,
        target=target_label,
        variant=choice.variant,
        cuda=choice.cuda,
        python=opts.python_version,
        channels=opts.channels,
        platforms=platforms,
        name=name,
        lines=lines,
        gpus=choice.gpus,
        gpu_source=choice.gpu_source,
        companions=plan,
        bound_cuda=not solver_decides(source.dependencies, opts.channels or source.channels),
    )
    result = lock_environment(
        rendered,
        platforms=platforms,
        output_dir=output,
        engine=opts.engine,
        force=force,
        cuda_source=CUDA_OPTION if opts.cuda is not None else CUDA_DRIVER,
    )
    return result, _with_data_note(with_line_reason(choice, lines), result, lines)


def plan_companions(
    deps: tuple[str, ...],
    platforms: tuple[str, ...],
    variant: str,
    lines: dict[str, LineChoice],
) -> CompanionPlan:
    """The companions of a shipped environment's PyTorch, per platform (none without pytorch).

    A companion follows PyTorch's build: the CUDA line chosen for the platform (``cuda129_*``),
    else the CPU build (``cpu_*``, which is also the MPS build on Apple silicon). One conda-forge
    does not build there, or builds for another pytorch release only, is left out and said so,
    never swapped for a build of another variant.
    """
    names = {spec_mod.spec_name(d) for d in deps}
    if "pytorch" not in names:
        return CompanionPlan({}, ())
    from dlsetup.compat import knowledge_base
    from dlsetup.compat.lines import companion_builds

    listed = {n for n in names if n in knowledge_base().conda_forge_companions}
    leave_out: dict[str, frozenset[str]] = {}
    follows: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for platform in platforms:
        line = lines.get(platform)
        if line is not None:
            builds, gone = line.companions, line.missing_companions
        else:
            builds, gone = companion_builds(platform, "cpu_*")
        have = {b.package for b in builds}
        if listed - have:
            leave_out[platform] = frozenset(listed - have)
        missing += gone
        for build in builds:
            if build.package in listed:
                follows.setdefault(build.package, {})[platform] = build.build_glob
    notes = []
    for package, globs in follows.items():
        kinds = dict.fromkeys(globs.values())
        where = (
            f"{next(iter(kinds))} on {', '.join(globs)}"
            if len(kinds) == 1
            else ", ".join(f"{g} on {p}" for p, g in globs.items())
        )
        notes.append(f"{package} follows pytorch's {variant} build ({where})")
    notes += dict.fromkeys(missing)
    return CompanionPlan(leave_out, tuple(notes))


def with_line_reason(choice: VariantChoice, lines: dict[str, LineChoice]) -> VariantChoice:
    """``choice`` whose reason also says which CUDA line each platform got, and why.

    (What became of PyTorch's companions is said apart: the lock's header, its
    ``dlsetup_companions`` metadata and :attr:`LockResult.companion_notes`.)
    """
    if not lines:
        return choice
    reasons = dict.fromkeys(c.reason for c in lines.values())
    if len(reasons) == 1:
        why = next(iter(reasons))
    else:
        why = "; ".join(f"{p}: {c.reason}" for p, c in lines.items())
    return replace(choice, reason=f"{choice.reason}; {why}")


def _with_data_note(
    choice: VariantChoice, result: LockResult, lines: dict[str, LineChoice]
) -> VariantChoice:
    """``choice`` whose reason also says, once per framework, when the solve took a release newer
    than the knowledge base's CUDA lines were read at (issue 16)."""
    if not lines:
        return choice  # no CUDA line was chosen: nothing the data vouches for
    from dlsetup.compat.lines import newer_than_data_notes

    notes = newer_than_data_notes(
        (pkg.name, pkg.version) for platform in result.platforms for pkg in platform.packages
    )
    return replace(choice, reason="; ".join((choice.reason, *notes))) if notes else choice


def pinned_python(deps: tuple[str, ...]) -> str | None:
    """The ``X.Y`` the ``python`` line pins (``python 3.12.*``, ``python=3.12``, ``python==3.12``),
    read by rattler's ``MatchSpec`` (:func:`dlsetup.envs.files.spec.python_pin`); None for a
    range (``python >= 3.8``, ``python >=3.12,<3.13``): a range constrains, it pins nothing."""
    for dep in deps:
        if spec_mod.spec_name(dep) == "python":
            return spec_mod.python_pin(dep)
    return None


def python_constraint(deps: tuple[str, ...]) -> Callable[[str], bool] | None:
    """Whether the ``python`` line allows a Python ``X.Y`` (None: no line, or no version)."""
    for dep in deps:
        if spec_mod.spec_name(dep) == "python":
            return spec_mod.python_allows(dep)
    return None


#: channels (by name, or a URL's last part) that carry their own PyTorch builds, not conda-forge's
_OTHER_PYTORCH_CHANNELS = frozenset(
    {"pytorch", "pytorch-nightly", "pytorch-test", "defaults", "main", "anaconda", "free"}
)
#: channels that carry no PyTorch at all (looked past for the one that supplies it)
_NO_PYTORCH_CHANNELS = frozenset({"nvidia", "r", "msys2"})


def _channel_name(channel: str) -> str:
    return channel.rstrip("/").rsplit("/", 1)[-1].rsplit("::", 1)[-1].lower()


def framework_rules_apply(package: str, deps: tuple[str, ...], channels: tuple[str, ...]) -> bool:
    """Whether conda-forge's rules for ``package`` (its Pythons, CUDA lines, companions) describe
    the build the solve will take: dlsetup chooses it. Not where the user chose: a version that
    excludes the release the knowledge base describes (``pytorch=1.11.0``), a channel on the
    spec (``pytorch::pytorch``), or channels whose first supplier of it is not conda-forge
    (``channels: [pytorch]``, ``defaults``); then the solver decides, and an unsatisfiable
    result is explained afterwards (:mod:`dlsetup.envs.conda.explain`). A mirror or a local
    channel is read as conda-forge's.
    """
    spec = next((d for d in deps if spec_mod.spec_name(d) == package), None)
    if spec is None:
        return False
    parsed = spec_mod.match_spec(spec)
    if parsed is None or parsed.channel is not None:
        return False
    from dlsetup.compat import knowledge_base

    framework = next(
        (f for f in knowledge_base().conda_forge.frameworks.values() if f.package == package), None
    )
    if framework is not None and parsed.version is not None:
        from rattler import Version, VersionSpec

        if not VersionSpec(str(parsed.version)).matches(Version(framework.release)):
            return False
    for channel in channels:
        name = _channel_name(channel)
        if name in _NO_PYTORCH_CHANNELS:
            continue
        return name not in _OTHER_PYTORCH_CHANNELS and "repo.anaconda.com" not in channel
    return True


def solver_decides(deps: tuple[str, ...], channels: tuple[str, ...]) -> bool:
    """Whether the file names a framework whose build the user chose (:func:`chosen_frameworks`
    leaves it out): then nothing of conda-forge's is added for it (no ``cuda-version`` bound)."""
    return len(chosen_frameworks(deps, channels)) < len(frameworks_in(deps))


def chosen_frameworks(deps: tuple[str, ...], channels: tuple[str, ...]) -> tuple[str, ...]:
    """The frameworks of ``deps`` whose build dlsetup chooses (:func:`framework_rules_apply`):
    their Pythons are checked and their CUDA lines chosen; the others are the solver's."""
    return tuple(
        fw
        for fw in frameworks_in(deps)
        if framework_rules_apply(FRAMEWORK_PACKAGES[fw], deps, channels)
    )
