"""Lock an environment: solve per platform with explicit virtual packages, write conda-lock v1.

Two engines:

* ``rattler`` (default): py-rattler solves each platform in-process with that platform's virtual
  packages (:mod:`dlsetup.envs.conda.virtual_packages`); the result is written with conda-lock's own models
  (``Lockfile``/``LockedDependency``/``LockMeta``), its content hash and ``write_conda_lock_file``,
  so ``conda-lock install``, ``conda-lock render`` and micromamba read it unchanged.
* ``conda-lock``: conda-lock's own solve, which needs a conda, mamba or micromamba executable; that
  is checked first, so a machine without one gets :class:`MissingToolError` at once instead of a
  minute of network retries. It gets the same explicit virtual-package spec file and a local
  PyPI-to-conda name map (no network fetch).

Outputs, in ``--output DIR``: ``NAME.environment.yml`` (the rendered source), ``NAME.virtual-
packages.yml`` (what each platform was solved with) and ``NAME.conda-lock.yml`` whose header comment
and ``custom_metadata`` record the virtual packages and the CUDA version it was solved for.
Existing files are never replaced without ``force``. The three are replaced together or not at all:
all three are written into a temporary directory inside ``--output`` first (a full disk fails
there, before any old file is touched), then renamed into place by
:func:`dlsetup.atomic_write.replace_together`, which puts the old ones back if a rename fails.

A ``pip:`` section is locked too (rattler engine): after the conda part of a platform is solved,
:mod:`dlsetup.envs.pypi.resolve` resolves the section with uv for the Python version solved there
and that platform, the conda part standing as installed (a requirement conda satisfies is not
locked twice), and the result is written as conda-lock's ``manager: pip`` entries (wheel URL,
sha256, dependencies), the same models conda-lock's own PyPI solver fills. As conda-lock does,
``pip`` joins the conda part of an environment with a ``pip:`` section, and conda-lock's content
hash covers the PyPI requirements and indexes (``pip-repositories:`` of the rendered file).

Channel credentials (:mod:`dlsetup.envs.credentials`): the solve uses the channels with their
``${VAR}`` placeholders filled in from the environment; the files get the URLs with placeholders
kept and literal credentials removed (the channels in the lock's metadata and every package URL),
and every error message is redacted.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup import children
from dlsetup.atomic_write import output_error, replace_together
from dlsetup.envs.conda.explain import explain_unsatisfiable
from dlsetup.envs.conda.virtual_packages import (
    CUDA_OPTION,
    VirtualPackage,
    sources_record,
    sources_text,
    spec_file_text,
    to_rattler,
    virtual_packages,
)
from dlsetup.envs.credentials import (
    expand_auth,
    placeholders,
    redact,
    redact_error,
    strip_auth,
)
from dlsetup.envs.files.names import NAME_RULE, is_valid_env_name
from dlsetup.envs.files.spec import RenderedEnvironment
from dlsetup.envs.location import find_conda_executable, known_host_platform
from dlsetup.envs.pypi.resolve import PypiRequest, PypiSolution, conda_provided, resolve_all
from dlsetup.envs.sources import Source
from dlsetup.errors import DlsetupError, ExistsError, InputError, MissingToolError, SolveError

if TYPE_CHECKING:
    from dlsetup.compat.lines import Gpu, LineChoice

ENGINES: tuple[str, ...] = ("rattler", "conda-lock")
METADATA_PREFIX = "dlsetup_"
#: Seconds conda-lock's own solve (``--engine conda-lock``) may take.
CONDA_LOCK_TIMEOUT_S = 3600


@dataclass(frozen=True)
class LockedPackage:
    """One package of a platform's solution (for reports)."""

    name: str
    version: str
    build: str


@dataclass(frozen=True)
class PlatformLock:
    """The solution for one platform.

    Attributes:
        platform: conda subdir.
        virtual_packages: what the solve assumed, ``__cuda`` included for CUDA variants.
        packages: the solved conda packages, sorted by name.
        solve_ms: solver time in milliseconds (0 for the conda-lock engine).
        pypi_packages: the PyPI part (``manager: pip`` entries), sorted by name; build is "".
        pypi_ms: uv's resolution time in milliseconds (0 without a ``pip:`` section).
        provided_by_conda: ``pip:`` requirements the conda part satisfies, left out of the PyPI
            part (``numpy 2.1.3``).
    """

    platform: str
    virtual_packages: tuple[VirtualPackage, ...]
    packages: tuple[LockedPackage, ...]
    solve_ms: float
    pypi_packages: tuple[LockedPackage, ...] = ()
    pypi_ms: float = 0.0
    provided_by_conda: tuple[str, ...] = ()


@dataclass(frozen=True)
class LockResult:
    """What ``dlsetup lock`` wrote."""

    name: str
    target: str
    variant: str
    cuda: str | None
    python: str | None
    engine: str
    channels: tuple[str, ...]
    lock_path: Path
    environment_path: Path
    virtual_packages_path: Path
    platforms: tuple[PlatformLock, ...]
    content_hash: dict[str, str]
    lines: Mapping[str, LineChoice] = field(default_factory=dict)
    gpus: tuple[Gpu, ...] = ()
    gpu_source: str = "none"
    #: what became of PyTorch's companions (torchvision follows its build; torchaudio left out,
    #: and why), as the lock's header says it
    companion_notes: tuple[str, ...] = ()
    #: notes on the PyPI part: one summary line for the wheels whose metadata could not be read
    pypi_notes: tuple[str, ...] = ()
    #: per platform, the wheels (``tiny-app 1.0``) whose metadata could not be read (no PEP 658
    #: ``.metadata`` on the index): the lock lists no dependencies for them
    pypi_without_metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: where a configured setting (.condarc, pixi's mirrors) sent each channel, with its origin
    channel_sources: tuple[str, ...] = ()


def output_paths(output_dir: Path, name: str) -> tuple[Path, Path, Path]:
    """``(environment.yml, virtual-packages.yml, conda-lock.yml)`` paths for ``name``."""
    return (
        output_dir / f"{name}.environment.yml",
        output_dir / f"{name}.virtual-packages.yml",
        output_dir / f"{name}.conda-lock.yml",
    )


def pypi_mapping_path() -> Path:
    """The local PyPI-to-conda name map given to conda-lock instead of its network download."""
    return Path(str(resources.files("dlsetup").joinpath("data", "pypi-to-conda.json")))


def _check_outputs(paths: tuple[Path, ...], force: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise ExistsError(
            f"{existing[0]} already exists; it was left unchanged",
            fix="pass --force to replace it, or choose another --output directory",
        )


def header_lines(
    result_env: RenderedEnvironment,
    per_platform: dict[str, tuple[VirtualPackage, ...]],
    channel_lines: tuple[str, ...] = (),
    pypi_index: tuple[str | None, tuple[str, ...]] | None = None,
) -> list[str]:
    """The comment block dlsetup puts above conda-lock's own header (``channel_lines``: where a
    configured setting sent each channel, :meth:`_Channels.lines`)."""
    solved = f"CUDA {result_env.cuda}" if result_env.cuda else "no CUDA (no __cuda virtual package)"
    lines = [
        f"# dlsetup lock: target {result_env.target}, variant {result_env.variant}, solved for {solved}.",
        "# Virtual packages assumed per platform (explicit; see NAME.virtual-packages.yml):",
    ]
    for platform, vps in per_platform.items():
        lines.append(f"#   {platform}: {' '.join(str(v) for v in vps)}")
        lines.append(f"#     {sources_text(vps)}")
    if result_env.lines:
        lines.append(
            f"# GPUs ({_GPU_SOURCE_LABELS.get(result_env.gpu_source, result_env.gpu_source)}): "
            f"{gpus_text(result_env) or 'none given'}"
        )
    for platform, choice in result_env.lines.items():
        lines.append(f"# CUDA line for {platform}: {choice.line} ({' '.join(choice.specs)}).")
        lines.append(f"#   Why: {choice.reason}.")
    lines += [f"# Companions: {note}." for note in result_env.companion_notes]
    lines += [f"# Channel: {line}." for line in channel_lines]
    if result_env.spec.pip:
        spec = result_env.spec
        index, extra = spec.pip_index_url, spec.pip_extra_index_urls
        if pypi_index is not None and (pypi_index[0] or pypi_index[1]):
            index, extra = pypi_index  # the configured ones (the file names none)
        indexes = [strip_auth(index or "https://pypi.org/simple")]
        indexes += [strip_auth(u) for u in extra]
        lines.append(
            "# PyPI part (pip: section): resolved with uv for each platform's solved Python, "
            f"wheels only, from {', '.join(indexes)}."
        )
    lines.append(f"# Build it: dlsetup create --from-lock {result_env.spec.name}.conda-lock.yml")
    return lines


_GPU_SOURCE_LABELS = {
    "driver:nvml": "seen by the NVIDIA driver (NVML)",
    "option:--gpu-arch": "from --gpu-arch",
    "none": "none",
}


def gpus_text(env: RenderedEnvironment) -> str:
    """``0:6.1 NVIDIA GeForce GTX 1080; 1:8.6 NVIDIA GeForce RTX 3090`` (the lock's metadata)."""
    return "; ".join(f"{g.index}:{g.cc[0]}.{g.cc[1]} {g.name}" for g in env.gpus)


def custom_metadata(
    env: RenderedEnvironment, per_platform: dict[str, tuple[VirtualPackage, ...]], engine: str
) -> dict[str, str]:
    """``custom_metadata`` entries of the lock (strings only, as conda-lock's model requires)."""
    meta = {
        f"{METADATA_PREFIX}target": env.target,
        f"{METADATA_PREFIX}variant": env.variant,
        f"{METADATA_PREFIX}cuda": env.cuda or "none",
        f"{METADATA_PREFIX}engine": engine,
        f"{METADATA_PREFIX}python_version": env.python_option or "none",
    }
    if env.lines:
        meta[f"{METADATA_PREFIX}gpus"] = gpus_text(env) or "none"
        meta[f"{METADATA_PREFIX}gpu_source"] = env.gpu_source
    for platform, vps in per_platform.items():
        meta[f"{METADATA_PREFIX}virtual_packages_{platform}"] = " ".join(str(v) for v in vps)
        meta[f"{METADATA_PREFIX}virtual_package_sources_{platform}"] = sources_record(vps)
        choice = env.lines.get(platform)
        if choice is not None:
            meta[f"{METADATA_PREFIX}cuda_line_{platform}"] = choice.line
            meta[f"{METADATA_PREFIX}cuda_line_specs_{platform}"] = " ".join(choice.specs)
            meta[f"{METADATA_PREFIX}cuda_line_reason_{platform}"] = choice.reason
    return meta


def conda_lock_dependencies(depends: list[str]) -> dict[str, str]:
    """``{name: version spec}`` from a record's depends, exactly as conda-lock's own solver does."""
    from conda_lock.interfaces.vendored_conda import MatchSpec

    grouped: dict[str, list[Any]] = {}
    for dep in depends:
        spec = MatchSpec(dep)
        grouped.setdefault(spec.name, []).append(spec)
    result: dict[str, str] = {}
    for name, specs in grouped.items():
        merged = specs[0] if len(specs) == 1 else MatchSpec.merge(specs)[0]
        result[name] = merged.version.spec_str if merged.version is not None else ""
    return result


def pypi_dependency_specs(dependencies: Mapping[str, str]) -> dict[str, str]:
    """A PyPI entry's ``{name: constraint}`` in the form rattler's (pixi's) and conda-lock's
    parsers both read: a PEP 440 specifier set as ``packaging`` writes it, ``""`` for none.

    rattler joins name and constraint into a PEP 508 requirement, so ``'*'`` (what conda-lock's
    own PyPI solver writes for "any version") makes the whole lock unreadable to it
    (``ParseCondaLockError ... MapOrVec``); ``""`` means the same to both.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    out: dict[str, str] = {}
    for name, constraint in dependencies.items():
        text = constraint.strip()
        if text in ("", "*"):
            out[name] = ""
            continue
        try:
            out[name] = str(SpecifierSet(text))
        except InvalidSpecifier:
            out[name] = ""  # not PEP 440: the entry still pins the wheel by URL and hash
    return out


def without_metadata_note(pypi: Mapping[str, PypiSolution]) -> tuple[str, ...]:
    """One line for every wheel, on every platform, whose metadata could not be read (an index
    without PEP 658 ``.metadata`` files gave one warning per package before: 64 on one lock)."""
    missing = {p: s.without_metadata for p, s in pypi.items() if s.without_metadata}
    if not missing:
        return ()
    count = len({name for names in missing.values() for name in names})
    wheels = "1 wheel" if count == 1 else f"{count} wheels"
    have = "has" if count == 1 else "have"
    them = "it" if count == 1 else "them"
    return (
        f"{wheels} on {', '.join(missing)} {have} no metadata on their index (PEP 658), so the "
        f"lock lists no dependencies for {them} ({'it is' if count == 1 else 'they are'} locked "
        f"all the same); --verbose names {them}",
    )


def _check_output_dir(output_dir: Path) -> None:
    """Refuse, before the solve, an ``--output`` that cannot become a writable directory."""
    existing = output_dir
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it is a file" if existing == output_dir else f"{existing} is a file"
        raise InputError(
            f"cannot create the output directory {output_dir}: {where}",
            fix="choose another --output directory",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise output_error(
            PermissionError(errno.EROFS if _read_only(existing) else errno.EACCES, "not writable"),
            output_dir,
            what="write into",
        )


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class _Channels:
    """The channels of one lock: to solve with (credentials filled in) and how files name them.

    Attributes:
        solve: URLs or names for rattler, ``${VAR}`` placeholders expanded.
        prefixes: ``(base URL without credentials, base URL as the lock writes it)`` for each
            channel whose URL has placeholders: a solved package's URL under the first is written
            under the second, so the lock keeps ``${VAR}`` and never the value.
    """

    solve: tuple[str, ...]
    prefixes: tuple[tuple[str, str], ...]
    sources: tuple[Source, ...] = ()
    #: the indexes configured for pip and uv, used for a ``pip:`` section that names none
    pypi: tuple[Source, ...] = ()

    def pypi_index(self) -> tuple[str | None, tuple[str, ...]]:
        """``(index URL or None for PyPI, extra index URLs)`` from the configured sources."""
        default = next((s.url for s in self.pypi if s.default), None)
        return default, tuple(s.url for s in self.pypi if not s.default)

    def lines(self) -> tuple[str, ...]:
        """Where each channel is fetched from, credentials masked: ``conda-forge from URL
        (~/.condarc custom_channels.conda-forge)``; only channels a setting redirected."""
        redirected = tuple(
            f"{s.name or s.shown} from {s.display()}"
            for s in self.sources
            if s.origin not in ("as given", "conda's default")
        )
        return redirected + tuple(f"pip: section from {s.display()}" for s in self.pypi)

    def stored_url(self, url: str) -> str:
        """A solved package's URL as it goes into the lock."""
        bare = strip_auth(url)
        for plain, stored in self.prefixes:
            if bare.startswith(plain):
                return stored + bare[len(plain) :]
        return bare


def _channels(env: RenderedEnvironment) -> _Channels:
    """Expand and check the channels before anything is solved or written.

    Raises:
        InputError: a ``${VAR}`` that is not set, or a channel rattler cannot parse.
    """
    import rattler

    from dlsetup.envs.sources import channel_sources, conda_settings

    settings = conda_settings()  # .condarc channel_alias / custom_channels, pixi's mirrors
    given = env.solve_channels or env.spec.channels
    solve: list[str] = []
    prefixes: list[tuple[str, str]] = []
    sources: list[Source] = []
    for shown, written in zip(env.spec.channels, given, strict=True):
        resolved = channel_sources(written, settings)
        sources += resolved
        redirected = [s.url for s in resolved if s.origin not in ("as given", "conda's default")]
        for raw in redirected or [written]:
            url, prefix = _channel(shown, raw, rattler)
            prefixes += prefix
            solve.append(url)
    return _Channels(tuple(solve), tuple(prefixes), tuple(sources), _configured_pypi(env))


def _configured_pypi(env: RenderedEnvironment) -> tuple[Source, ...]:
    """The default index configured for pip or uv (a mirror of PyPI:
    :func:`dlsetup.envs.sources.pypi_sources`), for a ``pip:`` section that names no index of its
    own (one that does wins, as ``--index-url``). Configured *extra* indexes are not added: uv
    takes a package from the first index that has it, where pip compares every index, so an
    extra index holding an old pyyaml would hide PyPI's newer one."""
    spec = env.spec
    if not spec.pip or spec.pip_index_url is not None or spec.pip_extra_index_urls:
        return ()
    from dlsetup.envs.sources import pypi_sources

    return tuple(s for s in pypi_sources() if s.kind == "index" and s.default)


def _channel(shown: str, raw: str, rattler: Any) -> tuple[str, list[tuple[str, str]]]:
    """One channel for the solve (placeholders filled in), and its stored-URL prefix.

    Raises:
        InputError: a ``${VAR}`` that is not set, or a channel rattler cannot parse.
    """
    prefixes: list[tuple[str, str]] = []
    url = expand_auth(raw)
    try:
        base = rattler.Channel(url).base_url
    except Exception as exc:  # rattler's InvalidChannelError and URL parse errors
        raise InputError(
            f"invalid channel {shown!r}: {redact(str(exc))}",
            fix="give a channel name such as conda-forge, or a URL such as "
            "https://host/channel or file:///path/to/channel",
        ) from exc
    if placeholders(raw) and "://" in raw:
        prefixes.append((strip_auth(base), strip_auth(raw).rstrip("/") + "/"))
    return url, prefixes


def _probe_channels(
    env: RenderedEnvironment, channels: _Channels, platforms: tuple[str, ...]
) -> None:
    """Ask each channel once, all at once, with a short timeout, before the solve: a channel out
    of reach ends the lock in seconds, named with where it came from, instead of after the
    solver's retries.

    Raises:
        SolveError: a channel is out of reach (each one named, with why, and the fix).
    """
    from urllib.parse import urlsplit, urlunsplit

    from dlsetup.envs.reachability import environ_timeout, probe_all

    probes: dict[Source, Source] = {}
    for source in channels.sources:
        parts = urlsplit(source.url)
        if parts.scheme in ("http", "https"):
            path = parts.path.rstrip("/") + "/noarch/repodata.json"
            url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
            probes[replace(source, url=url)] = source
        elif parts.scheme == "file" or source.url.startswith("/"):
            probes[source] = source
    missing = [r for r in probe_all(probes, environ_timeout()) if not r.reachable]
    if not missing:
        return
    tried = "; ".join(f"{probes[r.source].display()} is out of reach ({r.reason})" for r in missing)
    raise SolveError(
        f"could not solve {', '.join(platforms)} from {', '.join(env.spec.channels)}: {tried}",
        fix="check the network, or reach the channel through a mirror: --channel URL, or "
        "custom_channels / channel_alias in ~/.condarc, or [mirrors] in pixi's config.toml "
        "(see 'Mirrors and configured sources' in docs/environments.md)",
    )


async def _solve_all(
    env: RenderedEnvironment,
    channel_urls: tuple[str, ...],
    platforms: tuple[str, ...],
    per_platform: dict[str, tuple[VirtualPackage, ...]],
    cache_dir: Path | None,
) -> dict[str, tuple[list[Any], float]]:
    import rattler

    from dlsetup.envs.conda.repodata_hashes import repodata_cache

    with repodata_cache(channel_urls, cache_dir) as cache:  # no credentials in a cache file
        gateway = rattler.Gateway(cache_dir=cache) if cache else rattler.Gateway()
        return await _solve_each(env, channel_urls, platforms, per_platform, gateway)


async def _solve_each(
    env: RenderedEnvironment,
    channel_urls: tuple[str, ...],
    platforms: tuple[str, ...],
    per_platform: dict[str, tuple[VirtualPackage, ...]],
    gateway: Any,
) -> dict[str, tuple[list[Any], float]]:
    import rattler
    from rattler.exceptions import SolverError

    channels = [rattler.Channel(c) for c in channel_urls]
    solutions: dict[str, tuple[list[Any], float]] = {}
    for platform in platforms:
        start = time.perf_counter()
        specs = list(env.dependencies_for(platform))
        if env.pip_for(platform) and not any(s.split()[0].lower() == "pip" for s in specs):
            # conda-lock's rule: a pip: section (not empty on this platform) brings pip
            specs.append("pip")
        try:
            records = await rattler.solve(
                sources=channels,
                specs=specs,
                gateway=gateway,
                platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
                virtual_packages=to_rattler(per_platform[platform]),
            )
        except SolverError as exc:
            raise explain_unsatisfiable(
                str(exc),
                platform=platform,
                specs=env.dependencies_for(platform),
                channels=env.spec.channels,
                variant=env.variant,
                cuda=env.cuda,
                virtual_packages=per_platform[platform],
            ) from exc
        except Exception as exc:  # network, channel and spec errors all come as rattler exceptions
            raise SolveError(
                f"could not solve {platform} from {', '.join(env.spec.channels)}: "
                f"{type(exc).__name__}: {exc}",
                fix="check the --channel URLs (and the network for remote channels), "
                "and the match specs in the environment file",
            ) from exc
        solutions[platform] = (records, (time.perf_counter() - start) * 1000)
    return solutions


def _build_lockfile(
    env: RenderedEnvironment,
    *,
    env_path: Path,
    vp_path: Path,
    solutions: dict[str, tuple[list[Any], float]],
    per_platform: dict[str, tuple[VirtualPackage, ...]],
    engine: str,
    channels: _Channels,
    pypi: Mapping[str, PypiSolution] | None = None,
) -> Any:
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    # conda-lock logs each line a selector leaves out of a platform: dlsetup rendered them so
    logging.getLogger("conda_lock.src_parser.selectors").setLevel(logging.ERROR)
    lock_spec = make_lock_spec(src_files=[env_path], mapping_url=str(pypi_mapping_path()))
    content_hash = compute_content_hashes(
        lock_spec, virtual_package_repo_from_specification(vp_path)
    )
    packages = []
    for platform, (records, _) in solutions.items():
        for rec in records:
            if rec.sha256 is None or rec.md5 is None:
                raise SolveError(
                    f"{rec.file_name} on {rec.channel} has no sha256/md5 in its repodata; "
                    "a lock without hashes cannot be verified",
                    fix="use a channel whose repodata lists sha256 and md5 for every package",
                )
            packages.append(
                LockedDependency(
                    name=rec.name.normalized,
                    version=str(rec.version),
                    manager="conda",
                    platform=platform,
                    dependencies=conda_lock_dependencies(list(rec.depends)),
                    url=channels.stored_url(rec.url),
                    hash=HashModel(md5=rec.md5.hex(), sha256=rec.sha256.hex()),
                    categories={"main"},
                    build=str(rec.build),
                )
            )
    for platform, solution in (pypi or {}).items():
        packages += [
            LockedDependency(
                name=pkg.name,
                version=pkg.version,
                manager="pip",
                platform=platform,
                dependencies=pypi_dependency_specs(pkg.dependencies),
                url=pkg.url,
                hash=HashModel(sha256=pkg.sha256),
                categories={"main"},
            )
            for pkg in solution.packages
        ]
    return Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash=content_hash,
            channels=list(env.spec.channels),
            platforms=list(solutions),
            sources=[env_path.name],
            custom_metadata=custom_metadata(env, per_platform, engine),
        ),
    )


def data_note_lines(env: RenderedEnvironment, lock: Path) -> list[str]:
    """``# Data: ...`` lines, once per framework, when the solve took a release newer than the one
    the knowledge base's CUDA lines were read at (:func:`dlsetup.compat.lines.
    newer_than_data_notes`; the same sentence ends the variant reason). None without a line."""
    if not env.lines:
        return []
    from conda_lock.lockfile import parse_conda_lock_file

    from dlsetup.compat.lines import newer_than_data_notes

    packages = parse_conda_lock_file(lock).package
    notes = newer_than_data_notes((p.name, p.version) for p in packages if p.manager == "conda")
    return [f"# Data: {note}." for note in notes]


def _add_header(lock: Path, header: list[str]) -> None:
    body = lock.read_text(encoding="utf-8")
    lock.write_text("\n".join(header) + "\n" + body, encoding="utf-8")


def lock_environment(
    env: RenderedEnvironment,
    *,
    platforms: tuple[str, ...],
    output_dir: Path,
    engine: str = "rattler",
    force: bool = False,
    cache_dir: Path | None = None,
    cuda_source: str = CUDA_OPTION,
) -> LockResult:
    """Solve ``env`` for each platform and write the environment file, virtual packages and lock.

    This machine's platform is solved with the virtual packages detected here, every other
    platform with the documented floors (:mod:`dlsetup.envs.conda.virtual_packages`).

    Args:
        env: the rendered environment (its ``platforms`` should equal ``platforms``).
        platforms: conda subdirs to lock.
        output_dir: where the three files go (created if missing).
        engine: ``rattler`` or ``conda-lock``.
        force: replace existing output files.
        cache_dir: rattler's repodata cache (default: rattler's own).
        cuda_source: where ``env.cuda`` came from (``option:--cuda`` or ``driver:nvml``),
            recorded with ``__cuda``.

    Raises:
        ExistsError: an output file exists and ``force`` is false.
        InputError: a bad channel, a ``${VAR}`` that is not set, an ``--output`` that cannot be
            written (read-only, under a file).
        MissingToolError: ``engine="conda-lock"`` and no conda/mamba/micromamba executable.
        SolveError: unsatisfiable (explained in plain words) or the channel could not be read.
        WriteError: the files could not be written (a full disk); the old ones are unchanged.
    """
    try:
        return _lock_environment(
            env,
            platforms=platforms,
            output_dir=output_dir,
            engine=engine,
            force=force,
            cache_dir=cache_dir,
            cuda_source=cuda_source,
        )
    except DlsetupError as exc:
        redact_error(exc)
        raise


def _lock_environment(
    env: RenderedEnvironment,
    *,
    platforms: tuple[str, ...],
    output_dir: Path,
    engine: str,
    force: bool,
    cache_dir: Path | None,
    cuda_source: str,
) -> LockResult:
    conda_exe = _conda_executable(engine)
    name = env.spec.name
    if not is_valid_env_name(name):
        raise InputError(f"invalid environment name {name!r}: {NAME_RULE}", fix="rename it")
    env_path, vp_path, lock_path = output_paths(output_dir, name)
    _check_output_dir(output_dir)
    _check_outputs((env_path, vp_path, lock_path), force)
    channels = _channels(env)
    if engine == "rattler":
        _probe_channels(env, channels, platforms)
    host = known_host_platform()  # None on a machine the platform table has no row for
    per_platform = {
        p: virtual_packages(
            p,
            env.cuda,
            host=host,
            cuda_source=cuda_source,
            glibc_needed=env.lines[p].glibc if p in env.lines else None,
        )
        for p in platforms
    }

    solutions: dict[str, tuple[list[Any], float]] = {}
    pypi: dict[str, PypiSolution] = {}
    if engine == "rattler":
        for url in (env.spec.pip_index_url, *env.spec.pip_extra_index_urls):
            if url is not None:
                expand_auth(url)  # an unset ${VAR} fails now, before anything is solved
        from dlsetup.envs.conda import rattler_loop  # the process's one loop for rattler

        solutions = rattler_loop.run(
            _solve_all(env, channels.solve, platforms, per_platform, cache_dir)
        )
        pypi = resolve_all(_pypi_requests(env, solutions, channels))
    content_hash = _write_lock_files(
        env,
        output_dir=output_dir,
        force=force,
        platforms=platforms,
        per_platform=per_platform,
        channels=channels,
        solutions=solutions,
        pypi=pypi,
        engine=engine,
        conda_exe=conda_exe,
    )
    return LockResult(
        name=name,
        target=env.target,
        variant=env.variant,
        cuda=env.cuda,
        python=env.python,
        engine=engine,
        channels=env.spec.channels,
        lock_path=lock_path,
        environment_path=env_path,
        virtual_packages_path=vp_path,
        platforms=tuple(
            _platform_lock(p, per_platform[p], solutions, pypi, lock_path) for p in platforms
        ),
        pypi_notes=(*(n for s in pypi.values() for n in s.notes), *without_metadata_note(pypi)),
        pypi_without_metadata={
            p: s.without_metadata for p, s in pypi.items() if s.without_metadata
        },
        content_hash=content_hash,
        lines=dict(env.lines),
        gpus=env.gpus,
        gpu_source=env.gpu_source,
        companion_notes=env.companion_notes,
        channel_sources=channels.lines(),
    )


def _conda_executable(engine: str) -> str | None:
    """The conda, mamba or micromamba executable ``--engine conda-lock`` runs (None: rattler).

    Raises:
        InputError: an unknown engine.
        MissingToolError: ``conda-lock`` and no such executable.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    conda_exe = find_conda_executable() if engine == "conda-lock" else None
    if engine == "conda-lock" and conda_exe is None:
        raise MissingToolError(
            "--engine conda-lock needs a conda, mamba or micromamba executable, and none is on PATH "
            "(nor $CONDA_EXE)",
            fix="use the default --engine rattler, which needs no conda binary, or install "
            "micromamba (https://mamba.readthedocs.io) and retry",
        )
    return conda_exe


def _write_lock_files(
    env: RenderedEnvironment,
    *,
    output_dir: Path,
    force: bool,
    platforms: tuple[str, ...],
    per_platform: dict[str, tuple[VirtualPackage, ...]],
    channels: _Channels,
    solutions: dict[str, tuple[list[Any], float]],
    pypi: dict[str, PypiSolution],
    engine: str,
    conda_exe: str | None,
) -> dict[str, str]:
    """Write the environment file, the virtual packages and the lock (rattler's ``solutions``
    and ``pypi``, or conda-lock's own solve) into ``output_dir``, all three replaced together;
    the lock's content hashes.

    Raises:
        ExistsError: an output file appeared meanwhile and ``force`` is false.
        WriteError: the files could not be written; the old ones are unchanged.
    """
    env_path, vp_path, lock_path = output_paths(output_dir, env.spec.name)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # all three files are written in a temporary directory beside the outputs (under their
        # final names: conda-lock's header names the lock file), then renamed into place together
        tmp_dir = Path(tempfile.mkdtemp(prefix=".dlsetup-lock-", dir=output_dir))
    except OSError as exc:
        raise output_error(exc, output_dir, what="write into") from exc
    try:
        tmp_env, tmp_vp, tmp_lock = output_paths(tmp_dir, env.spec.name)
        tmp_env.write_text(env.text, encoding="utf-8")
        tmp_vp.write_text(spec_file_text(per_platform), encoding="utf-8")
        if engine == "rattler":
            from conda_lock.lockfile import write_conda_lock_file

            lockfile = _build_lockfile(
                env,
                env_path=tmp_env,
                vp_path=tmp_vp,
                solutions=solutions,
                per_platform=per_platform,
                engine=engine,
                channels=channels,
                pypi=pypi,
            )
            write_conda_lock_file(lockfile, tmp_lock, metadata_choices=None)
            content_hash = dict(lockfile.metadata.content_hash)
        else:
            assert conda_exe is not None
            content_hash = _conda_lock_solve(conda_exe, tmp_env, tmp_vp, tmp_lock, platforms)
        header = header_lines(env, per_platform, channels.lines(), channels.pypi_index())
        _add_header(tmp_lock, header + data_note_lines(env, tmp_lock))
        _check_outputs((env_path, vp_path, lock_path), force)
        replace_together([(tmp_env, env_path), (tmp_vp, vp_path), (tmp_lock, lock_path)])
    except OSError as exc:
        raise output_error(exc, output_dir, what="write the lock files into") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return content_hash


def _platform_lock(
    platform: str,
    virtual: tuple[VirtualPackage, ...],
    solutions: Mapping[str, tuple[list[Any], float]],
    pypi: Mapping[str, PypiSolution],
    lock_path: Path,
) -> PlatformLock:
    """What was locked for ``platform``: rattler's solution and uv's resolution where this
    process solved it, else the packages read back from the lock conda-lock wrote."""
    conda = solutions.get(platform)
    resolved = pypi.get(platform)
    if conda is None:
        packages = _packages_from_lock(lock_path, platform)
    else:
        packages = tuple(
            sorted(
                (LockedPackage(r.name.normalized, str(r.version), str(r.build)) for r in conda[0]),
                key=lambda pkg: pkg.name,
            )
        )
    if resolved is not None:
        pypi_packages = tuple(LockedPackage(pkg.name, pkg.version, "") for pkg in resolved.packages)
    elif conda is None:
        pypi_packages = _packages_from_lock(lock_path, platform, manager="pip")
    else:
        pypi_packages = ()
    return PlatformLock(
        platform=platform,
        virtual_packages=virtual,
        packages=packages,
        solve_ms=conda[1] if conda is not None else 0.0,
        pypi_packages=pypi_packages,
        pypi_ms=resolved.resolve_ms if resolved is not None else 0.0,
        provided_by_conda=resolved.provided_by_conda if resolved is not None else (),
    )


def _pypi_requests(
    env: RenderedEnvironment,
    solutions: Mapping[str, tuple[list[Any], float]],
    channels: _Channels | None = None,
) -> list[PypiRequest]:
    """One uv resolution per platform whose ``pip:`` section is not empty there.

    Raises:
        InputError: the conda part of such a platform has no Python.
    """
    requests = []
    index_url, extra = env.spec.pip_index_url, env.spec.pip_extra_index_urls
    if channels is not None and channels.pypi:
        index_url, extra = channels.pypi_index()
    for platform, (records, _) in solutions.items():
        requirements = env.pip_for(platform)
        if not requirements:
            continue
        python = next((r for r in records if r.name.normalized == "python"), None)
        if python is None:
            raise InputError(
                f"the pip: section needs a Python, and the conda part of {platform} has none",
                fix="add python (e.g. 'python 3.12.*') to the dependencies",
            )
        requests.append(
            PypiRequest(
                platform=platform,
                requirements=tuple(r.text for r in requirements),
                python_version=str(python.version),
                provided=conda_provided(
                    (r.name.normalized, str(r.version), list(r.depends)) for r in records
                ),
                index_url=index_url,
                extra_index_urls=extra,
            )
        )
    return requests


def _packages_from_lock(
    lock_path: Path, platform: str, *, manager: str = "conda"
) -> tuple[LockedPackage, ...]:
    from conda_lock.lockfile import parse_conda_lock_file

    lock = parse_conda_lock_file(lock_path)
    return tuple(
        sorted(
            (
                LockedPackage(p.name, p.version, p.build or "")
                for p in lock.package
                if p.platform == platform and p.manager == manager
            ),
            key=lambda pkg: pkg.name,
        )
    )


def _conda_lock_solve(
    conda_exe: str, env_path: Path, vp_path: Path, lock_out: Path, platforms: tuple[str, ...]
) -> dict[str, str]:
    """Run conda-lock's own solve (``python -m conda_lock lock``) with explicit virtual packages."""
    from conda_lock.lockfile import parse_conda_lock_file

    lock_out.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "conda_lock",
        "lock",
        "--conda",
        conda_exe,
        "--file",
        str(env_path),
        "--virtual-package-spec",
        str(vp_path),
        "--pypi_to_conda_lookup_file",
        str(pypi_mapping_path()),
        "--lockfile",
        str(lock_out),
    ]
    for platform in platforms:
        cmd += ["--platform", platform]
    # its own process group: a timeout or Ctrl-C also ends the conda/mamba solver it started
    proc = children.run(cmd, timeout=CONDA_LOCK_TIMEOUT_S, grace=15.0)
    if proc.timed_out:
        raise SolveError(
            f"conda-lock's solve did not finish within {CONDA_LOCK_TIMEOUT_S} s using {conda_exe}",
            fix="retry with --engine rattler (no conda needed), or lock fewer platforms",
        )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SolveError(
            f"conda-lock's solve failed (exit {proc.returncode}) using {conda_exe}:\n{tail}",
            fix="read conda-lock's message above; --engine rattler explains unsatisfiable CUDA "
            "requests in plain words",
        )
    return dict(parse_conda_lock_file(lock_out).metadata.content_hash)
