"""The framework-independent half of the smoke workers: data, weights, checks, verdicts, protocol.

Runs INSIDE the target interpreter, so it imports only the standard library and NumPy (plus
:mod:`reference`, loaded from this directory). A framework worker (``torch_worker.py``,
``tf_worker.py``) supplies a :class:`Backend` that evaluates functions and trains the stacked grid;
everything it returns is compared here against the NumPy reference.

Protocol: the worker writes one JSON object per line to stdout, each line prefixed with
:data:`LINE_PREFIX`; events are ``hello`` (framework, version, devices), ``unavailable`` (the
framework cannot be imported), ``device_start``, ``device_result``, ``calibration``, and after a
device's result, for each companion of the framework (PyTorch: torchvision, torchaudio; see
:mod:`companions`), ``companion_start`` (device, companion) and ``companion_result`` (device,
check). The companions come after the device's result, so a companion whose import crashes or
hangs the worker cannot take the device's grid with it.

Test-only fault injection (never set it outside tests): the environment variable
:data:`INJECT_ENV` holds comma-separated faults, each optionally limited to one framework with a
``framework:`` prefix:

* ``wrong-activation=NAME``: the backend's activation NAME returns 1.5 times the right value;
* ``nan=ACT/LOSS``: the loss of that combination is multiplied by NaN from the first step on;
* ``raise=DEVICE``: running on DEVICE raises a RuntimeError;
* ``hang=DEVICE``: running on DEVICE sleeps for an hour (to exercise the runner's timeout);
* ``crash=DEVICE``: running on DEVICE ends the process with exit status 3 (no result line);
* ``poison=DEVICE``: running on DEVICE raises and leaves the process unusable, so every later
  device in the same process raises too (like a sticky CUDA error, which breaks the CUDA
  context of the whole process);
* ``broken-reference=COMPANION``: the NumPy reference of that companion's check (``torchvision``,
  ``torchaudio``) is spoiled, so a correct result fails (see :mod:`companions`);
* ``cpu-devices=N``: TensorFlow splits the host CPU into N logical devices ``CPU:0`` ..
  ``CPU:N-1`` (a real TensorFlow feature), so a CPU-only machine has several devices.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from dlsetup.smoke import curve_band, timing_kernel
    from dlsetup.smoke import reference as ref
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import curve_band
    import reference as ref
    import timing_kernel

Array = npt.NDArray[np.float64]

LINE_PREFIX = "DLSETUP-SMOKE "
INJECT_ENV = "DLSETUP_SMOKE_INJECT"

#: Steps per timed chunk of the training loop (see :attr:`TrainOutput.best_ms_per_step`).
TIMING_CHUNK = 20
#: Samples in the synthetic dataset (two Gaussian blobs, balanced classes).
N_SAMPLES = 64
#: Hidden units of the 2-H-1 network.
HIDDEN = 16
#: Training steps by default.
DEFAULT_STEPS = 200
#: Plain gradient-descent learning rate per loss (the registry's, :data:`reference.LOSS_SPECS`).
LEARNING_RATES: dict[str, float] = {lo.name: lo.learning_rate for lo in ref.LOSS_SPECS}
#: Training passes when final loss <= LOSS_FALL_FACTOR * initial loss (or <= LOSS_FLOOR) ...
LOSS_FALL_FACTOR = 0.8
LOSS_FLOOR = 1e-3
#: ... and the training accuracy reaches this share.
ACCURACY_THRESHOLD = 0.9

#: (rtol, atol) of the function checks per dtype.
FUNCTION_TOLERANCE: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-6),
    "float64": (1e-7, 1e-12),  # TF's leaky_relu keeps its slope as a 32-bit attribute
}
#: (rtol, atol) of the one-step check (float32 framework step vs float64 NumPy step).
STEP_TOLERANCE = (1e-4, 1e-5)

#: Fixed points of the activation checks: 0, tiny, moderate, large and saturating inputs.
ACTIVATION_POINTS: tuple[float, ...] = (
    -100.0, -50.0, -20.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 5.0, 20.0, 50.0, 100.0,
)  # fmt: skip
#: PReLU alphas checked.
PRELU_ALPHAS: tuple[float, ...] = (0.25, -0.5)
#: Fixed scores of the loss checks (each with y = -1 and y = +1): kinks at y f = 0 and 1 included.
LOSS_POINTS: tuple[float, ...] = (-20.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 20.0)


def combinations() -> list[tuple[str, str]]:
    """Every (activation, loss) pair of the registry, activation-major."""
    return ref.combinations()


def require_complete(framework: str, acts: dict[str, Any], losses: dict[str, Any]) -> None:
    """Refuse a backend whose tables do not implement exactly the registry's entries.

    Raises:
        ValueError: an activation or loss of :mod:`reference`'s registry has no implementation
            in ``framework``'s worker, or the worker implements one the registry lacks.
    """
    for kind, table, names in (("activation", acts, ref.ACTIVATIONS), ("loss", losses, ref.LOSSES)):
        missing = [n for n in names if n not in table]
        extra = [n for n in table if n not in names]
        if missing or extra:
            raise ValueError(
                f"the {framework} worker's {kind} table does not match the registry "
                f"(reference.py): missing {missing}, unknown {extra}"
            )


def make_data(seed: int) -> tuple[Array, Array]:
    """The synthetic dataset: x (N, 2) from two blobs at +-(1, 1), labels y (N,) in {-1, +1}."""
    rng = np.random.default_rng([seed, 1])
    y = np.where(np.arange(N_SAMPLES) % 2 == 0, 1.0, -1.0)
    x = rng.normal(0.0, 0.5, (N_SAMPLES, 2)) + y[:, None] * np.array([1.0, 1.0])
    return x, y


def init_params(seed: int, count: int) -> dict[str, Array]:
    """Independent initial weights for ``count`` stacked models (float64, framework-agnostic).

    Returns:
        ``w1`` (M, 2, H), ``b1`` (M, H), ``w2`` (M, H), ``b2`` (M,), ``alpha`` (M,).
    """
    rng = np.random.default_rng([seed, 2])
    return {
        "w1": rng.normal(0.0, 1.0 / math.sqrt(2.0), (count, 2, HIDDEN)),
        "b1": np.zeros((count, HIDDEN)),
        "w2": rng.normal(0.0, 0.01, (count, HIDDEN)),  # f is about 0 at the start
        "b2": np.zeros(count),
        "alpha": np.full(count, ref.PRELU_INIT),
    }


PARAM_NAMES: tuple[str, ...] = ("w1", "b1", "w2", "b2", "alpha")


def model_params(stacked: dict[str, Array], i: int) -> ref.Params:
    """Model ``i`` of a stack as reference :class:`Params` (float64)."""
    return ref.Params(**{k: np.asarray(stacked[k][i], dtype=np.float64) for k in PARAM_NAMES})


@dataclass(frozen=True)
class Plan:
    """How a list of combinations maps onto stacked models.

    Attributes:
        combos: the (activation, loss) of each stacked model, activation-major.
        act_groups: (activation, start, end): models ``start:end`` use that activation.
        loss_groups: (loss, indices): the models that use that loss.
        order: the model index of each entry of the concatenated loss groups; ``inverse`` undoes it.
    """

    combos: tuple[tuple[str, str], ...]
    act_groups: tuple[tuple[str, int, int], ...]
    loss_groups: tuple[tuple[str, tuple[int, ...]], ...]
    order: tuple[int, ...]
    inverse: tuple[int, ...]


def make_plan(combos: Sequence[tuple[str, str]]) -> Plan:
    """Group ``combos`` (which must be sorted by activation) into activation slices and loss sets."""
    act_groups: list[tuple[str, int, int]] = []
    for i, (act, _) in enumerate(combos):
        if act_groups and act_groups[-1][0] == act:
            act_groups[-1] = (act, act_groups[-1][1], i + 1)
        else:
            if any(g[0] == act for g in act_groups):
                raise ValueError("combinations must be sorted by activation")
            act_groups.append((act, i, i + 1))
    loss_groups = tuple(
        (loss, tuple(i for i, (_, lo) in enumerate(combos) if lo == loss))
        for loss in ref.LOSSES
        if any(lo == loss for _, lo in combos)
    )
    order = tuple(i for _, idx in loss_groups for i in idx)
    inverse = tuple(int(j) for j in np.argsort(order))
    return Plan(tuple(combos), tuple(act_groups), loss_groups, order, inverse)


@dataclass
class TrainOutput:
    """What a backend's stacked training returns (all NumPy float64).

    Attributes:
        curves: mean training loss per model before each step and after the last, (steps + 1, M).
        after_first: the stacked parameters after the first update (same keys as init_params).
        final_scores: the network outputs f after training, (M, N).
        warmup_s: seconds of the first step (tracing/compilation included).
        loop_s: seconds of the remaining steps.
        clock: the timed chunks of the steps after the first, and a calibration kernel run
            after each (see :class:`ChunkClock`).
    """

    curves: Array
    after_first: dict[str, Array]
    final_scores: Array
    warmup_s: float
    loop_s: float
    clock: ChunkClock


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


class Trainer(Protocol):
    """A compiled (or at least built-once) stacked training program for one plan on one device."""

    def run(
        self,
        init: dict[str, Array],
        x: Array,
        y: Array,
        *,
        lr: Array,
        loss_scale: Array,
        steps: int,
    ) -> TrainOutput:
        """Train from ``init`` for ``steps`` plain-GD steps (per-model ``lr``; the per-model
        loss is multiplied by ``loss_scale`` before differentiation)."""
        ...


class Backend(Protocol):
    """The framework-specific half of a worker."""

    framework: str
    version: str

    def devices(self) -> list[str]:
        """Every device the framework detects, in its own spelling (``cpu``, ``cuda:0``, ``GPU:0``)."""
        ...

    def dtypes(self, device: str) -> list[str]:
        """The dtypes the function checks run in on ``device``."""
        ...

    def activation_value_grad(
        self, device: str, dtype: str, name: str, x: Array, alpha: float
    ) -> tuple[Array, Array, Array]:
        """Activation ``name`` at ``x``: value, d/dx and (PReLU) d/dalpha summed per point."""
        ...

    def loss_value_grad(
        self, device: str, dtype: str, name: str, f: Array, y: Array
    ) -> tuple[Array, Array]:
        """Per-sample training loss ``name`` at scores ``f`` and labels ``y``: value and d/df."""
        ...

    def zero_one(self, device: str, dtype: str, f: Array, y: Array) -> Array:
        """The true per-sample 0/1 loss."""
        ...

    def trainer(self, device: str, plan: Plan) -> Trainer:
        """Build the stacked training program of ``plan`` on ``device``."""
        ...

    def peak_device_memory(self, device: str) -> int | None:
        """Peak bytes allocated on ``device`` so far (None for host devices)."""
        ...


@dataclass(frozen=True)
class Injection:
    """Test-only faults parsed from :data:`INJECT_ENV` for one framework."""

    wrong_activation: frozenset[str] = frozenset()
    nan_combos: frozenset[tuple[str, str]] = frozenset()
    raise_devices: frozenset[str] = frozenset()
    hang_devices: frozenset[str] = frozenset()
    crash_devices: frozenset[str] = frozenset()
    poison_devices: frozenset[str] = frozenset()
    cpu_devices: int = 1
    broken_references: frozenset[str] = frozenset()


def parse_injection(text: str, framework: str) -> Injection:
    """Parse the fault list (see the module docstring) for ``framework``."""
    kinds = ("wrong", "nan", "raise", "hang", "crash", "poison", "broken-reference")
    fields: dict[str, set[Any]] = {k: set() for k in kinds}
    cpu_devices = 1
    for raw in filter(None, (p.strip() for p in text.split(","))):
        item = raw
        head, _, rest = raw.partition(":")
        if head in ("torch", "tensorflow") and rest and "=" in rest:
            if head != framework:
                continue
            item = rest
        kind, _, value = item.partition("=")
        if kind == "wrong-activation":
            fields["wrong"].add(value)
        elif kind == "nan":
            act, _, loss = value.partition("/")
            fields["nan"].add((act, loss))
        elif kind in ("raise", "hang", "crash", "poison"):
            fields[kind].add(normalize_device(value))
        elif kind == "cpu-devices":
            cpu_devices = int(value)
        elif kind == "broken-reference":
            fields[kind].add(value)
        else:
            raise ValueError(f"unknown fault {raw!r} in {INJECT_ENV}")
    return Injection(
        frozenset(fields["wrong"]),
        frozenset(fields["nan"]),
        frozenset(fields["raise"]),
        frozenset(fields["hang"]),
        frozenset(fields["crash"]),
        frozenset(fields["poison"]),
        cpu_devices,
        frozenset(fields["broken-reference"]),
    )


def wrap_activations(
    table: dict[str, Callable[[Any, Any], Any]], injection: Injection
) -> dict[str, Callable[[Any, Any], Any]]:
    """Apply the ``wrong-activation`` fault to a backend's activation table (value x 1.5)."""
    out = dict(table)
    for name in injection.wrong_activation:
        right = table[name]

        def wrong(z: Any, alpha: Any, right: Callable[[Any, Any], Any] = right) -> Any:
            return right(z, alpha) * 1.5

        out[name] = wrong
    return out


def normalize_device(name: str) -> str:
    """One spelling for both frameworks: ``cpu``, ``gpu:N`` (torch ``cuda:N``, TF ``GPU:N``), ``mps``."""
    low = name.strip().lower()
    if low in ("cpu", "cpu:0"):
        return "cpu"
    if low.startswith("cuda"):
        low = "gpu" + low[4:]
    if low == "gpu":
        low = "gpu:0"
    if low in ("mps", "mps:0"):
        return "mps"
    return low


# ---------------------------------------------------------------- checks


def _close(got: Array, want: Array, rtol: float, atol: float) -> tuple[bool, int, float]:
    """(all close, index of the worst point, its absolute error); NaN vs finite is not close."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    ok = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
    both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
    ok = ok | both_inf
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want) - (atol + rtol * np.abs(want))
    err = np.where(ok, -np.inf, np.nan_to_num(err, nan=np.inf))
    worst = int(np.argmax(err))
    abs_err = (
        float(abs(got[worst] - want[worst]))
        if np.all(np.isfinite([got[worst], want[worst]]))
        else math.inf
    )
    return bool(np.all(ok)), worst, abs_err


def _function_check(
    kind: str, name: str, quantity: str, dtype: str, *, points: Array, got: Array, want: Array,
    labels: Array | None = None, alpha: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    rtol, atol = FUNCTION_TOLERANCE[dtype]
    passed, worst, err = _close(got, want, rtol, atol)
    check: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "quantity": quantity,
        "dtype": dtype,
        "passed": passed,
        "max_abs_error": err if passed else None,
        "rtol": rtol,
        "atol": atol,
    }
    if not passed:
        at: dict[str, Any] = {"x" if kind == "activation" else "f": _num(points.reshape(-1)[worst])}
        if labels is not None:
            at["y"] = _num(labels.reshape(-1)[worst])
        if alpha is not None:
            at["alpha"] = alpha
        check["failure"] = {
            "at": at,
            "got": _num(np.asarray(got).reshape(-1)[worst]),
            "expected": _num(np.asarray(want).reshape(-1)[worst]),
        }
    return check


def _num(value: Any) -> float | str:
    """A float for JSON; NaN and infinities spelled as strings so they survive."""
    v = float(value)
    return v if math.isfinite(v) else str(v)


def function_checks(backend: Backend, device: str) -> list[dict[str, Any]]:
    """Check (1): every activation and loss, value and gradient, at fixed points, per dtype."""
    checks: list[dict[str, Any]] = []
    x = np.array(ACTIVATION_POINTS)
    f = np.tile(np.array(LOSS_POINTS), 2)
    y = np.repeat(np.array([-1.0, 1.0]), len(LOSS_POINTS))
    for dtype in backend.dtypes(device):
        for name in ref.ACTIVATIONS:
            for alpha in PRELU_ALPHAS if name == "prelu" else (ref.PRELU_INIT,):
                value, dx, dalpha = backend.activation_value_grad(device, dtype, name, x, alpha)
                a = alpha if name == "prelu" else None
                wanted = [
                    ("value", value, ref.activation(name, x, alpha)),
                    ("d/dx", dx, ref.activation_grad(name, x, alpha)),
                ]
                if name == "prelu":
                    wanted.append(("d/dalpha", dalpha, ref.prelu_alpha_grad(x)))
                checks += [
                    _function_check("activation", name, q, dtype, points=x, got=g, want=w, alpha=a)
                    for q, g, w in wanted
                ]
        for name in ref.LOSSES:
            value, df = backend.loss_value_grad(device, dtype, name, f, y)
            wanted = [
                (
                    "surrogate value" if name == "zero_one" else "value",
                    value,
                    ref.training_loss(name, f, y),
                ),
                ("d/df", df, ref.training_loss_grad(name, f, y)),
            ]
            checks += [
                _function_check("loss", name, q, dtype, points=f, got=g, want=w, labels=y)
                for q, g, w in wanted
            ]
        metric = backend.zero_one(device, dtype, f, y)
        truth = ref.loss("zero_one", f, y)
        checks.append(
            _function_check(
                "loss", "zero_one", "value", dtype, points=f, got=metric, want=truth, labels=y
            )
        )
    return checks


def reference_first_step(
    combos: Sequence[tuple[str, str]], init: dict[str, Array], x: Array, y: Array
) -> tuple[Array, dict[str, Array]]:
    """Check (2)'s reference: the first loss and the weights after one step of each model."""
    losses = np.zeros(len(combos))
    after = {k: np.zeros_like(v) for k, v in init.items()}
    for i, (act, loss) in enumerate(combos):
        value, p = ref.gd_step(model_params(init, i), x, y, act, loss, lr=LEARNING_RATES[loss])
        losses[i] = value
        for k in PARAM_NAMES:
            after[k][i] = getattr(p, k)
    return losses, after


@dataclass
class ComboVerdict:
    """The verdict of one combination (JSON-ready through :meth:`as_dict`)."""

    activation: str
    loss: str
    initial_loss: float
    final_loss: float
    final_training_loss: float
    accuracy: float
    failures: list[dict[str, Any]] = field(default_factory=list)
    isolated: dict[str, Any] | None = None
    checked_to: int | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "loss": self.loss,
            "passed": not self.failures,
            "initial_loss": _num(self.initial_loss),
            "final_loss": _num(self.final_loss),
            "final_training_loss": _num(self.final_training_loss),
            "accuracy": self.accuracy,
            "failures": self.failures,
            "isolated_rerun": self.isolated,
            "every_step_checked_to": self.checked_to,
            "every_step_note": self.note,
        }


def training_failures(curve: Array, accuracy: float) -> list[dict[str, Any]]:
    """Check (3) for one model: finite loss, fall by LOSS_FALL_FACTOR, accuracy threshold."""
    out: list[dict[str, Any]] = []
    if not np.all(np.isfinite(curve)):
        step = int(np.argmax(~np.isfinite(curve)))
        out.append({
            "check": "training",
            "what": "loss stays finite",
            "value": _num(curve[step]),
            "expected": f"a finite loss at every step (first non-finite at step {step})",
            "step": step,
        })  # fmt: skip
        return out
    first, last = float(curve[0]), float(curve[-1])
    if not (last <= LOSS_FALL_FACTOR * first or last <= LOSS_FLOOR):
        out.append({
            "check": "training",
            "what": "loss falls",
            "value": _num(last),
            "expected": f"<= {LOSS_FALL_FACTOR:g} x initial loss {first:.4g} (= {LOSS_FALL_FACTOR * first:.4g})",
            "step": None,
        })  # fmt: skip
    if accuracy < ACCURACY_THRESHOLD:
        out.append({
            "check": "training",
            "what": "training accuracy",
            "value": accuracy,
            "expected": f">= {ACCURACY_THRESHOLD:g}",
            "step": None,
        })  # fmt: skip
    return out


def curve_failures(
    v: ComboVerdict, curve: Array, reference: Array, kink: Array
) -> list[dict[str, Any]]:
    """The every-step check for one model: its loss curve inside the float32 band around the
    NumPy reference's curve from the same weights (:mod:`curve_band`), at every step; records
    on ``v`` how far the curve was checked."""
    check = curve_band.verdict(curve, reference, kink)
    v.checked_to = check.checked_to
    if check.parted_at_kink is not None:
        v.note = (
            f"checked to step {check.checked_to}: at that step a sample sat on the loss's kink "
            "within rounding, float32 and float64 took different sides and the curves parted"
        )
    if check.exit is None:
        return []
    step, got, want, allowed = check.exit
    return [{
        "check": "every step",
        "what": f"loss at step {step} (the first step outside the band)",
        "value": _num(got),
        "expected": f"{want:.6g} +- {allowed:.2g} (NumPy reference from the same weights, float32 band)",
        "step": step,
    }]  # fmt: skip


def _verdicts(
    plan: Plan, out: TrainOutput, y: Array, ref_losses: Array | None, ref_after: dict[str, Array] | None,
    *, ref_curves: ref.Curves | None = None,
) -> list[ComboVerdict]:  # fmt: skip
    verdicts: list[ComboVerdict] = []
    for i, (act, loss) in enumerate(plan.combos):
        scores = out.final_scores[i]
        accuracy = float(np.mean(ref.predict(scores) == y))
        zero_one = (
            float(np.mean(ref.loss("zero_one", scores, y)))
            if np.all(np.isfinite(scores))
            else math.nan
        )
        curve = out.curves[:, i]
        v = ComboVerdict(
            activation=act,
            loss=loss,
            initial_loss=float(curve[0]),
            final_loss=zero_one if loss == "zero_one" else float(curve[-1]),
            final_training_loss=float(curve[-1]),
            accuracy=accuracy,
        )
        if ref_losses is not None and ref_after is not None:
            v.failures.extend(_step_failures(i, out, ref_losses, ref_after))
        if ref_curves is not None:
            v.failures.extend(
                curve_failures(v, curve, ref_curves.loss[:, i], ref_curves.kink[:, i])
            )
        v.failures.extend(training_failures(curve, accuracy))
        verdicts.append(v)
    return verdicts


def _step_failures(
    i: int, out: TrainOutput, ref_losses: Array, ref_after: dict[str, Array]
) -> list[dict[str, Any]]:
    rtol, atol = STEP_TOLERANCE
    checks = [("loss before the step", np.array([out.curves[0, i]]), np.array([ref_losses[i]]))]
    checks += [(f"{k} after the step", out.after_first[k][i], ref_after[k][i]) for k in PARAM_NAMES]
    for what, got, want in checks:
        passed, worst, _ = _close(got, want, rtol, atol)
        if not passed:
            return [{
                "check": "one step",
                "what": what,
                "value": _num(np.asarray(got).reshape(-1)[worst]),
                "expected": f"{float(np.asarray(want).reshape(-1)[worst]):.6g} (NumPy reference, rtol {rtol:g}, atol {atol:g})",
                "step": 0,
            }]  # fmt: skip
    return []


def train_grid(
    backend: Backend, device: str, seed: int, steps: int, injection: Injection, *, step_check: bool
) -> tuple[list[ComboVerdict], TrainOutput, dict[str, float]]:
    """Checks (2) and (3): train all 48 combinations as one stacked program, then rerun each
    failed combination alone to attribute the failure."""
    combos = combinations()
    plan = make_plan(combos)
    x, y = make_data(seed)
    init = init_params(seed, len(combos))
    lr = np.array([LEARNING_RATES[loss] for _, loss in combos])
    scale = np.array([math.nan if c in injection.nan_combos else 1.0 for c in combos])
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    trainer = backend.trainer(device, plan)
    times["build_s"] = time.perf_counter() - t0
    out = trainer.run(init, x, y, lr=lr, loss_scale=scale, steps=steps)
    times["kernel_ms"] = min(out.clock.kernel_ms, default=math.nan)
    times["best_ms_per_step"] = out.clock.best_ms
    times["step_per_kernel"] = out.clock.step_per_kernel
    times["train_s"] = out.warmup_s + out.loop_s
    times["warmup_s"] = out.warmup_s
    times["loop_s"] = out.loop_s
    ref_losses = ref_after = None
    t0 = time.perf_counter()
    if step_check:
        ref_losses, ref_after = reference_first_step(combos, init, x, y)
    ref_curves = ref.train_curves(combos, init, x, y, lr=lr, steps=steps)
    times["reference_s"] = time.perf_counter() - t0
    verdicts = _verdicts(plan, out, y, ref_losses, ref_after, ref_curves=ref_curves)
    ends = [steps if v.checked_to is None else v.checked_to for v in verdicts]
    times["band_ratio"] = max(
        curve_band.worst_ratio(out.curves[: end + 1, i], ref_curves.loss[: end + 1, i])
        for i, end in enumerate(ends)
    )
    t0 = time.perf_counter()
    for i, v in enumerate(verdicts):
        if not v.failures:
            continue
        single = make_plan([combos[i]])
        sub_init = {k: a[i : i + 1] for k, a in init.items()}
        sub = backend.trainer(device, single).run(
            sub_init, x, y, lr=lr[i : i + 1], loss_scale=scale[i : i + 1], steps=steps
        )
        sub_ref = None if ref_after is None else {k: a[i : i + 1] for k, a in ref_after.items()}
        sub_losses = None if ref_losses is None else ref_losses[i : i + 1]
        sub_curves = ref.Curves(ref_curves.loss[:, i : i + 1], ref_curves.kink[:, i : i + 1])
        alone = _verdicts(single, sub, y, sub_losses, sub_ref, ref_curves=sub_curves)[0]
        v.isolated = {
            "passed": not alone.failures,
            "final_loss": _num(alone.final_loss),
            "attribution": (
                "fails on its own too: the fault is in this combination"
                if alone.failures
                else "passes alone: the fault is in the stacked (batched) program"
            ),
        }
    times["rerun_s"] = time.perf_counter() - t0
    return verdicts, out, times


def _peak_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


#: The device whose injected ``poison`` fault left this process unusable (None: healthy).
_poisoned_by: list[str] = []


def run_device(
    backend: Backend, device: str, seed: int, steps: int, injection: Injection
) -> dict[str, Any]:
    """All checks on one device; never raises (an exception becomes an ``error`` result)."""
    norm = normalize_device(device)
    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    try:
        if _poisoned_by:
            raise RuntimeError(
                f"this process is unusable after the failure on {_poisoned_by[0]} (injected "
                f"sticky error, test hook {INJECT_ENV})"
            )
        if norm in injection.poison_devices:
            _poisoned_by.append(device)
            raise RuntimeError(f"injected sticky failure on {device} (test hook {INJECT_ENV})")
        if norm in injection.crash_devices:
            os._exit(3)
        if norm in injection.hang_devices:
            time.sleep(3600)
        if norm in injection.raise_devices:
            raise RuntimeError(f"injected failure on {device} (test hook {INJECT_ENV})")
        t0 = time.perf_counter()
        checks = function_checks(backend, device)
        phases["function_checks_s"] = time.perf_counter() - t0
        verdicts, out, times = train_grid(backend, device, seed, steps, injection, step_check=True)
        times.pop("band_ratio")  # not seconds: reported by calibration runs only
        kernel_ms = times.pop("kernel_ms")
        best_ms = times.pop("best_ms_per_step")
        ratio = times.pop("step_per_kernel")
        phases.update(times)
    except Exception as exc:  # a device that fails fails its own rows only
        return {
            "event": "device_result",
            "device": device,
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
            "phases": phases,
            "peak_rss_bytes": _peak_rss_bytes(),
        }
    phases["total_s"] = time.perf_counter() - t_start
    loop_steps = max(steps - 1, 1)
    return {
        "event": "device_result",
        "device": device,
        "status": "ok",
        "seed": seed,
        "steps": steps,
        "function_checks": checks,
        "combinations": [v.as_dict() for v in verdicts],
        "curves": [[_num(v) for v in out.curves[:, i]] for i in range(out.curves.shape[1])],
        "phases": phases,
        "ms_per_step": 1000.0 * out.loop_s / loop_steps,
        "best_ms_per_step": _finite_or_none(best_ms),
        "kernel_ms": _finite_or_none(kernel_ms),
        "step_per_kernel": _finite_or_none(ratio),
        "peak_rss_bytes": _peak_rss_bytes(),
        "peak_device_bytes": backend.peak_device_memory(device),
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def emit(event: dict[str, Any]) -> None:
    """Write one protocol line to stdout."""
    sys.stdout.write(LINE_PREFIX + json.dumps(event, allow_nan=False) + "\n")
    sys.stdout.flush()


def main(
    framework: str, load: Callable[[Injection], Backend], argv: Sequence[str] | None = None
) -> int:
    """The worker's entry point: import the framework, list devices, run the selected ones.

    Args:
        framework: ``torch`` or ``tensorflow``.
        load: imports the framework and returns its backend (ImportError: not installed).
        argv: command-line arguments (``sys.argv[1:]`` by default).
    """
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(description=f"dlsetup smoke worker ({framework})")
    parser.add_argument("--devices", default="", help="comma-separated devices (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--calibrate-seeds", type=int, default=0, help="train seeds 0..N-1 only")
    parser.add_argument(
        "--no-companions",
        action="store_true",
        help="skip the companion checks (torchvision, torchaudio) after each device",
    )
    parser.add_argument(
        "--one-device",
        action="store_true",
        help="run only the first selected device, then exit (the runner starts a fresh worker "
        "for each further device)",
    )
    args = parser.parse_args(argv)
    injection = parse_injection(os.environ.get(INJECT_ENV, ""), framework)
    try:
        backend = load(injection)
    except ImportError as exc:
        emit(
            {
                "event": "unavailable",
                "framework": framework,
                "reason": f"{type(exc).__name__}: {exc}",
            }
        )
        return 0
    import_s = time.perf_counter() - t0
    devices = backend.devices()
    wanted = [normalize_device(d) for d in args.devices.split(",") if d.strip()]
    selected = [d for d in devices if not wanted or normalize_device(d) in wanted]
    emit({
        "event": "hello",
        "framework": framework,
        "version": backend.version,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "devices": devices,
        "selected": selected,
        "import_s": import_s,
    })  # fmt: skip
    if args.calibrate_seeds:
        for device in selected:
            for seed in range(args.calibrate_seeds):
                verdicts, _, times = train_grid(
                    backend, device, seed, args.steps, injection, step_check=False
                )
                emit({
                    "event": "calibration", "device": device, "seed": seed,
                    "combinations": [v.as_dict() for v in verdicts],
                    "band_ratio": times["band_ratio"],
                })  # fmt: skip
        return 0
    for device in selected[:1] if args.one_device else selected:
        emit({"event": "device_start", "device": device})
        result = run_device(backend, device, args.seed, args.steps, injection)
        emit(result)
        if not args.no_companions and result["status"] == "ok":
            run_companions(backend, device, injection)
    return 0


def run_companions(backend: Backend, device: str, injection: Injection) -> None:
    """Check each companion of the backend's framework on ``device`` and emit the results.

    A backend with companions has ``companions`` (their names) and ``companion_check(name, device,
    broken_reference=...)`` returning the check's dict (:func:`companions.check_companion`).
    """
    check = getattr(backend, "companion_check", None)
    if check is None:
        return
    for name in getattr(backend, "companions", ()):
        emit({"event": "companion_start", "device": device, "companion": name})
        result = check(name, device, broken_reference=name in injection.broken_references)
        emit({"event": "companion_result", "device": device, "check": result})
