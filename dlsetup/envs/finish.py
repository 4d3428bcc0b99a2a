"""After an environment is built: how to activate it, and the smoke run inside it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

SMOKE_TIMEOUT_S = 1800


def activation_hint(prefix: Path, name: str) -> str:
    """The command that activates the environment at ``prefix`` (named ``name``).

    ``conda activate NAME`` (or mamba/micromamba) when it lives in that tool's envs directory,
    ``TOOL activate PREFIX`` elsewhere, and a ``PATH`` line when no conda-like tool exists.
    """
    from dlsetup.envs.install import default_envs_dir
    from dlsetup.envs.lock import find_conda_executable

    exe = find_conda_executable()
    if exe is not None:
        tool = Path(exe).stem
        if prefix.parent == default_envs_dir():
            return f"{tool} activate {name}"
        return f"{tool} activate {prefix}"
    if sys.platform == "win32":
        return f'set "PATH={prefix};{prefix}\\Scripts;{prefix}\\Library\\bin;%PATH%"'
    return f'export PATH="{prefix}/bin:$PATH"   (or, with micromamba: micromamba activate {prefix})'


def python_runs(python: Path) -> bool:
    """Whether ``python -c 'import sys'`` succeeds within 60 s."""
    try:
        proc = subprocess.run(
            [str(python), "-c", "import sys; sys.exit(0)"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def run_smoke(python: Path | None) -> dict[str, Any]:
    """Run ``dlsetup smoke --python PYTHON --json`` when possible.

    Returns:
        ``{"status": "passed"|"failed"|"skipped", "reason": str, "exit_code": int|None}``.
    """
    if python is None:
        return {"status": "skipped", "reason": "the environment has no Python", "exit_code": None}
    if importlib.util.find_spec("dlsetup.commands.smoke") is None:
        return {
            "status": "skipped",
            "reason": "this dlsetup has no smoke command",
            "exit_code": None,
        }
    if not python_runs(python):
        return {"status": "skipped", "reason": f"{python} does not run", "exit_code": None}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dlsetup", "smoke", "--python", str(python), "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=SMOKE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {
            "status": "failed",
            "reason": f"dlsetup smoke did not finish within {SMOKE_TIMEOUT_S} s",
            "exit_code": None,
        }
    return {
        "status": "passed" if proc.returncode == 0 else "failed",
        "reason": "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or [""])[-1],
        "exit_code": proc.returncode,
    }
