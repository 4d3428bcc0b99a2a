"""The one place that decides how a fix installs into an environment: in that environment's own
installer, so the command can run there as printed.

* a venv (or another Python) with pip: ``PY -m pip install ...``;
* a venv without pip (``uv venv`` makes them, dlsetup's own venvs included) where uv is on hand:
  ``uv pip install --python PY ...``;
* a venv without pip and no uv: pip is installed first, ``PY -m ensurepip && PY -m pip ...``;
* a conda prefix (``conda-meta/``): ``conda install --prefix P -c conda-forge "name=1.2"``, the
  package in conda-forge's name (``torch`` is ``pytorch``) and conda's version syntax;
* a pixi project's environment (``<project>/.pixi/envs/<name>``): ``pixi add --manifest-path
  <project>/pixi.toml "name=1.2"``.

Every check that prints an install command (doctor's framework, companion and wheel-pin fixes,
smoke's companion fix) asks :func:`installer_for` and :func:`install_command`; the tests run each
kind that can run here for real in a venv made by ``uv venv``. Standard library only; the
environment is judged from its files, the interpreter is never run.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

InstallerKind = Literal["pip", "uv", "ensurepip", "conda", "pixi"]

#: PyPI distribution name -> conda-forge package name, where they differ.
CONDA_NAMES: dict[str, str] = {"torch": "pytorch"}

_SITE_DIRS = ("lib/python3*/site-packages", "Lib/site-packages", "lib/site-packages")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


@dataclass(frozen=True)
class Installer:
    """How to install into one environment.

    Attributes:
        kind: ``pip``, ``uv`` (no pip, uv on hand), ``ensurepip`` (no pip, no uv), ``conda``
            or ``pixi``.
        python: the environment's interpreter, as given (never resolved: a venv's links to its
            base).
        prefix: the environment's prefix (``""`` for a Python outside any environment).
        tool: the executable the command starts with: ``uv``, ``conda``/``mamba``/``micromamba``,
            ``pixi``; ``""`` for pip.
        manifest: a pixi project's manifest (``pixi.toml`` or ``pyproject.toml``), else ``""``.
    """

    kind: InstallerKind
    python: str
    prefix: str = ""
    tool: str = ""
    manifest: str = ""


def has_pip(prefix: Path) -> bool:
    """True when ``prefix`` holds an installed pip (``pip-*.dist-info`` in its site-packages)."""
    return any(any(prefix.glob(f"{site}/pip-*.dist-info")) for site in _SITE_DIRS)


def _pixi_manifest(prefix: Path) -> str:
    """The manifest of the pixi project whose environment ``prefix`` is, or ``""``."""
    if prefix.parent.name != "envs" or prefix.parent.parent.name != ".pixi":
        return ""
    project = prefix.parent.parent.parent
    for name in ("pixi.toml", "pyproject.toml"):
        if (project / name).is_file():
            return str(project / name)
    return str(project / "pixi.toml")


def installer_for(
    python: str, *, uv: str | None = None, conda: str = "conda", pip: bool | None = None
) -> Installer:
    """The installer of the environment ``python`` lives in.

    Args:
        python: the environment's interpreter (``<prefix>/bin/python``, ``<prefix>/python.exe``).
        uv: the uv executable to offer when the environment has no pip (``"uv"`` when it is on
            ``PATH``), or None when there is none.
        conda: the conda-compatible manager to name for a conda prefix.
        pip: whether the environment has pip, when the caller knows; None reads the prefix.
    """
    exe = Path(python)
    if not exe.is_absolute():  # "python" from PATH: no prefix to judge
        return Installer("pip", python)
    for prefix in (exe.parent.parent, exe.parent):
        try:
            venv = (prefix / "pyvenv.cfg").is_file()
            conda_meta = (prefix / "conda-meta").is_dir()
        except OSError:
            continue
        if venv or conda_meta:
            break
    else:
        return Installer("pip", python)  # a Python outside any environment: its own pip
    if not venv and conda_meta:
        manifest = _pixi_manifest(prefix)
        if manifest:
            return Installer("pixi", python, str(prefix), "pixi", manifest)
        return Installer("conda", python, str(prefix), conda)
    if has_pip(prefix) if pip is None else pip:
        return Installer("pip", python, str(prefix))
    if uv:
        return Installer("uv", python, str(prefix), uv)
    return Installer("ensurepip", python, str(prefix))


def pip_owned(inst: Installer, requirement: str) -> bool:
    """True when, in ``inst``'s conda prefix or pixi environment, the requirement's package was
    installed from PyPI (a ``*.dist-info`` and no ``conda-meta`` record): conda would install a
    second copy beside it, so its fix goes through pip (:func:`pypi_installer`)."""
    if inst.kind not in ("conda", "pixi") or not inst.prefix:
        return False
    name = _name(requirement)
    prefix = Path(inst.prefix)
    if any(prefix.glob(f"conda-meta/{name}-[0-9]*.json")):
        return False
    found = _REQUIREMENT.match(requirement)
    dist = re.sub(r"[-_.]+", "_", found.group(1) if found else requirement).lower()
    return any(any(prefix.glob(f"{site}/{dist}-*.dist-info")) for site in _SITE_DIRS)


def conda_spec(requirement: str) -> str:
    """A PEP 508 requirement in conda's words: ``torchvision==0.28.*`` -> ``torchvision=0.28``,
    ``torch>=2.6`` -> ``pytorch>=2.6``, ``tensorflow[and-cuda]==2.18.0`` -> ``tensorflow==2.18.0``
    (conda-forge's builds carry their CUDA libraries; extras have no conda meaning)."""
    found = _REQUIREMENT.match(requirement)
    if found is None:
        return requirement
    name, _, version = found.groups()
    name = CONDA_NAMES.get(name.lower(), name.lower())
    version = version.replace(" ", "")
    if version.startswith("==") and version.endswith(".*") and "," not in version:
        version = "=" + version[2:-2]
    return name + version


def _quote(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def install_command(
    inst: Installer,
    requirements: Sequence[str],
    *,
    reinstall: bool = False,
    no_deps: bool = False,
    index_url: str | None = None,
) -> str:
    """The one shell command that installs ``requirements`` (PEP 508) into ``inst``'s environment.

    Args:
        inst: from :func:`installer_for`.
        requirements: ``["torchvision==0.28.*"]``.
        reinstall: replace what is installed even when the version matches.
        no_deps: leave the requirements' dependencies as they are (pip and uv).
        index_url: the package index (pip and uv; conda and pixi take conda-forge's builds).
    """
    if (
        inst.kind in ("conda", "pixi")
        and requirements
        and all(pip_owned(inst, r) for r in requirements)
    ):  # installed from PyPI into a conda/pixi environment: pip's fix, not a second copy
        if inst.kind == "pixi":
            return install_pypi_command(inst, requirements)
        inst = pypi_installer(inst)
    if inst.kind in ("conda", "pixi"):
        specs = _quote([conda_spec(r) for r in requirements])
        if inst.kind == "pixi":
            verb = "reinstall" if reinstall else "add"
            names = [conda_spec(r) if not reinstall else _name(r) for r in requirements]
            return f"pixi {verb} --manifest-path {shlex.quote(inst.manifest)} {_quote(names)}"
        force = " --force-reinstall" if reinstall else ""
        return (
            f"{inst.tool} install --prefix {shlex.quote(inst.prefix)} -c conda-forge{force} {specs}"
        )
    options = []
    if reinstall:
        options.append("--reinstall" if inst.kind == "uv" else "--force-reinstall")
    if no_deps:
        options.append("--no-deps")
    tail = " ".join([*options, _quote(requirements)])
    if index_url:
        tail += f" --index-url {shlex.quote(index_url)}"
    return f"{_pip(inst, 'install')} {tail}"


def pypi_installer(inst: Installer) -> Installer:
    """The installer of PyPI-only packages (``nvidia-cudnn-cu12``: conda-forge has none) in
    ``inst``'s environment: pip inside a conda prefix (conda's Pythons ship it), pixi's
    ``add --pypi``; a venv's own otherwise."""
    if inst.kind == "conda":
        return Installer("pip", inst.python, inst.prefix)
    return inst


def install_pypi_command(inst: Installer, requirements: Sequence[str]) -> str:
    """:func:`install_command` for PyPI-only packages: ``pixi add --pypi`` in a pixi project,
    pip inside a conda prefix (:func:`pypi_installer`)."""
    if inst.kind == "pixi":
        return (
            f"pixi add --pypi --manifest-path {shlex.quote(inst.manifest)} {_quote(requirements)}"
        )
    return install_command(pypi_installer(inst), requirements)


def uninstall_command(inst: Installer, names: Sequence[str]) -> str:
    """The one shell command that removes the distributions ``names`` from ``inst``'s environment."""
    if inst.kind == "conda":
        conda_names = [CONDA_NAMES.get(n.lower(), n.lower()) for n in names]
        return f"{inst.tool} remove --prefix {shlex.quote(inst.prefix)} {_quote(conda_names)}"
    if inst.kind == "pixi":
        conda_names = [CONDA_NAMES.get(n.lower(), n.lower()) for n in names]
        return f"pixi remove --manifest-path {shlex.quote(inst.manifest)} {_quote(conda_names)}"
    if inst.kind == "uv":
        return f"{_pip(inst, 'uninstall')} {_quote(names)}"
    return f"{_pip(inst, 'uninstall')} -y {_quote(names)}"


def _name(requirement: str) -> str:
    found = _REQUIREMENT.match(requirement)
    name = found.group(1).lower() if found else requirement
    return CONDA_NAMES.get(name, name)


def _pip(inst: Installer, verb: str) -> str:
    """``PY -m pip VERB`` / ``uv pip VERB --python PY`` / ``PY -m ensurepip && PY -m pip VERB``."""
    python = shlex.quote(inst.python)
    if inst.kind == "uv":
        return f"{shlex.quote(inst.tool)} pip {verb} --python {python}"
    if inst.kind == "ensurepip":
        return f"{python} -m ensurepip && {python} -m pip {verb}"
    return f"{python} -m pip {verb}"


__all__ = [
    "CONDA_NAMES",
    "Installer",
    "InstallerKind",
    "conda_spec",
    "has_pip",
    "install_command",
    "install_pypi_command",
    "installer_for",
    "pip_owned",
    "pypi_installer",
    "uninstall_command",
]
