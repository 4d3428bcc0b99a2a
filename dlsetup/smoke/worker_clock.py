"""The training loop's clock: step times in chunks, each followed by one run of the calibration
kernel, for the benchmark gate's step-per-kernel figure.

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlsetup.smoke import timing_kernel
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import timing_kernel

#: Steps per timed chunk of the training loop (see :attr:`ChunkClock.best_ms`).
TIMING_CHUNK = 20


class ChunkClock:
    """Times a training loop in chunks of :data:`TIMING_CHUNK` steps, and one run of the fixed
    calibration kernel (:mod:`timing_kernel`) right after each chunk, so that each chunk and its
    kernel run see the same moment of a noisy machine.

    Args:
        sync: waits for the device (``torch.cuda.synchronize``) before a chunk's clock stops.
    """

    def __init__(self, sync: Callable[[], Any] | None = None) -> None:
        self.sync = sync
        self.chunk_ms: list[float] = []
        self.kernel_ms: list[float] = []
        self.kernel_s = 0.0  # seconds spent in kernel runs (not training)
        self._start = time.perf_counter()
        self._steps = 0

    def begin(self) -> None:
        """Start a chunk now."""
        self._start = time.perf_counter()
        self._steps = 0

    def steps_done(self, n: int) -> None:
        """``n`` more steps ran; a chunk of :data:`TIMING_CHUNK` steps ends here."""
        self._steps += n
        if self._steps < TIMING_CHUNK:
            return
        if self.sync is not None:
            self.sync()
        self.chunk_ms.append(1000.0 * (time.perf_counter() - self._start) / self._steps)
        t0 = time.perf_counter()
        self.kernel_ms.append(timing_kernel.kernel_ms(repeats=1))
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
