"""CUDA versions against NVIDIA drivers: which driver a CUDA build needs, and whether it runs.

Two driver figures matter (both from ``data/compat.yaml``):

* the *toolkit driver* of a CUDA X.Y GA release: the driver that supports every feature of X.Y;
* the *minor-version-compatibility (MVC) floor* of a major family (CUDA 11+): any driver at or
  above it runs builds of any X.* toolkit, with a limited feature set.

A driver whose CUDA version (NVML's ``cuda_driver_version``, nvidia-smi's "CUDA Version") is at
least the build's runs it fully; a newer major runs older builds through backward compatibility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

from dlsetup.compat import knowledge_base

OsName = Literal["linux", "windows"]

_OS_COLUMN = {"linux": 2, "windows": 3}


def parse_cuda(value: str) -> tuple[int, int]:
    """Parse ``"12.4"`` / ``"12.4.1"`` / ``"12"`` into ``(12, 4)``.

    Raises:
        ValueError: when ``value`` is not a CUDA version.
    """
    parts = value.strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    except ValueError as exc:
        raise ValueError(f"not a CUDA version: {value!r}") from exc
    return major, minor


def _driver(value: str) -> Version:
    try:
        return Version(value)
    except InvalidVersion as exc:
        raise ValueError(f"not a driver version: {value!r}") from exc


def _column(os_name: str) -> int:
    if os_name not in _OS_COLUMN:
        raise ValueError(f"unknown OS {os_name!r}: expected 'linux' or 'windows'")
    return _OS_COLUMN[os_name]


def toolkit_rows() -> list[tuple[str, str, str | None, str | None]]:
    """The verified toolkit->driver rows: ``(cuda "X.Y", release, linux driver, windows driver)``."""
    return [(r.cuda, r.release, r.linux, r.windows) for r in knowledge_base().toolkit_drivers]


def min_driver_for_cuda(cuda: str, os_name: str = "linux") -> str | None:
    """The toolkit driver of CUDA ``cuda``'s GA release: full support for that CUDA version.

    Args:
        cuda: a CUDA version, ``"12.4"`` (a patch level such as ``"12.4.1"`` is ignored).
        os_name: ``"linux"`` or ``"windows"``.

    Returns:
        The driver version string (``"550.54.14"`` for 12.4 on Linux), or None when the knowledge
        base has no verified figure (unknown CUDA version, or no Windows driver from 13.0 on).
    """
    col = _column(os_name)
    wanted = parse_cuda(cuda)
    for row in toolkit_rows():
        if parse_cuda(row[0]) == wanted:
            return row[col]
    return None


def mvc_floor(cuda_major: int, os_name: str = "linux") -> str | None:
    """The minor-version-compatibility floor of a CUDA major family.

    Args:
        cuda_major: 11, 12, 13, ...
        os_name: ``"linux"`` or ``"windows"``.

    Returns:
        The lowest driver that runs any CUDA ``cuda_major``.x build (limited feature set), or None
        when the family has no verified floor (CUDA 10 and older had no MVC; 13.x on Windows).
    """
    _column(os_name)
    family = knowledge_base().mvc.get(cuda_major)
    if family is None:
        return None
    return family.windows if os_name == "windows" else family.linux


def max_cuda_for_driver(driver: str, os_name: str = "linux") -> str | None:
    """The newest CUDA whose toolkit driver is at most ``driver`` (a fallback when NVML cannot say).

    Args:
        driver: an NVIDIA driver version such as ``"535.104.05"``.
        os_name: ``"linux"`` or ``"windows"``.

    Returns:
        ``"X.Y"``, or None when the driver predates every row of the table.
    """
    col = _column(os_name)
    have = _driver(driver)
    best: tuple[int, int] | None = None
    for row in toolkit_rows():
        needed = row[col]
        if needed is not None and _driver(needed) <= have:
            version = parse_cuda(row[0])
            best = version if best is None or version > best else best
    return None if best is None else f"{best[0]}.{best[1]}"


Support = Literal["full", "minor_version_compat", "too_old", "unknown"]


@dataclass(frozen=True)
class CudaVerdict:
    """Whether a driver runs a framework built for some CUDA version.

    Attributes:
        support: ``full`` (driver CUDA >= build CUDA, or a newer major), ``minor_version_compat``
            (same major, older minor: runs with a limited feature set; PTX newer than the driver
            cannot be JIT-compiled), ``too_old`` (older major, or below the family's MVC floor),
            ``unknown`` (a version could not be parsed).
        reason: one sentence a person can read.
        full_support_driver: the toolkit driver of the build's CUDA (Linux), when known.
        mvc_floor_driver: the family's MVC floor (Linux), when known.
    """

    support: Support
    reason: str
    full_support_driver: str | None = None
    mvc_floor_driver: str | None = None


def driver_supports_cuda(
    driver_cuda: str,
    build_cuda: str,
    driver_version: str | None = None,
    os_name: str = "linux",
) -> CudaVerdict:
    """Decide whether a driver that supports CUDA ``driver_cuda`` runs a build for ``build_cuda``.

    Args:
        driver_cuda: the driver's CUDA version (NVML ``cuda_driver_version``), e.g. ``"11.4"``.
        build_cuda: the CUDA version the framework was built with, e.g. ``"12.4"``.
        driver_version: the driver version, to check the MVC floor within a family (optional).
        os_name: ``"linux"`` or ``"windows"``, for the driver figures in the verdict.

    Returns:
        A :class:`CudaVerdict`.
    """
    try:
        have = parse_cuda(driver_cuda)
        need = parse_cuda(build_cuda)
    except ValueError as exc:
        return CudaVerdict("unknown", str(exc))
    full = min_driver_for_cuda(build_cuda, os_name)
    floor = mvc_floor(need[0], os_name)
    if have >= need:
        return CudaVerdict(
            "full",
            f"the driver supports CUDA {driver_cuda}, at least the build's CUDA {build_cuda}",
            full,
            floor,
        )
    if have[0] < need[0] or need[0] < 11:
        return CudaVerdict(
            "too_old",
            f"the driver supports CUDA {driver_cuda}, older than the CUDA {build_cuda} the build needs",
            full,
            floor,
        )
    if driver_version is not None and floor is not None:
        try:
            below = _driver(driver_version) < _driver(floor)
        except ValueError:
            below = False
        if below:
            return CudaVerdict(
                "too_old",
                f"driver {driver_version} is below {floor}, the minor-version-compatibility floor "
                f"of CUDA {need[0]}.x",
                full,
                floor,
            )
    return CudaVerdict(
        "minor_version_compat",
        f"the driver supports CUDA {driver_cuda}; the CUDA {build_cuda} build runs through "
        f"minor-version compatibility with a limited feature set (no newer PTX JIT)",
        full,
        floor,
    )
