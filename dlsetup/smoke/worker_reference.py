"""The NumPy reference of a grid run, computed once per smoke and shared by its workers.

Every worker of one ``dlsetup smoke`` trains the same grid from the same weights (the seed and the
steps are the run's), so the float64 reference its checks compare against is the same for all of
them: the first step of each model (:func:`worker_verdicts.reference_first_step`) and the loss
curves (:func:`reference.train_curves`). The first worker to need it computes it and stores it in
the file the runner names (``--reference-cache``, in a private directory of the run); a later one
reads it, after checking that it was made for the same grid (seed, steps, combinations, learning
rates, initial weights), and computes it itself otherwise. All workers run the same interpreter,
NumPy and code, so a shared reference is exactly the one the reader would compute: no check
changes, only the second computation goes (about 0.3 s of TensorFlow's run on a laptop core).

Runs INSIDE the target interpreter (the workers load it by path): standard library and NumPy only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dlsetup.smoke import reference as ref
    from dlsetup.smoke.worker_grid import PARAM_NAMES, Array, checkpoint_steps
    from dlsetup.smoke.worker_verdicts import reference_first_step
else:  # run as a script inside a target interpreter: load the sibling modules by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference as ref
    from worker_grid import PARAM_NAMES, Array, checkpoint_steps
    from worker_verdicts import reference_first_step

#: Bumped when the stored layout changes (a file of another version is not read).
FORMAT = 2


@dataclass(frozen=True)
class GridReference:
    """The NumPy float64 reference of one grid run.

    Attributes:
        first_losses: each model's loss before the first step, (M,); None without the step check.
        first_after: each model's parameters after the first step (stacked, as
            :func:`worker_grid.init_params`); None without the step check.
        curves: the loss curves and kink distances, each (steps + 1, M), and the parameters at
            :func:`worker_grid.checkpoint_steps`.
        shared: read from the run's cache rather than computed here.
    """

    first_losses: Array | None
    first_after: dict[str, Array] | None
    curves: ref.Curves
    shared: bool = False


def compute(
    combos: Sequence[tuple[str, str]], init: dict[str, Array], x: Array, y: Array, *,
    lr: Array, steps: int, step_check: bool,
) -> GridReference:  # fmt: skip
    """The reference computed here (the first step only with ``step_check``)."""
    first_losses = first_after = None
    if step_check:
        first_losses, first_after = reference_first_step(combos, init, x, y)
    curves = ref.train_curves(
        combos, init, x, y, lr=lr, steps=steps, checkpoints=checkpoint_steps(steps)
    )
    return GridReference(first_losses, first_after, curves)


def _key(
    combos: Sequence[tuple[str, str]], init: dict[str, Array], x: Array, y: Array, *,
    lr: Array, steps: int,
) -> dict[str, Array]:  # fmt: skip
    """What a stored reference must have been computed from."""
    return {
        "key_format": np.array(FORMAT),
        "key_steps": np.array(steps),
        "key_combos": np.array([f"{a}/{lo}" for a, lo in combos]),
        "key_lr": np.asarray(lr, dtype=np.float64),
        "key_x": np.asarray(x, dtype=np.float64),
        "key_y": np.asarray(y, dtype=np.float64),
        **{f"key_init_{k}": np.asarray(init[k], dtype=np.float64) for k in PARAM_NAMES},
    }


def _load(path: str, key: dict[str, Array], steps: int, m: int) -> GridReference | None:
    """The reference stored at ``path`` if it is complete and was made from ``key``; else None."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            data = {name: stored[name] for name in stored.files}
    except Exception:  # absent (not computed yet), truncated, not an .npz file: compute it here
        return None
    for name, want in key.items():
        got = data.get(name)
        if got is None or got.shape != want.shape or not np.array_equal(got, want):
            return None
    shapes = {"loss": (steps + 1, m), "kink": (steps + 1, m), "first_losses": (m,)}
    if any(data.get(k) is None or data[k].shape != s for k, s in shapes.items()):
        return None
    after: dict[str, Array] = {}
    for k in PARAM_NAMES:
        got = data.get(f"first_after_{k}")
        if got is None or got.shape != key[f"key_init_{k}"].shape:
            return None
        after[k] = got
    marks = checkpoint_steps(steps)
    params: dict[str, Array] = {}
    for k in PARAM_NAMES:
        got = data.get(f"params_{k}")
        if got is None or got.shape != (len(marks), *key[f"key_init_{k}"].shape):
            return None
        params[k] = got
    parted = data.get("unit_parted")
    if parted is None or parted.shape != key["key_init_b1"].shape:
        return None
    curves = ref.Curves(data["loss"], data["kink"], marks, params, parted)
    return GridReference(data["first_losses"], after, curves, shared=True)


def _store(path: str, key: dict[str, Array], reference: GridReference) -> None:
    """Write ``reference`` to ``path`` atomically (a reader sees all of it or nothing); a failure
    to write only means the next worker computes it too."""
    assert reference.first_losses is not None and reference.first_after is not None
    arrays: dict[str, Any] = {  # Any: savez's stub types its ** as bool (allow_pickle)
        **key,
        "loss": reference.curves.loss,
        "kink": reference.curves.kink,
        "unit_parted": reference.curves.unit_parted,
        "first_losses": reference.first_losses,
        **{f"first_after_{k}": v for k, v in reference.first_after.items()},
        **{f"params_{k}": v for k, v in reference.curves.params.items()},
    }
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def shared(
    path: str | None, combos: Sequence[tuple[str, str]], init: dict[str, Array], x: Array,
    y: Array, *, lr: Array, steps: int,
) -> GridReference:  # fmt: skip
    """The reference with the first step, from the run's cache at ``path`` when another worker
    stored it there for the same grid, else computed here (and stored there for the next)."""
    if path is None:
        return compute(combos, init, x, y, lr=lr, steps=steps, step_check=True)
    key = _key(combos, init, x, y, lr=lr, steps=steps)
    found = _load(path, key, steps, len(combos))
    if found is not None:
        return found
    reference = compute(combos, init, x, y, lr=lr, steps=steps, step_check=True)
    _store(path, key, reference)
    return reference
