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
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

#: The signals that stop dlsetup (Ctrl-C; kill, timeout, docker stop, CI cancellation).
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


def new_group_options() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that make the child lead a new process group.

    On POSIX the child starts a new session (so a terminal's Ctrl-C goes to dlsetup only, which
    then ends the group); on Windows it gets a new process group.
    """
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def _descendants(pid: int) -> list[Any]:
    """The live descendants of ``pid`` (psutil processes), or none when they cannot be read."""
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:  # gone already, no psutil, no permission: only the group
        return []


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """End ``proc`` and, on POSIX, every process of the group it leads, with SIGKILL.

    ``proc`` must have been started with :func:`new_group_options`. Descendants that left the
    group (a helper that started a session of its own and still holds the child's stdout) are
    killed too, as long as they are still descendants. A group that has already ended is not an
    error. Elsewhere, or when the group cannot be signalled, only ``proc`` is killed. The caller
    still waits for ``proc`` (``wait()``/``communicate()``).
    """
    strays = [p for p in _descendants(proc.pid) if _group_of(p.pid) != proc.pid]
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError:  # e.g. EPERM for a group of zombies on macOS: end the leader at least
            with contextlib.suppress(OSError):
                proc.kill()
    else:
        with contextlib.suppress(OSError):
            proc.kill()
    for stray in strays:
        with contextlib.suppress(Exception):
            stray.kill()


def _group_of(pid: int) -> int | None:
    if os.name != "posix":
        return None
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@contextlib.contextmanager
def deferred_stop_signals() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM while the block runs, then deliver them.

    For clean-up that must finish (ending worker process groups) and for starting a child and
    recording it, so that a signal between the two cannot leave the child unrecorded and
    running. A signal that arrives inside the block is delivered once the block ends (the
    handler that was installed runs then, raising ``KeyboardInterrupt`` or
    :class:`dlsetup.errors.Terminated`); it replaces an exception already leaving the block.
    Signal handlers belong to the main thread, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, hold)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            _deliver(pending[0], previous.get(pending[0]))


def _deliver(signum: int, handler: Any) -> None:
    """Act on a held-back signal as the handler that was installed would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


def stop_group(proc: subprocess.Popen[Any], *, grace_s: float, signum: int = signal.SIGINT) -> None:
    """Ask ``proc`` to stop, give it ``grace_s`` seconds, then end its whole group.

    On POSIX ``proc`` first gets ``signum`` (SIGINT, as from a terminal's Ctrl-C, or SIGTERM
    when dlsetup itself was terminated), so that it can end what it started in process groups of
    their own (``dlsetup smoke`` stops its framework workers on either; a SIGKILL of its group
    alone would orphan them). Whatever is left then is killed with :func:`kill_group`. The
    caller still waits for ``proc``.
    """
    if os.name == "posix" and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    kill_group(proc)


def _die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the kernel sends the child SIGKILL when dlsetup dies (Linux prctl).

    libc is looked up here, in the parent: nothing is imported between fork and exec.
    """
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return arm


def run_in_own_group(
    argv: Sequence[str],
    *,
    timeout_s: float,
    grace_s: float = 15.0,
    env: Mapping[str, str] | None = None,
    die_with_parent: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to the end as the leader of a new process group, capturing its output as text.

    On a timeout or an interrupt (Ctrl-C, or SIGTERM: then ``argv`` gets SIGTERM too) ``argv`` is
    asked to stop and then its whole group is ended (:func:`stop_group`), so what it started (a
    smoke test's framework workers, conda-lock's solver) does not outlive it. A second signal
    during that clean-up is held back until it is done.

    Args:
        argv: the command and its arguments.
        timeout_s: seconds it may run.
        grace_s: seconds it may take to stop after SIGINT before its group is killed.
        env: its environment (default: dlsetup's).
        die_with_parent: on Linux, the kernel kills it when dlsetup dies (even by SIGKILL, which
            no handler sees): for a command writing into a build that dlsetup would remove.

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout_s`` seconds (the group is ended).
    """
    options: dict[str, Any] = new_group_options()
    if die_with_parent and sys.platform == "linux":
        options["preexec_fn"] = _die_with_parent()
    with subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
        **options,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except BaseException as exc:
            from dlsetup.errors import Terminated

            signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            with deferred_stop_signals():
                stop_group(proc, grace_s=grace_s, signum=signum)
                proc.wait()
            raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
