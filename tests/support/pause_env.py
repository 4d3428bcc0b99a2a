"""The environment that pauses ``dlsetup create`` after its first linked package (a test hook that
lives in ``tests/support/pause/sitecustomize.py``, not in dlsetup)."""

from __future__ import annotations

import os
from pathlib import Path

PAUSE_DIR = Path(__file__).resolve().parent / "pause"
REPO = Path(__file__).resolve().parents[2]
PAUSE_ENV = "DLSETUP_TEST_PAUSE_AFTER_LINK"
PAUSE_SECONDS_ENV = "DLSETUP_TEST_PAUSE_SECONDS"


def pause_env(marker: Path, seconds: float | None = None) -> dict[str, str]:
    """Variables that make the dlsetup process write ``marker`` and pause ``seconds`` (default 120)
    once its first package is linked; merged into a child's environment."""
    path = os.pathsep.join(
        p for p in (str(PAUSE_DIR), str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env = {"PYTHONPATH": path, PAUSE_ENV: str(marker)}
    if seconds is not None:
        env[PAUSE_SECONDS_ENV] = str(seconds)
    return env
