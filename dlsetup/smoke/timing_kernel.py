"""The fixed calibration kernel the benchmark gate divides step times by (one run after each
20-step chunk of the training, :class:`worker_clock.ChunkClock`).

Runs INSIDE the target interpreter (standard library and NumPy only; the workers load it by path).
A step time alone says as much about the machine (its CPU, its clock, the other jobs on it) as
about the code; the same step time divided by the time of a fixed workload measured in the same
process, minutes apart at most, says mostly about the code. The workload is NumPy on arrays the
size of the stacked grid (48 x 64 x 16), a few dozen small operations per round, so like an eager
training step it is dominated by per-operation overhead and cache-resident arithmetic, and it
slows down with the machine the same way. It never changes with dlsetup: a change here is a new
unit, and the committed baselines must be written again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

#: A reading of the timing clocks: (wall seconds, CPU seconds of the process).
Reading = tuple[float, float]


def wall() -> Reading:
    """Wall time only (both fields ``time.perf_counter``): an accelerator's clock."""
    now = time.perf_counter()
    return (now, now)


def wall_and_cpu() -> Reading:
    """Wall time and the process's CPU time (all its threads): a CPU device's clock."""
    return (time.perf_counter(), time.process_time())


def seconds(start: Reading, end: Reading) -> float:
    """The time between two readings: the smaller of the wall and the CPU seconds.

    Each over-counts the work for its own reason: wall time counts the moments other jobs hold
    the core (on a shared machine, most of the time), CPU time counts threads that spin while
    they wait for work (TensorFlow's pools, on an idle core). Neither is below the work itself.
    """
    return min(end[0] - start[0], end[1] - start[1])


#: Rounds of the workload per timing (about 2-8 ms on a laptop core).
ROUNDS = 5
#: Timings per measurement; the fastest is kept (noise only ever adds time).
REPEATS = 5


def _workload(x: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> float:
    acc = 0.0
    for _ in range(ROUNDS):
        z = np.matmul(x, w1)  # (48, 64, 16)
        h = np.tanh(z)
        s = 1.0 / (1.0 + np.exp(-z))
        r = np.where(z > 0, z, 0.2 * z)
        f = np.matmul(h + s + r, w2[:, :, None])[:, :, 0]
        g = np.sign(f) * np.abs(f)
        w1 = w1 - 1e-3 * np.matmul(x.T, (g[:, :, None] * h))
        acc += float(np.sum(g))
    return acc


def kernel_ms(repeats: int = REPEATS, clock: Callable[[], Reading] = wall) -> float:
    """Milliseconds of one run of the fixed workload: the fastest of ``repeats`` timings by
    ``clock`` (:func:`seconds` between its readings; ``worker_clock.timing_clock``)."""
    rng = np.random.default_rng(12345)
    x = rng.normal(size=(64, 2))
    w1 = rng.normal(size=(48, 2, 16))
    w2 = rng.normal(size=(48, 16))
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        _workload(x, w1, w2)
        best = min(best, seconds(start, clock()))
    return 1000.0 * best
