"""Where environments go on this machine, and which conda platform it is. Standard library only.

``dlsetup doctor --no-frameworks`` measures the free disk space where ``dlsetup create --name``
puts environments, so this module must stay cheap to import: no asyncio, rattler, conda_lock,
yaml or rich, and nothing from the rest of :mod:`dlsetup.envs` (check with
``python -X importtime -c "import dlsetup.envs.location"``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: conda-like executables, in the order they are looked for.
CONDA_EXECUTABLES: tuple[str, ...] = ("micromamba", "mamba", "conda")


def find_conda_executable() -> str | None:
    """The first of micromamba, mamba, conda on ``PATH`` (or ``$CONDA_EXE``), else ``None``."""
    for exe in CONDA_EXECUTABLES:
        found = shutil.which(exe)
        if found:
            return found
    conda_exe = os.environ.get("CONDA_EXE")
    if conda_exe and os.access(conda_exe, os.X_OK):
        return conda_exe
    return None


def default_envs_dir() -> Path:
    """Where ``dlsetup create --name NAME`` puts environments (the directory, not NAME).

    ``$DLSETUP_ENVS_DIR`` if set; else the first entry of ``$CONDA_ENVS_PATH``; else
    ``$MAMBA_ROOT_PREFIX/envs`` or ``$CONDA_ROOT/envs``; else the ``envs`` directory of the conda or
    mamba installation on ``PATH`` (so ``conda activate NAME`` works); else ``~/.dlsetup/envs``.
    The directory need not exist yet.
    """
    if os.environ.get("DLSETUP_ENVS_DIR"):
        return Path(os.environ["DLSETUP_ENVS_DIR"]).expanduser()
    if os.environ.get("CONDA_ENVS_PATH"):
        return Path(os.environ["CONDA_ENVS_PATH"].split(os.pathsep)[0]).expanduser()
    for var in ("MAMBA_ROOT_PREFIX", "CONDA_ROOT"):
        if os.environ.get(var):
            return Path(os.environ[var]) / "envs"
    exe = find_conda_executable()
    if exe is not None and Path(exe).name.startswith(("conda", "mamba")):
        return Path(exe).resolve().parent.parent / "envs"
    return Path.home() / ".dlsetup" / "envs"


def host_platform() -> str:
    """This machine's conda subdir (``linux-64``, ``osx-arm64``, ``win-64``, ...): its row of
    :data:`dlsetup.platforms.PLATFORM_TABLE` (:func:`dlsetup.platforms.from_host`).

    Raises:
        InputError: the table has no row for this machine (``linux-riscv64``, ``win-arm64``,
            FreeBSD): the table's "not a platform dlsetup locks for", with the valid ones.
    """
    import platform as _platform

    from dlsetup.platforms import from_host

    return from_host(_platform.system(), _platform.machine()).name


def known_host_platform() -> str | None:
    """:func:`host_platform`, or ``None`` where the table has no row for this machine: for the
    callers that only compare a platform with this machine's (to detect its virtual packages or its
    glibc), which work for other platforms on any machine."""
    from dlsetup.errors import InputError

    try:
        return host_platform()
    except InputError:
        return None
