"""Checks (2)-(4) of the smoke, per trained combination: the first step against NumPy's, every
step's loss inside the float32 band around the NumPy reference's curve, and training itself (a
finite loss that falls, the accuracy reached).

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from dlsetup.smoke import curve_band
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke.worker_checks import close, close_mask, json_number
    from dlsetup.smoke.worker_grid import (
        LEARNING_RATES,
        PARAM_NAMES,
        Array,
        Plan,
        TrainOutput,
        model_params,
    )
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import curve_band
    import reference as ref
    from worker_checks import close, close_mask, json_number
    from worker_grid import LEARNING_RATES, PARAM_NAMES, Array, Plan, TrainOutput, model_params

#: Training passes when final loss <= LOSS_FALL_FACTOR * initial loss (or <= LOSS_FLOOR) ...
LOSS_FALL_FACTOR = 0.8
LOSS_FLOOR = 1e-3
#: ... and the training accuracy reaches this share.
ACCURACY_THRESHOLD = 0.9
#: (rtol, atol) of the one-step check (float32 framework step vs float64 NumPy step).
STEP_TOLERANCE = (1e-4, 1e-5)


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
            "initial_loss": json_number(self.initial_loss),
            "final_loss": json_number(self.final_loss),
            "final_training_loss": json_number(self.final_training_loss),
            "accuracy": self.accuracy,
            "failures": self.failures,
            "isolated_rerun": self.isolated,
            "every_step_checked_to": self.checked_to,
            "every_step_note": self.note,
        }


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


def training_failures(curve: Array, accuracy: float) -> list[dict[str, Any]]:
    """Check (4) for one model: finite loss, fall by LOSS_FALL_FACTOR, accuracy threshold."""
    out: list[dict[str, Any]] = []
    if not np.all(np.isfinite(curve)):
        step = int(np.argmax(~np.isfinite(curve)))
        out.append({
            "check": "training",
            "what": "loss stays finite",
            "value": json_number(curve[step]),
            "expected": f"a finite loss at every step (first non-finite at step {step})",
            "step": step,
        })  # fmt: skip
        return out
    first, last = float(curve[0]), float(curve[-1])
    if not (last <= LOSS_FALL_FACTOR * first or last <= LOSS_FLOOR):
        out.append({
            "check": "training",
            "what": "loss falls",
            "value": json_number(last),
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
    """Check (3) for one model: its loss curve inside the float32 band around the NumPy
    reference's curve from the same weights (:mod:`curve_band`), at every step; records on ``v``
    how far the curve was checked."""
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
        "value": json_number(got),
        "expected": f"{want:.6g} +- {allowed:.2g} (NumPy reference from the same weights, float32 band)",
        "step": step,
    }]  # fmt: skip


def param_failures(
    v: ComboVerdict, i: int, out: TrainOutput, ref_curves: ref.Curves,
    masks: dict[str, Array],
) -> list[dict[str, Any]]:  # fmt: skip
    """Check (3b) for model ``i``: every parameter element at each checkpoint inside the float32
    band around the NumPy reference's (:func:`curve_band.param_exit`), up to the step the loss
    curve was checked to."""
    marks = ref_curves.checkpoints
    last = v.checked_to if v.checked_to is not None else marks[-1]
    upto = sum(1 for s in marks if s <= last)
    if upto == 0:
        return []
    found = curve_band.param_exit(
        {k: out.params[k][:upto, i] for k in PARAM_NAMES},
        {k: np.asarray(ref_curves.params[k][:upto, i]) for k in PARAM_NAMES},
        marks[:upto],
        {k: masks[k][:upto, i] for k in PARAM_NAMES},
        ref_curves.kink[:, i],
    )
    if found is None:
        return []
    element = f"{found.name}[{', '.join(str(j) for j in found.index)}]"
    return [{
        "check": "parameters",
        "what": f"{element} after {found.step} updates (the first checkpoint outside the band)",
        "value": json_number(found.got),
        "expected": f"{found.want:.6g} +- {found.allowed:.2g} (NumPy reference from the same weights, float32 band)",
        "step": found.step,
    }]  # fmt: skip


def steps_close(
    out: TrainOutput, ref_losses: Array, ref_after: dict[str, Array]
) -> npt.NDArray[np.bool_]:
    """Which models pass check (2), all at once (:func:`step_failures` says why one fails)."""
    rtol, atol = STEP_TOLERANCE
    ok = close_mask(out.curves[0], ref_losses, rtol, atol)
    for k in PARAM_NAMES:
        near = close_mask(out.after_first[k], ref_after[k], rtol, atol)
        ok &= near.reshape(near.shape[0], -1).all(axis=1)
    return ok


def step_failures(
    i: int, out: TrainOutput, ref_losses: Array, ref_after: dict[str, Array]
) -> list[dict[str, Any]]:
    """Check (2) for model ``i``: the loss before the first step and the weights after it."""
    rtol, atol = STEP_TOLERANCE
    checks = [("loss before the step", np.array([out.curves[0, i]]), np.array([ref_losses[i]]))]
    checks += [(f"{k} after the step", out.after_first[k][i], ref_after[k][i]) for k in PARAM_NAMES]
    for what, got, want in checks:
        passed, worst, _ = close(got, want, rtol, atol)
        if not passed:
            return [{
                "check": "one step",
                "what": what,
                "value": json_number(np.asarray(got).reshape(-1)[worst]),
                "expected": f"{float(np.asarray(want).reshape(-1)[worst]):.6g} (NumPy reference, rtol {rtol:g}, atol {atol:g})",
                "step": 0,
            }]  # fmt: skip
    return []


def verdicts(
    plan: Plan, out: TrainOutput, y: Array, ref_losses: Array | None, ref_after: dict[str, Array] | None,
    *, ref_curves: ref.Curves | None = None,
) -> list[ComboVerdict]:  # fmt: skip
    """The verdict of every model of ``plan`` after a training run ``out``."""
    found: list[ComboVerdict] = []
    step_ok = (
        steps_close(out, ref_losses, ref_after)
        if ref_losses is not None and ref_after is not None
        else None
    )
    masks = (
        curve_band.unit_masks(
            {k: np.asarray(ref_curves.params[k]) for k in PARAM_NAMES},
            ref_curves.checkpoints,
            ref_curves.unit_parted,
        )
        if ref_curves is not None and ref_curves.checkpoints and out.params
        else None
    )
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
        if step_ok is not None and not step_ok[i]:  # why: the first quantity outside
            assert ref_losses is not None and ref_after is not None
            v.failures.extend(step_failures(i, out, ref_losses, ref_after))
        if ref_curves is not None:
            v.failures.extend(
                curve_failures(v, curve, ref_curves.loss[:, i], ref_curves.kink[:, i])
            )
            if masks is not None:
                v.failures.extend(param_failures(v, i, out, ref_curves, masks))
        v.failures.extend(training_failures(curve, accuracy))
        found.append(v)
    return found
