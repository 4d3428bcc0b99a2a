"""A rank's node tools (nccl-tests, DCGM) run through dlsetup's one child runner, loaded by path.

``distributed_checks`` runs inside a torchrun rank's interpreter, which has no dlsetup to import:
it loads ``dlsetup/children.py`` by path. Each test runs it that way, in ``python -S`` (no
site-packages, so no dlsetup), with real shell commands standing in for the tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.proc import REPO

CHECKS = REPO / "dlsetup" / "fleet" / "distributed_checks.py"

_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("distributed_checks", sys.argv[1])
checks = importlib.util.module_from_spec(spec)
sys.modules["distributed_checks"] = checks
spec.loader.exec_module(checks)
assert "dlsetup" not in sys.modules
print(json.dumps(checks._run_tool(json.loads(sys.argv[2]), float(sys.argv[3]))))
"""


def run_tool(argv: list[str], timeout: float) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _PROBE, str(CHECKS), json.dumps(argv), str(timeout)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={"PATH": os.environ.get("PATH", "")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_a_tool_s_exit_status_and_both_outputs_are_kept() -> None:
    result = run_tool(["sh", "-c", "echo '# Avg bus bandwidth : 1.5'; echo oops >&2; exit 3"], 30)
    assert result["status"] == "ran" and result["exit_code"] == 3
    assert "# Avg bus bandwidth : 1.5" in str(result["output"])
    assert "oops" in str(result["output"])


def test_a_tool_past_its_deadline_ends_with_everything_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result = run_tool(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo begun; wait"], 1.0)
    assert time.monotonic() - started < 30
    assert result["status"] == "timeout" and result["exit_code"] is None
    assert "begun" in str(result["output"])  # what it said before its deadline is kept
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{grandchild}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{grandchild}").exists()  # subprocess.run's timeout left it running


def test_a_tool_that_cannot_start_is_an_error_not_a_traceback() -> None:
    result = run_tool(["/nonexistent/all_reduce_perf"], 5)
    assert result["status"] == "error" and result["exit_code"] is None
    assert "No such file" in str(result["output"])
