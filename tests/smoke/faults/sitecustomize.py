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
* ``tensorflow:leaky-slope=S`` (or ``torch:``): LeakyReLU's slope is S, whatever is asked;
* ``torch:slow=2``: every training step takes twice as long (each gradient call is followed by a
  sleep as long as the step so far took);
* ``tensorflow:slow=2``: each call of a ``tf.function`` first runs once more with a learning
  rate of zero (same work, weights unchanged), so training takes twice as long.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from typing import Any

ENV = "DLSETUP_TEST_FAULTS"


def _faults(framework: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in os.environ.get(ENV, "").split(","))):
        fw, _, rest = item.partition(":")
        name, _, value = rest.partition("=")
        if fw == framework:
            out[name] = value
    return out


def _patch_torch(torch: Any) -> None:
    faults = _faults("torch")
    if "lr-scale-after" in faults:
        start, factor = faults["lr-scale-after"].split(":")
        original_sub = torch.Tensor.sub_
        state = {"step": -1}

        def sub_(self: Any, other: Any, *args: Any, **kwargs: Any) -> Any:
            if self.dim() == 3:  # w1 (M, 2, H): its update opens each step's updates
                state["step"] += 1
            if state["step"] >= int(start):
                other = other * float(factor)
            return original_sub(self, other, *args, **kwargs)

        torch.Tensor.sub_ = sub_
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
    if faults.get("slow") == "2":
        original_grad = torch.autograd.grad
        last = {"end": None}

        def grad(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = original_grad(*args, **kwargs)
            end = time.perf_counter()
            if last["end"] is not None and start - last["end"] < 1.0:
                time.sleep(end - last["end"])  # the step took end - last end: take it again
            last["end"] = time.perf_counter()
            return out

        torch.autograd.grad = grad


def _patch_tensorflow(tf: Any) -> None:
    faults = _faults("tensorflow")
    if "leaky-slope" in faults:
        original_leaky = tf.nn.leaky_relu
        slope = float(faults["leaky-slope"])

        def leaky_relu(features: Any, alpha: float = 0.2, name: Any = None) -> Any:
            return original_leaky(features, alpha=slope, name=name)

        tf.nn.leaky_relu = leaky_relu
    if faults.get("slow") == "2":
        original_function = tf.function

        def function(fn: Any = None, *args: Any, **kwargs: Any) -> Any:
            traced = original_function(fn, *args, **kwargs)

            def twice(*call: Any) -> Any:
                if len(call) == 5:  # the trainer's loop(x, y, scale, lr, n): same work, lr 0
                    traced(*call[:3], tf.zeros_like(call[3]), call[4])
                return traced(*call)

            return twice

        tf.function = function


PATCHES = {"torch": _patch_torch, "tensorflow": _patch_tensorflow}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patch a framework right after its top-level module has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in PATCHES or not _faults(name):
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
            PATCHES[name](module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if os.environ.get(ENV):
    sys.meta_path.insert(0, _AfterImport())
