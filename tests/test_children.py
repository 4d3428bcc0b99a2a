"""The shared "end a child and everything it started" helper."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dlsetup.process_group import kill_group, new_group_options, run_in_own_group

#: A child that starts a grandchild, prints the grandchild's pid, then waits.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(os.name != "posix", reason="process groups are signalled on POSIX")
def test_kill_group_ends_the_child_and_the_grandchild_it_started() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, **new_group_options()
    )
    assert proc.stdout is not None
    grandchild = psutil.Process(int(proc.stdout.readline()))
    kill_group(proc)
    assert proc.wait(timeout=10) == -9
    deadline = time.monotonic() + 10
    while not _ended(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived kill_group"
        time.sleep(0.05)
    proc.stdout.close()


@pytest.mark.skipif(os.name != "posix", reason="process groups are signalled on POSIX")
def test_run_in_own_group_past_its_timeout_ends_what_the_command_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = PARENT.replace(
        "print(child.pid, flush=True)", f"open({str(pid_file)!r}, 'w').write(str(child.pid))"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        run_in_own_group([sys.executable, "-c", script], timeout_s=5)
    grandchild = psutil.Process(int(pid_file.read_text()))
    deadline = time.monotonic() + 10
    while not _ended(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived run_in_own_group"
        time.sleep(0.05)


def test_run_in_own_group_returns_exit_status_and_text_output() -> None:
    done = run_in_own_group(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
        ],
        timeout_s=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def _ended(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped by init
    except psutil.NoSuchProcess:
        return True


def test_kill_group_of_a_process_that_already_ended_is_quiet() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], **new_group_options())
    proc.wait(timeout=30)
    kill_group(proc)
    assert proc.returncode == 0


#: A child that, like ``dlsetup smoke``, starts a worker in a session of its own (out of reach of
#: a signal to the child's group) and ends it itself when interrupted.
STOPS_ITS_OWN_WORKER = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                          start_new_session=True)
open(sys.argv[1], "w").write(str(worker.pid))
try:
    time.sleep(60)
except KeyboardInterrupt:
    worker.kill()
    worker.wait()
    sys.exit(130)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGINT and sessions are POSIX")
def test_run_in_own_group_lets_the_command_end_workers_in_their_own_sessions(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "worker.pid"
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_in_own_group(
            [sys.executable, "-c", STOPS_ITS_OWN_WORKER, str(pid_file)], timeout_s=3, grace_s=20
        )
    assert time.monotonic() - start < 15  # it stopped on SIGINT, not at the end of the grace
    try:
        worker = psutil.Process(int(pid_file.read_text()))
    except psutil.NoSuchProcess:
        return  # ended and reaped by the command itself
    deadline = time.monotonic() + 10
    while not _ended(worker):
        assert time.monotonic() < deadline, "the worker in its own session outlived the command"
        time.sleep(0.05)
