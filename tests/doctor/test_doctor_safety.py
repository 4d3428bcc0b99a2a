"""``dlsetup doctor`` ends cleanly: SIGTERM, imports that fork helpers, huge variables, bad input.

Real processes and real signals: doctor runs in a subprocess with stand-in frameworks on
``PYTHONPATH`` (``tests/doctor/standins.py``), SIGTERM is sent with ``os.kill``, and psutil checks
that no framework worker, nor anything a worker started, survives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from dlsetup.cli import cli
from tests.doctor.standins import _write, hanging_standin, tensorflow_standin
from tests.support.fake_nvml import SCENARIOS, nvml_env, subprocess_env
from tests.support.proc import REPO, run_cli
from tests.support.processes import alive, descendants, reap, survivors
from tests.support.signals import SIGNALLED

posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGTERM and process groups are POSIX")


def _env(fake_nvml_dir: Path, pythonpath: Path) -> dict[str, str]:
    env = nvml_env(fake_nvml_dir, **SCENARIOS["driver_535_cuda_12_2_one_h100"])
    return subprocess_env({**env, "PYTHONPATH": str(pythonpath)})


def _start_doctor(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dlsetup", "doctor", "--json", *args],
        env={**os.environ, **env, "NO_COLOR": "1"},
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **SIGNALLED,
    )


def _framework_workers(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            if any("framework_worker.py" in a for a in psutil.Process(pid).cmdline()):
                found.add(pid)
        except psutil.Error:
            continue
    return found


def _members_of(groups: set[int]) -> list[int]:
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) in groups and alive(p.pid):
                found.append(p.pid)
        except OSError:
            continue
    return found


# ----------------------------------------------------------------------------- 7: SIGTERM ----


@posix_only
def test_sigterm_while_imports_hang_exits_143_and_ends_every_worker_group(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    hanging_standin(tmp_path, "torch")
    hanging_standin(tmp_path, "tensorflow")
    proc = _start_doctor(_env(fake_nvml_dir, tmp_path), "--timeout", "120")
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(_framework_workers(pids)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "no workers"
            pids |= descendants(proc.pid)
            time.sleep(0.05)
        time.sleep(1.0)  # doctor waits for the workers now
        groups = {os.getpgid(pid) for pid in _framework_workers(pids)}
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)  # not the 120 s probe timeout
        took = time.monotonic() - started
    finally:
        reap(proc, pids)
    assert proc.returncode == 143, err
    assert err.strip().endswith("Terminated.") and "Traceback" not in err
    assert json.loads(out)["data"]["error"]["exit_code"] == 143
    assert took < 15
    assert survivors(pids) == [] and _members_of(groups) == []


@posix_only
@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.2])
def test_sigterm_while_the_workers_start_leaves_no_worker(
    fake_nvml_dir: Path, tmp_path: Path, delay_s: float
) -> None:
    hanging_standin(tmp_path, "torch")
    hanging_standin(tmp_path, "tensorflow")
    proc = _start_doctor(_env(fake_nvml_dir, tmp_path), "--timeout", "120")
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not pids:  # the first worker exists: the second may be starting
            assert proc.poll() is None and time.monotonic() < deadline, "no workers"
            pids |= descendants(proc.pid)
            time.sleep(0.005)
        time.sleep(delay_s)
        pids |= descendants(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        reap(proc, pids)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert survivors(pids) == []


#: ``dlsetup doctor`` in a process where SIGTERM arrives the moment the first framework worker has
#: been started, before ``Popen`` has even returned it: the worst moment of the start-up.
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
sys.argv = ["dlsetup", "doctor", "--json", "--timeout", "120"]
main()
"""


@posix_only
def test_sigterm_the_moment_a_worker_starts_still_ends_it(
    fake_nvml_dir: Path, tmp_path: Path
) -> None:
    hanging_standin(tmp_path, "torch")
    hanging_standin(tmp_path, "tensorflow")
    pid_file = tmp_path / "pids"
    proc = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT_FIRST_POPEN, str(pid_file)],
        env={**os.environ, **_env(fake_nvml_dir, tmp_path), "NO_COLOR": "1"},
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
    assert pids and left == [], "a worker started as SIGTERM arrived outlived doctor"


# ------------------------------------------------- 10: a helper that holds the probe's stdout ----

#: A torch whose import starts a helper in a session of its own (out of reach of a signal to the
#: worker's group) that inherits stdout and stderr and lives for two minutes; then the import
#: hangs (``hang=True``) or finishes (``hang=False``).
HELPER_TORCH = """
import subprocess, sys, time
helper = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
)
open({pid_file!r}, "w").write(str(helper.pid))
if {hang!r}:
    while True:
        time.sleep(60)
__version__ = "2.6.0+cpu"
from types import SimpleNamespace
version = SimpleNamespace(cuda=None, hip=None)
cuda = SimpleNamespace(get_arch_list=lambda: [], is_available=lambda: False, device_count=lambda: 0)
backends = SimpleNamespace(
    cudnn=SimpleNamespace(version=lambda: None),
    mps=SimpleNamespace(is_built=lambda: False, is_available=lambda: False),
)
"""


@posix_only
@pytest.mark.parametrize("hang", [True, False], ids=["import-hangs", "import-finishes"])
def test_a_helper_holding_the_probes_stdout_does_not_outlast_the_timeout(
    fake_nvml_dir: Path, tmp_path: Path, hang: bool
) -> None:
    pid_file = tmp_path / "helper.pid"
    _write(tmp_path, "torch", HELPER_TORCH.format(pid_file=str(pid_file), hang=hang))
    tensorflow_standin(tmp_path)
    start = time.monotonic()
    try:
        proc = run_cli(
            "doctor", "--json", "--timeout", "5",
            env=_env(fake_nvml_dir, tmp_path), timeout=60,
        )  # fmt: skip
        took = time.monotonic() - start
        helper = int(pid_file.read_text())
        helper_left = survivors({helper}, within_s=2.0)
    finally:
        if pid_file.exists() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    data = json.loads(proc.stdout)["data"]
    assert took < 20, f"doctor took {took:.0f} s with --timeout 5"
    torch = data["frameworks"]["torch"]
    if hang:
        assert torch["status"] == "timeout"
        assert helper_left == [], "the helper the import started outlived the probe"
    else:
        assert torch["status"] == "ok" and torch["version"] == "2.6.0+cpu"


# ------------------------------------------------------- 11: huge CUDA_VISIBLE_DEVICES, --python ----


@pytest.mark.parametrize("value", ["x" * 100_000, "0," * 50_000, "GPU-" + "a" * 100_000])
def test_a_100_kb_cuda_visible_devices_is_not_echoed_whole(fake_nvml_dir: Path, value: str) -> None:
    env = nvml_env(fake_nvml_dir, **SCENARIOS["driver_535_cuda_12_2_one_h100"])
    proc = run_cli(
        "doctor", "--no-frameworks", env=subprocess_env({**env, "CUDA_VISIBLE_DEVICES": value})
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert len(proc.stdout) < 20_000, "the value was echoed whole"
    assert f"… ({len(value)} characters)" in proc.stdout


def test_a_100_kb_cuda_visible_devices_is_cut_in_the_findings(fake_nvml_dir: Path) -> None:
    env = nvml_env(fake_nvml_dir, **SCENARIOS["driver_535_cuda_12_2_one_h100"])
    value = "x" * 100_000
    proc = run_cli(
        "doctor", "--no-frameworks", "--json",
        env=subprocess_env({**env, "CUDA_VISIBLE_DEVICES": value}),
    )  # fmt: skip
    findings = json.loads(proc.stdout)["data"]["findings"]
    texts = [f["message"] + f["title"] + f["fix"] for f in findings]
    assert texts and all(len(t) < 2_000 for t in texts)
    assert any("… (100000 characters)" in t for t in texts)


def test_an_empty_python_is_a_usage_error_not_dlsetups_own_interpreter() -> None:
    result = CliRunner().invoke(cli, ["doctor", "--python", "", "--json"])
    assert result.exit_code == 2, result.output
    assert "'' is empty" in result.output


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_a_timeout_that_is_not_a_finite_positive_number_is_a_usage_error(value: str) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--no-frameworks", "--timeout", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--timeout'" in result.output
