"""Test-only faults patched into the REAL frameworks inside the smoke workers.

Put this directory on ``PYTHONPATH`` and set ``DLSETUP_TEST_FAULTS``; Python imports this module
at start-up (``sitecustomize``), and it patches ``torch`` or ``tensorflow`` the moment the worker
imports it. No production module knows about these faults. Comma-separated, each
``FRAMEWORK:NAME=VALUE``:

* ``torch:lr-scale-after=STEP:FACTOR``: every weight update from step STEP on (0-based) is
  multiplied by FACTOR (the learning rate changed after the first steps);
* ``torch:matmul-scale-after=CALLS:FACTOR``: ``torch.matmul`` returns FACTOR times its result
  after its first CALLS calls (a kernel that goes wrong after warm-up);
* ``torch:nan-at-step=STEP:ACT/LOSS``: in the stacked 48-model program, that combination's
  pre-activations are NaN at step STEP (the program alone, M = 1, is untouched);
* ``torch:op-scale=OP:PASS:FACTOR``: ``torch.OP`` (``tanh``, ``sigmoid``, ``exp``) multiplies its
  forward value or its backward gradient (PASS ``forward`` or ``backward``) by FACTOR, only on the
  stacked training's 3-D tensors (a vectorised path that goes slightly wrong: the function checks'
  1-D points never see it), a drift too small for the loss band;
* ``torch:corrupt-weight=STEP:ACT/LOSS:FACTOR``: in the stacked program, one element of that
  combination's ``w1`` (``w1[1, 5]``) is multiplied by FACTOR after update STEP (a flipped bit in
  one parameter);
* ``torch:exp-large=FACTOR`` (or ``tensorflow:``): ``exp`` is FACTOR times off for arguments
  between 2.5 and 15 only (a bad polynomial on one range of a vectorised ``exp``);
* ``torch:sum-long=N``: ``torch.sum`` of more than N elements is off by 2^-20 (a float32
  reduction that goes wrong only past some length);
* ``torch:mm-threads=FACTOR``: ``torch.mm`` is FACTOR times off when it runs on more than one
  thread (a fault in one core's path, or in the split of the work);
* ``torch:mm-dtype=DTYPE:FACTOR``: ``torch.mm`` is FACTOR times off in DTYPE only (``float64``:
  a broken double-precision GEMM);
* ``tensorflow:leaky-slope=S`` (or ``torch:``): LeakyReLU's slope is S, whatever is asked;
* ``torch:slow=2``: every training step takes twice as long (each gradient call is followed by a
  sleep as long as the step so far took);
* ``tensorflow:slow=2``: each call of a ``tf.function`` first runs once more with a learning
  rate of zero (same work, weights unchanged), so training takes twice as long;
* ``FRAMEWORK:slow=F`` for another factor F (1.3): each training step (PyTorch: each gradient
  call's step; TensorFlow: each call of the training loop) is followed by a busy wait of F - 1
  times its time as the gate reads it on a CPU device (the smaller of wall and CPU seconds,
  ``worker_clock.timing_clock``), so training does F times the work;
* ``FRAMEWORK:slow-mm=F``: every 2-D matmul (``torch.mm``, ``tf.linalg.matmul``; the grid uses
  neither) is followed by a busy wait of F - 1 times its time, read the same way (a GEMM F times
  slower).

Faults of the worker itself, patched into the backend the worker's ``load`` returns (prefix
``torch:``, ``tensorflow:`` or ``*:`` for both):

* ``wrong-activation=NAME``: the backend's activation NAME returns 1.5 times the right value;
* ``nan=ACT/LOSS``: that combination starts from NaN weights, so its loss is NaN from the first
  step on (in the stacked program and alone);
* ``raise=DEVICE``: running on DEVICE raises a RuntimeError;
* ``hang=DEVICE``: running on DEVICE sleeps for an hour (to exercise the runner's timeout);
* ``crash=DEVICE``: running on DEVICE ends the process with exit status 3 (no result line);
* ``poison=DEVICE``: running on DEVICE raises and leaves the process unusable, so every later
  device in the same process raises too (like a sticky CUDA error);
* ``broken-reference=COMPANION``: the NumPy reference of that companion's check (``torchvision``,
  ``torchaudio``) is spoiled, so a correct result fails;
* ``cpu-devices=N`` (TensorFlow): the host CPU is split into N logical devices ``CPU:0`` ..
  ``CPU:N-1`` (a real TensorFlow feature), so a CPU-only machine has several devices.

The device faults act when the worker asks the backend for the device's dtypes, the first thing
a device's run does (inside its error handling, as a real device failure would be).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Callable
from typing import Any

ENV = "DLSETUP_TEST_FAULTS"


def _items(framework: str) -> list[tuple[str, str]]:
    """(name, value) of each fault for ``framework`` (``*:`` faults apply to every framework)."""
    out = []
    for item in filter(None, (p.strip() for p in os.environ.get(ENV, "").split(","))):
        fw, _, rest = item.partition(":")
        name, _, value = rest.partition("=")
        if fw in (framework, "*"):
            out.append((name, value))
    return out


def _faults(framework: str) -> dict[str, str]:
    return dict(_items(framework))


def _normalize_device(name: str) -> str:
    low = name.strip().lower()
    if low in ("cpu", "cpu:0"):
        return "cpu"
    if low.startswith("cuda"):
        low = "gpu" + low[4:]
    return "gpu:0" if low == "gpu" else low


def _patch_torch(torch: Any) -> None:
    faults = _faults("torch")
    if "lr-scale-after" in faults or "corrupt-weight" in faults:
        _patch_updates(torch, faults)
    if "op-scale" in faults:
        _scale_op(torch, *faults["op-scale"].split(":"))
    _kernel_faults(torch, faults)
    original_matmul = torch.matmul
    calls = {"n": 0, "forward": -1}

    def matmul(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        out = original_matmul(a, b, *args, **kwargs)
        calls["n"] += 1
        if "matmul-scale-after" in faults:
            after, factor = faults["matmul-scale-after"].split(":")
            if calls["n"] > int(after):
                out = out * float(factor)
        if "nan-at-step" in faults and b.dim() == 3 and b.shape[1] == 2 and b.shape[0] > 1:
            calls["forward"] += 1
            step, combo = faults["nan-at-step"].split(":")
            if calls["forward"] == int(step):
                reference = sys.modules["reference"]  # the worker's sibling module
                i = reference.combination_index(*combo.split("/"))
                out = out.clone()
                out[i] = float("nan")
        return out

    if "matmul-scale-after" in faults or "nan-at-step" in faults:
        torch.matmul = matmul
    if "leaky-slope" in faults:
        original_leaky = torch.nn.functional.leaky_relu
        slope = float(faults["leaky-slope"])

        def leaky_relu(x: Any, negative_slope: float = 0.01, inplace: bool = False) -> Any:
            return original_leaky(x, slope, inplace)

        torch.nn.functional.leaky_relu = leaky_relu
    if "slow" in faults:
        original_grad = torch.autograd.grad
        last: dict[str, tuple[float, float] | None] = {"end": None}
        extra = float(faults["slow"]) - 1.0

        def grad(*args: Any, **kwargs: Any) -> Any:
            start = _now()
            out = original_grad(*args, **kwargs)
            end = _now()
            if last["end"] is not None and start[0] - last["end"][0] < 1.0:
                _busy(extra * _seconds(last["end"], end))  # the step took end - last end
            last["end"] = _now()
            return out

        torch.autograd.grad = grad
    if "slow-mm" in faults:
        torch.mm = _slowed(torch.mm, float(faults["slow-mm"]))


def _now() -> tuple[float, float]:
    return (time.perf_counter(), time.process_time())


def _seconds(start: tuple[float, float], end: tuple[float, float]) -> float:
    """What the gate reads on a CPU device: the smaller of the wall and CPU seconds."""
    return min(end[0] - start[0], end[1] - start[1])


def _busy(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time (a sleep would spend none of the CPU time the
    gate reads): F - 1 times more work, whatever the load and whatever other threads do."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _slowed(original: Any, factor: float) -> Any:
    """``original`` made ``factor`` times slower (a busy wait after each call)."""

    def slow(*args: Any, **kwargs: Any) -> Any:
        start = _now()
        out = original(*args, **kwargs)
        _busy((factor - 1.0) * _seconds(start, _now()))
        return out

    return slow


def _patch_updates(torch: Any, faults: dict[str, str]) -> None:
    """Faults in the weight updates: ``lr-scale-after`` and ``corrupt-weight``."""
    start, factor = faults.get("lr-scale-after", "1000000000:1").split(":")
    at, combo, corrupt = faults.get("corrupt-weight", "-1:relu/square:1").split(":")
    original_sub = torch.Tensor.sub_
    state = {"step": -1}

    def sub_(self: Any, other: Any, *args: Any, **kwargs: Any) -> Any:
        if self.dim() == 3:  # w1 (M, 2, H): its update opens each step's updates
            state["step"] += 1
        if state["step"] >= int(start):
            other = other * float(factor)
        out = original_sub(self, other, *args, **kwargs)
        if self.dim() == 3 and self.shape[0] > 1 and state["step"] + 1 == int(at):
            i = sys.modules["reference"].combination_index(*combo.split("/"))
            self[i, 1, 5] *= float(corrupt)
        return out

    torch.Tensor.sub_ = sub_


def _kernel_faults(torch: Any, faults: dict[str, str]) -> None:
    """Faults only the kernel tier's shapes, ranges, threads or dtypes reach."""
    if "exp-large" in faults:
        original_exp = torch.exp
        factor = float(faults["exp-large"])

        def exp(x: Any, *args: Any, **kwargs: Any) -> Any:
            out = original_exp(x, *args, **kwargs)
            return torch.where((x > 2.5) & (x < 15.0), out * factor, out)

        torch.exp = exp
    if "sum-long" in faults:
        original_sum = torch.sum
        longest = int(faults["sum-long"])

        def sum_(x: Any, *args: Any, **kwargs: Any) -> Any:
            out = original_sum(x, *args, **kwargs)
            return out * (1.0 + 2.0**-20) if x.numel() > longest else out

        torch.sum = sum_
    if "mm-threads" in faults or "mm-dtype" in faults:
        original_mm = torch.mm
        threaded = float(faults.get("mm-threads", "1"))
        dtype, _, typed = faults.get("mm-dtype", "none:1").partition(":")

        def mm(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
            out = original_mm(a, b, *args, **kwargs)
            if torch.get_num_threads() > 1:
                out = out * threaded
            if str(out.dtype) == f"torch.{dtype}":
                out = out * float(typed)
            return out

        torch.mm = mm


def _scale_op(torch: Any, op: str, which: str, factor: str) -> None:
    """``op-scale``: ``torch.OP`` off by FACTOR in one pass, on 3-D tensors only."""
    original = getattr(torch, op)
    f_fwd = float(factor) if which == "forward" else 1.0
    f_bwd = float(factor) if which == "backward" else 1.0

    class Scaled(torch.autograd.Function):  # type: ignore[misc]
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(x)
            return original(x) * f_fwd

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            with torch.enable_grad():
                leaf = x.detach().requires_grad_(True)
                (dx,) = torch.autograd.grad(original(leaf), leaf, grad)
            return dx * f_bwd

    def scaled(x: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or x.dim() != 3:
            return original(x, *args, **kwargs)
        return Scaled.apply(x)

    setattr(torch, op, scaled)


def _patch_tensorflow(tf: Any) -> None:
    faults = _faults("tensorflow")
    if "exp-large" in faults:
        original_exp = tf.math.exp
        factor = float(faults["exp-large"])

        def exp(x: Any, name: Any = None) -> Any:
            out = original_exp(x, name=name)
            return tf.where((x > 2.5) & (x < 15.0), out * factor, out)

        tf.math.exp = tf.exp = exp
    if "leaky-slope" in faults:
        original_leaky = tf.nn.leaky_relu
        slope = float(faults["leaky-slope"])

        def leaky_relu(features: Any, alpha: float = 0.2, name: Any = None) -> Any:
            return original_leaky(features, alpha=slope, name=name)

        tf.nn.leaky_relu = leaky_relu
    if "slow" in faults:
        original_function = tf.function
        factor = float(faults["slow"])

        def function(fn: Any = None, *args: Any, **kwargs: Any) -> Any:
            traced = original_function(fn, *args, **kwargs)

            def slower(*call: Any) -> Any:
                if len(call) != 4:
                    return traced(*call)
                if factor == 2.0:  # the trainer's loop(x, y, lr, n): same work, lr 0
                    traced(*call[:2], tf.zeros_like(call[2]), call[3])
                    return traced(*call)
                start = _now()
                out = traced(*call)
                _busy((factor - 1.0) * _seconds(start, _now()))
                return out

            return slower

        tf.function = function
    if "slow-mm" in faults:
        tf.linalg.matmul = _slowed(tf.linalg.matmul, float(faults["slow-mm"]))


WORKER_FAULTS = (
    "wrong-activation", "nan", "raise", "hang", "crash", "poison", "broken-reference", "cpu-devices",
)  # fmt: skip


def _patch_backend(framework: str, backend: Any) -> None:
    """Apply the worker faults for ``framework`` to the backend its worker's ``load`` returned."""
    items = _items(framework)
    unknown = [n for n, _ in items if n not in WORKER_FAULTS and n not in _FRAMEWORK_FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r} in {ENV}")
    by_kind: dict[str, set[str]] = {}
    for name, value in items:
        by_kind.setdefault(name, set()).add(value)
    for name in by_kind.get("wrong-activation", ()):
        right = backend.acts[name]
        backend.acts[name] = lambda z, a, right=right: right(z, a) * 1.5
    nan = {tuple(v.split("/")) for v in by_kind.get("nan", ())}
    if nan:
        _nan_weights(backend, nan)
    devices = {
        kind: {_normalize_device(v) for v in by_kind.get(kind, ())}
        for kind in ("raise", "hang", "crash", "poison")
    }
    if any(devices.values()):
        _device_faults(backend, devices)
    for companion in by_kind.get("broken-reference", ()):
        _break_reference(companion)
    for count in by_kind.get("cpu-devices", ()):
        tf = backend.tf
        host = tf.config.list_physical_devices("CPU")[0]
        config = [tf.config.LogicalDeviceConfiguration() for _ in range(int(count))]
        tf.config.set_logical_device_configuration(host, config)


def _nan_weights(backend: Any, combos: set[tuple[str, ...]]) -> None:
    original_trainer = backend.trainer

    def trainer(device: str, plan: Any) -> Any:
        inner = original_trainer(device, plan)
        bad = [i for i, combo in enumerate(plan.combos) if combo in combos]
        if not bad:
            return inner
        original_run = inner.run

        def run(init: Any, *args: Any, **kwargs: Any) -> Any:
            spoiled = {k: v.copy() for k, v in init.items()}
            for i in bad:
                spoiled["w1"][i] = float("nan")
            return original_run(spoiled, *args, **kwargs)

        inner.run = run
        return inner

    backend.trainer = trainer


def _device_faults(backend: Any, devices: dict[str, set[str]]) -> None:
    original_dtypes = backend.dtypes
    poisoned: list[str] = []

    def dtypes(device: str) -> Any:
        norm = _normalize_device(device)
        if poisoned:
            raise RuntimeError(
                f"this process is unusable after the failure on {poisoned[0]} (test fault poison)"
            )
        if norm in devices["poison"]:
            poisoned.append(device)
            raise RuntimeError(f"injected sticky failure on {device} (test fault poison)")
        if norm in devices["crash"]:
            os._exit(3)
        if norm in devices["hang"]:
            time.sleep(3600)
        if norm in devices["raise"]:
            raise RuntimeError(f"injected failure on {device} (test fault raise)")
        return original_dtypes(device)

    backend.dtypes = dtypes


def _break_reference(companion: str) -> None:
    module: Any = sys.modules["companions"]  # the torch worker's sibling module
    if companion == "torchvision":
        right_nms = module.nms_reference
        module.nms_reference = lambda *a, **k: right_nms(*a, **k)[:-1]
    elif companion == "torchaudio":
        right_spec = module.spectrogram_reference
        module.spectrogram_reference = lambda *a, **k: right_spec(*a, **k) * 1.5
    else:
        raise ValueError(f"unknown companion {companion!r} in {ENV}")


def _patch_worker(protocol: Any) -> None:
    """Wrap the worker's entry point so the faults reach the backend its ``load`` returns."""
    original_main = protocol.main

    def main(framework: str, load: Any, *args: Any, **kwargs: Any) -> Any:
        def faulty_load() -> Any:
            backend = load()
            _patch_backend(framework, backend)
            return backend

        return original_main(framework, faulty_load, *args, **kwargs)

    protocol.main = main


_FRAMEWORK_FAULTS = (
    "lr-scale-after", "matmul-scale-after", "nan-at-step", "leaky-slope", "slow", "op-scale",
    "corrupt-weight", "exp-large", "sum-long", "mm-threads", "mm-dtype", "slow-mm",
)  # fmt: skip
PATCHES = {"torch": _patch_torch, "tensorflow": _patch_tensorflow}
#: The worker's entry-point module (a sibling of the worker scripts, imported by that name).
WORKER_MODULE = "worker_protocol"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patch a framework right after its top-level module has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch: Callable[[Any], None]
        if name == WORKER_MODULE:
            patch = _patch_worker
        elif name in PATCHES and _faults(name):
            patch = PATCHES[name]
        else:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get(ENV):
    sys.meta_path.insert(0, _AfterImport())
