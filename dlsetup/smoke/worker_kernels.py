"""The kernel tier: the kernels deep learning runs on, checked against float64 references on each
device before the grid, over the shapes, lengths, argument ranges, thread counts and dtypes a tiny
network never reaches.

Where it can, a check needs no tolerance at all: small-integer inputs make matmul, conv2d and sum
exact in every dtype whose partial sums stay below 2^24 (float32's integers), in any order of
summation, on any number of threads. Elsewhere the tolerance comes from the dtype's unit roundoff
``u`` and the reduction length ``n`` (PyTorch's OpInfo tolerances are the yardstick: float32
rtol 1.3e-6; ours are tighter where the error analysis allows):

=============================  ===========================================================
kernel                         tolerance (absolute, per element)
=============================  ===========================================================
matmul, conv2d, sum (integers) 0 (exact); bfloat16/float16 outputs: ``u (|r| + ceil(log2 K) sum|a b|)``
mean (integers)                ``4 u |r|`` (the exact sum divided once, twice over)
softmax over n                 ``u (8 + 2 |z - max z| + 8 sqrt(n)) |r|``
logsumexp over n               ``u (4 |r| + 8 + 2 sqrt(n))``
exp, log, tanh, sigmoid, erf   ``32 u |r|`` (a few units in the last place)
=============================  ===========================================================

A failure names the kernel, the shape, the dtype, the threads, the device and the worst element.

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from dlsetup.smoke import timing_kernel
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import timing_kernel

Array = npt.NDArray[np.float64]

#: Unit roundoff of each dtype a kernel runs in (tf32: float32 storage, 10-bit mantissa products).
KERNEL_UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "tf32": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float16": 2.0**-11,
}
#: (M, K, N) of the matmuls: below, at and across common tile sizes, and long inner dimensions.
MATMUL_SHAPES: tuple[tuple[int, int, int], ...] = (
    (1, 1, 1), (7, 13, 5), (16, 16, 16), (17, 33, 65), (64, 64, 64), (65, 127, 129),
    (128, 256, 96), (31, 1000, 9), (3, 8192, 5),
)  # fmt: skip
#: Lengths of the reductions (sum of integers; mean, softmax and logsumexp of the long ones).
SUM_LENGTHS: tuple[int, ...] = (1, 63, 64, 65, 1000, 4097, 65537, 1_000_000)
LONG_LENGTHS: tuple[int, ...] = (8, 1000, 1_000_000)
#: Elementwise functions and the input range each is checked over (float32, its useful range).
UNARY_RANGES: dict[str, tuple[float, float, str]] = {
    "exp": (-87.0, 88.0, "linear"),
    "log": (1e-37, 3e38, "log"),
    "tanh": (-12.0, 12.0, "linear"),
    "sigmoid": (-85.0, 30.0, "linear"),
    "erf": (-5.0, 5.0, "linear"),
}
UNARY_POINTS = 8191
#: On several threads the elementwise inputs are tiled this many times (past PyTorch's grain of
#: 32768 elements, so the work is really split between threads).
UNARY_TILES = 8
#: Elementwise tolerance in units of the dtype's roundoff: a few units in the last place (the
#: largest seen: PyTorch 1.9 (sigmoid), TensorFlow 6.9 (sigmoid's tail), 4.6 (tanh, erf)).
UNARY_UNITS = 32.0
#: conv2d: input (N, C, H, W), weight (O, C, KH, KW), stride 1, no padding.
CONV_SHAPES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((2, 3, 9, 9), (4, 3, 3, 3)),
    ((1, 8, 16, 16), (16, 8, 5, 5)),
)
#: Fixed inputs: the same numbers on every run and device.
SEED = 24


class KernelOps(Protocol):
    """What a framework provides for the kernel tier on one device (NumPy in, float64 out)."""

    def matmul_dtypes(self) -> list[str]:
        """The dtypes matmul is checked in (``float32``, ``float64``, ``tf32``, ...)."""
        ...

    def thread_counts(self) -> list[int]:
        """The intra-op thread counts checked (one, and all where the framework can switch)."""
        ...

    def set_threads(self, n: int) -> None:
        """Run the following kernels on ``n`` threads."""
        ...

    def matmul(self, a: Any, b: Any, dtype: str) -> Array:
        """``a @ b`` in ``dtype``."""
        ...

    def conv2d(self, x: Any, w: Any, dtype: str) -> Array:
        """The 2-D cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C, KH, KW), NCHW out."""
        ...

    def reduce(self, name: str, x: Any, dtype: str) -> Array:
        """``sum``, ``mean``, ``logsumexp`` (a scalar) or ``softmax`` (a vector) of ``x``."""
        ...

    def unary(self, name: str, x: Any, dtype: str) -> Array:
        """The elementwise function ``name`` (:data:`UNARY_RANGES`) of ``x``."""
        ...

    def prepare(self, kernel: str, *inputs: Any) -> Callable[[], Any]:
        """A call of ``kernel`` (``matmul``, ``sum``, ``exp``) in float32 on inputs already on
        the device, that returns once the device is done (for :func:`kernel_timings`)."""
        ...


def _record(
    kernel: str, shape: str, dtype: str, threads: int, device: str, *, got: Array, want: Array,
    allowed: Array | float, inputs: Any = None, seconds: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """One check: every element of ``got`` within ``allowed`` of ``want`` (NaN never is; an
    ``allowed`` of 0 asks for the exact result)."""
    g = np.asarray(got, dtype=np.float64).reshape(-1)
    w = np.asarray(want, dtype=np.float64).reshape(-1)
    tol = np.asarray(allowed, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(g - w) if g.shape == w.shape else np.full(w.shape, math.inf)
        ok = err <= tol
    passed = bool(ok.all())
    check: dict[str, Any] = {
        "kernel": kernel,
        "shape": shape,
        "dtype": dtype,
        "threads": threads,
        "device": device,
        "passed": passed,
        "exact": not np.any(tol),
        "max_abs_error": float(err.max(initial=0.0)) if passed else None,
        "seconds": seconds,
        "failure": None,
    }
    if not passed:
        excess = np.where(ok, -math.inf, np.nan_to_num(err - tol, nan=math.inf))
        worst = int(np.argmax(excess))
        shape_of = np.asarray(want).shape
        index = np.unravel_index(worst, shape_of) if shape_of else ()
        check["failure"] = {
            "index": [int(i) for i in index],
            "input": None if inputs is None else _finite(inputs.reshape(-1)[worst]),
            "got": _finite(g[worst]) if g.shape == w.shape else "shape " + str(np.shape(got)),
            "expected": _finite(w[worst]),
            "allowed": _finite(np.broadcast_to(tol, w.shape)[worst]),
        }
    return check


def _finite(value: Any) -> float | str:
    v = float(value)
    return v if math.isfinite(v) else str(v)


def _timed(fn: Callable[..., Array], *args: Any) -> tuple[Array, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


class Inputs:
    """The tier's inputs and float64 references, made once per worker (every device and thread
    count reads the same): float32-exact values, stored as float32 arrays."""

    def __init__(self) -> None:
        rng = np.random.default_rng(SEED)
        self.matmul = []
        for m, k, n in MATMUL_SHAPES:
            a = rng.integers(-2, 3, (m, k)).astype(np.float32)
            b = rng.integers(-2, 3, (k, n)).astype(np.float32)
            want = a.astype(np.float64) @ b.astype(np.float64)  # exact: small integers
            self.matmul.append(((m, k, n), a, b, want))
        self.conv = []
        for xs, ws in CONV_SHAPES:
            x = rng.integers(-2, 3, xs).astype(np.float32)
            w = rng.integers(-2, 3, ws).astype(np.float32)
            self.conv.append((xs, ws, x, w, conv2d_reference(x, w)))
        ints = rng.integers(-3, 4, max(SUM_LENGTHS + LONG_LENGTHS)).astype(np.float32)
        normal = rng.normal(0.0, 4.0, max(LONG_LENGTHS)).astype(np.float32)
        totals = np.cumsum(ints, dtype=np.float64)  # exact: integers
        self.sums = [(n, ints[:n], float(totals[n - 1])) for n in SUM_LENGTHS]
        self.long = []
        for n in LONG_LENGTHS:
            z64 = normal[:n].astype(np.float64)
            top = float(z64.max())
            e = np.exp(z64 - top)
            total = float(e.sum())
            mean = float(totals[n - 1]) / n
            soft = e / total
            # softmax's relative error: the rounded z - max z, and the sum of n terms
            spread = 8 + 2 * np.abs(z64 - top) + 8 * math.sqrt(n)
            soft_allowed = KERNEL_UNIT_ROUNDOFF["float32"] * spread * soft
            lse = top + math.log(total)
            self.long.append((n, ints[:n], mean, normal[:n], soft, soft_allowed, lse))
        self.unary = {name: (unary_inputs(name),) for name in UNARY_RANGES}
        self.unary_ref = {name: unary_reference(name, x[0]) for name, x in self.unary.items()}


_INPUTS: list[Inputs] = []


def inputs() -> Inputs:
    """The worker's :class:`Inputs` (made on first use)."""
    if not _INPUTS:
        _INPUTS.append(Inputs())
    return _INPUTS[0]


def matmul_checks(
    ops: KernelOps, device: str, threads: int, dtypes: list[str], data: Inputs
) -> list[dict[str, Any]]:
    """Integer matmuls over :data:`MATMUL_SHAPES`: exact in float32, float64 and tf32."""
    out = []
    for (m, k, n), a, b, want in data.matmul:
        for dtype in dtypes:
            got, secs = _timed(ops.matmul, a, b, dtype)
            allowed: Array | float = 0.0
            if dtype in ("bfloat16", "float16"):  # the output rounds; a split sum may too
                spread = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
                u = KERNEL_UNIT_ROUNDOFF[dtype]
                allowed = u * (np.abs(want) + math.ceil(math.log2(max(k, 2))) * spread)
            out.append(_record("matmul", f"{m}x{k} @ {k}x{n}", dtype, threads, device, got=got,
                               want=want, allowed=allowed, seconds=secs))  # fmt: skip
    return out


def conv_checks(
    ops: KernelOps, device: str, threads: int, dtypes: list[str], data: Inputs
) -> list[dict[str, Any]]:
    """Integer conv2d: exact in float32 and float64."""
    out = []
    for xs, ws, x, w, want in data.conv:
        shape = f"{'x'.join(map(str, xs))} * {'x'.join(map(str, ws))}"
        for dtype in dtypes:
            got, secs = _timed(ops.conv2d, x, w, dtype)
            out.append(_record("conv2d", shape, dtype, threads, device, got=got, want=want,
                               allowed=0.0, seconds=secs))  # fmt: skip
    return out


def conv2d_reference(x: Array | npt.NDArray[np.float32], w: Any) -> Array:
    """Valid, stride-1 cross-correlation in float64 (NCHW, OIHW)."""
    x = np.asarray(x, dtype=np.float64)
    _, _, kh, kw = w.shape
    h, wd = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, :h, :wd]
    out: Array = np.einsum("nchwij,ocij->nohw", windows, np.asarray(w, dtype=np.float64))
    return out


def reduction_checks(
    ops: KernelOps, device: str, threads: int, data: Inputs
) -> list[dict[str, Any]]:
    """float32 sums of integers (exact) up to 10^6 elements; mean, softmax and logsumexp."""
    u = KERNEL_UNIT_ROUNDOFF["float32"]
    out = []
    for n, x, total in data.sums:
        got, secs = _timed(ops.reduce, "sum", x, "float32")
        out.append(_record("sum", f"{n}", "float32", threads, device, got=got,
                           want=np.array(total), allowed=0.0, seconds=secs))  # fmt: skip
    for n, ints, mean, z, soft, soft_allowed, lse in data.long:
        got, secs = _timed(ops.reduce, "mean", ints, "float32")
        out.append(_record("mean", f"{n}", "float32", threads, device, got=got,
                           want=np.array(mean), allowed=4 * u * abs(mean), seconds=secs))  # fmt: skip
        got, secs = _timed(ops.reduce, "softmax", z, "float32")
        out.append(_record("softmax", f"{n}", "float32", threads, device, got=got, want=soft,
                           allowed=soft_allowed, inputs=z,
                           seconds=secs))  # fmt: skip
        got, secs = _timed(ops.reduce, "logsumexp", z, "float32")
        out.append(_record("logsumexp", f"{n}", "float32", threads, device, got=got,
                           want=np.array(lse), allowed=u * (4 * abs(lse) + 8 + 2 * math.sqrt(n)),
                           seconds=secs))  # fmt: skip
    return out


def unary_inputs(name: str) -> npt.NDArray[np.float32]:
    """The float32 points a function is checked at."""
    lo, hi, scale = UNARY_RANGES[name]
    spaced = np.geomspace if scale == "log" else np.linspace
    return np.asarray(spaced(lo, hi, UNARY_POINTS), dtype=np.float32)


def unary_reference(name: str, x: Any) -> Array:
    """The float64 value of an elementwise function at float32 points ``x``."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    values: dict[str, Callable[[Array], Any]] = {
        "exp": np.exp,
        "log": np.log,
        "tanh": np.tanh,
        "sigmoid": lambda v: np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e)),
        "erf": lambda v: np.array([math.erf(t) for t in v]),
    }
    if name not in values:
        raise ValueError(f"unknown elementwise function {name!r}")
    out: Array = np.asarray(values[name](x), dtype=np.float64)
    return out


def unary_checks(ops: KernelOps, device: str, threads: int, data: Inputs) -> list[dict[str, Any]]:
    """Each elementwise function over its whole float32 range, to :data:`UNARY_UNITS` units
    (tiled :data:`UNARY_TILES` times on several threads)."""
    u = KERNEL_UNIT_ROUNDOFF["float32"]
    tiles = 1 if threads == 1 else UNARY_TILES
    out = []
    for name, (lo, hi, _) in UNARY_RANGES.items():
        x = np.tile(data.unary[name][0], tiles)
        want = np.tile(data.unary_ref[name], tiles)
        got, secs = _timed(ops.unary, name, x, "float32")
        out.append(_record(name, f"{x.size} points in [{lo:g}, {hi:g}]", "float32", threads,
                           device, got=got, want=want, allowed=UNARY_UNITS * u * np.abs(want),
                           inputs=x, seconds=secs))  # fmt: skip
    return out


def kernel_checks(ops: KernelOps, device: str) -> list[dict[str, Any]]:
    """The whole tier on ``device``: matmul and conv2d in each dtype, reductions and elementwise
    functions in float32, each at every thread count; the thread count is 1 again afterwards."""
    data = inputs()
    dtypes = ops.matmul_dtypes()
    conv_dtypes = [d for d in dtypes if d in ("float32", "float64")]
    out: list[dict[str, Any]] = []
    try:
        for threads in ops.thread_counts():
            ops.set_threads(threads)
            out += matmul_checks(ops, device, threads, dtypes, data)
            out += conv_checks(ops, device, threads, conv_dtypes, data)
            out += reduction_checks(ops, device, threads, data)
            out += unary_checks(ops, device, threads, data)
    finally:
        ops.set_threads(1)
    return out


#: The kernels timed with ``--benchmark`` and by the gate: (name, shape, work, unit of the rate).
TIMED: tuple[tuple[str, tuple[int, ...], str], ...] = (
    ("matmul", (128, 256, 96), "GFLOP/s"),
    ("sum", (1_000_000,), "GB/s"),
    ("exp", (65536,), "GB/s"),
)
#: Timing rounds: each times every kernel of :data:`TIMED`, then one run of the calibration kernel.
TIMING_ROUNDS = 9
#: Each timing of a kernel lasts about this long (ms): enough calls that the clock's resolution
#: and one preemption do not dominate.
TIMING_TARGET_MS = 1.0


def _timed_inputs(kernel: str, shape: tuple[int, ...]) -> tuple[tuple[Any, ...], float]:
    """The float32 inputs of a timed kernel and its work (FLOPs for matmul, bytes moved else)."""
    rng = np.random.default_rng([SEED, 9])
    if kernel == "matmul":
        m, k, n = shape
        a = rng.normal(size=(m, k)).astype(np.float32)
        b = rng.normal(size=(k, n)).astype(np.float32)
        return (a, b), 2.0 * m * k * n
    x = rng.normal(size=shape).astype(np.float32)
    return (x,), float(x.nbytes * (1 if kernel == "sum" else 2))


def _calls(call: Callable[[], Any]) -> int:
    """How many calls of ``call`` last about :data:`TIMING_TARGET_MS` (4 to 256)."""
    call()  # warm-up: first-call allocations, lazy initialisation
    t0 = time.perf_counter()
    call()
    once = 1000.0 * (time.perf_counter() - t0)
    return max(4, min(256, math.ceil(TIMING_TARGET_MS / max(once, 1e-6))))


def kernel_timings(
    ops: KernelOps, clock: Callable[[], timing_kernel.Reading] = timing_kernel.wall
) -> list[dict[str, Any]]:
    """Each of :data:`TIMED` on one thread: milliseconds per call by ``clock``
    (:func:`timing_kernel.seconds`; ``worker_clock.timing_clock``) and its rate (the fastest
    of the rounds: load only ever adds time), and that divided by the fastest run of the
    calibration kernel, one run after each round (the figure the gate compares, as the step per
    kernel is for the training step: what slows the machine slows both)."""
    prepared = []
    for kernel, shape, unit in TIMED:
        inputs, work = _timed_inputs(kernel, shape)
        call = ops.prepare(kernel, *inputs)
        prepared.append((kernel, shape, unit, work, call, _calls(call)))
    best = [math.inf] * len(prepared)
    calibration = math.inf
    for _ in range(TIMING_ROUNDS):
        for i, (*_, call, calls) in enumerate(prepared):
            t0 = clock()
            for _ in range(calls):
                call()
            best[i] = min(best[i], 1000.0 * timing_kernel.seconds(t0, clock()) / calls)
        calibration = min(calibration, timing_kernel.kernel_ms(repeats=2, clock=clock))
    out = []
    for i, (kernel, shape, unit, work, _, _) in enumerate(prepared):
        out.append({
            "kernel": kernel,
            "shape": "x".join(str(d) for d in shape),
            "ms": best[i],
            "rate": work / (best[i] / 1000.0) / 1e9,
            "unit": unit,
            "per_kernel": best[i] / calibration if 0 < calibration < math.inf else None,
        })  # fmt: skip
    return out
