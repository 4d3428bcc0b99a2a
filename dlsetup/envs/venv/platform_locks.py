"""Each platform's resolution (:class:`PlatformLock`): torch resolved with its companions
(torchaudio left out, and said, where the sources hold none that goes with torch; torchvision
paired or nothing locked), the release a configured mirror holds, and the variant taken where the
sources hold only another one (:func:`variant_to_lock`). Nothing is downloaded here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlsetup.envs.credentials import strip_auth
from dlsetup.envs.venv.plan import requirements_for
from dlsetup.envs.venv.torch_choice import DEFAULT_TORCH_INDEX, choose_torch_index
from dlsetup.errors import DlsetupError, SolveError

if TYPE_CHECKING:
    from dlsetup.envs.reachability import VenvSources
    from dlsetup.envs.venv.lock_platforms import VenvPlatform
    from dlsetup.envs.venv.plan import VenvLockRequest, VenvPlan
    from dlsetup.envs.venv.resolved import ResolvedBuild
    from dlsetup.envs.venv.uv_sources import LockSources


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


def _lock_platform(
    plan: VenvPlan,
    request: VenvLockRequest,
    platform: VenvPlatform,
    torch_index: str,
    sources: LockSources,
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
    sources: LockSources,
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
    sources: LockSources,
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
    sources: LockSources,
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
    plan: VenvPlan, platform: VenvPlatform, torch_index: str, sources: LockSources
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


def resolve_on_sources(
    plan: VenvPlan, request: VenvLockRequest, routes: VenvSources, sources: LockSources
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
    plan: VenvPlan, request: VenvLockRequest, routes: VenvSources, sources: LockSources
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
    plan: VenvPlan, request: VenvLockRequest, routes: VenvSources, sources: LockSources
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
