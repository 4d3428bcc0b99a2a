"""Child processes that are ended together with everything they started.

A framework probe or a smoke run may leave helper processes of its own (a framework's compiler or
loader, the smoke test's framework workers). Started as the leader of a new process group, the
whole group can be ended at once on a timeout or an interrupt, so nothing outlives the command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any


def new_group_options() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that make the child lead a new process group.

    On POSIX the child starts a new session (so a terminal's Ctrl-C goes to dlsetup only, which
    then ends the group); on Windows it gets a new process group.
    """
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """End ``proc`` and, on POSIX, every process of the group it leads, with SIGKILL.

    ``proc`` must have been started with :func:`new_group_options`. A group that has already
    ended is not an error. Elsewhere, or when the group cannot be signalled, only ``proc`` is
    killed. The caller still waits for ``proc`` (``wait()``/``communicate()``).
    """
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except OSError:  # e.g. EPERM for a group of zombies on macOS: end the leader at least
            pass
    with contextlib.suppress(OSError):
        proc.kill()


def stop_group(proc: subprocess.Popen[Any], *, grace_s: float) -> None:
    """Ask ``proc`` to stop, give it ``grace_s`` seconds, then end its whole group.

    On POSIX ``proc`` first gets SIGINT, as from a terminal's Ctrl-C, so that it can end what it
    started in process groups of their own (``dlsetup smoke`` stops its framework workers that
    way; a SIGKILL of its group alone would orphan them). Whatever is left then is killed with
    :func:`kill_group`. The caller still waits for ``proc``.
    """
    if os.name == "posix" and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    kill_group(proc)


def run_in_own_group(
    argv: Sequence[str], *, timeout_s: float, grace_s: float = 15.0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to the end as the leader of a new process group, capturing its output as text.

    On a timeout or an interrupt (Ctrl-C) ``argv`` is asked to stop and then its whole group is
    ended (:func:`stop_group`), so what it started (a smoke test's framework workers, conda-lock's
    solver) does not outlive it.

    Args:
        argv: the command and its arguments.
        timeout_s: seconds it may run.
        grace_s: seconds it may take to stop after SIGINT before its group is killed.

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout_s`` seconds (the group is ended).
    """
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **new_group_options()
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except BaseException:
            stop_group(proc, grace_s=grace_s)
            proc.wait()
            raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
