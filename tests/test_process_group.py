"""The shared "end a child and everything it started" helper."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from dlsetup.process_group import kill_group, new_group_options

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
