"""The conda platforms dlsetup locks for: one table that everything else reads. Standard library only.

Each :class:`PlatformInfo` says what a platform is (OS, architecture), whether an NVIDIA CUDA
driver can exist there (``__cuda``), whether conda-forge's PyTorch builds there carry Apple's
Metal (MPS) backend, the conda-lock selector that marks a line of an environment file for it, and
the virtual-package floors another machine of that platform is assumed to have, each with its
source; and for PyPI: the wheel tags that run there, its PEP 508 marker values, and whether the
venv backend locks for it. :mod:`dlsetup.envs.files.spec` (valid platforms),
:mod:`dlsetup.envs.conda.virtual_packages` (floors), :mod:`dlsetup.envs.variant` (``--variant
auto``), the ``--platform`` choices and help, the venv backend's platforms
(:mod:`dlsetup.envs.venv.lock_platforms`), the wheel check of :mod:`dlsetup.envs.pypi.install`, and
the JSON schemas' platform enums (``dlsetup.lock``, ``dlsetup.lock-check``, ``dlsetup.venv-lock``;
each checked against it by a test) all read it, and so does the question which platform this
machine is (:func:`from_host`: :func:`dlsetup.envs.location.host_platform`, doctor's conda fixes);
adding a platform is one row here, plus the environment files' ``platforms:`` lists where
conda-forge builds the target.

The OS and architecture agree with ``rattler.Subdir`` (formerly ``rattler.Platform``; a test
checks it; rattler is not imported here, so ``dlsetup --help`` stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlsetup.errors import InputError

#: Where the floors come from.
_LINUX_FLOOR_SOURCE = (
    "conda-lock's default virtual packages (linux: __glibc 2.28, kernel 5.10); conda-forge's CUDA "
    "13 builds need glibc 2.28 (compat.yaml cf_pytorch_ci)"
)
_OSX_FLOOR_SOURCE = (
    "conda-forge raised every new osx build's minimum macOS to 11.0 "
    "(https://conda-forge.org/news/2026/02/06/macOS-11, c_stdlib_version); osx-arm64 starts at 11.0"
)


@dataclass(frozen=True)
class Floor:
    """One virtual package another machine of a platform is assumed to have.

    Attributes:
        name: ``__glibc``.
        version: ``"2.28"``.
        build: the build string (``x86_64`` for ``__archspec``), ``"0"`` when none.
        source: why this value (a citation).
    """

    name: str
    version: str
    build: str
    source: str


@dataclass(frozen=True)
class PlatformInfo:
    """One conda platform.

    Attributes:
        name: the conda subdir (``linux-64``).
        os: ``linux``, ``osx`` or ``win`` (as ``rattler.Platform`` says).
        arch: ``x86_64``, ``aarch64`` or ``arm64`` (``rattler.Platform.arch``; the generic
            ``__archspec``).
        cuda: an NVIDIA CUDA driver (and so ``__cuda``) can exist here.
        mps: conda-forge's PyTorch builds here have the Metal (MPS) backend.
        selector: conda-lock's platform selector for a line of an environment file
            (``# [linux64]``).
        floors: virtual packages assumed for another machine of this platform, without ``__cuda``.
        selectors: every selector name that is true here, as conda-lock's environment-file parser
            evaluates them (``conda_lock/src_parser/selectors.py``; a test compares the two).
        uv_platform: uv's ``--python-platform`` for the PyPI part of a lock (the manylinux level
            is the ``__glibc`` floor; macOS's floor goes to uv as ``MACOSX_DEPLOYMENT_TARGET``).
        wheel_tags: a regular expression over a wheel's platform tag: the tags that run here
            (``any`` runs everywhere; :mod:`dlsetup.envs.pypi.install` checks a lock's wheels).
        sys_platform: Python's ``sys_platform`` marker value here.
        platform_machine: Python's ``platform_machine`` marker value here.
        venv: ``--backend venv`` locks for it (:data:`dlsetup.envs.venv.lock_platforms.
            VENV_PLATFORMS`); not osx-64, where PyTorch publishes no wheels since 2.2.
        torch_cuda_wheels: PyTorch publishes CUDA wheels here whose arch lists the knowledge base
            has (elsewhere a venv lock takes PyTorch's cpu index).
        tf_and_cuda: TensorFlow's ``and-cuda`` extra (CUDA libraries as wheels) applies here.
    """

    name: str
    os: str
    arch: str
    cuda: bool
    mps: bool
    selector: str
    floors: tuple[Floor, ...]
    selectors: frozenset[str] = frozenset()
    uv_platform: str = ""
    wheel_tags: str = ""
    sys_platform: str = ""
    platform_machine: str = ""
    venv: bool = False
    torch_cuda_wheels: bool = False
    tf_and_cuda: bool = False

    @property
    def os_name(self) -> str:
        """Python's ``os_name`` marker value here."""
        return "nt" if self.os == "win" else "posix"

    @property
    def platform_system(self) -> str:
        """Python's ``platform_system`` marker value here."""
        return {"linux": "Linux", "osx": "Darwin", "win": "Windows"}[self.os]


def _unix(*rest: Floor) -> tuple[Floor, ...]:
    return (Floor("__unix", "0", "0", "every Unix platform"), *rest)


PLATFORM_TABLE: tuple[PlatformInfo, ...] = (
    PlatformInfo(
        "linux-64",
        "linux",
        "x86_64",
        cuda=True,
        mps=False,
        selector="linux64",
        floors=_unix(
            Floor("__linux", "5.10", "0", _LINUX_FLOOR_SOURCE),
            Floor("__glibc", "2.28", "0", _LINUX_FLOOR_SOURCE),
            Floor("__archspec", "1", "x86_64", "the generic microarchitecture"),
        ),
        selectors=frozenset({"linux64", "unix", "linux"}),
        uv_platform="x86_64-manylinux_2_28",
        wheel_tags=r"^(manylinux\d*(_\d+_\d+)?_x86_64|musllinux_\d+_\d+_x86_64|linux_x86_64)$",
        sys_platform="linux",
        platform_machine="x86_64",
        venv=True,
        torch_cuda_wheels=True,
        tf_and_cuda=True,
    ),
    PlatformInfo(
        "linux-aarch64",
        "linux",
        "aarch64",
        cuda=True,
        mps=False,
        selector="aarch64",
        floors=_unix(
            Floor("__linux", "5.10", "0", _LINUX_FLOOR_SOURCE),
            Floor("__glibc", "2.28", "0", _LINUX_FLOOR_SOURCE),
            Floor("__archspec", "1", "aarch64", "the generic microarchitecture"),
        ),
        selectors=frozenset({"aarch64", "unix", "linux"}),
        uv_platform="aarch64-manylinux_2_28",
        wheel_tags=r"^(manylinux\d*(_\d+_\d+)?_aarch64|musllinux_\d+_\d+_aarch64|linux_aarch64)$",
        sys_platform="linux",
        platform_machine="aarch64",
        venv=True,
    ),
    PlatformInfo(
        "osx-64",
        "osx",
        "x86_64",
        cuda=False,
        mps=True,
        selector="osx64",
        floors=_unix(
            Floor("__osx", "11.0", "0", _OSX_FLOOR_SOURCE),
            Floor("__archspec", "1", "x86_64", "the generic microarchitecture"),
        ),
        selectors=frozenset({"osx64", "osx", "unix"}),
        uv_platform="x86_64-apple-darwin",
        wheel_tags=r"^macosx_\d+_\d+_(x86_64|intel|universal2?|fat\w*)$",
        sys_platform="darwin",
        platform_machine="x86_64",
    ),
    PlatformInfo(
        "osx-arm64",
        "osx",
        "arm64",
        cuda=False,
        mps=True,
        selector="arm64",
        floors=_unix(
            Floor("__osx", "11.0", "0", _OSX_FLOOR_SOURCE),
            Floor("__archspec", "1", "arm64", "the generic microarchitecture"),
        ),
        selectors=frozenset({"arm64", "osx", "unix"}),
        uv_platform="aarch64-apple-darwin",
        wheel_tags=r"^macosx_\d+_\d+_(arm64|universal2)$",
        sys_platform="darwin",
        platform_machine="arm64",
        venv=True,
    ),
    PlatformInfo(
        "win-64",
        "win",
        "x86_64",
        cuda=True,
        mps=False,
        selector="win64",
        floors=(
            Floor("__win", "0", "0", "every Windows platform"),
            Floor("__archspec", "1", "x86_64", "the generic microarchitecture"),
        ),
        selectors=frozenset({"win", "win64"}),
        uv_platform="x86_64-pc-windows-msvc",
        wheel_tags=r"^win_amd64$",
        sys_platform="win32",
        platform_machine="AMD64",
        venv=True,
        torch_cuda_wheels=True,
    ),
)

#: ``{name: PlatformInfo}``, in the table's order.
PLATFORM_INFO: dict[str, PlatformInfo] = {p.name: p for p in PLATFORM_TABLE}
#: every platform dlsetup locks for.
PLATFORM_NAMES: tuple[str, ...] = tuple(PLATFORM_INFO)
#: platforms where an NVIDIA CUDA driver (and so ``__cuda``) can exist.
CUDA_PLATFORMS: frozenset[str] = frozenset(p.name for p in PLATFORM_TABLE if p.cuda)


def platform_info(name: str) -> PlatformInfo:
    """The row of ``name``.

    Raises:
        InputError: not a platform dlsetup locks for (names the valid ones).
    """
    info = PLATFORM_INFO.get(name)
    if info is None:
        raise InputError(
            f"unknown platform {name!r}; valid platforms: {', '.join(PLATFORM_NAMES)}",
            fix="name one of them with --platform",
        )
    return info


#: ``platform.machine()``'s spellings of one architecture (Windows says ``AMD64``, macOS ``arm64``,
#: Linux ``aarch64``), each to the family a row's ``arch`` belongs to.
_MACHINE_FAMILY: dict[str, str] = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
}


def from_host(system: str, machine: str) -> PlatformInfo:
    """The row of a machine whose ``platform.system()`` is ``system`` and ``platform.machine()``
    is ``machine`` (either case: doctor's probe lower-cases the OS).

    ``AMD64`` is ``x86_64`` and ``aarch64`` is ``arm64`` (each OS spells them its own way), so
    ``("Linux", "aarch64")`` is ``linux-aarch64`` and ``("Darwin", "arm64")`` is ``osx-arm64``.

    Raises:
        InputError: the table has no row for this OS and architecture (``Linux``/``riscv64``,
            ``FreeBSD``, ``Windows``/``ARM64``): names the machine and the valid platforms,
            never a conda subdir dlsetup does not lock for.
    """
    family = _MACHINE_FAMILY.get(machine.lower())
    for info in PLATFORM_TABLE:
        if (
            info.platform_system.lower() == system.lower()
            and family is not None
            and _MACHINE_FAMILY[info.arch.lower()] == family
        ):
            return info
    raise InputError(
        f"this machine ({system or 'unknown OS'} on {machine or 'unknown architecture'}) is not "
        f"a platform dlsetup locks for; valid platforms: {', '.join(PLATFORM_NAMES)}",
        fix="lock and build on one of those, or name one of them with --platform to lock for "
        "another machine",
    )
