"""Typed results of a smoke run: per framework, per device, per check and per combination.

The workers speak JSON lines (see :mod:`dlsetup.smoke.worker_protocol`); :func:`device_run_from_event`
turns a ``device_result`` event into a frozen :class:`DeviceRun`. Values a worker could not measure
are :class:`dlsetup.facts.Missing` with a reason, never a bare ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dlsetup.facts import Maybe, Missing
from dlsetup.smoke.reference import ZERO_ONE_SURROGATE_TEXT

#: Shown wherever the 0/1 loss appears.
ZERO_ONE_NOTE = ZERO_ONE_SURROGATE_TEXT


@dataclass(frozen=True)
class Failure:
    """Why a combination failed: the check, the quantity, the value seen and what was expected.

    Attributes:
        check: ``one step``, ``every step`` (the loss curve left the band around the NumPy
            reference's), ``parameters`` (a parameter element left its band at a checkpoint) or
            ``training``.
        step: the training step the failure was seen at (the first one outside the band, the
            first non-finite loss; 0 for the one-step check); None for end-of-training checks.
    """

    check: str
    what: str
    value: float | str | None
    expected: str
    step: int | None = None

    def describe(self) -> str:
        """One line for the human report."""
        return f"{self.check}: {self.what} was {_fmt(self.value)}, expected {self.expected}"


@dataclass(frozen=True)
class FunctionCheck:
    """Check (1) for one function, quantity and dtype at the fixed points."""

    kind: str
    name: str
    quantity: str
    dtype: str
    passed: bool
    max_abs_error: float | None
    rtol: float
    atol: float
    at: dict[str, float | str]
    got: float | str | None
    expected: float | str | None

    def describe(self) -> str:
        """One line for the human report."""
        where = ", ".join(f"{k}={_fmt(v)}" for k, v in self.at.items())
        return (
            f"{self.kind} {self.name} {self.quantity} ({self.dtype}) at {where}: got "
            f"{_fmt(self.got)}, expected {_fmt(self.expected)} (NumPy reference, rtol {self.rtol:g},"
            f" atol {self.atol:g})"
        )


@dataclass(frozen=True)
class KernelCheck:
    """One kernel of the kernel tier (:mod:`dlsetup.smoke.worker_kernels`) on one device, in one
    dtype, on one thread count, against its float64 reference.

    Attributes:
        kernel: ``matmul``, ``conv2d``, ``sum``, ``mean``, ``softmax``, ``logsumexp``, ``exp``,
            ``log``, ``tanh``, ``sigmoid``, ``erf``.
        shape: the operands' shape (``3x8192 @ 8192x5``), the reduction length or the points.
        exact: the result must equal the reference exactly (small-integer inputs).
        seconds: the kernel's own time (its input's transfer included).
        index: the worst element's index (a failure); ``input`` its argument (elementwise).
        allowed: the allowed absolute deviation at the worst element.
    """

    kernel: str
    shape: str
    dtype: str
    threads: int
    device: str
    passed: bool
    exact: bool
    max_abs_error: float | None
    seconds: float
    index: tuple[int, ...] = ()
    input: float | str | None = None
    got: float | str | None = None
    expected: float | str | None = None
    allowed: float | str | None = None

    def describe(self) -> str:
        """One line for the human report (a failed check)."""
        threads = "1 thread" if self.threads == 1 else f"{self.threads} threads"
        where = f"element [{', '.join(str(i) for i in self.index)}]" if self.index else "result"
        arg = "" if self.input is None else f" (input {_fmt(self.input)})"
        bound = (
            "exactly (small-integer inputs)"
            if self.exact
            else f"+- {_fmt(self.allowed)} (float64 reference)"
        )
        return (
            f"kernel {self.kernel} {self.shape} ({self.dtype}, {threads}) on {self.device}: "
            f"{where}{arg} was {_fmt(self.got)}, expected {_fmt(self.expected)} {bound}"
        )


@dataclass(frozen=True)
class KernelTiming:
    """One kernel's speed on one device, one thread (``dlsetup.smoke.worker_kernels.TIMED``).

    Attributes:
        ms: milliseconds per call (the fastest of the timing rounds).
        rate: the throughput at that speed, in ``unit`` (GFLOP/s for matmul, GB/s else).
        per_kernel: the median over rounds of (ms per call / the calibration kernel run right
            after the round): the figure the gate compares, as the step per kernel.
    """

    kernel: str
    shape: str
    ms: float
    rate: float
    unit: str
    per_kernel: float | None


@dataclass(frozen=True)
class IsolatedRerun:
    """The per-combination fallback: the failed combination trained alone."""

    passed: bool
    final_loss: float | str | None
    attribution: str


@dataclass(frozen=True)
class ComboResult:
    """Checks (2) and (3) for one (activation, loss) pair."""

    activation: str
    loss: str
    passed: bool
    initial_loss: float | str | None
    final_loss: float | str | None
    final_training_loss: float | str | None
    accuracy: float
    failures: tuple[Failure, ...]
    isolated_rerun: IsolatedRerun | None
    every_step_checked_to: int | None = None
    every_step_note: str | None = None


@dataclass(frozen=True)
class CompanionCheck:
    """One companion of the framework (PyTorch: torchvision, torchaudio) checked on one device.

    Attributes:
        companion: ``torchvision`` or ``torchaudio``.
        check: what was computed (``torchvision.ops.nms``, ``torchaudio.transforms.Spectrogram``).
        status: ``passed``; ``failed`` (installed, but the import failed, the operator raised, the
            numbers differ from the NumPy reference, or it crashed or hung the worker);
            ``not_installed`` (reported, not failed).
        version: the companion's version, Missing when not installed or unknown.
        stage: where a failure happened: ``import``, ``operator``, ``compare``, ``crashed``,
            ``timeout``; None when it passed or is not installed.
        detail: what was compared and the outcome, in words.
        error: the exception text (``RuntimeError: operator torchvision::nms does not exist``).
        max_abs_error: the largest absolute error against the reference, when it passed.
        seconds: time of the check on this device, import included.
        fix: what to do about a failure; None otherwise.
    """

    companion: str
    check: str
    status: str
    version: Maybe[str]
    stage: str | None
    detail: str
    error: str | None
    max_abs_error: float | None
    seconds: float
    fix: str | None = None

    def describe(self) -> str:
        """One line for the human report."""
        name = (
            self.companion
            if isinstance(self.version, Missing)
            else (f"{self.companion} {self.version}")
        )
        if self.status == "not_installed":
            return f"{self.companion}: not installed (reported, not failed)"
        if self.status == "passed":
            return f"{name}: ok, {self.check}: {self.detail}"
        return f"{name}: {self.detail}" + (f": {self.error}" if self.error else "")


@dataclass(frozen=True)
class DeviceRun:
    """Everything one framework did on one device.

    Attributes:
        status: ``ok``; ``error`` (the device raised); ``timeout`` (ended after the per-device
            timeout); ``crashed`` (the worker died without a result).
        phases: seconds per phase (function_checks_s, build_s, warmup_s, loop_s, train_s, ...).
        ms_per_step: steady-state milliseconds per training step of the whole stacked grid.
        best_ms_per_step: the same, over the fastest chunk of 20 steps (what the gate reads).
        kernel_ms: milliseconds of the fixed calibration kernel (:mod:`timing_kernel`), run in
            the same worker after each 20-step chunk: the fastest run.
        step_per_kernel: the median over the chunks of (ms per step / the kernel run right after
            the chunk): the figure the benchmark gate compares.
        curves: mean training loss per combination (activation-major) before each step.
        peak_rss_bytes: the worker's peak resident host memory so far, bytes.
        peak_device_bytes: peak device memory allocated, bytes (GPU/MPS only).
        companions: the framework's companions checked on this device, after the grid (none for
            TensorFlow, or when the device failed or companions were not checked).
        kernel_checks: the kernel tier on this device, run before the grid.
        kernel_timings: the speed of a few of its kernels, gated like the step.
    """

    framework: str
    device: str
    status: str
    error: str | None
    seed: int
    steps: int
    function_checks: tuple[FunctionCheck, ...]
    combinations: tuple[ComboResult, ...]
    curves: tuple[tuple[float | None, ...], ...]
    phases: dict[str, float]
    ms_per_step: Maybe[float]
    peak_rss_bytes: Maybe[int]
    peak_device_bytes: Maybe[int]
    companions: tuple[CompanionCheck, ...] = ()
    kernel_checks: tuple[KernelCheck, ...] = ()
    kernel_timings: tuple[KernelTiming, ...] = ()
    best_ms_per_step: Maybe[float] = Missing("not_measured")
    kernel_ms: Maybe[float] = Missing("not_measured")
    step_per_kernel: Maybe[float] = Missing("not_measured")

    @property
    def passed(self) -> bool:
        """True when the device ran and every check, combination and installed companion passed."""
        return (
            self.status == "ok"
            and all(c.passed for c in self.function_checks)
            and all(c.passed for c in self.kernel_checks)
            and all(c.passed for c in self.combinations)
            and all(c.status != "failed" for c in self.companions)
        )


@dataclass(frozen=True)
class FrameworkRun:
    """One framework in the target interpreter.

    Attributes:
        status: ``ok``, ``unavailable`` (not importable) or ``error`` (the worker failed to start).
        devices: every device the framework detects; ``selected`` the ones run.
        import_s: seconds to import the framework in the worker.
    """

    framework: str
    status: str
    version: Maybe[str]
    devices: tuple[str, ...]
    selected: tuple[str, ...]
    import_s: Maybe[float]
    reason: str | None


@dataclass(frozen=True)
class Agreement:
    """Check (5): the PyTorch and TensorFlow loss curves of one pair, from the same weights.

    Attributes:
        device: the device class both frameworks ran on (``cpu``, ``gpu:0``, ``mps``).
        max_abs_deviation: the largest absolute gap between the two curves (loss units);
            None when a curve is not finite or the curves differ in length.
        max_rel_deviation: the same, divided by the largest absolute PyTorch loss.
        max_allowed: the allowed gap at ``step`` (the first step outside), or at the step
            closest to the edge when the pair passed (loss units).
        passed: whether the gap stayed inside the bound at every step; None when the gap could
            not be measured (a non-finite curve, failed by the training check already).
        step: the first step whose gap exceeded the bound; None when none did.
        gap_at_step: the gap at the step ``max_allowed`` is given for.
        bound: ``band`` (twice the float32 band around the curve, the default) or
            ``max_disagreement`` (the fixed ``--max-disagreement`` bound).
    """

    device: str
    activation: str
    loss: str
    max_abs_deviation: float | None
    max_rel_deviation: float | None
    max_allowed: float | None = None
    passed: bool | None = None
    step: int | None = None
    gap_at_step: float | None = None
    bound: str = "band"

    def describe(self) -> str:
        """One line for the human report (a failed pair)."""
        source = "--max-disagreement" if self.bound == "max_disagreement" else "2 x float32 band"
        return (
            f"agreement {self.activation} / {self.loss} on {self.device}: "
            f"|PyTorch - TensorFlow| loss-curve gap at step {self.step} was "
            f"{_fmt(self.gap_at_step)}, expected <= {_fmt(self.max_allowed)} ({source})"
        )


@dataclass(frozen=True)
class Machine:
    """The machine a run happened on (for benchmark files)."""

    hostname: str
    system: str
    machine: str
    processor: str
    cpu_count: int
    memory_bytes: int
    python: str


@dataclass(frozen=True)
class SmokeReport:
    """The whole smoke run."""

    passed: bool
    python: str
    seed: int
    steps: int
    wall_s: float
    machine: Machine
    frameworks: tuple[FrameworkRun, ...]
    runs: tuple[DeviceRun, ...]
    agreement: tuple[Agreement, ...]
    zero_one_note: str
    max_disagreement: float | None = None


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _num(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    return float(value)


def _missing_or(value: Any, reason: str, kind: type) -> Any:
    return Missing(reason) if value is None else kind(value)


def device_run_from_event(framework: str, event: dict[str, Any]) -> DeviceRun:
    """Build a :class:`DeviceRun` from a worker's ``device_result`` event."""
    device = str(event["device"])
    ok = event.get("status") == "ok"
    checks = tuple(
        FunctionCheck(
            kind=c["kind"],
            name=c["name"],
            quantity=c["quantity"],
            dtype=c["dtype"],
            passed=bool(c["passed"]),
            max_abs_error=c.get("max_abs_error"),
            rtol=float(c["rtol"]),
            atol=float(c["atol"]),
            at=dict(c.get("failure", {}).get("at", {})),
            got=_num(c.get("failure", {}).get("got")),
            expected=_num(c.get("failure", {}).get("expected")),
        )
        for c in event.get("function_checks", [])
    )
    combos = tuple(
        ComboResult(
            activation=c["activation"],
            loss=c["loss"],
            passed=bool(c["passed"]),
            initial_loss=_num(c["initial_loss"]),
            final_loss=_num(c["final_loss"]),
            final_training_loss=_num(c["final_training_loss"]),
            accuracy=float(c["accuracy"]),
            failures=tuple(Failure(**f) for f in c["failures"]),
            isolated_rerun=None
            if c["isolated_rerun"] is None
            else IsolatedRerun(**c["isolated_rerun"]),
            every_step_checked_to=c.get("every_step_checked_to"),
            every_step_note=c.get("every_step_note"),
        )
        for c in event.get("combinations", [])
    )
    kernels = tuple(kernel_check_from_event(c) for c in event.get("kernel_checks", []))
    curves = tuple(
        tuple(v if isinstance(v, float) and math.isfinite(v) else None for v in curve)
        for curve in event.get("curves", [])
    )
    return DeviceRun(
        framework=framework,
        device=device,
        status=str(event.get("status", "error")),
        error=event.get("error"),
        seed=int(event.get("seed", 0)),
        steps=int(event.get("steps", 0)),
        function_checks=checks,
        combinations=combos,
        curves=curves,
        kernel_checks=kernels,
        kernel_timings=tuple(
            KernelTiming(
                kernel=str(t["kernel"]),
                shape=str(t["shape"]),
                ms=float(t["ms"]),
                rate=float(t["rate"]),
                unit=str(t["unit"]),
                per_kernel=None if t.get("per_kernel") is None else float(t["per_kernel"]),
            )
            for t in event.get("kernel_timings", [])
        ),
        phases={k: float(v) for k, v in event.get("phases", {}).items()},
        ms_per_step=_missing_or(
            event.get("ms_per_step"), "device_failed" if not ok else "error", float
        ),
        peak_rss_bytes=_missing_or(event.get("peak_rss_bytes"), "not_supported", int),
        peak_device_bytes=_missing_or(
            event.get("peak_device_bytes"), "host_device" if ok else "device_failed", int
        ),
        best_ms_per_step=_missing_or(
            event.get("best_ms_per_step"), "device_failed" if not ok else "error", float
        ),
        step_per_kernel=_missing_or(
            event.get("step_per_kernel"), "device_failed" if not ok else "not_measured", float
        ),
        kernel_ms=_missing_or(
            event.get("kernel_ms"), "device_failed" if not ok else "error", float
        ),
    )


def kernel_check_from_event(check: dict[str, Any]) -> KernelCheck:
    """Build a :class:`KernelCheck` from one entry of a ``device_result``'s ``kernel_checks``."""
    failure = check.get("failure") or {}
    err = check.get("max_abs_error")
    return KernelCheck(
        kernel=str(check["kernel"]),
        shape=str(check["shape"]),
        dtype=str(check["dtype"]),
        threads=int(check["threads"]),
        device=str(check["device"]),
        passed=bool(check["passed"]),
        exact=bool(check.get("exact", False)),
        max_abs_error=float(err) if isinstance(err, (int, float)) else None,
        seconds=float(check.get("seconds", 0.0)),
        index=tuple(int(i) for i in failure.get("index", ())),
        input=_num(failure.get("input")),
        got=_num(failure.get("got")),
        expected=_num(failure.get("expected")),
        allowed=_num(failure.get("allowed")),
    )


def failed_device_run(
    framework: str, device: str, *, status: str, error: str, seed: int, steps: int
) -> DeviceRun:
    """A device whose worker timed out or crashed before reporting."""
    return DeviceRun(
        framework=framework,
        device=device,
        status=status,
        error=error,
        seed=seed,
        steps=steps,
        function_checks=(),
        combinations=(),
        curves=(),
        phases={},
        ms_per_step=Missing(status),
        peak_rss_bytes=Missing(status),
        peak_device_bytes=Missing(status),
        best_ms_per_step=Missing(status),
        kernel_ms=Missing(status),
        step_per_kernel=Missing(status),
    )


def companion_check_from_event(check: dict[str, Any], fix: str | None) -> CompanionCheck:
    """Build a :class:`CompanionCheck` from a worker's ``companion_result`` check."""
    version = check.get("version")
    err = check.get("max_abs_error")
    status = str(check.get("status", "failed"))
    return CompanionCheck(
        companion=str(check["companion"]),
        check=str(check.get("check", "")),
        status=status,
        version=str(version)
        if version
        else Missing("not_installed" if status == "not_installed" else "not_reported"),
        stage=check.get("stage"),
        detail=str(check.get("detail", "")),
        error=check.get("error"),
        max_abs_error=float(err) if isinstance(err, (int, float)) else None,
        seconds=float(check.get("seconds", 0.0)),
        fix=fix if status == "failed" else None,
    )
