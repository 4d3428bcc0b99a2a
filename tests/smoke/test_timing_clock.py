"""On a CPU device the gate's figures are timed in the worker's CPU time, so the time other jobs
hold the cores is not read as a slower step, while more work is.

The workers' clock (:func:`worker_clock.timing_clock`) is the real one the chunks and the
calibration kernel are timed with; a sleep stands for the moments another job holds the core
(the process waits, as a preempted one does), a busy loop for a step that does more work.
"""

from __future__ import annotations

import time

import pytest

from dlsetup.smoke import timing_kernel
from dlsetup.smoke.worker_clock import TIMING_CHUNK, ChunkClock, timing_clock


@pytest.mark.parametrize("device", ["cpu", "CPU:0", "cpu:1"])
def test_a_cpu_device_is_timed_in_the_process_cpu_time(device: str) -> None:
    assert timing_clock(device) is time.process_time


@pytest.mark.parametrize("device", ["cuda:0", "GPU:0", "mps"])
def test_an_accelerator_is_timed_in_wall_time(device: str) -> None:
    assert timing_clock(device) is time.perf_counter


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _step_per_kernel(clock: ChunkClock, *, wait: float, work: float) -> float:
    """Two chunks of steps that each do ``work`` CPU seconds and wait ``wait`` seconds."""
    for _ in range(2):
        clock.begin()
        for _ in range(TIMING_CHUNK):
            _busy(work)
            time.sleep(wait)
            clock.steps_done(1)
    return clock.step_per_kernel


def test_waiting_does_not_move_the_cpu_figure_but_more_work_does() -> None:
    kernel = timing_kernel.kernel_ms(clock=time.process_time) / 1000.0
    work = kernel / 4  # a step of a quarter of the calibration kernel
    cpu = timing_clock("cpu")
    quiet = _step_per_kernel(ChunkClock(clock=cpu), wait=0.0, work=work)
    waited = _step_per_kernel(ChunkClock(clock=cpu), wait=2 * work, work=work)
    slower = _step_per_kernel(ChunkClock(clock=cpu), wait=0.0, work=2 * work)
    assert waited < quiet * 1.3  # the waits (another job's turn on the core) are not counted
    assert slower > quiet * 1.6  # twice the work is
    # wall time, the clock before, read the same waits as a 3x slower step
    wall = _step_per_kernel(ChunkClock(clock=time.perf_counter), wait=2 * work, work=work)
    assert wall > quiet * 2.0
    clock = ChunkClock(clock=cpu)
    _step_per_kernel(clock, wait=2 * work, work=work)
    assert clock.kernel_s > 0  # the kernel runs' wall seconds, taken off the loop's time
