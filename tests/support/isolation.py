"""Every cache and data directory dlsetup, rattler and uv use, pointed into a test's ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest


def isolate_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **more: str) -> dict[str, str]:
    """Set the variables (``more`` adds some, e.g. ``UV_CACHE_DIR``) and return them, for tests
    that start a subprocess."""
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "RATTLER_CACHE_DIR": str(tmp_path / "cache" / "rattler"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"),
        "DLSETUP_ENVS_DIR": str(tmp_path / "envs"),
        "NO_COLOR": "1",
        **more,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CONDA_ENVS_PATH", raising=False)
    return env
