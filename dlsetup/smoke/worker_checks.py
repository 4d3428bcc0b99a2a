"""Check (1) of the smoke: every activation and loss, value and gradient, at fixed points, against
the NumPy reference; and the comparison helpers the other checks share.

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke.worker_grid import Array, Backend
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference as ref
    from worker_grid import Array, Backend

#: (rtol, atol) of the function checks per dtype.
FUNCTION_TOLERANCE: dict[str, tuple[float, float]] = {
    "float32": (1e-5, 1e-6),
    "float64": (1e-7, 1e-12),  # TF's leaky_relu keeps its slope as a 32-bit attribute
}
#: Fixed points of the activation checks: 0, tiny, moderate, large and saturating inputs.
ACTIVATION_POINTS: tuple[float, ...] = (
    -100.0, -50.0, -20.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 5.0, 20.0, 50.0, 100.0,
)  # fmt: skip
#: PReLU alphas checked.
PRELU_ALPHAS: tuple[float, ...] = (0.25, -0.5)
#: Fixed scores of the loss checks (each with y = -1 and y = +1): kinks at y f = 0 and 1 included.
LOSS_POINTS: tuple[float, ...] = (-20.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 20.0)


def json_number(value: Any) -> float | str:
    """A float for JSON; NaN and infinities spelled as strings so they survive."""
    v = float(value)
    return v if math.isfinite(v) else str(v)


def close_mask(got: Array, want: Array, rtol: float, atol: float) -> npt.NDArray[np.bool_]:
    """Which points of ``got`` are close to ``want`` (elementwise; NaN vs finite is not close,
    infinities of the same sign are)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    ok = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
    both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
    mask: npt.NDArray[np.bool_] = ok | both_inf
    return mask


def close(got: Array, want: Array, rtol: float, atol: float) -> tuple[bool, int, float]:
    """(all close, index of the worst point, its absolute error); NaN vs finite is not close."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    ok = close_mask(got, want, rtol, atol)
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
    passed, worst, err = close(got, want, rtol, atol)
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
        at: dict[str, Any] = {
            "x" if kind == "activation" else "f": json_number(points.reshape(-1)[worst])
        }
        if labels is not None:
            at["y"] = json_number(labels.reshape(-1)[worst])
        if alpha is not None:
            at["alpha"] = alpha
        check["failure"] = {
            "at": at,
            "got": json_number(np.asarray(got).reshape(-1)[worst]),
            "expected": json_number(np.asarray(want).reshape(-1)[worst]),
        }
    return check


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
