"""Watching the processes a command started: who is still alive, and reaping what a test left.

Shared by the signal tests of doctor and smoke (real processes, real signals, psutil).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (empty when ``pid`` has ended)."""
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def survivors(pids: set[int], within_s: float = 5.0) -> list[int]:
    """The pids still alive after ``within_s`` seconds (a SIGKILLed process may take a moment)."""
    deadline = time.monotonic() + within_s
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def reap(proc: subprocess.Popen[str], pids: set[int]) -> None:
    """Never leave anything behind, whatever the test found."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
