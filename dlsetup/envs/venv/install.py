"""Build a venv from a PEP 751 lock: ``uv venv`` beside the target, ``uv pip sync`` of the locked
wheels (hashes required), then the atomic swap (:mod:`dlsetup.envs.staging`)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dlsetup.envs.backend import BuildOptions
from dlsetup.envs.pypi.install import (
    build_options,
    building_note,
    check_sources,
    constraint_args,
    refused_build_requirement,
    run_uv_step,
)
from dlsetup.envs.sources import PYPI_INDEX
from dlsetup.errors import InputError, InstallError

if TYPE_CHECKING:
    from dlsetup.envs.progress import Progress
    from dlsetup.envs.staging import InstallResult, LockWarning
    from dlsetup.envs.venv.pylock import PyLock


def venv_python(prefix: Path) -> Path:
    """A venv's Python executable."""
    if os.name == "nt":
        return prefix / "Scripts" / "python.exe"
    return prefix / "bin" / "python"


#: a Python version as a lock may request it: ``X.Y``, nothing else (never a path or a name)
_PYTHON_XY = re.compile(r"[0-9]{1,2}\.[0-9]{1,3}")


def python_request(lock: PyLock) -> str:
    """The ``X.Y`` Python the venv is built with: the lock's ``[tool.dlsetup] python``, else the
    running one; it must be ``X.Y`` and fit the lock's ``requires-python``.

    ``uv venv --python`` runs whatever file or command name it is given to query it, so a value
    from a file is never passed on unless it is a version.

    Raises:
        InputError: ``python`` is not ``X.Y`` (a path, a name, anything else), or
            ``requires-python`` excludes it.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version

    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    given = lock.tool.get("python") or running
    text = given.strip() if isinstance(given, str) else ""
    if not _PYTHON_XY.fullmatch(text):
        raise InputError(
            f"{lock.path}: [tool.dlsetup] python = {str(given)[:200]!r} is not a Python version "
            "X.Y; dlsetup never runs an interpreter a lock names",
            fix='lock again with dlsetup lock --backend venv, or write python = "3.12"',
        )
    version = str(Version(text))
    try:
        allowed = SpecifierSet(lock.requires_python)
    except InvalidSpecifier as exc:
        raise InputError(
            f"{lock.path}: requires-python {lock.requires_python[:200]!r} is not a specifier",
            fix="lock again with dlsetup lock --backend venv",
        ) from exc
    exact = sys.version.split()[0] if version == running else f"{version}.0"
    if not (
        allowed.contains(version, prereleases=True) or allowed.contains(exact, prereleases=True)
    ):
        raise InputError(
            f"{lock.path} is for Python {lock.requires_python}, not Python {version}",
            fix="lock again for the Python you want (dlsetup lock --backend venv "
            "--python-version X.Y)",
        )
    return version


def _recorded(lock: PyLock) -> tuple[str, list[str], bool]:
    """The lock's default index, PyTorch's indexes and whether ``--index-url`` named the index."""
    torch = lock.tool.get("torch_index")
    torch_urls = [u for u in (torch.values() if isinstance(torch, dict) else ()) if u]
    index = lock.tool.get("index_url")
    request = lock.tool.get("request")
    given = isinstance(request, dict) and bool(request.get("index_url"))
    return (
        index if isinstance(index, str) and index else PYPI_INDEX,
        [u for u in torch_urls if isinstance(u, str)],
        given,
    )


def _key(url: str) -> str:
    """A source's URL as compared: credentials dropped, no trailing slash; a directory as its
    ``file://`` URL."""
    from dlsetup.envs.credentials import strip_auth

    bare = strip_auth(url).rstrip("/")
    if "://" not in bare:
        with contextlib.suppress(OSError, ValueError):
            return Path(bare).expanduser().resolve().as_uri()
    return bare


def _locked_urls(lock: PyLock) -> tuple[list[str], list[str]]:
    """The lock's own records of where its packages come from: each wheel's and sdist's URL
    (compared form), and each package's PEP 751 ``index``."""
    urls: list[str] = []
    indexes: list[str] = []
    for package in lock.document.get("packages", []):
        if not isinstance(package, dict):
            continue
        index = package.get("index")
        if isinstance(index, str) and index:
            indexes.append(index)
        files = [*(package.get("wheels") or []), package.get("sdist") or {}]
        urls += [
            _key(f["url"]) for f in files if isinstance(f, dict) and isinstance(f.get("url"), str)
        ]
    return urls, indexes


def _serves(source: str, urls: list[str]) -> bool:
    """Whether one of the lock's files lies under ``source`` (an index's root, whose
    ``/simple`` page lists files beside it, or a find-links directory)."""
    root = _key(source).removesuffix("/simple")
    return any(u.startswith(root + "/") for u in urls)


def sync_sources(lock: PyLock) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The sources ``uv pip sync`` gets for ``lock``: ``(default index, indexes, find-links)``.

    The wheels' URLs are in the lock, and uv installs each from its URL; the indexes give uv
    their credentials (uv sends an index's credentials to its host) and, with
    ``--allow-build``, the build requirements. So they are what the lock recorded, never what
    is configured today in their place: the index the lock was made with (``index_url``), the
    PyTorch indexes and each package's ``index`` it records, each with the credentials of the
    source of the same URL configured now (a lock stores none); where ``--index-url`` did not
    name the index, also the sources configured now (:func:`dlsetup.envs.sources.
    pypi_sources`) that serve one of the lock's files (their credentials reach those files). A
    lock that records no index (uv's, another tool's) gets the configured sources, the
    configured default index first. Nothing else reaches uv (:func:`dlsetup.envs.pypi.install.
    run_uv_step`).

    Raises:
        InputError: a configuration file that cannot be read (named, with the fix).
    """
    from dlsetup.envs.sources import pypi_sources

    index, torch, given = _recorded(lock)
    configured = () if given else pypi_sources()
    urls, package_indexes = _locked_urls(lock)
    by_key = {_key(s.url): s.url for s in configured if s.kind == "index"}
    if isinstance(lock.tool.get("index_url"), str) and lock.tool.get("index_url"):
        default = by_key.get(_key(index), index)
        serving = [s.url for s in configured if s.kind == "index" and _serves(s.url, urls)]
        links = [s.url for s in configured if s.kind == "find-links" and _serves(s.url, urls)]
    else:  # the lock names no index: the configured ones, as uv would take them
        default = next((s.url for s in configured if s.kind == "index" and s.default), index)
        serving = [s.url for s in configured if s.kind == "index" and not s.default]
        links = [s.url for s in configured if s.kind == "find-links"]
    recorded = [by_key.get(_key(u), u) for u in (*torch, *package_indexes)]
    extras = [u for u in dict.fromkeys((*recorded, *serving)) if _key(u) != _key(default)]
    return default, tuple(extras), tuple(dict.fromkeys(links))


@contextlib.contextmanager
def sync_source_args(lock: PyLock) -> Iterator[list[str]]:
    """uv's options naming :func:`sync_sources`: on its command line, or, where a URL names
    credentials (``${VAR}`` filled in), in a private config file with a private cache."""
    from dlsetup.envs.pypi.uv import index_args, uv_cache

    default, indexes, links = sync_sources(lock)
    with (
        tempfile.TemporaryDirectory(prefix="dlsetup-uv-") as tmp,
        uv_cache((default, *indexes, *links)) as cache,
    ):
        args = index_args(default, indexes, links, workdir=Path(tmp))
        yield args + (["--cache-dir", str(cache)] if cache is not None else [])


def settings_note() -> str | None:
    """What ``create`` says of the user's uv settings uv gets: their names, never their values
    (None where there are none)."""
    from dlsetup.envs.pypi.uv import forwarded_setting_names

    names = forwarded_setting_names()
    return f"uv settings forwarded from your configuration: {', '.join(names)}" if names else None


def lock_warnings(lock: PyLock, platform: str) -> tuple[LockWarning, ...]:
    """The companion CUDA warnings ``lock`` recorded for ``platform``, as ``lock`` said them
    (:func:`dlsetup.envs.venv.cuda_record.recorded_cuda`; nothing is read from a wheel or asked
    of an index).

    Raises:
        InputError: a recorded entry that is not one dlsetup writes.
    """
    from dlsetup.envs.staging import LockWarning
    from dlsetup.envs.venv.cuda_record import recorded_cuda

    return tuple(
        LockWarning(w.message, w.fix, {"platform": w.platform, **w.data()})
        for w in recorded_cuda(lock).warnings_on(platform)
    )


def create_venv(
    lock_path: Path,
    prefix: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    on_ready: Callable[[Path], None] | None = None,
    options: BuildOptions | None = None,
) -> InstallResult:
    """Build a venv at ``prefix`` from the PEP 751 lock ``lock_path``, atomically.

    Args:
        lock_path: a ``pylock.toml``.
        prefix: the venv's directory.
        force: replace an existing environment (only after the new one is complete); a
            non-empty directory that is not an environment is never replaced.
        progress: where progress goes (default: silent).
        on_ready: called with the staged venv before it is moved into place.
        options: what may be built: ``allow_build``, the packages whose sdist uv may build
            (``--allow-build``) after verifying its sha256, in its isolated build environment
            (nothing else is built), with their build requirements pinned and hashed by
            ``build_constraints`` (``--build-constraints``) when given.

    Raises:
        InputError: a bad prefix; the lock is not TOML or not PEP 751, or does not fit here.
        ExistsError: as :func:`dlsetup.envs.safety.check_prefix`.
        IntegrityError: a package without a wheel or a sha256; a wheel whose hash differs
            (uv's refusal).
        InstallError: another create holds the target, or uv failed. The target is untouched.
    """
    from dlsetup.envs.location import host_platform
    from dlsetup.envs.lockfiles.formats import plan_text
    from dlsetup.envs.progress import Progress
    from dlsetup.envs.safety import check_prefix, deferred_signals, normalize_prefix, target_lock
    from dlsetup.envs.staging import PARTIAL_MARK, InstallResult, clean_leftovers, swap_into_place
    from dlsetup.envs.venv.pylock import parse_pylock
    from dlsetup.envs.venv.read import locked_environment
    from dlsetup.errors import IntegrityError

    start = time.perf_counter()
    progress = progress or Progress(enabled=False)
    allow_build = (options or BuildOptions()).allow_build
    prefix = normalize_prefix(prefix)
    check_prefix(prefix, force=force)
    lock = parse_pylock(lock_path, named=True, allow_build=allow_build)
    python = python_request(lock)  # an X.Y, never a path: validated before anything is chosen
    warned = lock_warnings(lock, host_platform())  # read from the lock, checked before a build
    # wheels only; an sdist only where --allow-build names it
    locked = locked_environment(lock, host_platform(), python, allow_build)
    check_sources(locked.pypi, locked.platform, lock_path, allow_build)
    progress.note(plan_text(locked))
    for w in warned:  # recorded in the lock: as lock said it, before a wheel is downloaded
        progress.note(f"Warning: {w.message}. Fix: {w.fix}")
    note = building_note(locked.pypi, options or BuildOptions())
    if note is not None:
        progress.note(note)
    forwarded = settings_note()
    if forwarded is not None:
        progress.note(forwarded)
    with target_lock(prefix):
        with deferred_signals():
            clean_leftovers(prefix)
        replaced = check_prefix(prefix, force=force)
        work = prefix.parent / f"{PARTIAL_MARK}{prefix.name}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        staged = work / "env"
        try:
            work.mkdir()
            progress.note(f"Creating a venv (Python {python}) with uv ...")
            # the running interpreter when it is the version asked for: uv need not search;
            # otherwise the validated X.Y, which uv finds as it finds any requested version
            running = f"{sys.version_info.major}.{sys.version_info.minor}"
            interpreter = sys.executable if python == running else python
            run_uv_step(
                ["venv", "--relocatable", "--quiet", "--python", interpreter, str(staged)],
                "create a venv",
            )
            progress.note(f"Installing {len(locked.pypi)} packages from {lock_path.name} ...")
            try:
                with sync_source_args(lock) as sources:
                    run_uv_step(
                        ["pip", "sync", "--python", str(venv_python(staged)), "--require-hashes",
                         *build_options(locked.pypi, allow_build,
                                        constraint_args(options, work)), "--preview-features",
                         "pylock", "--quiet", *sources, str(lock_path)],
                        "install the lock",
                    )  # fmt: skip
            except InstallError as exc:
                refused = refused_build_requirement(exc.message, options)
                if refused is not None:
                    raise refused from exc
                if "Hash mismatch" in exc.message:
                    raise IntegrityError(
                        f"a wheel's hash differs from {lock_path.name}'s: {exc.message}",
                        fix="the file is not the one locked: lock again, or find out who changed it",
                    ) from exc
                raise
            if on_ready is not None:
                on_ready(staged)
            with deferred_signals():
                swap_into_place(staged, prefix)
        finally:  # uv has ended (its process group is killed on an interrupt): nothing writes
            with deferred_signals():
                shutil.rmtree(work, ignore_errors=True)
    return InstallResult(
        prefix=prefix,
        platform=locked.platform,
        packages=len(locked.conda),
        python=venv_python(prefix),
        replaced=replaced,
        seconds=time.perf_counter() - start,
        pypi_packages=len(locked.pypi),
        lock_format=locked.format,
        cuda_warnings=warned,
    )
