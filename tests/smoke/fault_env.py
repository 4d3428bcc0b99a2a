"""The environment that turns on the smoke's test-only faults in the workers.

The faults live in ``tests/smoke/faults/sitecustomize.py`` (see its docstring for the list): with
that directory first on ``PYTHONPATH`` and ``DLSETUP_TEST_FAULTS`` set, every worker imports it at
start-up and it patches the framework or the worker's backend from outside. No production module
knows about them.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULTS_DIR = Path(__file__).resolve().parent / "faults"


def fault_env(faults: str, *pythonpath: Path) -> dict[str, str]:
    """Environment variables for the workers: ``faults`` (``FRAMEWORK:NAME=VALUE,...``, ``*:``
    for both frameworks) on, with ``pythonpath`` (stand-in packages) after the faults' directory."""
    path = os.pathsep.join(str(p) for p in (FAULTS_DIR, *pythonpath))
    return {"PYTHONPATH": path, "DLSETUP_TEST_FAULTS": faults}
