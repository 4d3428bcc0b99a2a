"""On a CPU device the gate's figures are timed as the smaller of the wall and the worker's CPU
seconds, so neither the time other jobs hold the cores nor threads spinning on an idle core are
read as a slower step, while more work is.

The workers' clock (:func:`worker_clock.timing_clock`) is the real one the chunks and the
calibration kernel are timed with; a sleep stands for the moments another job holds the core
(the process waits, as a preempted one does), a busy loop for a step that does more work.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from dlsetup.smoke import timing_kernel
from dlsetup.smoke.runner import RunOptions
from dlsetup.smoke.worker_clock import PIN_ENV, TIMING_CHUNK, ChunkClock, one_cpu, timing_clock


@pytest.mark.parametrize("device", ["cpu", "CPU:0", "cpu:1"])
def test_a_cpu_device_is_timed_in_wall_and_cpu_time(device: str) -> None:
    assert timing_clock(device).__name__ == "wall_and_cpu"  # the module is loaded by path


@pytest.mark.parametrize("device", ["cuda:0", "GPU:0", "mps"])
def test_an_accelerator_is_timed_in_wall_time(device: str) -> None:
    assert timing_clock(device).__name__ == "wall"
    wall, again = timing_kernel.wall()
    assert wall == again


def test_a_timing_is_the_smaller_of_the_wall_and_the_cpu_seconds() -> None:
    # preempted: 3 s of wall time, 1 s of work
    assert timing_kernel.seconds((10.0, 5.0), (13.0, 6.0)) == 1.0
    # a second thread spun beside the work: 2 s of CPU time in 1 s of wall time
    assert timing_kernel.seconds((10.0, 5.0), (11.0, 7.0)) == 1.0


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _run(clock: ChunkClock, *, wait: float, work: float) -> ChunkClock:
    """Two chunks of steps that each do ``work`` CPU seconds and wait ``wait`` seconds."""
    for _ in range(2):
        clock.begin()
        for _ in range(TIMING_CHUNK):
            _busy(work)
            time.sleep(wait)
            clock.steps_done(1)
    return clock


def test_waiting_does_not_move_the_cpu_figure_but_more_work_does() -> None:
    kernel = timing_kernel.kernel_ms(clock=timing_kernel.wall_and_cpu) / 1000.0
    work = kernel / 4  # a step of a quarter of the calibration kernel
    ms = 1000.0 * work
    cpu = timing_clock("cpu")
    quiet = _run(ChunkClock(clock=cpu), wait=0.0, work=work)
    waited = _run(ChunkClock(clock=cpu), wait=4 * work, work=work)
    slower = _run(ChunkClock(clock=cpu), wait=0.0, work=4 * work)
    # the waits (another job's turn on the core) are not counted: each step is its work
    assert max(waited.chunk_ms) < 1.5 * ms and max(quiet.chunk_ms) < 1.5 * ms
    assert min(slower.chunk_ms) > 3.5 * ms  # four times the work is
    assert slower.step_per_kernel > 1.8 * quiet.step_per_kernel
    # wall time, the clock before, reads the same waits as a 5x slower step
    wall = _run(ChunkClock(clock=timing_kernel.wall), wait=4 * work, work=work)
    assert min(wall.chunk_ms) >= 5 * ms
    assert waited.kernel_s > 0  # the kernel runs' wall seconds, taken off the loop's time


# ---------------------------------------------------------------- the timed work on one CPU

pinnable = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"),
    reason="thread affinity through /proc/self/task is Linux's",
)


def _affinities() -> dict[int, set[int]]:
    """Every thread of this process and the CPUs it may run on."""
    out = {}
    for name in os.listdir("/proc/self/task"):
        try:
            out[int(name)] = os.sched_getaffinity(int(name))
        except OSError:  # ended meanwhile
            continue
    return out


@pinnable
@pytest.mark.parametrize("index", ["0", "1", "7"])
def test_the_timed_work_holds_every_thread_on_one_cpu_then_gives_them_back(
    index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, index)
    allowed = sorted(os.sched_getaffinity(0))
    want = {allowed[int(index) % len(allowed)]}
    stop = threading.Event()
    pool = threading.Thread(target=stop.wait)  # a framework's pool thread, up before the block
    pool.start()
    before = _affinities()
    try:
        with one_cpu("cpu"):
            inside = _affinities()
            late = threading.Thread(target=stop.wait)  # started inside: inherits the one CPU
            late.start()
            assert os.sched_getaffinity(late.native_id) == want
        after = _affinities()
        assert os.sched_getaffinity(late.native_id) == set(allowed)  # given every CPU back
    finally:
        stop.set()
        pool.join()
        late.join()
    # the threads of this process that lived through the block (pytest's own may come and go)
    kept = before.keys() & inside.keys() & after.keys()
    assert pool.native_id in kept
    assert {tid: inside[tid] for tid in kept} == dict.fromkeys(kept, want), inside
    assert {tid: after[tid] for tid in kept} == {tid: before[tid] for tid in kept}


@pinnable
@pytest.mark.parametrize(("device", "index"), [("cuda:0", "1"), ("GPU:0", "0"), ("cpu", "x")])
def test_an_accelerator_or_an_unreadable_index_leaves_the_threads_alone(
    device: str, index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, index)
    before = _affinities()
    with one_cpu(device):
        inside = _affinities()
    kept = before.keys() & inside.keys()  # pytest's own threads may come and go meanwhile
    assert threading.get_native_id() in kept
    assert {tid: inside[tid] for tid in kept} == {tid: before[tid] for tid in kept}


def test_each_framework_worker_is_timed_on_a_cpu_of_its_own() -> None:
    from dlsetup.smoke import runner

    assert runner.TIMING_CPU_ENV == PIN_ENV  # the runner keeps its own copy of the name
    opts = RunOptions(python=Path(sys.executable), env=((PIN_ENV, "5"),))  # not the caller's
    cpus = {
        name: runner._FrameworkRunner(name, opts, runner._Workers(), "ref.npz").env[PIN_ENV]
        for name in runner.FRAMEWORKS
    }
    assert cpus == {"torch": "0", "tensorflow": "1"}
