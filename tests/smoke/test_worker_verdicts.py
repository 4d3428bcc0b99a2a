"""The one-step check, judged for all models at once (``steps_close``), says exactly what the
per-model check (``step_failures``) says, so the detailed check runs only where it fails."""

from __future__ import annotations

import numpy as np

from dlsetup.smoke import worker_grid as grid
from dlsetup.smoke import worker_reference as wr
from dlsetup.smoke import worker_verdicts as wv
from dlsetup.smoke.worker_clock import ChunkClock

STEPS = 5


def test_steps_close_agrees_with_step_failures_model_by_model() -> None:
    combos = grid.combinations()
    x, y = grid.make_data(0)
    init = grid.init_params(0, len(combos))
    lr = np.array([grid.LEARNING_RATES[loss] for _, loss in combos])
    reference = wr.compute(combos, init, x, y, lr=lr, steps=STEPS, step_check=True)
    assert reference.first_losses is not None and reference.first_after is not None
    after = {k: v * (1 + 1e-6) for k, v in reference.first_after.items()}  # within tolerance
    curves = reference.curves.loss.copy()
    after["w1"][3, 1, 2] *= 1.01  # outside: model 3's weight
    after["alpha"][9] = np.nan  # model 9: NaN against a finite reference
    curves[0, 20] += 1.0  # model 20: the loss before the step
    after["b2"][30] = np.inf  # model 30: an infinity against a finite value
    out = grid.TrainOutput(curves, after, np.zeros((len(combos), 64)), 0.0, 0.0, ChunkClock())
    ok = wv.steps_close(out, reference.first_losses, reference.first_after)
    per_model = [
        not wv.step_failures(i, out, reference.first_losses, reference.first_after)
        for i in range(len(combos))
    ]
    assert ok.tolist() == per_model
    assert [i for i, passed in enumerate(per_model) if not passed] == [3, 9, 20, 30]
    found = wv.verdicts(
        grid.make_plan(combos), out, y, reference.first_losses, reference.first_after
    )
    failed = {i for i, v in enumerate(found) if any(f["check"] == "one step" for f in v.failures)}
    assert failed == {3, 9, 20, 30}
