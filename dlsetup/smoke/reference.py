"""The NumPy reference of the seed's math: six activations, eight losses, one training step.

This module imports only the standard library and NumPy: the smoke workers load it inside a target
interpreter (by adding this directory to ``sys.path``), and the host imports it as
``dlsetup.smoke.reference``. Every function takes and returns float64 arrays.

Label conventions (one label vector ``y`` in {-1, +1} is stored for the whole grid):

* margin losses (0/1, exponential, hinge, perceptron) and the two distance losses (absolute,
  square) use ``y`` in {-1, +1} against the raw network output ``f`` (the score);
* probabilistic losses (log, cross-entropy) use ``t = (1 + y) / 2`` in {0, 1} against
  ``a = sigmoid(f)``, the predicted probability of class 1.

The prediction of every model is ``+1`` when ``f > 0`` and ``-1`` otherwise (for the probabilistic
losses that is ``a > 0.5``).

Corrections to the seed, documented in ``docs/smoke.md``:

* perceptron: the seed writes ``max(0, -f(x))``, dropping the label; the standard form
  ``max(0, -y f(x))`` is used;
* square: the seed sums over the N samples; every loss here is averaged over the batch (the sum is
  N times the mean, so only the step size changes);
* 0/1: its gradient is zero almost everywhere, so training minimises the smooth surrogate
  ``sigmoid(-k y f)`` (k = :data:`ZERO_ONE_SHARPNESS`) and the true 0/1 loss is reported as the
  metric.

At a kink (ReLU at 0, ``|y - f|`` at ``f = y``, hinge at ``y f = 1``, perceptron at ``y f = 0``) the
derivative is the subgradient PyTorch and TensorFlow pick: 0 for the losses and ReLU, ``lambda`` and
``alpha`` for LeakyReLU and PReLU (the seed's ``x <= 0`` branch), 1 for ELU (its ``x >= 0`` branch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: LeakyReLU's slope for x <= 0 (the seed's "usually lambda = 0.2").
LEAKY_SLOPE = 0.2
#: ELU's alpha (the seed's alpha, set to 1).
ELU_ALPHA = 1.0
#: PReLU's initial alpha (PyTorch's default); it is learned.
PRELU_INIT = 0.25
#: Sharpness k of the 0/1 surrogate ``sigmoid(-k y f)``.
ZERO_ONE_SHARPNESS = 2.0

ZERO_ONE_SURROGATE_TEXT = (
    "The 0/1 loss is flat almost everywhere, so gradient descent cannot learn from it: its models "
    f"train on the smooth stand-in sigmoid(-{ZERO_ONE_SHARPNESS:g}·y·f), which falls from 1 to 0 "
    "as the prediction goes from wrong to right, and the table reports the true 0/1 loss (the "
    "share of misclassified samples) as their final loss."
)


def sigmoid(x: Array) -> Array:
    """The logistic function ``1 / (1 + e^-x)``, without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x: Array) -> Array:
    """``log(1 + e^x)``, without overflow."""
    return np.logaddexp(0.0, x)


def prelu_alpha_grad(x: Array) -> Array:
    """The derivative of ``PReLU(x)`` with respect to its parameter alpha: ``x`` where ``x <= 0``."""
    return np.where(x > 0, 0.0, x)


def to_probability_label(y: Array) -> Array:
    """Map labels from {-1, +1} to {0, 1}."""
    return (1.0 + y) / 2.0


def predict(f: Array) -> Array:
    """The predicted label in {-1, +1}: ``+1`` where ``f > 0``."""
    return np.where(f > 0, 1.0, -1.0)


def loss(name: str, f: Array, y: Array) -> Array:
    """The per-sample value of loss ``name`` as the seed defines it (true 0/1, corrected perceptron).

    Args:
        name: one of :data:`LOSSES`.
        f: the network outputs (scores).
        y: labels in {-1, +1} (converted to {0, 1} for the probabilistic losses).
    """
    if name == "zero_one":
        return np.where(predict(f) != y, 1.0, 0.0)
    return training_loss(name, f, y)


# ---------------------------------------------------------------- the registry
#
# One table per concept: each activation and each loss is one entry below, and everything else
# reads these tables: the reference's functions, the workers' learning rates and completeness
# checks, the grids' rows and columns, the JSON schema's enums and the tables of docs/smoke.md
# (both checked against this registry by tests/smoke/test_registry.py). Adding an activation or a
# loss is one entry here plus its PyTorch and TensorFlow implementation in the two workers.


@dataclass(frozen=True)
class ActivationSpec:
    """One activation of the seed.

    Attributes:
        name: its key everywhere (JSON, grids, the workers' tables).
        label: its name in prose (``LeakyReLU``).
        formula: its value, for the docs.
        derivative: its derivative, for the docs.
        value: ``value(x, alpha)`` in NumPy (``alpha`` is PReLU's parameter, ignored elsewhere).
        grad: ``grad(x, alpha)``, the derivative with respect to ``x``.
    """

    name: str
    label: str
    formula: str
    derivative: str
    value: Callable[[Array, Any], Array]
    grad: Callable[[Array, Any], Array]


@dataclass(frozen=True)
class LossSpec:
    """One loss of the seed.

    Attributes:
        name: its key everywhere.
        label: its name in prose.
        convention: how it reads the stored labels ``y`` in {-1, +1}.
        formula: its per-sample formula, for the docs.
        learning_rate: the plain gradient-descent step its models train with (calibrated over
            seeds, see docs/smoke.md).
        value: ``value(f, y)``, the per-sample loss training minimises (0/1: its surrogate).
        grad: ``grad(f, y)``, its derivative with respect to ``f``.
        kink: the margin ``y f`` at which a piecewise-linear loss has its kink; None if smooth.
        probabilistic: it reads the labels as ``t = (1 + y) / 2`` in {0, 1}.
    """

    name: str
    label: str
    convention: str
    formula: str
    learning_rate: float
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    kink: float | None = None
    probabilistic: bool = False


def _sigmoid_grad(x: Array) -> Array:
    s = sigmoid(x)
    return s * (1.0 - s)


def _zero_one_grad(f: Array, y: Array) -> Array:
    s = sigmoid(-ZERO_ONE_SHARPNESS * y * f)
    return -ZERO_ONE_SHARPNESS * y * s * (1.0 - s)


#: The activations, in the seed's order (the rows of every grid).
ACTIVATION_SPECS: tuple[ActivationSpec, ...] = (
    ActivationSpec(
        "sigmoid", "sigmoid", "σ(x) = 1 / (1 + e^-x)", "σ(x)(1 - σ(x))",
        lambda x, a: sigmoid(x), lambda x, a: _sigmoid_grad(x),
    ),
    ActivationSpec(
        "tanh", "tanh", "(e^x - e^-x) / (e^x + e^-x)", "1 - tanh²(x)",
        lambda x, a: np.tanh(x), lambda x, a: 1.0 - np.tanh(x) ** 2,
    ),
    ActivationSpec(
        "relu", "ReLU", "max(0, x)", "1 if x > 0 else 0",
        lambda x, a: np.maximum(x, 0.0), lambda x, a: np.where(x > 0, 1.0, 0.0),
    ),
    ActivationSpec(
        "leaky_relu", "LeakyReLU", f"x if x > 0 else λx, λ = {LEAKY_SLOPE:g}", "1 if x > 0 else λ",
        lambda x, a: np.where(x > 0, x, LEAKY_SLOPE * x),
        lambda x, a: np.where(x > 0, 1.0, LEAKY_SLOPE),
    ),
    ActivationSpec(
        "prelu", "PReLU", f"x if x > 0 else αx, α learned (starts at {PRELU_INIT:g})",
        "d/dx: 1 if x > 0 else α; d/dα: 0 if x > 0 else x",
        lambda x, a: np.where(x > 0, x, a * x), lambda x, a: np.where(x > 0, 1.0, a),
    ),
    ActivationSpec(
        "elu", "ELU", f"x if x ≥ 0 else α(e^x - 1), α = {ELU_ALPHA:g}", "1 if x ≥ 0 else αe^x",
        lambda x, a: np.where(x >= 0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
        lambda x, a: np.where(x >= 0, 1.0, ELU_ALPHA * np.exp(np.minimum(x, 0.0))),
    ),
)  # fmt: skip

#: The losses, in the seed's order (the columns of every grid).
LOSS_SPECS: tuple[LossSpec, ...] = (
    LossSpec(
        "zero_one", "0/1", "y ∈ {-1, +1}, prediction sign(f) (+1 when f > 0)",
        "1 if prediction ≠ y else 0", 1.0,
        lambda f, y: sigmoid(-ZERO_ONE_SHARPNESS * y * f), _zero_one_grad,
    ),
    LossSpec(
        "absolute", "absolute", "y ∈ {-1, +1} as regression target", "\\|y - f\\|", 0.2,
        lambda f, y: np.abs(y - f), lambda f, y: np.sign(f - y), kink=1.0,
    ),
    LossSpec(
        "log", "log", "t = (1+y)/2 ∈ {0, 1}, P(y=1\\|x) = σ(f)",
        "-log P(y\\|x) = log(1 + e^(-y f))", 0.5,
        lambda f, y: softplus(-y * f), lambda f, y: -y * sigmoid(-y * f), probabilistic=True,
    ),
    LossSpec(
        "square", "square", "y ∈ {-1, +1} as regression target", "(y - f)²", 0.05,
        lambda f, y: (y - f) ** 2, lambda f, y: 2.0 * (f - y),
    ),
    LossSpec(
        "exponential", "exponential", "y ∈ {-1, +1} (margin)", "e^(-y f)", 0.1,
        lambda f, y: np.exp(-y * f), lambda f, y: -y * np.exp(-y * f),
    ),
    LossSpec(
        "hinge", "hinge", "y ∈ {-1, +1} (margin)", "max(0, 1 - y f)", 0.2,
        lambda f, y: np.maximum(0.0, 1.0 - y * f),
        lambda f, y: np.where(1.0 - y * f > 0, -y, 0.0), kink=1.0,
    ),
    LossSpec(
        "perceptron", "perceptron", "y ∈ {-1, +1} (margin)", "max(0, -y f)", 0.2,
        lambda f, y: np.maximum(0.0, -y * f), lambda f, y: np.where(-y * f > 0, -y, 0.0),
        kink=0.0,
    ),
    LossSpec(
        "cross_entropy", "cross-entropy", "t ∈ {0, 1}, a = σ(f)",
        "-[t ln a + (1 - t) ln(1 - a)]", 0.5,
        lambda f, y: softplus(f) - to_probability_label(y) * f,
        lambda f, y: sigmoid(f) - to_probability_label(y), probabilistic=True,
    ),
)  # fmt: skip

ACTIVATION: dict[str, ActivationSpec] = {a.name: a for a in ACTIVATION_SPECS}
LOSS: dict[str, LossSpec] = {lo.name: lo for lo in LOSS_SPECS}
#: The activation names, in the seed's order.
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION)
#: The loss names, in the seed's order.
LOSSES: tuple[str, ...] = tuple(LOSS)
#: Losses whose labels are {0, 1} (the others use {-1, +1}).
PROBABILISTIC_LOSSES: frozenset[str] = frozenset(lo.name for lo in LOSS_SPECS if lo.probabilistic)
#: The margin ``y f`` at which a piecewise-linear loss has its kink (|y - f| at f = y: y f = 1).
LOSS_KINKS: dict[str, float] = {lo.name: lo.kink for lo in LOSS_SPECS if lo.kink is not None}


def combinations() -> list[tuple[str, str]]:
    """Every (activation, loss) pair, activation-major: the grid's order everywhere."""
    return [(a, lo) for a in ACTIVATIONS for lo in LOSSES]


def combination_index(activation_name: str, loss_name: str) -> int:
    """The position of a pair in :func:`combinations`."""
    return ACTIVATIONS.index(activation_name) * len(LOSSES) + LOSSES.index(loss_name)


def _spec(table: dict[str, Any], kind: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}") from None


def activation(name: str, x: Array, alpha: float | Array = PRELU_INIT) -> Array:
    """The value of activation ``name`` at ``x`` (``alpha`` is PReLU's parameter)."""
    return np.asarray(_spec(ACTIVATION, "activation", name).value(x, alpha), dtype=np.float64)


def activation_grad(name: str, x: Array, alpha: float | Array = PRELU_INIT) -> Array:
    """The derivative of activation ``name`` with respect to ``x``."""
    return np.asarray(_spec(ACTIVATION, "activation", name).grad(x, alpha), dtype=np.float64)


def training_loss(name: str, f: Array, y: Array) -> Array:
    """The per-sample loss that training minimises: :func:`loss`, with the 0/1 surrogate."""
    return np.asarray(_spec(LOSS, "loss", name).value(f, y), dtype=np.float64)


def training_loss_grad(name: str, f: Array, y: Array) -> Array:
    """The derivative of :func:`training_loss` with respect to ``f``."""
    return np.asarray(_spec(LOSS, "loss", name).grad(f, y), dtype=np.float64)


def markdown_tables() -> str:
    """The activation and loss tables of docs/smoke.md, made from the registry."""
    rows = ["| name | value | derivative |", "|---|---|---|"]
    rows += [f"| {a.label} | {a.formula} | {a.derivative} |" for a in ACTIVATION_SPECS]
    rows += ["", "| loss | convention | per-sample formula | learning rate |", "|---|---|---|---|"]
    rows += [
        f"| {lo.label} | {lo.convention} | {lo.formula} | {lo.learning_rate:g} |"
        for lo in LOSS_SPECS
    ]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Params:
    """The weights of one 2-H-1 network.

    Attributes:
        w1: input-to-hidden weights, shape (2, H).
        b1: hidden biases, shape (H,).
        w2: hidden-to-output weights, shape (H,).
        b2: output bias, a 0-d array.
        alpha: PReLU's parameter, a 0-d array (unused by the other activations).
    """

    w1: Array
    b1: Array
    w2: Array
    b2: Array
    alpha: Array


def forward(params: Params, x: Array, act: str) -> tuple[Array, Array, Array]:
    """Forward propagation: returns the pre-activations ``z`` (N, H), ``h`` (N, H) and ``f`` (N,)."""
    z = x @ params.w1 + params.b1
    h = activation(act, z, float(params.alpha))
    f = h @ params.w2 + params.b2
    return z, h, f


def gd_step(
    params: Params, x: Array, y: Array, act: str, loss_name: str, *, lr: float
) -> tuple[float, Params]:
    """One step of the seed's loop: forward, backward, plain gradient-descent update.

    Args:
        params: the weights before the step.
        x: inputs, shape (N, 2).
        y: labels in {-1, +1}, shape (N,).
        act: the activation name.
        loss_name: the loss name (0/1 trains on its surrogate).
        lr: the learning rate.

    Returns:
        The mean training loss before the update, and the updated weights.
    """
    n = x.shape[0]
    z, h, f = forward(params, x, act)
    value = float(np.mean(training_loss(loss_name, f, y)))
    g = training_loss_grad(loss_name, f, y) / n  # dL/df, shape (N,)
    dw2 = h.T @ g
    db2 = np.sum(g)
    dh = np.outer(g, params.w2)
    dz = dh * activation_grad(act, z, float(params.alpha))
    dalpha = np.sum(dh * prelu_alpha_grad(z)) if act == "prelu" else 0.0
    dw1 = x.T @ dz
    db1 = np.sum(dz, axis=0)
    updated = Params(
        w1=params.w1 - lr * dw1,
        b1=params.b1 - lr * db1,
        w2=params.w2 - lr * dw2,
        b2=params.b2 - lr * db2,
        alpha=params.alpha - lr * dalpha,
    )
    return value, updated


#: The slope of each activation with a kink at 0 below it (ReLU, LeakyReLU; PReLU's is learned).
KINK_SLOPES: dict[str, float | None] = {"relu": 0.0, "leaky_relu": LEAKY_SLOPE, "prelu": None}
#: How close to an activation's kink a pre-activation may be, in units of ``(4 + t)`` times its
#: condition ``|x| max(1, |W1|) + max(1, |b1|)``, for float32 and float64 to take different sides:
#: twice float32's roundoff (the parameters drift by at most 0.7 of ``u (4 + t)`` on the
#: calibration seeds, so ``z``'s float32 error stays below that).
ACTIVATION_KINK_SLACK = 2.0 * 2.0**-24
#: A jump smaller than this many units of ``u (4 + t)`` cannot show against the parameters' band
#: (16 units; see ``curve_band.PARAM_FACTOR``).
VISIBLE_JUMP_UNITS = 1.0


def _parted_units(
    t: int, act_groups: list[tuple[str, slice | Array]], z: Array, dh: Array, x: Array,
    w1: Array, b1: Array, alpha: Array, lr: Array,
) -> npt.NDArray[np.bool_]:  # fmt: skip
    """Which hidden units of which models (M, H) had, at step ``t``, a pre-activation within
    rounding of its activation's kink whose other side would change the unit's ``w1`` and ``b1``
    by a visible amount: from there on float32's unit may part from float64's."""
    parted = np.zeros(z.shape[0::2], dtype=bool)
    ax = np.abs(x)
    xscale = 1.0 + float(np.max(ax, initial=0.0))
    unit = 2.0**-24 * (4.0 + t)
    for a, idx in act_groups:
        if a not in KINK_SLOPES:
            continue
        cond = np.matmul(ax, np.maximum(1.0, np.abs(w1[idx])))
        cond += np.maximum(1.0, np.abs(b1[idx]))[:, None, :]
        near = np.abs(z[idx]) <= ACTIVATION_KINK_SLACK * (4.0 + t) * cond
        if not near.any():
            continue
        fixed = KINK_SLOPES[a]
        slope = alpha[idx][:, None, None] if fixed is None else fixed
        jump = lr[idx][:, None, None] * np.abs(dh[idx]) * np.abs(1.0 - slope) * xscale
        parted[idx] = np.any(near & (jump >= VISIBLE_JUMP_UNITS * unit), axis=1)
    return parted


def train_curves(
    combos: Sequence[tuple[str, str]],
    init: Mapping[str, Array],
    x: Array,
    y: Array,
    *,
    lr: Array,
    steps: int,
    checkpoints: Sequence[int] = (),
) -> Curves:
    """The loss curves of plain gradient descent, every model of a stack at once, in float64.

    The same steps as :func:`gd_step` applied ``steps`` times to each model (checked against it by
    ``tests/smoke/test_reference.py``), vectorised over the models so 48 models x 200 steps cost
    a fraction of a second.

    Args:
        combos: the (activation, loss) of each stacked model.
        init: stacked start weights ``w1`` (M, 2, H), ``b1`` (M, H), ``w2`` (M, H), ``b2`` (M,),
            ``alpha`` (M,).
        x: inputs, shape (N, 2).
        y: labels in {-1, +1}, shape (N,).
        lr: the learning rate of each model, shape (M,).
        steps: how many updates.
        checkpoints: after how many updates (each in 1..steps) to keep every parameter.

    Returns:
        The mean training loss of each model before each step and after the last, and how close
        each model's nearest sample is to its loss's kink, both (steps + 1, M); the parameters at
        each checkpoint, each (C, M, ...).
    """
    m, n = len(combos), x.shape[0]
    w1, b1, w2, b2, alpha = (np.array(init[k], dtype=np.float64) for k in PARAM_KEYS)
    act_groups = _groups([a for a, _ in combos], ACTIVATIONS)
    loss_groups = _groups([lo for _, lo in combos], LOSSES)
    prelu = next((idx for a, idx in act_groups if a == "prelu"), None)
    lr = np.asarray(lr, dtype=np.float64)
    curves = np.empty((steps + 1, m))
    kink = np.full((steps + 1, m), np.inf)
    unit_parted = np.full((m, w1.shape[2]), steps + 1)
    h = np.empty((m, n, w1.shape[2]))
    dact = np.empty_like(h)
    g = np.empty((m, n))
    xt = np.ascontiguousarray(x.T)
    keep = sorted(set(checkpoints))
    kept: dict[str, list[Array]] = {k: [] for k in PARAM_KEYS}
    for t in range(steps + 1):
        if t in keep:
            for k, v in zip(PARAM_KEYS, (w1, b1, w2, b2, alpha), strict=True):
                kept[k].append(v)
        z = np.matmul(x, w1) + b1[:, None, :]  # (M, N, H)
        for a, idx in act_groups:
            zi, al = z[idx], alpha[idx][:, None, None]
            h[idx] = activation(a, zi, al)
            dact[idx] = activation_grad(a, zi, al)
        f = np.matmul(h, w2[:, :, None])[:, :, 0] + b2[:, None]  # (M, N)
        for lo, idx in loss_groups:
            fi = f[idx]
            curves[t, idx] = np.sum(training_loss(lo, fi, y), axis=1) / n
            g[idx] = training_loss_grad(lo, fi, y) / n
            if lo in LOSS_KINKS:
                kink[t, idx] = np.min(np.abs(y * fi - LOSS_KINKS[lo]), axis=1)
        if t == steps:
            break
        dh = g[:, :, None] * w2[:, None, :]
        dz = dh * dact
        new = _parted_units(t, act_groups, z, dh, x, w1, b1, alpha, lr)
        unit_parted[new & (unit_parted > t)] = t
        w2 = w2 - lr[:, None] * np.matmul(g[:, None, :], h)[:, 0, :]
        b2 = b2 - lr * np.sum(g, axis=1)
        if prelu is not None:
            alpha = alpha.copy()
            alpha[prelu] -= lr[prelu] * np.sum(dh[prelu] * prelu_alpha_grad(z[prelu]), axis=(1, 2))
        w1 = w1 - lr[:, None, None] * np.matmul(xt, dz)
        b1 = b1 - lr[:, None] * np.sum(dz, axis=1)
    params = {k: np.array(v) for k, v in kept.items()} if keep else {}
    return Curves(curves, kink, tuple(keep), params, unit_parted)


class Curves(NamedTuple):
    """What :func:`train_curves` returns, each (steps + 1, M).

    Attributes:
        loss: the mean training loss of each model before each step (and after the last).
        kink: the distance of the sample nearest to its loss's kink, ``min |y f - k|`` (``k`` from
            :data:`LOSS_KINKS`); infinite for smooth losses. Where it is within rounding of zero,
            float32 and float64 may take different sides of the kink, and their trajectories part.
        checkpoints: after how many updates the parameters were kept (ascending).
        params: each parameter at each checkpoint, (C, M, ...) (keys :data:`PARAM_KEYS`); empty
            without checkpoints.
        unit_parted: the first step at which each hidden unit of each model (M, H) had a
            pre-activation within rounding of its activation's kink (:func:`_parted_units`):
            that unit's ``w1`` and ``b1`` (and PReLU's slope) may part from float32's after it,
            as the whole model may after a loss's kink; ``steps + 1`` where none did.
    """

    loss: Array
    kink: Array
    checkpoints: tuple[int, ...] = ()
    params: Mapping[str, Array] = {}  # a NamedTuple default, never mutated
    unit_parted: npt.NDArray[np.int_] | None = None


def _groups(names: Sequence[str], order: Sequence[str]) -> list[tuple[str, slice | Array]]:
    """The models of each name: a (strided) slice when they are evenly spaced, else indices."""
    out: list[tuple[str, slice | Array]] = []
    for name in order:
        idx = [i for i, n in enumerate(names) if n == name]
        if not idx:
            continue
        step = idx[1] - idx[0] if len(idx) > 1 else 1
        even = idx == list(range(idx[0], idx[-1] + 1, step))
        out.append((name, slice(idx[0], idx[-1] + 1, step) if even else np.array(idx)))
    return out


#: The keys of a stack of weights, in :class:`Params` order.
PARAM_KEYS: tuple[str, ...] = ("w1", "b1", "w2", "b2", "alpha")
