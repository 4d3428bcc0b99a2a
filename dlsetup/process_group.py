"""Kept only until dlsetup/envs/ calls :mod:`dlsetup.children` directly (it is being moved).

Everything here is :mod:`dlsetup.children`; this module goes once its last caller has gone.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence

from dlsetup.children import STOP_SIGNALS, deferred_stop_signals, run

__all__ = ["STOP_SIGNALS", "deferred_stop_signals", "run_in_own_group"]


def run_in_own_group(
    argv: Sequence[str],
    *,
    timeout_s: float,
    grace_s: float = 15.0,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
) -> subprocess.CompletedProcess[str]:
    """:func:`dlsetup.children.run` as envs/ calls it today: SIGINT at the deadline, and
    ``subprocess.TimeoutExpired`` raised once the group has been ended."""
    done = run(
        argv,
        timeout=timeout_s,
        grace=grace_s,
        env=env,
        stdin="inherit",
        stop_signal=signal.SIGINT,
        die_with_parent=die_with_parent,
    )
    if done.timed_out:
        raise subprocess.TimeoutExpired(list(argv), timeout_s, done.stdout, done.stderr)
    return subprocess.CompletedProcess(list(argv), done.returncode, done.stdout, done.stderr)
