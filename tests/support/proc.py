"""Run the real ``dlsetup`` CLI in a subprocess (for tests that need a fresh process:
an NVML library picked up through ``LD_LIBRARY_PATH``, a stand-in framework on ``PYTHONPATH``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dlsetup ARGS`` and capture its output.

    Args:
        args: the command-line arguments after ``dlsetup``.
        env: variables added to (or overriding) this process's environment.
        cwd: working directory; the repository root by default.
        timeout: seconds before the process is killed.
    """
    full_env = dict(os.environ)
    full_env.setdefault("NO_COLOR", "1")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "dlsetup", *args],
        env=full_env,
        cwd=str(cwd or REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
