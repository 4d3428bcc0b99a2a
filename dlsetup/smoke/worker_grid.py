"""The smoke grid's definition: the data, the initial weights, how the 48 models are stacked, and
what a framework backend must provide to train them.

Runs INSIDE the target interpreter (the workers load it by path, like :mod:`reference`), so it
imports only the standard library and NumPy (plus its sibling modules).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke.worker_clock import TIMING_CHUNK, ChunkClock
    from dlsetup.smoke.worker_kernels import KernelOps
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference as ref
    from worker_clock import TIMING_CHUNK, ChunkClock
    from worker_kernels import KernelOps

Array = npt.NDArray[np.float64]

#: Samples in the synthetic dataset (two Gaussian blobs, balanced classes).
N_SAMPLES = 64
#: Hidden units of the 2-H-1 network.
HIDDEN = 16
#: Training steps by default.
DEFAULT_STEPS = 200
#: Plain gradient-descent learning rate per loss (the registry's, :data:`reference.LOSS_SPECS`).
LEARNING_RATES: dict[str, float] = {lo.name: lo.learning_rate for lo in ref.LOSS_SPECS}
#: The stacked parameters, in the order every trainer and the reference use.
PARAM_NAMES: tuple[str, ...] = ("w1", "b1", "w2", "b2", "alpha")


def checkpoint_steps(steps: int) -> tuple[int, ...]:
    """After how many updates every parameter is compared with the reference's: after the first,
    after each timed chunk of :data:`worker_clock.TIMING_CHUNK` steps, and after the last (where
    TensorFlow's graph loop returns to Python anyway)."""
    return tuple(sorted({*range(1, steps + 1, TIMING_CHUNK), steps} - {0}))


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
            after each (see :class:`worker_clock.ChunkClock`).
        params: every stacked parameter after each of :func:`checkpoint_steps`, (C, M, ...).
    """

    curves: Array
    after_first: dict[str, Array]
    final_scores: Array
    warmup_s: float
    loop_s: float
    clock: ChunkClock
    params: dict[str, Array] = field(default_factory=dict)


class Trainer(Protocol):
    """A compiled (or at least built-once) stacked training program for one plan on one device."""

    def run(
        self, init: dict[str, Array], x: Array, y: Array, *, lr: Array, steps: int
    ) -> TrainOutput:
        """Train from ``init`` for ``steps`` plain-GD steps (per-model learning rate ``lr``)."""
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

    def kernel_ops(self, device: str) -> KernelOps:
        """The kernel tier's operations on ``device`` (:mod:`worker_kernels`)."""
        ...
