"""``dlsetup smoke`` ends cleanly: SIGTERM, bad inputs, bad baselines and bad output paths.

Real processes and real signals: the CLI runs in a subprocess, SIGTERM is sent with ``os.kill``,
and psutil checks that no process of the run (its framework workers, each leading a process group
of its own) survives. Hangs are injected with the workers' test-only faults (:func:`tests.smoke.fault_env.fault_env`)
or with a stand-in framework on ``PYTHONPATH`` whose import never returns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from tests.doctor.standins import hanging_standin
from tests.smoke.fault_env import fault_env
from tests.support.proc import REPO, run_cli
from tests.support.processes import alive, descendants, reap, survivors
from tests.support.signals import SIGNALLED

posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGTERM and process groups are POSIX")
MISSING_PYTHON = "/nonexistent/env/bin/python"


# ------------------------------------------------------------------------------------ helpers ----


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dlsetup", *args],
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )


def _workers(pids: set[int]) -> set[int]:
    """The smoke workers (``*_worker.py`` scripts) among ``pids``."""
    found = set()
    for pid in pids:
        try:
            if any(a.endswith("_worker.py") for a in psutil.Process(pid).cmdline()):
                found.add(pid)
        except psutil.Error:
            continue
    return found


def _wait_for_workers(proc: subprocess.Popen[str], count: int, timeout_s: float) -> set[int]:
    """Poll the descendants of ``proc`` until ``count`` workers run; returns every pid seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        seen |= descendants(proc.pid)
        if len(_workers(seen)) >= count:
            return seen
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- 7: SIGTERM ----


@posix_only
def test_sigterm_while_devices_hang_exits_143_and_no_process_of_the_run_survives() -> None:
    proc = _start("smoke", "--timeout", "300", env=fault_env("*:hang=cpu"))
    pids: set[int] = set()
    try:
        pids = _wait_for_workers(proc, 2, 60)
        time.sleep(3.0)  # both workers past their imports, asleep in the injected hang
        pids |= descendants(proc.pid)
        assert all(os.getpgid(pid) == pid for pid in _workers(pids)), "each leads its own group"
        groups = {os.getpgid(pid) for pid in _workers(pids)}
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # dlsetup only, as `kill` or `timeout` does
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
        members = {p.pid for p in psutil.process_iter() if _group_or_none(p.pid) in groups}
    finally:
        reap(proc, pids)
    assert proc.returncode == 143, err
    assert err.strip().endswith("Terminated.")
    assert "Traceback" not in err
    assert took < 15, "the workers were not ended at once"
    assert survivors(pids) == [] and not [pid for pid in members if alive(pid)]


def _group_or_none(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@posix_only
@pytest.mark.parametrize("delay_s", [0.0, 0.3, 1.0])
def test_sigterm_while_the_workers_start_leaves_no_worker(delay_s: float) -> None:
    """SIGTERM as soon as the first worker exists (the other may be starting), or shortly after
    (inside the framework imports)."""
    proc = _start("smoke", "--timeout", "300", env=fault_env("*:hang=cpu"))
    pids: set[int] = set()
    try:
        pids = _wait_for_workers(proc, 1, 60)
        time.sleep(delay_s)
        pids |= descendants(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        pids |= descendants(proc.pid) if proc.poll() is None else set()
        reap(proc, pids)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert survivors(pids) == []


#: ``dlsetup smoke`` in a process where SIGTERM arrives the moment the first worker has been started
#: (from a framework thread, before ``Popen`` has returned it): the worst moment of the start-up.
SIGTERM_AT_FIRST_POPEN = """
import os, signal, subprocess, sys
real = subprocess.Popen
pid_file = sys.argv[1]
calls = []
class Popen(real):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with open(pid_file, "a") as fh:
            fh.write(f"{self.pid}\\n")
        if not calls:
            calls.append(self.pid)
            os.kill(os.getpid(), signal.SIGTERM)
subprocess.Popen = Popen
from dlsetup.cli import main
sys.argv = ["dlsetup", "smoke", "--timeout", "300"]
main()
"""


@posix_only
def test_sigterm_the_moment_a_worker_starts_still_ends_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    proc = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT_FIRST_POPEN, str(pid_file)],
        env={**os.environ, "NO_COLOR": "1", **fault_env("*:hang=cpu")},
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
        **SIGNALLED,
    )
    pids = {int(line) for line in pid_file.read_text().split()}
    try:
        left = survivors(pids)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr
    assert pids and left == []


#: Runs create's smoke phase (``dlsetup.envs.finish.run_smoke``: ``dlsetup smoke`` as a child in
#: a process group of its own) in a process that handles SIGTERM as the CLI does.
CREATE_SMOKE_PHASE = """
import sys
from pathlib import Path
from dlsetup.cli import install_sigterm_handler
from dlsetup.errors import Terminated
install_sigterm_handler()
from dlsetup.envs.finish import run_smoke
try:
    run_smoke(Path(sys.executable), Path(sys.argv[1]))
except Terminated:
    sys.exit(143)
sys.exit(0)
"""


@posix_only
def test_sigterm_during_creates_smoke_phase_ends_the_child_smoke_and_its_workers(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CREATE_SMOKE_PHASE, str(tmp_path)],
        env={**os.environ, "NO_COLOR": "1", **fault_env("*:hang=cpu")},
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )
    pids: set[int] = set()
    try:
        pids = _wait_for_workers(proc, 2, 90)
        time.sleep(2.0)
        pids |= descendants(proc.pid)
        child_smoke = [p for p in pids if p not in _workers(pids)]
        assert child_smoke, "the child dlsetup smoke is running"
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # well inside the 15 s grace + the kill
    finally:
        reap(proc, pids)
    assert proc.returncode == 143, err
    assert survivors(pids) == [], "the child smoke or one of its workers outlived create"


# ------------------------------------------------------------------ 8: --compare baselines ----

GOOD_DOC: dict[str, Any] = {
    "schema": "dlsetup.smoke-benchmark",
    "schema_version": 1,
    "dlsetup_version": "0.1.0",
    "created": "2026-01-01T00:00:00Z",
    "data": {
        "wall_s": 5.0,
        "machine": {"hostname": "h", "system": "Linux", "machine": "x86_64", "processor": "p",
                    "cpu_count": 2, "memory_bytes": 1, "python": "python"},
        "runs": [
            {"framework": "torch", "device": "cpu", "status": "ok", "combinations": 48,
             "steps": 200, "ms_per_step": 1.5, "steps_per_second": 666.7, "import_s": 1.2,
             "phases": {"train_s": 0.3, "warmup_s": 0.01},
             "peak_rss_bytes": 300 * 2**20,
             "peak_device_bytes": {"reason": "host_device", "detail": ""}},
        ],
    },
}  # fmt: skip


def _doc(change: Any) -> bytes:
    doc = json.loads(json.dumps(GOOD_DOC))
    change(doc)
    return json.dumps(doc).encode()


def _run0(doc: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = doc["data"]["runs"][0]
    return run


#: name -> (file content, what the error message must name)
MALFORMED: dict[str, tuple[bytes, str]] = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not JSON text"),
    "empty file": (b"", "is not JSON text"),
    "truncated": (b'{"schema": "dlsetup.smoke-benchmark", ', "is not JSON text"),
    "a string": (b'"baseline"', "is a JSON string, neither"),
    "null": (b"null", "is a JSON null, neither"),
    "a number": (b"42", "is a JSON number, neither"),
    "object without schema": (b'{"a": 1}', "is a JSON object without a schema"),
    "another schema": (b'{"schema": "dlsetup.doctor"}', "is a dlsetup.doctor document"),
    "empty list": (b"[]", "the list is empty"),
    "NaN value": (b'[{"name": "a", "unit": "s", "value": NaN}]', "NaN is not a JSON value"),
    "list of null": (b"[null]", "entry 0 must be an object"),
    "list of strings": (b'["a"]', "entry 0 must be an object"),
    "string value": (b'[{"name": "a", "unit": "s", "value": "1"}]', "entry 0.value must be"),
    "null value": (b'[{"name": "a", "unit": "s", "value": null}]', "entry 0.value must be"),
    "negative value": (b'[{"name": "a", "unit": "s", "value": -1}]', "entry 0.value must be"),
    "missing value": (b'[{"name": "a", "unit": "s"}]', "entry 0.value is missing"),
    "missing name": (b'[{"unit": "s", "value": 1}]', "entry 0.name is missing"),
    "numeric name": (b'[{"name": 3, "unit": "s", "value": 1}]', "entry 0.name must be"),
    "schema_version 99": (_doc(lambda d: d.update(schema_version=99)), "schema_version 99"),
    "schema_version string": (_doc(lambda d: d.update(schema_version="1")), "schema_version '1'"),
    "no schema_version": (_doc(lambda d: d.pop("schema_version")), "schema_version is missing"),
    "data null": (_doc(lambda d: d.update(data=None)), "data must be an object"),
    "no runs": (_doc(lambda d: d["data"].pop("runs")), "data.runs is missing"),
    "runs a string": (_doc(lambda d: d["data"].update(runs="x")), "data.runs must be a list"),
    "run null": (_doc(lambda d: d["data"]["runs"].__setitem__(0, None)), "data.runs[0] must be"),
    "no device": (_doc(lambda d: _run0(d).pop("device")), "data.runs[0].device is missing"),
    "ms_per_step string": (
        _doc(lambda d: _run0(d).update(ms_per_step="fast")),
        "data.runs[0].ms_per_step must be",
    ),
    "ms_per_step null": (
        _doc(lambda d: _run0(d).update(ms_per_step=None)),
        "data.runs[0].ms_per_step must be",
    ),
    "peak_rss_bytes float": (
        _doc(lambda d: _run0(d).update(peak_rss_bytes=1.5)),
        "data.runs[0].peak_rss_bytes must be an integer",
    ),
    "phase a string": (
        _doc(lambda d: _run0(d)["phases"].update(train_s="x")),
        "data.runs[0].phases.train_s must be",
    ),
    "wall_s missing": (_doc(lambda d: d["data"].pop("wall_s")), "data.wall_s is missing"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_baseline_exits_2_naming_the_file_and_the_field(
    name: str, tmp_path: Path
) -> None:
    content, fragment = MALFORMED[name]
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(content)
    result = CliRunner().invoke(
        cli, ["smoke", "--compare", str(baseline), "--python", MISSING_PYTHON]
    )
    assert result.exit_code == 2, result.output
    assert f"Error: baseline {baseline}" in result.output
    assert fragment in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(future_field={"x": 1}),
        lambda d: d["data"].update(future_field=[1]),
        lambda d: _run0(d).update(future_field="x"),
        lambda d: d["data"]["machine"].update(gpu_driver="575"),
        lambda d: d["data"].update(machine="not read by --compare"),
    ],
    ids=["top", "data", "run", "machine", "machine-replaced"],
)
def test_unknown_fields_of_a_baseline_are_tolerated(change: Any, tmp_path: Path) -> None:
    from dlsetup.smoke.benchmark import load_baseline

    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(_doc(change))
    names = [m.name for m in load_baseline(baseline)]
    assert names == [
        "smoke wall time",
        "torch cpu ms per step",
        "torch cpu train",
        "torch cpu peak RSS",
    ]
    # ... and the command goes on to the run (here: to the missing interpreter, exit 3)
    result = CliRunner().invoke(
        cli, ["smoke", "--compare", str(baseline), "--python", MISSING_PYTHON]
    )
    assert result.exit_code == 3, result.output


def test_extra_keys_of_a_custom_smaller_is_better_entry_are_tolerated(tmp_path: Path) -> None:
    from dlsetup.smoke.benchmark import load_baseline

    baseline = tmp_path / "gh.json"
    baseline.write_text(json.dumps([{"name": "a", "unit": "s", "value": 1, "range": "±0.1"}]))
    assert [(m.name, m.value) for m in load_baseline(baseline)] == [("a", 1.0)]


@pytest.mark.slow
@pytest.mark.torch
def test_a_baseline_whose_names_match_nothing_fails_the_gate(tmp_path: Path) -> None:
    baseline = tmp_path / "other-machine.json"
    baseline.write_text(json.dumps([{"name": "torch gpu:7 ms per step", "unit": "ms", "value": 1}]))
    proc = run_cli(
        "smoke", "--framework", "torch", "--steps", "30", "--compare", str(baseline),
        "--max-regression", "1000%",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Result: PASS" in proc.stdout  # the checks passed: the gate alone fails
    assert f"Comparison: FAIL — nothing compared: no metric of this run is in {baseline}" in (
        proc.stdout.replace("\n", " ")
    )
    proc = run_cli(
        "smoke", "--framework", "torch", "--steps", "30", "--json", "--compare", str(baseline)
    )
    assert proc.returncode == 1
    comparison = json.loads(proc.stdout)["data"]["comparison"]
    assert (comparison["compared"], comparison["passed"], comparison["regressed"]) == (
        0,
        False,
        False,
    )


# ---------------------------------------------------------------- 9: output paths, up front ----


@pytest.mark.parametrize("option", ["--output", "--github-benchmark", "--plot"])
@pytest.mark.parametrize("where", ["missing-dir", "under-a-file", "a-directory", "read-only"])
def test_an_unwritable_output_path_is_refused_before_the_run(
    option: str, where: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    if where == "read-only" and os.access(read_only, os.W_OK):  # root: mode bits do not bind
        read_only = Path("/proc/self")  # a directory nobody may create files in, root included
        if not read_only.is_dir() or os.access(read_only, os.W_OK):
            pytest.skip("no read-only directory for this user")
    path = {
        "missing-dir": tmp_path / "no" / "such" / "out.json",
        "under-a-file": tmp_path / "file" / "out.json",
        "a-directory": tmp_path,
        "read-only": read_only / "out.json",
    }[where]
    expected = {
        "missing-dir": f"{option} {path}: the directory {path.parent} does not exist",
        "under-a-file": f"{option} {path}: {tmp_path / 'file'} is a file, not a directory",
        "a-directory": "is a directory",
        "read-only": f"{option} {path}: the directory {read_only} is not writable",
    }[where]
    start = time.monotonic()
    # an interpreter that does not exist: old code, which checked the path only after the run,
    # ends with exit 3 (no interpreter) instead
    result = CliRunner().invoke(cli, ["smoke", option, str(path), "--python", MISSING_PYTHON])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert time.monotonic() - start < 5
    (tmp_path / "ro").chmod(0o755)


def test_two_outputs_on_one_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    result = CliRunner().invoke(
        cli,
        [
            "smoke",
            "--output",
            str(path),
            "--github-benchmark",
            str(path),
            "--python",
            MISSING_PYTHON,
        ],
    )
    assert result.exit_code == 2
    assert "--output and --github-benchmark are the same file" in result.output


# -------------------------------------------------------------------- 10: start-up timeout ----


@pytest.mark.slow
def test_a_framework_import_that_hangs_is_ended_by_timeout_not_after_120_s(tmp_path: Path) -> None:
    hanging_standin(tmp_path, "torch")
    start = time.monotonic()
    proc = run_cli(
        "smoke", "--framework", "torch", "--json", "--timeout", "3",
        env={"PYTHONPATH": str(tmp_path)}, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    (framework,) = json.loads(proc.stdout)["data"]["frameworks"]
    assert framework["status"] == "error"
    assert framework["reason"].startswith("no answer within 3 s (--timeout) before running any")
    assert took < 30


# -------------------------------------------------------------------------- 11: bad inputs ----


def test_an_interpreter_without_numpy_is_exit_3_with_the_install_command(tmp_path: Path) -> None:
    venv.create(tmp_path / "env", with_pip=False)  # no site-packages of this one: no NumPy
    python = tmp_path / "env" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    proc = run_cli("smoke", "--python", str(python), "--framework", "torch", timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"Error: NumPy cannot be imported by {python}" in proc.stderr
    # a venv without pip gets uv's command (uv on PATH) or pip installed first, never a bare
    # "-m pip" that fails with "No module named pip" (dlsetup.installer)
    assert (
        f"Fix: install numpy in that environment: uv pip install --python {python} numpy"
        in proc.stderr
        or f"Fix: install numpy in that environment: {python} -m ensurepip && {python} -m pip "
        "install numpy"
        in proc.stderr
    ), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.torch
def test_a_well_formed_device_that_no_framework_has_is_named() -> None:
    proc = run_cli(
        "smoke", "--framework", "torch", "--steps", "30", "--device", "cpu", "--device", "cuda:7"
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Error: no framework detects device cuda:7 (detected: cpu)" in proc.stderr


def test_seed_minus_one_is_a_usage_error_not_a_failed_row() -> None:
    result = CliRunner().invoke(cli, ["smoke", "--seed", "-1", "--python", MISSING_PYTHON])
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.output
