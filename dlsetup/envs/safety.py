"""What an install must never do: replace a directory that is not an environment, build one target
twice at once, read or write outside the prefix because a package says so, or leave unsafe modes.

* :func:`normalize_prefix` / :func:`check_prefix`: ``--force`` replaces only an environment (a
  directory with ``conda-meta/``, or a venv's ``pyvenv.cfg``), never an arbitrary directory; an
  empty path, a file, a path under a file and a symbolic link are refused with the path named.
* :func:`target_lock`: one ``create`` per target at a time, an OS lock (``filelock``) on
  ``.dlsetup-lock-NAME`` beside the target, held for the whole build.
* :func:`inspect_archive`: each verified archive is read (never extracted) before rattler sees it:
  members and ``info/paths.json``/``info/files``/``info/has_prefix`` entries must be relative
  paths inside the prefix, symbolic links must point inside the prefix, and a link may not be
  listed as a file with a prefix placeholder (rattler would read the link's target, anywhere on
  the disk, into the environment).
* :func:`secure_tree`: after linking, every symbolic link of the staged environment must resolve
  inside it, and modes from the archives are masked (no world-writable files or directories, no
  setuid/setgid files, and the process umask applies).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlsetup.errors import ExistsError, InputError, InstallError, IntegrityError

LOCK_MARK = ".dlsetup-lock-"
#: the link scripts conda would run at install time (``pre-unlink`` runs at removal only)
_SCRIPT_RE = re.compile(r"^(?:bin|Scripts)/\.(?P<name>.+)-(?:pre|post)-link\.(?:sh|bat)$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_SEP_RE = re.compile(r"[/\\]")


# --- the target ------------------------------------------------------------------------------


def is_environment(path: Path) -> bool:
    """Whether ``path`` is an environment: a conda ``conda-meta/`` directory or a venv's ``pyvenv.cfg``."""
    meta = path / "conda-meta"
    return (meta.is_dir() and not meta.is_symlink()) or (path / "pyvenv.cfg").is_file()


def normalize_prefix(prefix: Path | str) -> Path:
    """The absolute, normalized ``prefix``; an empty, whitespace-only or root path is refused.

    ``click.Path`` turns ``--prefix ""`` into ``Path(".")``, so ``.`` is refused too (the current
    directory is given by its path, which :func:`check_prefix` then judges like any other).

    Raises:
        InputError: the path is empty, ``.``, whitespace, or has no name (``/``).
    """
    raw = str(prefix)
    if raw.strip() in ("", "."):
        what = "is empty (or '.')" if raw.strip() else f"{raw!r} is blank"
        raise InputError(
            f"--prefix {what}: it must name the environment's own directory",
            fix="name the environment's own directory, for example --prefix ./env",
        )
    path = Path(os.path.abspath(Path(raw).expanduser()))
    if not path.name.strip():
        raise InputError(
            f"--prefix {raw!r} names no directory of its own ({path})",
            fix="name the environment's own directory, for example --prefix ~/envs/pt",
        )
    return path


def check_prefix(prefix: Path, *, force: bool) -> bool:
    """Whether building ``prefix`` replaces an existing environment; refuse what must not be touched.

    Args:
        prefix: an absolute path (from :func:`normalize_prefix`).
        force: ``--force``: an existing *environment* may be replaced.

    Returns:
        ``True`` when ``prefix`` is a non-empty environment that will be replaced.

    Raises:
        InputError: ``prefix`` is a symbolic link or a file, lies under a file, or cannot be read.
        ExistsError: ``prefix`` is a non-empty directory that is not an environment (even with
            ``force``), or an environment and ``force`` is false.
    """
    running = _holds_running_environment(prefix)
    if running is not None:
        raise InputError(
            f"{prefix} holds the Python environment dlsetup is running from ({running}); it was "
            "left unchanged: replacing it would delete the interpreter doing the work",
            fix="run dlsetup from another environment (pipx, uv tool, another venv), or choose "
            "another --prefix",
        )
    if prefix.is_symlink():
        raise InputError(
            f"{prefix} is a symbolic link; dlsetup does not build through or replace a link",
            fix=f"give the directory itself: --prefix {prefix.resolve()}",
        )
    for ancestor in prefix.parents:
        if os.path.lexists(ancestor):
            if not ancestor.is_dir():
                raise InputError(
                    f"cannot create {prefix}: {ancestor} is a file, not a directory",
                    fix="choose a --prefix whose parent directories are directories",
                )
            break
    if not os.path.lexists(prefix):
        return False
    if not prefix.is_dir():
        raise InputError(
            f"{prefix} is a file, not a directory; it was left unchanged",
            fix="choose a new or empty directory for --prefix",
        )
    try:
        empty = not any(prefix.iterdir())
    except OSError as exc:
        raise InputError(
            f"cannot read {prefix}: {exc.strerror}", fix="choose a directory you can read and write"
        ) from exc
    if empty:
        return False
    if not is_environment(prefix):
        raise ExistsError(
            f"{prefix} is not empty and is not an environment (it has no conda-meta/ or "
            "pyvenv.cfg); dlsetup never replaces or deletes it, even with --force",
            fix=f"choose a new or empty directory, for example --prefix {prefix / 'env'}",
        )
    if not force:
        raise ExistsError(
            f"environment {prefix} already exists; it was left unchanged",
            fix="pass --force to replace it (the new one is built first), or choose another "
            "--name/--prefix",
        )
    return True


def _holds_running_environment(prefix: Path) -> str | None:
    """The running interpreter's environment that ``prefix`` is, or holds: ``sys.prefix``,
    ``sys.base_prefix``, ``sys.exec_prefix`` and the directory of the interpreter itself (the
    one ``uv venv`` links a new venv to), each resolved; ``None`` when it holds none."""
    import sys

    target = os.path.realpath(prefix)
    running = (
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        getattr(sys, "base_exec_prefix", sys.base_prefix),
        os.path.dirname(os.path.dirname(sys.executable)) if sys.executable else "",
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
        if sys.executable
        else "",
    )
    for path in running:
        if not path:
            continue
        resolved = os.path.realpath(path)
        if resolved == target or resolved.startswith(target.rstrip(os.sep) + os.sep):
            return path
    return None


def lock_path_of(prefix: Path) -> Path:
    """The lock file of ``prefix``: ``.dlsetup-lock-NAME`` beside it."""
    return prefix.parent / f"{LOCK_MARK}{prefix.name}"


_HELD: dict[Path, int] = {}


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; return those created, outermost first."""
    missing = [d for d in (directory, *directory.parents) if not os.path.lexists(d)]
    missing.reverse()
    created: list[Path] = []
    for path in missing:
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            _remove_empty(created)
            raise InputError(
                f"cannot create {path} (for the environment's directory): {exc.strerror}",
                fix="choose a --prefix in a directory you can write to",
            ) from exc
        created.append(path)
    return created


def _remove_empty(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def target_lock(prefix: Path) -> Iterator[None]:
    """Hold the lock of ``prefix`` (absolute) while the body runs: one ``create`` per target.

    The lock is an OS lock (``flock``/``LockFileEx`` through ``filelock``) on
    ``.dlsetup-lock-NAME`` beside the target, so the kernel releases it when the process dies,
    even by SIGKILL: a left-over lock file is never mistaken for a held lock, and the next
    ``create`` of the target takes it over and removes it. Re-entrant within a process. Parent
    directories it had to create are removed again when the target was not built.

    Raises:
        InstallError: another process holds the lock (exit 4: nothing was touched).
        InputError: the lock file cannot be created (the parent is read-only, ...).
    """
    if prefix in _HELD:
        _HELD[prefix] += 1
        try:
            yield
        finally:
            _HELD[prefix] -= 1
        return
    from filelock import FileLock, Timeout

    created = _make_parents(prefix.parent)
    path = lock_path_of(prefix)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        _remove_empty(created)
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (process {int(path.read_text(encoding='ascii').strip())})"
        raise InstallError(
            f"another dlsetup create is building {prefix}{holder}; nothing was changed",
            fix="wait for it to finish, or build into another --name/--prefix",
        ) from exc
    except OSError as exc:
        _remove_empty(created)
        raise InputError(
            f"cannot create the lock file {path}: {exc.strerror}",
            fix="choose a --prefix in a directory you can write to",
        ) from exc
    _HELD[prefix] = 1
    try:
        with contextlib.suppress(OSError):
            path.write_text(f"{os.getpid()}\n", encoding="ascii")
        yield
    finally:
        del _HELD[prefix]
        # unlinked while still held: a process that opened the old file and locks it after the
        # release sees a file with no name left and tries again (filelock checks st_nlink)
        with contextlib.suppress(OSError):
            path.unlink()
        lock.release()
        if not os.path.lexists(prefix):
            _remove_empty(created)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the body is done, then act on them.

    For the few steps that must not stop half-way: the two renames of a replacement, and
    removing a partial build or an old environment (an interrupted removal would leave a
    half-removed directory behind). The signal is not lost: once the body ends, the handler
    that was installed runs (raising :class:`KeyboardInterrupt` or
    :class:`dlsetup.errors.Terminated`). Python handlers can only be swapped in the main thread;
    elsewhere the body runs unshielded. (Blocking the signal with ``pthread_sigmask`` would not
    do: rattler's threads would still receive it.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum: int, frame: object) -> None:
        arrived.append(signum)

    wanted = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    saved = {signum: signal.signal(signum, hold) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        if arrived:
            first = signal.Signals(arrived[0])
            handler = saved[first]
            if callable(handler):
                handler(first, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), first)


# --- archives --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveFacts:
    """What the checks found in one package archive.

    Attributes:
        file_name: the archive's file name.
        symlinks: the archive's symbolic links (paths inside the package).
        paths: every path the package installs (``paths.json``, ``info/files``, members).
        scripts: the link scripts conda would run at install time (dlsetup runs none).
    """

    file_name: str
    symlinks: frozenset[str]
    paths: frozenset[str]
    scripts: tuple[str, ...]


def _refuse(file_name: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"package {file_name} is refused: {what}",
        fix="a package must only install files inside the environment: remove it from the "
        "environment file, or lock against a channel you trust, then retry (nothing was installed)",
    )


def _parts(path: str) -> list[str]:
    return [p for p in _SEP_RE.split(path) if p not in ("", ".")]


def bad_path(path: str) -> str | None:
    """Why ``path`` (relative, inside a package) is unsafe, or ``None``."""
    if not path.strip("/"):
        return "is empty"
    if "\0" in path:
        return "contains a NUL character"
    if path.startswith(("/", "\\")) or _DRIVE_RE.match(path):
        return "is absolute"
    if ".." in _SEP_RE.split(path):
        return "has a '..' component"
    return None


def bad_link(name: str, target: str) -> str | None:
    """Why the symbolic link ``name`` -> ``target`` (inside a package) is unsafe, or ``None``.

    A target must be relative, its ``..`` may only lead it (``../lib/libz.so``, never
    ``a/../../x``, whose meaning depends on what ``a`` is), and it must stay inside the prefix.
    """
    if not target or "\0" in target:
        return "has an empty or NUL target"
    if target.startswith(("/", "\\")) or _DRIVE_RE.match(target):
        return f"points to the absolute path {target}"
    ups = 0
    for i, part in enumerate(_parts(target)):
        if part != "..":
            continue
        if any(p != ".." for p in _parts(target)[:i]):
            return f"points to {target}, with '..' after a name"
        ups += 1
    if ups > len(_parts(name)) - 1:
        return f"points to {target}, outside the environment"
    return None


def _under_link(path: str, links: frozenset[str] | set[str]) -> str | None:
    parts = _parts(path)
    for i in range(1, len(parts)):
        ancestor = "/".join(parts[:i])
        if ancestor in links:
            return ancestor
    return None


def _has_prefix_paths(data: bytes) -> list[str]:
    paths = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            fields = shlex.split(line)
        except ValueError:
            fields = line.split()
        paths.append(fields[-1])
    return paths


def _check_listing(file_name: str, source: str, paths: list[str]) -> None:
    seen: set[str] = set()
    for path in paths:
        why = bad_path(path)
        if why:
            raise _refuse(file_name, f"{source} lists the path {path!r}, which {why}")
        if path in seen:
            raise _refuse(file_name, f"{source} lists the path {path!r} twice")
        seen.add(path)


def _paths_json_entries(file_name: str, data: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(data)
        entries = doc["paths"]
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("_path"), str) for e in entries
        ):
            raise TypeError("paths must be a list of objects with a _path string")
    except (ValueError, KeyError, TypeError) as exc:
        raise _refuse(file_name, f"info/paths.json is not a valid paths file ({exc})") from exc
    return entries


async def inspect_archive(archive: Path, file_name: str, package: str) -> ArchiveFacts:
    """Read ``archive`` (a verified ``.conda`` or ``.tar.bz2``) and refuse what is unsafe.

    Args:
        archive: the local archive.
        file_name: its name in the lock (for messages).
        package: the package name (to recognise its link scripts).

    Raises:
        IntegrityError: an unsafe member, link or listed path, naming the package and the path.
    """
    from rattler.package_streaming import PackageArchive

    opened = await PackageArchive.from_path(archive)
    links: dict[str, str] = {}
    members: set[str] = set()
    info: dict[str, bytes] = {}
    for section in ("info", "pkg"):
        async for entry in opened.stream(section):
            name = entry.name
            why = bad_path(name)
            if why:
                raise _refuse(file_name, f"the archive member {name!r} {why}")
            member = "/".join(_parts(name))
            if entry.is_symlink:
                target = entry.link_target or ""
                why = bad_link(member, target)
                if why:
                    raise _refuse(file_name, f"the symbolic link {member} {why}")
                links[member] = target
            elif entry.is_hardlink:
                target = entry.link_target or ""
                why = bad_path(target)
                if why:
                    raise _refuse(file_name, f"the hard link {member} -> {target!r} {why}")
            elif entry.is_file and member in ("info/paths.json", "info/files", "info/has_prefix"):
                info[member] = await entry.read()
            if section == "pkg":
                members.add(member)
    link_set = frozenset(links)
    listed: list[str] = []
    if "info/paths.json" in info:
        entries = _paths_json_entries(file_name, info["info/paths.json"])
        paths = [str(e["_path"]) for e in entries]
        _check_listing(file_name, "info/paths.json", paths)
        for item in entries:
            path = "/".join(_parts(str(item["_path"])))
            is_link = item.get("path_type") == "softlink" or path in link_set
            if is_link and (item.get("prefix_placeholder") or item.get("file_mode")):
                raise _refuse(
                    file_name,
                    f"info/paths.json lists the symbolic link {path} as a file with a prefix "
                    "placeholder (installing it would copy the link's target into the environment)",
                )
        listed += paths
    if "info/files" in info:
        files = [p for p in info["info/files"].decode("utf-8", "replace").splitlines() if p]
        _check_listing(file_name, "info/files", files)
        listed += files
    if "info/has_prefix" in info:
        prefixed = _has_prefix_paths(info["info/has_prefix"])
        _check_listing(file_name, "info/has_prefix", prefixed)
        for path in prefixed:
            if "/".join(_parts(path)) in link_set:
                raise _refuse(
                    file_name,
                    f"info/has_prefix lists the symbolic link {path} as a file with a prefix "
                    "placeholder (installing it would copy the link's target into the environment)",
                )
    all_paths = frozenset("/".join(_parts(p)) for p in listed) | frozenset(members)
    for path in sorted(all_paths):
        ancestor = _under_link(path, link_set)
        if ancestor:
            raise _refuse(file_name, f"the path {path} lies under the symbolic link {ancestor}")
    scripts = tuple(
        sorted(p for p in all_paths if (m := _SCRIPT_RE.match(p)) and m.group("name") == package)
    )
    return ArchiveFacts(file_name, link_set, all_paths, scripts)


def check_transaction(facts: list[ArchiveFacts]) -> None:
    """Refuse a path of one package that lies under a symbolic link of another.

    Raises:
        IntegrityError: naming both packages and the path.
    """
    owners: dict[str, str] = {}
    for fact in facts:
        for link in fact.symlinks:
            owners.setdefault(link, fact.file_name)
    links = frozenset(owners)
    for fact in facts:
        for path in sorted(fact.paths):
            ancestor = _under_link(path, links)
            if ancestor:
                raise _refuse(
                    fact.file_name,
                    f"the path {path} lies under the symbolic link {ancestor} of {owners[ancestor]}",
                )


# --- the staged environment ------------------------------------------------------------------


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def secure_tree(root: Path) -> None:
    """Mask unsafe modes under ``root`` and refuse a symbolic link that resolves outside it.

    Files lose setuid, setgid and sticky bits; files and directories lose world-write and
    whatever the process umask masks. Links are never followed.

    Raises:
        IntegrityError: a symbolic link resolves outside ``root``.
    """
    mask = _umask() | stat.S_IWOTH
    real_root = os.path.realpath(root)
    for directory, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                resolved = os.path.realpath(path)
                if os.path.commonpath([real_root, resolved]) != real_root:
                    relative = os.path.relpath(path, root)
                    raise IntegrityError(
                        f"the installed link {relative} points to {os.readlink(path)}, outside "
                        "the environment; refused (nothing was installed)",
                        fix="remove the package that ships it from the environment file, or "
                        "lock against a channel you trust",
                    )
                continue
            mode = stat.S_IMODE(info.st_mode)
            drop = (
                mask
                if stat.S_ISDIR(info.st_mode)
                else mask | stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
            )
            if mode & drop:
                os.chmod(path, mode & ~drop)
