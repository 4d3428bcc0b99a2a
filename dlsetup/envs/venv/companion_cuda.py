"""A companion built for another CUDA version than torch, caught when the lock is made.

PyPI's torch names its CUDA build in its metadata (``cuda-toolkit[cudart,...]==13.0.3``, which
resolves ``nvidia-cuda-runtime 13.0.96``: :func:`dlsetup.envs.venv.resolved.resolved_build`);
PyPI's torchvision and torchaudio do not: no local version, no ``nvidia-*`` requirement
(torchaudio 2.11.1's only requirement is ``torch>=2.11``). Their wheels say it inside, in
``torchaudio/version.py`` (``__version__ = '2.11.1+cu132'``), which
:mod:`~dlsetup.envs.venv.wheel_peek` reads with a few range requests. A companion built for
another CUDA minor than torch is linked against another CUDA runtime: ``import torchaudio``
fails or falls back, which ``dlsetup doctor`` reports only after the install
(``torchaudio.cuda_mismatch``). Here the lock stops, naming both builds and the fix: a build of
the paired release for torch's CUDA found on the same sources (one more resolution per older
version, at most :data:`MAX_OLDER` of them), or PyTorch's index of torch's variant, whose
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


def _consequence(found: CompanionCuda, build: ResolvedBuild) -> str:
    """What the mismatch does, in ``dlsetup doctor``'s words (``NAME.cuda_mismatch``): another
    major version (or none) does not load; the same major loads but is not a pair PyTorch ships."""
    major = found.build[2:-1] if found.build.startswith("cu") else ""
    if major and major == build.variant[2:-1]:
        return (
            f"the same CUDA major version loads, but these builds are not the pair PyTorch ships "
            f"and tests, and dlsetup doctor flags the installed pair ({found.name}.cuda_mismatch)"
        )
    return (
        f"{found.name}'s compiled extension does not load beside this torch (dlsetup doctor: "
        f"{found.name}.cuda_mismatch)"
    )


def _mismatch_error(
    locked: PlatformLock,
    found: CompanionCuda,
    packages: Mapping[str, str],
    match: CompanionCuda | None,
) -> NoFittingBuildError:
    from dlsetup.compat.companions import companion_release

    build = locked.build
    assert build is not None
    torch_build = _cuda_words(build.variant)
    pair = companion_release(found.name, build.torch_version)
    paired = f"{found.name} {pair.release}" if pair else found.name
    older = (
        f"{found.name} {match.version} on these sources is {_cuda_words(match.build)} of "
        f"{paired}, the release the knowledge base pairs with torch {build.torch_version} "
        f"({match.evidence}): pin it, {found.name}=={match.version}, where you install with pip "
        "or uv; or "
        if match is not None
        else f"no {paired} on these sources is {torch_build} (the knowledge base pairs "
        f"{paired} with torch {build.torch_version}); "
    )
    return NoFittingBuildError(
        f"{locked.platform.name}: {found.name} {found.version} and torch {build.torch_version} "
        f"were built for different CUDA versions: {found.name} {found.version} is "
        f"{_cuda_words(found.build)} ({found.evidence}), torch {build.torch_version} is "
        f"{torch_build} ({_torch_evidence(build, packages)}); {_consequence(found, build)}; "
        "nothing was installed and no lock was written",
        fix=f"{older}lock from PyTorch's index of torch's variant, whose companions are built "
        f"for its CUDA: --torch-index-url https://download.pytorch.org/whl/{build.variant} "
        "(or a mirror of it)",
    )


def check_companion_cuda(
    results: Sequence[PlatformLock],
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    sources: LockSources,
    torch_indexes: Mapping[str, str],
) -> list[PlatformLock]:
    """Each platform's companions of PyPI's CUDA torch, held to torch's CUDA build by what their
    wheels declare: a match is said (``checked``), an unread file stays ``unchecked``.

    Args:
        results: each platform's resolution read (:class:`PlatformLock`).
        parts: ``(marker, uv's resolution)`` of each platform, in the same order.
        sources: the sources resolved from (one more resolution looks for a matching build).
        torch_indexes: each platform's PyTorch index (credentials as configured), by name.

    Raises:
        NoFittingBuildError: a companion built for another CUDA version (or none) than torch,
            naming both, with a build of the paired release for torch's CUDA on these sources
            where there is one, and PyTorch's index of torch's variant.
    """
    checked: list[PlatformLock] = []
    for locked, (_, resolved) in zip(results, parts, strict=True):
        build = locked.build
        if build is None or not build.pypi_build or not build.cuda_libraries:
            checked.append(locked)  # a local version is held to torch's already; cpu: no CUDA
            continue
        packages = dict(locked.packages)
        torch_index = torch_indexes.get(locked.platform.name, "")
        indexes = [u for u in (torch_index, sources.index_url, *sources.indexes) if u]
        seen, unread = [], []
        for name, version in build.companions:
            found = read_companion(name, resolved, locked.platform, sources.python, indexes)
            if found is None or not found.build or not build.variant.startswith("cu"):
                unread.append((name, version, found.why_unread if found else ""))
            elif found.build != build.variant:
                match = _matching_older(found, build, locked.platform, torch_index, sources)
                raise _mismatch_error(locked, found, packages, match)
            else:
                seen.append(
                    f"{name} {version} is {_cuda_words(found.build)}, as torch is "
                    f"({found.evidence})"
                )
        kept = tuple(u for u in build.unchecked if any(u.startswith(f"{n} ") for n, *_ in unread))
        new = dataclasses.replace(build, unchecked=kept, checked=tuple(seen))
        checked.append(dataclasses.replace(locked, build=new))
    return checked
