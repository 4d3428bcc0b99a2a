"""The virtual packages each target platform is solved with: explicit, recorded, never guessed.

conda-lock's defaults assume ``__cuda=11.4`` on every Linux and Windows platform, which silently
turns a CUDA-12 request into a CPU build. Here ``__cuda`` is present only for a CUDA variant, with
the version the user's driver supports (NVML) or ``--cuda``.

The others depend on the platform:

* this machine's platform: what ``rattler.VirtualPackage.detect()`` finds here (``__glibc``,
  ``__linux``, ``__osx``, ``__win``), with conda's ``CONDA_OVERRIDE_GLIBC``,
  ``CONDA_OVERRIDE_OSX`` and ``CONDA_OVERRIDE_ARCHSPEC`` honoured (rattler's CUDA detection is
  switched off: ``__cuda`` comes from NVML or ``--cuda`` as above). ``__archspec`` stays the
  generic one (``x86_64``, ``aarch64``, ``arm64``) unless ``CONDA_OVERRIDE_ARCHSPEC`` names one:
  a lock solved for this CPU's microarchitecture (``x86_64_v4``) could pick AVX-512 builds that die
  with an illegal instruction on a colleague's machine of the same platform;
* any other platform: conservative floors that conda-forge's builds accept, from the platform
  table (:mod:`dlsetup.platforms`, each with its source): glibc 2.28, Linux 5.10, macOS 11.0;
  ``CONDA_OVERRIDE_GLIBC`` and ``CONDA_OVERRIDE_OSX`` replace the glibc and macOS floors, as they
  do for conda. A CUDA line that needs a newer glibc (the tegra build: 2.34) raises the
  ``__glibc`` of another platform to what it needs, recorded as ``build`` (the lock is then for
  machines that have it).

Each :class:`VirtualPackage` carries its ``source``, which the lock records in its header and
``custom_metadata``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from dlsetup.platforms import CUDA_PLATFORMS, PLATFORM_INFO

#: per platform: (name, version, build string) without __cuda, from :mod:`dlsetup.platforms`
_BASE: dict[str, tuple[tuple[str, str, str], ...]] = {
    name: tuple((f.name, f.version, f.build) for f in info.floors)
    for name, info in PLATFORM_INFO.items()
}
#: sources of a virtual package's value
DETECTED = "detected"  # rattler.VirtualPackage.detect() on this machine
FLOOR = "floor"  # the documented default floor of another platform
CUDA_OPTION = "option:--cuda"
CUDA_DRIVER = "driver:nvml"  # the CUDA version the NVIDIA driver reports through NVML
BUILD = "build"  # the floor the chosen CUDA build needs (the tegra build: glibc 2.34)
#: conda's override variables that rattler honours, by the virtual package they set
OVERRIDE_VARS: dict[str, str] = {
    "__glibc": "CONDA_OVERRIDE_GLIBC",
    "__osx": "CONDA_OVERRIDE_OSX",
    "__archspec": "CONDA_OVERRIDE_ARCHSPEC",
}
_LABELS = {
    DETECTED: "detected on this machine",
    FLOOR: "default floors",
    CUDA_OPTION: "from --cuda",
    CUDA_DRIVER: "from the NVIDIA driver (NVML)",
    BUILD: "needed by the chosen CUDA build",
}


@dataclass(frozen=True)
class VirtualPackage:
    """One virtual package: ``__cuda 12.4 0``.

    Attributes:
        source: where the value came from: ``detected``, ``floor``, ``env:CONDA_OVERRIDE_GLIBC``
            (and the other override variables), ``option:--cuda`` or ``driver:nvml``.
    """

    name: str
    version: str
    build: str = "0"
    source: str = field(default=FLOOR, compare=False)

    def __str__(self) -> str:
        return f"{self.name}={self.version}" + (f"={self.build}" if self.build != "0" else "")

    def spec_version(self) -> str:
        """The value conda-lock's virtual-packages.yml uses (``"1 x86_64"`` for __archspec)."""
        return self.version if self.build == "0" else f"{self.version} {self.build}"


def _floor(name: str, version: str, build: str) -> VirtualPackage:
    """A floor, unless ``CONDA_OVERRIDE_GLIBC``/``_OSX`` names the version (as conda does)."""
    var = OVERRIDE_VARS.get(name)
    if var and name != "__archspec" and os.environ.get(var):
        return VirtualPackage(name, os.environ[var], build, f"env:{var}")
    return VirtualPackage(name, version, build, FLOOR)


def detect_host(platform: str) -> tuple[VirtualPackage, ...]:
    """This machine's virtual packages as rattler detects them, without ``__cuda``.

    ``__archspec`` is the generic one of ``platform`` unless ``CONDA_OVERRIDE_ARCHSPEC`` is set.

    conda's ``CONDA_OVERRIDE_GLIBC``/``_OSX``/``_ARCHSPEC`` variables are honoured (and recorded
    as the source); rattler's CUDA detection is switched off.
    """
    from rattler import Override, VirtualPackageOverrides
    from rattler import VirtualPackage as RattlerVirtualPackage

    overrides = VirtualPackageOverrides.from_env()
    overrides.cuda = Override.string("")  # an empty override disables the package
    found: list[VirtualPackage] = []
    for detected in RattlerVirtualPackage.detect(overrides):
        generic = detected.into_generic()
        name = generic.name.normalized
        if name == "__cuda":
            continue
        var = OVERRIDE_VARS.get(name)
        overridden = bool(var and os.environ.get(var))
        generic_arch = {e[0]: e[2] for e in _BASE.get(platform, ())}.get("__archspec")
        if name == "__archspec" and not overridden and generic_arch:
            found.append(VirtualPackage(name, "1", generic_arch, FLOOR))
            continue
        source = f"env:{var}" if overridden else DETECTED
        found.append(VirtualPackage(name, str(generic.version), str(generic.build_string), source))
    return tuple(found)


def virtual_packages(
    platform: str,
    cuda: str | None,
    *,
    host: str | None = None,
    cuda_source: str = CUDA_OPTION,
    glibc_needed: str | None = None,
) -> tuple[VirtualPackage, ...]:
    """The virtual packages to solve ``platform`` with.

    Args:
        platform: a conda subdir, for example ``linux-64``.
        cuda: the CUDA version for ``__cuda`` (``"12.4"``), or ``None`` for no ``__cuda``.
        host: this machine's platform: when it is ``platform``, the detected packages are used
            (:func:`detect_host`) instead of the floors (which remain when detection fails; each
            package's ``source`` says which).
        cuda_source: where ``cuda`` came from (``option:--cuda`` or ``driver:nvml``).
        glibc_needed: the ``__glibc`` the chosen CUDA build needs; it replaces a lower *floor*
            (never a detected or overridden value), recorded as ``build``.
    """
    base: tuple[VirtualPackage, ...] = ()
    if host is not None and platform == host:
        try:
            base = detect_host(platform)
        except Exception:  # rattler could not read this system: the floors, recorded as such
            base = ()
    if not base:
        base = tuple(_floor(*entry) for entry in _BASE[platform])
    if glibc_needed is not None:
        base = tuple(
            VirtualPackage(p.name, glibc_needed, p.build, BUILD)
            if p.name == "__glibc" and p.source == FLOOR and _key(p.version) < _key(glibc_needed)
            else p
            for p in base
        )
    if cuda is not None and platform in CUDA_PLATFORMS:
        return (*base, VirtualPackage("__cuda", cuda, source=cuda_source))
    return base


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".") if x.isdigit())


def sources_text(packages: tuple[VirtualPackage, ...]) -> str:
    """Where the values came from, for people: ``detected on this machine: __unix __glibc; ...``."""
    groups: dict[str, list[str]] = {}
    for p in packages:
        groups.setdefault(p.source, []).append(p.name)
    parts = []
    for source, names in groups.items():
        label = _LABELS.get(source) or f"from ${source.removeprefix('env:')}"
        parts.append(f"{label}: {' '.join(names)}")
    return "; ".join(parts)


def sources_record(packages: tuple[VirtualPackage, ...]) -> str:
    """Where the values came from, for machines: ``__unix=detected __cuda=driver:nvml``."""
    return " ".join(f"{p.name}={p.source}" for p in packages)


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
        lines.append(f"  {platform}:  # {sources_text(packages)}")
        lines.append("    packages:")
        lines += [f'      {p.name}: "{p.spec_version()}"' for p in packages]
    return "\n".join(lines) + "\n"
