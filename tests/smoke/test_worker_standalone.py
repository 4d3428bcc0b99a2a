"""The smoke workers run in a target environment where dlsetup is not installed: started by file
path, they load their sibling modules (worker_protocol, worker_grid, ...) from their own folder and
import only the standard library, NumPy and the framework."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlsetup.smoke.runner import LINE_PREFIX, worker_path

pytestmark = [pytest.mark.torch]


def test_the_torch_worker_runs_where_importing_dlsetup_fails(tmp_path: Path) -> None:
    shadow = tmp_path / "dlsetup"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('dlsetup is not installed here')\n")
    cache = tmp_path / "reference.npz"
    argv = [sys.executable, str(worker_path("torch")), "--steps", "20", "--one-device"]
    argv += ["--no-companions", "--reference-cache", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [
        json.loads(line[len(LINE_PREFIX) :])
        for line in proc.stdout.splitlines()
        if line.startswith(LINE_PREFIX)
    ]
    assert [e["event"] for e in events] == ["hello", "device_start", "device_result"]
    result = events[-1]
    assert result["status"] == "ok", result.get("error")
    assert all(c["passed"] for c in result["combinations"])
    assert "reference_s" in result["phases"] and cache.is_file()  # computed, then left for others
    # a second worker of the same run reads the reference the first one stored
    again = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    second = json.loads(again.stdout.splitlines()[-1][len(LINE_PREFIX) :])
    assert second["status"] == "ok" and "reference_read_s" in second["phases"]
    assert second["curves"] == result["curves"]
