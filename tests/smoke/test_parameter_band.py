"""Check (3b): every parameter element at the checkpoints against the float64 reference's, in a
float32 band (``curve_band.param_band``), a hidden unit that sat on its activation's kink within
rounding excused from then on, a model whose sample sat on its loss's kink excused as its curve is."""

from __future__ import annotations

import numpy as np
import pytest

from dlsetup.smoke import curve_band
from dlsetup.smoke import reference as ref
from dlsetup.smoke import worker_grid as grid

U = 2.0**-24


def _grid(seed: int, steps: int) -> tuple[list[tuple[str, str]], ref.Curves, dict[str, np.ndarray]]:
    combos = grid.combinations()
    x, y = grid.make_data(seed)
    init = grid.init_params(seed, len(combos))
    lr = np.array([grid.LEARNING_RATES[loss] for _, loss in combos])
    marks = grid.checkpoint_steps(steps)
    return combos, ref.train_curves(combos, init, x, y, lr=lr, steps=steps, checkpoints=marks), init


def test_the_checkpoints_are_the_first_step_each_chunk_and_the_last() -> None:
    assert grid.checkpoint_steps(200) == (1, 21, 41, 61, 81, 101, 121, 141, 161, 181, 200)
    assert grid.checkpoint_steps(30) == (1, 21, 30)
    assert grid.checkpoint_steps(1) == (1,)


def test_the_reference_parameters_at_a_checkpoint_are_gd_step_repeated() -> None:
    combos, curves, init = _grid(3, 21)
    x, y = grid.make_data(3)
    for i in (0, 17, 34):  # sigmoid/zero_one, relu/absolute, prelu/log
        act, loss = combos[i]
        p = grid.model_params(init, i)
        for t in range(21):
            _, p = ref.gd_step(p, x, y, act, loss, lr=grid.LEARNING_RATES[loss])
            if t + 1 in curves.checkpoints:
                c = curves.checkpoints.index(t + 1)
                for k in ref.PARAM_KEYS:
                    assert curves.params[k][c, i] == pytest.approx(getattr(p, k), rel=1e-12)


def test_the_band_is_relative_above_one_and_grows_with_the_steps() -> None:
    assert curve_band.param_band(np.array([0.5, -3.0]), 0) == pytest.approx(
        [16 * U * 4, 16 * U * 4 * 3]
    )
    assert curve_band.param_band(np.array(0.5), 196)[()] == pytest.approx(16 * U * 200)


def test_one_corrupted_element_is_named_with_its_index_and_first_checkpoint() -> None:
    _, curves, _ = _grid(0, 200)
    i = ref.combination_index("relu", "square")
    want = {k: np.asarray(curves.params[k][:, i]) for k in ref.PARAM_KEYS}
    got = {k: v.copy() for k, v in want.items()}
    c = curves.checkpoints.index(101)
    got["w1"][c:, 1, 5] *= 1.03  # a 3% change from update 100 on
    masks = {k: np.ones_like(v) for k, v in want.items()}
    found = curve_band.param_exit(got, want, curves.checkpoints, masks, curves.kink[:, i])
    assert found is not None
    assert (found.step, found.name, found.index) == (101, "w1", (1, 5))
    assert found.got == pytest.approx(want["w1"][c, 1, 5] * 1.03)
    # the same change 10x smaller than the band passes
    small = {k: v.copy() for k, v in want.items()}
    small["w1"][c:, 1, 5] += 0.1 * curve_band.param_band(want["w1"][c, 1, 5], 101)
    assert curve_band.param_exit(small, want, curves.checkpoints, masks, curves.kink[:, i]) is None


def test_a_unit_parted_at_its_activation_kink_is_excused_from_then_on_only() -> None:
    combos, curves, _ = _grid(0, 200)
    assert curves.unit_parted is not None
    masks = curve_band.unit_masks(dict(curves.params), curves.checkpoints, curves.unit_parted)
    for i, (act, _) in enumerate(combos):
        parted = curves.unit_parted[i]
        if act not in ref.KINK_SLOPES:  # smooth activations never part
            assert (parted == 201).all()
        for c, step in enumerate(curves.checkpoints):
            assert (masks["b1"][c, i] == (step <= parted)).all()
            assert (masks["w2"][c, i] == 1).all()  # w2's gradient is continuous at the kink
    # most units of the kinked activations stay checked to the end (seed 0)
    kinked = [i for i, (act, _) in enumerate(combos) if act in ref.KINK_SLOPES]
    assert (curves.unit_parted[kinked] == 201).mean() > 0.85  # 0.89 when written


def test_a_model_past_its_loss_kink_is_excused_like_its_curve() -> None:
    kink = np.full(201, np.inf)
    kink[50] = 0.0  # a sample on the hinge's kink at step 50
    want = {"w1": np.zeros((3, 2, 2))}
    got = {"w1": np.full((3, 2, 2), 1.0)}
    masks = {"w1": np.ones((3, 2, 2))}
    assert curve_band.param_exit(got, want, (1, 51, 101), masks, kink) is not None  # at step 1
    got["w1"][0] = 0.0
    assert curve_band.param_exit(got, want, (1, 51, 101), masks, kink) is None  # from 51 on
