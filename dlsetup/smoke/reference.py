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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: The activations, in the seed's order (the rows of every grid).
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu")
#: The losses, in the seed's order (the columns of every grid).
LOSSES: tuple[str, ...] = (
    "zero_one",
    "absolute",
    "log",
    "square",
    "exponential",
    "hinge",
    "perceptron",
    "cross_entropy",
)
#: Losses whose labels are {0, 1} (the others use {-1, +1}).
PROBABILISTIC_LOSSES: frozenset[str] = frozenset({"log", "cross_entropy"})

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


def activation(name: str, x: Array, alpha: float | Array = PRELU_INIT) -> Array:
    """The value of activation ``name`` at ``x`` (``alpha`` is PReLU's parameter)."""
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, LEAKY_SLOPE * x)
    if name == "prelu":
        return np.where(x > 0, x, alpha * x)
    if name == "elu":
        return np.where(x >= 0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name: str, x: Array, alpha: float | Array = PRELU_INIT) -> Array:
    """The derivative of activation ``name`` with respect to ``x``."""
    if name == "sigmoid":
        s = sigmoid(x)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(x) ** 2
    if name == "relu":
        return np.where(x > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, 1.0, LEAKY_SLOPE)
    if name == "prelu":
        return np.where(x > 0, 1.0, alpha)
    if name == "elu":
        return np.where(x >= 0, 1.0, ELU_ALPHA * np.exp(np.minimum(x, 0.0)))
    raise ValueError(f"unknown activation {name!r}")


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


def training_loss(name: str, f: Array, y: Array) -> Array:
    """The per-sample loss that training minimises: :func:`loss`, with the 0/1 surrogate."""
    if name == "zero_one":
        return sigmoid(-ZERO_ONE_SHARPNESS * y * f)
    if name == "absolute":
        return np.abs(y - f)
    if name == "log":  # -log P(y|x), P(y=1|x) = sigmoid(f)
        return softplus(-y * f)
    if name == "square":
        return (y - f) ** 2
    if name == "exponential":
        return np.exp(-y * f)
    if name == "hinge":
        return np.maximum(0.0, 1.0 - y * f)
    if name == "perceptron":
        return np.maximum(0.0, -y * f)
    if name == "cross_entropy":  # -[t ln a + (1-t) ln(1-a)], a = sigmoid(f)
        t = to_probability_label(y)
        return softplus(f) - t * f
    raise ValueError(f"unknown loss {name!r}")


def training_loss_grad(name: str, f: Array, y: Array) -> Array:
    """The derivative of :func:`training_loss` with respect to ``f``."""
    if name == "zero_one":
        s = sigmoid(-ZERO_ONE_SHARPNESS * y * f)
        return -ZERO_ONE_SHARPNESS * y * s * (1.0 - s)
    if name == "absolute":
        return np.sign(f - y)
    if name == "log":
        return -y * sigmoid(-y * f)
    if name == "square":
        return 2.0 * (f - y)
    if name == "exponential":
        return -y * np.exp(-y * f)
    if name == "hinge":
        return np.where(1.0 - y * f > 0, -y, 0.0)
    if name == "perceptron":
        return np.where(-y * f > 0, -y, 0.0)
    if name == "cross_entropy":
        return sigmoid(f) - to_probability_label(y)
    raise ValueError(f"unknown loss {name!r}")


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


def train_curves(
    combos: Sequence[tuple[str, str]],
    init: Mapping[str, Array],
    x: Array,
    y: Array,
    *,
    lr: Array,
    steps: int,
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

    Returns:
        The mean training loss of each model before each step and after the last, and how close
        each model's nearest sample is to its loss's kink, both (steps + 1, M).
    """
    m, n = len(combos), x.shape[0]
    w1, b1, w2, b2, alpha = (np.array(init[k], dtype=np.float64) for k in PARAM_KEYS)
    act_groups = _groups([a for a, _ in combos], ACTIVATIONS)
    loss_groups = _groups([lo for _, lo in combos], LOSSES)
    prelu = next((idx for a, idx in act_groups if a == "prelu"), None)
    lr = np.asarray(lr, dtype=np.float64)
    curves = np.empty((steps + 1, m))
    kink = np.full((steps + 1, m), np.inf)
    h = np.empty((m, n, w1.shape[2]))
    dact = np.empty_like(h)
    g = np.empty((m, n))
    xt = np.ascontiguousarray(x.T)
    for t in range(steps + 1):
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
        w2 = w2 - lr[:, None] * np.matmul(g[:, None, :], h)[:, 0, :]
        b2 = b2 - lr * np.sum(g, axis=1)
        if prelu is not None:
            alpha = alpha.copy()
            alpha[prelu] -= lr[prelu] * np.sum(dh[prelu] * prelu_alpha_grad(z[prelu]), axis=(1, 2))
        w1 = w1 - lr[:, None, None] * np.matmul(xt, dz)
        b1 = b1 - lr[:, None] * np.sum(dz, axis=1)
    return Curves(curves, kink)


class Curves(NamedTuple):
    """What :func:`train_curves` returns, each (steps + 1, M).

    Attributes:
        loss: the mean training loss of each model before each step (and after the last).
        kink: the distance of the sample nearest to its loss's kink, ``min |y f - k|`` (``k`` from
            :data:`LOSS_KINKS`); infinite for smooth losses. Where it is within rounding of zero,
            float32 and float64 may take different sides of the kink, and their trajectories part.
    """

    loss: Array
    kink: Array


#: The margin ``y f`` at which a piecewise-linear loss has its kink (|y - f| at f = y: y f = 1).
LOSS_KINKS: dict[str, float] = {"absolute": 1.0, "hinge": 1.0, "perceptron": 0.0}


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
