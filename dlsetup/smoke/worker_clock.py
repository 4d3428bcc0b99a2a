"""The training loop's clock: step times in chunks, each followed by one run of the calibration
kernel, for the benchmark gate's step-per-kernel figure.

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlsetup.smoke import timing_kernel
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import timing_kernel

#: Steps per timed chunk of the training loop (see :attr:`ChunkClock.best_ms`).
TIMING_CHUNK = 20
#: Set by the runner for each framework's worker: which of the CPUs it may use (an index into
#: their sorted list) its timed work is held on, so that workers timed side by side each have
#: their own.
PIN_ENV = "DLSETUP_SMOKE_TIMING_CPU"
_TASKS = "/proc/self/task"


def _threads() -> list[int]:
    try:
        return [int(name) for name in os.listdir(_TASKS) if name.isdigit()]
    except OSError:
        return []


@contextlib.contextmanager
def one_cpu(device: str) -> Iterator[None]:
    """Hold every thread of this process on one CPU while the block runs (a CPU device, Linux).

    Unpinned, the framework's threads (the caller and its executor, even at one intra-op and one
    inter-op thread) are spread over the cores, and a process keeps a speed of its own for its
    life: TensorFlow's step read 1.03-1.72 ms in five runs on a quiet 2-core machine, chunk after
    chunk, and 0.89-1.05 ms in six runs held on one core. Each thread's affinity is set through
    ``/proc/self/task`` and put back after the block (threads started inside it get the CPUs
    allowed before), so the kernel checks on all threads still use every core. Elsewhere, or
    where affinity cannot be set, it does nothing.
    """
    setaffinity = getattr(os, "sched_setaffinity", None)
    getaffinity = getattr(os, "sched_getaffinity", None)
    pinned: dict[int, Any] = {}
    allowed: list[int] = []
    if device.strip().lower().startswith("cpu") and setaffinity and getaffinity:
        try:
            allowed = sorted(getaffinity(0))
            cpu = {allowed[int(os.environ.get(PIN_ENV, "0") or 0) % len(allowed)]}
        except (OSError, ValueError, ZeroDivisionError):
            allowed = []
        for tid in _threads() if allowed else []:
            try:
                before = getaffinity(tid)
                setaffinity(tid, cpu)
                pinned[tid] = before
            except OSError:  # the thread ended meanwhile
                continue
    try:
        yield
    finally:
        if pinned and setaffinity:
            for tid in _threads():
                with contextlib.suppress(OSError):
                    setaffinity(tid, pinned.get(tid, set(allowed)))


def timing_clock(device: str) -> Callable[[], timing_kernel.Reading]:
    """The clock the gate's figures are timed with on ``device``.

    On a CPU device, wall time and the worker process's CPU time (all its threads: TensorFlow
    runs its graph on a pool thread), and a timing is the smaller of the two
    (:func:`timing_kernel.seconds`): the moments other jobs hold the machine's cores inflate the
    wall time only, threads spinning on an idle core the CPU time only. On a 2-core machine at
    load 2.4-3.7, CPU time alone halved the run-to-run spread of the step per kernel against wall
    time (PyTorch: 10.8% to 5.4% standard deviation, TensorFlow: 13.6% to 10.0%) and cut
    PyTorch's matmul per kernel from 24% to 6% (``benchmarks/bench_gate.py``); but with a core
    free, TensorFlow's step read up to 22% more CPU time than its baseline recorded at load 4.
    A regression that waits rather than computes (a sleep, a lock) shows only in the wall-time
    figures, which are reported beside them. On an accelerator the host's CPU time says nothing
    of the device's work: wall time only.
    """
    cpu = device.strip().lower().startswith("cpu")
    return timing_kernel.wall_and_cpu if cpu else timing_kernel.wall


class ChunkClock:
    """Times a training loop in chunks of :data:`TIMING_CHUNK` steps, and one run of the fixed
    calibration kernel (:mod:`timing_kernel`) right after each chunk, so that each chunk and its
    kernel run see the same moment of a noisy machine.

    Args:
        sync: waits for the device (``torch.cuda.synchronize``) before a chunk's clock stops.
        clock: what the chunks and the kernel runs are timed with (:func:`timing_clock`);
            :attr:`kernel_s` is wall seconds whatever it is.
    """

    def __init__(
        self,
        sync: Callable[[], Any] | None = None,
        clock: Callable[[], timing_kernel.Reading] = timing_kernel.wall,
    ) -> None:
        self.sync = sync
        self.clock = clock
        self.chunk_ms: list[float] = []
        self.kernel_ms: list[float] = []
        self.kernel_s = 0.0  # seconds spent in kernel runs (not training)
        self._start = clock()
        self._steps = 0

    def begin(self) -> None:
        """Start a chunk now."""
        self._start = self.clock()
        self._steps = 0

    def steps_done(self, n: int) -> None:
        """``n`` more steps ran; a chunk of :data:`TIMING_CHUNK` steps ends here."""
        self._steps += n
        if self._steps < TIMING_CHUNK:
            return
        if self.sync is not None:
            self.sync()
        self.chunk_ms.append(
            1000.0 * timing_kernel.seconds(self._start, self.clock()) / self._steps
        )
        t0 = time.perf_counter()
        self.kernel_ms.append(timing_kernel.kernel_ms(repeats=1, clock=self.clock))
        self.kernel_s += time.perf_counter() - t0
        self.begin()

    @property
    def best_ms(self) -> float:
        """Milliseconds per step of the fastest chunk (NaN without a whole chunk)."""
        return min(self.chunk_ms, default=math.nan)

    @property
    def step_per_kernel(self) -> float:
        """The median over chunks of (ms per step / the kernel run after it); NaN without one."""
        ratios = sorted(c / k for c, k in zip(self.chunk_ms, self.kernel_ms, strict=True) if k > 0)
        if not ratios:
            return math.nan
        mid = len(ratios) // 2
        return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2.0
