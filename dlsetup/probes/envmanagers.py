"""Environment managers on this machine: conda, mamba, micromamba, pixi, uv, pip, and the active env.

Versions come from package metadata where that is a file read (conda and mamba record themselves in
``<root>/conda-meta/``; pip in the interpreter's ``*.dist-info``), otherwise from ``TOOL --version``
run without a shell, all tools at once in threads, each with a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dlsetup import children
from dlsetup.facts import Maybe, Missing

MANAGERS: tuple[str, ...] = ("conda", "mamba", "micromamba", "pixi", "uv", "pip")

_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?(?:[.\-+]?\w+)?)")


@dataclass(frozen=True)
class ManagerFacts:
    """One environment manager.

    Attributes:
        name: ``conda``, ``mamba``, ``micromamba``, ``pixi``, ``uv`` or ``pip``.
        path: the executable found on ``PATH`` (for pip: the target interpreter), or Missing.
        version: ``"24.7.1"``, or Missing with the reason (``not_installed``, ``timeout``, ...).
    """

    name: str
    path: Maybe[str]
    version: Maybe[str]

    @property
    def present(self) -> bool:
        """True when the manager was found."""
        return not isinstance(self.path, Missing)


@dataclass(frozen=True)
class ActiveEnv:
    """The environment the shell has activated (from its variables) and the target interpreter's.

    Attributes:
        kind: ``conda`` | ``venv`` | ``pixi`` | ``none``.
        name: the env name (``CONDA_DEFAULT_ENV``, ``PIXI_ENVIRONMENT_NAME``, venv dir name).
        prefix: ``CONDA_PREFIX`` or ``VIRTUAL_ENV``.
    """

    kind: str
    name: Maybe[str]
    prefix: Maybe[str]


@dataclass(frozen=True)
class EnvManagersFacts:
    """Every manager (always in :data:`MANAGERS` order) and the active environment."""

    managers: tuple[ManagerFacts, ...]
    active: ActiveEnv


def _from_conda_meta(exe: str, package: str) -> str | None:
    """Read ``<root>/conda-meta/<package>-<version>-<build>.json`` next to ``<root>/bin/exe``."""
    real = Path(exe).resolve()
    for root in (real.parent.parent, Path(exe).parent.parent):
        meta = root / "conda-meta"
        if not meta.is_dir():
            continue
        for entry in meta.glob(f"{package}-[0-9]*.json"):
            parts = entry.stem[len(package) + 1 :].split("-")
            if parts and parts[0][:1].isdigit():
                return parts[0]
    return None


def _run_version(exe: str, args: list[str], timeout: float) -> Maybe[str]:
    try:
        out = children.run([exe, *args], timeout=timeout, grace=1.0)
    except OSError as exc:
        return Missing("error", str(exc))
    if out.timed_out:
        return Missing("timeout", f"{exe} {' '.join(args)} took over {timeout:g} s")
    text = (out.stdout or "") + (out.stderr or "")
    if out.returncode != 0:
        return Missing("error", f"exit {out.returncode}: {text.strip()[:200]}")
    m = _VERSION.search(text)
    return m.group(1) if m else Missing("error", f"no version in {text.strip()[:200]!r}")


def _pip_in_this_interpreter() -> Maybe[str]:
    import sysconfig

    for entry in dict.fromkeys([sysconfig.get_path("purelib"), *sys.path]):
        for dist_info in sorted(Path(entry or ".").glob("pip-*.dist-info")):
            version = dist_info.name[len("pip-") : -len(".dist-info")]
            if version[:1].isdigit():
                return version
    from importlib import metadata

    try:
        return metadata.version("pip")
    except metadata.PackageNotFoundError:
        return Missing("not_installed", f"no pip in {sys.executable}")


#: Where an environment keeps its packages, relative to its prefix (venv, conda, Debian, Windows).
_SITE_DIRS = ("lib/python3*/site-packages", "lib/python3/dist-packages", "Lib/site-packages")


def _pip_in_prefix(python: str) -> str | None:
    """pip's version from the ``pip-X.Y.dist-info`` of the environment ``python`` belongs to.

    The prefix is two levels above the interpreter as given (``/env/bin/python`` -> ``/env``,
    symlinks not followed: a venv's python links to the base interpreter), or one level above on
    Windows (``env\\python.exe``). None when no single pip version is found there (none, or
    several Python versions side by side): then ``python -m pip --version`` has to answer.
    """
    exe = Path(python).absolute()
    versions: set[str] = set()
    for prefix in dict.fromkeys([exe.parent.parent, exe.parent]):
        for site in _SITE_DIRS:
            for dist_info in prefix.glob(f"{site}/pip-*.dist-info"):
                version = dist_info.name[len("pip-") : -len(".dist-info")]
                if version[:1].isdigit():
                    versions.add(version)
    return versions.pop() if len(versions) == 1 else None


def _probe_one(name: str, python: str | None, timeout: float) -> ManagerFacts:
    if name == "pip":
        if python is None or Path(python).resolve() == Path(sys.executable).resolve():
            return ManagerFacts("pip", sys.executable, _pip_in_this_interpreter())
        # Reading the metadata takes a millisecond; importing pip in that interpreter, 0.3 s of
        # CPU while the framework probes need it.
        found = _pip_in_prefix(python)
        version = found or _run_version(python, ["-m", "pip", "--version"], timeout)
        return ManagerFacts("pip", python, version)
    exe = shutil.which(name)
    if exe is None:
        return ManagerFacts(name, Missing("not_installed"), Missing("not_installed"))
    if name in ("conda", "mamba"):
        meta_version = _from_conda_meta(exe, name)
        if meta_version is not None:
            return ManagerFacts(name, exe, meta_version)
    return ManagerFacts(name, exe, _run_version(exe, ["--version"], timeout))


def _active_env() -> ActiveEnv:
    env = os.environ
    if env.get("PIXI_ENVIRONMENT_NAME"):
        return ActiveEnv(
            "pixi",
            env["PIXI_ENVIRONMENT_NAME"],
            env.get("CONDA_PREFIX") or Missing("not_set"),
        )
    if env.get("CONDA_PREFIX"):
        return ActiveEnv(
            "conda",
            env.get("CONDA_DEFAULT_ENV") or Path(env["CONDA_PREFIX"]).name,
            env["CONDA_PREFIX"],
        )
    if env.get("VIRTUAL_ENV"):
        return ActiveEnv("venv", Path(env["VIRTUAL_ENV"]).name, env["VIRTUAL_ENV"])
    return ActiveEnv("none", Missing("not_set"), Missing("not_set"))


def probe_env_managers(python: str | None = None, timeout: float = 5.0) -> EnvManagersFacts:
    """Find every environment manager and its version, in parallel.

    Args:
        python: the target interpreter whose pip is reported (default: this one).
        timeout: seconds each ``--version`` call may take.
    """
    with ThreadPoolExecutor(max_workers=len(MANAGERS)) as pool:
        futures = [pool.submit(_probe_one, name, python, timeout) for name in MANAGERS]
        managers = tuple(f.result() for f in futures)
    return EnvManagersFacts(managers, _active_env())
