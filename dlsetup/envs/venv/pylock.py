"""PEP 751 ``pylock.toml`` files: read and check them, merge per-platform resolutions, write them.

Reading goes through ``tomllib`` and :class:`packaging.pylock.Pylock` (packaging >= 26.1), which
validates the whole document (``lock-version``, names, versions, markers, every hash field).
dlsetup then requires more than the standard does, before anything is installed:

* every package is a wheel with a ``sha256`` (no sdists, no VCS, no directories, no archives
  without a hash): a venv is built from files whose content the lock names;
* dlsetup's own facts (variant, why, the PyTorch index, platforms) live in ``[tool.dlsetup]``,
  the table PEP 751 reserves for tools, and in the header comment.

uv resolves one platform at a time (``--python-platform``) and writes a lock whose wheels are
those of that platform. :func:`merge_locks` joins several into one file: each package gets its
platform's marker (``sys_platform == 'linux' and platform_machine == 'x86_64'``, and'ed with its
own), the same name and version on several platforms become one entry with the union of the
wheels and the or of the markers, and the file's ``environments`` lists the platforms. pip and uv
then pick the entry and the wheel that fit the machine.

Writing: the standard library reads TOML but cannot write it; :func:`dumps_pylock` writes the
small subset a lock needs (strings, integers, booleans, datetimes, arrays, inline tables,
``[[packages]]`` and ``[tool.dlsetup]``), and the result is read back and validated before it is
written to disk.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlsetup.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from packaging.markers import Environment
    from packaging.pylock import Package, PackageSdist, PackageWheel
    from packaging.tags import Tag

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: the ``[tool.<name>]`` table dlsetup writes
TOOL = "dlsetup"
#: a pylock.toml larger than this is refused unread (one of 300 packages, every platform's
#: wheels listed, is under 2 MiB)
MAX_PYLOCK_BYTES = 64 * 1024 * 1024


def load_toml(text: str) -> dict[str, Any]:
    """Parse TOML text (``tomllib``; ``tomli`` on Python 3.10)."""
    return tomllib.loads(text)


@dataclass(frozen=True)
class LockedPackage:
    """One package of a lock, as dlsetup checked it.

    Attributes:
        name: the normalized project name.
        version: its version (``2.14.0+cu126``).
        marker: where it applies (empty: everywhere).
        wheels: ``(file name, sha256)`` of each wheel.
    """

    name: str
    version: str
    marker: str
    wheels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PyLock:
    """A checked ``pylock.toml``.

    Attributes:
        path: the file.
        requires_python: the ``requires-python`` specifier, or empty.
        environments: the markers of the platforms it was resolved for.
        packages: every package, checked.
        tool: the ``[tool.dlsetup]`` table (empty for a lock dlsetup did not write).
        document: the parsed document.
        model: the document as :class:`packaging.pylock.Pylock` validated it (``None``: not kept;
            selection validates the document again).
    """

    path: Path
    requires_python: str
    environments: tuple[str, ...]
    packages: tuple[LockedPackage, ...]
    tool: Mapping[str, Any]
    document: Mapping[str, Any]
    model: Any = None


def _refuse(path: Path, what: str) -> IntegrityError:
    return IntegrityError(
        f"{path} is refused: {what}; nothing was installed",
        fix="lock again with dlsetup lock --backend venv (every package a wheel with a sha256)",
    )


def _no_wheel_error(path: Path, missing: Sequence[tuple[str, str, str]]) -> IntegrityError:
    """One error naming every package of ``missing`` (name, version, what it has instead)."""
    listed = ", ".join(f"{name} {version} ({what})" for name, version, what in missing)
    what = (
        f"package {missing[0][0]} {missing[0][1]} has no wheel (it has {missing[0][2]})"
        if len(missing) == 1
        else f"{len(missing)} packages have no wheel: {listed}"
    )
    sdists = [name for name, _, kind in missing if kind == "sdist"]
    if not sdists:
        return _refuse(path, what)
    return IntegrityError(
        f"{path} is refused: {what}; nothing was installed (dlsetup builds a source "
        "distribution only when it is named with --allow-build)",
        fix="lock versions with wheels (dlsetup lock --backend venv), or build them with "
        + " ".join(f"--allow-build {name}" for name in sdists)
        + " (this runs each one's build backend, arbitrary code, in an isolated build "
        "environment, after its sha256 is verified)",
    )


def _allowed_sdist(entry: Mapping[str, Any], allowed: set[str]) -> bool:
    """Whether ``entry`` is a package ``--allow-build`` names whose sdist has a sha256."""
    from packaging.utils import canonicalize_name

    sdist = entry.get("sdist")
    if str(canonicalize_name(str(entry["name"]))) not in allowed or not isinstance(sdist, dict):
        return False
    return len(str((sdist.get("hashes") or {}).get("sha256", ""))) == 64


def parse_pylock(path: Path, *, named: bool = False, allow_build: Sequence[str] = ()) -> PyLock:
    """Read ``path`` and check it (:class:`packaging.pylock.Pylock`, then dlsetup's rules).

    Args:
        path: the lock.
        named: also require the file name PEP 751 allows (``pylock.toml``,
            ``pylock.NAME.toml``), as uv does when it installs the lock.
        allow_build: packages whose sdist (with a sha256) may stand in for a wheel
            (``--allow-build NAME``).

    Raises:
        InputError: the file is missing, is not TOML, or is not a valid PEP 751 lock; or,
            with ``named``, a valid one under another name (the message names the new name).
        IntegrityError: a package without a wheel, or a wheel without a sha256.
    """
    from packaging.pylock import Pylock, PylockUnsupportedVersionError, PylockValidationError

    from dlsetup.reading import load_toml as load_bounded_toml

    # a regular file, size-capped, strict UTF-8, nesting and integers bounded (dlsetup.reading)
    document = load_bounded_toml(
        path, what="pylock.toml", max_bytes=MAX_PYLOCK_BYTES, fix="give the path of a pylock.toml"
    )
    try:
        model = Pylock.from_dict(document)
    except (PylockValidationError, PylockUnsupportedVersionError) as exc:
        raise InputError(
            f"{path} is not a valid PEP 751 lock: {exc}",
            fix="lock again with dlsetup lock --backend venv",
        ) from exc
    from packaging.utils import canonicalize_name

    allowed = {str(canonicalize_name(name)) for name in allow_build}
    packages = []
    missing: list[tuple[str, str, str]] = []
    for entry in document.get("packages", []):
        name, version = str(entry["name"]), str(entry.get("version", ""))
        wheels = entry.get("wheels") or []
        if not wheels and not _allowed_sdist(entry, allowed):
            what = next(
                (k for k in ("sdist", "vcs", "directory", "archive") if k in entry), "nothing"
            )
            missing.append((name, version, what))
            continue
        checked = []
        for wheel in wheels:
            sha256 = str((wheel.get("hashes") or {}).get("sha256", ""))
            file_name = str(wheel.get("name") or str(wheel.get("url", "")).rsplit("/", 1)[-1])
            if len(sha256) != 64:
                raise _refuse(path, f"the wheel {file_name} of {name} has no sha256")
            checked.append((file_name, sha256))
        packages.append(LockedPackage(name, version, str(entry.get("marker", "")), tuple(checked)))
    if missing:  # every one named at once
        raise _no_wheel_error(path, missing)
    tool = document.get("tool", {}).get(TOOL, {})
    if named:
        from dlsetup.envs.lockfiles.formats import pep751_name_error

        misnamed = pep751_name_error(path)  # a valid PEP 751 lock: only its name is wrong
        if misnamed is not None:
            raise misnamed
    return PyLock(
        path=path,
        requires_python=str(document.get("requires-python", "")),
        environments=tuple(str(m) for m in document.get("environments", [])),
        packages=tuple(packages),
        tool=tool if isinstance(tool, dict) else {},
        document=document,
        model=model,  # validated once: a 1,000-package lock's validation takes ~0.1 s
    )


def selected(lock: PyLock) -> list[tuple[str, str]]:
    """``(name, version)`` of the packages this machine installs from ``lock`` (markers and wheel
    tags evaluated here, by :meth:`packaging.pylock.Pylock.select`).

    Raises:
        InputError, IntegrityError: as :func:`select_wheels`.
    """
    return [(str(package.name), str(package.version)) for package, _ in select_wheels(lock)]


def select_wheels(
    lock: PyLock,
    *,
    environment: Environment | None = None,
    tags: Sequence[Tag] | None = None,
    where: str = "this machine",
    allow_build: Sequence[str] = (),
) -> list[tuple[Package, PackageWheel | PackageSdist]]:
    """The package and the wheel of each package ``lock`` installs where the marker
    ``environment`` and the wheel ``tags`` hold (``None``: this machine's), by
    :meth:`packaging.pylock.Pylock.select`; never a source distribution.

    Args:
        lock: a checked lock (:func:`parse_pylock`).
        environment: PEP 508 marker values (``sys_platform`` ...), or ``None`` for this machine.
        tags: the wheel tags accepted, best first, or ``None`` for this machine's.
        where: what ``environment`` and ``tags`` describe, for messages (``linux-64``).
        allow_build: packages whose sdist may be chosen where no wheel fits
            (``--allow-build NAME``); uv builds them.

    Raises:
        InputError: no wheel of some package fits, or the lock's environments or
            ``requires-python`` exclude the environment.
        IntegrityError: a package has no fitting wheel, only a source distribution (or a VCS,
            directory or archive source) that an installer would build: nothing in a lock is
            built or run.
    """
    from packaging.pylock import PackageSdist, PackageWheel, Pylock, PylockSelectError
    from packaging.utils import canonicalize_name

    allowed = {str(canonicalize_name(name)) for name in allow_build}
    try:
        model = lock.model or Pylock.from_dict(dict(lock.document))
        chosen = list(model.select(environment=environment, tags=tags))
    except PylockSelectError as exc:
        raise InputError(
            f"{lock.path} does not fit {where}: {exc}",
            fix="lock for this platform: dlsetup lock TARGET --backend venv --platform THIS",
        ) from exc
    wheels: list[tuple[Package, PackageWheel | PackageSdist]] = []
    refused = []
    for package, dist in chosen:
        if isinstance(dist, PackageSdist) and str(package.name) in allowed:
            wheels.append((package, dist))  # named with --allow-build: uv builds it
        elif not isinstance(dist, PackageWheel):
            kind = type(dist).__name__.removeprefix("Package").lower()
            refused.append(f"{package.name} {package.version} ({kind})")
        else:
            wheels.append((package, dist))
    if refused:  # every one named at once
        what = (
            f"package {refused[0].rsplit(' (', 1)[0]} has no wheel for {where}, only a "
            f"{refused[0].rsplit(' (', 1)[1].rstrip(')')} source"
            if len(refused) == 1
            else f"{len(refused)} packages have no wheel for {where}, only sources: "
            + ", ".join(refused)
        )
        raise _refuse(
            lock.path,
            f"{what} that would be built (its build scripts run); dlsetup builds nothing from "
            "a lock unless --allow-build names a source distribution",
        )
    return wheels


def _and(platform_marker: str, own: str) -> str:
    return f"{platform_marker} and ({own})" if own else platform_marker


def merge_locks(
    parts: Sequence[tuple[str, Mapping[str, Any]]], tool: Mapping[str, Any]
) -> dict[str, Any]:
    """One lock from per-platform resolutions ``(platform marker, parsed pylock)``.

    Args:
        parts: each platform's marker and the lock uv wrote for it.
        tool: the ``[tool.dlsetup]`` table.

    Returns:
        the merged document, packages sorted by name then version.
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    markers: dict[tuple[str, str], list[str]] = {}
    for platform_marker, resolved in parts:
        for entry in resolved.get("packages", []):
            key = (str(entry["name"]), str(entry.get("version", "")))
            target = merged.setdefault(key, {**entry, "wheels": []})
            seen = {w["url"] for w in target["wheels"]}
            target["wheels"] += [w for w in entry.get("wheels", []) if w["url"] not in seen]
            markers.setdefault(key, []).append(_and(platform_marker, str(entry.get("marker", ""))))
    everywhere = [m for m, _ in parts]
    packages = []
    for key in sorted(merged):
        entry = merged.pop(key)
        found = list(dict.fromkeys(markers[key]))
        ordered = {"name": entry.pop("name"), "version": entry.pop("version", key[1])}
        if len(parts) > 1 and sorted(found) == sorted(everywhere):
            entry.pop("marker", None)  # on every platform, and no marker of its own
        else:
            ordered["marker"] = (
                found[0] if len(found) == 1 else " or ".join(f"({m})" for m in found)
            )
            entry.pop("marker", None)
        entry["wheels"] = sorted(entry["wheels"], key=lambda w: str(w["url"]))
        packages.append({**ordered, **entry})
    first = parts[0][1] if parts else {}
    merged_lock: dict[str, Any] = {"lock-version": "1.0", "environments": everywhere}
    if first.get("requires-python"):
        merged_lock["requires-python"] = first["requires-python"]
    merged_lock["created-by"] = TOOL
    merged_lock["packages"] = packages
    merged_lock["tool"] = {TOOL: dict(tool)}
    return merged_lock


# --- writing ---------------------------------------------------------------------------------


def _key(name: str) -> str:
    bare = name.replace("-", "").replace("_", "")
    return name if bare.isalnum() and bare.isascii() else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, Iterable):
        items = [_value(v) for v in value]
        if len(items) > 1 and any(isinstance(v, Mapping) for v in value):
            return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
        return "[" + ", ".join(items) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _table_lines(mapping: Mapping[str, Any]) -> list[str]:
    return [f"{_key(str(k))} = {_value(v)}" for k, v in mapping.items()]


def dumps_pylock(document: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """``document`` as TOML, after ``# `` comment lines ``header``; read back to check it."""
    lines = [f"# {line}".rstrip() for line in header]
    if lines:
        lines.append("")
    top = {k: v for k, v in document.items() if k not in ("packages", "tool")}
    lines += _table_lines(top)
    for package in document.get("packages", []):
        lines += ["", "[[packages]]", *_table_lines(package)]
    for tool_name, table in (document.get("tool") or {}).items():
        lines += ["", f"[tool.{_key(str(tool_name))}]", *_table_lines(table)]
    text = "\n".join(lines) + "\n"
    if _plain(tomllib.loads(text)) != _plain(document):
        raise AssertionError("the TOML writer lost data")  # pragma: no cover - a bug here
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_pylock(path: Path, document: Mapping[str, Any], header: Sequence[str] = ()) -> None:
    """Validate ``document`` as a PEP 751 lock and write it to ``path`` atomically.

    Raises:
        InputError: the document is not a valid lock (a bug upstream: uv's output changed).
    """
    from packaging.pylock import Pylock, PylockValidationError

    from dlsetup.atomic_write import write_text_atomically

    text = dumps_pylock(document, header)
    try:
        Pylock.from_dict(tomllib.loads(text))
    except PylockValidationError as exc:
        raise InputError(
            f"the merged lock is not a valid PEP 751 lock: {exc}", fix="report this as a bug"
        ) from exc
    write_text_atomically(path, text)
