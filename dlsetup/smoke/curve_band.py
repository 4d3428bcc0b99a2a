"""The every-step check: how far a framework's loss curve may stray from the NumPy reference.

Runs INSIDE the target interpreter (standard library and NumPy only; the workers load it by path)
and in dlsetup itself (the cross-framework agreement check reads the same band).

A framework trains in float32; the reference (:func:`reference.train_curves`) runs the same steps
from the same weights in float64. Rounding makes the float32 curve drift from the float64 one by a
few units of float32's roundoff ``u = 2^-24`` per step, so the band at step ``t`` is::

    BAND_FACTOR * u * (BAND_OFFSET + t) * max(1, |reference loss at t|)

``BAND_OFFSET`` covers the first forward pass (sums of 64 terms, ``exp`` and ``log``), the linear
growth the drift of gradient descent. Calibration (``tests/smoke/test_calibration.py``; seeds
0-119 with PyTorch, 0-19 with TensorFlow, CPU): the largest drift was 0.92 of
``u * (4 + t) * max(1, |L|)`` (leaky_relu / absolute, where a sample sits on the loss's kink), so
``BAND_FACTOR`` 16 leaves a margin of 17x. What the band catches: a learning rate halved from
step 1 on strays by 0.1-0.6, a matmul 1% off from step 50 on by 1e-3-1e-2, a LeakyReLU slope of
0.21 instead of 0.2 by 1e-3 within 20 steps; the band at step 200 is 2e-4 (loss 1).

One thing rounding does that no band covers: a sample whose margin sits on a piecewise-linear
loss's kink (|y - f| at f = y, the hinge at y f = 1, the perceptron at y f = 0) within rounding
distance gets one subgradient in float32 and the other in float64, and from there on the two
trajectories part; the absolute loss, whose gradient never shrinks, keeps its samples bouncing
across the kink, and over seeds 0-119 this happened twice, late in training (deviation 5e-3 in
one step). :func:`verdict` therefore stops checking a curve that leaves the band the step after
the reference had a sample within :func:`kink_slack` of its loss's kink, and says so: the
curve was checked up to that step. A fault that makes a curve leave the band anywhere else
still fails.

TF32 and bfloat16 would need their own roundoff (:data:`UNIT_ROUNDOFF`); the workers switch TF32
off for the checked training instead (PyTorch: ``torch.set_float32_matmul_precision("highest")``;
TensorFlow: ``enable_tensor_float_32_execution(False)``), so every device is held to float32's band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: Unit roundoff of the precisions a device may train in.
UNIT_ROUNDOFF: dict[str, float] = {"float32": 2.0**-24, "tf32": 2.0**-11, "bfloat16": 2.0**-8}
#: Multiple of the calibrated drift allowed (the largest drift seen is 0.92 of one unit).
BAND_FACTOR = 16.0
#: Steps' worth of drift allowed before the first step (the first forward pass's rounding).
BAND_OFFSET = 4.0


def band(reference: Array, precision: str = "float32") -> Array:
    """The allowed |framework - reference| at each step of reference curve(s) ``reference``.

    Args:
        reference: the reference losses, shape (steps + 1,) or (steps + 1, M).
        precision: a key of :data:`UNIT_ROUNDOFF`.
    """
    ref = np.asarray(reference, dtype=np.float64)
    t = np.arange(ref.shape[0], dtype=np.float64).reshape((-1,) + (1,) * (ref.ndim - 1))
    scale = np.maximum(1.0, np.abs(np.nan_to_num(ref, nan=1.0, posinf=1.0, neginf=1.0)))
    return BAND_FACTOR * UNIT_ROUNDOFF[precision] * (BAND_OFFSET + t) * scale


def first_exit(
    curve: Array, reference: Array, precision: str = "float32"
) -> tuple[int, float, float, float] | None:
    """The first step where ``curve`` leaves the band around ``reference`` (a NaN always does).

    Returns:
        None when the whole curve stays inside; else (step, curve value, reference value,
        allowed absolute deviation at that step).
    """
    got = np.asarray(curve, dtype=np.float64)
    want = np.asarray(reference, dtype=np.float64)
    allowed = band(want, precision)
    with np.errstate(invalid="ignore"):
        outside = ~(np.abs(got - want) <= allowed)
    if not outside.any():
        return None
    step = int(np.argmax(outside))
    return step, float(got[step]), float(want[step]), float(allowed[step])


def worst_ratio(curve: Array, reference: Array, precision: str = "float32") -> float:
    """The largest |curve - reference| / band over the steps (1.0 is the edge; inf: non-finite)."""
    got = np.asarray(curve, dtype=np.float64)
    want = np.asarray(reference, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ratio = np.abs(got - want) / band(want, precision)
    return float(np.max(np.nan_to_num(ratio, nan=math.inf)))


def kink_slack(step: int, precision: str = "float32") -> float:
    """How close to a loss's kink a margin ``y f`` may be at ``step`` for float32 and float64 to
    take different sides (the band's drift, for scores up to 2 in size)."""
    return BAND_FACTOR * UNIT_ROUNDOFF[precision] * (BAND_OFFSET + step) * 2.0


@dataclass(frozen=True)
class Verdict:
    """The every-step check of one curve.

    Attributes:
        passed: the curve stayed in the band at every step it was checked.
        checked_to: the last step checked (the curve's last step unless it parted at a kink).
        exit: (step, curve value, reference value, allowed deviation) of the first step outside
            the band, when it failed; None otherwise.
        parted_at_kink: the step whose kink let the trajectories part (checking stopped there);
            None otherwise.
    """

    passed: bool
    checked_to: int
    exit: tuple[int, float, float, float] | None = None
    parted_at_kink: int | None = None


def verdict(curve: Array, reference: Array, kink: Array, precision: str = "float32") -> Verdict:
    """Check ``curve`` against ``reference`` at every step, excusing a parting at a kink.

    Args:
        curve: the framework's losses, (steps + 1,).
        reference: the reference's losses from the same weights, (steps + 1,).
        kink: the reference's distance to the loss's kink at each step
            (:attr:`reference.Curves.kink`).
    """
    last = int(np.asarray(curve).shape[0]) - 1
    exit_ = first_exit(curve, reference, precision)
    if exit_ is None:
        return Verdict(True, last)
    step = exit_[0]
    before = step - 1
    if (
        before >= 0
        and math.isfinite(exit_[1])
        and float(kink[before]) <= kink_slack(before, precision)
    ):
        return Verdict(True, before, parted_at_kink=before)
    return Verdict(False, last, exit=exit_)


#: Multiple of the calibrated parameter drift allowed (see :func:`param_band`).
PARAM_FACTOR = 16.0


def param_band(reference: Array, step: int, precision: str = "float32") -> Array:
    """The allowed |framework - reference| of each parameter element after ``step`` updates.

    Each update ``p - lr * g`` rounds ``p`` (relative to its size) and carries the rounding of
    ``g``'s sums into ``p``; both add up about linearly with the steps, so the band is the loss
    band's shape applied elementwise: ``PARAM_FACTOR * u * (BAND_OFFSET + step) * max(1, |p|)``
    (relative where a value is larger than 1, absolute below).
    """
    ref = np.asarray(reference, dtype=np.float64)
    scale = np.maximum(1.0, np.abs(np.nan_to_num(ref, nan=1.0, posinf=1.0, neginf=1.0)))
    return PARAM_FACTOR * UNIT_ROUNDOFF[precision] * (BAND_OFFSET + step) * scale


def unit_masks(
    want: dict[str, Array], checkpoints: tuple[int, ...], unit_parted: Any
) -> dict[str, Array]:
    """Which elements (1.0) are held to the band at each checkpoint (C, M, ...): all but the
    ``w1`` and ``b1`` of a hidden unit after the step it parted at an activation's kink, and
    PReLU's slope after any of its units did (:attr:`reference.Curves.unit_parted`)."""
    marks = np.asarray(checkpoints)[:, None, None]
    if unit_parted is None:
        return {k: np.ones_like(np.asarray(v)) for k, v in want.items()}
    kept = (marks <= np.asarray(unit_parted)[None, :, :]).astype(np.float64)  # (C, M, H)
    masks = {k: np.ones_like(np.asarray(v)) for k, v in want.items()}
    masks["w1"] = np.broadcast_to(kept[:, :, None, :], np.asarray(want["w1"]).shape).copy()
    masks["b1"] = kept
    masks["alpha"] = kept.min(axis=2)
    return masks


def param_ratios(
    got: dict[str, Array], want: dict[str, Array], checkpoints: tuple[int, ...],
    unit_parted: Any = None,
) -> Array:  # fmt: skip
    """The largest |framework - reference| / band over every parameter element held to the band
    (:func:`unit_masks`), per checkpoint and model, (C, M); a NaN counts as infinite. Inputs:
    each parameter (C, M, ...)."""
    masks = unit_masks(want, checkpoints, unit_parted)
    worst: Array | None = None
    for name, values in want.items():
        ratio = _element_ratios(got[name], values, checkpoints) * masks[name]
        ratio = ratio.reshape(ratio.shape[0], ratio.shape[1], -1).max(axis=2)
        worst = ratio if worst is None else np.maximum(worst, ratio)
    assert worst is not None
    return worst


def _element_ratios(got: Array, want: Array, checkpoints: tuple[int, ...]) -> Array:
    """|got - want| / band per element, a NaN as infinite; both (C, ...)."""
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    allowed = np.stack([param_band(w[c], s) for c, s in enumerate(checkpoints)])
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.abs(g - w) / allowed, nan=math.inf, posinf=math.inf)


@dataclass(frozen=True)
class ParamExit:
    """The first parameter element outside its band: after ``step`` updates, ``name[index]``
    was ``got`` where the reference had ``want`` (allowed deviation ``allowed``)."""

    step: int
    name: str
    index: tuple[int, ...]
    got: float
    want: float
    allowed: float


def param_exit(
    got: dict[str, Array], want: dict[str, Array], checkpoints: tuple[int, ...],
    masks: dict[str, Array], kink: Array,
) -> ParamExit | None:  # fmt: skip
    """The first checkpoint where one model's parameters leave the band, and the worst element
    there; None when none does, or when that checkpoint follows a step whose sample sat on the
    loss's kink within rounding (the trajectories may part there, as for the loss curve).

    Args:
        got, want: the model's parameters, each (C, ...).
        masks: the model's :func:`unit_masks`, each (C, ...).
        kink: the reference's distance to the loss's kink at each step, (steps + 1,).
    """
    ratios = {k: _element_ratios(got[k], w, checkpoints) * masks[k] for k, w in want.items()}
    per_mark = np.max(
        [r.reshape(r.shape[0], -1).max(axis=1, initial=0.0) for r in ratios.values()], axis=0
    )
    outside = ~(per_mark <= 1.0)
    if not outside.any():
        return None
    c = int(np.argmax(outside))
    step = checkpoints[c]
    if step > parting_step(kink):
        return None
    name = max(ratios, key=lambda k: float(ratios[k][c].max(initial=0.0)))
    flat = int(np.argmax(ratios[name][c]))
    shape = np.asarray(want[name][c]).shape
    index = tuple(int(j) for j in np.unravel_index(flat, shape)) if shape else ()
    g = float(np.asarray(got[name][c]).reshape(-1)[flat])
    w0 = float(np.asarray(want[name][c]).reshape(-1)[flat])
    return ParamExit(step, name, index, g, w0, float(param_band(np.array(w0), step)))


def parting_step(kink: Array) -> int:
    """The first step whose update float32 and float64 may take on different sides of the loss's
    kink (:func:`kink_slack`); the curve's length when none."""
    k = np.asarray(kink, dtype=np.float64)
    steps = np.arange(k.shape[0], dtype=np.float64)
    near = np.flatnonzero(k <= BAND_FACTOR * UNIT_ROUNDOFF["float32"] * (BAND_OFFSET + steps) * 2.0)
    return int(near[0]) if near.size else int(k.shape[0])


def clean_checkpoints(checkpoints: tuple[int, ...], kink: Array) -> int:
    """How many of ``checkpoints`` come no later than :func:`parting_step` (the parameters
    after them are held to the band)."""
    first = parting_step(kink)
    return sum(1 for s in checkpoints if s <= first)
