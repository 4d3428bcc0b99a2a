"""Build an environment from a conda-lock file: verified, and moved into place only when complete.

Safety rules, in order:

1. The lock is read with ``rattler.LockFile``; the platform must be in it.
2. Every package must carry a sha256, or an md5 where that is all its channel published (said
   once, as the weaker hash), and its URL must be ``<channel>/<subdir>/<file name>``
   under one of the lock's declared channels, with a conda archive's file name (``.conda`` or
   ``.tar.bz2``); a channel is an ``http(s)://`` or ``file://`` URL, never the filesystem root.
   Anything else is refused (:class:`IntegrityError`) before any download.
3. Every archive is fetched into a content-addressed cache (``<sha256>-<file name>``) and its
   sha256 (and md5, when the lock has one) is computed and compared with the lock's; a mismatch
   is refused. (rattler checks hashes of archives it downloads over HTTP, but not of ``file://``
   packages, and it reuses a package cache entry by name, so dlsetup checks every archive
   itself.) Each verified archive is then read, not extracted, by
   :func:`dlsetup.envs.safety.inspect_archive`: paths inside the prefix, links pointing inside
   it, no link listed as a file with a prefix placeholder. rattler then installs the verified
   copies, from a package cache private to this build, and runs no link scripts (those it
   skipped are reported).
4. The target (:func:`dlsetup.envs.safety.check_prefix`): ``force`` replaces only an environment
   (``conda-meta/`` or a venv's ``pyvenv.cfg``), never another non-empty directory; one build per
   target at a time (:func:`dlsetup.envs.safety.target_lock`).
5. The environment is built in a sibling directory ``.dlsetup-partial-<name>-<pid>/env`` with the
   final path patched into its files, its modes masked and its links checked
   (:func:`dlsetup.envs.safety.secure_tree`), and renamed into place only when complete. An
   existing environment is replaced only after the new one is complete (the old one is first
   renamed to ``.dlsetup-old-<name>-<pid>``, then removed; an interruption between the two
   renames puts it back). A Ctrl-C or SIGTERM removes the partial build, even while rattler's
   threads still unpack into it (:func:`remove_partial`); after a SIGKILL the next run removes
   it (and restores an old environment whose replacement was cut off between the two renames).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from dlsetup.envs.backend import BuildOptions
from dlsetup.envs.credentials import canonical, expand_auth
from dlsetup.envs.files import names
from dlsetup.envs.location import host_platform
from dlsetup.envs.lockfiles.formats import DEFAULT_DEV, PypiPackage, read_locked_environment
from dlsetup.envs.progress import Progress
from dlsetup.envs.safety import (
    ArchiveFacts,
    check_prefix,
    check_transaction,
    deferred_signals,
    inspect_archive,
    normalize_prefix,
    secure_tree,
    target_lock,
)
from dlsetup.envs.staging import (
    InstallResult,
    clean_leftovers,
    fresh_work_dir,
    remove_partial,
    swap_into_place,
    trash_of,
)
from dlsetup.errors import DlsetupError, InputError, InstallError, IntegrityError

if TYPE_CHECKING:
    from rattler.install.installer import InstallerReporter


def validate_env_name(name: str) -> str:
    """Check an environment name (``--name``); the rule is :mod:`dlsetup.envs.files.names`'s."""
    return names.validate_env_name(name)


def env_python(prefix: Path, platform: str) -> Path | None:
    """The environment's Python executable, if the environment has one."""
    candidate = prefix / "python.exe" if platform.startswith("win") else prefix / "bin" / "python"
    return candidate if candidate.exists() else None


def _channel_base(url: str, lock: Path) -> str:
    if "://" not in url:
        import rattler

        try:
            url = rattler.Channel(url).base_url
        except Exception as exc:  # rattler's InvalidChannelError and kin
            raise InputError(
                f"{lock} names a channel rattler cannot read: {url!r} ({exc})",
                fix="a channel is a name (conda-forge) or a URL; regenerate the lock",
            ) from exc
    # rattler reads a package URL back with ``${VAR}`` percent-encoded but a channel without:
    # compare both in the one spelling the lock was written with
    return canonical(url.rstrip("/") + "/")


@dataclass(frozen=True)
class LockContents:
    """The part of a lock one platform needs.

    Attributes:
        path: the lock file.
        platform: the platform installed.
        channels: the declared conda channels, as base URLs ending in ``/``.
        records: rattler records of the conda packages.
        pypi: the PyPI packages, installed with uv after the conda ones.
        format: the lock's format (``conda-lock-v1``, ``explicit``, ``pixi``).
        environment: the lock environment chosen (pixi.lock), else ``default``.
        categories: the conda-lock categories installed.
        metadata_from_archive: the records carry only what an explicit lock has (name,
            version, build, URL, hash); the rest is read from each verified archive.
        hashes_from: canonical URLs of the records whose hashes came from their channel's
            repodata.json, not from the lock (an unhashed ``conda list --explicit`` line:
            :mod:`dlsetup.envs.conda.repodata_hashes`).
    """

    path: Path
    platform: str
    channels: tuple[str, ...]
    records: list[Any]
    pypi: tuple[PypiPackage, ...] = ()
    format: str = "conda-lock-v1"
    environment: str = "default"
    categories: tuple[str, ...] = ()
    metadata_from_archive: bool = False
    hashes_from: frozenset[str] = frozenset()


def read_lock_contents(
    path: Path,
    platform: str,
    *,
    environment: str | None = None,
    dev: bool = DEFAULT_DEV,
    extras: tuple[str, ...] = (),
) -> LockContents:
    """Read ``path`` (any format :mod:`dlsetup.envs.lockfiles.formats` reads) for ``platform``.

    Raises:
        InputError: the file is missing, malformed or of an unsupported format (the message
            names it and the supported ones), or has no packages for ``platform`` (or the
            environment or category asked for).
    """
    locked = read_locked_environment(
        path, platform, environment=environment, dev=dev, extras=extras
    )
    channels = tuple(_channel_base(str(c), path) for c in locked.channels)
    return LockContents(
        path,
        platform,
        channels,
        locked.conda,
        pypi=locked.pypi,
        format=locked.format,
        environment=locked.environment,
        categories=locked.categories,
        metadata_from_archive=locked.metadata_from_archive,
    )


_ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")


def _check_channel(base: str, lock_path: Path) -> None:
    parsed = urlparse(base)
    path = unquote(parsed.path)
    why = ""
    if parsed.scheme not in ("https", "http", "file"):
        why = "is not an http(s):// or file:// URL"
    elif parsed.query or parsed.fragment or parsed.params or "\0" in path:
        why = "has a query, fragment or NUL in it"
    elif parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        why = "is a file:// URL on another host"
    elif parsed.scheme != "file" and not parsed.netloc:
        why = "has no host"
    elif ".." in path.split("/"):
        why = "has a '..' component"
    elif parsed.scheme == "file" and not path.strip("/"):
        why = "is the filesystem root"
    if why:
        raise IntegrityError(
            f"the channel {base} in {lock_path} {why}; refused",
            fix="a channel is a conda channel's URL (https://... or file:///path/to/channel): "
            "regenerate the lock with dlsetup lock",
        )


def _check_url_shape(rec: Any, base: str, lock_path: Path) -> None:
    """The URL must be ``<channel>/<subdir>/<file name>``, the file name a conda archive's."""
    name = str(rec.file_name)
    relative = unquote(canonical(rec.url)[len(base) :])
    if (
        not name.endswith(_ARCHIVE_SUFFIXES)
        or any(c in name for c in "/\\\0")
        or relative != f"{rec.subdir}/{name}"
    ):
        raise IntegrityError(
            f"{name} in {lock_path} comes from {rec.url}, which is not a conda archive named "
            f"{name} in the channel's {rec.subdir}/ directory; refused",
            fix="regenerate the lock with dlsetup lock (a hand-edited lock is refused)",
        )


#: conda package names (conda's MatchSpec grammar: lowercase letters, digits, ``._-+``), and
#: version and build strings (no path separators, whitespace or control characters).
_PACKAGE_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.+-]*$")
_VERSION_BUILD_RE = re.compile(r"^[A-Za-z0-9_.+!*-]+$")


def _check_record_identity(rec: Any, lock_path: Path) -> None:
    """Refuse a record whose name, version or build could not be a conda package's.

    rattler names ``conda-meta/<name>-<version>-<build>.json`` after them; a name like
    ``file:///etc/passwd`` would otherwise fail only halfway through the install.
    """
    name, version, build = str(rec.name.normalized), str(rec.version), str(rec.build)
    bad = (
        ("name", name)
        if not _PACKAGE_NAME_RE.match(name)
        else ("version", version)
        if not _VERSION_BUILD_RE.match(version)
        else ("build", build)
        if not _VERSION_BUILD_RE.match(build)
        else None
    )
    if bad is not None:
        raise IntegrityError(
            f"a package in {lock_path} has the {bad[0]} {bad[1][:80]!r}, which no conda package "
            "has; refused",
            fix="regenerate the lock with dlsetup lock (a hand-edited lock is refused)",
        )


def verify_lock(contents: LockContents) -> None:
    """Refuse a package without a hash (sha256, else md5) or not at
    ``<declared channel>/<subdir>/<file name>``."""
    if not contents.channels:
        raise IntegrityError(
            f"{contents.path} declares no channels", fix="regenerate it with dlsetup lock"
        )
    for base in contents.channels:
        _check_channel(base, contents.path)
        expand_auth(base)  # a ``${VAR}`` the environment lacks is named now, before any download
    for rec in contents.records:
        # an explicit lock carries md5 only (conda list --explicit --md5, conda-lock render) or
        # no hash at all (conda list --explicit): the channel's repodata.json gives it then
        # (dlsetup.envs.conda.repodata_hashes), before anything is fetched
        # a conda-lock v1 or pixi.lock entry with an md5 only (a channel that never published
        # sha256, such as the old ``nvidia`` label) is verified by its md5, as conda, conda-lock
        # and pixi verify it (:func:`md5_only_note` says so once)
        if rec.sha256 is None and rec.md5 is None and not contents.metadata_from_archive:
            raise IntegrityError(
                f"{rec.file_name} in {contents.path} has no hash (neither sha256 nor md5); "
                "unverifiable packages are refused",
                fix="regenerate the lock with the tool that wrote it (conda-lock, pixi lock, "
                "dlsetup lock): each records the hashes the channel publishes",
            )
        _check_record_identity(rec, contents.path)
        url = canonical(rec.url)
        if (
            not any(url.startswith(base) for base in contents.channels)
            or ".." in urlparse(url).path
        ):
            raise IntegrityError(
                f"{rec.file_name} in {contents.path} comes from {url}, outside the lock's declared "
                f"channels ({', '.join(contents.channels)}); refused",
                fix="a lock must only name packages from its own channels: regenerate it with "
                "dlsetup lock",
            )
        _check_url_shape(
            rec, max((b for b in contents.channels if url.startswith(b)), key=len), contents.path
        )


def md5_only_note(contents: LockContents) -> str | None:
    """One line saying how many packages are verified by their md5 alone (no sha256 in the lock
    or their channel's repodata.json), or ``None`` when every package has a sha256."""
    weak = [rec for rec in contents.records if rec.sha256 is None and rec.md5 is not None]
    if not weak:
        return None
    first = ", ".join(str(rec.name.normalized) for rec in weak[:3])
    more = f" and {len(weak) - 3} more" if len(weak) > 3 else ""
    return (
        f"{len(weak)} packages of {contents.path.name} ({first}{more}) have an md5 and no "
        "sha256: each is verified by its md5, the weaker hash (as conda, conda-lock and pixi "
        "verify it)"
    )


def _digests_of(path: Path) -> tuple[str, str]:
    """sha256 and md5 of ``path`` (the md5 only to compare with a lock that carries one)."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


async def _fetch(url: str, dest: Path) -> None:
    import asyncio

    parsed = urlparse(url)
    if parsed.scheme == "file":
        await asyncio.to_thread(shutil.copyfile, url2pathname(unquote(parsed.path)), dest)
        return
    import rattler
    from rattler.package_streaming import download_to_path

    await download_to_path(rattler.Client(), expand_auth(url), dest)


async def _fetch_one(rec: Any, contents: LockContents, archive_cache: Path) -> Path:
    import asyncio

    expected = rec.sha256.hex() if rec.sha256 is not None else None
    expected_md5 = rec.md5.hex() if rec.md5 is not None else None
    if expected is None and expected_md5 is None:  # never fetched unverified
        from dlsetup.envs.conda.repodata_hashes import FIX

        raise IntegrityError(
            f"{rec.file_name} in {contents.path} has no hash; unverifiable packages are refused",
            fix=FIX,
        )
    says = (
        f"its channel's repodata.json (for the unhashed line of {contents.path.name}) says"
        if canonical(rec.url) in contents.hashes_from
        else f"the lock {contents.path.name} says"
    )
    key = expected if expected is not None else f"md5-{expected_md5}"
    local = archive_cache / f"{key}-{rec.file_name}"
    if local.is_file():
        sha256, md5 = await asyncio.to_thread(_digests_of, local)
        if expected in (None, sha256) and expected_md5 in (None, md5):
            return local
    partial = local.with_name(local.name + f".part{os.getpid()}")
    try:
        await _fetch(rec.url, partial)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise InstallError(
            f"could not fetch {rec.url}: {exc}",
            fix="check the channel is reachable, then retry (the target was not touched)",
        ) from exc
    actual, actual_md5 = await asyncio.to_thread(_digests_of, partial)
    for kind, want, have in (("sha256", expected, actual), ("md5", expected_md5, actual_md5)):
        if want is not None and want != have:
            partial.unlink(missing_ok=True)
            raise IntegrityError(
                f"{kind} mismatch for {rec.file_name}: {says} {want}, the archive at "
                f"{rec.url} has {have}; refused",
                fix="the lock or the package was changed after locking: regenerate the lock "
                "with dlsetup lock from a channel you trust",
            )
    os.replace(partial, local)
    return local


@dataclass(frozen=True)
class Verified:
    """An archive that passed its hash and content checks, and what the content check found."""

    local: Path
    facts: ArchiveFacts


async def _index_json(local: Path) -> dict[str, Any]:
    from rattler.package_streaming import PackageArchive

    opened = await PackageArchive.from_path(local)
    async for entry in opened.stream("info"):
        if entry.name.lstrip("./") == "info/index.json":
            data = json.loads(await entry.read())
            if isinstance(data, dict):
                return data
    return {}


async def record_from_archive(rec: Any, local: Path, lock_path: Path) -> Any:
    """The full rattler record of an explicit lock's package, from its verified archive.

    An explicit lock names only the URL and a hash; ``noarch``, the dependencies and the rest
    come from the archive's ``info/index.json``, which must agree with the file name.

    Raises:
        IntegrityError: the archive has no ``info/index.json`` or it names another package.
    """
    import rattler

    try:
        index = await _index_json(local)
    except Exception as exc:
        raise IntegrityError(
            f"package {rec.file_name} is refused: its archive cannot be read ({exc})",
            fix="render the explicit lock again from a channel you trust",
        ) from exc
    said = (str(index.get("name")), str(index.get("version")), str(index.get("build")))
    named = (rec.name.normalized, str(rec.version), str(rec.build))
    if said != named or str(index.get("subdir", rec.subdir)) != str(rec.subdir):
        raise IntegrityError(
            f"package {rec.file_name} in {lock_path} is refused: its info/index.json says "
            f"{'-'.join(said)} for {index.get('subdir')}",
            fix="render the explicit lock again from a channel you trust",
        )
    sha256, md5 = await asyncio_to_thread(_digests_of, local)
    noarch = index.get("noarch")
    record = rattler.PackageRecord(
        name=said[0],
        version=said[1],
        build=rattler.BuildString(said[2]),
        build_number=int(index.get("build_number", 0) or 0),
        subdir=str(rec.subdir),
        arch=index.get("arch"),
        platform=index.get("platform"),
        noarch=noarch if noarch in ("python", "generic") else None,
        depends=[str(d) for d in index.get("depends", [])],
        constrains=[str(c) for c in index.get("constrains", [])],
        sha256=bytes.fromhex(sha256),
        md5=bytes.fromhex(md5),
        size=local.stat().st_size,
        license=index.get("license"),
    )
    return rattler.RepoDataRecord(record, rec.file_name, rec.url, str(rec.channel))


async def asyncio_to_thread(func: Callable[..., Any], *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(func, *args)


async def _inspect(local: Path, rec: Any) -> ArchiveFacts:
    try:
        return await inspect_archive(local, str(rec.file_name), rec.name.normalized)
    except DlsetupError:
        raise
    except Exception as exc:  # rattler cannot read the archive at all
        raise IntegrityError(
            f"package {rec.file_name} is refused: its archive cannot be read ({exc})",
            fix="regenerate the lock with dlsetup lock from a channel you trust",
        ) from exc


async def fetch_verified(
    contents: LockContents, archive_cache: Path, progress: Progress, *, parallel: int = 8
) -> dict[str, Verified]:
    """Fetch every archive into ``archive_cache``, check its hashes, then read it for safety.

    Up to ``parallel`` archives are fetched, hashed and read at once; an archive already in the
    cache is re-hashed, never trusted by name. Each verified archive is read by
    :func:`dlsetup.envs.safety.inspect_archive`, and all of them together by
    :func:`dlsetup.envs.safety.check_transaction`, before rattler sees any.

    Returns:
        ``{url: the verified archive and what its inspection found}``.

    Raises:
        IntegrityError: an archive's sha256 or md5 differs from the lock's, or its content is
            unsafe.
        InstallError: an archive could not be fetched.
    """
    import asyncio

    archive_cache.mkdir(parents=True, exist_ok=True)
    limit = asyncio.Semaphore(parallel)
    progress.start("verify", len(contents.records))

    async def one(rec: Any) -> tuple[str, Verified]:
        async with limit:
            local = await _fetch_one(rec, contents, archive_cache)
            facts = await _inspect(local, rec)
        progress.advance("verify", rec.file_name)
        return rec.url, Verified(local, facts)

    tasks = [asyncio.ensure_future(one(rec)) for rec in contents.records]
    try:
        pairs = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for leftover in archive_cache.glob(f"*.part{os.getpid()}"):
            leftover.unlink(missing_ok=True)
        raise
    progress.finish("verify")
    check_transaction([verified.facts for _, verified in pairs])
    return dict(pairs)


class _Reporter:
    """rattler InstallerReporter feeding :class:`Progress`."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_transaction_start(self, total_operations: int) -> None:
        self.progress.start("link", total_operations)

    def on_link_start(self, operation: int, package_name: str) -> int:
        return operation

    def on_link_complete(self, index: int) -> None:
        self.progress.advance("link", "")

    def on_transaction_complete(self) -> None:
        self.progress.finish("link")


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the process's one rattler loop (:mod:`dlsetup.envs.conda.rattler_loop`),
    never closed under rattler's threads; a Ctrl-C or SIGTERM cancels it and waits for it."""
    from dlsetup.envs.conda import rattler_loop

    return rattler_loop.run(coro)


#: set when an interrupted install waits for rattler to end (ends the test pause at once)
_STOPPING = threading.Event()
#: how long an interrupted install waits for rattler's in-flight work to fail at the blocker
RATTLER_STOP_SECONDS = 10.0


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """While rattler's threads fail at the blocker, send what native code writes to fd 2 nowhere.

    A tokio worker that meets the blocker can panic, and Rust prints the panic straight to file
    descriptor 2 — a backtrace note after "Interrupted." that looks like a crash. Python's own
    ``sys.stderr`` keeps writing to the real stream meanwhile; fd 2 is restored afterwards. Where
    ``sys.stderr`` is not fd 2 (an embedding, a test runner), nothing is changed.
    """
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            raise OSError("stderr is not fd 2")
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        yield
        return
    original = sys.stderr
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = open(saved, "w", encoding=original.encoding, errors="replace", closefd=False)  # noqa: SIM115
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


def _run_rattler(install: Coroutine[Any, Any, object], work: Path) -> None:
    """Run rattler's install on the process's rattler loop and wait for it; interruptible.

    On Ctrl-C or SIGTERM the partial build is removed at once (:func:`remove_partial` leaves an
    empty blocker file at its path), then this waits, up to :data:`RATTLER_STOP_SECONDS`, for
    rattler's install to end: its in-flight unpack or link fails at its next path under the
    blocker. (Cancelling rattler's task from the main thread's event loop returned at once while
    rattler went on for the whole exit, and at exit, with the blocker gone, a still-running
    unpack recreated part of the build: 1 run in about 60 of the fault-injection test.) The
    blocker stays until the process exits, for work rattler started in threads of its own
    (an unpack goes on after the install itself has failed).
    """
    from dlsetup.envs.conda import rattler_loop

    job = rattler_loop.Job(install)  # not cancelled on an interrupt: waited for, as below
    try:
        job.wait()
    except BaseException:
        with deferred_signals(), _native_stderr_silenced():
            _STOPPING.set()
            remove_partial(work)
            job.wait(RATTLER_STOP_SECONDS)
            # rattler may have written into the moved-away build through a handle it held
            shutil.rmtree(trash_of(work), ignore_errors=True)
        raise
    job.result()


def _fix_conda_meta(prefix: Path, originals: dict[str, str]) -> None:
    """Record the lock's URLs (not the verified local copies) in ``conda-meta/*.json``."""
    meta = prefix / "conda-meta"
    by_local = {Path(url2pathname(urlparse(v).path)).name: k for k, v in originals.items()}
    for record_file in meta.glob("*.json"):
        data = json.loads(record_file.read_text(encoding="utf-8"))
        url = str(data.get("url", ""))
        name = Path(url2pathname(urlparse(url).path)).name
        if name in by_local:
            data["url"] = by_local[name]
            data["channel"] = by_local[name].rsplit("/", 2)[0]
            data.pop("extracted_package_dir", None)
            data.pop("package_tarball_full_path", None)
            record_file.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _skipped_scripts(verified: dict[str, Verified], records: list[Any]) -> tuple[str, ...]:
    return tuple(
        f"{rec.name.normalized}: {script}"
        for rec in sorted(records, key=lambda r: str(r.name.normalized))
        for script in verified[rec.url].facts.scripts
    )


def create_environment(
    lock_path: Path,
    prefix: Path,
    *,
    platform: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    archive_cache: Path | None = None,
    on_ready: Callable[[Path], None] | None = None,
    environment: str | None = None,
    dev: bool = DEFAULT_DEV,
    extras: tuple[str, ...] = (),
    options: BuildOptions | None = None,
) -> InstallResult:
    """Install ``lock_path``'s packages for ``platform`` into ``prefix``, atomically.

    The conda packages are linked into a staged prefix, then the PyPI packages are installed
    into it with uv (:mod:`dlsetup.envs.pypi.install`), then it is moved into place.

    Args:
        lock_path: a conda-lock v1, explicit or pixi.lock file
            (:mod:`dlsetup.envs.lockfiles.formats`).
        prefix: the environment directory to create.
        platform: the lock platform to install (default: this machine's).
        force: replace an existing environment (only after the new one is complete); a
            non-empty directory that is not an environment is never replaced.
        progress: where progress goes (default: silent).
        archive_cache: content-addressed archive cache (default ``~/.cache/dlsetup/archives``).
        on_ready: called with the staged environment before it is moved into place.
        environment: the pixi.lock environment (default ``default``).
        dev: install conda-lock's ``dev`` category (as ``conda-lock install --dev``).
        extras: more conda-lock categories (as ``conda-lock install --extras``).
        options: what its PyPI phase may build: ``allow_build``, the source distributions uv
            builds (``--allow-build``) after their sha256 is verified (every other PyPI package
            must be a wheel), with ``build_constraints`` (``--build-constraints``) pinning and
            hashing their build requirements when given.

    Raises:
        InputError: ``prefix`` is empty, a file, under a file, a link, or not writable.
        ExistsError: ``prefix`` is a non-empty directory that is not an environment, or an
            environment and ``force`` is false.
        IntegrityError: missing hash, foreign URL, hash mismatch, or an unsafe package.
        InstallError: another create holds the target, or fetching or linking failed. The
            target is untouched in every case.
    """
    start = time.perf_counter()
    progress = progress or Progress(enabled=False)
    platform = platform or host_platform()
    prefix = normalize_prefix(prefix)
    check_prefix(prefix, force=force)
    contents = read_lock_contents(
        lock_path, platform, environment=environment, dev=dev, extras=extras
    )
    verify_lock(contents)
    from dlsetup.envs.pypi.install import check_packages

    options = options or BuildOptions()
    check_packages(  # no download yet
        contents.pypi, platform, lock_path, python_version(contents), options.allow_build
    )
    progress.note(plan_text(contents))
    contents = _hashes_for_unhashed_lines(contents, progress)
    weak = md5_only_note(contents)
    if weak is not None:
        progress.note(weak)
    with target_lock(prefix):
        with deferred_signals():
            clean_leftovers(prefix)
        replaced = check_prefix(prefix, force=force)  # again: now no other create can change it
        return _install_locked(
            contents,
            prefix,
            progress,
            archive_cache,
            on_ready,
            replaced=replaced,
            start=start,
            options=options,
        )


def _cache_root() -> Path:
    """dlsetup's cache directory (``$XDG_CACHE_HOME/dlsetup``, else ``~/.cache/dlsetup``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlsetup"


def _hashes_for_unhashed_lines(contents: LockContents, progress: Progress) -> LockContents:
    """An explicit lock's lines without a hash get their channel's (repodata.json) hashes."""
    from dlsetup.envs.conda.repodata_hashes import hashes_from_repodata, unhashed

    count = len(unhashed(contents.records)) if contents.metadata_from_archive else 0
    if not count:
        return contents
    progress.note(
        f"{count} packages of {contents.path.name} have no hash: taking each one's from its "
        "channel's repodata.json ..."
    )
    result: LockContents = _run_async(hashes_from_repodata(contents, _cache_root() / "repodata"))
    return result


def _install_locked(
    contents: LockContents,
    prefix: Path,
    progress: Progress,
    archive_cache: Path | None,
    on_ready: Callable[[Path], None] | None,
    *,
    replaced: bool,
    start: float,
    options: BuildOptions,
) -> InstallResult:
    import rattler

    cache = archive_cache or _cache_root() / "archives"
    verified = _run_async(fetch_verified(contents, cache, progress))
    if contents.metadata_from_archive:
        import asyncio

        async def full_records() -> list[Any]:
            return list(
                await asyncio.gather(
                    *(
                        record_from_archive(rec, verified[rec.url].local, contents.path)
                        for rec in contents.records
                    )
                )
            )

        contents = _replace_records(contents, _run_async(full_records()))

    work = fresh_work_dir(prefix)
    staged = work / "env"
    originals: dict[str, str] = {}
    records = []
    for rec in contents.records:
        local_url = verified[rec.url].local.as_uri()
        originals[rec.url] = local_url
        records.append(rec)
    skipped = _skipped_scripts(verified, records)
    for rec in records:
        rec.url = originals[rec.url]
    linked = False
    pypi_count = 0
    try:
        work.mkdir()
        _run_rattler(
            rattler.install(
                records,
                target_prefix=staged,
                cache_dir=work / "pkgs",
                alternative_target_prefix=prefix,
                show_progress=False,
                reporter=cast("InstallerReporter", _Reporter(progress)),
                execute_link_scripts=False,
            ),
            work,
        )
        linked = True  # rattler's threads are done with ``work``
        pypi_count = _install_pypi(contents, staged, prefix, progress, options)
        secure_tree(staged)
        _fix_conda_meta(staged, originals)
        (staged / "CACHEDIR.TAG").unlink(missing_ok=True)
        if on_ready is not None:
            on_ready(staged)
        with deferred_signals():
            swap_into_place(staged, prefix)
    except (KeyboardInterrupt, SystemExit, DlsetupError):
        raise
    except Exception as exc:
        raise InstallError(
            f"installing {contents.path.name} into {prefix} failed: {exc}",
            fix="the target was left as it was; read the cause above and retry",
        ) from exc
    finally:
        with deferred_signals():  # a half-removed build would be left behind
            if linked:
                shutil.rmtree(work, ignore_errors=True)
            else:
                remove_partial(work)
    return InstallResult(
        prefix=prefix,
        platform=contents.platform,
        packages=len(records),
        python=env_python(prefix, contents.platform),
        replaced=replaced,
        seconds=time.perf_counter() - start,
        skipped_scripts=skipped,
        pypi_packages=pypi_count,
        lock_format=contents.format,
        environment=contents.environment,
        categories=contents.categories,
    )


def python_version(contents: LockContents) -> str | None:
    """The version of the ``python`` conda package of the lock, if it has one (``3.11.7``)."""
    for rec in contents.records:
        if rec.name.normalized == "python":
            return str(rec.version)
    return None


def plan_text(contents: LockContents) -> str:
    """The line printed before installing: conda and PyPI packages counted apart, in the words
    every backend's plan uses (:func:`dlsetup.envs.lockfiles.formats.plan_text`)."""
    from dlsetup.envs.lockfiles.formats import LockedEnvironment
    from dlsetup.envs.lockfiles.formats import plan_text as locked_plan_text

    return locked_plan_text(
        LockedEnvironment(
            path=contents.path,
            format=contents.format,
            environment=contents.environment,
            platform=contents.platform,
            channels=contents.channels,
            conda=contents.records,
            pypi=contents.pypi,
            categories=contents.categories,
        )
    )


def _replace_records(contents: LockContents, records: list[Any]) -> LockContents:
    import dataclasses

    return dataclasses.replace(contents, records=records)


def _install_pypi(
    contents: LockContents,
    staged: Path,
    prefix: Path,
    progress: Progress,
    options: BuildOptions,
) -> int:
    if not contents.pypi:
        return 0
    from dlsetup.envs.pypi.install import building_note, install_pypi

    progress.note(f"Installing {len(contents.pypi)} PyPI packages with uv ...")
    note = building_note(contents.pypi, options)
    if note is not None:
        progress.note(note)
    count = install_pypi(
        contents.pypi,
        python=env_python(staged, contents.platform),
        staged=staged,
        final=prefix,
        platform=contents.platform,
        lock=contents.path,
        options=options,
    )
    progress.note(f"PyPI packages: done ({count}/{len(contents.pypi)})")
    return count
