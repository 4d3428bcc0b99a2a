"""The virtual packages each target platform is solved with: explicit, recorded, never guessed.

conda-lock's defaults assume ``__cuda=11.4`` on every Linux and Windows platform, which silently
turns a CUDA-12 request into a CPU build. Here ``__cuda`` is present only for a CUDA variant, with
the version the user's driver supports (or ``--cuda``). The other values are conservative floors
that conda-forge's builds accept (the same as conda-lock's defaults): glibc 2.28, Linux 5.10,
macOS 11.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: per platform: (name, version, build string) without __cuda
_BASE: dict[str, tuple[tuple[str, str, str], ...]] = {
    "linux-64": (
        ("__unix", "0", "0"),
        ("__linux", "5.10", "0"),
        ("__glibc", "2.28", "0"),
        ("__archspec", "1", "x86_64"),
    ),
    "linux-aarch64": (
        ("__unix", "0", "0"),
        ("__linux", "5.10", "0"),
        ("__glibc", "2.28", "0"),
        ("__archspec", "1", "aarch64"),
    ),
    "osx-arm64": (
        ("__unix", "0", "0"),
        ("__osx", "11.0", "0"),
        ("__archspec", "1", "arm64"),
    ),
    "win-64": (
        ("__win", "0", "0"),
        ("__archspec", "1", "x86_64"),
    ),
}

#: platforms where an NVIDIA CUDA driver (and so ``__cuda``) can exist
CUDA_PLATFORMS: frozenset[str] = frozenset({"linux-64", "linux-aarch64", "win-64"})


@dataclass(frozen=True)
class VirtualPackage:
    """One virtual package: ``__cuda 12.4 0``."""

    name: str
    version: str
    build: str = "0"

    def __str__(self) -> str:
        return f"{self.name}={self.version}" + (f"={self.build}" if self.build != "0" else "")

    def spec_version(self) -> str:
        """The value conda-lock's virtual-packages.yml uses (``"1 x86_64"`` for __archspec)."""
        return self.version if self.build == "0" else f"{self.version} {self.build}"


def virtual_packages(platform: str, cuda: str | None) -> tuple[VirtualPackage, ...]:
    """The virtual packages to solve ``platform`` with.

    Args:
        platform: a conda subdir, for example ``linux-64``.
        cuda: the CUDA version for ``__cuda`` (``"12.4"``), or ``None`` for no ``__cuda``.
    """
    base = tuple(VirtualPackage(*entry) for entry in _BASE[platform])
    if cuda is not None and platform in CUDA_PLATFORMS:
        return (*base, VirtualPackage("__cuda", cuda))
    return base


def to_rattler(packages: tuple[VirtualPackage, ...]) -> list[Any]:
    """The packages as ``rattler.GenericVirtualPackage`` objects."""
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    return [
        GenericVirtualPackage(PackageName(p.name), Version(p.version), BuildString(p.build))
        for p in packages
    ]


def spec_file_text(per_platform: dict[str, tuple[VirtualPackage, ...]]) -> str:
    """conda-lock's ``--virtual-package-spec`` YAML for these platforms."""
    lines = [
        "# Virtual packages dlsetup solved with (conda-lock --virtual-package-spec format).",
        "subdirs:",
    ]
    for platform, packages in per_platform.items():
        lines.append(f"  {platform}:")
        lines.append("    packages:")
        lines += [f'      {p.name}: "{p.spec_version()}"' for p in packages]
    return "\n".join(lines) + "\n"
