"""The one asyncio event loop that runs py-rattler's coroutines, for the life of the process.

A py-rattler awaitable is a Rust future run by rattler's own (tokio) threads. When it ends, a
tokio thread takes the GIL, looks whether the Python future was cancelled and, if not, hands
over the result with ``loop.call_soon_threadsafe`` — on rattler's schedule, not the loop's.
With a loop per call, ``create`` closed its loop as soon as one download failed and the others
were cancelled; a tokio thread that had looked a moment before the cancel then met a closed
loop ("RuntimeError: Event loop is closed" and a traceback), and one that took the GIL while
the interpreter was finalizing killed it ("Fatal Python error: PyGILState_Release ...", SIGABRT
or SIGSEGV instead of exit 4; issue 20).

So every rattler coroutine runs here, on one loop in a daemon thread that is never closed: a
late report always finds a live loop, which drops it (its future was cancelled). And once
rattler has been imported the process exits without finalizing (:func:`dlsetup.cli.main`),
so no tokio thread ever meets a dying interpreter. A forked child gets a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine
from typing import Any

from dlsetup.children import deferred_stop_signals

#: how often the waiting (main) thread wakes, so Ctrl-C and SIGTERM act at once
_POLL_SECONDS = 0.05

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's rattler loop, started on first use in a daemon thread; never closed."""
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            # a SIGTERM or Ctrl-C raised inside the loop's constructor left a half-built loop
            # whose __del__ printed a traceback ("no attribute '_signal_handlers'"): held back
            # until the loop and its thread are up (a short wait), then delivered
            with deferred_stop_signals():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name="dlsetup-asyncio", daemon=True).start()
                ready.wait()
                _loop, _loop_pid = loop, os.getpid()
        return _loop


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the outcome seen: no "Task exception was never retrieved" for an abandoned task."""
    if not task.cancelled():
        task.exception()


class Job:
    """A coroutine running on :func:`shared_loop`, waited for from another thread."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            self._loop = shared_loop()
        except BaseException:  # Ctrl-C or SIGTERM: no "coroutine ... was never awaited" warning
            coro.close()
            raise
        self._done = threading.Event()
        self._task: asyncio.Task[Any] | None = None

        def start() -> None:
            self._task = self._loop.create_task(coro)
            self._task.add_done_callback(_retrieve)
            self._task.add_done_callback(lambda _task: self._done.set())

        try:
            self._loop.call_soon_threadsafe(start)
        except BaseException:
            coro.close()
            raise

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (forever: ``None``) for the coroutine to end, waking
        every :data:`_POLL_SECONDS` so a signal handler runs; whether it has ended."""
        if timeout is None:
            while not self._done.wait(_POLL_SECONDS):
                pass
            return True
        return self._done.wait(timeout)

    def cancel(self) -> None:
        """Cancel the coroutine (on the loop's thread; it may take a while to end)."""

        def cancel() -> None:
            if self._task is not None:
                self._task.cancel()

        self._loop.call_soon_threadsafe(cancel)

    def result(self) -> Any:
        """The coroutine's value, or its exception raised (:class:`asyncio.CancelledError` when
        cancelled); call after :meth:`wait` returned true."""
        assert self._task is not None and self._task.done()
        return self._task.result()


def run(coro: Coroutine[Any, Any, Any], *, stop_seconds: float | None = None) -> Any:
    """Run ``coro`` on :func:`shared_loop` and return its value (or raise its exception).

    A Ctrl-C or SIGTERM (raised in this thread while it waits) cancels the coroutine and waits
    for it to end — its own clean-up (``except``/``finally``) runs — up to ``stop_seconds``
    (forever: ``None``), then is raised again.
    """
    job = Job(coro)
    try:
        job.wait()
    except BaseException:
        job.cancel()
        with contextlib.suppress(BaseException):  # a second Ctrl-C stops the wait, not the exit
            job.wait(stop_seconds)
        raise
    return job.result()
