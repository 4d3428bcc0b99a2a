"""The one way dlsetup starts a child process, and ends it together with everything it started.

Every child (a framework probe, a smoke worker, a device measurement, a torchrun rank's worker, an
``nvcc --version``, uv, conda-lock) is started here, and nowhere else in ``dlsetup/`` (a test holds
that), so that the same guarantees hold for all of them:

- **Its own process group.** The child leads a new session (POSIX) or process group (Windows): a
  terminal's Ctrl-C reaches dlsetup only, and dlsetup ends the child's whole group at once, so a
  framework's compiler, a smoke test's workers or conda-lock's solver do not outlive it.
- **It dies with dlsetup.** On Linux the kernel sends the child SIGKILL when dlsetup dies, even by
  SIGKILL, which no handler sees (``PR_SET_PDEATHSIG``).
- **A deadline that always returns.** Past its deadline the child is asked to stop (SIGTERM), given
  a grace, then its group (and descendants that left the group) get SIGKILL; waiting for it to be
  reaped is bounded too, so even a child stuck in the kernel (a hung GPU driver call, which SIGKILL
  only ends once the call returns) cannot hang dlsetup.
- **Interrupts are forwarded.** Ctrl-C (SIGINT) or SIGTERM (:class:`dlsetup.errors.Terminated`)
  while dlsetup waits is passed on to the child, which gets the grace to stop what it started in
  sessions of its own, then the group is killed; a second signal during that clean-up is held back.
- **Output to files, not pipes, when captured**: a helper the child forked may keep its copy of
  stdout open after the child has gone, and a reader waiting for the end of a pipe would wait for
  that helper, past any deadline.

Two entry points: :func:`run` (start, wait up to a deadline, end, return a :class:`Completed`) and
:func:`start` (a :class:`Child` handle for callers that stream output or run several children at
once).

A child inherits dlsetup's signal dispositions, as ``subprocess`` children do: a dlsetup started
with SIGINT ignored (``nohup``, ``cmd &`` in a script) passes the ignore on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Literal

#: The signals that stop dlsetup (Ctrl-C; kill, timeout, docker stop, CI cancellation).
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)

#: The signal a child gets when its deadline passes (then the grace, then SIGKILL).
DEFAULT_STOP_SIGNAL: int = getattr(signal, "SIGTERM", 15)

#: Seconds to wait for a killed child to be reaped. SIGKILL takes effect once the child leaves the
#: kernel; a child stuck there (uninterruptible sleep) is left to be reaped later rather than hang
#: dlsetup.
REAP_S = 5.0

#: Where a child's stdout or stderr goes: ``"pipe"`` (read it from :attr:`Child.stdout`),
#: ``"inherit"`` (dlsetup's own), ``"devnull"``, or an open binary file.
Stream = Literal["pipe", "inherit", "devnull"] | IO[bytes]


@dataclass(frozen=True)
class ToFiles:
    """:func:`run`'s output written to these files (created or truncated), not captured."""

    stdout: Path
    stderr: Path


#: :func:`run`'s output: ``"capture"`` (text in :class:`Completed`), ``"inherit"``, ``"devnull"``,
#: or :class:`ToFiles`.
Output = Literal["capture", "inherit", "devnull"] | ToFiles


@dataclass(frozen=True)
class Completed:
    """A child that :func:`run` ran to its end (or ended at its deadline).

    Attributes:
        args: the command and its arguments.
        returncode: its exit status; negative: killed by that signal. A child that did not end
            even after SIGKILL within :data:`REAP_S` (stuck in the kernel) reads ``-SIGKILL``.
        stdout: its standard output as text (UTF-8, undecodable bytes replaced) with
            ``output="capture"``; "" otherwise.
        stderr: likewise, its standard error.
        timed_out: it was still running at its deadline and was ended.
        elapsed_s: seconds from its start to its end.
    """

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """It ended by itself with exit status 0."""
        return not self.timed_out and self.returncode == 0


# ------------------------------------------------------------------ signals held back ----


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


def _forwarded(exc: BaseException) -> int:
    """The signal to pass on to a child when ``exc`` interrupted dlsetup's wait for it."""
    try:
        from dlsetup.errors import Terminated
    except ImportError:  # loaded by path in a target interpreter (a torchrun rank: load_by_path)
        return signal.SIGINT if isinstance(exc, KeyboardInterrupt) else DEFAULT_STOP_SIGNAL
    return DEFAULT_STOP_SIGNAL if isinstance(exc, Terminated) else signal.SIGINT


# -------------------------------------------------------------------------- starting ----


def _group_options() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that make the child lead a new process group.

    On POSIX the child starts a new session (so a terminal's Ctrl-C goes to dlsetup only, which
    then ends the group); on Windows it gets a new process group.
    """
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def _die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the kernel sends the child SIGKILL when dlsetup dies (Linux prctl).

    libc is looked up here, in the parent: nothing is imported between fork and exec. A parent
    that died between the fork and the prctl is caught by comparing the parent pid afterwards.
    The kernel ties the signal to the *thread* that started the child: start a child from the
    main thread or from a thread that outlives it.
    """
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    parent = os.getpid()

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def end_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send *this* process ``signum`` when its parent ends (Linux prctl).

    For a process a launcher started (a torchrun agent's child): a SIGTERM then ends it the way
    its launcher would, and its own children go with it (their own parent-death signal). A
    parent that ended between the look and the prctl ends it at once.

    Returns:
        whether the signal is armed (``False`` elsewhere than Linux).
    """
    if sys.platform != "linux":
        return False
    import ctypes

    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        return False
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
    return True


def _stream(value: Stream) -> Any:
    if value == "pipe":
        return subprocess.PIPE
    if value == "inherit":
        return None
    if value == "devnull":
        return subprocess.DEVNULL
    return value


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: Literal["devnull", "inherit"] = "devnull",
    stdout: Stream = "devnull",
    stderr: Stream = "devnull",
    die_with_parent: bool = True,
) -> Child:
    """Start ``argv`` as the leader of a new process group and return its handle (at once).

    Args:
        argv: the command and its arguments.
        env: its environment (default: dlsetup's).
        cwd: its working directory (default: dlsetup's).
        stdin: ``"devnull"`` (it reads nothing) or ``"inherit"``.
        stdout: where its standard output goes (:data:`Stream`); ``"pipe"``: :attr:`Child.stdout`.
        stderr: likewise, its standard error.
        die_with_parent: on Linux, the kernel kills it when dlsetup dies (see
            :func:`_die_with_parent` for the thread it is tied to).

    Raises:
        OSError: it could not be started (no such file, not executable).
    """
    options = _group_options()
    if die_with_parent and sys.platform == "linux":
        options["preexec_fn"] = _die_with_parent()
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL if stdin == "devnull" else None,
        stdout=_stream(stdout),
        stderr=_stream(stderr),
        env=None if env is None else dict(env),
        cwd=cwd,
        **options,
    )
    return Child(proc, argv)


# -------------------------------------------------------------------------- the handle ----


class Child:
    """A started child: wait for it with a deadline, and end it with everything it started.

    Use it as a context manager to be sure it is ended (``with start(...) as child:``); leaving the
    block ends a child still running (:meth:`stop` without a grace).
    """

    def __init__(self, proc: subprocess.Popen[bytes], args: Sequence[str]) -> None:
        self._proc = proc
        self._args = tuple(str(a) for a in args)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        with deferred_stop_signals():
            if self.poll() is None:
                self.stop()
            else:
                self.kill()  # what it left in its group goes with it
            if self._proc.stdout is not None:
                self._proc.stdout.close()

    @property
    def pid(self) -> int:
        """Its process id (and, on POSIX, its process group's id)."""
        return self._proc.pid

    @property
    def args(self) -> tuple[str, ...]:
        """The command and its arguments."""
        return self._args

    @property
    def stdout(self) -> IO[bytes] | None:
        """Its standard output, with ``stdout="pipe"`` (bytes; read it to its end)."""
        return self._proc.stdout

    @property
    def returncode(self) -> int | None:
        """Its exit status once reaped; None while it runs."""
        return self._proc.returncode

    def poll(self) -> int | None:
        """Its exit status when it has ended, else None (does not block)."""
        return self._proc.poll()

    def wait(self, timeout: float | None) -> int | None:
        """Wait up to ``timeout`` seconds; its exit status, or None when it still runs.

        ``None`` waits without a bound: only for a child that bounds its own run (the torchrun
        worker ends itself when a phase runs past its limit); everything else gives a deadline.
        """
        try:
            return self._proc.wait(timeout=None if timeout is None else max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the child alone (not its group); quiet when it has ended."""
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL its whole group and its descendants that left the group; does not wait.

        A group that has already ended is not an error. Elsewhere than POSIX, or when the group
        cannot be signalled, only the child is killed.
        """
        _kill_group(self._proc, self._strays())

    def stop(self, *, grace: float = 0.0, signum: int | None = None, reap_s: float = REAP_S) -> int:
        """End it: ask with ``signum``, give it ``grace`` seconds, then kill its group; reap it.

        The child first gets ``signum`` (default SIGTERM; SIGINT as from a terminal's Ctrl-C) so
        that it can end what it started in sessions of its own (``dlsetup smoke`` stops its
        framework workers on either); whatever is left then — its group, and the descendants that
        had left the group before it was asked — gets SIGKILL. Every wait is bounded: ``grace``,
        then ``reap_s`` for the kill to take effect.

        Returns:
            its exit status; ``-SIGKILL`` when it was not reaped within ``reap_s``.
        """
        strays = self._strays()  # before it is asked: once it ends they are orphans
        if os.name == "posix" and grace > 0 and self._proc.poll() is None:
            self.send_signal(DEFAULT_STOP_SIGNAL if signum is None else signum)
            # a stopped child (SIGSTOP, a debugger) acts on it only once continued, as a
            # shell's kill does for a stopped job
            self.send_signal(signal.SIGCONT)
            self.wait(grace)
        _kill_group(self._proc, strays)
        code = self.wait(reap_s)
        return -getattr(signal, "SIGKILL", 9) if code is None else code

    def _strays(self) -> list[Any]:
        # Only while it is not reaped: a reaped child's pid may already name another process.
        return _strays(self._proc.pid) if self._proc.returncode is None else []

    def finish(
        self,
        timeout: float | None,
        *,
        grace: float = 5.0,
        stop_signal: int = DEFAULT_STOP_SIGNAL,
    ) -> tuple[int, bool]:
        """Wait for it up to ``timeout`` seconds, then end it.

        ``None`` only for a child that bounds its own run (see :meth:`wait`). Past the deadline it is stopped (:meth:`stop`); after a normal exit what it left in its
        group is killed. Ctrl-C or SIGTERM while waiting is forwarded to it (SIGINT or SIGTERM),
        it gets ``grace`` seconds, its group is killed, and the interrupt goes on.

        Returns:
            ``(exit status, timed out)``.
        """
        try:
            code = self.wait(timeout)
        except BaseException as exc:
            with deferred_stop_signals():
                self.stop(grace=grace, signum=_forwarded(exc))
            raise
        if code is None:
            with deferred_stop_signals():
                return self.stop(grace=grace, signum=stop_signal), True
        self.kill()
        return code, False


def _descendants(pid: int) -> list[Any]:
    """The live descendants of ``pid`` (psutil processes), or none when they cannot be read."""
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True))
    except Exception:  # gone already, no psutil, no permission: only the group
        return []


def _group_of(pid: int) -> int | None:
    if os.name != "posix":
        return None
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _strays(pid: int) -> list[Any]:
    """Descendants of ``pid`` outside its process group (a helper that started a session of its
    own and may still hold the child's stdout)."""
    return [p for p in _descendants(pid) if _group_of(p.pid) != pid]


def _kill_group(proc: subprocess.Popen[Any], strays: list[Any]) -> None:
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError:  # e.g. EPERM for a group of zombies on macOS: end the leader at least
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
    elif proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    for stray in strays:
        with contextlib.suppress(Exception):
            stray.kill()  # psutil checks the pid still names the same process


# ------------------------------------------------------------------------------ run ----


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    output: Output = "capture",
    stdin: Literal["devnull", "inherit"] = "devnull",
    grace: float = 5.0,
    stop_signal: int = DEFAULT_STOP_SIGNAL,
    die_with_parent: bool = True,
) -> Completed:
    """Run ``argv`` to its end, or to its deadline, as the leader of a new process group.

    Returns within ``timeout + grace + REAP_S`` seconds whatever the child does: past the deadline
    it gets ``stop_signal``, ``grace`` seconds, then SIGKILL with its group. What it left in its
    group after a normal exit is killed too. Ctrl-C or SIGTERM while it runs is forwarded to it,
    its group is ended, and the interrupt goes on (``KeyboardInterrupt`` /
    :class:`dlsetup.errors.Terminated`); a second signal during that clean-up is held back.

    Args:
        argv: the command and its arguments.
        timeout: seconds it may run.
        env: its environment (default: dlsetup's).
        cwd: its working directory (default: dlsetup's).
        output: ``"capture"`` (as text in the result), ``"inherit"``, ``"devnull"`` or
            :class:`ToFiles`.
        stdin: ``"devnull"`` (default) or ``"inherit"``.
        grace: seconds it may take to stop after ``stop_signal`` (or a forwarded interrupt).
        stop_signal: what it gets at its deadline (default SIGTERM).
        die_with_parent: on Linux, the kernel kills it when dlsetup dies.

    Raises:
        OSError: it could not be started.
    """
    with contextlib.ExitStack() as files:
        out: Stream
        err: Stream
        if output == "capture":
            out = files.enter_context(tempfile.TemporaryFile())
            err = files.enter_context(tempfile.TemporaryFile())
        elif isinstance(output, ToFiles):
            out = files.enter_context(output.stdout.open("wb"))
            err = files.enter_context(output.stderr.open("wb"))
        else:
            out = err = output
        began = time.monotonic()
        with deferred_stop_signals():  # started and recorded, or not started at all
            child = start(
                argv,
                env=env,
                cwd=cwd,
                stdin=stdin,
                stdout=out,
                stderr=err,
                die_with_parent=die_with_parent,
            )
        code, timed_out = child.finish(timeout, grace=grace, stop_signal=stop_signal)
        elapsed = time.monotonic() - began
        return Completed(
            args=tuple(str(a) for a in argv),
            returncode=code,
            stdout=_text(out) if output == "capture" else "",
            stderr=_text(err) if output == "capture" else "",
            timed_out=timed_out,
            elapsed_s=elapsed,
        )


def _text(stream: Stream) -> str:
    assert not isinstance(stream, str)
    stream.seek(0)
    return stream.read().decode("utf-8", errors="replace")
