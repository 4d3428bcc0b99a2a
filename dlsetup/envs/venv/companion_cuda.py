"""A companion built for another CUDA version than torch, caught when the lock is made.

PyPI's torch names its CUDA build in its metadata (``cuda-toolkit[cudart,...]==13.0.3``, which
resolves ``nvidia-cuda-runtime 13.0.96``: :func:`dlsetup.envs.venv.resolved.resolved_build`);
PyPI's torchvision and torchaudio do not: no local version, no ``nvidia-*`` requirement
(torchaudio 2.11.1's only requirement is ``torch>=2.11``). Their wheels say it inside, in
``torchaudio/version.py`` (``__version__ = '2.11.1+cu132'``), which
:mod:`~dlsetup.envs.venv.wheel_peek` reads with a few range requests. The verdict is
``dlsetup doctor``'s (``NAME.cuda_mismatch``): torchvision and torchaudio refuse a torch of
another CUDA *major* version (torchvision's ``extension.py`` ``_check_cuda_version`` raises only
when the majors differ), so another major (or no CUDA) stops the lock; the same major with
another minor loads, but is not a pair PyTorch ships and tests, so the lock is written and
says so (:class:`CudaMinorMismatch`: a warning, as doctor's). PyPI's own torch 2.14.1 (CUDA
13.0) with torchvision 0.29.2 and torchaudio 2.11.1 (CUDA 13.2) is such a pair: what
``pip install torch torchvision torchaudio`` gives, and it loads. Either way the fix is a build
of the paired release for torch's CUDA found on the same sources (one more resolution per
older version, at most :data:`MAX_OLDER` of them), or PyTorch's index of torch's variant, whose
companions carry torch's local version (``+cu130``), which :mod:`~dlsetup.envs.venv.resolved`
already holds to torch's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlsetup.errors import NoFittingBuildError, SolveError

if TYPE_CHECKING:
    from dlsetup.envs.venv.lock_platforms import VenvPlatform
    from dlsetup.envs.venv.platform_locks import PlatformLock
    from dlsetup.envs.venv.resolved import ResolvedBuild
    from dlsetup.envs.venv.uv_sources import LockSources

#: older versions of the paired release tried for a build of torch's CUDA (one resolution each)
MAX_OLDER = 3


@dataclass(frozen=True)
class CompanionCuda:
    """What one companion wheel says of its CUDA build.

    Attributes:
        name: ``torchaudio``.
        version: the version resolved (``2.11.1``).
        declared: the version its ``NAME/version.py`` assigns (``2.11.1+cu132``); empty when it
            could not be read.
        why_unread: why it could not be read (empty when it was).
    """

    name: str
    version: str
    declared: str = ""
    why_unread: str = ""

    @property
    def build(self) -> str:
        """``cu132``, ``cpu``; empty when the file names none."""
        from dlsetup.envs.venv.resolved import local_tag

        return local_tag(self.declared)

    @property
    def evidence(self) -> str:
        """``its torchaudio/version.py says 2.11.1+cu132``."""
        return f"its {self.name}/version.py says {self.declared}"


def _fitting_wheel(package: Mapping[str, Any], platform: VenvPlatform, python: str) -> str | None:
    """The URL of the package's wheel that uv installs on ``platform`` (first by tag order)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    interpreters = {"py3", f"py{python.replace('.', '')}", f"cp{python.replace('.', '')}"}
    platforms = (*platform.wheel_platforms, "any")
    best: tuple[int, str] | None = None
    for wheel in package.get("wheels", []):
        url = str(wheel.get("url", ""))
        file_name = str(wheel.get("name") or url.rsplit("/", 1)[-1])
        try:
            tags = parse_wheel_filename(file_name)[3]
        except InvalidWheelFilename:
            continue
        ranks = [
            platforms.index(t.platform)
            for t in tags
            if t.platform in platforms and (t.interpreter in interpreters or t.abi == "abi3")
        ]
        if url and ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), url)
    return None if best is None else best[1]


def read_companion(
    name: str,
    resolved: Mapping[str, Any],
    platform: VenvPlatform,
    python: str,
    indexes: Sequence[str],
) -> CompanionCuda | None:
    """What the resolved ``name`` wheel for ``platform`` says of its build; None when the
    resolution holds no ``name``."""
    from dlsetup.envs.venv.wheel_peek import PeekError, read_member, version_in

    package = next((p for p in resolved.get("packages", []) if p.get("name") == name), None)
    if package is None:
        return None
    version = str(package.get("version", ""))
    url = _fitting_wheel(package, platform, python)
    if url is None:
        return CompanionCuda(name, version, why_unread="no wheel of it fits the platform")
    try:
        text = read_member(url, f"{name}/version.py", indexes)
    except PeekError as exc:
        return CompanionCuda(name, version, why_unread=str(exc))
    declared = version_in(text)
    if declared is None:
        return CompanionCuda(name, version, why_unread=f"its {name}/version.py names no version")
    return CompanionCuda(name, version, declared)


def _cuda_words(build: str) -> str:
    from dlsetup.envs.venv.resolved import variant_cuda_text

    cuda = variant_cuda_text(build).strip()
    return f"a CUDA {cuda} build" if cuda else f"a {build} build"


def _torch_evidence(build: ResolvedBuild, packages: Mapping[str, str]) -> str:
    runtime = next(
        (f"{n} {v}" for n, v in packages.items() if n.startswith("nvidia-cuda-runtime")), None
    )
    if runtime:
        return f"PyPI's; {runtime} resolved beside it"
    return "PyPI's; the knowledge base's CUDA build of PyPI's torch"


def _matching_older(
    found: CompanionCuda,
    build: ResolvedBuild,
    platform: VenvPlatform,
    torch_index: str,
    sources: LockSources,
) -> CompanionCuda | None:
    """An older version of the release paired with torch's, on these sources, built for
    torch's CUDA (read as the resolved one was); None when none of :data:`MAX_OLDER` is."""
    from dlsetup.compat.companions import companion_release

    pair = companion_release(found.name, build.torch_version)
    if pair is None:
        return None
    below = found.version
    indexes = [u for u in (torch_index, sources.index_url, *sources.indexes) if u]
    for _ in range(MAX_OLDER):
        reqs = (
            f"torch=={build.torch_version}",
            f"{found.name}=={pair.pin}",
            f"{found.name}<{below}",
        )
        try:
            resolved, _ = sources.resolve(reqs, platform, torch_index)
        except SolveError:
            return None
        older = read_companion(found.name, resolved, platform, sources.python, indexes)
        if older is None or not older.declared:
            return None
        if older.build == build.variant:
            return older
        below = older.version
    return None


def same_major(build: str, torch_variant: str) -> bool:
    """Whether two CUDA builds (``cu132``, ``cu130``) are of one CUDA major version (``13``):
    torchvision and torchaudio load beside such a torch (``_check_cuda_version`` compares the
    majors only). False where either names no CUDA version (``cpu``)."""
    from dlsetup.envs.venv.resolved import variant_cuda_text

    ours, theirs = variant_cuda_text(build).strip(), variant_cuda_text(torch_variant).strip()
    return bool(ours and theirs) and ours.split(".")[0] == theirs.split(".")[0]


def _fix(found: CompanionCuda, build: ResolvedBuild, match: CompanionCuda | None) -> str:
    """The fix of a mismatched pair: the matching build of the paired release on these sources
    where one was found (else that none was), and PyTorch's index of torch's variant."""
    from dlsetup.compat.companions import companion_release

    pair = companion_release(found.name, build.torch_version)
    paired = f"{found.name} {pair.release}" if pair else found.name
    older = (
        f"{found.name} {match.version} on these sources is {_cuda_words(match.build)} of "
        f"{paired}, the release the knowledge base pairs with torch {build.torch_version} "
        f"({match.evidence}): pin it, {found.name}=={match.version}, where you install with pip "
        "or uv; or "
        if match is not None
        else f"no {paired} on these sources is {_cuda_words(build.variant)} (the knowledge base "
        f"pairs {paired} with torch {build.torch_version}); "
    )
    return (
        f"{older}lock from PyTorch's index of torch's variant, whose companions are built "
        f"for its CUDA: --torch-index-url https://download.pytorch.org/whl/{build.variant} "
        "(or a mirror of it)"
    )


def _builds(found: CompanionCuda, build: ResolvedBuild, packages: Mapping[str, str]) -> str:
    """``torchaudio 2.11.1 is a CUDA 13.2 build (...), torch 2.14.1 is a CUDA 13.0 build (...)``."""
    return (
        f"{found.name} {found.version} is {_cuda_words(found.build)} ({found.evidence}), torch "
        f"{build.torch_version} is {_cuda_words(build.variant)} "
        f"({_torch_evidence(build, packages)})"
    )


@dataclass(frozen=True)
class CudaMatch:
    """A companion whose wheel names torch's CUDA build: the pair PyTorch ships (``CUDA
    checked`` in the header, ``--json``'s ``cuda_checked``, the lock's ``[tool.dlsetup]``).

    Attributes:
        platform: ``linux-64``.
        companion: what the companion's wheel says (``torchaudio 2.11.0``, ``+cu130``).
        torch_version: ``2.14.1``.
        torch_variant: torch's CUDA build (``cu130``).
    """

    platform: str
    companion: CompanionCuda
    torch_version: str
    torch_variant: str

    @property
    def message(self) -> str:
        """``torchaudio 2.11.0 is a CUDA 13.0 build, as torch is (its torchaudio/version.py
        says 2.11.0+cu130)``."""
        found = self.companion
        return (
            f"{found.name} {found.version} is {_cuda_words(found.build)}, as torch is "
            f"({found.evidence})"
        )

    def data(self) -> dict[str, Any]:
        """One entry of ``--json``'s ``cuda_checked``."""
        from dlsetup.envs.venv.resolved import variant_cuda_text

        found = self.companion
        return {
            "name": found.name,
            "version": found.version,
            "cuda": variant_cuda_text(found.build).strip(),
            "declared": found.declared,
            "torch": self.torch_version,
            "message": self.message,
        }


@dataclass(frozen=True)
class CudaMinorMismatch:
    """A companion built for another CUDA minor version of torch's major: it loads, but the pair
    is not one PyTorch ships and tests (``dlsetup doctor``: ``NAME.cuda_mismatch``, a warning).
    The lock is written, and says it (header, ``--json``, a warning on stderr).

    Attributes:
        platform: ``linux-64``.
        companion: what the companion's wheel says (``torchaudio 2.11.1``, ``+cu132``).
        torch_version: ``2.14.1``.
        torch_variant: torch's CUDA build (``cu130``).
        match: a build of the paired release for torch's CUDA on these sources (``torchaudio
            2.11.0``, ``+cu130``); None when none was found.
        message: what was found and what it does, in doctor's words.
        fix: the matching build to pin, and PyTorch's index of torch's variant.
    """

    platform: str
    companion: CompanionCuda
    torch_version: str
    torch_variant: str
    match: CompanionCuda | None
    message: str
    fix: str

    def data(self) -> dict[str, Any]:
        """One entry of ``--json``'s ``cuda_warnings``."""
        from dlsetup.envs.venv.resolved import variant_cuda_text

        def cuda(build: str) -> str:
            return variant_cuda_text(build).strip()

        match = self.match
        return {
            "name": self.companion.name,
            "version": self.companion.version,
            "cuda": cuda(self.companion.build),
            "declared": self.companion.declared,
            "torch": self.torch_version,
            "torch_cuda": cuda(self.torch_variant),
            "matching": None
            if match is None
            else {"version": match.version, "cuda": cuda(match.build), "declared": match.declared},
            "message": self.message,
            "fix": self.fix,
        }


def _minor_mismatch(
    locked: PlatformLock,
    found: CompanionCuda,
    packages: Mapping[str, str],
    match: CompanionCuda | None,
) -> CudaMinorMismatch:
    build = locked.build
    assert build is not None
    message = (
        f"{locked.platform.name}: {_builds(found, build, packages)}: the same CUDA major "
        "version loads, but these builds are not the pair PyTorch ships and tests (dlsetup "
        f"doctor warns of the installed pair: {found.name}.cuda_mismatch)"
    )
    return CudaMinorMismatch(
        locked.platform.name,
        found,
        build.torch_version,
        build.variant,
        match,
        message,
        _fix(found, build, match),
    )


def _mismatch_error(
    locked: PlatformLock,
    found: CompanionCuda,
    packages: Mapping[str, str],
    match: CompanionCuda | None,
) -> NoFittingBuildError:
    """Another CUDA major (or none) than torch's: the companion's extension does not load."""
    build = locked.build
    assert build is not None
    why = (
        f"{found.name} refuses CUDA builds of another major version; "
        if found.build.startswith("cu")
        else ""
    )
    return NoFittingBuildError(
        f"{locked.platform.name}: {found.name} {found.version} and torch {build.torch_version} "
        f"were built for different CUDA versions: {_builds(found, build, packages)}; "
        f"{found.name}'s compiled extension does not load beside this torch ({why}dlsetup "
        f"doctor: {found.name}.cuda_mismatch); nothing was installed and no lock was written",
        fix=_fix(found, build, match),
    )


def _check_platform(
    locked: PlatformLock,
    resolved: Mapping[str, Any],
    sources: LockSources,
    torch_index: str,
) -> tuple[PlatformLock, list[CudaMinorMismatch], list[CudaMatch]]:
    """One platform's companions of PyPI's CUDA torch, each read and held to torch's build."""
    build = locked.build
    assert build is not None
    packages = dict(locked.packages)
    indexes = [u for u in (torch_index, sources.index_url, *sources.indexes) if u]
    seen: list[CudaMatch] = []
    unread: list[str] = []
    warned: list[CudaMinorMismatch] = []
    for name, _ in build.companions:
        found = read_companion(name, resolved, locked.platform, sources.python, indexes)
        if found is None or not found.build or not build.variant.startswith("cu"):
            unread.append(name)
        elif found.build != build.variant:
            match = _matching_older(found, build, locked.platform, torch_index, sources)
            if not same_major(found.build, build.variant):
                raise _mismatch_error(locked, found, packages, match)
            warned.append(_minor_mismatch(locked, found, packages, match))
        else:
            seen.append(CudaMatch(locked.platform.name, found, build.torch_version, build.variant))
    kept = tuple(u for u in build.unchecked if any(u.startswith(f"{n} ") for n in unread))
    new = dataclasses.replace(build, unchecked=kept, checked=tuple(m.message for m in seen))
    return dataclasses.replace(locked, build=new), warned, seen


def check_companion_cuda(
    results: Sequence[PlatformLock],
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    sources: LockSources,
    torch_indexes: Mapping[str, str],
) -> tuple[list[PlatformLock], list[CudaMinorMismatch], list[CudaMatch]]:
    """Each platform's companions of PyPI's CUDA torch, held to torch's CUDA build by what their
    wheels declare: a match is said (``checked``, and returned), an unread file stays
    ``unchecked``, another minor of torch's CUDA major is returned as a warning (the lock is
    written).

    Args:
        results: each platform's resolution read (:class:`PlatformLock`).
        parts: ``(marker, uv's resolution)`` of each platform, in the same order.
        sources: the sources resolved from (one more resolution looks for a matching build).
        torch_indexes: each platform's PyTorch index (credentials as configured), by name.

    Returns:
        The platforms with what was checked, each companion of another CUDA minor version
        (:class:`CudaMinorMismatch`) and each companion found built for torch's CUDA
        (:class:`CudaMatch`), in platform order.

    Raises:
        NoFittingBuildError: a companion built for another CUDA major version (or none) than
            torch, naming both, with a build of the paired release for torch's CUDA on these
            sources where there is one, and PyTorch's index of torch's variant.
    """
    checked: list[PlatformLock] = []
    warnings: list[CudaMinorMismatch] = []
    matches: list[CudaMatch] = []
    for locked, (_, resolved) in zip(results, parts, strict=True):
        build = locked.build
        if build is None or not build.pypi_build or not build.cuda_libraries:
            checked.append(locked)  # a local version is held to torch's already; cpu: no CUDA
            continue
        torch_index = torch_indexes.get(locked.platform.name, "")
        platform, warned, seen = _check_platform(locked, resolved, sources, torch_index)
        checked.append(platform)
        warnings += warned
        matches += seen
    return checked, warnings, matches
