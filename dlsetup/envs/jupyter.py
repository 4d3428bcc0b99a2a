"""Register an environment as a Jupyter kernel: a ``kernel.json`` pointing at its Python.

No jupyter import is needed: a kernelspec is a directory ``<data dir>/kernels/<name>/`` holding
``kernel.json`` (``argv``, ``display_name``, ``language``). The data directory follows Jupyter's
rules: ``$JUPYTER_DATA_DIR`` if set, else ``%APPDATA%\\jupyter`` on Windows,
``~/Library/Jupyter`` on macOS, and ``$XDG_DATA_HOME/jupyter`` (``~/.local/share/jupyter``) elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from dlsetup.atomic_write import write_text_atomically


@dataclass(frozen=True)
class KernelSpec:
    """A registered kernel.

    Attributes:
        name: the kernelspec directory name (``dlsetup-pytorch-cuda``).
        path: the ``kernel.json`` written.
        display_name: what Jupyter's launcher shows.
    """

    name: str
    path: Path
    display_name: str


def jupyter_data_dir() -> Path:
    """The user's Jupyter data directory (``$JUPYTER_DATA_DIR`` honoured)."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"]).expanduser()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        return (
            Path(appdata) / "jupyter"
            if appdata
            else Path.home() / "AppData" / "Roaming" / "jupyter"
        )
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Jupyter"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "jupyter"


def kernel_name(env_name: str) -> str:
    """A valid kernelspec name for an environment (``[a-z0-9._-]``, prefixed ``dlsetup-``)."""
    return "dlsetup-" + re.sub(r"[^a-z0-9._-]", "-", env_name.lower())


def has_ipykernel(prefix: Path) -> bool:
    """Whether the environment has the ipykernel package (a ``conda-meta`` record, or a venv's
    ``ipykernel-*.dist-info``)."""
    if any((prefix / "conda-meta").glob("ipykernel-*.json")):
        return True
    if not (prefix / "pyvenv.cfg").is_file():
        return False
    site = ("Lib/site-packages", "lib/python*/site-packages")
    return any(any(prefix.glob(f"{s}/ipykernel-*.dist-info")) for s in site)


def register_kernel(
    python: Path, env_name: str, *, prefix: Path, data_dir: Path | None = None
) -> KernelSpec:
    """Write ``kernels/dlsetup-<env_name>/kernel.json`` launching ``python -m ipykernel_launcher``.

    Args:
        python: the environment's Python executable.
        env_name: the environment's name (used for the kernel name and display name).
        prefix: the environment's directory (recorded in the kernelspec's metadata).
        data_dir: the Jupyter data directory (default: :func:`jupyter_data_dir`).
    """
    name = kernel_name(env_name)
    directory = (data_dir or jupyter_data_dir()) / "kernels" / name
    directory.mkdir(parents=True, exist_ok=True)
    display = f"Python ({env_name}, dlsetup)"
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display,
        "language": "python",
        "metadata": {"debugger": True, "dlsetup": {"prefix": str(prefix)}},
    }
    path = directory / "kernel.json"
    write_text_atomically(path, json.dumps(spec, indent=1) + "\n")
    return KernelSpec(name=name, path=path, display_name=display)
