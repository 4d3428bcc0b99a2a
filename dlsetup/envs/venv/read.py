"""A PEP 751 pylock.toml read into the model every backend's lock is read into:
:class:`dlsetup.envs.lockfiles.formats.LockedEnvironment`, for any platform the venv backend
locks for.

A conda platform name (``linux-64``) stands for the marker environment and wheel tags of its row
in :data:`dlsetup.envs.venv.lock_platforms.VENV_PLATFORMS`, the platforms uv resolves a venv lock for;
this machine's platform at the running Python is this machine itself (what
:func:`dlsetup.envs.venv.pylock.selected` evaluates and ``uv pip sync`` installs). Packages are
chosen by :meth:`packaging.pylock.Pylock.select` as an installer chooses them, and only wheels:
a package whose only fitting source would be built is refused (:class:`IntegrityError`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from dlsetup.envs.credentials import strip_auth
from dlsetup.errors import InputError

if TYPE_CHECKING:
    from packaging.markers import Environment
    from packaging.pylock import PackageSdist, PackageWheel
    from packaging.tags import Tag

    from dlsetup.envs.lockfiles.formats import LockedEnvironment
    from dlsetup.envs.venv.lock_platforms import VenvPlatform
    from dlsetup.envs.venv.pylock import PyLock


def _running() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def marker_environment(platform: VenvPlatform, python: str) -> Environment:
    """The PEP 508 marker values of CPython ``python`` (``X.Y``) on ``platform``."""
    full = sys.version.split()[0] if python == _running() else f"{python}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": platform.os_name,
        "platform_machine": platform.platform_machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": platform.platform_system,
        "platform_version": "",
        "python_full_version": full,
        "python_version": python,
        "sys_platform": platform.sys_platform,
    }


def wheel_tags(platform: VenvPlatform, python: str) -> list[Tag]:
    """The wheel tags CPython ``python`` (``X.Y``) accepts on ``platform``, best first."""
    from packaging.tags import compatible_tags, cpython_tags

    version = tuple(int(part) for part in python.split("."))
    interpreter = f"cp{version[0]}{version[1]}"
    platforms = list(platform.wheel_platforms)
    return [
        *cpython_tags(version, abis=[interpreter], platforms=platforms),
        *compatible_tags(version, interpreter, platforms),
    ]


def _url(lock: PyLock, wheel: PackageWheel | PackageSdist) -> str:
    if wheel.url:
        return str(wheel.url)
    # a wheel given by its path: relative to the lock's directory (PEP 751)
    return urljoin(lock.path.resolve().parent.as_uri() + "/", str(wheel.path))


def locked_environment(
    lock: PyLock, platform: str, python: str, allow_build: tuple[str, ...] = ()
) -> LockedEnvironment:
    """What ``platform`` (a conda platform name) installs from ``lock`` with CPython ``python``.

    Raises:
        InputError: a platform the venv backend does not lock for; the lock does not fit it
            (its environments or ``requires-python``, or a package without a fitting wheel).
        IntegrityError: a package whose only fitting source would be built (an sdist that
            ``allow_build``, ``--allow-build``, does not name).
    """
    from dlsetup.envs.location import host_platform
    from dlsetup.envs.lockfiles.formats import LockedEnvironment, PypiPackage
    from dlsetup.envs.venv.lock_platforms import VENV_PLATFORMS
    from dlsetup.envs.venv.pylock import select_wheels

    if platform == host_platform() and python == _running():
        chosen = select_wheels(lock, allow_build=allow_build)  # as uv pip sync sees it
    elif platform in VENV_PLATFORMS:
        row = VENV_PLATFORMS[platform]
        chosen = select_wheels(
            lock,
            environment=marker_environment(row, python),
            tags=wheel_tags(row, python),
            where=f"{platform} (Python {python})",
            allow_build=allow_build,
        )
    else:
        raise InputError(
            f"the venv backend has no platform {platform}",
            fix=f"use one of {', '.join(VENV_PLATFORMS)}",
        )
    indexes = (str(entry.get("index", "")) for entry in lock.document.get("packages", []))
    return LockedEnvironment(
        path=lock.path,
        format="pylock",
        environment="default",
        platform=platform,
        channels=tuple(dict.fromkeys(strip_auth(url) for url in indexes if url)),
        conda=[],
        pypi=tuple(
            PypiPackage(
                name=str(package.name),
                version=str(package.version or ""),
                url=_url(lock, wheel),
                sha256=(wheel.hashes or {}).get("sha256"),
                requires_python=str(package.requires_python) if package.requires_python else None,
            )
            for package, wheel in chosen
        ),
    )
