"""The kernel tier (``dlsetup/smoke/worker_kernels.py``) against NumPy's own float32 kernels: a
real implementation that passes, and the same with one kernel wrong on one range, one length,
one thread count or one dtype, each named with its shape, dtype, threads and worst element.

The frameworks' kernels run in ``tests/smoke/test_faults_the_grid_missed.py`` through ``dlsetup smoke``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from dlsetup.smoke import worker_kernels as wk
from dlsetup.smoke.results import kernel_check_from_event


class NumpyKernels:
    """The tier's operations in NumPy float32 (float64 where asked), one or two 'threads'."""

    def __init__(self, faults: dict[str, Any] | None = None) -> None:
        self.faults = faults or {}
        self.threads = 1

    def matmul_dtypes(self) -> list[str]:
        return ["float32", "float64"]

    def thread_counts(self) -> list[int]:
        return [1, 2]

    def set_threads(self, n: int) -> None:
        self.threads = n

    def matmul(self, a: Any, b: Any, dtype: str) -> Any:
        out = np.asarray(a, dtype=dtype) @ np.asarray(b, dtype=dtype)
        if self.threads > 1 and "mm-threads" in self.faults:
            out = out * np.asarray(self.faults["mm-threads"], dtype=dtype)
        if dtype == self.faults.get("mm-dtype"):
            out = out * (1 + 1e-12)
        return out

    def conv2d(self, x: Any, w: Any, dtype: str) -> Any:
        return wk.conv2d_reference(np.asarray(x, dtype=dtype), np.asarray(w, dtype=dtype))

    def reduce(self, name: str, x: Any, dtype: str) -> Any:
        x = np.asarray(x, dtype=np.float32)
        if name == "sum":
            out = x.sum(dtype=np.float32)
            return (
                out * np.float32(1 + 2**-20) if x.size > self.faults.get("sum-long", 1e9) else out
            )
        if name == "mean":
            return x.mean(dtype=np.float32)
        e = np.exp(x - x.max())
        if name == "softmax":
            return e / e.sum(dtype=np.float32)
        return x.max() + np.log(e.sum(dtype=np.float32))

    def prepare(self, kernel: str, *inputs: Any) -> Any:
        slow = self.faults.get("slow-mm", 1) if kernel == "matmul" else 1
        fn = {"matmul": np.matmul, "sum": np.sum, "exp": np.exp}[kernel]

        def call() -> Any:
            out = None
            for _ in range(slow):  # a matmul `slow` times slower: the same work again
                out = fn(*inputs)
            return out

        return call

    def unary(self, name: str, x: Any, dtype: str) -> Any:
        x = np.asarray(x, dtype=np.float32)
        if name == "erf":
            return np.array([math.erf(v) for v in x], dtype=np.float32)
        if name == "sigmoid":
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)
        out = {"exp": np.exp, "log": np.log, "tanh": np.tanh}[name](x)
        if name == "exp" and "exp-large" in self.faults:
            out = np.where((x > 2.5) & (x < 15), out * np.float32(1.0001), out)
        return out


def failed(checks: list[dict[str, Any]]) -> list[str]:
    return [kernel_check_from_event(c).describe() for c in checks if not c["passed"]]


def test_numpy_float32_kernels_pass_every_check_on_one_and_two_threads() -> None:
    checks = wk.kernel_checks(NumpyKernels(), "cpu")
    assert failed(checks) == []
    assert {c["threads"] for c in checks} == {1, 2}
    assert {c["kernel"] for c in checks} == {
        "matmul", "conv2d", "sum", "mean", "softmax", "logsumexp", *wk.UNARY_RANGES,
    }  # fmt: skip
    # small-integer inputs: matmul, conv2d and sum need no tolerance at all
    assert all(c["exact"] for c in checks if c["kernel"] in ("matmul", "conv2d", "sum"))
    assert max(k for _, k, _ in wk.MATMUL_SHAPES) == 8192
    assert max(wk.SUM_LENGTHS) == 1_000_000


def test_exp_wrong_only_for_large_arguments_names_the_element_and_its_input() -> None:
    lines = failed(wk.kernel_checks(NumpyKernels({"exp-large": True}), "cpu"))
    assert len(lines) == 2  # one per thread count, nothing else
    assert lines[0].startswith("kernel exp 8191 points in [-87, 88] (float32, 1 thread) on cpu: ")
    x = float(lines[0].split("(input ")[1].split(")")[0])
    assert 2.5 < x < 15
    assert "+- " in lines[0] and "(float64 reference)" in lines[0]


@pytest.mark.parametrize(
    ("faults", "named"),
    [
        ({"sum-long": 65536}, ["kernel sum 65537 (float32, 1 thread)", "kernel sum 1000000"]),
        ({"mm-threads": 1 + 2**-20}, ["kernel matmul 64x64 @ 64x64 (float32, 2 threads) on cpu"]),
        ({"mm-dtype": "float64"}, ["kernel matmul 3x8192 @ 8192x5 (float64, 1 thread) on cpu"]),
    ],
    ids=["long_reductions_only", "several_threads_only", "float64_only"],
)
def test_a_kernel_wrong_in_one_corner_fails_there_only(
    faults: dict[str, Any], named: list[str]
) -> None:
    lines = failed(wk.kernel_checks(NumpyKernels(faults), "cpu"))
    for name in named:
        assert any(line.startswith(name) for line in lines), (name, lines)
    assert all("exactly (small-integer inputs)" in line for line in lines)
    if "mm-threads" in faults:
        assert all("1 thread)" not in line for line in lines)
    if "mm-dtype" in faults:
        assert all("(float64," in line for line in lines)
    if "sum-long" in faults:
        assert {line.split()[2] for line in lines} == {"65537", "1000000"}


def test_the_timed_kernels_report_a_rate_and_a_figure_per_calibration_kernel() -> None:
    clean = {t["kernel"]: t for t in wk.kernel_timings(NumpyKernels())}
    assert list(clean) == ["matmul", "sum", "exp"]
    assert clean["matmul"]["unit"] == "GFLOP/s" and clean["sum"]["unit"] == "GB/s"
    for t in clean.values():
        assert t["ms"] > 0 and t["rate"] > 0 and t["per_kernel"] > 0
    # the gate's detection of a slower kernel, through dlsetup smoke, is
    # tests/smoke/test_benchmark_gate.py's: NumPy's threaded GEMM is too noisy
    # on a loaded machine to compare two runs of it here
    slowed = {t["kernel"]: t for t in wk.kernel_timings(NumpyKernels({"slow-mm": 3}))}
    assert slowed["matmul"]["ms"] > 0 and slowed["matmul"]["per_kernel"] > 0
