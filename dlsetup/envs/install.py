"""Build an environment from a conda-lock file: verified, and moved into place only when complete.

Safety rules, in order:

1. The lock is read with ``rattler.LockFile``; the platform must be in it.
2. Every package must carry a sha256, and its URL must lie under one of the lock's declared
   channels; anything else is refused (:class:`IntegrityError`) before any download.
3. Every archive is fetched into a content-addressed cache (``<sha256>-<file name>``) and its sha256
   is computed and compared with the lock's; a mismatch is refused. (rattler checks hashes of
   archives it downloads over HTTP, but not of ``file://`` packages, and it reuses a package cache
   entry by name, so dlsetup checks every archive itself.) rattler then installs the verified
   copies, from a package cache private to this build.
4. The environment is built in a sibling directory ``.dlsetup-partial-<name>-<pid>/env`` with the
   final path patched into its files, and renamed into place only when complete. An existing
   target is replaced only with ``force``, and only after the new one is complete (the old one is
   first renamed to ``.dlsetup-old-<name>-<pid>``, then removed). A Ctrl-C removes the partial
   build, even while rattler's threads still unpack into it (:func:`remove_partial`); after a
   SIGKILL the next run removes it (and restores an old environment whose replacement was cut
   off between the two renames).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from dlsetup.envs import names
from dlsetup.envs.credentials import expand_auth
from dlsetup.envs.location import host_platform
from dlsetup.envs.progress import Progress
from dlsetup.errors import ExistsError, InputError, InstallError, IntegrityError

if TYPE_CHECKING:
    from rattler.install.installer import InstallerReporter

PARTIAL_MARK = ".dlsetup-partial-"
OLD_MARK = ".dlsetup-old-"
TRASH_MARK = ".dlsetup-trash-"
#: test hook: when set to a file path, the installer writes that file after linking the first
#: package and waits ``$DLSETUP_TEST_PAUSE_SECONDS`` (default 120) seconds, so a test can
#: interrupt or kill the process at a known point mid-install.
PAUSE_ENV = "DLSETUP_TEST_PAUSE_AFTER_LINK"
PAUSE_SECONDS_ENV = "DLSETUP_TEST_PAUSE_SECONDS"


@dataclass(frozen=True)
class InstallResult:
    """What ``create`` built.

    Attributes:
        prefix: the environment's directory.
        platform: the lock platform installed.
        packages: number of packages installed.
        python: the environment's Python executable, or ``None`` when it has none.
        replaced: an existing environment was replaced (``--force``).
        seconds: wall time of verification and installation, in seconds.
    """

    prefix: Path
    platform: str
    packages: int
    python: Path | None
    replaced: bool
    seconds: float


def validate_env_name(name: str) -> str:
    """Check an environment name (``--name``); the rule is :mod:`dlsetup.envs.names`'s."""
    return names.validate_env_name(name)


def env_python(prefix: Path, platform: str) -> Path | None:
    """The environment's Python executable, if the environment has one."""
    candidate = prefix / "python.exe" if platform.startswith("win") else prefix / "bin" / "python"
    return candidate if candidate.exists() else None


def _channel_base(url: str) -> str:
    if "://" not in url:
        import rattler

        url = rattler.Channel(url).base_url
    return url.rstrip("/") + "/"


@dataclass(frozen=True)
class LockContents:
    """The part of a lock one platform needs."""

    path: Path
    platform: str
    channels: tuple[str, ...]
    records: list[Any]


def read_lock(path: Path, platform: str) -> LockContents:
    """Read ``path`` with rattler and return ``platform``'s records and the declared channels.

    Raises:
        InputError: the file is missing, unreadable, or has no packages for ``platform``.
    """
    import rattler

    if not path.is_file():
        raise InputError(f"lock file {path} does not exist", fix="check the --from-lock path")
    try:
        lock = rattler.LockFile.from_path(path)
    except Exception as exc:
        raise IntegrityError(
            f"{path} is not a readable conda-lock file: {exc}",
            fix="regenerate it with dlsetup lock (a hand-edited lock is refused)",
        ) from exc
    env = lock.default_environment()
    if env is None:
        raise InputError(
            f"{path} has no default environment", fix="regenerate it with dlsetup lock"
        )
    records = env.conda_repodata_records()
    if platform not in records:
        raise InputError(
            f"{path} has no packages for {platform}; it has: {', '.join(sorted(records)) or 'none'}",
            fix=f"lock for this machine: dlsetup lock TARGET --platform {platform}",
        )
    channels = tuple(_channel_base(str(c)) for c in env.channels())
    return LockContents(path, platform, channels, records[platform])


def verify_lock(contents: LockContents) -> None:
    """Refuse packages without a sha256 or with a URL outside the declared channels."""
    if not contents.channels:
        raise IntegrityError(
            f"{contents.path} declares no channels", fix="regenerate it with dlsetup lock"
        )
    for rec in contents.records:
        if rec.sha256 is None:
            raise IntegrityError(
                f"{rec.file_name} in {contents.path} has no sha256; unverifiable packages are refused",
                fix="regenerate the lock with dlsetup lock",
            )
        url = rec.url
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


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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

    expected = rec.sha256.hex()
    local = archive_cache / f"{expected}-{rec.file_name}"
    if local.is_file() and await asyncio.to_thread(_sha256_of, local) == expected:
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
    actual = await asyncio.to_thread(_sha256_of, partial)
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise IntegrityError(
            f"sha256 mismatch for {rec.file_name}: the lock {contents.path.name} says "
            f"{expected}, the archive at {rec.url} has {actual}; refused",
            fix="the lock or the package was changed after locking: regenerate the lock "
            "with dlsetup lock from a channel you trust",
        )
    os.replace(partial, local)
    return local


async def fetch_verified(
    contents: LockContents, archive_cache: Path, progress: Progress, *, parallel: int = 8
) -> dict[str, Path]:
    """Fetch every archive into ``archive_cache`` and check its sha256 against the lock.

    Up to ``parallel`` archives are fetched and hashed at once; an archive already in the cache
    is re-hashed, never trusted by name.

    Returns:
        ``{url: verified local archive}``.

    Raises:
        IntegrityError: an archive's sha256 differs from the lock's.
        InstallError: an archive could not be fetched.
    """
    import asyncio

    archive_cache.mkdir(parents=True, exist_ok=True)
    limit = asyncio.Semaphore(parallel)
    progress.start("verify", len(contents.records))

    async def one(rec: Any) -> tuple[str, Path]:
        async with limit:
            local = await _fetch_one(rec, contents, archive_cache)
        progress.advance("verify", rec.file_name)
        return rec.url, local

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
    return dict(pairs)


def _alive(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid)) and pid != 0


def _leftovers(target: Path, mark: str) -> list[tuple[Path, int]]:
    found: list[tuple[Path, int]] = []
    parent = target.parent
    if not parent.is_dir():
        return found
    prefix = f"{mark}{target.name}-"
    for entry in parent.iterdir():
        if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit():
            found.append((entry, int(entry.name[len(prefix) :])))
    return found


def clean_leftovers(target: Path) -> list[Path]:
    """Remove partial builds of ``target`` left by dead processes; restore an orphaned old env.

    Returns:
        the directories removed or restored.
    """
    touched = []
    for mark in (PARTIAL_MARK, TRASH_MARK):
        for path, pid in _leftovers(target, mark):
            if pid == os.getpid() or not _alive(pid):
                _remove_path(path)
                touched.append(path)
    for path, pid in _leftovers(target, OLD_MARK):
        if pid == os.getpid() or not _alive(pid):
            if not target.exists():
                os.replace(path, target)
            else:
                shutil.rmtree(path, ignore_errors=True)
            touched.append(path)
    return touched


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_BLOCKERS: set[Path] = set()


def _remove_blockers() -> None:
    for blocker in list(_BLOCKERS):
        blocker.unlink(missing_ok=True)
        _BLOCKERS.discard(blocker)


def remove_partial(work: Path) -> None:
    """Remove a partial build for good, even while rattler's worker threads still write into it.

    py-rattler 0.28 cannot stop the package it is unpacking or linking: a cancelled install
    (Ctrl-C cancels the asyncio task) starts no new package, but the current one goes on in
    rattler's threads, creating directories and files by path under ``work`` (a plain
    ``rmtree`` raced them and left a half-removed build behind). So ``work`` is first renamed
    into a trash directory and an empty file is put at its path: every later path under ``work``
    fails (not a directory), which ends the in-flight unpack or link at its next file. Then the
    trash is removed. The blocker file stays until this process exits (a thread still writing
    one large file must not recreate the tree), and the next ``create`` of the same target
    removes it if the process was killed first.
    """
    if not os.path.lexists(work):
        return
    if work.is_file():
        work.unlink()
        return
    trash = work.with_name(work.name.replace(PARTIAL_MARK, TRASH_MARK, 1))
    try:
        trash.mkdir(exist_ok=True)
        for attempt in range(5):
            with contextlib.suppress(FileNotFoundError):
                os.replace(work, trash / str(attempt))
            try:
                os.close(os.open(work, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue  # recreated in between by a worker thread: move that away too
            if not _BLOCKERS:
                import atexit

                atexit.register(_remove_blockers)
            _BLOCKERS.add(work)
            break
    except OSError:
        pass  # cannot rename (Windows with files in use): remove in place, as well as we can
    if work.is_dir():  # could not be moved away
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(trash, ignore_errors=True)


def _is_nonempty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


class _Reporter:
    """rattler InstallerReporter feeding :class:`Progress` (and the test pause hook)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.pause_file = os.environ.get(PAUSE_ENV)

    def on_transaction_start(self, total_operations: int) -> None:
        self.progress.start("link", total_operations)

    def on_link_start(self, operation: int, package_name: str) -> int:
        return operation

    def on_link_complete(self, index: int) -> None:
        self.progress.advance("link", "")
        if self.pause_file:
            pause_file, self.pause_file = self.pause_file, None  # pause once
            Path(pause_file).write_text(str(os.getpid()), encoding="utf-8")
            time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "120")))

    def on_transaction_complete(self) -> None:
        self.progress.finish("link")


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


def create_environment(
    lock_path: Path,
    prefix: Path,
    *,
    platform: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    archive_cache: Path | None = None,
    on_ready: Callable[[Path], None] | None = None,
) -> InstallResult:
    """Install ``lock_path``'s packages for ``platform`` into ``prefix``, atomically.

    Args:
        lock_path: a conda-lock v1 file.
        prefix: the environment directory to create.
        platform: the lock platform to install (default: this machine's).
        force: replace an existing environment (only after the new one is complete).
        progress: where progress goes (default: silent).
        archive_cache: content-addressed archive cache (default ``~/.cache/dlsetup/archives``).
        on_ready: called with the staged environment before it is moved into place.

    Raises:
        ExistsError: ``prefix`` exists and is not empty, and ``force`` is false.
        IntegrityError: missing hash, foreign URL, or hash mismatch.
        InstallError: fetching or linking failed. The target is untouched in every case.
    """
    import asyncio

    import rattler

    start = time.perf_counter()
    progress = progress or Progress(enabled=False)
    platform = platform or host_platform()
    prefix = prefix.expanduser().absolute()
    clean_leftovers(prefix)
    exists = _is_nonempty(prefix)
    if exists and not force:
        raise ExistsError(
            f"environment {prefix} already exists; it was left unchanged",
            fix="pass --force to replace it (the new one is built first), or choose another "
            "--name/--prefix",
        )
    contents = read_lock(lock_path, platform)
    verify_lock(contents)
    cache = (
        archive_cache
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlsetup" / "archives"
    )
    verified = asyncio.run(fetch_verified(contents, cache, progress))

    prefix.parent.mkdir(parents=True, exist_ok=True)
    work = prefix.parent / f"{PARTIAL_MARK}{prefix.name}-{os.getpid()}"
    _remove_path(work)
    _BLOCKERS.discard(work)
    staged = work / "env"
    originals: dict[str, str] = {}
    records = []
    for rec in contents.records:
        local_url = verified[rec.url].as_uri()
        originals[rec.url] = local_url
        rec.url = local_url
        records.append(rec)
    linked = False
    try:
        work.mkdir()
        asyncio.run(
            rattler.install(
                records,
                target_prefix=staged,
                cache_dir=work / "pkgs",
                alternative_target_prefix=prefix,
                show_progress=False,
                reporter=cast("InstallerReporter", _Reporter(progress)),
                execute_link_scripts=False,
            )
        )
        linked = True  # rattler's threads are done with ``work``
        _fix_conda_meta(staged, originals)
        (staged / "CACHEDIR.TAG").unlink(missing_ok=True)
        if on_ready is not None:
            on_ready(staged)
        old = prefix.parent / f"{OLD_MARK}{prefix.name}-{os.getpid()}"
        if prefix.exists():
            if prefix.is_dir() and not any(prefix.iterdir()):
                prefix.rmdir()
            else:
                os.replace(prefix, old)
        os.replace(staged, prefix)
        shutil.rmtree(old, ignore_errors=True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise InstallError(
            f"installing {lock_path.name} into {prefix} failed: {exc}",
            fix="the target was left as it was; read the cause above and retry",
        ) from exc
    finally:
        if linked:
            shutil.rmtree(work, ignore_errors=True)
        else:
            remove_partial(work)
    return InstallResult(
        prefix=prefix,
        platform=platform,
        packages=len(records),
        python=env_python(prefix, platform),
        replaced=exists,
        seconds=time.perf_counter() - start,
    )
